//! Rate limits kept where every node can see them: the [`LimiterBackend`] seam (take one request
//! for a key under a [`Quota`] at a time), the one rule every backend computes ([`gcra`], the
//! generic cell rate algorithm), and [`MemoryLimiter`], the backend of a single node.
//!
//! # The rule
//! A quota of `requests` per `period` lets one request through every emission interval
//! `T = period / requests`, with a burst of `requests` at once. A key's whole state is one
//! number, its *theoretical arrival time* (TAT, Unix microseconds): the time at which its bucket
//! would be full again. A request at `now` would move it to `max(TAT, now) + T`; it is allowed
//! if that lies at most `requests × T` (the window) after `now`, and then stored; otherwise
//! nothing changes. A TAT in the past is the same as no state, so a key can be forgotten (and
//! a shared backend lets it expire) once its TAT has passed.
//!
//! Times are integers of microseconds and `T` is rounded up to a whole microsecond, so every
//! backend (Rust, Lua in Redis, SQL in PostgreSQL) computes exactly the same answers; the window
//! is `requests × T`, a few microseconds longer than `period` at most.
//!
//! # The clock
//! The caller passes `now` (the node's clock, Unix microseconds), so the rule is the same on
//! every backend and the conformance suite can move time. Nodes of a cluster must keep their
//! clocks in step (NTP): a node whose clock runs `d` ahead may let a caller through up to `d`
//! early, never more.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;

/// Requests allowed per period, as a bucket of `requests` refilled over `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub requests: u32,
    pub period: Duration,
}

impl Quota {
    pub const fn new(requests: u32, period: Duration) -> Self {
        Self { requests, period }
    }

    /// The emission interval `T` in microseconds: the period over the requests, rounded up to a
    /// whole microsecond, at least 1.
    pub fn interval_us(self) -> u64 {
        let period_us = u64::try_from(self.period.as_micros()).unwrap_or(u64::MAX);
        period_us.div_ceil(u64::from(self.requests.max(1))).max(1)
    }

    /// The window, `requests × T`: how far ahead of now a key's TAT may be.
    pub fn window_us(self) -> u64 {
        self.interval_us().saturating_mul(u64::from(self.requests.max(1)))
    }
}

/// What one request was told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// Requests still allowed right now, after this one.
    pub remaining: u32,
    /// Until the bucket is full again.
    pub reset_after: Duration,
    /// When refused: until one request would be allowed; zero when allowed.
    pub retry_after: Duration,
}

impl Decision {
    /// The decision a backend reached, from whether it allowed the request and the key's TAT
    /// after it (unchanged when refused).
    pub fn from_tat(allowed: bool, tat_us: u64, now_us: u64, quota: Quota) -> Decision {
        let interval = quota.interval_us();
        let ahead = tat_us.saturating_sub(now_us);
        let remaining = if allowed { quota.window_us().saturating_sub(ahead) / interval } else { 0 };
        let retry_after_us = if allowed { 0 } else { ahead.saturating_add(interval).saturating_sub(quota.window_us()).max(1) };
        Decision {
            allowed,
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset_after: Duration::from_micros(ahead),
            retry_after: Duration::from_micros(retry_after_us),
        }
    }
}

/// The rule itself: given the key's stored TAT (`None`: no state), whether the request at
/// `now_us` is allowed and the TAT to keep (the stored one when refused).
pub fn gcra(stored_tat_us: Option<u64>, now_us: u64, quota: Quota) -> (bool, u64) {
    let start = stored_tat_us.map_or(now_us, |tat| tat.max(now_us));
    let next = start.saturating_add(quota.interval_us());
    if next - now_us <= quota.window_us() {
        (true, next)
    } else {
        (false, start)
    }
}

/// The node's clock as the limiter reads it: Unix microseconds.
pub fn unix_now_us() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Why a backend could not decide (the caller chooses what to do meanwhile).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rate limit backend unavailable: {0}")]
pub struct LimiterError(pub String);

/// Where rate-limit state lives: one operation, atomic per key across everyone sharing the
/// backend. `key` is opaque to the backend (the caller composes it); `now_us` is the caller's
/// clock (see the module docs).
#[async_trait]
pub trait LimiterBackend: Send + Sync {
    /// Takes one request for `key` under `quota` at `now_us`.
    async fn take(&self, key: &str, quota: Quota, now_us: u64) -> Result<Decision, LimiterError>;
}

/// Keys kept before those whose bucket is full again are dropped.
const KEYS_SWEEP_AT: usize = 100_000;

/// The in-memory backend: one TAT per key, in this process only.
#[derive(Default)]
pub struct MemoryLimiter {
    tats: Mutex<HashMap<String, u64>>,
}

impl MemoryLimiter {
    /// [`LimiterBackend::take`] without the future: memory answers at once and never fails.
    pub fn take_now(&self, key: &str, quota: Quota, now_us: u64) -> Decision {
        let mut tats = self.tats.lock();
        if tats.len() >= KEYS_SWEEP_AT {
            // A TAT in the past holds nothing worth keeping: no state means the same.
            tats.retain(|_, tat| *tat > now_us);
        }
        let (allowed, tat) = gcra(tats.get(key).copied(), now_us, quota);
        if allowed {
            tats.insert(key.to_string(), tat);
        }
        Decision::from_tat(allowed, tat, now_us, quota)
    }

    /// Keys held (for tests of the sweep).
    pub fn len(&self) -> usize {
        self.tats.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl LimiterBackend for MemoryLimiter {
    async fn take(&self, key: &str, quota: Quota, now_us: u64) -> Result<Decision, LimiterError> {
        Ok(self.take_now(key, quota, now_us))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_is_rounded_up_and_the_window_covers_the_period() {
        let quota = Quota::new(7, Duration::from_secs(60));
        assert_eq!(quota.interval_us(), 8_571_429);
        assert_eq!(quota.window_us(), 60_000_003);
        assert_eq!(Quota::new(4, Duration::from_secs(60)).interval_us(), 15_000_000);
        assert_eq!(Quota::new(u32::MAX, Duration::from_secs(1)).interval_us(), 1, "at least a microsecond");
    }

    #[test]
    fn a_burst_counts_down_then_is_refused_until_one_interval_passed() {
        let limiter = MemoryLimiter::default();
        let quota = Quota::new(4, Duration::from_secs(60));
        let now = 1_800_000_000_000_000;
        let remaining: Vec<u32> = (0..4).map(|_| limiter.take_now("k", quota, now).remaining).collect();
        assert_eq!(remaining, [3, 2, 1, 0]);
        let refused = limiter.take_now("k", quota, now);
        assert!(!refused.allowed);
        assert_eq!(refused.retry_after, Duration::from_secs(15));
        assert_eq!(refused.reset_after, Duration::from_secs(60));
        assert!(limiter.take_now("k", quota, now + 15_000_000).allowed);
    }
}
