//! How a plugin has been behaving, and stopping it when it keeps misbehaving.
//!
//! Every invocation and every limit breach is recorded in a sliding window of time buckets
//! ([`Health`]). When failures (traps, limit breaches) reach the policy's count within the window,
//! and are also a large enough share of the plugin's invocations, the plugin is *tripped*: the
//! [`Supervisor`] (the plugin manager) quarantines it on every node. Breaches are reported here
//! too, so each one is a log line, a metric and a tally in one place.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::identity::Identity;
use crate::metrics::Metrics;
use crate::policy::QuarantineRules;

/// Buckets the window is divided into.
const BUCKETS: usize = 12;
/// Failures kept for the quarantine report.
const RECENT: usize = 20;

/// One failure, as the quarantine report shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct FailureNote {
    /// Unix milliseconds.
    pub at: i64,
    /// The error code: `plugin_panicked`, `event_rate_exceeded`...
    pub code: String,
}

/// Why a plugin was tripped.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Trip {
    pub failures: u64,
    pub invocations: u64,
    pub window_secs: u64,
    /// The latest failures, oldest first.
    pub recent: Vec<FailureNote>,
}

impl Trip {
    pub fn reason(&self) -> String {
        let mut codes: Vec<&str> = self.recent.iter().map(|n| n.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        format!(
            "{} failures in {} invocations within {} s ({})",
            self.failures,
            self.invocations,
            self.window_secs,
            codes.join(", ")
        )
    }
}

/// Whoever stops tripped plugins: the plugin manager, reached weakly so the runtime doesn't
/// depend on it.
pub trait Supervisor: Send + Sync {
    fn quarantine(
        self: Arc<Self>,
        plugin: String,
        trip: Trip,
    ) -> futures::future::BoxFuture<'static, ()>;
}

/// The site's supervisor, set once the plugin manager exists.
#[derive(Default)]
pub struct SupervisorHandle(OnceLock<Weak<dyn Supervisor>>);

impl std::fmt::Debug for SupervisorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SupervisorHandle")
    }
}

impl SupervisorHandle {
    pub fn set(&self, supervisor: Weak<dyn Supervisor>) {
        let _ = self.0.set(supervisor);
    }

    fn get(&self) -> Option<Arc<dyn Supervisor>> {
        self.0.get()?.upgrade()
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Bucket {
    /// Which slice of time this bucket holds (elapsed / bucket width).
    slice: u64,
    invocations: u64,
    failures: u64,
}

#[derive(Debug)]
struct Window {
    buckets: [Bucket; BUCKETS],
    recent: VecDeque<FailureNote>,
}

/// One loaded plugin's record of behaviour.
pub struct Health {
    plugin: String,
    rules: QuarantineRules,
    started: Instant,
    window: Mutex<Window>,
    tripped: AtomicBool,
    metrics: Metrics,
    supervisor: Arc<SupervisorHandle>,
    /// Where refusals are audited (none in unit tests).
    audit: Option<Identity>,
    /// Per capability: when its refusals were last audited, and how many since.
    audited: Mutex<std::collections::HashMap<&'static str, (Instant, u64)>>,
    /// The plugin's log ring, where breaches and refusals are noted too.
    log: Option<Arc<super::logbook::PluginLog>>,
}

impl std::fmt::Debug for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Health")
            .field("plugin", &self.plugin)
            .field("tripped", &self.tripped.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Health {
    pub fn new(
        plugin: &str,
        rules: QuarantineRules,
        metrics: Metrics,
        supervisor: Arc<SupervisorHandle>,
    ) -> Self {
        Self {
            plugin: plugin.to_string(),
            rules,
            started: Instant::now(),
            window: Mutex::new(Window {
                buckets: [Bucket::default(); BUCKETS],
                recent: VecDeque::new(),
            }),
            tripped: AtomicBool::new(false),
            metrics,
            supervisor,
            audit: None,
            audited: Mutex::default(),
            log: None,
        }
    }

    /// Copies breaches and refusals into the plugin's log ring, for the admin's log viewer.
    pub fn with_log(mut self, log: Arc<super::logbook::PluginLog>) -> Self {
        self.log = Some(log);
        self
    }

    /// Audits capability refusals in `identity`'s audit log.
    pub fn with_audit(mut self, identity: Identity) -> Self {
        self.audit = Some(identity);
        self
    }

    /// A capability use refused at run time (a destination outside the grant, a topic not
    /// granted...): a log line, `ucms_plugin_capability_refusals_total`, and an audit entry
    /// `capability.refused` — at most one per capability per minute, counting the others.
    pub fn refused(&self, capability: &'static str, detail: &str) {
        tracing::warn!(target: "ucms::capabilities", plugin = %self.plugin, capability, "refused: {detail}");
        self.note(format!("{capability} refused: {detail}"));
        self.metrics.capability_refused(&self.plugin, capability);
        let Some(identity) = &self.audit else { return };
        let suppressed = {
            let mut audited = self.audited.lock().unwrap_or_else(|e| e.into_inner());
            let entry = audited
                .entry(capability)
                .or_insert((Instant::now() - Duration::from_secs(120), 0));
            if entry.0.elapsed() < Duration::from_secs(60) {
                entry.1 += 1;
                return;
            }
            let suppressed = entry.1;
            *entry = (Instant::now(), 0);
            suppressed
        };
        let identity = identity.clone();
        let plugin = self.plugin.clone();
        let detail = detail.chars().take(1000).collect::<String>();
        tokio::spawn(async move {
            identity
                .audit(
                    Some(&format!("plugin:{plugin}")),
                    "capability.refused",
                    Some(&format!("plugin:{plugin}")),
                    serde_json::json!({
                        "capability": capability,
                        "detail": detail,
                        "refused_since_last_entry": suppressed,
                    }),
                )
                .await;
        });
    }

    fn note(&self, message: String) {
        if let Some(log) = &self.log {
            log.push("warn", "host", message, serde_json::Value::Null, None);
        }
    }

    fn width(&self) -> Duration {
        Duration::from_secs(self.rules.window_secs.max(1)).div_f64(BUCKETS as f64)
    }

    /// Records a finished invocation; `failure` is its error code when it trapped or broke a
    /// limit.
    pub fn invocation(&self, failure: Option<&str>) {
        self.record(1, failure);
    }

    /// Records a limit breach inside an invocation (a refused event, a dropped log line...):
    /// a log line, `ucms_plugin_limit_breaches_total{limit}`, and a failure in the window.
    pub fn breach(&self, limit: &'static str, code: &'static str, detail: &str) {
        tracing::warn!(target: "ucms::limits", plugin = %self.plugin, limit, code, "{detail}");
        self.note(format!("{code} ({limit}): {detail}"));
        self.metrics.limit_breach(&self.plugin, limit);
        self.record(0, Some(code));
    }

    fn record(&self, invocations: u64, failure: Option<&str>) {
        let trip = {
            let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
            let slice = (self.started.elapsed().as_nanos() / self.width().as_nanos().max(1)) as u64;
            let bucket = &mut w.buckets[slice as usize % BUCKETS];
            if bucket.slice != slice {
                *bucket = Bucket {
                    slice,
                    ..Bucket::default()
                };
            }
            bucket.invocations += invocations;
            let Some(code) = failure else { return };
            bucket.failures += 1;
            if w.recent.len() == RECENT {
                w.recent.pop_front();
            }
            w.recent.push_back(FailureNote {
                at: crate::db::now_ms(),
                code: code.to_string(),
            });
            if !self.rules.enabled || self.tripped.load(Ordering::Relaxed) {
                return;
            }
            let live = w
                .buckets
                .iter()
                .filter(|b| b.slice + BUCKETS as u64 > slice);
            let (calls, failures) =
                live.fold((0, 0), |(c, f), b| (c + b.invocations, f + b.failures));
            let ratio = failures as f64 / calls.max(1) as f64;
            if failures < u64::from(self.rules.failures) || ratio < self.rules.min_failure_ratio {
                return;
            }
            if self.tripped.swap(true, Ordering::AcqRel) {
                return;
            }
            Trip {
                failures,
                invocations: calls,
                window_secs: self.rules.window_secs,
                recent: w.recent.iter().cloned().collect(),
            }
        };
        tracing::error!(plugin = %self.plugin, reason = %trip.reason(), "plugin keeps failing; quarantining it");
        match self.supervisor.get() {
            Some(supervisor) => {
                tokio::spawn(supervisor.quarantine(self.plugin.clone(), trip));
            }
            None => tracing::warn!(plugin = %self.plugin, "no supervisor to quarantine the plugin"),
        }
    }

    /// Forgets the failures (the plugin was released from quarantine).
    pub fn reset(&self) {
        let mut w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.buckets = [Bucket::default(); BUCKETS];
        w.recent.clear();
        self.tripped.store(false, Ordering::Release);
    }

    /// The failures in the window, newest last.
    pub fn recent_failures(&self) -> Vec<FailureNote> {
        let w = self.window.lock().unwrap_or_else(|e| e.into_inner());
        w.recent.iter().cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Recorder(Mutex<Vec<(String, Trip)>>);

    impl Supervisor for Recorder {
        fn quarantine(
            self: Arc<Self>,
            plugin: String,
            trip: Trip,
        ) -> futures::future::BoxFuture<'static, ()> {
            self.0.lock().unwrap().push((plugin, trip));
            Box::pin(async {})
        }
    }

    fn health(rules: QuarantineRules) -> (Health, Arc<Recorder>) {
        let recorder = Arc::new(Recorder(Mutex::new(Vec::new())));
        let handle = Arc::new(SupervisorHandle::default());
        let weak: Weak<dyn Supervisor> = Arc::downgrade(&(recorder.clone() as Arc<dyn Supervisor>));
        handle.set(weak);
        (Health::new("p", rules, Metrics::new(), handle), recorder)
    }

    #[tokio::test]
    async fn trips_once_when_failures_dominate_the_window() {
        let (h, recorder) = health(QuarantineRules {
            failures: 5,
            ..Default::default()
        });
        for _ in 0..20 {
            h.invocation(None);
        }
        for _ in 0..4 {
            h.invocation(Some("plugin_panicked"));
        }
        // 4 failures in 24 calls: neither enough failures nor a high enough share.
        assert!(recorder.0.lock().unwrap().is_empty());
        for _ in 0..30 {
            h.invocation(Some("plugin_panicked"));
        }
        h.breach(
            "events-per-minute",
            "event_rate_exceeded",
            "too many events",
        );
        let trips = recorder.0.lock().unwrap().clone();
        assert_eq!(trips.len(), 1, "tripped exactly once");
        let (plugin, trip) = &trips[0];
        assert_eq!(plugin, "p");
        assert!(trip.failures >= 5 && trip.invocations >= 24, "{trip:?}");
        assert!(
            trip.reason().contains("plugin_panicked"),
            "{}",
            trip.reason()
        );
        h.reset();
        assert!(h.recent_failures().is_empty());
    }

    #[tokio::test]
    async fn a_busy_healthy_plugin_is_not_tripped_by_occasional_failures() {
        let (h, recorder) = health(QuarantineRules {
            failures: 5,
            min_failure_ratio: 0.5,
            ..Default::default()
        });
        for i in 0..1000 {
            h.invocation((i % 50 == 0).then_some("plugin_timeout"));
        }
        assert!(recorder.0.lock().unwrap().is_empty());
    }
}
