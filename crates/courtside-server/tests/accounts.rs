//! Users and sign-in over real HTTP: a director adds users, they sign in with a password, use
//! the access token on the API and the WebSocket, and rotate refresh tokens; a spent refresh
//! token presented again revokes the whole sign-in.

mod common;

use common::{TestServer, result};
use serde_json::json;


#[tokio::test]
async fn users_sign_in_use_their_token_and_rotate_refresh_tokens() {
    let server = TestServer::start().await;
    let key = format!("apikey {}", server.api_key());
    let new_user = json!({ "username": "kim@club.example", "password": "correct horse", "roles": ["scorekeeper"] });
    let (status, body) = server.post("/api/users", Some(&key), new_user.clone()).await;
    assert_eq!((status, body["username"].as_str()), (201, Some("kim@club.example")), "{body}");
    let (status, body) = server.post("/api/users", Some(&key), new_user).await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("already_exists")));
    let (status, body) = server.post("/api/users", Some(&key), json!({ "username": "lee", "password": "short", "roles": ["staff"] })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("validation_failed")), "{body}");
    let fan = format!("Bearer {}", server.token("fan", &[courtside_core::Role::Spectator]));
    let (status, _) = server.post("/api/users", Some(&fan), json!({ "username": "x", "password": "whatever123", "roles": ["director"] })).await;
    assert_eq!(status, 403, "only directors manage users");

    for (username, password) in [("kim@club.example", "wrong password"), ("nobody", "correct horse")] {
        let (status, body) = server.post("/api/auth/login", None, json!({ "email": username, "password": password })).await;
        assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_credentials")), "{body}");
    }
    let (status, signed_in) = server.post("/api/auth/login", None, json!({ "email": "kim@club.example", "password": "correct horse" })).await;
    assert_eq!(status, 200, "{signed_in}");
    assert_eq!(signed_in["user"]["roles"], json!(["scorekeeper"]));
    assert_eq!(signed_in["expiresIn"], 900, "access tokens are short-lived");
    let token = signed_in["token"].as_str().expect("token");

    // The access token works on the WebSocket like any other JWT.
    let mut client = server.client().await;
    let connected = client.request("connect", json!({ "token": token })).await;
    assert_eq!(result(&connected)["user"], "kim@club.example", "{connected}");

    // Refresh rotates: the old refresh token is spent.
    let first_refresh = signed_in["refreshToken"].as_str().expect("refresh token").to_string();
    let (status, rotated) = server.post("/api/auth/refresh", Some(&format!("Bearer {first_refresh}")), json!({})).await;
    assert_eq!(status, 200, "{rotated}");
    let second_refresh = rotated["refreshToken"].as_str().expect("refresh token").to_string();
    assert_ne!(second_refresh, first_refresh);
    // A client that sends its (expired) access token along: the body's refresh token counts.
    let (status, again) = server.post("/api/auth/refresh", Some(&format!("Bearer {token}")), json!({ "refreshToken": second_refresh })).await;
    assert_eq!(status, 200, "{again}");
    let third_refresh = again["refreshToken"].as_str().expect("refresh token").to_string();

    // A spent token presented again (a thief's copy, say) revokes the family: the newest too.
    let (status, body) = server.post("/api/auth/refresh", Some(&format!("Bearer {first_refresh}")), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("refresh_token_reused")), "{body}");
    let (status, body) = server.post("/api/auth/refresh", Some(&format!("Bearer {third_refresh}")), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("refresh_token_reused")), "{body}");
    let (status, body) = server.post("/api/auth/refresh", Some("Bearer not.a-token"), json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (401, Some("invalid_refresh_token")));

    // Signing in again starts a new family.
    let (status, _) = server.post("/api/auth/login", None, json!({ "username": "kim@club.example", "password": "correct horse" })).await;
    assert_eq!(status, 200);
}
