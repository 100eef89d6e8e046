//! The cluster, black box: real `courtside serve` processes on loopback sharing this machine's
//! PostgreSQL (a fresh database per run) and a private Redis (a unique key prefix per run).
//!
//! - `cluster_delivers_every_acknowledged_publication_in_order_once_despite_faults`: three nodes,
//!   subscribers spread over all three, publishers on all three; one node is killed with SIGKILL
//!   and later restarted, the Redis server is killed and started again (empty), another node is
//!   stopped with SIGTERM (clients told 3000) and restarted, all while publishing. Subscribers
//!   resume with `since` on any disconnect (and drop their connection now and then), on another
//!   node when theirs is gone; publishers retry unanswered publishes (and some they abandon on
//!   purpose right after sending) with the same idempotency key on another node. At the end every
//!   subscriber holds every acknowledged publication, in order, exactly once, and the store holds
//!   exactly those.
//! - `postgres_outage_fails_publishes_fast_and_the_node_recovers`: a node whose database is
//!   behind a TCP proxy; stopping the proxy makes publishes fail fast with 111 / HTTP 503
//!   `unavailable`, never acknowledged, `/ready` turns 503; once the proxy is back the node
//!   recovers by itself and nothing acknowledged was lost, nothing unacknowledged was stored.
//!   The same for a silent database (connections open, nothing answers), and for a lost answer
//!   to `COMMIT`, whose publish fails yet may be stored: its retry with the same idempotency key
//!   lands it exactly once.
//! - `a_publication_whose_commit_answer_was_lost_still_reaches_live_subscribers`: a publish whose
//!   COMMIT answer was lost fails with 111 yet may be stored; live subscribers still get it
//!   (the node checks the channel against the store once the store answers again).
//!
//! Choices are seeded (`COURTSIDE_TEST_SEED`, printed). Without PostgreSQL or `redis-server` a
//! test prints `SKIPPED: …` and passes, except under `CI=true`, where it fails.

mod support;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use support::{
    PrivateRedis, Proxy, Incoming, ServeProcess, TestDatabase, WsClient, fresh_database, http_get, metric_value, mint_token,
    postgres_address, tail, temp_dir, write_secret,
};

const NODES: usize = 3;
const CHANNELS: usize = 3;
const SUBSCRIBERS_PER_NODE: usize = 3;
const PUBLISHERS: usize = 3;
const PUBLICATIONS_PER_PUBLISHER: usize = 300;
const PUBLISH_INTERVAL: Duration = Duration::from_millis(25);
/// One publish in this many is sent and then abandoned (the connection dropped before the
/// reply, as if the network failed): it is retried on another node with the same key.
const ABANDON_ONE_IN: u32 = 20;
/// How long a publisher keeps retrying one publication before it records a failure.
const PUBLISH_GIVE_UP: Duration = Duration::from_secs(40);
/// How long subscribers may take to hold everything once publishing stopped.
const CATCH_UP_LIMIT: Duration = Duration::from_secs(30);
/// "Fails fast": well under the time a request would hang without timeouts.
const FAST: Duration = Duration::from_secs(8);

fn seed() -> u64 {
    std::env::var("COURTSIDE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().random())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

// =============================================================================================
// Subscribers

/// Everything one subscriber saw.
#[derive(Default)]
struct SubscriberLog {
    name: String,
    /// Per channel: the epoch of the first subscription, once it succeeded.
    epochs: Vec<Option<String>>,
    /// Per channel: the last offset applied.
    positions: Vec<u64>,
    /// Per channel: every publication received (replayed or live), in arrival order.
    received: Vec<Vec<(u64, Value)>>,
    /// Protocol promises seen broken, with context.
    violations: Vec<String>,
    /// Successful (re)subscriptions of all channels, by node.
    sessions_by_node: BTreeMap<usize, u32>,
    /// How each connection ended.
    ends: Vec<String>,
    /// Subscribe commands refused with 111 (Redis or the store down).
    unavailable: u32,
    /// Connections closed by a graceful shutdown (push and close frame 3000).
    shutdown_notices: u32,
}

impl SubscriberLog {
    fn new(name: String, channels: usize) -> Self {
        Self {
            name,
            epochs: vec![None; channels],
            positions: vec![0; channels],
            received: vec![Vec::new(); channels],
            ..Default::default()
        }
    }

    fn initially_subscribed(&self) -> bool {
        self.epochs.iter().all(Option::is_some)
    }

    fn violation(&mut self, text: String) {
        if self.violations.len() < 50 {
            self.violations.push(text);
        }
    }

    /// Records one publication (from a replay or a push) on channel `c`.
    fn apply(&mut self, c: usize, node: usize, how: &str, publication: &Value) {
        let offset = publication["offset"].as_u64().unwrap_or(0);
        let epoch = publication["epoch"].as_str().unwrap_or_default();
        if self.epochs[c].as_deref() != Some(epoch) {
            let expected = self.epochs[c].clone();
            self.violation(format!("{how} on node {node}, channel {c}: epoch {epoch:?}, expected {expected:?}"));
        }
        let position = self.positions[c];
        if offset != position + 1 {
            self.violation(format!("{how} on node {node}, channel {c}: offset {offset} after position {position}"));
        }
        self.received[c].push((offset, publication["data"].clone()));
        self.positions[c] = position.max(offset);
    }
}

/// What every subscriber task needs.
struct SubscriberSetup {
    urls: Vec<String>,
    channels: Vec<String>,
    token: Option<String>,
    stop: Arc<AtomicBool>,
}

/// Why a connection of a subscriber ended (from its own point of view).
enum SessionEnd {
    Stop,
    /// The test's own, seeded, abrupt drop (a flaky network), to resume elsewhere.
    Dropped,
    Failed(String),
}

/// A WebSocket subscriber that follows every channel of `setup` and resumes with `since` after
/// any disconnect, on another node when its own cannot be reached. Drops its connection on
/// purpose after receiving `drop_after` publications in total (each entry once).
async fn run_subscriber(
    setup: Arc<SubscriberSetup>,
    log: Arc<Mutex<SubscriberLog>>,
    home: usize,
    mut drop_after: Vec<usize>,
    seed: u64,
) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut node = home;
    let mut backoff = Duration::from_millis(50);
    drop_after.sort_unstable();
    drop_after.reverse();
    let other_node = |node: usize, rng: &mut StdRng| {
        let n = setup.urls.len();
        if n == 1 { 0 } else { (node + 1 + rng.random_range(0..n - 1)) % n }
    };
    while !setup.stop.load(Ordering::SeqCst) {
        let end = subscriber_session(&setup, &log, node, &mut drop_after).await;
        match end {
            SessionEnd::Stop => break,
            SessionEnd::Dropped => {
                lock(&log).ends.push(format!("node {node}: dropped on purpose"));
                node = rng.random_range(0..setup.urls.len());
                backoff = Duration::from_millis(50);
                tokio::time::sleep(Duration::from_millis(rng.random_range(10..60))).await;
            }
            SessionEnd::Failed(reason) => {
                lock(&log).ends.push(format!("node {node}: {reason}"));
                node = other_node(node, &mut rng);
                let jitter = Duration::from_millis(rng.random_range(0..50));
                tokio::time::sleep(backoff + jitter).await;
                backoff = (backoff * 2).min(Duration::from_millis(800));
            }
        }
    }
}

/// One connection: connect, subscribe every channel (with `since` once known), then apply
/// replies and pushes until the connection ends.
async fn subscriber_session(
    setup: &SubscriberSetup,
    log: &Mutex<SubscriberLog>,
    node: usize,
    drop_after: &mut Vec<usize>,
) -> SessionEnd {
    let mut client = match WsClient::open(&setup.urls[node], Duration::from_secs(2)).await {
        Ok(client) => client,
        Err(error) => return SessionEnd::Failed(format!("cannot open: {error}")),
    };
    let connect_id = client.next_id();
    let mut frames = vec![json!({ "id": connect_id, "connect": { "token": setup.token } })];
    let mut pending: HashMap<u64, usize> = HashMap::new();
    {
        let log = lock(log);
        for (c, channel) in setup.channels.iter().enumerate() {
            let id = client.next_id();
            pending.insert(id, c);
            let mut params = json!({ "channel": channel });
            if let Some(epoch) = &log.epochs[c] {
                params["since"] = json!({ "epoch": epoch, "offset": log.positions[c] });
            }
            frames.push(json!({ "id": id, "subscribe": params }));
        }
    }
    if let Err(error) = client.send(&frames).await {
        return SessionEnd::Failed(format!("cannot send: {error}"));
    }
    let mut subscribed = vec![false; setup.channels.len()];
    loop {
        if setup.stop.load(Ordering::SeqCst) && pending.is_empty() {
            return SessionEnd::Stop;
        }
        let frame = match client.read(Duration::from_millis(200)).await {
            Incoming::Idle => continue,
            Incoming::Ended(ended) => {
                let mut log = lock(log);
                if ended.push_code.or(ended.close_code.map(u64::from)).is_some_and(|code| code >= 3500) {
                    log.violation(format!("node {node} closed with a non-reconnect code: {ended}"));
                }
                // A reading client gets both the disconnect push and the close frame, same code.
                if (ended.push_code.is_some() || ended.close_code.is_some()) && ended.push_code != ended.close_code.map(u64::from) {
                    log.violation(format!("node {node}: the disconnect push and the close frame disagree: {ended}"));
                }
                if ended.close_code == Some(3000) {
                    log.shutdown_notices += 1;
                }
                return SessionEnd::Failed(format!("ended: {ended}"));
            }
            Incoming::Frame(frame) => frame,
        };
        let mut log = lock(log);
        if let Some(id) = frame["id"].as_u64() {
            if id == connect_id {
                if frame.get("result").is_none() {
                    log.violation(format!("node {node} refused connect: {frame}"));
                    return SessionEnd::Failed("connect refused".into());
                }
                continue;
            }
            let Some(c) = pending.remove(&id) else {
                log.violation(format!("node {node}: reply to an unknown id: {frame}"));
                continue;
            };
            if let Some(error) = frame.get("error") {
                if error["code"] == 111 {
                    log.unavailable += 1;
                } else {
                    log.violation(format!("node {node}: subscribe to channel {c} refused: {frame}"));
                }
                return SessionEnd::Failed(format!("subscribe refused: {error}"));
            }
            let result = &frame["result"];
            let epoch = result["epoch"].as_str().unwrap_or_default().to_string();
            let offset = result["offset"].as_u64().unwrap_or(u64::MAX);
            match log.epochs[c].clone() {
                None => {
                    // The first subscription happens before anything is published.
                    if offset != 0 || result.get("recovered").is_some() || epoch.is_empty() {
                        log.violation(format!("node {node}: first subscribe to channel {c}: {result}"));
                    }
                    log.epochs[c] = Some(epoch);
                    log.positions[c] = if offset == u64::MAX { 0 } else { offset };
                }
                Some(known) => {
                    let since = log.positions[c];
                    if result["recovered"] != true || epoch != known {
                        log.violation(format!("node {node}: resume of channel {c} from {known}:{since} not recovered: {result}"));
                    }
                    for publication in result["publications"].as_array().into_iter().flatten() {
                        log.apply(c, node, "replay", publication);
                    }
                    let position = log.positions[c];
                    if position != offset {
                        log.violation(format!(
                            "node {node}: after the replay of channel {c} the position is {position}, the result says {offset}"
                        ));
                        log.positions[c] = position.max(offset);
                    }
                }
            }
            subscribed[c] = true;
            if pending.is_empty() {
                *log.sessions_by_node.entry(node).or_default() += 1;
            }
            continue;
        }
        let push = &frame["push"];
        // A node that is stopped tells its connections first (the maintenance notice).
        if push.get("notice").is_some() {
            continue;
        }
        if push.get("disconnect").is_some() {
            continue; // the close frame (or the connection's end) follows
        }
        if let Some(publication) = push.get("pub") {
            let name = push["channel"].as_str().unwrap_or_default();
            let Some(c) = setup.channels.iter().position(|channel| channel == name) else {
                log.violation(format!("node {node}: a push for a channel not subscribed: {frame}"));
                continue;
            };
            if !subscribed[c] {
                log.violation(format!("node {node}: a push on channel {c} before its subscribe reply: {frame}"));
            }
            log.apply(c, node, "push", publication);
            let total: usize = log.received.iter().map(Vec::len).sum();
            if drop_after.last().is_some_and(|&at| total >= at) {
                drop_after.pop();
                return SessionEnd::Dropped; // the socket is dropped without a close frame
            }
            continue;
        }
        log.violation(format!("node {node}: unexpected frame {frame}"));
    }
}

// =============================================================================================
// Publishers

/// One acknowledged publication.
#[derive(Debug, Clone)]
struct Ack {
    channel: usize,
    key: String,
    data: Value,
    epoch: String,
    offset: u64,
    duplicate: bool,
    attempts: u32,
    node: usize,
}

#[derive(Default)]
struct PublisherLog {
    acks: Vec<Ack>,
    /// Attempts that got no answer (connection lost, timeout) and were retried.
    unanswered: u32,
    /// Attempts answered with 111 (unavailable) or 108 (rate limit) and retried.
    refused: u32,
    /// Publishes sent on a connection the publisher then dropped without reading the reply.
    abandoned: u32,
    failures: Vec<String>,
}

struct PublisherSetup {
    urls: Vec<String>,
    channels: Vec<String>,
    token: String,
    run: String,
}

/// Publishes `count` payloads (channel chosen by the seed), each with its own idempotency key,
/// retrying any unanswered or refused attempt with the same key on another node.
async fn run_publisher(setup: Arc<PublisherSetup>, log: Arc<Mutex<PublisherLog>>, me: usize, count: usize, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed);
    let n = setup.urls.len();
    let mut node = me % n;
    let mut client: Option<WsClient> = None;
    let mut ticks = tokio::time::interval(PUBLISH_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    for seq in 0..count {
        ticks.tick().await;
        let c = rng.random_range(0..setup.channels.len());
        let key = format!("{}-p{me}-{seq}", setup.run);
        let data = json!({ "publisher": me, "seq": seq, "key": key, "score": [seq % 25, (seq * 7) % 25] });
        let abandon = rng.random_ratio(1, ABANDON_ONE_IN);
        let started = Instant::now();
        let mut attempts = 0;
        loop {
            attempts += 1;
            if started.elapsed() > PUBLISH_GIVE_UP {
                lock(&log).failures.push(format!("{key}: not acknowledged within {PUBLISH_GIVE_UP:?}"));
                return;
            }
            if client.is_none() {
                match connect_publisher(&setup.urls[node], &setup.token).await {
                    Ok(connected) => client = Some(connected),
                    Err(_) => {
                        node = (node + 1 + rng.random_range(0..n - 1)) % n;
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                }
            }
            let Some(connected) = client.as_mut() else { continue };
            let params = json!({ "channel": setup.channels[c], "data": data, "idempotency_key": key });
            if abandon && attempts == 1 {
                let id = connected.next_id();
                let _ = connected.send(&[json!({ "id": id, "publish": params })]).await;
                lock(&log).abandoned += 1;
                client = None; // dropped: the reply, if any, is never read
                node = (node + 1 + rng.random_range(0..n - 1)) % n;
                continue;
            }
            match connected.request("publish", params, Duration::from_secs(6)).await {
                Ok(reply) if reply.get("result").is_some() => {
                    let result = &reply["result"];
                    lock(&log).acks.push(Ack {
                        channel: c,
                        key: key.clone(),
                        data: data.clone(),
                        epoch: result["epoch"].as_str().unwrap_or_default().to_string(),
                        offset: result["offset"].as_u64().unwrap_or(0),
                        duplicate: result["duplicate"] == true,
                        attempts,
                        node,
                    });
                    break;
                }
                Ok(reply) if reply["error"]["code"] == 111 || reply["error"]["code"] == 108 => {
                    lock(&log).refused += 1;
                    client = None;
                    node = (node + 1 + rng.random_range(0..n - 1)) % n;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Ok(reply) => {
                    lock(&log).failures.push(format!("{key}: refused for good on node {node}: {reply}"));
                    break;
                }
                Err(_) => {
                    lock(&log).unanswered += 1;
                    client = None;
                    node = (node + 1 + rng.random_range(0..n - 1)) % n;
                }
            }
        }
    }
}

/// One anonymous subscriber to `channel` on `url` that resumes through whatever happens, once it
/// has subscribed: its stop flag, its log and its task.
async fn lone_subscriber(
    url: String,
    channel: &str,
) -> (Arc<AtomicBool>, Arc<Mutex<SubscriberLog>>, tokio::task::JoinHandle<()>) {
    let stop = Arc::new(AtomicBool::new(false));
    let setup = Arc::new(SubscriberSetup { urls: vec![url], channels: vec![channel.to_string()], token: None, stop: stop.clone() });
    let subscriber = Arc::new(Mutex::new(SubscriberLog::new("subscriber".into(), 1)));
    let task = tokio::spawn(run_subscriber(setup, subscriber.clone(), 0, Vec::new(), 1));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !lock(&subscriber).initially_subscribed() {
        assert!(Instant::now() < deadline, "the subscriber could not subscribe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (stop, subscriber, task)
}

async fn connect_publisher(url: &str, token: &str) -> Result<WsClient, String> {
    let mut client = WsClient::open(url, Duration::from_secs(2)).await?;
    let reply = client.request("connect", json!({ "token": token }), Duration::from_secs(3)).await?;
    if reply.get("result").is_none() {
        return Err(format!("connect refused: {reply}"));
    }
    Ok(client)
}

// =============================================================================================
// The cluster

/// The processes and the database of one run; everything is killed (and the database dropped)
/// when this is dropped, also when the test fails. On failure the nodes' logs and counters are
/// printed.
struct Cluster {
    nodes: Vec<ServeProcess>,
    redis: Option<PrivateRedis>,
    database: Option<TestDatabase>,
    dir: PathBuf,
    seed: u64,
}

impl Cluster {
    fn diagnostics(&self) -> String {
        let mut out = format!("seed {} (rerun with COURTSIDE_TEST_SEED={}); files in {}\n", self.seed, self.seed, self.dir.display());
        for node in &self.nodes {
            out.push_str(&format!("--- {} (port {}, {} starts, running {}):\n", node.name, node.port, node.starts, node.running()));
            if let Some((_, body)) = http_get(node.port, "/metrics") {
                for name in [
                    "courtside_broker_gaps_repaired_total",
                    "courtside_broker_duplicates_dropped_total",
                    "courtside_broker_repairs_abandoned_total",
                    "courtside_gaps_filled_total",
                    "courtside_duplicates_dropped_total",
                    "courtside_publications_total",
                    "courtside_client_publications_total",
                    "courtside_queue_overflows_total",
                    "courtside_connections",
                ] {
                    out.push_str(&format!("  {name} {}\n", metric_value(&body, name)));
                }
                for line in body.lines().filter(|l| l.starts_with("courtside_disconnects_total{") && !l.ends_with(" 0")) {
                    out.push_str(&format!("  {line}\n"));
                }
            }
            out.push_str(&format!("  log tail:\n{}\n", tail(&node.log, 25)));
        }
        out
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("===== cluster diagnostics =====\n{}", self.diagnostics());
        }
        for node in &mut self.nodes {
            node.kill();
        }
        self.redis.take();
        self.database.take();
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// `GET /api/history` pages after `after`: the channel's top and its publications.
fn read_history(port: u16, channel: &str) -> Result<(String, u64, Vec<Value>), String> {
    let mut after = 0;
    let mut publications = Vec::new();
    loop {
        let (status, body) = http_get(port, &format!("/api/history?channel={channel}&after={after}&limit=1000"))
            .ok_or("no answer to /api/history")?;
        let page: Value = serde_json::from_str(&body).map_err(|e| format!("history {status}: {e}: {body}"))?;
        if status != 200 {
            return Err(format!("history {status}: {body}"));
        }
        let batch = page["publications"].as_array().cloned().unwrap_or_default();
        let top = page["offset"].as_u64().unwrap_or(0);
        let epoch = page["epoch"].as_str().unwrap_or_default().to_string();
        after += batch.len() as u64;
        publications.extend(batch);
        if after >= top || publications.is_empty() {
            return Ok((epoch, top, publications));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_delivers_every_acknowledged_publication_in_order_once_despite_faults() {
    let test_started = Instant::now();
    let seed = seed();
    eprintln!("cluster test seed: {seed} (set COURTSIDE_TEST_SEED to repeat)");
    let mut rng = StdRng::seed_from_u64(seed);

    let Some(database) = fresh_database().await else { return };
    let dir = temp_dir("cluster");
    let Some(redis) = PrivateRedis::start_or_skip(dir.join("redis.log")) else {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    };
    let run = format!("cl{:x}{:04x}", std::process::id(), rng.random::<u16>());
    let prefix = format!("courtside-cluster-test:{run}");
    let secret = dir.join("jwt-secret");
    write_secret(&secret);
    let staff = mint_token(&secret, &dir.join("token"), "cluster-staff", "staff");
    let spectator = mint_token(&secret, &dir.join("token"), "cluster-fan", "spectator");

    let args = vec![
        "--store".to_string(),
        database.url.clone(),
        "--broker".to_string(),
        redis.url(),
        "--jwt-secret-file".to_string(),
        secret.to_string_lossy().into_owned(),
    ];
    let env = vec![
        ("COURTSIDE_REDIS_PREFIX".to_string(), prefix.clone()),
        ("COURTSIDE_PRESENCE_TTL_SECS".to_string(), "5".to_string()),
        ("COURTSIDE_LOG".to_string(), "info".to_string()),
        ("NO_COLOR".to_string(), "1".to_string()),
    ];
    // All three start at once: the schema is migrated under an advisory lock.
    let nodes: Vec<ServeProcess> =
        (0..NODES).map(|i| ServeProcess::spawn(&format!("node{i}"), &dir, args.clone(), env.clone())).collect();
    let mut cluster = Cluster { nodes, redis: Some(redis), database: Some(database), dir: dir.clone(), seed };
    for node in &mut cluster.nodes {
        node.wait_ready(Duration::from_secs(30)).await;
    }
    eprintln!("3 nodes ready after {:?}", test_started.elapsed());

    let urls: Vec<String> = cluster.nodes.iter().map(ServeProcess::ws_url).collect();
    let channels: Vec<String> = (0..CHANNELS).map(|c| format!("match:{run}-{}", (b'a' + c as u8) as char)).collect();

    // Subscribers: SUBSCRIBERS_PER_NODE on every node, each on every channel.
    let stop = Arc::new(AtomicBool::new(false));
    let subscriber_setup = Arc::new(SubscriberSetup { urls: urls.clone(), channels: channels.clone(), token: Some(spectator), stop: stop.clone() });
    let total_publications = PUBLISHERS * PUBLICATIONS_PER_PUBLISHER;
    let mut subscriber_logs = Vec::new();
    let mut subscriber_tasks = Vec::new();
    for s in 0..NODES * SUBSCRIBERS_PER_NODE {
        let home = s % NODES;
        let log = Arc::new(Mutex::new(SubscriberLog::new(format!("sub{s}@node{home}"), CHANNELS)));
        // Some subscribers also drop their connection on purpose, mid-stream, once or twice.
        let drops: Vec<usize> = (0..rng.random_range(0..3)).map(|_| rng.random_range(10..total_publications - 10)).collect();
        subscriber_tasks.push(tokio::spawn(run_subscriber(subscriber_setup.clone(), log.clone(), home, drops, rng.random())));
        subscriber_logs.push(log);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    while !subscriber_logs.iter().all(|log| lock(log).initially_subscribed()) {
        assert!(Instant::now() < deadline, "subscribers could not subscribe");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Publishers: one starting on each node.
    let publisher_setup = Arc::new(PublisherSetup { urls: urls.clone(), channels: channels.clone(), token: staff, run: run.clone() });
    let publisher_log = Arc::new(Mutex::new(PublisherLog::default()));
    let publishing_started = Instant::now();
    let publisher_tasks: Vec<_> = (0..PUBLISHERS)
        .map(|p| tokio::spawn(run_publisher(publisher_setup.clone(), publisher_log.clone(), p, PUBLICATIONS_PER_PUBLISHER, rng.random())))
        .collect();

    // Faults, on a seeded schedule within the publishing window (about 7.5 s).
    let victim = rng.random_range(0..NODES);
    let kill_at = Duration::from_millis(1200 + rng.random_range(0..600));
    let redis_down_at = kill_at + Duration::from_millis(1000 + rng.random_range(0..500));
    let redis_up_at = redis_down_at + Duration::from_millis(600 + rng.random_range(0..600));
    let restart_at = redis_up_at + Duration::from_millis(800 + rng.random_range(0..500));
    let graceful = (victim + 1 + rng.random_range(0..NODES - 1)) % NODES;
    let terminate_at = restart_at + Duration::from_millis(500 + rng.random_range(0..400));
    let published = || lock(&publisher_log).acks.len();
    let mut timeline = Vec::new();

    tokio::time::sleep_until((publishing_started + kill_at).into()).await;
    cluster.nodes[victim].kill();
    timeline.push(format!("{:?}: SIGKILL node{victim} ({} acknowledged so far)", publishing_started.elapsed(), published()));

    tokio::time::sleep_until((publishing_started + redis_down_at).into()).await;
    if let Some(redis) = cluster.redis.as_mut() {
        redis.kill();
    }
    timeline.push(format!("{:?}: Redis killed ({} acknowledged)", publishing_started.elapsed(), published()));

    tokio::time::sleep_until((publishing_started + redis_up_at).into()).await;
    if let Some(redis) = cluster.redis.as_mut() {
        redis.start_again();
    }
    timeline.push(format!("{:?}: Redis started again, empty ({} acknowledged)", publishing_started.elapsed(), published()));

    tokio::time::sleep_until((publishing_started + restart_at).into()).await;
    cluster.nodes[victim].start();
    cluster.nodes[victim].wait_ready(Duration::from_secs(20)).await;
    timeline.push(format!("{:?}: node{victim} restarted and ready ({} acknowledged)", publishing_started.elapsed(), published()));

    tokio::time::sleep_until((publishing_started + terminate_at).into()).await;
    let stopping = Instant::now();
    let status = cluster.nodes[graceful].terminate(Duration::from_secs(15)).await;
    let took = stopping.elapsed();
    assert!(status.is_some_and(|s| s.success()), "node{graceful} did not stop cleanly on SIGTERM: {status:?} after {took:?}");
    timeline.push(format!("{:?}: node{graceful} stopped by SIGTERM in {took:?} ({} acknowledged)", publishing_started.elapsed(), published()));
    cluster.nodes[graceful].start();
    cluster.nodes[graceful].wait_ready(Duration::from_secs(20)).await;
    timeline.push(format!("{:?}: node{graceful} restarted and ready ({} acknowledged)", publishing_started.elapsed(), published()));

    for task in publisher_tasks {
        if tokio::time::timeout(Duration::from_secs(60), task).await.is_err() {
            panic!("a publisher did not finish within 60 s");
        }
    }
    let publishing_took = publishing_started.elapsed();
    timeline.push(format!("{publishing_took:?}: publishing done"));
    for node in &mut cluster.nodes {
        if let Some(status) = node.exited() {
            panic!("{} exited by itself ({status})", node.name);
        }
    }

    // What was acknowledged, by channel and offset.
    let publishers = std::mem::take(&mut *lock(&publisher_log));
    let mut failures: Vec<String> = publishers.failures.iter().map(|f| format!("publisher: {f}")).collect();
    let mut acked: Vec<BTreeMap<u64, Ack>> = vec![BTreeMap::new(); CHANNELS];
    let mut epochs: Vec<BTreeSet<String>> = vec![BTreeSet::new(); CHANNELS];
    for ack in &publishers.acks {
        epochs[ack.channel].insert(ack.epoch.clone());
        if ack.duplicate && ack.attempts == 1 {
            failures.push(format!("{} was answered `duplicate` on its first attempt: {ack:?}", ack.key));
        }
        if let Some(other) = acked[ack.channel].insert(ack.offset, ack.clone()) {
            failures.push(format!("offset {} of channel {} acknowledged twice: {other:?} and {ack:?}", ack.offset, ack.channel));
        }
    }

    // The store's view: the same epoch, exactly the acknowledged publications, gap-free.
    let live = cluster.nodes.iter().find(|n| n.running()).expect("a running node").port;
    let mut tops = vec![0u64; CHANNELS];
    for (c, channel) in channels.iter().enumerate() {
        let (epoch, top, history) = read_history(live, channel).unwrap_or_else(|e| panic!("history of {channel}: {e}"));
        tops[c] = top;
        epochs[c].insert(epoch);
        if epochs[c].len() != 1 {
            failures.push(format!("channel {c}: more than one epoch seen: {:?}", epochs[c]));
        }
        let acked_offsets: Vec<u64> = acked[c].keys().copied().collect();
        if acked_offsets != (1..=top).collect::<Vec<_>>() {
            failures.push(format!("channel {c}: acknowledged offsets are not exactly 1..={top}: {acked_offsets:?}"));
        }
        let stored: Vec<u64> = history.iter().filter_map(|p| p["offset"].as_u64()).collect();
        if stored != (1..=top).collect::<Vec<_>>() {
            failures.push(format!("channel {c}: stored offsets are not exactly 1..={top}: {stored:?}"));
        }
        for publication in &history {
            let offset = publication["offset"].as_u64().unwrap_or(0);
            match acked[c].get(&offset) {
                Some(ack) if ack.data == publication["data"] => {}
                Some(ack) => failures.push(format!("channel {c} offset {offset}: stored {}, acknowledged {}", publication["data"], ack.data)),
                None => failures.push(format!("channel {c} offset {offset}: stored but never acknowledged: {}", publication["data"])),
            }
        }
    }
    let acked_total: usize = acked.iter().map(BTreeMap::len).sum();
    if acked_total != total_publications {
        failures.push(format!("{acked_total} distinct publications acknowledged, {total_publications} published"));
    }

    // Every subscriber catches up…
    let catch_up_started = Instant::now();
    loop {
        let behind: Vec<String> = subscriber_logs
            .iter()
            .filter_map(|log| {
                let log = lock(log);
                let missing: Vec<String> = (0..CHANNELS)
                    .filter(|&c| log.positions[c] < tops[c])
                    .map(|c| format!("ch{c} at {}/{}", log.positions[c], tops[c]))
                    .collect();
                (!missing.is_empty()).then(|| format!("{}: {}", log.name, missing.join(", ")))
            })
            .collect();
        if behind.is_empty() {
            break;
        }
        if catch_up_started.elapsed() > CATCH_UP_LIMIT {
            failures.push(format!("not caught up within {CATCH_UP_LIMIT:?}: {behind:?}"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let catch_up_took = catch_up_started.elapsed();
    // …and a little more time for anything extra (a duplicate) to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::SeqCst);
    for task in subscriber_tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }

    // …and holds every acknowledged publication, in order, once.
    let mut summary = Vec::new();
    for log in &subscriber_logs {
        let log = lock(log);
        for violation in &log.violations {
            failures.push(format!("{}: {violation}", log.name));
        }
        for c in 0..CHANNELS {
            let offsets: Vec<u64> = log.received[c].iter().map(|(offset, _)| *offset).collect();
            if offsets != (1..=tops[c]).collect::<Vec<_>>() {
                let duplicates = offsets.len() as i64 - offsets.iter().collect::<BTreeSet<_>>().len() as i64;
                failures.push(format!(
                    "{} channel {c}: received {} publications ({duplicates} repeated), expected exactly 1..={} in order; first out of place at index {:?}",
                    log.name,
                    offsets.len(),
                    tops[c],
                    offsets.iter().zip(1..).position(|(got, want)| *got != want),
                ));
            }
            for (offset, data) in &log.received[c] {
                if acked[c].get(offset).is_none_or(|ack| ack.data != *data) {
                    failures.push(format!("{} channel {c} offset {offset}: received {data}, not what was acknowledged", log.name));
                    break;
                }
            }
        }
        summary.push(format!(
            "{}: sessions by node {:?}, {} subscribes refused with 111, {} shutdown notices, ends: {:?}",
            log.name, log.sessions_by_node, log.unavailable, log.shutdown_notices, log.ends
        ));
    }

    let mut acks_by_node = BTreeMap::new();
    for ack in &publishers.acks {
        *acks_by_node.entry(ack.node).or_insert(0) += 1;
    }
    let retried = publishers.acks.iter().filter(|a| a.attempts > 1).count();
    let duplicates = publishers.acks.iter().filter(|a| a.duplicate).count();
    // An abandoned publish was (nearly always) committed before the retry: the retry must be
    // answered `duplicate`, or the test did not exercise idempotent retries across nodes.
    if publishers.abandoned >= 5 && duplicates == 0 {
        failures.push(format!("{} publishes were abandoned and retried, yet no retry was answered `duplicate`", publishers.abandoned));
    }
    let counters: Vec<String> = cluster
        .nodes
        .iter()
        .map(|n| {
            format!(
                "{}: broker_gaps_repaired {:?}, gaps_filled {:?}",
                n.name,
                n.metric("courtside_broker_gaps_repaired_total"),
                n.metric("courtside_gaps_filled_total")
            )
        })
        .collect();
    let report = format!(
        "seed {seed}; timeline:\n  {}\npublishing took {publishing_took:?}, catch-up {catch_up_took:?}, test {:?}\n\
         {acked_total} acknowledged (tops {tops:?}, by node {acks_by_node:?}); {retried} retried, {duplicates} answered `duplicate`, \
         {} unanswered, {} refused and {} abandoned attempts\n{}\nsubscribers:\n  {}",
        timeline.join("\n  "),
        test_started.elapsed(),
        publishers.unanswered,
        publishers.refused,
        publishers.abandoned,
        counters.join("\n"),
        summary.join("\n  "),
    );
    eprintln!("{report}");
    if !failures.is_empty() {
        failures.truncate(40);
        panic!("{} problems:\n{}\n\n{report}", failures.len(), failures.join("\n"));
    }
}

// =============================================================================================
// PostgreSQL outage

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_outage_fails_publishes_fast_and_the_node_recovers() {
    let test_started = Instant::now();
    let Some(database) = fresh_database().await else { return };
    let dir = temp_dir("pg-outage");
    let mut proxy = Proxy::start(postgres_address(), 0).await;
    let secret = dir.join("jwt-secret");
    write_secret(&secret);
    let staff = mint_token(&secret, &dir.join("token"), "outage-staff", "staff");
    let args = vec![
        "--store".to_string(),
        database.url_via(proxy.port),
        "--jwt-secret-file".to_string(),
        secret.to_string_lossy().into_owned(),
    ];
    let env = vec![("COURTSIDE_LOG".to_string(), "info".to_string()), ("NO_COLOR".to_string(), "1".to_string())];
    let node = ServeProcess::spawn("solo", &dir, args, env);
    let mut cluster = Cluster { nodes: vec![node], redis: None, database: Some(database), dir: dir.clone(), seed: 0 };
    cluster.nodes[0].wait_ready(Duration::from_secs(30)).await;
    let port = cluster.nodes[0].port;
    let channel = format!("match:outage-{:08x}", rand::rng().random::<u32>());
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build().expect("http client");
    let http_publish = |key: &str, data: Value| {
        http.post(format!("http://127.0.0.1:{port}/api/publish"))
            .bearer_auth(&staff)
            .json(&json!({ "channel": channel, "data": data, "idempotency_key": key }))
            .timeout(Duration::from_secs(20))
            .send()
    };

    // A subscriber that stays (and resumes if it must) through the outage.
    let (stop, subscriber, subscriber_task) = lone_subscriber(cluster.nodes[0].ws_url(), &channel).await;

    let mut publisher = connect_publisher(&cluster.nodes[0].ws_url(), &staff).await.expect("publisher connects");
    let publish = |key: &str, data: Value| json!({ "channel": channel, "data": data, "idempotency_key": key });
    let mut acked: Vec<(u64, Value)> = Vec::new();
    let reply = publisher.request("publish", publish("k1", json!({"n": 1})), FAST).await.expect("reply");
    assert_eq!(reply["result"]["offset"], 1, "{reply}");
    acked.push((1, json!({"n": 1})));
    let response = http_publish("k2", json!({"n": 2})).await.expect("HTTP publish");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["offset"], 2, "{body}");
    acked.push((2, json!({"n": 2})));

    // The database goes away.
    proxy.stop();
    let outage_started = Instant::now();
    let started = Instant::now();
    let reply = publisher.request("publish", publish("k3", json!({"n": 3})), Duration::from_secs(30)).await.expect("a reply");
    let ws_took = started.elapsed();
    assert_eq!(reply["error"]["code"], 111, "publish during the outage: {reply}");
    assert!(reply["error"]["message"].as_str().is_some_and(|m| m.starts_with("unavailable")), "{reply}");
    assert!(ws_took < FAST, "the WebSocket publish took {ws_took:?} to fail");

    let started = Instant::now();
    let response = http_publish("k4", json!({"n": 4})).await.expect("HTTP answer");
    let http_took = started.elapsed();
    assert_eq!(response.status(), 503, "HTTP publish during the outage");
    let body: Value = response.json().await.expect("json error");
    assert_eq!(body["error"]["code"], "unavailable", "{body}");
    assert_eq!(body["error"]["status"], 503, "{body}");
    assert!(http_took < FAST, "the HTTP publish took {http_took:?} to fail");

    // More publishes (never retried): each fails fast, none may be stored.
    for n in 5..=7 {
        let started = Instant::now();
        let reply = publisher.request("publish", publish(&format!("k{n}"), json!({"n": n})), Duration::from_secs(30)).await.expect("a reply");
        assert_eq!(reply["error"]["code"], 111, "publish {n} during the outage: {reply}");
        assert!(started.elapsed() < FAST, "publish {n} took {:?} to fail", started.elapsed());
    }
    let history = publisher.request("history", json!({ "channel": channel }), Duration::from_secs(30)).await.expect("a reply");
    assert_eq!(history["error"]["code"], 111, "history during the outage: {history}");
    let mut newcomer = connect_publisher(&cluster.nodes[0].ws_url(), &staff).await.expect("a new connection during the outage");
    let refused = newcomer.request("subscribe", json!({ "channel": channel }), Duration::from_secs(30)).await.expect("a reply");
    assert_eq!(refused["error"]["code"], 111, "subscribe during the outage: {refused}");

    let deadline = Instant::now() + FAST;
    loop {
        match http_get(port, "/ready") {
            Some((503, _)) => break,
            other => assert!(Instant::now() < deadline, "/ready still {other:?} during the outage"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let unready_after = outage_started.elapsed();
    assert!(cluster.nodes[0].exited().is_none(), "the node must ride out the outage");

    // The database returns: the node recovers by itself. The retried keys land once, next.
    proxy.restart().await;
    let recovery_started = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(20);
    let reply = loop {
        let reply = publisher.request("publish", publish("k3", json!({"n": 3})), Duration::from_secs(10)).await.expect("a reply");
        if reply.get("result").is_some() {
            break reply;
        }
        assert_eq!(reply["error"]["code"], 111, "{reply}");
        assert!(Instant::now() < deadline, "no recovery within 20 s: {reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let recovered_after = recovery_started.elapsed();
    assert_eq!(reply["result"]["offset"], 3, "the failed publishes consumed no offset: {reply}");
    assert!(reply["result"].get("duplicate").is_none(), "k3 was never stored before: {reply}");
    acked.push((3, json!({"n": 3})));
    let response = http_publish("k4", json!({"n": 4})).await.expect("HTTP publish");
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["offset"], 4, "{body}");
    assert!(body.get("duplicate").is_none(), "{body}");
    acked.push((4, json!({"n": 4})));
    let reply = publisher.request("publish", publish("k1", json!({"n": 1})), FAST).await.expect("reply");
    assert_eq!((reply["result"]["offset"].as_u64(), reply["result"]["duplicate"].as_bool()), (Some(1), Some(true)), "{reply}");
    let reply = publisher.request("publish", publish("k8", json!({"n": 8})), FAST).await.expect("reply");
    assert_eq!(reply["result"]["offset"], 5, "{reply}");
    acked.push((5, json!({"n": 8})));

    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(port, "/ready").map(|(status, _)| status) != Some(200) {
        assert!(Instant::now() < deadline, "/ready did not turn 200 after the database returned");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The worst case: the database goes silent (connections stay open, nothing answers).
    proxy.freeze(true);
    let started = Instant::now();
    let reply = publisher.request("publish", publish("k9", json!({"n": 9})), Duration::from_secs(30)).await.expect("a reply");
    let silent_took = started.elapsed();
    assert_eq!(reply["error"]["code"], 111, "publish to a silent database: {reply}");
    assert!(silent_took < FAST, "the publish to a silent database took {silent_took:?} to fail");
    let deadline = Instant::now() + FAST;
    while http_get(port, "/ready").map(|(status, _)| status) != Some(503) {
        assert!(Instant::now() < deadline, "/ready still 200 while the database is silent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.freeze(false);
    let thawed = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    let reply = loop {
        let reply = publisher.request("publish", publish("k9", json!({"n": 9})), Duration::from_secs(15)).await.expect("a reply");
        if reply.get("result").is_some() {
            break reply;
        }
        assert_eq!(reply["error"]["code"], 111, "{reply}");
        assert!(Instant::now() < deadline, "no recovery from the silent database within 30 s: {reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let thaw_recovered_after = thawed.elapsed();
    assert_eq!(reply["result"]["offset"], 6, "the publish that timed out consumed no offset: {reply}");
    assert!(reply["result"].get("duplicate").is_none(), "k9 was never stored before: {reply}");
    acked.push((6, json!({"n": 9})));
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(port, "/ready").map(|(status, _)| status) != Some(200) {
        assert!(Instant::now() < deadline, "/ready did not turn 200 after the database answered again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The answer to a COMMIT is lost: the publish fails (111) though the database may well have
    // stored it. Its retry with the same idempotency key lands it exactly once.
    proxy.lose_next_commit_reply();
    let started = Instant::now();
    let reply = publisher.request("publish", publish("k10", json!({"n": 10})), Duration::from_secs(30)).await.expect("a reply");
    let lost_took = started.elapsed();
    assert_eq!(reply["error"]["code"], 111, "publish whose COMMIT answer was lost: {reply}");
    assert!(lost_took < FAST, "the publish whose COMMIT answer was lost took {lost_took:?} to fail");
    let deadline = Instant::now() + Duration::from_secs(20);
    let reply = loop {
        let reply = publisher.request("publish", publish("k10", json!({"n": 10})), Duration::from_secs(15)).await.expect("a reply");
        if reply.get("result").is_some() {
            break reply;
        }
        assert_eq!(reply["error"]["code"], 111, "{reply}");
        assert!(Instant::now() < deadline, "no recovery from the lost COMMIT answer within 20 s: {reply}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(reply["result"]["offset"], 7, "the retried publish is stored once, next: {reply}");
    let ambiguous_was_stored = reply["result"]["duplicate"] == true;
    acked.push((7, json!({"n": 10})));
    // A later publication; offset 7 reaches the subscriber either from the node's check after
    // the unknown COMMIT outcome or from its cursor filling the gap on seeing 8.
    let reply = publisher.request("publish", publish("k11", json!({"n": 11})), FAST).await.expect("reply");
    assert_eq!(reply["result"]["offset"], 8, "{reply}");
    acked.push((8, json!({"n": 11})));

    // Nothing acknowledged was lost; nothing unacknowledged was stored; the subscriber saw it all.
    let (_, top, stored) = read_history(port, &channel).expect("history");
    let stored: Vec<(u64, Value)> = stored.iter().map(|p| (p["offset"].as_u64().unwrap_or(0), p["data"].clone())).collect();
    assert_eq!(top, 8);
    assert_eq!(stored, acked, "the store holds exactly the acknowledged publications");
    let deadline = Instant::now() + Duration::from_secs(10);
    while lock(&subscriber).positions[0] < 8 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(5), subscriber_task).await;
    let seen = lock(&subscriber);
    assert!(seen.violations.is_empty(), "subscriber: {:?}", seen.violations);
    assert_eq!(seen.received[0], acked, "the subscriber holds every acknowledged publication, in order, once");
    eprintln!(
        "outage: publish failed after {ws_took:?} (WebSocket) and {http_took:?} (HTTP), /ready 503 after {unready_after:?}; \
         recovered {recovered_after:?} after the database returned; a silent database failed a publish after \
         {silent_took:?}, recovered {thaw_recovered_after:?} after it answered again; a lost COMMIT answer failed a \
         publish after {lost_took:?} (stored nonetheless: {ambiguous_was_stored}); subscriber connections ended: {:?}; test took {:?}",
        seen.ends,
        test_started.elapsed()
    );
}

/// A publish whose `COMMIT` answer was lost is answered 111 (`the postgres batch did not finish
/// within 5s; it may or may not have committed`) although PostgreSQL committed it; the writer
/// then hands the batch to no sink. So a subscriber of a node with the in-process broker does not
/// get that publication until the channel's next one makes its cursor fill the gap (with Redis,
/// the periodic position check repairs it within seconds) — a scoreboard showing the last point
/// of a match would stay stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publication_whose_commit_answer_was_lost_still_reaches_live_subscribers() {
    let Some(database) = fresh_database().await else { return };
    let dir = temp_dir("lost-commit");
    let proxy = Proxy::start(postgres_address(), 0).await;
    let secret = dir.join("jwt-secret");
    write_secret(&secret);
    let staff = mint_token(&secret, &dir.join("token"), "lost-commit", "staff");
    let args = vec![
        "--store".to_string(),
        database.url_via(proxy.port),
        "--jwt-secret-file".to_string(),
        secret.to_string_lossy().into_owned(),
    ];
    let env = vec![("COURTSIDE_LOG".to_string(), "info".to_string()), ("NO_COLOR".to_string(), "1".to_string())];
    let node = ServeProcess::spawn("solo", &dir, args, env);
    let mut cluster = Cluster { nodes: vec![node], redis: None, database: Some(database), dir: dir.clone(), seed: 0 };
    cluster.nodes[0].wait_ready(Duration::from_secs(30)).await;
    let channel = format!("match:lost-commit-{:08x}", rand::rng().random::<u32>());
    let (stop, subscriber, subscriber_task) = lone_subscriber(cluster.nodes[0].ws_url(), &channel).await;
    let mut publisher = connect_publisher(&cluster.nodes[0].ws_url(), &staff).await.expect("publisher connects");
    let publish = |key: &str, n: u32| json!({ "channel": channel, "data": {"n": n}, "idempotency_key": key });
    let reply = publisher.request("publish", publish("k1", 1), FAST).await.expect("reply");
    assert_eq!(reply["result"]["offset"], 1, "{reply}");

    proxy.lose_next_commit_reply();
    let reply = publisher.request("publish", publish("k2", 2), Duration::from_secs(30)).await.expect("a reply");
    assert_eq!(reply["error"]["code"], 111, "{reply}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let top = loop {
        match read_history(cluster.nodes[0].port, &channel) {
            Ok((_, top, _)) => break top,
            Err(error) => assert!(Instant::now() < deadline, "history unreadable: {error}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("the publish answered 111 is stored: {}", top == 2);
    let deadline = Instant::now() + Duration::from_secs(10);
    while lock(&subscriber).positions[0] < top && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::SeqCst);
    let _ = tokio::time::timeout(Duration::from_secs(5), subscriber_task).await;
    let seen = lock(&subscriber);
    let offsets: Vec<u64> = seen.received[0].iter().map(|(offset, _)| *offset).collect();
    assert_eq!(offsets, (1..=top).collect::<Vec<_>>(), "the store holds {top} publications; live subscribers must get them all");
}

// =============================================================================================
// Joins and leaves across nodes

/// The next `join`/`leave` push on `client` as (kind, user), waiting at most `limit`.
async fn next_presence_push(client: &mut WsClient, limit: Duration) -> Option<(&'static str, String)> {
    let deadline = Instant::now() + limit;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match client.read(left).await {
            Incoming::Frame(frame) => {
                for kind in ["join", "leave"] {
                    if let Some(user) = frame["push"][kind]["user"].as_str() {
                        return Some((kind, user.to_string()));
                    }
                }
            }
            Incoming::Idle | Incoming::Ended(_) => return None,
        }
    }
}

/// Two nodes on one store and `broker`; a subscriber on each. Each sees the other's join,
/// and the leave when it goes.
async fn joins_and_leaves_cross_nodes(broker: &str, label: &str) {
    let Some(database) = fresh_database().await else { return };
    let dir = temp_dir(label);
    let redis = if broker == "redis" {
        match PrivateRedis::start_or_skip(dir.join("redis.log")) {
            Some(redis) => Some(redis),
            None => return,
        }
    } else {
        None
    };
    let broker_url = redis.as_ref().map_or_else(|| "postgres".to_string(), PrivateRedis::url);
    let secret = dir.join("jwt-secret");
    write_secret(&secret);
    let coach = mint_token(&secret, &dir.join("token"), "coach-on-0", "coach");
    let fan = mint_token(&secret, &dir.join("token"), "fan-on-1", "spectator");
    let args = vec![
        "--store".to_string(),
        database.url.clone(),
        "--broker".to_string(),
        broker_url,
        "--jwt-secret-file".to_string(),
        secret.to_string_lossy().into_owned(),
    ];
    let env = vec![
        ("COURTSIDE_NAMESPACES__MATCH__JOIN_LEAVE".to_string(), "true".to_string()),
        ("COURTSIDE_REDIS_PREFIX".to_string(), format!("courtside-presence-test:{label}:{}", std::process::id())),
        ("NO_COLOR".to_string(), "1".to_string()),
    ];
    let nodes: Vec<ServeProcess> =
        (0..2).map(|i| ServeProcess::spawn(&format!("node{i}"), &dir, args.clone(), env.clone())).collect();
    let mut cluster = Cluster { nodes, redis, database: Some(database), dir: dir.clone(), seed: 0 };
    for node in &mut cluster.nodes {
        node.wait_ready(Duration::from_secs(30)).await;
    }
    let channel = format!("match:presence-{:08x}", rand::rng().random::<u32>());
    let subscribe = json!({ "channel": channel });

    let mut first = connect_publisher(&cluster.nodes[0].ws_url(), &coach).await.expect("connect to node 0");
    let reply = first.request("subscribe", subscribe.clone(), FAST).await.expect("subscribed on node 0");
    assert!(reply.get("result").is_some(), "{reply}");
    assert_eq!(next_presence_push(&mut first, FAST).await, Some(("join", "coach-on-0".into())), "its own join");

    let mut second = connect_publisher(&cluster.nodes[1].ws_url(), &fan).await.expect("connect to node 1");
    let reply = second.request("subscribe", subscribe, FAST).await.expect("subscribed on node 1");
    assert!(reply.get("result").is_some(), "{reply}");
    assert_eq!(
        next_presence_push(&mut first, Duration::from_secs(5)).await,
        Some(("join", "fan-on-1".into())),
        "{broker}: a join on node 1 reaches node 0; {}",
        cluster.diagnostics()
    );
    drop(second);
    assert_eq!(
        next_presence_push(&mut first, Duration::from_secs(5)).await,
        Some(("leave", "fan-on-1".into())),
        "{broker}: the leave on node 1 reaches node 0"
    );
    assert_eq!(next_presence_push(&mut first, Duration::from_millis(300)).await, None, "each once");
}

#[tokio::test]
async fn joins_and_leaves_reach_subscribers_on_other_nodes_through_redis() {
    joins_and_leaves_cross_nodes("redis", "presence-redis").await;
}

#[tokio::test]
async fn joins_and_leaves_reach_subscribers_on_other_nodes_through_postgres() {
    joins_and_leaves_cross_nodes("postgres", "presence-postgres").await;
}

// =============================================================================================
// The sports API across nodes

/// Two nodes on one PostgreSQL store and one Redis: a director sets up a tournament on one,
/// scorekeepers on both race for a claim (exactly one wins, whichever node they use), the
/// winner scores through the other node, and a subscriber on the first sees it; a stale version
/// is refused on either node.
#[tokio::test]
async fn the_sports_api_keeps_one_truth_across_nodes() {
    let Some(database) = fresh_database().await else { return };
    let dir = temp_dir("sports-cluster");
    let Some(redis) = PrivateRedis::start_or_skip(dir.join("redis.log")) else { return };
    let secret = dir.join("jwt-secret");
    write_secret(&secret);
    let token = |sub: &str, role: &str| mint_token(&secret, &dir.join("token"), sub, role);
    let (director, kim, lee) = (token("dana", "director"), token("kim", "scorekeeper"), token("lee", "scorekeeper"));
    let args = vec![
        "--store".to_string(),
        database.url.clone(),
        "--broker".to_string(),
        redis.url(),
        "--jwt-secret-file".to_string(),
        secret.to_string_lossy().into_owned(),
    ];
    let env = vec![
        ("COURTSIDE_REDIS_PREFIX".to_string(), format!("courtside-sports-test:{}", std::process::id())),
        ("NO_COLOR".to_string(), "1".to_string()),
    ];
    let nodes: Vec<ServeProcess> = (0..2).map(|i| ServeProcess::spawn(&format!("node{i}"), &dir, args.clone(), env.clone())).collect();
    let mut cluster = Cluster { nodes, redis: Some(redis), database: Some(database), dir: dir.clone(), seed: 0 };
    for node in &mut cluster.nodes {
        node.wait_ready(Duration::from_secs(30)).await;
    }
    let client = reqwest::Client::new();
    let call = |node: usize, method: reqwest::Method, path: &str, token: &str, body: Value| {
        client.request(method, cluster.nodes[node].http(path)).bearer_auth(token).json(&body).send()
    };
    let setup = [
        (reqwest::Method::POST, "/api/events", json!({ "id": "cup", "name": "Cup" })),
        (reqwest::Method::PUT, "/api/events/cup/divisions/u18", json!({ "id": "u18", "name": "U18" })),
        (reqwest::Method::PUT, "/api/events/cup/teams/red", json!({ "id": "red", "name": "Red" })),
        (reqwest::Method::PUT, "/api/events/cup/teams/blue", json!({ "id": "blue", "name": "Blue" })),
        (reqwest::Method::POST, "/api/events/cup/matches", json!({ "id": "m1", "divisionId": "u18", "homeTeamId": "red", "awayTeamId": "blue" })),
    ];
    for (method, path, body) in setup {
        let response = call(0, method, path, &director, body).await.expect("request");
        assert!(response.status().is_success(), "{path}: {}", response.text().await.unwrap_or_default());
    }
    let mut watcher = connect_publisher(&cluster.nodes[0].ws_url(), &director).await.expect("watcher connects");
    let reply = watcher.request("subscribe", json!({ "channel": "match:cup:m1" }), FAST).await.expect("subscribed");
    assert!(reply.get("result").is_some(), "{reply}");

    let (on_node0, on_node1) = tokio::join!(
        call(0, reqwest::Method::POST, "/api/events/cup/claims/m1", &kim, json!({})),
        call(1, reqwest::Method::POST, "/api/events/cup/claims/m1", &lee, json!({})),
    );
    let (on_node0, on_node1) = (on_node0.expect("request"), on_node1.expect("request"));
    let mut statuses = [on_node0.status().as_u16(), on_node1.status().as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "exactly one claim wins across nodes; {}", cluster.diagnostics());
    let (winner, winner_node) = if on_node0.status().as_u16() == 200 { (&kim, 0) } else { (&lee, 1) };
    let claim: Value = if winner_node == 0 { on_node0.json().await } else { on_node1.json().await }.expect("claim body");
    let fencing_token = claim["claim"]["fencingToken"].as_u64().expect("token");

    // The winner scores through the other node.
    let other_node = 1 - winner_node;
    let update = json!({ "matchId": "m1", "sets": [{ "home": 3, "away": 1 }], "status": "in_progress", "fencingToken": fencing_token, "baseVersion": 0 });
    let response = call(other_node, reqwest::Method::POST, "/api/events/cup/scores", winner, update.clone()).await.expect("request");
    assert_eq!(response.status().as_u16(), 200, "{}", response.text().await.unwrap_or_default());
    let stale = call(winner_node, reqwest::Method::POST, "/api/events/cup/scores", winner, update).await.expect("request");
    assert_eq!(stale.status().as_u16(), 409, "version 0 is stale on every node");

    let deadline = Instant::now() + Duration::from_secs(10);
    let pushed = loop {
        assert!(Instant::now() < deadline, "node 0's subscriber never saw the score");
        match watcher.read(Duration::from_millis(500)).await {
            Incoming::Frame(frame) if frame["push"]["pub"]["data"]["type"] == "score" => break frame,
            Incoming::Frame(_) | Incoming::Idle => {}
            Incoming::Ended(ended) => panic!("the watcher was disconnected: {ended}"),
        }
    };
    assert_eq!(pushed["push"]["pub"]["data"]["score"]["sets"][0]["home"], 3, "{pushed}");
    let history: Value = call(0, reqwest::Method::GET, "/api/events/cup/scores/m1/history", &director, json!(null))
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(history["total"], 1, "{history}");
}
