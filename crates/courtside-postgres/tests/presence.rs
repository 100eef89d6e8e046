//! PostgreSQL presence against a real server, each test in a database of its own: the core
//! conformance suite with two nodes on one backend, a dead node's clients expiring within the
//! TTL, and rows written again after they vanished.

mod support;

use std::sync::Arc;
use std::time::Duration;

use courtside_core::channel::ChannelName;
use courtside_core::conformance;
use courtside_core::presence::{ClientInfo, PresenceStats, PresenceStore};
use courtside_core::stream::Epoch;
use courtside_postgres::{PostgresError, PostgresPresence};

fn fresh_channel() -> ChannelName {
    ChannelName::parse(&format!("match:presence-{}", Epoch::new_random())).expect("channel")
}

fn client(client: &str, user: &str) -> ClientInfo {
    ClientInfo::new(client, user)
}

/// Rows of `courtside_presence`, expired or not.
async fn rows(database: &support::TestDatabase) -> i64 {
    database
        .connect()
        .await
        .query_one("SELECT count(*) FROM courtside_presence", &[])
        .await
        .expect("count")
        .get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_presence_conforms_with_nodes_on_one_backend() {
    let Some(database) = support::fresh_database().await else { return };
    let url = database.url.clone();
    conformance::presence::presence(
        || {
            let url = url.clone();
            Box::pin(async move {
                PostgresPresence::connect(&url, Duration::from_secs(30)).await.expect("connect")
                    as Arc<dyn PresenceStore>
            })
        },
        true,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_nodes_clients_expire_within_the_ttl_while_live_ones_stay() {
    let Some(database) = support::fresh_database().await else { return };
    let ttl = Duration::from_secs(1);
    let channel = fresh_channel();
    let unlisted = fresh_channel();
    let alive = PostgresPresence::connect(&database.url, ttl).await.expect("connect");
    let dying = PostgresPresence::connect(&database.url, ttl).await.expect("connect");
    alive.join(&channel, client("a-1", "alice")).await;
    dying.join(&channel, client("d-1", "dave")).await;
    dying.join(&unlisted, client("d-1", "dave")).await;
    tokio::time::sleep(ttl * 2).await;
    assert_eq!(
        alive.list(&channel).await,
        vec![client("a-1", "alice"), client("d-1", "dave")],
        "refreshed entries outlive the TTL"
    );

    drop(dying);
    let died = tokio::time::Instant::now();
    while alive.list(&channel).await.len() > 1 {
        assert!(died.elapsed() < ttl + Duration::from_millis(300), "the dead node's client outlived the TTL");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(alive.list(&channel).await, vec![client("a-1", "alice")]);

    tokio::time::sleep(ttl * 2).await;
    assert_eq!(alive.stats(&channel).await, PresenceStats { clients: 1, users: 1 }, "the live node keeps its client");
    assert_eq!(rows(&database).await, 1, "the live node's refresher deleted the dead node's rows everywhere");
    assert_eq!(alive.database_errors(), 0);

    drop(alive);
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    let late = PostgresPresence::connect(&database.url, ttl).await.expect("connect");
    assert!(late.list(&channel).await.is_empty(), "nobody refreshes: everyone expired");
    assert_eq!(rows(&database).await, 0, "listing deleted the expired rows");
}

#[tokio::test]
async fn rows_lost_by_the_database_are_written_again_by_the_next_refresh() {
    let Some(database) = support::fresh_database().await else { return };
    let ttl = Duration::from_millis(900);
    let channel = fresh_channel();
    let node = PostgresPresence::connect(&database.url, ttl).await.expect("connect");
    node.join(&channel, client("c-1", "carol")).await;
    node.join(&channel, client("c-2", "")).await;
    node.leave(&channel, "c-2").await;

    // As after a crash, which empties the unlogged table.
    database.connect().await.batch_execute("TRUNCATE courtside_presence").await.expect("truncate");
    assert!(node.list(&channel).await.is_empty());

    tokio::time::sleep(ttl / 3 + Duration::from_millis(200)).await;
    assert_eq!(
        node.list(&channel).await,
        vec![client("c-1", "carol")],
        "joined clients return; the one that left does not"
    );
    assert_eq!(node.stats(&channel).await, PresenceStats { clients: 1, users: 1 });
}

#[tokio::test]
async fn joining_again_updates_the_user_and_clients_are_ordered_bytewise() {
    let Some(database) = support::fresh_database().await else { return };
    let channel = fresh_channel();
    let node = PostgresPresence::connect(&database.url, Duration::from_secs(30)).await.expect("connect");
    for id in ["b", "B", "a", "_", "ä"] {
        node.join(&channel, client(id, "")).await;
    }
    node.join(&channel, client("a", "ann")).await;
    let listed: Vec<ClientInfo> = node.list(&channel).await;
    let ids: Vec<&str> = listed.iter().map(|c| c.client.as_str()).collect();
    assert_eq!(ids, vec!["B", "_", "a", "b", "ä"]);
    assert_eq!(listed[2], client("a", "ann"));
    assert_eq!(node.stats(&channel).await, PresenceStats { clients: 5, users: 1 });
}

#[tokio::test]
async fn a_ttl_too_short_to_refresh_is_refused() {
    let result = PostgresPresence::connect("postgres://postgres@127.0.0.1:1/unused", Duration::from_millis(10)).await;
    assert!(matches!(result, Err(PostgresError::TtlTooShort { .. })));
}
