//! An unreachable database: connecting fails fast, appends fail fast with `Unavailable` (never
//! acknowledged; within 5 s, also when queued behind an unanswered batch), `ready()` is false, and the store recovers by itself once the database is back.
//!
//! The outage is staged with a TCP proxy in front of PostgreSQL that the test can stop (connections
//! refused), freeze (connections open but silent: the worst case) and start again.

mod support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use courtside_core::ChannelName;
use courtside_core::conformance::{RecordingSink, request};
use courtside_core::store::{NoSink, StoreError, StreamStore};
use courtside_postgres::{PostgresError, PostgresStore};
use parking_lot::Mutex;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::task::AbortHandle;

/// What "fails fast" means here: well under the time a request would hang without timeouts.
const FAST: Duration = Duration::from_secs(8);

fn channel(name: &str) -> ChannelName {
    ChannelName::parse(name).expect("valid channel")
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_fast() {
    // Needs no PostgreSQL at all: nothing listens on port 1.
    let url = "postgres://postgres@127.0.0.1:1/courtside";
    let started = Instant::now();
    let connected = PostgresStore::connect(url, Arc::new(NoSink)).await;
    assert!(matches!(connected, Err(PostgresError::Connect(_))), "got {:?}", connected.err());
    assert!(matches!(courtside_postgres::migrate(url).await, Err(PostgresError::Connect(_))));
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn connecting_to_a_silent_server_times_out() {
    // A listener that accepts and never answers, like a host whose database hung.
    let silent = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("postgres://postgres@{}/courtside", silent.local_addr().expect("address"));
    let held = tokio::spawn(async move {
        let mut connections = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            connections.push(connection);
        }
    });
    let started = Instant::now();
    let connected = PostgresStore::connect(&url, Arc::new(NoSink)).await;
    assert!(matches!(connected, Err(PostgresError::ConnectTimedOut(_))), "got {:?}", connected.err());
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
    held.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_database_fails_appends_fast_and_the_store_recovers() {
    let Some(database) = support::fresh_database().await else { return };
    let proxy = Proxy::start(upstream_address(), 0).await;
    let sink = Arc::new(RecordingSink::default());
    let store = PostgresStore::connect(&proxy.url_for(&database), sink.clone()).await.expect("connect via proxy");
    let c = channel("match:outage");
    assert_eq!(store.append(request(&c, "1")).await.expect("append").publication.offset, 1);
    assert!(store.ready().await);

    proxy.stop();
    let started = Instant::now();
    let failed = store.append(request(&c, "\"lost?\"")).await;
    eprintln!("append during the outage, after {:?}: {failed:?}", started.elapsed());
    assert!(matches!(failed, Err(StoreError::Unavailable(_))), "got {failed:?}");
    assert!(matches!(store.position(&c).await, Err(StoreError::Unavailable(_))));
    assert!(!store.ready().await, "not ready while the database is unreachable");
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());

    let proxy = Proxy::start(upstream_address(), proxy.port).await;
    let recovered = append_until_it_succeeds(&store, &c, "2").await;
    assert_eq!(recovered, 2, "the failed append consumed no offset");
    assert!(eventually_ready(&store).await, "ready again once the database is back");
    assert_eq!(sink.seen.lock().iter().map(|p| p.offset).collect::<Vec<_>>(), vec![1, 2]);
    store.close().await;
    proxy.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_database_fails_appends_within_seconds_and_the_store_recovers() {
    let Some(database) = support::fresh_database().await else { return };
    let proxy = Proxy::start(upstream_address(), 0).await;
    let sink = Arc::new(RecordingSink::default());
    let store = PostgresStore::connect(&proxy.url_for(&database), sink.clone()).await.expect("connect via proxy");
    let c = channel("match:silence");
    assert_eq!(store.append(request(&c, "1")).await.expect("append").publication.offset, 1);

    proxy.freeze(true);
    let started = Instant::now();
    let failed = store.append(request(&c, "\"lost?\"")).await;
    eprintln!("append during the outage, after {:?}: {failed:?}", started.elapsed());
    assert!(matches!(failed, Err(StoreError::Unavailable(_))), "got {failed:?}");
    assert!(started.elapsed() < FAST, "took {:?}", started.elapsed());
    assert!(!store.ready().await, "not ready while the database does not answer");

    proxy.freeze(false);
    let recovered = append_until_it_succeeds(&store, &c, "2").await;
    assert_eq!(recovered, 2, "the failed append consumed no offset");
    assert!(eventually_ready(&store).await);
    assert_eq!(sink.seen.lock().iter().map(|p| p.offset).collect::<Vec<_>>(), vec![1, 2]);
    store.close().await;
    proxy.stop();
}

/// The documented bound: an append is answered within 5 s of reaching the store, also when it
/// queued up behind a batch the database never answered (it must not wait for a batch of its own).
const APPEND_ANSWER_MAX: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_queued_behind_an_unanswered_batch_fail_within_the_bound() {
    let Some(database) = support::fresh_database().await else { return };
    let proxy = Proxy::start(upstream_address(), 0).await;
    let store = Arc::new(PostgresStore::connect(&proxy.url_for(&database), Arc::new(NoSink)).await.expect("connect"));
    let c = channel("match:queued");
    assert_eq!(store.append(request(&c, "1")).await.expect("append").publication.offset, 1);

    proxy.freeze(true);
    let first = {
        let (store, c) = (store.clone(), c.clone());
        tokio::spawn(async move {
            let started = Instant::now();
            (store.append(request(&c, "\"first\"")).await, started.elapsed())
        })
    };
    // Two seconds into the first batch, more appends queue up behind it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let queued: Vec<_> = (0..3)
        .map(|i| {
            let (store, c) = (store.clone(), c.clone());
            tokio::spawn(async move {
                let started = Instant::now();
                (store.append(request(&c, &i.to_string())).await, started.elapsed())
            })
        })
        .collect();
    let (answer, waited) = first.await.expect("first append");
    assert!(matches!(answer, Err(StoreError::Unavailable(_))), "got {answer:?}");
    assert!(waited < APPEND_ANSWER_MAX + Duration::from_millis(500), "the first append waited {waited:?}");
    for append in queued {
        let (answer, waited) = append.await.expect("queued append");
        eprintln!("queued append answered after {waited:?}: {answer:?}");
        assert!(matches!(answer, Err(StoreError::Unavailable(_))), "got {answer:?}");
        // It queued 2 s into a 5 s batch: answered when that batch gave up, ~3 s later, not after
        // a batch of its own.
        assert!(waited < APPEND_ANSWER_MAX - Duration::from_millis(500), "a queued append waited {waited:?}");
    }

    proxy.freeze(false);
    assert_eq!(append_until_it_succeeds(&store, &c, "2").await, 2, "no failed append consumed an offset");
    store.close().await;
    proxy.stop();
}

/// Retries an append for a while (the pool reconnects on its own) and returns its offset.
async fn append_until_it_succeeds(store: &PostgresStore, c: &ChannelName, data: &str) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match store.append(request(c, data)).await {
            Ok(appended) => return appended.publication.offset,
            Err(error) if Instant::now() < deadline => {
                eprintln!("still recovering: {error}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("the store did not recover: {error}"),
        }
    }
}

async fn eventually_ready(store: &PostgresStore) -> bool {
    for _ in 0..50 {
        if store.ready().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The PostgreSQL server the test databases live on.
fn upstream_address() -> SocketAddr {
    let config: tokio_postgres::Config = support::admin_url().parse().expect("admin url");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) if host != "localhost" => host.clone(),
        _ => "127.0.0.1".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}").parse().expect("a numeric host in COURTSIDE_TEST_POSTGRES_URL")
}

/// A TCP proxy to PostgreSQL on a loopback port, which the test can stop, freeze and restart.
struct Proxy {
    port: u16,
    /// The accept loop and every forwarding task, so `stop` can end them all.
    tasks: Arc<Mutex<Vec<AbortHandle>>>,
    frozen: watch::Sender<bool>,
}

impl Proxy {
    /// Listens on `port` (0: any free port) and forwards each connection to `upstream`.
    async fn start(upstream: SocketAddr, port: u16) -> Proxy {
        let socket = TcpSocket::new_v4().expect("socket");
        socket.set_reuseaddr(true).expect("reuseaddr");
        socket.bind(SocketAddr::from(([127, 0, 0, 1], port))).expect("bind proxy");
        let listener = socket.listen(64).expect("listen");
        let port = listener.local_addr().expect("address").port();
        let tasks: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (frozen, watching) = watch::channel(false);
        let forwarding = tasks.clone();
        let accepting = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let watching = watching.clone();
                let task = tokio::spawn(forward(client, upstream, watching));
                forwarding.lock().push(task.abort_handle());
            }
        });
        tasks.lock().push(accepting.abort_handle());
        Proxy { port, tasks, frozen }
    }

    /// A store URL for `database` through this proxy.
    fn url_for(&self, database: &support::TestDatabase) -> String {
        let config: tokio_postgres::Config = database.url.parse().expect("database url");
        let user = config.get_user().unwrap_or("postgres");
        let mut url = format!("host=127.0.0.1 port={} user={user} dbname={}", self.port, database.name);
        if let Some(password) = config.get_password() {
            url.push_str(&format!(" password='{}'", String::from_utf8_lossy(password)));
        }
        url
    }

    /// Frozen: connections stay open but nothing is forwarded, and new ones are never answered.
    fn freeze(&self, frozen: bool) {
        self.frozen.send_replace(frozen);
    }

    /// Closes the listener and every connection: the database refuses connections until restarted.
    fn stop(&self) {
        for task in self.tasks.lock().drain(..) {
            task.abort();
        }
    }
}

/// Forwards one connection until either side closes, or holds it silent while frozen.
async fn forward(mut client: TcpStream, upstream: SocketAddr, mut frozen: watch::Receiver<bool>) {
    if *frozen.borrow() {
        // Accepted but never answered; the socket is held until the task is aborted.
        let _thawed = frozen.wait_for(|frozen| !*frozen).await.is_ok();
        std::future::pending::<()>().await;
    }
    let Ok(mut server) = TcpStream::connect(upstream).await else { return };
    tokio::select! {
        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
        _ = async { frozen.wait_for(|frozen| *frozen).await.is_ok() } => std::future::pending::<()>().await,
    }
}
