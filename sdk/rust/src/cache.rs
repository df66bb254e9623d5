//! A cache private to the plugin, for what is expensive to compute. Requires the `cache`
//! capability (`[capabilities] cache = {}`).
//!
//! Entries may vanish at any time (expiry, eviction, a restart), so the cache is never the only
//! copy of anything. Values are stored as JSON by [`get`], [`set`] and [`get_or_set_with`];
//! [`get_bytes`] and [`set_bytes`] store raw bytes. Tags name groups of entries that
//! [`invalidate_tag`] removes together — tag what a write makes stale, and invalidate that tag on
//! every write.
//!
//! ```no_run
//! use std::time::Duration;
//! use ucms_sdk::{cache, documents::Collection};
//!
//! # fn main() -> ucms_sdk::Result<()> {
//! // On reads: compute at most every 30 seconds.
//! let count: u64 = cache::get_or_set_with("stats:count", Some(Duration::from_secs(30)), &["notes"], || {
//!     Collection::<serde_json::Value>::new("notes").count(None)
//! })?;
//!
//! // On every write to the notes:
//! cache::invalidate_tag("notes")?;
//! # let _ = count;
//! # Ok(())
//! # }
//! ```
//!
//! An unavailable cache reads as a miss; writing to it, deleting from it or invalidating a tag
//! then fails with a 503, because a stale entry that could not be removed is a real problem.
//! An invalid key, TTL, tag or a value over the size limit is a 500: it is the plugin's bug.

use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::bindings::ucms::host::cache as raw;
use crate::{Error, Result};

impl From<raw::CacheError> for Error {
    fn from(error: raw::CacheError) -> Self {
        match error {
            raw::CacheError::Invalid(m) => Error::new(500, "cache_invalid", m),
            raw::CacheError::Unavailable(m) => Error::new(503, "cache_unavailable", m),
        }
    }
}

/// The value at `key` deserialized from JSON. A miss, an unavailable cache and a value that no
/// longer deserializes into `T` (say, after an upgrade changed the type) are all `None`.
pub fn get<T: DeserializeOwned>(key: &str) -> Result<Option<T>> {
    Ok(get_bytes(key)?.and_then(|bytes| serde_json::from_slice(&bytes).ok()))
}

/// Stores `value` as JSON at `key` for `ttl` (`None`: until evicted), with `tags`; replaces the
/// value, expiry and tags the entry had.
pub fn set<T: Serialize + ?Sized>(
    key: &str,
    value: &T,
    ttl: Option<Duration>,
    tags: &[&str],
) -> Result<()> {
    set_bytes(key, &serde_json::to_vec(value)?, ttl, tags)
}

/// The value at `key`, or else the result of `compute`, which is then stored for `ttl` with
/// `tags`. When the cache is unavailable, `compute` runs and its value is returned without being
/// stored. An error from `compute` is returned as is and nothing is stored.
///
/// ```no_run
/// use std::time::Duration;
///
/// # fn main() -> ucms_sdk::Result<()> {
/// let greeting: String = ucms_sdk::cache::get_or_set_with(
///     "greeting",
///     Some(Duration::from_secs(60)),
///     &[],
///     || Ok("Hello".to_string()),
/// )?;
/// # let _ = greeting;
/// # Ok(())
/// # }
/// ```
pub fn get_or_set_with<T, F>(
    key: &str,
    ttl: Option<Duration>,
    tags: &[&str],
    compute: F,
) -> Result<T>
where
    T: Serialize + DeserializeOwned,
    F: FnOnce() -> Result<T>,
{
    if let Some(value) = get(key)? {
        return Ok(value);
    }
    let value = compute()?;
    match set(key, &value, ttl, tags) {
        Ok(()) => Ok(value),
        Err(error) if error.code() == "cache_unavailable" => Ok(value),
        Err(error) => Err(error),
    }
}

/// The raw bytes at `key`; `None` on a miss or when the cache is unavailable.
pub fn get_bytes(key: &str) -> Result<Option<Vec<u8>>> {
    match raw::get(key) {
        Ok(value) => Ok(value),
        Err(raw::CacheError::Unavailable(_)) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// Stores raw bytes at `key` for `ttl` (`None`: until evicted), with `tags`.
pub fn set_bytes(key: &str, value: &[u8], ttl: Option<Duration>, tags: &[&str]) -> Result<()> {
    // Round up, so a TTL under a millisecond doesn't become "expire at once".
    let ttl_ms = ttl.map(|ttl| {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        if ms == 0 && !ttl.is_zero() { 1 } else { ms }
    });
    let tags: Vec<String> = tags.iter().map(|t| (*t).to_string()).collect();
    Ok(raw::set(key, value, ttl_ms, &tags)?)
}

/// Removes the entry at `key`; true when there was one.
pub fn delete(key: &str) -> Result<bool> {
    Ok(raw::delete(key)?)
}

/// Removes every entry stored with `tag`; returns how many.
pub fn invalidate_tag(tag: &str) -> Result<u64> {
    Ok(raw::invalidate_tag(tag)?)
}
