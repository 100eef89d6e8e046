//! The sports REST API (seed 001's paths): tournaments ("events") and what they hold, scores,
//! claims, coverage plans, announcements and conflicts, over [`SportsService`]. Every
//! [`SportsError`] is mapped to its HTTP status here, once, in the server's one error shape —
//! with `fields` for validation failures and `current` (the stored score) for conflicts.

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use courtside_core::access::Principal;
use courtside_core::channel::Role;
use courtside_domain::claim::{ClaimError, FenceError, Release, ReleaseError};
use courtside_domain::model::{Court, Division, Match, Priority, Team, Tournament};
use courtside_domain::service::{Actor, ScoreUpdate, SportsError, TournamentExport};
use courtside_core::store::StoreError;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{ApiError, HttpFailure, optional_json, principal_from};
use crate::protocol::ClientError;
#[allow(unused_imports)] // named by the `utoipa::path` annotations
use crate::openapi::{AnnouncementsList, ClaimOut, ClaimsList, ConflictsList, ErrorBody, EventDetail, EventsList, Released, ScoreOut, ScoresList};
#[allow(unused_imports)]
use courtside_domain::model::Announcement;
#[allow(unused_imports)]
use courtside_domain::service::HistoryPageOut;
use crate::server::ServerState;

/// Default page size of score history.
const HISTORY_LIMIT_DEFAULT: usize = 100;

pub fn routes(state: Arc<ServerState>) -> Router<Arc<ServerState>> {
    Router::new()
        .route("/api/events", get(list_events).post(create_event))
        .route("/api/events/{event_id}", get(event).put(update_event))
        .route("/api/events/{event_id}/matches/{match_id}", put(update_match))
        .route("/api/events/{event_id}/export", get(export))
        .route("/api/events/import", post(import))
        .route("/api/events/{event_id}/divisions/{id}", put(put_division))
        .route("/api/events/{event_id}/teams/{id}", put(put_team))
        .route("/api/events/{event_id}/courts/{id}", put(put_court))
        .route("/api/events/{event_id}/matches", post(create_match))
        .route("/api/events/{event_id}/scores", get(scores).post(update_score))
        .route("/api/events/{event_id}/scores/{match_id}", get(score))
        .route("/api/events/{event_id}/scores/{match_id}/history", get(score_history))
        .route("/api/events/{event_id}/claims", get(claims))
        .route("/api/events/{event_id}/claims/{match_id}", get(claim).post(take_claim).delete(release_claim))
        .route("/api/events/{event_id}/coverage-plans", get(coverage_plan).put(set_coverage_plan).delete(clear_coverage_plan))
        .route("/api/events/{event_id}/announcements", get(announcements).post(announce))
        .route("/api/events/{event_id}/conflicts", get(conflicts))
        .route_layer(middleware::from_fn_with_state(state, crate::rate_limit::rate_limited))
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
            SportsError::InvalidField { field, message } => {
                error["fields"] = json!([{ "path": field, "code": "invalid", "message": message }]);
            }
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
        Principal::User { id, roles } => Ok(Actor { user: id, roles }),
        Principal::Server => Ok(Actor { user: "api".into(), roles: vec![Role::Director] }),
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

#[utoipa::path(
    get,
    path = "/api/events",
    tag = "sports",
    summary = "List tournaments",
    responses((status = 200, description = "The tournaments", body = EventsList), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn list_events(State(state): Shared, headers: HeaderMap) -> Reply {
    actor(&state, &headers)?;
    ok(json!({ "events": state.sports.tournaments().await? }))
}

#[utoipa::path(
    post,
    path = "/api/events",
    tag = "sports",
    summary = "Create a tournament (director)",
    request_body = Tournament,
    responses((status = 201, description = "Created", body = Tournament), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 409, description = "Conflict (see the error code; `current` holds the stored score where there is one)", body = ErrorBody), (status = 422, description = "Validation failed (`fields` says where and why)", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn create_event(State(state): Shared, headers: HeaderMap, body: Result<Json<Tournament>, JsonRejection>) -> Reply {
    let actor = actor(&state, &headers)?;
    let Json(tournament) = body?;
    created(state.sports.create_tournament(&actor, tournament).await?)
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/export",
    tag = "sports",
    summary = "Export a tournament as one document (director)",
    params(("event_id" = String, Path, description = "The tournament (event) id")),
    responses((status = 200, description = "The whole tournament", body = TournamentExport), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn export(State(state): Shared, headers: HeaderMap, Path(event_id): Path<String>) -> Reply {
    let actor = actor(&state, &headers)?;
    ok(state.sports.export(&actor, &event_id).await?)
}

#[utoipa::path(
    post,
    path = "/api/events/import",
    tag = "sports",
    summary = "Import an exported tournament (director)",
    request_body = TournamentExport,
    responses((status = 201, description = "Imported", body = Tournament), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 409, description = "Conflict (see the error code; `current` holds the stored score where there is one)", body = ErrorBody), (status = 422, description = "Validation failed (`fields` says where and why)", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn import(State(state): Shared, headers: HeaderMap, body: Result<Json<TournamentExport>, JsonRejection>) -> Reply {
    let actor = actor(&state, &headers)?;
    let Json(export) = body?;
    created(state.sports.import(&actor, export).await?)
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}",
    tag = "sports",
    summary = "A tournament with its divisions, teams, courts and matches",
    params(("event_id" = String, Path, description = "The tournament (event) id")),
    responses((status = 200, description = "The tournament", body = EventDetail), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn event(State(state): Shared, headers: HeaderMap, Path(event_id): Path<String>) -> Reply {
    actor(&state, &headers)?;
    let tournament = state.sports.tournament(&event_id).await?;
    let registry = state.sports.registry(&event_id).await?;
    ok(json!({ "event": tournament, "divisions": registry.divisions, "teams": registry.teams, "courts": registry.courts, "matches": registry.matches }))
}

/// The id in the path must be the body's, when the body names one.
fn same_id(path_id: &str, body_id: &str) -> Result<(), Failure> {
    if path_id == body_id {
        return Ok(());
    }
    Err(SportsError::InvalidField { field: "id".into(), message: format!("the body's id {body_id:?} is not the path's {path_id:?}") }.into())
}

#[utoipa::path(
    put,
    path = "/api/events/{event_id}",
    tag = "sports",
    summary = "Edit a tournament's name and default format (director)",
    params(("event_id" = String, Path, description = "The tournament (event) id")),
    request_body = Tournament,
    responses((status = 200, description = "Stored", body = Tournament), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 422, description = "Validation failed (`fields` says where and why)", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn update_event(
    State(state): Shared,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    body: Result<Json<Tournament>, JsonRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let Json(tournament) = body?;
    same_id(&event_id, &tournament.id)?;
    ok(state.sports.update_tournament(&actor, tournament).await?)
}

#[utoipa::path(
    put,
    path = "/api/events/{event_id}/matches/{match_id}",
    tag = "sports",
    summary = "Edit a match: court and time always; teams, division and format until its first score (staff, director)",
    params(("event_id" = String, Path, description = "The tournament (event) id"), ("match_id" = String, Path, description = "The match id (must equal the body's)")),
    request_body = Match,
    responses((status = 200, description = "Stored and put on the schedule", body = Match), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 422, description = "Validation failed (`fields` says where and why)", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn update_match(
    State(state): Shared,
    headers: HeaderMap,
    Path((event_id, match_id)): Path<(String, String)>,
    body: Result<Json<Match>, JsonRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let Json(edited) = body?;
    same_id(&match_id, &edited.id)?;
    ok(state.sports.update_match(&actor, &event_id, edited).await?)
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/announcements",
    tag = "sports",
    summary = "The latest announcements, oldest first",
    params(("event_id" = String, Path, description = "The tournament (event) id"), ("limit" = Option<usize>, Query, description = "At most this many (default 100, at most 1000)")),
    responses((status = 200, description = "The announcements", body = AnnouncementsList), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn announcements(
    State(state): Shared,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Reply {
    actor(&state, &headers)?;
    let Query(page) = query?;
    let limit = page.limit.unwrap_or(HISTORY_LIMIT_DEFAULT);
    ok(json!({ "announcements": state.sports.announcements(&event_id, limit).await? }))
}

#[utoipa::path(
    put,
    path = "/api/events/{event_id}/divisions/{id}",
    tag = "sports",
    summary = "Create or replace a division (staff, director)",
    params(("event_id" = String, Path, description = "The tournament (event) id"), ("id" = String, Path, description = "The entity id (must equal the body's)")),
    request_body = Division,
    responses((status = 200, description = "Stored", body = Division), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 422, description = "Validation failed (`fields` says where and why)", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn put_division(
    State(state): Shared,
    headers: HeaderMap,
    Path((event_id, id)): Path<(String, String)>,
    body: Result<Json<Division>, JsonRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let Json(division) = body?;
    same_id(&id, &division.id)?;
    ok(state.sports.put_division(&actor, &event_id, division).await?)
}

#[utoipa::path(
    put,
    path = "/api/events/{event_id}/teams/{id}",
    tag = "sports",
    summary = "Create or replace a team (staff, director)",
    params(("event_id" = String, Path, description = "The tournament (event) id"), ("id" = String, Path, description = "The entity id (must equal the body's)")),
    request_body = Team,
    responses((status = 200, description = "Stored", body = Team), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 422, description = "Validation failed (`fields` says where and why)", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn put_team(
    State(state): Shared,
    headers: HeaderMap,
    Path((event_id, id)): Path<(String, String)>,
    body: Result<Json<Team>, JsonRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let Json(team) = body?;
    same_id(&id, &team.id)?;
    ok(state.sports.put_team(&actor, &event_id, team).await?)
}

#[utoipa::path(
    put,
    path = "/api/events/{event_id}/courts/{id}",
    tag = "sports",
    summary = "Create or replace a court (staff, director)",
    params(("event_id" = String, Path, description = "The tournament (event) id"), ("id" = String, Path, description = "The entity id (must equal the body's)")),
    request_body = Court,
    responses((status = 200, description = "Stored", body = Court), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 422, description = "Validation failed (`fields` says where and why)", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn put_court(
    State(state): Shared,
    headers: HeaderMap,
    Path((event_id, id)): Path<(String, String)>,
    body: Result<Json<Court>, JsonRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let Json(court) = body?;
    same_id(&id, &court.id)?;
    ok(state.sports.put_court(&actor, &event_id, court).await?)
}

#[utoipa::path(
    post,
    path = "/api/events/{event_id}/matches",
    tag = "sports",
    summary = "Schedule a match (staff, director); its format is resolved",
    params(("event_id" = String, Path, description = "The tournament (event) id")),
    request_body = Match,
    responses((status = 201, description = "Scheduled", body = Match), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Conflict (see the error code; `current` holds the stored score where there is one)", body = ErrorBody), (status = 422, description = "Validation failed (`fields` says where and why)", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn create_match(
    State(state): Shared,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    body: Result<Json<Match>, JsonRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let Json(new) = body?;
    created(state.sports.create_match(&actor, &event_id, new).await?)
}

#[utoipa::path(
    post,
    path = "/api/events/{event_id}/scores",
    tag = "scores",
    summary = "Update a match score (the claim holder, or a director)",
    params(("event_id" = String, Path, description = "The tournament (event) id")),
    request_body = ScoreUpdate,
    responses((status = 200, description = "Stored and published, or the first answer of a retried operation", body = ScoreOut), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Conflict (see the error code; `current` holds the stored score where there is one)", body = ErrorBody), (status = 422, description = "Validation failed (`fields` says where and why)", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn update_score(
    State(state): Shared,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    body: Result<Json<ScoreUpdate>, JsonRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let Json(update) = body?;
    let outcome = state.sports.update_score(&actor, &event_id, update).await?;
    ok(json!({ "score": outcome.score, "duplicate": outcome.duplicate }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ScoresQuery {
    team_id: Option<String>,
    division: Option<String>,
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/scores",
    tag = "scores",
    summary = "Current scores, optionally of one team or division",
    params(("event_id" = String, Path, description = "The tournament (event) id"), ("teamId" = Option<String>, Query, description = "Only matches of this team"), ("division" = Option<String>, Query, description = "Only matches of this division")),
    responses((status = 200, description = "The scores", body = ScoresList), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn scores(
    State(state): Shared,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    query: Result<Query<ScoresQuery>, QueryRejection>,
) -> Reply {
    actor(&state, &headers)?;
    let Query(query) = query?;
    let scores = state.sports.scores(&event_id, query.team_id.as_deref(), query.division.as_deref()).await?;
    ok(json!({ "scores": scores }))
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/scores/{match_id}",
    tag = "scores",
    summary = "A match's current score",
    params(("event_id" = String, Path, description = "The tournament (event) id"), ("match_id" = String, Path, description = "The match id")),
    responses((status = 200, description = "The score (null before the first update)", body = ScoreOut), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn score(State(state): Shared, headers: HeaderMap, Path((event_id, match_id)): Path<(String, String)>) -> Reply {
    actor(&state, &headers)?;
    ok(json!({ "score": state.sports.score(&event_id, &match_id).await? }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PageQuery {
    limit: Option<usize>,
    offset: Option<u64>,
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/scores/{match_id}/history",
    tag = "scores",
    summary = "A page of a match's score history, oldest first",
    params(("event_id" = String, Path, description = "The tournament (event) id"), ("match_id" = String, Path, description = "The match id"), ("limit" = Option<usize>, Query, description = "At most this many (default 100, at most 1000)"), ("offset" = Option<u64>, Query, description = "Skip this many (default 0)")),
    responses((status = 200, description = "The page", body = HistoryPageOut), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn score_history(
    State(state): Shared,
    headers: HeaderMap,
    Path((event_id, match_id)): Path<(String, String)>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Reply {
    actor(&state, &headers)?;
    let Query(page) = query?;
    let limit = page.limit.unwrap_or(HISTORY_LIMIT_DEFAULT);
    ok(state.sports.score_history(&event_id, &match_id, limit, page.offset.unwrap_or(0)).await?)
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/claims",
    tag = "claims",
    summary = "Live claims of a tournament, by match",
    params(("event_id" = String, Path, description = "The tournament (event) id")),
    responses((status = 200, description = "The claims", body = ClaimsList), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn claims(State(state): Shared, headers: HeaderMap, Path(event_id): Path<String>) -> Reply {
    actor(&state, &headers)?;
    ok(json!({ "claims": state.sports.claims(&event_id).await? }))
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/claims/{match_id}",
    tag = "claims",
    summary = "A match's live claim",
    params(("event_id" = String, Path, description = "The tournament (event) id"), ("match_id" = String, Path, description = "The match id")),
    responses((status = 200, description = "The claim, or null", body = ClaimOut), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn claim(State(state): Shared, headers: HeaderMap, Path((event_id, match_id)): Path<(String, String)>) -> Reply {
    actor(&state, &headers)?;
    ok(json!({ "claim": state.sports.claim_of(&event_id, &match_id).await? }))
}

#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ClaimBody {
    /// Milliseconds since the Unix epoch.
    expires_at: Option<i64>,
}

#[utoipa::path(
    post,
    path = "/api/events/{event_id}/claims/{match_id}",
    tag = "claims",
    summary = "Claim a match for scorekeeping (or renew one's claim)",
    params(("event_id" = String, Path, description = "The tournament (event) id"), ("match_id" = String, Path, description = "The match id")),
    request_body = ClaimBody,
    responses((status = 200, description = "Claimed, with its fencing token", body = ClaimOut), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 409, description = "Conflict (see the error code; `current` holds the stored score where there is one)", body = ErrorBody), (status = 422, description = "Validation failed (`fields` says where and why)", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn take_claim(
    State(state): Shared,
    headers: HeaderMap,
    Path((event_id, match_id)): Path<(String, String)>,
    body: axum::body::Bytes,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let body: ClaimBody = optional_json(&body)?;
    ok(json!({ "claim": state.sports.claim(&actor, &event_id, &match_id, body.expires_at).await? }))
}

#[utoipa::path(
    delete,
    path = "/api/events/{event_id}/claims/{match_id}",
    tag = "claims",
    summary = "Release a claim (its holder, or a director forcing it)",
    params(("event_id" = String, Path, description = "The tournament (event) id"), ("match_id" = String, Path, description = "The match id")),
    responses((status = 200, description = "Released, or nothing to release", body = Released), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn release_claim(State(state): Shared, headers: HeaderMap, Path((event_id, match_id)): Path<(String, String)>) -> Reply {
    let actor = actor(&state, &headers)?;
    let released = match state.sports.release(&actor, &event_id, &match_id).await? {
        Release::Released => json!({ "released": true }),
        Release::ForceReleased { holder } => json!({ "released": true, "forced": true, "holder": holder }),
        Release::NotHeld => json!({ "released": false }),
    };
    ok(released)
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/coverage-plans",
    tag = "coverage",
    summary = "The caller's coverage plan",
    params(("event_id" = String, Path, description = "The tournament (event) id")),
    responses((status = 200, description = "The plan", body = CoverageBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn coverage_plan(State(state): Shared, headers: HeaderMap, Path(event_id): Path<String>) -> Reply {
    let actor = actor(&state, &headers)?;
    ok(json!({ "selectedMatches": state.sports.coverage_plan(&actor, &event_id).await? }))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct CoverageBody {
    selected_matches: Vec<String>,
}

/// Most matches in one coverage plan.
const COVERAGE_MATCHES_MAX: usize = 1_000;

#[utoipa::path(
    put,
    path = "/api/events/{event_id}/coverage-plans",
    tag = "coverage",
    summary = "Replace the caller's coverage plan",
    params(("event_id" = String, Path, description = "The tournament (event) id")),
    request_body = CoverageBody,
    responses((status = 200, description = "Stored", body = CoverageBody), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 422, description = "Validation failed (`fields` says where and why)", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn set_coverage_plan(
    State(state): Shared,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    body: Result<Json<CoverageBody>, JsonRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let Json(body) = body?;
    if body.selected_matches.len() > COVERAGE_MATCHES_MAX {
        let message = format!("at most {COVERAGE_MATCHES_MAX} matches");
        return Err(SportsError::InvalidField { field: "selectedMatches".into(), message }.into());
    }
    ok(json!({ "selectedMatches": state.sports.set_coverage_plan(&actor, &event_id, body.selected_matches).await? }))
}

#[utoipa::path(
    delete,
    path = "/api/events/{event_id}/coverage-plans",
    tag = "coverage",
    summary = "Clear the caller's coverage plan",
    params(("event_id" = String, Path, description = "The tournament (event) id")),
    responses((status = 204, description = "Cleared"), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn clear_coverage_plan(State(state): Shared, headers: HeaderMap, Path(event_id): Path<String>) -> Reply {
    let actor = actor(&state, &headers)?;
    state.sports.clear_coverage_plan(&actor, &event_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct AnnouncementBody {
    #[serde(default)]
    priority: Priority,
    title: String,
    #[serde(default)]
    body: String,
}

#[utoipa::path(
    post,
    path = "/api/events/{event_id}/announcements",
    tag = "sports",
    summary = "Publish an announcement (staff, director)",
    params(("event_id" = String, Path, description = "The tournament (event) id")),
    request_body = AnnouncementBody,
    responses((status = 201, description = "Published", body = Announcement), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 422, description = "Validation failed (`fields` says where and why)", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn announce(
    State(state): Shared,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    body: Result<Json<AnnouncementBody>, JsonRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let Json(body) = body?;
    created(state.sports.announce(&actor, &event_id, body.priority, &body.title, &body.body).await?)
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/conflicts",
    tag = "scores",
    summary = "Recorded crossings of score edits (director)",
    params(("event_id" = String, Path, description = "The tournament (event) id"), ("limit" = Option<usize>, Query, description = "At most this many"), ("offset" = Option<u64>, Query, description = "Skip this many")),
    responses((status = 200, description = "The conflicts", body = ConflictsList), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 429, description = "Past the caller's rate limit (see Retry-After)", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn conflicts(
    State(state): Shared,
    headers: HeaderMap,
    Path(event_id): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let Query(page) = query?;
    let limit = page.limit.unwrap_or(HISTORY_LIMIT_DEFAULT);
    let conflicts: Vec<Value> = state
        .sports
        .conflicts(&actor, &event_id, limit, page.offset.unwrap_or(0))
        .await?
        .into_iter()
        .map(|entry| json!(entry))
        .collect();
    ok(json!({ "conflicts": conflicts }))
}
