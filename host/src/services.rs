//! What every plugin's capabilities share: the storage backends, the event bus, identity and
//! metrics, and the site-wide limits. One per site, held by every [`crate::plugins::PluginContext`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::capabilities::events::{self, EventBus};
use crate::capabilities::kv::{self, KvBackend};
use crate::config::{BlobBackendKind, Config, DataDir, LimitsConfig};
use crate::db::Db;
use crate::identity::Identity;
use crate::metrics::Metrics;

/// Site-wide limits that don't vary per plugin.
#[derive(Debug, Clone)]
pub struct SiteLimits {
    pub kv_max_value: usize,
    pub event_max_payload: usize,
    pub outbound_timeout: Duration,
    pub outbound_max_response: usize,
}

impl SiteLimits {
    pub fn from_config(limits: &LimitsConfig) -> Self {
        Self {
            kv_max_value: limits.kv_max_value_kib.unwrap_or(1024) as usize * 1024,
            event_max_payload: limits.event_max_payload_kib.unwrap_or(256) as usize * 1024,
            outbound_timeout: Duration::from_millis(u64::from(
                limits.outbound_timeout_ms.unwrap_or(10_000),
            )),
            outbound_max_response: limits.outbound_max_response_kib.unwrap_or(4096) as usize * 1024,
        }
    }
}

pub struct Services {
    pub kv: Arc<dyn KvBackend>,
    pub documents: ucms_documents::Documents,
    pub blobs: ucms_blobs::Blobs,
    pub cache: Arc<dyn ucms_cache::CacheBackend>,
    pub cache_limits: ucms_cache::Limits,
    pub events: Arc<EventBus>,
    pub identity: Identity,
    pub metrics: Metrics,
    /// Each plugin's recent log lines on this node, for the admin's log viewer.
    pub logbook: crate::runtime::logbook::Logbook,
    pub limits: SiteLimits,
    /// How plugins' outbound requests resolve names (`[egress] nameservers`).
    pub egress: crate::capabilities::http_client::egress::Lookup,
    /// Who quarantines plugins that keep failing (the plugin manager, once it exists).
    pub supervisor: Arc<crate::runtime::health::SupervisorHandle>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Connects the storage backends the configuration names: documents on the site's database,
    /// blobs in files under the data directory or in S3, the cache in memory or in Redis.
    pub async fn open(db: &Db, config: &Config, data: &DataDir) -> anyhow::Result<Self> {
        let limits = &config.limits;
        let documents = ucms_documents::Documents::new(
            db.clone(),
            ucms_documents::Limits {
                max_document_bytes: config.documents.max_document_kib as usize * 1024,
                ..ucms_documents::Limits::default()
            },
        );
        let blob_backend: Arc<dyn ucms_blobs::ObjectBackend> =
            match config.blobs.backend {
                BlobBackendKind::Files => {
                    let root = config
                        .blobs
                        .path
                        .clone()
                        .unwrap_or_else(|| data.root().join("blobs"));
                    Arc::new(ucms_blobs::FileBackend::open(&root).with_context(|| {
                        format!("cannot open the blob folder {}", root.display())
                    })?)
                }
                BlobBackendKind::S3 => {
                    let s3 = &config.blobs.s3;
                    let bucket = s3.bucket.clone().context(
                    "[blobs] backend = \"s3\" needs [blobs.s3] bucket (or UCMS_BLOBS__S3__BUCKET)",
                )?;
                    Arc::new(
                        ucms_blobs::S3Backend::new(ucms_blobs::S3Config {
                            bucket,
                            region: s3.region.clone().unwrap_or_else(|| "us-east-1".into()),
                            endpoint: s3.endpoint.clone(),
                            access_key_id: s3.access_key_id.clone().unwrap_or_default(),
                            secret_access_key: s3.secret_access_key.clone().unwrap_or_default(),
                            allow_http: s3.allow_http,
                            prefix: s3.prefix.clone(),
                        })
                        .context("cannot configure the S3 blob store")?,
                    )
                }
            };
        let blobs = ucms_blobs::Blobs::new(db.clone(), blob_backend, ucms_blobs::Limits::default());
        let cache = ucms_cache::open(
            config.cache.url.as_deref(),
            &config.cache.namespace,
            (config.cache.memory_mib as usize).saturating_mul(1024 * 1024),
        )
        .await
        .context("cannot open the cache ([cache] url)")?;
        Ok(Self {
            kv: kv::for_db(db),
            documents,
            blobs,
            cache,
            cache_limits: ucms_cache::Limits::default(),
            events: Arc::new(EventBus::new(events::outbox::for_db(db))),
            identity: Identity::new(db.clone())
                .with_auth_config(config.auth.clone())
                .with_site_config(config)
                .context("cannot set up identity ([auth], [cluster] redis-url)")?,
            metrics: Metrics::new(),
            logbook: Default::default(),
            limits: SiteLimits::from_config(limits),
            egress: if config.egress.nameservers.is_empty() {
                crate::capabilities::http_client::egress::Lookup::System
            } else {
                crate::capabilities::http_client::egress::Lookup::nameservers(
                    &config.egress.nameservers,
                )
                .context("cannot set up the resolver of [egress] nameservers")?
            },
            supervisor: Arc::default(),
        })
    }
}
