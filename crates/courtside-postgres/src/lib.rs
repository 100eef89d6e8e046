//! Courtside's shared stream store: a [`StreamStore`] on PostgreSQL, for deployments where
//! several Courtside nodes share one database; and, for such clusters without Redis, the
//! multi-node seams on the same database: [`PostgresBroker`] (`LISTEN`/`NOTIFY`),
//! [`PostgresPresence`] and [`PostgresLimiter`] (rate limits).
//!
//! This crate owns the `courtside_*` tables of that database: their schema and migrations
//! (`schema`, versioned in `courtside_schema_version`, applied under an advisory lock), each
//! store's writer task (`writer`), the pooled reads (`reader`), expiry (`sweeper`) and the
//! readiness check (`health`). The broker owns the notification channels `{prefix}_{hash}` and
//! their payload format (`notification`); presence owns `courtside_presence`; the limiter owns
//! `courtside_rate_limits`.
//!
//! The broker's listening connection must reach PostgreSQL directly or through a pooler in
//! session mode: `LISTEN` does not survive a pooler that switches server connections between
//! transactions.
//!
//! # Invariants
//! - The `courtside_channels` row of a channel is its write lock. Every writer, on every node,
//!   locks the rows of the channels it appends to (`FOR UPDATE`, in name order, so batches
//!   sharing several channels cannot deadlock) and reads `top` under that lock, so offsets are
//!   assigned as `top + 1` gap-free and distinct across all nodes, within the channel's epoch.
//! - Each store has one writer task that group-commits: everything queued (up to 1024 appends) is
//!   written in one transaction. Only after the commit returns is the batch handed to the store's
//!   [`CommitSink`] (once, in commit order, so each sink sees offset order per channel) and only
//!   then are the requests answered: acknowledged means committed.
//! - A failed batch rolls back: it acknowledges nothing, hands nothing to the sink and consumes no
//!   offset. A batch whose commit outcome is unknown (the connection broke or timed out during
//!   `COMMIT`) is reported as failed; it may have committed, so its offsets are then taken, and
//!   the publications reach other readers through history, not through this store's sink.
//! - An idempotency key is looked up under the channel lock: of two nodes racing one key exactly
//!   one stores it, and the other answers with the original publication.
//! - Reads (`read`, `snapshot`, `position`) run on pooled connections, each as one statement (one
//!   snapshot), so the reported top matches the rows returned.
//! - Every database call is bounded (connect, statement and batch timeouts of a few seconds): an
//!   unreachable database fails requests with [`StoreError::Unavailable`] instead of hanging them,
//!   and the pools reconnect by themselves once it is back.
//! - Several stores may share a database, one per node; nothing is cached that another node could
//!   change, except that channel rows exist (they are never deleted).
//! - The broker is never the source of truth for a stream: a notification is sent after the
//!   store's commit, on another connection, at most once. Whatever is not carried (a failed
//!   `pg_notify`, a listening connection that broke, a publication too long for a notification)
//!   is read from the store by the receiving node's sequencer. Publishing never blocks or fails
//!   the store's writer.
//! - A presence row lives only while the node that joined it keeps refreshing it; expiry uses
//!   the database clock.

pub mod broker;
mod channels;
mod health;
pub mod limiter;
mod notification;
pub mod presence;
mod reader;
mod schema;
mod sweeper;
mod tls;
mod writer;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use courtside_core::ChannelName;
use courtside_core::store::{
    AppendGroup, Appended, CommitSink, HistoryQuery, IDEMPOTENCY_WINDOW_SECS, StoreError, StreamStore,
};
use courtside_core::stream::{HistoryPage, Publication, Snapshot, StreamPosition, now_ms};
use deadpool_postgres::{
    BuildError, ClientWrapper, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Timeouts,
};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::health::Health;
pub use crate::broker::{PostgresBroker, PostgresBrokerConfig, PostgresBrokerStats};
pub use crate::presence::PostgresPresence;
pub use crate::limiter::PostgresLimiter;
pub use crate::schema::SCHEMA_VERSION;
use crate::writer::{Writer, WriterCommand};

/// Pooled connections for reads, channel creation by reads, sweeps and readiness probes.
const POOLED_CONNECTIONS: usize = 8;

/// How long a request waits for a pooled connection while all are busy.
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(5);

/// How long checking that an idle pooled connection is still open may take.
const POOL_RECYCLE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long one read (including creating an unknown channel) may take.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one sweep may take in all.
const SWEEP_TIMEOUT: Duration = Duration::from_secs(60);

/// TTLs are stored in seconds and multiplied by 1000 in SQL; larger ones mean "effectively never".
const HISTORY_TTL_SECS_MAX: u64 = 1 << 40;

/// Why a store could not be opened or the schema could not be migrated.
#[derive(Debug, thiserror::Error)]
pub enum PostgresError {
    #[error("invalid PostgreSQL connection URL: {}", describe_error(.0))]
    InvalidUrl(#[source] tokio_postgres::Error),
    #[error("cannot connect to PostgreSQL: {}", describe_error(.0))]
    Connect(#[source] tokio_postgres::Error),
    #[error("connecting to PostgreSQL did not finish within {0:?}")]
    ConnectTimedOut(Duration),
    #[error("migrating the courtside schema failed: {}", describe_error(.0))]
    Migrate(#[source] tokio_postgres::Error),
    #[error("migrating the courtside schema did not finish within {0:?}")]
    MigrationTimedOut(Duration),
    #[error("the database schema is version {found}, newer than this build supports ({supported})")]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("cannot build the PostgreSQL connection pool: {0}")]
    Pool(#[source] BuildError),
    #[error("invalid node id: {0}")]
    InvalidNodeId(String),
    #[error(
        "invalid notification channel prefix {0:?}: 1 to {max} bytes of a-z, 0-9 and _, not starting with a digit",
        max = broker::CHANNEL_PREFIX_LEN_MAX
    )]
    InvalidChannelPrefix(String),
    #[error("PostgreSQL TLS: {0}")]
    Tls(String),
    #[error("presence TTL must be at least {min:?}, got {ttl:?}")]
    TtlTooShort { ttl: Duration, min: Duration },
}

/// Brings the database at `url` to the current schema (for `courtside migrate`). Idempotent, and
/// safe while other nodes start or migrate: migrations run under an advisory lock.
pub async fn migrate(url: &str) -> Result<(), PostgresError> {
    schema::migrate_url(url).await
}

/// A durable [`StreamStore`] in a PostgreSQL database that several nodes may share; see the crate
/// documentation for its invariants.
pub struct PostgresStore {
    commands: mpsc::UnboundedSender<WriterCommand>,
    writer_task: Mutex<Option<JoinHandle<()>>>,
    /// Connections for everything but appends (the writer has a pool of its own, of one).
    pool: Pool,
    health: Arc<Health>,
    closed: AtomicBool,
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or `key=value` text), migrates the
    /// schema and starts the writer; committed publications are handed to `sink`. Must be called
    /// within a Tokio runtime.
    pub async fn connect(url: &str, sink: Arc<dyn CommitSink>) -> Result<PostgresStore, PostgresError> {
        let config = schema::store_config(url)?;
        schema::migrate_url(url).await?;
        let pool = build_pool(&config, POOLED_CONNECTIONS)?;
        let writer_pool = build_pool(&config, 1)?;
        let health = Arc::new(Health::new());
        health.record(true);
        let (commands, received) = mpsc::unbounded_channel();
        let writer = Writer::new(writer_pool, sink, health.clone());
        let writer_task = tokio::spawn(writer.run(received));
        tracing::info!(schema_version = SCHEMA_VERSION, "postgres store connected");
        Ok(PostgresStore {
            commands,
            writer_task: Mutex::new(Some(writer_task)),
            pool,
            health,
            closed: AtomicBool::new(false),
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
            StoreError::Unavailable("the postgres writer task has stopped".into())
        }
    }

    /// A pooled connection, or why none could be had.
    async fn pooled_client(&self) -> Result<Object, StoreError> {
        self.pool.get().await.map_err(|error| {
            if self.is_closed() {
                return StoreError::Closed;
            }
            self.health.record(false);
            StoreError::Unavailable(format!("cannot get a postgres connection: {}", describe_error(&error)))
        })
    }

    /// Runs `work` on a pooled connection under `deadline`. A connection that broke or timed out
    /// is discarded, and the failure is recorded for `ready()`.
    async fn on_pooled_connection<T>(
        &self,
        deadline: Duration,
        work: impl AsyncFnOnce(&mut ClientWrapper) -> Result<T, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        self.refuse_if_closed()?;
        let mut client = self.pooled_client().await?;
        match tokio::time::timeout(deadline, work(&mut client)).await {
            Ok(Ok(found)) => {
                self.health.record(true);
                Ok(found)
            }
            Ok(Err(error)) => {
                let reachable = error.as_db_error().is_some();
                self.health.record(reachable);
                if !reachable {
                    drop(Object::take(client));
                }
                Err(StoreError::Unavailable(format!("postgres: {}", describe_error(&error))))
            }
            Err(_) => {
                self.health.record(false);
                drop(Object::take(client));
                Err(StoreError::Unavailable(format!("postgres did not answer within {deadline:?}")))
            }
        }
    }

    /// Runs a read that yields `None` for an unknown channel; such a channel is created (as the
    /// contract asks of `position`) and the read is run once more.
    async fn read_creating<T>(
        &self,
        channel: &ChannelName,
        read: impl AsyncFn(&ClientWrapper, &ChannelName) -> Result<Option<T>, tokio_postgres::Error>,
    ) -> Result<T, StoreError> {
        let found = self
            .on_pooled_connection(READ_TIMEOUT, async |client| {
                if let Some(found) = read(client, channel).await? {
                    return Ok(Some(found));
                }
                reader::create_channel(client, channel).await?;
                read(client, channel).await
            })
            .await?;
        found.ok_or_else(|| StoreError::Unavailable(format!("channel {channel} was created but cannot be read")))
    }
}

#[async_trait]
impl StreamStore for PostgresStore {
    async fn append_group(&self, group: AppendGroup) -> Result<Vec<Appended>, StoreError> {
        self.refuse_if_closed()?;
        if group.requests.is_empty() {
            return Err(StoreError::EmptyGroup);
        }
        let (reply, answer) = oneshot::channel();
        self.commands.send(WriterCommand::Append { group, reply }).map_err(|_| self.writer_gone())?;
        answer.await.map_err(|_| self.writer_gone())?
    }

    async fn find_idempotent(&self, channel: &ChannelName, key: &str) -> Result<Option<Publication>, StoreError> {
        let window_start_ms = now_ms().saturating_sub(IDEMPOTENCY_WINDOW_SECS * 1000);
        self.on_pooled_connection(READ_TIMEOUT, async |client| {
            reader::idempotent_original(client, channel, key, window_start_ms).await
        })
        .await
    }

    async fn position(&self, channel: &ChannelName) -> Result<StreamPosition, StoreError> {
        self.read_creating(channel, async |client, channel| reader::position(client, channel).await).await
    }

    async fn read(&self, channel: &ChannelName, query: HistoryQuery) -> Result<HistoryPage, StoreError> {
        self.read_creating(channel, async move |client, channel| reader::history_page(client, channel, query).await)
            .await
    }

    async fn snapshot(&self, channel: &ChannelName) -> Result<Snapshot, StoreError> {
        self.read_creating(channel, async |client, channel| reader::snapshot(client, channel).await).await
    }

    async fn sweep_expired(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.on_pooled_connection(SWEEP_TIMEOUT, async |client| sweeper::sweep_expired(client, now_ms).await).await
    }

    async fn open_channel(
        &self,
        channel: &ChannelName,
        channels_max: u64,
        now_ms: u64,
    ) -> Result<StreamPosition, StoreError> {
        self.on_pooled_connection(READ_TIMEOUT, async |client| channels::open(client, channel, channels_max, now_ms).await)
            .await?
    }

    async fn touch_channels(&self, touched: &[ChannelName], now_ms: u64) -> Result<(), StoreError> {
        if touched.is_empty() {
            return self.refuse_if_closed();
        }
        self.on_pooled_connection(READ_TIMEOUT, async |client| channels::touch(client, touched, now_ms).await).await
    }

    async fn expire_idle(&self, namespace: &str, idle_secs: u64, now_ms: u64) -> Result<Vec<ChannelName>, StoreError> {
        self.on_pooled_connection(SWEEP_TIMEOUT, async |client| {
            channels::expire_idle(client, namespace, idle_secs, now_ms).await
        })
        .await
    }

    async fn ready(&self) -> bool {
        let writer_running = self.writer_task.lock().as_ref().is_some_and(|task| !task.is_finished());
        !self.is_closed() && writer_running && self.health.reachable(&self.pool).await
    }

    async fn close(&self) {
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        // Everything queued before the shutdown command is still written and answered.
        let (done, finished) = oneshot::channel();
        if self.commands.send(WriterCommand::Shutdown { done }).is_ok() {
            let _ = finished.await;
        }
        let writer_task = self.writer_task.lock().take();
        if let Some(writer_task) = writer_task {
            match writer_task.await {
                Ok(()) => tracing::info!("postgres store closed"),
                Err(error) => tracing::error!(%error, "the postgres writer task failed"),
            }
        }
        self.pool.close();
    }
}

/// A pool of at most `max_size` connections with bounded checkout, connect and recycle times.
fn build_pool(endpoint: &tls::Endpoint, max_size: usize) -> Result<Pool, PostgresError> {
    let manager = endpoint.manager(ManagerConfig { recycling_method: RecyclingMethod::Fast });
    Pool::builder(manager)
        .max_size(max_size)
        .runtime(Runtime::Tokio1)
        .timeouts(Timeouts {
            wait: Some(POOL_WAIT_TIMEOUT),
            create: Some(schema::CONNECTION_SETUP_TIMEOUT),
            recycle: Some(POOL_RECYCLE_TIMEOUT),
        })
        .build()
        .map_err(PostgresError::Pool)
}

/// An error and its causes, `: `-separated (the driver's own messages omit the cause).
pub(crate) fn describe_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.ends_with(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// Offsets, times and sizes are `u64` in Rust and `BIGINT` in the database.
pub(crate) fn to_sql_int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// The inverse of [`to_sql_int`]; the store never writes a negative value.
pub(crate) fn from_sql_int(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A TTL as stored: clamped so that `history_ttl_secs * 1000` cannot overflow in SQL.
pub(crate) fn ttl_for_sql(history_ttl_secs: u64) -> i64 {
    to_sql_int(history_ttl_secs.min(HISTORY_TTL_SECS_MAX))
}
