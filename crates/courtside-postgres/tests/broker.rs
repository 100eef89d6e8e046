//! The PostgreSQL LISTEN/NOTIFY broker against a real server, each test in a database of its
//! own: the core conformance suite with nodes on one bus, own notifications skipped,
//! publications too long for a notification read from the store, publications never notified
//! repaired from the store, and the listening connection's termination ridden out.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use courtside_core::broker::Broker;
use courtside_core::channel::ChannelName;
use courtside_core::conformance::{self, request};
use courtside_core::hub::{Hub, Inbox, Outbound, outbox};
use courtside_core::sequencer::Sequencer;
use courtside_core::store::memory::MemoryStore;
use courtside_core::store::{CommitSink, StreamStore};
use courtside_core::stream::{Epoch, Publication};
use courtside_postgres::{PostgresBroker, PostgresBrokerConfig, PostgresError, PostgresStore};

fn fresh_channel() -> ChannelName {
    ChannelName::parse(&format!("match:pg-{}", Epoch::new_random())).expect("channel")
}

/// Publications delivered to `inbox`, until `count` arrived or `wait` passed.
async fn delivered(inbox: &mut Inbox, count: usize, wait: Duration) -> Vec<Publication> {
    let mut publications = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while publications.len() < count && tokio::time::Instant::now() < deadline {
        match inbox.try_recv() {
            Some(Outbound::Publication(delivery)) => publications.push(delivery.publication.clone()),
            Some(_) => {}
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    publications
}

async fn delivered_offsets(inbox: &mut Inbox, count: usize, wait: Duration) -> Vec<u64> {
    delivered(inbox, count, wait).await.iter().map(|p| p.offset).collect()
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
    broker: Arc<PostgresBroker>,
    sequencer: Arc<Sequencer>,
    inbox: Inbox,
}

async fn following_node(
    url: &str,
    node_id: &str,
    config: PostgresBrokerConfig,
    store: &Arc<dyn StreamStore>,
    channel: &ChannelName,
) -> FollowingNode {
    let hub = Arc::new(Hub::new());
    let sequencer = Sequencer::new(hub.clone());
    let broker = PostgresBroker::connect_with_config(url, node_id, sequencer.clone(), config).await.expect("connect");
    sequencer.attach_store(store.clone());
    let (subscriber, inbox) = outbox(100_000);
    hub.subscribe(channel, 1, subscriber);
    broker.follow(channel).await.expect("follow");
    let start = store.position(channel).await.expect("position");
    sequencer.observe(channel, &start);
    FollowingNode { broker, sequencer, inbox }
}

/// A node with no subscribers of its own that commits through `broker`.
async fn origin_broker(url: &str, config: PostgresBrokerConfig) -> Arc<PostgresBroker> {
    let sequencer = Sequencer::new(Arc::new(Hub::new()));
    PostgresBroker::connect_with_config(url, "origin", sequencer, config).await.expect("connect")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_broker_conforms_with_nodes_on_one_bus() {
    let Some(database) = support::fresh_database().await else { return };
    let url = database.url.clone();
    let nodes_opened = AtomicUsize::new(0);
    conformance::broker::broker(
        |sequencer| {
            let url = url.clone();
            let node_id = format!("node-{}", nodes_opened.fetch_add(1, Ordering::Relaxed));
            Box::pin(async move {
                PostgresBroker::connect(&url, &node_id, sequencer).await.expect("connect") as Arc<dyn Broker>
            })
        },
        true,
    )
    .await;
}

#[tokio::test]
async fn own_publications_are_delivered_locally_and_skipped_when_postgres_echoes_them() {
    let Some(database) = support::fresh_database().await else { return };
    let hub = Arc::new(Hub::new());
    let sequencer = Sequencer::new(hub.clone());
    let broker = PostgresBroker::connect(&database.url, "solo", sequencer).await.expect("connect");
    let store: Arc<dyn StreamStore> = Arc::new(MemoryStore::new(broker.clone()));
    let channel = fresh_channel();
    let (subscriber, mut inbox) = outbox(1_000);
    hub.subscribe(&channel, 1, subscriber);
    broker.follow(&channel).await.expect("follow");
    for n in 1..=10 {
        store.append(request(&channel, &n.to_string())).await.expect("append");
    }
    assert_eq!(delivered_offsets(&mut inbox, 10, Duration::from_secs(5)).await, (1..=10).collect::<Vec<_>>());
    wait_until("PostgreSQL echoed all ten", Duration::from_secs(5), async || {
        broker.stats().skipped_own.load(Ordering::Relaxed) == 10
    })
    .await;
    assert!(delivered_offsets(&mut inbox, 1, Duration::from_millis(200)).await.is_empty(), "echoes are not delivered");
    // Counted once the statement's answer is read, which may come after the echoes.
    wait_until("all ten are counted as published", Duration::from_secs(5), async || {
        broker.stats().published.load(Ordering::Relaxed) == 10
    })
    .await;
    assert_eq!(broker.stats().received.load(Ordering::Relaxed), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_too_long_for_a_notification_are_read_from_the_store() {
    let Some(database) = support::fresh_database().await else { return };
    let config = PostgresBrokerConfig::default();
    let origin = origin_broker(&database.url, config.clone()).await;
    let store: Arc<dyn StreamStore> = Arc::new(MemoryStore::new(origin.clone()));
    let channel = fresh_channel();
    let mut follower = following_node(&database.url, "follower", config, &store, &channel).await;

    let big = |n: usize| format!("\"{}{}\"", n, "x".repeat(10_000));
    // A reference in the middle (the next arrival shows the gap), then a tail of them (only
    // the reference's own check finds those).
    let datas = [big(1), "2".to_string(), big(3), big(4), big(5)];
    for data in &datas {
        store.append(request(&channel, data)).await.expect("append");
    }
    let got = delivered(&mut follower.inbox, 5, Duration::from_secs(10)).await;
    assert_eq!(got.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5], "every offset once, in order");
    for (publication, data) in got.iter().zip(&datas) {
        assert_eq!(publication.data, Bytes::from(data.clone()), "payloads arrive intact");
    }
    assert!(delivered_offsets(&mut follower.inbox, 1, Duration::from_millis(500)).await.is_empty(), "nothing twice");
    wait_until("four references are counted as published", Duration::from_secs(5), async || {
        origin.stats().published_as_reference.load(Ordering::Relaxed) == 4
    })
    .await;
    assert_eq!(origin.stats().publish_errors.load(Ordering::Relaxed), 0);
    assert!(follower.broker.stats().received_as_reference.load(Ordering::Relaxed) >= 1);
    assert_eq!(follower.broker.stats().received.load(Ordering::Relaxed), 1, "only the short one came whole");

    // Without an offset there is nothing to read back: only the origin's own subscribers get it.
    let live = ChannelName::parse(&format!("live:pg-{}", Epoch::new_random())).expect("channel");
    let live_hub = Arc::new(Hub::new());
    let live_sequencer = Sequencer::new(live_hub.clone());
    let live_follower = PostgresBroker::connect(&database.url, "live-follower", live_sequencer).await.expect("connect");
    let (subscriber, mut live_inbox) = outbox(10);
    live_hub.subscribe(&live, 1, subscriber);
    live_follower.follow(&live).await.expect("follow");
    let ephemeral = |data: String| Publication {
        channel: live.clone(),
        epoch: Epoch::default(),
        offset: 0,
        key: None,
        removed: false,
        event: None,
        data: Bytes::from(data),
        time_ms: 1,
    };
    origin.committed(vec![ephemeral(big(6)), ephemeral("7".into())]);
    let got = delivered(&mut live_inbox, 2, Duration::from_secs(2)).await;
    assert_eq!(got.iter().map(|p| p.data.clone()).collect::<Vec<_>>(), vec![Bytes::from("7")]);
    assert_eq!(origin.stats().publish_errors.load(Ordering::Relaxed), 1, "the long ephemeral one is counted");
}

/// Stands between a store and the origin's broker and drops chosen offsets, as a failed
/// `pg_notify` would.
struct LossySink {
    broker: Arc<PostgresBroker>,
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publications_never_notified_are_repaired_from_the_store_once_and_in_order() {
    let Some(database) = support::fresh_database().await else { return };
    let config = PostgresBrokerConfig { position_check_interval: Duration::from_millis(300), ..Default::default() };
    let origin = origin_broker(&database.url, config.clone()).await;
    // Gaps in the middle (repaired when a later offset arrives) and a lost tail (repaired by
    // the periodic position check, since nothing arrives after it).
    let dropped_offsets: HashSet<u64> = [5, 6, 7, 15, 28, 29, 30].into();
    let store: Arc<dyn StreamStore> = Arc::new(MemoryStore::new(Arc::new(LossySink {
        broker: origin.clone(),
        dropped_offsets: dropped_offsets.clone(),
    })));
    let channel = fresh_channel();
    let mut follower = following_node(&database.url, "follower", config, &store, &channel).await;

    for n in 1..=30 {
        store.append(request(&channel, &format!("{{\"n\":{n}}}"))).await.expect("append");
    }
    let offsets = delivered_offsets(&mut follower.inbox, 30, Duration::from_secs(10)).await;
    assert_eq!(offsets, (1..=30).collect::<Vec<_>>(), "every offset once, in order");
    assert!(delivered_offsets(&mut follower.inbox, 1, Duration::from_millis(500)).await.is_empty(), "nothing twice");
    assert!(follower.sequencer.stats.gaps_repaired.load(Ordering::Relaxed) >= 3, "three gaps were repaired");
    assert_eq!(follower.broker.stats().received.load(Ordering::Relaxed), 30 - dropped_offsets.len() as u64);
    assert!(follower.broker.stats().position_checks.load(Ordering::Relaxed) >= 1);
}

/// The backend pids of this database's connections with `application_name`.
async fn pids_named(database: &support::TestDatabase, application_name: &str) -> Vec<i32> {
    database
        .connect()
        .await
        .query(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1",
            &[&application_name],
        )
        .await
        .expect("pg_stat_activity")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_rides_out_the_termination_of_its_listening_connection_and_repairs_what_it_missed() {
    let Some(database) = support::fresh_database().await else { return };
    // The periodic check is far off: whatever is repaired here is repaired by the reconnect.
    // The first reconnect waits a second, so the outage can be observed and published into.
    let config = PostgresBrokerConfig {
        position_check_interval: Duration::from_secs(600),
        ping_interval: Duration::from_millis(200),
        reconnect_delay_min: Duration::from_secs(1),
        reconnect_delay_max: Duration::from_secs(1),
        postgres_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let origin = origin_broker(&database.url, config.clone()).await;
    let store: Arc<dyn StreamStore> =
        Arc::new(PostgresStore::connect(&database.url, origin.clone()).await.expect("connect store"));
    let channel = fresh_channel();
    let mut follower = following_node(&database.url, "follower", config, &store, &channel).await;
    assert!(follower.broker.ready().await);

    for n in 1..=5 {
        store.append(request(&channel, &n.to_string())).await.expect("append");
    }
    assert_eq!(delivered_offsets(&mut follower.inbox, 5, Duration::from_secs(5)).await, vec![1, 2, 3, 4, 5]);

    let name = follower.broker.listener_application_name().to_string();
    assert_eq!(name, "courtside:listen:follower");
    let pids = pids_named(&database, &name).await;
    assert_eq!(pids.len(), 1, "one listening connection");
    assert_eq!(follower.broker.listener_pid(), Some(pids[0]));
    let terminated: bool = database
        .connect()
        .await
        .query_one("SELECT pg_terminate_backend($1)", &[&pids[0]])
        .await
        .expect("pg_terminate_backend")
        .get(0);
    assert!(terminated);
    wait_until("the follower notices", Duration::from_secs(5), async || !follower.broker.ready().await).await;
    assert_eq!(follower.broker.listener_pid(), None);
    let error = follower.broker.follow(&fresh_channel()).await;
    assert!(error.is_err(), "follow fails while the listening connection is down");

    // Committed while the follower listens to nothing: notified, but not to it.
    let started = Instant::now();
    for n in 6..=10 {
        store.append(request(&channel, &n.to_string())).await.expect("append");
    }
    assert!(started.elapsed() < Duration::from_millis(500), "published within the outage");

    wait_until("the follower is back", Duration::from_secs(5), async || follower.broker.ready().await).await;
    assert_eq!(
        delivered_offsets(&mut follower.inbox, 5, Duration::from_secs(5)).await,
        vec![6, 7, 8, 9, 10],
        "what was notified while it was away is repaired after the reconnect"
    );
    assert_eq!(follower.broker.stats().reconnects.load(Ordering::Relaxed), 1);
    assert_eq!(follower.broker.stats().received.load(Ordering::Relaxed), 5, "6..=10 never arrived as notifications");
    assert!(follower.sequencer.stats.gaps_repaired.load(Ordering::Relaxed) >= 1);
    let new_pids = pids_named(&database, &name).await;
    assert_eq!(new_pids.len(), 1);
    assert_ne!(new_pids[0], pids[0]);

    // Live again, and following works again.
    for n in 11..=15 {
        store.append(request(&channel, &n.to_string())).await.expect("append");
    }
    assert_eq!(delivered_offsets(&mut follower.inbox, 5, Duration::from_secs(5)).await, vec![11, 12, 13, 14, 15]);
    assert_eq!(follower.broker.stats().received.load(Ordering::Relaxed), 10);
    follower.broker.follow(&fresh_channel()).await.expect("follow after the reconnect");
}

#[tokio::test]
async fn dropping_a_broker_closes_its_connections() {
    let Some(database) = support::fresh_database().await else { return };
    let count = async || {
        let row = database
            .connect()
            .await
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name IN ('courtside:listen:dropped', 'courtside:notify:dropped')",
                &[],
            )
            .await
            .expect("pg_stat_activity");
        row.get::<_, i64>(0)
    };
    let sequencer = Sequencer::new(Arc::new(Hub::new()));
    let broker = PostgresBroker::connect(&database.url, "dropped", sequencer).await.expect("connect");
    let channel = fresh_channel();
    broker.follow(&channel).await.expect("follow");
    broker.committed(vec![Publication {
        channel,
        epoch: Epoch::new_random(),
        offset: 1,
        key: None,
        removed: false,
        event: None,
        data: Bytes::from("1"),
        time_ms: 1,
    }]);
    wait_until("published", Duration::from_secs(5), async || broker.stats().published.load(Ordering::Relaxed) == 1)
        .await;
    assert_eq!(count().await, 2, "one listening and one publishing connection");
    drop(broker);
    wait_until("the broker's connections are closed", Duration::from_secs(5), async || count().await == 0).await;
}

#[tokio::test]
async fn connecting_fails_fast_and_bad_settings_are_refused() {
    let sequencer = Sequencer::new(Arc::new(Hub::new()));
    let started = Instant::now();
    let closed = PostgresBroker::connect("postgres://postgres@127.0.0.1:1/courtside", "n", sequencer.clone()).await;
    assert!(matches!(closed, Err(PostgresError::Connect(_))), "got {:?}", closed.err());
    assert!(started.elapsed() < Duration::from_secs(8));
    let url = "postgres://postgres@127.0.0.1:1/courtside";
    let bad_node = PostgresBroker::connect(url, "", sequencer.clone()).await;
    assert!(matches!(bad_node, Err(PostgresError::InvalidNodeId(_))));
    let config = PostgresBrokerConfig { channel_prefix: "No Caps".into(), ..Default::default() };
    let bad_prefix = PostgresBroker::connect_with_config(url, "n", sequencer, config).await;
    assert!(matches!(bad_prefix, Err(PostgresError::InvalidChannelPrefix(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_with_different_prefixes_do_not_meet() {
    let Some(database) = support::fresh_database().await else { return };
    let other = PostgresBrokerConfig { channel_prefix: "other".into(), ..Default::default() };
    let origin = origin_broker(&database.url, other).await;
    let store: Arc<dyn StreamStore> = Arc::new(MemoryStore::new(origin.clone()));
    let channel = fresh_channel();
    let mut follower = following_node(&database.url, "follower", Default::default(), &store, &channel).await;
    let theirs = origin.notification_channel(&channel);
    assert_eq!(follower.broker.notification_channel(&channel), theirs.replace("other_", "cs_"));
    store.append(request(&channel, "1")).await.expect("append");
    wait_until("published", Duration::from_secs(5), async || origin.stats().published.load(Ordering::Relaxed) == 1)
        .await;
    assert!(delivered_offsets(&mut follower.inbox, 1, Duration::from_millis(300)).await.is_empty());
}
