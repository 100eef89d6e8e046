//! What a sports request carries besides its credentials — the ids in its path, its query and
//! its body — with the checks that come before the service is asked: a path id that is not an
//! id is 400 `invalid_id` before anything is looked up; an unreadable path, query or body is
//! 400 `bad_request`. The same types describe the parameters and bodies in the OpenAPI document,
//! so what is documented is what is read.

use axum::body::Bytes;
use axum::extract::Path;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::http::HeaderMap;
use axum::extract::Query;
use courtside_domain::model::{Priority, check_id};
use courtside_domain::service::{HISTORY_PAGE_MAX, SportsError};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::Failure;
use crate::http::{ApiError, json_body, optional_json, read_json};
use crate::protocol::ClientError;

/// Default page size of score history, conflicts and announcements.
pub const PAGE_LIMIT_DEFAULT: usize = 100;
/// Most matches in one coverage plan.
pub const COVERAGE_MATCHES_MAX: usize = 1_000;

/// The ids a path names, checked before anything is looked up.
pub trait PathIds {
    fn check(&self) -> Result<(), SportsError>;
}

/// Reads and checks the path: not UTF-8 or not the route's shape is 400 `bad_request`, a
/// malformed id 400 `invalid_id`.
pub fn path<T: PathIds>(path: Result<Path<T>, PathRejection>) -> Result<T, Failure> {
    let Path(ids) = path.map_err(|rejection| ApiError(ClientError::BadRequest(rejection.body_text())))?;
    ids.check()?;
    Ok(ids)
}

/// Reads the documented JSON body ([`crate::http::json_body`]).
pub fn body<T: DeserializeOwned>(headers: &HeaderMap, body: Result<Bytes, BytesRejection>) -> Result<T, Failure> {
    Ok(json_body(headers, body)?)
}

/// Reads an optional JSON body: none, only whitespace or `null` is `T::default()`.
pub fn optional_body<T: DeserializeOwned + Default>(bytes: Result<Bytes, BytesRejection>) -> Result<T, Failure> {
    let bytes = bytes.map_err(ApiError::from)?;
    match optional_json::<T>(&bytes) {
        Ok(read) => Ok(read),
        Err(error) => read_json::<Option<T>>(&bytes).map(Option::unwrap_or_default).map_err(|_| error.into()),
    }
}

/// Reads the query and checks its values against their documented ranges.
pub fn query<T: CheckedQuery>(query: Result<Query<T>, QueryRejection>) -> Result<T, Failure> {
    let Query(query) = query?;
    query.check().map_err(|message| ApiError(ClientError::BadRequest(message)))?;
    Ok(query)
}

/// A query whose values have ranges the type does not say.
pub trait CheckedQuery {
    fn check(&self) -> Result<(), String>;
}

/// `/api/events/{event_id}/…`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EventPath {
    /// The tournament (event) id
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub event_id: String,
}

impl PathIds for EventPath {
    fn check(&self) -> Result<(), SportsError> {
        Ok(check_id("tournament", &self.event_id)?)
    }
}

/// `/api/events/{event_id}/…/{match_id}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct MatchPath {
    /// The tournament (event) id
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub event_id: String,
    /// The match id
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub match_id: String,
}

impl PathIds for MatchPath {
    fn check(&self) -> Result<(), SportsError> {
        check_id("tournament", &self.event_id)?;
        Ok(check_id("match", &self.match_id)?)
    }
}

/// `/api/events/{event_id}/{divisions|teams|courts}/{id}`.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct EntryPath {
    /// The tournament (event) id
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub event_id: String,
    /// The entity id (must equal the body's)
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub id: String,
}

impl PathIds for EntryPath {
    fn check(&self) -> Result<(), SportsError> {
        check_id("tournament", &self.event_id)?;
        Ok(check_id("entity", &self.id)?)
    }
}

/// The id in the path must be the body's (422 on `id` otherwise).
pub fn same_id(path_id: &str, body_id: &str) -> Result<(), SportsError> {
    if path_id == body_id {
        return Ok(());
    }
    Err(SportsError::InvalidField { field: "id".into(), message: format!("the body's id {body_id:?} is not the path's {path_id:?}") })
}

/// A page of a log: `limit` entries after the first `offset`.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// At most this many (default 100)
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
    /// Skip this many (default 0)
    #[param(minimum = 0, maximum = 9_223_372_036_854_775_807_i64)]
    pub offset: Option<u64>,
}

impl CheckedQuery for PageQuery {
    fn check(&self) -> Result<(), String> {
        check_limit(self.limit)?;
        // Offsets are signed 64-bit numbers in every store.
        match self.offset {
            Some(offset) if offset > i64::MAX as u64 => Err(format!("`offset` must be at most {}", i64::MAX)),
            _ => Ok(()),
        }
    }
}

impl PageQuery {
    pub fn limit(&self) -> usize {
        self.limit.map_or(PAGE_LIMIT_DEFAULT, |limit| usize::try_from(limit).unwrap_or(HISTORY_PAGE_MAX))
    }

    pub fn offset(&self) -> u64 {
        self.offset.unwrap_or(0)
    }
}

/// The latest entries of a log.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LatestQuery {
    /// At most this many (default 100)
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

impl CheckedQuery for LatestQuery {
    fn check(&self) -> Result<(), String> {
        check_limit(self.limit)
    }
}

impl LatestQuery {
    pub fn limit(&self) -> usize {
        PageQuery { limit: self.limit, offset: None }.limit()
    }
}

fn check_limit(limit: Option<u64>) -> Result<(), String> {
    match limit {
        Some(limit) if limit == 0 || limit > HISTORY_PAGE_MAX as u64 => Err(format!("`limit` must be 1 to {HISTORY_PAGE_MAX}")),
        _ => Ok(()),
    }
}

/// Filters of the scoreboard.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[into_params(parameter_in = Query, rename_all = "camelCase")]
pub struct ScoresQuery {
    /// Only matches of this team
    pub team_id: Option<String>,
    /// Only matches of this division
    pub division: Option<String>,
}

impl CheckedQuery for ScoresQuery {
    fn check(&self) -> Result<(), String> {
        Ok(())
    }
}

/// `POST …/claims/{match_id}`: seed 001's body, `{ expiresAt }`, optional (no body at all is
/// the default claim).
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimBody {
    /// Milliseconds since the Unix epoch (default: now plus the server's claim TTL).
    pub expires_at: Option<i64>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CoverageBody {
    #[schema(max_items = 1000, value_type = Vec<crate::schemas::Id>)]
    pub selected_matches: Vec<String>,
}

impl CoverageBody {
    /// At most [`COVERAGE_MATCHES_MAX`] matches (422 otherwise).
    pub fn check(&self) -> Result<(), SportsError> {
        if self.selected_matches.len() > COVERAGE_MATCHES_MAX {
            let message = format!("at most {COVERAGE_MATCHES_MAX} matches");
            return Err(SportsError::InvalidField { field: "selectedMatches".into(), message });
        }
        Ok(())
    }
}

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AnnouncementBody {
    #[serde(default)]
    pub priority: Priority,
    #[schema(min_length = 1, max_length = 200, pattern = "[^ \t\r\n]")]
    pub title: String,
    #[serde(default)]
    pub body: String,
}
