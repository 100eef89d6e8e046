//! Socket.IO 5 packets, carried in Engine.IO messages: `<type>[<nsp>,][<ack id>][<json>]`.
//!
//! A client sends CONNECT (with its `auth` object), EVENT (an array: the event name, then its
//! arguments; with an id when it wants an ACK), ACK (the answer to a server event that asked for
//! one) and DISCONNECT. Binary packets (types 5 and 6) are refused: Courtside carries JSON.
//! Events are kept as raw JSON text here; the socket layer reads the arguments it expects.

use serde_json::value::RawValue;

/// Longest namespace accepted, in bytes.
const NAMESPACE_LEN_MAX: usize = 256;

/// A decoded client packet, borrowing from the Engine.IO message.
#[derive(Debug)]
pub struct SioPacket<'a> {
    pub namespace: &'a str,
    pub kind: SioKind<'a>,
}

#[derive(Debug)]
pub enum SioKind<'a> {
    /// Joins a namespace; the data is the client's `auth` object, if any.
    Connect(Option<&'a RawValue>),
    Disconnect,
    /// An event: its name, its arguments (raw JSON each), and the ack id if the client waits for
    /// an answer.
    Event { name: String, args: Vec<&'a RawValue>, ack: Option<u64> },
    /// The client's answer to a server event sent with an ack id.
    Ack { id: u64, args: Vec<&'a RawValue> },
}

/// Why a message is not a Socket.IO packet Courtside accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SioDecodeError {
    #[error("empty packet")]
    Empty,
    #[error("unknown packet type {0:?}")]
    UnknownType(char),
    #[error("binary packets are not supported")]
    Binary,
    #[error("a client may not send connect_error")]
    ConnectErrorFromClient,
    #[error("namespace is not terminated by `,` or is too long")]
    Namespace,
    #[error("ack id is too large")]
    AckId,
    #[error("an event must be a JSON array starting with the event name")]
    EventShape,
    #[error("an ack needs an id and an array of arguments")]
    AckShape,
    #[error("connect data must be a JSON object")]
    ConnectShape,
    #[error("invalid JSON: {0}")]
    Json(String),
}

impl<'a> SioPacket<'a> {
    pub fn decode(text: &'a str) -> Result<Self, SioDecodeError> {
        let kind = text.chars().next().ok_or(SioDecodeError::Empty)?;
        let mut rest = &text[kind.len_utf8()..];
        if matches!(kind, '5' | '6') {
            return Err(SioDecodeError::Binary);
        }
        if kind == '4' {
            return Err(SioDecodeError::ConnectErrorFromClient);
        }
        if !matches!(kind, '0'..='3') {
            return Err(SioDecodeError::UnknownType(kind));
        }
        let mut namespace = "/";
        if rest.starts_with('/') {
            let end = rest.find(',').ok_or(SioDecodeError::Namespace)?;
            if end > NAMESPACE_LEN_MAX {
                return Err(SioDecodeError::Namespace);
            }
            namespace = &rest[..end];
            rest = &rest[end + 1..];
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let ack = match digits {
            0 => None,
            _ => Some(rest[..digits].parse::<u64>().map_err(|_| SioDecodeError::AckId)?),
        };
        let json = &rest[digits..];
        let kind = match kind {
            '0' => {
                if ack.is_some() {
                    return Err(SioDecodeError::ConnectShape);
                }
                SioKind::Connect(match json.is_empty() {
                    true => None,
                    false => {
                        let data: &RawValue = parse(json)?;
                        if !data.get().trim_start().starts_with('{') {
                            return Err(SioDecodeError::ConnectShape);
                        }
                        Some(data)
                    }
                })
            }
            '1' => SioKind::Disconnect,
            '2' => {
                let mut items: Vec<&RawValue> = parse(json).map_err(|_| SioDecodeError::EventShape)?;
                if items.is_empty() {
                    return Err(SioDecodeError::EventShape);
                }
                let name: String = serde_json::from_str(items[0].get()).map_err(|_| SioDecodeError::EventShape)?;
                items.remove(0);
                SioKind::Event { name, args: items, ack }
            }
            _ => {
                let id = ack.ok_or(SioDecodeError::AckShape)?;
                let args: Vec<&RawValue> = parse(json).map_err(|_| SioDecodeError::AckShape)?;
                SioKind::Ack { id, args }
            }
        };
        Ok(SioPacket { namespace, kind })
    }
}

fn parse<'a, T: serde::Deserialize<'a>>(json: &'a str) -> Result<T, SioDecodeError> {
    serde_json::from_str(json).map_err(|error| SioDecodeError::Json(error.to_string()))
}

/// Server-to-client packets, written straight into an Engine.IO message (`4` included).
pub mod encode {
    use std::fmt::Write;

    /// `40{"sid":…,"pid":…}`: the namespace `/` accepted the connection.
    pub fn connect(out: &mut String, sid: &str, pid: &str) {
        out.push_str("40{\"sid\":");
        push_json_string(out, sid);
        out.push_str(",\"pid\":");
        push_json_string(out, pid);
        out.push('}');
    }

    /// `44{"message":…,"data":…}`: the connection was refused.
    pub fn connect_error(out: &mut String, namespace: &str, message: &str, data: &serde_json::Value) {
        out.push_str("44");
        namespace_prefix(out, namespace);
        out.push_str("{\"message\":");
        push_json_string(out, message);
        out.push_str(",\"data\":");
        out.push_str(&data.to_string());
        out.push('}');
    }

    /// `41`: the server ends the namespace connection.
    pub fn disconnect(out: &mut String) {
        out.push_str("41");
    }

    /// `42["name",` — the caller appends the arguments, separated by `,`, then [`event_end`].
    pub fn event_start(out: &mut String, name: &str) {
        out.push_str("42[");
        push_json_string(out, name);
    }

    /// `43<id>[` — the caller appends the arguments, then [`event_end`].
    pub fn ack_start(out: &mut String, id: u64) {
        let _ = write!(out, "43{id}[");
    }

    /// Closes an event or ack array.
    pub fn event_end(out: &mut String) {
        out.push(']');
    }

    /// A JSON string, escaped.
    pub fn push_json_string(out: &mut String, text: &str) {
        let _ = serde_json::to_writer(StringWriter(out), text);
    }

    fn namespace_prefix(out: &mut String, namespace: &str) {
        if namespace != "/" {
            out.push_str(namespace);
            out.push(',');
        }
    }

    /// Lets `serde_json` write into a `String` (it writes valid UTF-8, checked on the way in).
    struct StringWriter<'a>(&'a mut String);

    impl std::io::Write for StringWriter<'_> {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let text = std::str::from_utf8(bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
            self.0.push_str(text);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(text: &str) -> (String, Vec<String>, Option<u64>) {
        match SioPacket::decode(text).expect("valid").kind {
            SioKind::Event { name, args, ack } => (name, args.iter().map(|a| a.get().to_string()).collect(), ack),
            other => panic!("not an event: {other:?}"),
        }
    }

    #[test]
    fn decodes_connect_with_and_without_auth() {
        let packet = SioPacket::decode("0").expect("valid");
        assert!(matches!(packet.kind, SioKind::Connect(None)) && packet.namespace == "/");
        let packet = SioPacket::decode("0{\"token\":\"x\",\"pid\":\"p\",\"offset\":\"o\"}").expect("valid");
        let SioKind::Connect(Some(auth)) = packet.kind else { panic!("connect with auth") };
        assert!(auth.get().contains("\"token\""));
        let packet = SioPacket::decode("0/admin,{}").expect("valid");
        assert_eq!(packet.namespace, "/admin");
        assert_eq!(SioPacket::decode("0[1]").unwrap_err(), SioDecodeError::ConnectShape);
        assert_eq!(SioPacket::decode("0/admin").unwrap_err(), SioDecodeError::Namespace);
    }

    #[test]
    fn decodes_events_with_arguments_and_ack_ids() {
        assert_eq!(event("2[\"subscribe_scoreboard\"]"), ("subscribe_scoreboard".into(), vec![], None));
        assert_eq!(
            event("212[\"subscribe\",{\"channel\":\"match:1\"}]"),
            ("subscribe".into(), vec!["{\"channel\":\"match:1\"}".into()], Some(12))
        );
        assert_eq!(event("2/,3[\"a\",1,\"b\"]"), ("a".into(), vec!["1".into(), "\"b\"".into()], Some(3)));
        for bad in ["2", "2[]", "2[1]", "2{\"a\":1}", "2[\"a\"", "299999999999999999999999[\"a\"]"] {
            assert!(SioPacket::decode(bad).is_err(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn decodes_acks_and_refuses_binary_and_connect_error() {
        let SioKind::Ack { id, args } = SioPacket::decode("35[\"ok\"]").expect("valid").kind else { panic!("ack") };
        assert_eq!((id, args.len()), (5, 1));
        assert_eq!(SioPacket::decode("3[\"ok\"]").unwrap_err(), SioDecodeError::AckShape);
        assert_eq!(SioPacket::decode("51-[\"a\",{\"_placeholder\":true,\"num\":0}]").unwrap_err(), SioDecodeError::Binary);
        assert_eq!(SioPacket::decode("4{}").unwrap_err(), SioDecodeError::ConnectErrorFromClient);
        assert_eq!(SioPacket::decode("7").unwrap_err(), SioDecodeError::UnknownType('7'));
        assert!(matches!(SioPacket::decode("1").expect("valid").kind, SioKind::Disconnect));
    }

    #[test]
    fn encodes_server_packets() {
        let mut out = String::new();
        encode::connect(&mut out, "s1", "p1");
        assert_eq!(out, "40{\"sid\":\"s1\",\"pid\":\"p1\"}");
        out.clear();
        encode::event_start(&mut out, "score \"live\"");
        out.push(',');
        out.push_str("{\"home\":1}");
        encode::event_end(&mut out);
        assert_eq!(out, "42[\"score \\\"live\\\"\",{\"home\":1}]");
        out.clear();
        encode::ack_start(&mut out, 7);
        out.push_str("null");
        encode::event_end(&mut out);
        assert_eq!(out, "437[null]");
        out.clear();
        encode::connect_error(&mut out, "/", "bad token", &serde_json::Value::Null);
        assert_eq!(out, "44{\"message\":\"bad token\",\"data\":null}");
    }
}
