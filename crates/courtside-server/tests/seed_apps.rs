//! The seeds' Socket.IO apps against the real server, their client code unchanged: seed 004's
//! `ScoreboardWebSocket` + `useScoreboard` on `examples/live-scoreboard.toml`, and seed 003's
//! `useWebSocketSync` + `useLeaderboardSync` on `examples/love-rank-pulse.toml` — run by Node from
//! clients/js/tools/socketio-driver/seeds, with the shipped example configs as they are.
//!
//! Needs Node 20+ and `npm ci` in clients/js. Without them the tests say `SKIPPED` and pass,
//! except under `CI=true`, where they fail.

mod common;

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use common::TestServer;
use courtside_core::Role;
use courtside_server::Config;
use courtside_server::config::ConfigOverrides;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

const WAIT: Duration = Duration::from_secs(15);

fn repo(path: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").join(path)
}

/// The example configuration as shipped, on an ephemeral port and a fresh data directory, with
/// a short push interval so the test need not wait.
async fn start(example: &str) -> TestServer {
    let mut config = Config::load(Some(&repo(example)), &ConfigOverrides::default()).expect("the example loads");
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.data_dir = common::temp_dir("seed-app");
    config.leaderboard_push_interval_ms = 50;
    TestServer::start_config(config).await
}

/// One seed app in Node: its reports, one JSON object per line.
struct App {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
    /// Every report read so far, shown when an expected one does not come.
    transcript: Vec<String>,
}

impl App {
    /// Starts `script` with `env`, or `None` (after the skip rule) without Node or the packages.
    fn start(script: &str, env: &[(&str, String)]) -> Option<App> {
        if !repo("clients/js/node_modules/socket.io-client").exists() {
            courtside_testkit::skip_or_fail("socket.io-client is not installed: run `npm ci` in clients/js (needs Node 20+)");
            return None;
        }
        let mut command = Command::new("node");
        command.arg(repo(&format!("clients/js/tools/socketio-driver/seeds/{script}")));
        command.envs(env.iter().map(|(k, v)| (*k, v.as_str()))).stdin(Stdio::piped()).stdout(Stdio::piped()).kill_on_drop(true);
        let Ok(mut child) = command.spawn() else {
            courtside_testkit::skip_or_fail("`node` is not on PATH (Node 20+ runs the seed apps)");
            return None;
        };
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        Some(App { _child: child, stdin, lines, transcript: Vec::new() })
    }

    async fn command(&mut self, line: &str) {
        self.stdin.write_all(format!("{line}\n").as_bytes()).await.expect("app stdin");
    }

    /// The next report that matches, skipping others; fails after [`WAIT`].
    async fn next(&mut self, wanted: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let Ok(read) = tokio::time::timeout_at(deadline, self.lines.next_line()).await else {
                panic!("the expected report did not come; the app reported:\n{}", self.transcript.join("\n"));
            };
            let line = read.expect("read").expect("the app is running");
            self.transcript.push(line.clone());
            let report: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
            if wanted(&report) {
                return report;
            }
        }
    }

    async fn state(&mut self, name: &str) -> Value {
        self.next(|report| report["state"] == name).await
    }
}

async fn submit(server: &TestServer, board: &str, player: &str, score: i64) {
    let key = format!("apikey {}", server.api_key());
    let (status, reply) = server.post(&format!("/api/leaderboards/{board}/scores"), Some(&key), json!({ "player": player, "score": score })).await;
    assert_eq!(status, 200, "{reply}");
}

fn is_iso_time(value: &Value) -> bool {
    value.as_str().is_some_and(|text| text.len() == 24 && text.ends_with('Z') && text.as_bytes()[10] == b'T')
}

fn url(server: &TestServer) -> String {
    format!("http://{}", server.server.addr)
}

#[tokio::test]
async fn seed_004_scoreboard_runs_unchanged() {
    let server = start("examples/live-scoreboard.toml").await;
    for (player, score) in [("bob", 50), ("carol", 40), ("alice", 10)] {
        submit(&server, "scoreboard", player, score).await;
    }
    let token = server.token("alice", &[Role::Spectator]);
    let Some(mut app) = App::start("live-scoreboard.mjs", &[("REACT_APP_WS_URL", url(&server)), ("TOKEN", token)]) else { return };

    // connect() resolves, the hook subscribes, `leaderboard_refresh` answers with the top 10.
    assert_eq!(app.state("connectionStatus").await["status"], "connecting");
    assert_eq!(app.state("connectionStatus").await["status"], "connected");
    let board = app.state("leaderboard").await["data"].clone();
    let first = json!({ "userId": "bob", "username": "bob", "score": 50, "rank": 1 });
    assert_eq!(board["topScores"][0], first, "{board}");
    assert_eq!((board["topScores"].as_array().map(Vec::len), board["totalUsers"].as_u64()), (Some(3), Some(3)));
    assert!(is_iso_time(&board["lastUpdated"]), "{board}");

    // subscribeToUserScore(own id) -> the user's score; another user's id is refused.
    app.command("subscribeToUserScore alice").await;
    let own = app.state("userScore").await["data"].clone();
    assert_eq!((own["userId"].as_str(), own["score"].as_i64(), own["rank"].as_u64(), own["actionType"].as_str()), (Some("alice"), Some(10), Some(3), Some("CURRENT")));
    app.command("subscribeToUserScore bob").await;
    let refused = app.state("error").await["data"].clone();
    assert_eq!((refused["code"].as_u64(), refused["event"].as_str()), (Some(103), Some("subscribe_user_score")));

    // alice takes the lead: her own push, the refreshed board and the move on the scoreboard.
    submit(&server, "scoreboard", "alice", 60).await;
    let pushed = app.state("userScore").await["data"].clone();
    assert_eq!(
        (pushed["actionType"].as_str(), pushed["rank"].as_u64(), pushed["score"].as_i64(), pushed["scoreIncrease"].as_i64()),
        (Some("NEW_LEADER"), Some(1), Some(60), Some(50))
    );
    let refreshed = app.next(|r| r["state"] == "leaderboard" && r["data"]["topScores"][0]["userId"] == "alice").await;
    assert_eq!(refreshed["data"]["topScores"][1]["userId"], "bob");
    let update = app.next(|r| r["state"] == "scoreboardUpdate").await["data"].clone();
    assert_eq!((update["type"].as_str(), update["userId"].as_str(), update["newRank"].as_u64(), update["oldRank"].as_u64()), (Some("NEW_LEADER"), Some("alice"), Some(1), Some(3)));
    let passed = app.next(|r| r["state"] == "scoreboardUpdate").await["data"].clone();
    assert_eq!((passed["type"].as_str(), passed["userId"].as_str(), passed["newRank"].as_u64()), (Some("RANK_CHANGE"), Some("bob"), Some(2)));

    // bob passes her: a rank change for alice.
    submit(&server, "scoreboard", "bob", 70).await;
    let passed = app.next(|r| r["state"] == "userScore" && r["data"]["actionType"] == "RANK_CHANGE").await["data"].clone();
    assert_eq!((passed["userId"].as_str(), passed["rank"].as_u64(), passed["scoreIncrease"].as_i64()), (Some("alice"), Some(2), Some(0)));

    app.command("ping").await;
    app.state("pong").await;

    // A client without a token is refused, and the seed's connect() rejects.
    let Some(mut anonymous) = App::start("live-scoreboard.mjs", &[("REACT_APP_WS_URL", url(&server)), ("TOKEN", String::new())]) else { return };
    let refused = anonymous.state("connectError").await;
    assert_eq!(refused["message"], "unauthorized: this server needs a token");
    app.command("disconnect").await;
}

#[tokio::test]
async fn seed_003_love_rank_pulse_runs_unchanged() {
    let server = start("examples/love-rank-pulse.toml").await;
    let token = server.token("alice", &[Role::Spectator]);
    let Some(mut app) = App::start("love-rank-pulse.mjs", &[("VITE_WS_URL", url(&server)), ("TOKEN", token)]) else { return };
    assert_eq!(app.next(|r| r["state"] == "connected").await["data"], true);
    assert_eq!(app.state("leaderboard").await["data"], json!([]), "leaderboard:initial: nobody has played yet");

    let key = format!("apikey {}", server.api_key());
    let result = json!({ "id": "m-1", "players": ["alice", "bob"], "winner": "alice" });
    let (status, reply) = server.post("/api/leaderboards/global/matches", Some(&key), result).await;
    assert_eq!(status, 200, "{reply}");

    let match_result = app.next(|r| r["event"] == "match:result").await["data"].clone();
    assert_eq!(match_result, json!({ "matchId": "m-1", "winnerId": "alice", "eloChanges": { "alice": 16, "bob": -16 }, "ratings": { "alice": 1516, "bob": 1484 } }));
    let own = app.next(|r| r["event"] == "leaderboard:player_rank").await["data"].clone();
    assert_eq!((own["playerId"].as_str(), own["rating"].as_i64(), own["rank"].as_u64(), own["change"].as_i64()), (Some("alice"), Some(1516), Some(1), Some(16)));
    let update = app.next(|r| r["state"] == "leaderboard" && r["data"]["type"] == "rank_change").await["data"].clone();
    assert_eq!(update["leaderboard"], json!([{ "playerId": "alice", "rating": 1516, "rank": 1 }, { "playerId": "bob", "rating": 1484, "rank": 2 }]));
    assert_eq!(update["newLeader"], true);

    // The app's backend publishes its own events by name; the seed's listeners get its payload.
    for (event, data) in [("match:created", json!({ "matchId": "m-2", "players": ["alice", "cy"] })), ("player:stats_update", json!({ "playerId": "cy", "wins": 3 }))] {
        let body = json!({ "channel": "leaderboard:global", "event": event, "data": data });
        let (status, reply) = server.post("/api/publish", Some(&key), body).await;
        assert_eq!(status, 200, "{reply}");
        let received = app.next(|r| r["event"] == event).await;
        assert_eq!(received["data"], data);
    }

    app.command("unmount").await;
    app.state("unmounted").await;
    app.command("exit").await;
}

#[tokio::test]
async fn seed_004_limits_hold_on_every_transport() {
    let server = start("examples/live-scoreboard.toml").await;
    let token = server.token("alice", &[Role::Spectator]);
    let Some(mut app) = App::start("live-scoreboard.mjs", &[("REACT_APP_WS_URL", url(&server)), ("TOKEN", token)]) else { return };
    app.state("leaderboard").await;
    // 60 events per user per minute: `subscribe_scoreboard` was the first, 59 pings pass.
    for _ in 0..60 {
        app.command("ping").await;
    }
    for _ in 0..59 {
        app.state("pong").await;
    }
    let refused = app.state("error").await["data"].clone();
    assert_eq!((refused["code"].as_u64(), refused["event"].as_str()), (Some(108), Some("ping")), "{refused}");

    // 100 connection attempts per address per 15 minutes, whatever the transport: the app's
    // socket was one; 99 more handshakes pass, then every transport is refused.
    let http = reqwest::Client::new();
    let handshake = format!("{}/socket.io/?EIO=4&transport=polling", url(&server));
    for attempt in 0..99 {
        let status = http.get(&handshake).send().await.expect("handshake").status();
        assert_eq!(status, 200, "attempt {attempt}");
    }
    let refused = http.get(&handshake).send().await.expect("handshake");
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().get("retry-after").is_some());
    let sse = http.get(format!("{}/sse?channel=leaderboard:scoreboard", url(&server))).send().await.expect("sse");
    assert_eq!(sse.status(), 429);
    let ws = tokio_tungstenite::connect_async(format!("ws://{}/ws", server.server.addr)).await;
    match ws {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => assert_eq!(response.status(), 429),
        other => panic!("the WebSocket upgrade must be refused with 429, got {other:?}"),
    }
}

#[tokio::test]
async fn seed_004_hears_the_maintenance_notice_and_comes_back() {
    let server = start("examples/live-scoreboard.toml").await;
    submit(&server, "scoreboard", "bob", 50).await;
    let token = server.token("alice", &[Role::Spectator]);
    let Some(mut app) = App::start("live-scoreboard.mjs", &[("REACT_APP_WS_URL", url(&server)), ("TOKEN", token)]) else { return };
    app.state("leaderboard").await;
    let key = format!("apikey {}", server.api_key());
    let (status, _) = server.post("/api/maintenance", Some(&key), json!({ "message": "Restarting", "durationSecs": 1 })).await;
    assert_eq!(status, 202);
    // `onSystemNotification` gets seed 004's `SystemNotification`.
    let notice = app.state("notification").await["data"].clone();
    assert_eq!((notice["type"].as_str(), notice["message"].as_str(), notice["severity"].as_str(), notice["duration"].as_u64()), (Some("MAINTENANCE"), Some("Restarting"), Some("warning"), Some(1000)));
    assert!(is_iso_time(&notice["timestamp"]));
    // Closed at the cut; socket.io-client reconnects and resumes the scoreboard by itself.
    let gone = app.state("disconnect").await;
    assert_eq!(gone["reason"], "transport close");
    assert_eq!(app.state("connect").await["recovered"], true, "the resume follows the scoreboard again");
    submit(&server, "scoreboard", "carol", 60).await;
    let board = app.next(|r| r["state"] == "leaderboard" && r["data"]["topScores"][0]["userId"] == "carol").await;
    assert_eq!(board["data"]["totalUsers"], 2);
}

#[tokio::test]
async fn seed_003_sees_players_come_online_and_go() {
    let server = start("examples/love-rank-pulse.toml").await;
    let alice = server.token("alice", &[Role::Spectator]);
    let Some(mut watcher) = App::start("love-rank-pulse.mjs", &[("VITE_WS_URL", url(&server)), ("TOKEN", alice)]) else { return };
    watcher.next(|r| r["event"] == "player:online" && r["data"]["playerId"] == "alice").await;
    let bob = server.token("bob", &[Role::Spectator]);
    let Some(mut other) = App::start("love-rank-pulse.mjs", &[("VITE_WS_URL", url(&server)), ("TOKEN", bob)]) else { return };
    let online = watcher.next(|r| r["event"] == "player:online" && r["data"]["playerId"] == "bob").await;
    assert_eq!(online["data"], json!({ "playerId": "bob", "status": null, "location": null }));
    // The active player count: everyone present in `players:online`.
    let (status, stats) = server.get("/api/presence?channel=players:online", Some(&format!("apikey {}", server.api_key()))).await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["clients"].as_array().map(Vec::len), Some(2));
    other.command("exit").await;
    let offline = watcher.next(|r| r["event"] == "player:offline").await;
    assert_eq!(offline["data"], json!({ "playerId": "bob" }));
}
