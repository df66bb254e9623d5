//! The engine behind the plugin-facing `ucms:host/cache` capability.
//!
//! A plugin gets a small byte cache: `get`, `set` with an optional TTL and tags, `delete`, and
//! `invalidate_tag` (drop every entry that was set with a tag). Every call names the plugin, and each
//! plugin sees only its own keys and tags. [`CacheBackend`] is the trait the host codes against; it has
//! two implementations with identical semantics (one test suite runs against both):
//!
//! - [`MemoryCache`] — the embedded default: one process, bounded by bytes, least-recently-used
//!   eviction, expired entries purged lazily and before anything is evicted.
//! - [`RedisCache`] — the scale-out backend, chosen when a `redis://` URL is configured: several nodes
//!   share one cache; writes and tag invalidation are atomic Lua scripts; reconnects on its own.
//!
//! [`Limits`] holds the sizes a plugin may use; the host checks a request with it *before* calling a
//! backend, so a plugin gets a message that says what was wrong and what to do. [`open`] picks the
//! backend from configuration.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ucms_cache::CacheError> {
//! use std::time::Duration;
//! use ucms_cache::{CacheBackend, Limits, MemoryCache};
//!
//! let cache = MemoryCache::new(64 << 20);
//! let limits = Limits::default();
//! let tags = vec!["article:42".to_string()];
//! limits.check_set("page:/news", b"<html>", Some(Duration::from_secs(60)), &tags)?;
//! cache.set("content", "page:/news", b"<html>", Some(Duration::from_secs(60)), &tags).await?;
//! assert_eq!(cache.get("content", "page:/news").await?.as_deref(), Some(&b"<html>"[..]));
//! assert_eq!(cache.get("media", "page:/news").await?, None); // another plugin sees nothing
//! assert_eq!(cache.invalidate_tag("content", "article:42").await?, 1);
//! assert_eq!(cache.get("content", "page:/news").await?, None);
//! # Ok(()) }
//! ```
//!
//! See `docs/cache.md` for the semantics in full, configuration and the Redis key layout.

mod limits;
mod memory;
mod redis_cache;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;

pub use limits::Limits;
pub use memory::MemoryCache;
pub use redis_cache::RedisCache;

/// Why a cache call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The request itself is wrong (too long a key, too big a value, a bad URL or namespace…). The
    /// message says what was wrong and what to do; it is safe to show to the plugin or the operator.
    #[error("{0}")]
    Invalid(String),
    /// The backend failed (Redis down, timed out…). Details are logged by the backend; the message
    /// carries no URL or password, so it is safe to pass on.
    #[error("{0}")]
    Unavailable(String),
}

impl CacheError {
    /// A short stable code for JSON error bodies and WIT variants: `"invalid"` or `"unavailable"`.
    pub fn code(&self) -> &'static str {
        match self {
            CacheError::Invalid(_) => "invalid",
            CacheError::Unavailable(_) => "unavailable",
        }
    }
}

/// A cache shared by all plugins, each in its own key space.
///
/// Semantics, identical on every backend:
/// - keys and tags are strings, values are bytes; `plugin` scopes everything — a plugin never sees,
///   replaces, deletes or invalidates another plugin's entries;
/// - `ttl: None` means no expiry (the entry may still be evicted: this is a cache); a TTL counts in
///   whole milliseconds, rounded up; a zero TTL stores nothing and removes any previous value;
/// - `set` replaces the key's value, TTL and tags all together;
/// - an expired entry is never returned, counted or reported as deleted.
///
/// Backends do not enforce [`Limits`]; the host checks requests first.
#[async_trait]
pub trait CacheBackend: Send + Sync + 'static {
    /// The value stored under `key`, or `None` if there is none (never set, deleted, expired, evicted).
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, CacheError>;

    /// Store `value` under `key`, replacing any previous value, TTL and tags. Duplicate tags count once.
    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        tags: &[String],
    ) -> Result<(), CacheError>;

    /// Remove `key`; `true` if a live entry was removed.
    async fn delete(&self, plugin: &str, key: &str) -> Result<bool, CacheError>;

    /// Remove every live entry of `plugin` that was set with `tag`; returns how many were removed.
    async fn invalidate_tag(&self, plugin: &str, tag: &str) -> Result<u64, CacheError>;

    /// Remove everything `plugin` stored (used when a plugin is removed).
    async fn clear(&self, plugin: &str) -> Result<(), CacheError>;

    /// `"memory"` or `"redis"`, for logs, metrics and `/readyz`.
    fn name(&self) -> &'static str;
}

/// Open the configured cache: Redis when `url` is given (`redis://`, `redis+unix://` or `unix://`),
/// otherwise memory bounded to `memory_bytes`.
///
/// `namespace` separates sites sharing one Redis (the memory cache ignores it). A bad URL or namespace
/// is [`CacheError::Invalid`]; a Redis that cannot be reached is [`CacheError::Unavailable`].
pub async fn open(
    url: Option<&str>,
    namespace: &str,
    memory_bytes: usize,
) -> Result<Arc<dyn CacheBackend>, CacheError> {
    match url.map(str::trim).filter(|url| !url.is_empty()) {
        Some(url) => Ok(Arc::new(RedisCache::connect(url, namespace).await?)),
        None => Ok(Arc::new(MemoryCache::new(memory_bytes))),
    }
}

/// The longest TTL a backend will apply (about ten years); longer ones are clamped. [`Limits`] keeps
/// plugins far below this; it only protects backends from overflow on a host bug.
const BACKEND_MAX_TTL_MS: u64 = 10 * 366 * 24 * 60 * 60 * 1000;

/// A TTL as whole milliseconds, rounded up and clamped to [`BACKEND_MAX_TTL_MS`]; `Some(0)` only for a
/// zero duration.
fn ttl_millis(ttl: Option<Duration>) -> Option<u64> {
    ttl.map(|ttl| {
        let ms = ttl.as_nanos().div_ceil(1_000_000);
        u64::try_from(ms)
            .unwrap_or(u64::MAX)
            .min(BACKEND_MAX_TTL_MS)
    })
}

/// Tags with duplicates removed, in a stable order.
fn unique_tags(tags: &[String]) -> Vec<&str> {
    let mut tags: Vec<&str> = tags.iter().map(String::as_str).collect();
    tags.sort_unstable();
    tags.dedup();
    tags
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_whole_milliseconds_and_is_clamped() {
        assert_eq!(ttl_millis(None), None);
        assert_eq!(ttl_millis(Some(Duration::ZERO)), Some(0));
        assert_eq!(ttl_millis(Some(Duration::from_nanos(1))), Some(1));
        assert_eq!(ttl_millis(Some(Duration::from_micros(1500))), Some(2));
        assert_eq!(ttl_millis(Some(Duration::from_millis(250))), Some(250));
        assert_eq!(ttl_millis(Some(Duration::MAX)), Some(BACKEND_MAX_TTL_MS));
    }

    #[test]
    fn duplicate_tags_count_once() {
        let tags = ["b".to_string(), "a".to_string(), "b".to_string()];
        assert_eq!(unique_tags(&tags), ["a", "b"]);
    }
}
