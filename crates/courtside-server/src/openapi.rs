//! The OpenAPI 3.1 document of the HTTP API, generated from the route handlers' annotations and
//! the types they read and write (`utoipa`), served at `/openapi.json`; and its rendering as
//! Markdown for docs/rest-api.md. Tests keep docs/openapi.json and docs/rest-api.md equal to what
//! this module generates. The shapes it names live in [`crate::schemas`].

use std::fmt::Write as _;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use courtside_domain::model::Announcement;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::schemas::ErrorBody;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT").build()),
        );
        components.add_security_scheme(
            "apikey",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "authorization",
                "`Authorization: apikey <key>`: the app backend",
            ))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Courtside HTTP API", description = "Tournaments, live scores, claims, leaderboards and channels. The wire protocol (WebSocket, SSE) is in docs/protocol.md."),
    paths(
        crate::sports_api::events::list_events, crate::sports_api::events::create_event, crate::sports_api::events::event,
        crate::sports_api::events::update_event, crate::sports_api::events::update_match, crate::sports_api::events::announcements,
        crate::sports_api::events::export, crate::sports_api::events::import,
        crate::sports_api::events::put_division, crate::sports_api::events::put_team, crate::sports_api::events::put_court,
        crate::sports_api::events::create_match, crate::sports_api::scores::update_score, crate::sports_api::scores::scores,
        crate::sports_api::scores::score, crate::sports_api::scores::score_history, crate::sports_api::claims::claims,
        crate::sports_api::claims::claim, crate::sports_api::claims::take_claim, crate::sports_api::claims::release_claim,
        crate::sports_api::claims::coverage_plan, crate::sports_api::claims::set_coverage_plan, crate::sports_api::claims::clear_coverage_plan,
        crate::sports_api::events::announce, crate::sports_api::scores::conflicts,
        crate::leaderboard_api::list_boards, crate::leaderboard_api::create_board, crate::leaderboard_api::board,
        crate::leaderboard_api::submit, crate::leaderboard_api::record_match, crate::leaderboard_api::top,
        crate::leaderboard_api::player, crate::leaderboard_api::around, crate::leaderboard_api::ranks,
        crate::auth_api::login, crate::auth_api::refresh, crate::auth_api::add_user, crate::auth_api::list_users,
        crate::sports_api::scoreboards::list, crate::sports_api::scoreboards::scoreboard,
        crate::api::publish, crate::api::broadcast, crate::api::rpc, crate::api::history, crate::api::presence, crate::api::channels,
        crate::api::health, crate::api::ready, crate::api::metrics, crate::admin_api::announce,
    ),
    components(schemas(Announcement, ErrorBody)),
    modifiers(&Security),
    tags(
        (name = "sports", description = "Tournaments and what they hold"),
        (name = "scores", description = "Live scores, their history and conflicts"),
        (name = "claims", description = "Scorekeeper claims with fencing tokens"),
        (name = "coverage", description = "A user's selected matches"),
        (name = "leaderboards", description = "Leaderboards and ELO ratings"),
        (name = "auth", description = "Users, sign-in and refresh tokens"),
        (name = "channels", description = "The server API for app backends"),
        (name = "operations", description = "Health, readiness, metrics"),
    ),
)]
pub struct ApiDoc;

/// The document as served at `/openapi.json` (pretty-printed, stable key order).
pub fn document_json() -> String {
    ApiDoc::openapi().to_pretty_json().unwrap_or_else(|error| format!("{{\"error\":\"{error}\"}}"))
}

/// The REST reference in Markdown, rendered from the document: one section per endpoint with
/// its parameters, body and every response.
pub fn document_markdown() -> String {
    let doc: serde_json::Value = serde_json::from_str(&document_json()).unwrap_or_default();
    let mut out = String::from(
        "# Courtside REST reference\n\nGenerated from the OpenAPI 3.1 document the server serves at `/openapi.json` \
         (also in docs/openapi.json). Do not edit: run `courtside openapi --markdown > docs/rest-api.md`.\n\
         The prose guide, with examples, is docs/api.md.\n",
    );
    let empty = serde_json::Map::new();
    for (path, methods) in doc["paths"].as_object().unwrap_or(&empty) {
        for (method, operation) in methods.as_object().unwrap_or(&empty) {
            let _ = write!(out, "\n## `{} {}`\n\n{}\n", method.to_uppercase(), path, operation["summary"].as_str().unwrap_or_default());
            if let Some(parameters) = operation["parameters"].as_array() {
                out.push_str("\n| Parameter | In | Required | Description |\n| --- | --- | --- | --- |\n");
                for parameter in parameters {
                    let _ = writeln!(
                        out,
                        "| `{}` | {} | {} | {} |",
                        parameter["name"].as_str().unwrap_or_default(),
                        parameter["in"].as_str().unwrap_or_default(),
                        if parameter["required"].as_bool().unwrap_or(false) { "yes" } else { "no" },
                        parameter["description"].as_str().unwrap_or_default()
                    );
                }
            }
            if let Some(schema) = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str() {
                let _ = writeln!(out, "\nBody: `{}`", schema.rsplit('/').next().unwrap_or(schema));
            }
            out.push_str("\n| Status | Meaning | Body |\n| --- | --- | --- |\n");
            for (status, response) in operation["responses"].as_object().unwrap_or(&empty) {
                let content = &response["content"]["application/json"]["schema"];
                let body = content["$ref"].as_str().map(|r| r.rsplit('/').next().unwrap_or(r).to_string()).unwrap_or_default();
                let _ = writeln!(out, "| {status} | {} | {} |", response["description"].as_str().unwrap_or_default(), if body.is_empty() { String::new() } else { format!("`{body}`") });
            }
        }
    }
    out.push_str("\n## Schemas\n");
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap_or(&empty) {
        let _ = write!(out, "\n### `{name}`\n\n");
        if let Some(description) = schema["description"].as_str() {
            let _ = writeln!(out, "{description}\n");
        }
        match schema["properties"].as_object() {
            Some(properties) => {
                let required: Vec<&str> = schema["required"].as_array().map(|r| r.iter().filter_map(|v| v.as_str()).collect()).unwrap_or_default();
                out.push_str("| Field | Type | Required | Description |\n| --- | --- | --- | --- |\n");
                for (field, property) in properties {
                    let _ = writeln!(
                        out,
                        "| `{field}` | {} | {} | {} |",
                        type_of(property),
                        if required.contains(&field.as_str()) { "yes" } else { "no" },
                        property["description"].as_str().unwrap_or_default().replace('\n', " ")
                    );
                }
            }
            None => {
                let _ = writeln!(out, "{}", type_of(schema));
            }
        }
    }
    out
}

/// A short type name for a property schema.
fn type_of(schema: &serde_json::Value) -> String {
    if let Some(reference) = schema["$ref"].as_str() {
        return format!("`{}`", reference.rsplit('/').next().unwrap_or(reference));
    }
    if let Some(values) = schema["enum"].as_array() {
        return values.iter().filter_map(|v| v.as_str()).map(|v| format!("`{v}`")).collect::<Vec<_>>().join(" \\| ");
    }
    if let Some(variants) = schema["oneOf"].as_array().or_else(|| schema["anyOf"].as_array()) {
        return variants.iter().map(type_of).collect::<Vec<_>>().join(" or ");
    }
    match &schema["type"] {
        serde_json::Value::String(kind) if kind == "array" => format!("array of {}", type_of(&schema["items"])),
        serde_json::Value::String(kind) => kind.clone(),
        serde_json::Value::Array(kinds) => kinds.iter().filter_map(|k| k.as_str()).collect::<Vec<_>>().join(" or "),
        _ => "any".into(),
    }
}

/// `GET /openapi.json`.
pub(crate) async fn serve_document() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], document_json()).into_response()
}
