//! `ucms:host/log`: structured log lines attributed to the plugin, through `tracing`.
//!
//! Each plugin has a token bucket (lines per second, burst of twice that). Lines over the rate are
//! dropped and counted; the next line that gets through says how many were dropped. Messages and
//! fields are truncated so a plugin can't flood the log with one huge line either.

use std::sync::Mutex;
use std::time::Instant;

use wasmtime::component::{HasData, Linker};

use crate::metrics::Metrics;
use crate::wit::latest::ucms::host::log::{self as wit, Level};

const MAX_MESSAGE: usize = 8 * 1024;
const MAX_FIELDS: usize = 32;
const MAX_FIELD_KEY: usize = 64;
const MAX_FIELD_VALUE: usize = 1024;

/// A plugin's log budget.
#[derive(Debug)]
pub struct LogLimiter {
    per_sec: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    dropped: u64,
}

impl LogLimiter {
    pub fn new(lines_per_sec: u32) -> Self {
        let per_sec = f64::from(lines_per_sec.max(1));
        Self {
            per_sec,
            state: Mutex::new(Bucket {
                tokens: per_sec * 2.0,
                last: Instant::now(),
                dropped: 0,
            }),
        }
    }

    /// `Some(dropped_before)` when the line may be written, `None` when it is dropped.
    fn admit(&self) -> Option<u64> {
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.last).as_secs_f64() * self.per_sec;
        b.tokens = (b.tokens + refill).min(self.per_sec * 2.0);
        b.last = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Some(std::mem::take(&mut b.dropped))
        } else {
            b.dropped += 1;
            None
        }
    }
}

pub struct LogCtx<'a> {
    pub plugin: &'a str,
    pub request_id: &'a str,
    pub limiter: &'a LogLimiter,
    pub metrics: &'a Metrics,
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

impl wit::Host for LogCtx<'_> {
    async fn write(
        &mut self,
        level: Level,
        mut message: String,
        fields: Vec<(String, String)>,
    ) -> wasmtime::Result<()> {
        let Some(dropped) = self.limiter.admit() else {
            self.metrics.log_dropped(self.plugin);
            return Ok(());
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
        }
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
        let limiter = LogLimiter::new(10);
        let admitted = (0..1000).filter(|_| limiter.admit().is_some()).count();
        assert!(
            (20..=22).contains(&admitted),
            "burst is twice the rate, got {admitted}"
        );
        std::thread::sleep(std::time::Duration::from_millis(250));
        assert!(limiter.admit().is_some_and(|dropped| dropped >= 978));
    }
}
