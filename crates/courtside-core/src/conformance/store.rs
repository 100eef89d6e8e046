//! The conformance suite for [`StreamStore`]: one set of checks that every implementation must
//! pass with the same results. A backend's tests call [`stream_store`] with a function that opens
//! a fresh, empty store around the given sink.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::channel::ChannelName;
use crate::store::{
    AppendGroup, AppendRequest, CommitSink, ExpectedPosition, HistoryQuery, Retention, StoreError, StreamStore,
};
use crate::stream::{Epoch, Publication, StreamPosition};

/// A sink that remembers what it was handed, in order.
#[derive(Default)]
pub struct RecordingSink {
    pub seen: Mutex<Vec<Publication>>,
}

impl CommitSink for RecordingSink {
    fn committed(&self, publications: Vec<Publication>) {
        self.seen.lock().extend(publications);
    }
}

pub const RETAIN_ALL: Retention = Retention { history_size: 100_000, history_ttl_secs: 86_400, keyed: true };

pub fn request(channel: &ChannelName, data: &str) -> AppendRequest {
    AppendRequest {
        channel: channel.clone(),
        data: Bytes::from(data.to_string()),
        key: None,
        remove_key: false,
        event: None,
        idempotency_key: None,
        retention: RETAIN_ALL,
    }
}

fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name).expect("valid test channel")
}

type OpenedStore = Pin<Box<dyn Future<Output = Arc<dyn StreamStore>>>>;
/// Opens a fresh, empty store around a sink.
type Opener<'a> = &'a dyn Fn(Arc<dyn CommitSink>) -> OpenedStore;

/// How many checks [`stream_store`] runs; each opens one fresh store.
pub const STORE_CHECKS: usize = 16;

/// Runs every check against fresh stores made by `open`.
pub async fn stream_store<F, Fut>(open: F)
where
    F: Fn(Arc<dyn CommitSink>) -> Fut,
    Fut: Future<Output = Arc<dyn StreamStore>> + 'static,
{
    let boxed = |sink| -> OpenedStore { Box::pin(open(sink)) };
    let open: Opener<'_> = &boxed;
    offsets_count_up_from_one_in_a_stable_epoch(open).await;
    concurrent_appends_get_distinct_offsets_and_reach_the_sink_in_order(open).await;
    idempotency_keys_return_the_original(open).await;
    history_is_trimmed_to_its_size(open).await;
    keyed_state_keeps_the_latest_per_key(open).await;
    expired_history_is_swept_but_offsets_continue(open).await;
    channels_are_independent(open).await;
    groups_are_stored_whole_in_order(open).await;
    a_moved_position_stores_nothing(open).await;
    racing_groups_on_one_expected_position_store_exactly_one(open).await;
    a_group_retried_with_its_key_stores_nothing(open).await;
    event_names_are_kept_everywhere_a_publication_is(open).await;
    idle_channels_expire_and_come_back_in_a_new_epoch(open).await;
    a_namespace_holds_at_most_its_channel_limit(open).await;
    racing_opens_never_exceed_the_channel_limit(open).await;
    closed_store_refuses_work(open).await;
}

async fn fresh(open: Opener<'_>) -> (Arc<dyn StreamStore>, Arc<RecordingSink>) {
    let sink = Arc::new(RecordingSink::default());
    (open(sink.clone()).await, sink)
}

async fn offsets_count_up_from_one_in_a_stable_epoch(open: Opener<'_>) {
    let (store, sink) = fresh(open).await;
    let c = channel("match:1");
    let start = store.position(&c).await.expect("position");
    assert_eq!(start.offset, 0, "a new channel starts at offset 0");
    assert!(!start.epoch.as_str().is_empty(), "a new channel has an epoch");
    for expected in 1..=5u64 {
        let appended = store.append(request(&c, &format!("{{\"n\":{expected}}}"))).await.expect("append");
        assert!(!appended.duplicate);
        assert_eq!(appended.publication.offset, expected);
        assert_eq!(appended.publication.epoch, start.epoch, "epoch stays while history is kept");
        assert_eq!(appended.publication.data, Bytes::from(format!("{{\"n\":{expected}}}")));
    }
    assert_eq!(store.position(&c).await.expect("position").offset, 5);
    let page = store.read(&c, HistoryQuery::After { offset: 2, limit: 100 }).await.expect("read");
    assert_eq!(page.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![3, 4, 5]);
    assert_eq!((page.top.offset, page.earliest_offset), (5, 1));
    let page = store.read(&c, HistoryQuery::After { offset: 0, limit: 2 }).await.expect("read");
    assert_eq!(page.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![1, 2]);
    let page = store.read(&c, HistoryQuery::Latest { limit: 2 }).await.expect("read");
    assert_eq!(page.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![4, 5]);
    assert_eq!(sink.seen.lock().iter().map(|p| p.offset).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
    store.close().await;
}

async fn concurrent_appends_get_distinct_offsets_and_reach_the_sink_in_order(open: Opener<'_>) {
    let (store, sink) = fresh(open).await;
    let channels = [channel("match:a"), channel("match:b")];
    let mut tasks = Vec::new();
    for publisher in 0..20 {
        let store = store.clone();
        let c = channels[publisher % 2].clone();
        tasks.push(tokio::spawn(async move {
            let mut offsets = Vec::new();
            for n in 0..25 {
                let appended = store.append(request(&c, &format!("[{publisher},{n}]"))).await.expect("append");
                offsets.push(appended.publication.offset);
            }
            offsets
        }));
    }
    let mut acknowledged: Vec<u64> = Vec::new();
    for task in tasks {
        let offsets = task.await.expect("publisher");
        assert!(offsets.windows(2).all(|w| w[0] < w[1]), "one publisher's offsets increase");
        acknowledged.extend(offsets);
    }
    assert_eq!(acknowledged.len(), 500);
    let mut by_channel: HashMap<ChannelName, Vec<u64>> = HashMap::new();
    for p in sink.seen.lock().iter() {
        by_channel.entry(p.channel.clone()).or_default().push(p.offset);
    }
    for c in &channels {
        assert_eq!(by_channel[c], (1..=250).collect::<Vec<_>>(), "sink sees {c} gap-free, in order");
        let page = store.read(c, HistoryQuery::After { offset: 0, limit: 1000 }).await.expect("read");
        assert_eq!(page.publications.len(), 250);
    }
    store.close().await;
}

async fn idempotency_keys_return_the_original(open: Opener<'_>) {
    let (store, sink) = fresh(open).await;
    let c = channel("match:idem");
    store.append(request(&c, "1")).await.expect("append");
    let mut first = request(&c, "\"x\"");
    first.idempotency_key = Some("op-1".into());
    let original = store.append(first.clone()).await.expect("append");
    assert!(!original.duplicate);
    let retry = store.append(first).await.expect("retry");
    assert!(retry.duplicate, "a retried idempotency key is a duplicate");
    assert_eq!(retry.publication.offset, original.publication.offset);
    assert_eq!(retry.publication.data, original.publication.data);
    let mut elsewhere = request(&channel("match:other"), "\"y\"");
    elsewhere.idempotency_key = Some("op-1".into());
    assert!(!store.append(elsewhere).await.expect("append").duplicate, "keys are per channel");
    assert_eq!(store.position(&c).await.expect("position").offset, 2);
    assert_eq!(sink.seen.lock().len(), 3, "a duplicate is not delivered again");
    let found = store.find_idempotent(&c, "op-1").await.expect("find");
    assert_eq!(found, Some(original.publication), "the key's publication can be looked up");
    assert_eq!(store.find_idempotent(&c, "op-2").await.expect("find"), None);
    assert_eq!(store.find_idempotent(&channel("match:never-seen"), "op-1").await.expect("find"), None);
    store.close().await;
}

async fn history_is_trimmed_to_its_size(open: Opener<'_>) {
    let (store, _sink) = fresh(open).await;
    let c = channel("match:trim");
    for n in 0..8 {
        let mut r = request(&c, &n.to_string());
        r.retention.history_size = 5;
        store.append(r).await.expect("append");
    }
    let page = store.read(&c, HistoryQuery::After { offset: 0, limit: 100 }).await.expect("read");
    assert_eq!(page.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![4, 5, 6, 7, 8]);
    assert_eq!((page.earliest_offset, page.top.offset), (4, 8));
    store.close().await;
}

async fn keyed_state_keeps_the_latest_per_key(open: Opener<'_>) {
    let (store, _sink) = fresh(open).await;
    let c = channel("leaderboard:main");
    for (key, data) in [("a", "1"), ("b", "2"), ("a", "3"), ("c", "4")] {
        let mut r = request(&c, data);
        r.key = Some(key.into());
        store.append(r).await.expect("append");
    }
    let mut remove = request(&c, "null");
    remove.key = Some("c".into());
    remove.remove_key = true;
    let removal = store.append(remove).await.expect("append");
    assert!(removal.publication.removed);
    let snapshot = store.snapshot(&c).await.expect("snapshot");
    let entries: Vec<_> = snapshot
        .entries
        .iter()
        .map(|p| (p.key.clone().unwrap_or_default(), p.offset, p.data.clone()))
        .collect();
    assert_eq!(
        entries,
        vec![("a".into(), 3, Bytes::from("3")), ("b".into(), 2, Bytes::from("2"))],
        "latest per key, removed keys gone, ordered by key"
    );
    assert_eq!(snapshot.position.offset, 5);
    store.close().await;
}

async fn expired_history_is_swept_but_offsets_continue(open: Opener<'_>) {
    let (store, _sink) = fresh(open).await;
    let c = channel("match:ttl");
    for n in 0..3 {
        let mut r = request(&c, &n.to_string());
        r.retention.history_ttl_secs = 60;
        r.key = Some("k".into());
        store.append(r).await.expect("append");
    }
    let mut forever = request(&channel("match:keep"), "1");
    forever.retention.history_ttl_secs = 0;
    store.append(forever).await.expect("append");
    let later = crate::stream::now_ms() + 120_000;
    assert_eq!(store.sweep_expired(later).await.expect("sweep"), 3);
    let page = store.read(&c, HistoryQuery::After { offset: 0, limit: 10 }).await.expect("read");
    assert!(page.publications.is_empty());
    assert_eq!((page.earliest_offset, page.top.offset), (4, 3), "nothing kept, the top stays");
    assert_eq!(store.snapshot(&c).await.expect("snapshot").entries.len(), 1, "keyed state outlives history");
    let next = store.append(request(&c, "9")).await.expect("append");
    assert_eq!(next.publication.offset, 4);
    assert_eq!(next.publication.epoch, page.top.epoch);
    store.close().await;
}

async fn channels_are_independent(open: Opener<'_>) {
    let (store, _sink) = fresh(open).await;
    let (a, b) = (channel("team:a"), channel("team:b"));
    store.append(request(&a, "1")).await.expect("append");
    store.append(request(&a, "2")).await.expect("append");
    assert_eq!(store.append(request(&b, "1")).await.expect("append").publication.offset, 1);
    assert_ne!(store.position(&a).await.expect("a").epoch, store.position(&b).await.expect("b").epoch);
    store.close().await;
}

fn keyed(channel: &ChannelName, key: &str, data: &str) -> AppendRequest {
    AppendRequest { key: Some(key.to_string()), ..request(channel, data) }
}

async fn groups_are_stored_whole_in_order(open: Opener<'_>) {
    let (store, sink) = fresh(open).await;
    let (scores, court) = (channel("match:group-1"), channel("court:group-1"));
    store.append(request(&court, "0")).await.expect("append");
    let before = store.position(&scores).await.expect("position");
    let group = AppendGroup {
        requests: vec![keyed(&scores, "score", "\"15-12\""), request(&court, "1"), request(&scores, "2")],
        expected: vec![ExpectedPosition { channel: scores.clone(), position: before.clone() }],
    };
    let appended = store.append_group(group).await.expect("group");
    let placed: Vec<(String, u64, bool)> =
        appended.iter().map(|a| (a.publication.channel.to_string(), a.publication.offset, a.duplicate)).collect();
    assert_eq!(
        placed,
        [("match:group-1".to_string(), 1, false), ("court:group-1".to_string(), 2, false), ("match:group-1".to_string(), 2, false)],
        "offsets continue per channel, in the group's order"
    );
    assert_eq!(appended[0].publication.epoch, before.epoch);
    let seen: Vec<(String, u64)> = sink.seen.lock().iter().map(|p| (p.channel.to_string(), p.offset)).collect();
    assert_eq!(seen[1..], [("match:group-1".to_string(), 1), ("court:group-1".to_string(), 2), ("match:group-1".to_string(), 2)]);
    let snapshot = store.snapshot(&scores).await.expect("snapshot");
    assert_eq!(snapshot.entries.len(), 1, "keyed state of a group is kept like any other");
    assert_eq!(store.append_group(AppendGroup::default()).await, Err(StoreError::EmptyGroup));
}

async fn a_moved_position_stores_nothing(open: Opener<'_>) {
    let (store, sink) = fresh(open).await;
    let (scores, claim) = (channel("match:group-2"), channel("claim:group-2"));
    let stale = store.position(&claim).await.expect("position");
    store.append(request(&claim, "\"taken by another\"")).await.expect("append");
    let seen_before = sink.seen.lock().len();
    let group = AppendGroup {
        requests: vec![request(&scores, "1")],
        expected: vec![ExpectedPosition { channel: claim.clone(), position: stale.clone() }],
    };
    match store.append_group(group).await {
        Err(StoreError::Conflict(conflict)) => {
            assert_eq!((conflict.channel, conflict.expected.offset, conflict.actual.offset), (claim.clone(), 0, 1));
            assert_eq!(conflict.actual.epoch, stale.epoch);
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    assert_eq!(store.position(&scores).await.expect("position").offset, 0, "nothing stored");
    assert_eq!(sink.seen.lock().len(), seen_before, "nothing reached the sink");
    let other_epoch = ExpectedPosition {
        channel: claim.clone(),
        position: StreamPosition { epoch: Epoch::new_random(), offset: 1 },
    };
    let group = AppendGroup { requests: vec![request(&scores, "1")], expected: vec![other_epoch] };
    assert!(matches!(store.append_group(group).await, Err(StoreError::Conflict(_))), "the epoch must match too");
}

async fn racing_groups_on_one_expected_position_store_exactly_one(open: Opener<'_>) {
    let (store, _sink) = fresh(open).await;
    let claim = channel("claim:group-3");
    assert_eq!(race_groups(std::slice::from_ref(&store), &claim, 8).await, 1, "exactly one of the racers stores its claim");
    assert_eq!(store.position(&claim).await.expect("position").offset, 1);
}

/// `racers` tasks, spread over `stores` (nodes on one database), each append a group to
/// `channel` expecting its current position; returns how many were stored (any error other
/// than a conflict fails the test).
pub async fn race_groups(stores: &[Arc<dyn StreamStore>], channel: &ChannelName, racers: usize) -> usize {
    let claim = channel.clone();
    let free = stores[0].position(&claim).await.expect("position");
    let racers: Vec<_> = (0..racers)
        .map(|n| {
            let (store, claim, free) = (stores[n % stores.len()].clone(), claim.clone(), free.clone());
            tokio::spawn(async move {
                let group = AppendGroup {
                    requests: vec![request(&claim, &format!("\"keeper-{n}\""))],
                    expected: vec![ExpectedPosition { channel: claim.clone(), position: free }],
                };
                store.append_group(group).await
            })
        })
        .collect();
    let mut won = 0;
    for racer in racers {
        match racer.await.expect("task") {
            Ok(_) => won += 1,
            Err(StoreError::Conflict(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    won
}

async fn a_group_retried_with_its_key_stores_nothing(open: Opener<'_>) {
    let (store, _sink) = fresh(open).await;
    let (scores, division) = (channel("match:group-4"), channel("division:group-4"));
    let start = store.position(&scores).await.expect("position");
    let group = AppendGroup {
        requests: vec![
            AppendRequest { idempotency_key: Some("op-1".into()), ..request(&scores, "1") },
            request(&division, "1"),
        ],
        expected: vec![ExpectedPosition { channel: scores.clone(), position: start }],
    };
    let first = store.append_group(group.clone()).await.expect("first");
    let retried = store.append_group(group).await.expect("a retry after success is not a conflict");
    assert_eq!(retried.len(), 1);
    assert!(retried[0].duplicate);
    assert_eq!(retried[0].publication, first[0].publication, "the original of the key's request");
    assert_eq!(store.position(&division).await.expect("position").offset, 1, "nothing stored twice");
}

async fn event_names_are_kept_everywhere_a_publication_is(open: Opener<'_>) {
    let (store, sink) = fresh(open).await;
    let c = channel("match:events");
    let named = AppendRequest {
        event: Some("match:created".into()),
        idempotency_key: Some("op-named".into()),
        ..keyed(&c, "named", "{\"home\":1}")
    };
    let unnamed = AppendRequest { idempotency_key: Some("op-unnamed".into()), ..keyed(&c, "unnamed", "2") };
    let first = store.append(named.clone()).await.expect("append");
    let second = store.append(unnamed.clone()).await.expect("append");
    assert_eq!(first.publication.event.as_deref(), Some("match:created"), "the append answers the event name");
    assert_eq!(second.publication.event, None, "no event name stays none");
    let delivered: Vec<Option<String>> = sink.seen.lock().iter().map(|p| p.event.clone()).collect();
    assert_eq!(delivered, [Some("match:created".to_string()), None], "the sink gets the event names");
    let expected = [Some("match:created".to_string()), None];
    let page = store.read(&c, HistoryQuery::After { offset: 0, limit: 10 }).await.expect("read");
    assert_eq!(page.publications.iter().map(|p| p.event.clone()).collect::<Vec<_>>(), expected, "history keeps them");
    let page = store.read(&c, HistoryQuery::Latest { limit: 10 }).await.expect("read");
    assert_eq!(page.publications.iter().map(|p| p.event.clone()).collect::<Vec<_>>(), expected, "latest history too");
    let snapshot = store.snapshot(&c).await.expect("snapshot");
    assert_eq!(snapshot.entries.iter().map(|p| p.event.clone()).collect::<Vec<_>>(), expected, "the keyed state too");
    let retried = store.append(named).await.expect("retry");
    assert!(retried.duplicate);
    assert_eq!(retried.publication, first.publication, "a retry answers the original, event name included");
    let retried = store.append(unnamed).await.expect("retry");
    assert_eq!(retried.publication, second.publication);
    let found = store.find_idempotent(&c, "op-named").await.expect("find");
    assert_eq!(found.and_then(|p| p.event).as_deref(), Some("match:created"));
    store.close().await;
}

async fn idle_channels_expire_and_come_back_in_a_new_epoch(open: Opener<'_>) {
    let (store, _sink) = fresh(open).await;
    let (idle, busy, other) = (channel("match:idle"), channel("match:busy"), channel("matchday:idle"));
    let now = crate::stream::now_ms();
    let mut first = keyed(&idle, "score", "1");
    first.idempotency_key = Some("op-1".into());
    let before = store.append(first.clone()).await.expect("append").publication;
    store.append(keyed(&idle, "score", "2")).await.expect("append");
    store.open_channel(&busy, 0, now).await.expect("open");
    store.open_channel(&channel("match:also-idle"), 0, now).await.expect("open");
    store.append(request(&other, "1")).await.expect("append");
    assert_eq!(store.expire_idle("match", 60, now + 30_000).await.expect("expire"), Vec::<ChannelName>::new(), "nothing is idle yet");
    store.touch_channels(&[busy.clone(), channel("match:never-stored")], now + 50_000).await.expect("touch");
    let expired = store.expire_idle("match", 60, now + 100_000).await.expect("expire");
    assert_eq!(expired, vec![channel("match:also-idle"), idle.clone()], "idle channels of the namespace go, the touched one stays");
    assert_eq!(store.expire_idle("match", 60, now + 100_000).await.expect("expire"), Vec::<ChannelName>::new(), "touching created nothing");
    assert_eq!(store.read(&other, HistoryQuery::Latest { limit: 10 }).await.expect("read").top.offset, 1, "another namespace is left alone");
    assert_eq!(store.position(&busy).await.expect("position").offset, 0);

    let reset = store.read(&idle, HistoryQuery::After { offset: 0, limit: 10 }).await.expect("read");
    assert!(reset.publications.is_empty(), "the history is gone");
    assert_eq!(reset.top.offset, 0, "offsets start over");
    assert_ne!(reset.top.epoch, before.epoch, "in a new epoch");
    assert!(store.snapshot(&idle).await.expect("snapshot").entries.is_empty(), "keyed state is gone");
    assert_eq!(store.find_idempotent(&idle, "op-1").await.expect("find"), None, "idempotency keys are gone");
    let again = store.append(first).await.expect("append");
    assert!(!again.duplicate, "a key of the old epoch is not a retry");
    assert_eq!((again.publication.offset, &again.publication.epoch), (1, &reset.top.epoch));
    store.close().await;
}

async fn a_namespace_holds_at_most_its_channel_limit(open: Opener<'_>) {
    let (store, _sink) = fresh(open).await;
    let now = crate::stream::now_ms();
    store.append(request(&channel("chat:a"), "1")).await.expect("append");
    let b = store.open_channel(&channel("chat:b"), 2, now).await.expect("open under the limit");
    assert_eq!(b.offset, 0);
    let refused = store.open_channel(&channel("chat:c"), 2, now).await;
    assert_eq!(refused, Err(StoreError::ChannelLimit { namespace: "chat".into(), max: 2 }));
    assert_eq!(store.open_channel(&channel("chat:a"), 2, now).await.expect("an existing channel").offset, 1);
    store.open_channel(&channel("chatroom:a"), 1, now).await.expect("another namespace counts its own");
    store.open_channel(&channel("chat:c"), 0, now).await.expect("no limit");
    assert_eq!(store.expire_idle("chat", 1, now + 10_000).await.expect("expire").len(), 3);
    store.open_channel(&channel("chat:d"), 2, now + 10_000).await.expect("expiry made room");
    store.close().await;
}

async fn racing_opens_never_exceed_the_channel_limit(open: Opener<'_>) {
    let (store, _sink) = fresh(open).await;
    assert_eq!(race_channel_opens(std::slice::from_ref(&store), "room", 12, 5).await, 5);
    store.close().await;
}

/// `racers` tasks, spread over `stores` (nodes on one database), each open a new channel of
/// `namespace` under a limit of `channels_max`; returns how many were created (any error other
/// than the limit fails the test).
pub async fn race_channel_opens(stores: &[Arc<dyn StreamStore>], namespace: &str, racers: usize, channels_max: u64) -> usize {
    let racers: Vec<_> = (0..racers)
        .map(|n| {
            let store = stores[n % stores.len()].clone();
            let name = channel(&format!("{namespace}:racer-{n}"));
            tokio::spawn(async move { store.open_channel(&name, channels_max, crate::stream::now_ms()).await })
        })
        .collect();
    let mut created = 0;
    for racer in racers {
        match racer.await.expect("task") {
            Ok(_) => created += 1,
            Err(StoreError::ChannelLimit { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    created
}

async fn closed_store_refuses_work(open: Opener<'_>) {
    let (store, _sink) = fresh(open).await;
    store.close().await;
    assert!(store.append(request(&channel("match:x"), "1")).await.is_err());
    assert!(!store.ready().await);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn memory_store_conforms() {
        stream_store(|sink| async move { Arc::new(MemoryStore::new(sink)) as Arc<dyn StreamStore> }).await;
    }
}
