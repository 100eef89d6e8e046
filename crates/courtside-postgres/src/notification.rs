//! How one publication travels as a PostgreSQL notification: the notification channel a
//! Courtside channel maps to, and the text payload.
//!
//! # Notification channels
//! `LISTEN` takes an identifier (at most 63 bytes) and Courtside channel names are up to 200
//! bytes, so each Courtside channel maps to `{prefix}_{hash}`: the 64-bit FNV-1a hash of the
//! channel name, in 16 lowercase hex digits. Several Courtside channels may share a notification
//! channel; receivers read the channel name from the payload and drop the ones they do not
//! follow.
//!
//! # Payload
//! NOTIFY payloads are text (in the server encoding, no NUL) shorter than 8000 bytes. A
//! payload is one header line, then its text fields back to back, sized by the header:
//!
//! ```text
//! {version}{kind} {seq} {offset} {time_ms} {removed} {origin len} {channel len} {epoch len} {key len | -}\n
//! {origin}{channel}{epoch}{key}{data}
//! ```
//!
//! A publication with an event name is sent as version `2`: its header has a tenth field, the
//! event name's length, and the event name follows the key:
//!
//! ```text
//! 2{kind} {seq} {offset} {time_ms} {removed} {origin len} {channel len} {epoch len} {key len | -} {event len}\n
//! {origin}{channel}{epoch}{key}{event}{data}
//! ```
//!
//! Everything else is still sent as version `1`, so nodes of the previous release keep reading
//! it during a rolling upgrade (a version `2` payload they count as malformed, and their
//! position check reads the publication from the store).
//!
//! - version `1` or `2`; kind `T` (data as sent, text), `B` (data in base64: it is not text, or not
//!   ASCII on a server whose encoding is not UTF-8), `R` (a reference: no epoch, key or data) or
//!   `P` (a join or leave: the epoch field holds the client id, the key field the user, the
//!   `removed` field is `1` for a join and `0` for a leave; offset and time are `0`, no data).
//! - `seq` counts the sending node's notifications. It keeps two equal publications (offset 0)
//!   distinct: PostgreSQL folds identical notifications of one transaction into one.
//! - lengths are in bytes; `removed` is `0` or `1`; a key length of `-` means no key.
//!
//! A publication whose payload would be too long, or whose key or epoch cannot be sent as text,
//! goes as a reference: its channel and offset only. The receiver then reads it from the store
//! (the sequencer's position check). Publications without an offset (ephemeral channels) cannot
//! be read back, so they cannot travel as references.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;

use courtside_core::broker::relay::Relayed;
use courtside_core::channel::ChannelName;
use courtside_core::hub::PresenceEvent;
use courtside_core::presence::{ClientInfo, PresenceInfo};
use courtside_core::stream::{Epoch, Publication};

/// The payload version of everything without an event name.
const VERSION: char = '1';
/// The payload version of a publication with an event name (one more header field).
const VERSION_WITH_EVENT: char = '2';
/// Fields of a version 1 header line, the version and kind included.
const HEADER_FIELDS: usize = 9;

/// The PostgreSQL notification channel of `channel`: `{prefix}_{16 hex digits}`.
pub(crate) fn notification_channel(prefix: &str, channel: &ChannelName) -> String {
    format!("{prefix}_{:016x}", fnv1a_64(channel.as_str().as_bytes()))
}

/// FNV-1a, 64 bit: fixed by its definition, so every node and build maps channels alike.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// What a notification carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Carried {
    /// The whole publication.
    Publication(Publication),
    /// Only where it is: the receiver reads it from the store.
    Reference { channel: ChannelName, offset: u64 },
    /// A join or leave.
    Presence(PresenceEvent),
}

/// A decoded notification and the node that sent it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Received {
    pub(crate) origin_node: String,
    pub(crate) carried: Carried,
}

/// How an encoded publication travels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Encoded {
    Full(String),
    Reference(String),
    /// Neither fits: too long or not text, and without an offset to read it back by.
    Impossible(&'static str),
}

/// Why a payload could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum DecodeError {
    #[error("the payload has no header line")]
    NoHeader,
    #[error("unknown payload version or kind {0:?}")]
    UnknownKind(String),
    #[error("malformed header field {0}")]
    BadHeader(&'static str),
    #[error("the payload ends inside its {0}")]
    Truncated(&'static str),
    #[error("the {0} is invalid")]
    Invalid(&'static str),
}

/// What the server accepts as text: no NUL, and only ASCII unless the server encoding is UTF-8.
fn is_sendable(text: &str, ascii_only: bool) -> bool {
    !text.contains('\0') && (!ascii_only || text.is_ascii())
}

/// Encodes `relayed` sent by `origin_node` (printable ASCII) as notification number `seq`, at
/// most `payload_max` bytes long; `ascii_only` when the server encoding is not UTF-8.
pub(crate) fn encode(origin_node: &str, seq: u64, relayed: &Relayed, payload_max: usize, ascii_only: bool) -> Encoded {
    match relayed {
        Relayed::Publication(publication) => encode_publication(origin_node, seq, publication, payload_max, ascii_only),
        Relayed::Presence(event) => encode_presence(origin_node, seq, event, payload_max, ascii_only),
    }
}

fn encode_presence(origin_node: &str, seq: u64, event: &PresenceEvent, payload_max: usize, ascii_only: bool) -> Encoded {
    let (client, user) = (event.client.client.as_str(), event.client.user.as_str());
    if !is_sendable(client, ascii_only) || !is_sendable(user, ascii_only) {
        return Encoded::Impossible("its client id or user cannot be sent as text");
    }
    // The header's fields, reused: `removed` carries "joined", epoch and key the client and user.
    let shape = Publication {
        channel: event.channel.clone(),
        epoch: Epoch::default(),
        offset: 0,
        key: None,
        removed: event.joined,
        event: None,
        data: Bytes::new(),
        time_ms: 0,
    };
    let mut payload = header('P', seq, &shape, origin_node, client, Some(user));
    for field in [origin_node, event.channel.as_str(), client, user] {
        payload.push_str(field);
    }
    // Presence info, as JSON where a publication carries its data (nothing when none was given).
    if !event.client.info.is_empty() {
        let info = serde_json::to_string(&event.client.info).unwrap_or_default();
        if !is_sendable(&info, ascii_only) {
            return Encoded::Impossible("its presence info cannot be sent as text");
        }
        payload.push_str(&info);
    }
    if payload.len() > payload_max {
        return Encoded::Impossible("too long for a notification");
    }
    Encoded::Full(payload)
}

fn encode_publication(
    origin_node: &str,
    seq: u64,
    publication: &Publication,
    payload_max: usize,
    ascii_only: bool,
) -> Encoded {
    let epoch = publication.epoch.as_str();
    let key = publication.key.as_deref();
    let event = publication.event.as_deref();
    let text_fields_sendable = is_sendable(epoch, ascii_only)
        && key.is_none_or(|key| is_sendable(key, ascii_only))
        && event.is_none_or(|event| is_sendable(event, ascii_only));
    if text_fields_sendable {
        let data_as_text = std::str::from_utf8(&publication.data).ok().filter(|data| is_sendable(data, ascii_only));
        let kind = if data_as_text.is_some() { 'T' } else { 'B' };
        let encoded_data_len = match data_as_text {
            Some(text) => text.len(),
            None => publication.data.len().div_ceil(3) * 4,
        };
        let header = header(kind, seq, publication, origin_node, epoch, key);
        let len = header.len() + origin_node.len() + publication.channel.as_str().len() + epoch.len()
            + key.map_or(0, str::len)
            + event.map_or(0, str::len)
            + encoded_data_len;
        if len <= payload_max {
            let mut payload = String::with_capacity(len);
            payload.push_str(&header);
            payload.push_str(origin_node);
            payload.push_str(publication.channel.as_str());
            payload.push_str(epoch);
            payload.push_str(key.unwrap_or_default());
            payload.push_str(event.unwrap_or_default());
            match data_as_text {
                Some(text) => payload.push_str(text),
                None => BASE64.encode_string(&publication.data, &mut payload),
            }
            return Encoded::Full(payload);
        }
    }
    if publication.offset == 0 {
        return Encoded::Impossible(if text_fields_sendable {
            "too long for a notification"
        } else {
            "its key or epoch cannot be sent as text"
        });
    }
    let reference =
        Publication { epoch: Epoch::default(), key: None, event: None, data: Bytes::new(), ..publication.clone() };
    let mut payload = header('R', seq, &reference, origin_node, "", None);
    payload.push_str(origin_node);
    payload.push_str(publication.channel.as_str());
    if payload.len() > payload_max {
        return Encoded::Impossible("even a reference is too long for a notification");
    }
    Encoded::Reference(payload)
}

/// The header line; a publication's event name (never that of a reference or a join/leave, whose
/// `publication` carries none) makes it a version 2 header.
fn header(kind: char, seq: u64, publication: &Publication, origin: &str, epoch: &str, key: Option<&str>) -> String {
    let key_len = key.map_or_else(|| "-".to_string(), |key| key.len().to_string());
    let (version, event_len) = match &publication.event {
        Some(event) => (VERSION_WITH_EVENT, format!(" {}", event.len())),
        None => (VERSION, String::new()),
    };
    format!(
        "{version}{kind} {seq} {} {} {} {} {} {} {key_len}{event_len}\n",
        publication.offset,
        publication.time_ms,
        u8::from(publication.removed),
        origin.len(),
        publication.channel.as_str().len(),
        epoch.len(),
    )
}

/// The parsed header line and the fields after it.
struct Parts<'a> {
    kind: char,
    offset: u64,
    time_ms: u64,
    removed: bool,
    origin: &'a str,
    channel: &'a str,
    epoch: &'a str,
    key: Option<&'a str>,
    event: Option<&'a str>,
    data: &'a str,
}

fn number<T: std::str::FromStr>(field: Option<&str>, name: &'static str) -> Result<T, DecodeError> {
    field.and_then(|text| text.parse().ok()).ok_or(DecodeError::BadHeader(name))
}

fn split(payload: &str) -> Result<Parts<'_>, DecodeError> {
    let (header, mut rest) = payload.split_once('\n').ok_or(DecodeError::NoHeader)?;
    let fields: Vec<&str> = header.split(' ').collect();
    let mut chars = fields[0].chars();
    let (Some(version @ (VERSION | VERSION_WITH_EVENT)), Some(kind @ ('T' | 'B' | 'R' | 'P')), None) =
        (chars.next(), chars.next(), chars.next())
    else {
        return Err(DecodeError::UnknownKind(fields[0].to_string()));
    };
    let with_event = version == VERSION_WITH_EVENT;
    if fields.len() != HEADER_FIELDS + usize::from(with_event) || (with_event && !matches!(kind, 'T' | 'B')) {
        return Err(DecodeError::BadHeader("count"));
    }
    let _seq: u64 = number(Some(fields[1]), "seq")?;
    let offset = number(Some(fields[2]), "offset")?;
    let time_ms = number(Some(fields[3]), "time")?;
    let removed = match fields[4] {
        "0" => false,
        "1" => true,
        _ => return Err(DecodeError::BadHeader("removed")),
    };
    let mut take = |len: usize, name: &'static str| -> Result<&str, DecodeError> {
        let taken = rest.get(..len).ok_or(DecodeError::Truncated(name))?;
        rest = &rest[len..];
        Ok(taken)
    };
    let origin = take(number(Some(fields[5]), "origin length")?, "origin")?;
    let channel = take(number(Some(fields[6]), "channel length")?, "channel")?;
    let epoch = take(number(Some(fields[7]), "epoch length")?, "epoch")?;
    let key = match fields[8] {
        "-" => None,
        len => Some(take(number(Some(len), "key length")?, "key")?),
    };
    let event = match fields.get(HEADER_FIELDS) {
        Some(len) => Some(take(number(Some(len), "event length")?, "event")?),
        None => None,
    };
    Ok(Parts { kind, offset, time_ms, removed, origin, channel, epoch, key, event, data: rest })
}

/// The node that sent `payload`, read without decoding the rest.
pub(crate) fn origin_node(payload: &str) -> Result<&str, DecodeError> {
    Ok(split(payload)?.origin)
}

pub(crate) fn decode(payload: &str) -> Result<Received, DecodeError> {
    let parts = split(payload)?;
    let channel = ChannelName::parse(parts.channel).map_err(|_| DecodeError::Invalid("channel name"))?;
    let carried = match parts.kind {
        'R' => Carried::Reference { channel, offset: parts.offset },
        'P' => Carried::Presence(PresenceEvent {
            channel,
            joined: parts.removed,
            client: ClientInfo {
                client: parts.epoch.to_string(),
                user: parts.key.unwrap_or_default().to_string(),
                // Carried as JSON where a publication carries its data (empty: none).
                info: if parts.data.is_empty() { PresenceInfo::default() } else { serde_json::from_str(parts.data).map_err(|_| DecodeError::Invalid("presence info"))? },
            },
        }),
        kind => {
            let data = if kind == 'T' {
                Bytes::copy_from_slice(parts.data.as_bytes())
            } else {
                Bytes::from(BASE64.decode(parts.data).map_err(|_| DecodeError::Invalid("base64 data"))?)
            };
            Carried::Publication(Publication {
                channel,
                epoch: Epoch::from_text(parts.epoch),
                offset: parts.offset,
                key: parts.key.map(str::to_string),
                removed: parts.removed,
                event: parts.event.map(str::to_string),
                data,
                time_ms: parts.time_ms,
            })
        }
    };
    Ok(Received { origin_node: parts.origin.to_string(), carried })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: usize = 7_999;

    fn publication(key: Option<&str>, removed: bool, data: &[u8]) -> Publication {
        Publication {
            channel: ChannelName::parse("match:7").unwrap(),
            epoch: Epoch::from_text("k3v9q2xa"),
            offset: 42,
            key: key.map(str::to_string),
            removed,
            event: None,
            data: Bytes::copy_from_slice(data),
            time_ms: 1_700_000_000_123,
        }
    }

    fn full(encoded: Encoded) -> String {
        match encoded {
            Encoded::Full(payload) => payload,
            other => panic!("expected a full payload, got {other:?}"),
        }
    }

    #[test]
    fn publications_round_trip() {
        for original in [
            publication(None, false, b"{\"score\":[1,0]}"),
            publication(Some("home"), false, "{\"name\":\"Zoë\"}".as_bytes()),
            publication(Some(""), true, b"null"),
            publication(Some("k\ney 2"), false, b"line\nbreak \x01"),
            publication(None, false, b""),
            Publication { event: Some("match:created".into()), ..publication(Some("home"), false, b"{\"a\":1}") },
            Publication { event: Some("x".into()), ..publication(None, false, b"\0binary") },
        ] {
            let payload = full(encode("node-a", 7, &Relayed::Publication(original.clone()), MAX, false));
            let received = decode(&payload).unwrap();
            assert_eq!(received.origin_node, "node-a");
            assert_eq!(received.carried, Carried::Publication(original));
            assert_eq!(origin_node(&payload), Ok("node-a"));
        }
    }

    #[test]
    fn only_publications_with_an_event_name_use_version_2() {
        let unnamed = full(encode("node-a", 1, &Relayed::Publication(publication(None, false, b"1")), MAX, false));
        assert!(unnamed.starts_with("1T "), "{unnamed:?}");
        let named = Publication { event: Some("goal".into()), ..publication(None, false, b"1") };
        let payload = full(encode("node-a", 1, &Relayed::Publication(named.clone()), MAX, false));
        assert!(payload.starts_with("2T ") && payload.ends_with("k3v9q2xagoal1"), "{payload:?}");
        // What the previous release sent still reads, without an event name.
        let previous = "1T 5 42 1700000000123 0 6 7 8 -\nnode-amatch:7k3v9q2xa{\"n\":1}";
        let Carried::Publication(read) = decode(previous).unwrap().carried else { panic!("a publication") };
        assert_eq!((read.event, &read.data[..]), (None, &b"{\"n\":1}"[..]));
        let Encoded::Reference(reference) = encode("n", 1, &Relayed::Publication(Publication { data: vec![b'x'; MAX].into(), ..named }), MAX, false) else {
            panic!("a reference")
        };
        assert!(reference.starts_with("1R "), "a reference carries no event name: {reference:?}");
        assert_eq!(decode(&payload.replacen("2T", "2R", 1)), Err(DecodeError::BadHeader("count")));
        assert_eq!(decode(&payload.replacen("2T", "1T", 1)), Err(DecodeError::BadHeader("count")));
    }

    #[test]
    fn data_that_is_not_text_goes_as_base64() {
        for (data, ascii_only) in [(&b"bin\0ary"[..], false), (&[0xff, 0xfe][..], false), ("Zoë".as_bytes(), true)] {
            let original = publication(None, false, data);
            let payload = full(encode("node-a", 1, &Relayed::Publication(original.clone()), MAX, ascii_only));
            assert!(payload.starts_with("1B "), "{payload:?}");
            assert!(!payload.contains('\0') && payload.is_ascii());
            assert_eq!(decode(&payload).unwrap().carried, Carried::Publication(original));
        }
        let text = publication(None, false, "Zoë".as_bytes());
        assert!(full(encode("node-a", 1, &Relayed::Publication(text.clone()), MAX, false)).starts_with("1T "));
    }

    #[test]
    fn oversized_or_untextual_publications_go_as_references() {
        let big = publication(Some("k"), false, &vec![b'x'; MAX]);
        let Encoded::Reference(payload) = encode("node-a", 3, &Relayed::Publication(big.clone()), MAX, false) else { panic!("expected a reference") };
        assert!(payload.len() < 100);
        let received = decode(&payload).unwrap();
        assert_eq!(received.origin_node, "node-a");
        assert_eq!(received.carried, Carried::Reference { channel: big.channel.clone(), offset: 42 });
        let nul_key = publication(Some("a\0b"), false, b"1");
        assert!(matches!(encode("node-a", 3, &Relayed::Publication(nul_key.clone()), MAX, false), Encoded::Reference(_)));
        let accented_key = publication(Some("é"), false, b"1");
        assert!(matches!(encode("node-a", 3, &Relayed::Publication(accented_key.clone()), MAX, true), Encoded::Reference(_)));
        assert!(matches!(encode("node-a", 3, &Relayed::Publication(accented_key.clone()), MAX, false), Encoded::Full(_)));

        let ephemeral = Publication { offset: 0, ..big };
        assert!(matches!(encode("node-a", 3, &Relayed::Publication(ephemeral.clone()), MAX, false), Encoded::Impossible(_)));
    }

    #[test]
    fn the_payload_limit_is_exact() {
        let small = publication(None, false, b"");
        let overhead = full(encode("n", 1, &Relayed::Publication(small.clone()), MAX, false)).len();
        let fits = publication(None, false, &vec![b'x'; MAX - overhead]);
        assert_eq!(full(encode("n", 1, &Relayed::Publication(fits.clone()), MAX, false)).len(), MAX);
        let one_more = publication(None, false, &vec![b'x'; MAX - overhead + 1]);
        assert!(matches!(encode("n", 1, &Relayed::Publication(one_more.clone()), MAX, false), Encoded::Reference(_)));
    }

    #[test]
    fn joins_and_leaves_round_trip() {
        let channel = ChannelName::parse("court:3").unwrap();
        for (joined, user) in [(true, "zoë"), (false, "")] {
            let client = ClientInfo::new("n1-17", user);
            let event = PresenceEvent { channel: channel.clone(), joined, client };
            let payload = full(encode("node-b", 4, &Relayed::Presence(event), MAX, false));
            assert_eq!(origin_node(&payload), Ok("node-b"));
            let Carried::Presence(decoded) = decode(&payload).unwrap().carried else { panic!("not a presence event") };
            assert_eq!((decoded.channel, decoded.joined), (channel.clone(), joined));
            assert_eq!((decoded.client.client.as_str(), decoded.client.user.as_str()), ("n1-17", user));
        }
        let accented = PresenceEvent {
            channel,
            joined: true,
            client: ClientInfo::new("n1-17", "zoë"),
        };
        assert!(matches!(encode("n", 1, &Relayed::Presence(accented), MAX, true), Encoded::Impossible(_)));
    }

    #[test]
    fn equal_publications_get_distinct_payloads() {
        let ephemeral = Publication { offset: 0, ..publication(None, false, b"1") };
        assert_ne!(full(encode("n", 1, &Relayed::Publication(ephemeral.clone()), MAX, false)), full(encode("n", 2, &Relayed::Publication(ephemeral.clone()), MAX, false)));
    }

    #[test]
    fn broken_payloads_are_refused() {
        let payload = full(encode("node-a", 1, &Relayed::Publication(publication(Some("home"), false, b"12345")), MAX, false));
        let body_start = payload.find('\n').unwrap() + 1;
        // Cut anywhere inside the header or its sized fields (the data is the rest, any length).
        for len in 0..body_start + "node-a".len() + "match:7".len() + "k3v9q2xa".len() + "home".len() {
            assert!(decode(&payload[..len]).is_err(), "cut at {len}");
        }
        assert_eq!(decode(&payload.replacen("1T", "3T", 1)), Err(DecodeError::UnknownKind("3T".into())));
        assert_eq!(decode(&payload.replacen("1T", "1T 0", 1)), Err(DecodeError::BadHeader("count")));
        assert_eq!(decode(&payload.replacen("match:7", "match 7", 1)), Err(DecodeError::Invalid("channel name")));
        let base64 = full(encode("node-a", 1, &Relayed::Publication(publication(None, false, b"\0")), MAX, false));
        assert_eq!(decode(&format!("{base64}!")), Err(DecodeError::Invalid("base64 data")));
    }

    #[test]
    fn fnv1a_matches_its_published_test_vectors() {
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn notification_channels_are_short_stable_identifiers() {
        let long = ChannelName::parse(&format!("match:{}", "x".repeat(190))).unwrap();
        let name = notification_channel("cs", &long);
        assert_eq!(name.len(), 19);
        assert!(name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
        assert_eq!(notification_channel("cs", &ChannelName::parse("match:1").unwrap()), "cs_d327f8825754f62f");
        assert_ne!(notification_channel("cs", &ChannelName::parse("match:2").unwrap()), "cs_d327f8825754f62f");
    }
}
