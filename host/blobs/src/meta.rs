//! The metadata rows (`blobs`, `blob_usage`): one SQL text for SQLite and PostgreSQL.
//!
//! Every change to a plugin's blobs first upserts its `blob_usage` row. On PostgreSQL that row lock
//! orders the plugin's writers (so the quota check and the replace are exact); on SQLite the single
//! writer connection already does. Taking it first in every transaction also fixes the lock order,
//! so a put and a delete of the same key cannot deadlock.

use ucms_db::{Db, on_db};

use crate::{BlobError, BlobInfo, Usage};

const LOCK_USAGE: &str = "INSERT INTO blob_usage (plugin, blobs, bytes) VALUES ($1, 0, 0) \
     ON CONFLICT (plugin) DO UPDATE SET blobs = blob_usage.blobs RETURNING blobs, bytes";
const SET_USAGE: &str = "UPDATE blob_usage SET blobs = $2, bytes = $3 WHERE plugin = $1";
const CURRENT: &str = "SELECT object, size, created_at FROM blobs WHERE plugin = $1 AND key = $2";
const UPSERT: &str = "INSERT INTO blobs \
     (plugin, key, object, size, content_type, sha256, created_at, updated_at) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
     ON CONFLICT (plugin, key) DO UPDATE SET object = excluded.object, size = excluded.size, \
     content_type = excluded.content_type, sha256 = excluded.sha256, updated_at = excluded.updated_at";
const HEAD: &str = "SELECT key, size, content_type, sha256, created_at, updated_at, object \
     FROM blobs WHERE plugin = $1 AND key = $2";
const DELETE: &str = "DELETE FROM blobs WHERE plugin = $1 AND key = $2 RETURNING object, size";
const LIST_FROM: &str = "SELECT key, size, content_type, sha256, created_at, updated_at, object \
     FROM blobs WHERE plugin = $1 AND key >= $2 ORDER BY key LIMIT $3";
const LIST_AFTER: &str = "SELECT key, size, content_type, sha256, created_at, updated_at, object \
     FROM blobs WHERE plugin = $1 AND key > $2 ORDER BY key LIMIT $3";
const USAGE: &str = "SELECT blobs, bytes FROM blob_usage WHERE plugin = $1";
const SIZE: &str = "SELECT size FROM blobs WHERE plugin = $1 AND key = $2";
const REFERENCED: &str = "SELECT 1 FROM blobs WHERE object = $1";
const DROP_BLOBS: &str = "DELETE FROM blobs WHERE plugin = $1";
const DROP_USAGE: &str = "DELETE FROM blob_usage WHERE plugin = $1";

type InfoRow = (String, i64, String, String, i64, i64, String);

fn unsigned(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn info(
    (key, size, content_type, sha256, created_at, updated_at, object): InfoRow,
) -> (BlobInfo, String) {
    let info = BlobInfo {
        key,
        size: unsigned(size),
        content_type,
        sha256,
        created_at_ms: created_at,
        updated_at_ms: updated_at,
    };
    (info, object)
}

/// A finished object waiting for its metadata row.
pub(crate) struct NewBlob {
    pub plugin: String,
    pub key: String,
    pub object: String,
    pub size: u64,
    pub content_type: String,
    pub sha256: String,
    pub quota: Option<u64>,
}

/// Inserts or replaces the row for `blob` and updates the plugin's usage, in one transaction.
/// Returns the stored info and the object the row pointed at before, if it replaced one.
pub(crate) async fn commit_put(
    db: &Db,
    blob: &NewBlob,
    now: i64,
) -> Result<(BlobInfo, Option<String>), BlobError> {
    let outcome: Result<Result<_, BlobError>, sqlx::Error> = on_db!(db, write, |pool| {
        async {
            let mut tx = pool.begin().await?;
            let (blobs, bytes): (i64, i64) = sqlx::query_as(LOCK_USAGE)
                .bind(&blob.plugin)
                .fetch_one(&mut *tx)
                .await?;
            let current: Option<(String, i64, i64)> = sqlx::query_as(CURRENT)
                .bind(&blob.plugin)
                .bind(&blob.key)
                .fetch_optional(&mut *tx)
                .await?;
            let (old_object, old_size, created_at) = match current {
                Some((object, size, created)) => (Some(object), unsigned(size), created),
                None => (None, 0, now),
            };
            let new_bytes = unsigned(bytes).saturating_sub(old_size) + blob.size;
            let new_blobs = unsigned(blobs) + u64::from(old_object.is_none());
            if let Some(quota) = blob.quota
                && new_bytes > quota
                && blob.size > old_size
            {
                tx.rollback().await?;
                return Ok(Err(quota_exceeded(&blob.plugin, new_bytes, quota)));
            }
            sqlx::query(UPSERT)
                .bind(&blob.plugin)
                .bind(&blob.key)
                .bind(&blob.object)
                .bind(signed(blob.size))
                .bind(&blob.content_type)
                .bind(&blob.sha256)
                .bind(created_at)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            sqlx::query(SET_USAGE)
                .bind(&blob.plugin)
                .bind(signed(new_blobs))
                .bind(signed(new_bytes))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            let info = BlobInfo {
                key: blob.key.clone(),
                size: blob.size,
                content_type: blob.content_type.clone(),
                sha256: blob.sha256.clone(),
                created_at_ms: created_at,
                updated_at_ms: now,
            };
            Ok(Ok((info, old_object)))
        }
        .await
    });
    outcome.map_err(BlobError::database)?
}

pub(crate) fn quota_exceeded(plugin: &str, total: u64, quota: u64) -> BlobError {
    BlobError::QuotaExceeded(format!(
        "storing this blob would bring plugin '{plugin}' to {total} bytes, over its blob quota of \
         {quota} bytes: delete blobs it no longer needs, or ask the operator to raise the quota"
    ))
}

/// Deletes the row; returns the object it pointed at.
pub(crate) async fn delete(db: &Db, plugin: &str, key: &str) -> Result<Option<String>, BlobError> {
    let outcome: Result<_, sqlx::Error> = on_db!(db, write, |pool| {
        async {
            let mut tx = pool.begin().await?;
            let (blobs, bytes): (i64, i64) = sqlx::query_as(LOCK_USAGE)
                .bind(plugin)
                .fetch_one(&mut *tx)
                .await?;
            let deleted: Option<(String, i64)> = sqlx::query_as(DELETE)
                .bind(plugin)
                .bind(key)
                .fetch_optional(&mut *tx)
                .await?;
            let Some((object, size)) = deleted else {
                tx.rollback().await?;
                return Ok(None);
            };
            sqlx::query(SET_USAGE)
                .bind(plugin)
                .bind((blobs - 1).max(0))
                .bind((bytes - size).max(0))
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(Some(object))
        }
        .await
    });
    outcome.map_err(BlobError::database)
}

pub(crate) async fn head(
    db: &Db,
    plugin: &str,
    key: &str,
) -> Result<Option<(BlobInfo, String)>, BlobError> {
    let row: Option<InfoRow> = on_db!(db, read, |pool| {
        sqlx::query_as(HEAD)
            .bind(plugin)
            .bind(key)
            .fetch_optional(pool)
            .await
    })
    .map_err(BlobError::database)?;
    Ok(row.map(info))
}

/// Up to `limit` rows of `plugin` from `start` (inclusive unless `after`), in key order.
pub(crate) async fn list(
    db: &Db,
    plugin: &str,
    start: &str,
    after: bool,
    limit: u32,
) -> Result<Vec<BlobInfo>, BlobError> {
    let sql = if after { LIST_AFTER } else { LIST_FROM };
    let rows: Vec<InfoRow> = on_db!(db, read, |pool| {
        sqlx::query_as(sql)
            .bind(plugin)
            .bind(start)
            .bind(i64::from(limit))
            .fetch_all(pool)
            .await
    })
    .map_err(BlobError::database)?;
    Ok(rows.into_iter().map(|row| info(row).0).collect())
}

pub(crate) async fn usage(db: &Db, plugin: &str) -> Result<Usage, BlobError> {
    let row: Option<(i64, i64)> = on_db!(db, read, |pool| {
        sqlx::query_as(USAGE)
            .bind(plugin)
            .fetch_optional(pool)
            .await
    })
    .map_err(BlobError::database)?;
    Ok(row
        .map(|(blobs, bytes)| Usage {
            blobs: unsigned(blobs),
            bytes: unsigned(bytes),
        })
        .unwrap_or_default())
}

/// The plugin's bytes in use, minus what `key` holds now (a replacement frees it): the base for
/// the early quota check while a blob streams in.
pub(crate) async fn quota_base(db: &Db, plugin: &str, key: &str) -> Result<(u64, u64), BlobError> {
    let usage = usage(db, plugin).await?;
    let size: Option<(i64,)> = on_db!(db, read, |pool| {
        sqlx::query_as(SIZE)
            .bind(plugin)
            .bind(key)
            .fetch_optional(pool)
            .await
    })
    .map_err(BlobError::database)?;
    let existing = size.map(|(s,)| unsigned(s)).unwrap_or(0);
    Ok((usage.bytes.saturating_sub(existing), existing))
}

pub(crate) async fn is_referenced(db: &Db, object: &str) -> Result<bool, BlobError> {
    let row: Option<(i32,)> = on_db!(db, write, |pool| {
        sqlx::query_as(REFERENCED)
            .bind(object)
            .fetch_optional(pool)
            .await
    })
    .map_err(BlobError::database)?;
    Ok(row.is_some())
}

pub(crate) async fn drop_plugin(db: &Db, plugin: &str) -> Result<(), BlobError> {
    let outcome: Result<(), sqlx::Error> = on_db!(db, write, |pool| {
        async {
            let mut tx = pool.begin().await?;
            sqlx::query(DROP_BLOBS)
                .bind(plugin)
                .execute(&mut *tx)
                .await?;
            sqlx::query(DROP_USAGE)
                .bind(plugin)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await
    });
    outcome.map_err(BlobError::database)
}
