//! Wire protocol v1: JSON commands, replies and pushes over WebSocket (see docs/protocol.md).
//!
//! One WebSocket text message holds one or more frames separated by `\n`. A command is an object
//! with an optional `id` and exactly one method key; the reply carries the same `id` and either
//! `result` or `error`. Pushes have no `id`. Publication frames are written by hand, once per
//! publication ([`encode_publication_push`]), so the payload bytes are copied, never re-parsed.

use std::collections::HashMap;
use std::io::Write;

use bytes::Bytes;
use courtside_core::hub::WireFormat;
use courtside_core::node::NodeError;
use courtside_core::presence::PresenceInfo;
use courtside_leaderboard::LeaderboardError;
use courtside_core::{ChannelName, Publication, StreamPosition};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// Errors answered in a reply; the connection stays open. Codes are stable (docs/protocol.md).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    #[error("internal error")]
    Internal,
    #[error("unauthorized: {0}")]
    Unauthorized(String),
    #[error("unknown namespace {0:?}")]
    UnknownNamespace(String),
    #[error("permission denied")]
    PermissionDenied,
    /// The app's backend refused (an app hook), saying why.
    #[error("permission denied: {0}")]
    Denied(String),
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    #[error("already subscribed")]
    AlreadySubscribed,
    #[error("not subscribed")]
    NotSubscribed,
    #[error("bad request: {0}")]
    BadRequest(String),
    #[error("too many requests")]
    TooManyRequests,
    /// A quota on what clients may create is reached (e.g. a namespace's `channels_max`).
    #[error("too many requests: {0}")]
    QuotaReached(String),
    #[error("token expired")]
    TokenExpired,
    #[error("payload too large: {size} bytes, limit {limit}")]
    PayloadTooLarge { size: usize, limit: usize },
    #[error("unavailable: {0}")]
    Unavailable(String),
    #[error("not found: {0}")]
    NotFound(String),
    #[error("method not allowed on this route")]
    MethodNotAllowed,
}

impl ClientError {
    pub fn code(&self) -> u16 {
        match self {
            ClientError::Internal => 100,
            ClientError::Unauthorized(_) => 101,
            ClientError::UnknownNamespace(_) => 102,
            ClientError::PermissionDenied | ClientError::Denied(_) => 103,
            ClientError::UnknownMethod(_) => 104,
            ClientError::AlreadySubscribed => 105,
            ClientError::NotSubscribed => 106,
            ClientError::BadRequest(_) => 107,
            ClientError::TooManyRequests | ClientError::QuotaReached(_) => 108,
            ClientError::TokenExpired => 109,
            ClientError::PayloadTooLarge { .. } => 110,
            ClientError::Unavailable(_) => 111,
            ClientError::NotFound(_) => 113,
            ClientError::MethodNotAllowed => 114,
        }
    }
}

impl From<NodeError> for ClientError {
    fn from(error: NodeError) -> Self {
        match error {
            NodeError::UnknownNamespace(ns) => ClientError::UnknownNamespace(ns),
            NodeError::NotKeyed(_) | NodeError::NoHistory(_) | NodeError::InvalidEvent(_) | NodeError::OffsetOutOfRange(_) => {
                ClientError::BadRequest(error.to_string())
            }
            NodeError::AlreadySubscribed(_) => ClientError::AlreadySubscribed,
            NodeError::Store(e @ courtside_core::store::StoreError::ChannelLimit { .. }) => {
                ClientError::QuotaReached(e.to_string())
            }
            NodeError::Store(e) => ClientError::Unavailable(e.to_string()),
            NodeError::Broker(e) => ClientError::Unavailable(e.to_string()),
        }
    }
}

/// A notice every connection receives, whatever its transport (seed 004's
/// `system_notification`): the native push `notice`, the SSE event and the Socket.IO event
/// `system_notification`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SystemNotice {
    /// `MAINTENANCE`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub message: String,
    /// `info`, `warning` or `error`.
    pub severity: &'static str,
    /// When it was announced, ISO 8601 UTC.
    pub timestamp: String,
    /// Milliseconds until connections are closed.
    pub duration: u64,
}

/// The name of the notice's SSE and Socket.IO event.
pub const NOTICE_EVENT: &str = courtside_core::event::SYSTEM_NOTIFICATION_EVENT;

impl SystemNotice {
    /// `{"push":{"notice":{…}}}`: the native push.
    pub fn encode_push(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Push<'a> {
            push: Body<'a>,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            notice: &'a SystemNotice,
        }
        serde_json::to_vec(&Push { push: Body { notice: self } }).unwrap_or_default()
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// A leaderboard read made for a connection (a Socket.IO event map's reply).
impl From<LeaderboardError> for ClientError {
    fn from(error: LeaderboardError) -> Self {
        use LeaderboardError as E;
        match error {
            E::UnknownBoard(_) => ClientError::NotFound(error.to_string()),
            E::Store(_) | E::Contended | E::Interrupted => ClientError::Unavailable(error.to_string()),
            E::Corrupt(_) | E::Layout(_) => ClientError::Internal,
            E::AlreadyExists(_) | E::NotRatings(_) | E::OpId | E::Spec(_) | E::Score(_) | E::Elo(_) => ClientError::BadRequest(error.to_string()),
        }
    }
}

/// Why the server closes a connection. The code is also the WebSocket close code; codes
/// 3000–3499 invite a reconnect, 3500–3999 do not (the client must change something first),
/// nor does 1002, RFC 6455's code for a WebSocket protocol violation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Disconnect {
    Shutdown,
    SlowConsumer,
    IdleTimeout,
    TokenExpired,
    TooManyRequests,
    InternalError,
    InvalidFrame,
    MessageTooBig,
    InvalidToken,
    ConnectRequired,
    Maintenance,
    ProtocolError,
}

impl Disconnect {
    pub const ALL: [Disconnect; 12] = [
        Disconnect::Shutdown,
        Disconnect::SlowConsumer,
        Disconnect::IdleTimeout,
        Disconnect::TokenExpired,
        Disconnect::TooManyRequests,
        Disconnect::InternalError,
        Disconnect::InvalidFrame,
        Disconnect::MessageTooBig,
        Disconnect::InvalidToken,
        Disconnect::ConnectRequired,
        Disconnect::Maintenance,
        Disconnect::ProtocolError,
    ];

    pub fn code(self) -> u16 {
        match self {
            Disconnect::Shutdown => 3000,
            Disconnect::SlowConsumer => 3001,
            Disconnect::IdleTimeout => 3002,
            Disconnect::TokenExpired => 3003,
            Disconnect::TooManyRequests => 3004,
            Disconnect::InternalError => 3005,
            Disconnect::Maintenance => 3006,
            Disconnect::InvalidFrame => 3500,
            Disconnect::MessageTooBig => 3501,
            Disconnect::InvalidToken => 3502,
            Disconnect::ConnectRequired => 3503,
            Disconnect::ProtocolError => 1002,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            Disconnect::Shutdown => "server shutting down",
            Disconnect::SlowConsumer => "slow consumer",
            Disconnect::IdleTimeout => "idle timeout",
            Disconnect::TokenExpired => "token expired",
            Disconnect::TooManyRequests => "too many requests",
            Disconnect::InternalError => "internal error",
            Disconnect::Maintenance => "maintenance",
            Disconnect::InvalidFrame => "invalid frame",
            Disconnect::MessageTooBig => "message too big",
            Disconnect::InvalidToken => "invalid token",
            Disconnect::ConnectRequired => "connect required",
            Disconnect::ProtocolError => "protocol error",
        }
    }

    pub fn reconnect(self) -> bool {
        (3000..3500).contains(&self.code())
    }

    /// The push sent just before the close frame.
    pub fn push_frame(self) -> String {
        format!(
            r#"{{"push":{{"disconnect":{{"code":{},"reason":"{}","reconnect":{}}}}}}}"#,
            self.code(),
            self.reason(),
            self.reconnect()
        )
    }
}

/// A decoded command: the correlation id and the method with its parameters.
#[derive(Debug)]
pub struct Command<'a> {
    pub id: Option<u64>,
    pub method: Method<'a>,
}

#[derive(Debug)]
pub enum Method<'a> {
    Connect(ConnectParams),
    Subscribe(SubscribeParams),
    Unsubscribe(ChannelParams),
    Publish(PublishParams<'a>),
    History(HistoryParams),
    Presence(ChannelParams),
    PresenceStats(ChannelParams),
    /// Sets what the connection says about itself in every channel it is present in.
    PresenceSet(PresenceInfo),
    Refresh(RefreshParams),
    /// A call the app's backend answers (the rpc hook).
    Rpc(RpcParams<'a>),
    Ping,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectParams {
    #[serde(default)]
    pub token: Option<String>,
    /// What the connection says about itself (status, location, device) to those present.
    #[serde(default, deserialize_with = "crate::json::optional_object")]
    pub presence: Option<PresenceInfo>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubscribeParams {
    pub channel: ChannelName,
    #[serde(default, deserialize_with = "crate::json::optional_object")]
    pub since: Option<StreamPosition>,
    #[serde(default)]
    pub snapshot: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelParams {
    pub channel: ChannelName,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublishParams<'a> {
    pub channel: ChannelName,
    #[serde(borrow)]
    pub data: &'a RawValue,
    #[serde(default)]
    pub key: Option<String>,
    #[serde(default)]
    pub remove: bool,
    /// The event name it is delivered as (Socket.IO); see [`courtside_core::event`].
    #[serde(default)]
    pub event: Option<String>,
    #[serde(default)]
    pub idempotency_key: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    pub channel: ChannelName,
    /// Publications after this offset; without it, the newest `limit`.
    #[serde(default)]
    pub after: Option<u64>,
    #[serde(default)]
    pub limit: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RpcParams<'a> {
    #[serde(borrow)]
    pub method: &'a str,
    /// Passed to the app's backend as it is (`null` when absent).
    #[serde(borrow, default = "json_null")]
    pub data: &'a RawValue,
}

fn json_null() -> &'static RawValue {
    RawValue::NULL
}

/// An RPC call's result: what the app's backend answered.
#[derive(Debug, Serialize)]
pub struct RpcResult<'a> {
    pub data: &'a RawValue,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshParams {
    pub token: String,
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// Not a JSON object: the frame is unusable, the connection is closed.
    Malformed(String),
    /// A JSON object that is not a valid command: answered with an error reply.
    Invalid { id: Option<u64>, error: ClientError },
}

/// Decodes one frame (one line of a WebSocket message).
pub fn decode_command(frame: &str) -> Result<Command<'_>, DecodeError> {
    let fields: HashMap<String, &RawValue> =
        serde_json::from_str(frame).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    let id = match fields.get("id") {
        None => None,
        Some(raw) => Some(serde_json::from_str::<u64>(raw.get()).map_err(|_| DecodeError::Invalid {
            id: None,
            error: ClientError::BadRequest("`id` must be a non-negative integer".into()),
        })?),
    };
    let invalid = |error| DecodeError::Invalid { id, error };
    let mut methods = fields.iter().filter(|(k, _)| k.as_str() != "id");
    let (name, params) = match (methods.next(), methods.next()) {
        (Some(one), None) => one,
        (None, _) => return Err(invalid(ClientError::BadRequest("no method in command".into()))),
        (Some(_), Some(_)) => {
            return Err(invalid(ClientError::BadRequest("a command holds exactly one method".into())));
        }
    };
    fn parse<'a, T: Deserialize<'a>>(name: &str, raw: &'a RawValue) -> Result<T, ClientError> {
        crate::json::decode_object(raw.get()).map_err(|e| ClientError::BadRequest(format!("{name}: {e}")))
    }
    let method = match name.as_str() {
        "connect" => parse(name, params).map(Method::Connect),
        "subscribe" => parse(name, params).map(Method::Subscribe),
        "unsubscribe" => parse(name, params).map(Method::Unsubscribe),
        "publish" => parse(name, params).map(Method::Publish),
        "history" => parse(name, params).map(Method::History),
        "presence" => parse(name, params).map(Method::Presence),
        "presence_stats" => parse(name, params).map(Method::PresenceStats),
        "presence_set" => parse(name, params).map(Method::PresenceSet),
        "refresh" => parse(name, params).map(Method::Refresh),
        "rpc" => parse(name, params).map(Method::Rpc),
        "ping" => Ok(Method::Ping),
        other => Err(ClientError::UnknownMethod(other.to_string())),
    }
    .map_err(invalid)?;
    Ok(Command { id, method })
}

/// Appends `{"id":…,"result":…}`.
pub fn encode_result(out: &mut Vec<u8>, id: Option<u64>, result: &impl Serialize) {
    out.extend_from_slice(b"{");
    if let Some(id) = id {
        out.extend_from_slice(format!(r#""id":{id},"#).as_bytes());
    }
    out.extend_from_slice(br#""result":"#);
    // Serialising our own result types into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut *out, result);
    out.extend_from_slice(b"}");
}

/// Appends `{"id":…,"error":{"code":…,"message":…}}`.
pub fn encode_error(out: &mut Vec<u8>, id: Option<u64>, error: &ClientError) {
    #[derive(Serialize)]
    struct ErrorBody<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        id: Option<u64>,
        error: ErrorDetail<'a>,
    }
    #[derive(Serialize)]
    struct ErrorDetail<'a> {
        code: u16,
        message: &'a str,
    }
    let message = error.to_string();
    let _ = serde_json::to_writer(
        &mut *out,
        &ErrorBody { id, error: ErrorDetail { code: error.code(), message: &message } },
    );
}

/// The native frames (WebSocket and SSE) a [`courtside_core::hub::Delivery`] caches.
pub const NATIVE_WIRE: WireFormat = WireFormat::new(0);

/// Appends one publication object:
/// `{"epoch":…,"offset":…,"time":…,"key":…,"removed":true,"event":…,"data":…}` (`key`,
/// `removed` and `event` only when set).
pub fn write_publication(out: &mut Vec<u8>, publication: &Publication) {
    out.push(b'{');
    write_publication_fields(out, publication);
}

/// A publication object without its opening brace (`"epoch":…,"data":…}`), for objects that
/// put fields of their own first.
pub fn write_publication_fields(out: &mut Vec<u8>, publication: &Publication) {
    out.extend_from_slice(br#""epoch":""#);
    out.extend_from_slice(publication.epoch.as_str().as_bytes());
    out.extend_from_slice(br#"","offset":"#);
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{}", publication.offset);
    out.extend_from_slice(br#","time":"#);
    let _ = write!(out, "{}", publication.time_ms);
    if let Some(key) = &publication.key {
        out.extend_from_slice(br#","key":"#);
        let _ = serde_json::to_writer(&mut *out, key);
    }
    if publication.removed {
        out.extend_from_slice(br#","removed":true"#);
    }
    if let Some(event) = &publication.event {
        out.extend_from_slice(br#","event":"#);
        let _ = serde_json::to_writer(&mut *out, event);
    }
    out.extend_from_slice(br#","data":"#);
    out.extend_from_slice(&publication.data);
    out.extend_from_slice(b"}");
}

/// The push frame for a live publication: `{"push":{"channel":…,"pub":{…}}}`.
pub fn encode_publication_push(publication: &Publication) -> Bytes {
    let mut out = Vec::with_capacity(publication.data.len() + 96 + publication.channel.as_str().len());
    out.extend_from_slice(br#"{"push":{"channel":""#);
    // Channel names are restricted to `[A-Za-z0-9_.:@-]`: nothing to escape.
    out.extend_from_slice(publication.channel.as_str().as_bytes());
    out.extend_from_slice(br#"","pub":"#);
    write_publication(&mut out, publication);
    out.extend_from_slice(b"}}");
    Bytes::from(out)
}

/// Where a subscription starts, as the SSE `subscribed` event and the Socket.IO `subscribe`
/// acknowledgement report it.
#[derive(Serialize)]
pub struct SubscribedReply<'a> {
    pub channel: &'a ChannelName,
    pub epoch: &'a str,
    pub offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<Publications<'a>>,
}

/// A list of publications as a JSON array, for replies.
pub struct Publications<'a>(pub &'a [Publication]);

impl Serialize for Publications<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = Vec::with_capacity(self.0.iter().map(|p| p.data.len() + 64).sum::<usize>() + 2);
        out.push(b'[');
        for (i, publication) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            write_publication(&mut out, publication);
        }
        out.push(b']');
        let text = String::from_utf8(out).map_err(serde::ser::Error::custom)?;
        let raw = RawValue::from_string(text).map_err(serde::ser::Error::custom)?;
        raw.serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_method_and_keeps_the_id() {
        let command = decode_command(r#"{"id":7,"subscribe":{"channel":"match:1","since":{"epoch":"ab","offset":3}}}"#)
            .expect("valid");
        assert_eq!(command.id, Some(7));
        let Method::Subscribe(params) = command.method else { panic!("subscribe") };
        assert_eq!(params.channel.as_str(), "match:1");
        assert_eq!(params.since.map(|s| s.offset), Some(3));
        let command = decode_command(r#"{"id":8,"publish":{"channel":"match:1","data":{"home":3}}}"#).expect("valid");
        let Method::Publish(params) = command.method else { panic!("publish") };
        assert_eq!(params.data.get(), r#"{"home":3}"#);
        assert!(matches!(decode_command(r#"{"ping":{}}"#).map(|c| c.method), Ok(Method::Ping)));
    }

    #[test]
    fn malformed_and_invalid_frames_are_told_apart() {
        assert!(matches!(decode_command("{not json"), Err(DecodeError::Malformed(_))));
        assert!(matches!(decode_command("[1,2]"), Err(DecodeError::Malformed(_))));
        assert_eq!(
            decode_command(r#"{"id":3,"launch":{}}"#).err(),
            Some(DecodeError::Invalid { id: Some(3), error: ClientError::UnknownMethod("launch".into()) })
        );
        assert!(matches!(
            decode_command(r#"{"id":4,"subscribe":{"channel":"bad name"}}"#),
            Err(DecodeError::Invalid { id: Some(4), error: ClientError::BadRequest(_) })
        ));
        assert!(matches!(
            decode_command(r#"{"id":5,"ping":{},"connect":{}}"#),
            Err(DecodeError::Invalid { id: Some(5), error: ClientError::BadRequest(_) })
        ));
    }

    #[test]
    fn publication_push_is_valid_json_carrying_the_raw_payload() {
        let publication = Publication {
            channel: ChannelName::parse("match:1").unwrap(),
            epoch: courtside_core::Epoch::from_text("e1"),
            offset: 42,
            key: Some("set\"1".into()),
            removed: false,
            event: None,
            data: Bytes::from_static(br#"{"home":25,"away":23}"#),
            time_ms: 1700,
        };
        let frame = encode_publication_push(&publication);
        let value: serde_json::Value = serde_json::from_slice(&frame).expect("valid JSON");
        assert_eq!(value["push"]["channel"], "match:1");
        assert_eq!(value["push"]["pub"]["offset"], 42);
        assert_eq!(value["push"]["pub"]["key"], "set\"1");
        assert_eq!(value["push"]["pub"]["data"]["away"], 23);
        assert!(value["push"]["pub"].get("event").is_none(), "no event name, no field");
        let named = Publication { event: Some(r#"say:"hi"\"#.into()), ..publication };
        let value: serde_json::Value = serde_json::from_slice(&encode_publication_push(&named)).expect("valid JSON");
        assert_eq!(value["push"]["pub"]["event"], r#"say:"hi"\"#, "quotes and backslashes are escaped");
    }

    proptest::proptest! {
        /// Any text decodes to a command or is refused; it never panics.
        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
            let _ = decode_command(&text);
        }

        /// Near-miss commands (right shape, wrong details) are refused with a reply, not a close.
        #[test]
        fn near_miss_commands_get_error_replies(
            id in proptest::option::of(0u64..1000),
            method in "[a-z_]{1,16}",
            channel in "[a-z:0-9 ]{0,12}",
        ) {
            let mut command = serde_json::json!({ method.clone(): { "channel": channel } });
            if let Some(id) = id {
                command["id"] = serde_json::json!(id);
            }
            match decode_command(&command.to_string()) {
                Ok(_) => {}
                Err(DecodeError::Invalid { id: got, .. }) => proptest::prop_assert_eq!(got, id),
                Err(DecodeError::Malformed(m)) => proptest::prop_assert!(false, "valid JSON refused as malformed: {}", m),
            }
        }
    }

    #[test]
    fn disconnect_codes_say_whether_to_reconnect() {
        for d in Disconnect::ALL {
            let push: serde_json::Value = serde_json::from_str(&d.push_frame()).expect("valid JSON");
            assert_eq!(push["push"]["disconnect"]["code"], d.code());
            assert_eq!(push["push"]["disconnect"]["reconnect"], (3000..3500).contains(&d.code()));
        }
    }
}
