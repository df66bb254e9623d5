//! `ucms:host/cache`: a per-plugin cache in memory or in Redis ([`ucms_cache`]).
//!
//! The host checks every request against [`ucms_cache::Limits`] before it reaches a backend, so a
//! plugin gets a message naming the limit; a backend failure reaches the plugin as `unavailable`
//! (a cache miss, in effect) and never as a trap.

use std::time::Duration;

use ucms_cache::{CacheBackend, CacheError as StoreError, Limits};
use wasmtime::component::{HasData, Linker};

use crate::metrics::Metrics;
use crate::wit::latest::ucms::host::cache::{self as wit, CacheError};

/// What the cache host functions see of the invocation.
pub struct CacheCtx<'a> {
    pub plugin: &'a str,
    pub backend: &'a dyn CacheBackend,
    pub limits: &'a Limits,
    pub metrics: &'a Metrics,
}

struct Cache;

impl HasData for Cache {
    type Data<'a> = CacheCtx<'a>;
}

/// Store data that can give the `ucms:host/cache` host functions their view of the invocation.
pub trait CacheView: Send {
    fn cache(&mut self) -> CacheCtx<'_>;
}

/// Links `ucms:host/cache`.
pub fn add_to_linker<T: CacheView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, Cache>(linker, T::cache)
}

fn to_wit(error: StoreError) -> CacheError {
    match error {
        StoreError::Invalid(m) => CacheError::Invalid(m),
        other => CacheError::Unavailable(other.to_string()),
    }
}

type CacheResult<T> = wasmtime::Result<Result<T, CacheError>>;

impl CacheCtx<'_> {
    fn outcome(&self, op: &'static str, hit: Option<bool>) {
        self.metrics.cache_op(self.plugin, op, hit);
    }
}

impl wit::Host for CacheCtx<'_> {
    #[tracing::instrument(
        name = "cache.get",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn get(&mut self, key: String) -> CacheResult<Option<Vec<u8>>> {
        if let Err(e) = self.limits.check_key(&key) {
            return Ok(Err(to_wit(e)));
        }
        let result = self.backend.get(self.plugin, &key).await;
        if let Ok(value) = &result {
            self.outcome("get", Some(value.is_some()));
        }
        Ok(result.map_err(to_wit))
    }

    #[tracing::instrument(
        name = "cache.set",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn set(
        &mut self,
        key: String,
        value: Vec<u8>,
        ttl_ms: Option<u64>,
        tags: Vec<String>,
    ) -> CacheResult<()> {
        let ttl = ttl_ms.map(Duration::from_millis);
        if let Err(e) = self.limits.check_set(&key, &value, ttl, &tags) {
            return Ok(Err(to_wit(e)));
        }
        self.outcome("set", None);
        Ok(self
            .backend
            .set(self.plugin, &key, &value, ttl, &tags)
            .await
            .map_err(to_wit))
    }

    #[tracing::instrument(
        name = "cache.delete",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn delete(&mut self, key: String) -> CacheResult<bool> {
        if let Err(e) = self.limits.check_key(&key) {
            return Ok(Err(to_wit(e)));
        }
        self.outcome("delete", None);
        Ok(self.backend.delete(self.plugin, &key).await.map_err(to_wit))
    }

    #[tracing::instrument(
        name = "cache.invalidate-tag",
        target = "ucms::host_call",
        level = "debug",
        skip_all
    )]
    async fn invalidate_tag(&mut self, tag: String) -> CacheResult<u64> {
        if let Err(e) = self.limits.check_tag(&tag) {
            return Ok(Err(to_wit(e)));
        }
        self.outcome("invalidate", None);
        Ok(self
            .backend
            .invalidate_tag(self.plugin, &tag)
            .await
            .map_err(to_wit))
    }
}
