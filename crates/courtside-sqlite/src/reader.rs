//! Reads: a small pool of read-only connections used from `spawn_blocking`.
//!
//! Every read that returns rows runs in one read transaction, so the `top` and `earliest` it
//! reports (from the `channels` row) match the rows it returns. Readers see committed data only:
//! an append is acknowledged after its commit, so an acknowledged append is always visible.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use courtside_core::ChannelName;
use courtside_core::store::{HistoryQuery, StoreError};
use courtside_core::stream::{Epoch, HistoryPage, Publication, Snapshot, StreamPosition};
use parking_lot::Mutex;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::Semaphore;

use crate::{SqliteError, schema};

/// A channel's committed head, as read from its `channels` row.
pub(crate) struct ChannelHead {
    pub(crate) epoch: Epoch,
    pub(crate) top: u64,
    pub(crate) earliest: u64,
}

impl ChannelHead {
    pub(crate) fn position(&self) -> StreamPosition {
        StreamPosition { epoch: self.epoch.clone(), offset: self.top }
    }
}

/// Read-only connections, each lent to one blocking read at a time.
pub(crate) struct ReaderPool {
    idle: Mutex<Vec<Connection>>,
    /// One permit per connection; closed when the store closes.
    permits: Arc<Semaphore>,
}

impl ReaderPool {
    pub(crate) fn open(path: &Path, size: usize) -> Result<Self, SqliteError> {
        let connections = (0..size).map(|_| schema::open_reader(path)).collect::<Result<Vec<_>, _>>()?;
        Ok(Self { idle: Mutex::new(connections), permits: Arc::new(Semaphore::new(size)) })
    }

    /// Runs `work` on an idle connection on the blocking pool.
    pub(crate) async fn run<T, W>(self: &Arc<Self>, work: W) -> Result<T, StoreError>
    where
        T: Send + 'static,
        W: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let permit = self.permits.clone().acquire_owned().await.map_err(|_| StoreError::Closed)?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            // The permit travels with the connection, so a cancelled caller cannot let a second
            // read find the pool empty.
            let _permit = permit;
            let mut connection = pool.idle.lock().pop().ok_or(StoreError::Closed)?;
            let result = work(&mut connection);
            if !pool.permits.is_closed() {
                pool.idle.lock().push(connection);
            }
            result.map_err(|error| StoreError::Unavailable(error.to_string()))
        })
        .await
        .map_err(|error| StoreError::Unavailable(format!("read task failed: {error}")))?
    }

    /// Refuses further reads and closes the idle connections.
    pub(crate) fn close(&self) {
        self.permits.close();
        self.idle.lock().clear();
    }
}

/// The channel's committed head, or `None` if the channel was never created.
pub(crate) fn channel_head(connection: &Connection, channel: &ChannelName) -> rusqlite::Result<Option<ChannelHead>> {
    connection
        .prepare_cached("SELECT epoch, top, earliest FROM channels WHERE name = ?1")?
        .query_row([channel.as_str()], |row| {
            Ok(ChannelHead {
                epoch: Epoch::from_text(&row.get::<_, String>(0)?),
                top: row.get(1)?,
                earliest: row.get(2)?,
            })
        })
        .optional()
}

/// A stored publication read from columns `offset, key, removed, data, time_ms, event`, in that
/// order (every table that keeps publications is read this way).
pub(crate) fn publication_from_row(channel: &ChannelName, epoch: &Epoch, row: &rusqlite::Row<'_>) -> rusqlite::Result<Publication> {
    Ok(Publication {
        channel: channel.clone(),
        epoch: epoch.clone(),
        offset: row.get(0)?,
        key: row.get(1)?,
        removed: row.get(2)?,
        event: row.get(5)?,
        data: Bytes::from(row.get::<_, Vec<u8>>(3)?),
        time_ms: row.get(4)?,
    })
}

/// A page of history read in one transaction, or `None` if the channel was never created.
pub(crate) fn history_page(
    connection: &mut Connection,
    channel: &ChannelName,
    query: HistoryQuery,
) -> rusqlite::Result<Option<HistoryPage>> {
    let transaction = connection.transaction()?;
    let Some(head) = channel_head(&transaction, channel)? else { return Ok(None) };
    let to_publication = |row: &rusqlite::Row<'_>| publication_from_row(channel, &head.epoch, row);
    let publications = match query {
        HistoryQuery::After { offset, limit } => transaction
            .prepare_cached(
                "SELECT offset, key, removed, data, time_ms, event FROM publications \
                 WHERE channel = ?1 AND offset > ?2 ORDER BY offset LIMIT ?3",
            )?
            .query_map(params![channel.as_str(), offset, sql_limit(limit)], to_publication)?
            .collect::<rusqlite::Result<Vec<_>>>()?,
        HistoryQuery::Latest { limit } => {
            let mut newest_first = transaction
                .prepare_cached(
                    "SELECT offset, key, removed, data, time_ms, event FROM publications \
                     WHERE channel = ?1 ORDER BY offset DESC LIMIT ?2",
                )?
                .query_map(params![channel.as_str(), sql_limit(limit)], to_publication)?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            newest_first.reverse();
            newest_first
        }
    };
    transaction.commit()?;
    Ok(Some(HistoryPage { publications, top: head.position(), earliest_offset: head.earliest }))
}

/// The keyed state read in one transaction, or `None` if the channel was never created.
pub(crate) fn snapshot(connection: &mut Connection, channel: &ChannelName) -> rusqlite::Result<Option<Snapshot>> {
    let transaction = connection.transaction()?;
    let Some(head) = channel_head(&transaction, channel)? else { return Ok(None) };
    let entries = transaction
        .prepare_cached(
            "SELECT offset, key, 0, data, time_ms, event FROM keyed_state WHERE channel = ?1 ORDER BY key",
        )?
        .query_map([channel.as_str()], |row| publication_from_row(channel, &head.epoch, row))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    transaction.commit()?;
    Ok(Some(Snapshot { entries, position: head.position() }))
}

/// The publication stored with idempotency key `key` on `channel` since `window_start_ms`.
pub(crate) fn idempotent_original(
    connection: &Connection,
    channel: &ChannelName,
    key: &str,
    window_start_ms: u64,
) -> rusqlite::Result<Option<Publication>> {
    let Some(head) = channel_head(connection, channel)? else { return Ok(None) };
    idempotent_original_in_epoch(connection, channel, &head.epoch, key, window_start_ms)
}

/// [`idempotent_original`] for a channel whose epoch the caller knows (the writer's cursor).
pub(crate) fn idempotent_original_in_epoch(
    connection: &Connection,
    channel: &ChannelName,
    epoch: &Epoch,
    key: &str,
    window_start_ms: u64,
) -> rusqlite::Result<Option<Publication>> {
    connection
        .prepare_cached(
            "SELECT offset, publication_key, removed, data, time_ms, event FROM idempotency \
             WHERE channel = ?1 AND key = ?2 AND time_ms > ?3",
        )?
        .query_row(params![channel.as_str(), key, window_start_ms], |row| publication_from_row(channel, epoch, row))
        .optional()
}

/// SQLite's LIMIT is a signed 64-bit integer.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
