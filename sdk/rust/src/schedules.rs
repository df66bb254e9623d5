//! Schedules: recurring jobs declared under `[[schedules]]` in the manifest (a name and a cron
//! expression, UTC, 5 fields or 6 with seconds first). The host runs each tick once across all of
//! a site's nodes, as the system principal; register handlers in [`crate::Plugin::schedules`].
//!
//! ```no_run
//! use ucms_sdk::schedules::{Schedules, Tick};
//! use ucms_sdk::{Result, kv};
//!
//! fn purge(tick: Tick) -> Result<()> {
//!     kv::set("last-purge", &tick.scheduled_at_ms)?;
//!     Ok(())
//! }
//!
//! fn schedules() -> Schedules {
//!     Schedules::new().on("purge", purge)
//! }
//! # let _ = schedules;
//! ```

use crate::{Error, Result};

/// One tick of a schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    pub name: String,
    /// The tick's planned time, Unix milliseconds.
    pub scheduled_at_ms: u64,
}

/// A schedule handler. An error is recorded and logged by the host; the next tick still comes.
pub type TickHandler = fn(Tick) -> Result<()>;

/// The schedules this plugin runs, by name.
#[derive(Debug, Default, Clone)]
pub struct Schedules {
    handlers: Vec<(String, TickHandler)>,
}

impl Schedules {
    pub fn new() -> Self {
        Self::default()
    }

    /// Handles the schedule `name`, which the manifest must declare under `[[schedules]]`.
    pub fn on(mut self, name: &str, handler: TickHandler) -> Self {
        self.handlers.push((name.to_string(), handler));
        self
    }

    pub(crate) fn dispatch(&self, name: String, scheduled_at_ms: u64) -> Result<()> {
        match self.handlers.iter().find(|(n, _)| *n == name) {
            Some((_, handler)) => handler(Tick {
                name,
                scheduled_at_ms,
            }),
            None => Err(Error::internal(format!(
                "the manifest declares the schedule '{name}' but the plugin's Schedules have no handler for it"
            ))),
        }
    }
}
