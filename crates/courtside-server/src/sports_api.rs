//! The sports REST API (seed 001's paths): tournaments ("events") and what they hold, scores,
//! claims, coverage plans, announcements and conflicts, over [`SportsService`]. Every
//! [`SportsError`] is mapped to its HTTP status here, once, in the server's one error shape —
//! with `fields` for validation failures and `current` (the stored score) for conflicts.
//!
//! Every handler checks in one order: the caller is signed in (401), the ids in the path are
//! well-formed (400 `invalid_id`), the body or query is the documented JSON (400), the caller's
//! role may do this (403) — and only then is anything looked up (404) or changed. The handlers
//! live in [`events`] (tournaments and what they hold, import/export, announcements), [`scores`]
//! (scores, their history and conflicts) and [`claims`] (claims and coverage plans); what a
//! request carries — path ids, queries, bodies — and its checks, in [`requests`].

pub(crate) mod claims;
pub(crate) mod events;
pub(crate) mod requests;
pub(crate) mod scoreboards;
pub(crate) mod scores;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use courtside_core::access::Principal;
use courtside_core::channel::Role;
use courtside_core::store::StoreError;
use courtside_domain::claim::{ClaimError, FenceError, ReleaseError};
use courtside_domain::scoring::ScoreViolation;
use courtside_domain::service::{Actor, SportsError};
use serde_json::json;

use crate::http::{ApiError, HttpFailure, principal_from};
use crate::protocol::ClientError;
use crate::state::ServerState;

pub fn routes(state: Arc<ServerState>) -> Router<Arc<ServerState>> {
    Router::new()
        .route("/api/events", get(events::list_events).post(events::create_event))
        .route("/api/scoreboards", get(scoreboards::list))
        .route("/api/scoreboards/{event_id}", get(scoreboards::scoreboard))
        .route("/api/events/{event_id}", get(events::event).put(events::update_event))
        .route("/api/events/{event_id}/matches/{match_id}", put(events::update_match))
        .route("/api/events/{event_id}/export", get(events::export))
        .route("/api/events/import", post(events::import))
        .route("/api/events/{event_id}/divisions/{id}", put(events::put_division))
        .route("/api/events/{event_id}/teams/{id}", put(events::put_team))
        .route("/api/events/{event_id}/courts/{id}", put(events::put_court))
        .route("/api/events/{event_id}/matches", post(events::create_match))
        .route("/api/events/{event_id}/scores", get(scores::scores).post(scores::update_score))
        .route("/api/events/{event_id}/scores/{match_id}", get(scores::score))
        .route("/api/events/{event_id}/scores/{match_id}/history", get(scores::score_history))
        .route("/api/events/{event_id}/claims", get(claims::claims))
        .route(
            "/api/events/{event_id}/claims/{match_id}",
            get(claims::claim).post(claims::take_claim).delete(claims::release_claim),
        )
        .route(
            "/api/events/{event_id}/coverage-plans",
            get(claims::coverage_plan).put(claims::set_coverage_plan).delete(claims::clear_coverage_plan),
        )
        .route("/api/events/{event_id}/announcements", get(events::announcements).post(events::announce))
        .route("/api/events/{event_id}/conflicts", get(scores::conflicts))
        .route_layer(middleware::from_fn_with_state(state, crate::http::rate_limited))
}

/// A [`SportsError`] answered over HTTP.
pub struct SportsApiError(SportsError);

impl From<SportsError> for SportsApiError {
    fn from(error: SportsError) -> Self {
        Self(error)
    }
}

/// What a sports handler fails with.
pub type Failure = HttpFailure<SportsApiError>;

impl From<SportsError> for Failure {
    fn from(error: SportsError) -> Self {
        HttpFailure::Module(SportsApiError(error))
    }
}

impl SportsApiError {
    /// The HTTP status and the stable code of each error.
    pub fn http(&self) -> (StatusCode, &'static str) {
        use SportsError as E;
        match &self.0 {
            E::InvalidId(_) => (StatusCode::BAD_REQUEST, "invalid_id"),
            E::NotFound { .. } => (StatusCode::NOT_FOUND, "not_found"),
            E::AlreadyExists { .. } => (StatusCode::CONFLICT, "already_exists"),
            E::Forbidden(_) => (StatusCode::FORBIDDEN, "permission_denied"),
            E::InvalidField { .. } | E::Format(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            E::ScoreRejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_score"),
            E::MatchFinished { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "match_completed"),
            E::OpIdReused { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "op_id_reused"),
            E::Stale { .. } => (StatusCode::CONFLICT, "stale_version"),
            E::KeptServer { .. } => (StatusCode::CONFLICT, "newer_score_stored"),
            E::Claim(ClaimError::Held { .. }) => (StatusCode::CONFLICT, "claim_held"),
            E::Claim(ClaimError::TokensExhausted) => (StatusCode::CONFLICT, "claim_tokens_exhausted"),
            E::Claim(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            E::Release(ReleaseError::NotHolder { .. }) => (StatusCode::FORBIDDEN, "not_claim_holder"),
            E::Fence(FenceError::NotClaimed) => (StatusCode::FORBIDDEN, "claim_required"),
            E::Fence(FenceError::Expired { .. }) => (StatusCode::FORBIDDEN, "claim_expired"),
            E::Fence(FenceError::HeldByOther { .. }) => (StatusCode::FORBIDDEN, "not_claim_holder"),
            E::Fence(FenceError::StaleToken { .. } | FenceError::UnknownToken { .. }) => (StatusCode::CONFLICT, "stale_fencing_token"),
            E::Contended => (StatusCode::SERVICE_UNAVAILABLE, "contended"),
            E::Store(StoreError::Conflict(_)) => (StatusCode::SERVICE_UNAVAILABLE, "contended"),
            E::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            E::Corrupt(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for SportsApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.http();
        let mut error = json!({ "code": code, "status": status.as_u16(), "message": self.0.to_string() });
        match &self.0 {
            SportsError::ScoreRejected(violations) => error["fields"] = json!(violations),
            SportsError::InvalidField { field, message } => error["fields"] = json!([ScoreViolation::invalid(field, message)]),
            SportsError::Format(format) => {
                error["fields"] = json!([{ "path": "format", "code": "invalid_format", "message": format.to_string() }]);
            }
            SportsError::Stale { current, .. } => error["current"] = json!(**current),
            SportsError::KeptServer { current } => error["current"] = json!(**current),
            SportsError::Corrupt(detail) => {
                tracing::error!(%detail, "a stored sports record cannot be read");
                error["message"] = json!("internal error");
            }
            _ => {}
        }
        (status, Json(json!({ "error": error }))).into_response()
    }
}

/// The caller as the sports service sees it: a signed-in user, or the app backend (API key),
/// which acts as a director named `api`. Anonymous callers are refused.
fn actor(state: &ServerState, headers: &HeaderMap) -> Result<Actor, Failure> {
    match principal_from(state, headers, None)? {
        Principal::User { id, roles, tournament_roles } => Ok(Actor { user: id, roles, tournament_roles }),
        Principal::Server => Ok(Actor::new("api", vec![Role::Director])),
        Principal::Anonymous => Err(ApiError(ClientError::Unauthorized("sign in: this endpoint needs a token".into())).into()),
    }
}

type Shared = State<Arc<ServerState>>;
type Reply = Result<Response, Failure>;

fn ok(value: impl serde::Serialize) -> Reply {
    Ok(Json(value).into_response())
}

fn created(value: impl serde::Serialize) -> Reply {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}
