//! Courtside's embedded stream store: a [`StreamStore`] on one SQLite file.
//!
//! This crate owns the database file: its schema and migrations (`schema`, versioned by
//! `PRAGMA user_version`), the single writer thread (`writer`) and the read-only connection
//! pool (`reader`).
//!
//! # Invariants
//! - Exactly one thread writes: the writer owns the only read-write connection and the cache of
//!   each channel's `(epoch, top, earliest)`, which is the truth for offsets. Offsets are assigned
//!   there as `top + 1`, so they are gap-free per channel and epoch.
//! - Appends are group-committed: everything queued is written in one transaction in WAL mode
//!   with `synchronous=FULL`, so a transaction is on disk when its commit returns. Only then is
//!   the batch handed to the [`CommitSink`] (once, in commit order) and only then are the
//!   requests answered: acknowledged means durable, and the sink sees offset order per channel.
//! - A failed transaction acknowledges nothing, hands nothing to the sink and drops the cached
//!   cursors, which reload from the database: a failure leaves no gap and no phantom publication.
//! - Reads (`read`, `snapshot`, the position of a known channel) run on read-only connections,
//!   each in one read transaction, so the reported top matches the rows returned.
//! - Sweeps and channel creation go through the writer too, so its cache never goes stale.
//! - One `SqliteStore` per database file: two stores on one file would assign the same offsets.

mod channels;
mod reader;
mod schema;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;

use async_trait::async_trait;
use courtside_core::ChannelName;
use courtside_core::store::{
    AppendGroup, Appended, CommitSink, HistoryQuery, IDEMPOTENCY_WINDOW_SECS, StoreError, StreamStore,
};
use courtside_core::stream::{HistoryPage, Publication, Snapshot, StreamPosition, now_ms};
use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::reader::ReaderPool;
use crate::writer::{Writer, WriterCommand};

/// Read-only connections kept open for reads (WAL lets them read while the writer commits).
const READER_CONNECTIONS: usize = 4;

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SqliteError {
    #[error("cannot create directory {path} for the store: {source}")]
    CreateDirectory { path: PathBuf, source: std::io::Error },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database refused WAL journaling (journal_mode is {0:?})")]
    WalUnavailable(String),
    #[error("the database schema is version {found}, newer than this build supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("cannot start the writer thread: {0}")]
    SpawnWriter(std::io::Error),
    /// Two writers on one file would hand out the same offsets.
    #[error("{path} is in use by another process (one store per database file)")]
    InUse { path: PathBuf },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: std::io::Error },
}

/// A durable [`StreamStore`] in one SQLite file; see the crate documentation for its invariants.
pub struct SqliteStore {
    commands: mpsc::Sender<WriterCommand>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    readers: Arc<ReaderPool>,
    closed: AtomicBool,
    /// An exclusive lock on `<file>.lock`, held while the store is open.
    file_lock: Mutex<Option<std::fs::File>>,
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file and its parent directory if needed and
    /// migrating the schema; committed publications are handed to `sink`.
    pub fn open(path: &Path, sink: Arc<dyn CommitSink>) -> Result<SqliteStore, SqliteError> {
        if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|source| SqliteError::CreateDirectory { path: parent.to_path_buf(), source })?;
        }
        let file_lock = lock_exclusively(&path.with_extension("lock"))?;
        let connection = schema::open_writer(path)?;
        let readers = Arc::new(ReaderPool::open(path, READER_CONNECTIONS)?);
        let (commands, received) = mpsc::channel();
        let writer = Writer::new(connection, sink);
        let writer_thread = std::thread::Builder::new()
            .name("courtside-sqlite-writer".into())
            .spawn(move || writer.run(received))
            .map_err(SqliteError::SpawnWriter)?;
        tracing::info!(path = %path.display(), "sqlite store opened");
        Ok(SqliteStore {
            commands,
            writer_thread: Mutex::new(Some(writer_thread)),
            readers,
            closed: AtomicBool::new(false),
            file_lock: Mutex::new(Some(file_lock)),
        })
    }

    fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    fn refuse_if_closed(&self) -> Result<(), StoreError> {
        if self.is_closed() { Err(StoreError::Closed) } else { Ok(()) }
    }

    /// The error for a writer that no longer answers: closed on purpose, or stopped unexpectedly.
    fn writer_gone(&self) -> StoreError {
        if self.is_closed() {
            StoreError::Closed
        } else {
            StoreError::Unavailable("the sqlite writer thread has stopped".into())
        }
    }

    /// Sends `command` to the writer and waits for its answer.
    async fn ask_writer<T>(
        &self,
        command: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> WriterCommand,
    ) -> Result<T, StoreError> {
        self.refuse_if_closed()?;
        let (reply, answer) = oneshot::channel();
        self.commands.send(command(reply)).map_err(|_| self.writer_gone())?;
        answer.await.map_err(|_| self.writer_gone())?
    }

    /// Creates the channel (and its epoch) through the writer if it does not exist yet.
    async fn create_channel(&self, channel: &ChannelName) -> Result<StreamPosition, StoreError> {
        let channel = channel.clone();
        self.ask_writer(|reply| WriterCommand::Position { channel, reply }).await
    }

    /// Runs a read that yields `None` for an unknown channel; such a channel is created (as the
    /// contract asks of `position`) and the read is run once more.
    async fn read_creating<T, R>(&self, channel: &ChannelName, read: R) -> Result<T, StoreError>
    where
        T: Send + 'static,
        R: Fn(&mut rusqlite::Connection, &ChannelName) -> rusqlite::Result<Option<T>> + Send + Sync + Copy + 'static,
    {
        self.refuse_if_closed()?;
        for _ in 0..2 {
            let target = channel.clone();
            if let Some(found) = self.readers.run(move |connection| read(connection, &target)).await? {
                return Ok(found);
            }
            self.create_channel(channel).await?;
        }
        Err(StoreError::Unavailable(format!("channel {channel} was created but cannot be read")))
    }
}

#[async_trait]
impl StreamStore for SqliteStore {
    async fn append_group(&self, group: AppendGroup) -> Result<Vec<Appended>, StoreError> {
        if group.requests.is_empty() {
            return Err(StoreError::EmptyGroup);
        }
        self.ask_writer(|reply| WriterCommand::Append { group, reply }).await
    }

    async fn find_idempotent(&self, channel: &ChannelName, key: &str) -> Result<Option<Publication>, StoreError> {
        self.refuse_if_closed()?;
        let (channel, key) = (channel.clone(), key.to_string());
        let window_start_ms = now_ms().saturating_sub(IDEMPOTENCY_WINDOW_SECS * 1000);
        self.readers.run(move |connection| reader::idempotent_original(connection, &channel, &key, window_start_ms)).await
    }

    async fn position(&self, channel: &ChannelName) -> Result<StreamPosition, StoreError> {
        self.read_creating(channel, |connection, channel| {
            Ok(reader::channel_head(connection, channel)?.map(|head| head.position()))
        })
        .await
    }

    async fn read(&self, channel: &ChannelName, query: HistoryQuery) -> Result<HistoryPage, StoreError> {
        self.read_creating(channel, move |connection, channel| reader::history_page(connection, channel, query)).await
    }

    async fn snapshot(&self, channel: &ChannelName) -> Result<Snapshot, StoreError> {
        self.read_creating(channel, reader::snapshot).await
    }

    async fn sweep_expired(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.ask_writer(|reply| WriterCommand::Sweep { now_ms, reply }).await
    }

    async fn open_channel(
        &self,
        channel: &ChannelName,
        channels_max: u64,
        now_ms: u64,
    ) -> Result<StreamPosition, StoreError> {
        let channel = channel.clone();
        self.ask_writer(|reply| WriterCommand::Open { channel, channels_max, now_ms, reply }).await
    }

    async fn touch_channels(&self, channels: &[ChannelName], now_ms: u64) -> Result<(), StoreError> {
        let channels = channels.to_vec();
        self.ask_writer(|reply| WriterCommand::Touch { channels, now_ms, reply }).await
    }

    async fn expire_idle(&self, namespace: &str, idle_secs: u64, now_ms: u64) -> Result<Vec<ChannelName>, StoreError> {
        let namespace = namespace.to_string();
        self.ask_writer(|reply| WriterCommand::ExpireIdle { namespace, idle_secs, now_ms, reply }).await
    }

    async fn ready(&self) -> bool {
        !self.is_closed() && self.writer_thread.lock().as_ref().is_some_and(|thread| !thread.is_finished())
    }

    async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Readers go first, so the writer's connection is the last one and checkpoints the WAL.
        self.readers.close();
        // Everything queued before the shutdown command is still written and answered.
        let (done, finished) = oneshot::channel();
        if self.commands.send(WriterCommand::Shutdown { done }).is_ok() {
            let _ = finished.await;
        }
        let writer_thread = self.writer_thread.lock().take();
        if let Some(writer_thread) = writer_thread {
            match tokio::task::spawn_blocking(move || writer_thread.join()).await {
                Ok(Ok(())) => tracing::info!("sqlite store closed"),
                Ok(Err(_)) => tracing::error!("sqlite writer thread panicked"),
                Err(error) => tracing::error!(%error, "joining the sqlite writer thread failed"),
            }
        }
        self.file_lock.lock().take();
    }
}

/// Takes an exclusive advisory lock on `path` (created if missing), so a second process (or a
/// second store in this one) cannot open the same database for writing.
fn lock_exclusively(path: &Path) -> Result<std::fs::File, SqliteError> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|source| SqliteError::Lock { path: path.to_path_buf(), source })?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(SqliteError::InUse { path: path.with_extension("db") }),
        Err(std::fs::TryLockError::Error(source)) => Err(SqliteError::Lock { path: path.to_path_buf(), source }),
    }
}
