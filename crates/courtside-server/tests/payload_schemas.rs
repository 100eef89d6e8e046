//! Publication payloads checked against a namespace's JSON Schema (`[schemas.<namespace>]`), over
//! the native protocol and the HTTP API: a payload that does not match is refused naming where
//! and why, nothing of it is stored, and other namespaces are not checked.

mod common;

use std::collections::BTreeMap;

use common::{TestServer, error_code, offsets, result};
use courtside_core::Role;
use courtside_server::payload_schema::SchemaConfig;
use serde_json::json;

fn score_schema() -> serde_json::Value {
    json!({
        "type": "object",
        "required": ["home", "away"],
        "properties": { "home": { "type": "integer", "minimum": 0 }, "away": { "type": "integer", "minimum": 0 } },
        "additionalProperties": false
    })
}

#[tokio::test]
async fn payloads_that_do_not_match_the_schema_are_refused_and_not_stored() {
    let schema_file = common::temp_dir("schema").join("score.json");
    std::fs::create_dir_all(schema_file.parent().expect("a directory")).expect("dir");
    std::fs::write(&schema_file, score_schema().to_string()).expect("schema file");
    let server = TestServer::start_with(|config| {
        config.schemas = BTreeMap::from([
            ("match".to_string(), SchemaConfig { file: None, inline: Some(score_schema()) }),
            ("court".to_string(), SchemaConfig { file: Some(schema_file), inline: None }),
        ]);
    })
    .await;
    let mut staff = server.connected("sam", &[Role::Staff]).await;
    for channel in ["match:m1", "court:c1"] {
        let accepted = staff.request("publish", json!({ "channel": channel, "data": { "home": 3, "away": 1 } })).await;
        assert_eq!(result(&accepted)["offset"], 1, "{channel}: {accepted}");
        let refused = staff.request("publish", json!({ "channel": channel, "data": { "home": -1, "away": 1 } })).await;
        assert_eq!(error_code(&refused), 107, "{channel}: {refused}");
        let message = refused["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("does not match the schema") && message.contains("at /home"), "{channel}: {message}");
    }
    let missing = staff.request("publish", json!({ "channel": "match:m1", "data": { "home": 3 } })).await;
    assert_eq!(error_code(&missing), 107, "a required field: {missing}");

    let key = format!("apikey {}", server.api_key());
    let (status, body) = server.post("/api/publish", Some(&key), json!({ "channel": "match:m1", "data": { "home": "3", "away": 1 } })).await;
    assert_eq!((status, body["error"]["code"].as_str()), (400, Some("bad_request")), "the API key is checked too: {body}");

    let history = staff.request("history", json!({ "channel": "match:m1" })).await;
    assert_eq!(offsets(&result(&history)["publications"]), [1], "only the matching payload is stored: {history}");
    let free = staff.request("publish", json!({ "channel": "tournament:t1:notes", "data": { "home": -1 } })).await;
    assert!(free.get("result").is_some(), "a namespace without a schema is not checked: {free}");
}

#[tokio::test]
async fn a_schema_that_cannot_be_used_stops_the_start_with_its_key() {
    let mut config = courtside_server::Config { data_dir: common::temp_dir("bad-schema"), ..courtside_server::Config::default() };
    config.listen = "127.0.0.1:0".parse().expect("addr");
    config.schemas = BTreeMap::from([("match".to_string(), SchemaConfig { file: None, inline: Some(json!({ "type": 7 })) })]);
    let Err(error) = courtside_server::start(config).await else { panic!("a server started with a broken schema") };
    assert!(error.to_string().starts_with("configuration key `schemas.match`: not a usable JSON Schema"), "{error}");
}
