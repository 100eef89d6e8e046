//! Engine.IO 4 packets, the layer under Socket.IO: their text form (a type digit, then the data)
//! and the long-polling payload that carries several of them separated by `\x1e`.
//!
//! Only text packets are spoken. Binary (a WebSocket binary frame, or a `b`-prefixed base64
//! packet in a polling payload) is refused with [`EioDecodeError::Binary`]: Courtside's payloads
//! are JSON, and the Socket.IO layer refuses binary attachments anyway.

use std::fmt;

/// The record separator between packets of one polling payload.
pub const PAYLOAD_SEPARATOR: char = '\x1e';

/// One Engine.IO packet, borrowing its data from the decoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EioPacket<'a> {
    /// `0{…}`: the handshake, sent by the server only.
    Open(String),
    /// `1`: the session ends.
    Close,
    /// `2` (optionally `2probe`): the server's heartbeat, or the client's upgrade probe.
    Ping(&'a str),
    /// `3` (optionally `3probe`).
    Pong(&'a str),
    /// `4…`: a message for the Socket.IO layer.
    Message(&'a str),
    /// `5`: the client switches to the WebSocket it probed.
    Upgrade,
    /// `6`: nothing; releases a pending long-poll during an upgrade.
    Noop,
}

/// Why text is not an Engine.IO packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EioDecodeError {
    #[error("empty packet")]
    Empty,
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    #[error("binary packets are not supported")]
    Binary,
    #[error("a client may not send an open packet")]
    OpenFromClient,
}

impl<'a> EioPacket<'a> {
    /// Decodes one packet sent by a client.
    pub fn decode(text: &'a str) -> Result<Self, EioDecodeError> {
        let mut chars = text.chars();
        let kind = chars.next().ok_or(EioDecodeError::Empty)?;
        let data = &text[kind.len_utf8()..];
        Ok(match kind {
            '0' => return Err(EioDecodeError::OpenFromClient),
            '1' => EioPacket::Close,
            '2' => EioPacket::Ping(data),
            '3' => EioPacket::Pong(data),
            '4' => EioPacket::Message(data),
            '5' => EioPacket::Upgrade,
            '6' => EioPacket::Noop,
            'b' => return Err(EioDecodeError::Binary),
            other => return Err(EioDecodeError::UnknownType(other)),
        })
    }

    /// Appends the packet's text form to `out`.
    pub fn encode_into(&self, out: &mut String) {
        match self {
            EioPacket::Open(handshake) => {
                out.push('0');
                out.push_str(handshake);
            }
            EioPacket::Close => out.push('1'),
            EioPacket::Ping(data) => {
                out.push('2');
                out.push_str(data);
            }
            EioPacket::Pong(data) => {
                out.push('3');
                out.push_str(data);
            }
            EioPacket::Message(data) => {
                out.push('4');
                out.push_str(data);
            }
            EioPacket::Upgrade => out.push('5'),
            EioPacket::Noop => out.push('6'),
        }
    }
}

impl fmt::Display for EioPacket<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = String::new();
        self.encode_into(&mut text);
        f.write_str(&text)
    }
}

/// The packets of one polling request body, in order; the first bad one fails the whole body.
pub fn decode_payload(body: &str) -> Result<Vec<EioPacket<'_>>, EioDecodeError> {
    body.split(PAYLOAD_SEPARATOR).map(EioPacket::decode).collect()
}

/// The handshake's data: the session id and the heartbeat and size limits the client must keep.
pub fn handshake_json(sid: &str, upgrades: &[&str], ping_interval_ms: u64, ping_timeout_ms: u64, max_payload: usize) -> String {
    serde_json::json!({
        "sid": sid,
        "upgrades": upgrades,
        "pingInterval": ping_interval_ms,
        "pingTimeout": ping_timeout_ms,
        "maxPayload": max_payload,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_each_client_packet() {
        assert_eq!(EioPacket::decode("1"), Ok(EioPacket::Close));
        assert_eq!(EioPacket::decode("2probe"), Ok(EioPacket::Ping("probe")));
        assert_eq!(EioPacket::decode("3"), Ok(EioPacket::Pong("")));
        assert_eq!(EioPacket::decode("42[\"a\"]"), Ok(EioPacket::Message("2[\"a\"]")));
        assert_eq!(EioPacket::decode("5"), Ok(EioPacket::Upgrade));
        assert_eq!(EioPacket::decode("6"), Ok(EioPacket::Noop));
        assert_eq!(EioPacket::decode(""), Err(EioDecodeError::Empty));
        assert_eq!(EioPacket::decode("0{}"), Err(EioDecodeError::OpenFromClient));
        assert_eq!(EioPacket::decode("bAQID"), Err(EioDecodeError::Binary));
        assert_eq!(EioPacket::decode("9"), Err(EioDecodeError::UnknownType('9')));
        assert_eq!(EioPacket::decode("é"), Err(EioDecodeError::UnknownType('é')));
    }

    #[test]
    fn a_payload_splits_on_the_record_separator() {
        let packets = decode_payload("42[\"a\"]\x1e3\x1e42[\"b\",1]").expect("valid payload");
        assert_eq!(packets, vec![EioPacket::Message("2[\"a\"]"), EioPacket::Pong(""), EioPacket::Message("2[\"b\",1]")]);
        assert_eq!(decode_payload("4x\x1e"), Err(EioDecodeError::Empty));
    }

    #[test]
    fn encodes_what_it_decodes() {
        for text in ["1", "2probe", "3probe", "4hello", "5", "6"] {
            assert_eq!(EioPacket::decode(text).expect("valid").to_string(), text);
        }
        assert_eq!(EioPacket::Open("{}".into()).to_string(), "0{}");
    }
}
