//! Structured log lines, attributed to this plugin by the host. Requires the `log` capability.

use crate::bindings::ucms::host::log as raw;

pub use raw::Level;

/// Writes `message` at `level` with key/value `fields`.
pub fn write(level: Level, message: &str, fields: &[(&str, &str)]) {
    let fields: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
        .collect();
    raw::write(level, message, &fields);
}

pub fn debug(message: &str) {
    write(Level::Debug, message, &[]);
}

pub fn info(message: &str) {
    write(Level::Info, message, &[]);
}

pub fn warn(message: &str) {
    write(Level::Warn, message, &[]);
}

pub fn error(message: &str) {
    write(Level::Error, message, &[]);
}
