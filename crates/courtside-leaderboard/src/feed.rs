//! What clients follow of a board: its public channel `leaderboard:{board}` (see
//! [`crate::layout`]) — the top-N view under the key `top`, rewritten by
//! [`LeaderboardService::publish_top`] when it changed (the caller decides how often: that is the
//! conflation), and one unkeyed [`FeedMessage::MatchResult`] per match result, written in the
//! same group as the ratings it moved (so a result is never seen without its ratings, nor the
//! reverse).
//!
//! The view is compare-and-appended against the public channel's position, and a node publishes
//! only a view of a later season offset than the stored one: nodes sharing a store that both
//! publish never store an older view over a newer one (a node that lost the race, or has not
//! caught up, re-reads the stored view and stays quiet).

use std::collections::{BTreeMap, HashMap};

use bytes::Bytes;
use courtside_core::store::{AppendGroup, AppendRequest, ExpectedPosition, Retention, StoreError};
use courtside_core::stream::{Publication, StreamPosition};
use serde::{Deserialize, Serialize};

use crate::elo::{MatchResult, Outcome};
use crate::layout::{self, StoredEntry, TOP_KEY};
use crate::ranking::{Ranked, Score};
use crate::season::CorruptEntry;
use crate::service::{LeaderboardError, LeaderboardService};

/// How often a view is tried again after another node moved the public channel.
const PUBLISH_ATTEMPTS: usize = 4;

/// A publication on a board's public channel (`type` says which).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum FeedMessage {
    /// The board's current top N (key `top`).
    #[serde(rename = "TOP")]
    Top(TopView),
    /// A recorded match result of a ratings board (unkeyed).
    #[serde(rename = "MATCH_RESULT")]
    MatchResult(MatchPublished),
}

/// A board's leading players as of one position of its current season.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopView {
    pub board: String,
    pub season: String,
    /// Players on the board this season.
    pub total: u64,
    /// The first `topN` players, in rank order.
    pub entries: Vec<Ranked>,
    pub leader: Option<String>,
    /// Set when `leader` differs from the previous view's.
    pub new_leader: bool,
    /// What moved within the top N since the previous view, in rank order.
    pub changes: Vec<TopChange>,
    /// The season channel offset this view reflects.
    pub offset: u64,
    /// When the view was taken (milliseconds since the Unix epoch).
    pub time: i64,
}

/// How a player of the top N differs from the previous view.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ChangeKind {
    /// First place changed hands: this is the new leader.
    NewLeader,
    /// New in the top N, or their score moved.
    ScoreUpdate,
    /// Same score, another rank (someone moved past them, or they passed someone who left).
    RankChange,
}

/// One player of the top N who moved since the previous view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TopChange {
    #[serde(rename = "type")]
    pub kind: ChangeKind,
    pub player: String,
    pub score: Score,
    pub rank: u64,
    /// `None`: not in the previous view.
    pub previous_score: Option<Score>,
    pub previous_rank: Option<u64>,
}

/// The moves from `before` (the previous view's entries) to `after`.
pub fn top_changes(before: &[Ranked], after: &[Ranked], new_leader: bool) -> Vec<TopChange> {
    let before: HashMap<&str, &Ranked> = before.iter().map(|ranked| (ranked.player.as_str(), ranked)).collect();
    after
        .iter()
        .filter_map(|now| {
            let then = before.get(now.player.as_str());
            let kind = if new_leader && now.rank == 1 {
                ChangeKind::NewLeader
            } else if then.is_none_or(|then| then.score != now.score) {
                ChangeKind::ScoreUpdate
            } else if then.is_some_and(|then| then.rank != now.rank) {
                ChangeKind::RankChange
            } else {
                return None;
            };
            Some(TopChange {
                kind,
                player: now.player.clone(),
                score: now.score,
                rank: now.rank,
                previous_score: then.map(|then| then.score),
                previous_rank: then.map(|then| then.rank),
            })
        })
        .collect()
}

/// A match result as followers see it (seed 003's `match:result`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchPublished {
    pub board: String,
    pub season: String,
    /// The result's operation id, when it had one.
    pub match_id: Option<String>,
    pub first: Vec<String>,
    pub second: Vec<String>,
    pub outcome: Outcome,
    /// The players of the winning side (empty on a draw).
    pub winners: Vec<String>,
    /// The winner, when the winning side is one player.
    pub winner_id: Option<String>,
    /// Player → signed rating change.
    pub elo_changes: BTreeMap<String, i64>,
    /// Player → rating after the match.
    pub ratings: BTreeMap<String, Score>,
}

/// What this node last saw of a board's public channel.
#[derive(Debug, Clone)]
pub(crate) struct FeedState {
    /// The public channel's position when `view` was read or written.
    position: StreamPosition,
    view: Option<TopView>,
}

impl FeedMessage {
    pub fn to_bytes(&self) -> Bytes {
        // Our own types serialise infallibly.
        Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}

/// The public publication for a match result whose entries (one per player, keyed by player)
/// are `written`.
pub(crate) fn match_request(
    board: &str,
    season: &str,
    result: &MatchResult,
    match_id: Option<&str>,
    written: &[AppendRequest],
    retention: Retention,
) -> Result<AppendRequest, LeaderboardError> {
    let mut elo_changes = BTreeMap::new();
    let mut ratings = BTreeMap::new();
    for request in written {
        let entry: StoredEntry = serde_json::from_slice(&request.data)
            .map_err(|error| CorruptEntry { channel: request.channel.to_string(), offset: 0, reason: error.to_string() })?;
        if let Some(player) = &request.key {
            elo_changes.insert(player.clone(), entry.elo.unwrap_or(0));
            ratings.insert(player.clone(), entry.score);
        }
    }
    let winners = match result.outcome {
        Outcome::First => result.first.clone(),
        Outcome::Second => result.second.clone(),
        Outcome::Draw => Vec::new(),
    };
    let message = FeedMessage::MatchResult(MatchPublished {
        board: board.to_string(),
        season: season.to_string(),
        match_id: match_id.map(str::to_string),
        first: result.first.clone(),
        second: result.second.clone(),
        outcome: result.outcome,
        winner_id: (winners.len() == 1).then(|| winners[0].clone()),
        winners,
        elo_changes,
        ratings,
    });
    Ok(AppendRequest {
        channel: layout::public_channel(board)?,
        data: message.to_bytes(),
        key: None,
        remove_key: false,
        event: None,
        idempotency_key: None,
        retention,
    })
}

impl LeaderboardService {
    /// Writes `board`'s top-N view of its current season to `leaderboard:{board}` if it differs
    /// from the stored one (players, scores, ranks or total); returns whether it wrote. Without
    /// public channels (no retention configured) it does nothing.
    pub async fn publish_top(&self, board: &str) -> Result<bool, LeaderboardError> {
        let Some(retention) = self.public_retention() else { return Ok(false) };
        let spec = self.board(board)?;
        let channel = layout::public_channel(board)?;
        let slot = self.current_slot(board).await?;
        for _ in 0..PUBLISH_ATTEMPTS {
            let state = match self.feed_state(board) {
                Some(state) => state,
                None => self.load_feed_state(board).await?,
            };
            let mut view = {
                let index = slot.index.read();
                TopView {
                    board: index.board.clone(),
                    season: index.season.clone(),
                    total: index.ranking.len() as u64,
                    entries: index.ranking.top(spec.top_n as usize),
                    leader: index.ranking.leader().map(str::to_string),
                    new_leader: false,
                    changes: Vec::new(),
                    offset: index.position.offset,
                    time: self.now_ms(),
                }
            };
            match &state.view {
                // Unchanged, or another node already stored a view as new as this one (or newer:
                // this node has not caught up yet) — an older view never replaces a newer one.
                Some(stored) if stored.season == view.season && (stored.offset >= view.offset || (stored.total, &stored.entries) == (view.total, &view.entries)) => {
                    return Ok(false);
                }
                // Nothing on the board yet: no view to show.
                None if view.total == 0 => return Ok(false),
                _ => {}
            }
            let stored_leader = state.view.as_ref().and_then(|stored| stored.leader.as_ref());
            view.new_leader = view.leader.is_some() && view.leader.as_ref() != stored_leader;
            let before = state.view.as_ref().filter(|stored| stored.season == view.season).map_or(&[][..], |stored| &stored.entries[..]);
            view.changes = top_changes(before, &view.entries, view.new_leader);
            let request = AppendRequest {
                channel: channel.clone(),
                data: FeedMessage::Top(view.clone()).to_bytes(),
                key: Some(TOP_KEY.to_string()),
                remove_key: false,
                event: None,
                idempotency_key: None,
                retention,
            };
            let expected = vec![ExpectedPosition { channel: channel.clone(), position: state.position.clone() }];
            match self.store().append_group(AppendGroup { requests: vec![request], expected }).await {
                Ok(appended) => {
                    let position = appended
                        .last()
                        .map(|a| StreamPosition { epoch: a.publication.epoch.clone(), offset: a.publication.offset })
                        .unwrap_or(state.position);
                    self.set_feed_state(board, FeedState { position, view: Some(view) });
                    return Ok(true);
                }
                Err(StoreError::Conflict(_)) => self.forget_feed_state(board),
                Err(error) => return Err(error.into()),
            }
        }
        Err(LeaderboardError::Contended)
    }

    /// This node appended `written` (match results) to the board's public channel: when they
    /// directly follow the position remembered, it moves past them, so the next view is not
    /// refused as if another node had written.
    pub(crate) fn feed_moved(&self, board: &str, written: &[Publication]) {
        let (Some(first), Some(last)) = (written.first(), written.last()) else { return };
        let Some(mut state) = self.feed_state(board) else { return };
        if state.position.epoch == first.epoch && state.position.offset + 1 == first.offset {
            state.position = StreamPosition { epoch: last.epoch.clone(), offset: last.offset };
            self.set_feed_state(board, state);
        }
    }

    /// The stored view and the public channel's position, remembered for the next publish.
    async fn load_feed_state(&self, board: &str) -> Result<FeedState, LeaderboardError> {
        let channel = layout::public_channel(board)?;
        let snapshot = self.store().snapshot(&channel).await?;
        let view = match snapshot.entries.iter().find(|p| p.key.as_deref() == Some(TOP_KEY) && !p.removed) {
            Some(stored) => match serde_json::from_slice::<FeedMessage>(&stored.data) {
                Ok(FeedMessage::Top(view)) => Some(view),
                // Anything else under `top` (an official's publish, say) is simply replaced.
                _ => None,
            },
            None => None,
        };
        let state = FeedState { position: snapshot.position, view };
        self.set_feed_state(board, state.clone());
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ranked(player: &str, score: Score, rank: u64) -> Ranked {
        Ranked { player: player.into(), score, rank }
    }

    #[test]
    fn changes_name_each_kind_of_move() {
        let before = [ranked("ana", 30, 1), ranked("bo", 20, 2), ranked("cy", 10, 3)];
        let after = [ranked("cy", 40, 1), ranked("ana", 30, 2), ranked("dee", 25, 3)];
        let changes = top_changes(&before, &after, true);
        let summary: Vec<(ChangeKind, &str, Option<u64>)> = changes.iter().map(|c| (c.kind, c.player.as_str(), c.previous_rank)).collect();
        assert_eq!(
            summary,
            [(ChangeKind::NewLeader, "cy", Some(3)), (ChangeKind::RankChange, "ana", Some(1)), (ChangeKind::ScoreUpdate, "dee", None)]
        );
        assert!(top_changes(&after, &after, false).is_empty(), "an unchanged view has no changes");
    }

    #[test]
    fn messages_carry_their_type() {
        let view = TopView {
            board: "global".into(),
            season: "all".into(),
            total: 1,
            entries: vec![Ranked { player: "ana".into(), score: 10, rank: 1 }],
            leader: Some("ana".into()),
            new_leader: true,
            changes: top_changes(&[], &[Ranked { player: "ana".into(), score: 10, rank: 1 }], true),
            offset: 4,
            time: 7,
        };
        let json: serde_json::Value = serde_json::from_slice(&FeedMessage::Top(view.clone()).to_bytes()).expect("json");
        assert_eq!(json["type"], "TOP");
        assert_eq!(json["newLeader"], true);
        assert_eq!(json["changes"][0]["type"], "NEW_LEADER");
        assert_eq!(serde_json::from_value::<FeedMessage>(json).expect("back"), FeedMessage::Top(view));
    }
}
