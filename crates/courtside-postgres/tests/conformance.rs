//! The shared `StreamStore` conformance suite, each check against a fresh, empty schema of a
//! database made for this test.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use courtside_core::conformance;
use courtside_core::store::StreamStore;
use courtside_postgres::PostgresStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_conforms() {
    let Some(database) = support::fresh_database().await else { return };
    let database = Arc::new(database);
    let opened = Arc::new(AtomicUsize::new(0));
    conformance::stream_store(|sink| {
        let (database, opened) = (database.clone(), opened.clone());
        async move {
            let schema = format!("check_{}", opened.fetch_add(1, Ordering::Relaxed));
            let url = database.fresh_schema_url(&schema).await;
            Arc::new(PostgresStore::connect(&url, sink).await.expect("connect store")) as Arc<dyn StreamStore>
        }
    })
    .await;
    assert_eq!(opened.load(Ordering::Relaxed), conformance::store::STORE_CHECKS, "every conformance check opened its own store");
}

#[tokio::test]
async fn schemas_of_one_database_are_separate_stores() {
    let Some(database) = support::fresh_database().await else { return };
    let c = courtside_core::ChannelName::parse("match:1").expect("channel");
    let sink = Arc::new(courtside_core::store::NoSink);
    let first = PostgresStore::connect(&database.fresh_schema_url("first").await, sink.clone()).await.expect("first");
    let second = PostgresStore::connect(&database.fresh_schema_url("second").await, sink).await.expect("second");
    first.append(conformance::request(&c, "1")).await.expect("append");
    assert_eq!(first.position(&c).await.expect("position").offset, 1);
    assert_eq!(second.position(&c).await.expect("position").offset, 0, "the other schema has its own tables");
    first.close().await;
    second.close().await;
}
