//! One invocation of a plugin: a fresh store and instance, a deadline, a memory limit, and a
//! precise account of how it ended.
//!
//! [`Invoker::run`] is the only place guest code runs. It waits for a concurrency permit, builds an
//! [`InvocationState`] (the store's data: the plugin's context, the principal, WASI with no files,
//! environment or network, captured stdout/stderr), instantiates from the plugin's `InstancePre`,
//! runs the call under the epoch deadline, and turns every failure into an [`InvocationError`]
//! that names its cause (panic, timeout, memory, stack overflow, trap). Nothing a guest does can
//! take down the host: the store is dropped and the next invocation starts clean.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Store, Trap, UpdateDeadline};
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use super::PluginContext;
use super::cpu::CpuMeter;
use super::limits::{CpuBudgetExceeded, DeadlineExceeded, MemoryLimitExceeded, StoreLimiter};
use super::output::CapturedOutput;
use crate::capabilities::auth::{AuthCtx, AuthView};
use crate::capabilities::blobs::{BlobsCtx, BlobsView};
use crate::capabilities::cache::{CacheCtx, CacheView};
use crate::capabilities::config::{ConfigView, PluginSettings};
use crate::capabilities::documents::{DocumentsCtx, DocumentsView};
use crate::capabilities::events::{EventsCtx, EventsView, StagedEvents};
use crate::capabilities::hooks::{HooksCtx, HooksView};
use crate::capabilities::http_client::{HttpClientView, HttpCtx};
use crate::capabilities::kv::{KvBackend, KvCtx, KvView, StagedKv};
use crate::capabilities::log::{LogCtx, LogView};
use crate::identity::Principal;
use crate::wit::{Plugin, PluginPre};

/// Bytes of a guest's stdout and stderr kept per invocation, for the log.
const OUTPUT_CAPTURE: usize = 16 * 1024;

/// What runs the invocation: an HTTP request, an event delivery, a lifecycle call, a hook or a
/// schedule tick.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Http,
    Event,
    Lifecycle,
    Hook,
    Schedule,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Event => "event",
            Self::Lifecycle => "lifecycle",
            Self::Hook => "hook",
            Self::Schedule => "schedule",
        }
    }
}

/// Where an install or upgrade hook's effects wait for the switch (see `plugins::lifecycle`).
#[derive(Clone)]
pub struct Staging {
    pub kv: Arc<StagedKv>,
    pub events: Arc<StagedEvents>,
}

/// The data of one invocation's store.
pub struct InvocationState {
    pub(crate) plugin: Arc<PluginContext>,
    pub(crate) principal: Principal,
    pub(crate) request_id: String,
    /// Outbound HTTP requests made so far.
    pub(crate) outbound_requests: u32,
    /// Outbound HTTP body bytes sent and received so far.
    pub(crate) outbound_bytes: u64,
    pub(crate) deadline: Instant,
    /// Set for `install` and `upgrade` hooks: their kv writes and events wait for the switch.
    pub(crate) staging: Option<Staging>,
    /// Blob writers and readers open in this invocation.
    pub(crate) open_blob_handles: usize,
    /// Hook calls on the stack: 0 for a route, an event or a tick; n inside a hook n levels down.
    pub(crate) hook_depth: u8,
    limiter: StoreLimiter,
    wasi: WasiCtx,
    table: ResourceTable,
    stdout: CapturedOutput,
    stderr: CapturedOutput,
}

impl InvocationState {
    pub fn plugin(&self) -> &PluginContext {
        &self.plugin
    }
}

// Each capability's view of the invocation: what its host functions may see, and no more.

impl KvView for InvocationState {
    fn kv(&mut self) -> KvCtx<'_> {
        let plugin = &*self.plugin;
        let backend: &dyn KvBackend = match &self.staging {
            Some(staging) => &*staging.kv,
            None => &*plugin.services.kv,
        };
        KvCtx {
            plugin: plugin.id.as_str(),
            backend,
            max_value: plugin.services.limits.kv_max_value,
        }
    }
}

impl LogView for InvocationState {
    fn log(&mut self) -> LogCtx<'_> {
        let plugin = &*self.plugin;
        LogCtx {
            plugin: plugin.id.as_str(),
            request_id: &self.request_id,
            limiter: &plugin.caps.log,
            metrics: &plugin.services.metrics,
            health: &plugin.health,
            ring: &plugin.log,
        }
    }
}

impl ConfigView for InvocationState {
    fn settings(&mut self) -> &PluginSettings {
        &self.plugin.caps.settings
    }
}

impl EventsView for InvocationState {
    fn events(&mut self) -> EventsCtx<'_> {
        events_ctx(&self.plugin, self.staging.as_ref())
    }
}

fn events_ctx<'a>(plugin: &'a PluginContext, staging: Option<&'a Staging>) -> EventsCtx<'a> {
    EventsCtx {
        plugin: plugin.id.as_str(),
        grant: plugin.manifest.capabilities.events.as_ref(),
        bus: &plugin.services.events,
        metrics: &plugin.services.metrics,
        max_payload: plugin.services.limits.event_max_payload,
        staged: staging.map(|s| &*s.events),
        rate: &plugin.caps.events,
        health: &plugin.health,
    }
}

impl DocumentsView for InvocationState {
    fn documents(&mut self) -> DocumentsCtx<'_> {
        let plugin = &*self.plugin;
        DocumentsCtx {
            plugin: plugin.id.as_str(),
            store: &plugin.services.documents,
            state: plugin
                .caps
                .documents
                .as_ref()
                .expect("documents is linked only for plugins granted it"),
            metrics: &plugin.services.metrics,
            events: events_ctx(plugin, self.staging.as_ref()),
        }
    }
}

impl BlobsView for InvocationState {
    fn blobs(&mut self) -> BlobsCtx<'_> {
        let plugin = &*self.plugin;
        BlobsCtx {
            plugin: plugin.id.as_str(),
            store: &plugin.services.blobs,
            state: plugin
                .caps
                .blobs
                .expect("blobs is linked only for plugins granted it"),
            metrics: &plugin.services.metrics,
            table: &mut self.table,
            open_handles: &mut self.open_blob_handles,
        }
    }
}

impl CacheView for InvocationState {
    fn cache(&mut self) -> CacheCtx<'_> {
        let plugin = &*self.plugin;
        CacheCtx {
            plugin: plugin.id.as_str(),
            backend: &*plugin.services.cache,
            limits: &plugin.services.cache_limits,
            metrics: &plugin.services.metrics,
        }
    }
}

impl AuthView for InvocationState {
    fn auth(&mut self) -> AuthCtx<'_> {
        AuthCtx {
            plugin: &self.plugin.manifest,
            principal: &self.principal,
            health: &self.plugin.health,
        }
    }
}

impl HttpClientView for InvocationState {
    fn http_client(&mut self) -> HttpCtx<'_> {
        let plugin = &*self.plugin;
        HttpCtx {
            plugin: plugin.id.as_str(),
            state: plugin
                .caps
                .http
                .as_ref()
                .expect("http-client is linked only for plugins granted it"),
            metrics: &plugin.services.metrics,
            calls_made: &mut self.outbound_requests,
            max_calls: plugin.limits.max_outbound_requests,
            bytes_moved: &mut self.outbound_bytes,
            max_bytes: plugin.limits.max_outbound_bytes(),
            health: &plugin.health,
            deadline: self.deadline,
        }
    }
}

impl HooksView for InvocationState {
    fn hooks(&mut self) -> HooksCtx<'_> {
        HooksCtx {
            plugin: self.plugin.id.as_str(),
            principal: &self.principal,
            state: self
                .plugin
                .caps
                .hooks
                .as_ref()
                .expect("hooks is linked only for plugins granted it"),
            depth: self.hook_depth,
            health: &self.plugin.health,
        }
    }
}

impl WasiView for InvocationState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// Why an invocation produced no result.
#[derive(Debug, thiserror::Error)]
pub enum InvocationError {
    #[error(
        "plugin '{plugin}' is busy: {limit} instances are already running (limits.max-concurrency)"
    )]
    Busy { plugin: String, limit: u32 },
    #[error(
        "the site is running as many instances as it may ([runtime] max-instances); plugin '{plugin}' could not start one"
    )]
    SiteBusy { plugin: String },
    #[error("plugin '{plugin}' did not finish within its {} ms deadline (limits.timeout-ms)", .timeout.as_millis())]
    Timeout { plugin: String, timeout: Duration },
    #[error("plugin '{plugin}' used up its CPU budget of {} ms for one call (limits.cpu-ms)", .budget.as_millis())]
    CpuLimit { plugin: String, budget: Duration },
    #[error("plugin '{plugin}' exceeded its memory limit of {} MiB (limits.memory-mib)", .limit / (1024 * 1024))]
    MemoryLimit { plugin: String, limit: usize },
    #[error("plugin '{plugin}' overflowed its stack (runaway recursion)")]
    StackOverflow { plugin: String },
    #[error("plugin '{plugin}' panicked")]
    Panicked { plugin: String, message: String },
    #[error("plugin '{plugin}' trapped: {trap}")]
    Trapped { plugin: String, trap: String },
    #[error(
        "plugin '{plugin}' returned a response of {size} bytes, over its limit of {limit} bytes (limits.max-response-body-kib)"
    )]
    ResponseTooLarge {
        plugin: String,
        limit: usize,
        size: usize,
    },
    #[error("plugin '{plugin}' returned an invalid response: {reason}")]
    InvalidResponse { plugin: String, reason: String },
    #[error("plugin '{plugin}' could not be run")]
    Internal {
        plugin: String,
        #[source]
        error: anyhow::Error,
    },
}

impl InvocationError {
    /// The error code callers see; stable, documented in `docs/errors.md`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Busy { .. } => "plugin_busy",
            Self::SiteBusy { .. } => "site_busy",
            Self::Timeout { .. } => "plugin_timeout",
            Self::CpuLimit { .. } => "plugin_cpu_limit",
            Self::MemoryLimit { .. } => "plugin_memory_limit",
            Self::StackOverflow { .. } => "plugin_stack_overflow",
            Self::Panicked { .. } => "plugin_panicked",
            Self::Trapped { .. } => "plugin_trapped",
            Self::ResponseTooLarge { .. } => "plugin_response_too_large",
            Self::InvalidResponse { .. } => "plugin_invalid_response",
            Self::Internal { .. } => "plugin_failed",
        }
    }

    /// For the `ucms_plugin_traps_total` metric: the causes that stopped an instance.
    pub fn trap_cause(&self) -> Option<&'static str> {
        match self {
            Self::Timeout { .. } => Some("timeout"),
            Self::CpuLimit { .. } => Some("cpu"),
            Self::MemoryLimit { .. } => Some("memory"),
            Self::StackOverflow { .. } => Some("stack_overflow"),
            Self::Panicked { .. } => Some("panic"),
            Self::Trapped { .. } => Some("trap"),
            _ => None,
        }
    }

    /// Whether this failure counts against the plugin's health (toward quarantine): its own
    /// misbehaviour, not the site being busy or the host failing.
    pub fn counts_against_plugin(&self) -> bool {
        !matches!(
            self,
            Self::Busy { .. } | Self::SiteBusy { .. } | Self::Internal { .. }
        )
    }
}

/// A boxed call on an instance; see [`Invoker::run`].
pub type Call<'a, R> = Pin<Box<dyn Future<Output = wasmtime::Result<R>> + Send + 'a>>;

/// Runs invocations of one plugin.
pub struct Invoker {
    pub ctx: Arc<PluginContext>,
    pre: PluginPre<InvocationState>,
    permits: Arc<Semaphore>,
    /// The site's instance slots (`[runtime] max-instances`) and CPU lanes, shared by every
    /// plugin.
    site: super::SiteSlots,
    /// How long a call waits for a free instance slot before it is refused as busy.
    queue_timeout: Duration,
}

impl std::fmt::Debug for Invoker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Invoker")
            .field("plugin", &self.ctx.id)
            .finish_non_exhaustive()
    }
}

impl Invoker {
    /// Links the plugin's granted capabilities and pre-instantiates its component. Errors here
    /// (an import the host can't satisfy, an export missing) refuse the plugin.
    pub fn new(
        ctx: Arc<PluginContext>,
        component: &Component,
        linker: &Linker<InvocationState>,
        site: super::SiteSlots,
    ) -> anyhow::Result<Self> {
        let instance_pre = linker.instantiate_pre(component)?;
        let pre = PluginPre::new(instance_pre)?;
        let permits = Arc::new(Semaphore::new(ctx.limits.max_concurrency as usize));
        Ok(Self {
            queue_timeout: ctx.limits.timeout().min(Duration::from_secs(1)),
            ctx,
            pre,
            permits,
            site,
        })
    }

    /// Runs `call` on a fresh instance, for `principal`, within `timeout`.
    pub async fn run<R, F>(
        &self,
        kind: Kind,
        principal: Principal,
        request_id: &str,
        timeout: Duration,
        call: F,
    ) -> Result<R, InvocationError>
    where
        R: Send,
        F: for<'a> FnOnce(&'a mut Store<InvocationState>, &'a Plugin) -> Call<'a, R> + Send,
    {
        let plugin_id = self.ctx.id.as_str();
        let metrics = &self.ctx.metrics;
        // A slot of this plugin, then one of the site: both bounded, both waited for briefly so a
        // burst queues instead of failing outright.
        let Some(_plugin_slot) = acquire(&self.permits, self.queue_timeout).await else {
            metrics.refused(kind.as_str(), "plugin_busy");
            return Err(InvocationError::Busy {
                plugin: plugin_id.to_string(),
                limit: self.ctx.limits.max_concurrency,
            });
        };
        let Some(_site_slot) = acquire(&self.site.instances, self.queue_timeout).await else {
            metrics.refused(kind.as_str(), "site_busy");
            return Err(InvocationError::SiteBusy {
                plugin: plugin_id.to_string(),
            });
        };
        metrics.started(kind.as_str());
        let started = Instant::now();
        let deadline = started + timeout;
        let stdout = CapturedOutput::new(OUTPUT_CAPTURE);
        let stderr = CapturedOutput::new(OUTPUT_CAPTURE);
        let wasi = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .build();
        let state = InvocationState {
            plugin: self.ctx.clone(),
            principal,
            request_id: request_id.to_string(),
            outbound_requests: 0,
            outbound_bytes: 0,
            deadline,
            staging: None,
            open_blob_handles: 0,
            hook_depth: 0,
            limiter: StoreLimiter::new(self.ctx.limits.memory_bytes()),
            wasi,
            table: ResourceTable::new(),
            stdout,
            stderr,
        };
        let mut store = Store::new(self.pre.engine(), state);
        store.limiter(|state| &mut state.limiter);
        // The CPU budget: the plugin's per-call budget, never past the wall-clock deadline;
        // install and upgrade hooks (which may migrate data) get their whole deadline.
        let cpu_budget = match kind {
            Kind::Lifecycle => timeout,
            _ => self.ctx.limits.cpu_budget().min(timeout),
        };
        let cpu = Arc::new(CpuMeter::default());
        let meter = cpu.clone();
        let lanes = self.site.cpu_lanes.clone();
        let held = super::cpu::HeldLane::default();
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(move |_| {
            let used = meter.used();
            if Instant::now() >= deadline {
                Err(DeadlineExceeded(timeout).into())
            } else if used > cpu_budget {
                Err(CpuBudgetExceeded(cpu_budget).into())
            } else if lanes.is_long_running(used) {
                // A long computation takes turns with the others on the site's few CPU lanes,
                // so short requests keep the rest of the cores.
                Ok(UpdateDeadline::YieldCustom(
                    1,
                    Box::pin(lanes.requeue(&held)),
                ))
            } else {
                // Let other tasks run between ticks; a busy guest can't hog a worker thread.
                Ok(UpdateDeadline::Yield(1))
            }
        });

        // Host calls (storage, outbound HTTP) don't reach an epoch check while they wait, so the
        // whole call also runs under a timer, a little later than the deadline.
        let run = async {
            let instance = self.pre.instantiate_async(&mut store).await?;
            call(&mut store, &instance).await
        };
        let span = tracing::info_span!(
            "plugin.invoke",
            otel.name = %format_args!("plugin.invoke {plugin_id}"),
            plugin = plugin_id,
            kind = kind.as_str(),
            request_id,
            code = tracing::field::Empty,
            cpu_us = tracing::field::Empty,
            memory_peak = tracing::field::Empty,
        );
        let result = match tokio::time::timeout_at(
            (deadline + Duration::from_millis(50)).into(),
            tracing::Instrument::instrument(cpu.measure(run), span.clone()),
        )
        .await
        {
            Ok(result) => result,
            Err(_) => Err(DeadlineExceeded(timeout).into()),
        };
        let cpu_used = cpu.used();

        let elapsed = started.elapsed();
        let state = store.into_data();
        let stdout = state.stdout.text();
        let stderr = state.stderr.text();
        let request_id = state.request_id.as_str();
        if !stdout.is_empty() {
            tracing::debug!(target: "ucms::plugin", plugin = plugin_id, request_id, stdout = %stdout.trim_end(), "plugin stdout");
        }
        // The guest's call stack at a trap, for the log (function names when the component
        // kept its name section, code offsets otherwise).
        let backtrace = result
            .as_ref()
            .err()
            .and_then(|e| e.downcast_ref::<wasmtime::WasmBacktrace>())
            .map(guest_backtrace)
            .unwrap_or_default();
        let outcome = result.map_err(|error| self.classify(error, &stderr, timeout));
        match &outcome {
            Ok(_) => {
                if !stderr.is_empty() {
                    tracing::info!(target: "ucms::plugin", plugin = plugin_id, request_id, stderr = %stderr.trim_end(), "plugin stderr");
                    self.ctx.log.push(
                        "info",
                        "plugin",
                        format!("stderr: {}", stderr.trim_end()),
                        serde_json::Value::Null,
                        Some(request_id.to_string()),
                    );
                }
            }
            Err(error) => {
                if let Some(cause) = error.trap_cause() {
                    metrics.trap(cause);
                }
                let detail = match error {
                    InvocationError::Panicked { message, .. } => message.clone(),
                    InvocationError::Internal { error, .. } => format!("{error:#}"),
                    _ => String::new(),
                };
                tracing::warn!(
                    plugin = plugin_id,
                    request_id,
                    kind = kind.as_str(),
                    code = error.code(),
                    elapsed_ms = elapsed.as_millis() as u64,
                    detail = %detail,
                    stderr = %stderr.trim_end(),
                    backtrace = %backtrace,
                    "{error}"
                );
                let mut message = format!("{} failed: {error}", kind.as_str());
                for (what, text) in [("detail", detail.as_str()), ("stderr", stderr.trim_end())] {
                    if !text.is_empty() {
                        message.push_str(&format!("\n{what}: {text}"));
                    }
                }
                self.ctx.log.push(
                    "error",
                    "host",
                    message,
                    serde_json::Value::Null,
                    Some(request_id.to_string()),
                );
            }
        }
        span.record("cpu_us", cpu_used.as_micros() as u64);
        span.record("memory_peak", state.limiter.peak_memory() as u64);
        span.record(
            "code",
            outcome.as_ref().err().map_or("ok", InvocationError::code),
        );
        metrics.finished(
            kind.as_str(),
            elapsed,
            cpu_used,
            state.limiter.peak_memory(),
            outcome.as_ref().err().map(InvocationError::code),
        );
        self.ctx.health.invocation(
            outcome
                .as_ref()
                .err()
                .filter(|e| e.counts_against_plugin())
                .map(InvocationError::code),
        );
        outcome
    }

    fn classify(&self, error: wasmtime::Error, stderr: &str, timeout: Duration) -> InvocationError {
        let plugin = self.ctx.id.to_string();
        for cause in error.chain() {
            if let Some(m) = cause.downcast_ref::<MemoryLimitExceeded>() {
                return InvocationError::MemoryLimit {
                    plugin,
                    limit: m.limit,
                };
            }
            if cause.downcast_ref::<DeadlineExceeded>().is_some() {
                return InvocationError::Timeout { plugin, timeout };
            }
            if let Some(CpuBudgetExceeded(budget)) = cause.downcast_ref::<CpuBudgetExceeded>() {
                return InvocationError::CpuLimit {
                    plugin,
                    budget: *budget,
                };
            }
            if cause
                .downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
                .is_some()
            {
                // Every instance slot of the site is taken: the site is busy, not the plugin broken.
                return InvocationError::SiteBusy { plugin };
            }
        }
        if let Some(trap) = error.downcast_ref::<Trap>() {
            return match trap {
                Trap::StackOverflow => InvocationError::StackOverflow { plugin },
                // Rust and C guests keep most of their stack in linear memory, below the heap;
                // running off its end is an out-of-bounds access, recognisable by a backtrace
                // that is one function calling itself.
                Trap::MemoryOutOfBounds if runaway_recursion(&error) => {
                    InvocationError::StackOverflow { plugin }
                }
                Trap::Interrupt => InvocationError::Timeout { plugin, timeout },
                Trap::UnreachableCodeReached if stderr.contains("panicked at") => {
                    InvocationError::Panicked {
                        plugin,
                        message: panic_message(stderr),
                    }
                }
                other => InvocationError::Trapped {
                    plugin,
                    trap: other.to_string(),
                },
            };
        }
        InvocationError::Internal {
            plugin,
            error: anyhow::Error::from(error),
        }
    }
}

/// Whether the trap's backtrace is full (the engine keeps the innermost frames) and dominated by
/// one function: the shape of runaway recursion.
fn runaway_recursion(error: &wasmtime::Error) -> bool {
    let Some(trace) = error.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return false;
    };
    let frames = trace.frames();
    if frames.len() < 16 {
        return false;
    }
    let mut counts = std::collections::HashMap::new();
    for frame in frames {
        *counts.entry(frame.func_index()).or_insert(0usize) += 1;
    }
    counts.values().any(|&n| n * 4 >= frames.len() * 3)
}

/// The innermost frames of a guest trap, one per line: `#0 my_plugin::handler (+0x1234)`.
fn guest_backtrace(trace: &wasmtime::WasmBacktrace) -> String {
    trace
        .frames()
        .iter()
        .take(32)
        .enumerate()
        .map(|(i, frame)| {
            let name = frame.func_name().unwrap_or("<unnamed>");
            match frame.module_offset() {
                Some(offset) => format!("#{i} {name} (+{offset:#x})"),
                None => format!("#{i} {name}"),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// A permit from `semaphore`, waiting at most `wait` when none is free.
async fn acquire(
    semaphore: &Semaphore,
    wait: Duration,
) -> Option<tokio::sync::SemaphorePermit<'_>> {
    match semaphore.try_acquire() {
        Ok(permit) => Some(permit),
        Err(_) => tokio::time::timeout(wait, semaphore.acquire())
            .await
            .ok()?
            .ok(),
    }
}

/// The panic line and its message from a Rust guest's stderr.
fn panic_message(stderr: &str) -> String {
    let start = stderr.find("panicked at").unwrap_or(0);
    stderr[start..]
        .lines()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
        .chars()
        .take(1000)
        .collect()
}
