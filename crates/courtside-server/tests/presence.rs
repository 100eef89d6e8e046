//! Presence people can use, against the real server: what a connection says about itself
//! (status, location, device) on `connect` and with `presence_set`, seen in `presence` and
//! carried by `join` pushes; bad info refused; SSE viewers counted like every other connection.

mod common;

use common::{TestServer, error_code, result};
use courtside_core::Role;
use serde_json::json;

async fn next_join(client: &mut common::Client, user: &str) -> serde_json::Value {
    loop {
        let frame = client.next_frame().await.expect("open");
        if frame["push"]["join"]["user"] == user {
            return frame["push"]["join"].clone();
        }
    }
}

#[tokio::test]
async fn connections_say_who_they_are_and_others_see_it() {
    let server = TestServer::start_with(|c| c.namespaces.get_mut("match").expect("match").join_leave = true).await;
    let mut coach = server.connected("coach1", &[Role::Coach]).await;
    result(&coach.request("subscribe", json!({ "channel": "match:5" })).await);

    let mut fan = server.client().await;
    let token = server.token("fan1", &[Role::Spectator]);
    let connected = fan.request("connect", json!({ "token": token, "presence": { "status": "online", "device": "web" } })).await;
    result(&connected);
    result(&fan.request("subscribe", json!({ "channel": "match:5" })).await);
    let joined = next_join(&mut coach, "fan1").await;
    assert_eq!((joined["status"].as_str(), joined["device"].as_str(), joined.get("location")), (Some("online"), Some("web"), None));

    result(&fan.request("presence_set", json!({ "status": "in_match", "location": "match:5" })).await);
    let updated = next_join(&mut coach, "fan1").await;
    assert_eq!((updated["status"].as_str(), updated["location"].as_str(), updated.get("device")), (Some("in_match"), Some("match:5"), None), "presence_set replaces the info");
    let listed = result(&coach.request("presence", json!({ "channel": "match:5" })).await).clone();
    let fan_entry = listed["clients"].as_array().expect("clients").iter().find(|c| c["user"] == "fan1").expect("fan listed").clone();
    assert_eq!(fan_entry["status"], "in_match");
    assert_eq!(result(&coach.request("presence_stats", json!({ "channel": "match:5" })).await)["clients"], 2, "a change is no new client");

    for bad in [json!({ "status": "" }), json!({ "status": "x".repeat(65) }), json!({ "mood": "happy" }), json!({ "device": "a\nb" })] {
        assert_eq!(error_code(&fan.request("presence_set", bad.clone()).await), 107, "{bad}");
    }
    let mut refused = server.client().await;
    assert_eq!(error_code(&refused.request("connect", json!({ "presence": { "status": "" } })).await), 107);
}

#[tokio::test]
async fn sse_viewers_count_as_watching() {
    let server = TestServer::start().await;
    let mut coach = server.connected("coach1", &[Role::Coach]).await;
    result(&coach.request("subscribe", json!({ "channel": "match:8" })).await);
    let watching = |stats: &serde_json::Value| result(stats)["clients"].as_u64();
    assert_eq!(watching(&coach.request("presence_stats", json!({ "channel": "match:8" })).await), Some(1));
    let viewer = reqwest::get(server.http("/sse?channel=match:8")).await.expect("sse");
    assert_eq!(viewer.status(), 200);
    assert_eq!(watching(&coach.request("presence_stats", json!({ "channel": "match:8" })).await), Some(2), "the SSE viewer counts");
    drop(viewer);
    let mut left = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        if watching(&coach.request("presence_stats", json!({ "channel": "match:8" })).await) == Some(1) {
            left = true;
            break;
        }
    }
    assert!(left, "a closed SSE stream leaves presence");
}
