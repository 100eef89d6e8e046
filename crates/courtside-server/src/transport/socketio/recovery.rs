//! The resume position a Socket.IO client carries for Courtside: every channel its socket follows,
//! with the position of the last publication it was sent, as one string.
//!
//! socket.io-client (4.6 and later) keeps the last argument of each event it receives, when that
//! argument is a string, as its "offset", and sends it back with the private id (`pid`) when it
//! reconnects. Courtside appends this string to every event, so a reconnecting socket — on any
//! node, after any restart — names exactly the channels to follow again and where to resume each,
//! and nothing is missed or repeated. Nothing about the socket needs to be kept on the server.
//!
//! The text is `channel=epoch:offset` per channel, separated by single spaces (channel names and
//! epochs never contain `=`, `:` after the epoch, or spaces). A channel without history (no
//! epoch) is written `channel=-:0` and followed again live.

use courtside_core::ChannelName;
use courtside_core::stream::{Epoch, StreamPosition, OFFSET_MAX};

/// How a channel without history (whose position has no epoch) is written.
const NO_EPOCH: &str = "-";

/// Why a recovery string was refused (the socket then starts afresh).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecoveryError {
    #[error("more than {0} channels")]
    TooManyChannels(usize),
    #[error("entry {0:?} is not `channel=epoch:offset`")]
    Entry(String),
}

/// Appends `channel=epoch:offset` entries for `positions`, space-separated.
pub fn encode<'a>(out: &mut Vec<u8>, positions: impl Iterator<Item = (&'a ChannelName, &'a StreamPosition)>) {
    use std::io::Write;
    for (index, (channel, position)) in positions.enumerate() {
        if index > 0 {
            out.push(b' ');
        }
        // Writing into a Vec cannot fail.
        let epoch = match position.epoch.as_str() {
            "" => NO_EPOCH,
            epoch => epoch,
        };
        let _ = write!(out, "{}={epoch}:{}", channel.as_str(), position.offset);
    }
}

/// Reads a recovery string: at most `channels_max` entries, each well-formed.
pub fn decode(text: &str, channels_max: usize) -> Result<Vec<(ChannelName, StreamPosition)>, RecoveryError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    let entries: Vec<&str> = text.split(' ').collect();
    if entries.len() > channels_max {
        return Err(RecoveryError::TooManyChannels(channels_max));
    }
    entries
        .into_iter()
        .map(|entry| {
            let bad = || RecoveryError::Entry(entry.chars().take(64).collect());
            let (channel, position) = entry.split_once('=').ok_or_else(bad)?;
            let (epoch, offset) = position.rsplit_once(':').ok_or_else(bad)?;
            let channel = ChannelName::parse(channel).map_err(|_| bad())?;
            if epoch == NO_EPOCH {
                return match offset {
                    "0" => Ok((channel, StreamPosition::default())),
                    _ => Err(bad()),
                };
            }
            let epoch_ok = !epoch.is_empty() && epoch.len() <= 64 && epoch.chars().all(|c| c.is_ascii_alphanumeric());
            let offset: u64 = offset.parse().map_err(|_| bad())?;
            if !epoch_ok || offset > OFFSET_MAX {
                return Err(bad());
            }
            Ok((channel, StreamPosition { epoch: Epoch::from_text(epoch), offset }))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn position(epoch: &str, offset: u64) -> StreamPosition {
        StreamPosition { epoch: Epoch::from_text(epoch), offset }
    }

    #[test]
    fn round_trips_and_refuses_what_it_never_writes() {
        let channels = [ChannelName::parse("match:t1:m1").unwrap(), ChannelName::parse("user:kim@x.org:n").unwrap()];
        let positions = [position("k3v9q2xa", 17), position("ab12", 0)];
        let mut out = Vec::new();
        encode(&mut out, channels.iter().zip(positions.iter()));
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "match:t1:m1=k3v9q2xa:17 user:kim@x.org:n=ab12:0");
        let decoded = decode(&text, 8).expect("valid");
        assert_eq!(decoded, channels.iter().cloned().zip(positions.iter().cloned()).collect::<Vec<_>>());
        assert_eq!(decode("", 8), Ok(vec![]));
        let live = ChannelName::parse("ticker:1").unwrap();
        let mut out = Vec::new();
        encode(&mut out, std::iter::once((&live, &StreamPosition::default())));
        assert_eq!(out, b"ticker:1=-:0", "a channel without history");
        assert_eq!(decode("ticker:1=-:0", 8), Ok(vec![(live, StreamPosition::default())]));
        assert!(decode("ticker:1=-:3", 8).is_err());
        assert_eq!(decode(&text, 1), Err(RecoveryError::TooManyChannels(1)));
        for bad in ["match:1", "match:1=e", "match:1=e:x", "bad=e:1", "match:1=e-1:1", "match:1=e:99999999999999999999", "match:1=:1", "a  b"] {
            assert!(decode(bad, 8).is_err(), "{bad:?} must be refused");
        }
    }

    proptest! {
        #[test]
        fn decoding_arbitrary_text_never_panics(text in ".{0,300}") {
            let _ = decode(&text, 256);
        }

        #[test]
        fn every_encoded_vector_decodes_to_itself(entries in proptest::collection::vec(("[a-z]{1,8}:[a-z0-9]{1,8}", "[a-z0-9]{1,10}", 0u64..i64::MAX as u64), 0..10)) {
            let channels: Vec<ChannelName> = entries.iter().map(|(c, _, _)| ChannelName::parse(c).unwrap()).collect();
            let positions: Vec<StreamPosition> = entries.iter().map(|(_, e, o)| position(e, *o)).collect();
            let mut out = Vec::new();
            encode(&mut out, channels.iter().zip(positions.iter()));
            let decoded = decode(std::str::from_utf8(&out).unwrap(), 16).unwrap();
            prop_assert_eq!(decoded, channels.into_iter().zip(positions).collect::<Vec<_>>());
        }
    }
}
