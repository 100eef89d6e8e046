//! A publication's optional event name, end to end over the native protocol, the HTTP API and
//! SSE: pushed, kept in history and snapshots, replayed on resume, kept across a restart; and
//! refused, with nothing stored, when it breaks the rule or takes a reserved name.

mod common;

use common::{error_code, offsets, result, TestServer};
use courtside_core::Role;
use serde_json::{json, Value};

/// The bad-request code of docs/protocol.md.
const BAD_REQUEST: u64 = 107;

/// The `event` of each publication in a list (`null` where it has none).
fn events(publications: &Value) -> Vec<Value> {
    publications.as_array().expect("a list").iter().map(|p| p.get("event").cloned().unwrap_or(Value::Null)).collect()
}

#[tokio::test]
async fn a_native_publish_with_an_event_name_reaches_pushes_history_snapshots_and_resumes() {
    let server = TestServer::start().await;
    let mut watcher = server.connected("", &[]).await;
    let epoch = result(&watcher.request("subscribe", json!({ "channel": "match:ev1" })).await)["epoch"].clone();
    let mut keeper = server.connected("kim", &[Role::Scorekeeper]).await;
    let named = json!({ "channel": "match:ev1", "data": { "home": 1 }, "key": "score", "event": "match:created" });
    assert_eq!(result(&keeper.request("publish", named).await)["offset"], 1);
    let unnamed = json!({ "channel": "match:ev1", "data": { "home": 2 }, "key": "clock" });
    assert_eq!(result(&keeper.request("publish", unnamed).await)["offset"], 2);

    let pushed = watcher.next_publication().await;
    assert_eq!((pushed["event"].as_str(), pushed["data"]["home"].as_u64()), (Some("match:created"), Some(1)));
    assert!(watcher.next_publication().await.get("event").is_none(), "no event name, no field");

    let history = keeper.request("history", json!({ "channel": "match:ev1", "after": 0 })).await;
    assert_eq!(events(&result(&history)["publications"]), [json!("match:created"), Value::Null]);

    let mut fresh = server.connected("", &[]).await;
    let snapshot = fresh.request("subscribe", json!({ "channel": "match:ev1", "snapshot": true })).await;
    let keys: Vec<(Value, Value)> = result(&snapshot)["snapshot"]
        .as_array()
        .expect("snapshot")
        .iter()
        .map(|p| (p["key"].clone(), p.get("event").cloned().unwrap_or(Value::Null)))
        .collect();
    assert_eq!(keys, [(json!("clock"), Value::Null), (json!("score"), json!("match:created"))]);

    drop(watcher);
    let mut back = server.connected("", &[]).await;
    let resumed = back.request("subscribe", json!({ "channel": "match:ev1", "since": { "epoch": epoch, "offset": 0 } })).await;
    assert_eq!(result(&resumed)["recovered"], true);
    assert_eq!(events(&result(&resumed)["publications"]), [json!("match:created"), Value::Null]);
}

#[tokio::test]
async fn a_reserved_or_malformed_event_name_is_refused_and_nothing_is_stored() {
    let server = TestServer::start().await;
    let mut keeper = server.connected("kim", &[Role::Scorekeeper]).await;
    let refusals = [
        ("publication", "reserved"),
        ("connect", "reserved"),
        ("courtside:disconnect", "reserved"),
        ("match created", "printable ASCII"),
        ("", "1 to 64 bytes"),
        (&*"e".repeat(65), "1 to 64 bytes"),
        ("tür", "printable ASCII"),
    ];
    for (event, rule) in refusals {
        let reply = keeper.request("publish", json!({ "channel": "match:ev2", "data": 1, "event": event })).await;
        assert_eq!(error_code(&reply), BAD_REQUEST, "{event:?}: {reply}");
        let message = reply["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("event name") && message.contains(rule), "{event:?}: {message}");
    }
    let history = keeper.request("history", json!({ "channel": "match:ev2", "after": 0 })).await;
    assert_eq!(offsets(&result(&history)["publications"]), Vec::<u64>::new(), "nothing stored");
    let reply = keeper.request("publish", json!({ "channel": "match:ev2", "data": 1, "event": "Publication" })).await;
    assert_eq!(result(&reply)["offset"], 1, "names are case-sensitive: only the exact reserved names are refused");
}

#[tokio::test]
async fn http_publish_and_broadcast_take_an_event_name_and_history_returns_it() {
    let server = TestServer::start().await;
    let key = format!("apikey {}", server.api_key());
    let body = json!({ "channel": "match:ev3", "data": { "n": 1 }, "event": "goal" });
    let (status, reply) = server.post("/api/publish", Some(&key), body).await;
    assert_eq!((status, reply["offset"].as_u64()), (200, Some(1)), "{reply}");
    let body = json!({ "channels": ["match:ev3", "court:ev3"], "data": 2, "event": "period:end" });
    let (status, _) = server.post("/api/broadcast", Some(&key), body).await;
    assert_eq!(status, 200);
    let (status, refused) = server.post("/api/publish", Some(&key), json!({ "channel": "match:ev3", "data": 3, "event": "error" })).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (400, Some("bad_request")), "{refused}");
    let (status, page) = server.get("/api/history?channel=match:ev3", Some(&key)).await;
    assert_eq!(status, 200);
    assert_eq!(events(&page["publications"]), [json!("goal"), json!("period:end")]);
    let (_, court) = server.get("/api/history?channel=court:ev3", Some(&key)).await;
    assert_eq!(events(&court["publications"]), [json!("period:end")]);
}

#[tokio::test]
async fn sse_publications_carry_the_event_name_in_their_json_and_keep_the_message_event() {
    let server = TestServer::start().await;
    let mut response = reqwest::get(server.http("/sse?channel=match:ev4")).await.expect("sse");
    assert_eq!(response.status().as_u16(), 200);
    let key = format!("apikey {}", server.api_key());
    read_sse_data(&mut response, 1).await;
    server.post("/api/publish", Some(&key), json!({ "channel": "match:ev4", "data": "a", "event": "match:created" })).await;
    server.post("/api/publish", Some(&key), json!({ "channel": "match:ev4", "data": "b" })).await;
    let events = read_sse_data(&mut response, 2).await;
    let seen: Vec<(Option<String>, Value, Value)> = events
        .into_iter()
        .map(|(name, data)| (name, data["push"]["pub"]["data"].clone(), data["push"]["pub"].get("event").cloned().unwrap_or(Value::Null)))
        .collect();
    assert_eq!(
        seen,
        [(None, json!("a"), json!("match:created")), (None, json!("b"), Value::Null)],
        "the SSE `event:` line stays the default (`message`) so `onmessage` sees every publication"
    );
}

/// Reads `count` SSE events that carry data: each one's `event:` line (if any) and its JSON.
async fn read_sse_data(response: &mut reqwest::Response, count: usize) -> Vec<(Option<String>, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = tokio::time::timeout(common::TIMEOUT, response.chunk()).await.expect("in time").expect("stream").expect("open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let name = block.lines().find_map(|line| line.strip_prefix("event: ")).map(str::to_string);
            let data = block.lines().find_map(|line| line.strip_prefix("data: ")).and_then(|d| serde_json::from_str(d).ok());
            if let Some(data) = data {
                events.push((name, data));
            }
        }
    }
    events
}

#[tokio::test]
async fn event_names_survive_a_restart() {
    let server = TestServer::start().await;
    let key = format!("apikey {}", server.api_key());
    server.post("/api/publish", Some(&key), json!({ "channel": "match:ev5", "data": 1, "event": "match:created", "key": "k" })).await;
    server.post("/api/publish", Some(&key), json!({ "channel": "match:ev5", "data": 2 })).await;
    let server = server.restart().await;
    let key = format!("apikey {}", server.api_key());
    let (_, page) = server.get("/api/history?channel=match:ev5", Some(&key)).await;
    assert_eq!(events(&page["publications"]), [json!("match:created"), Value::Null]);
    let mut fresh = server.connected("", &[]).await;
    let snapshot = fresh.request("subscribe", json!({ "channel": "match:ev5", "snapshot": true })).await;
    assert_eq!(events(&result(&snapshot)["snapshot"]), [json!("match:created")]);
}
