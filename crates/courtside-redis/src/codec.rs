//! How a publication or a join/leave travels over Redis pub/sub. A publication is a compact
//! binary header, then the payload bytes as the publisher sent them (no re-encoding of the JSON):
//!
//! ```text
//! u8  kind (1: publication, 3: publication with an event name)
//! u8  flags: bit 0 = removed, bit 1 = has key
//! u64 offset          (big-endian)
//! u64 time_ms         (big-endian)
//! u16 origin length, origin node id (UTF-8)
//! u16 epoch length,  epoch (UTF-8)
//! u32 key length,    key (UTF-8)        — only with the "has key" flag
//! u16 event length,  event name (UTF-8) — only in kind 3
//! ..  data (the rest of the message)
//! ```
//!
//! A publication without an event name is still kind 1, as the previous release wrote it, so
//! nodes of both releases read each other's during a rolling upgrade (an older node counts a
//! kind 3 message as malformed, and its position check reads the publication from the store).
//!
//! A join or leave:
//!
//! ```text
//! u8  kind (2: presence)
//! u8  joined (1) or left (0)
//! u16 origin length, origin node id (UTF-8)
//! u16 client length, client id (UTF-8)
//! u16 user length,   user (UTF-8)
//! ```
//!
//! The channel is not in the message: it is the Redis channel the message arrived on.

use bytes::{BufMut, Bytes, BytesMut};

use courtside_core::broker::relay::Relayed;
use courtside_core::channel::ChannelName;
use courtside_core::hub::PresenceEvent;
use courtside_core::presence::{ClientInfo, PresenceInfo};
use courtside_core::stream::{Epoch, Publication};

const KIND_PUBLICATION: u8 = 1;
const KIND_PRESENCE: u8 = 2;
const KIND_NAMED_PUBLICATION: u8 = 3;
const FLAG_REMOVED: u8 = 0b01;
const FLAG_HAS_KEY: u8 = 0b10;
/// Bytes of the header before the variable-length fields.
const FIXED_HEADER_LEN: usize = 1 + 1 + 8 + 8;

/// Why a message from Redis could not be read as a publication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message ends inside its header")]
    Truncated,
    #[error("unknown message kind {0}")]
    UnknownKind(u8),
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
    #[error("the {0} is invalid")]
    Invalid(&'static str),
}

/// Why a publication could not be put into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{0} is too long for the message header")]
    FieldTooLong(&'static str),
}

/// A message as received, with the node that sent it.
#[derive(Debug, Clone)]
pub struct Received {
    pub origin_node: String,
    pub relayed: Relayed,
}

/// Encodes `relayed` as sent by `origin_node`. Fails only for fields longer than the header can
/// describe (an epoch, node id, client id, user or event name over 64 KiB, a key over 4 GiB).
pub fn encode(origin_node: &str, relayed: &Relayed) -> Result<Bytes, EncodeError> {
    match relayed {
        Relayed::Publication(publication) => encode_publication(origin_node, publication),
        Relayed::Presence(event) => encode_presence(origin_node, event),
    }
}

fn short_len(text: &str, field: &'static str) -> Result<u16, EncodeError> {
    u16::try_from(text.len()).map_err(|_| EncodeError::FieldTooLong(field))
}

fn encode_presence(origin_node: &str, event: &PresenceEvent) -> Result<Bytes, EncodeError> {
    // Presence info travels as JSON after the user, only when the client gave some.
    let info = if event.client.info.is_empty() { String::new() } else { serde_json::to_string(&event.client.info).unwrap_or_default() };
    let mut fields = vec![
        (origin_node, short_len(origin_node, "origin node id")?),
        (event.client.client.as_str(), short_len(&event.client.client, "client id")?),
        (event.client.user.as_str(), short_len(&event.client.user, "user")?),
    ];
    if !info.is_empty() {
        fields.push((info.as_str(), short_len(&info, "presence info")?));
    }
    let mut message = BytesMut::with_capacity(2 + fields.iter().map(|(text, _)| 2 + text.len()).sum::<usize>());
    message.put_u8(KIND_PRESENCE);
    message.put_u8(u8::from(event.joined));
    for (text, len) in fields {
        message.put_u16(len);
        message.put_slice(text.as_bytes());
    }
    Ok(message.freeze())
}

fn encode_publication(origin_node: &str, publication: &Publication) -> Result<Bytes, EncodeError> {
    let origin_len = short_len(origin_node, "origin node id")?;
    let epoch = publication.epoch.as_str();
    let epoch_len = short_len(epoch, "epoch")?;
    let key_len = match &publication.key {
        Some(key) => Some(u32::try_from(key.len()).map_err(|_| EncodeError::FieldTooLong("key"))?),
        None => None,
    };
    let event = match &publication.event {
        Some(event) => Some((event.as_str(), short_len(event, "event name")?)),
        None => None,
    };
    let mut flags = 0;
    if publication.removed {
        flags |= FLAG_REMOVED;
    }
    if key_len.is_some() {
        flags |= FLAG_HAS_KEY;
    }
    let capacity = FIXED_HEADER_LEN
        + 2
        + origin_node.len()
        + 2
        + epoch.len()
        + key_len.map_or(0, |len| 4 + len as usize)
        + event.map_or(0, |(event, _)| 2 + event.len())
        + publication.data.len();
    let mut message = BytesMut::with_capacity(capacity);
    message.put_u8(if event.is_some() { KIND_NAMED_PUBLICATION } else { KIND_PUBLICATION });
    message.put_u8(flags);
    message.put_u64(publication.offset);
    message.put_u64(publication.time_ms);
    message.put_u16(origin_len);
    message.put_slice(origin_node.as_bytes());
    message.put_u16(epoch_len);
    message.put_slice(epoch.as_bytes());
    if let (Some(len), Some(key)) = (key_len, &publication.key) {
        message.put_u32(len);
        message.put_slice(key.as_bytes());
    }
    if let Some((event, len)) = event {
        message.put_u16(len);
        message.put_slice(event.as_bytes());
    }
    message.put_slice(&publication.data);
    Ok(message.freeze())
}

/// The node that sent `message`, read without copying the payload.
pub fn origin_node(message: &[u8]) -> Result<&str, DecodeError> {
    let mut reader = Reader { rest: message };
    match reader.u8()? {
        KIND_PUBLICATION | KIND_NAMED_PUBLICATION => reader.take(FIXED_HEADER_LEN - 1)?,
        KIND_PRESENCE => reader.take(1)?,
        kind => return Err(DecodeError::UnknownKind(kind)),
    };
    reader.short_text("origin node id")
}

/// Reads a message that arrived on `channel`'s Redis channel.
pub fn decode(channel: ChannelName, message: &[u8]) -> Result<Received, DecodeError> {
    let mut reader = Reader { rest: message };
    match reader.u8()? {
        KIND_PUBLICATION => decode_publication(channel, reader, false),
        KIND_NAMED_PUBLICATION => decode_publication(channel, reader, true),
        KIND_PRESENCE => {
            let joined = reader.u8()? != 0;
            let origin_node = reader.short_text("origin node id")?.to_string();
            let client = reader.short_text("client id")?.to_string();
            let user = reader.short_text("user")?.to_string();
            // Presence info follows as JSON when the client gave any (older nodes stop before it).
            let info = if reader.rest.is_empty() {
                PresenceInfo::default()
            } else {
                serde_json::from_str(reader.short_text("presence info")?).map_err(|_| DecodeError::Invalid("presence info"))?
            };
            let event = PresenceEvent { channel, joined, client: ClientInfo { client, user, info } };
            Ok(Received { origin_node, relayed: Relayed::Presence(event) })
        }
        kind => Err(DecodeError::UnknownKind(kind)),
    }
}

fn decode_publication(channel: ChannelName, mut reader: Reader<'_>, named: bool) -> Result<Received, DecodeError> {
    let flags = reader.u8()?;
    let offset = reader.u64()?;
    let time_ms = reader.u64()?;
    let origin_node = reader.short_text("origin node id")?.to_string();
    let epoch = Epoch::from_text(reader.short_text("epoch")?);
    let key = if flags & FLAG_HAS_KEY != 0 {
        let key_len = reader.u32()? as usize;
        Some(reader.text(key_len, "key")?.to_string())
    } else {
        None
    };
    let event = if named { Some(reader.short_text("event name")?.to_string()) } else { None };
    let publication = Publication {
        channel,
        epoch,
        offset,
        key,
        removed: flags & FLAG_REMOVED != 0,
        event,
        data: Bytes::copy_from_slice(reader.rest),
        time_ms,
    };
    Ok(Received { origin_node, relayed: Relayed::Publication(publication) })
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.rest.len() < len {
            return Err(DecodeError::Truncated);
        }
        let (taken, rest) = self.rest.split_at(len);
        self.rest = rest;
        Ok(taken)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let mut array = [0; N];
        array.copy_from_slice(self.take(N)?);
        Ok(array)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }

    fn text(&mut self, len: usize, field: &'static str) -> Result<&'a str, DecodeError> {
        std::str::from_utf8(self.take(len)?).map_err(|_| DecodeError::NotUtf8(field))
    }

    /// A text field behind a `u16` length.
    fn short_text(&mut self, field: &'static str) -> Result<&'a str, DecodeError> {
        let len = self.u16()? as usize;
        self.text(len, field)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publication(key: Option<&str>, removed: bool) -> Publication {
        Publication {
            channel: ChannelName::parse("match:7").unwrap(),
            epoch: Epoch::from_text("k3v9q2xa"),
            offset: 42,
            key: key.map(str::to_string),
            removed,
            event: None,
            data: Bytes::from_static(b"{\"score\":[1,0]}"),
            time_ms: 1_700_000_000_123,
        }
    }

    fn decoded_publication(channel: ChannelName, message: &[u8]) -> Result<(String, Publication), DecodeError> {
        let received = decode(channel, message)?;
        match received.relayed {
            Relayed::Publication(publication) => Ok((received.origin_node, publication)),
            Relayed::Presence(event) => panic!("a publication came back as {event:?}"),
        }
    }

    #[test]
    fn publications_round_trip() {
        let named = |event: &str, key| Publication { event: Some(event.into()), ..publication(key, false) };
        for original in [
            publication(None, false),
            publication(Some("home"), false),
            publication(Some(""), true),
            named("match:created", None),
            named("goal", Some("home")),
        ] {
            let message = encode("node-a", &Relayed::Publication(original.clone())).unwrap();
            let (origin, decoded) = decoded_publication(original.channel.clone(), &message).unwrap();
            assert_eq!(origin, "node-a");
            assert_eq!(decoded, original);
            assert_eq!(origin_node(&message), Ok("node-a"));
        }
    }

    #[test]
    fn only_publications_with_an_event_name_change_the_kind() {
        let unnamed = encode("node-a", &Relayed::Publication(publication(None, false))).unwrap();
        assert_eq!(unnamed[0], KIND_PUBLICATION, "what the previous release reads");
        let named = Publication { event: Some("goal".into()), ..publication(Some("home"), false) };
        let message = encode("node-a", &Relayed::Publication(named.clone())).unwrap();
        assert_eq!(message[0], KIND_NAMED_PUBLICATION);
        assert_eq!(origin_node(&message), Ok("node-a"));
        let header_len = message.len() - named.data.len();
        for len in 0..header_len {
            assert_eq!(decoded_publication(named.channel.clone(), &message[..len]), Err(DecodeError::Truncated), "cut at {len}");
        }
    }

    #[test]
    fn joins_and_leaves_round_trip() {
        let channel = ChannelName::parse("court:3").unwrap();
        for joined in [true, false] {
            let client = ClientInfo::new("n1-17", "zoë");
            let event = PresenceEvent { channel: channel.clone(), joined, client };
            let message = encode("node-b", &Relayed::Presence(event)).unwrap();
            assert_eq!(origin_node(&message), Ok("node-b"));
            let received = decode(channel.clone(), &message).unwrap();
            assert_eq!(received.origin_node, "node-b");
            let Relayed::Presence(decoded) = received.relayed else { panic!("not a presence event") };
            assert_eq!((decoded.joined, decoded.client.client.as_str(), decoded.client.user.as_str()), (joined, "n1-17", "zoë"));
            for len in 0..message.len() {
                assert_eq!(decode(channel.clone(), &message[..len]).err(), Some(DecodeError::Truncated), "cut at {len}");
            }
        }
    }

    #[test]
    fn the_header_is_small() {
        let original = publication(None, false);
        let message = encode("node-a", &Relayed::Publication(original.clone())).unwrap();
        assert_eq!(message.len() - original.data.len(), FIXED_HEADER_LEN + 2 + 6 + 2 + 8);
    }

    #[test]
    fn broken_messages_are_refused() {
        let channel = ChannelName::parse("match:7").unwrap();
        let message = encode("node-a", &Relayed::Publication(publication(Some("home"), false))).unwrap();
        for len in 0..FIXED_HEADER_LEN + 2 + 6 + 2 + 8 + 4 + 4 {
            assert_eq!(decoded_publication(channel.clone(), &message[..len]), Err(DecodeError::Truncated), "cut at {len}");
        }
        let mut future = message.to_vec();
        future[0] = 9;
        assert_eq!(decoded_publication(channel.clone(), &future), Err(DecodeError::UnknownKind(9)));
        let mut bad_origin = message.to_vec();
        bad_origin[FIXED_HEADER_LEN + 2] = 0xff;
        assert_eq!(decoded_publication(channel, &bad_origin), Err(DecodeError::NotUtf8("origin node id")));
    }
}
