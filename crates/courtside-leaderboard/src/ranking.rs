//! [`Ranking`]: the in-memory order-statistic index of one board season — every player's score
//! and the sequence at which they reached it, kept in rank order, with rank, top N, pages and
//! "around me" in O(log n).
//!
//! # Why hand-written
//! The obvious crate for a rank-indexed sorted set, `wabi_tree` (an order-statistic B-tree), is a
//! one-author 0.1 release from 2026 that pins its own dependency exactly (`smallvec = "=1.15.1"`);
//! nothing older or more used offers rank and select on a sorted set. So this is a blocked sorted
//! vector in the manner of Python's `sortedcontainers`: the entries sorted in blocks of at most
//! [`BLOCK_LEN_MAX`], each block's last key in `block_max` (binary-searched to find a block), and
//! a Fenwick tree over the block lengths (prefix sums give a block's first rank; a descent finds
//! the block holding a rank). An update is two binary searches and a `memmove` inside one block
//! (a few microseconds at a million entries); a split or merge rebuilds the Fenwick tree over the
//! blocks (a few thousand) and happens once per hundreds of updates. A `HashMap` holds each
//! player's current [`Placement`], so a player's key is found without a search.
//!
//! # Order
//! A [`SortKey`] packs the score (its order made ascending: negated for `desc` boards, without
//! overflow) and the reached-sequence into one `u128`, so "better score first, then who reached
//! it first" is a single integer comparison. Sequences are unique within a board season (the
//! service hands them out), so keys are unique.

use std::collections::HashMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A score: whole numbers only (points, ratings, counts).
pub type Score = i64;
/// The order in which players reached their scores: earlier reaches rank first among equals.
pub type Seq = u64;

/// Most entries in one block; a block that grows past it is split in two.
pub const BLOCK_LEN_MAX: usize = 1024;

/// Which scores rank first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Order {
    /// Lowest first (times, golf).
    Asc,
    /// Highest first (points, ratings).
    #[default]
    Desc,
}

impl Order {
    /// Is `candidate` a better score than `current` in this order?
    pub fn is_better(self, candidate: Score, current: Score) -> bool {
        match self {
            Order::Asc => candidate < current,
            Order::Desc => candidate > current,
        }
    }
}

/// A position in a board's order: smaller keys rank first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SortKey(u128);

impl SortKey {
    pub fn new(order: Order, score: Score, seq: Seq) -> Self {
        // Flipping the sign bit maps i64 onto u64 preserving order; `!` reverses it.
        let ascending = (score as u64) ^ (1 << 63);
        let ranked = match order {
            Order::Asc => ascending,
            Order::Desc => !ascending,
        };
        SortKey((u128::from(ranked) << 64) | u128::from(seq))
    }

    /// The score this key was made from, in a board of `order`.
    pub fn score(self, order: Order) -> Score {
        let ranked = (self.0 >> 64) as u64;
        let ascending = match order {
            Order::Asc => ranked,
            Order::Desc => !ranked,
        };
        (ascending ^ (1 << 63)) as i64
    }
}

/// A player's current score and when they reached it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    pub score: Score,
    pub seq: Seq,
}

/// A player at a rank (1 = first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ranked {
    pub player: String,
    pub score: Score,
    pub rank: u64,
}

#[derive(Debug, Clone)]
struct Item {
    key: SortKey,
    player: Arc<str>,
}

/// Sums of block lengths: a Fenwick (binary indexed) tree.
#[derive(Debug, Clone, Default)]
struct BlockSizes {
    tree: Vec<usize>,
}

impl BlockSizes {
    fn rebuild(lengths: impl Iterator<Item = usize>) -> Self {
        let mut tree: Vec<usize> = lengths.collect();
        for index in 0..tree.len() {
            let parent = index | (index + 1);
            if parent < tree.len() {
                tree[parent] += tree[index];
            }
        }
        Self { tree }
    }

    fn add(&mut self, block: usize, delta: isize) {
        let mut index = block;
        while index < self.tree.len() {
            self.tree[index] = self.tree[index].wrapping_add_signed(delta);
            index |= index + 1;
        }
    }

    /// Entries in blocks `0..block`.
    fn before(&self, block: usize) -> usize {
        let mut sum = 0;
        let mut end = block;
        while end > 0 {
            sum += self.tree[end - 1];
            end &= end - 1;
        }
        sum
    }

    /// The block holding the entry at 0-based `position`, and its index inside that block
    /// (`position` must be below the total).
    fn find(&self, position: usize) -> (usize, usize) {
        let mut block = 0;
        let mut remaining = position;
        let mut step = self.tree.len().next_power_of_two();
        while step > 0 {
            let next = block + step;
            if next <= self.tree.len() && self.tree[next - 1] <= remaining {
                block = next;
                remaining -= self.tree[next - 1];
            }
            step >>= 1;
        }
        (block, remaining)
    }
}

/// One board season's players in rank order.
#[derive(Debug, Clone)]
pub struct Ranking {
    order: Order,
    block_len_max: usize,
    blocks: Vec<Vec<Item>>,
    block_max: Vec<SortKey>,
    sizes: BlockSizes,
    players: HashMap<Arc<str>, Placement>,
}

impl Ranking {
    pub fn new(order: Order) -> Self {
        Self::with_block_len(order, BLOCK_LEN_MAX)
    }

    /// A ranking whose blocks hold at most `block_len_max` entries (tests use tiny blocks to
    /// exercise splits and merges).
    pub fn with_block_len(order: Order, block_len_max: usize) -> Self {
        Self {
            order,
            block_len_max: block_len_max.max(2),
            blocks: Vec::new(),
            block_max: Vec::new(),
            sizes: BlockSizes::default(),
            players: HashMap::new(),
        }
    }

    /// A ranking of `entries` built at once (sorting, not inserting one by one); a player listed
    /// twice keeps the later entry.
    pub fn from_entries(order: Order, entries: impl IntoIterator<Item = (Arc<str>, Placement)>) -> Self {
        let mut ranking = Self::new(order);
        for (player, placement) in entries {
            ranking.players.insert(player, placement);
        }
        let mut items: Vec<Item> = ranking
            .players
            .iter()
            .map(|(player, placement)| Item { key: SortKey::new(order, placement.score, placement.seq), player: player.clone() })
            .collect();
        items.sort_unstable_by_key(|item| item.key);
        let fill = ranking.block_len_max / 2;
        ranking.blocks = items.chunks(fill.max(1)).map(<[Item]>::to_vec).collect();
        ranking.reindex();
        ranking
    }

    pub fn order(&self) -> Order {
        self.order
    }

    pub fn len(&self) -> usize {
        self.players.len()
    }

    pub fn is_empty(&self) -> bool {
        self.players.is_empty()
    }

    pub fn get(&self, player: &str) -> Option<Placement> {
        self.players.get(player).copied()
    }

    pub fn key_of(&self, placement: Placement) -> SortKey {
        SortKey::new(self.order, placement.score, placement.seq)
    }

    /// Sets `player`'s placement; returns the previous one.
    pub fn upsert(&mut self, player: &str, placement: Placement) -> Option<Placement> {
        let previous = self.remove(player);
        let player: Arc<str> = Arc::from(player);
        self.insert_item(Item { key: self.key_of(placement), player: player.clone() });
        self.players.insert(player, placement);
        previous
    }

    /// Takes `player` off the board; returns their placement.
    pub fn remove(&mut self, player: &str) -> Option<Placement> {
        let placement = self.players.remove(player)?;
        self.remove_key(self.key_of(placement));
        Some(placement)
    }

    /// `player`'s rank (1 = first).
    pub fn rank(&self, player: &str) -> Option<u64> {
        let placement = self.players.get(player)?;
        Some(self.count_before(self.key_of(*placement)) as u64 + 1)
    }

    /// How many entries rank before `key` (whether or not `key` is on the board).
    pub fn count_before(&self, key: SortKey) -> usize {
        let block = self.block_max.partition_point(|max| *max < key);
        match self.blocks.get(block) {
            Some(items) => self.sizes.before(block) + items.partition_point(|item| item.key < key),
            None => self.len(),
        }
    }

    /// The first player, if any.
    pub fn leader(&self) -> Option<&str> {
        self.blocks.first().and_then(|block| block.first()).map(|item| &*item.player)
    }

    /// The first `n` players.
    pub fn top(&self, n: usize) -> Vec<Ranked> {
        self.page(0, n)
    }

    /// Up to `limit` players from 0-based rank position `offset` on (rank `offset + 1` first).
    pub fn page(&self, offset: usize, limit: usize) -> Vec<Ranked> {
        if offset >= self.len() || limit == 0 {
            return Vec::new();
        }
        let (block, index) = self.sizes.find(offset);
        let mut out = Vec::with_capacity(limit.min(self.len() - offset));
        let items = self.blocks[block..].iter().flatten().skip(index).take(limit);
        for (position, item) in (offset as u64 + 1..).zip(items) {
            out.push(Ranked { player: item.player.to_string(), score: item.key.score(self.order), rank: position });
        }
        out
    }

    /// `player` and up to `k` players ranked just above and `k` just below them.
    pub fn around(&self, player: &str, k: usize) -> Vec<Ranked> {
        let Some(rank) = self.rank(player) else { return Vec::new() };
        let position = (rank - 1) as usize;
        let first = position.saturating_sub(k);
        self.page(first, position - first + 1 + k)
    }

    fn insert_item(&mut self, item: Item) {
        if self.blocks.is_empty() {
            self.blocks.push(vec![item]);
            self.reindex();
            return;
        }
        let block = self.block_max.partition_point(|max| *max < item.key).min(self.blocks.len() - 1);
        let items = &mut self.blocks[block];
        let index = items.partition_point(|other| other.key < item.key);
        items.insert(index, item);
        self.block_max[block] = items[items.len() - 1].key;
        self.sizes.add(block, 1);
        if items.len() > self.block_len_max {
            let upper = items.split_off(items.len() / 2);
            self.blocks.insert(block + 1, upper);
            self.reindex();
        }
    }

    fn remove_key(&mut self, key: SortKey) {
        let block = self.block_max.partition_point(|max| *max < key);
        let Some(items) = self.blocks.get_mut(block) else { return };
        let Ok(index) = items.binary_search_by_key(&key, |item| item.key) else { return };
        items.remove(index);
        if items.is_empty() {
            self.blocks.remove(block);
            self.reindex();
            return;
        }
        self.block_max[block] = items[items.len() - 1].key;
        self.sizes.add(block, -1);
        if items.len() < self.block_len_max / 4 && self.blocks.len() > 1 {
            let left = if block + 1 < self.blocks.len() { block } else { block - 1 };
            if self.blocks[left].len() + self.blocks[left + 1].len() <= self.block_len_max {
                let right = self.blocks.remove(left + 1);
                self.blocks[left].extend(right);
                self.reindex();
            }
        }
    }

    /// Recomputes the block maxima and sizes after blocks were added, split, merged or dropped.
    fn reindex(&mut self) {
        self.block_max = self.blocks.iter().filter_map(|items| items.last().map(|item| item.key)).collect();
        self.sizes = BlockSizes::rebuild(self.blocks.iter().map(Vec::len));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Upsert(u8, i64),
        Remove(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u8..40, -6i64..6).prop_map(|(p, s)| Op::Upsert(p, s)),
            1 => (0u8..40).prop_map(Op::Remove),
        ]
    }

    /// The reference: every entry sorted plainly.
    fn sorted(order: Order, model: &HashMap<String, Placement>) -> Vec<Ranked> {
        let mut entries: Vec<_> = model.iter().collect();
        entries.sort_by(|a, b| {
            let by_score = match order {
                Order::Desc => b.1.score.cmp(&a.1.score),
                Order::Asc => a.1.score.cmp(&b.1.score),
            };
            by_score.then(a.1.seq.cmp(&b.1.seq))
        });
        entries
            .into_iter()
            .zip(1..)
            .map(|((player, placement), rank)| Ranked { player: player.clone(), score: placement.score, rank })
            .collect()
    }

    fn run(order: Order, block_len: usize, ops: &[Op]) -> (Ranking, HashMap<String, Placement>) {
        let mut ranking = Ranking::with_block_len(order, block_len);
        let mut model = HashMap::new();
        for (seq, op) in (1u64..).zip(ops) {
            match op {
                Op::Upsert(player, score) => {
                    let player = format!("p{player}");
                    let placement = Placement { score: *score, seq };
                    assert_eq!(ranking.upsert(&player, placement), model.insert(player, placement));
                }
                Op::Remove(player) => {
                    let player = format!("p{player}");
                    assert_eq!(ranking.remove(&player), model.remove(&player));
                }
            }
        }
        (ranking, model)
    }

    proptest! {
        #[test]
        fn queries_equal_a_plain_sort(
            ops in proptest::collection::vec(op(), 0..300),
            desc in any::<bool>(),
            block_len in 2usize..9,
            offset in 0usize..50,
            limit in 0usize..50,
            k in 0usize..6,
        ) {
            let order = if desc { Order::Desc } else { Order::Asc };
            let (ranking, model) = run(order, block_len, &ops);
            let expected = sorted(order, &model);
            prop_assert_eq!(ranking.len(), expected.len());
            prop_assert_eq!(ranking.top(usize::MAX), expected.clone());
            prop_assert_eq!(ranking.top(limit), expected.iter().take(limit).cloned().collect::<Vec<_>>());
            prop_assert_eq!(ranking.page(offset, limit), expected.iter().skip(offset).take(limit).cloned().collect::<Vec<_>>());
            prop_assert_eq!(ranking.leader(), expected.first().map(|r| r.player.as_str()));
            for entry in &expected {
                prop_assert_eq!(ranking.rank(&entry.player), Some(entry.rank));
                let position = (entry.rank - 1) as usize;
                let first = position.saturating_sub(k);
                let around: Vec<Ranked> = expected[first..(position + k + 1).min(expected.len())].to_vec();
                prop_assert_eq!(ranking.around(&entry.player, k), around);
            }
            prop_assert_eq!(ranking.rank("nobody"), None);
            let rebuilt = Ranking::from_entries(order, model.iter().map(|(p, pl)| (Arc::from(p.as_str()), *pl)));
            prop_assert_eq!(rebuilt.top(usize::MAX), expected);
        }
    }

    #[test]
    fn extreme_scores_keep_their_order() {
        let mut desc = Ranking::new(Order::Desc);
        let mut asc = Ranking::new(Order::Asc);
        for (seq, score) in (1u64..).zip([i64::MIN, -1, 0, 1, i64::MAX]) {
            desc.upsert(&format!("s{score}"), Placement { score, seq });
            asc.upsert(&format!("s{score}"), Placement { score, seq });
        }
        let scores = |r: &Ranking| r.top(10).into_iter().map(|e| e.score).collect::<Vec<_>>();
        assert_eq!(scores(&desc), [i64::MAX, 1, 0, -1, i64::MIN]);
        assert_eq!(scores(&asc), [i64::MIN, -1, 0, 1, i64::MAX]);
    }

    #[test]
    fn ties_go_to_who_reached_the_score_first() {
        let mut ranking = Ranking::new(Order::Desc);
        ranking.upsert("late", Placement { score: 10, seq: 5 });
        ranking.upsert("early", Placement { score: 10, seq: 2 });
        ranking.upsert("low", Placement { score: 3, seq: 1 });
        assert_eq!(ranking.rank("early"), Some(1));
        assert_eq!(ranking.rank("late"), Some(2));
        assert_eq!(ranking.rank("low"), Some(3));
    }

    #[test]
    fn many_entries_split_and_merge_blocks() {
        let mut ranking = Ranking::with_block_len(Order::Desc, 16);
        for i in 0..2_000i64 {
            ranking.upsert(&format!("p{i}"), Placement { score: (i * 7919) % 1000, seq: i as u64 });
        }
        assert!(ranking.blocks.len() > 100);
        for i in (0..2_000i64).filter(|i| i % 3 != 0) {
            ranking.remove(&format!("p{i}"));
        }
        assert_eq!(ranking.len(), 667);
        assert!(ranking.blocks.iter().all(|b| !b.is_empty() && b.len() <= 16));
        let top = ranking.top(usize::MAX);
        assert!(top.windows(2).all(|w| w[0].score >= w[1].score));
        assert_eq!(ranking.rank(&top[500].player), Some(501));
    }
}
