//! [`SeasonIndex`]: one board season as this node knows it — the ranking, the listening
//! players, the operation ids seen recently, and the store position all of it is current as of —
//! and the two steps of a write: [`SeasonIndex::prepare`] turns a batch of operations into the
//! publications to append (pure: nothing changes until the store accepted them), and
//! [`SeasonIndex::apply`] applies a committed publication, whether this node wrote it or another
//! one did (caught up from history), so every node's index is the same function of the stream.

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use courtside_core::channel::ChannelName;
use courtside_core::store::AppendRequest;
use courtside_core::stream::{Publication, StreamPosition};
use serde::Serialize;

use crate::board::{self, BoardSpec, ScoreError};
use crate::changes::{Listeners, RankChange};
use crate::elo::{self, EloError, MatchResult, RatingRules};
use crate::layout::{BOARD_RETENTION, HISTORY_KEPT, StoredEntry};
use crate::ranking::{Placement, Ranking, Score, Seq};

/// One player's move on a board: what a submit answers and what is pushed to listeners.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ScoreUpdate {
    pub board: String,
    pub season: String,
    pub player: String,
    pub score: Score,
    pub rank: u64,
    pub previous_score: Option<Score>,
    pub previous_rank: Option<u64>,
    /// Listening players (other than `player`) whose rank changed.
    pub changes: Vec<RankChange>,
    /// Set when first place changed hands: the new leader.
    pub new_leader: Option<String>,
    /// The season channel offset of the move (of the current state, for an unchanged answer):
    /// what makes a push of it recognisable when it is retried.
    #[serde(skip)]
    pub offset: u64,
    /// The season channel's epoch (with `offset`, names the move).
    #[serde(skip)]
    pub epoch: courtside_core::stream::Epoch,
    /// Whether `player` is listening for rank pushes.
    #[serde(skip)]
    pub listening: bool,
    /// The rating change, when a match result made this move.
    #[serde(skip)]
    pub rating_change: Option<i64>,
}

/// An operation queued for a board season.
#[derive(Debug, Clone)]
pub enum Operation {
    Submit { player: String, value: Score },
    Match { result: MatchResult, rules: RatingRules },
}

/// An operation and its id (a retry with the same id is recognised and changes nothing).
#[derive(Debug, Clone)]
pub struct Queued {
    pub operation: Operation,
    pub op_id: Option<String>,
}

/// One entry an operation writes: player, new score, rating change (match results).
type Write<'a> = (&'a str, Score, Option<i64>);

/// What [`SeasonIndex::prepare`] decided for one operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Written by the publications `first..end` of the batch.
    Writes { first: usize, end: usize },
    /// Its id was applied before: answer from the current state.
    Duplicate,
    Refused(PlanError),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(transparent)]
    Score(#[from] ScoreError),
    #[error(transparent)]
    Elo(#[from] EloError),
}

/// Recently applied operation ids (hashed), oldest first, with the rating changes of match
/// results (so a retried result gets its first answer).
#[derive(Debug, Default)]
struct RecentOps {
    order: VecDeque<u64>,
    changes: HashMap<u64, Option<Arc<BTreeMap<String, i64>>>>,
}

fn op_hash(op_id: &str) -> u64 {
    // A fixed-key hasher: the same on every run; only kept in memory.
    let mut hasher = DefaultHasher::new();
    op_id.hash(&mut hasher);
    hasher.finish()
}

impl RecentOps {
    fn record(&mut self, op_id: &str, player: &str, elo: Option<i64>) {
        let hash = op_hash(op_id);
        let changes = self.changes.entry(hash).or_insert_with(|| {
            self.order.push_back(hash);
            None
        });
        if let Some(change) = elo {
            Arc::make_mut(changes.get_or_insert_with(Default::default)).insert(player.to_string(), change);
        }
        while self.order.len() as u64 > HISTORY_KEPT {
            if let Some(oldest) = self.order.pop_front() {
                self.changes.remove(&oldest);
            }
        }
    }

    fn contains(&self, op_id: &str) -> bool {
        self.changes.contains_key(&op_hash(op_id))
    }

    fn elo_changes(&self, op_id: &str) -> Option<Arc<BTreeMap<String, i64>>> {
        self.changes.get(&op_hash(op_id)).cloned().flatten()
    }
}

/// One board season as this node knows it.
#[derive(Debug)]
pub struct SeasonIndex {
    pub board: String,
    pub season: String,
    pub channel: ChannelName,
    pub ranking: Ranking,
    pub listeners: Listeners,
    recent: RecentOps,
    /// The store position everything here is current as of.
    pub position: StreamPosition,
    /// The largest reached-sequence handed out.
    max_seq: Seq,
}

/// Why a stored entry could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{channel} offset {offset}: unreadable entry: {reason}")]
pub struct CorruptEntry {
    pub channel: String,
    pub offset: u64,
    pub reason: String,
}

fn decode(publication: &Publication) -> Result<(&str, StoredEntry), CorruptEntry> {
    let corrupt = |reason: String| CorruptEntry { channel: publication.channel.to_string(), offset: publication.offset, reason };
    let player = publication.key.as_deref().ok_or_else(|| corrupt("no key".into()))?;
    let entry = serde_json::from_slice(&publication.data).map_err(|error| corrupt(error.to_string()))?;
    Ok((player, entry))
}

impl SeasonIndex {
    /// A season built from the store's keyed state (`entries`, current as of `position`) and the
    /// newest history (`recent`, for the operation ids).
    pub fn load(
        spec: &BoardSpec,
        season: &str,
        channel: ChannelName,
        entries: &[Publication],
        position: StreamPosition,
        recent: &[Publication],
    ) -> Result<Self, CorruptEntry> {
        let mut placements = Vec::with_capacity(entries.len());
        let mut max_seq = 0;
        for publication in entries.iter().filter(|p| !p.removed) {
            let (player, entry) = decode(publication)?;
            max_seq = max_seq.max(entry.seq);
            placements.push((Arc::from(player), Placement { score: entry.score, seq: entry.seq }));
        }
        let mut index = Self {
            board: spec.id.clone(),
            season: season.to_string(),
            channel,
            ranking: Ranking::from_entries(spec.order, placements),
            listeners: Listeners::default(),
            recent: RecentOps::default(),
            position,
            max_seq,
        };
        for publication in recent.iter().filter(|p| p.epoch == index.position.epoch && p.offset <= index.position.offset) {
            let (player, entry) = decode(publication)?;
            if let Some(op) = &entry.op {
                index.recent.record(op, player, entry.elo);
            }
        }
        Ok(index)
    }

    /// Replaces the ranking and ids with a reload's, keeping the listeners.
    pub fn replace_with(&mut self, mut reloaded: SeasonIndex) {
        std::mem::swap(&mut reloaded.listeners, &mut self.listeners);
        *self = reloaded;
        self.listeners.rekey(&self.ranking);
    }

    /// Applies one committed publication of this season's channel.
    pub fn apply(&mut self, publication: &Publication) -> Result<ScoreUpdate, CorruptEntry> {
        let (player, entry) = decode(publication)?;
        self.position = StreamPosition { epoch: publication.epoch.clone(), offset: publication.offset };
        self.max_seq = self.max_seq.max(entry.seq);
        if let Some(op) = &entry.op {
            self.recent.record(op, player, entry.elo);
        }
        let leader_before = self.ranking.leader().map(str::to_string);
        let previous = self.ranking.get(player);
        let previous_rank = self.ranking.rank(player);
        let placement = Placement { score: entry.score, seq: entry.seq };
        let old_key = previous.map(|p| self.ranking.key_of(p));
        let new_key = (!publication.removed).then(|| self.ranking.key_of(placement));
        let changes = if old_key == new_key {
            Vec::new()
        } else {
            match new_key {
                Some(_) => self.ranking.upsert(player, placement),
                None => self.ranking.remove(player),
            };
            self.listeners.moved(player, old_key, new_key, &self.ranking)
        };
        let leader_after = self.ranking.leader();
        let new_leader = (leader_after != leader_before.as_deref()).then(|| leader_after.map(str::to_string)).flatten();
        Ok(ScoreUpdate {
            board: self.board.clone(),
            season: self.season.clone(),
            player: player.to_string(),
            score: entry.score,
            rank: self.ranking.rank(player).unwrap_or(0),
            previous_score: previous.map(|p| p.score),
            previous_rank,
            changes,
            new_leader,
            offset: publication.offset,
            epoch: publication.epoch.clone(),
            listening: self.listeners.is_listening(player),
            rating_change: entry.elo,
        })
    }

    /// `player`'s current state as an update that changed nothing (the answer to a retry).
    pub fn unchanged(&self, player: &str) -> ScoreUpdate {
        let score = self.ranking.get(player).map(|p| p.score);
        let rank = self.ranking.rank(player);
        ScoreUpdate {
            board: self.board.clone(),
            season: self.season.clone(),
            player: player.to_string(),
            score: score.unwrap_or(0),
            rank: rank.unwrap_or(0),
            previous_score: score,
            previous_rank: rank,
            changes: Vec::new(),
            new_leader: None,
            offset: self.position.offset,
            epoch: self.position.epoch.clone(),
            listening: false,
            rating_change: None,
        }
    }

    pub fn elo_changes(&self, op_id: &str) -> Option<Arc<BTreeMap<String, i64>>> {
        self.recent.elo_changes(op_id)
    }

    fn staged_or_current(&self, staged: &HashMap<&str, Placement>, player: &str) -> Option<Placement> {
        staged.get(player).copied().or_else(|| self.ranking.get(player))
    }

    /// The publications that carry out `batch` on top of this index (nothing changes here), and
    /// what became of each operation.
    pub fn prepare(&self, spec: &BoardSpec, batch: &[Queued]) -> (Vec<AppendRequest>, Vec<Plan>) {
        let mut staged: HashMap<&str, Placement> = HashMap::new();
        let mut ids_in_batch: HashSet<&str> = HashSet::new();
        let mut seq = self.max_seq;
        let mut requests = Vec::new();
        let mut plans = Vec::with_capacity(batch.len());
        for queued in batch {
            let op_id = queued.op_id.as_deref();
            if let Some(id) = op_id
                && (self.recent.contains(id) || !ids_in_batch.insert(id))
            {
                plans.push(Plan::Duplicate);
                continue;
            }
            let writes: Result<Vec<Write<'_>>, PlanError> = match &queued.operation {
                Operation::Submit { player, value } => {
                    let old = self.staged_or_current(&staged, player).map(|p| p.score);
                    board::apply(spec.operator, spec.order, old, *value)
                        .map(|score| vec![(player.as_str(), score, None)])
                        .map_err(PlanError::from)
                }
                Operation::Match { result, rules } => elo::rate(rules, result, |player| self.staged_or_current(&staged, player).map(|p| p.score))
                    .map(|rated| {
                        result
                            .players()
                            .filter_map(|player| rated.get(player).map(|(change, rating)| (player.as_str(), *rating, Some(*change))))
                            .collect()
                    })
                    .map_err(PlanError::from),
            };
            let writes = match writes {
                Ok(writes) => writes,
                Err(error) => {
                    if let Some(id) = op_id {
                        ids_in_batch.remove(id);
                    }
                    plans.push(Plan::Refused(error));
                    continue;
                }
            };
            let first = requests.len();
            for (player, score, elo) in writes {
                let placement = match self.staged_or_current(&staged, player) {
                    Some(old) if old.score == score => old,
                    _ => {
                        seq += 1;
                        Placement { score, seq }
                    }
                };
                staged.insert(player, placement);
                let entry = StoredEntry { score, seq: placement.seq, op: queued.op_id.clone(), elo };
                requests.push(AppendRequest {
                    channel: self.channel.clone(),
                    // Our own record serialises infallibly.
                    data: Bytes::from(serde_json::to_vec(&entry).unwrap_or_default()),
                    key: Some(player.to_string()),
                    remove_key: false,
                    event: None,
                    idempotency_key: None,
                    retention: BOARD_RETENTION,
                });
            }
            plans.push(Plan::Writes { first, end: requests.len() });
        }
        (requests, plans)
    }
}
