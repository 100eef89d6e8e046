//! Rate limits across a cluster: two nodes on one PostgreSQL (with Redis as the broker, and
//! without Redis) count one bucket per caller, whichever node each request reaches; the
//! `X-RateLimit-*` headers say the shared count on both; and nodes told to count locally do not.

mod common;

use std::collections::BTreeMap;

use courtside_core::Role;
use courtside_server::Config;
use courtside_server::rate_limit::RateLimit;
use courtside_testkit::postgres::{TestDatabase, fresh_database};
use serde_json::json;

use common::TestServer;

/// What one request was told.
#[derive(Debug)]
struct Answer {
    status: u16,
    limit: Option<u64>,
    remaining: Option<u64>,
    reset: Option<u64>,
    retry_after: Option<u64>,
}

async fn send(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("request");
    let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
    Answer {
        status: response.status().as_u16(),
        limit: header("x-ratelimit-limit"),
        remaining: header("x-ratelimit-remaining"),
        reset: header("x-ratelimit-reset"),
        retry_after: header("retry-after"),
    }
}

/// A failed sign-in: counted per client address in `sign_in`.
async fn sign_in(node: &TestServer) -> Answer {
    let body = json!({ "email": "nobody@club.example", "password": "guess" });
    send(reqwest::Client::new().post(node.http("/api/auth/login")).json(&body)).await
}

/// A claim read by `token`'s user: counted per user in `claim_read`.
async fn claim_read(node: &TestServer, token: &str) -> Answer {
    send(reqwest::Client::new().get(node.http("/api/events/open/claims/m1")).bearer_auth(token)).await
}

fn small_limits(config: &mut Config) {
    config.sports.rate_limits = BTreeMap::from([
        ("sign_in".to_string(), RateLimit::new(4, 60)),
        ("claim_read".to_string(), RateLimit::new(4, 60)),
    ]);
}

/// Two nodes on `database`, joined by `broker`, with the same keys and small limits.
async fn two_nodes(database: &TestDatabase, broker: &str, adjust: impl Fn(&mut Config)) -> (TestServer, TestServer) {
    let prefix = format!("limits-{}", database.name);
    let cluster = |c: &mut Config| {
        c.store = database.url.clone();
        c.broker = broker.to_string();
        c.redis_prefix = prefix.clone();
        small_limits(c);
        adjust(c);
    };
    let node_a = TestServer::start_with(cluster).await;
    let node_b = node_a.start_peer(cluster).await;
    (node_a, node_b)
}

/// Requests alternate between the nodes: the first four count down 3, 2, 1, 0 on whichever node
/// answers, and the fifth is refused with 429 and `Retry-After`.
async fn assert_counted_together(nodes: [&TestServer; 2], request: impl AsyncFn(&TestServer) -> Answer) {
    let mut answers = Vec::new();
    for i in 0..5 {
        answers.push(request(nodes[i % 2]).await);
    }
    for (i, answer) in answers[..4].iter().enumerate() {
        assert_ne!(answer.status, 429, "request {} is within the limit: {answers:?}", i + 1);
        assert_eq!(answer.limit, Some(4), "{answers:?}");
    }
    let remaining: Vec<Option<u64>> = answers.iter().map(|answer| answer.remaining).collect();
    assert_eq!(remaining, [Some(3), Some(2), Some(1), Some(0), Some(0)], "one count across the nodes: {answers:?}");
    let refused = &answers[4];
    assert_eq!(refused.status, 429, "the fifth request overall is refused, on the node that got it: {answers:?}");
    assert_eq!(refused.retry_after, Some(15), "one request comes back every 15 s: {answers:?}");
    let resets: Vec<u64> = answers.iter().filter_map(|answer| answer.reset).collect();
    assert_eq!(resets.len(), 5, "{answers:?}");
    assert!(resets.windows(2).all(|pair| pair[1] >= pair[0] && pair[1] - pair[0] <= 16), "the nodes agree on when the bucket is full: {answers:?}");
    let again = request(nodes[1]).await;
    assert_eq!(again.status, 429, "still refused on the other node: {again:?}");
}

/// Redis reachable at the test URL, else skipped (failed under CI).
async fn reachable_redis() -> Option<String> {
    let redis = std::env::var("COURTSIDE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let address = redis.trim_start_matches("redis://").trim_end_matches('/').to_string();
    if tokio::net::TcpStream::connect(&address).await.is_err() {
        courtside_testkit::skip_or_fail(&format!("Redis not reachable at {redis}; set COURTSIDE_TEST_REDIS_URL"));
        return None;
    }
    Some(redis)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_redis_and_postgres_share_each_callers_limits() {
    let Some(database) = fresh_database().await else { return };
    let Some(redis) = reachable_redis().await else { return };
    let (node_a, node_b) = two_nodes(&database, &redis, |_| {}).await;
    assert_counted_together([&node_a, &node_b], async |node| sign_in(node).await).await;
    let token = node_a.token("kim", &[Role::Scorekeeper]);
    assert_counted_together([&node_a, &node_b], async |node| claim_read(node, &token).await).await;
    let other = node_b.token("lee", &[Role::Scorekeeper]);
    assert_ne!(claim_read(&node_a, &other).await.status, 429, "another user has a bucket of their own");
    assert_eq!(node_a.metric("courtside_rate_limit_backend_errors_total").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_alone_share_each_callers_limits() {
    let Some(database) = fresh_database().await else { return };
    let (node_a, node_b) = two_nodes(&database, "postgres", |_| {}).await;
    assert_counted_together([&node_a, &node_b], async |node| sign_in(node).await).await;
    let token = node_a.token("kim", &[Role::Scorekeeper]);
    assert_counted_together([&node_a, &node_b], async |node| claim_read(node, &token).await).await;
    assert_eq!(node_b.metric("courtside_rate_limit_backend_errors_total").await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_told_to_count_locally_each_allow_the_whole_limit() {
    let Some(database) = fresh_database().await else { return };
    let (node_a, node_b) = two_nodes(&database, "postgres", |c| c.sports.rate_limit_backend = "local".into()).await;
    let mut statuses = Vec::new();
    for i in 0..8 {
        statuses.push(sign_in(if i % 2 == 0 { &node_a } else { &node_b }).await.status);
    }
    assert!(statuses.iter().all(|status| *status != 429), "four on each node: {statuses:?}");
    assert_eq!(sign_in(&node_a).await.status, 429);
}
