//! The WebAssembly runtime: one wasmtime [`Engine`] per process, configured for many short-lived,
//! sandboxed instances.
//!
//! - [`Runtime::new`] probes the pooling allocator (it reserves address space up front; some
//!   sandboxes refuse that) and falls back to on-demand allocation.
//! - A ticker thread advances the engine's epoch every `epoch_tick_ms`; each store's deadline
//!   callback compares the clock with its invocation's deadline (see [`invocation`]).
//! - [`Runtime::compile`] caches precompiled components on disk, keyed by the wasm's SHA-256 and the
//!   engine's compatibility hash, so a restart deserializes instead of recompiling.

pub mod cache;
mod context;
pub mod cpu;
pub mod health;
pub mod invocation;
pub mod limits;
pub mod logbook;
mod output;

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use wasmtime::component::Component;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use crate::config::RuntimeConfig;
pub use cache::ComponentCache;
pub use context::PluginContext;

/// What every invocation of the site draws from.
#[derive(Debug, Clone)]
pub struct SiteSlots {
    /// Instances alive at once across all plugins (`[runtime] max-instances`).
    pub instances: Arc<tokio::sync::Semaphore>,
    /// Where long-running invocations take turns.
    pub cpu_lanes: cpu::CpuLanes,
}

/// How instances get their memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allocator {
    /// Pre-reserved slots: the fastest instantiation.
    Pooling,
    /// mmap per instance: used where the address space for the pool can't be reserved.
    OnDemand,
}

/// The engine, its epoch ticker and the compiled-component cache.
pub struct Runtime {
    engine: Engine,
    /// Instances that may exist at once across all plugins (`[runtime] max-instances`): enforced
    /// here whatever the allocator, and sized to match the pooling allocator's slots.
    instance_permits: Arc<tokio::sync::Semaphore>,
    /// Where long-running invocations take turns (`[runtime] long-running-lanes`).
    cpu_lanes: cpu::CpuLanes,
    allocator: Allocator,
    cache: Option<ComponentCache>,
    engine_hash: String,
    epoch_tick: Duration,
    stop_ticker: Arc<AtomicBool>,
    ticker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("allocator", &self.allocator)
            .field("engine_hash", &self.engine_hash)
            .finish_non_exhaustive()
    }
}

/// The largest linear memory any instance may have, whatever a manifest or operator asks: it sizes
/// the pooling allocator's slots.
pub const MAX_MEMORY_BYTES: usize = 4 << 30;

impl Runtime {
    /// Builds the engine. `max_memory_mib` is the largest memory limit any plugin may get (the
    /// operator's ceiling); `cache_dir`, when given, holds precompiled components.
    pub fn new(
        config: &RuntimeConfig,
        max_memory_mib: u32,
        cache_dir: Option<std::path::PathBuf>,
    ) -> anyhow::Result<Self> {
        let max_memory = (max_memory_mib as usize * 1024 * 1024).min(MAX_MEMORY_BYTES);
        let (engine, allocator) = if config.pooling {
            match Engine::new(&engine_config(Some(pooling_config(config, max_memory)))) {
                Ok(engine) => (engine, Allocator::Pooling),
                Err(e) => {
                    tracing::warn!(
                        error = %format!("{e:#}"),
                        "the pooling allocator is unavailable here; using on-demand allocation (slower instantiation)"
                    );
                    (Engine::new(&engine_config(None))?, Allocator::OnDemand)
                }
            }
        } else {
            (Engine::new(&engine_config(None))?, Allocator::OnDemand)
        };
        let engine_hash = {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut hasher);
            format!("{:016x}", hasher.finish())
        };
        let cache = match cache_dir {
            Some(dir) => Some(ComponentCache::open(dir)?),
            None => None,
        };
        let epoch_tick = Duration::from_millis(config.epoch_tick_ms.max(1));
        let stop_ticker = Arc::new(AtomicBool::new(false));
        let ticker = {
            let engine = engine.clone();
            let stop = stop_ticker.clone();
            std::thread::Builder::new()
                .name("ucms-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::sleep(epoch_tick);
                        engine.increment_epoch();
                    }
                })
                .context("cannot start the epoch ticker thread")?
        };
        tracing::debug!(?allocator, %engine_hash, "wasm engine ready");
        Ok(Self {
            engine,
            instance_permits: Arc::new(tokio::sync::Semaphore::new(
                config.max_instances.max(1) as usize
            )),
            cpu_lanes: cpu::CpuLanes::new(
                config.long_running_lanes,
                Duration::from_millis(u64::from(config.long_running_after_ms)),
            ),
            allocator,
            cache,
            engine_hash,
            epoch_tick,
            stop_ticker,
            ticker: Some(ticker),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// What every invoker of the site shares: its instance slots and its CPU lanes.
    pub fn slots(&self) -> SiteSlots {
        SiteSlots {
            instances: self.instance_permits.clone(),
            cpu_lanes: self.cpu_lanes.clone(),
        }
    }

    pub fn allocator(&self) -> Allocator {
        self.allocator
    }

    pub fn epoch_tick(&self) -> Duration {
        self.epoch_tick
    }

    /// Compiles `wasm` (a component), or loads its precompiled form from the cache.
    pub fn compile(&self, wasm: &[u8]) -> anyhow::Result<Component> {
        let digest = crate::digest::sha256_hex(wasm);
        if let Some(cache) = &self.cache
            && let Some(component) = cache.load(&self.engine, &digest, &self.engine_hash)
        {
            return Ok(component);
        }
        let component = Component::new(&self.engine, wasm)
            .map_err(|e| anyhow::Error::from(e).context("the component does not compile"))?;
        if let Some(cache) = &self.cache {
            cache.store(&component, &digest, &self.engine_hash);
        }
        Ok(component)
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.stop_ticker.store(true, Ordering::Relaxed);
        if let Some(ticker) = self.ticker.take() {
            let _ = ticker.join();
        }
    }
}

fn engine_config(pooling: Option<PoolingAllocationConfig>) -> Config {
    let mut config = Config::new();
    config.wasm_component_model(true);
    config.epoch_interruption(true);
    // A guest's deep recursion becomes a clean stack-overflow trap well inside the fiber's stack.
    config.max_wasm_stack(1 << 20);
    config.async_stack_size(2 << 20);
    if let Some(pooling) = pooling {
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    }
    config
}

fn pooling_config(config: &RuntimeConfig, max_memory: usize) -> PoolingAllocationConfig {
    let instances = config.max_instances.max(1);
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_component_instances(instances)
        // A Rust guest has a handful of core instances (its module plus adapters and shims).
        .total_core_instances(instances.saturating_mul(8))
        .total_memories(instances.saturating_mul(2))
        .total_tables(instances.saturating_mul(4))
        .total_stacks(instances)
        .max_memory_size(max_memory)
        // After an instance, reset its memory in place instead of handing the pages back to the
        // kernel: with PAGEMAP_SCAN (Linux 6.7+) only the pages it dirtied are zeroed, so the
        // next instance in the slot takes no page faults and no TLB shootdown. Measured here:
        // 16 µs per fresh instance + call, against 36–45 µs with madvise (docs/performance.md).
        .linear_memory_keep_resident(config.memory_keep_resident_kib as usize * 1024)
        .table_keep_resident(64 * 1024)
        .pagemap_scan(wasmtime::Enabled::Auto);
    pooling
}
