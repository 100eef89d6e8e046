//! RS256 and ES256: a server configured with a public key accepts tokens signed with the
//! matching private key (by an external issuer) and refuses others.

mod common;

use common::{error_code, result, TestServer};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

fn fixture(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

fn sign(algorithm: Algorithm, private_pem: &str, sub: &str, roles: &[&str]) -> String {
    let pem = std::fs::read(fixture(private_pem)).expect("fixture");
    let key = match algorithm {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        _ => EncodingKey::from_ec_pem(&pem),
    }
    .expect("private key");
    let claims = json!({ "sub": sub, "roles": roles, "exp": courtside_server::auth::now_secs() + 600 });
    jsonwebtoken::encode(&Header::new(algorithm), &claims, &key).expect("sign")
}

async fn check(algorithm: Algorithm, name: &str, other_name: &str) {
    let server = TestServer::start_with(|c| {
        c.auth.jwt_algorithm = name.to_uppercase();
        c.auth.jwt_public_key_file = Some(fixture(&format!("test-{name}-public.pem")));
    })
    .await;
    let good = sign(algorithm, &format!("test-{name}-private.pem"), "kim", &["scorekeeper"]);
    let mut client = server.client().await;
    result(&client.request("connect", json!({ "token": good })).await);
    result(&client.request("publish", json!({ "channel": "match:1", "data": 1 })).await);
    assert_eq!(error_code(&client.request("subscribe", json!({ "channel": "user:bob:notifications" })).await), 103);

    // A token signed with the other algorithm's key is refused.
    let other_algorithm = if algorithm == Algorithm::RS256 { Algorithm::ES256 } else { Algorithm::RS256 };
    let wrong = sign(other_algorithm, &format!("test-{other_name}-private.pem"), "kim", &["director"]);
    let mut client = server.client().await;
    client.send_text(&json!({ "id": 1, "connect": { "token": wrong } }).to_string()).await;
    assert_eq!(client.closed().await.close_code, Some(3502));
    assert!(server.server.state.auth.mint("x", &[], 60).is_err(), "a public key cannot mint");
}

#[tokio::test]
async fn rs256_tokens_from_an_external_issuer() {
    check(Algorithm::RS256, "rs256", "es256").await;
}

#[tokio::test]
async fn es256_tokens_from_an_external_issuer() {
    check(Algorithm::ES256, "es256", "rs256").await;
}
