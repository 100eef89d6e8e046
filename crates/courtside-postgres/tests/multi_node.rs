//! Several stores ("nodes") sharing one database: offsets, idempotency and expiry across them.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use courtside_core::conformance::store::{race_channel_opens, race_groups};
use courtside_core::conformance::{RecordingSink, request};
use courtside_core::store::{HistoryQuery, IDEMPOTENCY_WINDOW_SECS, StreamStore};
use courtside_core::stream::now_ms;
use courtside_core::{ChannelName, Epoch};
use courtside_postgres::PostgresStore;

const NODES: usize = 2;
const PUBLISHERS_PER_NODE: usize = 10;
const APPENDS_PER_PUBLISHER: usize = 50;

fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name).expect("valid channel")
}

/// `NODES` stores on the database at `url`, each with a sink of its own.
async fn nodes(url: &str) -> Vec<(Arc<PostgresStore>, Arc<RecordingSink>)> {
    let mut nodes = Vec::new();
    for _ in 0..NODES {
        let sink = Arc::new(RecordingSink::default());
        let store = PostgresStore::connect(url, sink.clone()).await.expect("connect store");
        nodes.push((Arc::new(store), sink));
    }
    nodes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_appending_to_the_same_channels_get_distinct_gap_free_offsets() {
    let Some(database) = support::fresh_database().await else { return };
    let nodes = nodes(&database.url).await;
    let channels = [channel("match:a"), channel("match:b"), channel("match:c")];

    let mut publishers = Vec::new();
    for (node, (store, _)) in nodes.iter().enumerate() {
        for publisher in 0..PUBLISHERS_PER_NODE {
            let (store, channels) = (store.clone(), channels.clone());
            publishers.push(tokio::spawn(async move {
                // Each publisher rotates over the channels, so batches span several channels
                // and the two nodes' batches lock overlapping sets of channel rows.
                let mut acknowledged = Vec::new();
                for n in 0..APPENDS_PER_PUBLISHER {
                    let c = &channels[(publisher + n) % channels.len()];
                    let data = format!("[{node},{publisher},{n}]");
                    let appended = store.append(request(c, &data)).await.expect("append");
                    assert!(!appended.duplicate);
                    assert_eq!(appended.publication.data, Bytes::from(data));
                    acknowledged.push((node, appended.publication));
                }
                acknowledged
            }));
        }
    }
    let mut by_channel: HashMap<ChannelName, Vec<u64>> = HashMap::new();
    let mut epochs: HashMap<ChannelName, Epoch> = HashMap::new();
    let mut acknowledged_by_node: Vec<BTreeMap<(ChannelName, u64), Bytes>> = vec![BTreeMap::new(); NODES];
    for publisher in publishers {
        let acknowledged = publisher.await.expect("publisher");
        for c in &channels {
            let offsets: Vec<u64> =
                acknowledged.iter().filter(|(_, p)| &p.channel == c).map(|(_, p)| p.offset).collect();
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "one publisher's offsets on {c} increase");
        }
        for (node, publication) in acknowledged {
            let epoch = epochs.entry(publication.channel.clone()).or_insert_with(|| publication.epoch.clone());
            assert_eq!(&publication.epoch, epoch, "both nodes use the channel's one epoch");
            by_channel.entry(publication.channel.clone()).or_default().push(publication.offset);
            acknowledged_by_node[node].insert((publication.channel, publication.offset), publication.data);
        }
    }

    let total = NODES * PUBLISHERS_PER_NODE * APPENDS_PER_PUBLISHER;
    assert_eq!(by_channel.values().map(Vec::len).sum::<usize>(), total);
    for c in &channels {
        let mut offsets = by_channel.remove(c).unwrap_or_default();
        offsets.sort_unstable();
        let count = offsets.len() as u64;
        assert_eq!(offsets, (1..=count).collect::<Vec<_>>(), "acknowledged offsets on {c} are distinct and gap-free");
        for (store, _) in &nodes {
            let page = store.read(c, HistoryQuery::After { offset: 0, limit: 10_000 }).await.expect("read");
            assert_eq!(page.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), offsets);
            assert_eq!(page.top.offset, count);
        }
    }

    for (node, (store, sink)) in nodes.iter().enumerate() {
        let seen = sink.seen.lock().clone();
        for c in &channels {
            let offsets: Vec<u64> = seen.iter().filter(|p| &p.channel == c).map(|p| p.offset).collect();
            assert!(offsets.windows(2).all(|w| w[0] < w[1]), "node {node}'s sink sees {c} in increasing order");
        }
        let delivered: BTreeMap<(ChannelName, u64), Bytes> =
            seen.into_iter().map(|p| ((p.channel, p.offset), p.data)).collect();
        assert_eq!(delivered, acknowledged_by_node[node], "node {node}'s sink saw exactly its own publications");
        store.close().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_racing_one_idempotency_key_store_it_once() {
    let Some(database) = support::fresh_database().await else { return };
    let nodes = nodes(&database.url).await;
    let c = channel("match:race");
    const KEYS: usize = 20;

    // Per key: two attempts on node 0 (possibly in one batch) and one on node 1, all at once.
    let mut attempts = Vec::new();
    for key in 0..KEYS {
        for (attempt, node) in [0, 0, 1].into_iter().enumerate() {
            let (store, c) = (nodes[node].0.clone(), c.clone());
            attempts.push(tokio::spawn(async move {
                let mut r = request(&c, &format!("\"key {key} attempt {attempt}\""));
                r.idempotency_key = Some(format!("op-{key}"));
                (key, store.append(r).await.expect("append"))
            }));
        }
    }
    let mut by_key: BTreeMap<usize, Vec<_>> = BTreeMap::new();
    for attempt in attempts {
        let (key, appended) = attempt.await.expect("attempt");
        by_key.entry(key).or_default().push(appended);
    }
    for (key, answers) in &by_key {
        let originals: Vec<_> = answers.iter().filter(|a| !a.duplicate).collect();
        assert_eq!(originals.len(), 1, "key {key} is stored exactly once: {answers:#?}");
        for answer in answers {
            assert_eq!(answer.publication, originals[0].publication, "every attempt of key {key} gets the original");
        }
    }

    // Retries queued together (so usually in one batch) of a key committed earlier.
    let retries: Vec<_> = (0..5)
        .map(|_| {
            let (store, c) = (nodes[0].0.clone(), c.clone());
            tokio::spawn(async move {
                let mut r = request(&c, "\"retry\"");
                r.idempotency_key = Some("op-0".into());
                store.append(r).await.expect("retry")
            })
        })
        .collect();
    for retry in retries {
        let retried = retry.await.expect("retry");
        assert!(retried.duplicate, "every retry of a committed key is a duplicate");
        assert_eq!(retried.publication, by_key[&0].iter().find(|a| !a.duplicate).expect("original").publication);
    }

    assert_eq!(nodes[0].0.position(&c).await.expect("position").offset, KEYS as u64);
    let delivered: usize = nodes.iter().map(|(_, sink)| sink.seen.lock().len()).sum();
    assert_eq!(delivered, KEYS, "duplicates are not delivered");
    let page = nodes[1].0.read(&c, HistoryQuery::After { offset: 0, limit: 100 }).await.expect("read");
    assert_eq!(page.publications.len(), KEYS);
    for (store, _) in &nodes {
        store.close().await;
    }
}

#[tokio::test]
async fn a_sweep_on_one_node_expires_history_and_idempotency_keys_for_all() {
    let Some(database) = support::fresh_database().await else { return };
    let nodes = nodes(&database.url).await;
    let (writer, sweeper) = (&nodes[0].0, &nodes[1].0);
    let c = channel("match:expiring");
    let mut keyed = request(&c, "1");
    keyed.retention.history_ttl_secs = 60;
    keyed.key = Some("score".into());
    keyed.idempotency_key = Some("op-1".into());
    writer.append(keyed.clone()).await.expect("append");
    let mut second = request(&c, "2");
    second.retention.history_ttl_secs = 60;
    writer.append(second).await.expect("append");

    assert_eq!(sweeper.sweep_expired(now_ms()).await.expect("sweep"), 0, "nothing has expired yet");
    assert_eq!(sweeper.sweep_expired(now_ms() + 120_000).await.expect("sweep"), 2);
    let page = writer.read(&c, HistoryQuery::After { offset: 0, limit: 10 }).await.expect("read");
    assert!(page.publications.is_empty());
    assert_eq!((page.earliest_offset, page.top.offset), (3, 2));
    assert_eq!(writer.snapshot(&c).await.expect("snapshot").entries.len(), 1, "keyed state outlives history");
    assert!(writer.append(keyed.clone()).await.expect("retry").duplicate, "the key is still in its window");

    let past_the_window = now_ms() + (IDEMPOTENCY_WINDOW_SECS + 60) * 1000;
    sweeper.sweep_expired(past_the_window).await.expect("sweep");
    let reused = writer.append(keyed).await.expect("append");
    assert!(!reused.duplicate, "a key past the window is forgotten");
    assert_eq!(reused.publication.offset, 3);
    for (store, _) in &nodes {
        store.close().await;
    }
}

/// Scorekeepers on different nodes claim one match at once, each expecting the claim channel
/// where they read it: the channel row lock makes exactly one of them win, every time.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_racing_groups_on_one_expected_position_store_exactly_one() {
    let Some(database) = support::fresh_database().await else { return };
    let nodes = nodes(&database.url).await;
    let stores: Vec<Arc<dyn StreamStore>> = nodes.iter().map(|(store, _)| store.clone() as Arc<dyn StreamStore>).collect();
    for round in 0..10 {
        let claim = channel(&format!("claim:race-{round}"));
        assert_eq!(race_groups(&stores, &claim, 8).await, 1, "round {round}: exactly one claim is stored");
        assert_eq!(stores[1].position(&claim).await.expect("position").offset, 1);
    }
}

/// Nodes opening new channels of one namespace at once never create more than its limit between
/// them: the count is the database's, taken under a per-namespace lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_racing_to_open_channels_stay_within_the_namespace_limit() {
    let Some(database) = support::fresh_database().await else { return };
    let nodes = nodes(&database.url).await;
    let stores: Vec<Arc<dyn StreamStore>> = nodes.iter().map(|(store, _)| store.clone() as Arc<dyn StreamStore>).collect();
    for round in 0..5 {
        let namespace = format!("room{round}");
        assert_eq!(race_channel_opens(&stores, &namespace, 16, 6).await, 6, "round {round}: exactly the limit is created");
    }
}

/// A channel one node expires while another node's writer knows it: the writer's next append
/// finds the row gone, writes its batch again and starts the channel over in a new epoch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_channel_expired_by_one_node_starts_over_on_the_node_that_writes_it() {
    let Some(database) = support::fresh_database().await else { return };
    let nodes = nodes(&database.url).await;
    let (writer, expirer) = (&nodes[0].0, &nodes[1].0);
    let c = channel("chat:idle");
    let first = writer.append(request(&c, "1")).await.expect("append").publication;
    writer.append(request(&c, "2")).await.expect("append");
    let expired = expirer.expire_idle("chat", 60, now_ms() + 120_000).await.expect("expire");
    assert_eq!(expired, vec![c.clone()]);
    let again = writer.append(request(&c, "3")).await.expect("append after expiry");
    assert_eq!(again.publication.offset, 1, "offsets start over");
    assert_ne!(again.publication.epoch, first.epoch, "in a new epoch");
    let page = expirer.read(&c, HistoryQuery::After { offset: 0, limit: 10 }).await.expect("read");
    assert_eq!(page.publications.len(), 1, "only the publication after the reset is kept");
}
