//! The records of a tournament as they are stored and sent: tournaments (seed 001 calls them
//! events), divisions, teams, courts, matches, scores, claims, announcements. Plain data with
//! serde (camelCase JSON, as seed 001's API); the rules live in [`crate::scoring`],
//! [`crate::conflict`] and [`crate::claim`].

use serde::{Deserialize, Serialize};

use crate::claim::Claim;
use crate::conflict::{ConflictKind, StoredRevision};
use crate::scoring::{MatchStatus, ScoreState, ScoringFormat, SetScore};

/// Longest id of a tournament, division, team, court or match.
pub const ID_LEN_MAX: usize = 64;

/// Why an id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} id {id:?} must be 1 to {ID_LEN_MAX} letters, digits, `_` or `-`")]
pub struct InvalidId {
    pub what: &'static str,
    pub id: String,
}

/// Checks an id: it becomes part of channel names, so only letters, digits, `_` and `-`.
pub fn check_id(what: &'static str, id: &str) -> Result<(), InvalidId> {
    let valid = (1..=ID_LEN_MAX).contains(&id.len())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if valid { Ok(()) } else { Err(InvalidId { what, id: id.to_string() }) }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Tournament {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 200, pattern = "[^ \t\r\n]")]
    pub name: String,
    /// The format matches get when they name none.
    #[serde(default)]
    pub default_format: Option<ScoringFormat>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Division {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 200, pattern = "[^ \t\r\n]")]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Team {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 200, pattern = "[^ \t\r\n]")]
    pub name: String,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub division_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Court {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 200, pattern = "[^ \t\r\n]")]
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Match {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub id: String,
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub division_id: String,
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub home_team_id: String,
    /// Not the home team.
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub away_team_id: String,
    #[serde(default)]
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub court_id: Option<String>,
    #[serde(default)]
    pub scheduled_at_ms: Option<i64>,
    /// The tournament's default when absent.
    #[serde(default)]
    pub format: Option<ScoringFormat>,
}

/// A match's current score as stored and published.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoreRecord {
    pub tournament_id: String,
    pub match_id: String,
    pub division_id: String,
    pub home_team_id: String,
    pub away_team_id: String,
    pub court_id: Option<String>,
    pub sets: Vec<SetScore>,
    pub status: MatchStatus,
    pub state: ScoreState,
    pub version: u64,
    pub updated_at_ms: i64,
    pub updated_by: String,
}

impl ScoreRecord {
    pub fn revision(&self) -> StoredRevision {
        StoredRevision { version: self.version, updated_at_ms: self.updated_at_ms }
    }
}

/// One accepted change of a match's score: who, when, what it became. A correction is a new
/// entry, never an edit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoreChange {
    pub version: u64,
    pub at_ms: i64,
    pub by: String,
    pub previous_sets: Vec<SetScore>,
    pub sets: Vec<SetScore>,
    pub previous_status: MatchStatus,
    pub status: MatchStatus,
    /// The client's operation id, when it sent one.
    pub op_id: Option<String>,
}

/// A crossing of score edits, kept for the director.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ConflictEntry {
    pub match_id: String,
    pub kind: ConflictKind,
    pub at_ms: i64,
    pub editor: String,
    pub edit_time_ms: i64,
    pub server_version: u64,
    pub server_updated_at_ms: i64,
    pub sets_sent: Vec<SetScore>,
}

/// A match's claim state: the live claim, if any, and the highest fencing token ever issued.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClaimState {
    pub claim: Option<Claim>,
    pub last_token: u64,
}

/// How urgent an announcement is (seed 000). A critical one is delivered ahead of everything
/// queued for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Priority {
    Critical,
    High,
    #[default]
    Normal,
    Low,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Announcement {
    pub id: String,
    pub tournament_id: String,
    pub priority: Priority,
    pub title: String,
    #[serde(default)]
    pub body: String,
    pub at_ms: i64,
    pub by: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_channel_safe() {
        for good in ["7", "court-12", "U18_girls", &"a".repeat(ID_LEN_MAX)] {
            assert!(check_id("match", good).is_ok(), "{good}");
        }
        for bad in ["", "a:b", "a b", "é", &"a".repeat(ID_LEN_MAX + 1)] {
            assert_eq!(check_id("match", bad), Err(InvalidId { what: "match", id: bad.to_string() }));
        }
    }
}
