//! The writer task: the only code of a store that appends.
//!
//! Appends arrive over a channel. The task takes everything queued (up to [`WRITER_BATCH_MAX`]
//! requests) and writes it in one transaction:
//!
//! 1. Channels never seen by this store are created (`INSERT … ON CONFLICT DO NOTHING`, committed
//!    on its own: an empty channel is what a read would have created anyway).
//! 2. The batch's channel rows are locked `FOR UPDATE` in name order. The row lock serialises
//!    writers of a channel across nodes until commit; taking locks in one global order means two
//!    nodes whose batches share several channels cannot deadlock. The locked rows give each
//!    channel's current `top`, so offsets continue gap-free from whatever any node committed.
//! 3. Idempotency keys are looked up only after the locks are held, so a key committed by another
//!    node is seen, and of two nodes racing one key exactly one stores it.
//! 4. Each group's expected positions are checked against the locked rows (a moved one answers
//!    that group with a conflict and writes nothing of it; the rest of the batch goes on).
//! 5. Offsets are assigned in request order; the publications, keyed state, idempotency records,
//!    history trims and channel rows are written with one bulk statement each (`unnest` arrays),
//!    and the transaction commits.
//!
//! Statements are pipelined: `BEGIN`, the locks and the key lookup go out together, then the
//! writes and `COMMIT`, so a batch costs two round trips (plus one when it creates channels).
//! The server runs pipelined statements one after the other, in the order they were sent.
//!
//! Only after the commit is the batch handed to the sink (once, in commit order) and only then is
//! each request answered. A failed batch rolls back (no offset is consumed), hands nothing to the
//! sink and answers every request with [`StoreError::Unavailable`].
//!
//! Every append is answered within [`BATCH_TIMEOUT`] of reaching the writer, also while the
//! database does not answer: the checkout and the transaction share that one deadline, and when a
//! batch fails because the database is unreachable, every append that queued up behind it is
//! answered `Unavailable` at once instead of starting another batch that would wait as long.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use courtside_core::ChannelName;
use courtside_core::store::{AppendGroup, Appended, CommitSink, IDEMPOTENCY_WINDOW_SECS, PositionConflict, StoreError};
use courtside_core::stream::{Epoch, Publication, StreamPosition, now_ms};
use deadpool_postgres::{ClientWrapper, Object, Pool, PoolError};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Row, Statement};

use crate::health::Health;
use crate::{describe_error, from_sql_int, to_sql_int, ttl_for_sql};

/// The most appends written in one transaction.
pub(crate) const WRITER_BATCH_MAX: usize = 1024;

/// How long one batch (checkout, statements and commit) may take before it is abandoned; also
/// the longest an append waits for its answer while the database does not answer.
pub(crate) const BATCH_TIMEOUT: Duration = Duration::from_secs(5);

/// How long rolling back a batch that the database refused may take before the connection is
/// dropped instead (which rolls back as well).
const ROLLBACK_TIMEOUT: Duration = Duration::from_secs(1);

/// Above this many remembered channels the memory is emptied (they are created again on use,
/// which is a no-op for an existing row), which bounds the writer's memory.
const KNOWN_CHANNELS_MAX: usize = 65_536;

/// Locks channel rows in one global order; shared with the sweeper.
pub(crate) const LOCK_CHANNELS: &str =
    "SELECT name, epoch, top, earliest FROM courtside_channels WHERE name = ANY($1::text[]) ORDER BY name FOR UPDATE";

const CREATE_CHANNELS: &str = "\
    INSERT INTO courtside_channels (name, epoch, top, earliest, history_ttl_secs) \
    SELECT name, epoch, 0, 1, 0 FROM unnest($1::text[], $2::text[]) AS created(name, epoch) \
    ON CONFLICT (name) DO NOTHING";

const FIND_IDEMPOTENCY_KEYS: &str = "\
    SELECT i.channel, i.key, i.stream_offset, i.publication_key, i.removed, i.data, i.time_ms, i.event \
    FROM courtside_idempotency i \
    JOIN unnest($1::text[], $2::text[]) AS wanted(channel, key) \
      ON i.channel = wanted.channel AND i.key = wanted.key \
    WHERE i.time_ms > $3";

const INSERT_PUBLICATIONS: &str = "\
    INSERT INTO courtside_publications (channel, stream_offset, key, removed, data, time_ms, event) \
    SELECT * FROM unnest($1::text[], $2::int8[], $3::text[], $4::bool[], $5::bytea[], $6::int8[], $7::text[])";

const UPSERT_KEYED_STATE: &str = "\
    INSERT INTO courtside_keyed_state (channel, key, stream_offset, data, time_ms, event) \
    SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::bytea[], $5::int8[], $6::text[]) \
    ON CONFLICT (channel, key) DO UPDATE SET \
      stream_offset = EXCLUDED.stream_offset, data = EXCLUDED.data, time_ms = EXCLUDED.time_ms, event = EXCLUDED.event";

const DELETE_KEYED_STATE: &str = "\
    DELETE FROM courtside_keyed_state k USING unnest($1::text[], $2::text[]) AS gone(channel, key) \
    WHERE k.channel = gone.channel AND k.key = gone.key";

const UPSERT_IDEMPOTENCY_KEYS: &str = "\
    INSERT INTO courtside_idempotency (channel, key, stream_offset, publication_key, removed, data, time_ms, event) \
    SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::bool[], $6::bytea[], $7::int8[], $8::text[]) \
    ON CONFLICT (channel, key) DO UPDATE SET \
      stream_offset = EXCLUDED.stream_offset, publication_key = EXCLUDED.publication_key, \
      removed = EXCLUDED.removed, data = EXCLUDED.data, time_ms = EXCLUDED.time_ms, event = EXCLUDED.event";

const TRIM_HISTORY: &str = "\
    DELETE FROM courtside_publications p \
    USING unnest($1::text[], $2::int8[], $3::int8[]) AS trimmed(channel, first_dropped, first_kept) \
    WHERE p.channel = trimmed.channel AND p.stream_offset >= trimmed.first_dropped \
      AND p.stream_offset < trimmed.first_kept";

const UPDATE_CHANNELS: &str = "\
    UPDATE courtside_channels c SET top = moved.top, earliest = moved.earliest, history_ttl_secs = moved.ttl, \
      active_ms = GREATEST(c.active_ms, $5) \
    FROM unnest($1::text[], $2::int8[], $3::int8[], $4::int8[]) AS moved(name, top, earliest, ttl) \
    WHERE c.name = moved.name";

/// What the store asks of the writer task.
pub(crate) enum WriterCommand {
    /// A group of publications, stored whole or (on a moved position) not at all.
    Append {
        group: AppendGroup,
        reply: oneshot::Sender<Result<Vec<Appended>, StoreError>>,
    },
    /// Write everything queued before this command, then stop and answer.
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// A group waiting for its batch to commit.
struct PendingAppend {
    group: AppendGroup,
    reply: oneshot::Sender<Result<Vec<Appended>, StoreError>>,
}

/// Why a batch wrote nothing.
#[derive(Debug, thiserror::Error)]
enum BatchError {
    #[error("cannot get a postgres connection: {}", describe_error(.0))]
    Pool(#[from] PoolError),
    #[error("postgres: {}", describe_error(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("the postgres batch did not finish within {0:?}; it may or may not have committed")]
    TimedOut(Duration),
    #[error("channel {0} has no row in courtside_channels")]
    ChannelMissing(String),
}

impl BatchError {
    /// Did the database fail to answer (as opposed to answering with an error)?
    fn database_unreachable(&self) -> bool {
        match self {
            BatchError::Pool(_) | BatchError::TimedOut(_) => true,
            BatchError::Postgres(error) => error.as_db_error().is_none(),
            BatchError::ChannelMissing(_) => false,
        }
    }
}

/// A committed batch: one answer per group (stored, a seen key, or a conflict that wrote
/// nothing), and the new publications in commit order.
struct CommittedBatch {
    answers: Vec<Result<Vec<Appended>, StoreError>>,
    publications: Vec<Publication>,
}

pub(crate) struct Writer {
    pool: Pool,
    sink: Arc<dyn CommitSink>,
    health: Arc<Health>,
    /// Channels whose row is known to exist (rows are never deleted).
    known_channels: HashSet<ChannelName>,
}

impl Writer {
    pub(crate) fn new(pool: Pool, sink: Arc<dyn CommitSink>, health: Arc<Health>) -> Self {
        Self { pool, sink, health, known_channels: HashSet::new() }
    }

    /// The task's body: runs until a shutdown command or until every sender is gone.
    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<WriterCommand>) {
        let mut received = Vec::with_capacity(WRITER_BATCH_MAX);
        let mut batch = Vec::with_capacity(WRITER_BATCH_MAX);
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        while shutdown.is_none() {
            if commands.recv_many(&mut received, WRITER_BATCH_MAX).await == 0 {
                break;
            }
            for command in received.drain(..) {
                match command {
                    // Appends queued behind the shutdown are dropped unanswered: they see `Closed`.
                    WriterCommand::Append { group, reply } if shutdown.is_none() => {
                        batch.push(PendingAppend { group, reply });
                    }
                    WriterCommand::Append { .. } => {}
                    WriterCommand::Shutdown { done } => shutdown = shutdown.or(Some(done)),
                }
            }
            if !batch.is_empty() && self.apply_batch(&mut batch).await == BatchOutcome::DatabaseUnreachable {
                fail_queued(&mut commands, &mut shutdown);
            }
        }
        drop(commands);
        self.pool.close();
        if let Some(done) = shutdown {
            let _ = done.send(());
        }
    }

    /// Writes one batch, then feeds the sink and answers every request.
    async fn apply_batch(&mut self, batch: &mut Vec<PendingAppend>) -> BatchOutcome {
        match self.write_batch(batch).await {
            Ok(committed) => {
                self.health.record(true);
                if !committed.publications.is_empty() {
                    self.sink.committed(committed.publications);
                }
                // A requester that stopped waiting (its future was dropped) is not an error.
                for (pending, answer) in batch.drain(..).zip(committed.answers) {
                    let _ = pending.reply.send(answer);
                }
                BatchOutcome::Committed
            }
            Err(error) => {
                let unreachable = error.database_unreachable();
                self.health.record(!unreachable);
                tracing::error!(%error, appends = batch.len(), "postgres store batch failed; nothing acknowledged");
                let reason = error.to_string();
                for pending in batch.drain(..) {
                    let _ = pending.reply.send(Err(StoreError::Unavailable(reason.clone())));
                }
                if unreachable { BatchOutcome::DatabaseUnreachable } else { BatchOutcome::Refused }
            }
        }
    }

    /// Checks out the writer's connection and runs the batch's transaction under a deadline. After
    /// a failure the transaction is rolled back, or the connection is discarded rather than
    /// returned to the pool (the server rolls back a transaction whose connection is gone).
    ///
    /// A channel removed (by idle expiry) since this writer created it is missing once — the
    /// cache of known channels is emptied then — so such a batch is written a second time, which
    /// creates the channel anew.
    async fn write_batch(&mut self, batch: &[PendingAppend]) -> Result<CommittedBatch, BatchError> {
        match self.write_batch_once(batch).await {
            Err(BatchError::ChannelMissing(channel)) => {
                tracing::debug!(%channel, "a channel of the batch was removed meanwhile; writing the batch again");
                self.write_batch_once(batch).await
            }
            written => written,
        }
    }

    async fn write_batch_once(&mut self, batch: &[PendingAppend]) -> Result<CommittedBatch, BatchError> {
        let deadline = tokio::time::Instant::now() + BATCH_TIMEOUT;
        let mut client = match tokio::time::timeout_at(deadline, self.pool.get()).await {
            Ok(checked_out) => checked_out?,
            Err(_) => return Err(BatchError::TimedOut(BATCH_TIMEOUT)),
        };
        let written =
            tokio::time::timeout_at(deadline, write_transaction(&mut client, &mut self.known_channels, batch)).await;
        let error = match written {
            Ok(Ok(committed)) => return Ok(committed),
            Ok(Err(error)) => error,
            Err(_) => BatchError::TimedOut(BATCH_TIMEOUT),
        };
        let rolled_back = !error.database_unreachable()
            && matches!(tokio::time::timeout(ROLLBACK_TIMEOUT, client.batch_execute("ROLLBACK")).await, Ok(Ok(())));
        if !rolled_back {
            drop(Object::take(client));
        }
        Err(error)
    }
}

/// How a batch ended, as far as the appends queued behind it are concerned.
#[derive(Debug, PartialEq, Eq)]
enum BatchOutcome {
    Committed,
    /// The database answered with an error; the next batch may well succeed.
    Refused,
    /// The database did not answer: the appends queued meanwhile are failed at once.
    DatabaseUnreachable,
}

/// Answers every append queued right now with `Unavailable` (they waited through a batch the
/// database did not answer, and would wait as long again); a queued shutdown is kept.
fn fail_queued(commands: &mut mpsc::UnboundedReceiver<WriterCommand>, shutdown: &mut Option<oneshot::Sender<()>>) {
    let mut failed = 0usize;
    while let Ok(command) = commands.try_recv() {
        match command {
            WriterCommand::Append { reply, .. } => {
                failed += 1;
                let reason = "postgres did not answer the batch queued ahead of this append; nothing acknowledged";
                let _ = reply.send(Err(StoreError::Unavailable(reason.to_string())));
            }
            WriterCommand::Shutdown { done } => *shutdown = shutdown.take().or(Some(done)),
        }
    }
    if failed > 0 {
        tracing::warn!(appends = failed, "postgres unreachable: failed the appends queued behind the batch");
    }
}

/// One channel's row while a batch is written; the truth for `top` since the row is locked.
struct ChannelWrite {
    epoch: Epoch,
    top: u64,
    earliest: u64,
    /// `earliest` as locked: rows in `earliest_before..earliest` are trimmed at the end.
    earliest_before: u64,
    /// The TTL the latest append of the batch asked for; `None` while nothing was appended.
    history_ttl_secs: Option<u64>,
}

/// The original publication of an idempotency key committed earlier (by any node).
struct OriginalPublication {
    offset: u64,
    key: Option<String>,
    removed: bool,
    event: Option<String>,
    data: bytes::Bytes,
    time_ms: u64,
}

/// The writer's statements, prepared once per connection and then served from its cache.
struct WriterStatements {
    lock_channels: Statement,
    find_idempotency_keys: Statement,
    insert_publications: Statement,
    upsert_keyed_state: Statement,
    delete_keyed_state: Statement,
    upsert_idempotency_keys: Statement,
    trim_history: Statement,
    update_channels: Statement,
}

impl WriterStatements {
    async fn prepare(client: &ClientWrapper) -> Result<Self, tokio_postgres::Error> {
        let (lock_channels, find_idempotency_keys, insert_publications, upsert_keyed_state) = tokio::try_join!(
            client.prepare_cached(LOCK_CHANNELS),
            client.prepare_cached(FIND_IDEMPOTENCY_KEYS),
            client.prepare_cached(INSERT_PUBLICATIONS),
            client.prepare_cached(UPSERT_KEYED_STATE),
        )?;
        let (delete_keyed_state, upsert_idempotency_keys, trim_history, update_channels) = tokio::try_join!(
            client.prepare_cached(DELETE_KEYED_STATE),
            client.prepare_cached(UPSERT_IDEMPOTENCY_KEYS),
            client.prepare_cached(TRIM_HISTORY),
            client.prepare_cached(UPDATE_CHANNELS),
        )?;
        Ok(Self {
            lock_channels,
            find_idempotency_keys,
            insert_publications,
            upsert_keyed_state,
            delete_keyed_state,
            upsert_idempotency_keys,
            trim_history,
            update_channels,
        })
    }
}

/// Applies `batch` in one transaction; nothing is visible or acknowledged unless this returns Ok.
/// On error the connection may be inside a failed transaction: the caller rolls back or drops it.
async fn write_transaction(
    client: &mut ClientWrapper,
    known_channels: &mut HashSet<ChannelName>,
    batch: &[PendingAppend],
) -> Result<CommittedBatch, BatchError> {
    let statements = WriterStatements::prepare(client).await?;
    let mut touched: Vec<&ChannelName> = batch
        .iter()
        .flat_map(|pending| {
            let group = &pending.group;
            group.requests.iter().map(|request| &request.channel).chain(group.expected.iter().map(|e| &e.channel))
        })
        .collect();
    touched.sort_unstable();
    touched.dedup();
    create_unknown_channels(client, known_channels, &touched).await?;

    let now = now_ms();
    let channel_names: Vec<&str> = touched.iter().map(|channel| channel.as_str()).collect();
    let (key_channels, keys): (Vec<&str>, Vec<&str>) = batch
        .iter()
        .filter_map(|pending| {
            let request = pending.group.requests.first()?;
            request.idempotency_key.as_deref().map(|key| (request.channel.as_str(), key))
        })
        .unzip();
    let window_start = to_sql_int(now.saturating_sub(IDEMPOTENCY_WINDOW_SECS * 1000));
    // Sent in this order (`biased` polls in order, and a request is sent when first polled): the
    // lookup runs after the locks are granted, on a snapshot that includes whatever they waited for.
    let lock: [&(dyn ToSql + Sync); 1] = [&channel_names];
    let key_lookup: [&(dyn ToSql + Sync); 3] = [&key_channels, &keys, &window_start];
    let ((), locked_rows, original_rows) = tokio::try_join!(
        biased;
        client.batch_execute("BEGIN"),
        client.query(&statements.lock_channels, &lock),
        query_unless_empty(client, &statements.find_idempotency_keys, &key_lookup, keys.len()),
    )?;
    let mut channels = locked_channels(locked_rows, &channel_names)?;
    if let Some(missing) = channel_names.iter().find(|name| !channels.contains_key(**name)) {
        known_channels.clear();
        return Err(BatchError::ChannelMissing((*missing).to_string()));
    }
    let originals = original_publications(original_rows)?;

    let mut answers = Vec::with_capacity(batch.len());
    let mut publications: Vec<Publication> = Vec::with_capacity(batch.len());
    // Idempotency keys stored by this batch, and the latest keyed-state change per key (the index
    // of the publication that sets it, or `None` for a removal), both by (channel, key).
    let mut batch_keys: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut keyed_changes: BTreeMap<(&str, &str), Option<usize>> = BTreeMap::new();
    'groups: for pending in batch {
        let group = &pending.group;
        let Some(first) = group.requests.first() else {
            answers.push(Err(StoreError::EmptyGroup));
            continue;
        };
        let first_channel = first.channel.as_str();
        let channel =
            channels.get(first_channel).ok_or_else(|| BatchError::ChannelMissing(first_channel.to_string()))?;
        if let Some(idempotency_key) = first.idempotency_key.as_deref() {
            if let Some(&index) = batch_keys.get(&(first_channel, idempotency_key)) {
                answers.push(Ok(vec![Appended { publication: publications[index].clone(), duplicate: true }]));
                continue;
            }
            // Looked up, not taken: a second retry of the key in this batch is answered too.
            if let Some(original) = originals.get(&(first_channel.to_string(), idempotency_key.to_string())) {
                let publication = Publication {
                    channel: first.channel.clone(),
                    epoch: channel.epoch.clone(),
                    offset: original.offset,
                    key: original.key.clone(),
                    removed: original.removed,
                    event: original.event.clone(),
                    data: original.data.clone(),
                    time_ms: original.time_ms,
                };
                answers.push(Ok(vec![Appended { publication, duplicate: true }]));
                continue;
            }
        }
        // The rows are locked and `top` includes this batch's earlier groups: the check holds
        // until commit.
        for expected in &group.expected {
            let name = expected.channel.as_str();
            let channel = channels.get(name).ok_or_else(|| BatchError::ChannelMissing(name.to_string()))?;
            let actual = StreamPosition { epoch: channel.epoch.clone(), offset: channel.top };
            if let Err(conflict) = PositionConflict::check(expected, &actual) {
                answers.push(Err(conflict));
                continue 'groups;
            }
        }
        let mut stored = Vec::with_capacity(group.requests.len());
        for (position_in_group, request) in group.requests.iter().enumerate() {
            let channel_name = request.channel.as_str();
            let channel =
                channels.get_mut(channel_name).ok_or_else(|| BatchError::ChannelMissing(channel_name.to_string()))?;
            let offset = channel.top + 1;
            channel.top = offset;
            channel.history_ttl_secs = Some(request.retention.history_ttl_secs);
            channel.earliest = channel.earliest.max((offset + 1).saturating_sub(request.retention.history_size));
            let publication = Publication {
                channel: request.channel.clone(),
                epoch: channel.epoch.clone(),
                offset,
                key: request.key.clone(),
                removed: request.remove_key,
                event: request.event.clone(),
                data: request.data.clone(),
                time_ms: now,
            };
            let index = publications.len();
            if let (true, Some(key)) = (request.retention.keyed, request.key.as_deref()) {
                keyed_changes.insert((channel_name, key), (!request.remove_key).then_some(index));
            }
            if let (0, Some(idempotency_key)) = (position_in_group, request.idempotency_key.as_deref()) {
                batch_keys.insert((channel_name, idempotency_key), index);
            }
            stored.push(Appended { publication: publication.clone(), duplicate: false });
            publications.push(publication);
        }
        answers.push(Ok(stored));
    }

    write_rows_and_commit(client, &statements, &channels, &publications, &batch_keys, &keyed_changes).await?;
    Ok(CommittedBatch { answers, publications })
}

/// Creates (committed, outside the batch transaction) the rows of channels this store has not
/// seen yet, in name order, and remembers them.
async fn create_unknown_channels(
    client: &ClientWrapper,
    known_channels: &mut HashSet<ChannelName>,
    touched: &[&ChannelName],
) -> Result<(), BatchError> {
    let unknown: Vec<&ChannelName> =
        touched.iter().copied().filter(|channel| !known_channels.contains(*channel)).collect();
    if unknown.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = unknown.iter().map(|channel| channel.as_str()).collect();
    let epochs: Vec<Epoch> = unknown.iter().map(|_| Epoch::new_random()).collect();
    let epoch_texts: Vec<&str> = epochs.iter().map(Epoch::as_str).collect();
    let statement = client.prepare_cached(CREATE_CHANNELS).await?;
    client.execute(&statement, &[&names, &epoch_texts]).await?;
    if known_channels.len() + unknown.len() > KNOWN_CHANNELS_MAX {
        known_channels.clear();
    }
    known_channels.extend(unknown.into_iter().cloned());
    Ok(())
}

/// The locked channel rows, by the caller's names (so the map does not borrow the rows).
fn locked_channels<'n>(
    rows: Vec<Row>,
    channel_names: &[&'n str],
) -> Result<HashMap<&'n str, ChannelWrite>, BatchError> {
    let mut channels = HashMap::with_capacity(rows.len());
    for row in rows {
        let name: &str = row.try_get(0)?;
        let Some(&name) = channel_names.iter().find(|wanted| **wanted == name) else { continue };
        let earliest = from_sql_int(row.try_get(3)?);
        channels.insert(
            name,
            ChannelWrite {
                epoch: Epoch::from_text(row.try_get::<_, &str>(1)?),
                top: from_sql_int(row.try_get(2)?),
                earliest,
                earliest_before: earliest,
                history_ttl_secs: None,
            },
        );
    }
    Ok(channels)
}

/// The unexpired idempotency records found for the batch's keys, by (channel, key).
fn original_publications(rows: Vec<Row>) -> Result<HashMap<(String, String), OriginalPublication>, BatchError> {
    let mut originals = HashMap::with_capacity(rows.len());
    for row in rows {
        originals.insert(
            (row.try_get(0)?, row.try_get(1)?),
            OriginalPublication {
                offset: from_sql_int(row.try_get(2)?),
                key: row.try_get(3)?,
                removed: row.try_get(4)?,
                event: row.try_get(7)?,
                data: bytes::Bytes::copy_from_slice(row.try_get::<_, &[u8]>(5)?),
                time_ms: from_sql_int(row.try_get(6)?),
            },
        );
    }
    Ok(originals)
}

/// Writes the batch's rows, one bulk statement per table, and commits, all pipelined. The writes
/// touch disjoint rows, so their order does not matter; `COMMIT` is sent last. Should a write
/// fail, the server turns that `COMMIT` into a rollback, and the error is returned.
async fn write_rows_and_commit(
    client: &ClientWrapper,
    statements: &WriterStatements,
    channels: &HashMap<&str, ChannelWrite>,
    publications: &[Publication],
    batch_keys: &BTreeMap<(&str, &str), usize>,
    keyed_changes: &BTreeMap<(&str, &str), Option<usize>>,
) -> Result<(), BatchError> {
    // Publications already below their channel's new `earliest` would be trimmed at once.
    let kept: Vec<&Publication> = publications
        .iter()
        .filter(|p| channels.get(p.channel.as_str()).is_none_or(|channel| p.offset >= channel.earliest))
        .collect();
    let history = PublicationColumns::of(kept.iter().copied());

    let (mut keyed_channels, mut keyed_keys, mut keyed_offsets, mut keyed_data, mut keyed_times, mut keyed_events) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut removed_channels, mut removed_keys) = (Vec::new(), Vec::new());
    for (&(channel, key), change) in keyed_changes {
        match change.and_then(|index| publications.get(index)) {
            Some(publication) => {
                keyed_channels.push(channel);
                keyed_keys.push(key);
                keyed_offsets.push(to_sql_int(publication.offset));
                keyed_data.push(&publication.data[..]);
                keyed_times.push(to_sql_int(publication.time_ms));
                keyed_events.push(publication.event.as_deref());
            }
            None => {
                removed_channels.push(channel);
                removed_keys.push(key);
            }
        }
    }

    let (mut idempotency_keys, mut remembered) = (Vec::new(), Vec::new());
    for (&(_, idempotency_key), &index) in batch_keys {
        if let Some(publication) = publications.get(index) {
            idempotency_keys.push(idempotency_key);
            remembered.push(publication);
        }
    }
    let idempotency = PublicationColumns::of(remembered.iter().copied());

    let (mut trimmed_channels, mut first_dropped, mut first_kept) = (Vec::new(), Vec::new(), Vec::new());
    let (mut moved_channels, mut tops, mut earliests, mut ttls) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (&name, channel) in channels {
        if channel.earliest > channel.earliest_before {
            trimmed_channels.push(name);
            first_dropped.push(to_sql_int(channel.earliest_before));
            first_kept.push(to_sql_int(channel.earliest));
        }
        if let Some(history_ttl_secs) = channel.history_ttl_secs {
            moved_channels.push(name);
            tops.push(to_sql_int(channel.top));
            earliests.push(to_sql_int(channel.earliest));
            ttls.push(ttl_for_sql(history_ttl_secs));
        }
    }

    let history_columns: [&(dyn ToSql + Sync); 7] = [
        &history.channels,
        &history.offsets,
        &history.keys,
        &history.removed,
        &history.data,
        &history.times,
        &history.events,
    ];
    let keyed_columns: [&(dyn ToSql + Sync); 6] =
        [&keyed_channels, &keyed_keys, &keyed_offsets, &keyed_data, &keyed_times, &keyed_events];
    let removed_columns: [&(dyn ToSql + Sync); 2] = [&removed_channels, &removed_keys];
    let idempotency_columns: [&(dyn ToSql + Sync); 8] = [
        &idempotency.channels,
        &idempotency_keys,
        &idempotency.offsets,
        &idempotency.keys,
        &idempotency.removed,
        &idempotency.data,
        &idempotency.times,
        &idempotency.events,
    ];
    let trim_columns: [&(dyn ToSql + Sync); 3] = [&trimmed_channels, &first_dropped, &first_kept];
    // Every publication of a batch carries the batch's time: the channels it moved were active then.
    let active_ms = to_sql_int(publications.first().map_or(0, |publication| publication.time_ms));
    let channel_columns: [&(dyn ToSql + Sync); 5] = [&moved_channels, &tops, &earliests, &ttls, &active_ms];
    tokio::try_join!(
        biased;
        execute_unless_empty(client, &statements.insert_publications, &history_columns, history.channels.len()),
        execute_unless_empty(client, &statements.upsert_keyed_state, &keyed_columns, keyed_channels.len()),
        execute_unless_empty(client, &statements.delete_keyed_state, &removed_columns, removed_channels.len()),
        execute_unless_empty(client, &statements.upsert_idempotency_keys, &idempotency_columns, idempotency_keys.len()),
        execute_unless_empty(client, &statements.trim_history, &trim_columns, trimmed_channels.len()),
        execute_unless_empty(client, &statements.update_channels, &channel_columns, moved_channels.len()),
        client.batch_execute("COMMIT"),
    )?;
    Ok(())
}

/// Publications as parallel columns, the shape `unnest` takes.
struct PublicationColumns<'p> {
    channels: Vec<&'p str>,
    offsets: Vec<i64>,
    keys: Vec<Option<&'p str>>,
    removed: Vec<bool>,
    data: Vec<&'p [u8]>,
    times: Vec<i64>,
    events: Vec<Option<&'p str>>,
}

impl<'p> PublicationColumns<'p> {
    fn of(publications: impl ExactSizeIterator<Item = &'p Publication>) -> Self {
        let count = publications.len();
        let mut columns = Self {
            channels: Vec::with_capacity(count),
            offsets: Vec::with_capacity(count),
            keys: Vec::with_capacity(count),
            removed: Vec::with_capacity(count),
            data: Vec::with_capacity(count),
            times: Vec::with_capacity(count),
            events: Vec::with_capacity(count),
        };
        for publication in publications {
            columns.channels.push(publication.channel.as_str());
            columns.offsets.push(to_sql_int(publication.offset));
            columns.keys.push(publication.key.as_deref());
            columns.removed.push(publication.removed);
            columns.data.push(&publication.data[..]);
            columns.times.push(to_sql_int(publication.time_ms));
            columns.events.push(publication.event.as_deref());
        }
        columns
    }
}

/// Runs one bulk statement, unless it has no rows to write.
async fn execute_unless_empty(
    client: &ClientWrapper,
    statement: &Statement,
    columns: &[&(dyn ToSql + Sync)],
    rows: usize,
) -> Result<u64, tokio_postgres::Error> {
    if rows == 0 {
        return Ok(0);
    }
    client.execute(statement, columns).await
}

/// Runs one query, unless it has nothing to look up.
async fn query_unless_empty(
    client: &ClientWrapper,
    statement: &Statement,
    columns: &[&(dyn ToSql + Sync)],
    rows: usize,
) -> Result<Vec<Row>, tokio_postgres::Error> {
    if rows == 0 {
        return Ok(Vec::new());
    }
    client.query(statement, columns).await
}
