//! A site in a temporary directory, on SQLite or on a fresh PostgreSQL schema, with helpers to
//! install guests and send requests through the real router.

use std::net::SocketAddr;
use std::str::FromStr;

use axum::body::Body;
use http::{Method, Request, StatusCode};
use serde_json::Value;
use sqlx::postgres::PgConnectOptions;
use tempfile::TempDir;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;
use ucms::Site;
use ucms::config::{Config, DataDir};
use ucms::db::Db;
use ucms::identity::TokenKind;
use ucms::plugins::{ApplyOptions, PluginError, PluginInfo, PluginSource};
use ucms_test_components::Guest;

/// Which database a test site uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

pub const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// Configuration for test sites: small engine pools (many sites run side by side in one process)
/// and quick event retries.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.runtime.max_instances = 64;
    config.events.base_backoff_ms = 20;
    config.events.max_backoff_ms = 200;
    config.events.poll_interval_ms = 50;
    config
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

pub fn postgres_url() -> String {
    std::env::var("UCMS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Connects to a fresh schema of the test PostgreSQL database. When the server is unreachable,
/// the test is skipped loudly — or fails, under `CI=true`.
pub async fn postgres_db() -> Option<(Db, String)> {
    let url = postgres_url();
    let schema = format!("ucms_t_{}", uuid::Uuid::new_v4().simple());
    let admin = match sqlx::PgPool::connect(&url).await {
        Ok(pool) => pool,
        Err(e) => {
            if ci() {
                panic!(
                    "PostgreSQL is unreachable at {url} ({e}); under CI=true the PostgreSQL suites must run"
                );
            }
            eprintln!(
                "SKIPPED (PostgreSQL unreachable at {url}: {e}); set UCMS_TEST_POSTGRES_URL or start PostgreSQL"
            );
            return None;
        }
    };
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
        .execute(&admin)
        .await
        .expect("create a test schema");
    admin.close().await;
    let options = PgConnectOptions::from_str(&url)
        .unwrap()
        .options([("search_path", schema.as_str())]);
    let db = Db::connect_postgres(options, Some(8))
        .await
        .expect("connect to the test schema");
    ucms::db::migrate(&db)
        .await
        .expect("migrate the test schema");
    Some((db, schema))
}

pub async fn drop_schema(schema: &str) {
    if let Ok(pool) = sqlx::PgPool::connect(&postgres_url()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&pool)
        .await;
        pool.close().await;
    }
}

/// A migrated database in a temporary directory (SQLite) or a fresh schema (PostgreSQL).
pub struct TestDb {
    pub db: Db,
    pub dir: TempDir,
    schema: Option<String>,
}

impl TestDb {
    /// `None` when PostgreSQL is unreachable outside CI.
    pub async fn open(backend: Backend) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let (db, schema) = match backend {
            Backend::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("ucms.db").display());
                (ucms::db::open(&url, None).await.unwrap(), None)
            }
            Backend::Postgres => {
                let (db, schema) = postgres_db().await?;
                (db, Some(schema))
            }
        };
        Some(Self { db, dir, schema })
    }

    pub async fn close(self) {
        self.db.close().await;
        if let Some(schema) = &self.schema {
            drop_schema(schema).await;
        }
    }
}

/// A running test site.
pub struct TestSite {
    pub site: Site,
    db: TestDb,
    stop: CancellationToken,
}

impl TestSite {
    pub async fn sqlite() -> Self {
        Self::open(Backend::Sqlite, test_config())
            .await
            .expect("SQLite always works")
    }

    /// A site on `backend`, delivering events; `None` when PostgreSQL is unreachable outside CI.
    pub async fn open(backend: Backend, config: Config) -> Option<Self> {
        let db = TestDb::open(backend).await?;
        let data = DataDir::new(db.dir.path().join("data"));
        let site = Site::open_with_db(config, data, db.db.clone())
            .await
            .expect("open the test site");
        let stop = CancellationToken::new();
        site.start_background(stop.clone());
        Some(Self { site, db, stop })
    }

    /// Stops background work and drops the PostgreSQL schema.
    pub async fn close(self) {
        self.stop.cancel();
        self.db.close().await;
    }

    pub async fn install(&self, guest: Guest) -> PluginInfo {
        self.install_with(guest, &guest.manifest())
            .await
            .unwrap_or_else(|e| panic!("installing {}: {e}", guest.name))
    }

    pub async fn install_with(
        &self,
        guest: Guest,
        manifest: &str,
    ) -> Result<PluginInfo, PluginError> {
        let source = PluginSource::new(manifest.to_string(), guest.wasm_bytes(), guest.dir)?;
        self.site
            .plugins
            .apply(source, ApplyOptions::default())
            .await
    }

    /// A user with `roles` and an API token with `scopes`.
    pub async fn token(&self, email: &str, roles: &[&str], scopes: &[&str]) -> String {
        let identity = &self.site.services.identity;
        let user = match identity.find_user(email).await.unwrap() {
            Some(user) => user,
            None => identity
                .create_user(
                    email,
                    "a long enough password",
                    &roles.iter().map(|r| r.to_string()).collect::<Vec<_>>(),
                )
                .await
                .unwrap(),
        };
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        identity
            .issue_token(&user, TokenKind::Api, "test", &scopes, None)
            .await
            .unwrap()
            .token
    }

    pub async fn admin_token(&self) -> String {
        self.token("admin@example.com", &["admin"], &["*"]).await
    }

    /// Sends a request through the router (no socket).
    pub async fn request(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let (status, _, bytes) = self
            .raw(method, uri, token, body.map(|b| b.to_string().into_bytes()))
            .await;
        let json = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, json)
    }

    pub async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.request(Method::GET, uri, None, None).await
    }

    pub async fn raw(
        &self,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<Vec<u8>>,
    ) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let mut builder = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        if body.is_some() {
            builder = builder.header("content-type", "application/json");
        }
        let request = builder
            .body(body.map(Body::from).unwrap_or_else(Body::empty))
            .unwrap();
        let response = self.site.router().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, bytes.to_vec())
    }

    /// Sends a request built by the caller (custom headers and bodies) through the router.
    pub async fn send(&self, request: Request<Body>) -> (StatusCode, http::HeaderMap, Vec<u8>) {
        let response = self.site.router().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        (status, headers, bytes.to_vec())
    }

    /// Serves the site on a loopback socket; returns its address.
    pub async fn serve(&self) -> SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = self.site.router();
        let stop = self.stop.clone();
        tokio::spawn(async move {
            axum::serve(
                listener,
                router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
            .unwrap();
        });
        addr
    }
}

/// The `error.code` of an API error body.
pub fn code(body: &Value) -> &str {
    body["error"]["code"].as_str().unwrap_or("<no error code>")
}

/// Polls `check` until it returns `Some`, for up to `secs` seconds.
pub async fn eventually<T, F, Fut>(secs: u64, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
    loop {
        if let Some(value) = check().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("condition not met within {secs} s");
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
}
