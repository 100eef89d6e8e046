//! Redis rate limits against a real Redis: the core conformance suite with two nodes on one
//! backend, keys that expire when their bucket is full again, and an outage answered by an
//! error within the response limit (the server then counts locally), then recovered from.

mod common;

use std::sync::Arc;
use std::time::Duration;

use courtside_core::conformance;
use courtside_core::limiter::{LimiterBackend, Quota, unix_now_us};
use courtside_redis::RedisLimiter;

use common::{PrivateRedis, reachable_redis, unique_key_prefix};

#[tokio::test]
async fn redis_limiter_conforms_with_nodes_on_one_backend() {
    let Some(url) = reachable_redis().await else { return };
    let prefix = unique_key_prefix();
    conformance::limiter::limiter(
        || {
            let (url, prefix) = (url.clone(), prefix.clone());
            Box::pin(async move { Arc::new(RedisLimiter::connect(&url, &prefix).await.expect("connect")) as Arc<dyn LimiterBackend> })
        },
        true,
    )
    .await;
}

#[tokio::test]
async fn a_key_expires_when_its_bucket_is_full_again() {
    let Some(url) = reachable_redis().await else { return };
    let limiter = RedisLimiter::connect(&url, &unique_key_prefix()).await.expect("connect");
    let quota = Quota::new(2, Duration::from_millis(400));
    let now = unix_now_us();
    assert!(limiter.take("sign_in:address:203.0.113.7", quota, now).await.expect("take").allowed);
    assert!(limiter.take("sign_in:address:203.0.113.7", quota, now).await.expect("take").allowed);
    let client = redis::Client::open(url.as_str()).expect("url");
    let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
    let key = limiter.redis_key("sign_in:address:203.0.113.7");
    let ttl_ms: i64 = redis::cmd("PTTL").arg(&key).query_async(&mut connection).await.expect("PTTL");
    assert!((1..=400).contains(&ttl_ms), "expires when full again (400 ms after now), got {ttl_ms} ms");
    let stored: String = redis::cmd("GET").arg(&key).query_async(&mut connection).await.expect("GET");
    assert_eq!(stored, (now + 400_000).to_string(), "one whole number: the time the bucket is full again");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let exists: i64 = redis::cmd("EXISTS").arg(&key).query_async(&mut connection).await.expect("EXISTS");
    assert_eq!(exists, 0, "gone once full");
}

#[tokio::test]
async fn an_unreachable_redis_is_an_error_not_a_hang() {
    let started = tokio::time::Instant::now();
    let result = RedisLimiter::connect("redis://127.0.0.1:1", "unused").await;
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(11));
}

#[tokio::test]
async fn an_outage_is_an_error_within_half_a_second_and_the_limiter_recovers() {
    let Some(mut redis) = PrivateRedis::start_or_skip().await else { return };
    let limiter = RedisLimiter::connect(&redis.url(), &unique_key_prefix()).await.expect("connect");
    let quota = Quota::new(100, Duration::from_secs(60));
    assert!(limiter.take("k", quota, unix_now_us()).await.expect("take").allowed);
    redis.kill();
    for _ in 0..3 {
        let started = tokio::time::Instant::now();
        assert!(limiter.take("k", quota, unix_now_us()).await.is_err(), "no decision without Redis");
        assert!(started.elapsed() < Duration::from_millis(900), "an error, not a hang: {:?}", started.elapsed());
    }
    redis.restart().await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        match limiter.take("k", quota, unix_now_us()).await {
            Ok(decision) => {
                assert_eq!(decision.remaining, 99, "a restarted Redis starts every bucket full");
                break;
            }
            Err(error) => assert!(tokio::time::Instant::now() < deadline, "not recovered: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
