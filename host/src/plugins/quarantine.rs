//! Stopping plugins that keep misbehaving, and judging installed plugins again when the policy
//! changes.
//!
//! [`crate::runtime::health::Health`] trips a plugin whose failures pile up; the manager, as the
//! site's [`Supervisor`], records the quarantine in the `plugins` row (so every node sees it at
//! its next sync), stops routing to it (503 `plugin_quarantined`), parks its event deliveries,
//! and audits it. Enabling the plugin releases it (`PluginManager::set_enabled`); upgrading or
//! rolling back starts the new version out of quarantine.

use std::sync::Arc;

use futures::FutureExt;

use super::{PluginError, PluginManager, PluginState, Quarantine};
use crate::db::{now_ms, on_db};
use crate::runtime::health::{Supervisor, Trip};

impl PluginManager {
    /// Quarantines `id`, unless it is no longer enabled or already quarantined.
    pub async fn quarantine(&self, id: &str, trip: Trip) -> Result<bool, PluginError> {
        let _guard = self.changes.lock().await;
        let Some(slot) = self.get(id) else {
            return Ok(false);
        };
        if slot.state != PluginState::Enabled {
            return Ok(false);
        }
        let now = now_ms();
        let quarantine = Quarantine {
            at: now,
            reason: trip.reason(),
            node: crate::cluster::node_id(&self.config.cluster),
            trip,
        };
        let stored = serde_json::to_string(&quarantine).expect("a quarantine serializes");
        let changed = on_db!(&self.db, write, |pool| {
            sqlx::query(
                "UPDATE plugins SET quarantine = $1, updated_at = $2 WHERE id = $3 AND version = $4 AND quarantine IS NULL",
            )
            .bind(&stored)
            .bind(now)
            .bind(id)
            .bind(slot.manifest.version.to_string())
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| PluginError::Storage(e.into()))?;
        if changed == 0 {
            return Ok(false);
        }
        let version = slot.manifest.version.to_string();
        tracing::error!(plugin = id, version = %version, reason = %quarantine.reason, "plugin quarantined: its routes answer 503 and its events wait until an administrator enables it");
        self.services.metrics.quarantined(id, true);
        self.services
            .metrics
            .plugin_state(id, &version, "quarantined");
        self.services
            .identity
            .audit(
                Some("system"),
                "plugin.quarantine",
                Some(&format!("plugin:{id}")),
                serde_json::to_value(&quarantine).unwrap_or_default(),
            )
            .await;
        let updated = Arc::new(slot.with_state(
            PluginState::Quarantined(quarantine.reason.clone()),
            Some(quarantine),
            now,
        ));
        self.replace_slot(id, Some(updated)).await;
        Ok(true)
    }

    /// The quarantine recorded for `id` in the database (what every node syncs from).
    pub async fn stored_quarantine(&self, id: &str) -> Result<Option<Quarantine>, PluginError> {
        Ok(self.row(id).await?.and_then(|row| row.quarantine()))
    }

    /// Judges every installed plugin again under the policy in force (after a reload): plugins
    /// it now refuses stop (state `refused`, naming the rule), plugins it allows again run, and
    /// every plugin gets the limits the new policy resolves. Returns how many are refused.
    pub async fn apply_policy(&self) -> Result<usize, PluginError> {
        let _guard = self.changes.lock().await;
        let rows = self.rows().await?;
        let before = self.snapshot();
        let mut slots = std::collections::BTreeMap::new();
        let mut refused = 0;
        let mut allowed_again = Vec::new();
        for row in &rows {
            if let Some(slot) = self.load_row(row).await {
                match &slot.state {
                    PluginState::Refused(reason) => {
                        refused += 1;
                        tracing::warn!(plugin = %row.id, reason = %reason, "the new policy refuses this plugin");
                    }
                    PluginState::Enabled
                        if before
                            .get(&row.id)
                            .is_some_and(|s| matches!(s.state, PluginState::Refused(_))) =>
                    {
                        tracing::info!(plugin = %row.id, "the new policy allows this plugin again");
                        allowed_again.push(row.id.clone());
                    }
                    _ => {}
                }
                slots.insert(row.id.clone(), Arc::new(slot));
            }
        }
        self.publish(slots);
        for id in allowed_again {
            self.services.events.resume(&id).await;
        }
        Ok(refused)
    }
}

impl Supervisor for PluginManager {
    fn quarantine(
        self: Arc<Self>,
        plugin: String,
        trip: Trip,
    ) -> futures::future::BoxFuture<'static, ()> {
        async move {
            if let Err(e) = PluginManager::quarantine(&self, &plugin, trip).await {
                tracing::error!(plugin = %plugin, error = %e, "cannot quarantine the plugin");
            }
        }
        .boxed()
    }
}
