//! Several `ucms serve` nodes sharing one site: PostgreSQL holds the state, Redis pub/sub carries
//! the news.
//!
//! - **Plugin changes.** After every plugin change a process makes (install, upgrade, rollback,
//!   remove, enable, disable), the plugin manager calls [`plugin_changed`]: on PostgreSQL it copies
//!   the version's installed files into the `plugin_files` table (each node has its own data
//!   directory), and with `[cluster] redis-url` it publishes a message on
//!   `ucms:{namespace}:changes`. Every node's [`Cluster`] listener turns that message into an
//!   immediate `PluginManager::sync` (debounced); the one-second database poll of
//!   [`crate::Site::start_background`] stays as the fallback, and is all there is without Redis.
//!   Before syncing, a node writes the files of versions it lacks from `plugin_files`
//!   ([`fetch_missing_files`]).
//! - **Event wake-ups.** Publishing an event wakes this node's dispatcher and, through the same
//!   channel, the others', so a delivery doesn't wait for their poll.
//! - **Node ids** (`[cluster] node-id`, default `HOST:PID`) name the node in claims and logs.
//!
//! Redis is never the source of truth: a lost message only delays a change until the next poll.
//! A listener that loses Redis logs once and reconnects with backoff.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::{ClusterConfig, Config, DataDir};
use crate::db::{Db, on_db};

/// `HOST:PID`: the node id when `[cluster] node-id` is not set.
pub fn default_node_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into());
    format!("{host}:{}", std::process::id())
}

/// This node's id.
pub fn node_id(config: &ClusterConfig) -> String {
    config.node_id.clone().unwrap_or_else(default_node_id)
}

/// The pub/sub channel of the site: `ucms:{namespace}:changes`.
pub fn channel(config: &ClusterConfig) -> String {
    format!(
        "ucms:{}:changes",
        config.namespace.as_deref().unwrap_or("default")
    )
}

/// Who sent a message: the node id and a nonce of the process (a CLI next to a server shares its
/// node id, and its messages must still reach that server).
fn sender(node: &str) -> String {
    static NONCE: std::sync::LazyLock<String> =
        std::sync::LazyLock::new(|| uuid::Uuid::new_v4().simple().to_string()[..12].to_string());
    format!("{node}#{}", *NONCE)
}

/// What travels on the channel: `plugins SENDER` or `wake SENDER`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Message {
    Plugins(String),
    Wake(String),
}

impl Message {
    fn encode(&self) -> String {
        match self {
            Self::Plugins(node) => format!("plugins {node}"),
            Self::Wake(node) => format!("wake {node}"),
        }
    }

    fn decode(s: &str) -> Option<Self> {
        let (kind, node) = s.split_once(' ')?;
        match kind {
            "plugins" => Some(Self::Plugins(node.to_string())),
            "wake" => Some(Self::Wake(node.to_string())),
            _ => None,
        }
    }
}

/// Publishing connections by Redis URL, shared by every site of the process.
static PUBLISHERS: std::sync::LazyLock<
    tokio::sync::Mutex<HashMap<String, redis::aio::MultiplexedConnection>>,
> = std::sync::LazyLock::new(Default::default);

/// Set once a publish failed, so a Redis that stays down is logged once, not per change.
static PUBLISH_FAILED: AtomicBool = AtomicBool::new(false);

/// Longest a plugin change or a wake-up waits for Redis.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

async fn publish(url: &str, channel: &str, message: &Message) {
    let result = tokio::time::timeout(PUBLISH_TIMEOUT, async {
        let mut publishers = PUBLISHERS.lock().await;
        let mut conn = match publishers.get(url) {
            Some(conn) => conn.clone(),
            None => {
                let conn = redis::Client::open(url)?
                    .get_multiplexed_async_connection()
                    .await?;
                publishers.insert(url.to_string(), conn.clone());
                conn
            }
        };
        drop(publishers);
        let sent = redis::cmd("PUBLISH")
            .arg(channel)
            .arg(message.encode())
            .query_async::<i64>(&mut conn)
            .await;
        if sent.is_err() {
            PUBLISHERS.lock().await.remove(url);
        }
        sent.map(|_| ())
    })
    .await;
    let error = match result {
        Ok(Ok(())) => {
            if PUBLISH_FAILED.swap(false, Ordering::Relaxed) {
                tracing::info!("Redis reachable again; other nodes hear of changes at once");
            }
            return;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {} ms", PUBLISH_TIMEOUT.as_millis()),
    };
    if !PUBLISH_FAILED.swap(true, Ordering::Relaxed) {
        tracing::warn!(error = %error, "cannot publish to Redis; other nodes see changes through their database poll (within a second)");
    }
}

/// Called by the plugin manager after it changed plugin `id` (`version` is the one now
/// installed, `None` once removed): shares the version's files with the other nodes and tells
/// them to look.
pub async fn plugin_changed(
    config: &Config,
    db: &Db,
    data: &DataDir,
    id: &str,
    version: Option<&str>,
) {
    if matches!(db, Db::Postgres(_)) {
        let stored = match version {
            Some(version) => store_files(db, data, id, version).await,
            None => forget_files(db, id).await,
        };
        if let Err(e) = stored {
            tracing::warn!(plugin = id, error = %e, "cannot share the plugin's files with other nodes");
        }
    }
    if let Some(url) = &config.cluster.redis_url {
        let from = sender(&node_id(&config.cluster));
        publish(url, &channel(&config.cluster), &Message::Plugins(from)).await;
    }
}

/// Every file under `dir`, by path relative to it (`/`-separated).
fn files_under(dir: &std::path::Path) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(at) = stack.pop() {
        for entry in std::fs::read_dir(&at)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            if kind.is_dir() {
                stack.push(entry.path());
            } else if kind.is_file() {
                let path = entry.path();
                let relative = path
                    .strip_prefix(dir)
                    .map_err(std::io::Error::other)?
                    .components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join("/");
                out.push((relative, std::fs::read(&path)?));
            }
        }
    }
    Ok(out)
}

async fn store_files(db: &Db, data: &DataDir, id: &str, version: &str) -> anyhow::Result<()> {
    // A version's files never change once installed (a removal forgets them all), so an enable,
    // a disable or a rollback to a version already shared copies nothing again.
    let shared: Option<i32> = on_db!(db, read, |pool| {
        sqlx::query_scalar("SELECT 1 FROM plugin_files WHERE plugin = $1 AND version = $2 LIMIT 1")
            .bind(id)
            .bind(version)
            .fetch_optional(pool)
            .await
    })?;
    if shared.is_some() {
        return Ok(());
    }
    let dir = data.plugin_dir(id, version);
    let files = tokio::task::spawn_blocking(move || files_under(&dir)).await??;
    on_db!(db, write, |pool| {
        let mut tx = pool.begin().await?;
        sqlx::query("DELETE FROM plugin_files WHERE plugin = $1 AND version = $2")
            .bind(id)
            .bind(version)
            .execute(&mut *tx)
            .await?;
        for (path, bytes) in &files {
            sqlx::query(
                "INSERT INTO plugin_files (plugin, version, path, bytes) VALUES ($1, $2, $3, $4)",
            )
            .bind(id)
            .bind(version)
            .bind(path)
            .bind(bytes)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    })?;
    Ok(())
}

async fn forget_files(db: &Db, id: &str) -> anyhow::Result<()> {
    on_db!(db, write, |pool| {
        sqlx::query("DELETE FROM plugin_files WHERE plugin = $1")
            .bind(id)
            .execute(pool)
            .await
            .map(|_| ())
    })?;
    Ok(())
}

/// Writes into `data` the files of installed versions (current and previous) that another node
/// installed. `Ok(false)` when a version's files are not shared yet (the installing node is
/// still storing them): syncing now would mark the plugin as failed, so wait for the next round.
/// Only PostgreSQL sites share files; on SQLite this does nothing.
pub async fn fetch_missing_files(db: &Db, data: &DataDir) -> anyhow::Result<bool> {
    if !matches!(db, Db::Postgres(_)) {
        return Ok(true);
    }
    let installed: Vec<(String, String, Option<String>)> = on_db!(db, read, |pool| {
        sqlx::query_as("SELECT id, version, previous_version FROM plugins")
            .fetch_all(pool)
            .await
    })?;
    let mut complete = true;
    for (id, version, previous) in installed {
        for (version, current) in [(Some(version), true), (previous, false)] {
            let Some(version) = version else { continue };
            let dir = data.plugin_dir(&id, &version);
            if dir.join(ucms_package::archive::COMPONENT_FILE).exists() {
                continue;
            }
            let files: Vec<(String, Vec<u8>)> = on_db!(db, read, |pool| {
                sqlx::query_as(
                    "SELECT path, bytes FROM plugin_files WHERE plugin = $1 AND version = $2",
                )
                .bind(&id)
                .bind(&version)
                .fetch_all(pool)
                .await
            })?;
            if files.is_empty() {
                complete &= !current;
                continue;
            }
            tracing::info!(plugin = %id, version = %version, "writing the plugin's files shared by another node");
            tokio::task::spawn_blocking(move || write_files(&dir, &files)).await??;
        }
    }
    Ok(complete)
}

/// Writes `files` into a staging folder beside `dir`, then renames it into place, so a reader
/// never sees half a plugin.
fn write_files(dir: &std::path::Path, files: &[(String, Vec<u8>)]) -> anyhow::Result<()> {
    let parent = dir
        .parent()
        .ok_or_else(|| anyhow::anyhow!("{} has no parent", dir.display()))?;
    std::fs::create_dir_all(parent)?;
    let staging = parent.join(format!(".incoming-{}", uuid::Uuid::new_v4().simple()));
    for (path, bytes) in files {
        // Stored by a node of this site, but checked all the same: no absolute paths, no `..`.
        let relative = std::path::Path::new(path);
        if relative.is_absolute()
            || relative
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            anyhow::bail!("refusing the shared plugin file '{path}'");
        }
        let target = staging.join(relative);
        if let Some(p) = target.parent() {
            std::fs::create_dir_all(p)?;
        }
        std::fs::write(&target, bytes)?;
    }
    match std::fs::rename(&staging, dir) {
        Ok(()) => Ok(()),
        // Another round wrote it meanwhile.
        Err(_) if dir.join(ucms_package::archive::COMPONENT_FILE).exists() => {
            let _ = std::fs::remove_dir_all(&staging);
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            Err(e.into())
        }
    }
}

/// This node's listener: hears other nodes' plugin changes and event wake-ups.
#[derive(Debug)]
pub struct Cluster {
    url: String,
    channel: String,
    node: String,
    /// Notified when another node changed plugins.
    pub plugins_changed: Arc<Notify>,
    /// Set while the listener is subscribed (tests and `/readyz` may look).
    pub connected: Arc<AtomicBool>,
    wake_requested: Arc<Notify>,
}

impl Cluster {
    /// The cluster of `config`, or `None` without `[cluster] redis-url`.
    pub fn new(config: &ClusterConfig) -> Option<Arc<Self>> {
        let url = config.redis_url.clone()?;
        Some(Arc::new(Self {
            url,
            channel: channel(config),
            node: sender(&node_id(config)),
            plugins_changed: Arc::new(Notify::new()),
            connected: Arc::new(AtomicBool::new(false)),
            wake_requested: Arc::new(Notify::new()),
        }))
    }

    /// A hook for [`crate::capabilities::events::EventBus::set_remote_wake`]: asks the other
    /// nodes' dispatchers to look (coalesced: one message per burst).
    pub fn remote_wake(self: &Arc<Self>) -> crate::capabilities::events::RemoteWake {
        let wake = self.wake_requested.clone();
        Arc::new(move || wake.notify_one())
    }

    /// Runs the listener and the wake-up publisher until `stop`; `local_wake` is this node's
    /// dispatcher.
    pub fn start(
        self: &Arc<Self>,
        stop: CancellationToken,
        local_wake: Arc<dyn Fn() + Send + Sync>,
    ) {
        let this = self.clone();
        let listen_stop = stop.clone();
        tokio::spawn(async move { this.listen(listen_stop, local_wake).await });
        let this = self.clone();
        tokio::spawn(async move {
            let message = Message::Wake(this.node.clone());
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = this.wake_requested.notified() => {}
                }
                publish(&this.url, &this.channel, &message).await;
            }
        });
    }

    async fn listen(&self, stop: CancellationToken, local_wake: Arc<dyn Fn() + Send + Sync>) {
        let mut backoff = Duration::from_millis(250);
        let mut warned = false;
        loop {
            let started = Instant::now();
            let result = tokio::select! {
                () = stop.cancelled() => return,
                r = self.subscribe_and_listen(&local_wake) => r,
            };
            if self.connected.swap(false, Ordering::Relaxed) {
                warned = false;
            }
            if started.elapsed() > Duration::from_secs(10) {
                backoff = Duration::from_millis(250);
            }
            let error = match result {
                Ok(()) => "the subscription ended".to_string(),
                Err(e) => e.to_string(),
            };
            if !warned {
                tracing::warn!(node = %self.node, error = %error, "lost the Redis channel of the cluster; polling the database every second and reconnecting");
                warned = true;
            } else {
                tracing::debug!(node = %self.node, error = %error, "Redis still unreachable");
            }
            // Whatever was announced meanwhile is missed: look now.
            self.plugins_changed.notify_one();
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    async fn subscribe_and_listen(
        &self,
        local_wake: &Arc<dyn Fn() + Send + Sync>,
    ) -> redis::RedisResult<()> {
        let client = redis::Client::open(self.url.as_str())?;
        let mut pubsub = client.get_async_pubsub().await?;
        pubsub.subscribe(&self.channel).await?;
        self.connected.store(true, Ordering::Relaxed);
        tracing::info!(node = %self.node, channel = %self.channel, "listening for other nodes' changes");
        // Changes made while this node wasn't listening.
        self.plugins_changed.notify_one();
        let mut messages = pubsub.on_message();
        while let Some(message) = messages.next().await {
            let Ok(text) = message.get_payload::<String>() else {
                continue;
            };
            match Message::decode(&text) {
                Some(Message::Plugins(node)) if node != self.node => {
                    tracing::debug!(from = %node, "another node changed plugins");
                    self.plugins_changed.notify_one();
                }
                Some(Message::Wake(node)) if node != self.node => local_wake(),
                _ => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        for m in [
            Message::Plugins("a:1".into()),
            Message::Wake("node b".into()),
        ] {
            assert_eq!(Message::decode(&m.encode()), Some(m));
        }
        assert_eq!(Message::decode("nonsense"), None);
    }

    #[test]
    fn the_channel_is_namespaced() {
        let config = ClusterConfig {
            namespace: Some("shop".into()),
            ..Default::default()
        };
        assert_eq!(channel(&config), "ucms:shop:changes");
        assert_eq!(channel(&ClusterConfig::default()), "ucms:default:changes");
    }
}
