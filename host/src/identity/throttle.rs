//! Brute-force protection for sign-in: failures are counted per account and per client address
//! in a sliding window; past the threshold, sign-in is refused until the window moves on.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const WINDOW: Duration = Duration::from_secs(15 * 60);
const MAX_PER_ACCOUNT: usize = 10;
const MAX_PER_CLIENT: usize = 50;
/// Entries kept before old ones are swept, so a flood of distinct names can't grow memory unbounded.
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl LoginThrottle {
    /// `Err(retry_after)` when the account or the client has failed too often lately.
    pub fn check(&self, account: &str, client: &str) -> Result<(), Duration> {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        for (key, max) in [
            (format!("a:{account}"), MAX_PER_ACCOUNT),
            (format!("c:{client}"), MAX_PER_CLIENT),
        ] {
            if let Some(times) = map.get_mut(&key) {
                times.retain(|t| now.duration_since(*t) < WINDOW);
                if times.len() >= max {
                    let oldest = times[0];
                    return Err(WINDOW.saturating_sub(now.duration_since(oldest)));
                }
            }
        }
        Ok(())
    }

    pub fn record_failure(&self, account: &str, client: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, times| times.iter().any(|t| now.duration_since(*t) < WINDOW));
        }
        for key in [format!("a:{account}"), format!("c:{client}")] {
            map.entry(key).or_default().push(now);
        }
    }

    pub fn record_success(&self, account: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(&format!("a:{account}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_an_account_after_repeated_failures() {
        let throttle = LoginThrottle::default();
        for _ in 0..MAX_PER_ACCOUNT {
            assert!(throttle.check("a@b.c", "1.2.3.4").is_ok());
            throttle.record_failure("a@b.c", "1.2.3.4");
        }
        let retry = throttle.check("a@b.c", "5.6.7.8").unwrap_err();
        assert!(retry > Duration::from_secs(60));
        assert!(throttle.check("other@b.c", "1.2.3.4").is_ok());
    }
}
