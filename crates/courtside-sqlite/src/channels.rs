//! The writer's work on whole channels: opening one under its namespace's channel limit, marking
//! channels active, and removing idle ones (every row and the epoch) with their cached cursors.

use std::collections::HashMap;

use courtside_core::ChannelName;
use courtside_core::store::{StoreError, namespace_bounds};
use courtside_core::stream::StreamPosition;
use rusqlite::{OptionalExtension, Transaction, params};

use crate::writer::{ChannelCursor, cursor};

/// The channel's position, creating it unless `channels_max` is not 0 and its namespace already
/// holds that many channels; marks it active as of `now_ms`.
pub(crate) fn open(
    transaction: &Transaction<'_>,
    cursors: &mut HashMap<ChannelName, ChannelCursor>,
    channel: &ChannelName,
    channels_max: u64,
    now_ms: u64,
) -> rusqlite::Result<Result<StreamPosition, StoreError>> {
    if channels_max > 0 && !cursors.contains_key(channel) && !exists(transaction, channel)? {
        let namespace = channel.namespace();
        if count(transaction, namespace)? >= channels_max {
            return Ok(Err(StoreError::ChannelLimit { namespace: namespace.to_string(), max: channels_max }));
        }
    }
    let cursor = cursor(transaction, cursors, channel)?;
    let position = StreamPosition { epoch: cursor.epoch.clone(), offset: cursor.top };
    touch(transaction, std::slice::from_ref(channel), now_ms)?;
    Ok(Ok(position))
}

/// Marks the stored ones of `channels` active as of `now_ms` (a later recorded time stays).
pub(crate) fn touch(transaction: &Transaction<'_>, channels: &[ChannelName], now_ms: u64) -> rusqlite::Result<()> {
    let mut statement = transaction.prepare_cached("UPDATE channels SET active_ms = max(active_ms, ?2) WHERE name = ?1")?;
    for channel in channels {
        statement.execute(params![channel.as_str(), now_ms])?;
    }
    Ok(())
}

/// Removes the channels of `namespace` last active before `now_ms - idle_secs * 1000` — rows,
/// keyed state, idempotency keys and the channel row with its epoch — and forgets their cursors.
pub(crate) fn expire_idle(
    transaction: &Transaction<'_>,
    cursors: &mut HashMap<ChannelName, ChannelCursor>,
    namespace: &str,
    idle_secs: u64,
    now_ms: u64,
) -> rusqlite::Result<Vec<ChannelName>> {
    let cutoff = now_ms.saturating_sub(idle_secs.saturating_mul(1000));
    let (low, high) = namespace_bounds(namespace);
    let names: Vec<String> = transaction
        .prepare_cached(
            "SELECT name FROM channels WHERE name >= ?1 AND name < ?2 AND active_ms < ?3 ORDER BY name",
        )?
        .query_map(params![low, high, cutoff], |row| row.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut expired = Vec::with_capacity(names.len());
    for name in names {
        for table in ["DELETE FROM publications WHERE channel = ?1", "DELETE FROM keyed_state WHERE channel = ?1",
            "DELETE FROM idempotency WHERE channel = ?1", "DELETE FROM channels WHERE name = ?1"]
        {
            transaction.prepare_cached(table)?.execute([&name])?;
        }
        // Names in the table were valid channel names when stored.
        if let Ok(channel) = ChannelName::parse(&name) {
            cursors.remove(&channel);
            expired.push(channel);
        }
    }
    Ok(expired)
}

fn exists(transaction: &Transaction<'_>, channel: &ChannelName) -> rusqlite::Result<bool> {
    let found: Option<i64> = transaction
        .prepare_cached("SELECT 1 FROM channels WHERE name = ?1")?
        .query_row([channel.as_str()], |row| row.get(0))
        .optional()?;
    Ok(found.is_some())
}

/// The stored channels of `namespace`.
fn count(transaction: &Transaction<'_>, namespace: &str) -> rusqlite::Result<u64> {
    let (low, high) = namespace_bounds(namespace);
    transaction
        .prepare_cached("SELECT count(*) FROM channels WHERE name >= ?1 AND name < ?2")?
        .query_row(params![low, high], |row| row.get(0))
}
