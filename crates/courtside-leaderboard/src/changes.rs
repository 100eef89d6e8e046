//! Rank changes: when one player's score moves them from one place to another, which of the
//! players who are *listening* (registered for rank pushes) changed rank, and from what to what.
//!
//! Everyone strictly between the mover's old and new places shifts by one; nobody else moves.
//! So [`Listeners`] keeps the listening players ordered by their [`SortKey`], and a move reads
//! only the listeners between the two keys: one score costs O(log L + affected listeners × log n),
//! never the size of the board — a score jumping from last to first in a board of a million
//! touches only the listeners it passes.

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ranking::{Ranking, Score, SortKey};

/// A listening player whose rank changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RankChange {
    pub player: String,
    pub old_rank: u64,
    pub new_rank: u64,
    /// Their score (unchanged: someone else moved past them).
    pub score: Score,
}

/// The players registered for rank pushes on one board season, ordered by their place.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    /// Every listening player, with their key if they are on the board.
    listening: HashMap<Arc<str>, Option<SortKey>>,
    /// The listening players who are on the board, by key.
    by_key: BTreeMap<SortKey, Arc<str>>,
}

impl Listeners {
    pub fn len(&self) -> usize {
        self.listening.len()
    }

    pub fn is_empty(&self) -> bool {
        self.listening.is_empty()
    }

    /// Every listening player.
    pub fn players(&self) -> impl Iterator<Item = &str> {
        self.listening.keys().map(|player| &**player)
    }

    pub fn is_listening(&self, player: &str) -> bool {
        self.listening.contains_key(player)
    }

    /// Registers `player` (whether or not they are on `ranking` yet).
    pub fn listen(&mut self, player: &str, ranking: &Ranking) {
        let key = ranking.get(player).map(|placement| ranking.key_of(placement));
        let player: Arc<str> = Arc::from(player);
        if let Some(Some(old)) = self.listening.insert(player.clone(), key) {
            self.by_key.remove(&old);
        }
        if let Some(key) = key {
            self.by_key.insert(key, player);
        }
    }

    pub fn unlisten(&mut self, player: &str) {
        if let Some(Some(key)) = self.listening.remove(player) {
            self.by_key.remove(&key);
        }
    }

    /// Re-reads every listener's key from `ranking` (after it was rebuilt).
    pub fn rekey(&mut self, ranking: &Ranking) {
        self.by_key.clear();
        for (player, key) in &mut self.listening {
            *key = ranking.get(player).map(|placement| ranking.key_of(placement));
            if let Some(key) = key {
                self.by_key.insert(*key, player.clone());
            }
        }
    }

    /// `mover` moved from `old` to `new` (`None`: not on the board) and `ranking` already holds
    /// the move: the listening players other than `mover` whose rank changed.
    pub fn moved(&mut self, mover: &str, old: Option<SortKey>, new: Option<SortKey>, ranking: &Ranking) -> Vec<RankChange> {
        if let Some(key) = self.listening.get_mut(mover) {
            *key = new;
            if let Some(old) = old {
                self.by_key.remove(&old);
            }
            if let (Some(new), Some((player, _))) = (new, self.listening.get_key_value(mover)) {
                self.by_key.insert(new, player.clone());
            }
        }
        // (range of keys passed, +1: they fell a place / -1: they rose one)
        let (range, fell): ((Bound<SortKey>, Bound<SortKey>), bool) = match (old, new) {
            (Some(old), Some(new)) if new < old => ((Bound::Excluded(new), Bound::Excluded(old)), true),
            (Some(old), Some(new)) if new > old => ((Bound::Excluded(old), Bound::Excluded(new)), false),
            (None, Some(new)) => ((Bound::Excluded(new), Bound::Unbounded), true),
            (Some(old), None) => ((Bound::Excluded(old), Bound::Unbounded), false),
            _ => return Vec::new(),
        };
        self.by_key
            .range(range)
            .map(|(key, player)| {
                let new_rank = ranking.count_before(*key) as u64 + 1;
                let old_rank = if fell { new_rank - 1 } else { new_rank + 1 };
                let score = ranking.get(player).map_or(0, |placement| placement.score);
                RankChange { player: player.to_string(), old_rank, new_rank, score }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ranking::{Order, Placement};
    use proptest::prelude::*;

    fn ranks(ranking: &Ranking) -> HashMap<String, u64> {
        ranking.top(usize::MAX).into_iter().map(|r| (r.player, r.rank)).collect()
    }

    proptest! {
        #[test]
        fn changes_equal_a_diff_of_two_sorts(
            scores in proptest::collection::vec(proptest::option::of(-5i64..5), 1..40),
            listening in proptest::collection::vec(any::<bool>(), 40),
            mover in 0usize..45,
            new_score in proptest::option::of(-6i64..6),
            rounds in 1usize..4,
        ) {
            let mut ranking = Ranking::with_block_len(Order::Desc, 4);
            let mut seq = 0u64;
            for (i, score) in scores.iter().enumerate() {
                if let Some(score) = score {
                    seq += 1;
                    ranking.upsert(&format!("p{i}"), Placement { score: *score, seq });
                }
            }
            let mut listeners = Listeners::default();
            for (i, on) in listening.iter().enumerate() {
                if *on { listeners.listen(&format!("p{i}"), &ranking); }
            }
            // Several moves in a row, so the mover's own listener key is kept up to date too.
            for round in 0..rounds {
                let mover = format!("p{}", (mover + round * 7) % 45);
                let before = ranks(&ranking);
                let old = ranking.get(&mover).map(|p| ranking.key_of(p));
                let new = match new_score {
                    Some(score) => {
                        seq += 1;
                        let placement = Placement { score: score + round as i64, seq };
                        ranking.upsert(&mover, placement);
                        Some(ranking.key_of(placement))
                    }
                    None => { ranking.remove(&mover); None }
                };
                let after = ranks(&ranking);
                let mut expected: Vec<RankChange> = after
                    .iter()
                    .filter(|(player, _)| **player != mover && listeners.is_listening(player))
                    .filter_map(|(player, new_rank)| {
                        let old_rank = *before.get(player)?;
                        (old_rank != *new_rank).then(|| {
                            let score = ranking.get(player).map_or(0, |p| p.score);
                            RankChange { player: player.clone(), old_rank, new_rank: *new_rank, score }
                        })
                    })
                    .collect();
                let mut changes = listeners.moved(&mover, old, new, &ranking);
                expected.sort_by(|a, b| a.player.cmp(&b.player));
                changes.sort_by(|a, b| a.player.cmp(&b.player));
                prop_assert_eq!(changes, expected);
            }
        }
    }

    #[test]
    fn a_jump_from_last_to_first_reads_only_the_listeners_passed() {
        let mut ranking = Ranking::new(Order::Desc);
        for i in 0..10_000u64 {
            ranking.upsert(&format!("p{i}"), Placement { score: i as i64, seq: i });
        }
        let mut listeners = Listeners::default();
        for player in ["p9999", "p5000", "p0", "p1"] {
            listeners.listen(player, &ranking);
        }
        let old = ranking.get("p0").map(|p| ranking.key_of(p));
        let placement = Placement { score: 1_000_000, seq: 10_000 };
        ranking.upsert("p0", placement);
        let changes = listeners.moved("p0", old, Some(ranking.key_of(placement)), &ranking);
        let summary: Vec<(String, u64, u64)> = changes.into_iter().map(|c| (c.player, c.old_rank, c.new_rank)).collect();
        assert_eq!(summary, [("p9999".into(), 1, 2), ("p5000".into(), 5000, 5001), ("p1".into(), 9999, 10_000)]);
        listeners.unlisten("p9999");
        assert_eq!(listeners.len(), 3);
    }
}
