//! The leaderboard REST API against the real server with boards declared in its configuration:
//! submits with every operator, top / rank / around / pages, seasons, bad input and roles with
//! their documented statuses, idempotent ids, ELO match results applied atomically, boards
//! created through the API, ranks that survive a restart, and two nodes on one PostgreSQL that
//! rank the same after concurrent submits (skipped without PostgreSQL, except under `CI=true`).

mod common;

use common::TestServer;
use courtside_core::Role;
use courtside_server::config::{LeaderboardConfig, RatingConfig, Reset};
use courtside_server::Config;
use courtside_leaderboard::{Operator, Order};
use serde_json::{json, Value};

fn boards(config: &mut Config) {
    let board = |order, operator| LeaderboardConfig { order, operator, ..LeaderboardConfig::default() };
    config.leaderboards.insert("points".into(), board(Order::Desc, Operator::Best));
    config.leaderboards.insert("golf".into(), board(Order::Asc, Operator::Best));
    config.leaderboards.insert("kills".into(), board(Order::Desc, Operator::Incr));
    config.leaderboards.insert("lives".into(), board(Order::Desc, Operator::Decr));
    config.leaderboards.insert("latest".into(), board(Order::Desc, Operator::Set));
    config.leaderboards.insert("weekly".into(), LeaderboardConfig { reset: Reset::Weekly, ..LeaderboardConfig::default() });
    config.leaderboards.insert(
        "elo".into(),
        LeaderboardConfig { operator: Operator::Set, rating: Some(RatingConfig { k_factor: 32, initial: 1500 }), ..LeaderboardConfig::default() },
    );
}

async fn start() -> (TestServer, String) {
    let server = TestServer::start_with(boards).await;
    let key = format!("apikey {}", server.api_key());
    (server, key)
}

async fn submit(server: &TestServer, auth: &str, board: &str, body: Value) -> (u16, Value) {
    server.post(&format!("/api/leaderboards/{board}/scores"), Some(auth), body).await
}

fn players(standings: &Value) -> Vec<(String, i64, u64)> {
    standings["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["player"].as_str().expect("player").to_string(), e["score"].as_i64().expect("score"), e["rank"].as_u64().expect("rank")))
        .collect()
}

fn row(player: &str, score: i64, rank: u64) -> (String, i64, u64) {
    (player.to_string(), score, rank)
}

#[tokio::test]
async fn submits_rank_players_and_every_read_agrees() {
    let (server, key) = start().await;
    for (player, score) in [("ann", 30), ("bob", 50), ("cy", 40), ("dee", 10), ("eve", 40)] {
        let (status, reply) = submit(&server, &key, "points", json!({ "player": player, "score": score })).await;
        assert_eq!(status, 200, "{reply}");
    }
    let (status, moved) = submit(&server, &key, "points", json!({ "player": "dee", "score": 60 })).await;
    assert_eq!(status, 200, "{moved}");
    assert_eq!((moved["rank"].as_u64(), moved["previousRank"].as_u64(), moved["previousScore"].as_i64()), (Some(1), Some(5), Some(10)));
    assert_eq!(moved["newLeader"], "dee");
    assert_eq!(moved["duplicate"], false);

    let (status, top) = server.get("/api/leaderboards/points/top?limit=3", None).await;
    assert_eq!(status, 200, "{top}");
    assert_eq!(players(&top), vec![row("dee", 60, 1), row("bob", 50, 2), row("cy", 40, 3)]);
    assert_eq!((top["total"].as_u64(), top["season"].as_str()), (Some(5), Some("all")));
    let (_, rank) = server.get("/api/leaderboards/points/players/eve", None).await;
    assert_eq!((rank["rank"].as_u64(), rank["score"].as_i64()), (Some(4), Some(40)), "eve reached 40 after cy");
    let (_, around) = server.get("/api/leaderboards/points/players/cy/around?count=1", None).await;
    assert_eq!(players(&around), vec![row("bob", 50, 2), row("cy", 40, 3), row("eve", 40, 4)]);
    let (_, page) = server.get("/api/leaderboards/points/ranks?offset=3&limit=10", None).await;
    assert_eq!(players(&page), vec![row("eve", 40, 4), row("ann", 30, 5)]);
    let (status, missing) = server.get("/api/leaderboards/points/players/zed", None).await;
    assert_eq!((status, missing["error"]["code"].as_str()), (404, Some("not_ranked")));
    let (_, nobody) = server.get("/api/leaderboards/points/players/zed/around", None).await;
    assert_eq!(players(&nobody), vec![]);

    let (status, list) = server.get("/api/leaderboards", None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = list["boards"].as_array().expect("boards").iter().filter_map(|b| b["id"].as_str()).collect();
    assert_eq!(ids, ["elo", "golf", "kills", "latest", "lives", "points", "weekly"]);
    let (_, weekly) = server.get("/api/leaderboards/weekly", None).await;
    assert_eq!(weekly["reset"], "weekly");
    assert!(weekly["season"].as_str().is_some_and(|season| season.contains("-W")), "{weekly}");
    let (status, old) = server.get("/api/leaderboards/weekly/top?season=2020-W01", None).await;
    assert_eq!((status, old["total"].as_u64()), (200, Some(0)), "an old season is readable: {old}");
    let (status, wrong) = server.get("/api/leaderboards/weekly/top?season=all", None).await;
    assert_eq!((status, wrong["error"]["code"].as_str()), (404, Some("unknown_season")));
    let (status, future) = server.get("/api/leaderboards/weekly/top?season=9999-W01", None).await;
    assert_eq!((status, future["error"]["code"].as_str()), (404, Some("unknown_season")), "a season that has not begun");
}

#[tokio::test]
async fn every_operator_combines_as_documented() {
    let (server, key) = start().await;
    let score_after = |board: &'static str, submits: Vec<i64>| {
        let (server, key) = (&server, &key);
        async move {
            let mut last = Value::Null;
            for value in submits {
                let (status, reply) = submit(server, key, board, json!({ "player": "ann", "score": value })).await;
                assert_eq!(status, 200, "{board}: {reply}");
                last = reply;
            }
            last["score"].as_i64().expect("score")
        }
    };
    assert_eq!(score_after("points", vec![10, 30, 20]).await, 30, "best, highest first");
    assert_eq!(score_after("golf", vec![72, 68, 70]).await, 68, "best, lowest first");
    assert_eq!(score_after("kills", vec![3, 4, -2]).await, 5, "incr");
    assert_eq!(score_after("lives", vec![1, 2]).await, -3, "decr");
    assert_eq!(score_after("latest", vec![10, 3]).await, 3, "set");
}

#[tokio::test]
async fn bad_input_and_wrong_roles_get_their_documented_statuses() {
    let (server, key) = start().await;
    let spectator = format!("Bearer {}", server.token("sam", &[Role::Spectator]));
    let staff = format!("Bearer {}", server.token("stu", &[Role::Staff]));
    let code = |reply: &Value| reply["error"]["code"].as_str().unwrap_or_default().to_string();
    for (body, status, expected) in [
        (json!({ "player": "ann", "score": "NaN" }), 400, "bad_request"),
        (json!({ "player": "ann", "score": "12" }), 400, "bad_request"),
        (json!({ "player": "ann", "score": 1.5 }), 422, "invalid_score"),
        (json!({ "player": "ann", "score": 9_007_199_254_740_992_i64 }), 422, "invalid_score"),
        (json!({ "player": "ann", "score": 1e300 }), 422, "invalid_score"),
        (json!({ "player": "ann", "score": -9_223_372_036_854_775_807_i64 }), 422, "invalid_score"),
        (json!({ "player": "a:b", "score": 1 }), 400, "invalid_id"),
        (json!({ "player": "", "score": 1 }), 400, "invalid_id"),
        (json!({ "player": "ann", "score": 1, "id": "" }), 422, "validation_failed"),
        (json!({ "player": "ann", "score": 1, "extra": true }), 400, "bad_request"),
    ] {
        let (got, reply) = submit(&server, &key, "points", body.clone()).await;
        assert_eq!((got, code(&reply)), (status, expected.to_string()), "{body}: {reply}");
    }
    let (status, reply) = submit(&server, &key, "nope", json!({ "player": "ann", "score": 1 })).await;
    assert_eq!((status, code(&reply)), (404, "not_found".to_string()));
    let (status, reply) = submit(&server, &key, "bad board", json!({ "player": "ann", "score": 1 })).await;
    assert_eq!(status, 400, "{reply}");
    let (status, _) = submit(&server, &key, "kills", json!({ "player": "ann", "score": 9_007_199_254_740_991_i64 })).await;
    assert_eq!(status, 200);
    let (status, reply) = submit(&server, &key, "kills", json!({ "player": "ann", "score": 1 })).await;
    assert_eq!((status, code(&reply)), (422, "invalid_score".to_string()), "incr never overflows");

    let (status, reply) = submit(&server, &spectator, "points", json!({ "player": "ann", "score": 1 })).await;
    assert_eq!((status, code(&reply)), (403, "permission_denied".to_string()));
    let (status, _) = server.post("/api/leaderboards/points/scores", None, json!({ "player": "ann", "score": 1 })).await;
    assert_eq!(status, 401, "anonymous callers are asked to sign in");
    let (status, _) = submit(&server, &staff, "points", json!({ "player": "ann", "score": 1 })).await;
    assert_eq!(status, 200, "staff may submit");
    let (status, reply) = server.post("/api/leaderboards", Some(&staff), json!({ "id": "new" })).await;
    assert_eq!((status, code(&reply)), (403, "permission_denied".to_string()), "only directors create boards");
    let (status, reply) = submit(&server, "Bearer not-a-token", "points", json!({ "player": "ann", "score": 1 })).await;
    assert_eq!(status, 401, "{reply}");

    for query in ["top?limit=0", "top?limit=1001", "top?limit=x", "ranks?offset=-1", "top?colour=red", "players/ann/around?count=501"] {
        let (status, reply) = server.get(&format!("/api/leaderboards/points/{query}"), None).await;
        assert_eq!((status, code(&reply)), (400, "bad_request".to_string()), "{query}: {reply}");
    }
    let (status, reply) = server.get("/api/leaderboards/points/players/a:b", None).await;
    assert_eq!((status, code(&reply)), (400, "invalid_id".to_string()));
    let (status, reply) = server.post("/api/leaderboards/points/matches", Some(&key), json!({ "id": "m1", "players": ["a", "b"], "winner": "a" })).await;
    assert_eq!((status, code(&reply)), (409, "not_a_ratings_board".to_string()));
}

#[tokio::test]
async fn a_retried_id_changes_nothing() {
    let (server, key) = start().await;
    let body = json!({ "player": "ann", "score": 5, "id": "op-1" });
    let (_, first) = submit(&server, &key, "kills", body.clone()).await;
    let (status, again) = submit(&server, &key, "kills", body).await;
    assert_eq!(status, 200);
    assert_eq!((first["score"].as_i64(), first["duplicate"].as_bool()), (Some(5), Some(false)));
    assert_eq!((again["score"].as_i64(), again["duplicate"].as_bool()), (Some(5), Some(true)), "{again}");
}

#[tokio::test]
async fn a_match_result_moves_both_ratings_atomically_once() {
    let (server, key) = start().await;
    let result = json!({ "id": "match-1", "players": ["ann", "bob"], "winner": "ann" });
    let (status, recorded) = server.post("/api/leaderboards/elo/matches", Some(&key), result.clone()).await;
    assert_eq!(status, 200, "{recorded}");
    assert_eq!(recorded["eloChanges"], json!({ "ann": 16, "bob": -16 }));
    assert_eq!(recorded["ratings"], json!({ "ann": 1516, "bob": 1484 }));
    assert_eq!((recorded["matchId"].as_str(), recorded["winnerId"].as_str(), recorded["draw"].as_bool()), (Some("match-1"), Some("ann"), Some(false)));
    let (_, again) = server.post("/api/leaderboards/elo/matches", Some(&key), result).await;
    assert_eq!((again["duplicate"].as_bool(), &again["eloChanges"]), (Some(true), &json!({ "ann": 16, "bob": -16 })), "{again}");
    let (_, top) = server.get("/api/leaderboards/elo/top", None).await;
    assert_eq!(players(&top), vec![row("ann", 1516, 1), row("bob", 1484, 2)], "applied once");

    let teams = json!({ "id": "match-2", "teams": [["ann", "cy"], ["bob", "dee"]], "draw": true });
    let (status, drawn) = server.post("/api/leaderboards/elo/matches", Some(&key), teams).await;
    assert_eq!(status, 200, "{drawn}");
    assert_eq!(drawn["winnerId"], Value::Null);
    let changes = drawn["eloChanges"].as_object().expect("changes");
    assert_eq!(changes.len(), 4);
    assert_eq!(changes["ann"], changes["cy"], "a team moves together");
    for (body, status) in [
        (json!({ "id": "m3", "players": ["ann", "bob"] }), 422),
        (json!({ "id": "m3", "players": ["ann", "bob"], "winner": "zed" }), 422),
        (json!({ "id": "m3", "players": ["ann", "ann"], "winner": "ann" }), 422),
        (json!({ "id": "m3", "players": ["ann", "bob"], "winner": "ann", "draw": true }), 422),
        (json!({ "id": "m3", "players": ["ann", "b:b"], "winner": "ann" }), 422),
        (json!({ "players": ["ann", "bob"], "winner": "ann" }), 400),
    ] {
        let (got, reply) = server.post("/api/leaderboards/elo/matches", Some(&key), body.clone()).await;
        assert_eq!(got, status, "{body}: {reply}");
    }
    let (_, top) = server.get("/api/leaderboards/elo/top", None).await;
    assert_eq!(top["total"].as_u64(), Some(4), "refused results wrote nothing");
}

#[tokio::test]
async fn created_boards_and_ranks_survive_a_restart() {
    let (server, key) = start().await;
    let spec = json!({ "id": "speedrun", "order": "asc", "reset": null, "topN": 5 });
    let (status, created) = server.post("/api/leaderboards", Some(&key), spec.clone()).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!((created["order"].as_str(), created["season"].as_str(), created["topN"].as_u64()), (Some("asc"), Some("all"), Some(5)));
    let (status, _) = server.post("/api/leaderboards", Some(&key), spec).await;
    assert_eq!(status, 201, "the same spec again is harmless");
    let (status, clash) = server.post("/api/leaderboards", Some(&key), json!({ "id": "speedrun" })).await;
    assert_eq!((status, clash["error"]["code"].as_str()), (409, Some("already_exists")));
    let (status, _) = server.post("/api/leaderboards", Some(&key), json!({ "id": "points", "order": "asc" })).await;
    assert_eq!(status, 409, "a configured board keeps its spec");
    let (status, _) = server.post("/api/leaderboards", Some(&key), json!({ "id": "x", "topN": 0 })).await;
    assert_eq!(status, 422);
    for (player, time) in [("ann", 95), ("bob", 90), ("cy", 99)] {
        submit(&server, &key, "speedrun", json!({ "player": player, "score": time })).await;
        submit(&server, &key, "points", json!({ "player": player, "score": time })).await;
    }
    let (_, before) = server.get("/api/leaderboards/speedrun/top", None).await;
    let server = server.restart().await;
    let (status, after) = server.get("/api/leaderboards/speedrun/top", None).await;
    assert_eq!(status, 200, "{after}");
    assert_eq!(players(&after), vec![row("bob", 90, 1), row("ann", 95, 2), row("cy", 99, 3)]);
    assert_eq!(before, after);
    let (_, points) = server.get("/api/leaderboards/points/players/cy", None).await;
    assert_eq!(points["rank"].as_u64(), Some(1));
}

/// Two nodes on one PostgreSQL: submits made concurrently through both nodes end in the same
/// ranks on each (a node catches up before it reads); a board created on one node is found by
/// the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_postgres_return_identical_ranks_after_concurrent_submits() {
    let Some(database) = courtside_testkit::postgres::fresh_database().await else { return };
    let cluster = |c: &mut Config| {
        boards(c);
        c.store = database.url.clone();
        c.broker = "postgres".into();
        c.api_key = "cluster-key".into();
    };
    let node_a = TestServer::start_with(cluster).await;
    let node_b = TestServer::start_with(cluster).await;
    let key = "apikey cluster-key".to_string();
    let mut expected = std::collections::BTreeMap::<String, i64>::new();
    let mut submits = Vec::new();
    for i in 0..120_i64 {
        let player = format!("p{}", i % 17);
        let amount = (i * 7919) % 101 - 20;
        *expected.entry(player.clone()).or_default() += amount;
        let node = if i % 2 == 0 { &node_a } else { &node_b };
        let key = &key;
        submits.push(async move { submit(node, key, "kills", json!({ "player": player, "score": amount, "id": format!("op-{i}") })).await });
    }
    for (status, reply) in futures_util::future::join_all(submits).await {
        assert_eq!(status, 200, "{reply}");
    }
    let (_, on_a) = node_a.get("/api/leaderboards/kills/top?limit=1000", None).await;
    let (_, on_b) = node_b.get("/api/leaderboards/kills/top?limit=1000", None).await;
    assert_eq!(on_a, on_b, "both nodes rank the same");
    let mut scores: Vec<(String, i64)> = players(&on_a).into_iter().map(|(player, score, _)| (player, score)).collect();
    scores.sort();
    assert_eq!(scores, expected.into_iter().collect::<Vec<_>>(), "every submit counted once");
    let (status, _) = submit(&node_b, &key, "kills", json!({ "player": "p0", "score": 1, "id": "op-0" })).await;
    assert_eq!(status, 200);
    let (_, again) = node_a.get("/api/leaderboards/kills/top?limit=1000", None).await;
    assert_eq!(again, on_a, "a retried id from the other node changed nothing");

    let (status, _) = node_a.post("/api/leaderboards", Some(&key), json!({ "id": "cup", "order": "asc" })).await;
    assert_eq!(status, 201);
    let (status, reply) = submit(&node_b, &key, "cup", json!({ "player": "ann", "score": 42 })).await;
    assert_eq!(status, 200, "a board created on the other node: {reply}");
    let (_, rank) = node_a.get("/api/leaderboards/cup/players/ann", None).await;
    assert_eq!(rank["score"].as_i64(), Some(42));
}
