//! Rate limits: the token bucket of each connection's commands (local by nature), and
//! [`HttpRateLimiter`], the per-caller limits by endpoint class of the sports, leaderboard and
//! sign-in APIs (seed 001's numbers by default), of opening connections and of Socket.IO events
//! (seed 004's) — counted in this node's memory, or cluster-wide in a shared
//! `courtside_core::limiter` backend (Redis or PostgreSQL), with a local fallback while that
//! fails. The middleware that applies them to requests is [`crate::http::rate_limited`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use courtside_core::limiter::{Decision, LimiterBackend, MemoryLimiter, Quota, unix_now_us};
use serde::{Deserialize, Serialize};

/// Requests allowed per window: the bucket holds `requests` and refills them over `per_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    pub per_secs: u32,
}

impl RateLimit {
    pub const fn new(requests: u32, per_secs: u32) -> Self {
        Self { requests, per_secs }
    }
}

/// A token bucket: `burst` tokens at most, refilled at `rate` per second.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    pub fn new(rate: u32, burst: u32) -> Self {
        Self::with_rate(f64::from(rate), burst)
    }

    fn with_rate(rate: f64, burst: u32) -> Self {
        Self { rate, burst: f64::from(burst), tokens: f64::from(burst), refilled_at: Instant::now() }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.refilled_at).as_secs_f64();
        self.refilled_at = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
    }

    /// Takes a token if there is one.
    pub fn take(&mut self, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// Whole tokens left.
    pub fn remaining(&self) -> u32 {
        self.tokens.floor().clamp(0.0, f64::from(u32::MAX)) as u32
    }

    /// How long until the bucket is full again.
    pub fn until_full(&self) -> Duration {
        self.wait_for(self.burst)
    }

    /// How long until one token is there.
    pub fn until_next(&self) -> Duration {
        self.wait_for(1.0)
    }

    fn wait_for(&self, tokens: f64) -> Duration {
        let missing = (tokens - self.tokens).max(0.0);
        if self.rate <= 0.0 {
            return Duration::MAX;
        }
        Duration::from_secs_f64(missing / self.rate)
    }
}

/// The limited groups of sports endpoints, each with its own bucket per caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EndpointClass {
    ScoreUpdate,
    ScoreRead,
    ScoresList,
    ScoreHistory,
    ClaimWrite,
    ClaimRead,
    ClaimsList,
    CoverageRead,
    CoverageWrite,
    /// Sign-in and refresh (counted per client address: guards against password guessing).
    SignIn,
    /// Leaderboard reads: boards, top, a player's rank, around a player, pages.
    LeaderboardRead,
    /// Leaderboard writes: score submits, match results, board creation.
    LeaderboardWrite,
    /// Opening a connection — a WebSocket, an SSE stream, a Socket.IO session — counted per
    /// client address on every transport. The default is a flood guard that a stadium's
    /// thousands of phones behind one address stay under; seed 004's 100 per 15 minutes is set
    /// in `examples/live-scoreboard.toml`.
    Connect,
    /// Events a Socket.IO client emits, counted per user (or address) across its sockets
    /// (seed 004's 60 per minute in `examples/live-scoreboard.toml`).
    SocketIoEvent,
    /// Every other endpoint (events, registry, matches, announcements, conflicts, users).
    Other,
}

impl EndpointClass {
    pub const ALL: [EndpointClass; 15] = [
        EndpointClass::ScoreUpdate,
        EndpointClass::ScoreRead,
        EndpointClass::ScoresList,
        EndpointClass::ScoreHistory,
        EndpointClass::ClaimWrite,
        EndpointClass::ClaimRead,
        EndpointClass::ClaimsList,
        EndpointClass::CoverageRead,
        EndpointClass::CoverageWrite,
        EndpointClass::SignIn,
        EndpointClass::LeaderboardRead,
        EndpointClass::LeaderboardWrite,
        EndpointClass::Connect,
        EndpointClass::SocketIoEvent,
        EndpointClass::Other,
    ];

    /// Its name in the configuration (`sports.rate_limits.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            EndpointClass::ScoreUpdate => "score_update",
            EndpointClass::ScoreRead => "score_read",
            EndpointClass::ScoresList => "scores_list",
            EndpointClass::ScoreHistory => "score_history",
            EndpointClass::ClaimWrite => "claim_write",
            EndpointClass::ClaimRead => "claim_read",
            EndpointClass::ClaimsList => "claims_list",
            EndpointClass::CoverageRead => "coverage_read",
            EndpointClass::CoverageWrite => "coverage_write",
            EndpointClass::SignIn => "sign_in",
            EndpointClass::LeaderboardRead => "leaderboard_read",
            EndpointClass::LeaderboardWrite => "leaderboard_write",
            EndpointClass::Connect => "connect",
            EndpointClass::SocketIoEvent => "socketio_event",
            EndpointClass::Other => "other",
        }
    }

    /// Seed 001's limits; for leaderboards, a live view's polling and a player's submits.
    pub fn default_limit(self) -> RateLimit {
        match self {
            EndpointClass::ScoreUpdate | EndpointClass::CoverageWrite => RateLimit::new(10, 1),
            EndpointClass::ScoreRead | EndpointClass::ClaimRead => RateLimit::new(100, 60),
            EndpointClass::ScoresList | EndpointClass::ScoreHistory | EndpointClass::ClaimsList | EndpointClass::CoverageRead => {
                RateLimit::new(50, 60)
            }
            EndpointClass::ClaimWrite | EndpointClass::SignIn => RateLimit::new(20, 60),
            EndpointClass::LeaderboardRead => RateLimit::new(300, 60),
            EndpointClass::LeaderboardWrite => RateLimit::new(20, 1),
            EndpointClass::Connect => RateLimit::new(20_000, 60),
            EndpointClass::SocketIoEvent => RateLimit::new(6_000, 60),
            EndpointClass::Other => RateLimit::new(100, 60),
        }
    }

    /// The class of a sports route (`path` as routed, with `{…}` placeholders).
    pub fn of(method: &axum::http::Method, path: &str) -> EndpointClass {
        use axum::http::Method;
        let is_get = method == Method::GET;
        match path {
            "/api/events/{event_id}/scores" if is_get => EndpointClass::ScoresList,
            "/api/events/{event_id}/scores" => EndpointClass::ScoreUpdate,
            "/api/events/{event_id}/scores/{match_id}" => EndpointClass::ScoreRead,
            "/api/events/{event_id}/scores/{match_id}/history" => EndpointClass::ScoreHistory,
            "/api/events/{event_id}/claims" => EndpointClass::ClaimsList,
            "/api/events/{event_id}/claims/{match_id}" if is_get => EndpointClass::ClaimRead,
            "/api/events/{event_id}/claims/{match_id}" => EndpointClass::ClaimWrite,
            "/api/events/{event_id}/coverage-plans" if is_get => EndpointClass::CoverageRead,
            "/api/events/{event_id}/coverage-plans" => EndpointClass::CoverageWrite,
            "/api/auth/login" | "/api/auth/refresh" => EndpointClass::SignIn,
            // A public scoreboard's page load counts as the connection it opens: a stadium of
            // phones behind one address stays under it.
            "/ws" | "/sse" | "/socket.io/" | "/api/scoreboards" | "/api/scoreboards/{event_id}" => EndpointClass::Connect,
            leaderboards if leaderboards.starts_with("/api/leaderboards") && is_get => EndpointClass::LeaderboardRead,
            leaderboards if leaderboards.starts_with("/api/leaderboards") => EndpointClass::LeaderboardWrite,
            _ => EndpointClass::Other,
        }
    }
}

/// Who a bucket belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Caller {
    User(String),
    /// Requests without a usable token are limited per client address.
    Address(IpAddr),
}

impl Caller {
    /// The bucket of a client address: an IPv6 address counts by its /64 (one subscriber's
    /// network), or anyone holding a /64 would have endless buckets.
    pub fn address(ip: IpAddr) -> Caller {
        match ip {
            IpAddr::V4(_) => Caller::Address(ip),
            IpAddr::V6(v6) => {
                let bits = u128::from(v6) & !((1u128 << 64) - 1);
                Caller::Address(IpAddr::V6(bits.into()))
            }
        }
    }
}

impl Caller {
    /// The limiter key of this caller's bucket for `class` (user ids may hold anything, so
    /// they come last).
    pub fn key(&self, class: EndpointClass) -> String {
        match self {
            Caller::User(id) => format!("{}:user:{id}", class.name()),
            Caller::Address(ip) => format!("{}:address:{ip}", class.name()),
        }
    }
}

/// The client's address: the connection's peer, unless the peer is a trusted proxy, in which
/// case the right-most address in `X-Forwarded-For` that is not a trusted proxy (what the
/// proxies in front appended; anything left of it the client may have made up).
pub fn client_address(peer: IpAddr, forwarded_for: Option<&str>, trusted_proxies: &[IpAddr]) -> IpAddr {
    if !trusted_proxies.contains(&peer) {
        return peer;
    }
    let Some(forwarded_for) = forwarded_for else { return peer };
    forwarded_for
        .rsplit(',')
        .filter_map(|hop| hop.trim().parse::<IpAddr>().ok())
        .find(|hop| !trusted_proxies.contains(hop))
        .unwrap_or(peer)
}

/// What one request was told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Unix time (seconds) when the bucket is full again.
    pub reset_at_secs: u64,
    /// When refused: seconds until a request would be allowed.
    pub retry_after_secs: u64,
}

impl Verdict {
    fn from_decision(decision: Decision, limit: RateLimit, now_us: u64) -> Verdict {
        let reset_at_us = Duration::from_micros(now_us) + decision.reset_after;
        Verdict {
            allowed: decision.allowed,
            limit: limit.requests,
            remaining: decision.remaining,
            reset_at_secs: reset_at_us.as_secs_f64().ceil() as u64,
            retry_after_secs: if decision.allowed { 0 } else { decision.retry_after.as_secs_f64().ceil().max(1.0) as u64 },
        }
    }
}

/// Where the per-caller limits are counted: this node's memory, or a backend the cluster shares.
pub struct SharedLimits {
    /// `"redis"` or `"postgres"`, for logs.
    pub name: &'static str,
    pub backend: Arc<dyn LimiterBackend>,
}

/// How long one failing shared backend is left alone (the node counts locally meanwhile).
const SHARED_BACKEND_PAUSE: Duration = Duration::from_secs(2);

/// The per-caller, per-class limits of the HTTP API, connections and Socket.IO events. With a
/// shared backend every node counts the same buckets; when that backend fails (an error or no
/// answer in time), the request is counted in this node's memory instead, the failure is
/// logged and counted (`courtside_rate_limit_backend_errors_total`), and the node keeps
/// counting locally for [`SHARED_BACKEND_PAUSE`] before it asks the backend again: limits hold
/// per node during an outage, and the API stays available.
pub struct HttpRateLimiter {
    limits: HashMap<EndpointClass, RateLimit>,
    shared: Option<SharedLimits>,
    local: MemoryLimiter,
    /// Unix µs before which the shared backend is not asked (after a failure).
    shared_paused_until_us: AtomicU64,
    backend_errors: Arc<AtomicU64>,
}

impl HttpRateLimiter {
    /// Limits counted in this node's memory.
    pub fn new(limits: HashMap<EndpointClass, RateLimit>) -> Self {
        Self::with_backend(limits, None, Arc::default())
    }

    /// Limits counted in `shared` (when given), failures counted in `backend_errors`.
    pub fn with_backend(limits: HashMap<EndpointClass, RateLimit>, shared: Option<SharedLimits>, backend_errors: Arc<AtomicU64>) -> Self {
        Self { limits, shared, local: MemoryLimiter::default(), shared_paused_until_us: AtomicU64::new(0), backend_errors }
    }

    fn limit(&self, class: EndpointClass) -> RateLimit {
        self.limits.get(&class).copied().unwrap_or_else(|| class.default_limit())
    }

    /// Counts one request of `caller` to an endpoint of `class`, now.
    pub async fn check(&self, class: EndpointClass, caller: Caller) -> Verdict {
        self.check_at(class, caller, unix_now_us()).await
    }

    /// Counts one request of `caller` to an endpoint of `class` at `now_us` (Unix µs).
    /// [`HttpRateLimiter::check`] at a given time (microseconds since the Unix epoch).
    pub async fn check_at(&self, class: EndpointClass, caller: Caller, now_us: u64) -> Verdict {
        let limit = self.limit(class);
        let quota = Quota::new(limit.requests, Duration::from_secs(u64::from(limit.per_secs.max(1))));
        let key = caller.key(class);
        let decision = match &self.shared {
            Some(shared) if now_us >= self.shared_paused_until_us.load(Ordering::Relaxed) => {
                match shared.backend.take(&key, quota, now_us).await {
                    Ok(decision) => decision,
                    Err(error) => {
                        self.backend_errors.fetch_add(1, Ordering::Relaxed);
                        let pause_us = u64::try_from(SHARED_BACKEND_PAUSE.as_micros()).unwrap_or(u64::MAX);
                        self.shared_paused_until_us.store(now_us.saturating_add(pause_us), Ordering::Relaxed);
                        tracing::warn!(backend = shared.name, %error, "shared rate limits failed; this node counts them itself for {SHARED_BACKEND_PAUSE:?}");
                        self.local.take_now(&key, quota, now_us)
                    }
                }
            }
            _ => self.local.take_now(&key, quota, now_us),
        };
        Verdict::from_decision(decision, limit, now_us)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_bucket_allows_a_burst_then_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 3);
        assert!((0..3).all(|_| bucket.take(start)));
        assert!(!bucket.take(start));
        assert!(bucket.take(start + Duration::from_millis(110)));
        assert!(!bucket.take(start + Duration::from_millis(111)));
    }

    #[tokio::test]
    async fn a_class_limits_each_caller_separately_and_says_when_to_retry() {
        let limiter = HttpRateLimiter::new(HashMap::from([(EndpointClass::ClaimWrite, RateLimit::new(2, 60))]));
        let now = 1_800_000_000_000_000;
        let kim = || Caller::User("kim".into());
        let first = limiter.check_at(EndpointClass::ClaimWrite, kim(), now).await;
        assert_eq!((first.allowed, first.limit, first.remaining), (true, 2, 1));
        assert_eq!(first.reset_at_secs, 1_800_000_030, "full again one interval later");
        assert!(limiter.check_at(EndpointClass::ClaimWrite, kim(), now).await.allowed);
        let refused = limiter.check_at(EndpointClass::ClaimWrite, kim(), now).await;
        assert_eq!((refused.allowed, refused.remaining), (false, 0));
        assert_eq!(refused.retry_after_secs, 30, "one token every 30 s");
        assert!(limiter.check_at(EndpointClass::ClaimWrite, Caller::User("lee".into()), now).await.allowed, "per caller");
        assert!(limiter.check_at(EndpointClass::ClaimRead, kim(), now).await.allowed, "per class");
        assert!(limiter.check_at(EndpointClass::ClaimWrite, kim(), now + 30_000_000).await.allowed);
    }

    /// A backend that always fails, counting how often it was asked.
    #[derive(Default)]
    struct Failing(AtomicU64);

    #[async_trait::async_trait]
    impl LimiterBackend for Failing {
        async fn take(&self, _: &str, _: Quota, _: u64) -> Result<Decision, courtside_core::limiter::LimiterError> {
            self.0.fetch_add(1, Ordering::Relaxed);
            Err(courtside_core::limiter::LimiterError("down".into()))
        }
    }

    #[tokio::test]
    async fn a_failing_shared_backend_is_replaced_by_local_counting_for_a_pause() {
        let failing = Arc::new(Failing::default());
        let errors = Arc::new(AtomicU64::new(0));
        let shared = SharedLimits { name: "test", backend: failing.clone() };
        let limiter = HttpRateLimiter::with_backend(HashMap::from([(EndpointClass::SignIn, RateLimit::new(2, 60))]), Some(shared), errors.clone());
        let now = 1_800_000_000_000_000;
        let address = || Caller::address("203.0.113.7".parse().expect("ip"));
        let verdicts: Vec<bool> = futures_util::future::join_all((0..3).map(|_| limiter.check_at(EndpointClass::SignIn, address(), now)))
            .await
            .into_iter()
            .map(|verdict| verdict.allowed)
            .collect();
        assert_eq!(verdicts, [true, true, false], "the limit still holds, counted locally");
        assert_eq!((failing.0.load(Ordering::Relaxed), errors.load(Ordering::Relaxed)), (1, 1), "asked once, then paused");
        let pause_us = SHARED_BACKEND_PAUSE.as_micros() as u64;
        limiter.check_at(EndpointClass::SignIn, address(), now + pause_us).await;
        assert_eq!(failing.0.load(Ordering::Relaxed), 2, "asked again after the pause");
    }

    #[test]
    fn keys_name_the_class_and_the_caller() {
        assert_eq!(Caller::User("a:b".into()).key(EndpointClass::SignIn), "sign_in:user:a:b");
        assert_eq!(Caller::address("2001:db8::1".parse().expect("ip")).key(EndpointClass::Connect), "connect:address:2001:db8::");
    }

    #[test]
    fn behind_trusted_proxies_the_forwarded_client_counts() {
        let proxy: IpAddr = "10.0.0.2".parse().unwrap();
        let client: IpAddr = "203.0.113.7".parse().unwrap();
        let trusted = [proxy];
        assert_eq!(client_address(proxy, Some("198.51.100.1, 203.0.113.7"), &trusted), client, "the right-most untrusted hop");
        assert_eq!(client_address(proxy, Some("203.0.113.7, 10.0.0.2"), &trusted), client, "trusted hops are skipped");
        assert_eq!(client_address(proxy, None, &trusted), proxy);
        assert_eq!(client_address(proxy, Some("garbage"), &trusted), proxy);
        assert_eq!(client_address(client, Some("198.51.100.1"), &trusted), client, "an untrusted peer cannot claim another address");
        let a = Caller::address("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = Caller::address("2001:db8:1:2:bbbb::9".parse().unwrap());
        assert_eq!(a, b, "one IPv6 /64 is one bucket");
        assert_ne!(a, Caller::address("2001:db8:1:3::1".parse().unwrap()));
    }

    #[test]
    fn routes_map_to_seed_classes() {
        use axum::http::Method;
        assert_eq!(EndpointClass::of(&Method::POST, "/api/events/{event_id}/scores"), EndpointClass::ScoreUpdate);
        assert_eq!(EndpointClass::of(&Method::GET, "/api/events/{event_id}/scores"), EndpointClass::ScoresList);
        assert_eq!(EndpointClass::of(&Method::DELETE, "/api/events/{event_id}/claims/{match_id}"), EndpointClass::ClaimWrite);
        assert_eq!(EndpointClass::of(&Method::GET, "/api/events"), EndpointClass::Other);
        assert_eq!(EndpointClass::ScoreUpdate.default_limit(), RateLimit::new(10, 1));
    }
}
