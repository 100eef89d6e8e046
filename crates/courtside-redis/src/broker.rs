//! [`RedisBroker`]: the [`Broker`] that connects nodes through Redis pub/sub — sharded
//! (`SPUBLISH`/`SSUBSCRIBE`) on Redis ≥ 7, plain (`PUBLISH`/`SUBSCRIBE`) before.
//!
//! # How a publication travels
//! 1. The store's writer calls [`CommitSink::committed`] in commit order; a joining or leaving
//!    connection calls [`Broker::announce`]. Both only queue to the [`Dispatcher`].
//! 2. The dispatcher hands each item to this node's sequencer at once (local subscribers never
//!    wait for Redis), encodes it ([`crate::codec`]) and queues the encoded batch to the
//!    publisher task. When that bounded queue is full the batch is dropped and counted.
//! 3. The publisher `SPUBLISH`es (or `PUBLISH`es) to `{prefix}:ch:{channel}`, pipelining
//!    everything queued (up to [`RedisBrokerConfig::publish_batch_max`]) into one round trip, in
//!    commit order. A failed pipeline is dropped and counted: followers repair it from the store.
//! 4. On every node, the receiving task hands messages from other nodes to the sequencer; its own
//!    node's messages (already delivered in step 2) are skipped by their origin node id.
//!
//! # Following
//! Follows are counted per channel ([`FollowTable`]). The first follow of a channel has the
//! receiving task subscribe and resolves once Redis confirmed it; the last unfollow has it
//! unsubscribe. While the receiving connection is down, `follow` fails at once with
//! [`BrokerError::Unavailable`] and is not counted.
//!
//! # Losses
//! Pub/sub is at-most-once. The receiving task reconnects with exponential backoff, subscribes
//! to every followed channel again, then asks for a position check of all of them: the sequencer
//! compares each with the store and repairs the tail Redis dropped. The same check also runs
//! every [`RedisBrokerConfig::position_check_interval`], because messages can be lost without a
//! disconnect (a publisher whose connection failed, a slow subscriber Redis cut off). Joins and
//! leaves are not repaired: the presence list stays the truth.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

use courtside_core::broker::follow::{FollowChanges, FollowTable};
use courtside_core::broker::relay::{
    Backoff, Dispatcher, PositionCheckConfig, RelayStats, count, reconnect, spawn_position_checks,
};
use courtside_core::broker::{Broker, BrokerCounter, BrokerError};
use courtside_core::channel::ChannelName;
use courtside_core::hub::PresenceEvent;
use courtside_core::sequencer::Sequencer;
use courtside_core::store::CommitSink;
use courtside_core::stream::Publication;

use crate::pubsub::{PubSubConnection, PubSubMode, Push};
use crate::tls::PubSubTarget;
use crate::{RedisEndpoint, RedisError, codec, redacted_url};

/// Longest accepted node id, in bytes.
pub const NODE_ID_LEN_MAX: usize = 255;
/// Channels per `SUBSCRIBE`/`UNSUBSCRIBE` command when many change at once (after a reconnect).
const CHANNELS_PER_SUBSCRIBE_MAX: usize = 1_000;

/// Which pub/sub to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PubSubChoice {
    /// Sharded on Redis ≥ 7, plain before (nodes sharing a server choose alike).
    #[default]
    Auto,
    Plain,
    Sharded,
}

/// Tuning of a [`RedisBroker`]; `Default` suits production.
#[derive(Debug, Clone)]
pub struct RedisBrokerConfig {
    pub pubsub: PubSubChoice,
    /// How often every followed channel is compared with the store, to repair what pub/sub
    /// dropped without a disconnect.
    pub position_check_interval: Duration,
    /// Channels checked at the same time during a position check.
    pub position_checks_concurrent_max: usize,
    /// How often the receiving connection is pinged; a ping unanswered by the next one ends it.
    pub ping_interval: Duration,
    /// First delay before reconnecting; it doubles up to `reconnect_delay_max`.
    pub reconnect_delay_min: Duration,
    pub reconnect_delay_max: Duration,
    /// Limit for connecting, for a (un)subscribe to be confirmed, and for a command's answer.
    pub redis_timeout: Duration,
    /// Most publications sent in one pipeline.
    pub publish_batch_max: usize,
    /// Committed batches waiting for the publisher before new ones are dropped (and counted in
    /// [`RelayStats::publish_errors`]).
    pub publish_queue_batches_max: usize,
}

impl Default for RedisBrokerConfig {
    fn default() -> Self {
        Self {
            pubsub: PubSubChoice::Auto,
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

/// What the broker handle and its tasks share.
struct Shared {
    node_id: String,
    /// `{prefix}:ch:`, the start of every Redis channel this broker uses.
    redis_channel_prefix: String,
    sequencer: Arc<Sequencer>,
    config: RedisBrokerConfig,
    mode: PubSubMode,
    follows: Arc<FollowTable<String>>,
    stats: Arc<RelayStats>,
}

impl Shared {
    fn redis_channel(&self, channel: &ChannelName) -> String {
        format!("{}{}", self.redis_channel_prefix, channel)
    }

    fn courtside_channel(&self, redis_channel: &[u8]) -> Option<ChannelName> {
        let name = std::str::from_utf8(redis_channel).ok()?;
        ChannelName::parse(name.strip_prefix(&self.redis_channel_prefix)?).ok()
    }
}

/// The Redis [`Broker`] of one node; see the module docs.
pub struct RedisBroker {
    shared: Arc<Shared>,
    dispatcher: Dispatcher,
}

impl RedisBroker {
    /// Connects with the default [`RedisBrokerConfig`]; see [`RedisBroker::connect_with_config`].
    pub async fn connect(
        endpoint: impl Into<RedisEndpoint>,
        key_prefix: &str,
        node_id: &str,
        sequencer: Arc<Sequencer>,
    ) -> Result<Arc<Self>, RedisError> {
        Self::connect_with_config(endpoint, key_prefix, node_id, sequencer, RedisBrokerConfig::default()).await
    }

    /// Opens the receiving and the publishing connection and starts the broker's tasks; call
    /// from within a Tokio runtime. Fails if Redis cannot be reached now (or sharded pub/sub was
    /// asked of a server without it); later outages are ridden out. `node_id` must be unique
    /// among the nodes sharing `key_prefix`. The tasks end when the broker is dropped.
    pub async fn connect_with_config(
        endpoint: impl Into<RedisEndpoint>,
        key_prefix: &str,
        node_id: &str,
        sequencer: Arc<Sequencer>,
        config: RedisBrokerConfig,
    ) -> Result<Arc<Self>, RedisError> {
        if node_id.is_empty() || node_id.len() > NODE_ID_LEN_MAX {
            return Err(RedisError::InvalidNodeId { len: node_id.len(), max: NODE_ID_LEN_MAX });
        }
        let endpoint = endpoint.into();
        let client = endpoint.client()?;
        let url = redacted_url(endpoint.url());
        let mut publisher_connection = open_publisher_connection(&client, &url, &config).await?;
        let mode = choose_pubsub(&mut publisher_connection, &url, config.pubsub, config.redis_timeout).await?;
        let target = endpoint.pubsub_target(client.get_connection_info().clone())?;
        let receiving = PubSubConnection::open(&target, mode, config.redis_timeout)
            .await
            .map_err(|reason| RedisError::PubSub { url: url.clone(), reason })?;

        let (follows, changes) = FollowTable::new(config.redis_timeout, "the Redis pub/sub connection is down");
        let follows = Arc::new(follows);
        let stats = Arc::new(RelayStats::default());
        let shared = Arc::new(Shared {
            node_id: node_id.to_string(),
            redis_channel_prefix: format!("{key_prefix}:ch:"),
            sequencer: sequencer.clone(),
            mode,
            follows: follows.clone(),
            stats: stats.clone(),
            config: config.clone(),
        });
        let (publish_queue, publish_queue_rx) = mpsc::channel(config.publish_queue_batches_max.max(1));
        let encoder = shared.clone();
        let dispatcher = Dispatcher::relaying(
            sequencer.clone(),
            stats.clone(),
            "Redis",
            move |item| {
                let payload = codec::encode(&encoder.node_id, item).map_err(|error| error.to_string())?;
                Ok(OutgoingMessage { redis_channel: encoder.redis_channel(item.channel()), payload })
            },
            publish_queue,
        );
        tokio::spawn(publish_to_redis(shared.clone(), publisher_connection, publish_queue_rx));
        let check_requests = spawn_position_checks(
            sequencer,
            follows,
            stats,
            PositionCheckConfig {
                interval: config.position_check_interval,
                concurrent_max: config.position_checks_concurrent_max,
            },
        );
        let receiver = ReceivingTask {
            shared: shared.clone(),
            target,
            url: url.clone(),
            changes,
            check_requests,
            subscribed: HashSet::new(),
        };
        tokio::spawn(receiver.run(receiving));
        tracing::info!(node_id, url, pubsub = %mode, "redis broker connected");
        Ok(Arc::new(Self { shared, dispatcher }))
    }

    pub fn node_id(&self) -> &str {
        &self.shared.node_id
    }

    pub fn stats(&self) -> &RelayStats {
        &self.shared.stats
    }

    /// The pub/sub in use.
    pub fn pubsub_mode(&self) -> PubSubMode {
        self.shared.mode
    }

    /// Channels followed on this node right now.
    pub fn followed_channels(&self) -> Vec<ChannelName> {
        self.shared.follows.channels()
    }
}

impl Drop for RedisBroker {
    /// The tasks hold what they share with the handle; closing the follow table ends the
    /// receiving task, and dropping the dispatcher ends the publisher.
    fn drop(&mut self) {
        self.shared.follows.close();
    }
}

impl CommitSink for RedisBroker {
    fn committed(&self, publications: Vec<Publication>) {
        self.dispatcher.committed(publications);
    }
}

#[async_trait]
impl Broker for RedisBroker {
    async fn follow(&self, channel: &ChannelName) -> Result<(), BrokerError> {
        self.shared.follows.follow(channel, || self.shared.redis_channel(channel)).await
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
        self.shared.stats.counters("redis", "Redis")
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

/// Resolves [`PubSubChoice`] against the server's version (`INFO server`).
async fn choose_pubsub(
    connection: &mut ConnectionManager,
    url: &str,
    choice: PubSubChoice,
    limit: Duration,
) -> Result<PubSubMode, RedisError> {
    if choice == PubSubChoice::Plain {
        return Ok(PubSubMode::Plain);
    }
    let info: String = match tokio::time::timeout(limit, redis::cmd("INFO").arg("server").query_async(connection)).await {
        Ok(Ok(info)) => info,
        Ok(Err(source)) => return Err(RedisError::Unreachable { url: url.to_string(), source }),
        Err(_) => return Err(RedisError::ConnectTimeout { url: url.to_string(), timeout: limit }),
    };
    let version = server_major_version(&info);
    let sharded_available = version.is_some_and(|major| major >= 7);
    match choice {
        PubSubChoice::Sharded if !sharded_available => Err(RedisError::PubSub {
            url: url.to_string(),
            reason: format!("sharded pub/sub needs Redis 7 or later, the server reports {}", version_text(version)),
        }),
        _ if sharded_available => Ok(PubSubMode::Sharded),
        _ => Ok(PubSubMode::Plain),
    }
}

fn version_text(major: Option<u32>) -> String {
    major.map_or_else(|| "no version".to_string(), |major| format!("major version {major}"))
}

/// The major version in an `INFO server` answer (`redis_version:7.2.4`).
fn server_major_version(info: &str) -> Option<u32> {
    let version = info.lines().find_map(|line| line.strip_prefix("redis_version:"))?;
    version.trim().split('.').next()?.parse().ok()
}

/// One encoded item on its way to Redis.
struct OutgoingMessage {
    redis_channel: String,
    payload: bytes::Bytes,
}

/// Publishes queued batches in order, pipelining whatever has accumulated.
async fn publish_to_redis(
    shared: Arc<Shared>,
    mut connection: ConnectionManager,
    mut publish_queue: mpsc::Receiver<Vec<OutgoingMessage>>,
) {
    let batch_max = shared.config.publish_batch_max.max(1);
    let command = shared.mode.publish_command();
    let mut failing = false;
    while let Some(first) = publish_queue.recv().await {
        let mut pipeline = redis::pipe();
        let mut message_count = 0;
        let mut next = Some(first);
        while let Some(batch) = next.take() {
            for message in batch {
                pipeline.cmd(command).arg(message.redis_channel).arg(message.payload.as_ref()).ignore();
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

/// Why the receiving task stopped serving a connection.
enum ServeEnd {
    BrokerDropped,
    ConnectionLost(String),
}

/// Owns the receiving connection: subscriptions, incoming messages, pings, reconnects.
struct ReceivingTask {
    shared: Arc<Shared>,
    target: PubSubTarget,
    url: String,
    changes: FollowChanges,
    check_requests: mpsc::Sender<()>,
    /// Redis channels subscribed on the current connection (confirmed or not).
    subscribed: HashSet<String>,
}

impl ReceivingTask {
    async fn run(mut self, first: PubSubConnection) {
        let mut connection = first;
        let mut reconnected = false;
        loop {
            let reason = match self.serve(connection, reconnected).await {
                ServeEnd::BrokerDropped => return,
                ServeEnd::ConnectionLost(reason) => reason,
            };
            tracing::warn!(url = %self.url, %reason, "Redis pub/sub connection lost; reconnecting");
            self.shared.follows.connection_lost(&format!("the Redis pub/sub connection was lost: {reason}"));
            let config = &self.shared.config;
            let backoff = Backoff { min: config.reconnect_delay_min, max: config.reconnect_delay_max };
            let (target, mode, limit) = (&self.target, self.shared.mode, config.redis_timeout);
            match reconnect(&self.shared.follows, &mut self.changes, backoff, || PubSubConnection::open(target, mode, limit))
                .await
            {
                Some(next) => connection = next,
                None => return,
            }
            reconnected = true;
        }
    }

    async fn serve(&mut self, mut connection: PubSubConnection, reconnected: bool) -> ServeEnd {
        self.subscribed.clear();
        if let Err(reason) = self.apply_follow_changes(&mut connection).await {
            return ServeEnd::ConnectionLost(reason);
        }
        self.shared.follows.reconnected();
        if reconnected {
            count(&self.shared.stats.reconnects, 1);
            tracing::info!(url = %self.url, channels = self.subscribed.len(), "Redis pub/sub reconnected");
            // Repair what was published while the connection was down.
            let _ = self.check_requests.try_send(());
        }
        let ping_interval = self.shared.config.ping_interval;
        let mut pings = interval_at(Instant::now() + ping_interval, ping_interval);
        pings.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut pong_awaited = false;
        loop {
            tokio::select! {
                change = self.changes.next() => {
                    if change.is_none() {
                        return ServeEnd::BrokerDropped;
                    }
                    if let Err(reason) = self.apply_follow_changes(&mut connection).await {
                        return ServeEnd::ConnectionLost(reason);
                    }
                }
                push = connection.next_push() => match push {
                    Ok(Push::Pong) => pong_awaited = false,
                    Ok(push) => if let Err(reason) = self.handle(push) {
                        return ServeEnd::ConnectionLost(reason);
                    },
                    Err(reason) => return ServeEnd::ConnectionLost(reason),
                },
                _ = pings.tick() => {
                    if pong_awaited {
                        return ServeEnd::ConnectionLost(format!("PING unanswered for {ping_interval:?}"));
                    }
                    if let Err(reason) = connection.ping().await {
                        return ServeEnd::ConnectionLost(reason);
                    }
                    pong_awaited = true;
                }
            }
        }
    }

    /// Subscribes to followed channels not yet subscribed and unsubscribes from the others,
    /// reading (and delivering) what arrives until Redis confirmed every change.
    async fn apply_follow_changes(&mut self, connection: &mut PubSubConnection) -> Result<(), String> {
        let (covered, wanted) = self.shared.follows.wanted_routes();
        let to_subscribe: Vec<String> = wanted.difference(&self.subscribed).cloned().collect();
        let to_unsubscribe: Vec<String> = self.subscribed.difference(&wanted).cloned().collect();
        let mut awaited: HashSet<Vec<u8>> = HashSet::new();
        for channels in to_subscribe.chunks(CHANNELS_PER_SUBSCRIBE_MAX) {
            connection.subscribe(channels).await?;
            awaited.extend(channels.iter().map(|channel| channel.as_bytes().to_vec()));
            self.subscribed.extend(channels.iter().cloned());
        }
        for channels in to_unsubscribe.chunks(CHANNELS_PER_SUBSCRIBE_MAX) {
            connection.unsubscribe(channels).await?;
            awaited.extend(channels.iter().map(|channel| channel.as_bytes().to_vec()));
            for channel in channels {
                self.subscribed.remove(channel);
            }
        }
        let limit = self.shared.config.redis_timeout;
        let deadline = Instant::now() + limit;
        while !awaited.is_empty() {
            let push = match tokio::time::timeout_at(deadline, connection.next_push()).await {
                Ok(push) => push?,
                Err(_) => return Err(format!("(un)subscribe not confirmed within {limit:?}")),
            };
            match push {
                Push::Subscribed { channel } | Push::Unsubscribed { channel } => {
                    awaited.remove(channel.as_ref());
                }
                Push::Pong => {}
                Push::Error(error) => return Err(format!("Redis refused a subscription change: {error}")),
                message @ Push::Message { .. } => self.handle(message)?,
            }
        }
        self.shared.follows.applied(covered, &self.subscribed);
        Ok(())
    }

    /// Handles what arrived outside a subscription change.
    fn handle(&self, push: Push) -> Result<(), String> {
        match push {
            Push::Message { channel, payload } => self.deliver(&channel, &payload),
            // Redis drops a sharded subscription when its slot moves: start over on a new
            // connection, which subscribes again and checks every channel.
            Push::Unsubscribed { channel } if self.subscribed.contains(String::from_utf8_lossy(&channel).as_ref()) => {
                return Err(format!("Redis ended the subscription to {}", String::from_utf8_lossy(&channel)));
            }
            Push::Error(error) => return Err(format!("Redis reported an error: {error}")),
            Push::Subscribed { .. } | Push::Unsubscribed { .. } | Push::Pong => {}
        }
        Ok(())
    }

    fn deliver(&self, redis_channel: &[u8], payload: &[u8]) {
        let stats = &self.shared.stats;
        let describe = || String::from_utf8_lossy(redis_channel).into_owned();
        match codec::origin_node(payload) {
            Ok(origin) if origin == self.shared.node_id => {
                count(&stats.skipped_own, 1);
                return;
            }
            Ok(_) => {}
            Err(error) => {
                count(&stats.malformed, 1);
                tracing::debug!(channel = describe(), %error, "unreadable message from Redis");
                return;
            }
        }
        let Some(channel) = self.shared.courtside_channel(redis_channel) else {
            count(&stats.malformed, 1);
            tracing::debug!(channel = describe(), "message on a channel this broker does not use");
            return;
        };
        match codec::decode(channel, payload) {
            Ok(received) => {
                count(&stats.received, 1);
                received.relayed.deliver_to(&self.shared.sequencer);
            }
            Err(error) => {
                count(&stats.malformed, 1);
                tracing::debug!(channel = describe(), %error, "unreadable message from Redis");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_version_is_read_from_info() {
        let info = "# Server\r\nredis_version:7.0.15\r\nredis_git_sha1:00000000\r\n";
        assert_eq!(server_major_version(info), Some(7));
        assert_eq!(server_major_version("redis_version:6.2.14\n"), Some(6));
        assert_eq!(server_major_version("# Server\r\n"), None);
    }
}
