//! The Redis broker against a real Redis: the core conformance suite with nodes on one bus,
//! publications Redis never carried repaired from the store, and a Redis restart survived.

mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use courtside_core::broker::Broker;
use courtside_core::channel::ChannelName;
use courtside_core::conformance::{self, request};
use courtside_core::hub::{Hub, Inbox, Outbound, outbox};
use courtside_core::sequencer::Sequencer;
use courtside_core::store::memory::MemoryStore;
use courtside_core::store::{CommitSink, StreamStore};
use courtside_core::stream::{Epoch, Publication};
use courtside_redis::{PubSubChoice, PubSubMode, RedisBroker, RedisBrokerConfig};

use common::{PrivateRedis, reachable_redis, unique_key_prefix};

fn fresh_channel() -> ChannelName {
    ChannelName::parse(&format!("match:redis-{}", Epoch::new_random())).expect("channel")
}

/// Offsets delivered to `inbox`, until `count` arrived or `wait` passed.
async fn delivered_offsets(inbox: &mut Inbox, count: usize, wait: Duration) -> Vec<u64> {
    let mut offsets = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while offsets.len() < count && tokio::time::Instant::now() < deadline {
        match inbox.try_recv() {
            Some(Outbound::Publication(delivery)) => offsets.push(delivery.publication.offset),
            Some(_) => {}
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    offsets
}

async fn wait_until(what: &str, wait: Duration, mut condition: impl AsyncFnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + wait;
    while !condition().await {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A node that follows `channel`: its hub has one subscriber, and its sequencer repairs from
/// `store`, starting at the store's current position (as `Node::subscribe` does).
struct FollowingNode {
    broker: Arc<RedisBroker>,
    sequencer: Arc<Sequencer>,
    inbox: Inbox,
}

async fn following_node(
    url: &str,
    prefix: &str,
    node_id: &str,
    config: RedisBrokerConfig,
    store: &Arc<dyn StreamStore>,
    channel: &ChannelName,
) -> FollowingNode {
    let hub = Arc::new(Hub::new());
    let sequencer = Sequencer::new(hub.clone());
    let broker =
        RedisBroker::connect_with_config(url, prefix, node_id, sequencer.clone(), config).await.expect("connect");
    sequencer.attach_store(store.clone());
    let (subscriber, inbox) = outbox(100_000);
    hub.subscribe(channel, 1, subscriber);
    broker.follow(channel).await.expect("follow");
    let start = store.position(channel).await.expect("position");
    sequencer.observe(channel, &start);
    FollowingNode { broker, sequencer, inbox }
}

/// A node with no subscribers of its own that commits through `broker`.
async fn origin_broker(url: &str, prefix: &str, config: RedisBrokerConfig) -> Arc<RedisBroker> {
    let sequencer = Sequencer::new(Arc::new(Hub::new()));
    RedisBroker::connect_with_config(url, prefix, "origin", sequencer, config).await.expect("connect")
}

/// The conformance suite with every node on `pubsub`; returns the mode the nodes resolved.
async fn conforms_with(url: &str, pubsub: PubSubChoice) -> PubSubMode {
    let prefix = unique_key_prefix();
    let nodes_opened = AtomicUsize::new(0);
    let modes = Arc::new(parking_lot::Mutex::new(HashSet::new()));
    conformance::broker::broker(
        |sequencer| {
            let (url, prefix, modes) = (url.to_string(), prefix.clone(), modes.clone());
            let node_id = format!("node-{}", nodes_opened.fetch_add(1, Ordering::Relaxed));
            let config = RedisBrokerConfig { pubsub, ..Default::default() };
            Box::pin(async move {
                let broker =
                    RedisBroker::connect_with_config(&url, &prefix, &node_id, sequencer, config).await.expect("connect");
                modes.lock().insert(broker.pubsub_mode());
                broker as Arc<dyn Broker>
            })
        },
        true,
    )
    .await;
    let modes = modes.lock();
    assert_eq!(modes.len(), 1, "nodes on one server choose alike");
    *modes.iter().next().expect("a node")
}

#[tokio::test]
async fn redis_broker_conforms_with_nodes_on_one_bus() {
    let Some(url) = reachable_redis().await else { return };
    let auto = conforms_with(&url, PubSubChoice::Auto).await;
    assert_eq!(conforms_with(&url, PubSubChoice::Plain).await, PubSubMode::Plain);
    if common::redis_major_version(&url).await >= 7 {
        assert_eq!(auto, PubSubMode::Sharded, "Redis 7 or later: sharded pub/sub by default");
        assert_eq!(conforms_with(&url, PubSubChoice::Sharded).await, PubSubMode::Sharded);
    } else {
        assert_eq!(auto, PubSubMode::Plain);
        let sequencer = Sequencer::new(Arc::new(Hub::new()));
        let config = RedisBrokerConfig { pubsub: PubSubChoice::Sharded, ..Default::default() };
        let refused = RedisBroker::connect_with_config(&url, &unique_key_prefix(), "n", sequencer, config).await;
        assert!(refused.is_err(), "sharded pub/sub asked of a server without it is refused at start");
    }
}

#[tokio::test]
async fn own_publications_are_delivered_locally_and_skipped_when_redis_echoes_them() {
    let Some(url) = reachable_redis().await else { return };
    let prefix = unique_key_prefix();
    let hub = Arc::new(Hub::new());
    let sequencer = Sequencer::new(hub.clone());
    let broker = RedisBroker::connect(&url, &prefix, "solo", sequencer).await.expect("connect");
    let store: Arc<dyn StreamStore> = Arc::new(MemoryStore::new(broker.clone()));
    let channel = fresh_channel();
    let (subscriber, mut inbox) = outbox(1_000);
    hub.subscribe(&channel, 1, subscriber);
    broker.follow(&channel).await.expect("follow");
    for n in 1..=10 {
        store.append(request(&channel, &n.to_string())).await.expect("append");
    }
    assert_eq!(delivered_offsets(&mut inbox, 10, Duration::from_secs(5)).await, (1..=10).collect::<Vec<_>>());
    wait_until("Redis echoed all ten", Duration::from_secs(5), async || {
        broker.stats().skipped_own.load(Ordering::Relaxed) == 10
    })
    .await;
    assert!(delivered_offsets(&mut inbox, 1, Duration::from_millis(200)).await.is_empty(), "echoes are not delivered");
    assert_eq!(broker.stats().published.load(Ordering::Relaxed), 10);
    assert_eq!(broker.stats().received.load(Ordering::Relaxed), 0);
}

/// Stands between a store and the origin's broker and drops chosen offsets, as Redis pub/sub
/// may (at-most-once).
struct LossySink {
    broker: Arc<RedisBroker>,
    dropped_offsets: HashSet<u64>,
}

impl CommitSink for LossySink {
    fn committed(&self, publications: Vec<Publication>) {
        let carried: Vec<Publication> =
            publications.into_iter().filter(|p| !self.dropped_offsets.contains(&p.offset)).collect();
        if !carried.is_empty() {
            self.broker.committed(carried);
        }
    }
}

#[tokio::test]
async fn publications_redis_dropped_are_repaired_from_the_store_once_and_in_order() {
    let Some(url) = reachable_redis().await else { return };
    let prefix = unique_key_prefix();
    let config = RedisBrokerConfig { position_check_interval: Duration::from_millis(300), ..Default::default() };
    let origin = origin_broker(&url, &prefix, config.clone()).await;
    // Gaps in the middle (repaired when a later offset arrives) and a lost tail (repaired by
    // the periodic position check, since nothing arrives after it).
    let dropped_offsets: HashSet<u64> = [5, 6, 7, 15, 28, 29, 30].into();
    let store: Arc<dyn StreamStore> = Arc::new(MemoryStore::new(Arc::new(LossySink {
        broker: origin.clone(),
        dropped_offsets: dropped_offsets.clone(),
    })));
    let channel = fresh_channel();
    let mut follower = following_node(&url, &prefix, "follower", config, &store, &channel).await;

    for n in 1..=30 {
        store.append(request(&channel, &format!("{{\"n\":{n}}}"))).await.expect("append");
    }
    let offsets = delivered_offsets(&mut follower.inbox, 30, Duration::from_secs(10)).await;
    assert_eq!(offsets, (1..=30).collect::<Vec<_>>(), "every offset once, in order");
    assert!(delivered_offsets(&mut follower.inbox, 1, Duration::from_millis(500)).await.is_empty(), "nothing twice");
    assert!(follower.sequencer.stats.gaps_repaired.load(Ordering::Relaxed) >= 3, "three gaps were repaired");
    assert!(follower.broker.stats().received.load(Ordering::Relaxed) <= 30 - dropped_offsets.len() as u64);
    assert!(follower.broker.stats().position_checks.load(Ordering::Relaxed) >= 1);
}

#[tokio::test]
async fn a_follower_rides_out_a_redis_restart_and_repairs_what_it_missed() {
    let Some(mut redis) = PrivateRedis::start_or_skip().await else { return };
    let url = redis.url();
    let prefix = unique_key_prefix();
    // The periodic check is far off: whatever is repaired here is repaired by the reconnect.
    let config = RedisBrokerConfig {
        position_check_interval: Duration::from_secs(600),
        ping_interval: Duration::from_millis(200),
        reconnect_delay_min: Duration::from_millis(20),
        reconnect_delay_max: Duration::from_millis(200),
        redis_timeout: Duration::from_secs(1),
        ..Default::default()
    };
    let origin = origin_broker(&url, &prefix, config.clone()).await;
    let store: Arc<dyn StreamStore> = Arc::new(MemoryStore::new(origin.clone()));
    let channel = fresh_channel();
    let mut follower = following_node(&url, &prefix, "follower", config, &store, &channel).await;
    assert!(follower.broker.ready().await);

    for n in 1..=5 {
        store.append(request(&channel, &n.to_string())).await.expect("append");
    }
    assert_eq!(delivered_offsets(&mut follower.inbox, 5, Duration::from_secs(5)).await, vec![1, 2, 3, 4, 5]);

    redis.kill();
    wait_until("the follower notices Redis is gone", Duration::from_secs(5), async || !follower.broker.ready().await)
        .await;
    let error = follower.broker.follow(&fresh_channel()).await;
    assert!(error.is_err(), "follow fails while Redis is down");

    // Committed while Redis is down: the store's writer is not held up, the publishes fail.
    let started = tokio::time::Instant::now();
    for n in 6..=10 {
        store.append(request(&channel, &n.to_string())).await.expect("append");
    }
    assert!(started.elapsed() < Duration::from_millis(100), "appends do not wait for Redis");
    wait_until("the origin gave up publishing 6..=10", Duration::from_secs(10), async || {
        origin.stats().publish_errors.load(Ordering::Relaxed) >= 5
    })
    .await;

    redis.restart().await;
    wait_until("the follower is back", Duration::from_secs(5), async || follower.broker.ready().await).await;
    assert_eq!(
        delivered_offsets(&mut follower.inbox, 5, Duration::from_secs(5)).await,
        vec![6, 7, 8, 9, 10],
        "what Redis never carried is repaired after the reconnect"
    );
    assert!(follower.broker.stats().reconnects.load(Ordering::Relaxed) >= 1);
    assert!(follower.sequencer.stats.gaps_repaired.load(Ordering::Relaxed) >= 1);

    // Live again: publish until one travels through Redis (the origin's publishing connection
    // may fail once more while it reconnects; a later arrival repairs such a gap).
    let received_before = follower.broker.stats().received.load(Ordering::Relaxed);
    let mut top = 10;
    let mut offsets = Vec::new();
    while follower.broker.stats().received.load(Ordering::Relaxed) == received_before {
        assert!(top < 60, "publishing through Redis never resumed");
        top += 1;
        store.append(request(&channel, &top.to_string())).await.expect("append");
        offsets.extend(delivered_offsets(&mut follower.inbox, 1, Duration::from_millis(200)).await);
    }
    let missing = (top - 10) as usize - offsets.len();
    offsets.extend(delivered_offsets(&mut follower.inbox, missing, Duration::from_secs(5)).await);
    assert_eq!(offsets, (11..=top).collect::<Vec<_>>(), "live publications continue once, in order");
}

async fn connected_clients(url: &str) -> usize {
    let client = redis::Client::open(url).expect("url");
    let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
    let list: String = redis::cmd("CLIENT").arg("LIST").query_async(&mut connection).await.expect("CLIENT LIST");
    // Not counting the connection asking.
    list.lines().count() - 1
}

#[tokio::test]
async fn dropping_a_broker_closes_its_connections() {
    let Some(redis) = PrivateRedis::start_or_skip().await else { return };
    let url = redis.url();
    let before = connected_clients(&url).await;
    let broker = origin_broker(&url, &unique_key_prefix(), RedisBrokerConfig::default()).await;
    broker.follow(&fresh_channel()).await.expect("follow");
    assert_eq!(connected_clients(&url).await, before + 2, "one pub/sub and one publishing connection");
    drop(broker);
    wait_until("the broker's connections are closed", Duration::from_secs(5), async || {
        connected_clients(&url).await == before
    })
    .await;
}
