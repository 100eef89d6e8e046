//! Connection lifecycle: slow consumers, heartbeats, token expiry and refresh, presence with
//! join/leave, graceful shutdown.

mod common;

use std::time::Duration;

use common::{error_code, offsets, result, Client, TestServer};
use courtside_core::Role;
use serde_json::json;

/// A subscriber that stops reading fills its bounded queue and is closed with 3001; it then
/// resumes from its last offset and misses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_is_closed_with_3001_and_resumes_without_loss() {
    let server = TestServer::start_with(|c| {
        c.client.send_queue_len_max = 8;
        c.client.publication_bytes_max = 64 * 1024;
    })
    .await;
    let mut fast = server.connected("", &[]).await;
    result(&fast.request("subscribe", json!({ "channel": "match:big" })).await);
    let mut slow = server.connected("", &[]).await;
    let epoch = result(&slow.request("subscribe", json!({ "channel": "match:big" })).await)["epoch"].clone();
    // The slow client now reads nothing while ~16 MB are published.
    let payload = "x".repeat(60 * 1024);
    let total = 280u64;
    let fast_reader = tokio::spawn(async move {
        for expected in 1..=total {
            assert_eq!(fast.next_publication().await["offset"], expected, "the fast subscriber is unaffected");
        }
    });
    for _ in 0..total {
        server.publish("match:big", json!(payload)).await;
    }
    fast_reader.await.expect("fast subscriber got everything");
    let mut received = Vec::new();
    let mut ended_with = None;
    while let Some(frame) = slow.next_frame().await {
        if let Some(offset) = frame["push"]["pub"]["offset"].as_u64() {
            received.push(offset);
        }
        if let Some(code) = frame["push"]["disconnect"]["code"].as_u64() {
            ended_with = Some(code);
        }
    }
    assert!((received.len() as u64) < total, "the slow client was cut off");
    assert_eq!(received, (1..=received.len() as u64).collect::<Vec<_>>(), "what it got was in order");
    if let Some(code) = ended_with {
        assert_eq!(code, 3001);
    }
    assert_eq!(server.metric("courtside_disconnects_total{code=\"3001\"").await, 1.0);
    assert!(server.metric("courtside_queue_overflows_total").await >= 1.0);
    let mut resumed = server.connected("", &[]).await;
    let last = received.last().copied().unwrap_or(0);
    let reply = resumed
        .request("subscribe", json!({ "channel": "match:big", "since": { "epoch": epoch, "offset": last } }))
        .await;
    assert_eq!(result(&reply)["recovered"], true);
    assert_eq!(offsets(&result(&reply)["publications"]), (last + 1..=total).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_silent_connection_is_closed_with_3002_while_a_live_one_stays() {
    let server = TestServer::start_with(|c| {
        c.client.ping_interval_secs = 1;
        c.client.idle_timeout_secs = 2;
    })
    .await;
    let silent = server.connected("", &[]).await;
    let mut live = server.connected("", &[]).await;
    // The live client reads (and so answers pings) for 3.5 s; the silent one reads nothing.
    let reading = tokio::time::timeout(Duration::from_millis(3500), async {
        loop {
            if live.next_frame().await.is_none() {
                return;
            }
        }
    })
    .await;
    assert!(reading.is_err(), "the live connection stayed open");
    result(&live.request("ping", json!({})).await);
    let closed = silent.closed().await;
    assert_eq!(closed.push_code, Some(3002));
}

#[tokio::test]
async fn a_token_is_refreshed_on_a_live_connection_and_expiry_closes_with_3003() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let short = server.server.state.auth.mint("ana", &[Role::Spectator], 1).expect("mint");
    result(&client.request("connect", json!({ "token": short })).await);
    let other_user = server.token("bob", &[Role::Spectator]);
    assert_eq!(error_code(&client.request("refresh", json!({ "token": other_user })).await), 101);
    let fresh = server.server.state.auth.mint("ana", &[Role::Spectator], 2).expect("mint");
    let refreshed = client.request("refresh", json!({ "token": fresh })).await;
    assert!(result(&refreshed)["expires_in_secs"].as_u64().expect("expires") >= 1);
    // The refreshed token runs out two seconds after it was minted.
    let closed = tokio::time::timeout(Duration::from_secs(6), client.closed()).await.expect("closed in time");
    assert_eq!((closed.push_code, closed.close_code), (Some(3003), Some(3003)));
}

#[tokio::test]
async fn presence_lists_subscribers_and_join_leave_are_pushed() {
    let server = TestServer::start_with(|c| c.namespaces.get_mut("match").expect("match").join_leave = true).await;
    let mut coach = server.connected("coach1", &[Role::Coach]).await;
    result(&coach.request("subscribe", json!({ "channel": "match:5" })).await);
    let mut fan = server.connected("fan1", &[Role::Spectator]).await;
    result(&fan.request("subscribe", json!({ "channel": "match:5" })).await);
    let own_join = coach.next_frame().await.expect("own join");
    assert_eq!(own_join["push"]["join"]["user"], "coach1");
    let join = coach.next_frame().await.expect("join");
    assert_eq!(join["push"]["join"]["user"], "fan1");
    let mut anonymous = server.connected("", &[]).await;
    result(&anonymous.request("subscribe", json!({ "channel": "match:5" })).await);
    let anonymous_join = coach.next_frame().await.expect("anonymous join");
    assert_eq!(anonymous_join["push"]["join"]["user"], "");
    let stats = coach.request("presence_stats", json!({ "channel": "match:5" })).await;
    assert_eq!((result(&stats)["clients"].as_u64(), result(&stats)["users"].as_u64()), (Some(3), Some(2)), "users are signed-in users");
    drop(anonymous);
    let _anonymous_leave = coach.next_frame().await.expect("anonymous leave");
    let presence = coach.request("presence", json!({ "channel": "match:5" })).await;
    let users: Vec<_> = result(&presence)["clients"].as_array().expect("clients").iter().map(|c| c["user"].clone()).collect();
    assert_eq!(users.len(), 2);
    let stats = coach.request("presence_stats", json!({ "channel": "match:5" })).await;
    assert_eq!(result(&stats)["clients"], 2);
    assert_eq!(result(&stats)["users"], 2);
    drop(fan);
    let leave = coach.next_frame().await.expect("leave");
    assert_eq!(leave["push"]["leave"]["user"], "fan1");
    assert_eq!(error_code(&coach.request("presence", json!({ "channel": "team:1" })).await), 107, "presence off");
}

#[tokio::test]
async fn shutdown_tells_clients_to_reconnect_and_keeps_what_was_acknowledged() {
    let server = TestServer::start().await;
    let mut client = server.connected("", &[]).await;
    let epoch = result(&client.request("subscribe", json!({ "channel": "court:c1" })).await)["epoch"].clone();
    let acknowledged = server.publish("court:c1", json!("last point")).await;
    assert_eq!(client.next_publication().await["offset"], acknowledged["offset"]);
    let config = server.config.clone();
    server.server.shutdown();
    let closed = client.closed().await;
    assert_eq!((closed.push_code, closed.close_code), (Some(3000), Some(3000)));
    tokio::time::timeout(Duration::from_secs(config.shutdown_timeout_secs + 2), server.server.stopped())
        .await
        .expect("stops before its deadline");
    let mut config = config;
    config.listen = "127.0.0.1:0".parse().expect("addr");
    let restarted = TestServer::start_config(config).await;
    let mut client: Client = restarted.connected("", &[]).await;
    let reply = client.request("history", json!({ "channel": "court:c1" })).await;
    assert_eq!(result(&reply)["epoch"], epoch);
    assert_eq!(offsets(&result(&reply)["publications"]), vec![1]);
}

/// While connections drain, the listener stays open: `/ready` answers 503 (load balancers stop
/// routing here), `/health` 200, anything else 503 `unavailable`; then the server stops.
#[tokio::test]
async fn ready_answers_503_while_shutdown_drains_connections() {
    let server = TestServer::start().await;
    // A client that never reads holds the drain open for the close handshake's timeout (1 s).
    let client = server.connected("", &[]).await;
    // A new connection per request, as a load balancer's probe makes.
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("client");
    assert_eq!(http.get(server.http("/ready")).send().await.expect("ready").status(), 200);
    server.server.shutdown();
    let ready = http.get(server.http("/ready")).send().await.expect("the listener still answers during the drain");
    assert_eq!(ready.status(), 503);
    assert_eq!(ready.text().await.expect("body"), "not ready: shutting down\n");
    assert_eq!(http.get(server.http("/health")).send().await.expect("health").status(), 200);
    let refused = http.get(server.http("/api/channels")).header("authorization", format!("apikey {}", server.api_key())).send().await.expect("refused");
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "unavailable");
    let closed = client.closed().await;
    assert_eq!(closed.push_code, Some(3000));
    let addr = server.server.addr;
    tokio::time::timeout(Duration::from_secs(server.config.shutdown_timeout_secs + 2), server.server.stopped())
        .await
        .expect("stops before its deadline");
    assert!(tokio::net::TcpStream::connect(addr).await.is_err(), "the listener is closed once stopped");
}

#[tokio::test]
async fn coalesced_writes_carry_several_pushes_in_one_message() {
    let server = TestServer::start_with(|c| c.client.write_coalesce_ms = 200).await;
    let mut watcher = server.connected("", &[]).await;
    result(&watcher.request("subscribe", json!({ "channel": "match:co" })).await);
    for n in 1..=3 {
        server.publish("match:co", json!(n)).await;
    }
    let frames = watcher.next_message().await;
    let offsets: Vec<_> = frames.iter().map(|f| f["push"]["pub"]["offset"].as_u64()).collect();
    assert_eq!(offsets, vec![Some(1), Some(2), Some(3)], "one message, three pushes, in order");
    let reply = watcher.request("ping", json!({})).await;
    result(&reply);
}
