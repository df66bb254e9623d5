//! The install journal: every install, upgrade, rollback and removal records the step it has
//! reached, so that a crash at any point — the process killed outright — is finished or undone
//! at the next start ([`recover`]).
//!
//! The one step that changes what the site serves, `switched`, is written in the same database
//! transaction that points the plugin at its new version. Before it, the journal is undone
//! (staged files deleted, the previous version untouched); after it, finished (old files cleaned
//! up). A partial unique index allows one unfinished operation per plugin across every process
//! sharing the database, so two installs can't race.

use std::path::Path;

use crate::config::DataDir;
use crate::db::{Db, now_ms, on_db};

use super::PluginError;

/// How far an operation has come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Started,
    Downloaded,
    Verified,
    Staged,
    Compiled,
    HookRan,
    Switched,
    Done,
    Failed,
    Undone,
}

impl Step {
    pub const ALL: [Step; 10] = [
        Self::Started,
        Self::Downloaded,
        Self::Verified,
        Self::Staged,
        Self::Compiled,
        Self::HookRan,
        Self::Switched,
        Self::Done,
        Self::Failed,
        Self::Undone,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Downloaded => "downloaded",
            Self::Verified => "verified",
            Self::Staged => "staged",
            Self::Compiled => "compiled",
            Self::HookRan => "hook-ran",
            Self::Switched => "switched",
            Self::Done => "done",
            Self::Failed => "failed",
            Self::Undone => "undone",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|step| step.as_str() == s)
    }
}

/// What an operation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Install,
    Upgrade,
    Rollback,
    Remove,
}

impl Operation {
    pub fn parse(s: &str) -> Self {
        match s {
            "upgrade" => Self::Upgrade,
            "rollback" => Self::Rollback,
            "remove" => Self::Remove,
            _ => Self::Install,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Install => "install",
            Self::Upgrade => "upgrade",
            Self::Rollback => "rollback",
            Self::Remove => "remove",
        }
    }
}

/// An unfinished operation.
#[derive(Debug, Clone)]
pub struct Journal {
    pub id: String,
    pub plugin: String,
    pub operation: Operation,
    pub to_version: String,
    db: Db,
}

/// `host:pid`, to tell whether the process that left a journal open is still alive.
fn owner() -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("{host}:{}", std::process::id())
}

fn owner_alive(owner: &str) -> bool {
    let Some((host, pid)) = owner.rsplit_once(':') else {
        return true;
    };
    let this_host = owner_host();
    if host != this_host {
        // Another machine: assume alive (its own start-up recovers it).
        return true;
    }
    pid.parse::<u32>()
        .map(|pid| pid == std::process::id() || Path::new(&format!("/proc/{pid}")).exists())
        .unwrap_or(true)
}

fn owner_host() -> String {
    owner()
        .rsplit_once(':')
        .map(|(h, _)| h.to_string())
        .unwrap_or_default()
}

/// Test hook: with `UCMS_CRASH_AT=<step>`, the process kills itself with SIGKILL right after
/// recording that step — no destructors, no cleanup, exactly like a power cut or `kill -9`.
fn crash_point(step: Step) {
    if std::env::var("UCMS_CRASH_AT").is_ok_and(|at| at == step.as_str()) {
        eprintln!("UCMS_CRASH_AT={}: killing this process", step.as_str());
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &std::process::id().to_string()])
            .status();
        if killed.is_err() {
            // No kill(1) here: abort is the nearest thing (no destructors run either).
            std::process::abort();
        }
        // The signal arrives asynchronously; never go on.
        loop {
            std::thread::sleep(std::time::Duration::from_secs(1));
        }
    }
}

impl Journal {
    /// Opens a journal for an operation on `plugin`, or says which one is already running. A
    /// journal left open by a process that died on this machine is recovered first.
    pub async fn begin(
        db: &Db,
        data: &DataDir,
        plugin: &str,
        operation: Operation,
        from_version: Option<&str>,
        to_version: &str,
    ) -> Result<Self, PluginError> {
        for attempt in 0..2 {
            let id = uuid::Uuid::now_v7().simple().to_string();
            let now = now_ms();
            let inserted = on_db!(db, write, |pool| {
                sqlx::query(
                    "INSERT INTO install_journal (id, plugin, operation, from_version, to_version, step, owner, started_at, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, 'started', $6, $7, $7)",
                )
                .bind(&id)
                .bind(plugin)
                .bind(operation.as_str())
                .bind(from_version)
                .bind(to_version)
                .bind(owner())
                .bind(now)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
            });
            match inserted {
                Ok(_) => {
                    let journal = Self {
                        id,
                        plugin: plugin.to_string(),
                        operation,
                        to_version: to_version.to_string(),
                        db: db.clone(),
                    };
                    crash_point(Step::Started);
                    return Ok(journal);
                }
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    let open = open_journals(db)
                        .await?
                        .into_iter()
                        .find(|j| j.plugin == plugin);
                    match open {
                        Some(other) if attempt == 0 && !owner_alive(&other.owner) => {
                            tracing::warn!(plugin, journal = %other.id, "recovering an operation left open by a process that died");
                            recover_one(db, data, &other).await?;
                        }
                        Some(other) => {
                            return Err(PluginError::InProgress {
                                id: plugin.to_string(),
                                operation: Operation::parse(&other.operation),
                                owner: other.owner,
                            });
                        }
                        None => continue,
                    }
                }
                Err(e) => return Err(PluginError::Storage(e.into())),
            }
        }
        Err(PluginError::Storage(anyhow::anyhow!(
            "cannot open an install journal for {plugin}"
        )))
    }

    /// Records that the operation reached `step`.
    pub async fn step(&self, step: Step) -> Result<(), PluginError> {
        on_db!(&self.db, write, |pool| {
            sqlx::query("UPDATE install_journal SET step = $1, updated_at = $2 WHERE id = $3")
                .bind(step.as_str())
                .bind(now_ms())
                .bind(&self.id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        })
        .map_err(|e| PluginError::Storage(e.into()))?;
        crash_point(step);
        Ok(())
    }

    /// Ends a failed operation, keeping its error for the record.
    pub async fn fail(&self, error: &str) {
        let result = on_db!(&self.db, write, |pool| {
            sqlx::query("UPDATE install_journal SET step = 'failed', error = $1, updated_at = $2 WHERE id = $3")
                .bind(error)
                .bind(now_ms())
                .bind(&self.id)
                .execute(pool)
                .await
                .map(|r| r.rows_affected())
        });
        if let Err(e) = result {
            tracing::error!(journal = %self.id, error = %e, "cannot record a failed install");
        }
    }

    /// The `switched` step, for the switch transaction to write itself.
    pub fn switched_sql() -> &'static str {
        "UPDATE install_journal SET step = 'switched', updated_at = $1 WHERE id = $2"
    }

    /// Call after the switch transaction committed.
    pub fn after_switch(&self) {
        crash_point(Step::Switched);
    }

    /// The folder a journal stages files in.
    pub fn staging_dir(&self, data: &DataDir) -> std::path::PathBuf {
        staging_dir(data, &self.plugin, &self.id)
    }
}

pub fn staging_dir(data: &DataDir, plugin: &str, journal: &str) -> std::path::PathBuf {
    data.root()
        .join("plugins")
        .join(plugin)
        .join(format!(".staging-{journal}"))
}

/// An unfinished journal as stored.
#[derive(Debug, Clone)]
pub struct OpenJournal {
    pub id: String,
    pub plugin: String,
    pub operation: String,
    pub to_version: String,
    pub step: Step,
    pub owner: String,
}

pub async fn open_journals(db: &Db) -> Result<Vec<OpenJournal>, PluginError> {
    let rows: Vec<(String, String, String, String, String, String)> = on_db!(db, read, |pool| {
        sqlx::query_as(
            "SELECT id, plugin, operation, to_version, step, owner FROM install_journal \
             WHERE step NOT IN ('done', 'failed', 'undone') ORDER BY started_at",
        )
        .fetch_all(pool)
        .await
    })
    .map_err(|e| PluginError::Storage(e.into()))?;
    Ok(rows
        .into_iter()
        .map(
            |(id, plugin, operation, to_version, step, owner)| OpenJournal {
                step: Step::parse(&step).unwrap_or(Step::Started),
                id,
                plugin,
                operation,
                to_version,
                owner,
            },
        )
        .collect())
}

/// Finishes or undoes every journal left open by a process that is gone. Runs at start, before
/// plugins load.
pub async fn recover(db: &Db, data: &DataDir) -> Result<usize, PluginError> {
    let mut recovered = 0;
    for journal in open_journals(db).await? {
        if owner_alive(&journal.owner) && journal.owner != owner() {
            continue;
        }
        recover_one(db, data, &journal).await?;
        recovered += 1;
    }
    Ok(recovered)
}

async fn recover_one(db: &Db, data: &DataDir, journal: &OpenJournal) -> Result<(), PluginError> {
    let (current, previous) = versions_on_record(db, &journal.plugin).await?;
    let _ = std::fs::remove_dir_all(staging_dir(data, &journal.plugin, &journal.id));
    let outcome = if journal.step == Step::Switched {
        // The switch committed: finish what came after it.
        match journal.operation.as_str() {
            "remove" => {
                let _ = std::fs::remove_dir_all(data.root().join("plugins").join(&journal.plugin));
            }
            _ => prune_versions(
                data,
                &journal.plugin,
                current.as_deref(),
                previous.as_deref(),
            ),
        }
        Step::Done
    } else {
        // The switch never happened: the site still runs what is on record; drop the rest.
        let referenced =
            [current.as_deref(), previous.as_deref()].contains(&Some(journal.to_version.as_str()));
        if !referenced && journal.operation != "remove" && journal.operation != "rollback" {
            let _ = std::fs::remove_dir_all(data.plugin_dir(&journal.plugin, &journal.to_version));
        }
        Step::Undone
    };
    on_db!(db, write, |pool| {
        sqlx::query("UPDATE install_journal SET step = $1, error = COALESCE(error, 'interrupted; recovered at start'), updated_at = $2 WHERE id = $3")
            .bind(outcome.as_str())
            .bind(now_ms())
            .bind(&journal.id)
            .execute(pool)
            .await
            .map(|r| r.rows_affected())
    })
    .map_err(|e| PluginError::Storage(e.into()))?;
    tracing::warn!(
        plugin = %journal.plugin,
        operation = %journal.operation,
        reached = journal.step.as_str(),
        outcome = outcome.as_str(),
        "recovered an interrupted plugin operation"
    );
    Ok(())
}

/// The plugin's current and previous versions as recorded.
pub async fn versions_on_record(
    db: &Db,
    plugin: &str,
) -> Result<(Option<String>, Option<String>), PluginError> {
    let row: Option<(String, Option<String>)> = on_db!(db, read, |pool| {
        sqlx::query_as("SELECT version, previous_version FROM plugins WHERE id = $1")
            .bind(plugin)
            .fetch_optional(pool)
            .await
    })
    .map_err(|e| PluginError::Storage(e.into()))?;
    Ok(match row {
        Some((current, previous)) => (Some(current), previous),
        None => (None, None),
    })
}

/// Deletes every version folder of `plugin` except the current and the previous one (kept for
/// rollback), and any stray staging folder.
pub fn prune_versions(data: &DataDir, plugin: &str, current: Option<&str>, previous: Option<&str>) {
    let dir = data.root().join("plugins").join(plugin);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if Some(name.as_str()) != current && Some(name.as_str()) != previous {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
