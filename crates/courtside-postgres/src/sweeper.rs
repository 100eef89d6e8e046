//! Expiry: drops publications older than their channel's TTL and idempotency records older than
//! the window. Runs on a pooled connection, not the writer's, so it never delays appends beyond
//! the row locks it briefly holds.
//!
//! Channels are swept in chunks, each in one transaction that first locks the chunk's channel rows
//! (in name order, like the writers, so neither can deadlock the other) and then, in a second
//! statement whose snapshot includes whatever the lock waited for, moves `earliest` past the
//! expired publications and deletes them. History is dropped oldest first, stopping at the first
//! unexpired publication, as in the reference store.

use courtside_core::store::IDEMPOTENCY_WINDOW_SECS;
use deadpool_postgres::ClientWrapper;

use crate::writer::LOCK_CHANNELS;
use crate::{from_sql_int, to_sql_int};

/// Channels locked and swept per transaction.
pub(crate) const SWEEP_CHUNK: usize = 64;

/// A chunk may delete many rows (a long-idle channel's whole history), more than the store's
/// usual statement timeout allows; its transaction gets this one instead.
const SWEEP_CHUNK_STATEMENT_TIMEOUT: &str = "SET LOCAL statement_timeout = 30000";

/// Channels whose oldest kept publication is past their TTL.
const EXPIRED_CHANNELS: &str = "\
    SELECT c.name FROM courtside_channels c \
    JOIN courtside_publications p ON p.channel = c.name AND p.stream_offset = c.earliest \
    WHERE c.history_ttl_secs > 0 AND c.earliest <= c.top AND p.time_ms < $1 - c.history_ttl_secs * 1000 \
    ORDER BY c.name";

/// For the (locked) channels `$1` at time `$2`: the first unexpired offset becomes `earliest`
/// (`top + 1` when every kept publication expired), and the publications below it are deleted.
/// Returns how many were deleted.
const DROP_EXPIRED: &str = "\
    WITH target AS ( \
        SELECT c.name, c.earliest AS first_dropped, \
            COALESCE(( \
                SELECT p.stream_offset FROM courtside_publications p \
                WHERE p.channel = c.name AND p.stream_offset >= c.earliest \
                  AND p.time_ms >= $2 - c.history_ttl_secs * 1000 \
                ORDER BY p.stream_offset LIMIT 1 \
            ), c.top + 1) AS first_kept \
        FROM courtside_channels c \
        WHERE c.name = ANY($1::text[]) AND c.history_ttl_secs > 0 \
    ), \
    dropped AS ( \
        DELETE FROM courtside_publications p USING target t \
        WHERE p.channel = t.name AND p.stream_offset >= t.first_dropped AND p.stream_offset < t.first_kept \
        RETURNING 1 \
    ), \
    moved AS ( \
        UPDATE courtside_channels c SET earliest = t.first_kept FROM target t \
        WHERE c.name = t.name AND t.first_kept > t.first_dropped \
        RETURNING 1 \
    ) \
    SELECT count(*) FROM dropped";

const FORGET_IDEMPOTENCY_KEYS: &str = "DELETE FROM courtside_idempotency WHERE time_ms <= $1";

/// Begins a chunk's transaction (with the chunk statement timeout) and locks its channel rows in
/// name order, as the writers do.
pub(crate) async fn lock_chunk<'c>(
    client: &'c mut ClientWrapper,
    chunk: &[String],
) -> Result<deadpool_postgres::Transaction<'c>, tokio_postgres::Error> {
    let transaction = client.transaction().await?;
    transaction.batch_execute(SWEEP_CHUNK_STATEMENT_TIMEOUT).await?;
    let lock = transaction.prepare_cached(LOCK_CHANNELS).await?;
    transaction.query(&lock, &[&chunk]).await?;
    Ok(transaction)
}

/// Drops expired history and idempotency records as of `now_ms`; returns how many publications
/// were dropped.
pub(crate) async fn sweep_expired(client: &mut ClientWrapper, now_ms: u64) -> Result<u64, tokio_postgres::Error> {
    let now = to_sql_int(now_ms);
    let statement = client.prepare_cached(EXPIRED_CHANNELS).await?;
    let expired: Vec<String> =
        client.query(&statement, &[&now]).await?.iter().map(|row| row.try_get(0)).collect::<Result<_, _>>()?;
    let mut dropped = 0;
    for chunk in expired.chunks(SWEEP_CHUNK) {
        let transaction = lock_chunk(client, chunk).await?;
        let drop_expired = transaction.prepare_cached(DROP_EXPIRED).await?;
        let row = transaction.query_one(&drop_expired, &[&chunk, &now]).await?;
        dropped += from_sql_int(row.try_get(0)?);
        transaction.commit().await?;
    }
    let window_start = to_sql_int(now_ms.saturating_sub(IDEMPOTENCY_WINDOW_SECS * 1000));
    let forget = client.prepare_cached(FORGET_IDEMPOTENCY_KEYS).await?;
    let forgotten = client.execute(&forget, &[&window_start]).await?;
    if dropped > 0 || forgotten > 0 {
        tracing::debug!(dropped, forgotten, "postgres store swept expired history");
    }
    Ok(dropped)
}
