//! The UCMS plugin registry and its client.
//!
//! The server ([`Registry`], served by `ucms registry serve`) keeps packages in a folder and
//! everything else in SQLite or PostgreSQL. It serves a sparse index — one file per package, one
//! JSON line per version — under a signed, versioned, expiring snapshot (see
//! [`ucms_package::metadata`]), and the statements sites need to decide trust: its endorsements
//! of publisher keys, publishers' key rotations and revocations. Publishing checks everything a
//! site would check before install, so a bad package never reaches the index.
//!
//! The same server is the public marketplace ([`market`] holds its state; `web` its pages):
//! browse and search, a page per plugin and per publisher, ratings and reviews by signed-in
//! marketplace accounts, download counts.
//!
//! The [`client`] is what sites use: conditional requests against a local cache, the snapshot
//! checked against rollback and freeze, every index file checked against the snapshot, every
//! download checked against its digest.

mod api;
pub mod client;
mod error;
pub mod market;
mod store;
mod web;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::RwLock;
use ucms_db::Db;
use ucms_package::keys::SecretKey;

pub use error::RegistryError;
pub use market::{Rating, Review, Session, User};
pub use store::{PublisherToken, SearchHit, SearchParams, SearchResults, Sort};

/// How the registry is set up.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Holds `registry.key`, `packages/` and, by default, `registry.db`.
    pub data: PathBuf,
    /// `sqlite://…` or `postgres://…`; defaults to `registry.db` in `data`.
    pub database_url: Option<String>,
    /// The `ucms:host` API versions packages may target.
    pub supported_api: Vec<semver::Version>,
    /// How long a signed snapshot stays valid; it is re-signed well before.
    pub snapshot_ttl: Duration,
    /// How long an endorsement of a publisher key lasts.
    pub endorsement_ttl: Duration,
    /// Largest package accepted.
    pub max_package_bytes: usize,
    /// Write requests (publish, yank, keys) per token per minute.
    pub writes_per_minute: u32,
    /// Sign-in attempts per marketplace account per minute.
    pub logins_per_minute: u32,
    /// Mark the marketplace's session cookie `Secure` (set when it is served over HTTPS).
    pub secure_cookies: bool,
}

impl RegistryConfig {
    pub fn new(data: impl Into<PathBuf>, supported_api: Vec<semver::Version>) -> Self {
        Self {
            data: data.into(),
            database_url: None,
            supported_api,
            snapshot_ttl: Duration::from_secs(7 * 24 * 3600),
            endorsement_ttl: Duration::from_secs(365 * 24 * 3600),
            max_package_bytes: 64 << 20,
            writes_per_minute: 30,
            logins_per_minute: 10,
            secure_cookies: false,
        }
    }
}

/// A running registry.
pub struct Registry {
    db: Db,
    key: SecretKey,
    packages_dir: PathBuf,
    config: RegistryConfig,
    /// The current signed snapshot and index files, rebuilt after every change.
    published: RwLock<Arc<store::Published>>,
    limiter: api::RateLimiter,
    login_limiter: api::RateLimiter,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("data", &self.config.data)
            .field("key", &self.key.public().id())
            .finish_non_exhaustive()
    }
}

static SQLITE: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// The registry's signing key file in its data directory.
pub const KEY_FILE: &str = "registry.key";

impl Registry {
    /// Opens (creating on first use) the registry in `config.data`: its database, its signing key
    /// and its package folder.
    pub async fn open(config: RegistryConfig) -> anyhow::Result<Arc<Self>> {
        std::fs::create_dir_all(&config.data).with_context(|| {
            format!(
                "cannot create the registry's data directory {}",
                config.data.display()
            )
        })?;
        let url = config
            .database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", config.data.join("registry.db").display()));
        let db = Db::connect(&url, None).await?;
        db.migrate(&SQLITE, &POSTGRES).await?;
        Self::open_with_db(config, db).await
    }

    /// Like [`Registry::open`] with a database already connected.
    pub async fn open_with_db(config: RegistryConfig, db: Db) -> anyhow::Result<Arc<Self>> {
        db.migrate(&SQLITE, &POSTGRES).await?;
        std::fs::create_dir_all(&config.data)?;
        let key = load_or_create_key(&config.data)?;
        let packages_dir = config.data.join("packages");
        std::fs::create_dir_all(&packages_dir)?;
        let registry = Arc::new(Self {
            limiter: api::RateLimiter::new(config.writes_per_minute),
            login_limiter: api::RateLimiter::new(config.logins_per_minute),
            published: RwLock::new(Arc::new(store::Published::placeholder(&key))),
            db,
            key,
            packages_dir,
            config,
        });
        registry.republish().await?;
        Ok(registry)
    }

    /// The registry's public key: sites put it in their trust configuration.
    pub fn public_key(&self) -> ucms_package::keys::PublicKeyFile {
        self.key.public_file()
    }

    /// The HTTP API and the marketplace's pages.
    pub fn router(self: &Arc<Self>) -> axum::Router {
        api::router(self.clone()).merge(web::router(self.clone()))
    }

    /// Keeps the snapshot fresh: re-signs it when less than half its lifetime is left.
    pub async fn refresh_forever(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            let expires = self.published.read().await.snapshot.signed.expires;
            let half = (self.config.snapshot_ttl.as_secs() / 2) as i64;
            if expires - ucms_package::unix_now() < half
                && let Err(e) = self.republish().await
            {
                tracing::error!(error = %format!("{e:#}"), "cannot re-sign the registry snapshot");
            }
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    fn package_path(&self, id: &str, version: &semver::Version) -> PathBuf {
        self.packages_dir
            .join(id)
            .join(ucms_package::archive::file_name(id, version))
    }
}

fn load_or_create_key(data: &Path) -> anyhow::Result<SecretKey> {
    let path = data.join(KEY_FILE);
    if path.exists() {
        return SecretKey::load(&path).map_err(Into::into);
    }
    let key = SecretKey::generate("registry");
    key.save(&path)?;
    tracing::info!(key_id = %key.public().id(), path = %path.display(), "created the registry's signing key");
    Ok(key)
}
