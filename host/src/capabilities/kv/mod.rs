//! `ucms:host/kv`: a key-value store private to each plugin.
//!
//! [`add_to_linker`] links the interface for plugins granted `kv`; [`KvCtx`] is the per-call view
//! the host functions run on; [`KvBackend`] is where data lives (SQLite or PostgreSQL). `increment`
//! is a compare-and-swap loop over the backend, so backends implement five small operations.

mod backend;
mod staged;

use wasmtime::component::{HasData, Linker};

pub(crate) use backend::{DELETE, SET};
pub use backend::{KvBackend, PostgresKv, SqliteKv, Start, StoreError, for_db};
pub use staged::{MAX_STAGED_BYTES, StagedKv};

use crate::wit::latest::ucms::host::kv::{self as wit, KeyPage, KvError};

/// Longest key, in bytes.
pub const MAX_KEY_BYTES: usize = 512;
/// Most keys one `list-keys` call returns.
pub const MAX_PAGE: u32 = 1000;
/// Attempts of an `increment` under contention before it reports an error.
const INCREMENT_ATTEMPTS: usize = 100;

/// What the kv host functions see of the invocation.
pub struct KvCtx<'a> {
    pub plugin: &'a str,
    pub backend: &'a dyn KvBackend,
    pub max_value: usize,
}

struct Kv;

impl HasData for Kv {
    type Data<'a> = KvCtx<'a>;
}

/// Links `ucms:host/kv` for a plugin granted it.
/// Store data that can give the `ucms:host/kv` host functions their view of the invocation.
pub trait KvView: Send {
    fn kv(&mut self) -> KvCtx<'_>;
}

/// Links `ucms:host/kv`.
pub fn add_to_linker<T: KvView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, Kv>(linker, T::kv)
}

impl KvCtx<'_> {
    fn check_key(&self, key: &str) -> Result<(), KvError> {
        if key.is_empty() {
            return Err(KvError::Invalid("the key is empty".into()));
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(KvError::Invalid(format!(
                "the key is {} bytes long; keys are at most {MAX_KEY_BYTES} bytes",
                key.len()
            )));
        }
        if key.contains('\0') {
            return Err(KvError::Invalid(
                "keys may not contain NUL characters".into(),
            ));
        }
        Ok(())
    }

    fn check_value(&self, value: &[u8]) -> Result<(), KvError> {
        if value.len() > self.max_value {
            return Err(KvError::Invalid(format!(
                "the value is {} bytes; values are at most {} bytes",
                value.len(),
                self.max_value
            )));
        }
        Ok(())
    }

    fn unavailable(&self, error: StoreError) -> KvError {
        if let StoreError::Refused(message) = error {
            return KvError::Invalid(message);
        }
        tracing::warn!(plugin = self.plugin, error = %error, "kv backend failure");
        KvError::Unavailable("the key-value store is unavailable; try again later".into())
    }
}

type KvResult<T> = wasmtime::Result<Result<T, KvError>>;

impl wit::Host for KvCtx<'_> {
    #[tracing::instrument(name = "kv.get", target = "ucms::host_call", level = "debug", skip_all)]
    async fn get(&mut self, key: String) -> KvResult<Option<Vec<u8>>> {
        if let Err(e) = self.check_key(&key) {
            return Ok(Err(e));
        }
        Ok(self
            .backend
            .get(self.plugin, &key)
            .await
            .map_err(|e| self.unavailable(e)))
    }

    #[tracing::instrument(name = "kv.set", target = "ucms::host_call", level = "debug", skip_all)]
    async fn set(&mut self, key: String, value: Vec<u8>) -> KvResult<()> {
        if let Err(e) = self.check_key(&key).and_then(|()| self.check_value(&value)) {
            return Ok(Err(e));
        }
        Ok(self
            .backend
            .set(self.plugin, &key, &value)
            .await
            .map_err(|e| self.unavailable(e)))
    }

    #[tracing::instrument(
        name = "kv.delete",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn delete(&mut self, key: String) -> KvResult<bool> {
        if let Err(e) = self.check_key(&key) {
            return Ok(Err(e));
        }
        Ok(self
            .backend
            .delete(self.plugin, &key)
            .await
            .map_err(|e| self.unavailable(e)))
    }

    #[tracing::instrument(
        name = "kv.list-keys",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn list_keys(
        &mut self,
        prefix: String,
        cursor: Option<String>,
        limit: u32,
    ) -> KvResult<KeyPage> {
        let limit = match limit {
            0 => 100,
            n => n.min(MAX_PAGE),
        };
        let start = match &cursor {
            // A cursor before the prefix would list keys outside it.
            Some(c) if c.as_str() >= prefix.as_str() => Start::After(c),
            _ => Start::AtOrAfter(&prefix),
        };
        // Keys are sorted bytewise, so every key with the prefix follows `start` contiguously: read
        // one extra to know whether there is a next page, and stop at the first key outside.
        let keys = match self.backend.keys(self.plugin, start, limit + 1).await {
            Ok(keys) => keys,
            Err(e) => return Ok(Err(self.unavailable(e))),
        };
        let mut keys: Vec<String> = keys
            .into_iter()
            .take_while(|k| k.starts_with(&prefix))
            .collect();
        let next_cursor = if keys.len() > limit as usize {
            keys.truncate(limit as usize);
            keys.last().cloned()
        } else {
            None
        };
        Ok(Ok(KeyPage { keys, next_cursor }))
    }

    #[tracing::instrument(
        name = "kv.increment",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn increment(&mut self, key: String, delta: i64) -> KvResult<i64> {
        if let Err(e) = self.check_key(&key) {
            return Ok(Err(e));
        }
        for _ in 0..INCREMENT_ATTEMPTS {
            let current = match self.backend.get(self.plugin, &key).await {
                Ok(v) => v,
                Err(e) => return Ok(Err(self.unavailable(e))),
            };
            let value = match &current {
                None => 0,
                Some(bytes) => match std::str::from_utf8(bytes)
                    .ok()
                    .and_then(|s| s.trim().parse::<i64>().ok())
                {
                    Some(n) => n,
                    None => {
                        return Ok(Err(KvError::TypeMismatch(format!(
                            "'{key}' does not hold an integer, so it can't be incremented"
                        ))));
                    }
                },
            };
            let Some(next) = value.checked_add(delta) else {
                return Ok(Err(KvError::Invalid(format!(
                    "incrementing '{key}' by {delta} overflows a 64-bit integer"
                ))));
            };
            let encoded = next.to_string();
            match self
                .backend
                .compare_and_swap(
                    self.plugin,
                    &key,
                    current.as_deref(),
                    Some(encoded.as_bytes()),
                )
                .await
            {
                Ok(true) => return Ok(Ok(next)),
                Ok(false) => continue,
                Err(e) => return Ok(Err(self.unavailable(e))),
            }
        }
        Ok(Err(KvError::Unavailable(format!(
            "'{key}' kept changing under {INCREMENT_ATTEMPTS} concurrent updates; try again"
        ))))
    }

    #[tracing::instrument(
        name = "kv.compare-and-swap",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn compare_and_swap(
        &mut self,
        key: String,
        expected: Option<Vec<u8>>,
        new: Option<Vec<u8>>,
    ) -> KvResult<bool> {
        if let Err(e) = self.check_key(&key) {
            return Ok(Err(e));
        }
        if let Some(new) = &new
            && let Err(e) = self.check_value(new)
        {
            return Ok(Err(e));
        }
        Ok(self
            .backend
            .compare_and_swap(self.plugin, &key, expected.as_deref(), new.as_deref())
            .await
            .map_err(|e| self.unavailable(e)))
    }
}
