//! A running site: configuration, database, runtime, services and plugins, assembled once.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::capabilities::events::Dispatcher;
use crate::cluster::Cluster;
use crate::config::{Config, DataDir};
use crate::db::Db;
use crate::plugins::PluginManager;
use crate::policy::{PolicyStore, Reloaded};
use crate::runtime::Runtime;
use crate::services::Services;

/// Everything a site needs to serve. Cloning is one reference count: handlers get it per request.
#[derive(Clone)]
pub struct Site(Arc<SiteParts>);

/// The parts of a [`Site`], reached through `Deref`.
pub struct SiteParts {
    pub config: Arc<Config>,
    pub data: DataDir,
    pub db: Db,
    pub runtime: Arc<Runtime>,
    pub services: Arc<Services>,
    pub plugins: Arc<PluginManager>,
    /// Install plans waiting for an approval over the API.
    pub plans: crate::server::Plans,
}

impl std::fmt::Debug for Site {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Site")
            .field("data", &self.data.root())
            .finish_non_exhaustive()
    }
}

impl std::ops::Deref for Site {
    type Target = SiteParts;

    fn deref(&self) -> &SiteParts {
        &self.0
    }
}

impl Site {
    /// Opens the site in `data`: creates the directory, connects and migrates the database, builds
    /// the engine and loads every installed plugin.
    pub async fn open(config: Config, data: DataDir) -> anyhow::Result<Self> {
        data.create()?;
        let url = config.database_url(data.root());
        let db = crate::db::open(&url, config.database.max_connections).await?;
        Self::open_with_db(config, data, db).await
    }

    /// Like [`Site::open`], with a database already connected (tests pick a PostgreSQL schema).
    pub async fn open_with_db(config: Config, data: DataDir, db: Db) -> anyhow::Result<Self> {
        crate::install_crypto_provider();
        crate::db::migrate(&db).await?;
        data.create()?;
        let (policy, source) = config.policy_source()?;
        let policy = Arc::new(PolicyStore::new(policy, source));
        // Memory slots are sized for the highest ceiling; a reloaded policy can lower ceilings
        // at once, but raising them above this needs a restart.
        let max_memory = policy.current().max_memory_ceiling_mib();
        let cache = config.runtime.cache_compiled.then(|| data.compiled_cache());
        let runtime = Arc::new(Runtime::new(&config.runtime, max_memory, cache)?);
        let services = Arc::new(Services::open(&db, &config, &data).await?);
        let config = Arc::new(config);
        let plugins = Arc::new(PluginManager::new(
            runtime.clone(),
            services.clone(),
            config.clone(),
            policy,
            data.clone(),
            db.clone(),
        ));
        let supervisor: std::sync::Weak<dyn crate::runtime::health::Supervisor> =
            Arc::downgrade(&(plugins.clone() as Arc<dyn crate::runtime::health::Supervisor>));
        services.supervisor.set(supervisor);
        // A node of a cluster may lack the files of plugins another node installed.
        if let Err(e) = crate::cluster::fetch_missing_files(&db, &data).await {
            tracing::warn!(error = %e, "cannot fetch plugin files shared by other nodes");
        }
        plugins.load_all().await?;
        Ok(Self(Arc::new(SiteParts {
            config,
            data,
            db,
            runtime,
            services,
            plugins,
            plans: Default::default(),
        })))
    }

    /// Starts the background work (event delivery, and picking up plugin changes other
    /// processes made); it stops when `stop` is cancelled. With `[cluster] redis-url`, other
    /// nodes' changes and event wake-ups arrive through Redis at once; the one-second database
    /// poll stays as the fallback.
    pub fn start_background(&self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let ceiling = self.plugins.policy().current().max_timeout_ms();
        let node = crate::cluster::node_id(&self.config.cluster);
        let dispatcher = Dispatcher::new(
            self.services.events.clone(),
            self.plugins.clone(),
            self.config.events.clone(),
            self.services.metrics.clone(),
            Duration::from_millis(u64::from(ceiling)),
        )
        .with_node(node.clone());
        let changed = match Cluster::new(&self.config.cluster) {
            Some(cluster) => {
                let events = self.services.events.clone();
                self.services.events.set_remote_wake(cluster.remote_wake());
                cluster.start(stop.clone(), Arc::new(move || events.wake.notify_one()));
                tracing::info!(node = %node, "running as a node of a cluster");
                cluster.plugins_changed.clone()
            }
            None => Arc::new(Notify::new()),
        };
        let plugins = self.plugins.clone();
        let db = self.db.clone();
        let data = self.data.clone();
        let sync_stop = stop.clone();
        tokio::spawn(async move {
            // How long a round waits for another node to share a plugin's files before loading
            // without them (the plugin then shows as failed, with the reason).
            const FILES_GRACE: Duration = Duration::from_secs(10);
            let mut waiting_since: Option<std::time::Instant> = None;
            loop {
                tokio::select! {
                    () = sync_stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                    () = changed.notified() => {
                        // Coalesce a burst of announcements into one sync.
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                match crate::cluster::fetch_missing_files(&db, &data).await {
                    Ok(true) => waiting_since = None,
                    Ok(false) => {
                        let since = *waiting_since.get_or_insert_with(std::time::Instant::now);
                        if since.elapsed() < FILES_GRACE {
                            continue;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot fetch plugin files shared by other nodes")
                    }
                }
                if let Err(e) = plugins.sync().await {
                    tracing::warn!(error = %e, "cannot check for plugin changes");
                }
            }
        });
        tokio::spawn(watch_policy(self.clone(), stop.clone()));
        tokio::spawn(refresh_storage_metrics(self.clone(), stop.clone()));
        // Schedules: each tick claimed in the database, so it runs once across the nodes.
        let scheduler = crate::schedules::Scheduler::new(
            self.plugins.clone(),
            self.db.clone(),
            self.services.metrics.clone(),
        );
        tokio::spawn(scheduler.run(stop.clone()));
        tokio::spawn(dispatcher.run(stop))
    }

    /// The HTTP API.
    pub fn router(&self) -> axum::Router {
        crate::server::router(self.clone())
    }

    /// Reads the policy again and, when it changed, judges every installed plugin under it.
    /// Invalid rules are refused with the reason; the policy in force stays.
    pub async fn reload_policy(&self, actor: Option<&str>) -> anyhow::Result<Reloaded> {
        let store = self.plugins.policy();
        let reloaded = match store.reload(crate::config::read_policy) {
            Ok(reloaded) => reloaded,
            Err(e) => {
                tracing::error!(error = %e, "the changed policy is not valid; the previous one stays in force");
                self.services
                    .identity
                    .audit(
                        actor,
                        "policy.reload-failed",
                        None,
                        serde_json::json!({ "error": e.to_string() }),
                    )
                    .await;
                return Err(e.into());
            }
        };
        if let Reloaded::Changed(policy) = &reloaded {
            let refused = self.plugins.apply_policy().await?;
            tracing::info!(origin = %policy.origin, digest = %policy.digest, refused, "policy reloaded");
            self.services
                .identity
                .audit(
                    actor,
                    "policy.reload",
                    None,
                    serde_json::json!({ "origin": policy.origin, "digest": policy.digest, "plugins_refused": refused }),
                )
                .await;
        }
        Ok(reloaded)
    }
}

/// Reloads the policy when its file changes (checked every second, read once the change has
/// held still for a second, so a half-written file is never put in force) or on SIGHUP.
async fn watch_policy(site: Site, stop: CancellationToken) {
    let mut pending = None;
    #[cfg(unix)]
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    loop {
        #[cfg(unix)]
        let signal = async {
            match hangup.as_mut() {
                Some(h) => {
                    h.recv().await;
                }
                None => std::future::pending().await,
            }
        };
        #[cfg(not(unix))]
        let signal = std::future::pending::<()>();
        let forced = tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => false,
            () = signal => true,
        };
        let changed = site.plugins.policy().changed_on_disk();
        let settled = changed.is_some() && changed == pending;
        pending = if settled { None } else { changed };
        if forced || settled {
            let _ = site.reload_policy(Some("system")).await;
        }
    }
}

/// Keeps `ucms_plugin_storage` current: documents, blobs and kv keys per plugin, every 15 s.
async fn refresh_storage_metrics(site: Site, stop: CancellationToken) {
    loop {
        if let Err(e) = crate::metrics::storage::refresh(&site.db, &site.services.metrics).await {
            tracing::debug!(error = %e, "cannot read storage use for the metrics");
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(15)) => {}
        }
    }
}
