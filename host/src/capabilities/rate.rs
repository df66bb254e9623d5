//! Per-minute rates for what a plugin emits (events, log lines): a token bucket that refills
//! continuously at the rate and holds up to a burst (a minute's worth for events, two seconds'
//! worth for log lines).

use std::sync::Mutex;
use std::time::Instant;

/// A plugin's allowance of something per minute.
#[derive(Debug)]
pub struct PerMinute {
    per_minute: f64,
    burst: f64,
    state: Mutex<Bucket>,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    /// Refused since the last admitted one.
    refused: u64,
}

/// The outcome of [`PerMinute::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Admitted; this many were refused since the last one admitted.
    Admitted { refused_before: u64 },
    /// Refused; `first` is true for the first refusal after an admission (report it once).
    Refused { first: bool },
}

impl PerMinute {
    /// `per_minute` sustained, up to `burst` at once.
    pub fn new(per_minute: u32, burst: u32) -> Self {
        let per_minute = f64::from(per_minute);
        let burst = f64::from(burst);
        Self {
            per_minute,
            burst,
            state: Mutex::new(Bucket {
                tokens: burst,
                last: Instant::now(),
                refused: 0,
            }),
        }
    }

    pub fn rate(&self) -> u32 {
        self.per_minute as u32
    }

    /// Takes one token if there is one.
    pub fn admit(&self) -> Admission {
        self.admit_n(1)
    }

    /// Takes `n` tokens if there are that many (all or nothing).
    pub fn admit_n(&self, n: u32) -> Admission {
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let refill = now.duration_since(b.last).as_secs_f64() * self.per_minute / 60.0;
        b.tokens = (b.tokens + refill).min(self.burst);
        b.last = now;
        if b.tokens >= f64::from(n) {
            b.tokens -= f64::from(n);
            Admission::Admitted {
                refused_before: std::mem::take(&mut b.refused),
            }
        } else {
            b.refused += u64::from(n);
            Admission::Refused {
                first: b.refused == u64::from(n),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bursts_up_to_the_rate_then_refuses_and_counts() {
        let limiter = PerMinute::new(60, 60);
        let admitted = (0..1000)
            .filter(|_| matches!(limiter.admit(), Admission::Admitted { .. }))
            .count();
        assert_eq!(admitted, 60, "one minute's worth at once");
        assert_eq!(limiter.admit(), Admission::Refused { first: false });
        std::thread::sleep(std::time::Duration::from_millis(1100));
        assert!(matches!(
            limiter.admit(),
            Admission::Admitted { refused_before } if refused_before >= 941
        ));
        assert!(matches!(
            limiter.admit_n(5),
            Admission::Refused { first: true }
        ));
        assert_eq!(
            PerMinute::new(0, 0).admit(),
            Admission::Refused { first: true }
        );
    }
}
