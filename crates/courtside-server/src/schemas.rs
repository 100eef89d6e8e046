//! The documented shapes of the HTTP API: the error body, the response shapes the handlers build
//! with `json!` (described here by small structs that exist for the document only), the id,
//! channel and role schemas, and the named sets of error responses the handlers declare. The
//! handlers and the document ([`crate::openapi`]) both use them; they use neither.

use std::collections::BTreeMap;

use courtside_domain::claim::Claim;
use courtside_domain::model::{ConflictEntry, Court, Division, Match, ScoreRecord, Team, Tournament};
use courtside_domain::scoring::ScoreViolation;
use serde::Serialize;
use utoipa::openapi::{ObjectBuilder, RefOr, Schema, Type};
use utoipa::ToSchema;

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

/// The tournaments a public scoreboard can show.
#[derive(Serialize, ToSchema)]
pub struct ScoreboardsList {
    pub scoreboards: Vec<crate::sports_api::scoreboards::Named>,
}

/// What a public scoreboard shows of one tournament besides its scores.
#[derive(Serialize, ToSchema)]
pub struct ScoreboardOut {
    pub event: crate::sports_api::scoreboards::Named,
    pub divisions: Vec<crate::sports_api::scoreboards::Named>,
    pub teams: Vec<crate::sports_api::scoreboards::Named>,
    pub courts: Vec<crate::sports_api::scoreboards::Named>,
    pub matches: Vec<crate::sports_api::scoreboards::Pairing>,
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
    #[schema(value_type = Option<EventNameDoc>)]
    pub event: Option<String>,
    pub idempotency_key: Option<String>,
}

/// An RPC call: a method name and any JSON the app's backend reads.
#[derive(Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RpcBodyDoc {
    /// 1 to 64 of `A-Za-z0-9_-.:/`.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_.:/-]{1,64}$")]
    pub method: String,
    /// Any JSON value (default `null`).
    pub data: Option<serde_json::Value>,
}

/// What the app's backend answered.
#[derive(Serialize, ToSchema)]
pub struct RpcResultDoc {
    /// Any JSON value.
    pub data: serde_json::Value,
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
    #[schema(value_type = Option<EventNameDoc>)]
    pub event: Option<String>,
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
    pub publications: Vec<PublicationDoc>,
}

/// One stored publication, as history and snapshots list it.
#[derive(Serialize, ToSchema)]
pub struct PublicationDoc {
    pub epoch: String,
    pub offset: u64,
    /// Commit time, milliseconds since the Unix epoch.
    pub time: u64,
    /// Keyed-state key; only when set.
    #[schema(nullable = false)]
    pub key: Option<String>,
    /// Only when `true`: the publication removed `key` from the keyed state.
    #[schema(nullable = false)]
    pub removed: Option<bool>,
    /// The event name it was published with; only when set.
    #[schema(value_type = Option<EventNameDoc>, nullable = false)]
    pub event: Option<String>,
    /// The payload, as published.
    pub data: serde_json::Value,
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

/// A publication's event name (what [`courtside_core::event::validate_event_name`] accepts).
pub struct EventNameDoc;

impl utoipa::PartialSchema for EventNameDoc {
    fn schema() -> RefOr<Schema> {
        use courtside_core::event::{COURTSIDE_EVENTS, SOCKETIO_CLIENT_EVENTS};
        let reserved: Vec<String> =
            SOCKETIO_CLIENT_EVENTS.iter().chain(COURTSIDE_EVENTS.iter()).map(|name| format!("`{name}`")).collect();
        let description = format!(
            "The Socket.IO event the publication is delivered as: printable ASCII without spaces (`!` to `~`), \
             except the reserved names {}",
            reserved.join(", ")
        );
        ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(description))
            .min_length(Some(1))
            .max_length(Some(courtside_core::event::EVENT_NAME_LEN_MAX))
            .pattern(Some("^[!-~]+$"))
            .into()
    }
}

impl ToSchema for EventNameDoc {}

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

