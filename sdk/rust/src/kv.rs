//! The plugin's private key-value store, with serde-typed helpers. Requires the `kv` capability.
//!
//! Values are stored as JSON by [`get`] and [`set`], so numbers written by [`increment`] read back
//! as integers.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::ucms::host::kv as raw;
use crate::{Error, Result};

impl From<raw::KvError> for Error {
    fn from(error: raw::KvError) -> Self {
        match error {
            raw::KvError::Invalid(m) => Error::new(500, "kv_invalid", m),
            raw::KvError::QuotaExceeded(m) => Error::new(507, "kv_quota_exceeded", m),
            raw::KvError::TypeMismatch(m) => Error::new(500, "kv_type_mismatch", m),
            raw::KvError::Unavailable(m) => Error::new(503, "kv_unavailable", m),
        }
    }
}

/// The value at `key` deserialized from JSON.
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>> {
    match raw::get(key)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::new(
                500,
                "kv_type_mismatch",
                format!("value at '{key}' is not the expected type: {e}"),
            )
        }),
    }
}

/// Stores `value` at `key` as JSON.
pub fn set<T: Serialize + ?Sized>(key: &str, value: &T) -> Result<()> {
    Ok(raw::set(key, &serde_json::to_vec(value)?)?)
}

/// The raw bytes at `key`.
pub fn get_bytes(key: &str) -> Result<Option<Vec<u8>>> {
    Ok(raw::get(key)?)
}

/// Stores raw bytes at `key`.
pub fn set_bytes(key: &str, value: &[u8]) -> Result<()> {
    Ok(raw::set(key, value)?)
}

/// Removes `key`; true when it existed.
pub fn delete(key: &str) -> Result<bool> {
    Ok(raw::delete(key)?)
}

/// Atomically adds `delta` to the integer at `key` (missing counts as 0) and returns the result.
pub fn increment(key: &str, delta: i64) -> Result<i64> {
    Ok(raw::increment(key, delta)?)
}

/// Atomically replaces the bytes at `key` if they equal `expected` (`None`: must not exist);
/// `new: None` deletes. True when the swap happened.
pub fn compare_and_swap(key: &str, expected: Option<&[u8]>, new: Option<&[u8]>) -> Result<bool> {
    Ok(raw::compare_and_swap(key, expected, new)?)
}

/// Reads the JSON value at `key`, applies `f` and writes the result back atomically, retrying when
/// another invocation changed the value in between. Returns the value written.
pub fn update<T, F>(key: &str, mut f: F) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    F: FnMut(Option<T>) -> T,
{
    const ATTEMPTS: usize = 64;
    for _ in 0..ATTEMPTS {
        let current = raw::get(key)?;
        let parsed = match &current {
            None => None,
            Some(bytes) => Some(serde_json::from_slice(bytes)?),
        };
        let next = f(parsed);
        let encoded = serde_json::to_vec(&next)?;
        if raw::compare_and_swap(key, current.as_deref(), Some(&encoded))? {
            return Ok(next);
        }
    }
    Err(Error::new(
        409,
        "kv_contention",
        format!("'{key}' kept changing; gave up after {ATTEMPTS} attempts"),
    ))
}

/// Every key starting with `prefix`, reading page by page.
pub fn keys(prefix: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = raw::list_keys(prefix, cursor.as_deref(), 1000)?;
        out.extend(page.keys);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(out),
        }
    }
}

/// One page of keys starting with `prefix`, after `cursor`.
pub fn list_keys(
    prefix: &str,
    cursor: Option<&str>,
    limit: u32,
) -> Result<(Vec<String>, Option<String>)> {
    let page = raw::list_keys(prefix, cursor, limit)?;
    Ok((page.keys, page.next_cursor))
}
