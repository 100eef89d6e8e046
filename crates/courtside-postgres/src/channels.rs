//! Whole channels, on a pooled connection: opening one under its namespace's channel limit (the
//! count taken under a per-namespace advisory lock, so nodes sharing the database never create
//! more than the limit between them), marking channels active, and removing idle ones.
//!
//! Removal locks each chunk's channel rows in name order, as the writers do, then deletes the
//! rows still idle in one statement (history, keyed state, idempotency keys and the channel row
//! with its epoch). A writer that had created a removed channel finds it missing and writes its
//! batch again (see the writer).

use courtside_core::ChannelName;
use courtside_core::store::{StoreError, namespace_bounds};
use courtside_core::stream::{Epoch, StreamPosition};
use deadpool_postgres::ClientWrapper;
use tokio_postgres::Row;

use crate::sweeper::{SWEEP_CHUNK, lock_chunk};
use crate::{from_sql_int, to_sql_int};

/// Marks an existing channel active and answers its position.
const TOUCH_ONE: &str = "\
    UPDATE courtside_channels SET active_ms = GREATEST(active_ms, $2) WHERE name = $1 RETURNING epoch, top";

/// Serialises channel creation within one namespace across nodes, until the transaction ends.
const LOCK_NAMESPACE: &str = "SELECT pg_advisory_xact_lock(hashtextextended('courtside_channels:' || $1, 0))";

const COUNT_CHANNELS: &str = "\
    SELECT count(*) FROM courtside_channels WHERE name >= $1 AND name < $2";

const CREATE_CHANNEL: &str = "\
    INSERT INTO courtside_channels (name, epoch, top, earliest, history_ttl_secs, active_ms) \
    VALUES ($1, $2, 0, 1, 0, $3) \
    ON CONFLICT (name) DO UPDATE SET active_ms = GREATEST(courtside_channels.active_ms, EXCLUDED.active_ms) \
    RETURNING epoch, top";

/// Locks the rows in name order (as writers do), then marks them active.
const TOUCH_MANY: &str = "\
    WITH locked AS ( \
        SELECT name FROM courtside_channels WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE \
    ) \
    UPDATE courtside_channels c SET active_ms = GREATEST(c.active_ms, $2) FROM locked WHERE c.name = locked.name";

const IDLE_CHANNELS: &str = "\
    SELECT name FROM courtside_channels \
    WHERE name >= $1 AND name < $2 AND active_ms < $3 ORDER BY name";

/// For the (locked) channels `$1` still idle before `$2`: every row goes. Returns their names.
const REMOVE_IDLE: &str = "\
    WITH gone AS ( \
        DELETE FROM courtside_channels WHERE name = ANY($1::text[]) AND active_ms < $2 RETURNING name \
    ), \
    publications AS (DELETE FROM courtside_publications x USING gone WHERE x.channel = gone.name), \
    keyed AS (DELETE FROM courtside_keyed_state x USING gone WHERE x.channel = gone.name), \
    idempotency AS (DELETE FROM courtside_idempotency x USING gone WHERE x.channel = gone.name) \
    SELECT name FROM gone ORDER BY name";

fn position(row: &Row) -> Result<StreamPosition, tokio_postgres::Error> {
    Ok(StreamPosition { epoch: Epoch::from_text(row.try_get::<_, &str>(0)?), offset: from_sql_int(row.try_get(1)?) })
}

/// The channel's position, creating it unless `channels_max` is not 0 and its namespace already
/// holds that many channels; marks it active as of `now_ms`.
pub(crate) async fn open(
    client: &mut ClientWrapper,
    channel: &ChannelName,
    channels_max: u64,
    now_ms: u64,
) -> Result<Result<StreamPosition, StoreError>, tokio_postgres::Error> {
    let now = to_sql_int(now_ms);
    let touch = client.prepare_cached(TOUCH_ONE).await?;
    if let Some(row) = client.query_opt(&touch, &[&channel.as_str(), &now]).await? {
        return Ok(Ok(position(&row)?));
    }
    let namespace = channel.namespace();
    let transaction = client.transaction().await?;
    if channels_max > 0 {
        let lock = transaction.prepare_cached(LOCK_NAMESPACE).await?;
        transaction.execute(&lock, &[&namespace]).await?;
        let (low, high) = namespace_bounds(namespace);
        let count = transaction.prepare_cached(COUNT_CHANNELS).await?;
        let held: i64 = transaction.query_one(&count, &[&low, &high]).await?.try_get(0)?;
        if from_sql_int(held) >= channels_max {
            transaction.rollback().await?;
            return Ok(Err(StoreError::ChannelLimit { namespace: namespace.to_string(), max: channels_max }));
        }
    }
    let create = transaction.prepare_cached(CREATE_CHANNEL).await?;
    let row = transaction.query_one(&create, &[&channel.as_str(), &Epoch::new_random().as_str(), &now]).await?;
    let opened = position(&row)?;
    transaction.commit().await?;
    Ok(Ok(opened))
}

/// Marks the stored ones of `channels` active as of `now_ms`.
pub(crate) async fn touch(client: &ClientWrapper, channels: &[ChannelName], now_ms: u64) -> Result<(), tokio_postgres::Error> {
    let names: Vec<&str> = channels.iter().map(ChannelName::as_str).collect();
    let statement = client.prepare_cached(TOUCH_MANY).await?;
    client.execute(&statement, &[&names, &to_sql_int(now_ms)]).await?;
    Ok(())
}

/// Removes the channels of `namespace` last active before `now_ms - idle_secs * 1000`.
pub(crate) async fn expire_idle(
    client: &mut ClientWrapper,
    namespace: &str,
    idle_secs: u64,
    now_ms: u64,
) -> Result<Vec<ChannelName>, tokio_postgres::Error> {
    let cutoff = to_sql_int(now_ms.saturating_sub(idle_secs.saturating_mul(1000)));
    let (low, high) = namespace_bounds(namespace);
    let idle = client.prepare_cached(IDLE_CHANNELS).await?;
    let names: Vec<String> = client
        .query(&idle, &[&low, &high, &cutoff])
        .await?
        .iter()
        .map(|row| row.try_get(0))
        .collect::<Result<_, _>>()?;
    let mut expired = Vec::with_capacity(names.len());
    for chunk in names.chunks(SWEEP_CHUNK) {
        let transaction = lock_chunk(client, chunk).await?;
        let remove = transaction.prepare_cached(REMOVE_IDLE).await?;
        for row in transaction.query(&remove, &[&chunk, &cutoff]).await? {
            // Names in the table were valid channel names when stored.
            if let Ok(channel) = ChannelName::parse(row.try_get::<_, &str>(0)?) {
                expired.push(channel);
            }
        }
        transaction.commit().await?;
    }
    Ok(expired)
}
