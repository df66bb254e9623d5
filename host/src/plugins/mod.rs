//! Installed plugins: validating, installing, loading, enabling, disabling and removing them.
//!
//! [`PluginManager`] keeps an immutable snapshot of every installed plugin ([`Slot`]) behind an
//! `ArcSwap`: requests read it without locks, and changes build a new snapshot. The life of an
//! install: read the source → parse the manifest → compile (cached) → inspect the imports against
//! the grants → resolve limits and settings → link only the granted capabilities → write the files
//! to the data directory → run the plugin's `install` hook in the sandbox → record it in the
//! database. A failure at any step leaves nothing behind.

mod error;
pub mod inspect;
mod loaded;
mod source;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use serde::Serialize;
use ucms_manifest::Manifest;
use wasmtime::component::Linker;

pub use error::PluginError;
pub use loaded::{HttpCall, Lifecycle, LoadedPlugin, PluginResponse, RouteMatch, RouteMiss};
pub use source::{COMPONENT_FILE, PluginSource};

use crate::capabilities::events::{DeliveryOutcome, EventDelivery, Subscribers};
use crate::capabilities::{self, PluginCapabilities};
use crate::config::{Config, DataDir};
use crate::db::{Db, now_ms, on_db, rfc3339};
use crate::runtime::PluginContext;
use crate::runtime::Runtime;
use crate::runtime::limits::Limits;
use crate::services::Services;

/// The state of an installed plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "reason")]
pub enum PluginState {
    Enabled,
    Disabled,
    /// Installed but can't run; the reason says why.
    Failed(String),
}

impl PluginState {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::Failed(_) => "failed",
        }
    }
}

/// One installed plugin.
#[derive(Debug)]
pub struct Slot {
    pub manifest: Manifest,
    pub state: PluginState,
    pub wasm_sha256: String,
    pub installed_at: i64,
    /// Present unless loading failed.
    pub loaded: Option<Arc<LoadedPlugin>>,
}

/// A plugin as `GET /api/ucms/plugins` and `ucms plugin list --json` show it.
#[derive(Debug, Clone, Serialize)]
pub struct PluginInfo {
    pub id: String,
    pub version: String,
    pub publisher: String,
    pub description: String,
    #[serde(flatten)]
    pub state: PluginState,
    pub capabilities: Vec<String>,
    pub routes: Vec<RouteInfo>,
    pub subscriptions: Vec<String>,
    pub permissions: BTreeMap<String, String>,
    pub limits: Option<Limits>,
    pub wasm_sha256: String,
    pub installed_at: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RouteInfo {
    pub method: String,
    /// The full path, `/api/{id}/...`.
    pub path: String,
    /// `public`, or the permission the caller needs.
    pub access: String,
}

impl Slot {
    pub fn info(&self) -> PluginInfo {
        let m = &self.manifest;
        PluginInfo {
            id: m.id.to_string(),
            version: m.version.to_string(),
            publisher: m.publisher.clone(),
            description: m.description.clone(),
            state: self.state.clone(),
            capabilities: m.capabilities.describe(),
            routes: m
                .routes
                .iter()
                .map(|r| RouteInfo {
                    method: r.method.to_string(),
                    path: format!("/api/{}{}", m.id, r.path),
                    access: match &r.access {
                        ucms_manifest::Access::Public => "public".into(),
                        ucms_manifest::Access::Permission(p) => m.qualified_permission(p),
                    },
                })
                .collect(),
            subscriptions: m
                .subscriptions
                .iter()
                .map(|s| s.topic.to_string())
                .collect(),
            permissions: m
                .permissions
                .iter()
                .map(|(k, v)| (m.qualified_permission(k), v.clone()))
                .collect(),
            limits: self.loaded.as_ref().map(|l| l.ctx().limits),
            wasm_sha256: self.wasm_sha256.clone(),
            installed_at: rfc3339(self.installed_at),
        }
    }

    /// The loaded plugin if it is enabled.
    pub fn runnable(&self) -> Option<&Arc<LoadedPlugin>> {
        match self.state {
            PluginState::Enabled => self.loaded.as_ref(),
            _ => None,
        }
    }
}

/// Options of an install.
#[derive(Debug, Clone, Default)]
pub struct InstallOptions {
    /// Who asked, for the audit log.
    pub actor: Option<String>,
}

type PluginRow = (String, String, bool, String, String, i64);

/// The installed plugins of a site.
pub struct PluginManager {
    runtime: Arc<Runtime>,
    services: Arc<Services>,
    config: Arc<Config>,
    data: DataDir,
    db: Db,
    slots: ArcSwap<BTreeMap<String, Arc<Slot>>>,
    /// Serializes changes (install, remove, enable, disable); reads never wait for it.
    changes: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for PluginManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginManager")
            .field("plugins", &self.slots.load().keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl PluginManager {
    pub fn new(
        runtime: Arc<Runtime>,
        services: Arc<Services>,
        config: Arc<Config>,
        data: DataDir,
        db: Db,
    ) -> Self {
        Self {
            runtime,
            services,
            config,
            data,
            db,
            slots: ArcSwap::default(),
            changes: tokio::sync::Mutex::new(()),
        }
    }

    /// The installed plugin `id`.
    pub fn get(&self, id: &str) -> Option<Arc<Slot>> {
        self.slots.load().get(id).cloned()
    }

    pub fn list(&self) -> Vec<PluginInfo> {
        self.slots.load().values().map(|s| s.info()).collect()
    }

    /// Loads every installed plugin from the database and the data directory. A plugin that
    /// can't load is kept as `failed` with the reason; the others run.
    pub async fn load_all(&self) -> anyhow::Result<()> {
        let _guard = self.changes.lock().await;
        let rows: Vec<PluginRow> = on_db!(&self.db, read, |pool| {
            sqlx::query_as("SELECT id, version, enabled, manifest, wasm_sha256, installed_at FROM plugins ORDER BY id")
                .fetch_all(pool)
                .await
        })
        .context("cannot read the installed plugins")?;
        let mut slots = BTreeMap::new();
        for (id, version, enabled, manifest_text, digest, installed_at) in rows {
            let slot = match self
                .load_installed(&id, &version, &manifest_text, &digest)
                .await
            {
                Ok((manifest, loaded)) => Slot {
                    manifest,
                    state: if enabled {
                        PluginState::Enabled
                    } else {
                        PluginState::Disabled
                    },
                    wasm_sha256: digest,
                    installed_at,
                    loaded: Some(Arc::new(loaded)),
                },
                Err(e) => {
                    tracing::error!(plugin = %id, error = %e, "plugin can't be loaded; it stays installed but won't run");
                    let manifest = match Manifest::parse(&manifest_text) {
                        Ok(m) => m,
                        Err(parse) => {
                            tracing::error!(plugin = %id, error = %parse, "stored manifest is invalid; skipping");
                            continue;
                        }
                    };
                    Slot {
                        manifest,
                        state: PluginState::Failed(e.to_string()),
                        wasm_sha256: digest,
                        installed_at,
                        loaded: None,
                    }
                }
            };
            self.services
                .metrics
                .plugin_state(&id, &version, slot.state.label());
            slots.insert(id, Arc::new(slot));
        }
        self.publish(slots);
        Ok(())
    }

    async fn load_installed(
        &self,
        id: &str,
        version: &str,
        manifest_text: &str,
        digest: &str,
    ) -> Result<(Manifest, LoadedPlugin), PluginError> {
        let dir = self.data.plugin_dir(id, version);
        let wasm = std::fs::read(dir.join(COMPONENT_FILE)).map_err(|e| PluginError::Tampered {
            id: id.to_string(),
            reason: format!("{}: {e}", dir.join(COMPONENT_FILE).display()),
        })?;
        let actual = crate::digest::sha256_hex(&wasm);
        if actual != digest {
            return Err(PluginError::Tampered {
                id: id.to_string(),
                reason: format!("plugin.wasm has SHA-256 {actual}, installed as {digest}"),
            });
        }
        let source = PluginSource::new(manifest_text.to_string(), wasm, dir.display().to_string())?;
        let manifest = source.manifest.clone();
        let loaded = self.prepare(&source).await?;
        Ok((manifest, loaded))
    }

    /// Validates a plugin and prepares it to run, without installing anything.
    pub async fn prepare(&self, source: &PluginSource) -> Result<LoadedPlugin, PluginError> {
        let manifest = &source.manifest;
        let wasm = source.wasm.clone();
        let runtime = self.runtime.clone();
        let component = tokio::task::spawn_blocking(move || runtime.compile(&wasm))
            .await
            .map_err(|e| PluginError::Compile(e.into()))?
            .map_err(PluginError::Compile)?;
        let inspection = inspect::inspect(&source.wasm, manifest)?;
        let operator = self.config.plugin(manifest.id.as_str());
        let limits = Limits::resolve(
            manifest.id.as_str(),
            &manifest.limits,
            &self.config.limits,
            &operator.limits,
        )?;
        let settings = capabilities::config::PluginSettings::resolve(manifest, &operator)
            .map_err(PluginError::Settings)?;
        let site = &self.services.limits;
        let http = match &manifest.capabilities.http_client {
            Some(grant) => Some(
                capabilities::http_client::HttpClientState::new(
                    manifest.id.as_str(),
                    grant,
                    operator.allow_private_egress,
                    site.outbound_timeout,
                    site.outbound_max_response,
                )
                .map_err(PluginError::Link)?,
            ),
            None => None,
        };
        let ctx = Arc::new(PluginContext {
            id: manifest.id.clone(),
            manifest: manifest.clone(),
            limits,
            services: self.services.clone(),
            metrics: self.services.metrics.plugin(manifest.id.as_str()),
            caps: PluginCapabilities {
                log: capabilities::log::LogLimiter::new(site.log_lines_per_sec),
                settings,
                http,
            },
        });
        let mut linker = Linker::new(self.runtime.engine());
        capabilities::link(&mut linker, &inspection.imported)
            .map_err(|e| PluginError::Link(e.into()))?;
        LoadedPlugin::new(ctx, &component, &linker, self.runtime.instance_permits())
            .map_err(PluginError::Link)
    }

    /// Installs a plugin from `source`, running its `install` hook.
    pub async fn install(
        &self,
        source: PluginSource,
        options: InstallOptions,
    ) -> Result<PluginInfo, PluginError> {
        let _guard = self.changes.lock().await;
        let id = source.manifest.id.to_string();
        let version = source.manifest.version.to_string();
        if let Some(existing) = self.get(&id) {
            return Err(PluginError::AlreadyInstalled {
                id,
                version: existing.manifest.version.to_string(),
            });
        }
        let loaded = Arc::new(self.prepare(&source).await?);
        let dir = self.data.plugin_dir(&id, &version);
        write_plugin_files(&dir, &source).map_err(PluginError::Storage)?;
        let outcome = loaded.lifecycle(Lifecycle::Install).await;
        let hook_error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(message)) => Some(PluginError::HookRefused {
                hook: "install",
                message,
            }),
            Err(source) => Some(PluginError::HookFailed {
                hook: "install",
                source,
            }),
        };
        if let Some(error) = hook_error {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(error);
        }
        let digest = crate::digest::sha256_hex(&source.wasm);
        let now = now_ms();
        let stored = on_db!(&self.db, write, |pool| {
            sqlx::query(
                "INSERT INTO plugins (id, version, enabled, manifest, wasm_sha256, installed_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
            )
            .bind(&id)
            .bind(&version)
            .bind(true)
            .bind(&source.manifest_text)
            .bind(&digest)
            .bind(now)
            .execute(pool)
            .await
                .map(|r| r.rows_affected())
        });
        if let Err(e) = stored {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(PluginError::Storage(
                anyhow::Error::from(e).context("cannot record the install"),
            ));
        }
        self.services
            .identity
            .audit(
                options.actor.as_deref(),
                "plugin.install",
                Some(&format!("plugin:{id}")),
                serde_json::json!({
                    "version": version,
                    "sha256": digest,
                    "origin": source.origin,
                    "capabilities": source.manifest.capabilities.describe(),
                }),
            )
            .await;
        let slot = Arc::new(Slot {
            manifest: source.manifest,
            state: PluginState::Enabled,
            wasm_sha256: digest,
            installed_at: now,
            loaded: Some(loaded),
        });
        let info = slot.info();
        self.services.metrics.plugin_state(&id, &version, "enabled");
        let mut slots = (**self.slots.load()).clone();
        slots.insert(id, slot);
        self.publish(slots);
        Ok(info)
    }

    /// Removes a plugin after its `uninstall` hook; `purge` also deletes its stored data.
    pub async fn remove(
        &self,
        id: &str,
        purge: bool,
        actor: Option<&str>,
    ) -> Result<(), PluginError> {
        let _guard = self.changes.lock().await;
        let slot = self
            .get(id)
            .ok_or_else(|| PluginError::NotInstalled(id.to_string()))?;
        if let Some(loaded) = &slot.loaded {
            match loaded.lifecycle(Lifecycle::Uninstall).await {
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
                }
                tx.commit().await
            }
            .await
        })
        .map_err(|e| PluginError::Storage(e.into()))?;
        let dir = self.data.root().join("plugins").join(id);
        if let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(plugin = id, error = %e, "cannot delete the plugin's files");
        }
        self.services
            .identity
            .audit(
                actor,
                "plugin.remove",
                Some(&format!("plugin:{id}")),
                serde_json::json!({ "purge": purge }),
            )
            .await;
        self.services.metrics.forget_plugin(id);
        let mut slots = (**self.slots.load()).clone();
        slots.remove(id);
        self.publish(slots);
        Ok(())
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
        on_db!(&self.db, write, |pool| {
            sqlx::query("UPDATE plugins SET enabled = $1, updated_at = $2 WHERE id = $3")
                .bind(enabled)
                .bind(now_ms())
                .bind(id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| PluginError::Storage(e.into()))?;
        let state = match (&slot.state, enabled) {
            (PluginState::Failed(reason), _) => PluginState::Failed(reason.clone()),
            (_, true) => PluginState::Enabled,
            (_, false) => PluginState::Disabled,
        };
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
        let updated = Arc::new(Slot {
            manifest: slot.manifest.clone(),
            state,
            wasm_sha256: slot.wasm_sha256.clone(),
            installed_at: slot.installed_at,
            loaded: slot.loaded.clone(),
        });
        let info = updated.info();
        self.services.metrics.plugin_state(
            id,
            &slot.manifest.version.to_string(),
            updated.state.label(),
        );
        let mut slots = (**self.slots.load()).clone();
        slots.insert(id.to_string(), updated);
        self.publish(slots);
        Ok(info)
    }

    /// Installs the new snapshot and the event subscriptions of its enabled plugins.
    fn publish(&self, slots: BTreeMap<String, Arc<Slot>>) {
        let subscriptions = slots
            .values()
            .filter(|s| s.state == PluginState::Enabled && !s.manifest.subscriptions.is_empty())
            .map(|s| {
                (
                    s.manifest.id.to_string(),
                    s.manifest
                        .subscriptions
                        .iter()
                        .map(|sub| sub.topic.clone())
                        .collect(),
                )
            })
            .collect();
        self.services.events.subscriptions.replace(subscriptions);
        self.slots.store(Arc::new(slots));
    }
}

fn write_plugin_files(dir: &Path, source: &PluginSource) -> anyhow::Result<()> {
    // Write into a staging folder and rename, so a crash never leaves a half-written plugin.
    let parent = dir.parent().context("plugin folder has no parent")?;
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create {}", parent.display()))?;
    let staging = parent.join(format!(".staging-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&staging)?;
    std::fs::write(
        staging.join(ucms_manifest::MANIFEST_FILE),
        &source.manifest_text,
    )?;
    std::fs::write(staging.join(COMPONENT_FILE), &source.wasm)?;
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::rename(&staging, dir)
        .with_context(|| format!("cannot move the plugin into {}", dir.display()))?;
    Ok(())
}

#[async_trait]
impl Subscribers for PluginManager {
    async fn deliver(&self, subscriber: &str, event: EventDelivery) -> DeliveryOutcome {
        let Some(slot) = self.get(subscriber) else {
            return DeliveryOutcome::Gone;
        };
        match slot.runnable() {
            Some(plugin) => plugin.handle_event(event).await,
            None => DeliveryOutcome::NotNow,
        }
    }
}
