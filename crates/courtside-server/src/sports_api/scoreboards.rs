//! What a public scoreboard shows, to anyone (anonymous clients too, where the server allows
//! them): the tournaments, and one tournament's names — teams, courts, divisions — and pairings.
//! Scores themselves come from `tournament:{t}:scores`, which anyone may follow; rosters,
//! schedules and everything else stay behind the sports API's roles.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use serde::Serialize;
use serde_json::json;

use super::requests::{self, EventPath};
use super::{Reply, Shared, ok};
#[allow(unused_imports)] // named by the `utoipa::path` annotations
use crate::schemas::{ReadErrors, ScoreboardOut, ScoreboardsList};
use crate::http::principal_from;

/// A name, and the id it stands for.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Named {
    pub id: String,
    pub name: String,
}

/// A match as a scoreboard lists it.
#[derive(Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Pairing {
    pub id: String,
    pub division_id: String,
    pub home_team_id: String,
    pub away_team_id: String,
    pub court_id: Option<String>,
    pub scheduled_at_ms: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/api/scoreboards",
    tag = "sports",
    summary = "The tournaments a public scoreboard can show (anyone)",
    responses((status = 200, description = "Their ids and names", body = ScoreboardsList), ReadErrors),
    security(("bearer" = []), ("apikey" = []), ()),
)]
pub(crate) async fn list(State(state): Shared, headers: HeaderMap) -> Reply {
    principal_from(&state, &headers, None)?;
    let tournaments = state.sports.tournaments().await?;
    let named: Vec<Named> = tournaments.into_iter().map(|t| Named { id: t.id, name: t.name }).collect();
    ok(json!({ "scoreboards": named }))
}

#[utoipa::path(
    get,
    path = "/api/scoreboards/{event_id}",
    tag = "sports",
    summary = "One tournament's names and pairings for a public scoreboard (anyone)",
    params(EventPath),
    responses((status = 200, description = "Names and pairings; scores live on tournament:{event_id}:scores", body = ScoreboardOut), ReadErrors),
    security(("bearer" = []), ("apikey" = []), ()),
)]
pub(crate) async fn scoreboard(State(state): Shared, headers: HeaderMap, ids: Result<Path<EventPath>, PathRejection>) -> Reply {
    principal_from(&state, &headers, None)?;
    let ids = requests::path(ids)?;
    let tournament = state.sports.tournament(&ids.event_id).await?;
    let registry = state.sports.registry(&ids.event_id).await?;
    let names = |items: Vec<(String, String)>| items.into_iter().map(|(id, name)| Named { id, name }).collect::<Vec<_>>();
    let matches: Vec<Pairing> = registry
        .matches
        .into_iter()
        .map(|m| Pairing { id: m.id, division_id: m.division_id, home_team_id: m.home_team_id, away_team_id: m.away_team_id, court_id: m.court_id, scheduled_at_ms: m.scheduled_at_ms })
        .collect();
    ok(json!({
        "event": Named { id: tournament.id, name: tournament.name },
        "divisions": names(registry.divisions.into_iter().map(|d| (d.id, d.name)).collect()),
        "teams": names(registry.teams.into_iter().map(|t| (t.id, t.name)).collect()),
        "courts": names(registry.courts.into_iter().map(|c| (c.id, c.name)).collect()),
        "matches": matches,
    }))
}
