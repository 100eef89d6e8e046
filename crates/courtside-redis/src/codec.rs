//! How one publication travels over Redis pub/sub: a compact binary header, then the payload
//! bytes as the publisher sent them (no re-encoding of the JSON).
//!
//! ```text
//! u8  version (1)
//! u8  flags: bit 0 = removed, bit 1 = has key
//! u64 offset          (big-endian)
//! u64 time_ms         (big-endian)
//! u16 origin length, origin node id (UTF-8)
//! u16 epoch length,  epoch (UTF-8)
//! u32 key length,    key (UTF-8)        — only with the "has key" flag
//! ..  data (the rest of the message)
//! ```
//!
//! The channel is not in the message: it is the Redis channel the message arrived on.

use bytes::{BufMut, Bytes, BytesMut};

use courtside_core::channel::ChannelName;
use courtside_core::stream::{Epoch, Publication};

const VERSION: u8 = 1;
const FLAG_REMOVED: u8 = 0b01;
const FLAG_HAS_KEY: u8 = 0b10;
/// Bytes of the header before the variable-length fields.
const FIXED_HEADER_LEN: usize = 1 + 1 + 8 + 8;

/// Why a message from Redis could not be read as a publication.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message ends inside its header")]
    Truncated,
    #[error("unknown message version {0}")]
    UnknownVersion(u8),
    #[error("{0} is not valid UTF-8")]
    NotUtf8(&'static str),
}

/// Why a publication could not be put into a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("{0} is too long for the message header")]
    FieldTooLong(&'static str),
}

/// A publication as received, with the node that committed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedPublication {
    pub origin_node: String,
    pub publication: Publication,
}

/// Encodes `publication` as committed on `origin_node`. Fails only for fields longer than the
/// header can describe (an epoch or node id over 64 KiB, a key over 4 GiB).
pub fn encode(origin_node: &str, publication: &Publication) -> Result<Bytes, EncodeError> {
    let origin_len = u16::try_from(origin_node.len()).map_err(|_| EncodeError::FieldTooLong("origin node id"))?;
    let epoch = publication.epoch.as_str();
    let epoch_len = u16::try_from(epoch.len()).map_err(|_| EncodeError::FieldTooLong("epoch"))?;
    let key_len = match &publication.key {
        Some(key) => Some(u32::try_from(key.len()).map_err(|_| EncodeError::FieldTooLong("key"))?),
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
        + publication.data.len();
    let mut message = BytesMut::with_capacity(capacity);
    message.put_u8(VERSION);
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
    message.put_slice(&publication.data);
    Ok(message.freeze())
}

/// The node that committed the publication in `message`, read without copying the payload.
pub fn origin_node(message: &[u8]) -> Result<&str, DecodeError> {
    let mut reader = Reader { rest: message };
    let version = reader.u8()?;
    if version != VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    reader.take(FIXED_HEADER_LEN - 1)?;
    let origin_len = reader.u16()? as usize;
    reader.text(origin_len, "origin node id")
}

/// Reads a message that arrived on `channel`'s Redis channel.
pub fn decode(channel: ChannelName, message: &[u8]) -> Result<ReceivedPublication, DecodeError> {
    let mut reader = Reader { rest: message };
    let version = reader.u8()?;
    if version != VERSION {
        return Err(DecodeError::UnknownVersion(version));
    }
    let flags = reader.u8()?;
    let offset = reader.u64()?;
    let time_ms = reader.u64()?;
    let origin_len = reader.u16()? as usize;
    let origin_node = reader.text(origin_len, "origin node id")?.to_string();
    let epoch_len = reader.u16()? as usize;
    let epoch = Epoch::from_text(reader.text(epoch_len, "epoch")?);
    let key = if flags & FLAG_HAS_KEY != 0 {
        let key_len = reader.u32()? as usize;
        Some(reader.text(key_len, "key")?.to_string())
    } else {
        None
    };
    let publication = Publication {
        channel,
        epoch,
        offset,
        key,
        removed: flags & FLAG_REMOVED != 0,
        data: Bytes::copy_from_slice(reader.rest),
        time_ms,
    };
    Ok(ReceivedPublication { origin_node, publication })
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
            data: Bytes::from_static(b"{\"score\":[1,0]}"),
            time_ms: 1_700_000_000_123,
        }
    }

    #[test]
    fn publications_round_trip() {
        for original in [publication(None, false), publication(Some("home"), false), publication(Some(""), true)] {
            let message = encode("node-a", &original).unwrap();
            let received = decode(original.channel.clone(), &message).unwrap();
            assert_eq!(received.origin_node, "node-a");
            assert_eq!(received.publication, original);
            assert_eq!(origin_node(&message), Ok("node-a"));
        }
    }

    #[test]
    fn the_header_is_small() {
        let original = publication(None, false);
        let message = encode("node-a", &original).unwrap();
        assert_eq!(message.len() - original.data.len(), FIXED_HEADER_LEN + 2 + 6 + 2 + 8);
    }

    #[test]
    fn broken_messages_are_refused() {
        let channel = ChannelName::parse("match:7").unwrap();
        let message = encode("node-a", &publication(Some("home"), false)).unwrap();
        for len in 0..FIXED_HEADER_LEN + 2 + 6 + 2 + 8 + 4 + 4 {
            assert_eq!(decode(channel.clone(), &message[..len]), Err(DecodeError::Truncated), "cut at {len}");
        }
        let mut future = message.to_vec();
        future[0] = 9;
        assert_eq!(decode(channel.clone(), &future), Err(DecodeError::UnknownVersion(9)));
        let mut bad_origin = message.to_vec();
        bad_origin[FIXED_HEADER_LEN + 2] = 0xff;
        assert_eq!(decode(channel, &bad_origin), Err(DecodeError::NotUtf8("origin node id")));
    }
}
