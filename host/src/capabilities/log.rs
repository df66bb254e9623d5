//! `ucms:host/log`: structured log lines attributed to the plugin, through `tracing`.
//!
//! Each plugin has a token bucket ([`PerMinute`]: `limits.log-lines-per-minute`, a burst of two
//! seconds' worth). Lines over the rate are dropped and counted — the first one of a run as a
//! limit breach — and the next line that gets through says how many were dropped. Messages and
//! fields are truncated so a plugin can't flood the log with one huge line either.

use wasmtime::component::{HasData, Linker};

use super::rate::{Admission, PerMinute};
use crate::metrics::Metrics;
use crate::runtime::health::Health;

/// A plugin's log budget: `log-lines-per-minute`, bursting two seconds' worth.
pub fn log_limiter(lines_per_minute: u32) -> PerMinute {
    PerMinute::new(lines_per_minute, (lines_per_minute / 30).max(1))
}
use crate::wit::latest::ucms::host::log::{self as wit, Level};

const MAX_MESSAGE: usize = 8 * 1024;
const MAX_FIELDS: usize = 32;
const MAX_FIELD_KEY: usize = 64;
const MAX_FIELD_VALUE: usize = 1024;

pub struct LogCtx<'a> {
    pub plugin: &'a str,
    pub request_id: &'a str,
    pub limiter: &'a PerMinute,
    pub metrics: &'a Metrics,
    pub health: &'a Health,
    /// The plugin's recent lines on this node (the admin's log viewer).
    pub ring: &'a crate::runtime::logbook::PluginLog,
}

struct Log;

impl HasData for Log {
    type Data<'a> = LogCtx<'a>;
}

/// Store data that can give the `ucms:host/log` host functions their view of the invocation.
pub trait LogView: Send {
    fn log(&mut self) -> LogCtx<'_>;
}

/// Links `ucms:host/log`.
pub fn add_to_linker<T: LogView + 'static>(linker: &mut Linker<T>) -> wasmtime::Result<()> {
    wit::add_to_linker::<T, Log>(linker, T::log)
}

fn truncate(s: &mut String, max: usize) {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push('…');
    }
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

impl wit::Host for LogCtx<'_> {
    async fn write(
        &mut self,
        level: Level,
        mut message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let dropped = match self.limiter.admit() {
            Admission::Admitted { refused_before } => refused_before,
            Admission::Refused { first } => {
                self.metrics.log_dropped(self.plugin);
                if first {
                    self.health.breach(
                        "log-lines-per-minute",
                        "log_rate_exceeded",
                        &format!(
                            "the plugin writes log lines faster than its {} per minute; dropping them",
                            self.limiter.rate()
                        ),
                    );
                }
                return Ok(());
            }
        };
        truncate(&mut message, MAX_MESSAGE);
        let fields: serde_json::Map<String, serde_json::Value> = fields
            .into_iter()
            .take(MAX_FIELDS)
            .map(|(mut k, mut v)| {
                truncate(&mut k, MAX_FIELD_KEY);
                truncate(&mut v, MAX_FIELD_VALUE);
                (k, serde_json::Value::String(v))
            })
            .collect();
        let fields = serde_json::Value::Object(fields);
        let (plugin, request_id) = (self.plugin, self.request_id);
        if dropped > 0 {
            tracing::warn!(target: "ucms::plugin", plugin, dropped, "log lines dropped: the plugin wrote faster than its log rate");
            self.ring.push(
                "warn",
                "host",
                format!("{dropped} log lines dropped: the plugin wrote faster than its log rate"),
                serde_json::Value::Null,
                None,
            );
        }
        self.ring.push(
            level_name(level),
            "plugin",
            message.clone(),
            if fields.as_object().is_some_and(|f| f.is_empty()) {
                serde_json::Value::Null
            } else {
                fields.clone()
            },
            Some(request_id.to_string()),
        );
        match level {
            Level::Trace => {
                tracing::trace!(target: "ucms::plugin", plugin, request_id, %fields, "{message}")
            }
            Level::Debug => {
                tracing::debug!(target: "ucms::plugin", plugin, request_id, %fields, "{message}")
            }
            Level::Info => {
                tracing::info!(target: "ucms::plugin", plugin, request_id, %fields, "{message}")
            }
            Level::Warn => {
                tracing::warn!(target: "ucms::plugin", plugin, request_id, %fields, "{message}")
            }
            Level::Error => {
                tracing::error!(target: "ucms::plugin", plugin, request_id, %fields, "{message}")
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_drops_a_flood_and_reports_it() {
        let limiter = log_limiter(600);
        let admitted = (0..1000)
            .filter(|_| matches!(limiter.admit(), Admission::Admitted { .. }))
            .count();
        assert!(
            (20..=21).contains(&admitted),
            "the burst is two seconds' worth, got {admitted}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert!(matches!(
            limiter.admit(),
            Admission::Admitted { refused_before } if refused_before >= 979
        ));
    }
}
