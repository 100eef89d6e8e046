//! `courtside bench`: loads a running server with N subscriber WebSocket connections spread over
//! K fresh channels, publishes R messages per second on each channel for S seconds from a few
//! publisher connections, and prints one JSON report on stdout (progress goes to stderr).
//!
//! The client is deliberately lean so that it is not what limits the figures: a hand-written
//! WebSocket client (protocol v1 needs only text frames, ping/pong and close) on plain tokio TCP
//! streams, a 4 KiB read buffer per connection, and pushes read by byte search (`"offset":` and
//! the payload's `"ts":`) instead of a JSON parse per delivery. Latency is measured against one
//! monotonic clock shared by the publishers and subscribers of this process.
//!
//! Publishers respect the server's per-connection command rate limit (`client.commands_per_sec`,
//! 50/s by default): the publishing load is spread over `ceil(R × K / --publisher-rate)`
//! connections, each sending at most `--publisher-rate` commands per second (default 40).
//!
//! Cluster mode: `--server` may be given several times (or as a comma-separated list), one URL
//! per node. Subscriber i follows channel i mod K and connects to node (i mod K + i div K) mod S,
//! so the subscribers of every channel are spread over all S nodes. Publication i is sent to node
//! (i mod K + i div K) mod S too (each channel is published from every node in turn), through
//! that node's share of the publisher connections (at least one per node), so publications are
//! committed on every node and reach the other nodes' subscribers through the broker. The report
//! then lists the servers, splits latency into same-node and cross-node deliveries, and gives
//! per-node figures; `--server-pid`, repeated once per server in the same order, adds per-node
//! and total memory and CPU.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::client::websocket_url;

/// Initial read buffer per connection; grows only for a larger WebSocket frame.
mod socketio;

const READ_BUFFER_BYTES: usize = 4096;
/// First id of publish commands: id = PUBLISH_ID_BASE + global publication index.
const PUBLISH_ID_BASE: u64 = 1000;
/// Latency samples kept per subscriber before they are merged into the shared histogram.
const LOCAL_SAMPLES: usize = 128;
/// File descriptors kept free for everything that is not a connection.
const SPARE_FDS: u64 = 64;

#[derive(Args)]
pub struct BenchArgs {
    /// The server's base URL. Repeat it (or give a comma-separated list) to spread subscribers
    /// and publishers round-robin over several nodes of a cluster.
    #[arg(long = "server", env = "COURTSIDE_SERVER", default_value = "http://127.0.0.1:8080", value_delimiter = ',')]
    pub servers: Vec<String>,
    /// A token (JWT) from `courtside token`, for the publishers.
    #[arg(long, env = "COURTSIDE_TOKEN")]
    pub token: Option<String>,
    /// Subscriber connections (each subscribes to one channel).
    #[arg(long, default_value_t = 1000)]
    pub subscribers: usize,
    /// Channels; subscribers are spread evenly over them (subscriber i follows channel i mod K).
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Publications per second ON EACH channel (the total is rate × channels).
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds of publishing; 0 only connects, subscribes and measures memory (like --idle).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Approximate size of each publication's JSON payload, in bytes.
    #[arg(long, default_value_t = 200)]
    pub payload_bytes: usize,
    /// The server's process id, to read its memory and CPU time from /proc. With several
    /// servers, give one per server in the same order (repeated or comma-separated).
    #[arg(long = "server-pid", value_delimiter = ',')]
    pub server_pids: Vec<u32>,
    /// Only connect and subscribe, settle, measure memory, and stop (no publishing).
    #[arg(long)]
    pub idle: bool,
    /// Publish commands per second per publisher connection; keep it under the server's
    /// `client.commands_per_sec` (50 by default).
    #[arg(long, default_value_t = 40.0)]
    pub publisher_rate: f64,
    /// Subscriber connections being opened at the same time.
    #[arg(long, default_value_t = 200)]
    pub connect_concurrency: usize,
    /// Seconds to wait after the last subscription before reading the server's memory.
    #[arg(long, default_value_t = 2.0)]
    pub settle_secs: f64,
    /// Seconds to wait, after the last publish, for acknowledgements and then for deliveries.
    #[arg(long, default_value_t = 15.0)]
    pub drain_secs: f64,
    /// Channel namespace (its subscribe rule must admit anonymous, its publish rule the token).
    #[arg(long, default_value = "match")]
    pub namespace: String,
    /// Subscribers speak Socket.IO (`/socket.io/`, WebSocket transport) instead of the native
    /// protocol; publishers stay native.
    #[arg(long)]
    pub socketio: bool,
}

pub async fn run(args: BenchArgs) -> Result<(), String> {
    let idle = args.idle || args.duration <= 0.0;
    if args.subscribers == 0 || args.channels == 0 {
        return Err("--subscribers and --channels must be at least 1".into());
    }
    if !idle && !(args.rate > 0.0) {
        return Err("--rate must be positive".into());
    }
    if !idle && args.token().is_none() {
        return Err("publishing needs a token with a publishing role: --token or COURTSIDE_TOKEN \
                    (courtside token --data-dir D --sub bench --role staff)"
            .into());
    }
    if !(args.publisher_rate > 0.0) {
        return Err("--publisher-rate must be positive".into());
    }
    let servers = args.servers.len();
    if servers == 0 || args.servers.iter().any(|s| s.trim().is_empty()) {
        return Err("--server must not be empty".into());
    }
    if !args.server_pids.is_empty() && args.server_pids.len() != servers {
        return Err(format!(
            "--server-pid: give one per --server, in the same order ({} server(s), {} pid(s))",
            servers,
            args.server_pids.len()
        ));
    }
    let cluster = servers > 1;
    let mut targets = Vec::with_capacity(servers);
    for server in &args.servers {
        targets.push(Target::resolve(server.trim()).await?);
    }
    let total_rate = args.rate * args.channels as f64;
    let publishers = if idle {
        0
    } else {
        // In a cluster every node gets the same number of publisher connections (at least one).
        ((total_rate / args.publisher_rate).ceil().max(1.0) as usize).div_ceil(servers) * servers
    };
    let fd_limit = raise_fd_limit();
    let fds_needed = (args.subscribers + publishers) as u64 + SPARE_FDS;
    if fds_needed > fd_limit {
        return Err(format!(
            "{} connections need about {fds_needed} open files but this process may open {fd_limit}; \
             use at most {} subscribers (or raise the hard limit)",
            args.subscribers + publishers,
            fd_limit.saturating_sub(SPARE_FDS + publishers as u64)
        ));
    }

    let run_id = run_id();
    let prefix = format!("{}:bench-{run_id}", args.namespace);
    let channels: Arc<Vec<String>> = Arc::new((0..args.channels).map(|i| format!("{prefix}-{i}")).collect());
    let shared = Arc::new(Shared::new(servers, args.channels));
    let procs: Vec<Proc> = args.server_pids.iter().map(|&pid| Proc::server(pid)).collect();
    let rss_before = procs.iter().map(Proc::rss_bytes).collect::<Result<Vec<_>, _>>()?;

    // Connect and subscribe, `connect_concurrency` at a time.
    if cluster {
        eprintln!(
            "courtside bench: {} subscribers on {} channel(s) {prefix}-* over {servers} servers, {} publisher(s)",
            args.subscribers, args.channels, publishers
        );
    } else {
        eprintln!(
            "courtside bench: {} subscribers on {} channel(s) {prefix}-*, {} publisher(s)",
            args.subscribers, args.channels, publishers
        );
    }
    let connect_started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let mut subscriber_tasks = Vec::with_capacity(args.subscribers);
    let mut assigned = vec![0usize; servers];
    for i in 0..args.subscribers {
        let channel = i % args.channels;
        let node = node_of(i as u64, args.channels, servers);
        assigned[node] += 1;
        let target = if args.socketio { socketio::target(&targets[node]) } else { targets[node].clone() };
        let task = subscriber(shared.clone(), target, node, channels.clone(), channel, gate.clone(), args.socketio);
        subscriber_tasks.push(tokio::spawn(task));
    }
    let mut last_report = Instant::now();
    loop {
        let connected = shared.connected.load(Ordering::Relaxed);
        let failed = shared.connect_failures.load(Ordering::Relaxed);
        if connected + failed >= args.subscribers {
            break;
        }
        if last_report.elapsed() >= Duration::from_secs(1) {
            eprintln!("connecting {connected}/{} ({failed} failed)", args.subscribers);
            last_report = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let connect_secs = connect_started.elapsed().as_secs_f64();
    let connected = shared.connected.load(Ordering::Relaxed);
    let connect_failures = shared.connect_failures.load(Ordering::Relaxed);
    eprintln!("connected {connected}/{} in {connect_secs:.2}s ({connect_failures} failed)", args.subscribers);
    if connected == 0 {
        return Err(format!("no subscriber could connect: {}", shared.first_errors()));
    }
    let settle_cpu_before = procs.iter().map(Proc::cpu_us).collect::<Result<Vec<_>, _>>()?;
    let settle_started = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(args.settle_secs.max(0.0))).await;
    let rss_after = procs.iter().map(Proc::rss_bytes).collect::<Result<Vec<_>, _>>()?;
    let settle_cpu_after = procs.iter().map(Proc::cpu_us).collect::<Result<Vec<_>, _>>()?;
    let settle_us = settle_started.elapsed().as_micros() as f64;
    let idle_cpu_pct: Vec<f64> = settle_cpu_after
        .iter()
        .zip(&settle_cpu_before)
        .map(|(a, b)| a.saturating_sub(*b) as f64 * 100.0 / settle_us)
        .collect();
    let connected_on: Vec<usize> = shared.connected_per_server.iter().map(|n| n.load(Ordering::Relaxed)).collect();

    let mut report = Report::default();
    if cluster {
        report.set("servers", json!(args.servers));
    } else {
        report.set("server", json!(args.servers[0]));
    }
    report.set("subscribers", json!(args.subscribers));
    report.set("channels", json!(args.channels));
    if idle {
        report.set("idle", json!(true));
    } else {
        report.set("rate_per_channel", json!(args.rate));
        report.set("duration_secs", json!(args.duration));
        report.set("payload_bytes", json!(args.payload_bytes));
        report.set("publishers", json!(publishers));
        report.set("publisher_rate", json!(args.publisher_rate));
    }
    report.set("channel_prefix", json!(prefix));
    report.set("connect_concurrency", json!(args.connect_concurrency));
    report.set("connected", json!(connected));
    report.set("connect_failures", json!(connect_failures));
    report.set("connect_secs", json!(round3(connect_secs)));
    if !procs.is_empty() {
        let before: u64 = rss_before.iter().sum();
        let after: u64 = rss_after.iter().sum();
        if cluster {
            report.set("server_pids", json!(args.server_pids));
        } else {
            report.set("server_pid", json!(args.server_pids[0]));
        }
        report.set("server_rss_before_bytes", json!(before));
        report.set("server_rss_after_bytes", json!(after));
        report.set("rss_per_conn_bytes", json!(((after as f64 - before as f64) / connected as f64).round()));
        report.set("server_cpu_pct_while_idle", json!(round3(idle_cpu_pct.iter().sum())));
    }
    // Per-node figures, filled in below (cluster mode only).
    let mut nodes: Vec<Report> = (0..servers)
        .map(|s| {
            let mut node = Report::default();
            node.set("server", json!(args.servers[s]));
            if let Some(pid) = args.server_pids.get(s) {
                node.set("pid", json!(pid));
            }
            node.set("subscribers", json!(assigned[s]));
            node.set("connected", json!(connected_on[s]));
            if !idle {
                node.set("publishers", json!(publishers / servers));
            }
            if let (Some(before), Some(after)) = (rss_before.get(s), rss_after.get(s)) {
                node.set("rss_before_bytes", json!(before));
                node.set("rss_after_bytes", json!(after));
                node.set(
                    "rss_per_conn_bytes",
                    json!(((*after as f64 - *before as f64) / connected_on[s].max(1) as f64).round()),
                );
                node.set("cpu_pct_while_idle", json!(round3(idle_cpu_pct[s])));
            }
            node
        })
        .collect();

    if !idle {
        let outcome = publish_phase(&args, &shared, &targets, &channels, publishers, total_rate, &procs).await?;
        // Stop the subscribers and check every acknowledged offset arrived exactly once.
        shared.cancel.cancel();
        let mut lost = 0u64;
        let mut duplicated = 0u64;
        let mut unacknowledged_received = 0u64;
        let mut disconnected = 0u64;
        let mut node_lost = vec![0u64; servers];
        let mut node_duplicated = vec![0u64; servers];
        let mut node_disconnected = vec![0u64; servers];
        for task in subscriber_tasks {
            let Ok(Some(sub)) = task.await else { continue };
            disconnected += u64::from(sub.disconnected);
            node_disconnected[sub.node] += u64::from(sub.disconnected);
            let acked = &outcome.acked[sub.channel];
            let mut seen = 0u64;
            for &offset in acked {
                let count = offset.checked_sub(sub.base).and_then(|i| sub.counts.get(i as usize)).copied().unwrap_or(0);
                match count {
                    0 => {
                        lost += 1;
                        node_lost[sub.node] += 1;
                    }
                    n => {
                        seen += 1;
                        duplicated += u64::from(n) - 1;
                        node_duplicated[sub.node] += u64::from(n) - 1;
                    }
                }
            }
            let received: u64 = sub.counts.iter().filter(|&&n| n > 0).count() as u64 + sub.out_of_range;
            unacknowledged_received += received.saturating_sub(seen);
        }
        let deliveries = shared.deliveries.load(Ordering::Relaxed);
        let last_us = shared.last_delivery_us.load(Ordering::Relaxed);
        let span_secs = (last_us.saturating_sub(outcome.start_us)) as f64 / 1e6;
        let histogram = shared.histogram.lock().map_err(|_| "histogram lock poisoned")?;
        report.set("publishes_sent", json!(outcome.sent));
        report.set("publishes_acknowledged", json!(outcome.acknowledged));
        report.set("publish_errors", json!(outcome.errors));
        report.set("publish_secs", json!(round3(outcome.publish_secs)));
        report.set("deliveries", json!(deliveries));
        report.set("deliveries_expected", json!(outcome.expected));
        report.set(
            "deliveries_per_sec",
            json!(if span_secs > 0.0 { (deliveries as f64 / span_secs).round() } else { 0.0 }),
        );
        report.set("latency_ms", latency_json(&histogram));
        let node_latency = if cluster {
            let latency = shared.node_latency.lock().map_err(|_| "histogram lock poisoned")?;
            report.set("latency_ms_same_node", latency_json(&latency.same));
            report.set("latency_ms_cross_node", latency_json(&latency.cross));
            latency.per_node.iter().map(short_latency_json).collect()
        } else {
            Vec::new()
        };
        let messages = shared.push_messages.load(Ordering::Relaxed);
        report.set(
            "deliveries_per_ws_message",
            json!(if messages > 0 { round3(deliveries as f64 / messages as f64) } else { 0.0 }),
        );
        let acks = shared.ack_histogram.lock().map_err(|_| "histogram lock poisoned")?;
        report.set("publish_ack_ms", short_latency_json(&acks));
        report.set("lost", json!(lost));
        report.set("duplicated", json!(duplicated));
        report.set("unacknowledged_received", json!(unacknowledged_received));
        report.set("subscriber_disconnects", json!(disconnected));
        if let Some(cpu) = outcome.server_cpu_us {
            report.set("server_cpu_us", json!(cpu));
            report.set(
                "server_cpu_us_per_delivery",
                json!(if deliveries > 0 { round3(cpu as f64 / deliveries as f64) } else { 0.0 }),
            );
            report.set("server_threads_cpu_us", json!(outcome.server_threads_cpu_us));
        }
        report.set(
            "bench_cpu_us_per_delivery",
            json!(if deliveries > 0 { round3(outcome.bench_cpu_us as f64 / deliveries as f64) } else { 0.0 }),
        );
        report.set("machine_cpu_busy_pct", json!(round3(outcome.machine_busy_pct)));
        report.set("machine_cpu_pct", json!(outcome.machine_pct));
        report.set("publish_phase_secs", json!(round3(outcome.phase_secs)));
        for (s, node) in nodes.iter_mut().enumerate() {
            let delivered = shared.deliveries_per_server[s].load(Ordering::Relaxed);
            node.set("publishes_acknowledged", json!(outcome.acknowledged_per_server[s]));
            node.set("deliveries", json!(delivered));
            if let Some(latency) = node_latency.get(s) {
                node.set("latency_ms", latency.clone());
            }
            node.set("lost", json!(node_lost[s]));
            node.set("duplicated", json!(node_duplicated[s]));
            node.set("subscriber_disconnects", json!(node_disconnected[s]));
            if let (Some(cpu), Some(threads)) = (outcome.server_cpu_us_each.get(s), outcome.server_threads_each.get(s))
            {
                node.set("cpu_us", json!(cpu));
                node.set(
                    "cpu_us_per_delivery",
                    json!(if delivered > 0 { round3(*cpu as f64 / delivered as f64) } else { 0.0 }),
                );
                node.set("cpu_pct_while_publishing", json!(round3(*cpu as f64 * 100.0 / (outcome.phase_secs * 1e6))));
                node.set("threads_cpu_us", json!(threads));
            }
        }
    } else {
        shared.cancel.cancel();
        for task in subscriber_tasks {
            let _ = task.await;
        }
    }
    if cluster {
        report.set_list("per_server", nodes);
    }
    if let Some(errors) = shared.error_list() {
        report.set("errors", errors);
    }
    let text = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    println!("{text}");
    Ok(())
}

/// The node (index into the servers) of subscriber `i`, and the node publication `i` is sent to:
/// consecutive indices rotate over the nodes, and so do the subscribers and publications of each
/// channel (index i is on channel i mod K). With one server, always 0.
fn node_of(i: u64, channels: usize, servers: usize) -> usize {
    let k = channels.max(1) as u64;
    ((i % k + i / k) % servers.max(1) as u64) as usize
}

fn latency_json(h: &Histogram) -> Value {
    json!({
        "p50": round3(h.percentile(0.50) as f64 / 1e3),
        "p90": round3(h.percentile(0.90) as f64 / 1e3),
        "p99": round3(h.percentile(0.99) as f64 / 1e3),
        "p999": round3(h.percentile(0.999) as f64 / 1e3),
        "max": round3(h.max as f64 / 1e3),
        "samples": h.total,
    })
}

fn short_latency_json(h: &Histogram) -> Value {
    json!({
        "p50": round3(h.percentile(0.50) as f64 / 1e3),
        "p99": round3(h.percentile(0.99) as f64 / 1e3),
        "max": round3(h.max as f64 / 1e3),
    })
}

/// The JSON report, its keys in the order they were set.
#[derive(Default)]
struct Report(Vec<(&'static str, Field)>);

enum Field {
    Value(Value),
    List(Vec<Report>),
}

impl Report {
    fn set(&mut self, key: &'static str, value: Value) {
        self.0.push((key, Field::Value(value)));
    }

    fn set_list(&mut self, key: &'static str, list: Vec<Report>) {
        self.0.push((key, Field::List(list)));
    }
}

impl serde::Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.0.iter().map(|(k, v)| (k, v)))
    }
}

impl serde::Serialize for Field {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Field::Value(value) => value.serialize(s),
            Field::List(list) => list.serialize(s),
        }
    }
}

impl BenchArgs {
    fn token(&self) -> Option<&str> {
        self.token.as_deref().filter(|t| !t.is_empty())
    }
}

struct PublishOutcome {
    start_us: u64,
    sent: u64,
    acknowledged: u64,
    errors: u64,
    publish_secs: f64,
    phase_secs: f64,
    /// Acknowledged offsets per channel, sorted.
    acked: Vec<Vec<u64>>,
    expected: u64,
    /// Acknowledged publishes per server (by the server of the publisher connection).
    acknowledged_per_server: Vec<u64>,
    /// All servers' CPU (when every server's pid is known).
    server_cpu_us: Option<u64>,
    server_threads_cpu_us: BTreeMap<String, u64>,
    /// Per server, in the order of `--server-pid`.
    server_cpu_us_each: Vec<u64>,
    server_threads_each: Vec<BTreeMap<String, u64>>,
    bench_cpu_us: u64,
    machine_busy_pct: f64,
    /// Share of the machine's CPU time by /proc/stat category over the publish phase.
    machine_pct: BTreeMap<&'static str, f64>,
}

async fn publish_phase(
    args: &BenchArgs,
    shared: &Arc<Shared>,
    targets: &[Target],
    channels: &Arc<Vec<String>>,
    publishers: usize,
    total_rate: f64,
    servers: &[Proc],
) -> Result<PublishOutcome, String> {
    let token = args.token().unwrap_or_default();
    // Publishers p·Q … p·Q + Q − 1 connect to server p (Q = publishers per server).
    let per_server = publishers / targets.len();
    let mut connections = Vec::with_capacity(publishers);
    for p in 0..publishers {
        connections.push(connect_publisher(&targets[p / per_server], token).await?);
    }
    let total = (total_rate * args.duration).round() as u64;
    let schedule = schedule(total, args.channels, targets.len(), publishers);
    let per_channel_subscribers = {
        let counts = shared.subscribed_per_channel.lock().map_err(|_| "lock poisoned")?;
        let mut v = vec![0u64; args.channels];
        for (&c, &n) in counts.iter() {
            v[c] = n;
        }
        v
    };
    let server_cpu_before = servers.iter().map(Proc::cpu_us).collect::<Result<Vec<_>, _>>()?;
    let server_threads_before: Vec<_> = servers.iter().map(Proc::threads_cpu_us).collect();
    let bench_cpu_before = Proc::me().cpu_us()?;
    let machine_before = machine_cpu()?;
    let phase_started = Instant::now();
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let start_us = shared.micros() + 100_000;
    let plan =
        Arc::new(Plan { channels: channels.clone(), schedule, total_rate, start, payload_bytes: args.payload_bytes });
    eprintln!(
        "publishing {total} messages: {} per second on each of {} channel(s) for {}s",
        args.rate, args.channels, args.duration
    );
    let mut writers = Vec::new();
    let mut readers = Vec::new();
    let ack_cancel = CancellationToken::new();
    for (p, connection) in connections.into_iter().enumerate() {
        let (reader, writer) = spawn_publisher(shared.clone(), plan.clone(), p, connection, ack_cancel.clone());
        writers.push(writer);
        readers.push(reader);
    }
    let progress = {
        let shared = shared.clone();
        let duration = args.duration;
        tokio::spawn(async move {
            let began = Instant::now();
            loop {
                tokio::time::sleep(Duration::from_secs(2)).await;
                eprintln!(
                    "publishing {:.0}s/{duration}s: {} deliveries",
                    began.elapsed().as_secs_f64(),
                    shared.deliveries.load(Ordering::Relaxed)
                );
            }
        })
    };
    let mut sent = 0;
    for writer in writers {
        sent += writer.await.map_err(|e| e.to_string())??;
    }
    let publish_secs = (shared.micros().saturating_sub(start_us)) as f64 / 1e6;
    // Acknowledgements, then deliveries, each within the drain time.
    let drain = Duration::from_secs_f64(args.drain_secs.max(0.0));
    let ack_timer = {
        let cancel = ack_cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(drain).await;
            cancel.cancel();
        })
    };
    let mut acked = vec![Vec::new(); args.channels];
    let mut acknowledged = 0u64;
    let mut acknowledged_per_server = vec![0u64; targets.len()];
    let mut errors = 0u64;
    for (p, reader) in readers.into_iter().enumerate() {
        let acks = reader.await.map_err(|e| e.to_string())?;
        for (channel, offset) in acks.acks {
            acked[channel].push(offset);
        }
        acknowledged += acks.acknowledged;
        acknowledged_per_server[p / per_server] += acks.acknowledged;
        errors += acks.errors;
    }
    ack_timer.abort();
    for offsets in &mut acked {
        offsets.sort_unstable();
        offsets.dedup();
    }
    let expected: u64 = acked.iter().zip(&per_channel_subscribers).map(|(a, &n)| a.len() as u64 * n).sum();
    let drain_started = Instant::now();
    while shared.deliveries.load(Ordering::Relaxed) < expected && drain_started.elapsed() < drain {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    progress.abort();
    let server_cpu_after = servers.iter().map(Proc::cpu_us).collect::<Result<Vec<_>, _>>()?;
    let server_threads_after: Vec<_> = servers.iter().map(Proc::threads_cpu_us).collect();
    let bench_cpu_after = Proc::me().cpu_us()?;
    let machine_after = machine_cpu()?;
    let phase_secs = phase_started.elapsed().as_secs_f64();
    let server_cpu_us_each: Vec<u64> =
        server_cpu_after.iter().zip(&server_cpu_before).map(|(a, b)| a.saturating_sub(*b)).collect();
    let mut server_threads_cpu_us = BTreeMap::new();
    let mut server_threads_each = Vec::with_capacity(servers.len());
    for (after, before) in server_threads_after.into_iter().zip(&server_threads_before) {
        let mut threads = BTreeMap::new();
        for (name, after) in after {
            let used = after.saturating_sub(before.get(&name).copied().unwrap_or(0));
            *server_threads_cpu_us.entry(name.clone()).or_default() += used;
            threads.insert(name, used);
        }
        server_threads_each.push(threads);
    }
    let jiffies: Vec<u64> = machine_after.iter().zip(&machine_before).map(|(a, b)| a.saturating_sub(*b)).collect();
    let all: u64 = jiffies.iter().sum();
    let busy = all - jiffies[3] - jiffies[4];
    let pct = |j: u64| if all > 0 { round3(j as f64 * 100.0 / all as f64) } else { 0.0 };
    let machine_pct =
        MACHINE_FIELDS.iter().zip(&jiffies).filter(|(_, j)| **j > 0).map(|(n, j)| (*n, pct(*j))).collect();
    Ok(PublishOutcome {
        start_us,
        sent,
        acknowledged,
        errors,
        publish_secs,
        phase_secs,
        acked,
        expected,
        acknowledged_per_server,
        server_cpu_us: (!servers.is_empty()).then(|| server_cpu_us_each.iter().sum()),
        server_threads_cpu_us,
        server_cpu_us_each,
        server_threads_each,
        bench_cpu_us: bench_cpu_after.saturating_sub(bench_cpu_before),
        machine_busy_pct: if all > 0 { busy as f64 * 100.0 / all as f64 } else { 0.0 },
        machine_pct,
    })
}

// ---------------------------------------------------------------------------------------------
// Shared state

struct Shared {
    clock: Instant,
    connected: AtomicUsize,
    connect_failures: AtomicUsize,
    deliveries: AtomicU64,
    last_delivery_us: AtomicU64,
    /// WebSocket messages that carried at least one publication.
    push_messages: AtomicU64,
    /// Publish command sent → its reply received, in µs.
    ack_histogram: Mutex<Histogram>,
    histogram: Mutex<Histogram>,
    subscribed_per_channel: Mutex<BTreeMap<usize, u64>>,
    errors: Mutex<BTreeMap<String, u64>>,
    cancel: CancellationToken,
    /// Number of servers (nodes); per-node figures are kept when there are several.
    servers: usize,
    /// Channels, to find the node a publication was sent to (`node_of`).
    channels: usize,
    connected_per_server: Vec<AtomicUsize>,
    /// Deliveries to the subscribers of each node.
    deliveries_per_server: Vec<AtomicU64>,
    node_latency: Mutex<NodeLatency>,
}

/// Latency by node: same-node deliveries (published through the subscriber's own node),
/// cross-node deliveries (published through another node, so carried by the broker), and all
/// deliveries to each node's subscribers.
#[derive(Default)]
struct NodeLatency {
    same: Histogram,
    cross: Histogram,
    per_node: Vec<Histogram>,
}

impl Shared {
    fn new(servers: usize, channels: usize) -> Self {
        Self {
            clock: Instant::now(),
            connected: AtomicUsize::new(0),
            connect_failures: AtomicUsize::new(0),
            deliveries: AtomicU64::new(0),
            last_delivery_us: AtomicU64::new(0),
            push_messages: AtomicU64::new(0),
            ack_histogram: Mutex::new(Histogram::default()),
            histogram: Mutex::new(Histogram::default()),
            subscribed_per_channel: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(BTreeMap::new()),
            cancel: CancellationToken::new(),
            servers,
            channels,
            connected_per_server: (0..servers).map(|_| AtomicUsize::new(0)).collect(),
            deliveries_per_server: (0..servers).map(|_| AtomicU64::new(0)).collect(),
            node_latency: Mutex::new(NodeLatency {
                per_node: (0..servers).map(|_| Histogram::default()).collect(),
                ..NodeLatency::default()
            }),
        }
    }

    /// Microseconds on the clock shared by publishers and subscribers.
    fn micros(&self) -> u64 {
        self.clock.elapsed().as_micros() as u64
    }

    fn error(&self, message: String) {
        if let Ok(mut errors) = self.errors.lock() {
            if errors.len() < 20 || errors.contains_key(&message) {
                *errors.entry(message).or_default() += 1;
            }
        }
    }

    fn error_list(&self) -> Option<Value> {
        let errors = self.errors.lock().ok()?;
        (!errors.is_empty()).then(|| json!(*errors))
    }

    fn first_errors(&self) -> String {
        self.error_list().map(|v| v.to_string()).unwrap_or_default()
    }

    fn record_latencies(&self, samples: &mut Vec<u64>) {
        if samples.is_empty() {
            return;
        }
        if let Ok(mut histogram) = self.histogram.lock() {
            for &sample in samples.iter() {
                histogram.record(sample);
            }
        }
        samples.clear();
    }

    /// Cluster mode: `samples` are all of one subscriber's (on `node`), `same` and `cross` the
    /// same samples split by the node the publication was sent to. Empties all three.
    fn record_node_latencies(&self, node: usize, samples: &mut Vec<u64>, same: &mut Vec<u64>, cross: &mut Vec<u64>) {
        if !samples.is_empty()
            && let Ok(mut latency) = self.node_latency.lock()
        {
            for &sample in same.iter() {
                latency.same.record(sample);
            }
            for &sample in cross.iter() {
                latency.cross.record(sample);
            }
            for &sample in samples.iter() {
                latency.per_node[node].record(sample);
            }
        }
        self.record_latencies(samples);
        same.clear();
        cross.clear();
    }
}

// ---------------------------------------------------------------------------------------------
// Subscribers

struct SubscriberOutcome {
    channel: usize,
    /// The server (node) this subscriber is connected to.
    node: usize,
    /// The first offset this subscription can receive live (subscribe reply's offset + 1).
    base: u64,
    /// Times each offset `base + i` arrived.
    counts: Vec<u8>,
    /// Publications with an offset before `base` or absurdly far after it.
    out_of_range: u64,
    disconnected: bool,
}

async fn subscriber(
    shared: Arc<Shared>,
    target: Target,
    node: usize,
    channels: Arc<Vec<String>>,
    channel: usize,
    gate: Arc<Semaphore>,
    over_socketio: bool,
) -> Option<SubscriberOutcome> {
    let opened = {
        let _permit = gate.acquire().await.ok()?;
        let opening = async {
            match over_socketio {
                true => socketio::open_subscription(&target, &channels[channel]).await,
                false => open_subscription(&target, &channels[channel]).await,
            }
        };
        tokio::time::timeout(Duration::from_secs(30), opening).await
    };
    let (mut conn, base) = match opened {
        Ok(Ok(opened)) => opened,
        Ok(Err(error)) => {
            shared.error(format!("subscribe: {error}"));
            shared.connect_failures.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Err(_) => {
            shared.error("subscribe: timed out after 30s".into());
            shared.connect_failures.fetch_add(1, Ordering::Relaxed);
            return None;
        }
    };
    if let Ok(mut counts) = shared.subscribed_per_channel.lock() {
        *counts.entry(channel).or_default() += 1;
    }
    shared.connected.fetch_add(1, Ordering::Relaxed);
    shared.connected_per_server[node].fetch_add(1, Ordering::Relaxed);
    let mut outcome =
        SubscriberOutcome { channel, node, base, counts: Vec::new(), out_of_range: 0, disconnected: false };
    let mut samples = Vec::with_capacity(LOCAL_SAMPLES);
    let cluster = shared.servers > 1;
    let (mut same, mut cross) =
        if cluster { (Vec::with_capacity(LOCAL_SAMPLES), Vec::new()) } else { (Vec::new(), Vec::new()) };
    let cancelled = shared.cancel.cancelled();
    tokio::pin!(cancelled);
    loop {
        tokio::select! {
            biased;
            _ = &mut cancelled => break,
            filled = conn.fill() => {
                if let Err(error) = filled {
                    shared.error(format!("subscriber: {error}"));
                    outcome.disconnected = true;
                    break;
                }
            }
        }
        let now = shared.micros();
        let mut delivered = 0u64;
        let mut messages = 0u64;
        let mut pings = 0u32;
        let processed = conn.process(|message| {
            let before = delivered;
            if over_socketio && message == socketio::PING {
                pings += 1;
            }
            for frame in message.split(|&b| b == b'\n') {
                let read = if over_socketio { socketio::read_publication(frame, cluster) } else { read_push(frame, cluster) };
                match read {
                    Some((offset, ts, seq)) => {
                        delivered += 1;
                        match offset.checked_sub(outcome.base) {
                            Some(i) if i < 1 << 26 => {
                                let i = i as usize;
                                if i >= outcome.counts.len() {
                                    outcome.counts.resize(i + 1, 0);
                                }
                                outcome.counts[i] = outcome.counts[i].saturating_add(1);
                            }
                            _ => outcome.out_of_range += 1,
                        }
                        if let Some(ts) = ts {
                            let latency = now.saturating_sub(ts);
                            samples.push(latency);
                            if let Some(seq) = seq {
                                if node_of(seq, shared.channels, shared.servers) == node {
                                    same.push(latency);
                                } else {
                                    cross.push(latency);
                                }
                            }
                        }
                    }
                    None if frame.starts_with(br#"{"push":{"disconnect""#) => {
                        shared.error(format!("subscriber: {}", String::from_utf8_lossy(frame)));
                    }
                    None => {}
                }
            }
            messages += u64::from(delivered > before);
        });
        if delivered > 0 {
            shared.deliveries.fetch_add(delivered, Ordering::Relaxed);
            if cluster {
                shared.deliveries_per_server[node].fetch_add(delivered, Ordering::Relaxed);
            }
            shared.push_messages.fetch_add(messages, Ordering::Relaxed);
            shared.last_delivery_us.fetch_max(now, Ordering::Relaxed);
            if samples.len() >= LOCAL_SAMPLES {
                if cluster {
                    shared.record_node_latencies(node, &mut samples, &mut same, &mut cross);
                } else {
                    shared.record_latencies(&mut samples);
                }
            }
        }
        let mut written = conn.flush_pending().await;
        for _ in 0..pings {
            written = written.and(conn.send_text(socketio::PONG).await);
        }
        if let Err(error) = processed.and(written) {
            shared.error(format!("subscriber: {error}"));
            outcome.disconnected = true;
            break;
        }
    }
    if cluster {
        shared.record_node_latencies(node, &mut samples, &mut same, &mut cross);
    } else {
        shared.record_latencies(&mut samples);
    }
    Some(outcome)
}

/// Opens a connection, connects anonymously and subscribes; returns the first live offset.
async fn open_subscription(target: &Target, channel: &str) -> Result<(WsConn<TcpStream>, u64), String> {
    let mut conn = WsConn::open(target).await?;
    let commands =
        format!("{}\n{}", json!({"id": 1, "connect": {}}), json!({"id": 2, "subscribe": {"channel": channel}}));
    conn.send_text(commands.as_bytes()).await?;
    let reply = conn.await_reply(2).await?;
    let offset = reply_u64(&reply, b"\"offset\":").ok_or_else(|| format!("unexpected subscribe reply {reply}"))?;
    Ok((conn, offset + 1))
}

/// A publication push → (offset, the payload's `ts`). Written for speed, not generality: it
/// relies on the server's frame layout `{"push":{"channel":"…","pub":{"epoch":"…","offset":N,
/// "time":…,"data":{"ts":T,…}}}}`.
#[cfg(test)]
fn read_publication(frame: &[u8]) -> Option<(u64, Option<u64>)> {
    read_push(frame, false).map(|(offset, ts, _)| (offset, ts))
}

/// [`read_publication`], plus the payload's `seq` (the global publication index, which tells
/// the node it was sent to) when `with_seq`: `{"ts":T,"seq":I,…}`.
fn read_push(frame: &[u8], with_seq: bool) -> Option<(u64, Option<u64>, Option<u64>)> {
    const PREFIX: &[u8] = br#"{"push":{"channel":""#;
    let rest = frame.strip_prefix(PREFIX)?;
    let at = find(rest, br#""pub":{"#)?;
    read_offset_ts_seq(&rest[at..], with_seq)
}

/// From a publication object's text onwards: its `offset`, then the payload's `ts` and (when
/// `with_seq`) `seq` — `…"offset":N,…"data":{"ts":T,"seq":I,…}`.
fn read_offset_ts_seq(rest: &[u8], with_seq: bool) -> Option<(u64, Option<u64>, Option<u64>)> {
    let at = find(rest, br#""offset":"#)? + br#""offset":"#.len();
    let (offset, used) = parse_u64(&rest[at..])?;
    let rest = &rest[at + used..];
    const TS: &[u8] = br#""data":{"ts":"#;
    const SEQ: &[u8] = br#","seq":"#;
    let Some(at) = find(rest, TS) else { return Some((offset, None, None)) };
    let rest = &rest[at + TS.len()..];
    let Some((ts, used)) = parse_u64(rest) else { return Some((offset, None, None)) };
    let seq = if with_seq { rest[used..].strip_prefix(SEQ).and_then(parse_u64).map(|(seq, _)| seq) } else { None };
    Some((offset, Some(ts), seq))
}

// ---------------------------------------------------------------------------------------------
// Publishers

struct Plan {
    channels: Arc<Vec<String>>,
    /// The global publication indices each publisher sends, in order.
    schedule: Vec<Vec<u64>>,
    total_rate: f64,
    start: tokio::time::Instant,
    payload_bytes: usize,
}

struct Acks {
    acks: Vec<(usize, u64)>,
    acknowledged: u64,
    errors: u64,
}

async fn connect_publisher(target: &Target, token: &str) -> Result<WsConn<TcpStream>, String> {
    let mut conn = WsConn::open(target).await.map_err(|e| format!("publisher: {e}"))?;
    let command = json!({"id": 1, "connect": {"token": token}}).to_string();
    conn.send_text(command.as_bytes()).await?;
    let reply = conn.await_reply(1).await.map_err(|e| format!("publisher connect: {e}"))?;
    if !reply.contains("\"result\"") {
        return Err(format!("publisher connect refused: {reply}"));
    }
    Ok(conn)
}

/// Which publications each publisher sends. Global index i goes to channel i mod K at start +
/// i / total_rate. With one server publisher p sends i = p, p+P, p+2P, …; with S servers
/// publication i is sent to server `node_of(i)` by that server's publishers in turn.
fn schedule(total: u64, channels: usize, servers: usize, publishers: usize) -> Vec<Vec<u64>> {
    let mut out = vec![Vec::new(); publishers];
    if publishers == 0 {
        return out;
    }
    if servers <= 1 {
        for i in 0..total {
            out[(i % publishers as u64) as usize].push(i);
        }
        return out;
    }
    let per_server = publishers / servers;
    let mut turn = vec![0usize; servers];
    for i in 0..total {
        let node = node_of(i, channels, servers);
        out[node * per_server + turn[node] % per_server].push(i);
        turn[node] += 1;
    }
    out
}

/// Publisher `p` sends the publications `plan.schedule[p]`. Returns the reader
/// (acknowledgements) and writer (count sent) tasks.
fn spawn_publisher(
    shared: Arc<Shared>,
    plan: Arc<Plan>,
    p: usize,
    conn: WsConn<TcpStream>,
    ack_cancel: CancellationToken,
) -> (tokio::task::JoinHandle<Acks>, tokio::task::JoinHandle<Result<u64, String>>) {
    let WsConn { io, buf, need, fragments, pending, mask } = conn;
    let (read_half, write_half) = io.into_split();
    let writer = Arc::new(tokio::sync::Mutex::new(write_half));
    // Send times of the publishes not yet answered: the server answers a connection's commands
    // in order, so each reply matches the oldest.
    let in_flight = Arc::new(Mutex::new(std::collections::VecDeque::<u64>::new()));
    let mine = plan.schedule[p].len() as u64;
    let mut reader = WsConn { io: read_half, buf, need, fragments, pending, mask: mask ^ 0x5a5a };
    let channels = plan.channels.len();
    let reader_task = {
        let shared = shared.clone();
        let writer = writer.clone();
        let in_flight = in_flight.clone();
        tokio::spawn(async move {
            let mut acks = Acks { acks: Vec::with_capacity(mine as usize), acknowledged: 0, errors: 0 };
            let cancelled = ack_cancel.cancelled();
            tokio::pin!(cancelled);
            while acks.acknowledged + acks.errors < mine {
                tokio::select! {
                    biased;
                    _ = &mut cancelled => break,
                    filled = reader.fill() => if let Err(error) = filled {
                        shared.error(format!("publisher: {error}"));
                        break;
                    }
                }
                let now = shared.micros();
                let processed = reader.process(|message| {
                    for frame in message.split(|&b| b == b'\n') {
                        let Some(id) = reply_u64_bytes(frame, b"{\"id\":") else { continue };
                        let Some(i) = id.checked_sub(PUBLISH_ID_BASE) else { continue };
                        let sent_at = in_flight.lock().ok().and_then(|mut q| q.pop_front());
                        if let (Some(sent_at), Ok(mut h)) = (sent_at, shared.ack_histogram.lock()) {
                            h.record(now.saturating_sub(sent_at));
                        }
                        if find(frame, b"\"result\":").is_some() {
                            if let Some(offset) = reply_u64_bytes(frame, b"\"offset\":") {
                                acks.acks.push(((i % channels as u64) as usize, offset));
                                acks.acknowledged += 1;
                                continue;
                            }
                        }
                        acks.errors += 1;
                        let error = find(frame, b"\"error\":").map_or(frame, |at| &frame[at..]);
                        shared.error(format!("publish: {}", String::from_utf8_lossy(error)));
                    }
                });
                if !reader.pending.is_empty() {
                    let mut w = writer.lock().await;
                    let _ = w.write_all(&reader.pending).await;
                    reader.pending.clear();
                }
                if let Err(error) = processed {
                    shared.error(format!("publisher: {error}"));
                    break;
                }
            }
            acks
        })
    };
    let writer_task = tokio::spawn(async move {
        let pad = "x".repeat(plan.payload_bytes);
        let mut frame = Vec::with_capacity(plan.payload_bytes + 256);
        let mut text = String::with_capacity(plan.payload_bytes + 256);
        let mut sent = 0u64;
        let mut mask = mask;
        for &i in &plan.schedule[p] {
            let due = plan.start + Duration::from_secs_f64(i as f64 / plan.total_rate);
            tokio::time::sleep_until(due).await;
            let channel = &plan.channels[(i % plan.channels.len() as u64) as usize];
            let ts = shared.micros();
            text.clear();
            use std::fmt::Write;
            let _ = write!(text, r#"{{"ts":{ts},"seq":{i},"pad":""#);
            let pad_len = plan.payload_bytes.saturating_sub(text.len() + 2);
            text.push_str(&pad[..pad_len]);
            text.push_str("\"}");
            let command =
                format!(r#"{{"id":{},"publish":{{"channel":"{channel}","data":{text}}}}}"#, PUBLISH_ID_BASE + i);
            frame.clear();
            mask = next_mask(mask);
            encode_frame(&mut frame, 0x1, command.as_bytes(), mask);
            if let Ok(mut q) = in_flight.lock() {
                q.push_back(ts);
            }
            writer.lock().await.write_all(&frame).await.map_err(|e| format!("publisher write: {e}"))?;
            sent += 1;
        }
        Ok(sent)
    });
    (reader_task, writer_task)
}

// ---------------------------------------------------------------------------------------------
// A minimal WebSocket client (RFC 6455): text frames, ping/pong, close; no extensions.

#[derive(Clone)]
struct Target {
    addr: SocketAddr,
    host: String,
    path: String,
}

impl Target {
    async fn resolve(server: &str) -> Result<Target, String> {
        let url = websocket_url(server)?;
        let rest =
            url.strip_prefix("ws://").ok_or_else(|| format!("bench speaks plain ws:// (http://) only, not {url}"))?;
        let (host, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        let with_port = if host.rsplit_once(':').is_some_and(|(_, p)| p.parse::<u16>().is_ok()) {
            host.to_string()
        } else {
            format!("{host}:80")
        };
        let addr = tokio::net::lookup_host(&with_port)
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .next()
            .ok_or_else(|| format!("cannot resolve {host}"))?;
        Ok(Target { addr, host: host.to_string(), path: path.to_string() })
    }
}

struct WsConn<S> {
    io: S,
    /// Bytes read and not yet consumed.
    buf: Vec<u8>,
    /// Bytes `buf` must hold before the next frame can be read.
    need: usize,
    /// A fragmented message being put together.
    fragments: Vec<u8>,
    /// Frames to send (pongs), written by the owner after `process`.
    pending: Vec<u8>,
    mask: u32,
}

impl WsConn<TcpStream> {
    async fn open(target: &Target) -> Result<Self, String> {
        let mut io = TcpStream::connect(target.addr).await.map_err(|e| format!("connect {}: {e}", target.addr))?;
        io.set_nodelay(true).map_err(|e| e.to_string())?;
        // The key is not secret: it only proves the server speaks WebSocket.
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: Y291cnRzaWRlLWJlbmNoIQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            target.path, target.host
        );
        io.write_all(request.as_bytes()).await.map_err(|e| format!("handshake: {e}"))?;
        let mut buf = Vec::with_capacity(READ_BUFFER_BYTES);
        loop {
            if let Some(end) = find(&buf, b"\r\n\r\n") {
                if !buf.starts_with(b"HTTP/1.1 101") {
                    let line = buf.split(|&b| b == b'\r').next().unwrap_or_default();
                    return Err(format!("handshake refused: {}", String::from_utf8_lossy(line)));
                }
                buf.drain(..end + 4);
                break;
            }
            if buf.len() > 16 * 1024 {
                return Err("handshake: response headers too long".into());
            }
            buf.reserve(1024);
            if io.read_buf(&mut buf).await.map_err(|e| format!("handshake: {e}"))? == 0 {
                return Err("handshake: connection closed".into());
            }
        }
        let mask = next_mask(io.local_addr().map(|a| a.port() as u32).unwrap_or(1) | 1);
        Ok(WsConn { io, buf, need: 2, fragments: Vec::new(), pending: Vec::new(), mask })
    }

    async fn send_text(&mut self, text: &[u8]) -> Result<(), String> {
        let mut frame = Vec::with_capacity(text.len() + 14);
        self.mask = next_mask(self.mask);
        encode_frame(&mut frame, 0x1, text, self.mask);
        self.io.write_all(&frame).await.map_err(|e| format!("write: {e}"))
    }

    async fn flush_pending(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let written = self.io.write_all(&self.pending).await.map_err(|e| format!("write: {e}"));
        self.pending.clear();
        written
    }

    /// Reads until the reply with this id; returns it, or the server's error as `Err`.
    async fn await_reply(&mut self, id: u64) -> Result<String, String> {
        let prefix = format!("{{\"id\":{id},");
        loop {
            self.fill().await?;
            let mut found = None;
            self.process(|message| {
                for frame in message.split(|&b| b == b'\n') {
                    if frame.starts_with(prefix.as_bytes()) {
                        found = Some(String::from_utf8_lossy(frame).into_owned());
                    } else if frame.starts_with(b"{\"id\":") && find(frame, b"\"error\"").is_some() {
                        found.get_or_insert_with(|| String::from_utf8_lossy(frame).into_owned());
                    }
                }
            })?;
            self.flush_pending().await?;
            if let Some(reply) = found {
                if reply.starts_with(&prefix) && find(reply.as_bytes(), b"\"result\"").is_some() {
                    return Ok(reply);
                }
                return Err(format!("server refused: {reply}"));
            }
        }
    }
}

impl<S: AsyncRead + Unpin> WsConn<S> {
    /// Reads more bytes (at least one); cancel-safe.
    async fn fill(&mut self) -> Result<(), String> {
        let additional = self.need.saturating_sub(self.buf.len()).max(1024);
        if self.buf.capacity() - self.buf.len() < additional {
            self.buf.reserve(additional);
        }
        match self.io.read_buf(&mut self.buf).await {
            Ok(0) => Err("connection closed".into()),
            Ok(_) => Ok(()),
            Err(e) => Err(format!("read: {e}")),
        }
    }
}

impl<S> WsConn<S> {
    /// Hands every complete text message in the buffer to `on_text`; queues pongs. `Err` when
    /// the server closed the connection.
    fn process(&mut self, mut on_text: impl FnMut(&[u8])) -> Result<(), String> {
        let mut pos = 0;
        let mut outcome = Ok(());
        self.need = 2;
        loop {
            let avail = &self.buf[pos..];
            let Some((header, len, fin, opcode)) = frame_header(avail) else {
                self.need = 14;
                break;
            };
            if avail.len() < header + len {
                self.need = header + len;
                break;
            }
            let payload = &avail[header..header + len];
            match opcode {
                0x1 if fin => on_text(payload),
                0x1 | 0x2 => {
                    self.fragments.clear();
                    self.fragments.extend_from_slice(payload);
                }
                0x0 => {
                    self.fragments.extend_from_slice(payload);
                    if fin {
                        on_text(&self.fragments);
                        self.fragments = Vec::new();
                    }
                }
                0x8 => {
                    let code = if payload.len() >= 2 { u16::from_be_bytes([payload[0], payload[1]]) } else { 1005 };
                    let reason = String::from_utf8_lossy(payload.get(2..).unwrap_or_default());
                    outcome = Err(format!("closed by the server: {code} {reason}"));
                }
                0x9 => {
                    self.mask = next_mask(self.mask);
                    encode_frame(&mut self.pending, 0xA, payload, self.mask);
                }
                _ => {}
            }
            pos += header + len;
            if outcome.is_err() {
                break;
            }
        }
        self.buf.drain(..pos);
        if self.buf.capacity() > 4 * READ_BUFFER_BYTES && self.buf.len() < READ_BUFFER_BYTES {
            self.buf.shrink_to(READ_BUFFER_BYTES);
        }
        outcome
    }
}

/// (header length, payload length, FIN, opcode) of the frame at the start of `b`.
fn frame_header(b: &[u8]) -> Option<(usize, usize, bool, u8)> {
    if b.len() < 2 {
        return None;
    }
    let fin = b[0] & 0x80 != 0;
    let opcode = b[0] & 0x0f;
    let masked = if b[1] & 0x80 != 0 { 4 } else { 0 };
    let (len, header) = match b[1] & 0x7f {
        126 => (u16::from_be_bytes(b.get(2..4)?.try_into().ok()?) as usize, 4),
        127 => (u64::from_be_bytes(b.get(2..10)?.try_into().ok()?) as usize, 10),
        n => (n as usize, 2),
    };
    // Servers do not mask; a masked frame would still be framed correctly (its payload is
    // ignored unless it is text, which the protocol never masks).
    Some((header + masked, len, fin, opcode))
}

/// Appends a masked client frame.
fn encode_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: u32) {
    out.push(0x80 | opcode);
    let len = payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= u16::MAX as usize {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let key = mask.to_be_bytes();
    out.extend_from_slice(&key);
    let start = out.len();
    out.extend_from_slice(payload);
    for (i, byte) in out[start..].iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

fn next_mask(x: u32) -> u32 {
    // xorshift32: masks need not be secret for a benchmark, only present.
    let mut x = if x == 0 { 0x9e37_79b9 } else { x };
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    x
}

// ---------------------------------------------------------------------------------------------
// Byte helpers

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Leading decimal digits → (value, digits used).
fn parse_u64(b: &[u8]) -> Option<(u64, usize)> {
    let mut value = 0u64;
    let mut used = 0;
    for &c in b {
        if !c.is_ascii_digit() {
            break;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
        used += 1;
    }
    (used > 0).then_some((value, used))
}

fn reply_u64_bytes(frame: &[u8], key: &[u8]) -> Option<u64> {
    let at = find(frame, key)? + key.len();
    parse_u64(&frame[at..]).map(|(v, _)| v)
}

fn reply_u64(frame: &str, key: &[u8]) -> Option<u64> {
    reply_u64_bytes(frame.as_bytes(), key)
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn run_id() -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
    let mixed = (nanos as u64 ^ (u64::from(std::process::id()) << 32)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    format!("{:08x}", mixed >> 32)
}

// ---------------------------------------------------------------------------------------------
// Latency histogram: exact below 2,048 µs, then 1,024 buckets per power of two (< 0.1 % error).

const SUB_BITS: u32 = 10;
const SUB: u64 = 1 << SUB_BITS;

#[derive(Default)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl Histogram {
    fn index(v: u64) -> usize {
        if v < 2 * SUB {
            v as usize
        } else {
            let shift = (63 - v.leading_zeros()) - SUB_BITS;
            ((u64::from(shift) + 1) * SUB + ((v >> shift) - SUB)) as usize
        }
    }

    /// The middle of bucket `i`.
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < 2 * SUB {
            i
        } else {
            let shift = i / SUB - 1;
            (((i % SUB) + SUB) << shift) + ((1 << shift) >> 1)
        }
    }

    fn record(&mut self, v: u64) {
        let i = Self::index(v);
        if i >= self.counts.len() {
            self.counts.resize(i + 1, 0);
        }
        self.counts[i] += 1;
        self.total += 1;
        self.max = self.max.max(v);
    }

    fn percentile(&self, q: f64) -> u64 {
        if self.total == 0 {
            return 0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Self::value(i).min(self.max);
            }
        }
        self.max
    }
}

// ---------------------------------------------------------------------------------------------
// /proc readings and the file limit

struct Proc {
    dir: String,
}

impl Proc {
    fn server(pid: u32) -> Proc {
        Proc { dir: format!("/proc/{pid}") }
    }

    fn me() -> Proc {
        Proc { dir: "/proc/self".into() }
    }

    fn rss_bytes(&self) -> Result<u64, String> {
        let status =
            std::fs::read_to_string(format!("{}/status", self.dir)).map_err(|e| format!("{}/status: {e}", self.dir))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map(|kb| kb * 1024)
            .ok_or_else(|| format!("no VmRSS in {}/status", self.dir))
    }

    /// utime + stime of the process, in microseconds.
    fn cpu_us(&self) -> Result<u64, String> {
        let stat =
            std::fs::read_to_string(format!("{}/stat", self.dir)).map_err(|e| format!("{}/stat: {e}", self.dir))?;
        stat_cpu_us(&stat).map(|(_, us)| us).ok_or_else(|| format!("cannot read {}/stat", self.dir))
    }

    /// CPU microseconds per thread name (threads of one name summed).
    fn threads_cpu_us(&self) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        let Ok(tasks) = std::fs::read_dir(format!("{}/task", self.dir)) else { return out };
        for task in tasks.flatten() {
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else { continue };
            if let Some((name, us)) = stat_cpu_us(&stat) {
                *out.entry(name).or_default() += us;
            }
        }
        out
    }
}

/// (comm, utime + stime in µs) from a `stat` file.
fn stat_cpu_us(stat: &str) -> Option<(String, u64)> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    let name = stat[open + 1..close].to_string();
    let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
    // After the command come state (field 3) … utime (14) and stime (15).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((name, (utime + stime) * 1_000_000 / clock_ticks()))
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// The first eight CPU time categories of /proc/stat's `cpu` line.
const MACHINE_FIELDS: [&str; 8] = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"];

/// Jiffies of the whole machine per category of [`MACHINE_FIELDS`], from /proc/stat.
fn machine_cpu() -> Result<[u64; 8], String> {
    let stat = std::fs::read_to_string("/proc/stat").map_err(|e| format!("/proc/stat: {e}"))?;
    let line = stat.lines().next().ok_or("empty /proc/stat")?;
    let mut out = [0u64; 8];
    for (slot, value) in out.iter_mut().zip(line.split_whitespace().skip(1)) {
        *slot = value.parse().map_err(|_| format!("bad /proc/stat line {line:?}"))?;
    }
    Ok(out)
}

/// Raises the soft RLIMIT_NOFILE to the hard limit; returns the soft limit now in force.
fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit.rlim_cur = limit.rlim_max;
            }
        }
    }
    limit.rlim_cur as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_publication_push() {
        let frame = br#"{"push":{"channel":"match:bench-1-0","pub":{"epoch":"ab","offset":42,"time":1700000000000,"data":{"ts":123456,"seq":7,"pad":"xx"}}}}"#;
        assert_eq!(read_publication(frame), Some((42, Some(123456))));
        assert_eq!(read_publication(br#"{"id":2,"result":{"epoch":"ab","offset":0}}"#), None);
        let foreign = br#"{"push":{"channel":"match:x","pub":{"epoch":"ab","offset":3,"time":1,"data":{"home":1}}}}"#;
        assert_eq!(read_publication(foreign), Some((3, None)));
    }

    #[test]
    fn reads_the_sequence_number_in_cluster_mode() {
        let frame = br#"{"push":{"channel":"match:bench-1-0","pub":{"epoch":"ab","offset":42,"time":1700000000000,"data":{"ts":123456,"seq":7,"pad":"xx"}}}}"#;
        assert_eq!(read_push(frame, true), Some((42, Some(123456), Some(7))));
        assert_eq!(read_push(frame, false), Some((42, Some(123456), None)));
        let foreign = br#"{"push":{"channel":"match:x","pub":{"epoch":"ab","offset":3,"time":1,"data":{"home":1}}}}"#;
        assert_eq!(read_push(foreign, true), Some((3, None, None)));
    }

    #[test]
    fn spreads_channels_and_publishers_over_nodes() {
        // One server: publisher p sends p, p+P, … as before.
        assert_eq!(schedule(7, 1, 1, 3), vec![vec![0, 3, 6], vec![1, 4], vec![2, 5]]);
        // Every channel has subscribers and publications on every node.
        let (channels, servers) = (30, 3);
        let mut seen = vec![[0u64; 3]; channels];
        for i in 0..3000u64 {
            seen[(i % channels as u64) as usize][node_of(i, channels, servers)] += 1;
        }
        assert!(seen.iter().all(|nodes| nodes.iter().all(|&n| (33..=34).contains(&n))), "{seen:?}");
        // 9 publishers, 3 per node: each sends a ninth, to its own node only.
        let plan = schedule(6000, channels, servers, 9);
        for (p, mine) in plan.iter().enumerate() {
            assert!((666..=667).contains(&mine.len()), "{p}: {}", mine.len());
            assert!(mine.iter().all(|&i| node_of(i, channels, servers) == p / 3));
        }
        assert_eq!(plan.iter().map(Vec::len).sum::<usize>(), 6000);
        assert_eq!(node_of(5, 1, 3), 2, "one channel: round-robin");
    }

    #[test]
    fn frames_round_trip_through_the_reader() {
        let mut wire = Vec::new();
        // Server frames are unmasked: build them by hand.
        for text in [&b"hello"[..], &vec![b'a'; 300][..], &vec![b'b'; 70_000][..]] {
            wire.push(0x81);
            match text.len() {
                n if n < 126 => wire.push(n as u8),
                n if n <= 65535 => {
                    wire.push(126);
                    wire.extend_from_slice(&(n as u16).to_be_bytes());
                }
                n => {
                    wire.push(127);
                    wire.extend_from_slice(&(n as u64).to_be_bytes());
                }
            }
            wire.extend_from_slice(text);
        }
        wire.extend_from_slice(&[0x89, 0x02, b'h', b'i']);
        let mut conn = WsConn { io: (), buf: Vec::new(), need: 2, fragments: Vec::new(), pending: Vec::new(), mask: 7 };
        let mut lengths = Vec::new();
        for chunk in wire.chunks(1000) {
            conn.buf.extend_from_slice(chunk);
            conn.process(|m| lengths.push(m.len())).unwrap();
        }
        assert_eq!(lengths, vec![5, 300, 70_000]);
        assert_eq!(conn.pending.len(), 2 + 4 + 2, "a masked pong answers the ping");
        assert_eq!(conn.pending[0], 0x8A);
    }

    #[test]
    fn histogram_percentiles_are_close() {
        let mut h = Histogram::default();
        for v in 1..=100_000u64 {
            h.record(v);
        }
        let p50 = h.percentile(0.5) as f64;
        let p99 = h.percentile(0.99) as f64;
        assert!((p50 - 50_000.0).abs() / 50_000.0 < 0.002, "{p50}");
        assert!((p99 - 99_000.0).abs() / 99_000.0 < 0.002, "{p99}");
        assert_eq!(h.max, 100_000);
        for v in [0, 1, 2047, 2048, 4095, 4096, 1 << 30] {
            let i = Histogram::index(v);
            assert!(Histogram::value(i).abs_diff(v) <= v / 1000 + 1, "{v}");
        }
    }

    #[test]
    fn parses_proc_stat() {
        let stat = "1234 (tokio-runtime-w) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0";
        let (name, us) = stat_cpu_us(stat).unwrap();
        assert_eq!(name, "tokio-runtime-w");
        assert_eq!(us, 300 * 1_000_000 / clock_ticks());
    }
}
