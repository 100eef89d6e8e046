//! Tournaments ("events") and what they hold: divisions, teams, courts and matches, a whole
//! tournament exported and imported, and announcements.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use courtside_domain::model::{Announcement, Court, Division, Match, Team, Tournament};
use courtside_domain::service::TournamentExport;
use serde_json::json;

use super::requests::{self, AnnouncementBody, EntryPath, EventPath, LatestQuery, MatchPath, same_id};
use super::{Reply, Shared, actor, created, ok};
#[allow(unused_imports)] // named by the `utoipa::path` annotations
use crate::schemas::{ConflictingWriteErrors, CreateErrors, ListErrors, ReadErrors, RestrictedErrors, WriteErrors, AnnouncementsList, EventDetail, EventsList};

#[utoipa::path(
    get,
    path = "/api/events",
    tag = "sports",
    summary = "List tournaments",
    responses((status = 200, description = "The tournaments", body = EventsList), ListErrors),
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
    responses((status = 201, description = "Created", body = Tournament), CreateErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn create_event(State(state): Shared, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Reply {
    let actor = actor(&state, &headers)?;
    let tournament: Tournament = requests::body(&headers, body)?;
    created(state.sports.create_tournament(&actor, tournament).await?)
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/export",
    tag = "sports",
    summary = "Export a tournament as one document (director)",
    params(EventPath),
    responses((status = 200, description = "The whole tournament", body = TournamentExport), RestrictedErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn export(State(state): Shared, headers: HeaderMap, ids: Result<Path<EventPath>, PathRejection>) -> Reply {
    let actor = actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    ok(state.sports.export(&actor, &ids.event_id).await?)
}

#[utoipa::path(
    post,
    path = "/api/events/import",
    tag = "sports",
    summary = "Import an exported tournament (director)",
    request_body = TournamentExport,
    responses((status = 201, description = "Imported", body = Tournament), CreateErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn import(State(state): Shared, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Reply {
    let actor = actor(&state, &headers)?;
    let export: TournamentExport = requests::body(&headers, body)?;
    created(state.sports.import(&actor, export).await?)
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}",
    tag = "sports",
    summary = "A tournament with its divisions, teams, courts and matches",
    params(EventPath),
    responses((status = 200, description = "The tournament", body = EventDetail), ReadErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn event(State(state): Shared, headers: HeaderMap, ids: Result<Path<EventPath>, PathRejection>) -> Reply {
    actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let tournament = state.sports.tournament(&ids.event_id).await?;
    let registry = state.sports.registry(&ids.event_id).await?;
    ok(json!({ "event": tournament, "divisions": registry.divisions, "teams": registry.teams, "courts": registry.courts, "matches": registry.matches }))
}

#[utoipa::path(
    put,
    path = "/api/events/{event_id}",
    tag = "sports",
    summary = "Edit a tournament's name and default format (director); the body's id must be the path's",
    params(EventPath),
    request_body = Tournament,
    responses((status = 200, description = "Stored", body = Tournament), WriteErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn update_event(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<EventPath>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let tournament: Tournament = requests::body(&headers, body)?;
    same_id(&ids.event_id, &tournament.id)?;
    ok(state.sports.update_tournament(&actor, tournament).await?)
}

#[utoipa::path(
    put,
    path = "/api/events/{event_id}/matches/{match_id}",
    tag = "sports",
    summary = "Edit a match: court and time always; teams, division and format until its first score (staff, director); the body's id must be the path's",
    params(MatchPath),
    request_body = Match,
    responses((status = 200, description = "Stored and put on the schedule", body = Match), WriteErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn update_match(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<MatchPath>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let edited: Match = requests::body(&headers, body)?;
    same_id(&ids.match_id, &edited.id)?;
    ok(state.sports.update_match(&actor, &ids.event_id, edited).await?)
}

#[utoipa::path(
    get,
    path = "/api/events/{event_id}/announcements",
    tag = "sports",
    summary = "The latest announcements, oldest first",
    params(EventPath, LatestQuery),
    responses((status = 200, description = "The announcements", body = AnnouncementsList), ReadErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn announcements(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<EventPath>, PathRejection>,
    query: Result<Query<LatestQuery>, QueryRejection>,
) -> Reply {
    actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let query = requests::query(query)?;
    ok(json!({ "announcements": state.sports.announcements(&ids.event_id, query.limit()).await? }))
}

#[utoipa::path(
    put,
    path = "/api/events/{event_id}/divisions/{id}",
    tag = "sports",
    summary = "Create or replace a division (staff, director); the body's id must be the path's",
    params(EntryPath),
    request_body = Division,
    responses((status = 200, description = "Stored", body = Division), WriteErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn put_division(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<EntryPath>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let division: Division = requests::body(&headers, body)?;
    same_id(&ids.id, &division.id)?;
    ok(state.sports.put_division(&actor, &ids.event_id, division).await?)
}

#[utoipa::path(
    put,
    path = "/api/events/{event_id}/teams/{id}",
    tag = "sports",
    summary = "Create or replace a team (staff, director); the body's id must be the path's",
    params(EntryPath),
    request_body = Team,
    responses((status = 200, description = "Stored", body = Team), WriteErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn put_team(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<EntryPath>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let team: Team = requests::body(&headers, body)?;
    same_id(&ids.id, &team.id)?;
    ok(state.sports.put_team(&actor, &ids.event_id, team).await?)
}

#[utoipa::path(
    put,
    path = "/api/events/{event_id}/courts/{id}",
    tag = "sports",
    summary = "Create or replace a court (staff, director); the body's id must be the path's",
    params(EntryPath),
    request_body = Court,
    responses((status = 200, description = "Stored", body = Court), WriteErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn put_court(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<EntryPath>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let court: Court = requests::body(&headers, body)?;
    same_id(&ids.id, &court.id)?;
    ok(state.sports.put_court(&actor, &ids.event_id, court).await?)
}

#[utoipa::path(
    post,
    path = "/api/events/{event_id}/matches",
    tag = "sports",
    summary = "Schedule a match (staff, director); its format is resolved",
    params(EventPath),
    request_body = Match,
    responses((status = 201, description = "Scheduled", body = Match), ConflictingWriteErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn create_match(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<EventPath>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let new: Match = requests::body(&headers, body)?;
    created(state.sports.create_match(&actor, &ids.event_id, new).await?)
}

#[utoipa::path(
    post,
    path = "/api/events/{event_id}/announcements",
    tag = "sports",
    summary = "Publish an announcement (staff, director)",
    params(EventPath),
    request_body = AnnouncementBody,
    responses((status = 201, description = "Published", body = Announcement), WriteErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn announce(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<EventPath>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let actor = actor(&state, &headers)?;
    let ids = requests::path(ids)?;
    let body: AnnouncementBody = requests::body(&headers, body)?;
    created(state.sports.announce(&actor, &ids.event_id, body.priority, &body.title, &body.body).await?)
}
