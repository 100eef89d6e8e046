//! Per-user quotas, black-box: `client.connections_per_user_max` and
//! `client.subscriptions_per_user_max` counted over native WebSocket connections, SSE streams
//! and Socket.IO sockets (Engine.IO long-polling spoken directly) of one user together; other
//! users and anonymous clients unaffected; slots freed when connections and subscriptions end;
//! the refusals counted in `courtside_quota_refusals_total`.

mod common;

use std::time::{Duration, Instant};

use common::socketio::SocketIo;
use common::{Client, TestServer, error_code, TIMEOUT};
use courtside_core::Role;
use serde_json::{Value, json};

/// A server allowing each user 2 connections and 3 subscriptions.
async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.client.connections_per_user_max = 2;
        c.client.subscriptions_per_user_max = 3;
    })
    .await
}

/// `connect` with a token for `sub` on a fresh connection: the connection and the reply.
async fn connect(server: &TestServer, sub: &str) -> (Client, Value) {
    let mut client = server.client().await;
    let reply = client.request("connect", json!({ "token": server.token(sub, &[Role::Spectator]) })).await;
    (client, reply)
}

/// Sends `connect` again on `client` until it is accepted: a slot frees once the server has seen
/// the other connection end.
async fn connect_when_free(server: &TestServer, client: &mut Client, sub: &str) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let reply = client.request("connect", json!({ "token": server.token(sub, &[Role::Spectator]) })).await;
        if reply.get("result").is_some() {
            return;
        }
        assert_eq!(error_code(&reply), 108, "{reply}");
        assert!(Instant::now() < deadline, "no slot freed in time");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GET /sse` for `channels` with a token for `sub`: the response (the stream while it is kept).
async fn sse(server: &TestServer, sub: &str, channels: &[&str]) -> reqwest::Response {
    let mut path = format!("/sse?token={}", server.token(sub, &[Role::Spectator]));
    for channel in channels {
        path.push_str(&format!("&channel={channel}"));
    }
    reqwest::get(server.http(&path)).await.expect("sse")
}

async fn subscribe(client: &mut Client, channel: &str) -> Value {
    client.request("subscribe", json!({ "channel": channel })).await
}

#[tokio::test]
async fn a_users_connections_are_limited_on_every_transport() {
    let server = server().await;
    let (mut first, reply) = connect(&server, "alice").await;
    assert!(reply.get("result").is_some(), "{reply}");
    let (_second, reply) = connect(&server, "alice").await;
    assert!(reply.get("result").is_some(), "{reply}");

    let (mut third, refused) = connect(&server, "alice").await;
    assert_eq!(error_code(&refused), 108, "the third connection of one user is refused: {refused}");
    let (_bob, reply) = connect(&server, "bob").await;
    assert!(reply.get("result").is_some(), "another user is not affected: {reply}");
    for _ in 0..3 {
        server.connected("", &[]).await; // anonymous connections are not counted
    }

    let refused = sse(&server, "alice", &["match:1"]).await;
    assert_eq!(refused.status().as_u16(), 429, "an SSE stream over the limit");
    let body: Value = refused.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "too_many_requests", "{body}");
    let (_socket, refused) = SocketIo::try_open(&server, Some(&server.token("alice", &[Role::Spectator]))).await;
    assert!(refused.starts_with("4{"), "a Socket.IO socket over the limit gets CONNECT_ERROR: {refused}");
    let refused: Value = serde_json::from_str(&refused[1..]).expect("JSON");
    assert_eq!(refused["data"]["code"], 108, "{refused}");
    assert!(refused["message"].as_str().is_some_and(|m| m.contains("connections")), "{refused}");

    // Closing one connection frees its slot, for a connection of any transport.
    first.send_message(tokio_tungstenite::tungstenite::Message::Close(None)).await;
    drop(first);
    connect_when_free(&server, &mut third, "alice").await;
    assert!(server.metric("courtside_quota_refusals_total{quota=\"connections_per_user\"}").await >= 3.0);
}

#[tokio::test]
async fn sse_streams_and_socketio_sockets_hold_connection_slots() {
    let server = server().await;
    let stream = sse(&server, "carol", &["match:1"]).await;
    assert_eq!(stream.status().as_u16(), 200);
    let socket = SocketIo::open(&server, Some(&server.token("carol", &[Role::Spectator]))).await;
    let (mut waiting, refused) = connect(&server, "carol").await;
    assert_eq!(error_code(&refused), 108, "an SSE stream and a Socket.IO socket fill both slots: {refused}");

    socket.close().await;
    connect_when_free(&server, &mut waiting, "carol").await;

    // An SSE stream gives its slot back when it ends: its next write finds the client gone.
    let (mut last, refused) = connect(&server, "carol").await;
    assert_eq!(error_code(&refused), 108, "{refused}");
    drop(stream);
    let deadline = Instant::now() + TIMEOUT;
    loop {
        server.publish("match:1", json!({ "n": 1 })).await;
        let reply = last.request("connect", json!({ "token": server.token("carol", &[Role::Spectator]) })).await;
        if reply.get("result").is_some() {
            break;
        }
        assert!(Instant::now() < deadline, "the SSE stream's slot was not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_users_subscriptions_are_counted_across_connections() {
    let server = TestServer::start_with(|c| {
        c.client.connections_per_user_max = 4;
        c.client.subscriptions_per_user_max = 3;
    })
    .await;
    let mut a = server.connected("dave", &[Role::Spectator]).await;
    let mut b = server.connected("dave", &[Role::Spectator]).await;
    for channel in ["match:1", "match:2"] {
        let reply = subscribe(&mut a, channel).await;
        assert!(reply.get("result").is_some(), "{reply}");
    }
    let reply = subscribe(&mut b, "match:3").await;
    assert!(reply.get("result").is_some(), "{reply}");
    let refused = subscribe(&mut b, "match:4").await;
    assert_eq!(error_code(&refused), 107, "the fourth subscription of one user: {refused}");
    assert!(refused["error"]["message"].as_str().is_some_and(|m| m.contains("follows 3 channels")), "{refused}");

    let mut other = server.connected("erin", &[Role::Spectator]).await;
    let reply = subscribe(&mut other, "match:4").await;
    assert!(reply.get("result").is_some(), "another user is not affected: {reply}");
    let mut anonymous = server.connected("", &[]).await;
    for channel in ["match:4", "match:5", "match:6", "match:7"] {
        let reply = subscribe(&mut anonymous, channel).await;
        assert!(reply.get("result").is_some(), "anonymous subscriptions are not counted: {reply}");
    }

    let reply = a.request("unsubscribe", json!({ "channel": "match:1" })).await;
    assert!(reply.get("result").is_some(), "{reply}");
    let reply = subscribe(&mut b, "match:4").await;
    assert!(reply.get("result").is_some(), "an unsubscribe frees a slot: {reply}");

    // dave follows 3: an SSE stream counts all its channels when it opens.
    let refused = sse(&server, "dave", &["match:8"]).await;
    assert_eq!(refused.status().as_u16(), 400, "an SSE stream past the subscription limit");
    drop(a); // frees match:2
    let deadline = Instant::now() + TIMEOUT;
    let stream = loop {
        let stream = sse(&server, "dave", &["match:8"]).await;
        if stream.status().as_u16() == 200 {
            break stream;
        }
        assert!(Instant::now() < deadline, "the closed connection's subscriptions were not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let refused = subscribe(&mut b, "match:9").await;
    assert_eq!(error_code(&refused), 107, "the SSE stream's channel counts: {refused}");
    drop(stream);
    drop(b);

    // A Socket.IO socket's subscriptions count too, with the same code in the ack.
    let mut frank = SocketIo::open(&server, Some(&server.token("frank", &[Role::Spectator]))).await;
    let mut native = server.connected("frank", &[Role::Spectator]).await;
    for channel in ["match:1", "match:2"] {
        let reply = subscribe(&mut native, channel).await;
        assert!(reply.get("result").is_some(), "{reply}");
    }
    let ack = frank.subscribe("match:3").await;
    assert!(ack.get("error").is_none(), "{ack}");
    let ack = frank.subscribe("match:4").await;
    assert_eq!(ack["error"]["code"], 107, "a Socket.IO subscribe past the limit: {ack}");
    let refused = subscribe(&mut native, "match:5").await;
    assert_eq!(error_code(&refused), 107, "the socket's subscription counts for the user: {refused}");
    assert!(server.metric("courtside_quota_refusals_total{quota=\"subscriptions_per_user\"}").await >= 5.0);
}
