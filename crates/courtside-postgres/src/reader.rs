//! Reads on pooled connections: the channel head, a page of history, the keyed state, and the
//! creation of a channel a read found missing.
//!
//! Each read that returns rows is one statement, which PostgreSQL runs on one snapshot, so the
//! `top` and `earliest` it reports (from the `courtside_channels` row) match the rows it returns.
//! Only committed data is visible, and an append is acknowledged after its commit, so an
//! acknowledged append is visible to every later read on every node.

use bytes::Bytes;
use courtside_core::ChannelName;
use courtside_core::store::HistoryQuery;
use courtside_core::stream::{Epoch, HistoryPage, Publication, Snapshot, StreamPosition};
use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;

use crate::{from_sql_int, to_sql_int};

/// The columns of a history page: the channel head, then one publication (null when none).
const HISTORY_AFTER: &str = "\
    SELECT c.epoch, c.top, c.earliest, p.stream_offset, p.key, p.removed, p.data, p.time_ms, p.event \
    FROM courtside_channels c \
    LEFT JOIN LATERAL ( \
        SELECT stream_offset, key, removed, data, time_ms, event FROM courtside_publications \
        WHERE channel = c.name AND stream_offset > $2 ORDER BY stream_offset LIMIT $3 \
    ) p ON true \
    WHERE c.name = $1 \
    ORDER BY p.stream_offset";

const HISTORY_LATEST: &str = "\
    SELECT c.epoch, c.top, c.earliest, p.stream_offset, p.key, p.removed, p.data, p.time_ms, p.event \
    FROM courtside_channels c \
    LEFT JOIN LATERAL ( \
        SELECT stream_offset, key, removed, data, time_ms, event FROM courtside_publications \
        WHERE channel = c.name ORDER BY stream_offset DESC LIMIT $2 \
    ) p ON true \
    WHERE c.name = $1 \
    ORDER BY p.stream_offset";

const SNAPSHOT: &str = "\
    SELECT c.epoch, c.top, k.key, k.stream_offset, k.data, k.time_ms, k.event \
    FROM courtside_channels c \
    LEFT JOIN courtside_keyed_state k ON k.channel = c.name \
    WHERE c.name = $1 \
    ORDER BY k.key";

/// A channel's committed head, as read from its `courtside_channels` row.
struct ChannelHead {
    epoch: Epoch,
    top: u64,
    earliest: u64,
}

impl ChannelHead {
    fn position(&self) -> StreamPosition {
        StreamPosition { epoch: self.epoch.clone(), offset: self.top }
    }
}

/// Creates the channel with a new random epoch unless some node already has.
pub(crate) async fn create_channel(client: &ClientWrapper, channel: &ChannelName) -> Result<(), tokio_postgres::Error> {
    let statement = client
        .prepare_cached(
            "INSERT INTO courtside_channels (name, epoch, top, earliest, history_ttl_secs) \
             VALUES ($1, $2, 0, 1, 0) ON CONFLICT (name) DO NOTHING",
        )
        .await?;
    client.execute(&statement, &[&channel.as_str(), &Epoch::new_random().as_str()]).await?;
    Ok(())
}

/// The channel's position, or `None` if the channel was never created.
pub(crate) async fn position(
    client: &ClientWrapper,
    channel: &ChannelName,
) -> Result<Option<StreamPosition>, tokio_postgres::Error> {
    let statement = client.prepare_cached("SELECT epoch, top FROM courtside_channels WHERE name = $1").await?;
    let Some(row) = client.query_opt(&statement, &[&channel.as_str()]).await? else { return Ok(None) };
    Ok(Some(StreamPosition {
        epoch: Epoch::from_text(row.try_get::<_, &str>(0)?),
        offset: from_sql_int(row.try_get(1)?),
    }))
}

/// A page of history read in one statement, or `None` if the channel was never created.
pub(crate) async fn history_page(
    client: &ClientWrapper,
    channel: &ChannelName,
    query: HistoryQuery,
) -> Result<Option<HistoryPage>, tokio_postgres::Error> {
    let rows = match query {
        HistoryQuery::After { offset, limit } => {
            let statement = client.prepare_cached(HISTORY_AFTER).await?;
            client.query(&statement, &[&channel.as_str(), &to_sql_int(offset), &sql_limit(limit)]).await?
        }
        HistoryQuery::Latest { limit } => {
            let statement = client.prepare_cached(HISTORY_LATEST).await?;
            client.query(&statement, &[&channel.as_str(), &sql_limit(limit)]).await?
        }
    };
    let Some(first) = rows.first() else { return Ok(None) };
    let head = ChannelHead {
        epoch: Epoch::from_text(first.try_get::<_, &str>(0)?),
        top: from_sql_int(first.try_get(1)?),
        earliest: from_sql_int(first.try_get(2)?),
    };
    let mut publications = Vec::with_capacity(rows.len());
    for row in &rows {
        if let Some(publication) = history_row(row, channel, &head.epoch)? {
            publications.push(publication);
        }
    }
    Ok(Some(HistoryPage { publications, top: head.position(), earliest_offset: head.earliest }))
}

/// The publication in a history row, or `None` for the one row of a channel with no history.
fn history_row(row: &Row, channel: &ChannelName, epoch: &Epoch) -> Result<Option<Publication>, tokio_postgres::Error> {
    let Some(offset) = row.try_get::<_, Option<i64>>(3)? else { return Ok(None) };
    Ok(Some(Publication {
        channel: channel.clone(),
        epoch: epoch.clone(),
        offset: from_sql_int(offset),
        key: row.try_get(4)?,
        removed: row.try_get(5)?,
        event: row.try_get(8)?,
        data: Bytes::copy_from_slice(row.try_get::<_, &[u8]>(6)?),
        time_ms: from_sql_int(row.try_get(7)?),
    }))
}

/// The keyed state read in one statement, or `None` if the channel was never created.
pub(crate) async fn snapshot(
    client: &ClientWrapper,
    channel: &ChannelName,
) -> Result<Option<Snapshot>, tokio_postgres::Error> {
    let statement = client.prepare_cached(SNAPSHOT).await?;
    let rows = client.query(&statement, &[&channel.as_str()]).await?;
    let Some(first) = rows.first() else { return Ok(None) };
    let position = StreamPosition {
        epoch: Epoch::from_text(first.try_get::<_, &str>(0)?),
        offset: from_sql_int(first.try_get(1)?),
    };
    let mut entries = Vec::with_capacity(rows.len());
    for row in &rows {
        let Some(key) = row.try_get::<_, Option<String>>(2)? else { continue };
        entries.push(Publication {
            channel: channel.clone(),
            epoch: position.epoch.clone(),
            offset: from_sql_int(row.try_get(3)?),
            key: Some(key),
            removed: false,
            event: row.try_get(6)?,
            data: Bytes::copy_from_slice(row.try_get::<_, &[u8]>(4)?),
            time_ms: from_sql_int(row.try_get(5)?),
        });
    }
    Ok(Some(Snapshot { entries, position }))
}

/// The publication stored with idempotency key `key` on `channel` since `window_start_ms`.
pub(crate) async fn idempotent_original(
    client: &ClientWrapper,
    channel: &ChannelName,
    key: &str,
    window_start_ms: u64,
) -> Result<Option<Publication>, tokio_postgres::Error> {
    let statement = client
        .prepare_cached(
            "SELECT c.epoch, i.stream_offset, i.publication_key, i.removed, i.data, i.time_ms, i.event \
             FROM courtside_idempotency i JOIN courtside_channels c ON c.name = i.channel \
             WHERE i.channel = $1 AND i.key = $2 AND i.time_ms > $3",
        )
        .await?;
    let Some(row) = client.query_opt(&statement, &[&channel.as_str(), &key, &to_sql_int(window_start_ms)]).await?
    else {
        return Ok(None);
    };
    Ok(Some(Publication {
        channel: channel.clone(),
        epoch: Epoch::from_text(row.try_get::<_, &str>(0)?),
        offset: from_sql_int(row.try_get(1)?),
        key: row.try_get(2)?,
        removed: row.try_get(3)?,
        event: row.try_get(6)?,
        data: Bytes::copy_from_slice(row.try_get::<_, &[u8]>(4)?),
        time_ms: from_sql_int(row.try_get(5)?),
    }))
}

/// PostgreSQL's LIMIT is a signed 64-bit integer.
fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}
