//! ELO ratings from a match result: two sides (a player each, or teams rated by the mean of
//! their players' ratings), a winner or a draw, and the change every player's rating takes.
//!
//! The change for the first side is `round(K × (S − E))` with `E = 1 / (1 + 10^((R₂ − R₁)/400))`
//! and `S` = 1, ½ or 0, rounded half away from zero; the second side takes the opposite change,
//! so a 1-against-1 match conserves total rating exactly, and every player of a side takes its
//! side's change. The node that records a result computes it once and stores the new ratings;
//! nobody recomputes it, so every node reads the same numbers.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::board::{self, ScoreError};
use crate::ranking::Score;

/// Most players on one side of a match.
pub const SIDE_LEN_MAX: usize = 64;
/// The largest K-factor a board may configure.
pub const K_FACTOR_MAX: u32 = 1_000;

/// How a board's ratings move: K-factor and the rating a new player starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields, default)]
pub struct RatingRules {
    pub k_factor: u32,
    pub initial: Score,
}

impl Default for RatingRules {
    fn default() -> Self {
        Self { k_factor: 32, initial: 1500 }
    }
}

/// Who won.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    First,
    Second,
    Draw,
}

/// A finished match as reported: the players of each side and who won.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchResult {
    pub first: Vec<String>,
    pub second: Vec<String>,
    pub outcome: Outcome,
}

/// Why a match result or rating rule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EloError {
    #[error("each side needs between 1 and {SIDE_LEN_MAX} players")]
    SideSize,
    #[error("{0}")]
    Player(String),
    #[error("player {0} is listed twice")]
    Repeated(String),
    #[error("the K-factor must be between 1 and {K_FACTOR_MAX}")]
    KFactor,
    #[error(transparent)]
    Score(#[from] ScoreError),
}

impl RatingRules {
    pub fn validate(&self) -> Result<(), EloError> {
        if self.k_factor == 0 || self.k_factor > K_FACTOR_MAX {
            return Err(EloError::KFactor);
        }
        board::check_range(self.initial)?;
        Ok(())
    }
}

impl MatchResult {
    /// Both sides sized 1..=[`SIDE_LEN_MAX`], nobody listed twice.
    pub fn validate(&self) -> Result<(), EloError> {
        let sized = |side: &Vec<String>| (1..=SIDE_LEN_MAX).contains(&side.len());
        if !(sized(&self.first) && sized(&self.second)) {
            return Err(EloError::SideSize);
        }
        let mut seen = HashSet::new();
        for player in self.first.iter().chain(&self.second) {
            board::check_player(player).map_err(|error| EloError::Player(error.to_string()))?;
            if !seen.insert(player.as_str()) {
                return Err(EloError::Repeated(player.clone()));
            }
        }
        Ok(())
    }

    /// Every player, first side first.
    pub fn players(&self) -> impl Iterator<Item = &String> {
        self.first.iter().chain(&self.second)
    }
}

/// The mean of a side's ratings (a team's rating).
fn mean(ratings: &[Score]) -> f64 {
    let sum: i128 = ratings.iter().map(|r| i128::from(*r)).sum();
    sum as f64 / ratings.len().max(1) as f64
}

/// The rating changes of the first and of the second side.
pub fn side_changes(rules: &RatingRules, first: &[Score], second: &[Score], outcome: Outcome) -> (i64, i64) {
    let expected_first = 1.0 / (1.0 + 10f64.powf((mean(second) - mean(first)) / 400.0));
    let actual_first = match outcome {
        Outcome::First => 1.0,
        Outcome::Second => 0.0,
        Outcome::Draw => 0.5,
    };
    let change = (f64::from(rules.k_factor) * (actual_first - expected_first)).round() as i64;
    (change, -change)
}

/// Every player's change and new rating, given their current ratings (a player without one
/// starts at `rules.initial`). The result must have been validated.
pub fn rate(
    rules: &RatingRules,
    result: &MatchResult,
    current: impl Fn(&str) -> Option<Score>,
) -> Result<BTreeMap<String, (i64, Score)>, EloError> {
    let rating = |player: &String| current(player).unwrap_or(rules.initial);
    let first: Vec<Score> = result.first.iter().map(rating).collect();
    let second: Vec<Score> = result.second.iter().map(rating).collect();
    let (first_change, second_change) = side_changes(rules, &first, &second, result.outcome);
    let mut rated = BTreeMap::new();
    let sides = [(&result.first, &first, first_change), (&result.second, &second, second_change)];
    for (players, ratings, change) in sides {
        for (player, old) in players.iter().zip(ratings) {
            let new = board::check_range(old.checked_add(change).ok_or(ScoreError::OutOfRange)?)?;
            rated.insert(player.clone(), (change, new));
        }
    }
    Ok(rated)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one_v_one(outcome: Outcome) -> MatchResult {
        MatchResult { first: vec!["a".into()], second: vec!["b".into()], outcome }
    }

    #[test]
    fn equals_split_k() {
        let rules = RatingRules::default();
        assert_eq!(side_changes(&rules, &[1500], &[1500], Outcome::First), (16, -16));
        assert_eq!(side_changes(&rules, &[1500], &[1500], Outcome::Second), (-16, 16));
        assert_eq!(side_changes(&rules, &[1500], &[1500], Outcome::Draw), (0, 0));
        // The favourite gains little for a win and loses much for a loss.
        let (gain, _) = side_changes(&rules, &[1900], &[1500], Outcome::First);
        let (loss, _) = side_changes(&rules, &[1900], &[1500], Outcome::Second);
        assert_eq!((gain, loss), (3, -29));
    }

    #[test]
    fn teams_are_rated_by_their_mean() {
        let rules = RatingRules { k_factor: 20, initial: 1000 };
        let result = MatchResult { first: vec!["a".into(), "b".into()], second: vec!["c".into()], outcome: Outcome::First };
        let rated = rate(&rules, &result, |p| match p {
            "a" => Some(1200),
            "b" => Some(800),
            _ => None,
        })
        .expect("rated");
        assert_eq!(rated["a"], (10, 1210));
        assert_eq!(rated["b"], (10, 810));
        assert_eq!(rated["c"], (-10, 990));
    }

    #[test]
    fn bad_results_are_refused() {
        let mut result = one_v_one(Outcome::Draw);
        result.second = vec!["a".into()];
        assert_eq!(result.validate(), Err(EloError::Repeated("a".into())));
        result.second = Vec::new();
        assert_eq!(result.validate(), Err(EloError::SideSize));
        result.second = vec!["b c".into()];
        assert!(matches!(result.validate(), Err(EloError::Player(_))));
        assert_eq!(RatingRules { k_factor: 0, initial: 0 }.validate(), Err(EloError::KFactor));
        let near_limit = rate(&RatingRules::default(), &one_v_one(Outcome::First), |_| Some(board::SCORE_ABS_MAX));
        assert!(matches!(near_limit, Err(EloError::Score(ScoreError::OutOfRange))), "no overflow past the limit");
    }

    proptest! {
        #[test]
        fn a_draw_between_equals_changes_nothing(rating in -100_000i64..100_000, k in 1u32..=K_FACTOR_MAX) {
            let rules = RatingRules { k_factor: k, initial: 0 };
            prop_assert_eq!(side_changes(&rules, &[rating], &[rating], Outcome::Draw), (0, 0));
        }

        #[test]
        fn one_against_one_conserves_total_rating(a in -100_000i64..100_000, b in -100_000i64..100_000, k in 1u32..=K_FACTOR_MAX, o in 0u8..3) {
            let outcome = [Outcome::First, Outcome::Second, Outcome::Draw][o as usize];
            let rules = RatingRules { k_factor: k, initial: 0 };
            let rated = rate(&rules, &one_v_one(outcome), |p| Some(if p == "a" { a } else { b })).expect("rated");
            prop_assert_eq!(rated["a"].1 + rated["b"].1, a + b);
        }

        #[test]
        fn the_winner_never_loses_rating(first in proptest::collection::vec(-5_000i64..5_000, 1..5), second in proptest::collection::vec(-5_000i64..5_000, 1..5), k in 1u32..=K_FACTOR_MAX) {
            let rules = RatingRules { k_factor: k, initial: 0 };
            let (won, lost) = side_changes(&rules, &first, &second, Outcome::First);
            prop_assert!(won >= 0 && lost <= 0);
            let (lost, won) = side_changes(&rules, &first, &second, Outcome::Second);
            prop_assert!(won >= 0 && lost <= 0);
            prop_assert!(won <= i64::from(k));
        }
    }
}
