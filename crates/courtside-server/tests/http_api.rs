//! The HTTP API for app backends, health/readiness/metrics, and SSE with `Last-Event-ID`
//! resume, exercised over real HTTP.

mod common;

use common::{result, TestServer};
use courtside_core::Role;
use serde_json::{json, Value};



#[tokio::test]
async fn publish_broadcast_and_history_over_http() {
    let server = TestServer::start().await;
    let key = format!("apikey {}", server.api_key());
    let (status, body) = server.post("/api/publish", Some(&key), json!({ "channel": "match:1", "data": { "home": 1 } })).await;
    assert_eq!((status, body["offset"].as_u64(), body["channel"].as_str()), (200, Some(1), Some("match:1")));
    let (status, body) = server.post(
        "/api/broadcast",
        Some(&key),
        json!({ "channels": ["match:1", "tournament:t1:scores", "nosuch:1"], "data": { "final": true } }),
    )
    .await;
    assert_eq!(status, 200);
    let results = body["results"].as_array().expect("results");
    assert_eq!(results[0]["offset"], 2);
    assert_eq!(results[1]["offset"], 1);
    assert_eq!(results[2]["error"]["code"], "unknown_namespace");
    let (status, body) = server.get("/api/history?channel=match:1&after=0&limit=10", None).await;
    assert_eq!(status, 200);
    assert_eq!(common::offsets(&body["publications"]), vec![1, 2]);
    assert_eq!(body["publications"][1]["data"]["final"], true);
}

#[tokio::test]
async fn bearer_tokens_follow_namespace_rules_and_errors_share_one_shape() {
    let server = TestServer::start().await;
    let keeper = format!("Bearer {}", server.token("kim", &[Role::Scorekeeper]));
    let fan = format!("Bearer {}", server.token("fan", &[Role::Spectator]));
    let (status, _) = server.post("/api/publish", Some(&keeper), json!({ "channel": "match:2", "data": 1 })).await;
    assert_eq!(status, 200);
    let cases = [
        (server.post("/api/publish", Some(&fan), json!({ "channel": "match:2", "data": 1 })).await, 403, "permission_denied"),
        (server.post("/api/publish", None, json!({ "channel": "match:2", "data": 1 })).await, 403, "permission_denied"),
        (server.post("/api/publish", Some("apikey wrong"), json!({ "channel": "match:2", "data": 1 })).await, 401, "unauthorized"),
        (server.post("/api/publish", Some("Bearer garbage"), json!({ "channel": "match:2", "data": 1 })).await, 401, "unauthorized"),
        (server.post("/api/publish", Some(&keeper), json!({ "channel": "bad channel", "data": 1 })).await, 400, "bad_request"),
        (server.post("/api/publish", Some(&keeper), json!({ "channel": "match:2" })).await, 400, "bad_request"),
        (server.post("/api/publish", Some(&keeper), json!({ "channel": "nosuch:2", "data": 1 })).await, 404, "unknown_namespace"),
        (server.get("/api/channels", Some(&keeper)).await, 403, "permission_denied"),
        (server.get("/api/history?channel=match:2&limit=0", None).await, 400, "bad_request"),
        (server.get("/api/nothing", None).await, 404, "not_found"),
        (server.get("/api/publish", None).await, 405, "method_not_allowed"),
    ];
    for ((status, body), expected_status, expected_code) in cases {
        assert_eq!(status, expected_status, "{body}");
        assert_eq!(body["error"]["code"], expected_code, "{body}");
        assert_eq!(body["error"]["status"], expected_status);
        assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    let response = reqwest::Client::new()
        .post(server.http("/api/publish"))
        .header("authorization", &keeper)
        .header("content-type", "application/json")
        .body("{\"channel\":")
        .send()
        .await
        .expect("request");
    assert_eq!(response.status().as_u16(), 400);
}

#[tokio::test]
async fn channels_and_presence_for_the_backend() {
    let server = TestServer::start().await;
    let key = format!("apikey {}", server.api_key());
    let mut client = server.connected("viewer", &[Role::Spectator]).await;
    result(&client.request("subscribe", json!({ "channel": "match:8" })).await);
    let (status, body) = server.get("/api/channels", Some(&key)).await;
    assert_eq!(status, 200);
    assert_eq!(body["channels"], json!([{ "channel": "match:8", "subscribers": 1 }]));
    let (status, body) = server.get("/api/presence?channel=match:8", Some(&key)).await;
    assert_eq!(status, 200);
    assert_eq!(body["clients"][0]["user"], "viewer");
    assert_eq!(body["stats"]["users"], 1);
}

#[tokio::test]
async fn health_ready_and_metrics() {
    let server = TestServer::start().await;
    let health = reqwest::get(server.http("/health")).await.expect("health");
    assert_eq!(health.status().as_u16(), 200);
    let ready = reqwest::get(server.http("/ready")).await.expect("ready");
    assert_eq!(ready.status().as_u16(), 200);
    let mut client = server.connected("", &[]).await;
    result(&client.request("subscribe", json!({ "channel": "match:m" })).await);
    server.publish("match:m", json!(1)).await;
    client.next_publication().await;
    let text = reqwest::get(server.http("/metrics")).await.expect("metrics").text().await.expect("text");
    for name in [
        "courtside_connections 1",
        "courtside_subscriptions 1",
        "courtside_publications_total 1",
        "courtside_deliveries_total 1",
        "courtside_queue_overflows_total 0",
        "courtside_deliver_latency_seconds_count 1",
    ] {
        assert!(text.lines().any(|l| l == name), "missing `{name}` in\n{text}");
    }
}

/// Reads SSE events from a streaming response until `count` events with data have arrived.
async fn sse_events(response: &mut reqwest::Response, count: usize) -> Vec<(Option<String>, Option<String>, Value)> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    while events.len() < count {
        let chunk = tokio::time::timeout(common::TIMEOUT, response.chunk())
            .await
            .expect("event in time")
            .expect("stream")
            .expect("stream open");
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let (mut name, mut id, mut data) = (None, None, None);
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event: ") {
                    name = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("id: ") {
                    id = Some(v.to_string());
                } else if let Some(v) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(v).ok();
                }
            }
            if let Some(data) = data {
                events.push((name, id, data));
            }
        }
    }
    events
}

#[tokio::test]
async fn sse_streams_several_channels_and_resumes_from_last_event_id() {
    let server = TestServer::start().await;
    let url = server.http("/sse?channel=match:s1&channel=court:c9");
    let mut response = reqwest::get(&url).await.expect("sse");
    assert_eq!(response.status().as_u16(), 200);
    let subscribed = sse_events(&mut response, 2).await;
    assert!(subscribed.iter().all(|(name, _, _)| name.as_deref() == Some("subscribed")));
    server.publish("match:s1", json!("a")).await;
    server.publish("court:c9", json!("b")).await;
    let live = sse_events(&mut response, 2).await;
    assert_eq!(live[0].2["push"]["channel"], "match:s1");
    assert_eq!(live[1].2["push"]["pub"]["data"], "b");
    let last_id = live[1].1.clone().expect("id");
    drop(response);
    server.publish("match:s1", json!("c")).await;
    server.publish("match:s1", json!("d")).await;
    let mut resumed = reqwest::Client::new()
        .get(&url)
        .header("last-event-id", &last_id)
        .send()
        .await
        .expect("sse");
    let events = sse_events(&mut resumed, 4).await;
    let (subscribed, replayed): (Vec<_>, Vec<_>) =
        events.iter().partition(|(name, _, _)| name.as_deref() == Some("subscribed"));
    assert!(subscribed.len() == 2 && subscribed.iter().all(|(_, _, data)| data["recovered"] == true));
    let data: Vec<_> = replayed.iter().map(|(_, _, d)| d["push"]["pub"]["data"].clone()).collect();
    assert_eq!(data, vec![json!("c"), json!("d")], "exactly the missed publications");
    let final_id = events[3].1.clone().expect("id");
    let parts: Vec<&str> = final_id.split(',').collect();
    assert!(parts[0].ends_with(":3") && parts[1].ends_with(":1"), "{final_id}");
    let mut stale = reqwest::Client::new().get(&url).header("last-event-id", "not-an-id").send().await.expect("sse");
    let fresh = sse_events(&mut stale, 2).await;
    assert!(fresh.iter().all(|(_, _, data)| data["recovered"] == false), "an unusable id is reported, not ignored");
    let forbidden = reqwest::get(server.http("/sse?channel=user:alice:notifications")).await.expect("sse");
    assert_eq!(forbidden.status().as_u16(), 403);
    let bad = reqwest::get(server.http("/sse")).await.expect("sse");
    assert_eq!(bad.status().as_u16(), 400);
}

#[tokio::test]
async fn browser_origins_are_checked_for_cors_and_websocket_handshakes() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let server = TestServer::start_with(|c| c.allowed_origins = vec!["https://scores.example".into()]).await;
    let allowed = reqwest::Client::new()
        .get(server.http("/api/history?channel=match:1"))
        .header("origin", "https://scores.example")
        .send()
        .await
        .expect("request");
    assert_eq!(
        allowed.headers().get("access-control-allow-origin").and_then(|v| v.to_str().ok()),
        Some("https://scores.example")
    );
    let other = reqwest::Client::new()
        .get(server.http("/api/history?channel=match:1"))
        .header("origin", "https://evil.example")
        .send()
        .await
        .expect("request");
    assert!(other.headers().get("access-control-allow-origin").is_none());

    let url = format!("ws://{}/ws", server.server.addr);
    let mut request = url.as_str().into_client_request().expect("request");
    request.headers_mut().insert("origin", "https://evil.example".parse().expect("header"));
    let refused = tokio_tungstenite::connect_async(request).await;
    assert!(refused.is_err(), "a foreign page may not open a WebSocket");
    let mut request = url.as_str().into_client_request().expect("request");
    request.headers_mut().insert("origin", "https://scores.example".parse().expect("header"));
    assert!(tokio_tungstenite::connect_async(request).await.is_ok());
    assert!(tokio_tungstenite::connect_async(url.as_str()).await.is_ok(), "no Origin: not a browser, allowed");
}

/// The OpenAPI document is served, is 3.1, covers every route of the router, and the copies in
/// docs/ are what the code generates (regenerate: `courtside openapi > docs/openapi.json`,
/// `courtside openapi --markdown > docs/rest-api.md`).
#[tokio::test]
async fn the_openapi_document_is_served_complete_and_matches_the_docs() {
    let server = TestServer::start().await;
    let (status, served) = server.get("/openapi.json", None).await;
    assert_eq!(status, 200);
    assert_eq!(served["openapi"], "3.1.0");
    let operations: Vec<String> = served["paths"]
        .as_object()
        .expect("paths")
        .iter()
        .flat_map(|(path, methods)| methods.as_object().expect("methods").keys().map(move |m| format!("{} {path}", m.to_uppercase())))
        .collect();
    for route in [
        "GET /api/events", "POST /api/events", "GET /api/events/{event_id}", "GET /api/events/{event_id}/export",
        "POST /api/events/import", "PUT /api/events/{event_id}/divisions/{id}", "PUT /api/events/{event_id}/teams/{id}",
        "PUT /api/events/{event_id}/courts/{id}", "POST /api/events/{event_id}/matches", "POST /api/events/{event_id}/scores",
        "GET /api/events/{event_id}/scores", "GET /api/events/{event_id}/scores/{match_id}",
        "GET /api/events/{event_id}/scores/{match_id}/history", "GET /api/events/{event_id}/claims",
        "GET /api/events/{event_id}/claims/{match_id}", "POST /api/events/{event_id}/claims/{match_id}",
        "DELETE /api/events/{event_id}/claims/{match_id}", "GET /api/events/{event_id}/coverage-plans",
        "PUT /api/events/{event_id}/coverage-plans", "DELETE /api/events/{event_id}/coverage-plans",
        "POST /api/events/{event_id}/announcements", "GET /api/events/{event_id}/conflicts", "POST /api/auth/login",
        "POST /api/auth/refresh", "POST /api/users", "GET /api/users", "POST /api/publish", "POST /api/broadcast",
        "GET /api/history", "GET /api/presence", "GET /api/channels", "GET /health", "GET /ready", "GET /metrics",
        "POST /api/rpc", "POST /api/maintenance",
    ] {
        assert!(operations.iter().any(|op| op == route), "{route} is not documented");
    }
    // Generated clients name a method after each operation id: they must be unique (OpenAPI says so).
    let mut ids: Vec<&str> = served["paths"].as_object().expect("paths").values().flat_map(|methods| methods.as_object().expect("methods").values()).filter_map(|op| op["operationId"].as_str()).collect();
    let count = ids.len();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), count, "operation ids repeat: {ids:?}");
    let score_update = &served["paths"]["/api/events/{event_id}/scores"]["post"]["responses"];
    for status in ["200", "400", "401", "403", "404", "409", "422", "429", "503"] {
        assert!(score_update.get(status).is_some(), "score updates document {status}");
    }
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    let committed = std::fs::read_to_string(docs.join("openapi.json")).expect("docs/openapi.json");
    assert_eq!(committed.trim_end(), courtside_server::openapi::document_json(), "docs/openapi.json is stale: run `courtside openapi > docs/openapi.json`");
    let markdown = std::fs::read_to_string(docs.join("rest-api.md")).expect("docs/rest-api.md");
    assert_eq!(markdown, courtside_server::openapi::document_markdown(), "docs/rest-api.md is stale: run `courtside openapi --markdown > docs/rest-api.md`");
}

/// `/api/history` takes `after` and `limit` (as documented) and refuses offsets past the stores'
/// signed 64-bit range; `/api/channels` without credentials is 401 and lists objects.
#[tokio::test]
async fn history_parameters_and_channels_are_what_the_document_says() {
    let server = TestServer::start().await;
    let key = format!("apikey {}", server.api_key());
    server.publish("match:1", json!({ "n": 1 })).await;
    let (status, page) = server.get("/api/history?channel=match:1&after=0&limit=10", Some(&key)).await;
    assert_eq!((status, page["publications"].as_array().map(Vec::len)), (200, Some(1)), "{page}");
    let (status, body) = server.get("/api/history?channel=match:1&after=9223372036854775808", Some(&key)).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{body}");
    let (status, body) = server.get("/api/history?channel=match:1&since_offset=0", Some(&key)).await;
    assert_eq!(status, 400, "undocumented parameters are refused: {body}");
    let (status, _) = server.get("/api/channels", None).await;
    assert_eq!(status, 401);
    let document: Value = serde_json::from_str(&courtside_server::openapi::document_json()).expect("json");
    let params: Vec<&str> = document["paths"]["/api/history"]["get"]["parameters"].as_array().expect("params").iter().filter_map(|p| p["name"].as_str()).collect();
    assert_eq!(params, ["channel", "after", "limit"]);
    assert_eq!(document["components"]["schemas"]["ChannelsDoc"]["properties"]["channels"]["items"]["$ref"], "#/components/schemas/ChannelSubscribersDoc");
}

/// Every metric `/metrics` serves has its row in docs/api.md.
#[tokio::test]
async fn every_served_metric_is_documented() {
    let server = TestServer::start().await;
    let text = reqwest::get(server.http("/metrics")).await.expect("metrics").text().await.expect("text");
    let api_md = std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md")).expect("docs/api.md");
    let undocumented: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split(' ').next())
        .filter(|name| !api_md.contains(&format!("| `{name}` |")) && !api_md.contains(&format!("| `{name}{{")))
        .collect();
    assert!(undocumented.is_empty(), "docs/api.md has no row for {undocumented:?}");
}
