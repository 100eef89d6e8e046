//! Leaderboard pushes against the real server over the native WebSocket protocol: a board's
//! top-N view in `leaderboard:{board}` (snapshot + stream, conflated to the push interval, with
//! what moved and a new leader marked), match results on the same channel, and rank pushes on
//! `user:{player}` only for players who follow their personal channel.

mod common;

use common::{Client, TestServer, result};
use courtside_server::Config;
use courtside_server::config::{LeaderboardConfig, RatingConfig};
use courtside_leaderboard::Operator;
use serde_json::{Value, json};

fn boards(config: &mut Config) {
    config.leaderboard_push_interval_ms = 50;
    config.leaderboards.insert("points".into(), LeaderboardConfig { top_n: 3, ..LeaderboardConfig::default() });
    config.leaderboards.insert(
        "elo".into(),
        LeaderboardConfig { operator: Operator::Set, rating: Some(RatingConfig { k_factor: 32, initial: 1500 }), ..LeaderboardConfig::default() },
    );
}

async fn submit(server: &TestServer, key: &str, player: &str, score: i64) -> Value {
    let (status, reply) = server.post("/api/leaderboards/points/scores", Some(key), json!({ "player": player, "score": score })).await;
    assert_eq!(status, 200, "{reply}");
    reply
}

/// The next publication whose data has `type` = `kind`, skipping others.
async fn next_of(client: &mut Client, kind: &str) -> Value {
    loop {
        let publication = client.next_publication().await;
        if publication["data"]["type"] == kind {
            return publication;
        }
    }
}

fn entries(view: &Value) -> Vec<(String, i64, u64)> {
    view["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| (e["player"].as_str().unwrap_or_default().to_string(), e["score"].as_i64().unwrap_or_default(), e["rank"].as_u64().unwrap_or_default()))
        .collect()
}

#[tokio::test]
async fn followers_get_the_top_view_conflated_with_its_moves() {
    let server = TestServer::start_with(boards).await;
    let key = format!("apikey {}", server.api_key());
    let mut viewer = server.connected("", &[]).await;
    let reply = viewer.request("subscribe", json!({ "channel": "leaderboard:points", "snapshot": true })).await;
    assert_eq!(result(&reply)["snapshot"], json!([]), "no view before the first score");

    for score in 1..=60 {
        submit(&server, &key, &format!("p{}", score % 6), score).await;
    }
    // p0 60, p5 59, p4 58 lead; views keep coming until the last one shows them.
    let mut views = Vec::new();
    loop {
        let publication = next_of(&mut viewer, "TOP").await;
        assert_eq!(publication["key"], "top", "the view is keyed, so a late follower's snapshot holds it");
        let done = publication["data"]["total"] == 6 && entries(&publication["data"])[0].1 == 60;
        views.push(publication["data"].clone());
        if done {
            break;
        }
    }
    assert!(views.len() < 60, "conflated: {} views for 60 submits", views.len());
    let last = views.last().expect("a view");
    assert_eq!(entries(last), [("p0".into(), 60, 1), ("p5".into(), 59, 2), ("p4".into(), 58, 3)]);
    assert_eq!(last["board"], "points");
    assert!(views[0]["newLeader"].as_bool().expect("newLeader"), "the first view names a new leader");
    let leader_changes: Vec<&Value> = views.iter().flat_map(|v| v["changes"].as_array().expect("changes")).filter(|c| c["type"] == "NEW_LEADER").collect();
    assert!(!leader_changes.is_empty());

    // One more score that changes only a rank below the top 3 leaves the view alone; one that
    // enters it is shown with what moved.
    submit(&server, &key, "late", 59).await;
    let moved = next_of(&mut viewer, "TOP").await;
    let changes: Vec<(String, String)> = moved["data"]["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| (c["type"].as_str().unwrap_or_default().to_string(), c["player"].as_str().unwrap_or_default().to_string()))
        .collect();
    assert_eq!(changes, [("SCORE_UPDATE".to_string(), "late".to_string())], "p5 reached 59 first and keeps 2nd; late enters 3rd");
    assert_eq!(moved["data"]["newLeader"], false);

    let mut late = server.connected("", &[]).await;
    let reply = late.request("subscribe", json!({ "channel": "leaderboard:points", "snapshot": true })).await;
    let snapshot = &result(&reply)["snapshot"];
    assert_eq!(snapshot.as_array().map(Vec::len), Some(1));
    assert_eq!(snapshot[0]["data"], moved["data"], "a late follower starts from the latest view");
}

#[tokio::test]
async fn a_match_result_is_published_with_its_rating_changes() {
    let server = TestServer::start_with(boards).await;
    let key = format!("apikey {}", server.api_key());
    let mut viewer = server.connected("", &[]).await;
    result(&viewer.request("subscribe", json!({ "channel": "leaderboard:elo" })).await);
    let body = json!({ "id": "final-1", "players": ["ann", "bob"], "winner": "ann" });
    let (status, recorded) = server.post("/api/leaderboards/elo/matches", Some(&key), body.clone()).await;
    assert_eq!(status, 200, "{recorded}");
    let published = next_of(&mut viewer, "MATCH_RESULT").await;
    assert_eq!(published["key"], Value::Null);
    let data = &published["data"];
    assert_eq!((data["matchId"].as_str(), data["winnerId"].as_str()), (Some("final-1"), Some("ann")));
    assert_eq!(data["eloChanges"], recorded["eloChanges"]);
    assert_eq!(data["ratings"], json!({ "ann": 1516, "bob": 1484 }));
    // A retried result is not published again: the next publication is the view.
    server.post("/api/leaderboards/elo/matches", Some(&key), body).await;
    let next = viewer.next_publication().await;
    assert_eq!(next["data"]["type"], "TOP", "{next}");
    assert_eq!(entries(&next["data"]), [("ann".into(), 1516, 1), ("bob".into(), 1484, 2)]);
}

#[tokio::test]
async fn players_following_their_channel_get_rank_pushes_and_nobody_else_does() {
    let server = TestServer::start_with(boards).await;
    let key = format!("apikey {}", server.api_key());
    submit(&server, &key, "ann", 50).await;
    submit(&server, &key, "cy", 30).await;
    let mut ann = server.connected("ann", &[]).await;
    let epoch = result(&ann.request("subscribe", json!({ "channel": "user:ann" })).await)["epoch"].clone();

    submit(&server, &key, "bob", 60).await;
    let push = next_of(&mut ann, "RANK_CHANGE").await;
    let data = &push["data"];
    assert_eq!((data["player"].as_str(), data["mover"].as_str(), data["board"].as_str()), (Some("ann"), Some("bob"), Some("points")));
    assert_eq!((data["previousRank"].as_u64(), data["rank"].as_u64(), data["score"].as_i64()), (Some(1), Some(2), Some(50)));

    submit(&server, &key, "ann", 70).await;
    let own = ann.next_publication().await;
    assert_eq!((own["data"]["type"].as_str(), own["data"]["rank"].as_u64(), own["data"]["previousScore"].as_i64()), (Some("NEW_LEADER"), Some(1), Some(50)));
    submit(&server, &key, "ann", 75).await;
    let own = ann.next_publication().await;
    assert_eq!(own["data"]["type"], "SCORE_UPDATE");
    let last_offset = own["offset"].as_u64().expect("offset");

    // cy was passed by bob and ann but never followed `user:cy`: nothing was written for cy.
    let (status, history) = server.get("/api/history?channel=user:cy", Some(&key)).await;
    assert_eq!(status, 200, "{history}");
    assert_eq!(history["publications"], json!([]));

    // Once ann stops following, her rank moves are no longer pushed. bob follows his channel:
    // his push for the same move shows that the move's pushes were written.
    let mut bob = server.connected("bob", &[]).await;
    result(&bob.request("subscribe", json!({ "channel": "user:bob" })).await);
    result(&ann.request("unsubscribe", json!({ "channel": "user:ann" })).await);
    submit(&server, &key, "dee", 99).await;
    let passed = next_of(&mut bob, "RANK_CHANGE").await;
    assert_eq!(passed["data"]["mover"], "dee");
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let reply = ann.request("subscribe", json!({ "channel": "user:ann", "since": { "offset": last_offset, "epoch": epoch } })).await;
    let resumed = result(&reply);
    assert_eq!(resumed["publications"], json!([]), "no push while nobody listened: {resumed}");
    assert_eq!(server.metric("courtside_leaderboard_pushes_total").await, 4.0, "ann's three and bob's one");
}
