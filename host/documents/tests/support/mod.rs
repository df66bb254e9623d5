//! Test databases: SQLite in a temporary directory, PostgreSQL in a fresh schema per test.
#![allow(dead_code)]

use std::str::FromStr;

use sqlx::migrate::Migrator;
use sqlx::postgres::PgConnectOptions;
use ucms_db::Db;
use ucms_documents::{Documents, Limits};

static SQLITE: Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("../migrations/postgres");

pub struct TestDb {
    pub docs: Documents,
    pub db: Db,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    _schema: Option<DropSchema>,
}

/// Drops a test's PostgreSQL schema when the test ends, even by a panic.
struct DropSchema(String);

impl Drop for DropSchema {
    fn drop(&mut self) {
        let schema = self.0.clone();
        // Possibly inside a runtime, possibly unwinding: do it on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(pool) = sqlx::PgPool::connect(&postgres_url()).await {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP SCHEMA IF EXISTS {schema} CASCADE"
                    )))
                    .execute(&pool)
                    .await;
                    pool.close().await;
                }
            });
        })
        .join();
    }
}

fn postgres_url() -> String {
    std::env::var("UCMS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// Logs to the test output with `RUST_LOG=ucms_documents=trace`.
fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

impl TestDb {
    pub async fn sqlite() -> Self {
        Self::sqlite_with(Limits::default()).await
    }

    pub async fn sqlite_with(limits: Limits) -> Self {
        init_logs();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("docs.db").display());
        let db = Db::connect(&url, Some(4)).await.unwrap();
        db.migrate(&SQLITE, &POSTGRES).await.unwrap();
        Self {
            docs: Documents::new(db.clone(), limits),
            db,
            backend: "sqlite",
            _dir: Some(dir),
            _schema: None,
        }
    }

    /// `None` (after a loud message) when PostgreSQL is unreachable outside CI; under `CI=true`
    /// an unreachable PostgreSQL fails the test.
    pub async fn postgres() -> Option<Self> {
        Self::postgres_with(Limits::default()).await
    }

    pub async fn postgres_with(limits: Limits) -> Option<Self> {
        init_logs();
        let url = postgres_url();
        let admin = match sqlx::PgPool::connect(&url).await {
            Ok(pool) => pool,
            Err(e) => {
                if ci() {
                    panic!(
                        "PostgreSQL is unreachable at {url} ({e}); under CI=true the PostgreSQL suites must run"
                    );
                }
                eprintln!(
                    "\n\n*** SKIPPED: PostgreSQL unreachable at {url}: {e}; set UCMS_TEST_POSTGRES_URL or start PostgreSQL ***\n\n"
                );
                return None;
            }
        };
        let schema = format!("ucms_t_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE SCHEMA {schema}")))
            .execute(&admin)
            .await
            .expect("create a test schema");
        admin.close().await;
        let options = PgConnectOptions::from_str(&url)
            .unwrap()
            .options([("search_path", schema.as_str())]);
        let db = Db::connect_postgres(options, Some(4)).await.unwrap();
        db.migrate(&SQLITE, &POSTGRES).await.unwrap();
        Some(Self {
            docs: Documents::new(db.clone(), limits),
            db,
            backend: "postgres",
            _dir: None,
            _schema: Some(DropSchema(schema)),
        })
    }

    /// Closes the pools; the schema (PostgreSQL) goes when `self` drops.
    pub async fn close(self) {
        self.db.close().await;
    }
}

/// Runs each listed `async fn name(t: &TestDb)` as two tests: `sqlite::name` and `postgres::name`.
#[macro_export]
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let t = $crate::support::TestDb::sqlite().await;
                    super::$name(&t).await;
                    t.close().await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(t) = $crate::support::TestDb::postgres().await else { return };
                    super::$name(&t).await;
                    t.close().await;
                }
            )*
        }
    };
}
