//! The scale-out cache: Redis, shared by every node of a site (and by several sites, one namespace each).
//!
//! Key layout (`{plen}` is the byte length of the plugin id, so ids and keys containing `:` can never
//! collide — everything after the plugin id is the key or tag, verbatim):
//!
//! ```text
//! ucms:{ns}:c:{plen}:{plugin}:{key}   hash  v = value, g = the entry's tags, length-prefixed
//! ucms:{ns}:t:{plen}:{plugin}:{tag}   set   keys set with that tag
//! ```
//!
//! Writes that touch several keys run as Lua scripts, which Redis executes atomically: `set` replaces
//! value, TTL and tag memberships at once; `invalidate_tag` deletes the members and the tag set at
//! once. An entry remembers its tags (`g`), so replacing or deleting it leaves no stale membership
//! behind. Tag sets cannot grow without bound: a tag set expires no earlier than its last member (and
//! never while it holds a member without TTL), and every `set` samples a few members of each tag set it
//! touches and drops those whose entry is gone or no longer carries the tag — so dead members stay a
//! bounded fraction of live ones even for tags that are never invalidated.

use std::future::Future;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncConnectionConfig, Client, RedisError, RedisResult, Script};

use crate::{CacheBackend, CacheError, ttl_millis, unique_tags};

/// Lua helpers shared by the scripts. `tags_of` decodes the `g` field (`{len}:{tag}` repeated); it
/// returns nil when the entry does not exist (or has expired — Redis hides expired keys from scripts).
const PRELUDE: &str = r#"
local function tags_of(key)
  local g = redis.call('HGET', key, 'g')
  if not g then return nil end
  local out, i = {}, 1
  while i <= #g do
    local colon = string.find(g, ':', i, true)
    local n = tonumber(string.sub(g, i, colon - 1))
    out[#out + 1] = string.sub(g, colon + 1, colon + n)
    i = colon + n + 1
  end
  return out
end
local function has(list, x)
  for _, v in ipairs(list) do if v == x then return true end end
  return false
end
local function untag(tag_prefix, member, tags, skip)
  for _, t in ipairs(tags) do
    if t ~= skip then redis.call('SREM', tag_prefix .. t, member) end
  end
end
"#;

/// KEYS: entry, then one tag set per new tag. ARGV: value, ttl ms (0 = none), encoded tags, member
/// (the plugin's key), entry prefix, tag prefix, then the new tags in the order of their KEYS.
const SET: &str = r#"
local key, member, entry_prefix, tag_prefix = KEYS[1], ARGV[4], ARGV[5], ARGV[6]
local ttl = tonumber(ARGV[2])
local old = tags_of(key)
if old then untag(tag_prefix, member, old, nil) end
redis.call('DEL', key)
redis.call('HSET', key, 'v', ARGV[1], 'g', ARGV[3])
if ttl > 0 then redis.call('PEXPIRE', key, ttl) end
for i = 2, #KEYS do
  local set, tag = KEYS[i], ARGV[i + 5]
  for _, m in ipairs(redis.call('SRANDMEMBER', set, 3)) do
    local tags = tags_of(entry_prefix .. m)
    if not tags or not has(tags, tag) then redis.call('SREM', set, m) end
  end
  local current = redis.call('PTTL', set)
  redis.call('SADD', set, member)
  if ttl == 0 then
    redis.call('PERSIST', set)
  elseif current == -2 or (current >= 0 and current < ttl) then
    redis.call('PEXPIRE', set, ttl)
  end
end
return 1
"#;

/// KEYS: entry. ARGV: member, tag prefix. Returns 1 if a live entry was deleted.
const DELETE: &str = r#"
local tags = tags_of(KEYS[1])
if tags then untag(ARGV[2], ARGV[1], tags, nil) end
return redis.call('DEL', KEYS[1])
"#;

/// KEYS: tag set. ARGV: entry prefix, tag prefix, tag. Returns the number of entries deleted.
const INVALIDATE: &str = r#"
local n = 0
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local key = ARGV[1] .. m
  local tags = tags_of(key)
  if tags and has(tags, ARGV[3]) then
    untag(ARGV[2], m, tags, ARGV[3])
    redis.call('DEL', key)
    n = n + 1
  end
end
redis.call('DEL', KEYS[1])
return n
"#;

/// How many keys one `SCAN` step asks for when clearing.
const SCAN_COUNT: usize = 1000;

/// Time allowed to open a connection, and to get each reply. A cache must fail fast: a plugin that
/// gets `unavailable` can compute the value itself. (A large `invalidate_tag` is one script call, so
/// it must finish within the reply timeout too: about 100 000 members.)
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnection attempts after a lost connection, 100 ms apart at first and doubling up to 1 s; while
/// they run, calls wait for them, so an outage costs a call at most a few seconds. Each later call
/// starts a new round.
const RECONNECT_RETRIES: usize = 4;
/// A failed call is retried only if it failed faster than this: that is the first call on a dead
/// connection (the manager reconnects while we retry). A slower failure means the manager already
/// spent its reconnection round, and a retry would only make the caller wait twice as long.
const RETRY_IF_FAILED_WITHIN: Duration = Duration::from_millis(500);

/// The Redis [`CacheBackend`]. Cloning is cheap and shares the connection.
///
/// One multiplexed connection serves all callers; after a Redis restart or a dropped connection it
/// reconnects on its own, and the first call that hits the dead connection is retried once on the new
/// one, so a quick restart is invisible to plugins. While Redis is down, calls fail with
/// [`CacheError::Unavailable`] within a few seconds.
#[derive(Clone)]
pub struct RedisCache {
    conn: ConnectionManager,
    namespace: String,
    /// The URL with any password replaced, for logs and `Debug`.
    url: String,
    set: Script,
    delete: Script,
    invalidate: Script,
}

impl std::fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCache")
            .field("url", &self.url)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Connect to Redis at `url` (`redis://[user:password@]host[:port][/db]`, `redis+unix:///path` or
    /// `unix:///path`) and keep every key under `ucms:{namespace}:`, so several sites can share one
    /// Redis. `namespace` is 1–64 ASCII letters, digits, `-`, `_` or `.` (for example the site id).
    ///
    /// Fails with [`CacheError::Invalid`] for a bad URL or namespace and [`CacheError::Unavailable`]
    /// when Redis cannot be reached; neither message contains the password.
    pub async fn connect(url: &str, namespace: &str) -> Result<Self, CacheError> {
        check_namespace(namespace)?;
        let redacted = redact(url);
        let scheme = url
            .split_once("://")
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("redis" | "redis+unix" | "unix") => {}
            Some("rediss") => {
                return Err(CacheError::Invalid(format!(
                    "the cache URL {redacted} asks for TLS (rediss://), which this build of UCMS does not \
                     support; use redis:// on a private network or a local TLS tunnel (stunnel, spiped)"
                )));
            }
            _ => {
                return Err(CacheError::Invalid(format!(
                    "the cache URL {redacted} is not a Redis URL; use redis://[user:password@]host[:port][/db] \
                     (or leave [cache] url out to use the in-memory cache)"
                )));
            }
        }
        let client = Client::open(url).map_err(|error| {
            tracing::warn!(url = %redacted, error = %error, "invalid Redis cache URL");
            CacheError::Invalid(format!(
                "the cache URL {redacted} is not a valid Redis URL ({}); use \
                 redis://[user:password@]host[:port][/db]",
                error.category()
            ))
        })?;
        let unreachable = |error: RedisError| {
            tracing::warn!(url = %redacted, error = %error, "cannot connect to the Redis cache");
            CacheError::Unavailable(format!(
                "cannot connect to the Redis cache at {redacted} ({}); check that Redis is running and that \
                 [cache] url is right",
                describe(&error)
            ))
        };
        // One plain attempt first, so a wrong or down Redis fails at once with a clear error instead
        // of after the manager's reconnection backoff.
        let probe = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT));
        let mut first = client
            .get_multiplexed_async_connection_with_config(&probe)
            .await
            .map_err(unreachable)?;
        redis::cmd("PING")
            .query_async::<()>(&mut first)
            .await
            .map_err(unreachable)?;
        drop(first);
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(RECONNECT_RETRIES)
            .set_max_delay(Duration::from_secs(1));
        let conn = ConnectionManager::new_with_config(client, config)
            .await
            .map_err(unreachable)?;
        tracing::debug!(url = %redacted, namespace, "connected to the Redis cache");
        Ok(RedisCache {
            conn,
            namespace: namespace.to_string(),
            url: redacted,
            set: Script::new(&format!("{PRELUDE}{SET}")),
            delete: Script::new(&format!("{PRELUDE}{DELETE}")),
            invalidate: Script::new(&format!("{PRELUDE}{INVALIDATE}")),
        })
    }

    /// The namespace given to [`RedisCache::connect`].
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// Remove every key of this namespace — every plugin's entries and tags (for example when a site
    /// is deleted). Like [`CacheBackend::clear`], this scans, so writes made meanwhile may survive.
    pub async fn clear_namespace(&self) -> Result<(), CacheError> {
        let pattern = format!("ucms:{}:*", self.namespace);
        self.run("clear the namespace", |conn| {
            unlink_matching(conn, &pattern)
        })
        .await
    }

    /// `ucms:{ns}:{kind}:{plen}:{plugin}:` — the prefix of every entry (`c`) or tag set (`t`) key of a
    /// plugin.
    fn prefix(&self, kind: char, plugin: &str) -> String {
        key_prefix(&self.namespace, kind, plugin)
    }

    /// Run a Redis operation; retry once if the connection had dropped (see [`RETRY_IF_FAILED_WITHIN`]).
    /// Every operation here is safe to repeat: `set` and `clear` are idempotent, and a repeated
    /// `delete` or `invalidate_tag` can only under-report what the first attempt removed.
    async fn run<T, F, Fut>(&self, op: &str, f: F) -> Result<T, CacheError>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let started = Instant::now();
        let result = match f(self.conn.clone()).await {
            Err(error)
                if (error.is_unrecoverable_error() || error.is_connection_dropped())
                    && started.elapsed() < RETRY_IF_FAILED_WITHIN =>
            {
                tracing::debug!(namespace = %self.namespace, error = %error, "Redis connection lost; retrying");
                f(self.conn.clone()).await
            }
            result => result,
        };
        result.map_err(|error| self.unavailable(op, &error))
    }

    fn unavailable(&self, op: &str, error: &RedisError) -> CacheError {
        tracing::warn!(url = %self.url, namespace = %self.namespace, error = %error, "Redis cache failed to {op}");
        CacheError::Unavailable(format!(
            "the Redis cache failed to {op} ({}); the host log has details",
            describe(error)
        ))
    }
}

async fn unlink_matching(mut conn: ConnectionManager, pattern: &str) -> RedisResult<()> {
    let mut cursor = 0u64;
    loop {
        let (next, keys): (u64, Vec<Vec<u8>>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(pattern)
            .arg("COUNT")
            .arg(SCAN_COUNT)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            redis::cmd("UNLINK")
                .arg(&keys)
                .query_async::<()>(&mut conn)
                .await?;
        }
        if next == 0 {
            return Ok(());
        }
        cursor = next;
    }
}

/// A short, safe account of a Redis error for messages (the full error goes to the log).
fn describe(error: &RedisError) -> &str {
    if error.is_connection_refusal() {
        "connection refused"
    } else if error.is_timeout() {
        "timed out"
    } else if error.is_connection_dropped() {
        "connection lost"
    } else {
        error.category()
    }
}

fn key_prefix(namespace: &str, kind: char, plugin: &str) -> String {
    format!("ucms:{namespace}:{kind}:{}:{plugin}:", plugin.len())
}

/// Escape the glob characters of a `SCAN MATCH` pattern.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Tags as stored in an entry's `g` field: `{len}:{tag}` repeated.
fn encode_tags(tags: &[&str]) -> Vec<u8> {
    let mut out = Vec::new();
    for tag in tags {
        out.extend_from_slice(tag.len().to_string().as_bytes());
        out.push(b':');
        out.extend_from_slice(tag.as_bytes());
    }
    out
}

fn check_namespace(namespace: &str) -> Result<(), CacheError> {
    let ok = (1..=64).contains(&namespace.len())
        && namespace
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(CacheError::Invalid(format!(
            "the cache namespace {namespace:?} is not valid; use 1 to 64 ASCII letters, digits, '-', '_' or \
             '.' (for example the site id)"
        )))
    }
}

/// The URL with its password (if any) replaced by `****`, safe to log and show.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                let _ = parsed.set_password(Some("****"));
            }
            parsed.to_string()
        }
        // Unparseable: show the scheme at most, since a password could be anywhere in it.
        Err(_) => match url.split_once("://") {
            Some((scheme, _)) if scheme.len() <= 16 => format!("{scheme}://…"),
            _ => "(unparseable URL)".to_string(),
        },
    }
}

#[async_trait]
impl CacheBackend for RedisCache {
    async fn get(&self, plugin: &str, key: &str) -> Result<Option<Vec<u8>>, CacheError> {
        let entry = format!("{}{key}", self.prefix('c', plugin));
        self.run("read an entry", |mut conn| {
            let entry = &entry;
            async move {
                redis::cmd("HGET")
                    .arg(entry)
                    .arg("v")
                    .query_async::<Option<Vec<u8>>>(&mut conn)
                    .await
            }
        })
        .await
    }

    async fn set(
        &self,
        plugin: &str,
        key: &str,
        value: &[u8],
        ttl: Option<Duration>,
        tags: &[String],
    ) -> Result<(), CacheError> {
        let ttl = ttl_millis(ttl);
        if ttl == Some(0) {
            // Already expired: nothing to store, but the old value must go.
            return self.delete(plugin, key).await.map(drop);
        }
        let tags = unique_tags(tags);
        let entry_prefix = self.prefix('c', plugin);
        let tag_prefix = self.prefix('t', plugin);
        let entry = format!("{entry_prefix}{key}");
        let encoded = encode_tags(&tags);
        let mut invocation = self.set.prepare_invoke();
        invocation.key(&entry);
        for tag in &tags {
            invocation.key(format!("{tag_prefix}{tag}"));
        }
        invocation
            .arg(value)
            .arg(ttl.unwrap_or(0))
            .arg(&encoded)
            .arg(key)
            .arg(&entry_prefix)
            .arg(&tag_prefix);
        for tag in &tags {
            invocation.arg(*tag);
        }
        let invocation = &invocation;
        self.run("write an entry", |mut conn| async move {
            invocation.invoke_async::<()>(&mut conn).await
        })
        .await
    }

    async fn delete(&self, plugin: &str, key: &str) -> Result<bool, CacheError> {
        let tag_prefix = self.prefix('t', plugin);
        let mut invocation = self.delete.prepare_invoke();
        invocation
            .key(format!("{}{key}", self.prefix('c', plugin)))
            .arg(key)
            .arg(&tag_prefix);
        let invocation = &invocation;
        self.run("delete an entry", |mut conn| async move {
            invocation.invoke_async::<u64>(&mut conn).await
        })
        .await
        .map(|deleted| deleted > 0)
    }

    async fn invalidate_tag(&self, plugin: &str, tag: &str) -> Result<u64, CacheError> {
        let tag_prefix = self.prefix('t', plugin);
        let mut invocation = self.invalidate.prepare_invoke();
        invocation
            .key(format!("{tag_prefix}{tag}"))
            .arg(self.prefix('c', plugin))
            .arg(&tag_prefix)
            .arg(tag);
        let invocation = &invocation;
        self.run("invalidate a tag", |mut conn| async move {
            invocation.invoke_async::<u64>(&mut conn).await
        })
        .await
    }

    async fn clear(&self, plugin: &str) -> Result<(), CacheError> {
        for kind in ['c', 't'] {
            let pattern = format!("{}*", glob_escape(&self.prefix(kind, plugin)));
            self.run("clear a plugin's entries", |conn| {
                unlink_matching(conn, &pattern)
            })
            .await?;
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        "redis"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_logs_or_messages() {
        assert_eq!(
            redact("redis://:s3cret@cache.internal:6379/2"),
            "redis://:****@cache.internal:6379/2"
        );
        assert_eq!(
            redact("redis://app:s3cret@10.0.0.5"),
            "redis://app:****@10.0.0.5"
        );
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("redis://u:p@[bad"), "redis://…");
        assert_eq!(redact("no scheme:s3cret"), "(unparseable URL)");
    }

    #[tokio::test]
    async fn bad_urls_and_namespaces_are_explained() {
        let err = RedisCache::connect("rediss://:pw@example.com", "site")
            .await
            .unwrap_err();
        let CacheError::Invalid(m) = err else {
            panic!("{err:?}")
        };
        assert!(m.contains("TLS") && !m.contains("pw@"), "{m}");

        let err = RedisCache::connect("postgres://:pw@db", "site")
            .await
            .unwrap_err();
        let CacheError::Invalid(m) = err else {
            panic!("{err:?}")
        };
        assert!(m.contains("not a Redis URL") && !m.contains("pw@"), "{m}");

        for namespace in ["", "a:b", "a*", &"x".repeat(65), "é"] {
            let err = RedisCache::connect("redis://127.0.0.1:1", namespace)
                .await
                .unwrap_err();
            let CacheError::Invalid(m) = err else {
                panic!("{err:?}")
            };
            assert!(m.contains("namespace"), "{m}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_redis_is_unavailable_without_the_password() {
        // Port 1 on localhost: nothing listens there, the connection is refused at once.
        let err = RedisCache::connect("redis://:hunter2@127.0.0.1:1", "site")
            .await
            .unwrap_err();
        let CacheError::Unavailable(m) = err else {
            panic!("{err:?}")
        };
        assert!(m.contains("127.0.0.1:1") && !m.contains("hunter2"), "{m}");
    }

    #[test]
    fn layout_cannot_collide() {
        // ("a:b", "c") and ("a", "b:c") must map to different keys.
        let one = format!("{}c", key_prefix("ns", 'c', "a:b"));
        let two = format!("{}b:c", key_prefix("ns", 'c', "a"));
        assert_eq!(one, "ucms:ns:c:3:a:b:c");
        assert_eq!(two, "ucms:ns:c:1:a:b:c");
        // A plugin id that looks like a length prefix cannot reach into another plugin's space either.
        assert_ne!(key_prefix("ns", 'c', "1:a"), key_prefix("ns", 'c', "a"));
        assert_eq!(encode_tags(&["a:b", "", "é"]), b"3:a:b0:2:\xc3\xa9");
        assert_eq!(glob_escape(r"a*b?[c]\d"), r"a\*b\?\[c\]\\d");
    }
}
