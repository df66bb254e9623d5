//! Installed plugins: validating, installing, upgrading, rolling back, loading, enabling,
//! disabling and removing them.
//!
//! [`PluginManager`] keeps an immutable snapshot of every installed plugin ([`Slot`]) behind an
//! `ArcSwap`: requests read it without locks, and changes build a new snapshot, so in-flight
//! requests finish on the version they started on. Every change is a journaled operation
//! ([`journal`], [`lifecycle`]): stage the files → compile (cached) → inspect the imports against
//! the grants → resolve limits and settings → link only the granted capabilities → run the
//! plugin's `install` or `upgrade` hook in the sandbox → switch in one database transaction. A
//! failure, or a crash, at any step leaves the previous version serving. Other processes sharing
//! the database (a CLI install next to a running server, other nodes) are picked up by
//! [`PluginManager::sync`].

mod error;
pub mod hooks;
pub mod inspect;
pub mod journal;
mod lifecycle;
mod loaded;
mod quarantine;
pub mod registry;
pub mod settings;
mod source;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use arc_swap::ArcSwap;
use async_trait::async_trait;
use serde::Serialize;
use ucms_manifest::Manifest;
use wasmtime::component::Linker;

pub use error::PluginError;
pub use hooks::HookRunner;
pub use lifecycle::ApplyOptions;
pub use loaded::{HttpCall, Lifecycle, LoadedPlugin, PluginResponse, RouteMatch, RouteMiss};
pub use source::{COMPONENT_FILE, Origin, PluginSource};

use crate::capabilities::events::{DeliveryOutcome, EventDelivery, Subscribers};
use crate::capabilities::{self, PluginCapabilities};
use crate::config::{Config, DataDir};
use crate::db::{Db, on_db, rfc3339};
use crate::policy::{PolicyStore, Signer, Subject};
use crate::runtime::PluginContext;
use crate::runtime::Runtime;
use crate::runtime::health::{Health, Trip};
use crate::runtime::limits::{Limits, Quotas};
use crate::services::Services;

/// The state of an installed plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state", content = "reason")]
pub enum PluginState {
    Enabled,
    Disabled,
    /// Installed but can't run; the reason says why.
    Failed(String),
    /// Stopped automatically because it kept trapping or breaching its limits; an administrator
    /// can inspect it, then enable (release) or remove it. Its event deliveries wait.
    Quarantined(String),
    /// The site's policy refuses it (the reason names the rule); it runs again when the policy
    /// allows it.
    Refused(String),
}

impl PluginState {
    pub fn label(&self) -> &'static str {
        match self {
            Self::Enabled => "enabled",
            Self::Disabled => "disabled",
            Self::Failed(_) => "failed",
            Self::Quarantined(_) => "quarantined",
            Self::Refused(_) => "refused",
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
    /// When its database row last changed (to notice changes made by other processes).
    pub updated_at: i64,
    /// `registry+URL` or `local+PATH`.
    pub source: String,
    /// The version a rollback returns to.
    pub previous_version: Option<String>,
    /// Who signed the installed version, as verified at install; none when unsigned.
    pub signer: Option<Signer>,
    /// Why and when it was quarantined, while it is.
    pub quarantine: Option<Quarantine>,
    /// Present unless loading failed.
    pub loaded: Option<Arc<LoadedPlugin>>,
}

/// A plugin's quarantine, as stored in `plugins.quarantine`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Quarantine {
    /// Unix milliseconds.
    pub at: i64,
    pub reason: String,
    /// The node that quarantined it.
    pub node: String,
    pub trip: Trip,
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
    pub source: String,
    pub previous_version: Option<String>,
    pub signer: Option<Signer>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quarantine: Option<Quarantine>,
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
            source: self.source.clone(),
            previous_version: self.previous_version.clone(),
            signer: self.signer.clone(),
            quarantine: self.quarantine.clone(),
        }
    }

    /// The same plugin in another state, changed at `updated_at` (enable, disable, quarantine).
    pub(crate) fn with_state(
        &self,
        state: PluginState,
        quarantine: Option<Quarantine>,
        updated_at: i64,
    ) -> Slot {
        Slot {
            manifest: self.manifest.clone(),
            state,
            wasm_sha256: self.wasm_sha256.clone(),
            installed_at: self.installed_at,
            updated_at,
            source: self.source.clone(),
            previous_version: self.previous_version.clone(),
            signer: self.signer.clone(),
            quarantine,
            loaded: self.loaded.clone(),
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

/// A plugin row as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub(crate) struct PluginRow {
    pub id: String,
    pub version: String,
    pub enabled: bool,
    pub manifest: String,
    pub wasm_sha256: String,
    pub installed_at: i64,
    pub updated_at: i64,
    pub source: String,
    pub package_digest: Option<String>,
    pub previous_version: Option<String>,
    pub previous_manifest: Option<String>,
    pub previous_sha256: Option<String>,
    pub previous_source: Option<String>,
    pub previous_package_digest: Option<String>,
    pub signer: Option<String>,
    pub previous_signer: Option<String>,
    pub quarantine: Option<String>,
}

impl PluginRow {
    pub(crate) fn signer(&self) -> Option<Signer> {
        parse_signer(self.signer.as_deref())
    }

    pub(crate) fn quarantine(&self) -> Option<Quarantine> {
        serde_json::from_str(self.quarantine.as_deref()?).ok()
    }
}

pub(crate) fn parse_signer(text: Option<&str>) -> Option<Signer> {
    serde_json::from_str(text?).ok()
}

pub(crate) fn signer_json(signer: Option<&Signer>) -> Option<String> {
    signer.map(|s| serde_json::to_string(s).expect("a signer serializes"))
}

macro_rules! plugin_columns {
    () => {
        "id, version, enabled, manifest, wasm_sha256, installed_at, updated_at, source, package_digest, \
         previous_version, previous_manifest, previous_sha256, previous_source, previous_package_digest, \
         signer, previous_signer, quarantine"
    };
}

/// The installed plugins of a site.
pub struct PluginManager {
    runtime: Arc<Runtime>,
    services: Arc<Services>,
    config: Arc<Config>,
    /// The operator's policy in force; every plugin is checked against it when it loads.
    policy: Arc<PolicyStore>,
    data: DataDir,
    db: Db,
    slots: ArcSwap<BTreeMap<String, Arc<Slot>>>,
    /// The joined plugins of every hook point, rebuilt with each snapshot.
    hooks: Arc<HookRunner>,
    /// Serializes changes in this process; reads never wait for it.
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
        policy: Arc<PolicyStore>,
        data: DataDir,
        db: Db,
    ) -> Self {
        Self {
            hooks: Arc::new(HookRunner::new(services.metrics.clone())),
            runtime,
            services,
            config,
            policy,
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

    /// The current snapshot of installed plugins.
    pub fn snapshot(&self) -> Arc<BTreeMap<String, Arc<Slot>>> {
        self.slots.load_full()
    }

    /// The site's hook runner: `run` a hook point from host code.
    pub fn hooks(&self) -> &Arc<HookRunner> {
        &self.hooks
    }

    /// The versions stored in the database (which may be ahead of this process's snapshot).
    pub async fn stored_versions(&self) -> Result<BTreeMap<String, String>, PluginError> {
        Ok(self
            .rows()
            .await?
            .into_iter()
            .map(|r| (r.id, r.version))
            .collect())
    }

    pub fn list(&self) -> Vec<PluginInfo> {
        self.slots.load().values().map(|s| s.info()).collect()
    }

    /// Installed versions by id, for resolution.
    pub fn installed_versions(&self) -> BTreeMap<String, semver::Version> {
        self.slots
            .load()
            .iter()
            .map(|(id, slot)| (id.clone(), slot.manifest.version.clone()))
            .collect()
    }

    pub fn data(&self) -> &DataDir {
        &self.data
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The operator's policy.
    pub fn policy(&self) -> &Arc<PolicyStore> {
        &self.policy
    }

    pub(crate) async fn rows(&self) -> Result<Vec<PluginRow>, PluginError> {
        on_db!(&self.db, read, |pool| {
            sqlx::query_as::<_, PluginRow>(concat!(
                "SELECT ",
                plugin_columns!(),
                " FROM plugins ORDER BY id"
            ))
            .fetch_all(pool)
            .await
        })
        .map_err(|e| PluginError::Storage(e.into()))
    }

    pub(crate) async fn row(&self, id: &str) -> Result<Option<PluginRow>, PluginError> {
        on_db!(&self.db, read, |pool| {
            sqlx::query_as::<_, PluginRow>(concat!(
                "SELECT ",
                plugin_columns!(),
                " FROM plugins WHERE id = $1"
            ))
            .bind(id)
            .fetch_optional(pool)
            .await
        })
        .map_err(|e| PluginError::Storage(e.into()))
    }

    /// Finishes or undoes interrupted operations, then loads every installed plugin. A plugin
    /// that can't load is kept as `failed` with the reason; the others run.
    pub async fn load_all(&self) -> anyhow::Result<()> {
        let _guard = self.changes.lock().await;
        let recovered = journal::recover(&self.db, &self.data).await?;
        let rows = self
            .rows()
            .await
            .context("cannot read the installed plugins")?;
        let mut slots = BTreeMap::new();
        for row in rows {
            if let Some(slot) = self.load_row(&row).await {
                slots.insert(row.id.clone(), Arc::new(slot));
            }
        }
        let installed = !slots.is_empty();
        self.publish(slots);
        // The lockfile is written at every change; here only when recovery finished or undid one,
        // or when a site with plugins has none. A lockfile copied into a fresh site stays, for
        // `ucms plugin install --locked`.
        let lock_missing = !self.data.root().join(ucms_resolver::LOCKFILE).exists();
        if recovered > 0 || (installed && lock_missing) {
            self.write_lockfile().await;
        }
        Ok(())
    }

    /// Loads one stored plugin; `None` only when its stored manifest is unreadable.
    async fn load_row(&self, row: &PluginRow) -> Option<Slot> {
        let signer = row.signer();
        let quarantine = row.quarantine();
        let (manifest, state, loaded) = match self
            .load_installed(
                &row.id,
                &row.version,
                &row.manifest,
                &row.wasm_sha256,
                signer.clone(),
            )
            .await
        {
            Ok((manifest, loaded)) => {
                let state = match (&quarantine, row.enabled) {
                    (_, false) => PluginState::Disabled,
                    (Some(q), true) => PluginState::Quarantined(q.reason.clone()),
                    (None, true) => PluginState::Enabled,
                };
                (manifest, state, Some(Arc::new(loaded)))
            }
            Err(e) => {
                let state = match &e {
                    PluginError::Policy(_) | PluginError::Limits(_) => {
                        tracing::warn!(plugin = %row.id, error = %e, "the policy refuses an installed plugin; it stays installed but won't run");
                        PluginState::Refused(e.to_string())
                    }
                    _ => {
                        tracing::error!(plugin = %row.id, error = %e, "plugin can't be loaded; it stays installed but won't run");
                        PluginState::Failed(e.to_string())
                    }
                };
                match Manifest::parse(&row.manifest) {
                    Ok(m) => (m, state, None),
                    Err(parse) => {
                        tracing::error!(plugin = %row.id, error = %parse, "stored manifest is invalid; skipping");
                        return None;
                    }
                }
            }
        };
        self.services
            .metrics
            .plugin_state(&row.id, &row.version, state.label());
        self.services
            .metrics
            .quarantined(&row.id, matches!(state, PluginState::Quarantined(_)));
        Some(Slot {
            manifest,
            state,
            wasm_sha256: row.wasm_sha256.clone(),
            installed_at: row.installed_at,
            updated_at: row.updated_at,
            source: row.source.clone(),
            previous_version: row.previous_version.clone(),
            signer,
            quarantine,
            loaded,
        })
    }

    /// Picks up changes other processes made to the installed plugins (a CLI install next to a
    /// running server, another node): reloads what changed, drops what was removed. Skips a round
    /// while this process is changing plugins itself.
    pub async fn sync(&self) -> Result<usize, PluginError> {
        let Ok(_guard) = self.changes.try_lock() else {
            return Ok(0);
        };
        let rows = self.rows().await?;
        let current = self.slots.load_full();
        let mut next = BTreeMap::new();
        let mut changed = 0;
        for row in &rows {
            match current.get(&row.id) {
                Some(slot)
                    if slot.updated_at == row.updated_at
                        && slot.manifest.version.to_string() == row.version =>
                {
                    next.insert(row.id.clone(), slot.clone());
                }
                _ => {
                    changed += 1;
                    tracing::info!(plugin = %row.id, version = %row.version, "plugin changed by another process; reloading");
                    if let Some(slot) = self.load_row(row).await {
                        next.insert(row.id.clone(), Arc::new(slot));
                    }
                }
            }
        }
        for id in current.keys() {
            if !rows.iter().any(|r| &r.id == id) {
                changed += 1;
                tracing::info!(plugin = %id, "plugin removed by another process");
                self.services.metrics.forget_plugin(id);
                self.services.logbook.forget(id);
            }
        }
        if changed > 0 {
            self.publish(next);
        }
        Ok(changed)
    }

    async fn load_installed(
        &self,
        id: &str,
        version: &str,
        manifest_text: &str,
        digest: &str,
        signer: Option<Signer>,
    ) -> Result<(Manifest, LoadedPlugin), PluginError> {
        let mut source = self.read_installed(id, version, manifest_text, digest)?;
        source.signer = signer;
        let manifest = source.manifest.clone();
        let loaded = self.prepare(&source).await?;
        Ok((manifest, loaded))
    }

    /// The installed files of a version, checked against the digest on record.
    fn read_installed(
        &self,
        id: &str,
        version: &str,
        manifest_text: &str,
        digest: &str,
    ) -> Result<PluginSource, PluginError> {
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
        PluginSource::new(manifest_text.to_string(), wasm, dir.display().to_string())
    }

    /// The plugin's document quota, and the indexes and full-text search its manifest declares,
    /// created (idempotently) before it first runs. An index that existing documents violate
    /// refuses the plugin with the store's report.
    async fn prepare_documents(
        &self,
        manifest: &Manifest,
        grant: &ucms_manifest::DocumentsGrant,
        quotas: &Quotas,
    ) -> Result<capabilities::documents::DocumentsState, PluginError> {
        let quota = ucms_documents::Quota {
            max_documents: Some(quotas.max_documents),
            max_bytes: Some(quotas.documents_mib.saturating_mul(1024 * 1024)),
        };
        let store = &self.services.documents;
        let plugin = manifest.id.as_str();
        let declared = |what: String, e: ucms_documents::DocError| {
            PluginError::Declaration(format!("{what}: {e}"))
        };
        for index in &grant.indexes {
            let scope = ucms_documents::Scope {
                plugin,
                collection: &index.collection,
            };
            let fields = index
                .fields
                .iter()
                .map(|f| ucms_documents::Path::parse(f))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| {
                    declared(
                        format!("index '{}' of '{}'", index.name, index.collection),
                        e,
                    )
                })?;
            let spec = ucms_documents::IndexSpec {
                name: index.name.clone(),
                fields,
                unique: index.unique,
            };
            store.ensure_index(scope, &spec).await.map_err(|e| {
                declared(
                    format!("index '{}' of '{}'", index.name, index.collection),
                    e,
                )
            })?;
        }
        for search in &grant.search {
            let scope = ucms_documents::Scope {
                plugin,
                collection: &search.collection,
            };
            let fields = search
                .fields
                .iter()
                .map(|f| ucms_documents::Path::parse(f))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| declared(format!("full-text search of '{}'", search.collection), e))?;
            let spec = ucms_documents::SearchSpec {
                fields,
                language: search.language.clone(),
            };
            store
                .ensure_search(scope, &spec)
                .await
                .map_err(|e| declared(format!("full-text search of '{}'", search.collection), e))?;
        }
        Ok(capabilities::documents::DocumentsState { quota })
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
        let policy = self.policy.current();
        policy.check(Subject {
            manifest,
            signer: source.signer.as_ref(),
        })?;
        let (limits, quotas) = policy.resolve_limits(manifest)?;
        let operator = self.config.plugin(manifest.id.as_str());
        let saved = self.saved_settings(manifest.id.as_str()).await?;
        let settings = capabilities::config::PluginSettings::resolve(manifest, &operator, &saved)
            .map_err(PluginError::Settings)?;
        let site = &self.services.limits;
        let http = match &manifest.capabilities.http_client {
            Some(grant) => Some(
                capabilities::http_client::HttpClientState::new(
                    manifest.id.as_str(),
                    &capabilities::http_client::with_site_hosts(
                        grant,
                        policy.site_hosts(manifest.id.as_str()),
                    ),
                    policy.internal_networks(manifest.id.as_str()),
                    self.services.egress.clone(),
                    site.outbound_timeout,
                    site.outbound_max_response,
                )
                .map_err(PluginError::Link)?,
            ),
            None => None,
        };
        let documents = match &manifest.capabilities.documents {
            Some(grant) => Some(self.prepare_documents(manifest, grant, &quotas).await?),
            None => None,
        };
        let blobs = manifest.capabilities.blobs.as_ref().map(|_| {
            const MIB: u64 = 1024 * 1024;
            capabilities::blobs::BlobsState {
                quota_bytes: quotas.blobs_mib.saturating_mul(MIB),
                max_blob_bytes: quotas.max_blob_mib.saturating_mul(MIB),
            }
        });
        let log = self.services.logbook.plugin(manifest.id.as_str());
        let health = Health::new(
            manifest.id.as_str(),
            policy.quarantine().clone(),
            self.services.metrics.clone(),
            self.services.supervisor.clone(),
        )
        .with_audit(self.services.identity.clone())
        .with_log(log.clone());
        let ctx = Arc::new(PluginContext {
            id: manifest.id.clone(),
            manifest: manifest.clone(),
            limits,
            quotas,
            services: self.services.clone(),
            metrics: self.services.metrics.plugin(manifest.id.as_str()),
            health,
            log,
            caps: PluginCapabilities {
                log: capabilities::log::log_limiter(limits.log_lines_per_minute),
                events: capabilities::rate::PerMinute::new(
                    limits.events_per_minute,
                    limits.events_per_minute,
                ),
                settings,
                http,
                documents,
                blobs,
                hooks: manifest.capabilities.hooks.then(|| {
                    let runner: Arc<dyn capabilities::hooks::HookPoints> = self.hooks.clone();
                    capabilities::hooks::HooksState::new(&runner)
                }),
            },
        });
        let mut linker = Linker::new(self.runtime.engine());
        capabilities::link(&mut linker, &inspection.imported)
            .map_err(|e| PluginError::Link(e.into()))?;
        LoadedPlugin::new(ctx, &component, &linker, self.runtime.slots()).map_err(PluginError::Link)
    }

    /// Installs the new snapshot and the event subscriptions of its enabled plugins.
    fn publish(&self, slots: BTreeMap<String, Arc<Slot>>) {
        let subscriptions = slots
            .values()
            // A quarantined plugin, or one the policy refuses for now, keeps its subscriptions:
            // its deliveries wait for it.
            .filter(|s| {
                matches!(
                    s.state,
                    PluginState::Enabled | PluginState::Quarantined(_) | PluginState::Refused(_)
                ) && !s.manifest.subscriptions.is_empty()
            })
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
        self.hooks.replace(&slots);
        self.slots.store(Arc::new(slots));
    }

    /// Replaces one slot in the snapshot after a change this process made, and tells the other
    /// nodes of the site.
    async fn replace_slot(&self, id: &str, slot: Option<Arc<Slot>>) {
        let version = slot.as_ref().map(|s| s.manifest.version.to_string());
        let mut slots = (**self.slots.load()).clone();
        match slot {
            Some(slot) => {
                slots.insert(id.to_string(), slot);
            }
            None => {
                slots.remove(id);
            }
        }
        self.publish(slots);
        crate::cluster::plugin_changed(&self.config, &self.db, &self.data, id, version.as_deref())
            .await;
    }
}

#[async_trait]
impl Subscribers for PluginManager {
    async fn deliver(&self, subscriber: &str, event: EventDelivery) -> DeliveryOutcome {
        let Some(slot) = self.get(subscriber) else {
            return DeliveryOutcome::Gone;
        };
        if let PluginState::Quarantined(_) | PluginState::Refused(_) = slot.state {
            return DeliveryOutcome::Parked;
        }
        match slot.runnable() {
            Some(plugin) => plugin.handle_event(event).await,
            None => DeliveryOutcome::NotNow,
        }
    }
}
