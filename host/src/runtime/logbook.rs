//! The recent log of each plugin on this node, for the admin's log viewer
//! (`GET /api/ucms/plugins/{id}/logs`).
//!
//! Every line a plugin writes through `ucms:host/log` goes to `tracing` (where an operator's log
//! pipeline keeps it), and a copy goes to a ring of at most [`RING_BYTES`] per plugin here, with
//! the host's own lines about the plugin: limit breaches and refused capabilities. The ring is
//! memory only and per node; it survives upgrades (it is keyed by plugin id, not by version) and
//! is dropped when the plugin is removed.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

/// Bytes of lines (message, fields, request id) a plugin's ring holds before dropping its oldest.
pub const RING_BYTES: usize = 256 * 1024;

/// One line of a plugin's log.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// Increasing per plugin on this node: the cursor of `?after=`.
    pub seq: u64,
    pub at_ms: i64,
    pub level: &'static str,
    /// `plugin` for the plugin's own lines, `host` for what the host says about it.
    pub source: &'static str,
    pub message: String,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub fields: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl LogLine {
    fn size(&self) -> usize {
        // Fields are bounded by the log capability; their JSON length is a fair measure.
        self.message.len()
            + self.request_id.as_ref().map_or(0, String::len)
            + if self.fields.is_null() {
                0
            } else {
                self.fields.to_string().len()
            }
            + 64
    }
}

/// The levels in order, for `?level=` (that level and above).
pub const LEVELS: [&str; 5] = ["trace", "debug", "info", "warn", "error"];

fn rank(level: &str) -> usize {
    LEVELS.iter().position(|l| *l == level).unwrap_or(0)
}

#[derive(Debug, Default)]
struct Ring {
    lines: VecDeque<LogLine>,
    bytes: usize,
    next: u64,
    /// Lines dropped to keep the ring within its bytes.
    evicted: u64,
}

/// One plugin's ring.
#[derive(Debug, Default)]
pub struct PluginLog {
    ring: Mutex<Ring>,
}

/// What a read of the ring found.
#[derive(Debug, Serialize)]
pub struct LogPage {
    pub lines: Vec<LogLine>,
    /// The `seq` to pass as `after` for the lines after these.
    pub next_after: u64,
    /// Lines the ring has dropped since this node started, to stay within its size.
    pub evicted: u64,
}

impl PluginLog {
    pub fn push(
        &self,
        level: &'static str,
        source: &'static str,
        message: String,
        fields: Value,
        request_id: Option<String>,
    ) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let line = LogLine {
            seq: ring.next,
            at_ms: crate::db::now_ms(),
            level,
            source,
            message,
            fields,
            request_id,
        };
        ring.next += 1;
        ring.bytes += line.size();
        ring.lines.push_back(line);
        while ring.bytes > RING_BYTES && ring.lines.len() > 1 {
            let old = ring.lines.pop_front().expect("not empty");
            ring.bytes -= old.size();
            ring.evicted += 1;
        }
    }

    /// The newest `limit` lines after `after` at `min_level` or above, oldest first.
    pub fn read(&self, after: Option<u64>, min_level: &str, limit: usize) -> LogPage {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let min = rank(min_level);
        let mut lines: Vec<LogLine> = ring
            .lines
            .iter()
            .rev()
            .filter(|l| after.is_none_or(|a| l.seq > a) && rank(l.level) >= min)
            .take(limit)
            .cloned()
            .collect();
        lines.reverse();
        LogPage {
            next_after: lines
                .last()
                .map(|l| l.seq)
                .or(after)
                .unwrap_or(ring.next.saturating_sub(1)),
            lines,
            evicted: ring.evicted,
        }
    }
}

/// The rings of every plugin on this node.
#[derive(Debug, Default, Clone)]
pub struct Logbook {
    plugins: Arc<Mutex<HashMap<String, Arc<PluginLog>>>>,
}

impl Logbook {
    /// `id`'s ring, made on first use.
    pub fn plugin(&self, id: &str) -> Arc<PluginLog> {
        let mut plugins = self.plugins.lock().unwrap_or_else(|e| e.into_inner());
        plugins.entry(id.to_string()).or_default().clone()
    }

    /// Drops `id`'s ring (the plugin was removed).
    pub fn forget(&self, id: &str) {
        let mut plugins = self.plugins.lock().unwrap_or_else(|e| e.into_inner());
        plugins.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_lines_within_its_bytes_and_pages_by_seq() {
        let log = PluginLog::default();
        let big = "x".repeat(10_000);
        for i in 0..100 {
            let level = if i % 2 == 0 { "info" } else { "warn" };
            log.push(level, "plugin", format!("{i} {big}"), Value::Null, None);
        }
        let all = log.read(None, "trace", 1000);
        assert!(all.evicted > 0, "100 lines of 10 KB exceed the ring");
        let kept: usize = all.lines.iter().map(LogLine::size).sum();
        assert!(kept <= RING_BYTES, "{kept} bytes kept");
        assert_eq!(all.lines.last().unwrap().seq, 99, "the newest line is kept");
        assert_eq!(all.lines.len() as u64 + all.evicted, 100);

        let warn = log.read(None, "warn", 3);
        assert_eq!(
            warn.lines.iter().map(|l| l.seq).collect::<Vec<_>>(),
            vec![95, 97, 99],
            "the newest three warnings, oldest first"
        );
        log.push("error", "host", "late".into(), Value::Null, None);
        let after = log.read(Some(warn.next_after), "trace", 10);
        assert_eq!(after.lines.len(), 1);
        assert_eq!(after.lines[0].message, "late");
        assert_eq!(after.next_after, 100);
        assert!(log.read(Some(100), "trace", 10).lines.is_empty());
    }
}
