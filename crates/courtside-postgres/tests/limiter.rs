//! PostgreSQL rate limits against a real server, each test in a database of its own: the core
//! conformance suite with two nodes on one backend, and the sweep of rows whose bucket is full.

mod support;

use std::sync::Arc;
use std::time::Duration;

use courtside_core::conformance;
use courtside_core::limiter::{LimiterBackend, Quota, unix_now_us};
use courtside_postgres::PostgresLimiter;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_limiter_conforms_with_nodes_on_one_backend() {
    let Some(database) = support::fresh_database().await else { return };
    let url = database.url.clone();
    conformance::limiter::limiter(
        || {
            let url = url.clone();
            Box::pin(async move { PostgresLimiter::connect(&url).await.expect("connect") as Arc<dyn LimiterBackend> })
        },
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sweep_deletes_only_rows_whose_bucket_is_full_again() {
    let Some(database) = support::fresh_database().await else { return };
    let limiter = PostgresLimiter::connect(&database.url).await.expect("connect");
    let now = unix_now_us();
    let quota = Quota::new(2, Duration::from_secs(10));
    limiter.take("short", Quota::new(1, Duration::from_secs(1)), now).await.expect("take");
    limiter.take("long", quota, now).await.expect("take");
    let count = async || -> i64 {
        database.connect().await.query_one("SELECT count(*) FROM courtside_rate_limits", &[]).await.expect("count").get(0)
    };
    assert_eq!(count().await, 2);
    assert_eq!(limiter.sweep(now).await.expect("sweep"), 0, "both still hold requests");
    assert_eq!(limiter.sweep(now + 2_000_000).await.expect("sweep"), 1, "the one-second bucket is full again");
    assert_eq!(count().await, 1);
    let after = limiter.take("long", quota, now).await.expect("take");
    assert_eq!((after.allowed, after.remaining), (true, 0), "the kept row still counts");
}
