//! Test kit: starts a real server on an ephemeral port with its own data directory, and talks
//! to it as a client would (WebSocket protocol v1, HTTP).
#![allow(dead_code)]

pub mod socketio;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use courtside_core::Role;
use courtside_server::{Config, RunningServer};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub const TIMEOUT: Duration = Duration::from_secs(10);

static NEXT_DIR: AtomicU64 = AtomicU64::new(0);

pub fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "courtside-test-{label}-{}-{}",
        std::process::id(),
        NEXT_DIR.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

pub struct TestServer {
    pub server: RunningServer,
    pub config: Config,
}

impl TestServer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config { data_dir: temp_dir("server"), ..Config::default() };
        config.listen = "127.0.0.1:0".parse().expect("addr");
        adjust(&mut config);
        Self::start_config(config).await
    }

    pub async fn start_config(config: Config) -> Self {
        let server = courtside_server::start(config.clone()).await.expect("server starts");
        Self { server, config }
    }

    /// Another node of this one's cluster: `adjust`ed like it, with its token key and data
    /// directory (so its API key too).
    pub async fn start_peer(&self, adjust: impl FnOnce(&mut Config)) -> Self {
        let (jwt_secret, data_dir) = (self.config.auth.jwt_secret.clone(), self.config.data_dir.clone());
        Self::start_with(|c| {
            adjust(c);
            c.auth.jwt_secret = jwt_secret;
            c.data_dir = data_dir;
        })
        .await
    }

    /// Stops this server and starts a new one on the same data directory.
    pub async fn restart(self) -> Self {
        let config = self.config.clone();
        self.server.shutdown();
        self.server.stopped().await;
        let mut config = config;
        config.listen = "127.0.0.1:0".parse().expect("addr");
        Self::start_config(config).await
    }

    pub fn http(&self, path: &str) -> String {
        format!("http://{}{}", self.server.addr, path)
    }

    pub fn token(&self, sub: &str, roles: &[Role]) -> String {
        self.server.state.auth.mint(sub, roles, 3600).expect("mint")
    }

    pub fn api_key(&self) -> String {
        self.server.state.auth.api_key().to_string()
    }

    pub async fn client(&self) -> Client {
        Client::open(&format!("ws://{}/ws", self.server.addr)).await
    }

    /// A client connected with a token for `sub` with `roles` (anonymous when `roles` is empty
    /// and `sub` is empty).
    pub async fn connected(&self, sub: &str, roles: &[Role]) -> Client {
        let mut client = self.client().await;
        let token = (!sub.is_empty()).then(|| self.token(sub, roles));
        let reply = client.request("connect", json!({ "token": token })).await;
        assert!(reply.get("result").is_some(), "connect failed: {reply}");
        client
    }

    /// Publishes through the HTTP API with the server key; returns the reply body.
    pub async fn publish(&self, channel: &str, data: Value) -> Value {
        let response = reqwest::Client::new()
            .post(self.http("/api/publish"))
            .header("authorization", format!("apikey {}", self.api_key()))
            .json(&json!({ "channel": channel, "data": data }))
            .send()
            .await
            .expect("publish request");
        assert!(response.status().is_success(), "publish failed: {}", response.status());
        response.json().await.expect("json")
    }

    /// Sends a JSON `POST` (with an `Authorization` header when given); the status and the
    /// JSON body.
    pub async fn post(&self, path: &str, auth: Option<&str>, body: Value) -> (u16, Value) {
        self.request_json(reqwest::Client::new().post(self.http(path)).json(&body), auth).await
    }

    /// Sends `body` as it is, as JSON, with the server key; the status.
    pub async fn post_raw(&self, path: &str, body: String) -> u16 {
        let response = reqwest::Client::new()
            .post(self.http(path))
            .header("authorization", format!("apikey {}", self.api_key()))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        response.status().as_u16()
    }

    pub async fn get(&self, path: &str, auth: Option<&str>) -> (u16, Value) {
        self.request_json(reqwest::Client::new().get(self.http(path)), auth).await
    }

    async fn request_json(&self, mut request: reqwest::RequestBuilder, auth: Option<&str>) -> (u16, Value) {
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        (status, response.json().await.expect("JSON body"))
    }

    pub async fn metric(&self, name: &str) -> f64 {
        let text = reqwest::get(self.http("/metrics")).await.expect("metrics").text().await.expect("text");
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{', ',']))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }
}

/// How a connection ended, as the client saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    /// The code of the `disconnect` push, if one arrived.
    pub push_code: Option<u64>,
    /// The code of the close frame, if one arrived.
    pub close_code: Option<u16>,
}

pub struct Client {
    socket: WebSocketStream<MaybeTlsStream<TcpStream>>,
    frames: VecDeque<Value>,
    next_id: u64,
}

impl Client {
    pub async fn open(url: &str) -> Self {
        let (socket, _) = tokio_tungstenite::connect_async(url).await.expect("websocket connects");
        Self { socket, frames: VecDeque::new(), next_id: 1 }
    }

    /// A client over `wss://`, trusting what `tls` trusts.
    pub async fn open_tls(url: &str, tls: std::sync::Arc<rustls::ClientConfig>) -> Self {
        let connector = tokio_tungstenite::Connector::Rustls(tls);
        let (socket, _) = tokio_tungstenite::connect_async_tls_with_config(url, None, false, Some(connector))
            .await
            .expect("websocket connects over TLS");
        Self { socket, frames: VecDeque::new(), next_id: 1 }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.socket.send(Message::text(text)).await.expect("send");
    }

    pub async fn send_message(&mut self, message: Message) {
        self.socket.send(message).await.expect("send");
    }

    /// Sends one command and returns its reply, keeping pushes that arrive meanwhile.
    pub async fn request(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send_text(&json!({ "id": id, method: params }).to_string()).await;
        self.reply(id).await
    }

    /// Waits for the reply with `id`, keeping other frames for later.
    pub async fn reply(&mut self, id: u64) -> Value {
        let mut kept = VecDeque::new();
        loop {
            let frame = self.next_frame().await.unwrap_or_else(|| panic!("connection ended before reply {id}"));
            if frame["id"] == id {
                kept.extend(self.frames.drain(..));
                self.frames = kept;
                return frame;
            }
            kept.push_back(frame);
        }
    }

    /// The next frame (reply or push), or `None` if the connection ended.
    pub async fn next_frame(&mut self) -> Option<Value> {
        if let Some(frame) = self.frames.pop_front() {
            return Some(frame);
        }
        loop {
            let message = tokio::time::timeout(TIMEOUT, self.socket.next()).await.expect("frame within timeout")?;
            match message {
                Ok(Message::Text(text)) => {
                    for line in text.as_str().split('\n').filter(|l| !l.is_empty()) {
                        self.frames.push_back(serde_json::from_str(line).expect("server frames are JSON"));
                    }
                    if let Some(frame) = self.frames.pop_front() {
                        return Some(frame);
                    }
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// The frames of the next WebSocket message, as sent (several frames may share a message).
    pub async fn next_message(&mut self) -> Vec<Value> {
        assert!(self.frames.is_empty(), "frames already read are pending");
        loop {
            let message = tokio::time::timeout(TIMEOUT, self.socket.next()).await.expect("message within timeout");
            if let Some(Ok(Message::Text(text))) = message {
                return text.as_str().split('\n').map(|l| serde_json::from_str(l).expect("JSON")).collect();
            }
        }
    }

    /// The next publication push on any channel.
    pub async fn next_publication(&mut self) -> Value {
        loop {
            let frame = self.next_frame().await.expect("connection open");
            if let Some(publication) = frame["push"].get("pub") {
                let mut publication = publication.clone();
                publication["channel"] = frame["push"]["channel"].clone();
                return publication;
            }
        }
    }

    /// Reads until the server closes; reports the disconnect push and close frame codes.
    pub async fn closed(mut self) -> Closed {
        let mut closed = Closed { push_code: None, close_code: None };
        for frame in self.frames.drain(..) {
            if let Some(code) = frame["push"]["disconnect"]["code"].as_u64() {
                closed.push_code = Some(code);
            }
        }
        loop {
            match tokio::time::timeout(TIMEOUT, self.socket.next()).await.expect("close within timeout") {
                Some(Ok(Message::Text(text))) => {
                    for line in text.as_str().split('\n').filter(|l| !l.is_empty()) {
                        let frame: Value = serde_json::from_str(line).expect("JSON");
                        if let Some(code) = frame["push"]["disconnect"]["code"].as_u64() {
                            closed.push_code = Some(code);
                        }
                    }
                }
                Some(Ok(Message::Close(frame))) => {
                    closed.close_code = frame.map(|f| u16::from(f.code));
                    return closed;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) => return closed,
                None => return closed,
            }
        }
    }
}

/// The `result` of a reply, failing the test on an error reply.
pub fn result(reply: &Value) -> &Value {
    assert!(reply.get("error").is_none(), "unexpected error reply: {reply}");
    &reply["result"]
}

/// The error code of a reply, failing the test on a success.
pub fn error_code(reply: &Value) -> u64 {
    reply["error"]["code"].as_u64().unwrap_or_else(|| panic!("expected an error reply, got {reply}"))
}

pub fn offsets(publications: &Value) -> Vec<u64> {
    publications.as_array().map(|a| a.iter().filter_map(|p| p["offset"].as_u64()).collect()).unwrap_or_default()
}
