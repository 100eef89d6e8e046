//! What survives closing a store and connecting again, and what a failed write leaves behind.

mod support;

use std::sync::Arc;

use bytes::Bytes;
use courtside_core::ChannelName;
use courtside_core::conformance::{RecordingSink, request};
use courtside_core::store::{HistoryQuery, NoSink, StoreError, StreamStore};
use courtside_postgres::PostgresStore;

fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name).expect("valid channel")
}

async fn connect(url: &str) -> PostgresStore {
    PostgresStore::connect(url, Arc::new(NoSink)).await.expect("connect store")
}

#[tokio::test]
async fn history_state_epoch_and_idempotency_survive_reconnecting() {
    let Some(database) = support::fresh_database().await else { return };
    let c = channel("match:durable");

    let store = connect(&database.url).await;
    let epoch = store.position(&c).await.expect("position").epoch;
    for (key, data) in [("a", "1"), ("b", "2"), ("a", "3")] {
        let mut r = request(&c, data);
        r.key = Some(key.into());
        r.idempotency_key = Some(format!("op-{data}"));
        store.append(r).await.expect("append");
    }
    store.close().await;
    assert!(!store.ready().await);
    assert_eq!(store.append(request(&c, "9")).await, Err(StoreError::Closed));

    let store = connect(&database.url).await;
    assert!(store.ready().await);
    let position = store.position(&c).await.expect("position");
    assert_eq!((position.epoch.clone(), position.offset), (epoch.clone(), 3), "same epoch and top after reconnecting");

    let mut retry = request(&c, "2");
    retry.key = Some("b".into());
    retry.idempotency_key = Some("op-2".into());
    let retried = store.append(retry).await.expect("retry");
    assert!(retried.duplicate, "idempotency keys survive reconnecting");
    assert_eq!((retried.publication.offset, retried.publication.data.clone()), (2, Bytes::from("2")));
    assert_eq!(retried.publication.epoch, epoch);

    let next = store.append(request(&c, "4")).await.expect("append");
    assert_eq!((next.publication.offset, next.publication.epoch.clone()), (4, epoch.clone()), "offsets continue");

    let page = store.read(&c, HistoryQuery::After { offset: 0, limit: 10 }).await.expect("read");
    let history: Vec<_> = page.publications.iter().map(|p| (p.offset, p.data.clone())).collect();
    assert_eq!(
        history,
        vec![(1, Bytes::from("1")), (2, Bytes::from("2")), (3, Bytes::from("3")), (4, Bytes::from("4"))]
    );
    assert_eq!((page.top.offset, page.earliest_offset), (4, 1));

    let snapshot = store.snapshot(&c).await.expect("snapshot");
    let state: Vec<_> = snapshot.entries.iter().map(|p| (p.key.clone(), p.offset)).collect();
    assert_eq!(state, vec![(Some("a".into()), 3), (Some("b".into()), 2)]);
    assert_eq!(snapshot.position.offset, 4);
    store.close().await;
}

#[tokio::test]
async fn an_idempotent_retry_is_answered_after_its_publication_was_trimmed() {
    let Some(database) = support::fresh_database().await else { return };
    let c = channel("match:trimmed-retry");
    let store = connect(&database.url).await;
    let mut first = request(&c, "\"first\"");
    first.retention.history_size = 2;
    first.idempotency_key = Some("op-first".into());
    let original = store.append(first.clone()).await.expect("append");
    for n in 0..5 {
        let mut r = request(&c, &n.to_string());
        r.retention.history_size = 2;
        store.append(r).await.expect("append");
    }
    store.close().await;

    let store = connect(&database.url).await;
    let retried = store.append(first).await.expect("retry");
    assert!(retried.duplicate);
    assert_eq!(retried.publication, original.publication, "the whole original is kept with its key");
    assert_eq!(store.read(&c, HistoryQuery::Latest { limit: 10 }).await.expect("read").earliest_offset, 5);
    store.close().await;
}

#[tokio::test]
async fn trimmed_history_stays_trimmed_and_reads_of_unknown_channels_create_them() {
    let Some(database) = support::fresh_database().await else { return };
    let c = channel("match:trim");

    let store = connect(&database.url).await;
    for n in 0..10 {
        let mut r = request(&c, &n.to_string());
        r.retention.history_size = 3;
        store.append(r).await.expect("append");
    }
    let fresh = channel("match:never-written");
    let empty = store.read(&fresh, HistoryQuery::Latest { limit: 10 }).await.expect("read");
    assert!(empty.publications.is_empty());
    assert_eq!((empty.top.offset, empty.earliest_offset), (0, 1));
    let unseen = channel("match:never-seen");
    let snapshot = store.snapshot(&unseen).await.expect("snapshot");
    assert!(snapshot.entries.is_empty());
    store.close().await;

    let store = connect(&database.url).await;
    let page = store.read(&c, HistoryQuery::Latest { limit: 100 }).await.expect("read");
    assert_eq!(page.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![8, 9, 10]);
    assert_eq!(page.earliest_offset, 8);
    assert_eq!(store.position(&fresh).await.expect("position").epoch, empty.top.epoch, "a read created the channel");
    assert_eq!(store.position(&unseen).await.expect("position").epoch, snapshot.position.epoch, "so did a snapshot");
    let stored_rows: i64 = database
        .connect()
        .await
        .query_one("SELECT count(*) FROM courtside_publications WHERE channel = 'match:trim'", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(stored_rows, 3, "trimmed rows are deleted, not just hidden");
    store.close().await;
}

#[tokio::test]
async fn a_failed_transaction_acknowledges_nothing_and_leaves_no_gap() {
    let Some(database) = support::fresh_database().await else { return };
    let sink = Arc::new(RecordingSink::default());
    let store = PostgresStore::connect(&database.url, sink.clone()).await.expect("connect store");
    let c = channel("match:fail");
    assert_eq!(store.append(request(&c, "1")).await.expect("append").publication.offset, 1);

    // A trigger on the publications table makes any write of the payload `"boom"` fail.
    database
        .connect()
        .await
        .batch_execute(
            r#"CREATE FUNCTION refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
               BEGIN
                   IF NEW.data = convert_to('"boom"', 'UTF8') THEN RAISE EXCEPTION 'refused by test'; END IF;
                   RETURN NEW;
               END $$;
               CREATE TRIGGER refuse_boom BEFORE INSERT ON courtside_publications
               FOR EACH ROW EXECUTE FUNCTION refuse_boom();"#,
        )
        .await
        .expect("create trigger");

    let failed = store.append(request(&c, "\"boom\"")).await;
    match &failed {
        Err(StoreError::Unavailable(reason)) => assert!(reason.contains("refused by test"), "reason: {reason}"),
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(store.ready().await, "a refused batch does not make the store unready");

    assert_eq!(store.append(request(&c, "2")).await.expect("append").publication.offset, 2, "no gap");
    assert_eq!(sink.seen.lock().iter().map(|p| p.offset).collect::<Vec<_>>(), vec![1, 2]);
    let page = store.read(&c, HistoryQuery::After { offset: 0, limit: 10 }).await.expect("read");
    let history: Vec<_> = page.publications.iter().map(|p| (p.offset, p.data.clone())).collect();
    assert_eq!(history, vec![(1, Bytes::from("1")), (2, Bytes::from("2"))]);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn close_flushes_what_was_queued_and_then_refuses() {
    let Some(database) = support::fresh_database().await else { return };
    let store = Arc::new(connect(&database.url).await);
    let c = channel("match:closing");
    let mut publishers = Vec::new();
    for n in 0..50 {
        let store = store.clone();
        let c = c.clone();
        publishers.push(tokio::spawn(async move { store.append(request(&c, &n.to_string())).await }));
    }
    tokio::task::yield_now().await;
    store.close().await;
    let mut acknowledged = 0u64;
    for publisher in publishers {
        match publisher.await.expect("publisher") {
            Ok(_) => acknowledged += 1,
            Err(error) => assert_eq!(error, StoreError::Closed),
        }
    }
    assert!(matches!(store.read(&c, HistoryQuery::Latest { limit: 1 }).await, Err(StoreError::Closed)));
    assert!(matches!(store.sweep_expired(0).await, Err(StoreError::Closed)));
    assert!(matches!(store.position(&c).await, Err(StoreError::Closed)));

    let reconnected = connect(&database.url).await;
    assert_eq!(reconnected.position(&c).await.expect("position").offset, acknowledged, "every ack was committed");
    reconnected.close().await;
}
