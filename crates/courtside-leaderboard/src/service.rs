//! [`LeaderboardService`]: boards kept in the stream store, served from an in-memory index per
//! board season, written in batches that every node sharing the store applies in one order.
//!
//! # How a submit is written
//! 1. The submit joins its board season's queue. Whoever holds the season's flush lock drains
//!    the queue (up to [`BATCH_LEN_MAX`] operations) into one batch, so 10,000 submits a second
//!    take a few hundred store transactions, not 10,000.
//! 2. The batch is decided against the index ([`SeasonIndex::prepare`]: operators, ratings,
//!    retried ids) without changing it, and appended as one `append_group` that expects the
//!    season channel's top as the index knows it (compare-and-append).
//! 3. Accepted: the committed publications are applied to the index in offset order
//!    ([`SeasonIndex::apply`]), which yields each move's new rank, the listening players it
//!    passed and a new leader. Refused because the channel moved (another node wrote): the index
//!    catches up from the history after its top — or reloads the snapshot when that history is
//!    gone — and the batch is decided again.
//!
//! So every node's index is the same function of the channel's stream, and ranks agree on every
//! node once each has read the same offset; [`LeaderboardService::catch_up`] brings a node up to
//! date without writing (the server calls it before every read when nodes share the store).
//! Every applied move — this node's or caught up — goes to the [`UpdateSink`] once,
//! in stream order: that is what the server pushes.
//!
//! # Operation ids
//! A submit or match result may carry an id; it is stored in its publications, and an id seen
//! among the season's newest [`HISTORY_KEPT`] operations is answered from the current state
//! without writing. The store's own idempotency key is not used: it covers only a group's first
//! request and a seen key drops the whole group, which would lose the rest of a batch.
//!
//! Nothing here opens anything: the store and the clock are handed in.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use courtside_core::channel::ChannelName;
use courtside_core::store::{AppendGroup, ExpectedPosition, HistoryQuery, Retention, StoreError, StreamStore};
use courtside_core::stream::Publication;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::{OnceCell, oneshot};

use crate::board::{self, BoardSpec, ScoreError, SpecError};
use crate::elo::{EloError, MatchResult};
use crate::feed::{self, FeedState};
use crate::layout::{self, HISTORY_KEPT, LayoutError, REGISTRY_RETENTION};
use crate::ranking::{Ranked, Score};
use crate::season::{CorruptEntry, Operation, Plan, PlanError, Queued, ScoreUpdate, SeasonIndex};

/// How often a batch is decided again after the channel moved under it.
const ATTEMPTS_MAX: usize = 16;
/// Most operations written in one store transaction.
pub const BATCH_LEN_MAX: usize = 1024;
/// Most players one query returns.
pub const PAGE_LEN_MAX: usize = 1_000;
/// Longest operation id, in bytes.
pub const OP_ID_LEN_MAX: usize = 128;
/// Publications applied per hold of a season's write lock.
const APPLY_CHUNK_LEN: usize = 64;
/// Publications read per history page while catching up.
const CATCH_UP_PAGE_LEN: usize = 10_000;

/// Receives every applied move, in stream order, once per node.
pub trait UpdateSink: Send + Sync + 'static {
    fn updated(&self, update: &ScoreUpdate);
}

/// Why a request was refused or could not be served.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LeaderboardError {
    #[error("board {0} not found")]
    UnknownBoard(String),
    #[error("board {0} already exists with another spec")]
    AlreadyExists(String),
    #[error("board {0} has no rating rules")]
    NotRatings(String),
    #[error("operation id: 1 to {OP_ID_LEN_MAX} printable characters")]
    OpId,
    #[error(transparent)]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Score(#[from] ScoreError),
    #[error(transparent)]
    Elo(#[from] EloError),
    #[error("the board changed {ATTEMPTS_MAX} times while this batch was decided; retry")]
    Contended,
    #[error("the write was cut short; its outcome is unknown: retry with the same id")]
    Interrupted,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Corrupt(#[from] CorruptEntry),
    #[error(transparent)]
    Layout(#[from] LayoutError),
}

impl From<PlanError> for LeaderboardError {
    fn from(error: PlanError) -> Self {
        match error {
            PlanError::Score(error) => error.into(),
            PlanError::Elo(error) => error.into(),
        }
    }
}

/// A submit's answer: the player's move, and whether it was a retry of one already applied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Submitted {
    #[serde(flatten)]
    pub update: ScoreUpdate,
    pub duplicate: bool,
}

/// A match result's answer (seed 003's `eloChanges`: player → signed change).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MatchRecorded {
    pub board: String,
    pub season: String,
    pub elo_changes: BTreeMap<String, i64>,
    /// Every player's rating after the match.
    pub ratings: BTreeMap<String, Score>,
    pub updates: Vec<ScoreUpdate>,
    pub duplicate: bool,
}

/// Players of a board season in rank order, and how many the season has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Standings {
    pub board: String,
    pub season: String,
    pub total: u64,
    pub entries: Vec<Ranked>,
}

enum Answer {
    Submitted(Submitted),
    Match(MatchRecorded),
}

type Reply = oneshot::Sender<Result<Answer, LeaderboardError>>;

/// One loaded board season: its index, its queue and the lock its writer holds.
pub(crate) struct Slot {
    spec: BoardSpec,
    pub(crate) index: RwLock<SeasonIndex>,
    queue: Mutex<Vec<(Queued, Reply)>>,
    flush: Arc<tokio::sync::Mutex<()>>,
}

/// (board id, season name)
pub(crate) type SeasonId = (String, String);

struct Inner {
    store: Arc<dyn StreamStore>,
    clock: Box<dyn Fn() -> i64 + Send + Sync>,
    sink: Option<Arc<dyn UpdateSink>>,
    /// What the public channels (`leaderboard:{board}`) keep; `None`: none are written.
    public: Option<Retention>,
    boards: RwLock<HashMap<String, BoardSpec>>,
    slots: Mutex<HashMap<SeasonId, Arc<OnceCell<Arc<Slot>>>>>,
    /// Player → how many registrations (connections) listen on every board.
    listening: Mutex<HashMap<String, usize>>,
    /// Board → what this node last saw of its public channel.
    feeds: Mutex<HashMap<String, FeedState>>,
}

/// Leaderboards and ratings over a [`StreamStore`]; cheap to clone.
#[derive(Clone)]
pub struct LeaderboardService {
    inner: Arc<Inner>,
}

fn check_op_id(op_id: Option<&str>) -> Result<(), LeaderboardError> {
    match op_id {
        Some(id) if id.is_empty() || id.len() > OP_ID_LEN_MAX || id.chars().any(char::is_control) => Err(LeaderboardError::OpId),
        _ => Ok(()),
    }
}

impl LeaderboardService {
    /// `now_ms`: milliseconds since the Unix epoch (it picks the current season); `sink`
    /// receives every applied move.
    pub fn new(store: Arc<dyn StreamStore>, now_ms: impl Fn() -> i64 + Send + Sync + 'static, sink: Option<Arc<dyn UpdateSink>>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                clock: Box::new(now_ms),
                sink,
                public: None,
                boards: RwLock::new(HashMap::new()),
                slots: Mutex::new(HashMap::new()),
                listening: Mutex::new(HashMap::new()),
                feeds: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// Also writes each board's public channel (`leaderboard:{board}`, kept as `retention`
    /// says): match results as they are recorded, the top-N view through
    /// [`Self::publish_top`]. Call before the service is cloned.
    pub fn with_public_channels(mut self, retention: Retention) -> Self {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.public = Some(retention);
        }
        self
    }

    pub(crate) fn public_retention(&self) -> Option<Retention> {
        self.inner.public
    }

    pub(crate) fn store(&self) -> &Arc<dyn StreamStore> {
        &self.inner.store
    }

    pub(crate) fn now_ms(&self) -> i64 {
        (self.inner.clock)()
    }

    pub(crate) fn listening(&self) -> &Mutex<HashMap<String, usize>> {
        &self.inner.listening
    }

    pub(crate) fn slots(&self) -> &Mutex<HashMap<SeasonId, Arc<OnceCell<Arc<Slot>>>>> {
        &self.inner.slots
    }

    pub(crate) fn feed_state(&self, board: &str) -> Option<FeedState> {
        self.inner.feeds.lock().get(board).cloned()
    }

    pub(crate) fn set_feed_state(&self, board: &str, state: FeedState) {
        self.inner.feeds.lock().insert(board.to_string(), state);
    }

    pub(crate) fn forget_feed_state(&self, board: &str) {
        self.inner.feeds.lock().remove(board);
    }

    /// The board's current season, loaded on first use.
    pub(crate) async fn current_slot(&self, board: &str) -> Result<Arc<Slot>, LeaderboardError> {
        self.slot(board, None).await
    }

    /// Declares a board (from configuration): kept in memory; declaring the same spec again is
    /// fine, another spec under the same id is refused.
    pub fn declare(&self, spec: BoardSpec) -> Result<(), LeaderboardError> {
        spec.validate()?;
        let mut boards = self.inner.boards.write();
        match boards.get(&spec.id) {
            Some(existing) if *existing != spec => Err(LeaderboardError::AlreadyExists(spec.id)),
            _ => {
                boards.insert(spec.id.clone(), spec);
                Ok(())
            }
        }
    }

    /// Creates a board durably (`_leaderboards:all`), so every node and every restart knows it.
    pub async fn create_board(&self, spec: BoardSpec) -> Result<BoardSpec, LeaderboardError> {
        spec.validate()?;
        let registry = layout::registry();
        for _ in 0..ATTEMPTS_MAX {
            let snapshot = self.inner.store.snapshot(&registry).await?;
            if let Some(stored) = snapshot.entries.iter().find(|p| p.key.as_deref() == Some(spec.id.as_str())) {
                let stored: BoardSpec = serde_json::from_slice(&stored.data)
                    .map_err(|error| CorruptEntry { channel: registry.to_string(), offset: stored.offset, reason: error.to_string() })?;
                if stored != spec {
                    return Err(LeaderboardError::AlreadyExists(spec.id));
                }
                self.declare(stored.clone())?;
                return Ok(stored);
            }
            if self.inner.boards.read().get(&spec.id).is_some_and(|declared| *declared != spec) {
                return Err(LeaderboardError::AlreadyExists(spec.id));
            }
            let request = courtside_core::store::AppendRequest {
                channel: registry.clone(),
                data: bytes::Bytes::from(serde_json::to_vec(&spec).unwrap_or_default()),
                key: Some(spec.id.clone()),
                remove_key: false,
                event: None,
                idempotency_key: None,
                retention: REGISTRY_RETENTION,
            };
            let expected = vec![ExpectedPosition { channel: registry.clone(), position: snapshot.position }];
            match self.inner.store.append_group(AppendGroup { requests: vec![request], expected }).await {
                Ok(_) => {
                    self.declare(spec.clone())?;
                    return Ok(spec);
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(LeaderboardError::Contended)
    }

    /// Declares every board created through the API (on start); returns how many.
    pub async fn load_boards(&self) -> Result<usize, LeaderboardError> {
        let registry = layout::registry();
        let snapshot = self.inner.store.snapshot(&registry).await?;
        for stored in &snapshot.entries {
            let spec: BoardSpec = serde_json::from_slice(&stored.data)
                .map_err(|error| CorruptEntry { channel: registry.to_string(), offset: stored.offset, reason: error.to_string() })?;
            self.declare(spec)?;
        }
        Ok(snapshot.entries.len())
    }

    pub fn board(&self, board: &str) -> Result<BoardSpec, LeaderboardError> {
        self.inner.boards.read().get(board).cloned().ok_or_else(|| LeaderboardError::UnknownBoard(board.to_string()))
    }

    pub fn boards(&self) -> Vec<BoardSpec> {
        let mut boards: Vec<BoardSpec> = self.inner.boards.read().values().cloned().collect();
        boards.sort_by(|a, b| a.id.cmp(&b.id));
        boards
    }

    /// The board season `season` names (`None`: the current one), loaded on first use.
    pub(crate) async fn slot(&self, board: &str, season: Option<&str>) -> Result<Arc<Slot>, LeaderboardError> {
        let spec = self.board(board)?;
        let season = match season {
            Some(season) => {
                board::check_season(spec.reset, season)?;
                season.to_string()
            }
            None => spec.season_at((self.inner.clock)()),
        };
        let cell = self.inner.slots.lock().entry((spec.id.clone(), season.clone())).or_default().clone();
        if let Some(slot) = cell.get() {
            return Ok(slot.clone());
        }
        let slot = cell.get_or_try_init(|| self.load_slot(spec, season)).await?.clone();
        // Registrations that changed while the slot loaded (it was not visible to `listen` and
        // `unlisten` yet) are brought over now that it is.
        self.sync_listeners(&slot);
        Ok(slot)
    }

    async fn load_slot(&self, spec: BoardSpec, season: String) -> Result<Arc<Slot>, LeaderboardError> {
        let index = self.load_index(&spec, &season).await?;
        let slot = Arc::new(Slot { spec, index: RwLock::new(index), queue: Mutex::new(Vec::new()), flush: Default::default() });
        self.sync_listeners(&slot);
        Ok(slot)
    }

    /// A board season as the store holds it: the snapshot, and the newest history for ids.
    async fn load_index(&self, spec: &BoardSpec, season: &str) -> Result<SeasonIndex, LeaderboardError> {
        let channel = layout::season_channel(&spec.id, season)?;
        let snapshot = self.inner.store.snapshot(&channel).await?;
        let recent = self.inner.store.read(&channel, HistoryQuery::Latest { limit: HISTORY_KEPT as usize }).await?;
        Ok(SeasonIndex::load(spec, season, channel, &snapshot.entries, snapshot.position, &recent.publications)?)
    }

    /// Submits `value` for `player` on `board`'s current season, combined by the board's
    /// operator. `op_id` makes a retry harmless.
    pub async fn submit(&self, board: &str, player: &str, value: Score, op_id: Option<&str>) -> Result<Submitted, LeaderboardError> {
        board::check_player(player)?;
        board::check_range(value)?;
        check_op_id(op_id)?;
        let slot = self.slot(board, None).await?;
        let operation = Operation::Submit { player: player.to_string(), value };
        match self.run(slot, Queued { operation, op_id: op_id.map(str::to_string) }).await? {
            Answer::Submitted(submitted) => Ok(submitted),
            Answer::Match(_) => Err(LeaderboardError::Interrupted),
        }
    }

    /// Records a match result on a ratings board: both sides' new ratings are written in one
    /// atomic group.
    pub async fn record_match(&self, board: &str, result: MatchResult, op_id: Option<&str>) -> Result<MatchRecorded, LeaderboardError> {
        let rules = self.board(board)?.rating.ok_or_else(|| LeaderboardError::NotRatings(board.to_string()))?;
        result.validate()?;
        check_op_id(op_id)?;
        let slot = self.slot(board, None).await?;
        let operation = Operation::Match { result, rules };
        match self.run(slot, Queued { operation, op_id: op_id.map(str::to_string) }).await? {
            Answer::Match(recorded) => Ok(recorded),
            Answer::Submitted(_) => Err(LeaderboardError::Interrupted),
        }
    }

    /// Queues `queued` and takes turns at the flush lock until it is answered.
    async fn run(&self, slot: Arc<Slot>, queued: Queued) -> Result<Answer, LeaderboardError> {
        let (reply, mut answer) = oneshot::channel();
        slot.queue.lock().push((queued, reply));
        loop {
            let flushing = slot.flush.clone().lock_owned().await;
            match answer.try_recv() {
                Ok(answer) => return answer,
                Err(oneshot::error::TryRecvError::Closed) => return Err(LeaderboardError::Interrupted),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            let batch: Vec<(Queued, Reply)> = {
                let mut queue = slot.queue.lock();
                let len = queue.len().min(BATCH_LEN_MAX);
                queue.drain(..len).collect()
            };
            // A task of its own: a caller that gives up does not cut a batch short.
            let (service, slot) = (self.clone(), slot.clone());
            let flushed = tokio::spawn(async move {
                service.flush(&slot, batch).await;
                drop(flushing);
            });
            if flushed.await.is_err() {
                return Err(LeaderboardError::Interrupted);
            }
        }
    }

    async fn flush(&self, slot: &Slot, batch: Vec<(Queued, Reply)>) {
        let (operations, replies): (Vec<Queued>, Vec<Reply>) = batch.into_iter().unzip();
        match self.write_batch(slot, &operations).await {
            Ok(answers) => {
                for (reply, answer) in replies.into_iter().zip(answers) {
                    let _ = reply.send(answer);
                }
            }
            Err(error) => {
                for reply in replies {
                    let _ = reply.send(Err(error.clone()));
                }
            }
        }
    }

    fn sink(&self, updates: &[ScoreUpdate]) {
        if let Some(sink) = &self.inner.sink {
            updates.iter().for_each(|update| sink.updated(update));
        }
    }

    /// Decides, appends and applies one batch (the caller holds the slot's flush lock).
    async fn write_batch(&self, slot: &Slot, operations: &[Queued]) -> Result<Vec<Result<Answer, LeaderboardError>>, LeaderboardError> {
        for _ in 0..ATTEMPTS_MAX {
            let (mut requests, plans, channel, position, season) = {
                let index = slot.index.read();
                let (requests, plans) = index.prepare(&slot.spec, operations);
                (requests, plans, index.channel.clone(), index.position.clone(), index.season.clone())
            };
            let season_len = requests.len();
            if let Some(retention) = self.inner.public {
                for (queued, plan) in operations.iter().zip(&plans) {
                    if let (Operation::Match { result, .. }, Plan::Writes { first, end }) = (&queued.operation, plan) {
                        let written = requests.get(*first..*end).unwrap_or_default();
                        let request = feed::match_request(&slot.spec.id, &season, result, queued.op_id.as_deref(), written, retention)?;
                        requests.push(request);
                    }
                }
            }
            let applied = if requests.is_empty() {
                Vec::new()
            } else {
                let group = AppendGroup { requests, expected: vec![ExpectedPosition { channel, position }] };
                match self.inner.store.append_group(group).await {
                    Ok(appended) => {
                        // The season's entries come first; the public match results after them.
                        let mut publications: Vec<_> = appended.into_iter().map(|a| a.publication).collect();
                        let public = publications.split_off(season_len.min(publications.len()));
                        self.feed_moved(&slot.spec.id, &public);
                        apply_in_chunks(slot, &publications)?
                    }
                    Err(StoreError::Conflict(_)) => {
                        self.catch_up_slot(slot).await?;
                        continue;
                    }
                    Err(error) => return Err(error.into()),
                }
            };
            self.sink(&applied);
            let index = slot.index.read();
            let answers = operations.iter().zip(plans).map(|(queued, plan)| answer(&index, queued, plan, &applied)).collect();
            return Ok(answers);
        }
        Err(LeaderboardError::Contended)
    }

    /// Brings `board`'s season (`None`: the current one) up to the store's top without writing;
    /// every move read goes to the sink.
    pub async fn catch_up(&self, board: &str, season: Option<&str>) -> Result<(), LeaderboardError> {
        let slot = self.slot(board, season).await?;
        let _flushing = slot.flush.lock().await;
        self.catch_up_slot(&slot).await
    }

    /// [`Self::catch_up`] for a board-season channel (`_leaderboard:{board}:{season}`), as the
    /// broker names it; other channels are ignored.
    pub async fn catch_up_channel(&self, channel: &ChannelName) -> Result<(), LeaderboardError> {
        match layout::parse_season_channel(channel) {
            Some((board, season)) => self.catch_up(board, Some(season)).await,
            None => Ok(()),
        }
    }

    /// Applies the history after the index's top, or reloads the snapshot when that history is
    /// gone or the epoch changed (the caller holds the flush lock).
    async fn catch_up_slot(&self, slot: &Slot) -> Result<(), LeaderboardError> {
        loop {
            let (channel, position) = {
                let index = slot.index.read();
                (index.channel.clone(), index.position.clone())
            };
            let query = HistoryQuery::After { offset: position.offset, limit: CATCH_UP_PAGE_LEN };
            let page = self.inner.store.read(&channel, query).await?;
            let trimmed = page.top.offset > position.offset && page.earliest_offset > position.offset + 1;
            if page.top.epoch != position.epoch || trimmed || page.top.offset < position.offset {
                let season = slot.index.read().season.clone();
                let reloaded = self.load_index(&slot.spec, &season).await?;
                slot.index.write().replace_with(reloaded);
                return Ok(());
            }
            let updates = apply_in_chunks(slot, &page.publications)?;
            self.sink(&updates);
            if updates.is_empty() || slot.index.read().position.offset >= page.top.offset {
                return Ok(());
            }
        }
    }

    async fn standings(&self, board: &str, season: Option<&str>, read: impl FnOnce(&SeasonIndex) -> Vec<Ranked>) -> Result<Standings, LeaderboardError> {
        let slot = self.slot(board, season).await?;
        let index = slot.index.read();
        Ok(Standings { board: index.board.clone(), season: index.season.clone(), total: index.ranking.len() as u64, entries: read(&index) })
    }

    /// The first `n` players (at most [`PAGE_LEN_MAX`]).
    pub async fn top(&self, board: &str, season: Option<&str>, n: usize) -> Result<Standings, LeaderboardError> {
        self.standings(board, season, |index| index.ranking.top(n.min(PAGE_LEN_MAX))).await
    }

    /// Players from rank `offset + 1` on (at most [`PAGE_LEN_MAX`]).
    pub async fn page(&self, board: &str, season: Option<&str>, offset: usize, limit: usize) -> Result<Standings, LeaderboardError> {
        self.standings(board, season, |index| index.ranking.page(offset, limit.min(PAGE_LEN_MAX))).await
    }

    /// `player` and up to `k` players on each side (`k` at most [`PAGE_LEN_MAX`] / 2).
    pub async fn around(&self, board: &str, season: Option<&str>, player: &str, k: usize) -> Result<Standings, LeaderboardError> {
        self.standings(board, season, |index| index.ranking.around(player, k.min(PAGE_LEN_MAX / 2))).await
    }

    /// `player`'s rank and score, if they are on the board.
    pub async fn rank(&self, board: &str, season: Option<&str>, player: &str) -> Result<Option<Ranked>, LeaderboardError> {
        let slot = self.slot(board, season).await?;
        let index = slot.index.read();
        let ranked = index.ranking.rank(player).zip(index.ranking.get(player));
        Ok(ranked.map(|(rank, placement)| Ranked { player: player.to_string(), score: placement.score, rank }))
    }
}

/// Applies committed publications in order, taking the index's write lock for at most
/// [`APPLY_CHUNK_LEN`] at a time, so queries never wait for a whole batch.
fn apply_in_chunks(slot: &Slot, publications: &[Publication]) -> Result<Vec<ScoreUpdate>, CorruptEntry> {
    let mut updates = Vec::with_capacity(publications.len());
    for chunk in publications.chunks(APPLY_CHUNK_LEN) {
        let mut index = slot.index.write();
        for publication in chunk {
            updates.push(index.apply(publication)?);
        }
    }
    Ok(updates)
}

/// The answer to one operation of a batch, after the batch was applied (`applied`: one update
/// per written publication, in order).
fn answer(index: &SeasonIndex, queued: &Queued, plan: Plan, applied: &[ScoreUpdate]) -> Result<Answer, LeaderboardError> {
    let updates = match plan {
        Plan::Refused(error) => return Err(error.into()),
        Plan::Writes { first, end } => Some(applied.get(first..end).unwrap_or_default().to_vec()),
        Plan::Duplicate => None,
    };
    let duplicate = updates.is_none();
    match &queued.operation {
        Operation::Submit { player, .. } => {
            let update = updates.and_then(|mut updates| updates.pop()).unwrap_or_else(|| index.unchanged(player));
            Ok(Answer::Submitted(Submitted { update, duplicate }))
        }
        Operation::Match { result, rules } => {
            let updates = updates.unwrap_or_else(|| result.players().map(|player| index.unchanged(player)).collect());
            let elo_changes = match (duplicate, queued.op_id.as_deref().and_then(|id| index.elo_changes(id))) {
                (true, Some(changes)) => (*changes).clone(),
                _ => updates.iter().map(|u| (u.player.clone(), u.score - u.previous_score.unwrap_or(rules.initial))).collect(),
            };
            let ratings = updates.iter().map(|u| (u.player.clone(), u.score)).collect();
            Ok(Answer::Match(MatchRecorded {
                board: index.board.clone(),
                season: index.season.clone(),
                elo_changes,
                ratings,
                updates,
                duplicate,
            }))
        }
    }
}
