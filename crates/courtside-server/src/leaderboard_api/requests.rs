//! What a leaderboard request carries — the ids in its path, its query, its body — with the
//! documented ranges, and the shapes of the answers as the OpenAPI document describes them. The
//! same types describe and read, so what is documented is what is read; schema-valid ids and
//! queries never get 400 (a season that is not one of the board's is 404, like a board).

use std::collections::BTreeMap;

use courtside_leaderboard::board::{check_board_id, check_player};
use courtside_leaderboard::{BoardSpec, MatchResult, Operator, Order, Outcome, RatingRules, ResetSchedule, SpecError, TieBreak};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// Players `GET …/top` returns without `limit`.
pub const TOP_DEFAULT: usize = 10;
/// Players on each side `GET …/around` returns without `count`.
pub const AROUND_DEFAULT: usize = 5;
/// Players `GET …/ranks` returns without `limit`.
pub const PAGE_DEFAULT: usize = 100;

/// `/api/leaderboards/{id}/…`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct BoardPath {
    /// The board id
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub id: String,
}

/// `/api/leaderboards/{id}/players/{player}/…`.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct PlayerPath {
    /// The board id
    #[param(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub id: String,
    /// The player id
    #[param(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.@-]+$")]
    pub player: String,
}

/// The ids a path names, checked before anything is looked up.
pub trait PathIds {
    fn check(&self) -> Result<(), SpecError>;
}

impl PathIds for BoardPath {
    fn check(&self) -> Result<(), SpecError> {
        check_board_id(&self.id)
    }
}

impl PathIds for PlayerPath {
    fn check(&self) -> Result<(), SpecError> {
        check_board_id(&self.id)?;
        check_player(&self.player)
    }
}

/// `?season=` alone.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SeasonQuery {
    /// A past season: `all` (never resets), `2026-12-05`, `2026-W49`, `2026-12` (default: the current one)
    #[param(pattern = r"^(all|[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-W[0-9]{2}|[0-9]{4}-[0-9]{2})$")]
    pub season: Option<String>,
}

/// `GET …/top`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TopQuery {
    /// A past season: `all` (never resets), `2026-12-05`, `2026-W49`, `2026-12` (default: the current one)
    #[param(pattern = r"^(all|[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-W[0-9]{2}|[0-9]{4}-[0-9]{2})$")]
    pub season: Option<String>,
    /// At most this many players (default 10)
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// `GET …/players/{player}/around`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AroundQuery {
    /// A past season: `all` (never resets), `2026-12-05`, `2026-W49`, `2026-12` (default: the current one)
    #[param(pattern = r"^(all|[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-W[0-9]{2}|[0-9]{4}-[0-9]{2})$")]
    pub season: Option<String>,
    /// Players on each side of the player (default 5)
    #[param(minimum = 0, maximum = 500)]
    pub count: Option<u64>,
}

/// `GET …/ranks`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// A past season: `all` (never resets), `2026-12-05`, `2026-W49`, `2026-12` (default: the current one)
    #[param(pattern = r"^(all|[0-9]{4}-[0-9]{2}-[0-9]{2}|[0-9]{4}-W[0-9]{2}|[0-9]{4}-[0-9]{2})$")]
    pub season: Option<String>,
    /// Players ranked before the page (default 0)
    #[param(minimum = 0, maximum = 9_007_199_254_740_991_i64)]
    pub offset: Option<u64>,
    /// At most this many players (default 100)
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u64>,
}

/// A count from a query: `default` when absent, else within `min..=max`.
pub fn bounded(name: &str, value: Option<u64>, default: usize, min: u64, max: usize) -> Result<usize, String> {
    match value {
        None => Ok(default),
        Some(value) if value >= min && value <= max as u64 => Ok(value as usize),
        Some(_) => Err(format!("`{name}` must be between {min} and {max}")),
    }
}

/// How a board ranks: `desc` highest first, `asc` lowest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OrderDoc {
    Desc,
    Asc,
}

/// How a submitted score combines with the stored one: `best` keeps the better, `set` replaces,
/// `incr` adds, `decr` subtracts.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum OperatorDoc {
    Best,
    Set,
    Incr,
    Decr,
}

/// When a board starts a new season (UTC); null: never.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ResetDoc {
    Daily,
    Weekly,
    Monthly,
}

/// Who ranks first among equal scores: whoever reached the score first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum TieBreakDoc {
    FirstReached,
}

/// A ratings board's rules: match results move scores by ELO.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RatingIn {
    /// Default 32
    #[schema(minimum = 1, maximum = 1000)]
    pub k_factor: Option<u32>,
    /// The rating a new player starts from (default 1500)
    #[schema(minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64)]
    pub initial: Option<i64>,
}

/// `POST /api/leaderboards`: a board to create (only `id` is required).
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateBoard {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub id: String,
    /// Default `desc`
    #[schema(value_type = Option<OrderDoc>)]
    pub order: Option<Order>,
    /// Default `best`
    #[schema(value_type = Option<OperatorDoc>)]
    pub operator: Option<Operator>,
    #[schema(value_type = Option<TieBreakDoc>)]
    pub tie_break: Option<TieBreak>,
    /// Leading players of the board's pushed view (default 10)
    #[schema(minimum = 1, maximum = 1000)]
    pub top_n: Option<u32>,
    /// Default: never
    #[schema(value_type = Option<ResetDoc>)]
    pub reset: Option<ResetSchedule>,
    /// Set for a ratings board
    #[serde(default, deserialize_with = "object")]
    pub rating: Option<RatingIn>,
}

/// A nested object read only from a JSON object (serde would also take an array of its fields).
fn object<'de, D: serde::Deserializer<'de>, T: serde::de::DeserializeOwned>(deserializer: D) -> Result<Option<T>, D::Error> {
    let map: Option<serde_json::Map<String, serde_json::Value>> = Option::deserialize(deserializer)?;
    map.map(|map| serde_json::from_value(serde_json::Value::Object(map)).map_err(serde::de::Error::custom)).transpose()
}

impl CreateBoard {
    pub fn spec(self) -> BoardSpec {
        let defaults = BoardSpec::new(&self.id);
        let initial = RatingRules::default();
        BoardSpec {
            order: self.order.unwrap_or(defaults.order),
            operator: self.operator.unwrap_or(defaults.operator),
            tie_break: self.tie_break.unwrap_or(defaults.tie_break),
            top_n: self.top_n.unwrap_or(defaults.top_n),
            reset: self.reset,
            rating: self.rating.map(|rating| RatingRules {
                k_factor: rating.k_factor.unwrap_or(initial.k_factor),
                initial: rating.initial.unwrap_or(initial.initial),
            }),
            id: self.id,
        }
    }
}

/// `POST …/scores`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitScore {
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.@-]+$")]
    pub player: String,
    /// A whole number within ±(2⁵³ − 1), combined with the stored score by the board's operator
    #[schema(value_type = i64, minimum = -9_007_199_254_740_991_i64, maximum = 9_007_199_254_740_991_i64)]
    pub score: serde_json::Number,
    /// Operation id: a retry with the same id changes nothing and gets the current answer
    #[schema(min_length = 1, max_length = 128)]
    pub id: Option<String>,
}

/// `POST …/matches`: two players or two teams, and a winner or a draw.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MatchIn {
    /// The match id: a retry with the same id changes nothing and gets the first answer's changes
    #[schema(min_length = 1, max_length = 128)]
    pub id: String,
    /// Two players (or use `teams`)
    #[schema(min_items = 2, max_items = 2, value_type = Option<Vec<String>>)]
    pub players: Option<Vec<String>>,
    /// Two teams of 1 to 64 players, each rated by its players' mean (or use `players`)
    #[schema(min_items = 2, max_items = 2, value_type = Option<Vec<Vec<String>>>)]
    pub teams: Option<Vec<Vec<String>>>,
    /// The winner's id; with teams, any player of the winning team
    pub winner: Option<String>,
    /// A draw (then no `winner`)
    pub draw: Option<bool>,
}

impl MatchIn {
    /// The result as the rating rules read it, or what is wrong with it.
    pub fn result(&self) -> Result<MatchResult, String> {
        let (first, second) = match (&self.players, &self.teams) {
            (Some(players), None) if players.len() == 2 => (vec![players[0].clone()], vec![players[1].clone()]),
            (None, Some(teams)) if teams.len() == 2 => (teams[0].clone(), teams[1].clone()),
            (Some(_), None) => return Err("`players` needs exactly two players".into()),
            (None, Some(_)) => return Err("`teams` needs exactly two teams".into()),
            _ => return Err("give either `players` or `teams`".into()),
        };
        let outcome = match (&self.winner, self.draw.unwrap_or(false)) {
            (Some(_), true) => return Err("a draw has no `winner`".into()),
            (None, true) => Outcome::Draw,
            (Some(winner), false) if first.contains(winner) => Outcome::First,
            (Some(winner), false) if second.contains(winner) => Outcome::Second,
            (Some(winner), false) => return Err(format!("the winner {winner:?} is not in the match")),
            (None, false) => return Err("give a `winner` or `draw: true`".into()),
        };
        Ok(MatchResult { first, second, outcome })
    }
}

/// A board and its current season.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BoardOut {
    pub id: String,
    pub order: OrderDoc,
    pub operator: OperatorDoc,
    pub tie_break: TieBreakDoc,
    pub top_n: u32,
    pub reset: Option<ResetDoc>,
    pub rating: Option<RatingOut>,
    /// The season scores go to now (`all` for a board that never resets)
    pub season: String,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RatingOut {
    pub k_factor: u32,
    pub initial: i64,
}

#[derive(Serialize, ToSchema)]
pub struct BoardsList {
    /// Sorted by id
    pub boards: Vec<BoardOut>,
}

/// A player at a rank (1 = first).
#[derive(Serialize, ToSchema)]
pub struct RankedOut {
    pub player: String,
    pub score: i64,
    pub rank: u64,
}

/// Players of a board season in rank order.
#[derive(Serialize, ToSchema)]
pub struct StandingsOut {
    pub board: String,
    pub season: String,
    /// Players with a score this season
    pub total: u64,
    pub entries: Vec<RankedOut>,
}

/// A player's rank and score.
#[derive(Serialize, ToSchema)]
pub struct PlayerRankOut {
    pub board: String,
    pub season: String,
    pub player: String,
    pub score: i64,
    pub rank: u64,
}

/// A listening player whose rank a move changed.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RankChangeOut {
    pub player: String,
    pub old_rank: u64,
    pub new_rank: u64,
}

/// One player's move.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ScoreUpdateOut {
    pub board: String,
    pub season: String,
    pub player: String,
    pub score: i64,
    pub rank: u64,
    /// Null: the player had no score this season
    pub previous_score: Option<i64>,
    pub previous_rank: Option<u64>,
    /// Listening players whose rank changed
    pub changes: Vec<RankChangeOut>,
    /// Set when first place changed hands: the new leader
    pub new_leader: Option<String>,
}

/// `POST …/scores`: the move, and whether this was a retry of an applied id.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubmittedOut {
    pub board: String,
    pub season: String,
    pub player: String,
    pub score: i64,
    pub rank: u64,
    pub previous_score: Option<i64>,
    pub previous_rank: Option<u64>,
    pub changes: Vec<RankChangeOut>,
    pub new_leader: Option<String>,
    /// A retried id: nothing changed, this is the player's current place
    pub duplicate: bool,
}

/// `POST …/matches` (seed 003's `match:result`).
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MatchOut {
    pub match_id: String,
    /// Null for a draw
    pub winner_id: Option<String>,
    pub draw: bool,
    pub board: String,
    pub season: String,
    /// Player → signed rating change
    pub elo_changes: BTreeMap<String, i64>,
    /// Player → rating after the match
    pub ratings: BTreeMap<String, i64>,
    pub updates: Vec<ScoreUpdateOut>,
    /// A retried match id: nothing changed
    pub duplicate: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use courtside_leaderboard::board::{BOARD_ID_LEN_MAX, PLAYER_ID_LEN_MAX, SCORE_ABS_MAX, TOP_N_MAX};
    use courtside_leaderboard::elo::{K_FACTOR_MAX, SIDE_LEN_MAX};
    use courtside_leaderboard::service::{OP_ID_LEN_MAX, PAGE_LEN_MAX};

    #[test]
    fn documented_limits_are_the_services() {
        assert_eq!((BOARD_ID_LEN_MAX, PLAYER_ID_LEN_MAX, OP_ID_LEN_MAX, PAGE_LEN_MAX), (64, 128, 128, 1000));
        assert_eq!((SCORE_ABS_MAX, TOP_N_MAX, K_FACTOR_MAX, SIDE_LEN_MAX), (9_007_199_254_740_991, 1000, 1000, 64));
    }

    #[test]
    fn match_bodies_become_results() {
        let read = |json: &str| serde_json::from_str::<MatchIn>(json).expect("body").result();
        let result = read(r#"{"id":"m1","players":["ann","bob"],"winner":"bob"}"#).expect("result");
        assert_eq!(result.outcome, Outcome::Second);
        assert_eq!(read(r#"{"id":"m1","teams":[["a","b"],["c"]],"draw":true}"#).expect("draw").outcome, Outcome::Draw);
        assert!(read(r#"{"id":"m1","players":["ann","bob"]}"#).is_err());
        assert!(read(r#"{"id":"m1","players":["ann","bob"],"winner":"cy"}"#).is_err());
        assert!(read(r#"{"id":"m1","players":["ann"],"winner":"ann"}"#).is_err());
        assert!(read(r#"{"id":"m1","players":["a","b"],"teams":[["a"],["b"]],"winner":"a"}"#).is_err());
        assert!(serde_json::from_str::<CreateBoard>(r#"{"id":"x","rating":[null,null]}"#).is_err());
        assert!(serde_json::from_str::<CreateBoard>(r#"{"id":"x","rating":{"kFactor":16}}"#).is_ok_and(|board| board.spec().rating.is_some()));
    }
}
