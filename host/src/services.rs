//! What every plugin's capabilities share: the storage backends, the event bus, identity and
//! metrics, and the site-wide limits. One per site, held by every [`crate::plugins::PluginContext`].

use std::sync::Arc;
use std::time::Duration;

use crate::capabilities::events::{self, EventBus};
use crate::capabilities::kv::{self, KvBackend};
use crate::config::LimitsConfig;
use crate::db::Db;
use crate::identity::Identity;
use crate::metrics::Metrics;

/// Site-wide limits that don't vary per plugin.
#[derive(Debug, Clone)]
pub struct SiteLimits {
    pub kv_max_value: usize,
    pub event_max_payload: usize,
    pub log_lines_per_sec: u32,
    pub outbound_timeout: Duration,
    pub outbound_max_response: usize,
}

impl SiteLimits {
    pub fn from_config(limits: &LimitsConfig) -> Self {
        Self {
            kv_max_value: limits.kv_max_value_kib.unwrap_or(1024) as usize * 1024,
            event_max_payload: limits.event_max_payload_kib.unwrap_or(256) as usize * 1024,
            log_lines_per_sec: limits.log_lines_per_sec.unwrap_or(100),
            outbound_timeout: Duration::from_millis(u64::from(
                limits.outbound_timeout_ms.unwrap_or(10_000),
            )),
            outbound_max_response: limits.outbound_max_response_kib.unwrap_or(4096) as usize * 1024,
        }
    }
}

pub struct Services {
    pub kv: Arc<dyn KvBackend>,
    pub events: Arc<EventBus>,
    pub identity: Identity,
    pub metrics: Metrics,
    pub limits: SiteLimits,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Services {
    pub fn new(db: &Db, limits: &LimitsConfig) -> Self {
        Self {
            kv: kv::for_db(db),
            events: Arc::new(EventBus::new(events::outbox::for_db(db))),
            identity: Identity::new(db.clone()),
            metrics: Metrics::new(),
            limits: SiteLimits::from_config(limits),
        }
    }
}
