//! App hooks against a small app backend (an HTTP server in the test): the backend allows,
//! denies with a reason, rewrites a payload and answers RPC calls, over the WebSocket, SSE,
//! HTTP and Socket.IO; a slow backend times out after its retries, a backend that is down opens
//! the circuit breaker (calls fail at once) and one probe closes it when the backend is back.
//! Nothing a hook refused is stored.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use common::socketio::SocketIo;
use common::{TestServer, error_code, offsets, result};
use courtside_core::Role;
use courtside_server::hooks::HooksConfig;
use parking_lot::Mutex;
use serde_json::{Value, json};

const SECRET: &str = "hook-secret";

/// What the backend saw: each request's hook path and body.
#[derive(Default)]
struct Seen {
    calls: Mutex<Vec<(String, Value)>>,
}

impl Seen {
    fn of(&self, hook: &str) -> Vec<Value> {
        self.calls.lock().iter().filter(|(name, _)| name == hook).map(|(_, body)| body.clone()).collect()
    }
}

/// The app's rules: `mallory` may not connect; `chat:vip-*` is for `kim` only; a publication
/// saying "spam" is refused, every other one is stored with `"checked": true` added; RPC
/// `echo` answers who asked and what, `slow` takes 2 s, `broken` answers 500.
async fn decide(State(seen): State<Arc<Seen>>, Path(hook): Path<String>, headers: HeaderMap, Json(body): Json<Value>) -> Result<Json<Value>, StatusCode> {
    seen.calls.lock().push((hook.clone(), body.clone()));
    if headers.get("authorization").and_then(|value| value.to_str().ok()) != Some(&format!("Bearer {SECRET}")) {
        return Err(StatusCode::UNAUTHORIZED);
    }
    let user = body["user"].as_str().unwrap_or_default();
    let answer = match hook.as_str() {
        "connect" if user == "mallory" => json!({ "allow": false, "reason": "mallory is banned" }),
        "subscribe" if body["channel"].as_str().is_some_and(|c| c.starts_with("chat:vip-")) && user != "kim" => {
            json!({ "allow": false, "reason": "VIP rooms are for VIPs" })
        }
        "publish" if body["data"]["text"].as_str().is_some_and(|text| text.contains("spam")) => json!({ "allow": false, "reason": "no spam" }),
        "publish" => {
            let mut data = body["data"].clone();
            data["checked"] = json!(true);
            json!({ "allow": true, "data": data })
        }
        "rpc" => match body["method"].as_str() {
            Some("echo") => json!({ "allow": true, "data": { "user": user, "transport": body["transport"], "asked": body["data"] } }),
            Some("slow") => {
                tokio::time::sleep(Duration::from_secs(2)).await;
                json!({ "allow": true })
            }
            Some("broken") => return Err(StatusCode::INTERNAL_SERVER_ERROR),
            _ => json!({ "allow": false, "reason": "no such method" }),
        },
        _ => json!({ "allow": true }),
    };
    Ok(Json(answer))
}

/// Starts the backend on `addr` (port 0: any free one).
async fn backend_on(addr: SocketAddr) -> (SocketAddr, Arc<Seen>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Seen::default());
    let app = axum::Router::new().route("/hooks/{hook}", axum::routing::post(decide)).with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind(addr).await.expect("backend listens");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (addr, seen, task)
}

fn hooks_at(backend: SocketAddr) -> HooksConfig {
    HooksConfig {
        url: format!("http://{backend}/hooks"),
        secret: SECRET.into(),
        timeout_ms: 500,
        retries: 1,
        connect: true,
        rpc: true,
        subscribe: vec!["chat".into()],
        publish: vec!["chat".into()],
        ..HooksConfig::default()
    }
}

fn chat_namespace(config: &mut courtside_server::Config) {
    let everyone = Role::ALL.to_vec();
    let chat = courtside_core::NamespaceOptions { subscribe: everyone.clone(), publish: everyone, ..Default::default() };
    config.namespaces.insert("chat".into(), chat);
}

#[tokio::test]
async fn the_backend_allows_denies_and_rewrites_over_the_websocket() {
    let (backend, seen, _task) = backend_on("127.0.0.1:0".parse().expect("addr")).await;
    let server = TestServer::start_with(|config| {
        chat_namespace(config);
        config.hooks = hooks_at(backend);
    })
    .await;

    let mut mallory = server.client().await;
    let refused = mallory.request("connect", json!({ "token": server.token("mallory", &[]) })).await;
    assert_eq!(error_code(&refused), 103, "{refused}");
    assert_eq!(refused["error"]["message"], "permission denied: mallory is banned");
    let connect = &seen.of("connect")[0];
    assert_eq!((connect["user"].as_str(), connect["transport"].as_str()), (Some("mallory"), Some("websocket")), "{connect}");

    let mut lee = server.connected("lee", &[Role::Spectator]).await;
    let denied = lee.request("subscribe", json!({ "channel": "chat:vip-lounge" })).await;
    assert_eq!((error_code(&denied), denied["error"]["message"].as_str()), (103, Some("permission denied: VIP rooms are for VIPs")), "{denied}");
    let history = lee.request("history", json!({ "channel": "chat:vip-lounge" })).await;
    assert_eq!(error_code(&history), 103, "reads of a hooked namespace ask too: {history}");
    let public = lee.request("subscribe", json!({ "channel": "chat:lobby" })).await;
    assert!(public.get("result").is_some(), "{public}");
    let mut kim = server.connected("kim", &[Role::Spectator]).await;
    assert!(kim.request("subscribe", json!({ "channel": "chat:vip-lounge" })).await.get("result").is_some());

    let spam = lee.request("publish", json!({ "channel": "chat:lobby", "data": { "text": "buy spam" } })).await;
    assert_eq!((error_code(&spam), spam["error"]["message"].as_str()), (103, Some("permission denied: no spam")), "{spam}");
    let stored = lee.request("publish", json!({ "channel": "chat:lobby", "data": { "text": "hello" }, "key": "k1", "event": "said" })).await;
    assert_eq!(result(&stored)["offset"], 1, "the refused one took no offset: {stored}");
    let delivered = lee.next_publication().await;
    assert_eq!(delivered["data"], json!({ "text": "hello", "checked": true }), "the backend's payload is stored: {delivered}");
    let asked = seen.of("publish").pop().expect("a publish hook call");
    assert_eq!((asked["channel"].as_str(), asked["key"].as_str(), asked["event"].as_str()), (Some("chat:lobby"), Some("k1"), Some("said")), "{asked}");

    let outside = lee.request("subscribe", json!({ "channel": "match:m1" })).await;
    assert!(outside.get("result").is_some(), "{outside}");
    assert!(seen.of("subscribe").iter().all(|call| call["channel"].as_str().is_some_and(|c| c.starts_with("chat:"))), "only hooked namespaces are asked");

    let echo = lee.request("rpc", json!({ "method": "echo", "data": { "n": 1 } })).await;
    assert_eq!(result(&echo)["data"], json!({ "user": "lee", "transport": "websocket", "asked": { "n": 1 } }), "{echo}");
    let unknown = lee.request("rpc", json!({ "method": "nope" })).await;
    assert_eq!(error_code(&unknown), 103, "{unknown}");
    let bad_name = lee.request("rpc", json!({ "method": "no spaces" })).await;
    assert_eq!(error_code(&bad_name), 107, "{bad_name}");
}

#[tokio::test]
async fn sse_http_and_socketio_ask_the_same_backend() {
    let (backend, _seen, _task) = backend_on("127.0.0.1:0".parse().expect("addr")).await;
    let server = TestServer::start_with(|config| {
        chat_namespace(config);
        config.hooks = hooks_at(backend);
    })
    .await;
    let http = reqwest::Client::new();
    let lee = server.token("lee", &[Role::Spectator]);
    let mallory = server.token("mallory", &[]);

    // SSE: the connect hook, then each channel.
    let sse = |token: &str, channel: &str| http.get(server.http(&format!("/sse?channel={channel}&token={token}"))).send();
    assert_eq!(sse(&mallory, "chat:lobby").await.expect("sse").status(), 403);
    assert_eq!(sse(&lee, "chat:vip-lounge").await.expect("sse").status(), 403);
    assert_eq!(sse(&lee, "chat:lobby").await.expect("sse").status(), 200);

    // HTTP: publish (rewritten or refused), history, rpc.
    let bearer = format!("Bearer {lee}");
    let (status, body) = server.post("/api/publish", Some(&bearer), json!({ "channel": "chat:lobby", "data": { "text": "spam again" } })).await;
    assert_eq!((status, body["error"]["message"].as_str()), (403, Some("permission denied: no spam")), "{body}");
    let (status, body) = server.post("/api/publish", Some(&bearer), json!({ "channel": "chat:lobby", "data": { "text": "hi" } })).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = server.get("/api/history?channel=chat:lobby", Some(&bearer)).await;
    assert_eq!((status, offsets(&body["publications"])), (200, vec![1]), "{body}");
    assert_eq!(body["publications"][0]["data"], json!({ "text": "hi", "checked": true }));
    let (status, body) = server.get("/api/history?channel=chat:vip-lounge", Some(&bearer)).await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = server.post("/api/rpc", Some(&bearer), json!({ "method": "echo", "data": [1, 2] })).await;
    assert_eq!((status, &body["data"]), (200, &json!({ "user": "lee", "transport": "http", "asked": [1, 2] })), "{body}");
    let key = format!("apikey {}", server.api_key());
    let (status, body) = server.post("/api/publish", Some(&key), json!({ "channel": "chat:lobby", "data": { "text": "spam from the app" } })).await;
    assert_eq!(status, 200, "the app's own key is not asked: {body}");

    // Socket.IO: a refused CONNECT, a refused subscribe, a rewritten publish, an rpc.
    let (_refused, answer) = SocketIo::try_open(&server, Some(&mallory)).await;
    assert!(answer.starts_with("4{") && answer.contains("mallory is banned"), "{answer}");
    let mut socket = SocketIo::open(&server, Some(&lee)).await;
    let denied = socket.subscribe("chat:vip-lounge").await;
    assert_eq!(denied["error"]["code"], 103, "{denied}");
    let published = socket.emit_with_ack("publish", json!({ "channel": "chat:lobby", "data": { "text": "yo" } })).await;
    assert_eq!(published["offset"], 3, "{published}");
    let rpc = socket.emit_with_ack("rpc", json!({ "method": "echo", "data": "x" })).await;
    assert_eq!(rpc["data"]["transport"], "socketio", "{rpc}");
}

#[tokio::test]
async fn a_slow_or_failing_backend_answers_unavailable_after_its_retries() {
    let (backend, seen, _task) = backend_on("127.0.0.1:0".parse().expect("addr")).await;
    let server = TestServer::start_with(|config| {
        chat_namespace(config);
        config.hooks = HooksConfig { timeout_ms: 200, breaker_failures: 100, ..hooks_at(backend) };
    })
    .await;
    let mut lee = server.connected("lee", &[]).await;
    let started = Instant::now();
    let slow = lee.request("rpc", json!({ "method": "slow" })).await;
    assert_eq!(error_code(&slow), 111, "{slow}");
    assert!(started.elapsed() < Duration::from_millis(1500), "two attempts of 200 ms, not the backend's 2 s");
    let broken = lee.request("rpc", json!({ "method": "broken" })).await;
    assert_eq!(error_code(&broken), 111, "{broken}");
    let attempts = |method: &str| seen.of("rpc").iter().filter(|call| call["method"] == method).count();
    assert_eq!((attempts("slow"), attempts("broken")), (2, 2), "the first attempt and one retry each");
    assert_eq!(server.metric("courtside_hook_calls_total{hook=\"rpc\",outcome=\"failed\"}").await, 2.0);
}

#[tokio::test]
async fn a_backend_that_is_down_opens_the_breaker_and_one_probe_closes_it() {
    // A port nothing listens on yet; the backend starts there later.
    let port = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind").local_addr().expect("addr");
    let server = TestServer::start_with(|config| {
        chat_namespace(config);
        config.hooks = HooksConfig { retries: 0, breaker_failures: 2, breaker_open_secs: 1, ..hooks_at(port) };
    })
    .await;
    for _ in 0..2 {
        let mut client = server.client().await;
        let reply = client.request("connect", json!({ "token": server.token("lee", &[]) })).await;
        assert_eq!(error_code(&reply), 111, "the backend is down: {reply}");
        assert!(reply["error"]["message"].as_str().is_some_and(|m| m.contains("did not answer the connect hook")), "{reply}");
    }
    assert_eq!(server.metric("courtside_hook_breaker_open").await, 1.0);
    let mut client = server.client().await;
    let paused = client.request("connect", json!({ "token": server.token("lee", &[]) })).await;
    assert!(paused["error"]["message"].as_str().is_some_and(|m| m.contains("hooks paused")), "the breaker answers at once: {paused}");
    assert_eq!(server.metric("courtside_hook_calls_total{hook=\"connect\",outcome=\"short_circuited\"}").await, 1.0);

    let (_addr, seen, _task) = backend_on(port).await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut client = server.client().await;
    let probe = client.request("connect", json!({ "token": server.token("lee", &[]) })).await;
    assert!(probe.get("result").is_some(), "the probe reaches the backend that is back: {probe}");
    assert_eq!(seen.of("connect").len(), 1);
    assert_eq!(server.metric("courtside_hook_breaker_open").await, 0.0);
    assert_eq!(server.metric("courtside_hook_breaker_opened_total").await, 1.0);
}

#[tokio::test]
async fn a_hook_configuration_that_cannot_work_stops_the_start_with_its_key() {
    for (hooks, expected) in [
        (HooksConfig { connect: true, ..HooksConfig::default() }, "configuration key `hooks.url`: is required when a hook is on"),
        (HooksConfig { url: "ftp://x".into(), ..HooksConfig::default() }, "configuration key `hooks.url`: \"ftp://x\" is not an http:// or https:// URL"),
        (
            HooksConfig { url: "http://127.0.0.1:9/".into(), publish: vec!["nope".into()], ..HooksConfig::default() },
            "configuration key `hooks.publish`: names \"nope\", which is no configured namespace",
        ),
    ] {
        let mut config = courtside_server::Config { data_dir: common::temp_dir("bad-hooks"), ..courtside_server::Config::default() };
        config.listen = "127.0.0.1:0".parse().expect("addr");
        config.hooks = hooks;
        let Err(error) = courtside_server::start(config).await else { panic!("a server started with hooks that cannot work") };
        assert_eq!(error.to_string(), expected);
    }
}
