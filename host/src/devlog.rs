//! Plugin log lines kept in memory for the developer tools: the test harness returns the lines a
//! command produced with its answer, so a plugin's own test can assert on them.
//!
//! [`layer`] is installed with the process's logging and records nothing until [`enable`] is
//! called; it has its own filter (the plugins' lines, and the runtime's account of a failed
//! invocation), independent of the level the terminal shows.

use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use tracing::field::{Field, Visit};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::layer::Context;

static ENABLED: AtomicBool = AtomicBool::new(false);
static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Most lines kept between two drains; older ones are dropped.
const MAX_LINES: usize = 10_000;

/// Starts recording.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// The lines recorded since the last drain.
pub fn drain() -> Vec<String> {
    std::mem::take(&mut *LINES.lock().unwrap_or_else(|e| e.into_inner()))
}

/// The recording layer, filtered to plugin lines and invocation failures.
pub fn layer<S>() -> impl Layer<S>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    Capture.with_filter(
        Targets::new()
            .with_target("ucms::plugin", LevelFilter::TRACE)
            .with_target("ucms::runtime", LevelFilter::WARN),
    )
}

struct Capture;

impl<S: tracing::Subscriber> Layer<S> for Capture {
    fn on_event(&self, event: &tracing::Event<'_>, _ctx: Context<'_, S>) {
        if !ENABLED.load(Ordering::Relaxed) {
            return;
        }
        let mut visitor = Line::default();
        event.record(&mut visitor);
        let mut line = format!("{:<5} {}", event.metadata().level(), visitor.message);
        for (name, value) in visitor.fields {
            let _ = write!(line, " {name}={value}");
        }
        let mut lines = LINES.lock().unwrap_or_else(|e| e.into_inner());
        if lines.len() >= MAX_LINES {
            lines.remove(0);
        }
        lines.push(line);
    }
}

#[derive(Default)]
struct Line {
    message: String,
    fields: Vec<(String, String)>,
}

impl Visit for Line {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        self.push(field, text);
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, value.to_string());
    }
}

impl Line {
    fn push(&mut self, field: &Field, value: String) {
        match field.name() {
            "message" => self.message = value,
            // Known to the reader already (one plugin per harness) or too noisy to repeat.
            "plugin" | "fields" if value.is_empty() => {}
            name => self.fields.push((name.to_string(), value)),
        }
    }
}
