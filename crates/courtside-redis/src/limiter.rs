//! [`RedisLimiter`]: rate limits shared by every node on one Redis.
//!
//! A key's state is its GCRA theoretical arrival time (Unix microseconds, see
//! `courtside_core::limiter`) in the string `{prefix}:ratelimit:{key}`, expiring when its bucket
//! is full again (no state then means the same). One Lua script per request (`EVALSHA`, loaded
//! again by the client after a `NOSCRIPT`) reads, decides and writes atomically, so nodes never
//! race. The time is the node's, passed in: the rule is then the same in every backend and
//! testable with a moved clock, and the script stays deterministic (safe to replicate as a
//! script on Redis < 5, where `TIME` in a writing script is refused).

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use redis::aio::ConnectionManager;

use courtside_core::limiter::{Decision, LimiterBackend, LimiterError, Quota};

use crate::{RedisEndpoint, RedisError, connection_manager};

/// Limit for connecting.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Limit for one decision's answer: the request waits for it.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// KEYS: the key. ARGV: now (µs), interval T (µs), window (µs). Returns {allowed (1/0), TAT}.
/// Numbers stay below 2^53, so Lua's doubles hold them exactly; `%d` writes them whole.
const TAKE_SCRIPT: &str = r#"
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local stored = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local start = math.max(stored, now)
local next = start + interval
if next - now <= window then
  redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.max(1, math.ceil((next - now) / 1000)))
  return {1, string.format('%d', next)}
end
return {0, string.format('%d', start)}
"#;

/// Times above this do not fit Lua's doubles exactly (2^53 µs is in the year 2255).
const EXACT_IN_LUA_MAX: u64 = 1 << 53;

/// The Redis [`LimiterBackend`] of one node; see the module docs.
pub struct RedisLimiter {
    connection: ConnectionManager,
    key_prefix: String,
    take: Script,
}

impl RedisLimiter {
    /// Connects to Redis at `endpoint` (a URL, or one with the CA of a `rediss://` server); keys
    /// go under `{key_prefix}:ratelimit:`.
    pub async fn connect(endpoint: impl Into<RedisEndpoint>, key_prefix: &str) -> Result<Self, RedisError> {
        let connection = connection_manager(&endpoint.into(), CONNECT_TIMEOUT, RESPONSE_TIMEOUT, 1).await?;
        Ok(Self { connection, key_prefix: key_prefix.to_string(), take: Script::new(TAKE_SCRIPT) })
    }

    /// The Redis key of a limiter key.
    pub fn redis_key(&self, key: &str) -> String {
        format!("{}:ratelimit:{key}", self.key_prefix)
    }
}

#[async_trait]
impl LimiterBackend for RedisLimiter {
    async fn take(&self, key: &str, quota: Quota, now_us: u64) -> Result<Decision, LimiterError> {
        let window = quota.window_us();
        if now_us.saturating_add(window) >= EXACT_IN_LUA_MAX {
            return Err(LimiterError(format!("a time of {now_us} µs plus a window of {window} µs is beyond what Redis scripts hold exactly")));
        }
        let mut connection = self.connection.clone();
        let mut invocation = self.take.key(self.redis_key(key));
        invocation.arg(now_us).arg(quota.interval_us()).arg(window);
        let answer = invocation.invoke_async::<(i64, String)>(&mut connection);
        let (allowed, tat) = tokio::time::timeout(RESPONSE_TIMEOUT, answer)
            .await
            .map_err(|_| LimiterError(format!("Redis did not answer within {RESPONSE_TIMEOUT:?}")))?
            .map_err(|error| LimiterError(format!("Redis: {error}")))?;
        let tat: u64 = tat.parse().map_err(|_| LimiterError(format!("Redis answered an unreadable time {tat:?}")))?;
        Ok(Decision::from_tat(allowed == 1, tat, now_us, quota))
    }
}
