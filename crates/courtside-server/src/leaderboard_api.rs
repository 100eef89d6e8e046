//! The leaderboard REST API (`/api/leaderboards…`) over [`LeaderboardService`]: boards (list,
//! create, read), score submits, top N, a player's rank, the players around a player, pages by
//! rank, and ELO match results on ratings boards. Every [`LeaderboardError`] is mapped to its
//! HTTP status here, once, in the server's one error shape.
//!
//! Every handler checks in one order: the caller's credentials (401), the ids in the path
//! (400 `invalid_id`), the query or body (400), the caller's role (403), and only then is
//! anything looked up (404) or changed. Reads are open to any caller the server admits
//! (anonymous too when `allow_anonymous`); submits and match results need the API key or the
//! staff or director role; creating a board needs the API key or the director role.
//!
//! # Across nodes
//! A node's index of a board season is current as of the store offset it last read. Nodes that
//! share a PostgreSQL store catch up **before every read**: one history read after the index's
//! offset (usually empty), under the season's flush lock — so a read answers at least everything
//! committed before it began, on any node, with no follow of internal channels through the
//! broker (which would add a subscription per season per node and still leave a read racing
//! the broker's delivery). Writes need no such step: each expects the channel's top and catches
//! up when another node moved it. A board id this node does not know is looked up in the
//! registry of created boards once before the answer is 404 (another node may have created it).
//! With SQLite the store has one writer, this node, so reads skip the catch-up.
//!
//! Request shapes and documented answers live in [`requests`].

pub mod requests;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use courtside_core::access::Principal;
use courtside_core::channel::Role;
use courtside_core::store::StoreError;
use courtside_leaderboard::board::{check_range, score_from_number, SpecError};
use courtside_leaderboard::{BoardSpec, LeaderboardError, MatchRecorded, Outcome};
use serde_json::json;

use self::requests::{bounded, AroundQuery, BoardPath, CreateBoard, MatchIn, PageQuery, PathIds, PlayerPath, SeasonQuery, SubmitScore, TopQuery};
#[allow(unused_imports)] // named by the `utoipa::path` annotations
use self::requests::{BoardOut, BoardsList, MatchOut, PlayerRankOut, StandingsOut, SubmittedOut};
use crate::http::{json_body, principal_from, ApiError, HttpFailure};
use crate::protocol::ClientError;
#[allow(unused_imports)]
use crate::schemas::{CreateErrors, ListErrors, ReadErrors, WriteErrors};
use crate::state::ServerState;

pub fn routes(state: Arc<ServerState>) -> Router<Arc<ServerState>> {
    Router::new()
        .route("/api/leaderboards", get(list_boards).post(create_board))
        .route("/api/leaderboards/{id}", get(board))
        .route("/api/leaderboards/{id}/scores", post(submit))
        .route("/api/leaderboards/{id}/matches", post(record_match))
        .route("/api/leaderboards/{id}/top", get(top))
        .route("/api/leaderboards/{id}/ranks", get(ranks))
        .route("/api/leaderboards/{id}/players/{player}", get(player))
        .route("/api/leaderboards/{id}/players/{player}/around", get(around))
        .route_layer(middleware::from_fn_with_state(state, crate::http::rate_limited))
}

/// Why a leaderboard request failed, answered over HTTP.
#[derive(Debug, thiserror::Error)]
pub enum LeaderboardApiError {
    #[error(transparent)]
    Service(#[from] LeaderboardError),
    /// A body that is the documented JSON but breaks a rule across its fields.
    #[error("{0}")]
    Invalid(String),
    #[error("player {player} has no score on board {board} in season {season}")]
    NotRanked { board: String, season: String, player: String },
}

/// What a leaderboard handler fails with.
pub type Failure = HttpFailure<LeaderboardApiError>;

impl From<LeaderboardError> for Failure {
    fn from(error: LeaderboardError) -> Self {
        HttpFailure::Module(error.into())
    }
}

impl From<SpecError> for Failure {
    fn from(error: SpecError) -> Self {
        LeaderboardError::from(error).into()
    }
}

impl LeaderboardApiError {
    /// The HTTP status and the stable code of each error.
    pub fn http(&self) -> (StatusCode, &'static str) {
        use LeaderboardError as E;
        let error = match self {
            LeaderboardApiError::Invalid(_) => return (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            LeaderboardApiError::NotRanked { .. } => return (StatusCode::NOT_FOUND, "not_ranked"),
            LeaderboardApiError::Service(error) => error,
        };
        match error {
            E::UnknownBoard(_) => (StatusCode::NOT_FOUND, "not_found"),
            E::Spec(SpecError::BoardId(_) | SpecError::PlayerId(_)) => (StatusCode::BAD_REQUEST, "invalid_id"),
            E::Spec(SpecError::Season(_)) => (StatusCode::NOT_FOUND, "unknown_season"),
            E::Spec(SpecError::TopN | SpecError::Rating(_)) | E::OpId | E::Elo(_) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            E::Score(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_score"),
            E::AlreadyExists(_) => (StatusCode::CONFLICT, "already_exists"),
            E::NotRatings(_) => (StatusCode::CONFLICT, "not_a_ratings_board"),
            E::Contended | E::Store(StoreError::Conflict(_)) => (StatusCode::SERVICE_UNAVAILABLE, "contended"),
            E::Interrupted | E::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            E::Corrupt(_) | E::Layout(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for LeaderboardApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.http();
        let message = if status == StatusCode::INTERNAL_SERVER_ERROR {
            tracing::error!(error = %self, "a stored leaderboard record cannot be read");
            "internal error".to_string()
        } else {
            self.to_string()
        };
        (status, Json(json!({ "error": { "code": code, "status": status.as_u16(), "message": message } }))).into_response()
    }
}

type Shared = State<Arc<ServerState>>;
type Reply = Result<Response, Failure>;

fn ok(value: impl serde::Serialize) -> Reply {
    Ok(Json(value).into_response())
}

/// Who may change a board's scores or create boards.
#[derive(Clone, Copy)]
enum Write {
    /// Submits and match results: the API key, staff, directors.
    Scores,
    /// Creating a board: the API key, directors.
    Boards,
}

/// The caller, checked first (401 on bad credentials; anonymous where the server allows it).
fn caller(state: &ServerState, headers: &HeaderMap) -> Result<Principal, Failure> {
    Ok(principal_from(state, headers, None)?)
}

/// May `principal` make this kind of write? Anonymous callers are asked to sign in (401).
fn allow(principal: &Principal, write: Write) -> Result<(), Failure> {
    let roles: &[Role] = match write {
        Write::Scores => &[Role::Staff, Role::Director],
        Write::Boards => &[Role::Director],
    };
    match principal {
        Principal::Server => Ok(()),
        Principal::User { roles: held, .. } if held.iter().any(|role| roles.contains(role)) => Ok(()),
        Principal::User { .. } => Err(ApiError(ClientError::PermissionDenied).into()),
        Principal::Anonymous => Err(ApiError(ClientError::Unauthorized("sign in: this endpoint needs a token or the API key".into())).into()),
    }
}

/// The path's ids, read and checked (400 `bad_request`, then 400 `invalid_id`).
fn path<T: PathIds>(path: Result<Path<T>, PathRejection>) -> Result<T, Failure> {
    let Path(ids) = path.map_err(|rejection| ApiError(ClientError::BadRequest(rejection.body_text())))?;
    ids.check()?;
    Ok(ids)
}

/// What every read checks first, in order: the caller, the path's ids, the query.
fn read<P: PathIds, Q>(
    state: &ServerState,
    headers: &HeaderMap,
    ids: Result<Path<P>, PathRejection>,
    query: Result<Query<Q>, QueryRejection>,
) -> Result<(P, Q), Failure> {
    caller(state, headers)?;
    let ids = path(ids)?;
    Ok((ids, query?.0))
}

fn bad_query(message: String) -> Failure {
    ApiError(ClientError::BadRequest(message)).into()
}

/// The board, known to this node: an id it does not know is looked up among the created boards
/// once (another node may have created it) before the answer is 404.
/// Before a read: the board is known, and with a shared store the season has caught up with
/// what other nodes committed (see the module doc).
async fn fresh(state: &ServerState, board: &str, season: Option<&str>) -> Result<(), Failure> {
    // A season that has not begun has nothing to read: refused before anything is loaded, so
    // no caller fills memory with empty future seasons. (Names of one schedule sort by time.)
    if let Some(season) = season {
        let spec = state.known_board(board).await?;
        if season > spec.season_at(now_ms()).as_str() {
            return Err(SpecError::Season(season.to_string()).into());
        }
    }
    state.fresh_board(board, season).await?;
    Ok(())
}

fn board_out(spec: BoardSpec) -> serde_json::Value {
    let season = spec.season_at(now_ms());
    let mut out = json!(spec);
    out["season"] = json!(season);
    out
}

fn now_ms() -> i64 {
    i64::try_from(courtside_core::stream::now_ms()).unwrap_or(i64::MAX)
}

#[utoipa::path(
    get,
    path = "/api/leaderboards",
    tag = "leaderboards",
    summary = "Every board (declared in configuration or created), with its current season",
    responses((status = 200, description = "The boards", body = BoardsList), ListErrors),
    security((), ("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn list_boards(State(state): Shared, headers: HeaderMap) -> Reply {
    caller(&state, &headers)?;
    state.leaderboards.load_boards().await?;
    let boards: Vec<_> = state.leaderboards.boards().into_iter().map(board_out).collect();
    ok(json!({ "boards": boards }))
}

#[utoipa::path(
    post,
    path = "/api/leaderboards",
    tag = "leaderboards",
    summary = "Create a board (the API key or a director); creating the same spec again is harmless",
    request_body = CreateBoard,
    responses((status = 201, description = "Created (or already there with this spec)", body = BoardOut), CreateErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn create_board(State(state): Shared, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Reply {
    let principal = caller(&state, &headers)?;
    let create: CreateBoard = json_body(&headers, body)?;
    allow(&principal, Write::Boards)?;
    let spec = state.leaderboards.create_board(create.spec()).await?;
    Ok((StatusCode::CREATED, Json(board_out(spec))).into_response())
}

#[utoipa::path(
    get,
    path = "/api/leaderboards/{id}",
    tag = "leaderboards",
    summary = "A board's spec and current season",
    params(BoardPath),
    responses((status = 200, description = "The board", body = BoardOut), ReadErrors),
    security((), ("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn board(State(state): Shared, headers: HeaderMap, ids: Result<Path<BoardPath>, PathRejection>) -> Reply {
    caller(&state, &headers)?;
    let ids: BoardPath = path(ids)?;
    let spec = state.known_board(&ids.id).await?;
    ok(board_out(spec))
}

#[utoipa::path(
    post,
    path = "/api/leaderboards/{id}/scores",
    tag = "leaderboards",
    summary = "Submit a score (the API key, staff or a director), combined by the board's operator",
    params(BoardPath),
    request_body = SubmitScore,
    responses((status = 200, description = "The player's move, or their place now for a retried id (`duplicate`)", body = SubmittedOut), WriteErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn submit(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<BoardPath>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let principal = caller(&state, &headers)?;
    let ids: BoardPath = path(ids)?;
    let submit: SubmitScore = json_body(&headers, body)?;
    allow(&principal, Write::Scores)?;
    let score = match submit.score.as_i64() {
        Some(score) => check_range(score).map_err(LeaderboardError::from)?,
        None => score_from_number(submit.score.as_f64().unwrap_or(f64::NAN)).map_err(LeaderboardError::from)?,
    };
    state.known_board(&ids.id).await?;
    ok(state.leaderboards.submit(&ids.id, &submit.player, score, submit.id.as_deref()).await?)
}

#[utoipa::path(
    post,
    path = "/api/leaderboards/{id}/matches",
    tag = "leaderboards",
    summary = "Record a match result on a ratings board (the API key, staff or a director): both sides' ELO changes applied atomically, once per match id",
    params(BoardPath),
    request_body = MatchIn,
    responses((status = 200, description = "The rating changes (seed 003's `match:result`), or the first answer's for a retried id (`duplicate`)", body = MatchOut), WriteErrors),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn record_match(
    State(state): Shared,
    headers: HeaderMap,
    ids: Result<Path<BoardPath>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Reply {
    let principal = caller(&state, &headers)?;
    let ids: BoardPath = path(ids)?;
    let input: MatchIn = json_body(&headers, body)?;
    allow(&principal, Write::Scores)?;
    let result = input.result().map_err(|message| HttpFailure::Module(LeaderboardApiError::Invalid(message)))?;
    state.known_board(&ids.id).await?;
    let outcome = result.outcome;
    let recorded: MatchRecorded = state.leaderboards.record_match(&ids.id, result, Some(&input.id)).await?;
    let mut out = json!(recorded);
    out["matchId"] = json!(input.id);
    out["winnerId"] = json!(if outcome == Outcome::Draw { None } else { input.winner });
    out["draw"] = json!(outcome == Outcome::Draw);
    ok(out)
}

#[utoipa::path(
    get,
    path = "/api/leaderboards/{id}/top",
    tag = "leaderboards",
    summary = "The leading players",
    params(BoardPath, TopQuery),
    responses((status = 200, description = "The first `limit` players", body = StandingsOut), ReadErrors),
    security((), ("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn top(State(state): Shared, headers: HeaderMap, ids: Result<Path<BoardPath>, PathRejection>, q: Result<Query<TopQuery>, QueryRejection>) -> Reply {
    let (ids, q): (BoardPath, TopQuery) = read(&state, &headers, ids, q)?;
    let limit = bounded("limit", q.limit, requests::TOP_DEFAULT, 1, 1000).map_err(bad_query)?;
    fresh(&state, &ids.id, q.season.as_deref()).await?;
    ok(state.leaderboards.top(&ids.id, q.season.as_deref(), limit).await?)
}

#[utoipa::path(
    get,
    path = "/api/leaderboards/{id}/ranks",
    tag = "leaderboards",
    summary = "A page of players by rank",
    params(BoardPath, PageQuery),
    responses((status = 200, description = "Players from rank `offset + 1` on", body = StandingsOut), ReadErrors),
    security((), ("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn ranks(State(state): Shared, headers: HeaderMap, ids: Result<Path<BoardPath>, PathRejection>, q: Result<Query<PageQuery>, QueryRejection>) -> Reply {
    let (ids, q): (BoardPath, PageQuery) = read(&state, &headers, ids, q)?;
    let limit = bounded("limit", q.limit, requests::PAGE_DEFAULT, 1, 1000).map_err(bad_query)?;
    let offset = bounded("offset", q.offset, 0, 0, (1usize << 53) - 1).map_err(bad_query)?;
    fresh(&state, &ids.id, q.season.as_deref()).await?;
    ok(state.leaderboards.page(&ids.id, q.season.as_deref(), offset, limit).await?)
}

#[utoipa::path(
    get,
    path = "/api/leaderboards/{id}/players/{player}",
    tag = "leaderboards",
    summary = "A player's rank and score",
    params(PlayerPath, SeasonQuery),
    responses((status = 200, description = "The player's place (404 `not_ranked` without a score this season)", body = PlayerRankOut), ReadErrors),
    security((), ("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn player(State(state): Shared, headers: HeaderMap, ids: Result<Path<PlayerPath>, PathRejection>, q: Result<Query<SeasonQuery>, QueryRejection>) -> Reply {
    let (ids, q): (PlayerPath, SeasonQuery) = read(&state, &headers, ids, q)?;
    fresh(&state, &ids.id, q.season.as_deref()).await?;
    let spec = state.leaderboards.board(&ids.id)?;
    let season = q.season.clone().unwrap_or_else(|| spec.season_at(now_ms()));
    match state.leaderboards.rank(&ids.id, Some(&season), &ids.player).await? {
        Some(ranked) => ok(json!({ "board": ids.id, "season": season, "player": ranked.player, "score": ranked.score, "rank": ranked.rank })),
        None => Err(HttpFailure::Module(LeaderboardApiError::NotRanked { board: ids.id, season, player: ids.player })),
    }
}

#[utoipa::path(
    get,
    path = "/api/leaderboards/{id}/players/{player}/around",
    tag = "leaderboards",
    summary = "A player and the players ranked just above and below",
    params(PlayerPath, AroundQuery),
    responses((status = 200, description = "Up to `count` players on each side, in rank order (no entries: no score this season)", body = StandingsOut), ReadErrors),
    security((), ("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn around(State(state): Shared, headers: HeaderMap, ids: Result<Path<PlayerPath>, PathRejection>, q: Result<Query<AroundQuery>, QueryRejection>) -> Reply {
    let (ids, q): (PlayerPath, AroundQuery) = read(&state, &headers, ids, q)?;
    let count = bounded("count", q.count, requests::AROUND_DEFAULT, 0, 500).map_err(bad_query)?;
    fresh(&state, &ids.id, q.season.as_deref()).await?;
    ok(state.leaderboards.around(&ids.id, q.season.as_deref(), &ids.player, count).await?)
}
