//! What survives a close and reopen of the same file, and what a failed write leaves behind.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use courtside_core::ChannelName;
use courtside_core::conformance::{RecordingSink, request};
use courtside_core::store::{HistoryQuery, NoSink, StoreError, StreamStore};
use courtside_sqlite::SqliteStore;

fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name).expect("valid channel")
}

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, Arc::new(NoSink)).expect("open store")
}

#[tokio::test]
async fn history_state_and_epoch_survive_reopening() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("nested").join("courtside.db");
    let c = channel("match:durable");

    let store = open(&path);
    let epoch = store.position(&c).await.expect("position").epoch;
    for (key, data) in [("a", "1"), ("b", "2"), ("a", "3")] {
        let mut r = request(&c, data);
        r.key = Some(key.into());
        r.idempotency_key = Some(format!("op-{data}"));
        store.append(r).await.expect("append");
    }
    store.close().await;
    assert!(!store.ready().await);

    let store = open(&path);
    assert!(store.ready().await);
    let position = store.position(&c).await.expect("position");
    assert_eq!((position.epoch.clone(), position.offset), (epoch.clone(), 3), "same epoch and top after reopen");

    let mut retry = request(&c, "2");
    retry.key = Some("b".into());
    retry.idempotency_key = Some("op-2".into());
    let retried = store.append(retry).await.expect("retry");
    assert!(retried.duplicate, "idempotency keys survive a reopen");
    assert_eq!(retried.publication.offset, 2);

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
async fn trimmed_history_stays_trimmed_and_reads_of_unknown_channels_create_them() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("courtside.db");
    let c = channel("match:trim");

    let store = open(&path);
    for n in 0..10 {
        let mut r = request(&c, &n.to_string());
        r.retention.history_size = 3;
        store.append(r).await.expect("append");
    }
    let fresh = channel("match:never-written");
    let empty = store.read(&fresh, HistoryQuery::Latest { limit: 10 }).await.expect("read");
    assert!(empty.publications.is_empty());
    assert_eq!((empty.top.offset, empty.earliest_offset), (0, 1));
    store.close().await;

    let store = open(&path);
    let page = store.read(&c, HistoryQuery::Latest { limit: 100 }).await.expect("read");
    assert_eq!(page.publications.iter().map(|p| p.offset).collect::<Vec<_>>(), vec![8, 9, 10]);
    assert_eq!(page.earliest_offset, 8);
    assert_eq!(store.position(&fresh).await.expect("position").epoch, empty.top.epoch, "a read created the channel");
    store.close().await;
}

#[tokio::test]
async fn a_failed_transaction_acknowledges_nothing_and_leaves_no_gap() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("courtside.db");
    let sink = Arc::new(RecordingSink::default());
    let store = SqliteStore::open(&path, sink.clone()).expect("open store");
    let c = channel("match:fail");
    assert_eq!(store.append(request(&c, "1")).await.expect("append").publication.offset, 1);

    // A trigger on the publications table makes any write of the payload `"boom"` fail.
    let saboteur = rusqlite::Connection::open(&path).expect("second connection");
    saboteur
        .execute_batch(
            "CREATE TRIGGER refuse_boom BEFORE INSERT ON publications WHEN NEW.data = CAST('\"boom\"' AS BLOB) \
             BEGIN SELECT RAISE(ABORT, 'refused by test'); END;",
        )
        .expect("create trigger");
    drop(saboteur);

    let failed = store.append(request(&c, "\"boom\"")).await;
    assert!(matches!(failed, Err(StoreError::Unavailable(_))), "got {failed:?}");
    assert!(store.ready().await, "a failed batch does not stop the store");

    assert_eq!(store.append(request(&c, "2")).await.expect("append").publication.offset, 2, "no gap");
    assert_eq!(sink.seen.lock().iter().map(|p| p.offset).collect::<Vec<_>>(), vec![1, 2]);
    let page = store.read(&c, HistoryQuery::After { offset: 0, limit: 10 }).await.expect("read");
    let history: Vec<_> = page.publications.iter().map(|p| (p.offset, p.data.clone())).collect();
    assert_eq!(history, vec![(1, Bytes::from("1")), (2, Bytes::from("2"))]);
    store.close().await;
}

#[tokio::test]
async fn close_flushes_what_was_queued_and_then_refuses() {
    let directory = tempfile::tempdir().expect("temp dir");
    let path = directory.path().join("courtside.db");
    let store = Arc::new(open(&path));
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

    let reopened = open(&path);
    assert_eq!(reopened.position(&c).await.expect("position").offset, acknowledged, "every ack is on disk");
    reopened.close().await;
}

#[tokio::test]
async fn a_second_store_on_the_same_file_is_refused_until_the_first_closes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("courtside.db");
    let first = SqliteStore::open(&path, Arc::new(courtside_core::store::NoSink)).expect("first opens");
    let second = SqliteStore::open(&path, Arc::new(courtside_core::store::NoSink));
    assert!(matches!(second, Err(courtside_sqlite::SqliteError::InUse { .. })), "two writers on one file would share offsets");
    first.close().await;
    let third = SqliteStore::open(&path, Arc::new(courtside_core::store::NoSink)).expect("opens once the first closed");
    third.close().await;
}
