//! Where kv data lives: a small trait and its SQLite and PostgreSQL implementations.

use async_trait::async_trait;
use sqlx::{PgPool, SqlitePool};

use crate::db::{Db, now_ms};

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed; its message is for the log, never for the guest.
    #[error("kv storage failed: {0}")]
    Database(#[from] sqlx::Error),
    /// The write is not allowed; the message is for the guest.
    #[error("{0}")]
    Refused(String),
}

/// Where the first key of a listing starts.
#[derive(Debug, Clone, Copy)]
pub enum Start<'a> {
    /// At this key or after it.
    AtOrAfter(&'a str),
    /// Strictly after this key (a cursor).
    After(&'a str),
}

/// Storage for every plugin's key-value data. Implementations scope every operation by `plugin`.
#[async_trait]
pub trait KvBackend: Send + Sync + 'static {
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn set(&self, plugin: &str, key: &str, value: &[u8]) -> Result<(), StoreError>;
    async fn delete(&self, plugin: &str, key: &str) -> Result<bool, StoreError>;
    /// Up to `limit` keys from `start`, in ascending byte order.
    async fn keys(
        &self,
        plugin: &str,
        start: Start<'_>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError>;
    /// Atomically: if the value equals `expected` (`None`: absent), make it `new` (`None`: delete).
    async fn compare_and_swap(
        &self,
        plugin: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError>;
}

/// The backend for a database.
pub fn for_db(db: &Db) -> std::sync::Arc<dyn KvBackend> {
    match db {
        Db::Sqlite { read, write } => std::sync::Arc::new(SqliteKv {
            read: read.clone(),
            write: write.clone(),
        }),
        Db::Postgres(pool) => std::sync::Arc::new(PostgresKv { pool: pool.clone() }),
    }
}

// Both databases accept the same statements; only the pools and the column types differ.
const GET: &str = "SELECT value FROM kv WHERE plugin = $1 AND key = $2";
pub(crate) const SET: &str = "INSERT INTO kv (plugin, key, value, updated_at) VALUES ($1, $2, $3, $4) \
                   ON CONFLICT (plugin, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at";
pub(crate) const DELETE: &str = "DELETE FROM kv WHERE plugin = $1 AND key = $2";
const KEYS_FROM: &str = "SELECT key FROM kv WHERE plugin = $1 AND key >= $2 ORDER BY key LIMIT $3";
const KEYS_AFTER: &str = "SELECT key FROM kv WHERE plugin = $1 AND key > $2 ORDER BY key LIMIT $3";
const INSERT_IF_ABSENT: &str = "INSERT INTO kv (plugin, key, value, updated_at) VALUES ($1, $2, $3, $4) \
                                ON CONFLICT (plugin, key) DO NOTHING";
const UPDATE_IF: &str =
    "UPDATE kv SET value = $3, updated_at = $4 WHERE plugin = $1 AND key = $2 AND value = $5";
const DELETE_IF: &str = "DELETE FROM kv WHERE plugin = $1 AND key = $2 AND value = $3";
const EXISTS: &str = "SELECT 1 FROM kv WHERE plugin = $1 AND key = $2";

fn keys_query(start: Start<'_>) -> (&'static str, &str) {
    match start {
        Start::AtOrAfter(k) => (KEYS_FROM, k),
        Start::After(k) => (KEYS_AFTER, k),
    }
}

#[derive(Debug, Clone)]
pub struct SqliteKv {
    read: SqlitePool,
    write: SqlitePool,
}

#[derive(Debug, Clone)]
pub struct PostgresKv {
    pool: PgPool,
}

// sqlx has no database-generic `rows_affected`, so the one implementation is written once and
// stamped out for each pool type. `$read` serves reads, `$write` every write (for SQLite, the
// single writer connection, which makes each statement below atomic; for PostgreSQL, row locks
// and the primary key do, including two racing inserts of which one does nothing).
macro_rules! sql_kv_backend {
    ($ty:ty, read: $read:ident, write: $write:ident) => {
        #[async_trait]
        impl KvBackend for $ty {
            async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
                Ok(sqlx::query_scalar(GET)
                    .bind(plugin)
                    .bind(key)
                    .fetch_optional(&self.$read)
                    .await?)
            }

            async fn set(&self, plugin: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
                sqlx::query(SET)
                    .bind(plugin)
                    .bind(key)
                    .bind(value)
                    .bind(now_ms())
                    .execute(&self.$write)
                    .await?;
                Ok(())
            }

            async fn delete(&self, plugin: &str, key: &str) -> Result<bool, StoreError> {
                let done = sqlx::query(DELETE)
                    .bind(plugin)
                    .bind(key)
                    .execute(&self.$write)
                    .await?;
                Ok(done.rows_affected() > 0)
            }

            async fn keys(
                &self,
                plugin: &str,
                start: Start<'_>,
                limit: u32,
            ) -> Result<Vec<String>, StoreError> {
                let (sql, from) = keys_query(start);
                Ok(sqlx::query_scalar(sql)
                    .bind(plugin)
                    .bind(from)
                    .bind(i64::from(limit))
                    .fetch_all(&self.$read)
                    .await?)
            }

            async fn compare_and_swap(
                &self,
                plugin: &str,
                key: &str,
                expected: Option<&[u8]>,
                new: Option<&[u8]>,
            ) -> Result<bool, StoreError> {
                let now = now_ms();
                let affected = match (expected, new) {
                    (None, Some(new)) => sqlx::query(INSERT_IF_ABSENT)
                        .bind(plugin)
                        .bind(key)
                        .bind(new)
                        .bind(now)
                        .execute(&self.$write)
                        .await?
                        .rows_affected(),
                    (Some(old), Some(new)) => sqlx::query(UPDATE_IF)
                        .bind(plugin)
                        .bind(key)
                        .bind(new)
                        .bind(now)
                        .bind(old)
                        .execute(&self.$write)
                        .await?
                        .rows_affected(),
                    (Some(old), None) => sqlx::query(DELETE_IF)
                        .bind(plugin)
                        .bind(key)
                        .bind(old)
                        .execute(&self.$write)
                        .await?
                        .rows_affected(),
                    (None, None) => {
                        let exists: Option<i32> = sqlx::query_scalar(EXISTS)
                            .bind(plugin)
                            .bind(key)
                            .fetch_optional(&self.$write)
                            .await?;
                        u64::from(exists.is_none())
                    }
                };
                Ok(affected == 1)
            }
        }
    };
}

sql_kv_backend!(SqliteKv, read: read, write: write);
sql_kv_backend!(PostgresKv, read: pool, write: pool);
