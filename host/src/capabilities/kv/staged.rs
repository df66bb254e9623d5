//! Kv writes held back until an install or upgrade switches.
//!
//! A plugin's `install` and `upgrade(previous)` hooks run while the previous version still
//! serves. Their writes go to a [`StagedKv`]: reads see them (over the stored data), nothing
//! reaches the database, and [`StagedKv::take_writes`] hands them to the same transaction that switches
//! the plugin to the new version. A hook that fails — or a process killed before the switch —
//! leaves the stored data exactly as it was. The write set is capped ([`MAX_STAGED_BYTES`]): a
//! migration bigger than that runs after the install, in batches.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::backend::{KvBackend, Start, StoreError};

/// Most bytes (keys and values) one hook may stage.
pub const MAX_STAGED_BYTES: usize = 32 * 1024 * 1024;

/// One plugin's kv as its lifecycle hook sees it: stored data with the hook's writes on top.
pub struct StagedKv {
    base: std::sync::Arc<dyn KvBackend>,
    plugin: String,
    state: Mutex<Staged>,
}

#[derive(Default)]
struct Staged {
    /// Key → new value, or `None` for a deletion.
    writes: BTreeMap<String, Option<Vec<u8>>>,
    bytes: usize,
}

impl StagedKv {
    pub fn new(base: std::sync::Arc<dyn KvBackend>, plugin: &str) -> Self {
        Self {
            base,
            plugin: plugin.to_string(),
            state: Mutex::new(Staged::default()),
        }
    }

    /// How many writes are staged.
    pub fn len(&self) -> usize {
        self.lock().writes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Staged> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn staged(&self, plugin: &str, key: &str) -> Option<Option<Vec<u8>>> {
        if plugin != self.plugin {
            return None;
        }
        self.lock().writes.get(key).cloned()
    }

    fn stage(&self, plugin: &str, key: &str, value: Option<&[u8]>) -> Result<(), StoreError> {
        if plugin != self.plugin {
            // Hooks only ever reach their own plugin's data; anything else is a host bug.
            return Err(StoreError::Refused(format!(
                "a hook of '{}' tried to write the data of '{plugin}'",
                self.plugin
            )));
        }
        let mut state = self.lock();
        let size = key.len() + value.map_or(0, <[u8]>::len);
        let replaced = state
            .writes
            .get(key)
            .map_or(0, |v| key.len() + v.as_ref().map_or(0, Vec::len));
        let bytes = state.bytes - replaced + size;
        if bytes > MAX_STAGED_BYTES {
            return Err(StoreError::Refused(format!(
                "an install or upgrade hook may write at most {} MiB; migrate larger data after the install, in batches",
                MAX_STAGED_BYTES / (1024 * 1024)
            )));
        }
        state.bytes = bytes;
        state
            .writes
            .insert(key.to_string(), value.map(<[u8]>::to_vec));
        Ok(())
    }

    /// Takes the staged changes (key → new value, `None` to delete), to be written by the
    /// transaction that switches the plugin (see `plugins::lifecycle`).
    pub fn take_writes(&self) -> BTreeMap<String, Option<Vec<u8>>> {
        let mut state = self.lock();
        state.bytes = 0;
        std::mem::take(&mut state.writes)
    }
}

#[async_trait]
impl KvBackend for StagedKv {
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self.staged(plugin, key) {
            Some(value) => Ok(value),
            None => self.base.get(plugin, key).await,
        }
    }

    async fn set(&self, plugin: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.stage(plugin, key, Some(value))
    }

    async fn delete(&self, plugin: &str, key: &str) -> Result<bool, StoreError> {
        let existed = self.get(plugin, key).await?.is_some();
        self.stage(plugin, key, None)?;
        Ok(existed)
    }

    async fn keys(
        &self,
        plugin: &str,
        start: Start<'_>,
        limit: u32,
    ) -> Result<Vec<String>, StoreError> {
        let after = |k: &str| match start {
            Start::AtOrAfter(s) => k >= s,
            Start::After(s) => k > s,
        };
        let (set, deleted): (Vec<String>, Vec<String>) = {
            let state = self.lock();
            let mut set = Vec::new();
            let mut deleted = Vec::new();
            if plugin == self.plugin {
                for (k, v) in state.writes.iter().filter(|(k, _)| after(k)) {
                    if v.is_some() {
                        set.push(k.clone());
                    } else {
                        deleted.push(k.clone());
                    }
                }
            }
            (set, deleted)
        };
        // Ask for enough stored keys that, once staged deletions are taken out, `limit` remain.
        let asked = limit.saturating_add(deleted.len() as u32);
        let stored = self.base.keys(plugin, start, asked).await?;
        // A full page says nothing about the stored keys after its last one, so staged keys
        // beyond it wait for the next page.
        let horizon = (stored.len() as u32 >= asked)
            .then(|| stored.last().cloned())
            .flatten();
        let mut keys: Vec<String> = stored
            .into_iter()
            .filter(|k| deleted.binary_search(k).is_err())
            .chain(
                set.into_iter()
                    .filter(|k| horizon.as_ref().is_none_or(|h| k <= h)),
            )
            .collect();
        keys.sort();
        keys.dedup();
        keys.truncate(limit as usize);
        Ok(keys)
    }

    async fn compare_and_swap(
        &self,
        plugin: &str,
        key: &str,
        expected: Option<&[u8]>,
        new: Option<&[u8]>,
    ) -> Result<bool, StoreError> {
        // A hook runs alone (one change per plugin at a time), so reading then staging is atomic
        // for it; the previous version's concurrent writes are what the hook's result replaces.
        let current = self.get(plugin, key).await?;
        if current.as_deref() != expected {
            return Ok(false);
        }
        self.stage(plugin, key, new)?;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    /// Stored data in memory, for the overlay's logic alone.
    #[derive(Default)]
    struct Memory(Mutex<BTreeMap<String, Vec<u8>>>);

    #[async_trait]
    impl KvBackend for Memory {
        async fn get(&self, _: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
            Ok(self.0.lock().unwrap().get(key).cloned())
        }
        async fn set(&self, _: &str, key: &str, value: &[u8]) -> Result<(), StoreError> {
            self.0.lock().unwrap().insert(key.into(), value.to_vec());
            Ok(())
        }
        async fn delete(&self, _: &str, key: &str) -> Result<bool, StoreError> {
            Ok(self.0.lock().unwrap().remove(key).is_some())
        }
        async fn keys(
            &self,
            _: &str,
            start: Start<'_>,
            limit: u32,
        ) -> Result<Vec<String>, StoreError> {
            let map = self.0.lock().unwrap();
            Ok(map
                .keys()
                .filter(|k| match start {
                    Start::AtOrAfter(s) => k.as_str() >= s,
                    Start::After(s) => k.as_str() > s,
                })
                .take(limit as usize)
                .cloned()
                .collect())
        }
        async fn compare_and_swap(
            &self,
            _: &str,
            _: &str,
            _: Option<&[u8]>,
            _: Option<&[u8]>,
        ) -> Result<bool, StoreError> {
            unreachable!("the overlay never swaps in the stored data")
        }
    }

    async fn all_keys(kv: &StagedKv) -> Vec<String> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let start = match &cursor {
                Some(c) => Start::After(c),
                None => Start::AtOrAfter(""),
            };
            let page = kv.keys("p", start, 2).await.unwrap();
            if page.is_empty() {
                return out;
            }
            cursor = page.last().cloned();
            out.extend(page);
        }
    }

    #[tokio::test]
    async fn the_overlay_reads_its_writes_and_stores_nothing() {
        let base = Arc::new(Memory::default());
        for k in ["a", "c", "e", "g"] {
            base.set("p", k, b"stored").await.unwrap();
        }
        let kv = StagedKv::new(base.clone(), "p");
        kv.set("p", "b", b"new").await.unwrap();
        kv.set("p", "c", b"changed").await.unwrap();
        assert!(kv.delete("p", "e").await.unwrap());
        assert!(!kv.delete("p", "x").await.unwrap());
        kv.set("p", "h", b"new").await.unwrap();
        assert!(
            kv.compare_and_swap("p", "a", Some(b"stored"), None)
                .await
                .unwrap()
        );
        assert!(
            !kv.compare_and_swap("p", "a", Some(b"stored"), None)
                .await
                .unwrap()
        );

        assert_eq!(
            kv.get("p", "c").await.unwrap().as_deref(),
            Some(&b"changed"[..])
        );
        assert_eq!(kv.get("p", "e").await.unwrap(), None);
        assert_eq!(
            kv.get("p", "g").await.unwrap().as_deref(),
            Some(&b"stored"[..])
        );
        // Paged two at a time, the merged listing has every key once, in order.
        assert_eq!(all_keys(&kv).await, ["b", "c", "g", "h"]);
        // Nothing reached the stored data.
        assert_eq!(base.0.lock().unwrap().len(), 4);
        assert_eq!(
            base.get("p", "c").await.unwrap().as_deref(),
            Some(&b"stored"[..])
        );

        let writes = kv.take_writes();
        assert_eq!(
            writes.keys().map(String::as_str).collect::<Vec<_>>(),
            ["a", "b", "c", "e", "h", "x"]
        );
        assert_eq!(writes["e"], None);
        assert!(kv.is_empty());
    }

    #[tokio::test]
    async fn a_hook_cannot_stage_without_limit_or_for_another_plugin() {
        let kv = StagedKv::new(Arc::new(Memory::default()), "p");
        let big = vec![0u8; MAX_STAGED_BYTES / 2];
        kv.set("p", "one", &big).await.unwrap();
        // Rewriting a key replaces its size.
        kv.set("p", "one", &big).await.unwrap();
        let err = kv.set("p", "two", &big).await.unwrap_err();
        assert!(err.to_string().contains("in batches"), "{err}");
        let err = kv.set("other", "k", b"v").await.unwrap_err();
        assert!(err.to_string().contains("'other'"), "{err}");
    }
}
