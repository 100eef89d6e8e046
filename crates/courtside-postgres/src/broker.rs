//! [`PostgresBroker`]: the [`Broker`] that connects nodes through PostgreSQL `LISTEN`/`NOTIFY`,
//! for clusters that share a PostgreSQL database and run no Redis.
//!
//! # How a publication travels
//! 1. The store's writer calls [`CommitSink::committed`] in commit order. The batch is queued to
//!    a dispatcher task (the writer never waits).
//! 2. The dispatcher hands the batch to this node's sequencer at once (local subscribers never
//!    wait for PostgreSQL), encodes each publication as a notification payload (the crate's
//!    `notification` module) and queues the encoded batch to the publisher task. When that
//!    bounded queue is full the batch is dropped and counted.
//! 3. The publisher sends everything queued (up to [`PostgresBrokerConfig::publish_batch_max`]
//!    notifications) as one `SELECT pg_notify(…) FROM unnest(…)` on a pooled connection: one
//!    round trip and one transaction per batch, notifications in commit order. A failed batch is
//!    dropped and counted: followers repair it from the store.
//! 4. On every node, the listener task hands notifications from other nodes to the sequencer;
//!    its own node's (already delivered in step 2) are skipped by their origin node id.
//!
//! # Notification channels and payloads
//! A Courtside channel maps to the notification channel `{channel_prefix}_{64-bit hash}` (a
//! `LISTEN` identifier is at most 63 bytes). Channels sharing a hash share the notification
//! channel; the payload names the Courtside channel, and receivers drop channels they do not
//! follow. A payload must stay under 8000 bytes: a longer publication travels as a reference
//! (channel and offset), and the receiver reads it from the store through
//! [`Sequencer::check`]. A publication without an offset (ephemeral channel) that does not fit
//! cannot be read back: it reaches only this node's subscribers, and is counted in
//! [`PostgresBrokerStats::publish_errors`].
//!
//! # Following
//! Follows are counted per channel. The first follow of a channel asks the listener task to
//! `LISTEN` and resolves once PostgreSQL answered it; the last unfollow asks it to `UNLISTEN`
//! (unless another followed channel shares the notification channel) and resolves once that was
//! answered (or the connection is gone, which ends every `LISTEN` anyway). While the listening
//! connection is down, `follow` fails at once with [`BrokerError::Unavailable`] and is not
//! counted.
//!
//! # Losses
//! `pg_notify` runs after the store committed, on another connection, so a publication whose
//! notification failed (the publishing connection broke) is not carried, and a listening
//! connection that broke misses what was notified meanwhile: at most once, as with Redis. The
//! listener task reconnects with exponential backoff, `LISTEN`s to every followed channel again,
//! then asks for a position check of all of them: the sequencer compares each with the store and
//! repairs the tail it missed. The same check runs every
//! [`PostgresBrokerConfig::position_check_interval`]. Notifications arrive in commit order of
//! the notifying transactions; the sequencer still orders and deduplicates.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval_at};
use futures_util::StreamExt;
use tokio_postgres::{AsyncMessage, Client, Notification};

use courtside_core::broker::follow::{FollowChanges, FollowTable};
use courtside_core::broker::relay::{
    Backoff, Dispatcher, PositionCheckConfig, Relayed, RelayStats, count, reconnect, spawn_position_checks,
};
use courtside_core::broker::{Broker, BrokerCounter, BrokerError};
use courtside_core::channel::ChannelName;
use courtside_core::hub::PresenceEvent;
use courtside_core::sequencer::Sequencer;
use courtside_core::store::CommitSink;
use courtside_core::stream::Publication;

use crate::notification::{self, Carried, Encoded};
use crate::tls::Endpoint;
use crate::{PostgresError, build_pool, describe_error, schema};

/// Longest accepted node id, in bytes.
pub const NODE_ID_LEN_MAX: usize = 255;
/// Longest accepted notification channel prefix, in bytes (a notification channel name is the
/// prefix, `_` and 16 hex digits, within PostgreSQL's 63-byte identifiers).
pub const CHANNEL_PREFIX_LEN_MAX: usize = 40;
/// The longest NOTIFY payload PostgreSQL accepts (it must be shorter than 8000 bytes).
pub const NOTIFY_PAYLOAD_LEN_MAX: usize = 7_999;
/// Notification channels per `LISTEN`/`UNLISTEN` round trip when many change at once.
const CHANNELS_PER_LISTEN_MAX: usize = 1_000;
/// PostgreSQL keeps the first 63 bytes of an `application_name`.
const APPLICATION_NAME_LEN_MAX: usize = 63;

/// Sends a batch of notifications in one statement (one transaction, in array order).
const NOTIFY: &str =
    "SELECT pg_notify(n.channel, n.payload) FROM unnest($1::text[], $2::text[]) AS n(channel, payload)";

/// Tuning of a [`PostgresBroker`]; `Default` suits production.
#[derive(Debug, Clone)]
pub struct PostgresBrokerConfig {
    /// Starts every notification channel name: nodes see each other only with the same prefix,
    /// so deployments sharing a database (in different schemas) stay apart. 1 to
    /// [`CHANNEL_PREFIX_LEN_MAX`] bytes of `a-z`, `0-9` and `_`, not starting with a digit.
    pub channel_prefix: String,
    /// How often every followed channel is compared with the store, to repair what was not
    /// carried without a disconnect (a publishing connection that failed).
    pub position_check_interval: Duration,
    /// Channels checked at the same time during a position check.
    pub position_checks_concurrent_max: usize,
    /// How often the listening connection is pinged, so a silently dead one is noticed.
    pub ping_interval: Duration,
    /// First delay before reconnecting; it doubles up to `reconnect_delay_max`.
    pub reconnect_delay_min: Duration,
    pub reconnect_delay_max: Duration,
    /// Limit for a `LISTEN`/`UNLISTEN` to be answered, for a ping, and for publishing a batch.
    pub postgres_timeout: Duration,
    /// Most notifications sent in one statement.
    pub publish_batch_max: usize,
    /// Committed batches waiting for the publisher before new ones are dropped (and counted in
    /// [`PostgresBrokerStats::publish_errors`]).
    pub publish_queue_batches_max: usize,
    /// Longest payload sent whole; longer publications travel as references. At most
    /// [`NOTIFY_PAYLOAD_LEN_MAX`].
    pub payload_len_max: usize,
    /// After a reference arrived, the channel is checked against the store at once and again
    /// after this delay (the first check does nothing while a repair of the channel is running).
    pub reference_recheck_delay: Duration,
}

impl Default for PostgresBrokerConfig {
    fn default() -> Self {
        Self {
            channel_prefix: "cs".into(),
            position_check_interval: Duration::from_secs(5),
            position_checks_concurrent_max: 16,
            ping_interval: Duration::from_secs(5),
            reconnect_delay_min: Duration::from_millis(100),
            reconnect_delay_max: Duration::from_secs(5),
            postgres_timeout: Duration::from_secs(5),
            publish_batch_max: 512,
            publish_queue_batches_max: 65_536,
            payload_len_max: NOTIFY_PAYLOAD_LEN_MAX,
            reference_recheck_delay: Duration::from_millis(250),
        }
    }
}

/// Counters for metrics; each only grows. The counters every connecting broker keeps are in
/// [`RelayStats`] (reachable through `Deref`); these are PostgreSQL's own.
#[derive(Debug, Default)]
pub struct PostgresBrokerStats {
    pub relay: Arc<RelayStats>,
    /// Of `published`, those sent as references (too long to send whole).
    pub published_as_reference: AtomicU64,
    /// References from other nodes, each followed by a position check of its channel.
    pub received_as_reference: AtomicU64,
    /// Notifications for channels this node does not follow (they share a notification
    /// channel with one it follows, or arrived just after an unfollow).
    pub ignored: AtomicU64,
}

impl std::ops::Deref for PostgresBrokerStats {
    type Target = RelayStats;

    fn deref(&self) -> &RelayStats {
        &self.relay
    }
}

/// What the broker handle and its tasks share.
struct Shared {
    node_id: String,
    sequencer: Arc<Sequencer>,
    config: PostgresBrokerConfig,
    listener_application_name: String,
    /// Routes are notification channels.
    follows: Arc<FollowTable<String>>,
    /// Backend process id of the listening connection; 0 while there is none.
    listener_pid: AtomicI32,
    /// The server encoding is not UTF-8: payloads are kept to ASCII.
    ascii_only: AtomicBool,
    /// Channels a reference arrived for whose check has not started yet.
    reference_checks: Mutex<HashSet<ChannelName>>,
    stats: PostgresBrokerStats,
}

impl Shared {
    fn notification_channel(&self, channel: &ChannelName) -> String {
        notification::notification_channel(&self.config.channel_prefix, channel)
    }

    /// Has the sequencer compare `channel` with the store, soon, once for a burst of references.
    fn check_for_reference(self: &Arc<Self>, channel: ChannelName) {
        if !self.reference_checks.lock().insert(channel.clone()) {
            return;
        }
        let shared = self.clone();
        tokio::spawn(async move {
            // References arriving from here on start a check of their own: this one reads the
            // store's position only after the removal, so it covers everything before it.
            shared.reference_checks.lock().remove(&channel);
            shared.sequencer.check(&channel).await;
            tokio::time::sleep(shared.config.reference_recheck_delay).await;
            shared.sequencer.check(&channel).await;
        });
    }
}

/// The PostgreSQL [`Broker`] of one node; see the module docs.
pub struct PostgresBroker {
    shared: Arc<Shared>,
    dispatcher: Dispatcher,
}

impl PostgresBroker {
    /// Connects with the default [`PostgresBrokerConfig`]; see
    /// [`PostgresBroker::connect_with_config`].
    pub async fn connect(url: &str, node_id: &str, sequencer: Arc<Sequencer>) -> Result<Arc<Self>, PostgresError> {
        Self::connect_with_config(url, node_id, sequencer, PostgresBrokerConfig::default()).await
    }

    /// Opens the listening connection and the publishing pool (a `postgres://` URL or
    /// `key=value` text, as for the store) and starts the broker's tasks; call from within a
    /// Tokio runtime. Fails if PostgreSQL cannot be reached now; later outages are ridden out.
    /// `node_id` (printable ASCII, 1 to [`NODE_ID_LEN_MAX`] bytes) must be unique among the
    /// nodes sharing the database and channel prefix. The tasks end when the broker is dropped.
    pub async fn connect_with_config(
        url: &str,
        node_id: &str,
        sequencer: Arc<Sequencer>,
        config: PostgresBrokerConfig,
    ) -> Result<Arc<Self>, PostgresError> {
        validate_node_id(node_id)?;
        validate_channel_prefix(&config.channel_prefix)?;
        let base = schema::store_config(url)?;
        let application = base.config.get_application_name().unwrap_or("courtside").to_string();
        let mut listener_config = base.clone();
        let listener_application_name = application_name(&application, "listen", node_id);
        listener_config.config.application_name(listener_application_name.clone());
        let mut publisher_config = base;
        publisher_config.config.application_name(application_name(&application, "notify", node_id));

        let (listener, server_encoding) = open_listener(&listener_config, config.postgres_timeout).await?;
        let publisher_pool = build_pool(&publisher_config, 1)?;
        let (follows, changes) = FollowTable::new(config.postgres_timeout, "the PostgreSQL listening connection is down");
        let follows = Arc::new(follows);
        let stats = PostgresBrokerStats::default();
        let relay_stats = stats.relay.clone();
        let shared = Arc::new(Shared {
            node_id: node_id.to_string(),
            sequencer: sequencer.clone(),
            listener_application_name,
            follows: follows.clone(),
            listener_pid: AtomicI32::new(listener.pid),
            ascii_only: AtomicBool::new(!server_encoding.eq_ignore_ascii_case("UTF8")),
            reference_checks: Mutex::new(HashSet::new()),
            stats,
            config: PostgresBrokerConfig {
                payload_len_max: config.payload_len_max.min(NOTIFY_PAYLOAD_LEN_MAX),
                ..config
            },
        });
        let config = &shared.config;
        let (publish_queue, publish_queue_rx) = mpsc::channel(config.publish_queue_batches_max.max(1));
        let encoder = shared.clone();
        let mut seq: u64 = 0;
        let dispatcher = Dispatcher::relaying(
            sequencer.clone(),
            relay_stats.clone(),
            "PostgreSQL",
            move |item: &Relayed| {
                seq += 1;
                let ascii_only = encoder.ascii_only.load(Ordering::Relaxed);
                let max = encoder.config.payload_len_max;
                let (payload, reference) = match notification::encode(&encoder.node_id, seq, item, max, ascii_only) {
                    Encoded::Full(payload) => (payload, false),
                    Encoded::Reference(payload) => (payload, true),
                    Encoded::Impossible(why) => return Err(why.to_string()),
                };
                Ok(OutgoingNotification { channel: encoder.notification_channel(item.channel()), payload, reference })
            },
            publish_queue,
        );
        tokio::spawn(publish_notifications(shared.clone(), publisher_pool, publish_queue_rx));
        let check_requests = spawn_position_checks(
            sequencer,
            follows,
            relay_stats,
            PositionCheckConfig {
                interval: config.position_check_interval,
                concurrent_max: config.position_checks_concurrent_max,
            },
        );
        let listener_task = ListenerTask {
            shared: shared.clone(),
            config: listener_config,
            changes,
            check_requests,
            listened: HashSet::new(),
        };
        tokio::spawn(listener_task.run(listener));
        tracing::info!(node_id, %server_encoding, "postgres broker connected");
        Ok(Arc::new(Self { shared, dispatcher }))
    }

    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    pub fn stats(&self) -> &PostgresBrokerStats {
        &self.shared.stats
    }

    /// Channels followed on this node right now.
    pub fn followed_channels(&self) -> Vec<ChannelName> {
        self.shared.follows.channels()
    }

    /// The PostgreSQL notification channel `channel` travels on.
    pub fn notification_channel(&self, channel: &ChannelName) -> String {
        self.shared.notification_channel(channel)
    }

    /// The `application_name` of the listening connection (as in `pg_stat_activity`):
    /// `{application}:listen:{node id}`, cut to 63 bytes, where the application is the URL's
    /// `application_name` or `courtside`. The publishing connection uses `:notify:`.
    pub fn listener_application_name(&self) -> &str {
        &self.shared.listener_application_name
    }

    /// The backend process id of the listening connection, while it is up.
    pub fn listener_pid(&self) -> Option<i32> {
        Some(self.shared.listener_pid.load(Ordering::SeqCst)).filter(|pid| *pid != 0)
    }
}

impl Drop for PostgresBroker {
    /// The tasks hold what they share with the handle; closing the follow table ends the
    /// receiving task, and dropping the dispatcher ends the publisher.
    fn drop(&mut self) {
        self.shared.follows.close();
    }
}

impl CommitSink for PostgresBroker {
    fn committed(&self, publications: Vec<Publication>) {
        self.dispatcher.committed(publications);
    }
}

#[async_trait]
impl Broker for PostgresBroker {
    async fn follow(&self, channel: &ChannelName) -> Result<(), BrokerError> {
        self.shared.follows.follow(channel, || self.shared.notification_channel(channel)).await
    }

    async fn unfollow(&self, channel: &ChannelName) {
        self.shared.follows.unfollow(channel).await;
    }

    async fn ready(&self) -> bool {
        self.shared.follows.is_connected()
    }

    fn announce(&self, event: PresenceEvent) {
        self.dispatcher.announce(event);
    }

    fn counters(&self) -> Vec<BrokerCounter> {
        let stats = &self.shared.stats;
        let mut counters = stats.relay.counters("postgres", "PostgreSQL");
        let counter = |name: &str, help: &str, value: &AtomicU64| BrokerCounter {
            name: name.into(),
            help: help.into(),
            value: value.load(Ordering::Relaxed),
        };
        counters.push(counter(
            "postgres_published_as_reference",
            "Publications too large for a notification, sent as a reference to the store.",
            &stats.published_as_reference,
        ));
        counters.push(counter(
            "postgres_received_as_reference",
            "References from other nodes, each followed by a check of the channel against the store.",
            &stats.received_as_reference,
        ));
        counters
    }
}

fn validate_node_id(node_id: &str) -> Result<(), PostgresError> {
    let reason = if node_id.is_empty() || node_id.len() > NODE_ID_LEN_MAX {
        format!("must be 1 to {NODE_ID_LEN_MAX} bytes long, got {} bytes", node_id.len())
    } else if let Some(bad) = node_id.chars().find(|c| !(c.is_ascii_graphic() || *c == ' ')) {
        format!("must be printable ASCII, found {bad:?}")
    } else {
        return Ok(());
    };
    Err(PostgresError::InvalidNodeId(reason))
}

fn validate_channel_prefix(prefix: &str) -> Result<(), PostgresError> {
    let valid = (1..=CHANNEL_PREFIX_LEN_MAX).contains(&prefix.len())
        && prefix.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !prefix.starts_with(|c: char| c.is_ascii_digit());
    if valid { Ok(()) } else { Err(PostgresError::InvalidChannelPrefix(prefix.to_string())) }
}

/// `{application}:{role}:{node id}`, cut to what PostgreSQL keeps (at a character boundary).
fn application_name(application: &str, role: &str, node_id: &str) -> String {
    let mut name = format!("{application}:{role}:{node_id}");
    let mut len = name.len().min(APPLICATION_NAME_LEN_MAX);
    while !name.is_char_boundary(len) {
        len -= 1;
    }
    name.truncate(len);
    name
}

/// What the driver of the listening connection reports.
enum ListenerEvent {
    Notification(Notification),
    /// The connection ended; no more events follow.
    Closed(String),
}

/// The listening connection: its client, and the events of the task driving it.
struct ListenerConnection {
    client: Client,
    events: mpsc::UnboundedReceiver<ListenerEvent>,
    pid: i32,
}

/// Opens the listening connection; returns it with the server encoding.
async fn open_listener(endpoint: &Endpoint, limit: Duration) -> Result<(ListenerConnection, String), PostgresError> {
    let (client, mut connection) = tokio::time::timeout(schema::CONNECTION_SETUP_TIMEOUT, endpoint.connect())
        .await
        .map_err(|_| PostgresError::ConnectTimedOut(schema::CONNECTION_SETUP_TIMEOUT))?
        .map_err(PostgresError::Connect)?;
    // Unbounded: the driver must never wait for the listener task, which may itself be
    // waiting for an answer only the driver can read.
    let (events, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let ended = loop {
            match connection.next().await {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    if events.send(ListenerEvent::Notification(notification)).is_err() {
                        return;
                    }
                }
                Some(Ok(AsyncMessage::Notice(notice))) => tracing::debug!(%notice, "postgres notice"),
                Some(Ok(_)) => {}
                Some(Err(error)) => break describe_error(&error),
                None => break "the connection closed".to_string(),
            }
        };
        let _ = events.send(ListenerEvent::Closed(ended));
    });
    let query = client.query_one("SELECT pg_backend_pid(), current_setting('server_encoding')", &[]);
    let row = tokio::time::timeout(limit, query)
        .await
        .map_err(|_| PostgresError::ConnectTimedOut(limit))?
        .map_err(PostgresError::Connect)?;
    let pid: i32 = row.try_get(0).map_err(PostgresError::Connect)?;
    let encoding: String = row.try_get(1).map_err(PostgresError::Connect)?;
    Ok((ListenerConnection { client, events: received, pid }, encoding))
}

/// One encoded publication on its way to PostgreSQL.
struct OutgoingNotification {
    channel: String,
    payload: String,
    reference: bool,
}

/// Sends queued batches in order, as few statements as the batch limit allows.
async fn publish_notifications(
    shared: Arc<Shared>,
    pool: Pool,
    mut publish_queue: mpsc::Receiver<Vec<OutgoingNotification>>,
) {
    let batch_max = shared.config.publish_batch_max.max(1);
    let mut failing = false;
    while let Some(first) = publish_queue.recv().await {
        let (mut channels, mut payloads) = (Vec::new(), Vec::new());
        let mut references = 0;
        let mut next = Some(first);
        while let Some(batch) = next.take() {
            for message in batch {
                references += usize::from(message.reference);
                channels.push(message.channel);
                payloads.push(message.payload);
            }
            if channels.len() < batch_max {
                next = publish_queue.try_recv().ok();
            }
        }
        match notify(&pool, shared.config.postgres_timeout, &channels, &payloads).await {
            Ok(()) => {
                count(&shared.stats.published, channels.len());
                count(&shared.stats.published_as_reference, references);
                if failing {
                    tracing::info!("publishing to PostgreSQL again");
                }
                failing = false;
            }
            Err(error) => {
                count(&shared.stats.publish_errors, channels.len());
                if !failing {
                    tracing::warn!(%error, "notifying through PostgreSQL failed; followers will repair from the store");
                }
                failing = true;
            }
        }
    }
    pool.close();
}

/// Sends one batch of notifications; a connection that broke or did not answer is discarded.
async fn notify(pool: &Pool, limit: Duration, channels: &[String], payloads: &[String]) -> Result<(), String> {
    let client = match tokio::time::timeout(limit, pool.get()).await {
        Ok(Ok(client)) => client,
        Ok(Err(error)) => return Err(format!("cannot get a postgres connection: {}", describe_error(&error))),
        Err(_) => return Err(format!("no postgres connection within {limit:?}")),
    };
    let sent = tokio::time::timeout(limit, async {
        let statement = client.prepare_cached(NOTIFY).await?;
        client.execute(&statement, &[&channels, &payloads]).await
    })
    .await;
    match sent {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(error)) => {
            if error.as_db_error().is_none() {
                drop(Object::take(client));
            }
            Err(format!("pg_notify failed: {}", describe_error(&error)))
        }
        Err(_) => {
            drop(Object::take(client));
            Err(format!("pg_notify did not answer within {limit:?}"))
        }
    }
}

/// Why the listener task stopped serving a connection.
enum ServeEnd {
    BrokerDropped,
    ConnectionLost(String),
}

/// Owns the listening connection: `LISTEN`s, incoming notifications, reconnects.
struct ListenerTask {
    shared: Arc<Shared>,
    config: Endpoint,
    changes: FollowChanges,
    check_requests: mpsc::Sender<()>,
    /// Notification channels PostgreSQL is listening to on the current connection.
    listened: HashSet<String>,
}

impl ListenerTask {
    async fn run(mut self, first: ListenerConnection) {
        let mut connection = first;
        let mut reconnected = false;
        loop {
            let reason = match self.serve(connection, reconnected).await {
                ServeEnd::BrokerDropped => return,
                ServeEnd::ConnectionLost(reason) => reason,
            };
            self.shared.listener_pid.store(0, Ordering::SeqCst);
            tracing::warn!(%reason, "PostgreSQL listening connection lost; reconnecting");
            self.shared.follows.connection_lost(&format!("the PostgreSQL listening connection was lost: {reason}"));
            let config = &self.shared.config;
            let backoff = Backoff { min: config.reconnect_delay_min, max: config.reconnect_delay_max };
            let (listener_config, limit) = (&self.config, config.postgres_timeout);
            let open = || async move {
                open_listener(listener_config, limit).await.map(|(connection, _)| connection).map_err(|error| error.to_string())
            };
            match reconnect(&self.shared.follows, &mut self.changes, backoff, open).await {
                Some(next) => connection = next,
                None => return,
            }
            reconnected = true;
        }
    }

    async fn serve(&mut self, mut connection: ListenerConnection, reconnected: bool) -> ServeEnd {
        self.listened.clear();
        if let Err(reason) = self.apply_follow_changes(&connection.client).await {
            return ServeEnd::ConnectionLost(reason);
        }
        self.shared.listener_pid.store(connection.pid, Ordering::SeqCst);
        self.shared.follows.reconnected();
        if reconnected {
            count(&self.shared.stats.reconnects, 1);
            tracing::info!(channels = self.listened.len(), "PostgreSQL listening connection re-established");
            // Repair what was published while the connection was down.
            let _ = self.check_requests.try_send(());
        }
        let limit = self.shared.config.postgres_timeout;
        let ping_interval = self.shared.config.ping_interval;
        let mut pings = interval_at(Instant::now() + ping_interval, ping_interval);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                change = self.changes.next() => {
                    if change.is_none() {
                        return ServeEnd::BrokerDropped;
                    }
                    if let Err(reason) = self.apply_follow_changes(&connection.client).await {
                        return ServeEnd::ConnectionLost(reason);
                    }
                }
                event = connection.events.recv() => match event {
                    Some(ListenerEvent::Notification(notification)) => self.deliver(&notification),
                    Some(ListenerEvent::Closed(reason)) => return ServeEnd::ConnectionLost(reason),
                    None => return ServeEnd::ConnectionLost("the connection's driver stopped".into()),
                },
                _ = pings.tick() => {
                    if let Err(reason) = with_timeout(limit, "ping", connection.client.simple_query("SELECT 1")).await {
                        return ServeEnd::ConnectionLost(reason);
                    }
                }
            }
        }
    }

    /// Listens to the notification channels of followed channels not yet listened to, and
    /// stops listening to the others.
    async fn apply_follow_changes(&mut self, client: &Client) -> Result<(), String> {
        let (covered, wanted) = self.shared.follows.wanted_routes();
        let to_listen: Vec<String> = wanted.difference(&self.listened).cloned().collect();
        let to_unlisten: Vec<String> = self.listened.difference(&wanted).cloned().collect();
        let limit = self.shared.config.postgres_timeout;
        for names in to_listen.chunks(CHANNELS_PER_LISTEN_MAX) {
            let statements: String = names.iter().map(|name| format!("LISTEN \"{name}\";")).collect();
            with_timeout(limit, "LISTEN", client.batch_execute(&statements)).await?;
            self.listened.extend(names.iter().cloned());
        }
        for names in to_unlisten.chunks(CHANNELS_PER_LISTEN_MAX) {
            let statements: String = names.iter().map(|name| format!("UNLISTEN \"{name}\";")).collect();
            with_timeout(limit, "UNLISTEN", client.batch_execute(&statements)).await?;
            for name in names {
                self.listened.remove(name);
            }
        }
        self.shared.follows.applied(covered, &self.listened);
        Ok(())
    }

    fn deliver(&self, notification: &Notification) {
        let stats = &self.shared.stats;
        let payload = notification.payload();
        match notification::origin_node(payload) {
            Ok(origin) if origin == self.shared.node_id => {
                count(&stats.skipped_own, 1);
                return;
            }
            Ok(_) => {}
            Err(error) => {
                count(&stats.malformed, 1);
                tracing::debug!(channel = notification.channel(), %error, "unreadable notification");
                return;
            }
        }
        let received = match notification::decode(payload) {
            Ok(received) => received,
            Err(error) => {
                count(&stats.malformed, 1);
                tracing::debug!(channel = notification.channel(), %error, "unreadable notification");
                return;
            }
        };
        let channel = match &received.carried {
            Carried::Publication(publication) => &publication.channel,
            Carried::Reference { channel, .. } => channel,
            Carried::Presence(event) => &event.channel,
        };
        if self.shared.notification_channel(channel) != notification.channel() {
            count(&stats.malformed, 1);
            tracing::debug!(channel = notification.channel(), %channel, "notification on another channel's name");
            return;
        }
        if !self.shared.follows.is_followed(channel) {
            count(&stats.ignored, 1);
            return;
        }
        match received.carried {
            Carried::Publication(publication) => {
                count(&stats.received, 1);
                self.shared.sequencer.receive(publication);
            }
            Carried::Presence(event) => {
                count(&stats.received, 1);
                self.shared.sequencer.announce(event);
            }
            Carried::Reference { channel, .. } => {
                count(&stats.received_as_reference, 1);
                self.shared.check_for_reference(channel);
            }
        }
    }
}

async fn with_timeout<T>(
    limit: Duration,
    what: &str,
    future: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what} failed: {}", describe_error(&error))),
        Err(_) => Err(format!("{what} timed out after {limit:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_and_prefixes_are_checked() {
        assert!(validate_node_id("node-a 1").is_ok());
        assert!(validate_node_id("").is_err());
        assert!(validate_node_id(&"n".repeat(NODE_ID_LEN_MAX + 1)).is_err());
        assert!(validate_node_id("tab\there").is_err());
        assert!(validate_node_id("zoë").is_err());
        assert!(validate_channel_prefix("cs").is_ok());
        assert!(validate_channel_prefix("_team_2").is_ok());
        for bad in ["", "Cs", "2cs", "c-s", "c\"s", &"c".repeat(CHANNEL_PREFIX_LEN_MAX + 1)] {
            assert!(validate_channel_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn application_names_fit_what_postgres_keeps() {
        assert_eq!(application_name("courtside", "listen", "n1"), "courtside:listen:n1");
        let long = application_name("courtside", "listen", &"é".repeat(40));
        assert!(long.len() <= APPLICATION_NAME_LEN_MAX && long.len() >= APPLICATION_NAME_LEN_MAX - 1);
    }
}
