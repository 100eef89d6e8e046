//! A channel's stream: publications numbered `1, 2, 3, …` within an epoch.
//!
//! The epoch names one continuous history. It changes only when that history is lost or reset,
//! so a client holding `(epoch, offset)` can ask for exactly what it missed, and a client whose
//! epoch no longer matches knows a replay is impossible.

use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::channel::ChannelName;

/// Names one continuous history of a channel. Short random text, e.g. `"k3v9q2xa"`.
#[derive(Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Epoch(Arc<str>);

impl Epoch {
    pub fn new_random() -> Self {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::rng();
        let text: String = (0..8)
            .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
            .collect();
        Self(Arc::from(text))
    }

    pub fn from_text(text: &str) -> Self {
        Self(Arc::from(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Epoch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

/// The largest offset a stream can reach (stores keep offsets as signed 64-bit integers). A
/// position or history read past it names no publication that can ever exist: the caller is
/// refused, never told to retry.
pub const OFFSET_MAX: u64 = i64::MAX as u64;

/// A point in a channel's stream: the offset of the last publication seen (0 = none yet).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub struct StreamPosition {
    pub epoch: Epoch,
    pub offset: u64,
}

/// One publication as stored and delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    pub channel: ChannelName,
    pub epoch: Epoch,
    /// 1-based, gap-free within the epoch; 0 for ephemeral channels (no history).
    pub offset: u64,
    /// Keyed-state key: the latest publication per key forms the channel's snapshot.
    pub key: Option<String>,
    /// `true` when this publication removes `key` from the keyed state.
    pub removed: bool,
    /// The event name it is delivered as (Socket.IO); checked by [`crate::event::validate_event_name`].
    pub event: Option<String>,
    /// The payload: one JSON value, as the publisher sent it.
    pub data: Bytes,
    /// Server time of the commit, milliseconds since the Unix epoch.
    pub time_ms: u64,
}

/// A slice of history after a position, read consistently with the stream's top.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HistoryPage {
    /// Publications with offset greater than the requested one, in offset order.
    pub publications: Vec<Publication>,
    /// The stream's top when the page was read.
    pub top: StreamPosition,
    /// The oldest offset still kept; `top.offset + 1` when nothing is kept.
    pub earliest_offset: u64,
}

/// The keyed state of a channel as of `position`: the latest publication per key.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// One publication per live key, ordered by key.
    pub entries: Vec<Publication>,
    pub position: StreamPosition,
}

/// Milliseconds since the Unix epoch, by the system clock.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
