//! Score updates through the sports service on the embedded SQLite store: `keepers` concurrent
//! scorekeepers, each holding the claim of its own match and sending point after point (each
//! update awaited, as an app does), against a fresh store in a temporary directory.
//!
//! Each accepted update is one atomic group: the match record, a history entry and four public
//! copies (`match:`, `tournament:…:scores`, `division:`, `court:`), durable before the answer.
//!
//! `cargo run --release -p courtside-domain --example score_update_throughput [keepers] [updates_per_keeper]`
//! prints one JSON line: `{"updates_per_sec":…,"p50_ms":…,"p99_ms":…,…}`.

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use courtside_core::channel::Role;
use courtside_core::conformance::load::CountingSink;
use courtside_core::store::{Retention, StreamStore};
use courtside_domain::claim::ClaimPolicy;
use courtside_domain::model::{Court, Division, Match, Team, Tournament};
use courtside_domain::scoring::{MatchStatus, SetScore};
use courtside_domain::service::{Actor, ScoreUpdate, SportsService};
use courtside_sqlite::SqliteStore;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let keepers: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(50).max(1);
    let updates_per_keeper: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(200).max(1);

    let directory = tempfile::tempdir()?;
    let sink = Arc::new(CountingSink::default());
    let store: Arc<dyn StreamStore> = Arc::new(SqliteStore::open(&directory.path().join("bench.db"), sink.clone())?);
    let now = || i64::try_from(courtside_core::stream::now_ms()).unwrap_or(i64::MAX);
    let retention = |_: &courtside_core::ChannelName| Retention { history_size: 1000, history_ttl_secs: 86_400, keyed: true };
    let sports = SportsService::new(store.clone(), retention, ClaimPolicy::new(3_600_000, 3_600_000)?, now);

    let director = Actor::new("bench", vec![Role::Director]);
    sports.create_tournament(&director, Tournament { id: "bench".into(), name: "Bench".into(), default_format: None }).await?;
    sports.put_division(&director, "bench", Division { id: "d".into(), name: "D".into() }).await?;
    for team in ["a", "b"] {
        sports.put_team(&director, "bench", Team { id: team.into(), name: team.into(), division_id: None }).await?;
    }
    let mut tasks = Vec::new();
    for keeper in 0..keepers {
        let court = format!("c{keeper}");
        sports.put_court(&director, "bench", Court { id: court.clone(), name: court.clone() }).await?;
        let id = format!("m{keeper}");
        let planned = Match {
            id: id.clone(),
            division_id: "d".into(),
            home_team_id: "a".into(),
            away_team_id: "b".into(),
            court_id: Some(court),
            scheduled_at_ms: None,
            format: None,
        };
        sports.create_match(&director, "bench", planned).await?;
        let actor = Actor::new(format!("keeper{keeper}"), vec![Role::Scorekeeper]);
        let claim = sports.claim(&actor, "bench", &id, None).await?;
        let sports = sports.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(updates_per_keeper);
            let mut set = SetScore::new(0, 0);
            for n in 0..updates_per_keeper {
                // Alternate points: the set reaches deuce and stays in play (win by 2).
                if n % 2 == 0 { set.home += 1 } else { set.away += 1 }
                let update = ScoreUpdate {
                    match_id: id.clone(),
                    sets: vec![set],
                    status: MatchStatus::InProgress,
                    base_version: None,
                    client_time_ms: None,
                    op_id: Some(format!("{id}-{n}")),
                    fencing_token: Some(claim.fencing_token),
                };
                let started = Instant::now();
                sports.update_score(&actor, "bench", update).await.map_err(|e| e.to_string())?;
                latencies.push(started.elapsed());
            }
            Ok::<_, String>(latencies)
        }));
    }
    let started = Instant::now();
    let mut latencies: Vec<Duration> = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    store.close().await;
    latencies.sort_unstable();
    let quantile = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;
    println!(
        "{{\"updates_per_sec\":{:.0},\"keepers\":{keepers},\"updates\":{},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"publications\":{},\"seconds\":{:.2}}}",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        latencies.len(),
        quantile(0.5),
        quantile(0.99),
        sink.delivered.load(std::sync::atomic::Ordering::Relaxed),
        elapsed.as_secs_f64()
    );
    Ok(())
}
