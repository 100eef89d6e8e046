//! The OpenAPI 3.1 document of the HTTP API, generated from the route handlers' annotations and
//! the types they read and write (`utoipa`), served at `/openapi.json`; and its rendering as
//! Markdown for docs/rest-api.md. Tests keep docs/openapi.json and docs/rest-api.md equal to what
//! this module generates.
//!
//! The response shapes built with `json!` in the handlers are described here by the small
//! structs below; they exist for the document only.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use courtside_domain::claim::Claim;
use courtside_domain::model::{Announcement, ConflictEntry, Court, Division, Match, ScoreRecord, Team, Tournament};
use courtside_domain::scoring::ScoreViolation;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::{Modify, OpenApi, ToSchema};

/// Every error: `{"error": {...}}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, machine-readable: `not_found`, `invalid_score`, `claim_held`, …
    pub code: String,
    pub status: u16,
    /// A sentence saying what was wrong.
    pub message: String,
    /// Validation failures (`validation_failed`, `invalid_score`): where and why; `code` is
    /// `invalid` for a field that breaks a rule of its own.
    pub fields: Option<Vec<ScoreViolation>>,
    /// Conflicts on a score: the stored score.
    pub current: Option<ScoreRecord>,
}

#[derive(Serialize, ToSchema)]
pub struct EventsList {
    pub events: Vec<Tournament>,
}

#[derive(Serialize, ToSchema)]
pub struct EventDetail {
    pub event: Tournament,
    pub divisions: Vec<Division>,
    pub teams: Vec<Team>,
    pub courts: Vec<Court>,
    pub matches: Vec<Match>,
}

#[derive(Serialize, ToSchema)]
pub struct ScoreOut {
    pub score: Option<ScoreRecord>,
    /// A retried operation id: this is the first answer, nothing changed.
    pub duplicate: Option<bool>,
}

#[derive(Serialize, ToSchema)]
pub struct ScoresList {
    pub scores: Vec<ScoreRecord>,
}

#[derive(Serialize, ToSchema)]
pub struct ClaimOut {
    pub claim: Option<Claim>,
}

#[derive(Serialize, ToSchema)]
pub struct ClaimsList {
    /// Live claims by match id.
    pub claims: BTreeMap<String, Claim>,
}

#[derive(Serialize, ToSchema)]
pub struct Released {
    pub released: bool,
    /// A director released another user's claim.
    pub forced: Option<bool>,
    pub holder: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct AnnouncementsList {
    /// Each as published: `{"type": "announcement", "announcement": Announcement}`.
    pub announcements: Vec<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct ConflictsList {
    pub conflicts: Vec<ConflictEntry>,
}

#[derive(Serialize, ToSchema)]
pub struct UsersList {
    pub users: Vec<crate::accounts::UserView>,
}

/// `POST /api/publish`.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishBodyDoc {
    #[schema(value_type = ChannelNameDoc)]
    pub channel: String,
    /// Any JSON value.
    pub data: serde_json::Value,
    pub key: Option<String>,
    /// Remove `key` from the keyed state.
    #[schema(nullable = false)]
    pub remove: Option<bool>,
    pub idempotency_key: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct PublishResultDoc {
    pub channel: String,
    pub epoch: String,
    pub offset: u64,
    pub duplicate: Option<bool>,
}

#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BroadcastBodyDoc {
    #[schema(min_items = 1, max_items = 1000, value_type = Vec<ChannelNameDoc>)]
    pub channels: Vec<String>,
    pub data: serde_json::Value,
    pub key: Option<String>,
    pub idempotency_key: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct BroadcastResultDoc {
    /// Per channel: a `PublishResultDoc`, or `{channel, error}`.
    pub results: Vec<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct HistoryDoc {
    pub channel: String,
    pub epoch: String,
    /// The channel's latest offset.
    pub offset: u64,
    /// The oldest offset still in history.
    pub earliest: u64,
    pub publications: Vec<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct PresenceDoc {
    pub clients: Vec<serde_json::Value>,
}

#[derive(Serialize, ToSchema)]
pub struct ChannelsDoc {
    /// Sorted by name.
    pub channels: Vec<ChannelSubscribersDoc>,
}

#[derive(Serialize, ToSchema)]
pub struct ChannelSubscribersDoc {
    pub channel: String,
    /// Local subscribers (WebSocket and SSE) on this node.
    pub subscribers: u64,
}

/// An id of a tournament, division, team, court or match: it becomes part of channel names.
pub struct Id;

impl utoipa::PartialSchema for Id {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("An id: letters, digits, `_` and `-`"))
            .min_length(Some(1))
            .max_length(Some(courtside_domain::model::ID_LEN_MAX))
            .pattern(Some(ID_PATTERN))
            .into()
    }
}

impl ToSchema for Id {}

/// What [`courtside_domain::model::check_id`] accepts, as a pattern (with the length limits).
pub const ID_PATTERN: &str = "^[A-Za-z0-9_-]+$";

/// A channel name: `namespace:rest`, segments of letters, digits, `_`, `-`, `.` and `@`.
pub struct ChannelNameDoc;

impl utoipa::PartialSchema for ChannelNameDoc {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some("`namespace:rest`: segments of letters, digits, `_`, `-`, `.` and `@`, none empty"))
            .min_length(Some(3))
            .max_length(Some(courtside_core::channel::CHANNEL_NAME_LEN_MAX))
            .pattern(Some("^[A-Za-z0-9_.@-]+(:[A-Za-z0-9_.@-]+)+$"))
            .into()
    }
}

impl ToSchema for ChannelNameDoc {}

/// A role a token or a user may carry: the server's own list ([`courtside_core::Role::ALL`]).
pub struct RoleDoc;

impl utoipa::PartialSchema for RoleDoc {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(courtside_core::Role::ALL.iter().map(|role| role.as_str())))
            .into()
    }
}

impl ToSchema for RoleDoc {}

/// The error responses of an endpoint, each with its description and the one error shape: what
/// a sports handler can answer besides success, named once per set of statuses.
fn error_responses(statuses: &[u16]) -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
    let body = utoipa::openapi::ContentBuilder::new().schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name("ErrorBody")))).build();
    statuses
        .iter()
        .map(|status| {
            let description = match status {
                400 => "Bad request: not the documented JSON, or an invalid id (`invalid_id`)",
                401 => "No, a bad or an expired token",
                403 => "The caller may not do this",
                404 => "Not found",
                409 => "Conflict (see the error code; `current` holds the stored score where there is one)",
                413 => "The body is over 1 MiB",
                422 => "Validation failed (`fields` says where and why)",
                429 => "Past the caller's rate limit (see Retry-After)",
                _ => "The store is unavailable, or the request kept meeting concurrent changes",
            };
            let response = utoipa::openapi::ResponseBuilder::new().description(description).content("application/json", body.clone()).build();
            (status.to_string(), RefOr::T(response))
        })
        .collect()
}

/// Declares response sets: `Name => [statuses]`.
macro_rules! error_sets {
    ($($(#[$doc:meta])* $name:ident => [$($status:literal),*];)*) => {$(
        $(#[$doc])*
        pub struct $name;
        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<utoipa::openapi::response::Response>> {
                error_responses(&[$($status),*])
            }
        }
    )*};
}

error_sets! {
    /// A list without path ids.
    ListErrors => [401, 429, 503];
    /// A read of something a path names.
    ReadErrors => [400, 401, 404, 429, 503];
    /// A read or a removal some roles may not do.
    RestrictedErrors => [400, 401, 403, 404, 429, 503];
    /// A creation from a body alone.
    CreateErrors => [400, 401, 403, 409, 413, 422, 429, 503];
    /// A change to something a path names.
    WriteErrors => [400, 401, 403, 404, 413, 422, 429, 503];
    /// A change that may meet a conflicting state.
    ConflictingWriteErrors => [400, 401, 403, 404, 409, 413, 422, 429, 503];
    /// A change to the caller's own record.
    OwnWriteErrors => [400, 401, 404, 413, 422, 429, 503];
}

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
    info(title = "Courtside HTTP API", description = "Tournaments, live scores, claims and channels. The wire protocol (WebSocket, SSE) is in docs/protocol.md."),
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
        crate::auth_api::login, crate::auth_api::refresh, crate::auth_api::add_user, crate::auth_api::list_users,
        crate::api::publish, crate::api::broadcast, crate::api::history, crate::api::presence, crate::api::channels,
        crate::api::health, crate::api::ready, crate::api::metrics,
    ),
    components(schemas(Announcement, ErrorBody)),
    modifiers(&Security),
    tags(
        (name = "sports", description = "Tournaments and what they hold"),
        (name = "scores", description = "Live scores, their history and conflicts"),
        (name = "claims", description = "Scorekeeper claims with fencing tokens"),
        (name = "coverage", description = "A user's selected matches"),
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
