//! The `StreamStore` seam: durable, numbered history and keyed state per channel.
//!
//! # Contract (checked for every implementation by [`crate::conformance`])
//! - `append` assigns `offset = top + 1` within the channel's epoch, atomically per channel, and
//!   returns only once the publication is durable (for a durable store).
//! - Committed publications are handed to the store's [`CommitSink`] in commit order, which is
//!   offset order per channel, before `append` returns.
//! - An `idempotency_key` seen before on the channel (within the idempotency window) returns the
//!   original publication with `duplicate: true`, stores nothing and hands nothing to the sink.
//! - History is trimmed to `history_size` and `history_ttl_secs` (0: no age limit); keyed state
//!   is not trimmed.
//! - `read`, `snapshot` and `position` see a consistent view: the returned top matches the
//!   returned publications or state.
//! - The epoch of a channel changes only when its history is reset.
//! - `append_group` stores several publications (on one or more channels) in one transaction:
//!   all of them or none. It first checks the group's expected positions: if any channel's top
//!   is not where the caller read it, nothing is stored and the answer is
//!   [`StoreError::Conflict`] (compare-and-append, the basis of optimistic concurrency and of
//!   fencing tokens). The group's idempotency key is its first request's; a seen key stores
//!   nothing and answers that request's original publication alone, `duplicate: true`.
//!   `append` is a group of one.
//! - Every channel has a last-active time: set when it is created, appended to, opened
//!   ([`StreamStore::open_channel`]) or touched ([`StreamStore::touch_channels`]).
//!   [`StreamStore::expire_idle`] removes a namespace's channels idle longer than asked — rows,
//!   keyed state, idempotency keys and epoch — so a channel used again starts a new epoch at
//!   offset 1 (a reset, as for lost history).
//! - `open_channel` with a limit creates a channel only while its namespace holds fewer stored
//!   channels than the limit, counted by the store itself (so the limit holds across nodes that
//!   share it); otherwise nothing is created and the answer is [`StoreError::ChannelLimit`].

pub mod memory;

use async_trait::async_trait;
use bytes::Bytes;

use crate::channel::ChannelName;
use crate::stream::{HistoryPage, Publication, Snapshot, StreamPosition};

/// How long an idempotency key is remembered, by default.
pub const IDEMPOTENCY_WINDOW_SECS: u64 = 3600;

/// What a namespace asks of the store for each channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    pub history_size: u64,
    pub history_ttl_secs: u64,
    pub keyed: bool,
}

/// One publication to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendRequest {
    pub channel: ChannelName,
    pub data: Bytes,
    pub key: Option<String>,
    /// Remove `key` from the keyed state (the publication itself is still kept and delivered).
    pub remove_key: bool,
    /// The publication's event name, stored and returned as given (see [`crate::event`]).
    pub event: Option<String>,
    pub idempotency_key: Option<String>,
    pub retention: Retention,
}

/// Publications stored together, all or none, if every expected position still holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AppendGroup {
    /// Stored in this order; offsets are assigned per channel. Only the first request's
    /// `idempotency_key` is used (it covers the group); the others' are ignored.
    pub requests: Vec<AppendRequest>,
    /// Channel positions that must be current for the group to be stored.
    pub expected: Vec<ExpectedPosition>,
}

impl AppendGroup {
    pub fn single(request: AppendRequest) -> Self {
        Self { requests: vec![request], expected: Vec::new() }
    }
}

/// "The top of `channel` is still `position`", epoch and offset, as the caller read it
/// (`position`, `read` and `snapshot` create a channel never seen, so there is always one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedPosition {
    pub channel: ChannelName,
    pub position: StreamPosition,
}

/// Why a group was not stored: a channel moved since the caller read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PositionConflict {
    pub channel: ChannelName,
    pub expected: StreamPosition,
    pub actual: StreamPosition,
}

/// The stored publication, or the original one when the idempotency key was seen before.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    pub publication: Publication,
    pub duplicate: bool,
}

/// Which part of the history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryQuery {
    /// Publications with offset greater than `offset`, oldest first.
    After { offset: u64, limit: usize },
    /// The newest `limit` publications, oldest first.
    Latest { limit: usize },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The backing database cannot be reached or refused the write; nothing was acknowledged.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// The store has been shut down.
    #[error("store closed")]
    Closed,
    /// An expected position of an [`AppendGroup`] did not hold; nothing was stored.
    #[error("channel {} moved: expected offset {}, now at {}", .0.channel, .0.expected.offset, .0.actual.offset)]
    Conflict(Box<PositionConflict>),
    /// The group has no requests.
    #[error("an append group needs at least one publication")]
    EmptyGroup,
    /// [`StreamStore::open_channel`] would create a channel beyond its namespace's limit.
    #[error("namespace `{namespace}` holds its maximum of {max} channels")]
    ChannelLimit { namespace: String, max: u64 },
}

/// Whether `channel` belongs to `namespace`, i.e. starts with `namespace:` (every channel name
/// has a namespace; see [`ChannelName::namespace`]). The same set as [`namespace_bounds`].
pub fn in_namespace(channel: &str, namespace: &str) -> bool {
    channel.strip_prefix(namespace).is_some_and(|rest| rest.starts_with(':'))
}

/// The names of a namespace's channels as a range an ordered index answers: those `>= "ns:"` and
/// `< "ns;"` in byte order (`;` follows `:`).
pub fn namespace_bounds(namespace: &str) -> (String, String) {
    (format!("{namespace}:"), format!("{namespace};"))
}

impl PositionConflict {
    /// Checks one expectation against the channel's current position.
    pub fn check(expected: &ExpectedPosition, actual: &StreamPosition) -> Result<(), StoreError> {
        if expected.position == *actual {
            return Ok(());
        }
        Err(StoreError::Conflict(Box::new(PositionConflict {
            channel: expected.channel.clone(),
            expected: expected.position.clone(),
            actual: actual.clone(),
        })))
    }
}

/// Receives committed publications in commit order (the broker, in a running node).
pub trait CommitSink: Send + Sync + 'static {
    fn committed(&self, publications: Vec<Publication>);
}

/// A sink that drops everything: for tools that only read or write the store.
pub struct NoSink;

impl CommitSink for NoSink {
    fn committed(&self, _publications: Vec<Publication>) {}
}

#[async_trait]
pub trait StreamStore: Send + Sync + 'static {
    /// Stores one publication; see the module contract.
    async fn append(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        let mut appended = self.append_group(AppendGroup::single(request)).await?;
        appended.pop().ok_or_else(|| StoreError::Unavailable("the store answered a group of one with nothing".into()))
    }

    /// Stores a group atomically after checking its expected positions; one answer per request
    /// in order (or one, the original, for a seen idempotency key). See the module contract.
    async fn append_group(&self, group: AppendGroup) -> Result<Vec<Appended>, StoreError>;

    /// The publication stored with idempotency key `key` on `channel` within the window, if any:
    /// what a retry of that key would be answered with. Lets a caller recognise a retry before
    /// judging it again (a retried edit must get its first answer, not a "stale" one).
    async fn find_idempotent(&self, channel: &ChannelName, key: &str) -> Result<Option<Publication>, StoreError>;

    /// The channel's top, creating its epoch if the channel has never been seen.
    async fn position(&self, channel: &ChannelName) -> Result<StreamPosition, StoreError>;

    /// A consistent slice of history.
    async fn read(&self, channel: &ChannelName, query: HistoryQuery) -> Result<HistoryPage, StoreError>;

    /// The keyed state with the position it is current as of.
    async fn snapshot(&self, channel: &ChannelName) -> Result<Snapshot, StoreError>;

    /// Drops publications older than their channel's TTL; returns how many were dropped.
    async fn sweep_expired(&self, now_ms: u64) -> Result<u64, StoreError>;

    /// The channel's top, creating it (a new epoch) if it was never seen — unless `channels_max`
    /// is not 0 and its namespace already holds that many stored channels, which is
    /// [`StoreError::ChannelLimit`] and creates nothing. Marks the channel active as of `now_ms`.
    async fn open_channel(
        &self,
        channel: &ChannelName,
        channels_max: u64,
        now_ms: u64,
    ) -> Result<StreamPosition, StoreError>;

    /// Marks the stored ones of `channels` active as of `now_ms` (a later time than the one
    /// recorded wins); creates nothing.
    async fn touch_channels(&self, channels: &[ChannelName], now_ms: u64) -> Result<(), StoreError>;

    /// Removes the channels of `namespace` last active before `now_ms - idle_secs * 1000`: their
    /// history, keyed state, idempotency keys and epoch. Returns the channels removed.
    async fn expire_idle(&self, namespace: &str, idle_secs: u64, now_ms: u64) -> Result<Vec<ChannelName>, StoreError>;

    /// Is the store able to take writes right now?
    async fn ready(&self) -> bool;

    /// Flushes and stops; later calls fail with [`StoreError::Closed`].
    async fn close(&self);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::{in_namespace, namespace_bounds};
    use crate::channel::ChannelName;

    proptest! {
        /// The SQL stores count and expire a namespace by its name range, the memory store by
        /// the prefix test: both must pick exactly the channels whose namespace it is.
        #[test]
        fn the_name_range_and_the_prefix_test_pick_the_namespace(
            namespace in "[ab9.@_-]{1,3}",
            prefix in "[ab9.@_-]{1,3}",
            rest in "[ab9.@_-]{1,3}(:[ab9]{1,2})?",
        ) {
            // A small alphabet, so names often are in the namespace or only just outside it.
            let name = format!("{prefix}:{rest}");
            let channel = ChannelName::parse(&name).map_err(|e| TestCaseError::fail(format!("{name}: {e:?}")))?;
            let (low, high) = namespace_bounds(&namespace);
            let in_range = name.as_str() >= low.as_str() && name.as_str() < high.as_str();
            prop_assert_eq!(in_namespace(&name, &namespace), channel.namespace() == namespace);
            prop_assert_eq!(in_range, channel.namespace() == namespace);
        }
    }
}
