//! A board's spec — id, order, operator, tie-break, the size of its pushed top, its reset
//! schedule and (for a ratings board) its rating rules — and the pure rules around it: how an
//! operator combines a stored score with a submitted one ([`apply`]), which season a time falls
//! in ([`season_at`]), and what ids, scores and season names are acceptable.
//!
//! Scores are whole numbers within ±(2⁵³ − 1), so JavaScript clients read them exactly; every
//! operator's arithmetic is checked against that range, so no client input overflows.

use serde::{Deserialize, Serialize};

use crate::calendar;
use crate::elo::{EloError, RatingRules};
use crate::ranking::{Order, Score};

/// The largest score magnitude (JavaScript's `Number.MAX_SAFE_INTEGER`).
pub const SCORE_ABS_MAX: Score = (1 << 53) - 1;
/// Longest board id, in bytes.
pub const BOARD_ID_LEN_MAX: usize = 64;
/// Longest player id, in bytes.
pub const PLAYER_ID_LEN_MAX: usize = 128;
/// The largest pushed top a board may ask for.
pub const TOP_N_MAX: u32 = 1_000;
/// The season of a board that never resets.
pub const ALL_TIME: &str = "all";

/// How a submitted score combines with the stored one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Operator {
    /// Keep the better of the stored and the submitted score (in the board's order).
    #[default]
    Best,
    /// The submitted score replaces the stored one.
    Set,
    /// Add the submitted amount (a player without a score starts at 0).
    Incr,
    /// Subtract the submitted amount (a player without a score starts at 0).
    Decr,
}

/// Who ranks first among equal scores.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum TieBreak {
    /// Whoever reached the score first.
    #[default]
    FirstReached,
}

/// When a board starts a new season (seasons are kept apart; old ones stay readable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ResetSchedule {
    /// At midnight UTC: seasons named `2026-12-05`.
    Daily,
    /// On Monday, midnight UTC: ISO weeks, `2026-W49`.
    Weekly,
    /// On the first of the month, midnight UTC: `2026-12`.
    Monthly,
}

/// A board as declared in configuration or created through the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BoardSpec {
    pub id: String,
    #[serde(default)]
    pub order: Order,
    #[serde(default)]
    pub operator: Operator,
    #[serde(default)]
    pub tie_break: TieBreak,
    /// How many leading players the board's pushed view holds.
    #[serde(default = "default_top_n")]
    pub top_n: u32,
    /// `None`: one season for all time.
    #[serde(default)]
    pub reset: Option<ResetSchedule>,
    /// Set for a ratings board: match results move its scores by ELO.
    #[serde(default)]
    pub rating: Option<RatingRules>,
}

fn default_top_n() -> u32 {
    10
}

impl BoardSpec {
    /// A board with the defaults: highest first, `best`, first reached wins ties, top 10, no
    /// reset, no ratings.
    pub fn new(id: &str) -> Self {
        Self {
            id: id.to_string(),
            order: Order::Desc,
            operator: Operator::Best,
            tie_break: TieBreak::FirstReached,
            top_n: default_top_n(),
            reset: None,
            rating: None,
        }
    }

    pub fn validate(&self) -> Result<(), SpecError> {
        check_board_id(&self.id)?;
        if self.top_n == 0 || self.top_n > TOP_N_MAX {
            return Err(SpecError::TopN);
        }
        if let Some(rules) = &self.rating {
            rules.validate()?;
        }
        Ok(())
    }

    /// The season `now_ms` falls in.
    pub fn season_at(&self, now_ms: i64) -> String {
        season_at(self.reset, now_ms)
    }
}

/// Why a score was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ScoreError {
    #[error("the score is not a number")]
    NotANumber,
    #[error("the score must be a whole number")]
    NotWhole,
    #[error("the score must be within ±{SCORE_ABS_MAX}")]
    OutOfRange,
}

/// Why an id or spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SpecError {
    #[error("board id {0:?}: 1 to {BOARD_ID_LEN_MAX} letters, digits, `_` or `-`")]
    BoardId(String),
    #[error("player id {0:?}: 1 to {PLAYER_ID_LEN_MAX} letters, digits, `_`, `-`, `.` or `@`")]
    PlayerId(String),
    #[error("season {0:?} is not a season of this board")]
    Season(String),
    #[error("topN must be between 1 and {TOP_N_MAX}")]
    TopN,
    #[error(transparent)]
    Rating(#[from] Box<EloError>),
}

impl From<EloError> for SpecError {
    fn from(error: EloError) -> Self {
        SpecError::Rating(Box::new(error))
    }
}

/// A JSON number as a score: NaN, infinities, fractions and out-of-range values refused.
pub fn score_from_number(value: f64) -> Result<Score, ScoreError> {
    if !value.is_finite() {
        return Err(ScoreError::NotANumber);
    }
    if value.fract() != 0.0 {
        return Err(ScoreError::NotWhole);
    }
    if value.abs() > SCORE_ABS_MAX as f64 {
        return Err(ScoreError::OutOfRange);
    }
    Ok(value as Score)
}

/// `score` if within ±[`SCORE_ABS_MAX`].
pub fn check_range(score: Score) -> Result<Score, ScoreError> {
    if (-SCORE_ABS_MAX..=SCORE_ABS_MAX).contains(&score) { Ok(score) } else { Err(ScoreError::OutOfRange) }
}

/// The score a player holds after submitting `submitted` under `operator` on a board of
/// `order`, given the score they hold (`None`: not on the board yet).
pub fn apply(operator: Operator, order: Order, old: Option<Score>, submitted: Score) -> Result<Score, ScoreError> {
    check_range(submitted)?;
    let new = match (operator, old) {
        (Operator::Best, Some(old)) if !order.is_better(submitted, old) => old,
        (Operator::Best | Operator::Set, _) => submitted,
        (Operator::Incr, old) => old.unwrap_or(0).checked_add(submitted).ok_or(ScoreError::OutOfRange)?,
        (Operator::Decr, old) => old.unwrap_or(0).checked_sub(submitted).ok_or(ScoreError::OutOfRange)?,
    };
    check_range(new)
}

fn id_text(text: &str, len_max: usize, extra: &[char]) -> bool {
    (1..=len_max).contains(&text.len()) && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || extra.contains(&c))
}

pub fn check_board_id(id: &str) -> Result<(), SpecError> {
    if id_text(id, BOARD_ID_LEN_MAX, &[]) { Ok(()) } else { Err(SpecError::BoardId(id.to_string())) }
}

/// Player ids are channel-name safe (they name personal channels) and have no `:`.
pub fn check_player(id: &str) -> Result<(), SpecError> {
    if id_text(id, PLAYER_ID_LEN_MAX, &['.', '@']) { Ok(()) } else { Err(SpecError::PlayerId(id.to_string())) }
}

/// The season a board with `reset` is in at `now_ms` (UTC).
pub fn season_at(reset: Option<ResetSchedule>, now_ms: i64) -> String {
    match reset {
        None => ALL_TIME.to_string(),
        Some(ResetSchedule::Daily) => calendar::day_name(now_ms),
        Some(ResetSchedule::Weekly) => calendar::week_name(now_ms),
        Some(ResetSchedule::Monthly) => calendar::month_name(now_ms),
    }
}

/// Is `season` a name the schedule `reset` gives (so a client may read it)?
pub fn check_season(reset: Option<ResetSchedule>, season: &str) -> Result<(), SpecError> {
    let digits = |text: &str, len: usize| text.len() == len && text.bytes().all(|b| b.is_ascii_digit());
    let ok = match (reset, season.split('-').collect::<Vec<_>>().as_slice()) {
        (None, _) => season == ALL_TIME,
        (Some(ResetSchedule::Daily), [y, m, d]) => digits(y, 4) && digits(m, 2) && digits(d, 2),
        (Some(ResetSchedule::Weekly), [y, w]) => digits(y, 4) && w.strip_prefix('W').is_some_and(|w| digits(w, 2)),
        (Some(ResetSchedule::Monthly), [y, m]) => digits(y, 4) && digits(m, 2),
        _ => false,
    };
    if ok { Ok(()) } else { Err(SpecError::Season(season.to_string())) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_combine_scores() {
        use Operator::*;
        assert_eq!(apply(Best, Order::Desc, Some(10), 7), Ok(10));
        assert_eq!(apply(Best, Order::Desc, Some(10), 12), Ok(12));
        assert_eq!(apply(Best, Order::Asc, Some(10), 7), Ok(7));
        assert_eq!(apply(Best, Order::Asc, None, 70), Ok(70));
        assert_eq!(apply(Set, Order::Desc, Some(10), 3), Ok(3));
        assert_eq!(apply(Incr, Order::Desc, Some(10), 5), Ok(15));
        assert_eq!(apply(Incr, Order::Desc, None, -5), Ok(-5));
        assert_eq!(apply(Decr, Order::Desc, Some(10), 15), Ok(-5));
    }

    #[test]
    fn client_numbers_never_overflow() {
        use Operator::*;
        assert_eq!(apply(Incr, Order::Desc, Some(SCORE_ABS_MAX), 1), Err(ScoreError::OutOfRange));
        assert_eq!(apply(Decr, Order::Desc, Some(-SCORE_ABS_MAX), 1), Err(ScoreError::OutOfRange));
        assert_eq!(apply(Set, Order::Desc, None, i64::MAX), Err(ScoreError::OutOfRange));
        assert_eq!(apply(Incr, Order::Desc, Some(i64::MAX), i64::MAX), Err(ScoreError::OutOfRange));
        assert_eq!(apply(Decr, Order::Desc, Some(i64::MIN), i64::MAX), Err(ScoreError::OutOfRange));
        assert_eq!(score_from_number(f64::NAN), Err(ScoreError::NotANumber));
        assert_eq!(score_from_number(f64::INFINITY), Err(ScoreError::NotANumber));
        assert_eq!(score_from_number(1.5), Err(ScoreError::NotWhole));
        assert_eq!(score_from_number(1e300), Err(ScoreError::OutOfRange));
        assert_eq!(score_from_number(-42.0), Ok(-42));
        assert_eq!(score_from_number(SCORE_ABS_MAX as f64), Ok(SCORE_ABS_MAX));
    }

    #[test]
    fn ids_and_seasons_are_checked() {
        assert!(check_board_id("weekly-kills_2").is_ok());
        assert!(check_board_id("a:b").is_err());
        assert!(check_board_id(&"x".repeat(65)).is_err());
        assert!(check_player("alice@example.com").is_ok());
        assert!(check_player("a:b").is_err());
        assert!(check_player("").is_err());
        assert!(check_season(None, "all").is_ok());
        assert!(check_season(Some(ResetSchedule::Weekly), "2026-W49").is_ok());
        assert!(check_season(Some(ResetSchedule::Weekly), "2026-12").is_err());
        assert!(check_season(Some(ResetSchedule::Monthly), "2026-12").is_ok());
        assert!(check_season(Some(ResetSchedule::Daily), "2026-12-05").is_ok());
        assert!(check_season(Some(ResetSchedule::Daily), "2026-12-5").is_err());
        assert!(check_season(Some(ResetSchedule::Monthly), "../x").is_err());
    }

    #[test]
    fn specs_are_validated_and_read_from_json() {
        let spec: BoardSpec = serde_json::from_str(r#"{"id":"weekly","order":"asc","operator":"incr","reset":"weekly","topN":5}"#).expect("spec");
        assert_eq!((spec.order, spec.operator, spec.reset, spec.top_n), (Order::Asc, Operator::Incr, Some(ResetSchedule::Weekly), 5));
        assert_eq!(spec.validate(), Ok(()));
        assert_eq!(spec.season_at(0), "1970-W01");
        assert_eq!(BoardSpec { top_n: 0, ..BoardSpec::new("x") }.validate(), Err(SpecError::TopN));
        let ratings = BoardSpec { rating: Some(RatingRules { k_factor: 0, initial: 1500 }), ..BoardSpec::new("elo") };
        assert!(matches!(ratings.validate(), Err(SpecError::Rating(_))));
        assert!(serde_json::from_str::<BoardSpec>(r#"{"id":"x","operator":"max"}"#).is_err());
    }
}
