//! The `[leaderboards.<id>]` tables of the configuration: boards declared at start (order,
//! operator, pushed top N, reset schedule, optional rating rules), their defaults, their checks
//! (each failure names its key) and the [`BoardSpec`] each one becomes. None are declared by
//! default.

use courtside_leaderboard::board::check_board_id;
use courtside_leaderboard::elo::K_FACTOR_MAX;
use courtside_leaderboard::{BoardSpec, Operator, Order, RatingRules, ResetSchedule, TieBreak};
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// One declared board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LeaderboardConfig {
    /// `"desc"` (highest first) or `"asc"` (lowest first).
    pub order: Order,
    /// `"best"`, `"set"`, `"incr"` or `"decr"`.
    pub operator: Operator,
    /// How many leading players the board's pushed view holds (1 to 1000).
    pub top_n: u32,
    /// `"never"`, `"daily"`, `"weekly"` or `"monthly"` (UTC).
    pub reset: Reset,
    /// Set for a ratings board: match results move its scores by ELO.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rating: Option<RatingConfig>,
}

impl Default for LeaderboardConfig {
    fn default() -> Self {
        let spec = BoardSpec::new("default");
        Self { order: spec.order, operator: spec.operator, top_n: spec.top_n, reset: Reset::Never, rating: None }
    }
}

/// When a declared board starts a new season.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reset {
    #[default]
    Never,
    Daily,
    Weekly,
    Monthly,
}

/// `[leaderboards.<id>.rating]`: the K-factor and the rating a new player starts from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RatingConfig {
    pub k_factor: u32,
    pub initial: i64,
}

impl Default for RatingConfig {
    fn default() -> Self {
        let rules = RatingRules::default();
        Self { k_factor: rules.k_factor, initial: rules.initial }
    }
}

impl LeaderboardConfig {
    /// The board `id` this table declares.
    pub fn spec(&self, id: &str) -> BoardSpec {
        let reset = match self.reset {
            Reset::Never => None,
            Reset::Daily => Some(ResetSchedule::Daily),
            Reset::Weekly => Some(ResetSchedule::Weekly),
            Reset::Monthly => Some(ResetSchedule::Monthly),
        };
        BoardSpec {
            id: id.to_string(),
            order: self.order,
            operator: self.operator,
            tie_break: TieBreak::FirstReached,
            top_n: self.top_n,
            reset,
            rating: self.rating.map(|rating| RatingRules { k_factor: rating.k_factor, initial: rating.initial }),
        }
    }

    /// Checks the table of board `id`; a failure names the key.
    pub fn validate(&self, id: &str) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| Err(ConfigError::Invalid { key: format!("leaderboards.{id}{key}"), message });
        if check_board_id(id).is_err() {
            return invalid("", "board ids are 1 to 64 letters, digits, `_` or `-`".into());
        }
        if self.top_n == 0 || self.top_n > courtside_leaderboard::board::TOP_N_MAX {
            return invalid(".top_n", format!("must be between 1 and {}", courtside_leaderboard::board::TOP_N_MAX));
        }
        if let Some(rating) = &self.rating {
            if rating.k_factor == 0 || rating.k_factor > K_FACTOR_MAX {
                return invalid(".rating.k_factor", format!("must be between 1 and {K_FACTOR_MAX}"));
            }
            if courtside_leaderboard::board::check_range(rating.initial).is_err() {
                return invalid(".rating.initial", "must be within ±9007199254740991".into());
            }
        }
        self.spec(id).validate().map_err(|error| ConfigError::Invalid { key: format!("leaderboards.{id}"), message: error.to_string() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_table_becomes_its_spec() {
        let table: LeaderboardConfig = toml::from_str("order = \"asc\"\noperator = \"incr\"\ntop_n = 5\nreset = \"weekly\"\n[rating]\nk_factor = 24\n").expect("table");
        let spec = table.spec("weekly");
        assert_eq!((spec.order, spec.operator, spec.top_n, spec.reset), (Order::Asc, Operator::Incr, 5, Some(ResetSchedule::Weekly)));
        assert_eq!(spec.rating, Some(RatingRules { k_factor: 24, initial: 1500 }));
        assert!(table.validate("weekly").is_ok());
        assert_eq!(LeaderboardConfig::default().spec("x"), BoardSpec::new("x"));
    }
}
