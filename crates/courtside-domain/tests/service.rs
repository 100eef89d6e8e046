//! The sports service over the reference store: tournaments, claims with fencing tokens, score
//! validation, versions, operation ids, offline edits, history, and what reaches the channels.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use courtside_core::channel::Role;
use courtside_core::conformance::RecordingSink;
use courtside_core::store::memory::MemoryStore;
use courtside_core::store::{Retention, StreamStore};
use courtside_domain::claim::{ClaimError, ClaimPolicy, FenceError, Release};
use courtside_domain::model::{Court, Division, Match, Team, Tournament};
use courtside_domain::scoring::{MatchStatus, SetScore, ViolationCode};
use courtside_domain::service::{Actor, ScoreUpdate, SportsError, SportsService};

const T0: i64 = 1_800_000_000_000;

struct Fixture {
    service: SportsService,
    sink: Arc<RecordingSink>,
    clock: Arc<AtomicI64>,
}

fn actor(user: &str, role: Role) -> Actor {
    Actor::new(user, vec![role])
}

fn director() -> Actor {
    actor("dana", Role::Director)
}

fn sets(points: &[(i64, i64)]) -> Vec<SetScore> {
    points.iter().map(|&(home, away)| SetScore { home, away }).collect()
}

fn update(sets_: Vec<SetScore>, status: MatchStatus) -> ScoreUpdate {
    ScoreUpdate {
        match_id: "m1".into(),
        sets: sets_,
        status,
        base_version: None,
        client_time_ms: None,
        op_id: None,
        fencing_token: None,
    }
}

/// A tournament `cup` with one division, two teams, a court and match `m1` (best of 3 to 25).
async fn fixture() -> Fixture {
    let sink = Arc::new(RecordingSink::default());
    let store: Arc<dyn StreamStore> = Arc::new(MemoryStore::new(sink.clone()));
    let clock = Arc::new(AtomicI64::new(T0));
    let now = clock.clone();
    let service = SportsService::new(
        store,
        |_| Retention { history_size: 100, history_ttl_secs: 0, keyed: true },
        ClaimPolicy::new(60_000, 3_600_000).expect("policy"),
        move || now.load(Ordering::SeqCst),
    );
    let d = director();
    service.create_tournament(&d, Tournament { id: "cup".into(), name: "Cup".into(), default_format: None }).await.expect("tournament");
    service.put_division(&d, "cup", Division { id: "u18".into(), name: "U18".into() }).await.expect("division");
    for team in ["red", "blue"] {
        let team = Team { id: team.into(), name: team.into(), division_id: Some("u18".into()) };
        service.put_team(&d, "cup", team).await.expect("team");
    }
    service.put_court(&d, "cup", Court { id: "c1".into(), name: "Court 1".into() }).await.expect("court");
    let new = Match {
        id: "m1".into(),
        division_id: "u18".into(),
        home_team_id: "red".into(),
        away_team_id: "blue".into(),
        court_id: Some("c1".into()),
        scheduled_at_ms: None,
        format: None,
    };
    service.create_match(&d, "cup", new).await.expect("match");
    Fixture { service, sink, clock }
}

fn published_on(sink: &RecordingSink, channel: &str) -> Vec<serde_json::Value> {
    sink.seen
        .lock()
        .iter()
        .filter(|p| p.channel.as_str() == channel)
        .map(|p| serde_json::from_slice(&p.data).expect("json"))
        .collect()
}

#[tokio::test]
async fn the_registry_refuses_duplicates_bad_ids_and_the_wrong_roles() {
    let f = fixture().await;
    let d = director();
    let again = f.service.create_tournament(&d, Tournament { id: "cup".into(), name: "Cup".into(), default_format: None }).await;
    assert!(matches!(again, Err(SportsError::AlreadyExists { what: "tournament", .. })));
    let bad = f.service.create_tournament(&d, Tournament { id: "a:b".into(), name: "x".into(), default_format: None }).await;
    assert!(matches!(bad, Err(SportsError::InvalidId(_))));
    let fan = actor("fan", Role::Spectator);
    let refused = f.service.create_tournament(&fan, Tournament { id: "x".into(), name: "x".into(), default_format: None }).await;
    assert!(matches!(refused, Err(SportsError::Forbidden(_))));
    let registry = f.service.registry("cup").await.expect("registry");
    assert_eq!((registry.divisions.len(), registry.teams.len(), registry.courts.len(), registry.matches.len()), (1, 2, 1, 1));
    assert!(registry.matches[0].format.is_some(), "the format is resolved when the match is created");
    assert_eq!(f.service.tournaments().await.expect("list").len(), 1);
    assert_eq!(published_on(&f.sink, "tournament:cup:schedule").len(), 1, "the match is on the schedule");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scorekeepers_racing_for_one_claim_exactly_one_wins() {
    let f = fixture().await;
    let racers: Vec<_> = ["kim", "lee", "max", "ned"]
        .into_iter()
        .map(|user| {
            let service = f.service.clone();
            tokio::spawn(async move { service.claim(&actor(user, Role::Scorekeeper), "cup", "m1", None).await })
        })
        .collect();
    let mut winners = Vec::new();
    for racer in racers {
        match racer.await.expect("task") {
            Ok(claim) => winners.push(claim),
            Err(SportsError::Claim(ClaimError::Held { .. })) => {}
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(winners.len(), 1, "exactly one claim: {winners:?}");
    assert_eq!(winners[0].fencing_token, 1);
    let live = f.service.claim_of("cup", "m1").await.expect("claim").expect("held");
    assert_eq!(live.holder, winners[0].holder);
}

#[tokio::test]
async fn only_the_live_claim_with_its_token_may_write_the_score() {
    let f = fixture().await;
    let kim = actor("kim", Role::Scorekeeper);
    let lee = actor("lee", Role::Scorekeeper);
    let first = update(sets(&[(3, 1)]), MatchStatus::InProgress);
    assert!(matches!(f.service.update_score(&kim, "cup", first.clone()).await, Err(SportsError::Fence(FenceError::NotClaimed))));
    let claim = f.service.claim(&kim, "cup", "m1", None).await.expect("claim");
    let written = f.service.update_score(&kim, "cup", ScoreUpdate { fencing_token: Some(claim.fencing_token), ..first.clone() }).await;
    assert_eq!(written.expect("holder writes").score.version, 1);
    assert!(matches!(f.service.update_score(&lee, "cup", first.clone()).await, Err(SportsError::Fence(FenceError::HeldByOther { .. }))));

    // The claim expires; lee takes it; kim's late write with the old token is refused as stale
    // (the precise reason: kim's device was replaced), without its token as held by another.
    f.clock.fetch_add(61_000, Ordering::SeqCst);
    let taken = f.service.claim(&lee, "cup", "m1", None).await.expect("lee claims");
    assert_eq!(taken.fencing_token, 2);
    let late = ScoreUpdate { fencing_token: Some(claim.fencing_token), ..update(sets(&[(4, 1)]), MatchStatus::InProgress) };
    assert!(matches!(f.service.update_score(&kim, "cup", late).await, Err(SportsError::Fence(FenceError::StaleToken { presented: 1, current: 2 }))));
    let tokenless = update(sets(&[(4, 1)]), MatchStatus::InProgress);
    assert!(matches!(f.service.update_score(&kim, "cup", tokenless).await, Err(SportsError::Fence(FenceError::HeldByOther { .. }))));
    // Kim reclaims after lee releases: a new token; the old one is stale even for kim.
    assert_eq!(f.service.release(&lee, "cup", "m1").await.expect("release"), Release::Released);
    let again = f.service.claim(&kim, "cup", "m1", None).await.expect("kim again");
    assert_eq!(again.fencing_token, 3);
    let stale = ScoreUpdate { fencing_token: Some(1), ..update(sets(&[(4, 1)]), MatchStatus::InProgress) };
    assert!(matches!(f.service.update_score(&kim, "cup", stale).await, Err(SportsError::Fence(FenceError::StaleToken { .. }))));
    let released: Vec<_> = published_on(&f.sink, "match:cup:m1").into_iter().filter(|e| e["type"] == "claim_released").collect();
    assert_eq!(released.len(), 1, "the release is published");
    assert_eq!(released[0]["holder"], "lee");
}

#[tokio::test]
async fn scores_are_validated_completed_and_published_everywhere_at_once() {
    let f = fixture().await;
    let kim = actor("kim", Role::Scorekeeper);
    f.service.claim(&kim, "cup", "m1", None).await.expect("claim");
    let overrun = f.service.update_score(&kim, "cup", update(sets(&[(28, 25)]), MatchStatus::InProgress)).await;
    match overrun {
        Err(SportsError::ScoreRejected(violations)) => {
            assert_eq!(violations[0].code, ViolationCode::SetOverrun);
            assert_eq!(violations[0].path, "sets[0]");
        }
        other => panic!("expected a 422, got {other:?}"),
    }
    let unwon = f.service.update_score(&kim, "cup", update(sets(&[(25, 20)]), MatchStatus::Completed)).await;
    assert!(matches!(unwon, Err(SportsError::ScoreRejected(_))), "a winner who has not won");
    let won = f.service.update_score(&kim, "cup", update(sets(&[(25, 20), (25, 23)]), MatchStatus::InProgress)).await.expect("won");
    assert_eq!(won.score.status, MatchStatus::Completed, "the format says the match is won");
    for channel in ["match:cup:m1", "tournament:cup:scores", "division:cup:u18", "court:cup:c1"] {
        let events = published_on(&f.sink, channel);
        let scores: Vec<_> = events.iter().filter(|e| e["type"] == "score").collect();
        assert_eq!(scores.len(), 1, "{channel} got the score once");
        assert_eq!(scores[0]["score"]["status"], "completed");
    }
    let status = published_on(&f.sink, "tournament:cup:schedule");
    assert!(status.iter().any(|e| e["type"] == "match_status" && e["winner"] == "home"), "{status:?}");
    let brackets = published_on(&f.sink, "tournament:cup:brackets");
    assert_eq!(brackets.len(), 1, "the bracket learns who advances");
    assert_eq!((brackets[0]["type"].as_str(), brackets[0]["winnerTeamId"].as_str()), (Some("match_result"), Some("red")));

    let correction = update(sets(&[(25, 20), (25, 21)]), MatchStatus::Completed);
    assert!(matches!(f.service.update_score(&kim, "cup", correction.clone()).await, Err(SportsError::MatchFinished { .. })));
    let corrected = f.service.update_score(&director(), "cup", correction).await.expect("a director corrects");
    assert_eq!(corrected.score.version, 2);
    let history = f.service.score_history("cup", "m1", 10, 0).await.expect("history");
    assert_eq!(history.total, 2);
    assert_eq!(published_on(&f.sink, "tournament:cup:brackets").len(), 2, "a corrected result is republished");
    assert_eq!(f.service.score_history("cup", "m1", 10, u64::MAX).await.expect("past the end").changes.len(), 0);
    assert_eq!(history.changes[1].previous_sets, sets(&[(25, 20), (25, 23)]), "a correction is a new entry");
    assert_eq!(f.service.score_history("cup", "m1", 10, 1).await.expect("page 2").changes.len(), 1);
    assert_eq!(f.service.scores("cup", Some("blue"), None).await.expect("scores").len(), 1);
    assert!(f.service.scores("cup", Some("green"), None).await.expect("scores").is_empty());
}

#[tokio::test]
async fn stale_versions_conflict_and_a_retried_operation_gets_its_first_answer() {
    let f = fixture().await;
    let kim = actor("kim", Role::Scorekeeper);
    f.service.claim(&kim, "cup", "m1", None).await.expect("claim");
    let on_nothing = ScoreUpdate { base_version: Some(0), op_id: Some("op-1".into()), ..update(sets(&[(1, 0)]), MatchStatus::InProgress) };
    let first = f.service.update_score(&kim, "cup", on_nothing.clone()).await.expect("first");
    assert!(!first.duplicate);
    let retried = f.service.update_score(&kim, "cup", on_nothing).await.expect("the retry is answered");
    assert!(retried.duplicate);
    assert_eq!(retried.score, first.score, "the first result, nothing changed");
    let stale = ScoreUpdate { base_version: Some(0), ..update(sets(&[(2, 0)]), MatchStatus::InProgress) };
    match f.service.update_score(&kim, "cup", stale).await {
        Err(SportsError::Stale { base_version: 0, current }) => assert_eq!(current.expect("stored").version, 1),
        other => panic!("expected a 409, got {other:?}"),
    }
    assert_eq!(f.service.score_history("cup", "m1", 10, 0).await.expect("history").total, 1);
}

#[tokio::test]
async fn offline_edits_latest_wins_the_server_wins_ties_and_every_conflict_is_recorded() {
    let f = fixture().await;
    let kim = actor("kim", Role::Scorekeeper);
    f.service.claim(&kim, "cup", "m1", None).await.expect("claim");
    f.service.update_score(&kim, "cup", update(sets(&[(5, 5)]), MatchStatus::InProgress)).await.expect("online");
    let older = ScoreUpdate { client_time_ms: Some(T0 - 10_000), ..update(sets(&[(4, 4)]), MatchStatus::InProgress) };
    assert!(matches!(f.service.update_score(&kim, "cup", older).await, Err(SportsError::KeptServer { .. })));
    let tie = ScoreUpdate { client_time_ms: Some(T0), ..update(sets(&[(6, 4)]), MatchStatus::InProgress) };
    assert!(matches!(f.service.update_score(&kim, "cup", tie).await, Err(SportsError::KeptServer { .. })), "the server wins ties");
    f.clock.fetch_add(5_000, Ordering::SeqCst);
    let newer = ScoreUpdate { client_time_ms: Some(T0 + 2_000), ..update(sets(&[(7, 5)]), MatchStatus::InProgress) };
    let applied = f.service.update_score(&kim, "cup", newer).await.expect("the later edit wins");
    assert_eq!(applied.score.sets, sets(&[(7, 5)]));
    let conflicts = f.service.conflicts(&director(), "cup", 100, 0).await.expect("conflicts");
    let kinds: Vec<String> = conflicts.iter().map(|c| serde_json::to_value(c.kind).expect("json").as_str().unwrap_or_default().to_string()).collect();
    assert_eq!(kinds, ["offline_edit_discarded_older", "offline_edit_discarded_tie", "offline_edit_overwrote"]);
    assert!(matches!(f.service.conflicts(&kim, "cup", 100, 0).await, Err(SportsError::Forbidden(_))));
}

#[tokio::test]
async fn an_exported_tournament_imports_exactly() {
    use courtside_domain::model::Priority;
    let f = fixture().await;
    let kim = actor("kim", Role::Scorekeeper);
    f.service.claim(&kim, "cup", "m1", None).await.expect("claim");
    f.service.update_score(&kim, "cup", update(sets(&[(5, 3)]), MatchStatus::InProgress)).await.expect("score");
    let older = ScoreUpdate { client_time_ms: Some(T0 - 1), ..update(sets(&[(4, 4)]), MatchStatus::InProgress) };
    assert!(f.service.update_score(&kim, "cup", older).await.is_err(), "a recorded conflict");
    f.service.announce(&director(), "cup", Priority::Critical, "Storm", "Clear the courts").await.expect("announce");
    f.service.set_coverage_plan(&actor("media", Role::Media), "cup", vec!["m1".into()]).await.expect("plan");
    let exported = f.service.export(&director(), "cup").await.expect("export");
    assert_eq!((exported.matches.len(), exported.conflicts.len(), exported.announcements.len()), (1, 1, 1));
    assert!(matches!(f.service.export(&kim, "cup").await, Err(SportsError::Forbidden(_))));

    let elsewhere = fixture_without_tournament();
    let text = serde_json::to_string(&exported).expect("json");
    let parsed = serde_json::from_str(&text).expect("the document reads back");
    elsewhere.import(&director(), parsed).await.expect("import");
    assert_eq!(elsewhere.export(&director(), "cup").await.expect("export again"), exported, "round trip");
    let again = elsewhere.import(&director(), exported).await;
    assert!(matches!(again, Err(SportsError::AlreadyExists { .. })), "an existing tournament is not overwritten");
    let score = elsewhere.score("cup", "m1").await.expect("score").expect("imported");
    assert_eq!(score.sets, sets(&[(5, 3)]));
}

fn fixture_without_tournament() -> SportsService {
    let store: Arc<dyn StreamStore> = Arc::new(MemoryStore::new(Arc::new(RecordingSink::default())));
    SportsService::new(
        store,
        |_| Retention { history_size: 100, history_ttl_secs: 0, keyed: true },
        ClaimPolicy::new(60_000, 3_600_000).expect("policy"),
        || T0,
    )
}

#[tokio::test]
async fn expired_claims_are_released_and_the_release_is_published() {
    let f = fixture().await;
    let kim = actor("kim", Role::Scorekeeper);
    f.service.claim(&kim, "cup", "m1", None).await.expect("claim");
    assert_eq!(f.service.expire_claims().await.expect("sweep"), 0, "a live claim stays");
    f.clock.fetch_add(60_001, Ordering::SeqCst);
    assert_eq!(f.service.expire_claims().await.expect("sweep"), 1);
    assert_eq!(f.service.expire_claims().await.expect("sweep"), 0, "released once");
    let released: Vec<_> = published_on(&f.sink, "match:cup:m1").into_iter().filter(|e| e["type"] == "claim_released").collect();
    assert_eq!(released.len(), 1);
    assert_eq!((released[0]["holder"].as_str(), released[0]["reason"].as_str()), (Some("kim"), Some("expired")));
    assert!(f.service.claims("cup").await.expect("claims").is_empty());
    let lee = actor("lee", Role::Scorekeeper);
    assert_eq!(f.service.claim(&lee, "cup", "m1", None).await.expect("free again").fencing_token, 2, "tokens keep rising");
    assert_eq!(f.service.expire_claims().await.expect("sweep"), 0);
    assert_eq!(f.service.claim_of("cup", "m1").await.expect("claim").map(|c| c.holder), Some("lee".into()), "a live claim is never swept");
    // A cancelled match is the officials' to change.
    f.service.update_score(&director(), "cup", update(sets(&[(1, 0)]), MatchStatus::Cancelled)).await.expect("a director cancels");
    let resumed = f.service.update_score(&lee, "cup", update(sets(&[(2, 0)]), MatchStatus::InProgress)).await;
    assert!(matches!(resumed, Err(SportsError::Forbidden(_))), "{resumed:?}");
}
