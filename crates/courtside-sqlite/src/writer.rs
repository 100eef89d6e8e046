//! The writer thread: the only code that writes the database.
//!
//! Requests arrive over a channel. The thread takes everything queued (up to
//! [`WRITER_BATCH_MAX`] commands), applies it in one transaction, and only after that transaction
//! committed hands the new publications to the sink (once per batch, in commit order) and answers
//! each request. A group whose expected position moved is answered with a conflict and writes
//! nothing; the rest of the batch goes on. A failed transaction answers every request of the batch with
//! [`StoreError::Unavailable`], hands nothing to the sink and forgets the cached channel cursors,
//! which are then reloaded from the database, so offsets stay gap-free.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use courtside_core::ChannelName;
use courtside_core::store::{
    AppendGroup, AppendRequest, Appended, CommitSink, IDEMPOTENCY_WINDOW_SECS, PositionConflict, StoreError,
};
use courtside_core::stream::{Epoch, Publication, StreamPosition, now_ms};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use tokio::sync::oneshot;

use crate::{channels, reader};

/// The most commands applied in one transaction.
pub(crate) const WRITER_BATCH_MAX: usize = 1024;

/// Above this many cached channel cursors the cache is emptied after a commit (cursors reload
/// from the `channels` table on next use), which bounds the writer's memory.
const CURSOR_CACHE_MAX: usize = 65_536;

/// What the store asks of the writer thread.
pub(crate) enum WriterCommand {
    /// A group of publications, stored whole or (on a moved position) not at all.
    Append {
        group: AppendGroup,
        reply: oneshot::Sender<Result<Vec<Appended>, StoreError>>,
    },
    /// The channel's position, creating the channel (and its epoch) if it was never seen.
    Position {
        channel: ChannelName,
        reply: oneshot::Sender<Result<StreamPosition, StoreError>>,
    },
    Sweep {
        now_ms: u64,
        reply: oneshot::Sender<Result<u64, StoreError>>,
    },
    /// The channel's position, creating it unless its namespace is at `channels_max`; marks it
    /// active.
    Open {
        channel: ChannelName,
        channels_max: u64,
        now_ms: u64,
        reply: oneshot::Sender<Result<StreamPosition, StoreError>>,
    },
    /// Marks the stored ones of `channels` active.
    Touch {
        channels: Vec<ChannelName>,
        now_ms: u64,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Removes the namespace's channels idle since before `now_ms - idle_secs * 1000`.
    ExpireIdle {
        namespace: String,
        idle_secs: u64,
        now_ms: u64,
        reply: oneshot::Sender<Result<Vec<ChannelName>, StoreError>>,
    },
    /// Apply everything queued before this command, close the connection, then answer.
    Shutdown {
        done: oneshot::Sender<()>,
    },
}

/// The writer's view of one channel; the truth for `top` while a batch is being written.
pub(crate) struct ChannelCursor {
    pub(crate) epoch: Epoch,
    pub(crate) top: u64,
    earliest: u64,
    /// `earliest` as last written to the database: rows below `earliest` are deleted at flush.
    earliest_on_disk: u64,
    history_ttl_secs: u64,
    /// Changed in the current batch and not yet written back to the `channels` row.
    dirty: bool,
}

/// What a command produced inside a transaction, answered only once the transaction committed.
enum Outcome {
    /// The group's answer: stored, a seen key, or a conflict (which wrote nothing).
    Appended(Result<Vec<Appended>, StoreError>),
    Position(StreamPosition),
    Swept(u64),
    Opened(Result<StreamPosition, StoreError>),
    Touched,
    Expired(Vec<ChannelName>),
}

pub(crate) struct Writer {
    connection: Connection,
    sink: Arc<dyn CommitSink>,
    cursors: HashMap<ChannelName, ChannelCursor>,
    /// Channels whose cursor is dirty in the current batch, in first-touched order.
    dirty_channels: Vec<ChannelName>,
}

impl Writer {
    pub(crate) fn new(connection: Connection, sink: Arc<dyn CommitSink>) -> Self {
        Self { connection, sink, cursors: HashMap::new(), dirty_channels: Vec::new() }
    }

    /// The thread's body: runs until a shutdown command or until every sender is gone.
    pub(crate) fn run(mut self, commands: Receiver<WriterCommand>) {
        let mut batch: Vec<WriterCommand> = Vec::with_capacity(WRITER_BATCH_MAX);
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(WRITER_BATCH_MAX);
        let mut shutdown: Option<oneshot::Sender<()>> = None;
        while shutdown.is_none() {
            let Ok(first) = commands.recv() else { break };
            shutdown = take_command(first, &mut batch);
            while shutdown.is_none() && batch.len() < WRITER_BATCH_MAX {
                match commands.try_recv() {
                    Ok(command) => shutdown = take_command(command, &mut batch),
                    Err(_) => break,
                }
            }
            if !batch.is_empty() {
                self.apply_batch(&mut batch, &mut outcomes);
            }
        }
        drop(self);
        drop(commands);
        if let Some(done) = shutdown {
            let _ = done.send(());
        }
    }

    /// Writes one batch in one transaction, then feeds the sink and answers every command.
    fn apply_batch(&mut self, batch: &mut Vec<WriterCommand>, outcomes: &mut Vec<Outcome>) {
        outcomes.clear();
        let mut committed = Vec::with_capacity(batch.len());
        let written = write_batch(
            &mut self.connection,
            &mut self.cursors,
            &mut self.dirty_channels,
            batch,
            now_ms(),
            outcomes,
            &mut committed,
        );
        match written {
            Ok(()) => {
                if !committed.is_empty() {
                    self.sink.committed(committed);
                }
                for (command, outcome) in batch.drain(..).zip(outcomes.drain(..)) {
                    answer(command, outcome);
                }
                if self.cursors.len() > CURSOR_CACHE_MAX {
                    self.cursors.clear();
                }
            }
            Err(error) => {
                tracing::error!(%error, commands = batch.len(), "sqlite store batch failed; nothing acknowledged");
                self.cursors.clear();
                self.dirty_channels.clear();
                let reason = error.to_string();
                for command in batch.drain(..) {
                    refuse(command, StoreError::Unavailable(reason.clone()));
                }
                outcomes.clear();
            }
        }
    }
}

/// Queues a command for the batch, or returns the shutdown acknowledgement if it asks to stop.
fn take_command(command: WriterCommand, batch: &mut Vec<WriterCommand>) -> Option<oneshot::Sender<()>> {
    match command {
        WriterCommand::Shutdown { done } => Some(done),
        other => {
            batch.push(other);
            None
        }
    }
}

fn answer(command: WriterCommand, outcome: Outcome) {
    // A requester that stopped waiting (its future was dropped) is not an error.
    match (command, outcome) {
        (WriterCommand::Append { reply, .. }, Outcome::Appended(appended)) => {
            let _ = reply.send(appended);
        }
        (WriterCommand::Position { reply, .. }, Outcome::Position(position)) => {
            let _ = reply.send(Ok(position));
        }
        (WriterCommand::Sweep { reply, .. }, Outcome::Swept(dropped)) => {
            let _ = reply.send(Ok(dropped));
        }
        (WriterCommand::Open { reply, .. }, Outcome::Opened(opened)) => {
            let _ = reply.send(opened);
        }
        (WriterCommand::Touch { reply, .. }, Outcome::Touched) => {
            let _ = reply.send(Ok(()));
        }
        (WriterCommand::ExpireIdle { reply, .. }, Outcome::Expired(expired)) => {
            let _ = reply.send(Ok(expired));
        }
        (command, _) => refuse(command, StoreError::Unavailable("writer paired a reply with the wrong command".into())),
    }
}

fn refuse(command: WriterCommand, error: StoreError) {
    match command {
        WriterCommand::Append { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        WriterCommand::Position { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        WriterCommand::Sweep { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        WriterCommand::Open { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        WriterCommand::Touch { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        WriterCommand::ExpireIdle { reply, .. } => {
            let _ = reply.send(Err(error));
        }
        WriterCommand::Shutdown { done } => {
            let _ = done.send(());
        }
    }
}

/// Applies `batch` in one transaction; pushes one outcome per command and every new publication
/// (in commit order) into `committed`. Nothing is visible or acknowledged unless this returns Ok.
fn write_batch(
    connection: &mut Connection,
    cursors: &mut HashMap<ChannelName, ChannelCursor>,
    dirty_channels: &mut Vec<ChannelName>,
    batch: &[WriterCommand],
    now: u64,
    outcomes: &mut Vec<Outcome>,
    committed: &mut Vec<Publication>,
) -> rusqlite::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut has_sweep = false;
    let mut has_expiry = false;
    for command in batch {
        let outcome = match command {
            WriterCommand::Append { group, .. } => {
                let appended = append_group(&transaction, cursors, dirty_channels, group, now)?;
                if let Ok(appended) = &appended {
                    committed.extend(appended.iter().filter(|a| !a.duplicate).map(|a| a.publication.clone()));
                }
                Outcome::Appended(appended)
            }
            WriterCommand::Position { channel, .. } => {
                let cursor = cursor(&transaction, cursors, channel)?;
                Outcome::Position(StreamPosition { epoch: cursor.epoch.clone(), offset: cursor.top })
            }
            WriterCommand::Sweep { .. } => {
                has_sweep = true;
                Outcome::Swept(0)
            }
            WriterCommand::Open { channel, channels_max, now_ms, .. } => {
                Outcome::Opened(channels::open(&transaction, cursors, channel, *channels_max, *now_ms)?)
            }
            WriterCommand::Touch { channels, now_ms, .. } => {
                channels::touch(&transaction, channels, *now_ms)?;
                Outcome::Touched
            }
            WriterCommand::ExpireIdle { .. } => {
                has_expiry = true;
                Outcome::Expired(Vec::new())
            }
            WriterCommand::Shutdown { .. } => continue,
        };
        outcomes.push(outcome);
    }
    flush_cursors(&transaction, cursors, dirty_channels, now)?;
    if has_expiry {
        // Like sweeps, after the appends are written back.
        for (command, outcome) in batch.iter().zip(outcomes.iter_mut()) {
            if let (WriterCommand::ExpireIdle { namespace, idle_secs, now_ms, .. }, Outcome::Expired(expired)) =
                (command, outcome)
            {
                *expired = channels::expire_idle(&transaction, cursors, namespace, *idle_secs, *now_ms)?;
            }
        }
    }
    if has_sweep {
        // Sweeps run after the appends are written back, so they see this batch's tops.
        for (command, outcome) in batch.iter().zip(outcomes.iter_mut()) {
            if let (WriterCommand::Sweep { now_ms, .. }, Outcome::Swept(dropped)) = (command, outcome) {
                *dropped = sweep(&transaction, cursors, *now_ms)?;
            }
        }
    }
    transaction.commit()
}

/// The cursor of `channel`: cached, loaded from its `channels` row, or created with a new epoch.
pub(crate) fn cursor<'c>(
    transaction: &Transaction<'_>,
    cursors: &'c mut HashMap<ChannelName, ChannelCursor>,
    channel: &ChannelName,
) -> rusqlite::Result<&'c mut ChannelCursor> {
    match cursors.entry(channel.clone()) {
        Entry::Occupied(entry) => Ok(entry.into_mut()),
        Entry::Vacant(entry) => {
            let stored = transaction
                .prepare_cached("SELECT epoch, top, earliest, history_ttl_secs FROM channels WHERE name = ?1")?
                .query_row([channel.as_str()], |row| {
                    Ok(ChannelCursor {
                        epoch: Epoch::from_text(&row.get::<_, String>(0)?),
                        top: row.get(1)?,
                        earliest: row.get(2)?,
                        earliest_on_disk: row.get(2)?,
                        history_ttl_secs: row.get(3)?,
                        dirty: false,
                    })
                })
                .optional()?;
            let loaded = match stored {
                Some(cursor) => cursor,
                None => {
                    let epoch = Epoch::new_random();
                    transaction
                        .prepare_cached(
                            "INSERT INTO channels (name, epoch, top, earliest, history_ttl_secs, active_ms) \
                             VALUES (?1, ?2, 0, 1, 0, ?3)",
                        )?
                        .execute(params![channel.as_str(), epoch.as_str(), now_ms()])?;
                    ChannelCursor { epoch, top: 0, earliest: 1, earliest_on_disk: 1, history_ttl_secs: 0, dirty: false }
                }
            };
            Ok(entry.insert(loaded))
        }
    }
}

/// Stores a group: its key seen before → the original; a moved expected position → a conflict,
/// nothing written; otherwise every request in order. The cursors are the truth for every top
/// (this thread is the database's only writer), so checking them first leaves nothing to undo.
fn append_group(
    transaction: &Transaction<'_>,
    cursors: &mut HashMap<ChannelName, ChannelCursor>,
    dirty_channels: &mut Vec<ChannelName>,
    group: &AppendGroup,
    now: u64,
) -> rusqlite::Result<Result<Vec<Appended>, StoreError>> {
    let Some(first) = group.requests.first() else { return Ok(Err(StoreError::EmptyGroup)) };
    if let Some(original) = seen_idempotency_key(transaction, cursors, first, now)? {
        return Ok(Ok(vec![Appended { publication: original, duplicate: true }]));
    }
    for expected in &group.expected {
        let cursor = cursor(transaction, cursors, &expected.channel)?;
        let actual = StreamPosition { epoch: cursor.epoch.clone(), offset: cursor.top };
        if let Err(conflict) = PositionConflict::check(expected, &actual) {
            return Ok(Err(conflict));
        }
    }
    let mut appended = Vec::with_capacity(group.requests.len());
    for (index, request) in group.requests.iter().enumerate() {
        let idempotency_key = if index == 0 { request.idempotency_key.as_deref() } else { None };
        appended.push(append(transaction, cursors, dirty_channels, request, idempotency_key, now)?);
    }
    Ok(Ok(appended))
}

/// The original publication of `request`'s idempotency key, if it was stored within the window.
fn seen_idempotency_key(
    transaction: &Transaction<'_>,
    cursors: &mut HashMap<ChannelName, ChannelCursor>,
    request: &AppendRequest,
    now: u64,
) -> rusqlite::Result<Option<Publication>> {
    let channel = &request.channel;
    let cursor = cursor(transaction, cursors, channel)?;
    if let Some(idempotency_key) = &request.idempotency_key {
        let window_start = now.saturating_sub(IDEMPOTENCY_WINDOW_SECS * 1000);
        return reader::idempotent_original_in_epoch(transaction, channel, &cursor.epoch, idempotency_key, window_start);
    }
    Ok(None)
}

/// Stores one publication at the channel's next offset, recording `idempotency_key` with it.
fn append(
    transaction: &Transaction<'_>,
    cursors: &mut HashMap<ChannelName, ChannelCursor>,
    dirty_channels: &mut Vec<ChannelName>,
    request: &AppendRequest,
    idempotency_key: Option<&str>,
    now: u64,
) -> rusqlite::Result<Appended> {
    let channel = &request.channel;
    let cursor = cursor(transaction, cursors, channel)?;
    let offset = cursor.top + 1;
    cursor.top = offset;
    cursor.history_ttl_secs = request.retention.history_ttl_secs;
    cursor.earliest = cursor.earliest.max((offset + 1).saturating_sub(request.retention.history_size));
    if !cursor.dirty {
        cursor.dirty = true;
        dirty_channels.push(channel.clone());
    }
    let data: &[u8] = &request.data;
    let key = request.key.as_deref();
    let event = request.event.as_deref();
    transaction
        .prepare_cached(
            "INSERT INTO publications (channel, offset, key, removed, data, time_ms, event) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )?
        .execute(params![channel.as_str(), offset, key, request.remove_key, data, now, event])?;
    if let (true, Some(key)) = (request.retention.keyed, key) {
        if request.remove_key {
            transaction
                .prepare_cached("DELETE FROM keyed_state WHERE channel = ?1 AND key = ?2")?
                .execute(params![channel.as_str(), key])?;
        } else {
            transaction
                .prepare_cached(
                    "INSERT OR REPLACE INTO keyed_state (channel, key, offset, data, time_ms, event) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )?
                .execute(params![channel.as_str(), key, offset, data, now, event])?;
        }
    }
    if let Some(idempotency_key) = idempotency_key {
        transaction
            .prepare_cached(
                "INSERT OR REPLACE INTO idempotency (channel, key, offset, publication_key, removed, data, time_ms, event) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![channel.as_str(), idempotency_key, offset, key, request.remove_key, data, now, event])?;
    }
    let publication = Publication {
        channel: channel.clone(),
        epoch: cursor.epoch.clone(),
        offset,
        key: request.key.clone(),
        removed: request.remove_key,
        event: request.event.clone(),
        data: request.data.clone(),
        time_ms: now,
    };
    Ok(Appended { publication, duplicate: false })
}

/// Writes the batch's cursors back to their `channels` rows and trims history below `earliest`.
fn flush_cursors(
    transaction: &Transaction<'_>,
    cursors: &mut HashMap<ChannelName, ChannelCursor>,
    dirty_channels: &mut Vec<ChannelName>,
    now: u64,
) -> rusqlite::Result<()> {
    for channel in dirty_channels.drain(..) {
        let Some(cursor) = cursors.get_mut(&channel) else { continue };
        cursor.dirty = false;
        if cursor.earliest > cursor.earliest_on_disk {
            transaction
                .prepare_cached("DELETE FROM publications WHERE channel = ?1 AND offset < ?2")?
                .execute(params![channel.as_str(), cursor.earliest])?;
            cursor.earliest_on_disk = cursor.earliest;
        }
        transaction
            .prepare_cached(
                "UPDATE channels SET top = ?2, earliest = ?3, history_ttl_secs = ?4, active_ms = max(active_ms, ?5) \
                 WHERE name = ?1",
            )?
            .execute(params![channel.as_str(), cursor.top, cursor.earliest, cursor.history_ttl_secs, now])?;
    }
    Ok(())
}

/// Drops publications older than their channel's TTL (oldest first, like the reference store)
/// and idempotency keys older than the window; returns how many publications were dropped.
fn sweep(
    transaction: &Transaction<'_>,
    cursors: &mut HashMap<ChannelName, ChannelCursor>,
    now_ms: u64,
) -> rusqlite::Result<u64> {
    let channels_with_history: Vec<(String, u64, u64, u64)> = transaction
        .prepare_cached("SELECT name, top, earliest, history_ttl_secs FROM channels WHERE earliest <= top AND history_ttl_secs > 0")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut dropped = 0;
    for (name, top, earliest, history_ttl_secs) in channels_with_history {
        let cutoff = now_ms.saturating_sub(history_ttl_secs.saturating_mul(1000));
        let first_kept: Option<u64> = transaction
            .prepare_cached(
                "SELECT offset FROM publications WHERE channel = ?1 AND time_ms >= ?2 ORDER BY offset LIMIT 1",
            )?
            .query_row(params![name, cutoff], |row| row.get(0))
            .optional()?;
        let new_earliest = first_kept.unwrap_or(top + 1);
        if new_earliest <= earliest {
            continue;
        }
        let deleted = transaction
            .prepare_cached("DELETE FROM publications WHERE channel = ?1 AND offset < ?2")?
            .execute(params![name, new_earliest])?;
        dropped += deleted as u64;
        transaction
            .prepare_cached("UPDATE channels SET earliest = ?2 WHERE name = ?1")?
            .execute(params![name, new_earliest])?;
        if let Some(cursor) = ChannelName::parse(&name).ok().and_then(|channel| cursors.get_mut(&channel)) {
            cursor.earliest = new_earliest;
            cursor.earliest_on_disk = new_earliest;
        }
    }
    let idempotency_cutoff = now_ms.saturating_sub(IDEMPOTENCY_WINDOW_SECS * 1000);
    transaction.prepare_cached("DELETE FROM idempotency WHERE time_ms <= ?1")?.execute([idempotency_cutoff])?;
    Ok(dropped)
}
