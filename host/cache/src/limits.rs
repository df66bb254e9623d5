//! What a plugin may put in the cache, checked by the host before it calls a backend.

use std::time::Duration;

use crate::CacheError;

/// Sizes a plugin's cache requests must stay within. The defaults suit a page/fragment cache; the host
/// may narrow them per plugin. Backends do not check these: call the `check_*` methods first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest key, in bytes of UTF-8 (default 512).
    pub max_key_bytes: usize,
    /// Largest value, in bytes (default 1 MiB).
    pub max_value_bytes: usize,
    /// Most tags on one entry (default 32).
    pub max_tags: usize,
    /// Longest tag, in bytes of UTF-8 (default 128).
    pub max_tag_bytes: usize,
    /// Longest TTL (default 30 days). `None` (no expiry) is always allowed.
    pub max_ttl: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_bytes: 512,
            max_value_bytes: 1 << 20,
            max_tags: 32,
            max_tag_bytes: 128,
            max_ttl: Duration::from_secs(30 * 24 * 60 * 60),
        }
    }
}

impl Limits {
    /// Check a key (for `get`, `set` and `delete`): not empty, at most `max_key_bytes`.
    pub fn check_key(&self, key: &str) -> Result<(), CacheError> {
        if key.is_empty() {
            return Err(CacheError::Invalid(
                "the cache key is empty; give every entry a non-empty key".into(),
            ));
        }
        if key.len() > self.max_key_bytes {
            return Err(CacheError::Invalid(format!(
                "the cache key `{}` is {} bytes, over the limit of {} bytes; hash long keys (for example \
                 SHA-256 in hex) before using them",
                preview(key),
                key.len(),
                self.max_key_bytes
            )));
        }
        Ok(())
    }

    /// Check a tag (for `set` and `invalidate_tag`): not empty, at most `max_tag_bytes`.
    pub fn check_tag(&self, tag: &str) -> Result<(), CacheError> {
        if tag.is_empty() {
            return Err(CacheError::Invalid(
                "a cache tag is empty; leave it out or give it a name".into(),
            ));
        }
        if tag.len() > self.max_tag_bytes {
            return Err(CacheError::Invalid(format!(
                "the cache tag `{}` is {} bytes, over the limit of {} bytes; use a shorter tag, such as \
                 an id instead of a title",
                preview(tag),
                tag.len(),
                self.max_tag_bytes
            )));
        }
        Ok(())
    }

    /// Check a value's size: at most `max_value_bytes`.
    pub fn check_value(&self, value: &[u8]) -> Result<(), CacheError> {
        if value.len() > self.max_value_bytes {
            return Err(CacheError::Invalid(format!(
                "the cache value is {}, over the limit of {}; cache smaller pieces, or store large data \
                 in blobs and cache its id",
                bytes(value.len()),
                bytes(self.max_value_bytes)
            )));
        }
        Ok(())
    }

    /// Check a TTL: at most `max_ttl`. `None` (no expiry) and zero (store nothing, remove the key —
    /// the WIT's `ttl-ms: some(0)`) are always allowed.
    pub fn check_ttl(&self, ttl: Option<Duration>) -> Result<(), CacheError> {
        let Some(ttl) = ttl else { return Ok(()) };
        if ttl > self.max_ttl {
            return Err(CacheError::Invalid(format!(
                "the cache TTL of {} is over the maximum of {}; use a shorter TTL, or none (entries \
                 without a TTL live until they are evicted)",
                duration(ttl),
                duration(self.max_ttl)
            )));
        }
        Ok(())
    }

    /// Check a list of tags: at most `max_tags` (after removing duplicates), each valid.
    pub fn check_tags(&self, tags: &[String]) -> Result<(), CacheError> {
        let unique = crate::unique_tags(tags).len();
        if unique > self.max_tags {
            return Err(CacheError::Invalid(format!(
                "the cache entry has {unique} tags, over the limit of {}; tag by broader groups (for \
                 example the content type instead of every field)",
                self.max_tags
            )));
        }
        tags.iter().try_for_each(|tag| self.check_tag(tag))
    }

    /// Check everything a `set` carries: key, value, TTL and tags, in that order.
    pub fn check_set(
        &self,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        tags: &[String],
    ) -> Result<(), CacheError> {
        self.check_key(key)?;
        self.check_value(value)?;
        self.check_ttl(ttl)?;
        self.check_tags(tags)
    }
}

/// The start of a long string for an error message, cut on a character boundary.
fn preview(s: &str) -> String {
    const MAX: usize = 40;
    if s.len() <= MAX {
        return s.to_string();
    }
    let end = (0..=MAX)
        .rev()
        .find(|&i| s.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…", &s[..end])
}

fn bytes(n: usize) -> String {
    const KIB: usize = 1 << 10;
    const MIB: usize = 1 << 20;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else if n >= MIB {
        format!("{:.1} MiB", n as f64 / MIB as f64)
    } else if n >= KIB && n.is_multiple_of(KIB) {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

fn duration(d: Duration) -> String {
    const DAY: u64 = 24 * 60 * 60;
    let secs = d.as_secs();
    if secs >= DAY && d.subsec_nanos() == 0 && secs.is_multiple_of(DAY) {
        format!("{} days", secs / DAY)
    } else if secs >= DAY {
        format!("{:.1} days", d.as_secs_f64() / DAY as f64)
    } else {
        format!("{} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(result: Result<(), CacheError>) -> String {
        match result {
            Err(CacheError::Invalid(message)) => message,
            other => panic!("expected an Invalid error, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let l = Limits::default();
        assert_eq!(
            (
                l.max_key_bytes,
                l.max_value_bytes,
                l.max_tags,
                l.max_tag_bytes
            ),
            (512, 1 << 20, 32, 128)
        );
        assert_eq!(l.max_ttl, Duration::from_secs(30 * 86_400));
    }

    #[test]
    fn accepts_requests_at_the_limits() {
        let l = Limits::default();
        let tags: Vec<String> = (0..32).map(|i| format!("{i:0>128}")).collect();
        l.check_set(&"k".repeat(512), &vec![0; 1 << 20], Some(l.max_ttl), &tags)
            .unwrap();
        l.check_set("k", b"", None, &[]).unwrap();
        l.check_ttl(Some(Duration::from_millis(1))).unwrap();
        l.check_ttl(Some(Duration::ZERO)).unwrap();
    }

    #[test]
    fn messages_say_what_was_wrong_and_what_to_do() {
        let l = Limits::default();
        let m = message(l.check_key(""));
        assert!(m.contains("empty"), "{m}");
        let m = message(l.check_key(&"é".repeat(300)));
        assert!(
            m.contains("600 bytes") && m.contains("512") && m.contains("hash"),
            "{m}"
        );
        let m = message(l.check_value(&vec![0; (1 << 20) + 1]));
        assert!(
            m.contains("1.0 MiB") && m.contains("1 MiB") && m.contains("blobs"),
            "{m}"
        );
        let m = message(l.check_ttl(Some(Duration::from_secs(31 * 86_400))));
        assert!(m.contains("31 days") && m.contains("30 days"), "{m}");
        let tags: Vec<String> = (0..33).map(|i| i.to_string()).collect();
        let m = message(l.check_tags(&tags));
        assert!(m.contains("33 tags") && m.contains("32"), "{m}");
        let m = message(l.check_tags(&["ok".into(), "x".repeat(129)]));
        assert!(m.contains("129 bytes") && m.contains("128"), "{m}");
        let m = message(l.check_tag(""));
        assert!(m.contains("empty"), "{m}");
    }

    #[test]
    fn duplicate_tags_count_once_against_the_limit() {
        let l = Limits {
            max_tags: 2,
            ..Limits::default()
        };
        l.check_tags(&["a".into(), "b".into(), "a".into()]).unwrap();
    }

    #[test]
    fn set_checks_the_key_first() {
        let m = message(Limits::default().check_set("", &vec![0; 2 << 20], None, &[]));
        assert!(m.contains("key"), "{m}");
    }
}
