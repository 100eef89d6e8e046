//! One Socket.IO socket over the node: the task that owns an Engine.IO session once it is open.
//!
//! It admits the client (the JWT in `auth.token`, else the handshake's `Authorization: Bearer`;
//! refused: `connect_error`), maps the generic events onto the node — `subscribe`,
//! `unsubscribe`, `publish`, `history`, `presence`, `presence_stats`, `refresh` — with the same
//! permission checks and limits as the native protocol, and emits every publication of the
//! channels it follows, in order, gap-free and without repeats (the same cursors as the native
//! protocol): as the event the publication names, its `data` the first argument, or else as a
//! `publication` event carrying the whole publication. Every event carries the socket's resume position
//! ([`super::recovery`]) as its last argument, which socket.io-client sends back when it
//! reconnects: the socket then follows the same channels again from where it was.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use courtside_core::access::Principal;
use courtside_core::cursor::{Admit, Cursor};
use courtside_core::event::{DISCONNECT_EVENT, ERROR_EVENT, JOIN_EVENT, LEAVE_EVENT, PUBLICATION_EVENT};
use courtside_core::hub::{Delivery, Inbox, Outbound, Outbox, PresenceEvent, WireFormat};
use courtside_core::presence::{ClientInfo, PresenceInfo};
use courtside_core::stream::{Publication, StreamPosition};
use courtside_core::ChannelName;
use axum::extract::ws::Utf8Bytes;
use bytes::Bytes;
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::engine::{Engine, EngineSession, Incoming, SendError};
use super::recovery;
use super::sio::{self, SioKind, SioPacket};
use crate::auth::now_secs;
use crate::protocol::{NOTICE_EVENT, ClientError, Disconnect, write_publication_fields};
use crate::event_map::PresenceChange;
use crate::rate_limit::{Caller, EndpointClass, TokenBucket};
use crate::state::{Maintenance, ServerState};
use crate::session::read_missing;

/// How long a closing socket waits for its client to take the last packets.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// A long run of deliveries wakes the transport after this many, so the queue keeps moving.
const DELIVERIES_PER_WAKE: usize = 64;

/// The parts a socket task starts from.
pub struct SocketStart {
    pub state: Arc<ServerState>,
    pub engine: Arc<Engine>,
    pub session: Arc<EngineSession>,
    pub incoming: mpsc::Receiver<Incoming>,
    /// `Authorization: Bearer` of the handshake request, used when `auth.token` is absent.
    pub header_token: Option<String>,
    pub outbox: Outbox,
    pub inbox: Inbox,
}

/// A followed channel: where its stream stands for this socket.
struct Followed {
    channel: ChannelName,
    cursor: Cursor,
}

struct SioSocket {
    state: Arc<ServerState>,
    session: Arc<EngineSession>,
    id: u64,
    header_token: Option<String>,
    principal: Option<Principal>,
    token_expires_at_secs: Option<u64>,
    outbox: Outbox,
    followed: Vec<Followed>,
    rate: TokenBucket,
    refused_in_a_row: u32,
    /// While a resume is decided, what would be sent waits here (it must follow the CONNECT
    /// reply, which is decided last).
    held: Option<Vec<Utf8Bytes>>,
    /// Channels of a resume not followed again yet (the store was unavailable): they stay in
    /// the position, and an app's `subscribe` resumes them from there.
    pending: Vec<(ChannelName, courtside_core::stream::StreamPosition)>,
    /// What the socket says about itself to those present (`auth.presence`, `presence_set`).
    presence_info: PresenceInfo,
    /// The user's quota slot, counting this socket and its channels (`None`: anonymous).
    quota: Option<crate::quotas::UserSlot>,
}

mod admission;
mod events;
mod mapped;

/// Why the socket ends.
enum End {
    /// The client left (or its transport broke).
    ClientGone,
    /// The server ends it, with this reason.
    Server(Disconnect),
}

/// Runs a socket until it ends, then leaves every channel and forgets the session.
pub async fn run(start: SocketStart) {
    let SocketStart { state, engine, session, mut incoming, header_token, outbox, mut inbox } = start;
    let limits = &state.config.client;
    let mut socket = SioSocket {
        id: state.next_connection_id(),
        state: state.clone(),
        session: session.clone(),
        header_token,
        principal: None,
        token_expires_at_secs: None,
        outbox,
        followed: Vec::new(),
        rate: TokenBucket::new(limits.commands_per_sec, limits.commands_burst),
        refused_in_a_row: 0,
        held: None,
        pending: Vec::new(),
        presence_info: PresenceInfo::default(),
        quota: None,
    };
    state.metrics.socketio_connections.fetch_add(1, Ordering::Relaxed);
    state.metrics.socketio_connections_total.fetch_add(1, Ordering::Relaxed);
    let end = socket.drive(&mut incoming, &mut inbox).await;
    if let End::Server(reason) = end {
        state.metrics.disconnected(reason);
        // The code first, as an event; then, only when the client must not come back, Socket.IO's
        // own disconnect (socket.io-client does not reconnect after it). Otherwise the transport
        // just closes, and the client reconnects and resumes.
        let notice = serde_json::json!({ "code": reason.code(), "reason": reason.reason(), "reconnect": reason.reconnect() });
        let _ = socket.emit_json(DISCONNECT_EVENT, &notice);
        if !reason.reconnect() {
            let mut packet = String::new();
            sio::encode::disconnect(&mut packet);
            let _ = session.queue(packet);
        }
        session.wake();
    }
    // After the notice: it carries the position of every followed channel, for the resume.
    socket.leave_all().await;
    // Let the client take what is queued (the notice, the disconnect) before the session ends:
    // a WebSocket writes it at once, a long-polling client with its next poll.
    session.drained(DRAIN_TIMEOUT).await;
    session.close();
    engine.remove(&session.sid);
    state.metrics.socketio_connections.fetch_sub(1, Ordering::Relaxed);
}

impl SioSocket {
    async fn drive(&mut self, incoming: &mut mpsc::Receiver<Incoming>, inbox: &mut Inbox) -> End {
        let limits = &self.state.config.client;
        let ping_interval = Duration::from_secs(limits.ping_interval_secs);
        let ping_timeout = Duration::from_secs(limits.idle_timeout_secs.saturating_sub(limits.ping_interval_secs).max(1));
        let overflow = inbox.overflow_signal();
        let shutdown = self.state.shutdown.clone();
        let closed = self.session.closed.clone();
        let ping = sleep_until(Instant::now() + ping_interval);
        let connect_timer = sleep_until(Instant::now() + Duration::from_secs(limits.connect_timeout_secs));
        let token_timer = sleep_until(Instant::now());
        // Armed when a ping goes out; the pong disarms it. Unanswered for `ping_timeout`: cut.
        let pong_timer = sleep_until(Instant::now());
        // A maintenance notice: told at once (also one announced before the socket opened),
        // then the socket closes at its cut.
        let mut maintenance = self.state.maintenance.subscribe();
        maintenance.mark_changed();
        let mut told: Option<Arc<Maintenance>> = None;
        let opened_at = Instant::now();
        let cut_timer = sleep_until(Instant::now());
        tokio::pin!(ping, connect_timer, token_timer, pong_timer, cut_timer);
        let mut awaiting_pong = false;
        loop {
            let step = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    // A notice announced just before the shutdown still goes out first.
                    let untold = Maintenance::untold(&self.state.maintenance.borrow(), &told, opened_at);
                    if let Some(untold) = untold {
                        let _ = self.emit_json(NOTICE_EVENT, &untold.notice);
                    }
                    Err(End::Server(Disconnect::Shutdown))
                }
                _ = closed.cancelled() => Err(End::ClientGone),
                Ok(()) = maintenance.changed() => {
                    let untold = Maintenance::untold(&maintenance.borrow_and_update(), &told, opened_at);
                    match untold {
                        Some(untold) => {
                            if let Some(cut) = untold.cut_at {
                                cut_timer.as_mut().reset(cut);
                            }
                            told = Some(untold.clone());
                            self.emit_json(NOTICE_EVENT, &untold.notice).map_err(End::Server)
                        }
                        None => Ok(()),
                    }
                }
                _ = &mut cut_timer, if Maintenance::cut(&told).is_some() => Err(End::Server(Disconnect::Maintenance)),
                _ = overflow.overflowed() => Err(End::Server(Disconnect::SlowConsumer)),
                message = incoming.recv() => match message {
                    None => Err(End::ClientGone),
                    Some(Incoming::Pong) => {
                        awaiting_pong = false;
                        Ok(())
                    }
                    Some(Incoming::Message(text)) => Box::pin(self.handle_message(&text)).await.map_err(End::Server),
                },
                Some(item) = inbox.recv() => {
                    let mut next = Some(item);
                    let mut handled = Ok(());
                    let mut delivered = 0usize;
                    while let Some(item) = next {
                        handled = self.deliver(item).await;
                        if handled.is_err() {
                            break;
                        }
                        delivered += 1;
                        if delivered % DELIVERIES_PER_WAKE == 0 {
                            self.session.wake();
                        }
                        next = inbox.try_recv();
                    }
                    handled.map_err(End::Server)
                }
                _ = &mut ping => {
                    ping.as_mut().reset(Instant::now() + ping_interval);
                    if !awaiting_pong {
                        awaiting_pong = true;
                        pong_timer.as_mut().reset(Instant::now() + ping_timeout);
                    }
                    self.send_raw("2".to_string()).map_err(End::Server)
                }
                _ = &mut pong_timer, if awaiting_pong => Err(End::Server(Disconnect::IdleTimeout)),
                _ = &mut token_timer, if self.token_expires_at_secs.is_some() => Err(End::Server(Disconnect::TokenExpired)),
                _ = &mut connect_timer, if self.principal.is_none() => Err(End::Server(Disconnect::ConnectRequired)),
            };
            // What the step queued leaves together.
            self.session.wake();
            if let Err(end) = step {
                return end;
            }
            if let Some(expires) = self.token_expires_at_secs {
                let left = Duration::from_secs(expires.saturating_sub(now_secs()));
                token_timer.as_mut().reset(Instant::now() + left);
            }
        }
    }

    fn send_raw(&mut self, packet: impl Into<Utf8Bytes>) -> Result<(), Disconnect> {
        let packet = packet.into();
        if let Some(held) = &mut self.held {
            held.push(packet);
            return Ok(());
        }
        // Woken once per step of the socket's loop, not per packet ([`SioSocket::drive`]).
        match self.session.queue(packet) {
            Ok(()) | Err(SendError::Closed) => Ok(()),
            Err(SendError::Full) => Err(Disconnect::SlowConsumer),
        }
    }

    /// The socket's resume position, as the JSON string every event ends with.
    fn position_argument(&self, out: &mut Vec<u8>) {
        out.push(b'"');
        let followed = self.followed.iter().map(|f| (&f.channel, &f.cursor.position));
        recovery::encode(out, followed.chain(self.pending.iter().map(|(channel, position)| (channel, position))));
        out.push(b'"');
    }

    /// Emits `name` with `argument` (raw JSON) and the resume position.
    fn emit(&mut self, name: &str, argument: &[u8]) -> Result<(), Disconnect> {
        let mut out = Vec::with_capacity(argument.len() + name.len() + 64);
        event_head(&mut out, name);
        out.extend_from_slice(argument);
        out.push(b',');
        self.finish_event(out)
    }

    /// Closes an event whose arguments are written (each followed by `,`): the resume position
    /// as the last argument, then the array's end; and sends it.
    fn finish_event(&mut self, mut out: Vec<u8>) -> Result<(), Disconnect> {
        self.position_argument(&mut out);
        out.push(b']');
        self.send_raw(String::from_utf8(out).map_err(|_| Disconnect::InternalError)?)
    }

    fn emit_json(&mut self, name: &str, value: &impl Serialize) -> Result<(), Disconnect> {
        let argument = serde_json::to_vec(value).map_err(|_| Disconnect::InternalError)?;
        self.emit(name, &argument)
    }

    /// Answers an event the client sent with an ack id.
    fn ack(&mut self, id: u64, value: &impl Serialize) -> Result<(), Disconnect> {
        let mut packet = String::new();
        sio::encode::ack_start(&mut packet, id);
        packet.push_str(&serde_json::to_string(value).map_err(|_| Disconnect::InternalError)?);
        sio::encode::event_end(&mut packet);
        self.send_raw(packet)
    }

    /// An error answered to the event `event`: in its ack when it asked for one, else as an
    /// `error` event.
    fn refuse(&mut self, event: &str, ack: Option<u64>, error: &ClientError) -> Result<(), Disconnect> {
        self.state.metrics.command_errors_total.fetch_add(1, Ordering::Relaxed);
        let body = ErrorBody { error: ErrorDetail { code: error.code(), message: error.to_string(), event } };
        match ack {
            Some(id) => self.ack(id, &body),
            None => self.emit_json(ERROR_EVENT, &body.error),
        }
    }

    async fn handle_message(&mut self, text: &str) -> Result<(), Disconnect> {
        let packet = SioPacket::decode(text).map_err(|_| Disconnect::InvalidFrame)?;
        // Every packet counts against the rate limit, connects and foreign namespaces included.
        let allowed = self.rate.take(std::time::Instant::now());
        if !allowed {
            self.refused_in_a_row += 1;
            if self.refused_in_a_row > self.state.config.client.commands_burst {
                return Err(Disconnect::TooManyRequests);
            }
        } else {
            self.refused_in_a_row = 0;
        }
        if packet.namespace != "/" {
            let mut refused = String::new();
            sio::encode::connect_error(&mut refused, packet.namespace, "Invalid namespace", &serde_json::Value::Null);
            return self.send_raw(refused);
        }
        match packet.kind {
            SioKind::Connect(_) if !allowed => {
                let mut refused = String::new();
                let error = ClientError::TooManyRequests;
                sio::encode::connect_error(&mut refused, "/", &error.to_string(), &serde_json::json!({ "code": error.code() }));
                self.send_raw(refused)
            }
            SioKind::Connect(data) => self.connect(data).await,
            SioKind::Disconnect => {
                self.session.close();
                Ok(())
            }
            SioKind::Ack { .. } => Ok(()),
            SioKind::Event { name, args, ack } => {
                if self.principal.is_none() {
                    return Err(Disconnect::ConnectRequired);
                }
                if !allowed || !self.user_allows_event().await {
                    return self.refuse(&name, ack, &ClientError::TooManyRequests);
                }
                self.state.metrics.commands_total.fetch_add(1, Ordering::Relaxed);
                let argument = args.first().copied();
                if let Err(error) = self.event(&name, argument, ack).await {
                    return self.refuse(&name, ack, &error);
                }
                Ok(())
            }
        }
    }

    /// Counts one event against the user's `socketio_event` limit, shared by their sockets (on
    /// every node, when the cluster shares its limits).
    /// Anonymous sockets are limited per socket only (`client.commands_per_sec`): thousands of
    /// them may share one address (a stadium's network), and one bucket per address would make
    /// them starve each other. The API key is not limited.
    async fn user_allows_event(&self) -> bool {
        let caller = match &self.principal {
            Some(Principal::User { id, .. }) => Caller::User(id.clone()),
            _ => return true,
        };
        self.state.http_limits.check(EndpointClass::SocketIoEvent, caller).await.allowed
    }

    fn client_id(&self) -> String {
        self.client_ref().to_string()
    }

    fn client_info(&self) -> ClientInfo {
        ClientInfo {
            client: self.client_id(),
            user: self.principal.as_ref().map(|p| p.user_id().to_string()).unwrap_or_default(),
            info: self.presence_info.clone(),
        }
    }

    async fn leave_all(&mut self) {
        let client = self.client_info();
        for followed in std::mem::take(&mut self.followed) {
            self.state.node.unsubscribe(&followed.channel, self.id).await;
            self.state.node.leave(&followed.channel, client.clone()).await;
        }
        self.quota = None;
    }

    /// An item from the hub: a publication (gap-free, no repeats) or a join/leave.
    async fn deliver(&mut self, item: Outbound) -> Result<(), Disconnect> {
        let delivery: Arc<Delivery> = match item {
            Outbound::Publication(delivery) => delivery,
            Outbound::Presence(event) => return self.emit_presence(&event),
        };
        let publication = &delivery.publication;
        let Some(followed) = self.followed.iter_mut().find(|f| f.channel == publication.channel) else { return Ok(()) };
        let admitted = followed.cursor.admit(publication);
        match admitted {
            Admit::Deliver | Admit::Unnumbered => {}
            Admit::Duplicate => {
                self.state.metrics.duplicates_dropped_total.fetch_add(1, Ordering::Relaxed);
                return Ok(());
            }
            Admit::Gap { from, to } => {
                let missing = read_missing(&self.state, &publication.channel, from, to).await?;
                self.state.metrics.gaps_filled_total.fetch_add(1, Ordering::Relaxed);
                for earlier in missing.iter().chain(std::iter::once(publication)) {
                    self.admit_and_emit(earlier)?;
                }
                self.state.metrics.deliver_latency.observe(delivery.received_at.elapsed());
                return Ok(());
            }
            Admit::EpochChanged { .. } => return Err(Disconnect::InternalError),
        }
        // Encoded once per publication for every socket of this node; each adds its position.
        let map = &self.state.socketio_map;
        let starts = delivery.wire(SOCKETIO_WIRE, |publication| mapped::publication_events(map, publication));
        if matches!(admitted, Admit::Deliver) && self.position_is_of_publication_alone() {
            // Its position is the publication's own: the whole frame is shared too.
            let frames = delivery.wire(SOCKETIO_FRAMES_WIRE, |publication| single_channel_frames(starts, publication)).clone();
            self.send_frames(frames)?;
        } else {
            self.finish_events(starts)?;
        }
        self.state.metrics.deliver_latency.observe(delivery.received_at.elapsed());
        Ok(())
    }

    /// Moves the channel's cursor past `publication` (which must be the next) and emits it.
    fn admit_and_emit(&mut self, publication: &Publication) -> Result<(), Disconnect> {
        let followed = self.followed.iter_mut().find(|f| f.channel == publication.channel).ok_or(Disconnect::InternalError)?;
        match followed.cursor.admit(publication) {
            Admit::Deliver | Admit::Unnumbered => self.emit_publication(publication),
            _ => Err(Disconnect::InternalError),
        }
    }

    /// The events `publication` becomes: those of the event map when a rule matches it, else
    /// `42["<event>",<data>,"<position>"]` for a publication with an event name, else
    /// `42["publication",{"channel":…,"epoch":…,"offset":…,…,"data":…},"<position>"]`.
    fn emit_publication(&mut self, publication: &Publication) -> Result<(), Disconnect> {
        let starts = mapped::publication_events(&self.state.socketio_map, publication);
        self.finish_events(&starts)
    }

    /// Whether this socket's resume position names only the channel of the publication just
    /// admitted (nothing else followed, nothing pending, nothing held back).
    fn position_is_of_publication_alone(&self) -> bool {
        self.followed.len() == 1 && self.pending.is_empty() && self.held.is_none()
    }

    /// Sends complete frames shared with other sockets ([`single_channel_frames`]).
    fn send_frames(&mut self, frames: Bytes) -> Result<(), Disconnect> {
        if frames.is_empty() {
            return Ok(());
        }
        let text = |bytes: Bytes| Utf8Bytes::try_from(bytes).map_err(|_| Disconnect::InternalError);
        if !frames.contains(&mapped::EVENT_SEPARATOR) {
            return self.send_raw(text(frames)?);
        }
        for frame in frames.split(|byte| *byte == mapped::EVENT_SEPARATOR) {
            self.send_raw(text(frames.slice_ref(frame))?)?;
        }
        Ok(())
    }

    /// Finishes and sends each event of a publication's shared encoding.
    fn finish_events(&mut self, starts: &[u8]) -> Result<(), Disconnect> {
        if starts.is_empty() {
            return Ok(());
        }
        for start in starts.split(|byte| *byte == mapped::EVENT_SEPARATOR) {
            let mut out = Vec::with_capacity(start.len() + 64 * self.followed.len() + 2);
            out.extend_from_slice(start);
            self.finish_event(out)?;
        }
        Ok(())
    }

    fn emit_presence(&mut self, event: &PresenceEvent) -> Result<(), Disconnect> {
        if !self.followed.iter().any(|f| f.channel == event.channel) {
            return Ok(());
        }
        let map = self.state.socketio_map.clone();
        let change = if event.joined { PresenceChange::Join } else { PresenceChange::Leave };
        let mut client = serde_json::to_value(&event.client).map_err(|_| Disconnect::InternalError)?;
        if let Some(fields) = client.as_object_mut() {
            fields.insert("channel".into(), event.channel.as_str().into());
        }
        if let Some(mapped) = map.presence_events_for(&event.channel, change, &client, courtside_core::stream::now_ms()) {
            for event in mapped {
                self.emit_json(event.event, &event.data)?;
            }
            return Ok(());
        }
        let name = if event.joined { JOIN_EVENT } else { LEAVE_EVENT };
        self.emit_json(name, &serde_json::json!({ "channel": event.channel.as_str(), "client": event.client }))
    }
}

/// `42["<name>",`: an event's packet up to its first argument.
fn event_head(out: &mut Vec<u8>, name: &str) {
    out.extend_from_slice(b"42[");
    let mut quoted = String::new();
    sio::encode::push_json_string(&mut quoted, name);
    out.extend_from_slice(quoted.as_bytes());
    out.push(b',');
}

/// The encoding of a publication event that every socket shares, cached on the delivery.
const SOCKETIO_WIRE: WireFormat = WireFormat::new(1);

/// The complete frames of a publication for sockets that follow its channel alone, cached on the
/// delivery ([`single_channel_frames`]).
const SOCKETIO_FRAMES_WIRE: WireFormat = WireFormat::new(2);

/// A publication's events complete with the resume position of a socket that follows only its
/// channel — `"<channel>=<epoch>:<offset>"`, the same for every such socket — so one allocation
/// serves them all. Several events are separated by [`mapped::EVENT_SEPARATOR`].
fn single_channel_frames(starts: &[u8], publication: &Publication) -> Bytes {
    if starts.is_empty() {
        return Bytes::new();
    }
    let position = StreamPosition { epoch: publication.epoch.clone(), offset: publication.offset };
    let mut end = Vec::with_capacity(publication.channel.as_str().len() + 48);
    end.push(b'"');
    recovery::encode(&mut end, std::iter::once((&publication.channel, &position)));
    end.extend_from_slice(b"\"]");
    let events = starts.split(|byte| *byte == mapped::EVENT_SEPARATOR);
    let mut out = Vec::with_capacity(starts.len() + end.len() * 2);
    for (index, start) in events.enumerate() {
        if index > 0 {
            out.push(mapped::EVENT_SEPARATOR);
        }
        out.extend_from_slice(start);
        out.extend_from_slice(&end);
    }
    Bytes::from(out)
}

/// A publication event up to the resume position, the same for every socket:
/// `42["<event>",<data>,` for a publication with an event name (the app's own payload as its
/// argument), else `42["publication",{"channel":…,"epoch":…,…,"data":…},`.
fn publication_event_start(publication: &Publication) -> Bytes {
    let mut out = Vec::with_capacity(publication.data.len() + 128);
    out.extend_from_slice(b"42[");
    match &publication.event {
        Some(event) => {
            // Writing a string into a Vec cannot fail; event names may hold `"` and `\`.
            let _ = serde_json::to_writer(&mut out, event);
            out.push(b',');
            out.extend_from_slice(&publication.data);
        }
        None => {
            out.push(b'"');
            out.extend_from_slice(PUBLICATION_EVENT.as_bytes());
            out.extend_from_slice(b"\",{\"channel\":\"");
            // Channel names are `[A-Za-z0-9_.:@-]`: nothing to escape.
            out.extend_from_slice(publication.channel.as_str().as_bytes());
            out.extend_from_slice(b"\",");
            write_publication_fields(&mut out, publication);
        }
    }
    out.push(b',');
    Bytes::from(out)
}

/// A private id as this server issues them, echoed back on recovery.
fn is_private_id(pid: &str) -> bool {
    pid.len() == 20 && pid.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase())
}

fn parse<T: serde::de::DeserializeOwned>(argument: Option<&RawValue>) -> Result<T, ClientError> {
    let raw = argument.ok_or_else(|| ClientError::BadRequest("this event needs an object argument".into()))?;
    crate::json::decode_object(raw.get()).map_err(|error| ClientError::BadRequest(error.to_string()))
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorDetail<'a>,
}

#[derive(Serialize)]
struct ErrorDetail<'a> {
    code: u16,
    message: String,
    event: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use courtside_core::stream::Epoch;

    fn publication(offset: u64) -> Publication {
        Publication {
            channel: ChannelName::parse("scores:court-1").expect("valid"),
            epoch: Epoch::from_text("e1"),
            offset,
            key: None,
            removed: false,
            event: None,
            data: Bytes::from_static(b"{}"),
            time_ms: 0,
        }
    }

    #[test]
    fn every_shared_frame_ends_with_the_position_of_the_publication_alone() {
        let starts = b"42[\"a\",1,\x1e42[\"b\",2,";
        let frames = single_channel_frames(starts, &publication(7));
        let frames: Vec<&[u8]> = frames.split(|byte| *byte == mapped::EVENT_SEPARATOR).collect();
        assert_eq!(frames, [&b"42[\"a\",1,\"scores:court-1=e1:7\"]"[..], &b"42[\"b\",2,\"scores:court-1=e1:7\"]"[..]]);
        assert!(single_channel_frames(b"", &publication(7)).is_empty(), "no events, no frames");
    }
}
