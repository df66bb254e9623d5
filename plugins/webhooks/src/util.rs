//! Small pieces with no host calls: topic patterns, URLs, secrets, time formatting, signatures.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use ucms_sdk::{Error, Result};

/// The topics this plugin subscribes to in its manifest (`[[subscriptions]]`). An endpoint may
/// only ask for events within them: anything else would never arrive.
pub const SUBSCRIBED: &[&str] = &["content.*"];

/// Whether `topic` is a valid event topic (the host's rules: dot-separated segments of
/// lower-case letters, digits, `_` and `-`, at most 128 bytes).
fn is_topic(topic: &str) -> bool {
    topic.len() <= 128
        && topic.split('.').all(|s| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
        })
}

/// Checks an endpoint's event pattern: an exact topic (`content.entry.published`), a prefix
/// ending in `.*` (`content.entry.*`, any depth below it), or `*` (everything this plugin
/// receives).
pub fn check_pattern(pattern: &str) -> Result<()> {
    let valid =
        pattern == "*" || is_topic(pattern) || pattern.strip_suffix(".*").is_some_and(is_topic);
    if !valid {
        return Err(Error::new(
            400,
            "invalid_event_pattern",
            format!(
                "'{pattern}' is not an event pattern: use a topic ('content.entry.published'), \
                 a prefix ending in '.*' ('content.entry.*'), or '*'"
            ),
        ));
    }
    let received = pattern == "*" || SUBSCRIBED.iter().any(|s| covers(s, pattern));
    if !received {
        return Err(Error::new(
            400,
            "event_not_delivered",
            format!(
                "'{pattern}' would never fire: this plugin receives only {} events",
                SUBSCRIBED.join(", ")
            ),
        ));
    }
    Ok(())
}

/// Whether every topic `inner` matches is matched by `outer` too.
fn covers(outer: &str, inner: &str) -> bool {
    if outer == "*" {
        return true;
    }
    match (outer.strip_suffix(".*"), inner.strip_suffix(".*")) {
        (Some(prefix), Some(inner_prefix)) => {
            inner_prefix == prefix || matches(outer, inner_prefix)
        }
        (Some(_), None) => matches(outer, inner),
        (None, _) => outer == inner,
    }
}

/// Whether `pattern` matches `topic`.
pub fn matches(pattern: &str, topic: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match pattern.strip_suffix(".*") {
        Some(prefix) => topic
            .strip_prefix(prefix)
            .is_some_and(|rest| rest.len() > 1 && rest.starts_with('.')),
        None => pattern == topic,
    }
}

/// Checks an endpoint URL: absolute `http` or `https`, with a host, no credentials, no fragment.
/// Whether the site lets the plugin reach the host is the host's egress check's business.
pub fn check_url(raw: &str) -> Result<url::Url> {
    let invalid = |why: String| {
        Error::new(
            400,
            "invalid_url",
            format!("'{raw}' can't receive webhooks: {why}"),
        )
    };
    let url = url::Url::parse(raw).map_err(|e| invalid(format!("it is not a URL ({e})")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "the scheme is '{}'; use https (or http)",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("it has no host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "it carries credentials; the signature authenticates the sender, so leave them out"
                .into(),
        ));
    }
    if url.fragment().is_some() {
        return Err(invalid(
            "it has a fragment ('#...'), which is never sent".into(),
        ));
    }
    Ok(url)
}

/// A new endpoint secret: `whsec_` and 32 random bytes in hex.
pub fn new_secret() -> Result<String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::internal(format!("no randomness for a secret: {e}")))?;
    Ok(format!("whsec_{}", hex::encode(bytes)))
}

/// A random number in `0..1`, for jitter.
pub fn random_unit() -> f64 {
    let mut bytes = [0u8; 4];
    match getrandom::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 0.5,
    }
}

/// `X-UCMS-Signature`: `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>" keyed by the
/// secret>`.
pub fn signature(secret: &str, timestamp: u64, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!(
        "t={timestamp},v1={}",
        hex::encode(mac.finalize().into_bytes())
    )
}

/// Now, in Unix milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Unix milliseconds as RFC 3339 in UTC, with milliseconds: `2026-12-02T13:05:09.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(matches("content.entry.*", "content.entry.published"));
        assert!(!matches("content.entry.*", "content.type.changed"));
        assert!(matches("*", "content.type.changed"));
        assert!(matches("content.type.changed", "content.type.changed"));
        for ok in [
            "*",
            "content.*",
            "content.entry.*",
            "content.entry.published",
        ] {
            assert!(check_pattern(ok).is_ok(), "{ok}");
        }
        assert_eq!(
            check_pattern("orders.placed").unwrap_err().code(),
            "event_not_delivered"
        );
        assert_eq!(
            check_pattern("content").unwrap_err().code(),
            "event_not_delivered"
        );
        assert_eq!(
            check_pattern("Content.*").unwrap_err().code(),
            "invalid_event_pattern"
        );
    }

    #[test]
    fn urls() {
        assert!(check_url("https://hooks.example.com/in?x=1").is_ok());
        for bad in [
            "ftp://x.example.com/",
            "not a url",
            "https://user:pw@x.example.com/",
            "https://x.example.com/#frag",
        ] {
            assert_eq!(check_url(bad).unwrap_err().code(), "invalid_url", "{bad}");
        }
    }

    #[test]
    fn dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(951_827_696_789), "2000-02-29T12:34:56.789Z");
        assert_eq!(rfc3339(1_796_216_709_123), "2026-12-02T13:05:09.123Z");
    }

    #[test]
    fn signatures_are_hmac_sha256_over_timestamp_dot_body() {
        // The end-to-end test checks the digest with an independent HMAC; here, the format and
        // that the key and the timestamp are both signed.
        let a = signature("whsec_x", 1_700_000_000, b"{}");
        assert!(a.starts_with("t=1700000000,v1="));
        assert_eq!(a.len(), "t=1700000000,v1=".len() + 64);
        assert_ne!(a, signature("whsec_y", 1_700_000_000, b"{}"));
        assert_ne!(a, signature("whsec_x", 1_700_000_001, b"{}"));
    }
}
