//! The UCMS database layer: SQLite (the embedded default) or PostgreSQL (for several nodes).
//!
//! [`Db`] holds the pools; the crate that owns a schema runs its migrations with [`Db::migrate`]
//! (one set per backend, same tables and semantics). SQLite writes go through a single-connection
//! pool, so writers in this process queue in Rust instead of failing with `SQLITE_BUSY`; reads use
//! a pool of their own under WAL. [`on_db!`] runs one query text (with `$1`-style parameters,
//! which both backends accept) against whichever backend is in use. [`Db::begin`] opens a write
//! transaction ([`Tx`]) on either backend; [`on_tx!`] runs one statement text inside it.

use std::str::FromStr;
use std::time::Duration;

use anyhow::Context;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

/// A connected, migrated database.
#[derive(Debug, Clone)]
pub enum Db {
    Sqlite { read: SqlitePool, write: SqlitePool },
    Postgres(PgPool),
}

impl Db {
    /// Connects to `url` (`sqlite://PATH`, `sqlite::memory:` or `postgres://…`).
    pub async fn connect(url: &str, max_connections: Option<u32>) -> anyhow::Result<Self> {
        let db = if url.starts_with("sqlite:") {
            Self::connect_sqlite(url, max_connections).await?
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let options = PgConnectOptions::from_str(url)
                .with_context(|| format!("'{}' is not a valid PostgreSQL URL", redact(url)))?;
            Self::connect_postgres(options, max_connections).await?
        } else {
            anyhow::bail!(
                "unsupported database URL '{}': use sqlite://PATH or postgres://USER@HOST/DB",
                redact(url)
            );
        };
        Ok(db)
    }

    /// Connects to PostgreSQL with explicit options (tests use this to pick a schema).
    pub async fn connect_postgres(
        options: PgConnectOptions,
        max_connections: Option<u32>,
    ) -> anyhow::Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(max_connections.unwrap_or(16))
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .context("cannot connect to PostgreSQL")?;
        Ok(Self::Postgres(pool))
    }

    async fn connect_sqlite(url: &str, max_connections: Option<u32>) -> anyhow::Result<Self> {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("'{url}' is not a valid SQLite URL"))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let in_memory = url.contains(":memory:") || url.contains("mode=memory");
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(if in_memory { 1 } else { 0 })
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open the SQLite database {url}"))?;
        // An in-memory database exists only on its connection: read and write through the same one.
        let read = if in_memory {
            write.clone()
        } else {
            SqlitePoolOptions::new()
                .max_connections(max_connections.unwrap_or(8))
                .connect_with(options.read_only(true))
                .await
                .with_context(|| format!("cannot open the SQLite database {url}"))?
        };
        Ok(Self::Sqlite { read, write })
    }

    /// Runs the migrations for this backend: `sqlite` or `postgres` from `migrations`.
    pub async fn migrate(
        &self,
        sqlite: &sqlx::migrate::Migrator,
        postgres: &sqlx::migrate::Migrator,
    ) -> anyhow::Result<()> {
        match self {
            Self::Sqlite { write, .. } => sqlite
                .run(write)
                .await
                .context("cannot migrate the SQLite database")?,
            Self::Postgres(pool) => postgres
                .run(pool)
                .await
                .context("cannot migrate the PostgreSQL database")?,
        }
        Ok(())
    }

    /// Begins a write transaction: on SQLite on the single writer connection with
    /// `BEGIN IMMEDIATE` (the write lock is taken up front, so the transaction cannot fail later
    /// with `SQLITE_BUSY` when it first writes), on PostgreSQL an ordinary `BEGIN`.
    ///
    /// Dropping a [`Tx`] without [`Tx::commit`] rolls it back.
    pub async fn begin(&self) -> sqlx::Result<Tx> {
        Ok(match self {
            Self::Sqlite { write, .. } => Tx::Sqlite(write.begin_with("BEGIN IMMEDIATE").await?),
            Self::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// `sqlite` or `postgres`, for logs and metrics.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite { .. } => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> anyhow::Result<()> {
        match self {
            Self::Sqlite { read, .. } => {
                sqlx::query("SELECT 1").execute(read).await?;
            }
            Self::Postgres(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
            }
        }
        Ok(())
    }

    pub async fn close(&self) {
        match self {
            Self::Sqlite { read, write } => {
                read.close().await;
                write.close().await;
            }
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// An open write transaction on either backend (see [`Db::begin`]). Run statements in it with
/// [`on_tx!`]; finish it with [`Tx::commit`] (dropping it rolls back).
#[derive(Debug)]
pub enum Tx {
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    pub async fn commit(self) -> sqlx::Result<()> {
        match self {
            Self::Sqlite(tx) => tx.commit().await,
            Self::Postgres(tx) => tx.commit().await,
        }
    }

    pub async fn rollback(self) -> sqlx::Result<()> {
        match self {
            Self::Sqlite(tx) => tx.rollback().await,
            Self::Postgres(tx) => tx.rollback().await,
        }
    }

    /// `sqlite` or `postgres`.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
        }
    }
}

/// Milliseconds since the Unix epoch: how every table stores time.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// An RFC 3339 rendering of a [`now_ms`] timestamp, for APIs.
pub fn rfc3339(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

/// The URL with any password replaced, for error messages and logs.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_string(),
    }
}

/// Runs `$body` with `$pool` bound to the backend's pool: the writer for `write`, a reader for
/// `read`. The body is compiled once per backend, so one SQL text (with `$1`-style parameters,
/// which both SQLite and PostgreSQL accept) serves both.
#[macro_export]
macro_rules! on_db {
    ($db:expr, write, |$pool:ident| $body:expr) => {
        match $db {
            $crate::Db::Sqlite { write: $pool, .. } => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
    ($db:expr, read, |$pool:ident| $body:expr) => {
        match $db {
            $crate::Db::Sqlite { read: $pool, .. } => $body,
            $crate::Db::Postgres($pool) => $body,
        }
    };
}

/// Runs `$body` with `$conn` bound to the connection of an open [`Tx`] (`&mut SqliteConnection`
/// or `&mut PgConnection`), like [`on_db!`] does for pools:
///
/// ```no_run
/// # async fn example(db: ucms_db::Db) -> anyhow::Result<()> {
/// let mut tx = db.begin().await?;
/// ucms_db::on_tx!(&mut tx, |conn| sqlx::query("DELETE FROM kv WHERE plugin = $1")
///     .bind("hello")
///     .execute(conn)
///     .await
///     .map(|_| ()))?;
/// tx.commit().await?;
/// # Ok(()) }
/// ```
#[macro_export]
macro_rules! on_tx {
    ($tx:expr, |$conn:ident| $body:expr) => {
        match $tx {
            $crate::Tx::Sqlite(tx) => {
                let $conn = &mut **tx;
                $body
            }
            $crate::Tx::Postgres(tx) => {
                let $conn = &mut **tx;
                $body
            }
        }
    };
}
