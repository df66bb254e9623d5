//! The embedded cache: one process, bounded by bytes, least-recently-used eviction.
//!
//! A small LRU of our own over std collections rather than `moka` or `lru`: we need tag indexes,
//! per-plugin clearing and a byte budget that counts tags, and keeping all of that consistent is easiest
//! when one structure owns it under one lock. Every operation is O(log n) (B-tree maps ordered by recency
//! and by deadline), and the lock is held only for map updates — values are shared `Arc<[u8]>`s, copied
//! out after the lock is released.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::{CacheBackend, CacheError, ttl_millis, unique_tags};

/// Bytes charged per entry on top of its key, value and tags: the map slots, the recency and deadline
/// index nodes and the entry header, roughly. The budget is an estimate of heap use, not an exact one.
const ENTRY_OVERHEAD: usize = 96;
/// Bytes charged per tag of an entry on top of the tag itself (index set slot, `Arc` header).
const TAG_OVERHEAD: usize = 24;

/// The in-memory [`CacheBackend`]: all plugins share one budget of `max_bytes`; when a write would go
/// over it, expired entries go first, then the least recently used ones (a `get` counts as a use).
///
/// Cloning is cheap and shares the cache.
#[derive(Clone)]
pub struct MemoryCache {
    inner: Arc<Mutex<Inner>>,
}

impl std::fmt::Debug for MemoryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemoryCache")
            .field("entries", &inner.lru.len())
            .field("used_bytes", &inner.used)
            .field("max_bytes", &inner.max)
            .finish()
    }
}

impl MemoryCache {
    /// A cache that holds at most about `max_bytes` (see [`MemoryCache::used_bytes`] for what counts).
    /// An entry bigger than the whole budget is not stored.
    pub fn new(max_bytes: usize) -> Self {
        MemoryCache {
            inner: Arc::new(Mutex::new(Inner {
                plugins: HashMap::new(),
                lru: BTreeMap::new(),
                deadlines: BTreeMap::new(),
                used: 0,
                max: max_bytes,
                clock: 0,
            })),
        }
    }

    /// The budget given to [`MemoryCache::new`].
    pub fn max_bytes(&self) -> usize {
        self.lock().max
    }

    /// Bytes charged now: for each entry, its key, value and tags plus a fixed overhead per entry and
    /// per tag. Never more than [`MemoryCache::max_bytes`]. Expired entries not yet purged still count.
    pub fn used_bytes(&self) -> usize {
        self.lock().used
    }

    /// Number of entries held now, across all plugins (expired ones not yet purged included).
    pub fn len(&self) -> usize {
        self.lock().lru.len()
    }

    /// `true` when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What an entry costs against the budget.
    pub fn entry_cost(key: &str, value_len: usize, tags: &[String]) -> usize {
        cost(key, value_len, &unique_tags(tags))
    }

    /// Lock the state. A panic while locked (a bug) may have left the maps inconsistent, so a poisoned
    /// cache is emptied rather than trusted: losing cached entries is always safe.
    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(guard) => guard,
            Err(poisoned) => {
                let mut guard = poisoned.into_inner();
                tracing::error!("memory cache lock was poisoned by a panic; emptying the cache");
                guard.reset();
                self.inner.clear_poison();
                guard
            }
        }
    }
}

fn cost(key: &str, value_len: usize, tags: &[&str]) -> usize {
    let tags: usize = tags.iter().map(|tag| tag.len() + TAG_OVERHEAD).sum();
    ENTRY_OVERHEAD + key.len() + value_len + tags
}

struct Inner {
    plugins: HashMap<Arc<str>, Space>,
    /// Every entry, by last use (the clock value of its last `get` or `set`); first = least recent.
    lru: BTreeMap<u64, Slot>,
    /// Entries with a TTL, by deadline; the clock value of their `set` makes each key unique.
    deadlines: BTreeMap<(Instant, u64), Slot>,
    used: usize,
    max: usize,
    /// Increases on every use; orders `lru` and tells deadlines apart.
    clock: u64,
}

/// One plugin's entries and tag index.
#[derive(Default)]
struct Space {
    entries: HashMap<Arc<str>, Entry>,
    /// Tag → keys set with it.
    tags: HashMap<Arc<str>, HashSet<Arc<str>>>,
}

struct Entry {
    value: Arc<[u8]>,
    tags: Box<[Arc<str>]>,
    /// Key in `Inner::deadlines`.
    deadline: Option<(Instant, u64)>,
    /// Key in `Inner::lru`.
    used_at: u64,
    cost: usize,
}

impl Entry {
    fn expired(&self, now: Instant) -> bool {
        self.deadline.is_some_and(|(deadline, _)| deadline <= now)
    }
}

/// Where an entry lives, for the recency and deadline indexes.
#[derive(Clone)]
struct Slot {
    plugin: Arc<str>,
    key: Arc<str>,
}

impl Inner {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn reset(&mut self) {
        self.plugins.clear();
        self.lru.clear();
        self.deadlines.clear();
        self.used = 0;
    }

    /// Remove an entry and every index reference to it.
    fn remove(&mut self, plugin: &str, key: &str) -> Option<Entry> {
        let space = self.plugins.get_mut(plugin)?;
        let (key, entry) = space.entries.remove_entry(key)?;
        for tag in &entry.tags {
            if let Some(keys) = space.tags.get_mut(tag) {
                keys.remove(&key);
                if keys.is_empty() {
                    space.tags.remove(tag);
                }
            }
        }
        if space.entries.is_empty() {
            self.plugins.remove(plugin);
        }
        self.lru.remove(&entry.used_at);
        if let Some(deadline) = entry.deadline {
            self.deadlines.remove(&deadline);
        }
        self.used -= entry.cost;
        Some(entry)
    }

    /// Drop every entry whose deadline has passed.
    fn purge_expired(&mut self, now: Instant) {
        while let Some(((deadline, _), slot)) = self.deadlines.first_key_value()
            && *deadline <= now
        {
            let slot = slot.clone();
            self.remove(&slot.plugin, &slot.key);
        }
    }

    /// Drop least recently used entries until `extra` more bytes fit.
    fn make_room(&mut self, extra: usize) {
        while self.used + extra > self.max {
            let Some((_, slot)) = self.lru.first_key_value() else {
                break;
            };
            let slot = slot.clone();
            self.remove(&slot.plugin, &slot.key);
        }
    }

    fn get(&mut self, plugin: &str, key: &str, now: Instant) -> Option<Arc<[u8]>> {
        let entry = self.plugins.get(plugin)?.entries.get(key)?;
        if entry.expired(now) {
            self.remove(plugin, key);
            return None;
        }
        let old = entry.used_at;
        let used_at = self.tick();
        let entry = self.plugins.get_mut(plugin)?.entries.get_mut(key)?;
        entry.used_at = used_at;
        let value = entry.value.clone();
        if let Some(slot) = self.lru.remove(&old) {
            self.lru.insert(used_at, slot);
        }
        Some(value)
    }

    fn set(
        &mut self,
        plugin: &str,
        key: &str,
        value: &[u8],
        ttl_ms: Option<u64>,
        tags: &[&str],
        now: Instant,
    ) {
        self.remove(plugin, key);
        self.purge_expired(now);
        let cost = cost(key, value.len(), tags);
        if ttl_ms == Some(0) || cost > self.max {
            return;
        }
        self.make_room(cost);

        let plugin: Arc<str> = match self.plugins.get_key_value(plugin) {
            Some((plugin, _)) => plugin.clone(),
            None => Arc::from(plugin),
        };
        let key: Arc<str> = Arc::from(key);
        let used_at = self.tick();
        // `ttl_millis` clamps to about ten years, so this cannot overflow on any real clock; if it
        // somehow did, the entry simply gets no deadline.
        let deadline = ttl_ms
            .and_then(|ms| now.checked_add(Duration::from_millis(ms)))
            .map(|deadline| (deadline, used_at));

        let space = self.plugins.entry(plugin.clone()).or_default();
        let tags: Box<[Arc<str>]> = tags
            .iter()
            .map(|&tag| {
                let tag = match space.tags.get_key_value(tag) {
                    Some((tag, _)) => tag.clone(),
                    None => Arc::from(tag),
                };
                space
                    .tags
                    .entry(tag.clone())
                    .or_default()
                    .insert(key.clone());
                tag
            })
            .collect();
        space.entries.insert(
            key.clone(),
            Entry {
                value: Arc::from(value),
                tags,
                deadline,
                used_at,
                cost,
            },
        );
        let slot = Slot { plugin, key };
        if let Some(deadline) = deadline {
            self.deadlines.insert(deadline, slot.clone());
        }
        self.lru.insert(used_at, slot);
        self.used += cost;
    }

    fn invalidate_tag(&mut self, plugin: &str, tag: &str, now: Instant) -> u64 {
        let Some(keys) = self
            .plugins
            .get_mut(plugin)
            .and_then(|space| space.tags.remove(tag))
        else {
            return 0;
        };
        let mut removed = 0;
        for key in keys {
            if self
                .remove(plugin, &key)
                .is_some_and(|entry| !entry.expired(now))
            {
                removed += 1;
            }
        }
        removed
    }

    fn clear(&mut self, plugin: &str) {
        let Some(space) = self.plugins.remove(plugin) else {
            return;
        };
        for entry in space.entries.into_values() {
            self.lru.remove(&entry.used_at);
            if let Some(deadline) = entry.deadline {
                self.deadlines.remove(&deadline);
            }
            self.used -= entry.cost;
        }
    }

    /// Check that the indexes and the byte count agree (tests only).
    #[cfg(test)]
    fn assert_consistent(&self) {
        let mut entries = 0;
        let mut used = 0;
        let mut with_deadline = 0;
        for (plugin, space) in &self.plugins {
            assert!(!space.entries.is_empty(), "empty space kept for {plugin}");
            for (key, entry) in &space.entries {
                entries += 1;
                used += entry.cost;
                let slot = &self.lru[&entry.used_at];
                assert_eq!((&*slot.plugin, &*slot.key), (&**plugin, &**key));
                if let Some(deadline) = entry.deadline {
                    with_deadline += 1;
                    let slot = &self.deadlines[&deadline];
                    assert_eq!((&*slot.plugin, &*slot.key), (&**plugin, &**key));
                }
                for tag in &entry.tags {
                    assert!(space.tags[tag].contains(key), "tag index misses {key}");
                }
            }
            for (tag, keys) in &space.tags {
                assert!(!keys.is_empty(), "empty tag set kept for {tag}");
                for key in keys {
                    assert!(space.entries[key].tags.contains(tag), "stale tag member");
                }
            }
        }
        assert_eq!(entries, self.lru.len());
        assert_eq!(with_deadline, self.deadlines.len());
        assert_eq!(used, self.used);
        assert!(self.used <= self.max);
    }
}

#[async_trait]
impl CacheBackend for MemoryCache {
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let now = Instant::now();
        let value = self.lock().get(plugin, key, now);
        // Copy after the lock is released: values can be a MiB.
        Ok(value.map(|value| value.to_vec()))
    }

    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        tags: &[String],
    ) -> Result<(), CacheError> {
        let tags = unique_tags(tags);
        let now = Instant::now();
        self.lock()
            .set(plugin, key, value, ttl_millis(ttl), &tags, now);
        Ok(())
    }

    async fn delete(&self, plugin: &str, key: &str) -> Result<bool, CacheError> {
        let now = Instant::now();
        let removed = self.lock().remove(plugin, key);
        Ok(removed.is_some_and(|entry| !entry.expired(now)))
    }

    async fn invalidate_tag(&self, plugin: &str, tag: &str) -> Result<u64, CacheError> {
        let now = Instant::now();
        Ok(self.lock().invalidate_tag(plugin, tag, now))
    }

    async fn clear(&self, plugin: &str) -> Result<(), CacheError> {
        self.lock().clear(plugin);
        Ok(())
    }

    fn name(&self) -> &'static str {
        "memory"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|tag| tag.to_string()).collect()
    }

    #[tokio::test]
    async fn indexes_stay_consistent_through_every_operation() {
        let cache = MemoryCache::new(4096);
        let ttl = Some(Duration::from_millis(30));
        for round in 0..200u32 {
            let plugin = ["a", "b", "c"][round as usize % 3];
            let key = format!("k{}", round % 17);
            let value = vec![0u8; (round as usize * 37) % 300];
            let tag_list = tags(&[["t1", "t2", "t3"][round as usize % 3], "all"]);
            let ttl = if round % 4 == 0 { ttl } else { None };
            cache
                .set(plugin, &key, &value, ttl, &tag_list)
                .await
                .unwrap();
            match round % 7 {
                0 => drop(cache.get(plugin, "k3").await.unwrap()),
                1 => drop(cache.delete(plugin, "k5").await.unwrap()),
                2 => drop(cache.invalidate_tag(plugin, "t2").await.unwrap()),
                3 if round % 50 == 3 => cache.clear(plugin).await.unwrap(),
                4 if round % 20 == 4 => tokio::time::sleep(Duration::from_millis(35)).await,
                _ => {}
            }
            cache.lock().assert_consistent();
        }
        cache.clear("a").await.unwrap();
        cache.clear("b").await.unwrap();
        cache.clear("c").await.unwrap();
        assert_eq!((cache.len(), cache.used_bytes()), (0, 0));
    }

    #[tokio::test]
    async fn expired_entries_are_purged_before_live_ones_are_evicted() {
        let one = MemoryCache::entry_cost("k0", 100, &[]);
        let cache = MemoryCache::new(one * 3);
        cache.set("p", "k0", &[0; 100], None, &[]).await.unwrap();
        cache
            .set("p", "k1", &[0; 100], Some(Duration::from_millis(20)), &[])
            .await
            .unwrap();
        cache.set("p", "k2", &[0; 100], None, &[]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(40)).await;
        // k0 is the least recently used, but k1 has expired: it goes instead.
        cache.set("p", "k3", &[0; 100], None, &[]).await.unwrap();
        assert!(cache.get("p", "k0").await.unwrap().is_some());
        assert!(cache.get("p", "k2").await.unwrap().is_some());
        assert!(cache.get("p", "k3").await.unwrap().is_some());
        cache.lock().assert_consistent();
    }

    #[tokio::test]
    async fn a_poisoned_cache_is_emptied_not_trusted() {
        let cache = MemoryCache::new(1 << 20);
        cache.set("p", "k", b"v", None, &[]).await.unwrap();
        let inner = cache.inner.clone();
        let _ = std::thread::spawn(move || {
            let _guard = inner.lock().unwrap();
            panic!("poison the lock (expected in this test)");
        })
        .join();
        assert_eq!(cache.get("p", "k").await.unwrap(), None);
        assert_eq!(cache.used_bytes(), 0);
        cache.set("p", "k", b"v", None, &[]).await.unwrap();
        assert_eq!(
            cache.get("p", "k").await.unwrap().as_deref(),
            Some(&b"v"[..])
        );
    }
}
