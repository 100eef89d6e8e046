//! The leaderboard benchmark: 1,000,000 players, then sustained score submits, with top-10,
//! rank and around-me query latencies, and rank changes for 10,000 listening players — on the
//! bare index, and through the service on the memory store and on SQLite. Prints one JSON line
//! per figure.
//!
//! `cargo run --release -p courtside-leaderboard --example leaderboard_bench [players] [seconds]`

use std::sync::Arc;
use std::time::{Duration, Instant};

use courtside_core::store::memory::MemoryStore;
use courtside_core::store::{NoSink, StreamStore};
use courtside_leaderboard::changes::Listeners;
use courtside_leaderboard::ranking::{Placement, Ranking};
use courtside_leaderboard::{BoardSpec, LeaderboardService, Operator, Order};
use courtside_sqlite::SqliteStore;
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};
use serde_json::json;

const LISTENERS: usize = 10_000;
const SUBMITS_PER_SEC: u64 = 10_000;
const SUBMITTERS: u64 = 200;
const LOADERS: usize = 2_048;
const SCORE_MAX: i64 = 1_000_000;

fn percentile(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index] as f64 / 1_000.0
}

/// Prints one figure: p50/p99 in microseconds of `nanos`.
fn latency(figure: &str, store: &str, nanos: &mut [u64], extra: serde_json::Value) {
    nanos.sort_unstable();
    let mut line = json!({
        "figure": figure, "store": store, "count": nanos.len(),
        "p50_us": percentile(nanos, 0.50), "p99_us": percentile(nanos, 0.99), "max_us": percentile(nanos, 1.0),
    });
    if let (Some(line), Some(extra)) = (line.as_object_mut(), extra.as_object()) {
        line.extend(extra.clone());
    }
    println!("{line}");
}

fn index_figures(players: usize) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let started = Instant::now();
    let entries = (0..players).map(|i| (Arc::from(format!("p{i}").as_str()), Placement { score: rng.random_range(0..SCORE_MAX), seq: i as u64 }));
    let mut ranking = Ranking::from_entries(Order::Desc, entries);
    println!("{}", json!({"figure": "index_load", "store": "none", "players": players, "seconds": started.elapsed().as_secs_f64()}));

    let updates = 1_000_000;
    let mut update_nanos = Vec::with_capacity(updates);
    let started = Instant::now();
    for seq in 0..updates {
        let player = format!("p{}", rng.random_range(0..players));
        let placement = Placement { score: rng.random_range(0..SCORE_MAX), seq: (players + seq) as u64 };
        let begun = Instant::now();
        ranking.upsert(&player, placement);
        update_nanos.push(begun.elapsed().as_nanos() as u64);
    }
    let rate = updates as f64 / started.elapsed().as_secs_f64();
    latency("index_update", "none", &mut update_nanos, json!({"players": players, "updates_per_sec": rate.round()}));

    // Rank changes: uniformly random new scores are the worst case (each move passes about a
    // third of the listeners); every passed listener's new rank is computed.
    let mut listeners = Listeners::default();
    for _ in 0..LISTENERS {
        listeners.listen(&format!("p{}", rng.random_range(0..players)), &ranking);
    }
    let moves = 20_000;
    let (mut change_nanos, mut affected) = (Vec::with_capacity(moves), 0usize);
    for seq in 0..moves {
        let player = format!("p{}", rng.random_range(0..players));
        let placement = Placement { score: rng.random_range(0..SCORE_MAX), seq: (players + updates + seq) as u64 };
        let old = ranking.get(&player).map(|p| ranking.key_of(p));
        ranking.upsert(&player, placement);
        let begun = Instant::now();
        affected += listeners.moved(&player, old, Some(ranking.key_of(placement)), &ranking).len();
        change_nanos.push(begun.elapsed().as_nanos() as u64);
    }
    latency("rank_changes_random_move", "none", &mut change_nanos, json!({"players": players, "listeners": LISTENERS, "mean_affected": affected as f64 / moves as f64}));
    // A small move (a score nudged by one) passes few listeners.
    let mut nudge_nanos = Vec::with_capacity(moves);
    let mut nudged = 0usize;
    for seq in 0..moves {
        let player = format!("p{}", rng.random_range(0..players));
        let Some(old) = ranking.get(&player) else { continue };
        let placement = Placement { score: old.score + 100, seq: (players + updates + moves + seq) as u64 };
        ranking.upsert(&player, placement);
        let begun = Instant::now();
        nudged += listeners.moved(&player, Some(ranking.key_of(old)), Some(ranking.key_of(placement)), &ranking).len();
        nudge_nanos.push(begun.elapsed().as_nanos() as u64);
    }
    latency("rank_changes_small_move", "none", &mut nudge_nanos, json!({"players": players, "listeners": LISTENERS, "mean_affected": nudged as f64 / moves as f64}));

    let last = ranking.page(players - 1, 1).pop().map(|r| r.player).unwrap_or_default();
    let old = ranking.get(&last).map(|p| ranking.key_of(p));
    let jump = Placement { score: SCORE_MAX * 2, seq: (players + updates + 2 * moves) as u64 };
    let begun = Instant::now();
    ranking.upsert(&last, jump);
    let changes = listeners.moved(&last, old, Some(ranking.key_of(jump)), &ranking);
    println!(
        "{}",
        json!({"figure": "rank_changes_last_to_first", "store": "none", "players": players, "listeners": LISTENERS,
               "affected": changes.len(), "us": begun.elapsed().as_nanos() as f64 / 1_000.0})
    );

    for (figure, query) in [("top10", 0), ("rank", 1), ("around5", 2)] {
        let mut nanos = Vec::with_capacity(100_000);
        for _ in 0..100_000 {
            let player = format!("p{}", rng.random_range(0..players));
            let begun = Instant::now();
            let found = match query {
                0 => ranking.top(10).len(),
                1 => ranking.rank(&player).map_or(0, |_| 1),
                _ => ranking.around(&player, 5).len(),
            };
            nanos.push(begun.elapsed().as_nanos() as u64);
            std::hint::black_box(found);
        }
        latency(&format!("index_query_{figure}"), "none", &mut nanos, json!({"players": players}));
    }
}

/// Loads `players` through the service (concurrent submits, batched), then runs 10,000 submits
/// a second for `seconds` with queries alongside.
async fn service_figures(store_name: &str, store: Arc<dyn StreamStore>, players: usize, seconds: u64) -> LeaderboardService {
    let spec = BoardSpec { operator: Operator::Set, ..BoardSpec::new("bench") };
    let service = LeaderboardService::new(store.clone(), || 0, None);
    service.declare(spec.clone()).expect("declare");
    let started = Instant::now();
    let mut loaders = tokio::task::JoinSet::new();
    for loader in 0..LOADERS {
        let service = service.clone();
        loaders.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(loader as u64);
            for i in (loader..players).step_by(LOADERS) {
                service.submit("bench", &format!("p{i}"), rng.random_range(0..SCORE_MAX), None).await.expect("load");
            }
        });
    }
    while let Some(done) = loaders.join_next().await {
        done.expect("loader");
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("{}", json!({"figure": "service_load", "store": store_name, "players": players, "seconds": elapsed, "submits_per_sec": (players as f64 / elapsed).round()}));

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let submit_nanos = Arc::new(Mutex::new(Vec::new()));
    let affected = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut submitters = tokio::task::JoinSet::new();
    for submitter in 0..SUBMITTERS {
        let (service, submit_nanos, affected) = (service.clone(), submit_nanos.clone(), affected.clone());
        submitters.spawn(async move {
            let mut rng = rand::rngs::StdRng::seed_from_u64(1_000 + submitter);
            let mut ticks = tokio::time::interval(Duration::from_micros(1_000_000 * SUBMITTERS / SUBMITS_PER_SEC));
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut count = 0u64;
            while Instant::now() < deadline {
                ticks.tick().await;
                let player = format!("p{}", rng.random_range(0..players));
                let begun = Instant::now();
                let op_id = format!("s{submitter}-{count}");
                let submitted = service.submit("bench", &player, rng.random_range(0..SCORE_MAX), Some(&op_id)).await.expect("submit");
                submit_nanos.lock().push(begun.elapsed().as_nanos() as u64);
                affected.fetch_add(submitted.update.changes.len() as u64, std::sync::atomic::Ordering::Relaxed);
                count += 1;
            }
        });
    }
    let started = Instant::now();
    let mut queries: [Vec<u64>; 3] = Default::default();
    let mut query_rng = rand::rngs::StdRng::seed_from_u64(3);
    while Instant::now() < deadline {
        for (query, nanos) in queries.iter_mut().enumerate() {
            let player = format!("p{}", query_rng.random_range(0..players));
            let begun = Instant::now();
            let found = match query {
                0 => service.top("bench", None, 10).await.map(|s| s.entries.len()),
                1 => service.rank("bench", None, &player).await.map(|r| r.map_or(0, |_| 1)),
                _ => service.around("bench", None, &player, 5).await.map(|s| s.entries.len()),
            };
            nanos.push(begun.elapsed().as_nanos() as u64);
            std::hint::black_box(found.expect("query"));
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    while let Some(done) = submitters.join_next().await {
        done.expect("submitter");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let mut submit_nanos = std::mem::take(&mut *submit_nanos.lock());
    let rate = submit_nanos.len() as f64 / elapsed;
    let mean_affected = affected.load(std::sync::atomic::Ordering::Relaxed) as f64 / submit_nanos.len().max(1) as f64;
    latency(
        "service_submit",
        store_name,
        &mut submit_nanos,
        json!({"players": players, "target_per_sec": SUBMITS_PER_SEC, "submits_per_sec": rate.round(), "mean_affected": mean_affected}),
    );
    for (figure, nanos) in ["top10", "rank", "around5"].into_iter().zip(queries.iter_mut()) {
        latency(&format!("service_query_{figure}"), store_name, nanos, json!({"players": players, "under_submits_per_sec": rate.round()}));
    }

    let started = Instant::now();
    let rebuilt = LeaderboardService::new(store, || 0, None);
    rebuilt.declare(spec).expect("declare");
    let total = rebuilt.top("bench", None, 10).await.expect("rebuild").total;
    println!("{}", json!({"figure": "service_rebuild", "store": store_name, "players": total, "seconds": started.elapsed().as_secs_f64()}));
    service
}

fn main() {
    let mut args = std::env::args().skip(1);
    let players: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(10);
    index_figures(players);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let memory: Arc<dyn StreamStore> = Arc::new(MemoryStore::new(Arc::new(NoSink)));
        drop(service_figures("memory", memory, players, seconds).await);
        let directory = tempfile::tempdir().expect("tempdir");
        let sqlite = Arc::new(SqliteStore::open(&directory.path().join("bench.db"), Arc::new(NoSink)).expect("open sqlite"));
        drop(service_figures("sqlite", sqlite.clone(), players, seconds).await);
        sqlite.close().await;
    });
}
