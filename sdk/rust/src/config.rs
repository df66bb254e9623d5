//! The plugin's settings and secrets. Requires the `config` capability.

use serde::de::DeserializeOwned;

use crate::bindings::ucms::host::config as raw;
use crate::{Error, Result};

/// A setting deserialized into `T`; `None` when it is neither set nor defaulted in the manifest.
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>> {
    match raw::get(key) {
        None => Ok(None),
        Some(json) => serde_json::from_str(&json).map(Some).map_err(|e| {
            Error::internal(format!(
                "setting '{key}' does not have the expected type: {e}"
            ))
        }),
    }
}

/// Every setting, as a JSON object.
pub fn all() -> serde_json::Value {
    serde_json::from_str(&raw::get_all()).unwrap_or(serde_json::Value::Null)
}

/// A secret declared in the manifest; never log it.
pub fn secret(name: &str) -> Option<String> {
    raw::get_secret(name)
}
