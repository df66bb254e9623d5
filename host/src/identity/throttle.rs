//! Brute-force protection: failed attempts are counted per account and per client address in a
//! fixed window that opens with the first failure. Past the threshold the account is locked (or
//! the address refused) until the window closes.
//!
//! The counters live behind [`ThrottleBackend`]: in this process ([`MemoryThrottle`]) or in Redis
//! ([`RedisThrottle`], shared by every node of a site), chosen by `[cluster] redis-url`.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{AuthError, Identity};
use crate::config::AuthConfig;

/// Entries kept before expired ones are swept, so a flood of distinct names can't grow memory
/// unbounded.
const MAX_ENTRIES: usize = 100_000;

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = anyhow::Result<T>> + Send + 'a>>;

/// Where the failure counters live.
pub trait ThrottleBackend: Send + Sync + std::fmt::Debug {
    /// The failures counted under `key` and the time left in its window (zero when none).
    fn get(&self, key: &str) -> BoxFuture<'_, (u32, Duration)>;
    /// Counts one failure, opening a window of `window` on the first; returns the new count and
    /// the time left in the window.
    fn add(&self, key: &str, window: Duration) -> BoxFuture<'_, (u32, Duration)>;
    /// Forgets `key` (a successful sign-in clears the account's count).
    fn clear(&self, key: &str) -> BoxFuture<'_, ()>;
}

/// Counters in this process: right for a single node.
#[derive(Debug, Default)]
pub struct MemoryThrottle {
    counters: Mutex<HashMap<String, (u32, Instant)>>,
}

impl ThrottleBackend for MemoryThrottle {
    fn get(&self, key: &str) -> BoxFuture<'_, (u32, Duration)> {
        let now = Instant::now();
        let map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        let found = match map.get(key) {
            Some((count, until)) if *until > now => (*count, *until - now),
            _ => (0, Duration::ZERO),
        };
        Box::pin(async move { Ok(found) })
    }

    fn add(&self, key: &str, window: Duration) -> BoxFuture<'_, (u32, Duration)> {
        let now = Instant::now();
        let mut map = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= MAX_ENTRIES {
            map.retain(|_, (_, until)| *until > now);
        }
        let entry = map.entry(key.to_string()).or_insert((0, now + window));
        if entry.1 <= now {
            *entry = (0, now + window);
        }
        entry.0 += 1;
        let found = (entry.0, entry.1 - now);
        Box::pin(async move { Ok(found) })
    }

    fn clear(&self, key: &str) -> BoxFuture<'_, ()> {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        Box::pin(async { Ok(()) })
    }
}

/// Counters in Redis, shared by every node: `INCR` and `PEXPIRE` in one script, so a window
/// opens exactly once however many nodes count at the same moment.
pub struct RedisThrottle {
    client: redis::Client,
    prefix: String,
    conn: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
}

impl std::fmt::Debug for RedisThrottle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisThrottle")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

const ADD_SCRIPT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then redis.call('PEXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
";

impl RedisThrottle {
    /// Counters under `{namespace}:throttle:` on the Redis at `url` (connected on first use).
    pub fn new(url: &str, namespace: &str) -> anyhow::Result<Self> {
        Ok(Self {
            client: redis::Client::open(url)?,
            prefix: format!("{namespace}:throttle:"),
            conn: tokio::sync::OnceCell::new(),
        })
    }

    async fn conn(&self) -> anyhow::Result<redis::aio::ConnectionManager> {
        Ok(self
            .conn
            .get_or_try_init(|| self.client.get_connection_manager())
            .await?
            .clone())
    }
}

fn ms(ttl: i64) -> Duration {
    Duration::from_millis(ttl.max(0) as u64)
}

impl ThrottleBackend for RedisThrottle {
    fn get(&self, key: &str) -> BoxFuture<'_, (u32, Duration)> {
        let key = format!("{}{key}", self.prefix);
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let (count, ttl): (Option<u32>, i64) = redis::pipe()
                .get(&key)
                .pttl(&key)
                .query_async(&mut conn)
                .await?;
            Ok(match count {
                Some(n) if ttl > 0 => (n, ms(ttl)),
                _ => (0, Duration::ZERO),
            })
        })
    }

    fn add(&self, key: &str, window: Duration) -> BoxFuture<'_, (u32, Duration)> {
        let key = format!("{}{key}", self.prefix);
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let (count, ttl): (u32, i64) = redis::Script::new(ADD_SCRIPT)
                .key(&key)
                .arg(window.as_millis() as u64)
                .invoke_async(&mut conn)
                .await?;
            Ok((count, ms(ttl)))
        })
    }

    fn clear(&self, key: &str) -> BoxFuture<'_, ()> {
        let key = format!("{}{key}", self.prefix);
        Box::pin(async move {
            let mut conn = self.conn().await?;
            let _: () = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
            Ok(())
        })
    }
}

/// Thresholds and the window, from `[auth]`.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub per_account: u32,
    pub per_address: u32,
    pub window: Duration,
}

impl Limits {
    pub fn from_config(config: &AuthConfig) -> Self {
        Self {
            per_account: config.max_failures_per_account.unwrap_or(10).max(1),
            per_address: config.max_failures_per_address.unwrap_or(50).max(1),
            window: Duration::from_secs(config.lockout_window_secs.unwrap_or(900).max(1)),
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::from_config(&AuthConfig::default())
    }
}

/// The failure counters of sign-in and the other credential endpoints.
#[derive(Debug, Clone)]
pub struct LoginThrottle {
    backend: Arc<dyn ThrottleBackend>,
    limits: Limits,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::new(Arc::new(MemoryThrottle::default()), Limits::default())
    }
}

/// Why the throttle refuses an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The account failed too often: locked for the rest of the window.
    Account(Duration),
    /// The client address failed too often.
    Address(Duration),
}

fn account_key(account: &str) -> String {
    format!("a:{}", account.trim().to_lowercase())
}

fn address_key(client: &str) -> String {
    format!("c:{client}")
}

impl LoginThrottle {
    pub fn new(backend: Arc<dyn ThrottleBackend>, limits: Limits) -> Self {
        Self { backend, limits }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// `Err` when the account or the client address has failed too often in the window.
    pub async fn check(&self, account: &str, client: &str) -> anyhow::Result<Result<(), Refusal>> {
        let (count, left) = self.backend.get(&account_key(account)).await?;
        if count >= self.limits.per_account {
            return Ok(Err(Refusal::Account(left)));
        }
        let (count, left) = self.backend.get(&address_key(client)).await?;
        if count >= self.limits.per_address {
            return Ok(Err(Refusal::Address(left)));
        }
        Ok(Ok(()))
    }

    /// Counts a failure; `Some(window left)` when this very failure locked the account.
    pub async fn record_failure(
        &self,
        account: &str,
        client: &str,
    ) -> anyhow::Result<Option<Duration>> {
        let window = self.limits.window;
        let (count, left) = self.backend.add(&account_key(account), window).await?;
        self.backend.add(&address_key(client), window).await?;
        Ok((count == self.limits.per_account).then_some(left))
    }

    pub async fn record_success(&self, account: &str) -> anyhow::Result<()> {
        self.backend.clear(&account_key(account)).await
    }
}

impl Identity {
    /// Refuses an attempt on `account` from `client` when either failed too often lately;
    /// `what` names the endpoint in the audit entry (`sign-in`, `password-reset`, ...).
    pub async fn throttle_check(
        &self,
        account: &str,
        client: &str,
        what: &str,
    ) -> Result<(), AuthError> {
        let refusal = self
            .throttle()
            .check(account, client)
            .await
            .map_err(AuthError::internal)?;
        let Err(refusal) = refusal else {
            return Ok(());
        };
        self.audit(
            None,
            "auth.sign-in.throttled",
            Some(account),
            serde_json::json!({ "client": client, "endpoint": what }),
        )
        .await;
        Err(match refusal {
            Refusal::Account(retry_after) => AuthError::Locked { retry_after },
            Refusal::Address(retry_after) => AuthError::Throttled { retry_after },
        })
    }

    /// Counts a failed attempt; audits `auth.locked` when it locks the account.
    pub async fn throttle_failure(&self, account: &str, client: &str, what: &str) {
        match self.throttle().record_failure(account, client).await {
            Ok(Some(left)) => {
                self.audit(
                    None,
                    "auth.locked",
                    Some(account),
                    serde_json::json!({
                        "client": client,
                        "endpoint": what,
                        "seconds": left.as_secs(),
                    }),
                )
                .await;
            }
            Ok(None) => {}
            Err(e) => tracing::error!(error = %e, "cannot count a failed attempt"),
        }
    }

    /// Clears the account's failure count after a successful attempt.
    pub async fn throttle_success(&self, account: &str) {
        if let Err(e) = self.throttle().record_success(account).await {
            tracing::error!(error = %e, "cannot clear the failure count");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn locks_an_account_after_repeated_failures() {
        let throttle = LoginThrottle::default();
        for i in 1..=10 {
            assert_eq!(throttle.check("a@b.c", "1.2.3.4").await.unwrap(), Ok(()));
            let locked = throttle.record_failure("a@b.c", "1.2.3.4").await.unwrap();
            assert_eq!(locked.is_some(), i == 10, "locks on the tenth failure");
        }
        let refusal = throttle
            .check("a@b.c", "5.6.7.8")
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(refusal, Refusal::Account(left) if left > Duration::from_secs(60)));
        assert_eq!(
            throttle.check("other@b.c", "1.2.3.4").await.unwrap(),
            Ok(())
        );
    }
}
