//! The conformance suite for [`LimiterBackend`]: a burst then refusal, refill as the (injected)
//! clock moves, independent keys and quotas, and the exact remaining / reset / retry-after
//! values of the GCRA rule; with `nodes_share_a_backend`, two nodes count one key together.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::limiter::{Decision, LimiterBackend, Quota, unix_now_us};
use crate::stream::Epoch;

pub type OpenedLimiter = Pin<Box<dyn Future<Output = Arc<dyn LimiterBackend>>>>;

const SECOND_US: u64 = 1_000_000;

async fn take(limiter: &Arc<dyn LimiterBackend>, key: &str, quota: Quota, now_us: u64) -> Decision {
    limiter.take(key, quota, now_us).await.expect("the backend answers")
}

/// Runs every check; `open` makes the limiter of a new node. Keys are fresh for each run, so
/// runs sharing a backend never meet.
pub async fn limiter<F>(open: F, nodes_share_a_backend: bool)
where
    F: Fn() -> OpenedLimiter,
{
    let run = Epoch::new_random();
    let key = |name: &str| format!("conformance:{run}:{name}");
    let a = open().await;
    let b = if nodes_share_a_backend { open().await } else { a.clone() };
    let now = unix_now_us();
    let four_a_minute = Quota::new(4, Duration::from_secs(60));

    // A burst of the whole quota, counted down, then refused.
    let burst = key("burst");
    let mut remaining = Vec::new();
    for (i, node) in [&a, &b, &a, &b].into_iter().enumerate() {
        let decision = take(node, &burst, four_a_minute, now).await;
        assert!(decision.allowed, "request {} of the burst", i + 1);
        assert_eq!(decision.retry_after, Duration::ZERO);
        assert_eq!(decision.reset_after, Duration::from_secs(15 * (i as u64 + 1)), "full again one interval per request later");
        remaining.push(decision.remaining);
    }
    assert_eq!(remaining, [3, 2, 1, 0], "both nodes count one bucket");
    let refused = take(&b, &burst, four_a_minute, now).await;
    assert_eq!(
        refused,
        Decision { allowed: false, remaining: 0, reset_after: Duration::from_secs(60), retry_after: Duration::from_secs(15) }
    );
    let still = take(&a, &burst, four_a_minute, now + 14 * SECOND_US).await;
    assert!(!still.allowed, "a refusal takes nothing, and the interval has not passed");
    assert_eq!(still.retry_after, Duration::from_secs(1));

    // Refill: one request per interval, then the whole burst after the period.
    let refilled = take(&a, &burst, four_a_minute, now + 15 * SECOND_US).await;
    assert_eq!((refilled.allowed, refilled.remaining), (true, 0), "one interval brings one request back");
    assert_eq!(refilled.reset_after, Duration::from_secs(60));
    assert!(!take(&b, &burst, four_a_minute, now + 15 * SECOND_US).await.allowed);
    let later = now + 200 * SECOND_US;
    let full = take(&b, &burst, four_a_minute, later).await;
    assert_eq!((full.allowed, full.remaining), (true, 3), "a bucket idle past its period is full again");
    assert_eq!(full.reset_after, Duration::from_secs(15));
    let half = take(&a, &burst, four_a_minute, later + 30 * SECOND_US).await;
    assert_eq!((half.allowed, half.remaining), (true, 3), "refilled while idle, never above the quota");

    // Keys and quotas are independent.
    let other = key("other");
    let one_a_second = Quota::new(1, Duration::from_secs(1));
    assert!(take(&a, &other, one_a_second, now).await.allowed, "another key has its own bucket");
    let next = take(&b, &other, one_a_second, now).await;
    assert!(!next.allowed);
    assert_eq!(next.retry_after, Duration::from_secs(1));
    assert!(take(&b, &other, one_a_second, now + SECOND_US).await.allowed);
    assert!(take(&a, &key("third"), four_a_minute, now).await.allowed);

    // Fractional intervals: 7 a minute is a burst of exactly 7 on every backend.
    let seven = key("seven");
    let seven_a_minute = Quota::new(7, Duration::from_secs(60));
    for i in 0..7 {
        let node = if i % 2 == 0 { &a } else { &b };
        let decision = take(node, &seven, seven_a_minute, now).await;
        assert_eq!((decision.allowed, decision.remaining), (true, 6 - i), "request {} of 7", i + 1);
    }
    let eighth = take(&a, &seven, seven_a_minute, now).await;
    assert!(!eighth.allowed);
    assert_eq!(eighth.retry_after, Duration::from_micros(seven_a_minute.interval_us()));

    // A node whose clock is behind sees the others' requests further ahead: it never gives more.
    let behind = key("behind");
    let two = Quota::new(2, Duration::from_secs(10));
    assert!(take(&a, &behind, two, now).await.allowed);
    assert!(!take(&b, &behind, two, now - 2 * SECOND_US).await.allowed, "the clock behind sees more than the window taken");
    assert!(take(&a, &behind, two, now).await.allowed, "the refusal took nothing");
    assert!(!take(&a, &behind, two, now).await.allowed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limiter::MemoryLimiter;

    #[tokio::test]
    async fn memory_limiter_conforms() {
        limiter(|| Box::pin(async { Arc::new(MemoryLimiter::default()) as Arc<dyn LimiterBackend> }), false).await;
    }
}
