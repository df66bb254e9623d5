//! Prometheus metrics, per plugin, served at `GET /metrics`.
//!
//! Every family is labelled by `plugin`; outcomes and error codes are small fixed sets, so the
//! number of series grows with the number of plugins, never with traffic.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub mod storage;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct InvocationLabels {
    pub plugin: String,
    /// `http`, `event`, `lifecycle`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub plugin: String,
    pub kind: &'static str,
    /// The error code the caller saw: `plugin_timeout`, `plugin_panicked`, ...
    pub code: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TrapLabels {
    pub plugin: String,
    /// `panic`, `timeout`, `memory`, `stack_overflow`, `trap`.
    pub cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabels {
    pub plugin: String,
    pub version: String,
    /// `enabled`, `disabled` or `failed`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub plugin: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StatusLabels {
    /// `2xx`, `4xx`, `5xx`...
    pub class: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    pub plugin: String,
    /// `index` (served by a declared index), `scan` (no index covers it), `search` (full text)
    /// or `count`.
    pub plan: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheLabels {
    pub plugin: String,
    /// `get`, `set`, `delete`, `invalidate`.
    pub op: &'static str,
    /// `hit` or `miss` for `get`, `done` otherwise.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    pub plugin: String,
    /// `in` (written) or `out` (read).
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LimitLabels {
    pub plugin: String,
    /// The limit's key: `cpu-ms`, `events-per-minute`, `max-outbound-kib`...
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StorageLabels {
    pub plugin: String,
    /// `documents`, `document_bytes`, `blobs`, `blob_bytes`, `kv_keys`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    pub plugin: String,
    /// The capability whose use was refused: `http-client`, `events`...
    pub capability: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs .. ~1.6 s
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// The site's metrics. Cloning shares the same series.
#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    plugin_info: Family<VersionLabels, Gauge>,
    invocations: Family<InvocationLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    traps: Family<TrapLabels, Counter>,
    duration: HistogramFamily<InvocationLabels>,
    in_flight: Family<PluginLabels, Gauge>,
    memory_peak: Family<PluginLabels, Gauge>,
    events_published: Family<PluginLabels, Counter>,
    event_deliveries: Family<OutcomeLabels, Counter>,
    dead_letters: Family<PluginLabels, Counter>,
    /// The event bus's per-subscriber latency, backlog and retries.
    bus: BusMetrics,
    /// Hook calls and schedule ticks.
    hooks: HookMetrics,
    outbound: Family<OutcomeLabels, Counter>,
    cpu_seconds: Family<PluginLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    limit_breaches: Family<LimitLabels, Counter>,
    capability_refusals: Family<RefusalLabels, Counter>,
    quarantined: Family<PluginLabels, Gauge>,
    storage: Family<StorageLabels, Gauge>,
    log_dropped: Family<PluginLabels, Counter>,
    http_responses: Family<StatusLabels, Counter>,
    document_queries: HistogramFamily<QueryLabels>,
    cache_requests: Family<CacheLabels, Counter>,
    blob_bytes: Family<DirectionLabels, Counter>,
    /// `ucms_http_responses_total` by class, resolved once: 1xx, 2xx, 3xx, 4xx, 5xx.
    status_classes: Arc<[Counter; 5]>,
    /// The info labels currently set per plugin (families can't be searched by label).
    info_labels: Arc<std::sync::Mutex<std::collections::HashMap<String, VersionLabels>>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn plugin(id: &str) -> PluginLabels {
    PluginLabels {
        plugin: id.to_string(),
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("ucms");
        let m = Self {
            registry: Arc::default(),
            plugin_info: Family::default(),
            invocations: Family::default(),
            errors: Family::default(),
            traps: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            in_flight: Family::default(),
            memory_peak: Family::default(),
            events_published: Family::default(),
            event_deliveries: Family::default(),
            dead_letters: Family::default(),
            bus: BusMetrics::default(),
            hooks: HookMetrics::default(),
            outbound: Family::default(),
            cpu_seconds: Family::default(),
            limit_breaches: Family::default(),
            capability_refusals: Family::default(),
            quarantined: Family::default(),
            storage: Family::default(),
            log_dropped: Family::default(),
            http_responses: Family::default(),
            document_queries: Family::new_with_constructor(latency_histogram),
            cache_requests: Family::default(),
            blob_bytes: Family::default(),
            info_labels: Arc::default(),
            status_classes: Arc::new(std::array::from_fn(|_| Counter::default())),
        };
        registry.register(
            "plugin_info",
            "Installed plugins (1 per plugin, labelled with version and state)",
            m.plugin_info.clone(),
        );
        registry.register(
            "plugin_invocations",
            "Plugin invocations started",
            m.invocations.clone(),
        );
        registry.register(
            "plugin_errors",
            "Plugin invocations that failed, by the error code returned",
            m.errors.clone(),
        );
        registry.register(
            "plugin_traps",
            "Plugin instances stopped by a trap, by cause",
            m.traps.clone(),
        );
        registry.register(
            "plugin_invocation_duration_seconds",
            "Time from instantiation to result",
            m.duration.clone(),
        );
        registry.register(
            "plugin_instances_in_flight",
            "Plugin instances running now",
            m.in_flight.clone(),
        );
        registry.register(
            "plugin_memory_peak_bytes",
            "Largest linear memory an instance of the plugin reached",
            m.memory_peak.clone(),
        );
        registry.register(
            "events_published",
            "Events published by the plugin",
            m.events_published.clone(),
        );
        registry.register(
            "event_deliveries",
            "Event delivery attempts to the plugin, by outcome",
            m.event_deliveries.clone(),
        );
        registry.register(
            "event_dead_letters",
            "Events parked as dead letters for the plugin",
            m.dead_letters.clone(),
        );
        registry.register(
            "plugin_outbound_requests",
            "Outbound HTTP requests by the plugin, by outcome",
            m.outbound.clone(),
        );
        registry.register(
            "plugin_cpu_seconds",
            "CPU time spent running the plugin (its guest code and the host work done during its polls)",
            m.cpu_seconds.clone(),
        );
        registry.register(
            "plugin_limit_breaches",
            "Limit breaches by the plugin, by limit (each is also a log line with its error code)",
            m.limit_breaches.clone(),
        );
        registry.register(
            "plugin_capability_refusals",
            "Capability uses refused at run time (a host outside the grant, a topic not granted...), by capability",
            m.capability_refusals.clone(),
        );
        registry.register(
            "plugin_quarantined",
            "1 while the plugin is quarantined for misbehaving",
            m.quarantined.clone(),
        );
        registry.register(
            "plugin_storage",
            "What the plugin stores: documents, document_bytes, blobs, blob_bytes, kv_keys (refreshed every 15 s)",
            m.storage.clone(),
        );
        registry.register(
            "plugin_log_lines_dropped",
            "Log lines dropped by the plugin's rate limit",
            m.log_dropped.clone(),
        );
        registry.register(
            "http_responses",
            "HTTP responses by status class",
            m.http_responses.clone(),
        );
        registry.register(
            "document_query_duration_seconds",
            "Time of document queries, counts and searches, by plan: a declared index, a scan, full-text search or a count",
            m.document_queries.clone(),
        );
        registry.register(
            "cache_requests",
            "Cache requests by the plugin, by operation and outcome",
            m.cache_requests.clone(),
        );
        registry.register(
            "blob_bytes",
            "Blob bytes written (in) and read (out) by the plugin",
            m.blob_bytes.clone(),
        );
        m.bus.register(&mut registry);
        m.hooks.register(&mut registry);
        let status_classes = Arc::new(["1xx", "2xx", "3xx", "4xx", "5xx"].map(|class| {
            m.http_responses
                .get_or_create(&StatusLabels { class })
                .clone()
        }));
        Self {
            registry: Arc::new(registry),
            status_classes,
            ..m
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)
            .expect("writing to a String can't fail");
        out
    }

    /// Records a plugin's version and state (`enabled`, `disabled`, `failed`), replacing what was
    /// recorded before for it.
    pub fn plugin_state(&self, id: &str, version: &str, state: &'static str) {
        let labels = VersionLabels {
            plugin: id.to_string(),
            version: version.to_string(),
            state,
        };
        let previous = self
            .info_labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id.to_string(), labels.clone());
        if let Some(previous) = previous {
            self.plugin_info.remove(&previous);
        }
        self.plugin_info.get_or_create(&labels).set(1);
        // Make the plugin's main series visible before its first call.
        let _ = self.invocations.get_or_create(&InvocationLabels {
            plugin: id.to_string(),
            kind: "http",
        });
        let _ = self.in_flight.get_or_create(&plugin(id));
    }

    /// Drops a removed plugin's info series.
    pub fn forget_plugin(&self, id: &str) {
        let previous = self
            .info_labels
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(id);
        if let Some(previous) = previous {
            self.plugin_info.remove(&previous);
        }
    }

    /// A limit breach by `id`.
    pub fn limit_breach(&self, id: &str, limit: &'static str) {
        self.limit_breaches
            .get_or_create(&LimitLabels {
                plugin: id.to_string(),
                limit,
            })
            .inc();
    }

    /// A capability use refused at run time.
    pub fn capability_refused(&self, id: &str, capability: &'static str) {
        self.capability_refusals
            .get_or_create(&RefusalLabels {
                plugin: id.to_string(),
                capability,
            })
            .inc();
    }

    /// Whether `id` is quarantined.
    pub fn quarantined(&self, id: &str, quarantined: bool) {
        self.quarantined
            .get_or_create(&plugin(id))
            .set(i64::from(quarantined));
    }

    /// What `id` stores, by kind.
    pub fn storage(&self, id: &str, kind: &'static str, value: i64) {
        self.storage
            .get_or_create(&StorageLabels {
                plugin: id.to_string(),
                kind,
            })
            .set(value);
    }

    /// Handles to one plugin's hot-path series, resolved once (no label lookups per call).
    pub fn plugin(&self, id: &str) -> PluginMetrics {
        let kind = |kind: &'static str| {
            let labels = InvocationLabels {
                plugin: id.to_string(),
                kind,
            };
            (
                self.invocations.get_or_create(&labels).clone(),
                self.duration.get_or_create(&labels).clone(),
            )
        };
        let (http_count, http_time) = kind("http");
        let (event_count, event_time) = kind("event");
        let (lifecycle_count, lifecycle_time) = kind("lifecycle");
        PluginMetrics {
            id: id.to_string(),
            site: self.clone(),
            http: (http_count, http_time),
            event: (event_count, event_time),
            lifecycle: (lifecycle_count, lifecycle_time),
            in_flight: self.in_flight.get_or_create(&plugin(id)).clone(),
            memory_peak: self.memory_peak.get_or_create(&plugin(id)).clone(),
            cpu_seconds: self.cpu_seconds.get_or_create(&plugin(id)).clone(),
        }
    }

    /// An invocation refused before it started (busy, disabled): an error without a run.
    pub fn invocation_refused(&self, id: &str, kind: &'static str, code: &'static str) {
        self.errors
            .get_or_create(&ErrorLabels {
                plugin: id.to_string(),
                kind,
                code,
            })
            .inc();
    }

    pub fn trap(&self, id: &str, cause: &'static str) {
        self.traps
            .get_or_create(&TrapLabels {
                plugin: id.to_string(),
                cause,
            })
            .inc();
    }

    pub fn event_published(&self, id: &str, _subscribers: usize) {
        self.events_published.get_or_create(&plugin(id)).inc();
    }

    /// One delivery attempt to `subscriber`: `delivered`, `failed`, `postponed` or `dropped`;
    /// `dead` when it was the last attempt and failed.
    pub fn event_delivery(&self, subscriber: &str, outcome: &'static str, dead: bool) {
        self.event_deliveries
            .get_or_create(&OutcomeLabels {
                plugin: subscriber.to_string(),
                outcome,
            })
            .inc();
        if dead {
            self.dead_letters.get_or_create(&plugin(subscriber)).inc();
        }
    }

    /// A delivery handled by `subscriber`, `latency` after its event was published.
    pub fn event_delivered(&self, subscriber: &str, latency: Duration) {
        self.bus
            .latency
            .get_or_create(&plugin(subscriber))
            .observe(latency.as_secs_f64());
    }

    /// A failed delivery to `subscriber` scheduled for another attempt.
    pub fn event_retry(&self, subscriber: &str) {
        self.bus.retries.get_or_create(&plugin(subscriber)).inc();
    }

    /// The deliveries waiting (`pending`) and parked (`dead`) per subscriber, as counted in the
    /// outbox; subscribers missing from `backlog` have none.
    pub fn event_backlog<'a>(&self, backlog: impl IntoIterator<Item = (&'a str, i64, i64)>) {
        let mut seen = self.bus.known.lock().unwrap_or_else(|e| e.into_inner());
        let mut now = std::collections::HashSet::new();
        for (subscriber, pending, dead) in backlog {
            self.bus
                .pending
                .get_or_create(&plugin(subscriber))
                .set(pending);
            self.bus.dead.get_or_create(&plugin(subscriber)).set(dead);
            now.insert(subscriber.to_string());
        }
        for gone in seen.difference(&now) {
            self.bus.pending.get_or_create(&plugin(gone)).set(0);
            self.bus.dead.get_or_create(&plugin(gone)).set(0);
        }
        seen.extend(now);
    }

    pub fn outbound_request(&self, id: &str, outcome: &'static str) {
        self.outbound
            .get_or_create(&OutcomeLabels {
                plugin: id.to_string(),
                outcome,
            })
            .inc();
    }

    /// A document query, count or search and how it was planned.
    pub fn document_query(&self, id: &str, plan: &'static str, elapsed: Duration) {
        self.document_queries
            .get_or_create(&QueryLabels {
                plugin: id.to_string(),
                plan,
            })
            .observe(elapsed.as_secs_f64());
    }

    /// A cache request; `hit` is known for `get` only.
    pub fn cache_op(&self, id: &str, op: &'static str, hit: Option<bool>) {
        let outcome = match hit {
            Some(true) => "hit",
            Some(false) => "miss",
            None => "done",
        };
        self.cache_requests
            .get_or_create(&CacheLabels {
                plugin: id.to_string(),
                op,
                outcome,
            })
            .inc();
    }

    pub fn blob_bytes(&self, id: &str, direction: &'static str, bytes: u64) {
        self.blob_bytes
            .get_or_create(&DirectionLabels {
                plugin: id.to_string(),
                direction,
            })
            .inc_by(bytes);
    }

    pub fn log_dropped(&self, id: &str) {
        self.log_dropped.get_or_create(&plugin(id)).inc();
    }

    /// One hook call: `outcome` is `unchanged`, `changed`, `rejected`, `failed_rejected` (a
    /// failure that rejected, per `on-failure`) or `failed_skipped`.
    pub fn hook_call(&self, id: &str, point: &str, outcome: &'static str, elapsed: Duration) {
        self.hooks
            .calls
            .get_or_create(&HookLabels {
                plugin: id.to_string(),
                point: point.to_string(),
                outcome,
            })
            .inc();
        self.hooks
            .duration
            .get_or_create(&HookPointLabels {
                plugin: id.to_string(),
                point: point.to_string(),
            })
            .observe(elapsed.as_secs_f64());
    }

    /// One schedule tick run by this node: `outcome` is `ok`, `error` or `skipped` (disabled).
    pub fn schedule_tick(&self, id: &str, schedule: &str, outcome: &'static str) {
        self.hooks
            .ticks
            .get_or_create(&TickLabels {
                plugin: id.to_string(),
                schedule: schedule.to_string(),
                outcome,
            })
            .inc();
    }

    pub fn http_response(&self, status: u16) {
        let class = match status {
            100..=199 => 0,
            200..=299 => 1,
            300..=399 => 2,
            400..=499 => 3,
            _ => 4,
        };
        self.status_classes[class].inc();
    }
}

/// One plugin's hot-path series (see [`Metrics::plugin`]).
#[derive(Clone)]
pub struct PluginMetrics {
    id: String,
    site: Metrics,
    http: (Counter, Histogram),
    event: (Counter, Histogram),
    lifecycle: (Counter, Histogram),
    in_flight: Gauge,
    memory_peak: Gauge,
    cpu_seconds: Counter<f64, std::sync::atomic::AtomicU64>,
}

impl std::fmt::Debug for PluginMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginMetrics")
            .field("plugin", &self.id)
            .finish_non_exhaustive()
    }
}

impl PluginMetrics {
    fn kind(&self, kind: &str) -> &(Counter, Histogram) {
        match kind {
            "event" => &self.event,
            "lifecycle" => &self.lifecycle,
            _ => &self.http,
        }
    }

    pub fn started(&self, kind: &'static str) {
        self.kind(kind).0.inc();
        self.in_flight.inc();
    }

    pub fn finished(
        &self,
        kind: &'static str,
        elapsed: Duration,
        cpu: Duration,
        peak_memory: usize,
        error_code: Option<&'static str>,
    ) {
        self.in_flight.dec();
        self.kind(kind).1.observe(elapsed.as_secs_f64());
        self.cpu_seconds.inc_by(cpu.as_secs_f64());
        if peak_memory as i64 > self.memory_peak.get() {
            self.memory_peak.set(peak_memory as i64);
        }
        if let Some(code) = error_code {
            self.site.invocation_refused(&self.id, kind, code);
        }
    }

    /// An invocation refused before it started, or a response refused after it.
    pub fn refused(&self, kind: &'static str, code: &'static str) {
        self.site.invocation_refused(&self.id, kind, code);
    }

    pub fn trap(&self, cause: &'static str) {
        self.site.trap(&self.id, cause);
    }
}

/// Event bus metrics per subscriber plugin.
#[derive(Clone)]
struct BusMetrics {
    latency: HistogramFamily<PluginLabels>,
    retries: Family<PluginLabels, Counter>,
    pending: Family<PluginLabels, Gauge>,
    dead: Family<PluginLabels, Gauge>,
    /// Subscribers a backlog was reported for, so one that drained is set back to 0.
    known: Arc<std::sync::Mutex<std::collections::HashSet<String>>>,
}

fn delivery_latency_histogram() -> Histogram {
    // 1 ms .. ~9 min: deliveries wait for retries.
    Histogram::new(exponential_buckets(0.001, 2.0, 20))
}

impl Default for BusMetrics {
    fn default() -> Self {
        Self {
            latency: Family::new_with_constructor(delivery_latency_histogram),
            retries: Family::default(),
            pending: Family::default(),
            dead: Family::default(),
            known: Arc::default(),
        }
    }
}

impl BusMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "event_delivery_latency_seconds",
            "Time from publishing an event to its successful handling by the plugin",
            self.latency.clone(),
        );
        registry.register(
            "event_retries",
            "Failed event deliveries to the plugin scheduled for another attempt",
            self.retries.clone(),
        );
        registry.register(
            "event_backlog",
            "Event deliveries waiting for the plugin (pending, including retries)",
            self.pending.clone(),
        );
        registry.register(
            "event_dead_letters_held",
            "Dead letters of the plugin waiting to be replayed or discarded",
            self.dead.clone(),
        );
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookLabels {
    pub plugin: String,
    /// The hook point, as declared in manifests (a small, fixed set).
    pub point: String,
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HookPointLabels {
    pub plugin: String,
    pub point: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TickLabels {
    pub plugin: String,
    pub schedule: String,
    pub outcome: &'static str,
}

#[derive(Clone)]
struct HookMetrics {
    calls: Family<HookLabels, Counter>,
    duration: HistogramFamily<HookPointLabels>,
    ticks: Family<TickLabels, Counter>,
}

impl Default for HookMetrics {
    fn default() -> Self {
        Self {
            calls: Family::default(),
            duration: Family::new_with_constructor(latency_histogram),
            ticks: Family::default(),
        }
    }
}

impl HookMetrics {
    fn register(&self, registry: &mut Registry) {
        registry.register(
            "hook_calls",
            "Hook calls of the plugin, by hook point and outcome",
            self.calls.clone(),
        );
        registry.register(
            "hook_duration_seconds",
            "Time of the plugin's hook calls, by hook point",
            self.duration.clone(),
        );
        registry.register(
            "schedule_ticks",
            "Schedule ticks this node ran for the plugin, by schedule and outcome",
            self.ticks.clone(),
        );
    }
}
