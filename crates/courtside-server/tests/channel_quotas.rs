//! Quotas on what clients create, black-box: a namespace's `channels_max` refused with error 108
//! (HTTP 429) on WebSocket, Socket.IO and HTTP publish and history; idle channels removed after
//! `idle_expiry_secs` so a resume from before gets `recovered: false` in a new epoch at offset 0,
//! while a channel with a live subscriber stays; expiry freeing room under the limit; sign-in
//! records removed once their refresh tokens expired; two nodes on PostgreSQL sharing the limit
//! and keeping a channel one of them follows.

mod common;

use std::time::{Duration, Instant};

use common::socketio::SocketIo;
use common::{TestServer, TIMEOUT, error_code, offsets, result};
use courtside_core::channel::NamespaceOptions;
use serde_json::{Value, json};

const REFUSALS: &str = "courtside_quota_refusals_total{quota=\"channels_per_namespace\"}";

/// A server with a `chat` namespace (keyed, anyone subscribes, staff publish) set by `adjust`.
async fn server(adjust: impl FnOnce(&mut NamespaceOptions)) -> TestServer {
    let mut chat = NamespaceOptions { keyed: true, ..NamespaceOptions::default() };
    adjust(&mut chat);
    TestServer::start_with(|c| {
        c.namespaces.insert("chat".into(), chat);
    })
    .await
}

/// `POST /api/publish` with the server key: the status and the body.
async fn publish(server: &TestServer, channel: &str, data: Value, key: Option<&str>) -> (u16, Value) {
    let api_key = format!("apikey {}", server.api_key());
    server.post("/api/publish", Some(&api_key), json!({ "channel": channel, "data": data, "key": key })).await
}

/// Waits until `metric` reaches `at_least`.
async fn metric_reaches(server: &TestServer, metric: &str, at_least: f64) {
    let deadline = Instant::now() + TIMEOUT;
    while server.metric(metric).await < at_least {
        assert!(Instant::now() < deadline, "{metric} did not reach {at_least}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn says_the_limit(message: &Value) -> bool {
    message.as_str().is_some_and(|m| m.contains("namespace `chat` holds its maximum of 2 channels"))
}

#[tokio::test]
async fn a_namespace_at_its_channel_limit_refuses_new_channels_on_every_transport() {
    let server = server(|chat| chat.channels_max = 2).await;
    let mut client = server.connected("", &[]).await;
    for channel in ["chat:a", "chat:b"] {
        let reply = client.request("subscribe", json!({ "channel": channel })).await;
        assert!(reply.get("result").is_some(), "{reply}");
    }
    let refused = client.request("subscribe", json!({ "channel": "chat:c" })).await;
    assert_eq!(error_code(&refused), 108, "a third channel: {refused}");
    assert!(says_the_limit(&refused["error"]["message"]), "{refused}");

    let mut other = server.connected("", &[]).await;
    let reply = other.request("subscribe", json!({ "channel": "chat:a" })).await;
    assert!(reply.get("result").is_some(), "a stored channel stays open to everyone: {reply}");
    let reply = other.request("subscribe", json!({ "channel": "match:1" })).await;
    assert!(reply.get("result").is_some(), "other namespaces are not limited: {reply}");

    let (status, body) = publish(&server, "chat:d", json!(1), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("too_many_requests")), "{body}");
    assert!(says_the_limit(&body["error"]["message"]), "{body}");
    let (status, body) = publish(&server, "chat:a", json!(1), None).await;
    assert_eq!(status, 200, "publishing to a stored channel: {body}");
    assert_eq!(client.next_publication().await["offset"], 1);

    let (status, body) = server.get("/api/history?channel=chat:e", Some(&format!("apikey {}", server.api_key()))).await;
    assert_eq!((status, body["error"]["code"].as_str()), (429, Some("too_many_requests")), "a history read: {body}");

    let mut socket = SocketIo::open(&server, None).await;
    let ack = socket.subscribe("chat:f").await;
    assert_eq!(ack["error"]["code"], 108, "a Socket.IO subscribe: {ack}");
    assert!(says_the_limit(&ack["error"]["message"]), "{ack}");
    let ack = socket.subscribe("chat:b").await;
    assert!(ack.get("error").is_none(), "{ack}");

    assert_eq!(server.metric(REFUSALS).await, 4.0, "every refusal is counted");
}

#[tokio::test]
async fn an_idle_channel_is_reset_and_a_resume_from_before_is_not_recovered() {
    let server = server(|chat| chat.idle_expiry_secs = 1).await;
    let mut reader = server.connected("", &[]).await;
    let epoch = result(&reader.request("subscribe", json!({ "channel": "chat:idle" })).await)["epoch"].clone();
    for (n, key) in [(1, "home"), (2, "away")] {
        let (status, body) = publish(&server, "chat:idle", json!(n), Some(key)).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(reader.next_publication().await["offset"], 1);
    assert_eq!(reader.next_publication().await["offset"], 2);
    let reply = reader.request("unsubscribe", json!({ "channel": "chat:idle" })).await;
    assert!(reply.get("result").is_some(), "{reply}");

    // A subscriber keeps its channel alive however long nobody publishes.
    let mut watcher = server.connected("", &[]).await;
    let watched = result(&watcher.request("subscribe", json!({ "channel": "chat:watched" })).await)["epoch"].clone();
    metric_reaches(&server, "courtside_channels_expired_total", 1.0).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, body) = publish(&server, "chat:watched", json!("still here"), None).await;
    assert_eq!((&body["epoch"], &body["offset"]), (&watched, &json!(1)), "the watched channel kept its epoch: {body}");
    assert_eq!(watcher.next_publication().await["offset"], 1);

    let reply = reader.request("subscribe", json!({ "channel": "chat:idle", "since": { "epoch": epoch, "offset": 2 } })).await;
    let resumed = result(&reply);
    assert_eq!(resumed["recovered"], false, "the channel was reset: {resumed}");
    assert_ne!(resumed["epoch"], epoch, "in a new epoch");
    assert_eq!(resumed["offset"], 0, "offsets start over");
    assert_eq!(resumed["snapshot"], json!([]), "the keyed state went with it");
    assert_eq!(offsets(&resumed["publications"]), Vec::<u64>::new());
    let (_, body) = publish(&server, "chat:idle", json!(3), None).await;
    assert_eq!((&body["epoch"], &body["offset"]), (&resumed["epoch"], &json!(1)), "{body}");
    assert_eq!(reader.next_publication().await["offset"], 1);
}

#[tokio::test]
async fn expiry_frees_room_under_the_channel_limit() {
    let server = server(|chat| {
        chat.channels_max = 1;
        chat.idle_expiry_secs = 1;
    })
    .await;
    let (status, body) = publish(&server, "chat:first", json!(1), None).await;
    assert_eq!(status, 200, "{body}");
    let mut client = server.connected("", &[]).await;
    let refused = client.request("subscribe", json!({ "channel": "chat:second" })).await;
    assert_eq!(error_code(&refused), 108, "{refused}");
    metric_reaches(&server, "courtside_channels_expired_total", 1.0).await;
    let reply = client.request("subscribe", json!({ "channel": "chat:second" })).await;
    assert!(reply.get("result").is_some(), "the idle channel made room: {reply}");
}

#[tokio::test]
async fn sign_in_records_go_once_their_refresh_tokens_expired() {
    let server = TestServer::start_with(|c| c.auth.refresh_token_ttl_secs = 1).await;
    let key = format!("apikey {}", server.api_key());
    let user = json!({ "username": "kim", "password": "correct horse", "roles": ["scorekeeper"] });
    let (status, body) = server.post("/api/users", Some(&key), user).await;
    assert_eq!(status, 201, "{body}");
    let (status, signed_in) = server.post("/api/auth/login", None, json!({ "username": "kim", "password": "correct horse" })).await;
    assert_eq!(status, 200, "{signed_in}");
    let refresh = format!("Bearer {}", signed_in["refreshToken"].as_str().expect("refresh token"));

    metric_reaches(&server, "courtside_sign_ins_expired_total", 1.0).await;
    let (status, body) = server.post("/api/auth/refresh", Some(&refresh), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_refresh_token")), "the family is gone: {body}");
    let (status, body) = server.post("/api/auth/login", None, json!({ "username": "kim", "password": "correct horse" })).await;
    assert_eq!(status, 200, "signing in again works: {body}");
}

/// Two nodes on one PostgreSQL: the channel limit is the store's count, so it holds for both
/// together; a channel followed on one node is kept alive against the other node's expiry, while
/// a channel nobody follows is reset for both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_share_the_limit_and_keep_followed_channels() {
    let Some(database) = courtside_testkit::postgres::fresh_database().await else { return };
    let cluster = |c: &mut courtside_server::Config| {
        let chat = NamespaceOptions { keyed: true, channels_max: 3, idle_expiry_secs: 1, ..NamespaceOptions::default() };
        c.namespaces.insert("chat".into(), chat);
        c.store = database.url.clone();
        c.broker = "postgres".into();
        c.api_key = "cluster-key".into();
    };
    let node_a = TestServer::start_with(cluster).await;
    let node_b = TestServer::start_with(cluster).await;

    let mut on_a = node_a.connected("", &[]).await;
    let mut on_b = node_b.connected("", &[]).await;
    let watched = result(&on_a.request("subscribe", json!({ "channel": "chat:watched" })).await)["epoch"].clone();
    let reply = on_b.request("subscribe", json!({ "channel": "chat:idle" })).await;
    assert!(reply.get("result").is_some(), "{reply}");
    let reply = on_a.request("subscribe", json!({ "channel": "chat:third" })).await;
    assert!(reply.get("result").is_some(), "{reply}");
    let refused = on_b.request("subscribe", json!({ "channel": "chat:fourth" })).await;
    assert_eq!(error_code(&refused), 108, "the other node counts the same channels: {refused}");
    let (status, body) = publish(&node_a, "chat:fifth", json!(1), None).await;
    assert_eq!(status, 429, "{body}");

    let reply = on_b.request("unsubscribe", json!({ "channel": "chat:idle" })).await;
    assert!(reply.get("result").is_some(), "{reply}");
    let deadline = Instant::now() + TIMEOUT;
    while node_a.metric("courtside_channels_expired_total").await + node_b.metric("courtside_channels_expired_total").await < 1.0 {
        assert!(Instant::now() < deadline, "the idle channel was not removed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, body) = publish(&node_b, "chat:watched", json!("still here"), None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((&body["epoch"], &body["offset"]), (&watched, &json!(1)), "followed on node A, kept against node B's expiry: {body}");
    let delivered = on_a.next_publication().await;
    assert_eq!((&delivered["epoch"], &delivered["offset"]), (&watched, &json!(1)), "{delivered}");
    let reply = on_b.request("subscribe", json!({ "channel": "chat:fourth" })).await;
    assert!(reply.get("result").is_some(), "the expired channel made room on every node: {reply}");
}
