//! The site's database: [`ucms_db`] with the host's schema (`host/migrations/{sqlite,postgres}`).

use anyhow::Context;
use sqlx::migrate::Migrator;
pub use ucms_db::{Db, now_ms, on_db, redact, rfc3339};

static SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

/// Connects to `url` and brings the schema up to date.
pub async fn open(url: &str, max_connections: Option<u32>) -> anyhow::Result<Db> {
    let db = Db::connect(url, max_connections)
        .await
        .with_context(|| format!("cannot open the database {}", redact(url)))?;
    migrate(&db).await?;
    Ok(db)
}

/// Brings the schema of an open database up to date (idempotent).
pub async fn migrate(db: &Db) -> anyhow::Result<()> {
    db.migrate(&SQLITE, &POSTGRES).await
}
