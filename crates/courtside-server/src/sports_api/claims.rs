//! Scorekeeper claims (seed 001: take, renew, release, look up) with their fencing tokens, and
//! each user's coverage plan (the matches they follow).

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use courtside_domain::claim::Release;
use serde_json::json;

use super::requests::{self, ClaimBody, CoverageBody, EventPath, MatchPath};
use super::{Reply, Shared, actor, ok};
#[allow(unused_imports)] // named by the `utoipa::path` annotations
use crate::schemas::{ConflictingWriteErrors, OwnWriteErrors, ReadErrors, RestrictedErrors, ClaimOut, ClaimsList, Released};

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/claims",
    tag = "claims",
    summary = "Live claims of a tournament, by match",
    params(EventPath),
    responses((status = 200, description = "The claims", body = ClaimsList), ReadErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn claims(State(state): Shared, headers: HeaderMap, ids: Result<Path<EventPath>, PathRejection>) -> Reply {
    actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    ok(json!({ "claims": state.sports.claims(&ids.event_id).await? }))
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/claims/{match_id}",
    tag = "claims",
    summary = "A match's live claim",
    params(MatchPath),
    responses((status = 200, description = "The claim, or null", body = ClaimOut), ReadErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn claim(State(state): Shared, headers: HeaderMap, ids: Result<Path<MatchPath>, PathRejection>) -> Reply {
    actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    ok(json!({ "claim": state.sports.claim_of(&ids.event_id, &ids.match_id).await? }))
}

#[utoipa::path(
    post,
    path = "/api/events/{event_id}/claims/{match_id}",
    tag = "claims",
    summary = "Claim a match for scorekeeping (or renew one's claim); the body is optional",
    params(MatchPath),
    request_body = Option<ClaimBody>,
    responses((status = 200, description = "Claimed, with its fencing token", body = ClaimOut), ConflictingWriteErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn take_claim(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<MatchPath>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let body: ClaimBody = requests::optional_body(body)?;
    ok(json!({ "claim": state.sports.claim(&actor, &ids.event_id, &ids.match_id, body.expires_at).await? }))
}

#[utoipa::path(
    delete,
    path = "/api/events/{event_id}/claims/{match_id}",
    tag = "claims",
    summary = "Release a claim (its holder, or a director forcing it)",
    params(MatchPath),
    responses((status = 200, description = "Released, or nothing to release", body = Released), RestrictedErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn release_claim(State(state): Shared, headers: HeaderMap, ids: Result<Path<MatchPath>, PathRejection>) -> Reply {
    let actor = actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let released = match state.sports.release(&actor, &ids.event_id, &ids.match_id).await? {
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
    params(EventPath),
    responses((status = 200, description = "The plan", body = CoverageBody), ReadErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn coverage_plan(State(state): Shared, headers: HeaderMap, ids: Result<Path<EventPath>, PathRejection>) -> Reply {
    let actor = actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    ok(json!({ "selectedMatches": state.sports.coverage_plan(&actor, &ids.event_id).await? }))
}

#[utoipa::path(
    put,
    path = "/api/events/{event_id}/coverage-plans",
    tag = "coverage",
    summary = "Replace the caller's coverage plan",
    params(EventPath),
    request_body = CoverageBody,
    responses((status = 200, description = "Stored", body = CoverageBody), OwnWriteErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn set_coverage_plan(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<EventPath>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let body: CoverageBody = requests::body(&headers, body)?;
    body.check()?;
    ok(json!({ "selectedMatches": state.sports.set_coverage_plan(&actor, &ids.event_id, body.selected_matches).await? }))
}

#[utoipa::path(
    delete,
    path = "/api/events/{event_id}/coverage-plans",
    tag = "coverage",
    summary = "Clear the caller's coverage plan",
    params(EventPath),
    responses((status = 204, description = "Cleared"), ReadErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn clear_coverage_plan(State(state): Shared, headers: HeaderMap, ids: Result<Path<EventPath>, PathRejection>) -> Reply {
    let actor = actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    state.sports.clear_coverage_plan(&actor, &ids.event_id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
