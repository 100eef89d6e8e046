//! Where leaderboards live in the stream store, and the record each publication carries.
//!
//! Internal channels (namespaces starting with `_`, which the server reserves: no client can
//! subscribe or publish):
//! - `_leaderboards:all` — keyed by board id: the boards created through the API.
//! - `_leaderboard:{board}:{season}` — one board season, keyed by player: the latest publication
//!   per player is their current [`StoredEntry`] (score and reached-sequence), so a snapshot is
//!   the whole board; its history (the newest [`HISTORY_KEPT`] publications) is what another
//!   node catches up from and what remembers operation ids. Its position is what every write
//!   expects, so nodes sharing a store agree on one order.
//!
//! Public channels (the `leaderboard` namespace, which clients follow):
//! - `leaderboard:{board}` — keyed: under [`TOP_KEY`] the board's current top N
//!   ([`crate::feed::TopView`]), rewritten at most once per push interval; unkeyed, each match
//!   result of a ratings board ([`crate::feed::MatchPublished`]), stored in the same group as the
//!   ratings it moved.

use courtside_core::channel::ChannelName;
use courtside_core::store::Retention;
use serde::{Deserialize, Serialize};

use crate::ranking::{Score, Seq};

/// The namespace of board seasons.
pub const BOARD_NAMESPACE: &str = "_leaderboard";
/// Publications a board season keeps in history: the window in which another node catches up
/// without reloading the snapshot, and in which a retried operation id is recognised.
pub const HISTORY_KEPT: u64 = 200_000;

/// What a board season's channel keeps.
pub const BOARD_RETENTION: Retention = Retention { history_size: HISTORY_KEPT, history_ttl_secs: 0, keyed: true };
/// The registry of created boards keeps everything.
pub const REGISTRY_RETENTION: Retention = Retention { history_size: u64::MAX, history_ttl_secs: 0, keyed: true };

/// The namespace of the channels clients follow.
pub const PUBLIC_NAMESPACE: &str = "leaderboard";
/// The key of the top-N view in a board's public channel.
pub const TOP_KEY: &str = "top";

/// Why a channel name could not be made (ids are checked first, so this is a bug, not input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no valid channel name for board {board:?} season {season:?}")]
pub struct LayoutError {
    pub board: String,
    pub season: String,
}

/// `_leaderboards:all`
pub fn registry() -> ChannelName {
    ChannelName::parse("_leaderboards:all").unwrap_or_else(|_| unreachable!("a literal valid name"))
}

/// `_leaderboard:{board}:{season}`; the board id and season name must have been checked.
pub fn season_channel(board: &str, season: &str) -> Result<ChannelName, LayoutError> {
    ChannelName::parse(&format!("{BOARD_NAMESPACE}:{board}:{season}"))
        .map_err(|_| LayoutError { board: board.to_string(), season: season.to_string() })
}

/// `leaderboard:{board}`; the board id must have been checked.
pub fn public_channel(board: &str) -> Result<ChannelName, LayoutError> {
    ChannelName::parse(&format!("{PUBLIC_NAMESPACE}:{board}")).map_err(|_| LayoutError { board: board.to_string(), season: String::new() })
}

/// The board and season a board-season channel names, if it is one.
pub fn parse_season_channel(channel: &ChannelName) -> Option<(&str, &str)> {
    let mut segments = channel.as_str().split(':');
    match (segments.next(), segments.next(), segments.next(), segments.next()) {
        (Some(BOARD_NAMESPACE), Some(board), Some(season), None) => Some((board, season)),
        _ => None,
    }
}

/// A player's entry as stored: the latest per player is their place on the board.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredEntry {
    pub score: Score,
    /// When the player reached `score`: ties go to the smaller.
    pub seq: Seq,
    /// The operation (submit or match result) that wrote this entry, if it carried an id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    /// The rating change, when a match result wrote this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub elo: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn season_channels_round_trip() {
        let channel = season_channel("weekly-kills", "2026-W49").expect("name");
        assert_eq!(channel.as_str(), "_leaderboard:weekly-kills:2026-W49");
        assert_eq!(parse_season_channel(&channel), Some(("weekly-kills", "2026-W49")));
        assert_eq!(parse_season_channel(&registry()), None);
        let longest = "x".repeat(crate::board::BOARD_ID_LEN_MAX);
        assert!(season_channel(&longest, "2026-12-05").is_ok());
        assert!(season_channel("a b", "all").is_err());
    }
}
