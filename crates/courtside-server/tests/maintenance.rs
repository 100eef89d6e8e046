//! Maintenance notices against the real server: `POST /api/maintenance` tells every connection —
//! native WebSocket, SSE, and seed 004's own Socket.IO client on examples/live-scoreboard.toml —
//! with `system_notification`, closes them when the time is up with a code that says to
//! reconnect, and the server serves again afterwards; a stop signal does the same with
//! `maintenance_notice_secs` before the shutdown. Who may announce, and bad bodies.

mod common;

use std::time::Duration;

use common::TestServer;
use courtside_core::Role;
use serde_json::{Value, json};

async fn announce(server: &TestServer, auth: Option<&str>, body: Value) -> (u16, Value) {
    server.post("/api/maintenance", auth, body).await
}

/// Reads an SSE response until the `system_notification` event; returns its data and whether
/// the stream then ended.
async fn sse_notice(mut response: reqwest::Response) -> (Value, bool) {
    let mut text = String::new();
    let notice = loop {
        let chunk = tokio::time::timeout(Duration::from_secs(10), response.chunk()).await.expect("an SSE event in time").expect("read");
        text.push_str(&String::from_utf8_lossy(&chunk.expect("the stream is open")));
        if let Some(start) = text.find("event: system_notification\ndata: ") {
            let rest = &text[start + "event: system_notification\ndata: ".len()..];
            if let Some(end) = rest.find('\n') {
                break serde_json::from_str::<Value>(&rest[..end]).expect("notice JSON");
            }
        }
    };
    let ended = tokio::time::timeout(Duration::from_secs(10), async { while let Ok(Some(_)) = response.chunk().await {} }).await.is_ok();
    (notice, ended)
}

#[tokio::test]
async fn every_transport_is_told_then_closed_with_reconnect_and_the_server_serves_again() {
    let server = TestServer::start().await;
    let key = format!("apikey {}", server.api_key());
    let mut native = server.connected("ann", &[Role::Spectator]).await;
    common::result(&native.request("subscribe", json!({ "channel": "match:1" })).await);
    let sse = reqwest::get(server.http("/sse?channel=match:1")).await.expect("sse");
    assert_eq!(sse.status(), 200);

    let (status, notice) = announce(&server, Some(&key), json!({ "message": "Back in a second", "durationSecs": 1 })).await;
    assert_eq!(status, 202, "{notice}");
    assert_eq!((notice["type"].as_str(), notice["severity"].as_str(), notice["duration"].as_u64()), (Some("MAINTENANCE"), Some("warning"), Some(1000)));
    assert_eq!(notice["message"], "Back in a second");

    let pushed = loop {
        let frame = native.next_frame().await.expect("open");
        if let Some(notice) = frame["push"].get("notice") {
            break notice.clone();
        }
    };
    assert_eq!(pushed, notice, "the native push carries the same notice");
    let closed = native.closed().await;
    assert_eq!((closed.push_code, closed.close_code), (Some(3006), Some(3006)), "closed when the time is up, to reconnect");

    let (sse_notice, ended) = sse_notice(sse).await;
    assert_eq!(sse_notice, notice);
    assert!(ended, "the SSE stream ends at the cut (EventSource reconnects)");

    // Past the cut the node serves new connections as before.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut again = server.connected("ann", &[Role::Spectator]).await;
    common::result(&again.request("subscribe", json!({ "channel": "match:1" })).await);
    let published = server.publish("match:1", json!({ "points": 1 })).await;
    assert!(published.get("offset").is_some(), "{published}");
    assert_eq!(again.next_publication().await["data"]["points"], 1);
}

#[tokio::test]
async fn only_directors_and_the_api_key_announce_and_bodies_are_checked() {
    let server = TestServer::start().await;
    let key = format!("apikey {}", server.api_key());
    let spectator = format!("Bearer {}", server.token("sam", &[Role::Spectator]));
    let director = format!("Bearer {}", server.token("dora", &[Role::Director]));
    assert_eq!(announce(&server, None, json!({})).await.0, 401);
    assert_eq!(announce(&server, Some(&spectator), json!({})).await.0, 403);
    assert_eq!(announce(&server, Some(&key), json!({ "durationSecs": 3601 })).await.0, 400);
    assert_eq!(announce(&server, Some(&key), json!({ "message": "" })).await.0, 400);
    assert_eq!(announce(&server, Some(&key), json!({ "when": "now" })).await.0, 400);
    assert_eq!(announce(&server, Some(&key), json!([null, null])).await.0, 400, "a body that is no object");
    let (status, notice) = announce(&server, Some(&director), json!({ "durationSecs": 0 })).await;
    assert_eq!((status, notice["duration"].as_u64()), (202, Some(0)));
    assert_eq!(notice["message"], "Server maintenance: you will be reconnected shortly");
}

#[tokio::test]
async fn a_stop_signal_sends_the_notice_before_the_shutdown() {
    let server = TestServer::start_with(|config| config.maintenance_notice_secs = 1).await;
    let mut native = server.connected("ann", &[Role::Spectator]).await;
    common::result(&native.request("subscribe", json!({ "channel": "match:2" })).await);
    let stopping = tokio::spawn(server.server.stop_after_notice());
    let notice = loop {
        let frame = native.next_frame().await.expect("open");
        if let Some(notice) = frame["push"].get("notice") {
            break notice.clone();
        }
    };
    assert_eq!((notice["duration"].as_u64(), notice["message"].as_str()), (Some(1000), Some("The server restarts in 1 s")));
    let closed = native.closed().await;
    assert_eq!(closed.push_code, Some(3000), "then the shutdown closes it (to reconnect)");
    stopping.await.expect("stopped");
}
