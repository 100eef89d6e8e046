//! Engine.IO 4 sessions and their two transports: HTTP long-polling and WebSocket, with the
//! upgrade from the first to the second.
//!
//! A session is a queue of outgoing packets plus a channel of incoming messages; whichever
//! transport the client uses right now moves packets between them and the network. One task per
//! session (the Socket.IO socket, [`super::socket`]) owns everything else: it reads the incoming
//! messages, writes outgoing packets with [`EngineSession::send`], and runs the heartbeat.
//!
//! - **Polling.** `GET` without `sid` opens a session (the handshake); `GET` with `sid` waits until
//!   packets are queued and answers them joined by `\x1e` (one poll at a time); `POST` carries the
//!   client's packets.
//! - **WebSocket.** Without `sid` the session starts on the WebSocket (the handshake is its first
//!   message). With the `sid` of a polling session it is an upgrade: `2probe` → `3probe`, a noop
//!   releases the pending poll, then `5` moves the session onto the WebSocket for good.
//!
//! Errors answer as Engine.IO servers do: HTTP 400 with `{"code":…,"message":…}` (0 unknown
//! transport, 1 unknown session id, 2 bad handshake method, 3 bad request, 5 unsupported
//! protocol version), 413 for a body over `maxPayload`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use super::eio::{EioPacket, PAYLOAD_SEPARATOR};
use crate::protocol::Disconnect;
use crate::transport::ws::{answer_close, classify_read_error, send_close_frame};

/// Messages the client may have sent but the socket task has not read yet, per session.
const INCOMING_QUEUE_LEN: usize = 64;

/// What a transport hands to the session's task.
#[derive(Debug)]
pub enum Incoming {
    /// An Engine.IO message: a Socket.IO packet's text.
    Message(String),
    /// The answer to the server's ping.
    Pong,
}

/// Why the outgoing queue refused a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendError {
    /// More than the queue's byte bound is waiting for the client: a slow consumer.
    Full,
    /// The session has ended.
    Closed,
}

struct Outgoing {
    /// Shared, immutable text: a publication's frame is one allocation for every socket that
    /// sends it as it is.
    packets: Vec<Utf8Bytes>,
    bytes: usize,
    /// Once upgraded (or started there), packets leave through the WebSocket.
    over_websocket: bool,
}

/// One Engine.IO session: shared by its transports and its socket task.
pub struct EngineSession {
    pub sid: Arc<str>,
    outgoing: Mutex<Outgoing>,
    bytes_max: usize,
    /// Woken when packets are queued or the session closes.
    ready: Notify,
    incoming: mpsc::Sender<Incoming>,
    poll_busy: AtomicBool,
    /// A WebSocket has claimed the session (an upgrade under way or done): no second one may.
    websocket_claimed: AtomicBool,
    /// Cancelled when the session ends, by either side.
    pub closed: CancellationToken,
}

impl EngineSession {
    /// Queues one packet for the client. Fails when the queue holds more than its byte bound (a
    /// slow consumer: the caller closes the session) or the session has ended.
    pub fn send(&self, packet: impl Into<Utf8Bytes>) -> Result<(), SendError> {
        self.queue(packet)?;
        self.wake();
        Ok(())
    }

    /// Queues one packet as [`EngineSession::send`] does, without waking the transport: a
    /// caller that queues several wakes it once ([`EngineSession::wake`]), so they leave
    /// together (one write for the lot on a WebSocket).
    pub fn queue(&self, packet: impl Into<Utf8Bytes>) -> Result<(), SendError> {
        let packet = packet.into();
        if self.closed.is_cancelled() {
            return Err(SendError::Closed);
        }
        let mut outgoing = self.outgoing.lock();
        if outgoing.bytes > 0 && outgoing.bytes + packet.len() > self.bytes_max {
            return Err(SendError::Full);
        }
        outgoing.bytes += packet.len();
        outgoing.packets.push(packet);
        Ok(())
    }

    /// Wakes the transport waiting for queued packets.
    pub fn wake(&self) {
        self.ready.notify_waiters();
    }

    /// Ends the session: pending and future transports see it closed.
    pub fn close(&self) {
        self.closed.cancel();
        self.ready.notify_waiters();
    }

    /// Takes queued packets for one polling answer: at least one, then as many as fit in
    /// `max_payload` bytes.
    fn take_payload(&self, max_payload: usize) -> Option<String> {
        let mut outgoing = self.outgoing.lock();
        if outgoing.packets.is_empty() {
            return None;
        }
        let mut taken = 0;
        let mut size = 0;
        for packet in &outgoing.packets {
            let added = packet.len() + usize::from(taken > 0);
            if taken > 0 && size + added > max_payload {
                break;
            }
            size += added;
            taken += 1;
        }
        let mut body = String::with_capacity(size);
        let mut removed = 0;
        for (index, packet) in outgoing.packets.drain(..taken).enumerate() {
            if index > 0 {
                body.push(PAYLOAD_SEPARATOR);
            }
            body.push_str(&packet);
            removed += packet.len();
        }
        outgoing.bytes -= removed;
        Some(body)
    }

    /// Waits until the client has taken every queued packet (a poll or the WebSocket wrote
    /// them), or `limit` passed: a closing socket's last packets get their chance to leave.
    pub async fn drained(&self, limit: std::time::Duration) {
        let _ = tokio::time::timeout(limit, async {
            loop {
                let notified = self.ready.notified();
                if self.outgoing.lock().packets.is_empty() {
                    return;
                }
                // Woken by the next send; a taker empties the queue without notifying, so look
                // again shortly.
                let _ = tokio::time::timeout(std::time::Duration::from_millis(20), notified).await;
            }
        })
        .await;
    }

    /// Claims the session for a WebSocket; `false` if one already has it.
    pub fn claim_websocket(&self) -> bool {
        !self.websocket_claimed.swap(true, Ordering::AcqRel)
    }

    fn take_all(&self) -> Vec<Utf8Bytes> {
        let mut outgoing = self.outgoing.lock();
        outgoing.bytes = 0;
        std::mem::take(&mut outgoing.packets)
    }
}

/// The open sessions of this node.
#[derive(Default)]
pub struct Engine {
    sessions: Mutex<HashMap<Arc<str>, Arc<EngineSession>>>,
}

/// How the endpoint answers a request it refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineError {
    UnknownTransport,
    UnknownSid,
    BadHandshakeMethod,
    BadRequest,
    UnsupportedProtocolVersion,
    PayloadTooLarge,
}

impl EngineError {
    /// Engine.IO's error code and message.
    pub fn code_and_message(self) -> (u8, &'static str) {
        match self {
            EngineError::UnknownTransport => (0, "Transport unknown"),
            EngineError::UnknownSid => (1, "Session ID unknown"),
            EngineError::BadHandshakeMethod => (2, "Bad handshake method"),
            EngineError::BadRequest | EngineError::PayloadTooLarge => (3, "Bad request"),
            EngineError::UnsupportedProtocolVersion => (5, "Unsupported protocol version"),
        }
    }
}

impl Engine {
    /// Opens a session; the receiver is the socket task's end of the incoming messages.
    pub fn open(&self, over_websocket: bool, bytes_max: usize) -> (Arc<EngineSession>, mpsc::Receiver<Incoming>) {
        let (incoming, received) = mpsc::channel(INCOMING_QUEUE_LEN);
        let session = Arc::new(EngineSession {
            sid: Arc::from(random_id().as_str()),
            outgoing: Mutex::new(Outgoing { packets: Vec::new(), bytes: 0, over_websocket }),
            bytes_max,
            ready: Notify::new(),
            incoming,
            poll_busy: AtomicBool::new(false),
            websocket_claimed: AtomicBool::new(over_websocket),
            closed: CancellationToken::new(),
        });
        self.sessions.lock().insert(session.sid.clone(), session.clone());
        (session, received)
    }

    pub fn get(&self, sid: &str) -> Option<Arc<EngineSession>> {
        self.sessions.lock().get(sid).cloned()
    }

    /// Forgets a session (its task ended).
    pub fn remove(&self, sid: &str) {
        self.sessions.lock().remove(sid);
    }
}

/// 20 random characters of `[0-9a-z]`: a session id, or a socket's private id.
pub fn random_id() -> String {
    use rand::Rng;
    let mut rng = rand::rng();
    (0..20).map(|_| char::from_digit(rng.random_range(0..36), 36).unwrap_or('0')).collect()
}

/// A long-poll: answers the packets queued now, or waits until some are (or the session ends).
/// Only one poll may wait per session; a second one is a protocol error that ends the session.
pub async fn poll(session: &EngineSession, max_payload: usize) -> Result<String, EngineError> {
    if session.poll_busy.swap(true, Ordering::AcqRel) {
        session.close();
        return Err(EngineError::BadRequest);
    }
    // Cleared however the poll ends, also when the client aborts it and the handler is dropped.
    struct PollGuard<'a>(&'a AtomicBool);
    impl Drop for PollGuard<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::Release);
        }
    }
    let _guard = PollGuard(&session.poll_busy);
    let answer = loop {
        let notified = session.ready.notified();
        if session.outgoing.lock().over_websocket {
            // Upgraded while this poll waited: release it (the client ignores the noop).
            break EioPacket::Noop.to_string();
        }
        if let Some(body) = session.take_payload(max_payload) {
            break body;
        }
        if session.closed.is_cancelled() {
            break EioPacket::Close.to_string();
        }
        notified.await;
    };
    Ok(answer)
}

/// A polling `POST`: hands the body's packets to the session's task.
pub async fn receive_payload(session: &EngineSession, body: &str) -> Result<(), EngineError> {
    let packets = super::eio::decode_payload(body).map_err(|_| {
        session.close();
        EngineError::BadRequest
    })?;
    for packet in packets {
        if !forward(session, packet).await {
            break;
        }
    }
    Ok(())
}

/// Hands one client packet to the session's task; `false` once the session has ended.
async fn forward(session: &EngineSession, packet: EioPacket<'_>) -> bool {
    let incoming = match packet {
        EioPacket::Message(text) => Incoming::Message(text.to_string()),
        EioPacket::Pong(_) => Incoming::Pong,
        EioPacket::Close => {
            session.close();
            return false;
        }
        // A client's ping (only `2probe` is meaningful, on the WebSocket), upgrade and noop carry
        // nothing for the socket.
        EioPacket::Ping(_) | EioPacket::Upgrade | EioPacket::Noop | EioPacket::Open(_) => return true,
    };
    tokio::select! {
        sent = session.incoming.send(incoming) => sent.is_ok(),
        _ = session.closed.cancelled() => false,
    }
}

/// Runs a session's WebSocket: first, for an upgrade, the probe and the switch; then every
/// queued packet out as one text frame each (flushed together), every frame in as a packet.
pub async fn run_websocket(mut socket: WebSocket, session: Arc<EngineSession>, upgrading: bool, message_bytes_max: usize) {
    if upgrading && !upgrade(&mut socket, &session).await {
        return;
    }
    loop {
        let notified = session.ready.notified();
        let packets = session.take_all();
        if !packets.is_empty() {
            // A peer that stopped reading must not hold the task: the write has a deadline.
            let written = tokio::time::timeout(WRITE_TIMEOUT, async {
                for packet in packets {
                    socket.feed(Message::Text(packet)).await?;
                }
                socket.flush().await
            })
            .await;
            if !matches!(written, Ok(Ok(()))) {
                session.close();
                return;
            }
        }
        if session.closed.is_cancelled() {
            let _ = socket.send(Message::Close(None)).await;
            return;
        }
        tokio::select! {
            _ = notified => {}
            message = socket.recv() => {
                let text = match message {
                    Some(Ok(Message::Text(text))) if text.len() <= message_bytes_max => text,
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                    // A client's close is answered; a WebSocket protocol violation is closed
                    // with 1002 (RFC 6455). Either ends the session, as does binary, oversize
                    // or a broken connection.
                    Some(Ok(Message::Close(_))) => {
                        session.close();
                        answer_close(&mut socket).await;
                        return;
                    }
                    Some(Err(error)) if classify_read_error(&error) == Some(Disconnect::ProtocolError) => {
                        session.close();
                        send_close_frame(&mut socket, Disconnect::ProtocolError).await;
                        return;
                    }
                    _ => {
                        session.close();
                        return;
                    }
                };
                match EioPacket::decode(text.as_str()) {
                    Ok(packet) => {
                        if !forward(&session, packet).await {
                            let _ = socket.send(Message::Close(None)).await;
                            return;
                        }
                    }
                    Err(_) => {
                        session.close();
                        return;
                    }
                }
            }
        }
    }
}

/// The upgrade handshake on a new WebSocket of a polling session; `false` if it failed (the
/// session then stays on polling).
async fn upgrade(socket: &mut WebSocket, session: &EngineSession) -> bool {
    let probe = tokio::time::timeout(UPGRADE_TIMEOUT, socket.recv()).await;
    let Ok(Some(Ok(Message::Text(text)))) = probe else { return false };
    if text.as_str() != "2probe" || socket.send(Message::Text("3probe".into())).await.is_err() {
        return false;
    }
    // The client now pauses polling: release the poll it has pending.
    if session.send(EioPacket::Noop.to_string()).is_err() {
        return false;
    }
    let upgraded = tokio::time::timeout(UPGRADE_TIMEOUT, socket.recv()).await;
    let Ok(Some(Ok(Message::Text(text)))) = upgraded else { return false };
    if text.as_str() != "5" {
        return false;
    }
    session.outgoing.lock().over_websocket = true;
    session.ready.notify_waiters();
    true
}

/// How long one write of queued packets to a WebSocket may take before the session ends.
const WRITE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// How long each step of an upgrade may take.
const UPGRADE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_poll_answers_queued_packets_joined_and_bounded() {
        let engine = Engine::default();
        let (session, _incoming) = engine.open(false, 1 << 20);
        session.send("42[\"a\"]").expect("queued");
        session.send("42[\"b\"]").expect("queued");
        session.send("42[\"ccccc\"]").expect("queued");
        assert_eq!(poll(&session, 16).await.expect("answered"), "42[\"a\"]\x1e42[\"b\"]");
        assert_eq!(poll(&session, 16).await.expect("answered"), "42[\"ccccc\"]");
        session.close();
        assert_eq!(poll(&session, 16).await.expect("answered"), "1");
    }

    #[tokio::test]
    async fn a_full_queue_refuses_more() {
        let engine = Engine::default();
        let (session, _incoming) = engine.open(false, 10);
        assert_eq!(session.send("4".repeat(20)), Ok(()), "one packet always fits");
        assert_eq!(session.send("4x"), Err(SendError::Full));
        session.close();
        assert_eq!(session.send("4x"), Err(SendError::Closed));
    }

    #[tokio::test]
    async fn posted_packets_reach_the_task_in_order() {
        let engine = Engine::default();
        let (session, mut incoming) = engine.open(false, 1 << 20);
        receive_payload(&session, "42[\"a\"]\x1e3\x1e42[\"b\"]").await.expect("accepted");
        assert!(matches!(incoming.recv().await, Some(Incoming::Message(m)) if m == "2[\"a\"]"));
        assert!(matches!(incoming.recv().await, Some(Incoming::Pong)));
        assert!(matches!(incoming.recv().await, Some(Incoming::Message(m)) if m == "2[\"b\"]"));
        assert_eq!(receive_payload(&session, "9").await, Err(EngineError::BadRequest));
        assert!(session.closed.is_cancelled(), "a malformed payload ends the session");
    }

    #[test]
    fn ids_are_twenty_base36_characters() {
        let id = random_id();
        assert_eq!(id.len(), 20);
        assert!(id.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase()));
    }
}
