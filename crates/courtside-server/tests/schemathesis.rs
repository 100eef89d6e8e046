//! The served OpenAPI document against the real server, by schemathesis (`--checks all`, a few
//! examples per operation so CI stays under two minutes): as a director with a bearer token,
//! unauthenticated, and with the path ids pinned to a real tournament and match (and a ratings
//! leaderboard). Any failure or undocumented status fails the test with schemathesis's report.
//!
//! Needs the `st` command (`pip install schemathesis==4.32.5`, as .ci/run does); without it the
//! test prints `SKIPPED: …` and passes, except under `CI=true`, where it fails.

mod common;

use std::process::Command;

use common::TestServer;
use courtside_core::Role;
use courtside_leaderboard::Operator;
use courtside_server::config::{LeaderboardConfig, RatingConfig};
use courtside_server::hooks::HooksConfig;
use courtside_server::rate_limit::RateLimit;
use serde_json::json;

/// Examples per operation and phase: enough to reach every documented status, small enough for CI.
const MAX_EXAMPLES: &str = "12";

/// What JSON Schema cannot say, said to schemathesis: the score rules and the cross-field rules
/// (a set's overrun, a cap below the set target, the body's id against the path's) are answered
/// 422 even for schema-valid bodies; the users endpoint is not a sign-up form. (`use_after_free`
/// is left out on the command line: a released claim reads as `{"claim": null}`, seed 001's "no
/// live claim", not as a deleted resource.)
const CONFIG: &str = r#"
[auth]
auto-signup = false

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "422", "429"]
"#;

fn schemathesis() -> Option<&'static str> {
    ["st", "schemathesis"].into_iter().find(|command| Command::new(command).arg("--version").output().is_ok_and(|out| out.status.success()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_served_openapi_document_holds_for_every_generated_request() {
    let Some(st) = schemathesis() else {
        courtside_testkit::skip_or_fail("schemathesis (`st`) is not installed: pip install schemathesis==4.32.5");
        return;
    };
    // `/api/rpc` is answered by an app backend: a small one here, echoing what it is sent.
    let backend = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("backend listens");
    let backend_addr = backend.local_addr().expect("addr");
    let echo = axum::Router::new().route(
        "/hooks/rpc",
        axum::routing::post(|axum::Json(body): axum::Json<serde_json::Value>| async move { axum::Json(json!({ "allow": true, "data": body["data"] })) }),
    );
    tokio::spawn(async move {
        let _ = axum::serve(backend, echo).await;
    });
    // Generated requests come fast: no rate limit gets in the way of the checks.
    let server = TestServer::start_with(|config| {
        config.hooks = HooksConfig { url: format!("http://{backend_addr}/hooks"), rpc: true, ..HooksConfig::default() };
        for limit in config.sports.rate_limits.values_mut() {
            *limit = RateLimit::new(1_000_000, 1);
        }
        let ratings = LeaderboardConfig { operator: Operator::Set, rating: Some(RatingConfig::default()), ..LeaderboardConfig::default() };
        config.leaderboards.insert("elo".into(), ratings);
    })
    .await;
    let director = format!("Bearer {}", server.token("dana", &[Role::Director]));
    for (path, body) in [
        ("/api/events", json!({ "id": "cup", "name": "Cup" })),
        ("/api/events/cup/matches", json!({ "id": "m1", "divisionId": "u18", "homeTeamId": "red", "awayTeamId": "blue" })),
    ] {
        if path.ends_with("matches") {
            let client = reqwest::Client::new();
            for (entry, value) in [("divisions/u18", json!({ "id": "u18", "name": "U18" })), ("teams/red", json!({ "id": "red", "name": "Red" })), ("teams/blue", json!({ "id": "blue", "name": "Blue" }))] {
                let response = client.put(server.http(&format!("/api/events/cup/{entry}"))).header("authorization", &director).json(&value).send().await.expect("put");
                assert_eq!(response.status().as_u16(), 200);
            }
        }
        let (status, reply) = server.post(path, Some(&director), body).await;
        assert_eq!(status, 201, "{reply}");
    }

    let dir = common::temp_dir("schemathesis");
    std::fs::create_dir_all(&dir).expect("dir");
    let plain = dir.join("schemathesis.toml");
    std::fs::write(&plain, CONFIG).expect("config");
    let pinned = dir.join("pinned.toml");
    std::fs::write(&pinned, format!("{CONFIG}\n[parameters]\n\"path.event_id\" = \"cup\"\n\"path.match_id\" = \"m1\"\n\"path.id\" = \"elo\"\n")).expect("config");
    let schema = server.http("/openapi.json");
    let header = format!("authorization: {director}");
    let runs: [(&str, &std::path::Path, Option<&str>); 3] =
        [("as a director", &plain, Some(&header)), ("unauthenticated", &plain, None), ("with ids pinned to a real match", &pinned, Some(&header))];
    for (label, config, header) in runs {
        let mut command = tokio::process::Command::new(st);
        command.current_dir(&dir); // its caches stay out of the source tree
        command.arg("--config-file").arg(config).arg("--no-color").args(["run", &schema, "--checks", "all", "--exclude-checks", "use_after_free", "--max-examples", MAX_EXAMPLES]);
        command.args(["--seed", "8", "--generation-database", "none", "--workers", "1", "--report-dir"]).arg(dir.join("report"));
        if let Some(header) = header {
            command.args(["--header", header]);
        }
        let output = command.output().await.expect("schemathesis runs");
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "schemathesis {label} found problems:\n{report}\n{}", String::from_utf8_lossy(&output.stderr));
        assert!(!report.contains("Undocumented"), "schemathesis {label}: an undocumented status:\n{report}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
