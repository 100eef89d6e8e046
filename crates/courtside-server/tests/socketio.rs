//! Socket.IO against the real server with real clients: socket.io-client 4 and 3, driven from
//! Node (clients/js/tools/socketio-driver) exactly as an app uses them — long-polling, WebSocket
//! and the upgrade, acks, a refused handshake, resume across a server restart with nothing missed
//! — plus malformed Engine.IO and Socket.IO input over raw HTTP.
//!
//! Needs Node 20+ and `npm ci` in clients/js. Without them the tests say `SKIPPED` and pass,
//! except under `CI=true`, where they fail.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::TestServer;
use courtside_core::Role;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const WAIT: Duration = Duration::from_secs(15);

fn driver_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients/js/tools/socketio-driver/driver.mjs")
}

/// A Node process holding socket.io-client sockets.
struct Driver {
    child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// Everything read so far, for assertions over the whole transcript.
    seen: Vec<Value>,
}

impl Driver {
    /// Starts the driver, or `None` (after the skip rule) when Node or the packages are missing.
    async fn start() -> Option<Driver> {
        let installed = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../clients/js/node_modules/socket.io-client");
        if !installed.exists() {
            courtside_testkit::skip_or_fail("socket.io-client is not installed: run `npm ci` in clients/js (needs Node 20+)");
            return None;
        }
        let spawned = Command::new("node").arg(driver_script()).stdin(Stdio::piped()).stdout(Stdio::piped()).kill_on_drop(true).spawn();
        let Ok(mut child) = spawned else {
            courtside_testkit::skip_or_fail("`node` is not on PATH (Node 20+ runs the socket.io-client tests)");
            return None;
        };
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut driver = Driver { child, stdin, lines, seen: Vec::new() };
        driver.wait_for(|line| line["event"] == "ready").await;
        Some(driver)
    }

    async fn send(&mut self, command: Value) {
        let mut line = command.to_string();
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await.expect("driver stdin");
    }

    async fn open(&mut self, name: &str, url: &str, options: Value, version: u8) {
        self.send(json!({ "cmd": "open", "name": name, "url": url, "options": options, "version": version })).await;
    }

    /// Emits and waits for the ack's arguments.
    async fn request(&mut self, name: &str, event: &str, argument: Value) -> Value {
        let tag = format!("{name}-{}", self.seen.len());
        self.send(json!({ "cmd": "emit", "name": name, "event": event, "args": [argument], "ack": true, "tag": tag })).await;
        let answer = self.wait_for(|line| line["ack"] == tag.as_str()).await;
        assert!(answer.get("timeout").is_none(), "no ack for {event} from {name}");
        answer["args"][0].clone()
    }

    /// Reads lines until one matches; fails after [`WAIT`].
    async fn wait_for(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        if let Some(found) = self.seen.iter().find(|line| wanted(line)) {
            return found.clone();
        }
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line()).await;
            let Ok(Ok(Some(line))) = line else { panic!("the driver did not report what was awaited; it saw: {:#?}", self.seen) };
            let value: Value = serde_json::from_str(&line).expect("driver writes JSON lines");
            self.seen.push(value.clone());
            if wanted(&value) {
                return value;
            }
        }
    }

    /// The `data` of every `publication` event socket `name` received on `channel`, in order.
    fn publications(&self, name: &str, channel: &str) -> Vec<Value> {
        self.seen
            .iter()
            .filter(|line| line["name"] == name && line["event"] == "publication" && line["args"][0]["channel"] == channel)
            .map(|line| line["args"][0]["data"].clone())
            .collect()
    }

    async fn wait_for_publications(&mut self, name: &str, channel: &str, count: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        while self.publications(name, channel).len() < count {
            let line = tokio::time::timeout_at(deadline, self.lines.next_line()).await;
            let Ok(Ok(Some(line))) = line else { panic!("{name} got {:?} of {count} publications; saw {:#?}", self.publications(name, channel), self.seen) };
            self.seen.push(serde_json::from_str(&line).expect("JSON line"));
        }
        self.publications(name, channel)
    }

    async fn exit(mut self) {
        self.send(json!({ "cmd": "exit" })).await;
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }
}

fn url(server: &TestServer) -> String {
    format!("http://{}", server.server.addr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_3_and_4_on_both_transports_subscribe_publish_and_receive_in_order() {
    let Some(mut driver) = Driver::start().await else { return };
    let server = TestServer::start().await;
    let token = server.token("kim", &[Role::Staff]);
    let auth = json!({ "token": token });
    driver.open("ws", &url(&server), json!({ "auth": auth, "transports": ["websocket"] }), 4).await;
    driver.open("poll", &url(&server), json!({ "auth": auth, "transports": ["polling"] }), 4).await;
    driver.open("v3", &url(&server), json!({ "auth": auth }), 3).await;
    for name in ["ws", "poll", "v3"] {
        let connected = driver.wait_for(|line| line["name"] == name && line["event"] == "connect").await;
        assert!(connected["id"].as_str().is_some_and(|id| !id.is_empty()), "{connected}");
    }
    // v3 starts on long-polling and upgrades; the upgrade may finish before the socket reports
    // `connect` (then it connects on the WebSocket already).
    driver
        .wait_for(|line| line["name"] == "v3" && matches!(line["event"].as_str(), Some("upgrade" | "connect")) && line["transport"] == "websocket")
        .await;
    for name in ["ws", "poll", "v3"] {
        let subscribed = driver.request(name, "subscribe", json!({ "channel": "match:sio" })).await;
        assert_eq!((subscribed["channel"].as_str(), subscribed["offset"].as_u64()), (Some("match:sio"), Some(0)), "{subscribed}");
    }
    for n in 1..=5 {
        let published = driver.request("ws", "publish", json!({ "channel": "match:sio", "data": { "n": n } })).await;
        assert_eq!(published["offset"], n, "acknowledged once durable, with its offset: {published}");
    }
    server.publish("match:sio", json!({ "n": 6 })).await;
    let expected: Vec<Value> = (1..=6).map(|n| json!({ "n": n })).collect();
    for name in ["ws", "poll", "v3"] {
        assert_eq!(driver.wait_for_publications(name, "match:sio", 6).await, expected, "{name}: every publication once, in order");
    }
    let event = driver.seen.iter().find(|line| line["name"] == "poll" && line["event"] == "publication").expect("a publication").clone();
    assert_eq!(event["args"][1], format!("match:sio={}:1", event["args"][0]["epoch"].as_str().expect("epoch")), "the resume position closes every event");
    assert_eq!(server.metric("courtside_socketio_connections").await, 3.0);
    driver.exit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_with_an_event_name_arrives_as_that_event_with_its_data() {
    let Some(mut driver) = Driver::start().await else { return };
    let server = TestServer::start().await;
    let auth = json!({ "token": server.token("kim", &[Role::Staff]) });
    for (name, version) in [("v4", 4), ("v3", 3)] {
        driver.open(name, &url(&server), json!({ "auth": auth }), version).await;
        driver.wait_for(|line| line["name"] == name && line["event"] == "connect").await;
        driver.send(json!({ "cmd": "listen", "name": name, "event": "match:created" })).await;
        driver.request(name, "subscribe", json!({ "channel": "match:named" })).await;
    }
    let mut native = server.connected("kim", &[Role::Staff]).await;
    let payload = json!({ "id": "m1", "teams": ["a", "b"] });
    let named = json!({ "channel": "match:named", "data": payload, "event": "match:created" });
    assert_eq!(common::result(&native.request("publish", named).await)["offset"], 1);
    server.publish("match:named", json!("unnamed")).await;
    let published = driver.request("v4", "publish", json!({ "channel": "match:named", "data": 3, "event": "match:created" })).await;
    assert_eq!(published["offset"], 3, "the Socket.IO publish takes an event name: {published}");
    let refused = driver.request("v4", "publish", json!({ "channel": "match:named", "data": 4, "event": "subscribed" })).await;
    assert_eq!(refused["error"]["code"], 107, "a reserved name is refused: {refused}");
    for name in ["v4", "v3"] {
        let first = driver.wait_for(|line| line["name"] == name && line["listened"] == "match:created").await;
        assert_eq!(first["args"][0], payload, "{name}: socket.on(name, data) gets the app's payload");
        let unnamed_data = driver.wait_for_publications(name, "match:named", 1).await;
        assert_eq!(unnamed_data, [json!("unnamed")], "{name}: an unnamed publication stays a `publication` event");
        let unnamed = driver.seen.iter().find(|l| l["name"] == name && l["event"] == "publication").expect("publication").clone();
        let epoch = unnamed["args"][0]["epoch"].as_str().expect("epoch").to_string();
        assert_eq!(first["args"][1], format!("match:named={epoch}:1"), "{name}: the resume position is the last argument");
        let third = driver.wait_for(|l| l["name"] == name && l["listened"] == "match:created" && l["args"][0] == 3).await;
        assert_eq!(third["args"][1], format!("match:named={epoch}:3"));
    }
    driver.exit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_handshake_reaches_the_client_as_connect_error() {
    let Some(mut driver) = Driver::start().await else { return };
    let server = TestServer::start_with(|c| c.allow_anonymous = false).await;
    driver.open("forged", &url(&server), json!({ "auth": { "token": "not.a.jwt" }, "reconnection": false }), 4).await;
    driver.open("none", &url(&server), json!({ "reconnection": false }), 4).await;
    let forged = driver.wait_for(|line| line["name"] == "forged" && line["event"] == "connect_error").await;
    assert!(forged["message"].as_str().is_some_and(|m| m.starts_with("unauthorized")), "{forged}");
    assert_eq!(forged["data"]["code"], 101);
    let none = driver.wait_for(|line| line["name"] == "none" && line["event"] == "connect_error").await;
    assert_eq!(none["message"], "unauthorized: this server needs a token");
    // A mistyped auth object is refused, never taken for anonymous.
    driver.open("mistyped", &url(&server), json!({ "auth": { "token": 5 }, "reconnection": false }), 4).await;
    let mistyped = driver.wait_for(|line| line["name"] == "mistyped" && line["event"] == "connect_error").await;
    assert_eq!(mistyped["data"]["code"], 107, "{mistyped}");
    let expired = server.server.state.auth.mint("kim", &[Role::Staff], 0).expect("mint");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    driver.open("expired", &url(&server), json!({ "auth": { "token": expired }, "reconnection": false }), 4).await;
    let expired = driver.wait_for(|line| line["name"] == "expired" && line["event"] == "connect_error").await;
    assert_eq!((expired["message"].as_str(), expired["data"]["code"].as_u64()), (Some("token expired"), Some(109)));
    driver.exit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_checked_like_native_commands() {
    let Some(mut driver) = Driver::start().await else { return };
    let server = TestServer::start().await;
    let spectator = server.token("sam", &[Role::Spectator]);
    driver.open("a", &url(&server), json!({ "auth": { "token": spectator } }), 4).await;
    driver.wait_for(|line| line["name"] == "a" && line["event"] == "connect").await;
    let refused = driver.request("a", "publish", json!({ "channel": "match:x", "data": 1 })).await;
    assert_eq!(refused["error"]["code"], 103, "a spectator may not publish: {refused}");
    let unknown = driver.request("a", "launch", json!({})).await;
    assert_eq!(unknown["error"]["code"], 104, "{unknown}");
    let malformed = driver.request("a", "subscribe", json!({ "channel": 42 })).await;
    assert_eq!(malformed["error"]["code"], 107, "{malformed}");
    let array = driver.request("a", "subscribe", json!(["match:x"])).await;
    assert_eq!(array["error"]["code"], 107, "an array where an object is documented: {array}");
    assert!(array["error"]["message"].as_str().is_some_and(|m| m.contains("invalid type: sequence, expected a JSON object")), "{array}");
    let array = driver.request("a", "publish", json!(["match:x", 1])).await;
    assert_eq!(array["error"]["code"], 107, "{array}");
    let no_namespace = driver.request("a", "subscribe", json!({ "channel": "nowhere:1" })).await;
    assert_eq!(no_namespace["error"]["code"], 102, "{no_namespace}");
    // Without an ack, the error arrives as an `error` event naming the event.
    driver.send(json!({ "cmd": "emit", "name": "a", "event": "unsubscribe", "args": [{ "channel": "match:x" }] })).await;
    let error = driver.wait_for(|line| line["name"] == "a" && line["event"] == "error").await;
    assert_eq!((error["args"][0]["code"].as_u64(), error["args"][0]["event"].as_str()), (Some(106), Some("unsubscribe")));
    // The socket is still served.
    let subscribed = driver.request("a", "subscribe", json!({ "channel": "match:x" })).await;
    assert_eq!(subscribed["offset"], 0, "{subscribed}");
    driver.exit().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_across_a_server_restart_with_nothing_missed() {
    let Some(mut driver) = Driver::start().await else { return };
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let server = TestServer::start_with(|c| {
        c.listen = SocketAddr::from(([127, 0, 0, 1], port));
        // A live-only namespace: its channels have no epoch and are followed again live.
        c.namespaces.insert("ticker".into(), courtside_core::NamespaceOptions { history_size: 0, ..Default::default() });
    })
    .await;
    let config = server.config.clone();
    let token = server.token("kim", &[Role::Staff]);
    for (name, transports) in [("ws", json!(["websocket"])), ("poll", json!(["polling"]))] {
        driver.open(name, &url(&server), json!({ "auth": { "token": token }, "transports": transports }), 4).await;
        driver.wait_for(|line| line["name"] == name && line["event"] == "connect").await;
        driver.request(name, "subscribe", json!({ "channel": "match:restart" })).await;
    }
    // A socket that subscribes (with an ack), follows a live-only channel, drops a channel, and
    // receives no publication before the restart: its position still names what it follows.
    driver.open("quiet", &url(&server), json!({ "auth": { "token": token } }), 4).await;
    driver.wait_for(|line| line["name"] == "quiet" && line["event"] == "connect").await;
    for channel in ["match:quiet", "ticker:1", "match:dropped"] {
        driver.request("quiet", "subscribe", json!({ "channel": channel })).await;
    }
    driver.request("quiet", "unsubscribe", json!({ "channel": "match:dropped" })).await;
    driver.wait_for(|line| line["name"] == "quiet" && line["event"] == "unsubscribed").await;
    for n in 1..=3 {
        server.publish("match:restart", json!({ "n": n })).await;
    }
    for name in ["ws", "poll"] {
        driver.wait_for_publications(name, "match:restart", 3).await;
    }
    server.server.shutdown();
    server.server.stopped().await;
    let server = TestServer::start_config(config).await;
    // Published before the clients are back: they must get these from the store.
    for n in 4..=6 {
        server.publish("match:restart", json!({ "n": n })).await;
    }
    let expected: Vec<Value> = (1..=8).map(|n| json!({ "n": n })).collect();
    for name in ["ws", "poll"] {
        let recovered = driver.wait_for(|line| line["name"] == name && line["event"] == "connect" && line["recovered"] == true).await;
        assert_eq!(recovered["recovered"], true, "socket.io-client reports the recovery");
    }
    for n in 7..=8 {
        server.publish("match:restart", json!({ "n": n })).await;
    }
    for name in ["ws", "poll"] {
        assert_eq!(driver.wait_for_publications(name, "match:restart", 8).await, expected, "{name}: 1–8, once each, in order");
    }
    driver.wait_for(|line| line["name"] == "quiet" && line["event"] == "connect" && line["recovered"] == true).await;
    // An app that subscribes again on `connect` gets the current position, not an error.
    let again = driver.request("quiet", "subscribe", json!({ "channel": "match:quiet" })).await;
    assert!(again.get("error").is_none() && again["channel"] == "match:quiet", "{again}");
    server.publish("match:quiet", json!({ "q": 1 })).await;
    server.publish("ticker:1", json!({ "t": 1 })).await;
    server.publish("match:dropped", json!({ "d": 1 })).await;
    assert_eq!(driver.wait_for_publications("quiet", "match:quiet", 1).await, vec![json!({ "q": 1 })]);
    assert_eq!(driver.wait_for_publications("quiet", "ticker:1", 1).await, vec![json!({ "t": 1 })]);
    server.publish("match:quiet", json!({ "q": 2 })).await;
    driver.wait_for_publications("quiet", "match:quiet", 2).await;
    assert!(driver.publications("quiet", "match:dropped").is_empty(), "an unsubscribed channel stays dropped");
    let notice = driver.seen.iter().find(|line| line["event"] == "courtside:disconnect").expect("a shutdown notice");
    assert_eq!((notice["args"][0]["code"].as_u64(), notice["args"][0]["reconnect"].as_bool()), (Some(3000), Some(true)));
    tokio::time::sleep(Duration::from_millis(300)).await;
    for name in ["ws", "poll"] {
        assert_eq!(driver.publications(name, "match:restart").len(), 8, "{name}: nothing repeated");
    }
    driver.exit().await;
}

/// Raw Engine.IO over HTTP: what a broken or hostile client gets.
#[tokio::test]
async fn malformed_engine_io_requests_get_documented_errors() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let get = |query: &str| http.get(server.http(&format!("/socket.io/?{query}"))).send();
    let error = |response: reqwest::Response| async move { (response.status().as_u16(), response.json::<Value>().await.expect("JSON")) };
    assert_eq!(error(get("EIO=3&transport=polling").await.expect("get")).await, (400, json!({ "code": 5, "message": "Unsupported protocol version" })));
    assert_eq!(error(get("EIO=4&transport=carrier-pigeon").await.expect("get")).await, (400, json!({ "code": 0, "message": "Transport unknown" })));
    assert_eq!(error(get("EIO=4&transport=polling&sid=nope").await.expect("get")).await, (400, json!({ "code": 1, "message": "Session ID unknown" })));

    // A real session, then garbage posted into it: refused, and the session ends.
    let open = get("EIO=4&transport=polling").await.expect("handshake").text().await.expect("text");
    let handshake: Value = serde_json::from_str(open.strip_prefix('0').expect("an open packet")).expect("JSON");
    let sid = handshake["sid"].as_str().expect("sid").to_string();
    assert_eq!(handshake["upgrades"], json!(["websocket"]));
    let post = |body: &'static str| http.post(server.http(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"))).body(body).send();
    assert_eq!(post("40").await.expect("post").text().await.expect("text"), "ok");
    let connected = get(&format!("EIO=4&transport=polling&sid={sid}")).await.expect("poll").text().await.expect("text");
    assert!(connected.starts_with("40{\"sid\":"), "{connected}");
    assert_eq!(post("4\u{1e}x").await.expect("post").status().as_u16(), 400, "an unknown packet type is refused");
    // The session has ended: a poll gets the close packet, or, once it is forgotten, code 1.
    let after = get(&format!("EIO=4&transport=polling&sid={sid}")).await.expect("poll");
    let status = after.status().as_u16();
    let body = after.text().await.expect("text");
    assert!((status, body.as_str()) == (200, "1") || (status == 400 && body.contains("Session ID unknown")), "{status} {body}");

    // A body over maxPayload: 413.
    let open = get("EIO=4&transport=polling").await.expect("handshake").text().await.expect("text");
    let sid: String = serde_json::from_str::<Value>(&open[1..]).expect("JSON")["sid"].as_str().expect("sid").into();
    let huge = format!("42[\"publish\",\"{}\"]", "x".repeat(server.config.client.message_bytes_max));
    let response = http.post(server.http(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"))).body(huge).send().await.expect("post");
    assert_eq!(response.status().as_u16(), 413);

    // The server keeps serving everyone else.
    let health = http.get(server.http("/health")).send().await.expect("health");
    assert_eq!(health.status().as_u16(), 200);
}

/// Two nodes on one PostgreSQL and one Redis: Socket.IO sockets on node A get what is published
/// on node B (through Courtside's own broker; no Socket.IO adapter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_on_one_node_receives_what_another_node_publishes() {
    let Some(database) = courtside_testkit::postgres::fresh_database().await else { return };
    let redis = std::env::var("COURTSIDE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let redis_address = redis.trim_start_matches("redis://").trim_end_matches('/').to_string();
    if tokio::net::TcpStream::connect(&redis_address).await.is_err() {
        courtside_testkit::skip_or_fail(&format!("Redis not reachable at {redis}; set COURTSIDE_TEST_REDIS_URL"));
        return;
    }
    let Some(mut driver) = Driver::start().await else { return };
    let prefix = format!("sio-{}-{}", std::process::id(), database.name);
    let cluster = |c: &mut courtside_server::Config| {
        c.store = database.url.clone();
        c.broker = redis.clone();
        c.redis_prefix = prefix.clone();
    };
    let node_a = TestServer::start_with(cluster).await;
    let node_b = node_a.start_peer(cluster).await;
    let token = node_a.token("kim", &[Role::Staff]);
    for (name, transports) in [("a-ws", json!(["websocket"])), ("a-poll", json!(["polling"]))] {
        driver.open(name, &url(&node_a), json!({ "auth": { "token": token }, "transports": transports }), 4).await;
        driver.wait_for(|line| line["name"] == name && line["event"] == "connect").await;
        driver.request(name, "subscribe", json!({ "channel": "match:nodes" })).await;
    }
    driver.open("b", &url(&node_b), json!({ "auth": { "token": token } }), 4).await;
    driver.wait_for(|line| line["name"] == "b" && line["event"] == "connect").await;
    for n in 1..=3 {
        let published = driver.request("b", "publish", json!({ "channel": "match:nodes", "data": { "n": n } })).await;
        assert_eq!(published["offset"], n, "stored in the shared store: {published}");
    }
    node_b.publish("match:nodes", json!({ "n": 4 })).await;
    let expected: Vec<Value> = (1..=4).map(|n| json!({ "n": n })).collect();
    for name in ["a-ws", "a-poll"] {
        assert_eq!(driver.wait_for_publications(name, "match:nodes", 4).await, expected, "{name}: node B's publications, in order, once");
    }
    driver.exit().await;
}
