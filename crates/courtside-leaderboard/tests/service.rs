//! The leaderboard service over the in-memory store: submits and queries, operators, retried
//! ids, a rebuild on start, seasons, rank changes for listening players, ELO match results, and
//! two nodes sharing one store submitting to one board at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use courtside_core::store::memory::MemoryStore;
use courtside_core::store::{NoSink, StreamStore};
use courtside_leaderboard::{
    BoardSpec, LeaderboardError, LeaderboardService, MatchResult, Operator, Outcome, RankChange, RatingRules, ResetSchedule,
    ScoreError, ScoreUpdate, UpdateSink,
};
use parking_lot::Mutex;
use rand::{Rng, SeedableRng};

fn memory_store() -> Arc<dyn StreamStore> {
    Arc::new(MemoryStore::new(Arc::new(NoSink)))
}

fn node(store: &Arc<dyn StreamStore>, specs: &[BoardSpec]) -> LeaderboardService {
    let service = LeaderboardService::new(store.clone(), || 1_780_000_000_000, None);
    for spec in specs {
        service.declare(spec.clone()).expect("declare");
    }
    service
}

/// Midnight UTC at the start of a day, in milliseconds.
fn day_ms(year: i64, month: u32, day: u32) -> i64 {
    courtside_leaderboard::calendar::days_from_civil(year, month, day) * 86_400_000
}

fn board(id: &str, operator: Operator) -> BoardSpec {
    BoardSpec { operator, ..BoardSpec::new(id) }
}

async fn players(service: &LeaderboardService, board: &str, season: Option<&str>) -> Vec<(String, i64, u64)> {
    let standings = service.page(board, season, 0, 1000).await.expect("page");
    standings.entries.into_iter().map(|r| (r.player, r.score, r.rank)).collect()
}

#[tokio::test]
async fn submits_answer_rank_and_queries_agree() {
    let store = memory_store();
    let service = node(&store, &[board("global", Operator::Best)]);
    for (player, score) in [("ann", 50), ("bob", 70), ("cat", 60), ("dan", 70)] {
        service.submit("global", player, score, None).await.expect("submit");
    }
    let moved = service.submit("global", "ann", 80, Some("op-1")).await.expect("submit");
    assert_eq!((moved.update.rank, moved.update.previous_rank, moved.update.previous_score), (1, Some(4), Some(50)));
    assert_eq!(moved.update.new_leader.as_deref(), Some("ann"));
    let worse = service.submit("global", "bob", 10, None).await.expect("submit");
    assert_eq!((worse.update.score, worse.update.rank), (70, 2), "best keeps the better score");
    // bob reached 70 before dan: bob ranks first among equals.
    assert_eq!(players(&service, "global", None).await, [("ann".into(), 80, 1), ("bob".into(), 70, 2), ("dan".into(), 70, 3), ("cat".into(), 60, 4)]);
    let top = service.top("global", None, 2).await.expect("top");
    assert_eq!((top.total, top.entries.len(), top.season.as_str()), (4, 2, "all"));
    let rank = service.rank("global", None, "dan").await.expect("rank").expect("ranked");
    assert_eq!((rank.rank, rank.score), (3, 70));
    assert_eq!(service.rank("global", None, "nobody").await.expect("rank"), None);
    let around: Vec<String> = service.around("global", None, "dan", 1).await.expect("around").entries.into_iter().map(|r| r.player).collect();
    assert_eq!(around, ["bob", "dan", "cat"]);
    let page: Vec<u64> = service.page("global", None, 1, 2).await.expect("page").entries.into_iter().map(|r| r.rank).collect();
    assert_eq!(page, [2, 3]);
}

#[tokio::test]
async fn operators_apply_and_bad_input_is_refused() {
    let store = memory_store();
    let service = node(&store, &[board("kills", Operator::Incr), board("debt", Operator::Decr), board("now", Operator::Set)]);
    service.submit("kills", "ann", 3, None).await.expect("incr");
    assert_eq!(service.submit("kills", "ann", 4, None).await.expect("incr").update.score, 7);
    assert_eq!(service.submit("debt", "ann", 4, None).await.expect("decr").update.score, -4);
    service.submit("now", "ann", 9, None).await.expect("set");
    assert_eq!(service.submit("now", "ann", 2, None).await.expect("set").update.score, 2);
    service.submit("kills", "bob", courtside_leaderboard::board::SCORE_ABS_MAX, None).await.expect("at the limit");
    let over = service.submit("kills", "bob", 1, None).await;
    assert!(matches!(over, Err(LeaderboardError::Score(ScoreError::OutOfRange))), "{over:?}");
    assert!(matches!(service.submit("kills", "a:b", 1, None).await, Err(LeaderboardError::Spec(_))));
    assert!(matches!(service.submit("kills", "ann", i64::MAX, None).await, Err(LeaderboardError::Score(_))));
    assert!(matches!(service.submit("nope", "ann", 1, None).await, Err(LeaderboardError::UnknownBoard(_))));
    assert!(matches!(service.submit("kills", "ann", 1, Some("")).await, Err(LeaderboardError::OpId)));
    assert!(matches!(service.top("kills", Some("../x"), 1).await, Err(LeaderboardError::Spec(_))));
    assert_eq!(service.rank("kills", None, "ann").await.expect("rank").map(|r| r.score), Some(7), "refusals wrote nothing");
}

#[tokio::test]
async fn retried_ids_apply_once_even_after_a_restart() {
    let store = memory_store();
    let spec = board("kills", Operator::Incr);
    let first = node(&store, std::slice::from_ref(&spec));
    assert!(!first.submit("kills", "ann", 5, Some("k1")).await.expect("submit").duplicate);
    let again = first.submit("kills", "ann", 5, Some("k1")).await.expect("retry");
    assert!(again.duplicate);
    assert_eq!(again.update.score, 5);
    let restarted = node(&store, &[spec]);
    let after_restart = restarted.submit("kills", "ann", 5, Some("k1")).await.expect("retry after restart");
    assert!(after_restart.duplicate);
    assert_eq!(restarted.submit("kills", "ann", 5, Some("k2")).await.expect("new id").update.score, 10);
}

#[tokio::test]
async fn a_board_is_rebuilt_from_the_store_on_start() {
    let store = memory_store();
    let spec = BoardSpec { order: courtside_leaderboard::Order::Asc, ..board("laps", Operator::Best) };
    let before = node(&store, std::slice::from_ref(&spec));
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    for _ in 0..500 {
        before.submit("laps", &format!("p{}", rng.random_range(0..80)), rng.random_range(0..40), None).await.expect("submit");
    }
    let after = node(&store, &[spec]);
    assert_eq!(players(&after, "laps", None).await, players(&before, "laps", None).await);
    assert_eq!(after.top("laps", None, 1).await.expect("top").total, 80);
}

#[tokio::test]
async fn created_boards_are_durable_and_specs_do_not_change_silently() {
    let store = memory_store();
    let first = LeaderboardService::new(store.clone(), || 0, None);
    let spec = BoardSpec { top_n: 5, ..board("weekly", Operator::Incr) };
    first.create_board(spec.clone()).await.expect("create");
    first.create_board(spec.clone()).await.expect("the same spec again is fine");
    let other = BoardSpec { top_n: 6, ..spec.clone() };
    assert!(matches!(first.create_board(other).await, Err(LeaderboardError::AlreadyExists(_))));
    let second = LeaderboardService::new(store.clone(), || 0, None);
    assert_eq!(second.load_boards().await.expect("load"), 1);
    assert_eq!(second.board("weekly").expect("known"), spec);
}

#[tokio::test]
async fn seasons_are_kept_apart_and_old_ones_stay_readable() {
    let store = memory_store();
    let now = Arc::new(AtomicI64::new(day_ms(2026, 11, 30) + 86_399_999));
    let clock = now.clone();
    let service = LeaderboardService::new(store, move || clock.load(Ordering::Relaxed), None);
    service.declare(BoardSpec { reset: Some(ResetSchedule::Monthly), ..board("monthly", Operator::Incr) }).expect("declare");
    service.submit("monthly", "ann", 5, None).await.expect("november");
    now.store(day_ms(2026, 12, 1), Ordering::Relaxed);
    let december = service.submit("monthly", "ann", 1, None).await.expect("december");
    assert_eq!((december.update.season.as_str(), december.update.score), ("2026-12", 1), "a new season starts empty");
    assert_eq!(players(&service, "monthly", Some("2026-11")).await, [("ann".into(), 5, 1)]);
    assert_eq!(players(&service, "monthly", None).await, [("ann".into(), 1, 1)]);
    assert!(matches!(service.top("monthly", Some("2026-W49"), 1).await, Err(LeaderboardError::Spec(_))));
}

#[derive(Default)]
struct Collected(Mutex<Vec<ScoreUpdate>>);

impl UpdateSink for Collected {
    fn updated(&self, update: &ScoreUpdate) {
        self.0.lock().push(update.clone());
    }
}

#[tokio::test]
async fn listening_players_learn_of_rank_changes_and_a_new_leader() {
    let store = memory_store();
    let sink = Arc::new(Collected::default());
    let service = LeaderboardService::new(store, || 0, Some(sink.clone()));
    service.declare(board("global", Operator::Best)).expect("declare");
    for i in 0..100 {
        service.submit("global", &format!("p{i}"), i, None).await.expect("submit");
    }
    service.listen("p99").expect("listen");
    service.listen("p50").expect("listen");
    service.listen("p50").expect("a second connection");
    service.listen("p0").expect("listen");
    let jump = service.submit("global", "p1", 1_000, None).await.expect("jump");
    assert_eq!(jump.update.new_leader.as_deref(), Some("p1"));
    assert_eq!((jump.update.previous_rank, jump.update.rank), (Some(99), 1));
    let expected = [
        RankChange { player: "p99".into(), old_rank: 1, new_rank: 2, score: 99 },
        RankChange { player: "p50".into(), old_rank: 50, new_rank: 51, score: 50 },
    ];
    assert_eq!(jump.update.changes, expected, "p0 was not passed; unlistened players are not computed");
    service.unlisten("p50");
    let again = service.submit("global", "p2", 2_000, None).await.expect("jump");
    assert_eq!(again.update.changes.iter().map(|c| c.player.as_str()).collect::<Vec<_>>(), ["p99", "p50"], "p50 still has a connection");
    service.unlisten("p50");
    let third = service.submit("global", "p3", 3_000, None).await.expect("jump");
    assert_eq!(third.update.changes.iter().map(|c| c.player.as_str()).collect::<Vec<_>>(), ["p99"]);
    let pushed = sink.0.lock();
    assert_eq!(pushed.len(), 103, "every applied move reaches the sink once");
    assert_eq!(pushed[101].changes, again.update.changes);
}

#[tokio::test]
async fn match_results_move_both_sides_atomically_and_once() {
    let store = memory_store();
    let service = node(&store, &[BoardSpec { rating: Some(RatingRules { k_factor: 32, initial: 1500 }), ..board("elo", Operator::Set) }]);
    let one_v_one = MatchResult { first: vec!["ann".into()], second: vec!["bob".into()], outcome: Outcome::First };
    let recorded = service.record_match("elo", one_v_one.clone(), Some("m1")).await.expect("record");
    assert_eq!(recorded.elo_changes, [("ann".to_string(), 16), ("bob".to_string(), -16)].into());
    assert_eq!(recorded.ratings, [("ann".to_string(), 1516), ("bob".to_string(), 1484)].into());
    let retried = service.record_match("elo", one_v_one, Some("m1")).await.expect("retry");
    assert!(retried.duplicate);
    assert_eq!(retried.elo_changes, recorded.elo_changes, "a retry gets the first answer");
    let teams = MatchResult { first: vec!["ann".into(), "cat".into()], second: vec!["bob".into(), "dan".into()], outcome: Outcome::Draw };
    let drawn = service.record_match("elo", teams, Some("m2")).await.expect("teams");
    assert_eq!(drawn.elo_changes.len(), 4);
    assert_eq!(drawn.elo_changes["ann"], drawn.elo_changes["cat"]);
    assert_eq!(drawn.elo_changes["bob"], -drawn.elo_changes["ann"]);
    let restarted = node(&store, &[BoardSpec { rating: Some(RatingRules::default()), ..board("elo", Operator::Set) }]);
    let standings = restarted.top("elo", None, 10).await.expect("top");
    let ratings: HashMap<String, i64> = standings.entries.into_iter().map(|r| (r.player, r.score)).collect();
    assert_eq!(ratings, drawn.ratings.clone().into_iter().collect::<HashMap<_, _>>(), "ratings survive a restart");
    let bad = MatchResult { first: vec!["ann".into()], second: vec!["ann".into()], outcome: Outcome::Draw };
    assert!(matches!(service.record_match("elo", bad, None).await, Err(LeaderboardError::Elo(_))));
    service.declare(board("plain", Operator::Best)).expect("declare");
    let on_plain = MatchResult { first: vec!["a".into()], second: vec!["b".into()], outcome: Outcome::Draw };
    assert!(matches!(service.record_match("plain", on_plain, None).await, Err(LeaderboardError::NotRatings(_))));
}

/// Two nodes sharing one store submit to one board at once; afterwards both hold identical
/// ranks, equal to a sort of every player's total.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_on_one_store_agree_on_every_rank() {
    let store = memory_store();
    let spec = board("kills", Operator::Incr);
    let nodes = [node(&store, std::slice::from_ref(&spec)), node(&store, std::slice::from_ref(&spec))];
    let seed = std::env::var("COURTSIDE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random::<u64>);
    eprintln!("seed {seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut totals: HashMap<String, i64> = HashMap::new();
    let mut tasks = Vec::new();
    for i in 0..2_000 {
        let (player, amount) = (format!("p{}", rng.random_range(0..150)), rng.random_range(1..10));
        *totals.entry(player.clone()).or_default() += amount;
        let node = nodes[i % 2].clone();
        tasks.push(tokio::spawn(async move { node.submit("kills", &player, amount, Some(&format!("op{i}"))).await }));
    }
    for task in tasks {
        task.await.expect("task").expect("submit");
    }
    for node in &nodes {
        node.catch_up("kills", None).await.expect("catch up");
    }
    let (first, second) = (players(&nodes[0], "kills", None).await, players(&nodes[1], "kills", None).await);
    assert_eq!(first, second, "seed {seed}: both nodes rank everyone alike");
    let ranked: HashMap<String, i64> = first.iter().map(|(p, s, _)| (p.clone(), *s)).collect();
    assert_eq!(ranked, totals, "seed {seed}: no submit lost or applied twice");
    assert!(first.windows(2).all(|w| w[0].1 >= w[1].1), "seed {seed}: sorted by score");
    let reloaded = node(&store, &[spec]);
    assert_eq!(players(&reloaded, "kills", None).await, first, "seed {seed}: a fresh node agrees");
}
