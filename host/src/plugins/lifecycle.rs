//! Journaled changes to the installed plugins: install, upgrade, rollback, remove; and enable,
//! disable. See [`super::journal`] for what makes them safe to interrupt.

use std::sync::Arc;

use ucms_resolver::{LockedPlugin, Lockfile};

use super::journal::{self, Journal, Operation, Step};
use super::{
    Lifecycle, PluginError, PluginInfo, PluginManager, PluginRow, PluginSource, PluginState, Slot,
};
use crate::capabilities::events::{self, NewEvent, StagedEvents};
use crate::capabilities::kv::{self, StagedKv};
use crate::db::{now_ms, on_db};
use crate::runtime::invocation::Staging;

/// How to apply a plugin.
#[derive(Debug, Clone, Default)]
pub struct ApplyOptions {
    /// Who asked, for the audit log.
    pub actor: Option<String>,
    /// Allow installing an older version over a newer one.
    pub allow_downgrade: bool,
}

impl PluginManager {
    /// Installs `source`, or upgrades the installed plugin to its version, as one journaled
    /// operation: the previous version keeps serving until the switch, and stays on disk for a
    /// rollback.
    pub async fn apply(
        &self,
        source: PluginSource,
        options: ApplyOptions,
    ) -> Result<PluginInfo, PluginError> {
        let journal = self
            .begin_apply(
                &source.manifest.id.to_string(),
                &source.manifest.version,
                &options,
            )
            .await?;
        self.apply_journaled(journal, source, &options).await
    }

    /// Opens the journal for installing `version` of `id`, after checking the operation makes
    /// sense against what is installed.
    pub(crate) async fn begin_apply(
        &self,
        id: &str,
        version: &semver::Version,
        options: &ApplyOptions,
    ) -> Result<Journal, PluginError> {
        let row = self.row(id).await?;
        let (operation, from) = match &row {
            None => (Operation::Install, None),
            Some(row) => {
                let installed = semver::Version::parse(&row.version)
                    .map_err(|e| PluginError::Storage(e.into()))?;
                if installed == *version {
                    return Err(PluginError::AlreadyInstalled {
                        id: id.to_string(),
                        version: row.version.clone(),
                    });
                }
                if row.previous_version.as_deref() == Some(&version.to_string()) {
                    return Err(PluginError::Refused(format!(
                        "{id} {version} is the previous version, still on disk\n  hint: use `ucms plugin rollback {id}` to return to it"
                    )));
                }
                if *version < installed && !options.allow_downgrade {
                    return Err(PluginError::Refused(format!(
                        "{id} {installed} is installed; {version} is older\n  hint: pass --allow-downgrade to install it anyway"
                    )));
                }
                (Operation::Upgrade, Some(row.version.clone()))
            }
        };
        Journal::begin(
            &self.db,
            &self.data,
            id,
            operation,
            from.as_deref(),
            &version.to_string(),
        )
        .await
    }

    /// Runs an opened install or upgrade to the end, undoing it on failure.
    pub(crate) async fn apply_journaled(
        &self,
        journal: Journal,
        source: PluginSource,
        options: &ApplyOptions,
    ) -> Result<PluginInfo, PluginError> {
        let _guard = self.changes.lock().await;
        let result = self.apply_steps(&journal, source, options).await;
        if let Err(error) = &result {
            journal.fail(&error.to_string()).await;
            let _ = std::fs::remove_dir_all(journal.staging_dir(&self.data));
            // A first install that failed leaves no folder behind (this fails if it isn't empty).
            let _ = std::fs::remove_dir(self.data.root().join("plugins").join(&journal.plugin));
        }
        result
    }

    async fn apply_steps(
        &self,
        journal: &Journal,
        source: PluginSource,
        options: &ApplyOptions,
    ) -> Result<PluginInfo, PluginError> {
        let id = source.manifest.id.to_string();
        let version = source.manifest.version.to_string();
        let previous = self.row(&id).await?;

        let staging = journal.staging_dir(&self.data);
        write_files(&staging, &source).map_err(PluginError::Storage)?;
        journal.step(Step::Staged).await?;

        let loaded = Arc::new(self.prepare(&source).await?);
        journal.step(Step::Compiled).await?;

        let hook = match &previous {
            None => Lifecycle::Install,
            Some(row) => Lifecycle::Upgrade {
                previous: row.version.clone(),
            },
        };
        let name = hook.name();
        // The hook's kv writes and events are held until the switch below, and written in its
        // transaction.
        let held = Staging {
            kv: Arc::new(StagedKv::new(self.services.kv.clone(), &id)),
            events: Arc::new(StagedEvents::default()),
        };
        match loaded.lifecycle(hook, Some(held.clone())).await {
            Ok(Ok(())) => {}
            Ok(Err(message)) => {
                return Err(PluginError::HookRefused {
                    hook: name,
                    message,
                });
            }
            Err(source) => return Err(PluginError::HookFailed { hook: name, source }),
        }
        journal.step(Step::HookRan).await?;

        let dir = self.data.plugin_dir(&id, &version);
        if dir.exists() {
            // A leftover of an earlier attempt that never switched: nothing points at it.
            std::fs::remove_dir_all(&dir).map_err(|e| PluginError::Storage(e.into()))?;
        }
        std::fs::rename(&staging, &dir).map_err(|e| {
            PluginError::Storage(
                anyhow::Error::from(e)
                    .context(format!("cannot move the plugin into {}", dir.display())),
            )
        })?;

        let digest = crate::digest::sha256_hex(&source.wasm);
        let now = now_ms();
        let enabled = previous.as_ref().is_none_or(|r| r.enabled);
        let origin_source = source.origin.to_source();
        let package_digest = source.origin.package_digest().map(str::to_string);
        let signer = super::signer_json(source.signer.as_ref());
        let migrated = held.kv.take_writes();
        let events: Vec<(NewEvent, Vec<String>)> = held
            .events
            .take()
            .into_iter()
            .map(|e| {
                let subscribers = self.services.events.subscriptions.subscribers(&e.topic);
                (e, subscribers)
            })
            .collect();
        let switched = on_db!(&self.db, write, |pool| {
            async {
                let mut tx = pool.begin().await?;
                for (key, value) in &migrated {
                    match value {
                        Some(value) => {
                            sqlx::query(kv::SET)
                                .bind(&id)
                                .bind(key)
                                .bind(value)
                                .bind(now)
                                .execute(&mut *tx)
                                .await?;
                        }
                        None => {
                            sqlx::query(kv::DELETE)
                                .bind(&id)
                                .bind(key)
                                .execute(&mut *tx)
                                .await?;
                        }
                    }
                }
                for (event, subscribers) in events.iter().filter(|(_, s)| !s.is_empty()) {
                    let (seq,): (i64,) = sqlx::query_as(events::INSERT_EVENT)
                        .bind(&event.id)
                        .bind(&event.topic)
                        .bind(&event.key)
                        .bind(&event.payload)
                        .bind(&event.source)
                        .bind(event.published_at)
                        .fetch_one(&mut *tx)
                        .await?;
                    for subscriber in subscribers {
                        sqlx::query(events::INSERT_DELIVERY)
                            .bind(seq)
                            .bind(subscriber)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                match &previous {
                    None => {
                        sqlx::query(
                            "INSERT INTO plugins (id, version, enabled, manifest, wasm_sha256, installed_at, updated_at, source, package_digest, signer) \
                             VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $8, $9)",
                        )
                        .bind(&id)
                        .bind(&version)
                        .bind(true)
                        .bind(&source.manifest_text)
                        .bind(&digest)
                        .bind(now)
                        .bind(&origin_source)
                        .bind(&package_digest)
                        .bind(&signer)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Some(old) => {
                        // A new version starts out of quarantine.
                        sqlx::query(
                            "UPDATE plugins SET version = $1, manifest = $2, wasm_sha256 = $3, updated_at = $4, source = $5, package_digest = $6, \
                             previous_version = $7, previous_manifest = $8, previous_sha256 = $9, previous_source = $10, previous_package_digest = $12, \
                             signer = $13, previous_signer = $14, quarantine = NULL WHERE id = $11",
                        )
                        .bind(&version)
                        .bind(&source.manifest_text)
                        .bind(&digest)
                        .bind(now)
                        .bind(&origin_source)
                        .bind(&package_digest)
                        .bind(&old.version)
                        .bind(&old.manifest)
                        .bind(&old.wasm_sha256)
                        .bind(&old.source)
                        .bind(&id)
                        .bind(&old.package_digest)
                        .bind(&signer)
                        .bind(&old.signer)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                sqlx::query(Journal::switched_sql()).bind(now).bind(&journal.id).execute(&mut *tx).await?;
                tx.commit().await
            }
            .await
        });
        if let Err(e) = switched {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(PluginError::Storage(
                anyhow::Error::from(e).context("cannot record the switch"),
            ));
        }
        journal.after_switch();
        for (_, subscribers) in &events {
            self.services
                .metrics
                .event_published(&id, subscribers.len());
        }
        if events.iter().any(|(_, s)| !s.is_empty()) {
            self.services.events.wake.notify_one();
        }

        let slot = Arc::new(Slot {
            manifest: source.manifest.clone(),
            state: if enabled {
                PluginState::Enabled
            } else {
                PluginState::Disabled
            },
            wasm_sha256: digest.clone(),
            installed_at: previous.as_ref().map_or(now, |r| r.installed_at),
            updated_at: now,
            source: origin_source.clone(),
            previous_version: previous.as_ref().map(|r| r.version.clone()),
            signer: source.signer.clone(),
            quarantine: None,
            loaded: Some(loaded),
        });
        let info = slot.info();
        self.services
            .metrics
            .plugin_state(&id, &version, slot.state.label());
        self.replace_slot(&id, Some(slot)).await;

        journal::prune_versions(
            &self.data,
            &id,
            Some(&version),
            previous.as_ref().map(|r| r.version.as_str()),
        );
        journal.step(Step::Done).await?;
        self.write_lockfile().await;
        let action = if previous.is_some() {
            "plugin.upgrade"
        } else {
            "plugin.install"
        };
        self.services
            .identity
            .audit(
                options.actor.as_deref(),
                action,
                Some(&format!("plugin:{id}")),
                serde_json::json!({
                    "version": version,
                    "from": previous.as_ref().map(|r| r.version.clone()),
                    "sha256": digest,
                    "source": origin_source,
                    "capabilities": source.manifest.capabilities.describe(),
                }),
            )
            .await;
        Ok(info)
    }

    /// Returns a plugin to the version it had before its last install, kept on disk for this.
    /// Hooks don't run: data migrated by the newer version's `upgrade` hook stays as it is.
    pub async fn rollback(&self, id: &str, actor: Option<&str>) -> Result<PluginInfo, PluginError> {
        let row = self
            .row(id)
            .await?
            .ok_or_else(|| PluginError::NotInstalled(id.to_string()))?;
        let (Some(prev_version), Some(prev_manifest), Some(prev_sha)) = (
            &row.previous_version,
            &row.previous_manifest,
            &row.previous_sha256,
        ) else {
            return Err(PluginError::Refused(format!(
                "{id} has no previous version to roll back to"
            )));
        };
        let journal = Journal::begin(
            &self.db,
            &self.data,
            id,
            Operation::Rollback,
            Some(&row.version),
            prev_version,
        )
        .await?;
        let _guard = self.changes.lock().await;
        let result: Result<PluginInfo, PluginError> = async {
            let mut source = self.read_installed(id, prev_version, prev_manifest, prev_sha)?;
            source.signer = super::parse_signer(row.previous_signer.as_deref());
            let loaded = Arc::new(self.prepare(&source).await?);
            journal.step(Step::Compiled).await?;
            let now = now_ms();
            let prev_source = row.previous_source.clone().unwrap_or_else(|| "local".into());
            on_db!(&self.db, write, |pool| {
                async {
                    let mut tx = pool.begin().await?;
                    sqlx::query(
                        "UPDATE plugins SET version = $1, manifest = $2, wasm_sha256 = $3, source = $4, package_digest = $11, updated_at = $5, \
                         previous_version = $6, previous_manifest = $7, previous_sha256 = $8, previous_source = $9, previous_package_digest = $12, \
                         signer = $13, previous_signer = $14, quarantine = NULL WHERE id = $10",
                    )
                    .bind(prev_version)
                    .bind(prev_manifest)
                    .bind(prev_sha)
                    .bind(&prev_source)
                    .bind(now)
                    .bind(&row.version)
                    .bind(&row.manifest)
                    .bind(&row.wasm_sha256)
                    .bind(&row.source)
                    .bind(id)
                    .bind(&row.previous_package_digest)
                    .bind(&row.package_digest)
                    .bind(&row.previous_signer)
                    .bind(&row.signer)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(Journal::switched_sql()).bind(now).bind(&journal.id).execute(&mut *tx).await?;
                    tx.commit().await
                }
                .await
            })
            .map_err(|e| PluginError::Storage(e.into()))?;
            journal.after_switch();
            let slot = Arc::new(Slot {
                manifest: source.manifest.clone(),
                state: if row.enabled { PluginState::Enabled } else { PluginState::Disabled },
                wasm_sha256: prev_sha.clone(),
                installed_at: row.installed_at,
                updated_at: now,
                source: prev_source,
                previous_version: Some(row.version.clone()),
                signer: source.signer.clone(),
                quarantine: None,
                loaded: Some(loaded),
            });
            let info = slot.info();
            self.services.metrics.plugin_state(id, prev_version, slot.state.label());
            self.replace_slot(id, Some(slot)).await;
            journal.step(Step::Done).await?;
            Ok(info)
        }
        .await;
        match &result {
            Ok(_) => {
                self.write_lockfile().await;
                self.services
                    .identity
                    .audit(
                        actor,
                        "plugin.rollback",
                        Some(&format!("plugin:{id}")),
                        serde_json::json!({ "from": row.version, "to": prev_version }),
                    )
                    .await;
            }
            Err(e) => journal.fail(&e.to_string()).await,
        }
        result
    }

    /// Removes a plugin after its `uninstall` hook; `purge` also deletes its stored data.
    pub async fn remove(
        &self,
        id: &str,
        purge: bool,
        actor: Option<&str>,
    ) -> Result<(), PluginError> {
        let row = self
            .row(id)
            .await?
            .ok_or_else(|| PluginError::NotInstalled(id.to_string()))?;
        let journal = Journal::begin(
            &self.db,
            &self.data,
            id,
            Operation::Remove,
            Some(&row.version),
            &row.version,
        )
        .await?;
        let _guard = self.changes.lock().await;
        let result: Result<(), PluginError> = async {
            if let Some(loaded) = self.get(id).and_then(|slot| slot.loaded.clone()) {
                match loaded.lifecycle(Lifecycle::Uninstall, None).await {
                    Ok(Ok(())) => {}
                    Ok(Err(message)) => {
                        return Err(PluginError::HookRefused {
                            hook: "uninstall",
                            message,
                        });
                    }
                    Err(source) => {
                        return Err(PluginError::HookFailed {
                            hook: "uninstall",
                            source,
                        });
                    }
                }
            }
            journal.step(Step::HookRan).await?;
            let now = now_ms();
            on_db!(&self.db, write, |pool| {
                async {
                    let mut tx = pool.begin().await?;
                    sqlx::query("DELETE FROM plugins WHERE id = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    sqlx::query("DELETE FROM deliveries WHERE subscriber = $1")
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    if purge {
                        sqlx::query("DELETE FROM kv WHERE plugin = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                        sqlx::query("DELETE FROM plugin_settings WHERE plugin = $1")
                            .bind(id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    sqlx::query(Journal::switched_sql())
                        .bind(now)
                        .bind(&journal.id)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await
                }
                .await
            })
            .map_err(|e| PluginError::Storage(e.into()))?;
            journal.after_switch();
            if purge {
                self.purge_data(id).await;
            }
            self.services.metrics.forget_plugin(id);
            self.services.logbook.forget(id);
            self.replace_slot(id, None).await;
            let dir = self.data.root().join("plugins").join(id);
            if let Err(e) = std::fs::remove_dir_all(&dir)
                && e.kind() != std::io::ErrorKind::NotFound
            {
                tracing::warn!(plugin = id, error = %e, "cannot delete the plugin's files");
            }
            journal.step(Step::Done).await?;
            Ok(())
        }
        .await;
        match &result {
            Ok(()) => {
                self.write_lockfile().await;
                self.services
                    .identity
                    .audit(
                        actor,
                        "plugin.remove",
                        Some(&format!("plugin:{id}")),
                        serde_json::json!({ "purge": purge, "version": row.version }),
                    )
                    .await;
            }
            Err(e) => journal.fail(&e.to_string()).await,
        }
        result
    }

    /// Deletes what a removed plugin stored outside the switch transaction: documents (their
    /// tables), blobs (objects in files or S3) and cached entries. Failures are logged; the plugin
    /// is already gone, and a later purge of the same id finds less to do.
    async fn purge_data(&self, id: &str) {
        if let Err(e) = self.services.documents.drop_plugin(id).await {
            tracing::warn!(plugin = id, error = %e, "cannot delete the plugin's documents");
        }
        if let Err(e) = self.services.blobs.drop_plugin(id).await {
            tracing::warn!(plugin = id, error = %e, "cannot delete the plugin's blobs");
        }
        if let Err(e) = self.services.cache.clear(id).await {
            tracing::warn!(plugin = id, error = %e, "cannot clear the plugin's cache");
        }
    }

    /// Enables or disables a plugin; a disabled plugin keeps its data but serves nothing.
    pub async fn set_enabled(
        &self,
        id: &str,
        enabled: bool,
        actor: Option<&str>,
    ) -> Result<PluginInfo, PluginError> {
        let _guard = self.changes.lock().await;
        let slot = self
            .get(id)
            .ok_or_else(|| PluginError::NotInstalled(id.to_string()))?;
        let now = now_ms();
        // Enabling releases a quarantined plugin; disabling keeps the record of why it was.
        let released = enabled && slot.quarantine.is_some();
        on_db!(&self.db, write, |pool| {
            sqlx::query(if enabled {
                "UPDATE plugins SET enabled = $1, updated_at = $2, quarantine = NULL WHERE id = $3"
            } else {
                "UPDATE plugins SET enabled = $1, updated_at = $2 WHERE id = $3"
            })
            .bind(enabled)
            .bind(now)
            .bind(id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        })
        .map_err(|e| PluginError::Storage(e.into()))?;
        let quarantine = if enabled {
            None
        } else {
            slot.quarantine.clone()
        };
        let state = match (&slot.state, enabled) {
            (PluginState::Failed(reason), _) => PluginState::Failed(reason.clone()),
            (PluginState::Refused(reason), _) => PluginState::Refused(reason.clone()),
            (_, true) => PluginState::Enabled,
            (_, false) => PluginState::Disabled,
        };
        if released {
            if let Some(loaded) = &slot.loaded {
                loaded.ctx().health.reset();
            }
            self.services.metrics.quarantined(id, false);
            self.services
                .identity
                .audit(
                    actor,
                    "plugin.release",
                    Some(&format!("plugin:{id}")),
                    serde_json::json!({ "quarantine": slot.quarantine }),
                )
                .await;
        }
        self.services
            .identity
            .audit(
                actor,
                if enabled {
                    "plugin.enable"
                } else {
                    "plugin.disable"
                },
                Some(&format!("plugin:{id}")),
                serde_json::Value::Null,
            )
            .await;
        let updated = Arc::new(slot.with_state(state, quarantine, now));
        let info = updated.info();
        self.services.metrics.plugin_state(
            id,
            &slot.manifest.version.to_string(),
            updated.state.label(),
        );
        self.replace_slot(id, Some(updated)).await;
        if released {
            // Only now that the snapshot shows it enabled: a delivery claimed before would be
            // parked again.
            self.services.events.resume(id).await;
        }
        Ok(info)
    }

    /// Rewrites `ucms.lock` from what is installed.
    pub(crate) async fn write_lockfile(&self) {
        let rows: Vec<PluginRow> = match self.rows().await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read plugins to write ucms.lock");
                return;
            }
        };
        let mut lock = Lockfile::empty();
        for row in rows {
            let Ok(version) = semver::Version::parse(&row.version) else {
                continue;
            };
            lock.set(LockedPlugin {
                id: row.id,
                version,
                digest: row
                    .package_digest
                    .unwrap_or_else(|| format!("sha256:{}", row.wasm_sha256)),
                source: row.source,
            });
        }
        if let Err(e) = lock.save(self.data.root()) {
            tracing::warn!(error = %e, "cannot write ucms.lock");
        }
    }
}

/// Writes a plugin's files into a fresh staging folder.
fn write_files(dir: &std::path::Path, source: &PluginSource) -> anyhow::Result<()> {
    use anyhow::Context;
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    std::fs::write(
        dir.join(ucms_manifest::MANIFEST_FILE),
        &source.manifest_text,
    )?;
    std::fs::write(dir.join(super::COMPONENT_FILE), &source.wasm)?;
    for (path, bytes) in &source.assets {
        // Paths were checked when the package was unpacked; check again before writing.
        if path
            .split('/')
            .any(|p| p.is_empty() || p == "." || p == "..")
        {
            anyhow::bail!("asset path '{path}' is not safe");
        }
        let target = dir.join("assets").join(path);
        std::fs::create_dir_all(target.parent().expect("asset paths have a parent"))?;
        std::fs::write(target, bytes)?;
    }
    Ok(())
}
