//! The scheduler: runs the `[[schedules]]` of installed plugins, each tick once across all nodes.
//!
//! The `schedules` table holds one row per (plugin, name) with its cron expression and `next_at`,
//! kept in step with the installed manifests by [`Scheduler::reconcile`] (new schedules start at
//! their next occurrence; a changed expression starts over; removed ones are deleted).
//! [`Scheduler::run_due`] finds rows whose `next_at` has passed and claims each tick with a
//! compare-and-set (`UPDATE … SET next_at = $new WHERE … AND next_at = $old`): only the node whose
//! update changed the row runs the tick, so every tick runs once however many nodes share the
//! database. The new `next_at` is the first occurrence after *now*, so a site that was down runs
//! a missed tick once at start, never a burst of catch-up ticks. A tick calls the plugin's
//! `scheduler.tick(name, scheduled-at-ms)` as the system principal with the plugin's limits;
//! disabled (or unloadable) plugins' ticks are skipped and recorded as such. Expressions are
//! 5 fields, or 6 with seconds first, in UTC.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::db::{Db, now_ms, on_db};
use crate::metrics::Metrics;
use crate::plugins::{PluginManager, Slot};

/// How often the loop looks for due ticks.
pub const POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How often the table is reconciled with the installed plugins even when the snapshot is the same.
const RECONCILE_EVERY: Duration = Duration::from_secs(5);

/// The first occurrence of `cron` strictly after `after_ms` (Unix ms, UTC).
pub fn next_after(cron: &str, after_ms: i64) -> anyhow::Result<i64> {
    let cron: croner::Cron = cron
        .parse()
        .with_context(|| format!("'{cron}' is not a cron expression"))?;
    let start = chrono::DateTime::<chrono::Utc>::from_timestamp_millis(after_ms)
        .context("time out of range")?;
    let next = cron
        .find_next_occurrence(&start, false)
        .with_context(|| format!("'{cron}' has no occurrence after {start}"))?;
    Ok(next.timestamp_millis())
}

/// A schedule row as stored.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize)]
pub struct ScheduleRow {
    pub plugin: String,
    pub name: String,
    pub cron: String,
    pub next_at: i64,
    pub last_run_at: Option<i64>,
    pub last_status: Option<String>,
    pub last_error: Option<String>,
}

/// What happened to a tick this node claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickRun {
    pub plugin: String,
    pub name: String,
    pub scheduled_at: i64,
    /// `ok`, `error` or `skipped`.
    pub status: &'static str,
}

/// Runs the schedules of one node.
pub struct Scheduler {
    plugins: Arc<PluginManager>,
    db: Db,
    metrics: Metrics,
}

impl Scheduler {
    pub fn new(plugins: Arc<PluginManager>, db: Db, metrics: Metrics) -> Self {
        Self {
            plugins,
            db,
            metrics,
        }
    }

    /// Every schedule row, by plugin and name.
    pub async fn rows(&self) -> anyhow::Result<Vec<ScheduleRow>> {
        Ok(on_db!(&self.db, read, |pool| {
            sqlx::query_as::<_, ScheduleRow>(
                "SELECT plugin, name, cron, next_at, last_run_at, last_status, last_error \
                 FROM schedules ORDER BY plugin, name",
            )
            .fetch_all(pool)
            .await
        })?)
    }

    /// Brings the table in step with the installed plugins' `[[schedules]]`. Plugins whose
    /// loaded version differs from the stored one (another node just changed them) are left for
    /// the next round.
    pub async fn reconcile(&self) -> anyhow::Result<()> {
        let snapshot = self.plugins.snapshot();
        let stored: BTreeMap<String, String> = self
            .plugins
            .stored_versions()
            .await
            .context("cannot read the installed plugins")?;
        let rows = self.rows().await?;
        let now = now_ms();
        let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
        for (id, slot) in snapshot.iter() {
            if stored.get(id) != Some(&slot.manifest.version.to_string()) {
                // Keep whatever rows it has until this node has loaded the stored version.
                for row in rows.iter().filter(|r| &r.plugin == id) {
                    wanted.insert((row.plugin.clone(), row.name.clone()));
                }
                continue;
            }
            for schedule in &slot.manifest.schedules {
                wanted.insert((id.clone(), schedule.name.clone()));
                let existing = rows
                    .iter()
                    .find(|r| &r.plugin == id && r.name == schedule.name);
                match existing {
                    Some(row) if row.cron == schedule.cron => {}
                    Some(row) => {
                        let next = next_after(&schedule.cron, now)?;
                        on_db!(&self.db, write, |pool| {
                            sqlx::query(
                                "UPDATE schedules SET cron = $1, next_at = $2, updated_at = $3 \
                                 WHERE plugin = $4 AND name = $5 AND cron = $6",
                            )
                            .bind(&schedule.cron)
                            .bind(next)
                            .bind(now)
                            .bind(id)
                            .bind(&schedule.name)
                            .bind(&row.cron)
                            .execute(pool)
                            .await
                            .map(|r| r.rows_affected())
                        })?;
                    }
                    None => {
                        let next = next_after(&schedule.cron, now)?;
                        on_db!(&self.db, write, |pool| {
                            sqlx::query(
                                "INSERT INTO schedules (plugin, name, cron, next_at, updated_at) \
                                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (plugin, name) DO NOTHING",
                            )
                            .bind(id)
                            .bind(&schedule.name)
                            .bind(&schedule.cron)
                            .bind(next)
                            .bind(now)
                            .execute(pool)
                            .await
                            .map(|r| r.rows_affected())
                        })?;
                    }
                }
            }
        }
        for row in &rows {
            let key = (row.plugin.clone(), row.name.clone());
            if wanted.contains(&key) {
                continue;
            }
            // Not declared by the loaded version, or the plugin is gone from the database too.
            if snapshot.contains_key(&row.plugin) || !stored.contains_key(&row.plugin) {
                on_db!(&self.db, write, |pool| {
                    sqlx::query("DELETE FROM schedules WHERE plugin = $1 AND name = $2")
                        .bind(&row.plugin)
                        .bind(&row.name)
                        .execute(pool)
                        .await
                        .map(|r| r.rows_affected())
                })?;
            }
        }
        Ok(())
    }

    /// Claims and runs every tick due at `now`; returns what this node ran. Ticks of one pass run
    /// concurrently, and the pass ends when they have.
    pub async fn run_due(&self) -> anyhow::Result<Vec<TickRun>> {
        let now = now_ms();
        let due: Vec<ScheduleRow> = on_db!(&self.db, read, |pool| {
            sqlx::query_as::<_, ScheduleRow>(
                "SELECT plugin, name, cron, next_at, last_run_at, last_status, last_error \
                 FROM schedules WHERE next_at <= $1 ORDER BY next_at LIMIT 100",
            )
            .bind(now)
            .fetch_all(pool)
            .await
        })?;
        let mut claimed = Vec::new();
        for row in due {
            let next = match next_after(&row.cron, now) {
                Ok(next) => next,
                Err(e) => {
                    tracing::warn!(plugin = %row.plugin, schedule = %row.name, error = %e, "schedule can't be computed; skipped");
                    continue;
                }
            };
            let won = on_db!(&self.db, write, |pool| {
                sqlx::query(
                    "UPDATE schedules SET next_at = $1, updated_at = $2 \
                     WHERE plugin = $3 AND name = $4 AND next_at = $5",
                )
                .bind(next)
                .bind(now)
                .bind(&row.plugin)
                .bind(&row.name)
                .bind(row.next_at)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            })? == 1;
            if won {
                claimed.push(row);
            }
        }
        let runs = claimed.into_iter().map(|row| self.tick(row));
        Ok(futures::future::join_all(runs).await)
    }

    /// Runs one claimed tick and records how it went.
    async fn tick(&self, row: ScheduleRow) -> TickRun {
        let slot: Option<Arc<Slot>> = self.plugins.get(&row.plugin);
        let runnable = slot.as_ref().and_then(|s| s.runnable().cloned());
        let scheduled_at = row.next_at;
        let (status, error) = match runnable {
            None => (
                "skipped",
                Some("the plugin is disabled or not loaded".to_string()),
            ),
            Some(plugin) => {
                match plugin
                    .tick(&row.name, u64::try_from(scheduled_at).unwrap_or(0))
                    .await
                {
                    Ok(Ok(())) => ("ok", None),
                    Ok(Err(message)) => ("error", Some(message)),
                    Err(e) => ("error", Some(format!("{}: {e}", e.code()))),
                }
            }
        };
        self.metrics.schedule_tick(&row.plugin, &row.name, status);
        match &error {
            Some(error) if status == "error" => {
                tracing::warn!(plugin = %row.plugin, schedule = %row.name, scheduled_at, error = %error, "schedule tick failed")
            }
            _ => {
                tracing::info!(plugin = %row.plugin, schedule = %row.name, scheduled_at, status, "schedule tick")
            }
        }
        let recorded = on_db!(&self.db, write, |pool| {
            sqlx::query(
                "UPDATE schedules SET last_run_at = $1, last_status = $2, last_error = $3, updated_at = $1 \
                 WHERE plugin = $4 AND name = $5",
            )
            .bind(now_ms())
            .bind(status)
            .bind(&error)
            .bind(&row.plugin)
            .bind(&row.name)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
        });
        if let Err(e) = recorded {
            tracing::warn!(plugin = %row.plugin, schedule = %row.name, error = %e, "cannot record a schedule tick");
        }
        TickRun {
            plugin: row.plugin,
            name: row.name,
            scheduled_at,
            status,
        }
    }

    /// The loop: reconcile when the installed plugins change (and every few seconds), then run
    /// what is due, every [`POLL_INTERVAL`], until `stop`.
    pub async fn run(self, stop: CancellationToken) {
        let mut seen: Option<Arc<BTreeMap<String, Arc<Slot>>>> = None;
        let mut reconciled_at = std::time::Instant::now();
        loop {
            let snapshot = self.plugins.snapshot();
            let changed = seen.as_ref().is_none_or(|s| !Arc::ptr_eq(s, &snapshot));
            if changed || reconciled_at.elapsed() >= RECONCILE_EVERY {
                match self.reconcile().await {
                    Ok(()) => {
                        seen = Some(snapshot);
                        reconciled_at = std::time::Instant::now();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot bring the schedules in step with the plugins")
                    }
                }
            }
            if let Err(e) = self.run_due().await {
                tracing::warn!(error = %e, "cannot run due schedules");
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(POLL_INTERVAL) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::next_after;

    #[test]
    fn next_occurrences_in_utc_with_optional_seconds() {
        // 2026-01-01T00:00:00Z
        let base = 1_767_225_600_000;
        assert_eq!(next_after("* * * * * *", base).unwrap(), base + 1000);
        assert_eq!(next_after("*/5 * * * *", base).unwrap(), base + 5 * 60_000);
        assert_eq!(next_after("30 0 0 * * *", base + 1).unwrap(), base + 30_000);
        assert!(next_after("not cron", base).is_err());
    }
}
