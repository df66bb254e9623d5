//! A running site: configuration, database, runtime, services and plugins, assembled once.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::capabilities::events::Dispatcher;
use crate::config::{Config, DataDir};
use crate::db::Db;
use crate::plugins::PluginManager;
use crate::runtime::Runtime;
use crate::runtime::limits::max_memory_ceiling_mib;
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
        let max_memory = max_memory_ceiling_mib(
            &config.limits,
            config.plugins.values().map(|p| p.limits.memory_mib),
        );
        let cache = config.runtime.cache_compiled.then(|| data.compiled_cache());
        let runtime = Arc::new(Runtime::new(&config.runtime, max_memory, cache)?);
        let services = Arc::new(Services::open(&db, &config, &data).await?);
        let config = Arc::new(config);
        let plugins = Arc::new(PluginManager::new(
            runtime.clone(),
            services.clone(),
            config.clone(),
            data.clone(),
            db.clone(),
        ));
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

    /// Starts the background work (event delivery); it stops when `stop` is cancelled.
    pub fn start_background(&self, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        let ceiling = self
            .config
            .limits
            .ceiling
            .timeout_ms
            .unwrap_or(crate::runtime::limits::HOST_CEILINGS.timeout_ms);
        let dispatcher = Dispatcher::new(
            self.services.events.clone(),
            self.plugins.clone(),
            self.config.events.clone(),
            self.services.metrics.clone(),
            Duration::from_millis(u64::from(ceiling)),
        );
        let plugins = self.plugins.clone();
        let sync_stop = stop.clone();
        // Changes other processes make (a CLI install next to this server, other nodes) take
        // effect here within a second.
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    () = sync_stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                if let Err(e) = plugins.sync().await {
                    tracing::warn!(error = %e, "cannot check for plugin changes");
                }
            }
        });
        tokio::spawn(dispatcher.run(stop))
    }

    /// The HTTP API.
    pub fn router(&self) -> axum::Router {
        crate::server::router(self.clone())
    }
}
