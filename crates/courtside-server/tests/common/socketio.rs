//! A Socket.IO client speaking Engine.IO 4 long-polling directly over HTTP (no Node): enough for
//! CONNECT, events and acks, for tests that check the Socket.IO transport next to the others.

use serde_json::{Value, json};

use super::TestServer;

/// A Socket.IO client speaking Engine.IO long-polling directly: enough for connect and acks.
pub struct SocketIo {
    http: reqwest::Client,
    url: String,
    acks: u64,
    /// Packets of a poll not taken yet.
    pending: std::collections::VecDeque<String>,
}

impl SocketIo {
    /// A socket connected with `token` (none: anonymous); panics if the CONNECT is refused.
    pub async fn open(server: &TestServer, token: Option<&str>) -> Self {
        let (socket, connected) = Self::try_open(server, token).await;
        assert!(connected.starts_with("0{"), "CONNECT accepted: {connected}");
        socket
    }

    /// An Engine.IO session and the answer to its CONNECT with `token`: `0{…}` when accepted,
    /// `4{…}` (CONNECT_ERROR with its message and data) when refused.
    pub async fn try_open(server: &TestServer, token: Option<&str>) -> (Self, String) {
        let http = reqwest::Client::new();
        let handshake = http.get(server.http("/socket.io/?EIO=4&transport=polling")).send().await.expect("handshake");
        let text = handshake.text().await.expect("open packet");
        let open: Value = serde_json::from_str(text.strip_prefix('0').expect("an open packet")).expect("JSON");
        let sid = open["sid"].as_str().expect("sid");
        let url = server.http(&format!("/socket.io/?EIO=4&transport=polling&sid={sid}"));
        let mut socket = Self { http, url, acks: 0, pending: Default::default() };
        socket.post(&format!("40{}", json!({ "token": token }))).await;
        let connected = socket.next_packet().await;
        (socket, connected)
    }

    /// Closes the Engine.IO session (a CLOSE packet), as a client leaving does.
    pub async fn close(self) {
        self.post("1").await;
    }

    pub async fn post(&self, packet: &str) {
        let status = self.http.post(&self.url).body(packet.to_string()).send().await.expect("post").status();
        assert!(status.is_success(), "POST {packet}: {status}");
    }

    /// The next Socket.IO packet (pings answered, several packets of one poll taken in order).
    pub async fn next_packet(&mut self) -> String {
        loop {
            if let Some(message) = self.pending.pop_front() {
                return message;
            }
            let body = self.http.get(&self.url).send().await.expect("poll").text().await.expect("body");
            for packet in body.split('\u{1e}') {
                if packet == "2" {
                    self.post("3").await;
                } else if let Some(message) = packet.strip_prefix('4') {
                    self.pending.push_back(message.to_string());
                }
            }
        }
    }

    /// Emits `subscribe` with an ack; the ack's argument.
    pub async fn subscribe(&mut self, channel: &str) -> Value {
        self.emit_with_ack("subscribe", json!({ "channel": channel })).await
    }

    /// The arguments of the next event named `name` (others skipped).
    pub async fn next_event(&mut self, name: &str) -> Value {
        loop {
            let packet = self.next_packet().await;
            if let Some(event) = packet.strip_prefix('2') {
                let mut arguments: Value = serde_json::from_str(event).expect("event JSON");
                if arguments[0] == name {
                    arguments.as_array_mut().expect("an array").remove(0);
                    return arguments;
                }
            }
        }
    }

    /// Emits `event` with `argument` and an ack; the ack's argument.
    pub async fn emit_with_ack(&mut self, event: &str, argument: Value) -> Value {
        self.acks += 1;
        let id = self.acks;
        self.post(&format!("42{id}{}", json!([event, argument]))).await;
        loop {
            let packet = self.next_packet().await;
            if let Some(ack) = packet.strip_prefix(&format!("3{id}")) {
                let arguments: Value = serde_json::from_str(ack).expect("ack JSON");
                return arguments[0].clone();
            }
        }
    }
}
