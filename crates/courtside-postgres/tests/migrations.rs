//! Schema migrations: idempotent, safe when several nodes start at once, and refusing a schema
//! newer than the build.

mod support;

use std::sync::Arc;

use courtside_core::store::NoSink;
use courtside_postgres::{PostgresError, PostgresStore, SCHEMA_VERSION};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nodes_starting_together_migrate_once() {
    let Some(database) = support::fresh_database().await else { return };
    let mut starting = Vec::new();
    for _ in 0..6 {
        let url = database.url.clone();
        starting.push(tokio::spawn(async move { courtside_postgres::migrate(&url).await }));
    }
    for _ in 0..3 {
        let url = database.url.clone();
        starting.push(tokio::spawn(async move {
            let store = PostgresStore::connect(&url, Arc::new(NoSink)).await?;
            courtside_core::store::StreamStore::close(&store).await;
            Ok::<(), PostgresError>(())
        }));
    }
    for node in starting {
        node.await.expect("task").expect("migrate");
    }
    courtside_postgres::migrate(&database.url).await.expect("migrating again is a no-op");
    let versions: Vec<i64> = database
        .connect()
        .await
        .query("SELECT version FROM courtside_schema_version ORDER BY version", &[])
        .await
        .expect("versions")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(versions, (1..=SCHEMA_VERSION).collect::<Vec<_>>(), "each migration applied once");
}

#[tokio::test]
async fn a_schema_newer_than_the_build_is_refused() {
    let Some(database) = support::fresh_database().await else { return };
    courtside_postgres::migrate(&database.url).await.expect("migrate");
    database
        .connect()
        .await
        .execute("INSERT INTO courtside_schema_version (version) VALUES ($1)", &[&(SCHEMA_VERSION + 1)])
        .await
        .expect("bump version");
    match PostgresStore::connect(&database.url, Arc::new(NoSink)).await {
        Err(PostgresError::SchemaTooNew { found, supported }) => {
            assert_eq!((found, supported), (SCHEMA_VERSION + 1, SCHEMA_VERSION));
        }
        Err(other) => panic!("expected SchemaTooNew, got {other}"),
        Ok(_) => panic!("expected SchemaTooNew, the store connected"),
    }
}

#[tokio::test]
async fn a_version_1_database_gains_the_presence_table_and_migrations_are_idempotent() {
    let Some(database) = support::fresh_database().await else { return };
    courtside_postgres::migrate(&database.url).await.expect("migrate");
    let admin = database.connect().await;
    // As a database last migrated by a build that knew only version 1.
    admin
        .batch_execute("DROP TABLE courtside_presence; DELETE FROM courtside_schema_version WHERE version > 1")
        .await
        .expect("back to version 1");
    courtside_postgres::migrate(&database.url).await.expect("migrate from version 1");
    let presence: i64 = admin
        .query_one("SELECT count(*) FROM pg_class WHERE relname = 'courtside_presence' AND relpersistence = 'u'", &[])
        .await
        .expect("pg_class")
        .get(0);
    assert_eq!(presence, 1, "the presence table exists, unlogged");
    // A version lost from the log (its objects still there) is applied again without error.
    admin.batch_execute("DELETE FROM courtside_schema_version WHERE version = 2").await.expect("forget version 2");
    courtside_postgres::migrate(&database.url).await.expect("migrations are idempotent");
    let versions: i64 =
        admin.query_one("SELECT max(version) FROM courtside_schema_version", &[]).await.expect("version").get(0);
    assert_eq!(versions, SCHEMA_VERSION);
}

#[tokio::test]
async fn a_version_2_database_gains_event_names_and_keeps_its_rows() {
    let Some(database) = support::fresh_database().await else { return };
    courtside_postgres::migrate(&database.url).await.expect("migrate");
    let admin = database.connect().await;
    // As a database last migrated by a build that knew only version 2, with a publication in it.
    admin
        .batch_execute(
            "ALTER TABLE courtside_publications DROP COLUMN event;
             ALTER TABLE courtside_keyed_state DROP COLUMN event;
             ALTER TABLE courtside_idempotency DROP COLUMN event;
             DELETE FROM courtside_schema_version WHERE version > 2;
             INSERT INTO courtside_channels VALUES ('match:1', 'e1', 1, 1, 0);
             INSERT INTO courtside_publications VALUES ('match:1', 1, 'score', false, '\\x7b7d', 5);",
        )
        .await
        .expect("back to version 2");
    let store = PostgresStore::connect(&database.url, Arc::new(NoSink)).await.expect("connect migrates");
    let channel = courtside_core::ChannelName::parse("match:1").expect("channel");
    let query = courtside_core::store::HistoryQuery::After { offset: 0, limit: 10 };
    let page = courtside_core::store::StreamStore::read(&store, &channel, query).await.expect("read");
    let kept: Vec<(u64, &[u8], Option<String>)> =
        page.publications.iter().map(|p| (p.offset, &p.data[..], p.event.clone())).collect();
    assert_eq!(kept, [(1, &b"{}"[..], None)], "the old row is kept, without an event name");
    courtside_core::store::StreamStore::close(&store).await;
}
