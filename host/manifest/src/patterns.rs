//! Topic patterns (events) and host patterns (outbound HTTP).

use std::fmt;

/// Whether `topic` is a valid event topic: dot-separated segments of lower-case letters, digits,
/// `_` and `-`, at most 128 bytes (`orders.placed`, `content.entry-published`).
pub fn is_valid_topic(topic: &str) -> bool {
    topic.len() <= 128 && !topic.is_empty() && topic.split('.').all(valid_segment)
}

fn valid_segment(segment: &str) -> bool {
    !segment.is_empty()
        && segment
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// A pattern over event topics: an exact topic (`orders.placed`), a prefix followed by `.*`
/// (`orders.*`: every topic below `orders`, at any depth), or `*` (every topic).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TopicPattern(String);

impl TopicPattern {
    pub fn new(pattern: &str) -> Result<Self, String> {
        let valid = pattern == "*"
            || is_valid_topic(pattern)
            || pattern.strip_suffix(".*").is_some_and(is_valid_topic);
        if valid {
            Ok(Self(pattern.to_string()))
        } else {
            Err(format!(
                "'{pattern}' is not a topic pattern: use dot-separated lower-case segments \
                 ('orders.placed'), a prefix ending in '.*' ('orders.*'), or '*'"
            ))
        }
    }

    pub fn matches(&self, topic: &str) -> bool {
        if self.0 == "*" {
            return true;
        }
        match self.0.strip_suffix(".*") {
            Some(prefix) => topic
                .strip_prefix(prefix)
                .is_some_and(|rest| rest.len() > 1 && rest.starts_with('.')),
            None => self.0 == topic,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether every topic `other` matches is also matched by this pattern (an operator's
    /// allow-list entry covering a manifest's grant).
    pub fn covers(&self, other: &TopicPattern) -> bool {
        if self.0 == "*" {
            return true;
        }
        match (self.0.strip_suffix(".*"), other.0.strip_suffix(".*")) {
            (Some(prefix), Some(inner)) => {
                inner == prefix || self.matches(inner) && inner.len() > prefix.len()
            }
            (Some(_), None) => self.matches(&other.0),
            (None, _) => self.0 == other.0,
        }
    }
}

impl fmt::Display for TopicPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A destination an outbound request may go to: `api.example.com`, `*.example.com` (any subdomain,
/// not the apex), either with an optional `:port`; or an IP address with an optional port.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    /// Lower-case host, with a leading `*.` for a wildcard.
    host: String,
    port: Option<u16>,
}

impl HostPattern {
    pub fn new(pattern: &str) -> Result<Self, String> {
        let err = || {
            format!(
                "'{pattern}' is not a host pattern: use a host name ('api.example.com'), a wildcard \
                 ('*.example.com'), or an IP address, optionally with ':port' — no scheme or path"
            )
        };
        if pattern.contains('/') || pattern.is_empty() {
            return Err(err());
        }
        // IPv6 literals are written in brackets: [::1]:8080
        let (host, port) = if let Some(rest) = pattern.strip_prefix('[') {
            let (addr, after) = rest.split_once(']').ok_or_else(err)?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p.parse::<u16>().map_err(|_| err())?),
                None if after.is_empty() => None,
                None => return Err(err()),
            };
            addr.parse::<std::net::Ipv6Addr>().map_err(|_| err())?;
            (addr.to_string(), port)
        } else {
            match pattern.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p.parse::<u16>().map_err(|_| err())?)),
                None => (pattern.to_string(), None),
            }
        };
        let host = host.to_ascii_lowercase();
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let is_ip = name.parse::<std::net::IpAddr>().is_ok();
        let is_name = name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
        let wildcard = host.starts_with("*.");
        if (is_ip && wildcard) || (!is_ip && !is_name) {
            return Err(err());
        }
        Ok(Self { host, port })
    }

    /// Whether a request to `host` (lower-case, without brackets) and `port` fits this pattern.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        match self.host.strip_prefix("*.") {
            Some(domain) => host
                .strip_suffix(domain)
                .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
            None => self.host == host,
        }
    }

    /// Whether every destination `other` allows is also allowed by this pattern (an operator's
    /// allow-list entry covering a manifest's grant): the same host, or a subdomain of this
    /// wildcard's domain; any port when this pattern names none.
    pub fn covers(&self, other: &HostPattern) -> bool {
        if self.port.is_some() && self.port != other.port {
            return false;
        }
        match self.host.strip_prefix("*.") {
            // `*.example.com` covers `a.example.com` and `*.a.example.com`, not `example.com`.
            Some(domain) => {
                let name = other.host.strip_prefix("*.").unwrap_or(&other.host);
                other.host.starts_with("*.") && name == domain
                    || name
                        .strip_suffix(domain)
                        .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
            }
            None => self.host == other.host,
        }
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bracketed = self.host.contains(':');
        match (bracketed, self.port) {
            (true, Some(p)) => write!(f, "[{}]:{p}", self.host),
            (true, None) => write!(f, "[{}]", self.host),
            (false, Some(p)) => write!(f, "{}:{p}", self.host),
            (false, None) => f.write_str(&self.host),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_patterns() {
        let exact = TopicPattern::new("orders.placed").unwrap();
        assert!(exact.matches("orders.placed"));
        assert!(!exact.matches("orders.placed.late"));
        let prefix = TopicPattern::new("orders.*").unwrap();
        assert!(prefix.matches("orders.placed"));
        assert!(prefix.matches("orders.item.added"));
        assert!(!prefix.matches("orders"));
        assert!(!prefix.matches("ordersx.placed"));
        assert!(TopicPattern::new("*").unwrap().matches("anything.at.all"));
        for bad in ["", "Orders", "orders.", "a..b", "orders.*.x", "a b", "*.x"] {
            assert!(TopicPattern::new(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn host_patterns() {
        let exact = HostPattern::new("API.example.com").unwrap();
        assert!(exact.matches("api.example.com", 443));
        assert!(!exact.matches("evil-api.example.com", 443));
        let wild = HostPattern::new("*.example.com").unwrap();
        assert!(wild.matches("a.example.com", 80));
        assert!(wild.matches("a.b.example.com", 80));
        assert!(!wild.matches("example.com", 80));
        assert!(!wild.matches("badexample.com", 80));
        let port = HostPattern::new("127.0.0.1:8080").unwrap();
        assert!(port.matches("127.0.0.1", 8080));
        assert!(!port.matches("127.0.0.1", 8081));
        assert!(HostPattern::new("[::1]:80").unwrap().matches("::1", 80));
        for bad in [
            "https://x.com",
            "x.com/path",
            "",
            "-x.com",
            "*.1.2.3.4",
            "x.com:99999",
            "*",
        ] {
            assert!(HostPattern::new(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn allow_list_entries_cover_grants() {
        let p = |s: &str| HostPattern::new(s).unwrap();
        assert!(p("*.example.com").covers(&p("api.example.com")));
        assert!(p("*.example.com").covers(&p("*.example.com")));
        assert!(p("*.example.com").covers(&p("*.api.example.com")));
        assert!(p("*.example.com").covers(&p("api.example.com:8443")));
        assert!(!p("*.example.com").covers(&p("example.com")));
        assert!(!p("*.example.com").covers(&p("evilexample.com")));
        assert!(p("api.example.com").covers(&p("api.example.com:443")));
        assert!(!p("api.example.com").covers(&p("*.api.example.com")));
        assert!(!p("api.example.com:443").covers(&p("api.example.com")));
        assert!(p("api.example.com:443").covers(&p("api.example.com:443")));
        assert!(!p("api.example.com").covers(&p("api.example.org")));
    }

    #[test]
    fn topic_allow_lists_cover_grants() {
        let t = |s: &str| TopicPattern::new(s).unwrap();
        assert!(t("*").covers(&t("orders.*")));
        assert!(t("orders.*").covers(&t("orders.placed")));
        assert!(t("orders.*").covers(&t("orders.*")));
        assert!(t("orders.*").covers(&t("orders.eu.*")));
        assert!(!t("orders.*").covers(&t("orders")));
        assert!(!t("orders.*").covers(&t("*")));
        assert!(!t("orders.placed").covers(&t("orders.*")));
        assert!(t("orders.placed").covers(&t("orders.placed")));
        assert!(!t("orders.*").covers(&t("ordersx.placed")));
    }
}
