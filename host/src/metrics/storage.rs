//! `ucms_plugin_storage`: what each plugin stores, read from the host's tables.
//!
//! Reading it on every scrape would put aggregate queries on the scrape path; `ucms serve`
//! refreshes it every 15 seconds instead (`Site::start_background`).

use super::Metrics;
use crate::db::{Db, on_db};

/// Reads documents and their bytes (`doc_usage`, kept by the document store), blobs and their
/// bytes, and kv keys per plugin, into the gauges.
pub async fn refresh(db: &Db, metrics: &Metrics) -> Result<(), sqlx::Error> {
    let documents: Vec<(String, i64, i64)> = on_db!(db, read, |pool| {
        sqlx::query_as("SELECT plugin, documents, bytes FROM doc_usage")
            .fetch_all(pool)
            .await
    })?;
    let blobs: Vec<(String, i64, i64)> = on_db!(db, read, |pool| {
        sqlx::query_as(
            "SELECT plugin, COUNT(*), CAST(COALESCE(SUM(size), 0) AS BIGINT) FROM blobs GROUP BY plugin",
        )
        .fetch_all(pool)
        .await
    })?;
    let kv: Vec<(String, i64)> = on_db!(db, read, |pool| {
        sqlx::query_as("SELECT plugin, COUNT(*) FROM kv GROUP BY plugin")
            .fetch_all(pool)
            .await
    })?;
    for (plugin, count, bytes) in documents {
        metrics.storage(&plugin, "documents", count);
        metrics.storage(&plugin, "document_bytes", bytes);
    }
    for (plugin, count, bytes) in blobs {
        metrics.storage(&plugin, "blobs", count);
        metrics.storage(&plugin, "blob_bytes", bytes);
    }
    for (plugin, count) in kv {
        metrics.storage(&plugin, "kv_keys", count);
    }
    Ok(())
}
