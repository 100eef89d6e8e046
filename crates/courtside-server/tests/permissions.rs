//! Who may see what, black-box: seed 000's four tiers of a tournament's channels, for principals
//! with global roles and with roles in one tournament, over the native WebSocket protocol, SSE,
//! the HTTP history endpoint and Socket.IO (Engine.IO long-polling spoken directly). Every cell
//! of the matrix is asserted. Also: roles held in one tournament in the sports API, a refresh
//! that takes a role away, and an app's own declared role.

mod common;

use std::collections::BTreeMap;

use common::socketio::SocketIo;
use common::{TestServer, error_code};
use courtside_core::Role;
use serde_json::json;

/// A principal of the matrix: its name, and its token (none: anonymous).
struct Who {
    name: &'static str,
    token: Option<String>,
}

const TIERS: [(&str, &str); 4] =
    [("global", "scores"), ("authenticated", "teams"), ("staff", "staff"), ("director", "financial")];
const TOURNAMENTS: [&str; 2] = ["t1", "t2"];

fn principals(server: &TestServer) -> Vec<Who> {
    let scoped = |sub: &str, role: Role| {
        let roles = BTreeMap::from([("t1".to_string(), vec![role])]);
        server.server.state.auth.mint_scoped(sub, &[Role::Spectator], &roles, 3600).expect("mint")
    };
    vec![
        Who { name: "anonymous", token: None },
        Who { name: "spectator", token: Some(server.token("fan", &[Role::Spectator])) },
        Who { name: "no roles", token: Some(server.token("bare", &[])) },
        Who { name: "staff at t1", token: Some(scoped("kim", Role::Staff)) },
        Who { name: "director at t1", token: Some(scoped("lee", Role::Director)) },
        Who { name: "staff", token: Some(server.token("sam", &[Role::Staff])) },
        Who { name: "director", token: Some(server.token("dee", &[Role::Director])) },
    ]
}

/// What the matrix expects: seed 000's tiers, with roles held in t1 counting in t1 only.
fn allowed(who: &str, tier: &str, tournament: &str) -> bool {
    let in_t1 = tournament == "t1";
    match tier {
        "global" => true,
        "authenticated" => who != "anonymous",
        "staff" => matches!(who, "staff" | "director") || (in_t1 && matches!(who, "staff at t1" | "director at t1")),
        "director" => who == "director" || (in_t1 && who == "director at t1"),
        _ => unreachable!("a tier of the matrix"),
    }
}

#[tokio::test]
async fn every_cell_of_the_tier_matrix_holds_on_every_transport() {
    let server = TestServer::start().await;
    let http = reqwest::Client::new();
    let mut checked = 0;
    for who in principals(&server) {
        let mut native = server.client().await;
        let connected = native.request("connect", json!({ "token": who.token })).await;
        assert!(connected.get("result").is_some(), "{}: {connected}", who.name);
        let mut socketio = SocketIo::open(&server, who.token.as_deref()).await;
        for (tier, suffix) in TIERS {
            for tournament in TOURNAMENTS {
                let channel = format!("tournament:{tournament}:{suffix}");
                let expected = allowed(who.name, tier, tournament);
                let cell = format!("{} × {tier} × {tournament}", who.name);

                let reply = native.request("subscribe", json!({ "channel": channel })).await;
                match expected {
                    true => assert!(reply.get("result").is_some(), "WebSocket, {cell}: {reply}"),
                    false => assert_eq!(error_code(&reply), 103, "WebSocket, {cell}: {reply}"),
                }

                let mut sse = format!("/sse?channel={channel}");
                if let Some(token) = &who.token {
                    sse.push_str(&format!("&token={token}"));
                }
                let status = http.get(server.http(&sse)).send().await.expect("sse").status().as_u16();
                assert_eq!(status, if expected { 200 } else { 403 }, "SSE, {cell}");

                let mut history = http.get(server.http(&format!("/api/history?channel={channel}")));
                if let Some(token) = &who.token {
                    history = history.bearer_auth(token);
                }
                let status = history.send().await.expect("history").status().as_u16();
                assert_eq!(status, if expected { 200 } else { 403 }, "HTTP history, {cell}");

                let ack = socketio.subscribe(&channel).await;
                match expected {
                    true => assert!(ack.get("error").is_none(), "Socket.IO, {cell}: {ack}"),
                    false => assert_eq!(ack["error"]["code"], 103, "Socket.IO, {cell}: {ack}"),
                }
                checked += 4;
            }
        }
    }
    assert_eq!(checked, 7 * 4 * 2 * 4, "every cell asserted");
}

#[tokio::test]
async fn scoped_roles_count_in_the_sports_api_for_their_tournament_only() {
    let server = TestServer::start().await;
    let key = format!("apikey {}", server.api_key());
    for t in ["t1", "t2"] {
        let (status, body) = server.post("/api/events", Some(&key), json!({ "id": t, "name": format!("Open {t}") })).await;
        assert_eq!(status, 201, "{body}");
    }
    let roles = BTreeMap::from([("t1".to_string(), vec![Role::Staff])]);
    let token = server.server.state.auth.mint_scoped("kim", &[Role::Spectator], &roles, 3600).expect("mint");
    let bearer = format!("Bearer {token}");
    let announce = |t: &str| format!("/api/events/{t}/announcements");
    let body = json!({ "title": "Court 3 delayed", "body": "Ten minutes", "priority": "normal" });
    let (status, answer) = server.post(&announce("t1"), Some(&bearer), body.clone()).await;
    assert_eq!(status, 201, "staff at t1 announces at t1: {answer}");
    let (status, answer) = server.post(&announce("t2"), Some(&bearer), body).await;
    assert_eq!(status, 403, "but not at t2: {answer}");
}

#[tokio::test]
async fn a_refresh_that_drops_a_role_leaves_what_it_no_longer_allows() {
    let server = TestServer::start().await;
    let director = server.token("dee", &[Role::Director]);
    let spectator = server.token("dee", &[Role::Spectator]);
    let (financial, scores) = ("tournament:t1:financial", "tournament:t1:scores");

    let mut native = server.client().await;
    assert!(native.request("connect", json!({ "token": director })).await.get("result").is_some());
    for channel in [financial, scores] {
        assert!(native.request("subscribe", json!({ "channel": channel })).await.get("result").is_some());
    }
    let mut socketio = SocketIo::open(&server, Some(&director)).await;
    for channel in [financial, scores] {
        assert!(socketio.subscribe(channel).await.get("error").is_none());
    }

    let refreshed = native.request("refresh", json!({ "token": spectator })).await;
    assert!(refreshed["result"]["expires_in_secs"].as_u64().is_some(), "{refreshed}");
    let push = native.next_frame().await.expect("a push");
    assert_eq!(
        push,
        json!({ "push": { "channel": financial, "unsubscribed": { "code": 103, "reason": "permission denied" } } }),
        "the channel the new roles do not allow is left, with a push"
    );
    let refreshed = socketio.emit_with_ack("refresh", json!({ "token": spectator })).await;
    assert!(refreshed["expires_in_secs"].as_u64().is_some(), "{refreshed}");
    let event = socketio.next_event("unsubscribed").await;
    assert_eq!(event[0], json!({ "channel": financial, "code": 103, "reason": "permission denied" }), "{event}");

    server.publish(financial, json!("secret")).await;
    server.publish(scores, json!("25-23")).await;
    let delivered = native.next_publication().await;
    assert_eq!((delivered["channel"].as_str(), &delivered["data"]), (Some(scores), &json!("25-23")), "only what is still allowed");
    let reply = native.request("unsubscribe", json!({ "channel": financial })).await;
    assert_eq!(error_code(&reply), 106, "no longer subscribed: {reply}");
    let publication = socketio.next_event("publication").await;
    assert_eq!(publication[0]["channel"], scores, "Socket.IO too: {publication}");
}

#[tokio::test]
async fn an_apps_own_role_opens_what_its_rules_say() {
    let rider = Role::named("rider").expect("a role name");
    let server = TestServer::start_with(|config| {
        config.auth.roles = vec![rider.clone()];
        let ride = courtside_core::NamespaceOptions { subscribe: vec![rider.clone()], publish: vec![rider.clone()], ..Default::default() };
        config.namespaces.insert("ride".into(), ride);
    })
    .await;
    let mut riding = server.client().await;
    let token = server.token("ana", &[rider.clone()]);
    assert!(riding.request("connect", json!({ "token": token })).await.get("result").is_some());
    let reply = riding.request("subscribe", json!({ "channel": "ride:r1:track" })).await;
    assert!(reply.get("result").is_some(), "a rider follows a ride: {reply}");
    let published = riding.request("publish", json!({ "channel": "ride:r1:track", "data": { "lat": 52.1 } })).await;
    assert_eq!(published["result"]["offset"], 1, "and publishes on it: {published}");

    let mut watching = server.connected("fan", &[Role::Spectator]).await;
    let refused = watching.request("subscribe", json!({ "channel": "ride:r1:track" })).await;
    assert_eq!(error_code(&refused), 103, "not a rider: {refused}");

    let undeclared = server.token("bo", &[Role::named("pilot").expect("a role name")]);
    let mut stranger = server.client().await;
    stranger.send_text(&json!({ "id": 1, "connect": { "token": undeclared } }).to_string()).await;
    let closed = stranger.closed().await;
    assert_eq!(closed.close_code, Some(3502), "a role the configuration does not declare refuses the token");
    let (status, refused) = server.get("/api/history?channel=ride:r1:track", Some(&format!("Bearer {undeclared}"))).await;
    assert_eq!(status, 401, "{refused}");
    assert!(refused["error"]["message"].as_str().is_some_and(|m| m.contains("unknown role \"pilot\"")), "{refused}");

    let key = format!("apikey {}", server.api_key());
    let body = |role: &str| json!({ "username": format!("u-{role}"), "password": "long enough", "roles": [role] });
    let (status, added) = server.post("/api/users", Some(&key), body("rider")).await;
    assert_eq!((status, &added["roles"]), (201, &json!(["rider"])), "{added}");
    let (status, refused) = server.post("/api/users", Some(&key), body("pilot")).await;
    assert_eq!((status, refused["error"]["code"].as_str()), (422, Some("validation_failed")), "{refused}");
}
