//! Live scores: a score update (the claim holder's or a director's), the scoreboard, a match's
//! score and its history, and the conflicts recorded when edits crossed.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use courtside_domain::service::ScoreUpdate;
use serde_json::json;

use super::requests::{self, EventPath, MatchPath, PageQuery, ScoresQuery};
use super::{Reply, Shared, actor, ok};
#[allow(unused_imports)] // named by the `utoipa::path` annotations
use crate::schemas::{ConflictingWriteErrors, ReadErrors, RestrictedErrors, ConflictsList, ScoreOut, ScoresList};
#[allow(unused_imports)]
use courtside_domain::service::HistoryPageOut;

#[utoipa::path(
    post,
    path = "/api/events/{event_id}/scores",
    tag = "scores",
    summary = "Update a match score (the claim holder, or a director)",
    params(EventPath),
    request_body = ScoreUpdate,
    responses((status = 200, description = "Stored and published, or the first answer of a retried operation (`duplicate`)", body = ScoreOut), ConflictingWriteErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn update_score(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<EventPath>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let update: ScoreUpdate = requests::body(&headers, body)?;
    let outcome = state.sports.update_score(&actor, &ids.event_id, update).await?;
    ok(json!({ "score": outcome.score, "duplicate": outcome.duplicate }))
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/scores",
    tag = "scores",
    summary = "Current scores, optionally of one team or division",
    params(EventPath, ScoresQuery),
    responses((status = 200, description = "The scores", body = ScoresList), ReadErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn scores(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<EventPath>, PathRejection>,
    query: Result<Query<ScoresQuery>, QueryRejection>,
) -> Reply {
    actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let query = requests::query(query)?;
    let scores = state.sports.scores(&ids.event_id, query.team_id.as_deref(), query.division.as_deref()).await?;
    ok(json!({ "scores": scores }))
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/scores/{match_id}",
    tag = "scores",
    summary = "A match's current score",
    params(MatchPath),
    responses((status = 200, description = "The score (null before the first update)", body = ScoreOut), ReadErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn score(State(state): Shared, headers: HeaderMap, ids: Result<Path<MatchPath>, PathRejection>) -> Reply {
    actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    ok(json!({ "score": state.sports.score(&ids.event_id, &ids.match_id).await? }))
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/scores/{match_id}/history",
    tag = "scores",
    summary = "A page of a match's score history, oldest first",
    params(MatchPath, PageQuery),
    responses((status = 200, description = "The page", body = HistoryPageOut), ReadErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn score_history(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<MatchPath>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Reply {
    actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let page = requests::query(query)?;
    ok(state.sports.score_history(&ids.event_id, &ids.match_id, page.limit(), page.offset()).await?)
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/conflicts",
    tag = "scores",
    summary = "Recorded crossings of score edits (director)",
    params(EventPath, PageQuery),
    responses((status = 200, description = "The conflicts", body = ConflictsList), RestrictedErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn conflicts(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<EventPath>, PathRejection>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let page = requests::query(query)?;
    ok(json!({ "conflicts": state.sports.conflicts(&actor, &ids.event_id, page.limit(), page.offset()).await? }))
}
