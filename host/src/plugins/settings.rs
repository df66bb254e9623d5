//! Plugin settings saved from the admin (`plugin_settings`), between the operator's configuration
//! and the manifest's defaults (see [`crate::capabilities::config`]).
//!
//! Saving checks every value against the manifest, refuses settings the operator's configuration
//! sets (they are locked) and settings the manifest does not declare, writes the values and bumps
//! the plugin's `updated_at` in one transaction (so other nodes reload it on their next sync),
//! then reloads the plugin here: the next invocation reads the new values.

use std::sync::Arc;

use anyhow::anyhow;
use serde_json::{Map, Value};

use super::{PluginError, PluginInfo, PluginManager};
use crate::capabilities::config::PluginSettings;
use crate::db::{now_ms, on_db};

impl PluginManager {
    /// The values saved from the admin for `id` (empty when none).
    pub async fn saved_settings(&self, id: &str) -> Result<Map<String, Value>, PluginError> {
        let text: Option<String> = on_db!(&self.db, read, |pool| {
            sqlx::query_scalar("SELECT settings FROM plugin_settings WHERE plugin = $1")
                .bind(id)
                .fetch_optional(pool)
                .await
        })
        .map_err(|e| PluginError::Storage(e.into()))?;
        match text {
            None => Ok(Map::new()),
            Some(text) => serde_json::from_str(&text).map_err(|e| {
                PluginError::Storage(anyhow!("the saved settings of '{id}' do not parse: {e}"))
            }),
        }
    }

    /// The settings in force for `id`: the operator's, the saved ones and the defaults.
    pub async fn resolved_settings(&self, id: &str) -> Result<PluginSettings, PluginError> {
        let slot = self
            .get(id)
            .ok_or_else(|| PluginError::NotInstalled(id.to_string()))?;
        let saved = self.saved_settings(id).await?;
        PluginSettings::resolve(&slot.manifest, &self.config.plugin(id), &saved)
            .map_err(PluginError::Settings)
    }

    /// Saves `values` as the admin's settings of `id` — the whole set: a declared setting left
    /// out (or `null`) goes back to its default — and reloads the plugin with them. Audited as
    /// `plugin.settings` with the values before and after (settings are not secrets; secrets
    /// come only from the operator's configuration).
    pub async fn save_settings(
        &self,
        id: &str,
        values: Map<String, Value>,
        actor: Option<&str>,
    ) -> Result<PluginInfo, PluginError> {
        let _guard = self.changes.lock().await;
        let slot = self
            .get(id)
            .ok_or_else(|| PluginError::NotInstalled(id.to_string()))?;
        let manifest = &slot.manifest;
        let operator = self.config.plugin(id);
        let in_force = PluginSettings::resolve(manifest, &operator, &Map::new()).ok();
        let mut problems = Vec::new();
        let mut saved = Map::new();
        for (name, value) in values {
            let Some(spec) = manifest.settings.get(&name) else {
                let declared: Vec<&str> = manifest.settings.keys().map(String::as_str).collect();
                problems.push(format!(
                    "'{name}' is not a setting of '{id}' (it declares: {})",
                    if declared.is_empty() {
                        "none".to_string()
                    } else {
                        declared.join(", ")
                    }
                ));
                continue;
            };
            if value.is_null() {
                continue;
            }
            if in_force.as_ref().is_some_and(|s| s.is_locked(&name)) {
                problems.push(format!(
                    "'{name}' is set by the site's configuration ([plugins.{id}.settings] in ucms.toml or a UCMS_ variable), which wins; change it there"
                ));
                continue;
            }
            if !spec.kind.accepts(&value) {
                problems.push(format!("'{name}' must be a {}, but is {value}", spec.kind));
                continue;
            }
            saved.insert(name, value);
        }
        // The whole set must let the plugin load: a required setting needs a value somewhere.
        if problems.is_empty()
            && let Err(e) = PluginSettings::resolve(manifest, &operator, &saved)
        {
            problems.push(e.to_string());
        }
        if !problems.is_empty() {
            return Err(PluginError::Settings(anyhow!(
                "the settings were not saved: {}",
                problems.join("; ")
            )));
        }
        let before = self.saved_settings(id).await?;
        let now = now_ms();
        let text = Value::Object(saved.clone()).to_string();
        on_db!(&self.db, write, |pool| {
            async {
                let mut tx = pool.begin().await?;
                sqlx::query(
                    "INSERT INTO plugin_settings (plugin, settings, updated_at, updated_by) \
                     VALUES ($1, $2, $3, $4) \
                     ON CONFLICT (plugin) DO UPDATE SET settings = excluded.settings, \
                     updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                )
                .bind(id)
                .bind(&text)
                .bind(now)
                .bind(actor)
                .execute(&mut *tx)
                .await?;
                sqlx::query("UPDATE plugins SET updated_at = $1 WHERE id = $2")
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await
            }
            .await
        })
        .map_err(|e| PluginError::Storage(e.into()))?;
        // Reloaded from its row, as another node will: prepared again with the new values.
        let row = self
            .row(id)
            .await?
            .ok_or_else(|| PluginError::NotInstalled(id.to_string()))?;
        let slot = match self.load_row(&row).await {
            Some(slot) => Arc::new(slot),
            None => {
                return Err(PluginError::Storage(anyhow!(
                    "the stored manifest of '{id}' is unreadable"
                )));
            }
        };
        let info = slot.info();
        self.replace_slot(id, Some(slot)).await;
        self.services
            .identity
            .audit(
                actor,
                "plugin.settings",
                Some(&format!("plugin:{id}")),
                serde_json::json!({ "before": before, "after": saved }),
            )
            .await;
        Ok(info)
    }
}
