//! PostgreSQL over TLS: a PostgreSQL instance of the test's own (`ssl = on`, TCP connections
//! over TLS only) with a certificate from a CA made at run time. The store and the broker's
//! listening connection work with `sslmode=require`, `verify-ca` and `verify-full` (the latter
//! two trusting that CA through `sslrootcert`); a URL without TLS, and `verify-full` trusting
//! another CA or for a name the certificate does not carry, get no connection.

use std::sync::Arc;
use std::time::Duration;

use courtside_core::broker::Broker;
use courtside_core::conformance;
use courtside_core::hub::{Hub, Outbound, outbox};
use courtside_core::sequencer::Sequencer;
use courtside_core::store::{NoSink, StreamStore};
use courtside_core::stream::Epoch;
use courtside_core::ChannelName;
use courtside_postgres::{PostgresBroker, PostgresStore};
use courtside_testkit::tls::TestCa;
use courtside_testkit::tls_services::TlsPostgres;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_broker_connect_over_tls_as_sslmode_says() {
    let ca = TestCa::new("courtside postgres test CA");
    let dir = std::env::temp_dir().join(format!("courtside-pg-tls-{}-{:x}", std::process::id(), rand::random::<u32>()));
    let files = ca.issue("postgres-server", &[]).write(&dir.join("issued"), "server");
    let ca_file = ca.write_cert(&dir.join("issued/ca.pem"));
    let Some(postgres) = TlsPostgres::start_or_skip(&files, &dir.join("instance")) else { return };
    let root = format!("sslrootcert={}", ca_file.display());

    for parameters in ["sslmode=require".to_string(), format!("sslmode=verify-ca&{root}"), format!("sslmode=verify-full&{root}")] {
        let url = postgres.url(&parameters);
        let store = PostgresStore::connect(&url, Arc::new(NoSink)).await.unwrap_or_else(|error| panic!("{parameters}: {error}"));
        let channel = ChannelName::parse(&format!("match:tls-{}", Epoch::new_random())).expect("channel");
        store.append(conformance::request(&channel, "1")).await.expect("append over TLS");
        assert_eq!(store.position(&channel).await.expect("position").offset, 1);
        store.close().await;
    }

    // The broker's LISTEN connection and its publisher, over TLS.
    let url = postgres.url(&format!("sslmode=verify-full&{root}"));
    let hub = Arc::new(Hub::new());
    let sequencer = Sequencer::new(hub.clone());
    let broker = PostgresBroker::connect(&url, "listener", sequencer.clone()).await.expect("broker connects over TLS");
    let store: Arc<dyn StreamStore> = Arc::new(PostgresStore::connect(&url, Arc::new(NoSink)).await.expect("store"));
    sequencer.attach_store(store.clone());
    let channel = ChannelName::parse(&format!("match:tls-{}", Epoch::new_random())).expect("channel");
    let (subscriber, mut inbox) = outbox(100);
    hub.subscribe(&channel, 1, subscriber);
    broker.follow(&channel).await.expect("follow over TLS");
    sequencer.observe(&channel, &store.position(&channel).await.expect("position"));
    let publisher_sequencer = Sequencer::new(Arc::new(Hub::new()));
    let publisher = PostgresBroker::connect(&url, "publisher", publisher_sequencer).await.expect("publisher connects over TLS");
    let publishing_store = PostgresStore::connect(&url, publisher.clone()).await.expect("store");
    publishing_store.append(conformance::request(&channel, "1")).await.expect("append");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(Outbound::Publication(delivery)) = inbox.try_recv() {
            assert_eq!(delivery.publication.offset, 1);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no notification over the TLS connection");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // No TLS, someone else's CA, a name not in the certificate: no connection.
    let stranger = TestCa::new("another CA");
    let stranger_file = stranger.write_cert(&dir.join("issued/stranger.pem"));
    let localhost = postgres.url("").replace("127.0.0.1", "localhost");
    for (url, why) in [
        (postgres.url(""), "the server accepts TCP over TLS only"),
        (postgres.url("sslmode=disable"), "the server accepts TCP over TLS only"),
        (postgres.url(&format!("sslmode=verify-full&sslrootcert={}", stranger_file.display())), "another CA"),
        (postgres.url(&format!("sslmode=verify-ca&sslrootcert={}", stranger_file.display())), "another CA"),
    ] {
        assert!(PostgresStore::connect(&url, Arc::new(NoSink)).await.is_err(), "{why}: {url} connected");
    }
    // The certificate names localhost and 127.0.0.1, not `db.invalid`: reached under that name
    // (hostaddr), verify-full refuses and verify-ca (names unchecked) connects.
    let url = format!("{localhost}?sslmode=verify-full&{root}");
    PostgresStore::connect(&url, Arc::new(NoSink)).await.expect("localhost is named in the certificate").close().await;
    let elsewhere = format!("postgres://postgres@db.invalid:{}/postgres?hostaddr=127.0.0.1", postgres.port);
    let refused = PostgresStore::connect(&format!("{elsewhere}&sslmode=verify-full&{root}"), Arc::new(NoSink)).await;
    assert!(refused.is_err(), "verify-full connected to a host its certificate does not name");
    let accepted = PostgresStore::connect(&format!("{elsewhere}&sslmode=verify-ca&{root}"), Arc::new(NoSink)).await;
    accepted.expect("verify-ca does not check names").close().await;
}
