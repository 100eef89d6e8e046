//! The sports REST API over real HTTP, with a WebSocket subscriber: a director sets up a
//! tournament, two scorekeepers race for a claim, scores are validated, versioned, retried and
//! published; every bad request gets a 4xx in the one error shape and changes nothing.

mod common;

use common::{TestServer, result};
use courtside_core::Role;
use serde_json::{Value, json};

struct Http<'a> {
    server: &'a TestServer,
    auth: String,
}

impl Http<'_> {
    async fn send(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = reqwest::Client::new().request(method, self.server.http(path)).header("authorization", &self.auth);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON body") })
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(body)).await
    }

    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::PUT, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> (u16, Value) {
        self.send(reqwest::Method::DELETE, path, None).await
    }
}

fn as_user<'a>(server: &'a TestServer, user: &str, role: Role) -> Http<'a> {
    Http { server, auth: format!("Bearer {}", server.token(user, &[role])) }
}

/// Tournament `cup`: division `u18`, teams `red` and `blue`, court `c1`, match `m1`.
async fn tournament(director: &Http<'_>) {
    let (status, body) = director.post("/api/events", json!({ "id": "cup", "name": "Summer Cup" })).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(director.put("/api/events/cup/divisions/u18", json!({ "id": "u18", "name": "U18" })).await.0, 200);
    for team in ["red", "blue"] {
        let (status, body) = director.put(&format!("/api/events/cup/teams/{team}"), json!({ "id": team, "name": team, "divisionId": "u18" })).await;
        assert_eq!(status, 200, "{body}");
    }
    assert_eq!(director.put("/api/events/cup/courts/c1", json!({ "id": "c1", "name": "Court 1" })).await.0, 200);
    let new = json!({ "id": "m1", "divisionId": "u18", "homeTeamId": "red", "awayTeamId": "blue", "courtId": "c1" });
    let (status, body) = director.post("/api/events/cup/matches", new).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["format"]["setsToWin"], 2, "best of 3 by default: {body}");
}

#[tokio::test]
async fn a_tournament_is_set_up_scored_and_followed_live() {
    let server = TestServer::start().await;
    let director = as_user(&server, "dana", Role::Director);
    tournament(&director).await;
    let (status, body) = director.get("/api/events").await;
    assert_eq!((status, body["events"][0]["id"].as_str()), (200, Some("cup")));

    let mut fan = server.connected("fan", &[Role::Spectator]).await;
    let subscribed = fan.request("subscribe", json!({ "channel": "tournament:cup:scores", "snapshot": true })).await;
    assert_eq!(result(&subscribed)["snapshot"], json!([]), "{subscribed}");

    let kim = as_user(&server, "kim", Role::Scorekeeper);
    let (status, body) = kim.post("/api/events/cup/claims/m1", json!({})).await;
    assert_eq!(status, 200, "{body}");
    let token = body["claim"]["fencingToken"].as_u64().expect("token");
    let update = json!({ "matchId": "m1", "sets": [{ "home": 25, "away": 21 }, { "home": 3, "away": 1 }], "status": "in_progress", "fencingToken": token, "opId": "kim-1" });
    let (status, body) = kim.post("/api/events/cup/scores", update.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!((body["score"]["version"].as_u64(), body["duplicate"].as_bool()), (Some(1), Some(false)));
    let (status, retried) = kim.post("/api/events/cup/scores", update).await;
    assert_eq!((status, retried["duplicate"].as_bool()), (200, Some(true)), "{retried}");
    assert_eq!(retried["score"], body["score"], "a retried operation gets its first answer");

    let live = fan.next_publication().await;
    assert_eq!(live["data"]["score"]["sets"][0]["home"], 25, "{live}");
    assert_eq!(live["data"]["score"]["matchId"], "m1");

    let (status, body) = kim.get("/api/events/cup/scores/m1").await;
    assert_eq!((status, body["score"]["version"].as_u64()), (200, Some(1)));
    let (status, body) = kim.get("/api/events/cup/scores?teamId=blue").await;
    assert_eq!((status, body["scores"].as_array().map(Vec::len)), (200, Some(1)));
    let (status, body) = kim.get("/api/events/cup/scores?division=u17").await;
    assert_eq!((status, body["scores"].as_array().map(Vec::len)), (200, Some(0)));
    let (status, body) = kim.get("/api/events/cup/scores/m1/history?limit=10&offset=0").await;
    assert_eq!((status, body["total"].as_u64(), body["changes"][0]["by"].as_str()), (200, Some(1), Some("kim")));

    // A late subscriber gets the scoreboard as of an offset, then what follows.
    let mut late = server.connected("late", &[Role::Spectator]).await;
    let reply = late.request("subscribe", json!({ "channel": "tournament:cup:scores", "snapshot": true })).await;
    let snapshot = &result(&reply)["snapshot"];
    assert_eq!(snapshot.as_array().map(Vec::len), Some(1), "{reply}");
    assert_eq!(snapshot[0]["key"], "m1");

    // Past the API, nobody but the backend writes a sports channel: no forged scores.
    let mut keeper = server.connected("kim", &[Role::Scorekeeper]).await;
    let forged = keeper.request("publish", json!({ "channel": "match:cup:m1", "data": { "type": "score" } })).await;
    assert_eq!(common::error_code(&forged), 103, "{forged}");
    let (status, _) = as_user(&server, "dana", Role::Director)
        .post("/api/publish", json!({ "channel": "tournament:cup:scores", "data": {} }))
        .await;
    assert_eq!(status, 403);

    let (status, body) = kim.delete("/api/events/cup/claims/m1").await;
    assert_eq!((status, body["released"].as_bool()), (200, Some(true)));
    let (status, body) = kim.get("/api/events/cup/claims").await;
    assert_eq!((status, body["claims"].as_object().map(|claims| claims.len())), (200, Some(0)));
}

#[tokio::test]
async fn racing_claims_stale_versions_and_bad_scores_are_refused_clearly() {
    let server = TestServer::start().await;
    let director = as_user(&server, "dana", Role::Director);
    tournament(&director).await;
    let kim = as_user(&server, "kim", Role::Scorekeeper);
    let lee = as_user(&server, "lee", Role::Scorekeeper);
    let (first, second) = tokio::join!(kim.post("/api/events/cup/claims/m1", json!({})), lee.post("/api/events/cup/claims/m1", json!({})));
    let mut statuses = [first.0, second.0];
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 409], "exactly one wins: {first:?} {second:?}");
    let (winner, loser) = if first.0 == 200 { (&kim, &second.1) } else { (&lee, &first.1) };
    assert_eq!(loser["error"]["code"], "claim_held", "{loser}");
    let other = if first.0 == 200 { &lee } else { &kim };

    let refused = other.post("/api/events/cup/scores", json!({ "matchId": "m1", "sets": [{ "home": 1, "away": 0 }], "status": "in_progress" })).await;
    assert_eq!((refused.0, refused.1["error"]["code"].as_str()), (403, Some("not_claim_holder")), "{:?}", refused.1);

    let overrun = winner.post("/api/events/cup/scores", json!({ "matchId": "m1", "sets": [{ "home": 28, "away": 25 }], "status": "in_progress" })).await;
    assert_eq!((overrun.0, overrun.1["error"]["code"].as_str()), (422, Some("invalid_score")), "{:?}", overrun.1);
    assert_eq!(overrun.1["error"]["fields"][0]["path"], "sets[0]");
    assert_eq!(overrun.1["error"]["fields"][0]["code"], "set_overrun");
    let negative = winner.post("/api/events/cup/scores", json!({ "matchId": "m1", "sets": [{ "home": -1, "away": 0 }], "status": "in_progress" })).await;
    assert_eq!((negative.0, negative.1["error"]["fields"][0]["code"].as_str()), (422, Some("negative_points")));

    let first_write = winner.post("/api/events/cup/scores", json!({ "matchId": "m1", "sets": [{ "home": 1, "away": 0 }], "status": "in_progress", "baseVersion": 0 })).await;
    assert_eq!(first_write.0, 200, "{:?}", first_write.1);
    let stale = winner.post("/api/events/cup/scores", json!({ "matchId": "m1", "sets": [{ "home": 2, "away": 0 }], "status": "in_progress", "baseVersion": 0 })).await;
    assert_eq!((stale.0, stale.1["error"]["code"].as_str()), (409, Some("stale_version")), "{:?}", stale.1);
    assert_eq!(stale.1["error"]["current"]["version"], 1, "the 409 carries the current score");

    // A body that is not the documented JSON is a 400; a well-formed one that breaks a rule a 422.
    for (body, expected) in [
        (json!({ "matchId": "m1", "sets": "lots", "status": "in_progress" }), 400),
        (json!({ "matchId": "nope", "sets": [], "status": "in_progress" }), 404),
        (json!({ "matchId": "a b", "sets": [], "status": "in_progress" }), 400),
        (json!({ "matchId": "m1", "sets": [], "status": "finished" }), 400),
        (json!({ "matchId": "m1", "sets": [], "status": "in_progress", "extra": 1 }), 400),
        (json!({ "matchId": "m1", "sets": [{ "home": 25, "away": 20 }], "status": "completed" }), 422),
    ] {
        let (status, reply) = winner.post("/api/events/cup/scores", body.clone()).await;
        assert_eq!(status, expected, "{body} → {reply}");
        assert!(reply["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{reply}");
    }
    let (status, body) = winner.get("/api/events/cup/scores/m1/history").await;
    assert_eq!((status, body["total"].as_u64()), (200, Some(1)), "refused requests changed nothing");

    let fan = as_user(&server, "fan", Role::Spectator);
    let (status, body) = fan.post("/api/events", json!({ "id": "x", "name": "x" })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("permission_denied")));
    let anonymous = Http { server: &server, auth: String::new() };
    assert_eq!(anonymous.get("/api/events").await.0, 401);
    let garbled = reqwest::Client::new().post(server.http("/api/events/cup/claims/m1")).body("{not json").send().await.expect("request");
    assert_eq!(garbled.status().as_u16(), 401, "credentials are checked before the body");
    let garbled = winner.send(reqwest::Method::POST, "/api/events/cup/claims/m1", None).await;
    assert_eq!(garbled.0, 200, "no body is the default claim: {:?}", garbled.1);
    let (status, _) = director.get("/api/events/nope").await;
    assert_eq!(status, 404);
    let (status, body) = director.put("/api/events/cup/courts/c2", json!({ "id": "c3", "name": "x" })).await;
    assert_eq!((status, body["error"]["fields"][0]["path"].as_str()), (422, Some("id")));
}

#[tokio::test]
async fn every_response_says_the_rate_limit_and_429_says_when_to_retry() {
    use courtside_server::rate_limit::RateLimit;
    let server = TestServer::start_with(|config| {
        config.sports.rate_limits.insert("claim_read".into(), RateLimit::new(2, 60));
    })
    .await;
    let director = as_user(&server, "dana", Role::Director);
    tournament(&director).await;
    let token = server.token("kim", &[Role::Scorekeeper]);
    let client = reqwest::Client::new();
    let claim_read = || client.get(server.http("/api/events/cup/claims/m1")).bearer_auth(&token).send();
    let header = |response: &reqwest::Response, name: &str| -> Option<u64> {
        response.headers().get(name)?.to_str().ok()?.parse().ok()
    };
    let first = claim_read().await.expect("request");
    assert_eq!(first.status().as_u16(), 200);
    assert_eq!((header(&first, "x-ratelimit-limit"), header(&first, "x-ratelimit-remaining")), (Some(2), Some(1)));
    assert!(header(&first, "x-ratelimit-reset").is_some_and(|reset| reset > 1_700_000_000), "a Unix time");
    assert_eq!(claim_read().await.expect("request").status().as_u16(), 200);
    let refused = claim_read().await.expect("request");
    assert_eq!(refused.status().as_u16(), 429);
    assert_eq!(header(&refused, "retry-after"), Some(30), "one request every 30 s");
    assert_eq!(header(&refused, "x-ratelimit-remaining"), Some(0));
    let body: Value = refused.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_many_requests");

    // Limits are per user: another scorekeeper is not affected, nor another endpoint class.
    let lee = client.get(server.http("/api/events/cup/claims/m1")).bearer_auth(server.token("lee", &[Role::Scorekeeper])).send().await;
    assert_eq!(lee.expect("request").status().as_u16(), 200);
    let list = client.get(server.http("/api/events/cup/claims")).bearer_auth(&token).send().await.expect("request");
    assert_eq!((list.status().as_u16(), header(&list, "x-ratelimit-limit")), (200, Some(50)), "seed 001: 50 per minute");
    // The app backend's API key is not limited.
    for _ in 0..3 {
        let backend = client.get(server.http("/api/events/cup/claims/m1")).header("authorization", format!("apikey {}", server.api_key())).send().await;
        assert_eq!(backend.expect("request").status().as_u16(), 200);
    }
}

#[tokio::test]
async fn directors_edit_tournaments_matches_and_announce() {
    let server = TestServer::start().await;
    let director = as_user(&server, "dana", Role::Director);
    tournament(&director).await;
    let (status, body) = director.put("/api/events/cup", json!({ "id": "cup", "name": "Summer Cup 2026" })).await;
    assert_eq!((status, body["name"].as_str()), (200, Some("Summer Cup 2026")));
    assert_eq!(director.put("/api/events/nope", json!({ "id": "nope", "name": "x" })).await.0, 404);
    assert_eq!(director.put("/api/courts/c2", json!({})).await.0, 404, "unknown route");
    assert_eq!(director.put("/api/events/cup/courts/c2", json!({ "id": "c2", "name": "Court 2" })).await.0, 200);

    let moved = json!({ "id": "m1", "divisionId": "u18", "homeTeamId": "red", "awayTeamId": "blue", "courtId": "c2", "scheduledAtMs": 1_800_000_000_000i64 });
    let (status, body) = director.put("/api/events/cup/matches/m1", moved.clone()).await;
    assert_eq!((status, body["courtId"].as_str()), (200, Some("c2")), "{body}");

    let kim = as_user(&server, "kim", Role::Scorekeeper);
    assert_eq!(kim.post("/api/events/cup/claims/m1", json!({})).await.0, 200);
    let scored = kim.post("/api/events/cup/scores", json!({ "matchId": "m1", "sets": [{ "home": 1, "away": 0 }], "status": "in_progress" })).await;
    assert_eq!(scored.1["score"]["courtId"], "c2", "scores follow the match to its new court");
    let swapped = json!({ "id": "m1", "divisionId": "u18", "homeTeamId": "blue", "awayTeamId": "red", "courtId": "c2" });
    let (status, body) = director.put("/api/events/cup/matches/m1", swapped).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("validation_failed")), "{body}");
    assert_eq!(director.put("/api/events/cup/matches/m1", json!({ "id": "m1", "divisionId": "u18", "homeTeamId": "red", "awayTeamId": "blue", "courtId": "c1" })).await.0, 200, "a court change is fine after play started");
    let cancel = kim.post("/api/events/cup/scores", json!({ "matchId": "m1", "sets": [{ "home": 1, "away": 0 }], "status": "cancelled" })).await;
    assert_eq!((cancel.0, cancel.1["error"]["code"].as_str()), (403, Some("permission_denied")), "a scorekeeper cannot cancel");

    let (status, _) = director.post("/api/events/cup/announcements", json!({ "priority": "critical", "title": "Storm warning", "body": "Clear the courts" })).await;
    assert_eq!(status, 201);
    let (status, body) = kim.get("/api/events/cup/announcements?limit=10").await;
    assert_eq!(status, 200);
    assert_eq!(body["announcements"][0]["announcement"]["priority"], "critical", "{body}");
}

#[tokio::test]
async fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_bucket() {
    use courtside_server::rate_limit::RateLimit;
    let server = TestServer::start_with(|config| {
        config.sports.rate_limits.insert("claim_read".into(), RateLimit::new(1, 60));
        config.sports.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await;
    let client = reqwest::Client::new();
    let from = |address: &'static str| client.get(server.http("/api/events/cup/claims/m1")).header("x-forwarded-for", address).send();
    assert_eq!(from("203.0.113.1").await.expect("request").status().as_u16(), 401, "counted, then refused for lack of a token");
    assert_eq!(from("203.0.113.1").await.expect("request").status().as_u16(), 429, "the same client again");
    assert_eq!(from("203.0.113.2").await.expect("request").status().as_u16(), 401, "another client behind the proxy");
}

/// Bodies are read strictly: a set is `{home, away}` and nothing else, never an array.
#[tokio::test]
async fn sets_with_unknown_fields_or_as_arrays_are_refused() {
    let server = TestServer::start().await;
    let director = as_user(&server, "dana", Role::Director);
    tournament(&director).await;
    for sets in [json!([{ "home": 3, "away": 1, "serve": "home" }]), json!([[25, 20]])] {
        let (status, body) = director.post("/api/events/cup/scores", json!({ "matchId": "m1", "sets": sets, "status": "in_progress" })).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{sets} → {body}");
    }
    let (status, body) = director.get("/api/events/cup/scores/m1").await;
    assert_eq!((status, &body["score"]), (200, &Value::Null), "nothing was stored");
    // As in JSON Schema, 25.0 is the integer 25.
    let (status, body) = director.post("/api/events/cup/scores", json!({ "matchId": "m1", "sets": [{ "home": 3.0, "away": 1 }], "status": "in_progress" })).await;
    assert_eq!((status, body["score"]["sets"][0]["home"].as_i64()), (200, Some(3)), "{body}");
}

/// An operation id names one edit: the same body again gets the first answer, another body a
/// clear refusal instead of a silently lost edit.
#[tokio::test]
async fn an_op_id_reused_for_another_score_is_refused() {
    let server = TestServer::start().await;
    let director = as_user(&server, "dana", Role::Director);
    tournament(&director).await;
    let first = json!({ "matchId": "m1", "sets": [{ "home": 1, "away": 0 }], "status": "in_progress", "opId": "op-1" });
    assert_eq!(director.post("/api/events/cup/scores", first.clone()).await.0, 200);
    let (status, again) = director.post("/api/events/cup/scores", first).await;
    assert_eq!((status, again["duplicate"].as_bool()), (200, Some(true)), "{again}");
    let other = json!({ "matchId": "m1", "sets": [{ "home": 2, "away": 0 }], "status": "in_progress", "opId": "op-1" });
    let (status, refused) = director.post("/api/events/cup/scores", other).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("op_id_reused")), "{refused}");
    let (_, score) = director.get("/api/events/cup/scores/m1").await;
    assert_eq!(score["score"]["sets"][0]["home"], 1, "the first edit stands");
}

/// A scorekeeper whose claim was taken over writes with its old token: 409 stale_fencing_token.
#[tokio::test]
async fn a_replaced_holders_device_is_told_its_token_is_stale() {
    let server = TestServer::start().await;
    let director = as_user(&server, "dana", Role::Director);
    tournament(&director).await;
    let kim = as_user(&server, "kim", Role::Scorekeeper);
    let (_, claimed) = kim.post("/api/events/cup/claims/m1", json!({})).await;
    let old_token = claimed["claim"]["fencingToken"].as_u64().expect("token");
    assert_eq!(director.delete("/api/events/cup/claims/m1").await.0, 200, "a director frees the match");
    let lee = as_user(&server, "lee", Role::Scorekeeper);
    assert_eq!(lee.post("/api/events/cup/claims/m1", json!({})).await.0, 200);
    let late = json!({ "matchId": "m1", "sets": [{ "home": 1, "away": 0 }], "status": "in_progress", "fencingToken": old_token });
    let (status, body) = kim.post("/api/events/cup/scores", late).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("stale_fencing_token")), "{body}");
}

/// Every sports request checks its ids, then the caller's role, before it looks anything up; an
/// offset past the stores' range is a bad request, not an empty page.
#[tokio::test]
async fn ids_and_roles_are_checked_before_anything_is_looked_up() {
    let server = TestServer::start().await;
    let director = as_user(&server, "dana", Role::Director);
    tournament(&director).await;
    let fan = as_user(&server, "fan", Role::Spectator);
    let team = json!({ "id": "x", "name": "X", "divisionId": "nowhere" });
    for (who, path, expected) in [
        (&fan, "/api/events/%7F/teams/x", (400, "invalid_id")),
        (&director, "/api/events/%7F/teams/x", (400, "invalid_id")),
        (&fan, "/api/events/cup/teams/x", (403, "permission_denied")),
        (&fan, "/api/events/nope/teams/x", (403, "permission_denied")),
    ] {
        let (status, body) = who.put(path, team.clone()).await;
        assert_eq!((status, body["error"]["code"].as_str()), (expected.0, Some(expected.1)), "{path}: {body}");
    }
    for path in ["/api/events/%7F", "/api/events/%7F/claims", "/api/events/%7F/coverage-plans", "/api/events/%7F/export", "/api/events/cup/claims/a%20b"] {
        let (status, body) = director.get(path).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("invalid_id")), "{path}: {body}");
    }
    assert_eq!(director.delete("/api/events/%7F/coverage-plans").await.0, 400);
    for path in [
        "/api/events/cup/scores/m1/history?offset=9223372036854775808",
        "/api/events/cup/conflicts?offset=9223372036854775808",
        "/api/events/cup/conflicts?limit=0",
        "/api/events/cup/announcements?limit=1001",
        "/api/events/cup/announcements?offset=1",
    ] {
        let (status, body) = director.get(path).await;
        assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "{path}: {body}");
    }
    assert_eq!(director.get("/api/events/cup/scores/m1/history?offset=9223372036854775807").await.0, 200);
    // A field that breaks its own rule says so with the code `invalid`, as documented.
    let (status, body) = director.put("/api/events/cup/courts/c2", json!({ "id": "c2", "name": " " })).await;
    assert_eq!((status, body["error"]["fields"][0]["code"].as_str()), (422, Some("invalid")), "{body}");
    // The claim body is optional (seed 001), `null` included.
    let kim = as_user(&server, "kim", Role::Scorekeeper);
    assert_eq!(kim.send(reqwest::Method::POST, "/api/events/cup/claims/m1", Some(Value::Null)).await.0, 200);
}
