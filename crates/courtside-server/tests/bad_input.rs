//! Bad input of every kind gets its documented error reply or close code, and everyone else
//! keeps being served.

mod common;

use common::{error_code, result, Client, TestServer};
use courtside_core::Role;
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// A subscriber that must keep receiving while others misbehave.
async fn bystander(server: &TestServer) -> Client {
    let mut client = server.connected("", &[]).await;
    result(&client.request("subscribe", json!({ "channel": "match:calm" })).await);
    client
}

async fn still_served(server: &TestServer, bystander: &mut Client) {
    let offset = server.publish("match:calm", json!("still here")).await["offset"].clone();
    assert_eq!(bystander.next_publication().await["offset"], offset);
}

#[tokio::test]
async fn malformed_json_closes_with_3500() {
    let server = TestServer::start().await;
    let mut calm = bystander(&server).await;
    let mut client = server.client().await;
    client.send_text("{\"id\":1,\"connect\":").await;
    let closed = client.closed().await;
    assert_eq!((closed.push_code, closed.close_code), (Some(3500), Some(3500)));
    still_served(&server, &mut calm).await;
}

#[tokio::test]
async fn a_binary_frame_closes_with_3500() {
    let server = TestServer::start().await;
    let mut client = server.connected("", &[]).await;
    client.send_message(Message::binary(vec![0u8, 159, 146, 150])).await;
    assert_eq!(client.closed().await.close_code, Some(3500));
}

#[tokio::test]
async fn an_oversize_message_closes_with_3501() {
    let server = TestServer::start().await;
    let mut calm = bystander(&server).await;
    let mut client = server.connected("", &[]).await;
    let huge = format!("{{\"id\":2,\"ping\":{{}},\"pad\":\"{}\"}}", "x".repeat(200 * 1024));
    client.send_text(&huge).await;
    assert_eq!(client.closed().await.close_code, Some(3501));
    still_served(&server, &mut calm).await;
}

#[tokio::test]
async fn commands_before_connect_close_with_3503() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    client.send_text(&json!({ "id": 1, "subscribe": { "channel": "match:1" } }).to_string()).await;
    assert_eq!(client.closed().await.close_code, Some(3503));
}

#[tokio::test]
async fn a_connection_that_never_connects_is_closed_with_3503() {
    let server = TestServer::start_with(|c| c.client.connect_timeout_secs = 1).await;
    let client = server.client().await;
    assert_eq!(client.closed().await.close_code, Some(3503));
}

#[tokio::test]
async fn unknown_methods_and_bad_parameters_get_error_replies_and_the_connection_stays() {
    let server = TestServer::start().await;
    let mut client = server.connected("", &[]).await;
    assert_eq!(error_code(&client.request("launch", json!({})).await), 104);
    assert_eq!(error_code(&client.request("subscribe", json!({ "channel": "no namespace" })).await), 107);
    assert_eq!(error_code(&client.request("subscribe", json!({ "channel": "nosuch:1" })).await), 102);
    assert_eq!(error_code(&client.request("subscribe", json!({ "chanel": "match:1" })).await), 107);
    assert_eq!(error_code(&client.request("unsubscribe", json!({ "channel": "match:1" })).await), 106);
    assert_eq!(error_code(&client.request("connect", json!({})).await), 107, "already connected");
    assert_eq!(error_code(&client.request("subscribe", json!({ "channel": "team:1", "snapshot": true })).await), 107);
    result(&client.request("subscribe", json!({ "channel": "match:1" })).await);
    assert_eq!(error_code(&client.request("subscribe", json!({ "channel": "match:1" })).await), 105);
    client.send_text(r#"{"id":"seven","ping":{}}"#).await;
    let frame = client.next_frame().await.expect("reply");
    assert_eq!(frame["error"]["code"], 107);
    result(&client.request("ping", json!({})).await);
}

#[tokio::test]
async fn forbidden_publishes_and_subscriptions_are_refused() {
    let server = TestServer::start().await;
    let mut fan = server.connected("fan", &[Role::Spectator]).await;
    assert_eq!(error_code(&fan.request("publish", json!({ "channel": "match:1", "data": 1 })).await), 103);
    assert_eq!(error_code(&fan.request("subscribe", json!({ "channel": "user:alice:notifications" })).await), 103);
    let mut anonymous = server.connected("", &[]).await;
    assert_eq!(error_code(&anonymous.request("publish", json!({ "channel": "match:1", "data": 1 })).await), 103);
    assert_eq!(error_code(&anonymous.request("subscribe", json!({ "channel": "user:alice:notifications" })).await), 103);
    let mut alice = server.connected("alice", &[Role::Spectator]).await;
    result(&alice.request("subscribe", json!({ "channel": "user:alice:notifications" })).await);
    let history = server
        .publish("user:alice:notifications", json!({ "text": "your match is next" }))
        .await;
    assert_eq!(alice.next_publication().await["offset"], history["offset"]);
}

#[tokio::test]
async fn an_oversize_publication_is_refused_with_110() {
    let server = TestServer::start_with(|c| c.client.publication_bytes_max = 1024).await;
    let mut keeper = server.connected("kim", &[Role::Scorekeeper]).await;
    let big = "x".repeat(2000);
    let reply = keeper.request("publish", json!({ "channel": "match:1", "data": big })).await;
    assert_eq!(error_code(&reply), 110);
    result(&keeper.request("publish", json!({ "channel": "match:1", "data": "small" })).await);
}

#[tokio::test]
async fn a_flood_is_answered_with_108_then_closed_with_3004() {
    let server = TestServer::start_with(|c| {
        c.client.commands_per_sec = 5;
        c.client.commands_burst = 10;
    })
    .await;
    let mut calm = bystander(&server).await;
    let mut flooder = server.connected("", &[]).await;
    let burst: Vec<String> = (100..160).map(|id| json!({ "id": id, "ping": {} }).to_string()).collect();
    flooder.send_text(&burst.join("\n")).await;
    let mut refused = 0;
    let mut answered = 0;
    while let Some(frame) = flooder.next_frame().await {
        match frame["error"]["code"].as_u64() {
            Some(108) => refused += 1,
            Some(code) => panic!("unexpected error {code}"),
            None if frame["push"]["disconnect"]["code"] == 3004 => break,
            None => answered += 1,
        }
    }
    assert!(answered >= 9 && answered <= 11, "the burst is served: {answered}");
    assert!(refused >= 1, "then refused with 108");
    still_served(&server, &mut calm).await;
}

#[tokio::test]
async fn tokens_expired_forged_or_unsigned_are_refused() {
    let server = TestServer::start().await;
    let mut client = server.client().await;
    let forged = {
        let other = TestServer::start().await;
        other.token("mallory", &[Role::Director])
    };
    client.send_text(&json!({ "id": 1, "connect": { "token": forged } }).to_string()).await;
    assert_eq!(client.closed().await.close_code, Some(3502));

    let mut client = server.client().await;
    let unsigned = "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJtYWxsb3J5Iiwicm9sZXMiOlsiZGlyZWN0b3IiXSwiZXhwIjo5OTk5OTk5OTk5fQ.";
    client.send_text(&json!({ "id": 1, "connect": { "token": unsigned } }).to_string()).await;
    assert_eq!(client.closed().await.close_code, Some(3502));

    let mut client = server.client().await;
    // Past `exp` by more than the 5 s clock-skew allowance.
    let long_expired = {
        let claims = courtside_server::auth::Claims { sub: "late".into(), roles: vec![], tournament_roles: Default::default(), exp: 1_000_000, iat: None };
        let secret = std::fs::read_to_string(server.config.data_dir.join("jwt-secret")).expect("secret");
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.trim().as_bytes()),
        )
        .expect("encode")
    };
    assert_eq!(error_code(&client.request("connect", json!({ "token": long_expired })).await), 109);
    let fresh = server.token("late", &[Role::Spectator]);
    result(&client.request("connect", json!({ "token": fresh })).await);
}

#[tokio::test]
async fn invalid_commands_count_against_the_rate_limit_and_need_a_connect_first() {
    let server = TestServer::start_with(|c| {
        c.client.commands_per_sec = 1;
        c.client.commands_burst = 3;
    })
    .await;
    let mut stranger = server.client().await;
    stranger.send_text(&json!({ "id": 1, "launch": {} }).to_string()).await;
    assert_eq!(stranger.closed().await.close_code, Some(3503), "before connect only `connect` is answered");
    let mut client = server.connected("", &[]).await;
    let codes: Vec<u64> = {
        let mut codes = Vec::new();
        for _ in 0..4 {
            codes.push(error_code(&client.request("launch", json!({})).await));
        }
        codes
    };
    assert_eq!(codes, vec![104, 104, 108, 108], "unknown methods use up the burst like any command");
}

#[tokio::test]
async fn pretty_printed_payloads_arrive_as_single_frames() {
    let server = TestServer::start().await;
    let mut watcher = server.connected("", &[]).await;
    result(&watcher.request("subscribe", json!({ "channel": "match:pretty" })).await);
    let response = reqwest::Client::new()
        .post(server.http("/api/publish"))
        .header("authorization", format!("apikey {}", server.api_key()))
        .header("content-type", "application/json")
        .body("{\"channel\":\"match:pretty\",\"data\":{\n  \"home\": 21,\r\n  \"note\": \"line\\nbreak\"\n}}")
        .send()
        .await
        .expect("publish");
    assert_eq!(response.status().as_u16(), 200);
    let publication = watcher.next_publication().await;
    assert_eq!(publication["data"], json!({ "home": 21, "note": "line\nbreak" }));
}

#[tokio::test]
async fn idempotency_keys_need_a_namespace_with_history() {
    let server = TestServer::start_with(|c| {
        c.namespaces.insert(
            "live".into(),
            courtside_core::NamespaceOptions { history_size: 0, ..Default::default() },
        );
    })
    .await;
    let mut staff = server.connected("s", &[Role::Staff]).await;
    let reply = staff.request("publish", json!({ "channel": "live:1", "data": 1, "idempotency_key": "k" })).await;
    assert_eq!(error_code(&reply), 107);
    let reply = staff.request("publish", json!({ "channel": "live:1", "data": 1 })).await;
    assert_eq!(result(&reply)["offset"], 0, "ephemeral publications carry no offset");
}

#[tokio::test]
async fn offsets_past_the_largest_a_stream_reaches_are_bad_requests_not_outages() {
    let server = TestServer::start().await;
    let mut client = server.connected("", &[]).await;
    let epoch = result(&client.request("subscribe", json!({ "channel": "match:far" })).await)["epoch"].clone();
    result(&client.request("unsubscribe", json!({ "channel": "match:far" })).await);
    for offset in [9_223_372_036_854_775_808_u64, u64::MAX] {
        let since = json!({ "channel": "match:far", "since": { "epoch": epoch, "offset": offset } });
        assert_eq!(error_code(&client.request("subscribe", since).await), 107, "since {offset}");
        let history = json!({ "channel": "match:far", "after": offset });
        assert_eq!(error_code(&client.request("history", history).await), 107, "after {offset}");
        let (status, body) = server.get(&format!("/api/history?channel=match:far&after={offset}"), None).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "?after={offset}");
    }
    // The largest offset itself is a position, only one no channel has reached yet.
    let since = json!({ "channel": "match:far", "since": { "epoch": epoch, "offset": i64::MAX } });
    assert_eq!(result(&client.request("subscribe", since).await)["recovered"], false);
    // An SSE id no server issued is unusable, as documented: the stream starts afresh.
    let last_event_id = format!("{}:{}", epoch.as_str().unwrap_or_default(), u64::MAX);
    let sse = reqwest::Client::new().get(server.http("/sse?channel=match:far")).header("last-event-id", last_event_id);
    assert_eq!(sse.send().await.expect("sse").status().as_u16(), 200);
}

#[tokio::test]
async fn arrays_are_refused_where_objects_are_documented() {
    let server = TestServer::start().await;
    let mut stranger = server.client().await;
    stranger.send_text(r#"{"id":1,"connect":[]}"#).await;
    assert_eq!(stranger.closed().await.close_code, Some(3503), "an array is no `connect` parameters");
    let mut client = server.connected("", &[]).await;
    client.send_text(r#"{"id":2,"subscribe":["match:1"]}"#).await;
    assert_eq!(error_code(&client.reply(2).await), 107);
    client.send_text(r#"{"id":3,"subscribe":{"channel":"match:1","since":["abc",1]}}"#).await;
    assert_eq!(error_code(&client.reply(3).await), 107, "nor a position");
    client.send_text(r#"{"id":4,"presence_set":[]}"#).await;
    assert_eq!(error_code(&client.reply(4).await), 107);
    client.send_text(r#"{"id":5,"history":["match:1"]}"#).await;
    assert_eq!(error_code(&client.reply(5).await), 107);
    result(&client.request("subscribe", json!({ "channel": "match:1", "since": null })).await);
}

#[tokio::test]
async fn payloads_nested_deeper_than_the_limit_are_refused_on_every_path() {
    let server = TestServer::start().await;
    let nested = |depth: usize| -> serde_json::Value {
        serde_json::from_str(&format!("{}{}", "[".repeat(depth), "]".repeat(depth))).expect("JSON")
    };
    let mut keeper = server.connected("kim", &[Role::Scorekeeper]).await;
    let reply = keeper.request("publish", json!({ "channel": "match:deep", "data": nested(65) })).await;
    assert_eq!(error_code(&reply), 107);
    assert!(reply["error"]["message"].as_str().unwrap_or_default().contains("64"), "{reply}");
    result(&keeper.request("publish", json!({ "channel": "match:deep", "data": nested(64) })).await);
    result(&keeper.request("publish", json!({ "channel": "match:deep", "data": { "text": "[[[[".repeat(40) } })).await);
    let body = format!(r#"{{"channel":"match:deep","data":{}{}}}"#, "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(server.post_raw("/api/publish", body).await, 400, "10,000 levels");
    let key = format!("apikey {}", server.api_key());
    let (status, body) = server.post("/api/broadcast", Some(&key), json!({ "channels": ["match:deep"], "data": nested(65) })).await;
    assert_eq!((status, body["results"][0]["error"]["code"].as_str()), (200, Some("bad_request")), "{body}");
}

#[tokio::test]
async fn the_depth_limit_is_configurable() {
    let server = TestServer::start_with(|c| c.client.payload_depth_max = 2).await;
    let mut keeper = server.connected("kim", &[Role::Scorekeeper]).await;
    result(&keeper.request("publish", json!({ "channel": "match:d", "data": { "a": [1] } })).await);
    assert_eq!(error_code(&keeper.request("publish", json!({ "channel": "match:d", "data": { "a": [[1]] } })).await), 107);
}
