//! [`RedisBroker`]: the [`Broker`] that connects nodes through Redis pub/sub.
//!
//! # How a publication travels
//! 1. The store's writer calls [`CommitSink::committed`] in commit order. The batch is queued to
//!    a dispatcher task (the writer never waits, not even for a lock held by a subscriber).
//! 2. The dispatcher hands each publication to this node's sequencer at once (local subscribers
//!    never wait for Redis), encodes it ([`crate::codec`]) and queues the encoded batch to the
//!    publisher task. When that bounded queue is full the batch is dropped and counted.
//! 3. The publisher `PUBLISH`es to `{prefix}:ch:{channel}`, pipelining everything queued (up
//!    to [`RedisBrokerConfig::publish_batch_max`]) into one round trip, in commit order. A
//!    failed pipeline is dropped and counted: followers repair it from the store.
//! 4. On every node, the pub/sub task hands messages from other nodes to the sequencer; its own
//!    node's messages (already delivered in step 2) are skipped.
//!
//! # Following
//! Follows are counted per channel. The first follow of a channel asks the pub/sub task to
//! `SUBSCRIBE` and resolves once Redis confirmed it; the last unfollow asks it to
//! `UNSUBSCRIBE` and resolves once that was sent and confirmed (or the connection is gone, which
//! drops every subscription anyway). While the pub/sub connection is down, `follow` fails at
//! once with [`BrokerError::Unavailable`] and is not counted.
//!
//! # Losses
//! Pub/sub is at-most-once. The pub/sub task reconnects with exponential backoff, re-subscribes
//! every followed channel, then asks for a position check of all of them: the sequencer
//! compares each with the store and repairs the tail Redis dropped. The same check also runs
//! every [`RedisBrokerConfig::position_check_interval`], because messages can be lost without
//! a disconnect (a publisher whose connection failed, a slow subscriber Redis cut off).
//!
//! Sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`) is not used: the `redis` crate's async `PubSub`
//! has no `ssubscribe` for standalone servers, and on one server it is the same as plain pub/sub.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::{ConnectionManager, ConnectionManagerConfig, PubSub, PubSubSink};
use tokio::sync::{mpsc, watch};
use tokio::time::{Instant, MissedTickBehavior, interval_at};

use courtside_core::broker::{Broker, BrokerCounter, BrokerError};
use courtside_core::channel::ChannelName;
use courtside_core::sequencer::Sequencer;
use courtside_core::store::CommitSink;
use courtside_core::stream::Publication;

use crate::{RedisError, codec, open_client, redacted_url};

/// Longest accepted node id, in bytes.
pub const NODE_ID_LEN_MAX: usize = 255;
/// Channels per `SUBSCRIBE`/`UNSUBSCRIBE` command when many change at once (after a reconnect).
const CHANNELS_PER_SUBSCRIBE_MAX: usize = 1_000;

/// Tuning of a [`RedisBroker`]; `Default` suits production.
#[derive(Debug, Clone)]
pub struct RedisBrokerConfig {
    /// How often every followed channel is compared with the store, to repair what pub/sub
    /// dropped without a disconnect.
    pub position_check_interval: Duration,
    /// Channels checked at the same time during a position check.
    pub position_checks_concurrent_max: usize,
    /// How often the pub/sub connection is pinged, so a silently dead one is noticed.
    pub ping_interval: Duration,
    /// First delay before reconnecting; it doubles up to `reconnect_delay_max`.
    pub reconnect_delay_min: Duration,
    pub reconnect_delay_max: Duration,
    /// Limit for connecting, for a (un)subscribe to be confirmed, and for a command's answer.
    pub redis_timeout: Duration,
    /// Most publications `PUBLISH`ed in one pipeline.
    pub publish_batch_max: usize,
    /// Committed batches waiting for the publisher before new ones are dropped (and counted in
    /// [`RedisBrokerStats::publish_errors`]).
    pub publish_queue_batches_max: usize,
}

impl Default for RedisBrokerConfig {
    fn default() -> Self {
        Self {
            position_check_interval: Duration::from_secs(5),
            position_checks_concurrent_max: 16,
            ping_interval: Duration::from_secs(5),
            reconnect_delay_min: Duration::from_millis(100),
            reconnect_delay_max: Duration::from_secs(5),
            redis_timeout: Duration::from_secs(5),
            publish_batch_max: 512,
            publish_queue_batches_max: 65_536,
        }
    }
}

/// Counters for metrics; each only grows.
#[derive(Debug, Default)]
pub struct RedisBrokerStats {
    /// Publications Redis accepted from this node.
    pub published: AtomicU64,
    /// Publications from other nodes handed to this node's sequencer.
    pub received: AtomicU64,
    /// This node's own publications coming back from Redis (already delivered locally).
    pub skipped_own: AtomicU64,
    /// Publications this node could not carry to Redis (failed pipeline, full queue, or a field
    /// too long to encode); followers repair them from the store.
    pub publish_errors: AtomicU64,
    /// Times the pub/sub connection was re-established after it was lost.
    pub reconnects: AtomicU64,
    /// Messages on a followed channel that could not be read as a publication.
    pub malformed: AtomicU64,
    /// Completed position checks (all followed channels compared with the store).
    pub position_checks: AtomicU64,
}

fn count(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

/// Where the subscription of a followed channel stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum SubscriptionState {
    /// `SUBSCRIBE` requested, not yet confirmed.
    Pending,
    Confirmed,
    /// The connection failed before Redis confirmed; the waiting follows give up.
    Failed(String),
}

struct Following {
    /// Follows not yet matched by an unfollow.
    follows: usize,
    state: watch::Sender<SubscriptionState>,
}

/// What the broker handle and its tasks share.
struct Shared {
    node_id: String,
    /// `{prefix}:ch:`, the start of every Redis channel this broker uses.
    redis_channel_prefix: String,
    sequencer: Arc<Sequencer>,
    config: RedisBrokerConfig,
    followed: Mutex<HashMap<ChannelName, Following>>,
    /// Numbered requests to bring Redis subscriptions in line with `followed`.
    subscription_changes_requested: AtomicU64,
    /// The highest request number the pub/sub task has carried out.
    subscription_changes_applied: watch::Sender<u64>,
    pubsub_connected: AtomicBool,
    stats: RedisBrokerStats,
}

impl Shared {
    fn redis_channel(&self, channel: &ChannelName) -> String {
        format!("{}{}", self.redis_channel_prefix, channel)
    }

    fn courtside_channel(&self, redis_channel: &str) -> Option<ChannelName> {
        ChannelName::parse(redis_channel.strip_prefix(&self.redis_channel_prefix)?).ok()
    }

    fn followed_channels(&self) -> Vec<ChannelName> {
        self.followed.lock().keys().cloned().collect()
    }

    /// Marks the subscriptions Redis confirmed.
    fn confirm(&self, subscribed: &HashSet<ChannelName>) {
        for (channel, following) in self.followed.lock().iter() {
            if subscribed.contains(channel) {
                following.state.send_if_modified(|state| {
                    let pending = *state == SubscriptionState::Pending;
                    if pending {
                        *state = SubscriptionState::Confirmed;
                    }
                    pending
                });
            }
        }
    }

    /// Fails the follows waiting for a confirmation that will not come on this connection.
    fn fail_pending(&self, reason: &str) {
        for following in self.followed.lock().values() {
            following.state.send_if_modified(|state| {
                let pending = *state == SubscriptionState::Pending;
                if pending {
                    *state = SubscriptionState::Failed(reason.to_string());
                }
                pending
            });
        }
    }

    fn mark_applied(&self, request: u64) {
        self.subscription_changes_applied.send_if_modified(|applied| {
            let newer = request > *applied;
            if newer {
                *applied = request;
            }
            newer
        });
    }
}

/// The Redis [`Broker`] of one node; see the module docs.
pub struct RedisBroker {
    shared: Arc<Shared>,
    committed_batches: mpsc::UnboundedSender<Vec<Publication>>,
    /// Wakes the pub/sub task to apply subscription changes (capacity 1: wake-ups coalesce).
    subscription_changed: mpsc::Sender<()>,
}

impl RedisBroker {
    /// Connects with the default [`RedisBrokerConfig`]; see [`RedisBroker::connect_with_config`].
    pub async fn connect(
        url: &str,
        key_prefix: &str,
        node_id: &str,
        sequencer: Arc<Sequencer>,
    ) -> Result<Arc<Self>, RedisError> {
        Self::connect_with_config(url, key_prefix, node_id, sequencer, RedisBrokerConfig::default()).await
    }

    /// Opens the pub/sub and the publishing connection and starts the broker's tasks; call from
    /// within a Tokio runtime. Fails if Redis cannot be reached now; later outages are ridden
    /// out. `node_id` must be unique among the nodes sharing `key_prefix`. The tasks end when the
    /// broker is dropped.
    pub async fn connect_with_config(
        url: &str,
        key_prefix: &str,
        node_id: &str,
        sequencer: Arc<Sequencer>,
        config: RedisBrokerConfig,
    ) -> Result<Arc<Self>, RedisError> {
        if node_id.is_empty() || node_id.len() > NODE_ID_LEN_MAX {
            return Err(RedisError::InvalidNodeId { len: node_id.len(), max: NODE_ID_LEN_MAX });
        }
        let client = open_client(url)?;
        let url = redacted_url(url);
        let pubsub = open_pubsub(&client, &url, config.redis_timeout).await?;
        let publisher_connection = open_publisher_connection(&client, &url, &config).await?;

        let shared = Arc::new(Shared {
            node_id: node_id.to_string(),
            redis_channel_prefix: format!("{key_prefix}:ch:"),
            sequencer,
            followed: Mutex::new(HashMap::new()),
            subscription_changes_requested: AtomicU64::new(0),
            subscription_changes_applied: watch::Sender::new(0),
            pubsub_connected: AtomicBool::new(true),
            stats: RedisBrokerStats::default(),
            config: config.clone(),
        });
        let (committed_batches, committed_batches_rx) = mpsc::unbounded_channel();
        let (publish_queue, publish_queue_rx) = mpsc::channel(config.publish_queue_batches_max.max(1));
        let (subscription_changed, subscription_changed_rx) = mpsc::channel(1);
        let (check_requests, check_requests_rx) = mpsc::channel(1);

        tokio::spawn(dispatch_committed(shared.clone(), committed_batches_rx, publish_queue));
        tokio::spawn(publish_to_redis(shared.clone(), publisher_connection, publish_queue_rx));
        tokio::spawn(check_positions(shared.clone(), check_requests_rx));
        let pubsub_task = PubSubTask {
            shared: shared.clone(),
            client,
            url,
            subscription_changed: subscription_changed_rx,
            check_requests,
            subscribed: HashSet::new(),
        };
        tokio::spawn(pubsub_task.run(pubsub));
        Ok(Arc::new(Self { shared, committed_batches, subscription_changed }))
    }

    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    pub fn stats(&self) -> &RedisBrokerStats {
        &self.shared.stats
    }

    /// Channels followed on this node right now.
    pub fn followed_channels(&self) -> Vec<ChannelName> {
        self.shared.followed_channels()
    }

    /// Asks the pub/sub task to bring Redis subscriptions in line with `followed`; returns the
    /// request's number. Call after changing `followed`, with its lock released.
    fn request_subscription_change(&self) -> u64 {
        let request = self.shared.subscription_changes_requested.fetch_add(1, Ordering::SeqCst) + 1;
        // A full queue means a wake-up is already pending, and it will cover this request.
        let _ = self.subscription_changed.try_send(());
        request
    }

    /// Matches one follow; the last one makes the channel unfollowed. Returns the number of the
    /// subscription change to wait for, if any.
    fn release(&self, channel: &ChannelName) -> Option<u64> {
        {
            let mut followed = self.shared.followed.lock();
            let Entry::Occupied(mut entry) = followed.entry(channel.clone()) else { return None };
            entry.get_mut().follows -= 1;
            if entry.get().follows > 0 {
                return None;
            }
            entry.remove();
        }
        Some(self.request_subscription_change())
    }
}

impl CommitSink for RedisBroker {
    fn committed(&self, publications: Vec<Publication>) {
        // If the runtime is gone there is nobody left to deliver to.
        let _ = self.committed_batches.send(publications);
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn follow(&self, channel: &ChannelName) -> Result<(), BrokerError> {
        if !self.shared.pubsub_connected.load(Ordering::SeqCst) {
            return Err(BrokerError::Unavailable("the Redis pub/sub connection is down".into()));
        }
        let (mut state, is_first) = {
            let mut followed = self.shared.followed.lock();
            match followed.entry(channel.clone()) {
                Entry::Occupied(mut entry) => {
                    entry.get_mut().follows += 1;
                    (entry.get().state.subscribe(), false)
                }
                Entry::Vacant(entry) => {
                    let (state, receiver) = watch::channel(SubscriptionState::Pending);
                    entry.insert(Following { follows: 1, state });
                    (receiver, true)
                }
            }
        };
        if is_first {
            self.request_subscription_change();
        }
        let outcome = state.wait_for(|state| *state != SubscriptionState::Pending).await.map(|state| state.clone());
        match outcome {
            Ok(SubscriptionState::Confirmed) => Ok(()),
            Ok(SubscriptionState::Failed(reason)) => {
                self.release(channel);
                Err(BrokerError::Unavailable(reason))
            }
            Ok(SubscriptionState::Pending) | Err(_) => {
                self.release(channel);
                Err(BrokerError::Unavailable("the broker stopped".into()))
            }
        }
    }

    async fn unfollow(&self, channel: &ChannelName) {
        let Some(request) = self.release(channel) else { return };
        let mut applied = self.shared.subscription_changes_applied.subscribe();
        // Bounded: the pub/sub task marks requests applied on every path, but a hung Redis must
        // not hang an unsubscribing connection.
        let _ = tokio::time::timeout(self.shared.config.redis_timeout, applied.wait_for(|applied| *applied >= request))
            .await;
    }

    async fn ready(&self) -> bool {
        self.shared.pubsub_connected.load(Ordering::SeqCst)
    }

    fn counters(&self) -> Vec<BrokerCounter> {
        let stats = &self.shared.stats;
        let counter = |name, help, value: &AtomicU64| BrokerCounter { name, help, value: value.load(Ordering::Relaxed) };
        vec![
            counter("redis_published", "Publications Redis accepted from this node.", &stats.published),
            counter("redis_received", "Publications from other nodes received through Redis.", &stats.received),
            counter("redis_publish_errors", "Publications this node could not carry to Redis (repaired from the store by followers).", &stats.publish_errors),
            counter("redis_reconnects", "Times the Redis pub/sub connection was re-established.", &stats.reconnects),
            counter("redis_malformed", "Messages on a followed Redis channel that could not be read.", &stats.malformed),
            counter("position_checks", "Completed checks of every followed channel against the store.", &stats.position_checks),
        ]
    }
}

async fn with_timeout<T>(
    limit: Duration,
    what: &str,
    future: impl Future<Output = Result<T, redis::RedisError>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what} failed: {error}")),
        Err(_) => Err(format!("{what} timed out after {limit:?}")),
    }
}

async fn open_pubsub(client: &redis::Client, url: &str, limit: Duration) -> Result<PubSub, RedisError> {
    match tokio::time::timeout(limit, client.get_async_pubsub()).await {
        Ok(Ok(pubsub)) => Ok(pubsub),
        Ok(Err(source)) => Err(RedisError::Unreachable { url: url.to_string(), source }),
        Err(_) => Err(RedisError::ConnectTimeout { url: url.to_string(), timeout: limit }),
    }
}

async fn open_publisher_connection(
    client: &redis::Client,
    url: &str,
    config: &RedisBrokerConfig,
) -> Result<ConnectionManager, RedisError> {
    let manager_config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(config.redis_timeout))
        .set_response_timeout(Some(config.redis_timeout))
        .set_min_delay(config.reconnect_delay_min)
        .set_max_delay(config.reconnect_delay_max)
        .set_number_of_retries(2);
    let limit = config.redis_timeout * 2;
    match tokio::time::timeout(limit, ConnectionManager::new_with_config(client.clone(), manager_config)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(source)) => Err(RedisError::Unreachable { url: url.to_string(), source }),
        Err(_) => Err(RedisError::ConnectTimeout { url: url.to_string(), timeout: limit }),
    }
}

/// One encoded publication on its way to Redis.
struct OutgoingMessage {
    redis_channel: String,
    payload: bytes::Bytes,
}

/// Delivers committed batches to this node's sequencer and queues them for Redis.
async fn dispatch_committed(
    shared: Arc<Shared>,
    mut committed_batches: mpsc::UnboundedReceiver<Vec<Publication>>,
    publish_queue: mpsc::Sender<Vec<OutgoingMessage>>,
) {
    let mut queue_was_full = false;
    while let Some(batch) = committed_batches.recv().await {
        let mut outgoing = Vec::with_capacity(batch.len());
        for publication in batch {
            match codec::encode(&shared.node_id, &publication) {
                Ok(payload) => outgoing
                    .push(OutgoingMessage { redis_channel: shared.redis_channel(&publication.channel), payload }),
                Err(error) => {
                    count(&shared.stats.publish_errors, 1);
                    tracing::warn!(channel = %publication.channel, %error, "publication not sent to Redis");
                }
            }
            shared.sequencer.receive(publication);
        }
        if outgoing.is_empty() {
            continue;
        }
        let outgoing_count = outgoing.len();
        match publish_queue.try_send(outgoing) {
            Ok(()) => queue_was_full = false,
            Err(mpsc::error::TrySendError::Full(_)) => {
                count(&shared.stats.publish_errors, outgoing_count);
                if !queue_was_full {
                    tracing::warn!("Redis publish queue is full: dropping publications until it drains");
                }
                queue_was_full = true;
            }
            Err(mpsc::error::TrySendError::Closed(_)) => return,
        }
    }
}

/// Publishes queued batches in order, pipelining whatever has accumulated.
async fn publish_to_redis(
    shared: Arc<Shared>,
    mut connection: ConnectionManager,
    mut publish_queue: mpsc::Receiver<Vec<OutgoingMessage>>,
) {
    let batch_max = shared.config.publish_batch_max.max(1);
    let mut failing = false;
    while let Some(first) = publish_queue.recv().await {
        let mut pipeline = redis::pipe();
        let mut message_count = 0;
        let mut next = Some(first);
        while let Some(batch) = next.take() {
            for message in batch {
                pipeline.cmd("PUBLISH").arg(message.redis_channel).arg(message.payload.as_ref()).ignore();
                message_count += 1;
            }
            if message_count < batch_max {
                next = publish_queue.try_recv().ok();
            }
        }
        match pipeline.exec_async(&mut connection).await {
            Ok(()) => {
                count(&shared.stats.published, message_count);
                if failing {
                    tracing::info!("publishing to Redis again");
                }
                failing = false;
            }
            Err(error) => {
                count(&shared.stats.publish_errors, message_count);
                if !failing {
                    tracing::warn!(%error, "publishing to Redis failed; followers will repair from the store");
                }
                failing = true;
            }
        }
    }
}

/// Compares every followed channel with the store, periodically and whenever asked (after a
/// reconnect). Ends when the pub/sub task ends.
async fn check_positions(shared: Arc<Shared>, mut check_requests: mpsc::Receiver<()>) {
    let period = shared.config.position_check_interval;
    let mut ticks = interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            request = check_requests.recv() => if request.is_none() { return },
        }
        let sequencer = &shared.sequencer;
        futures_util::stream::iter(shared.followed_channels())
            .for_each_concurrent(shared.config.position_checks_concurrent_max.max(1), |channel| async move {
                sequencer.check(&channel).await;
            })
            .await;
        count(&shared.stats.position_checks, 1);
    }
}

/// Why the pub/sub task stopped serving a connection.
enum ServeEnd {
    BrokerDropped,
    ConnectionLost(String),
}

/// Owns the pub/sub connection: subscriptions, incoming messages, reconnects.
struct PubSubTask {
    shared: Arc<Shared>,
    client: redis::Client,
    url: String,
    subscription_changed: mpsc::Receiver<()>,
    check_requests: mpsc::Sender<()>,
    /// What Redis has confirmed on the current connection.
    subscribed: HashSet<ChannelName>,
}

impl PubSubTask {
    async fn run(mut self, first: PubSub) {
        let mut pubsub = first;
        let mut reconnected = false;
        loop {
            let reason = match self.serve(pubsub, reconnected).await {
                ServeEnd::BrokerDropped => return,
                ServeEnd::ConnectionLost(reason) => reason,
            };
            self.shared.pubsub_connected.store(false, Ordering::SeqCst);
            tracing::warn!(url = %self.url, %reason, "Redis pub/sub connection lost; reconnecting");
            self.shared.fail_pending(&format!("the Redis pub/sub connection was lost: {reason}"));
            // A lost connection holds no subscriptions: pending unsubscribes are done.
            self.subscribed.clear();
            self.shared.mark_applied(self.shared.subscription_changes_requested.load(Ordering::SeqCst));
            match self.reconnect().await {
                Some(next) => pubsub = next,
                None => return,
            }
            reconnected = true;
        }
    }

    async fn serve(&mut self, pubsub: PubSub, reconnected: bool) -> ServeEnd {
        let (mut sink, mut messages) = pubsub.split();
        self.subscribed.clear();
        if let Err(reason) = self.apply_subscription_changes(&mut sink).await {
            return ServeEnd::ConnectionLost(reason);
        }
        self.shared.pubsub_connected.store(true, Ordering::SeqCst);
        if reconnected {
            count(&self.shared.stats.reconnects, 1);
            tracing::info!(url = %self.url, channels = self.subscribed.len(), "Redis pub/sub reconnected");
            // Repair what was published while the connection was down.
            let _ = self.check_requests.try_send(());
        }
        let ping_interval = self.shared.config.ping_interval;
        let mut pings = interval_at(Instant::now() + ping_interval, ping_interval);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                change = self.subscription_changed.recv() => {
                    if change.is_none() {
                        return ServeEnd::BrokerDropped;
                    }
                    if let Err(reason) = self.apply_subscription_changes(&mut sink).await {
                        return ServeEnd::ConnectionLost(reason);
                    }
                }
                message = messages.next() => match message {
                    Some(message) => self.deliver(&message),
                    None => return ServeEnd::ConnectionLost("the connection closed".into()),
                },
                _ = pings.tick() => {
                    if let Err(reason) = with_timeout(self.shared.config.redis_timeout, "PING", sink.ping::<redis::Value>()).await {
                        return ServeEnd::ConnectionLost(reason);
                    }
                }
            }
        }
    }

    /// Subscribes to followed channels not yet subscribed and unsubscribes from the others.
    async fn apply_subscription_changes(&mut self, sink: &mut PubSubSink) -> Result<(), String> {
        let covered = self.shared.subscription_changes_requested.load(Ordering::SeqCst);
        let wanted: HashSet<ChannelName> = self.shared.followed_channels().into_iter().collect();
        let to_subscribe: Vec<ChannelName> = wanted.difference(&self.subscribed).cloned().collect();
        let to_unsubscribe: Vec<ChannelName> = self.subscribed.difference(&wanted).cloned().collect();
        let limit = self.shared.config.redis_timeout;
        for channels in to_subscribe.chunks(CHANNELS_PER_SUBSCRIBE_MAX) {
            let names: Vec<String> = channels.iter().map(|c| self.shared.redis_channel(c)).collect();
            with_timeout(limit, "SUBSCRIBE", sink.subscribe(names)).await?;
            self.subscribed.extend(channels.iter().cloned());
        }
        for channels in to_unsubscribe.chunks(CHANNELS_PER_SUBSCRIBE_MAX) {
            let names: Vec<String> = channels.iter().map(|c| self.shared.redis_channel(c)).collect();
            with_timeout(limit, "UNSUBSCRIBE", sink.unsubscribe(names)).await?;
            for channel in channels {
                self.subscribed.remove(channel);
            }
        }
        self.shared.confirm(&self.subscribed);
        self.shared.mark_applied(covered);
        Ok(())
    }

    fn deliver(&self, message: &redis::Msg) {
        let stats = &self.shared.stats;
        let payload = message.get_payload_bytes();
        match codec::origin_node(payload) {
            Ok(origin) if origin == self.shared.node_id => {
                count(&stats.skipped_own, 1);
                return;
            }
            Ok(_) => {}
            Err(error) => {
                count(&stats.malformed, 1);
                tracing::debug!(channel = message.get_channel_name(), %error, "unreadable message from Redis");
                return;
            }
        }
        let Some(channel) = self.shared.courtside_channel(message.get_channel_name()) else {
            count(&stats.malformed, 1);
            tracing::debug!(channel = message.get_channel_name(), "message on a channel this broker does not use");
            return;
        };
        match codec::decode(channel, payload) {
            Ok(received) => {
                count(&stats.received, 1);
                self.shared.sequencer.receive(received.publication);
            }
            Err(error) => {
                count(&stats.malformed, 1);
                tracing::debug!(channel = message.get_channel_name(), %error, "unreadable message from Redis");
            }
        }
    }

    /// Reconnects with exponential backoff; `None` once the broker is dropped. Follows asked
    /// for meanwhile fail at once.
    async fn reconnect(&mut self) -> Option<PubSub> {
        let config = &self.shared.config;
        let mut delay = config.reconnect_delay_min;
        loop {
            let wake = tokio::time::sleep(delay);
            tokio::pin!(wake);
            loop {
                tokio::select! {
                    _ = &mut wake => break,
                    change = self.subscription_changed.recv() => {
                        change?;
                        self.shared.fail_pending("the Redis pub/sub connection is down");
                        self.shared.mark_applied(self.shared.subscription_changes_requested.load(Ordering::SeqCst));
                    }
                }
            }
            match open_pubsub(&self.client, &self.url, config.redis_timeout).await {
                Ok(pubsub) => return Some(pubsub),
                Err(error) => {
                    tracing::debug!(%error, "Redis pub/sub reconnect failed");
                    delay = (delay * 2).min(config.reconnect_delay_max);
                }
            }
        }
    }
}
