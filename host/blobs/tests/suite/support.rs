//! The test matrix: metadata on SQLite (a temp file) or PostgreSQL (a fresh schema), objects in
//! files (a temp directory) or S3 (a real S3-compatible server: moto, started here, or the one
//! `UCMS_TEST_S3_ENDPOINT` names). A service that can't be reached skips the test loudly, or fails
//! it under `CI=true`.

use std::path::{Path, PathBuf};
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use tempfile::TempDir;
use ucms_blobs::{Blobs, FileBackend, Limits, ObjectBackend, S3Backend, S3Config};
use ucms_db::Db;

use crate::s3_server::{s3_server, unavailable};

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("../migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreKind {
    Files,
    S3,
}

/// One cell of the matrix, with everything it created.
pub struct Env {
    pub blobs: Blobs,
    pub backend: Arc<dyn ObjectBackend>,
    pub store: StoreKind,
    pub dir: TempDir,
    db: Db,
    schema: Option<String>,
    /// For S3 on the moto server started here: its endpoint, bucket and this test's prefix.
    moto: Option<(String, String, String)>,
}

impl Env {
    pub async fn open(db: DbKind, store: StoreKind) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let mut moto = None;
        let backend: Arc<dyn ObjectBackend> = match store {
            StoreKind::Files => {
                Arc::new(FileBackend::open(&dir.path().join("data/blobs")).unwrap())
            }
            StoreKind::S3 => {
                let (backend, prefix) = s3_backend()?;
                let server = s3_server().as_ref()?;
                if server.started_here() {
                    moto = Some((server.endpoint.clone(), server.bucket.clone(), prefix));
                }
                Arc::new(backend)
            }
        };
        let (db, schema) = match db {
            DbKind::Sqlite => {
                let url = format!("sqlite://{}", dir.path().join("ucms.db").display());
                (Db::connect(&url, None).await.unwrap(), None)
            }
            DbKind::Postgres => {
                let (db, schema) = postgres_db().await?;
                (db, Some(schema))
            }
        };
        db.migrate(&SQLITE_MIGRATIONS, &POSTGRES_MIGRATIONS)
            .await
            .expect("run the host migrations");
        let blobs = Blobs::new(db.clone(), backend.clone(), Limits::default());
        Some(Self {
            blobs,
            backend,
            store,
            dir,
            db,
            schema,
            moto,
        })
    }

    /// Multipart uploads of this test in progress on the moto server; `None` for the files
    /// backend and for an external S3 server (whose API may need signed requests).
    pub async fn uploads_in_progress(&self) -> Option<usize> {
        let (endpoint, bucket, prefix) = self.moto.as_ref()?;
        // moto does not check signatures, so a plain GET lists the uploads.
        let url = format!("{endpoint}/{bucket}?uploads&prefix={prefix}/");
        let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
        Some(body.matches("<Upload>").count())
    }

    /// Waits (up to 10 s: aborts of dropped writers run in the background) until no multipart
    /// upload of this test is in progress, and returns how many are left.
    pub async fn pending_uploads(&self) -> usize {
        let mut left = 0;
        for _ in 0..100 {
            left = self.uploads_in_progress().await.unwrap_or(0);
            if left == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        left
    }

    /// The blob directory of the files backend.
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("data/blobs")
    }

    /// Committed objects in `plugin`'s namespace, as the backend itself sees them.
    pub async fn objects(&self, plugin: &str) -> Vec<String> {
        self.backend.list(plugin).await.unwrap()
    }

    /// Files left in the files backend's temp folder (always 0 for S3).
    pub fn temp_files(&self) -> usize {
        match self.store {
            StoreKind::Files => std::fs::read_dir(self.root().join(".tmp")).unwrap().count(),
            StoreKind::S3 => 0,
        }
    }

    pub async fn close(self) {
        self.db.close().await;
        if let Some(schema) = &self.schema {
            drop_schema(schema).await;
        }
    }
}

// ---- PostgreSQL: a fresh schema per test, as in host/tests/it/support.rs.

fn postgres_url() -> String {
    std::env::var("UCMS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

async fn postgres_db() -> Option<(Db, String)> {
    let url = postgres_url();
    let schema = format!("ucms_blobs_t_{}", uuid::Uuid::new_v4().simple());
    let admin = match sqlx::PgPool::connect(&url).await {
        Ok(pool) => pool,
        Err(e) => {
            return unavailable(&format!(
                "PostgreSQL is unreachable at {url} ({e}); set UCMS_TEST_POSTGRES_URL or start PostgreSQL"
            ));
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
    Some((db, schema))
}

async fn drop_schema(schema: &str) {
    if let Ok(pool) = sqlx::PgPool::connect(&postgres_url()).await {
        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP SCHEMA IF EXISTS {schema} CASCADE"
        )))
        .execute(&pool)
        .await;
        pool.close().await;
    }
}

// ---- S3: moto's server, started once per test binary; each test gets its own key prefix.

/// Multipart parts in tests: S3's minimum, so a few MiB exercise multipart uploads.
pub const TEST_PART_SIZE: usize = ucms_blobs::MIN_PART_SIZE;

fn s3_backend() -> Option<(S3Backend, String)> {
    let server = s3_server().as_ref()?;
    let prefix = format!("tests/{}", uuid::Uuid::new_v4().simple());
    let config = S3Config {
        bucket: server.bucket.clone(),
        region: server.region.clone(),
        endpoint: Some(server.endpoint.clone()),
        access_key_id: server.access_key_id.clone(),
        secret_access_key: server.secret_access_key.clone(),
        allow_http: server.endpoint.starts_with("http://"),
        prefix: Some(prefix.clone()),
    };
    let backend = S3Backend::new(config)
        .expect("configure the S3 backend")
        .with_part_size(TEST_PART_SIZE);
    Some((backend, prefix))
}

/// Deterministic pseudo-random bytes.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(sha2::Sha256::digest(data))
}

/// Every file under `dir`, relative to it.
pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path().strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out.sort();
    out
}
