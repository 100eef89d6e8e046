//! [`SportsService`]: tournaments, matches, claims and scores kept in the stream store, every
//! change stored and published to its channels in one atomic group ([`AppendGroup`]).
//!
//! # How a score update is decided
//! 1. A retried operation id is recognised first ([`StreamStore::find_idempotent`]) and answered
//!    with its first result, changing nothing.
//! 2. The match (`_match:{t}:{m}`) and its claim (`_claim:{t}:{m}`) are read, each with its
//!    position.
//! 3. The pure rules judge the edit: the claim and fencing token ([`crate::claim`]), a finished
//!    match is a director's to correct, the scoring format ([`crate::scoring`]), and the base
//!    version or the client's time ([`crate::conflict`]). An edit with neither (seed 001's
//!    `{ matchId, sets, status }`) is an online write on whatever is stored.
//! 4. The new score, its history entry and the public copies (`match:`, `tournament:…:scores`,
//!    `division:`, `court:`, `schedule` when the status changed) are appended as one group that
//!    expects both positions from step 2. Had anything changed meanwhile — another score, a claim
//!    taken or released — nothing is stored and the update is decided again from step 2.
//!
//! So the store serialises writers (on one node or many) and the rules stay pure. The channel
//! layout is in [`crate::layout`].
//!
//! This module has no I/O of its own: the store is handed in, and so is the clock.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use courtside_core::access::{TournamentRoles, roles_held_in};
use courtside_core::channel::{ChannelName, Role};
use courtside_core::store::{AppendGroup, AppendRequest, ExpectedPosition, HistoryQuery, Retention, StoreError, StreamStore};
use courtside_core::stream::{Publication, StreamPosition};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::claim::{self, Claim, ClaimError, ClaimPolicy, FenceError, Release, ReleaseError};
use crate::conflict::{self, Decision, ScoreEdit};
use crate::layout::{self, KEEP_ALL};
use crate::model::{
    Announcement, ClaimState, ConflictEntry, Court, Division, InvalidId, Match, Priority, ScoreChange, ScoreRecord, Team,
    Tournament, check_id,
};
use crate::scoring::{self, FormatError, MatchStatus, ScoreViolation, ScoringFormat, SetScore};

/// How often a write is decided again after the store reported that what it read has moved.
const ATTEMPTS_MAX: usize = 16;
/// Most history entries one page returns.
pub const HISTORY_PAGE_MAX: usize = 1_000;

/// Who is asking: the token's subject, its global roles and its roles per tournament. A role
/// held in a tournament counts in requests about that tournament only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user: String,
    pub roles: Vec<Role>,
    pub tournament_roles: TournamentRoles,
}

impl Actor {
    /// An actor with global roles only.
    pub fn new(user: impl Into<String>, roles: Vec<Role>) -> Self {
        Self { user: user.into(), roles, tournament_roles: TournamentRoles::default() }
    }

    /// Whether the actor holds one of `wanted` globally or in tournament `t`.
    fn holds_in(&self, t: Option<&str>, wanted: &[Role]) -> bool {
        roles_held_in(&self.roles, &self.tournament_roles, t).any(|role| wanted.contains(role))
    }

    /// A director of the whole server (tournaments are created and imported by these).
    pub fn is_director(&self) -> bool {
        self.holds_in(None, &[Role::Director])
    }

    pub fn is_director_in(&self, t: &str) -> bool {
        self.holds_in(Some(t), &[Role::Director])
    }

    fn is_official_in(&self, t: &str) -> bool {
        self.holds_in(Some(t), &[Role::Staff, Role::Director])
    }

    fn may_keep_score_in(&self, t: &str) -> bool {
        self.holds_in(Some(t), &[Role::Scorekeeper, Role::Staff, Role::Director])
    }
}

/// Why a request was refused or could not be served.
#[derive(Debug, thiserror::Error)]
pub enum SportsError {
    #[error(transparent)]
    InvalidId(#[from] InvalidId),
    #[error("{what} {id} not found")]
    NotFound { what: &'static str, id: String },
    #[error("{what} {id} already exists")]
    AlreadyExists { what: &'static str, id: String },
    #[error("{0}")]
    Forbidden(String),
    #[error("{field}: {message}")]
    InvalidField { field: String, message: String },
    #[error("the score breaks the match's rules: {}", .0.iter().map(|v| v.message.as_str()).collect::<Vec<_>>().join("; "))]
    ScoreRejected(Vec<ScoreViolation>),
    #[error("invalid scoring format: {0}")]
    Format(#[from] FormatError),
    #[error("match {match_id} is completed; only a director may correct its score")]
    MatchFinished { match_id: String },
    #[error("the score was based on version {base_version}, but version {} is stored", (**.current).as_ref().map_or(0, |c| c.version))]
    Stale { base_version: u64, current: Box<Option<ScoreRecord>> },
    #[error("a score at least as recent is stored (version {}); the offline edit was recorded as a conflict", .current.version)]
    KeptServer { current: Box<ScoreRecord> },
    #[error(transparent)]
    Claim(#[from] ClaimError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
    #[error(transparent)]
    Fence(#[from] FenceError),
    #[error("operation id {op_id:?} was already used for a different score of this match; use a new id for a new edit")]
    OpIdReused { op_id: String },
    #[error("the match changed {ATTEMPTS_MAX} times while this request was decided; retry")]
    Contended,
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("a stored record cannot be read: {0}")]
    Corrupt(String),
}

/// A score update as a client sends it (seed 001: `{ matchId, sets, status }`, plus what
/// concurrency and retries need).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ScoreUpdate {
    #[schema(min_length = 1, max_length = 64, pattern = "^[A-Za-z0-9_-]+$")]
    pub match_id: String,
    pub sets: Vec<SetScore>,
    pub status: MatchStatus,
    /// The version the edit was made on; a different stored version refuses it.
    #[serde(default)]
    pub base_version: Option<u64>,
    /// When the client made an offline edit (no base version): the later edit wins.
    #[serde(default)]
    pub client_time_ms: Option<i64>,
    /// The client's operation id: a retry with the same id (and the same sets and status) gets
    /// the first answer; the same id with other sets or status is refused (`op_id_reused`).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, pattern = r"^[^\x00-\x1f\x7f-\x9f]+$")]
    pub op_id: Option<String>,
    /// The claim's fencing token: a write carrying an older one is refused.
    #[serde(default)]
    pub fencing_token: Option<u64>,
}

/// A stored score, and whether this request was a retry of one already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScoreOutcome {
    pub score: ScoreRecord,
    pub duplicate: bool,
}

/// Everything a tournament holds besides scores.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Registry {
    pub divisions: Vec<Division>,
    pub teams: Vec<Team>,
    pub courts: Vec<Court>,
    pub matches: Vec<Match>,
}

/// One page of a match's score history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct HistoryPageOut {
    pub changes: Vec<ScoreChange>,
    pub total: u64,
}

type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;
type RetentionFor = Arc<dyn Fn(&ChannelName) -> Retention + Send + Sync>;

/// The sports domain over a [`StreamStore`]; cheap to clone.
#[derive(Clone)]
pub struct SportsService {
    store: Arc<dyn StreamStore>,
    /// Retention of public channels (their namespace's options).
    retention_for: RetentionFor,
    claim_policy: ClaimPolicy,
    clock: Clock,
}

/// A keyed channel read: entries by key, and the position they are current as of.
struct Keyed {
    entries: BTreeMap<String, Publication>,
    position: StreamPosition,
}

impl Keyed {
    fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, SportsError> {
        self.entries.get(key).map(|publication| decode(&publication.data)).transpose()
    }
}

fn decode<T: DeserializeOwned>(data: &[u8]) -> Result<T, SportsError> {
    serde_json::from_slice(data).map_err(|error| SportsError::Corrupt(error.to_string()))
}

fn encode(value: &impl Serialize) -> Bytes {
    // Our own types serialise infallibly (no maps with non-string keys, no failing impls).
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}

impl SportsService {
    /// `retention_for` gives the retention of a public channel (its namespace's); `now_ms` the
    /// time in milliseconds since the Unix epoch.
    pub fn new(
        store: Arc<dyn StreamStore>,
        retention_for: impl Fn(&ChannelName) -> Retention + Send + Sync + 'static,
        claim_policy: ClaimPolicy,
        now_ms: impl Fn() -> i64 + Send + Sync + 'static,
    ) -> Self {
        Self { store, retention_for: Arc::new(retention_for), claim_policy, clock: Arc::new(now_ms) }
    }

    fn now(&self) -> i64 {
        (self.clock)()
    }

    async fn keyed(&self, channel: &ChannelName) -> Result<Keyed, SportsError> {
        let snapshot = self.store.snapshot(channel).await?;
        let entries = snapshot
            .entries
            .into_iter()
            .filter_map(|publication| Some((publication.key.clone()?, publication)))
            .collect();
        Ok(Keyed { entries, position: snapshot.position })
    }

    /// An internal record: keyed, kept forever.
    fn record(channel: ChannelName, key: &str, value: &impl Serialize) -> AppendRequest {
        AppendRequest {
            channel,
            data: encode(value),
            key: Some(key.to_string()),
            remove_key: false,
            event: None,
            idempotency_key: None,
            retention: KEEP_ALL,
        }
    }

    /// An entry of an internal log, kept forever.
    fn log_entry(channel: ChannelName, value: &impl Serialize) -> AppendRequest {
        AppendRequest { key: None, ..Self::record(channel, "", value) }
    }

    /// A publication on a public channel, with its namespace's retention.
    fn public(&self, channel: ChannelName, key: Option<&str>, value: &serde_json::Value) -> AppendRequest {
        let retention = (self.retention_for)(&channel);
        AppendRequest {
            channel,
            data: encode(value),
            key: key.map(str::to_string),
            remove_key: false,
            event: None,
            idempotency_key: None,
            retention,
        }
    }

    /// Appends `group`; `Ok(None)` when an expected position moved (decide again).
    async fn try_append(&self, group: AppendGroup) -> Result<Option<Vec<Publication>>, SportsError> {
        match self.store.append_group(group).await {
            Ok(appended) => Ok(Some(appended.into_iter().map(|a| a.publication).collect())),
            Err(StoreError::Conflict(_)) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    // ---------------------------------------------------------------------------------------
    // Tournaments and their registry

    pub async fn create_tournament(&self, actor: &Actor, tournament: Tournament) -> Result<Tournament, SportsError> {
        check_id("tournament", &tournament.id)?;
        require(actor.is_director(), "only a director may create a tournament")?;
        self.write_tournament(tournament, false).await
    }

    /// Replaces a tournament's name and default format (directors only).
    pub async fn update_tournament(&self, actor: &Actor, tournament: Tournament) -> Result<Tournament, SportsError> {
        check_id("tournament", &tournament.id)?;
        require(actor.is_director_in(&tournament.id), "only a director may edit a tournament")?;
        self.write_tournament(tournament, true).await
    }

    /// Stores `tournament`, which must (`existing`) or must not exist yet.
    async fn write_tournament(&self, tournament: Tournament, existing: bool) -> Result<Tournament, SportsError> {
        check_name("name", &tournament.name)?;
        if let Some(format) = &tournament.default_format {
            format.validate()?;
        }
        let events = layout::events();
        for _ in 0..ATTEMPTS_MAX {
            let stored = self.keyed(&events).await?;
            match (stored.entries.contains_key(&tournament.id), existing) {
                (true, false) => return Err(SportsError::AlreadyExists { what: "tournament", id: tournament.id }),
                (false, true) => return Err(SportsError::NotFound { what: "tournament", id: tournament.id }),
                _ => {}
            }
            let group = AppendGroup {
                requests: vec![Self::record(events.clone(), &tournament.id, &tournament)],
                expected: vec![ExpectedPosition { channel: events.clone(), position: stored.position }],
            };
            if self.try_append(group).await?.is_some() {
                return Ok(tournament);
            }
        }
        Err(SportsError::Contended)
    }

    pub async fn tournaments(&self) -> Result<Vec<Tournament>, SportsError> {
        let events = self.keyed(&layout::events()).await?;
        events.entries.values().map(|publication| decode(&publication.data)).collect()
    }

    pub async fn tournament(&self, t: &str) -> Result<Tournament, SportsError> {
        check_id("tournament", t)?;
        self.keyed(&layout::events())
            .await?
            .get(t)?
            .ok_or_else(|| SportsError::NotFound { what: "tournament", id: t.to_string() })
    }

    pub async fn registry(&self, t: &str) -> Result<Registry, SportsError> {
        self.tournament(t).await?;
        let keyed = self.keyed(&layout::registry(t)).await?;
        let mut registry = Registry::default();
        for (key, publication) in &keyed.entries {
            let data = &publication.data;
            match key.split_once('/') {
                Some(("division", _)) => registry.divisions.push(decode(data)?),
                Some(("team", _)) => registry.teams.push(decode(data)?),
                Some(("court", _)) => registry.courts.push(decode(data)?),
                Some(("match", _)) => registry.matches.push(decode(data)?),
                _ => {}
            }
        }
        Ok(registry)
    }

    /// The checks before a division, team or court is stored, in the API's order: the ids, the
    /// caller's role, the name — then the lookups (the tournament).
    async fn check_entry(&self, actor: &Actor, t: &str, kind: &'static str, id: &str, name: &str) -> Result<(), SportsError> {
        check_id("tournament", t)?;
        check_id(kind, id)?;
        require(actor.is_official_in(t), "only staff or a director may change a tournament")?;
        check_name("name", name)?;
        self.tournament(t).await?;
        Ok(())
    }

    /// Stores a checked division, team or court (`kind` is `division`, `team` or `court`).
    async fn put_entry(&self, t: &str, kind: &'static str, id: &str, value: &impl Serialize) -> Result<(), SportsError> {
        let group = AppendGroup::single(Self::record(layout::registry(t), &format!("{kind}/{id}"), value));
        self.store.append_group(group).await?;
        Ok(())
    }

    pub async fn put_division(&self, actor: &Actor, t: &str, division: Division) -> Result<Division, SportsError> {
        self.check_entry(actor, t, "division", &division.id, &division.name).await?;
        self.put_entry(t, "division", &division.id, &division).await?;
        Ok(division)
    }

    pub async fn put_team(&self, actor: &Actor, t: &str, team: Team) -> Result<Team, SportsError> {
        if let Some(division) = &team.division_id {
            check_id("division", division)?;
        }
        self.check_entry(actor, t, "team", &team.id, &team.name).await?;
        if let Some(division) = &team.division_id {
            self.require_entry(t, "division", division).await?;
        }
        self.put_entry(t, "team", &team.id, &team).await?;
        Ok(team)
    }

    pub async fn put_court(&self, actor: &Actor, t: &str, court: Court) -> Result<Court, SportsError> {
        self.check_entry(actor, t, "court", &court.id, &court.name).await?;
        self.put_entry(t, "court", &court.id, &court).await?;
        Ok(court)
    }

    /// Every id a match names, before anything is looked up.
    fn check_match_ids(t: &str, planned: &Match) -> Result<(), SportsError> {
        check_id("tournament", t)?;
        check_id("match", &planned.id)?;
        check_id("division", &planned.division_id)?;
        check_id("team", &planned.home_team_id)?;
        check_id("team", &planned.away_team_id)?;
        if let Some(court) = &planned.court_id {
            check_id("court", court)?;
        }
        Ok(())
    }

    /// The division, teams and court a match names exist, and the teams differ.
    async fn check_match_references(&self, t: &str, planned: &Match) -> Result<(), SportsError> {
        let registry = self.keyed(&layout::registry(t)).await?;
        let known = |kind: &'static str, id: &str| -> Result<(), SportsError> {
            check_id(kind, id)?;
            if registry.entries.contains_key(&format!("{kind}/{id}")) {
                Ok(())
            } else {
                Err(SportsError::NotFound { what: kind, id: id.to_string() })
            }
        };
        known("division", &planned.division_id)?;
        known("team", &planned.home_team_id)?;
        known("team", &planned.away_team_id)?;
        if let Some(court) = &planned.court_id {
            known("court", court)?;
        }
        if planned.home_team_id == planned.away_team_id {
            return Err(SportsError::InvalidField { field: "awayTeamId".into(), message: "a team cannot play itself".into() });
        }
        Ok(())
    }

    async fn require_entry(&self, t: &str, kind: &'static str, id: &str) -> Result<(), SportsError> {
        check_id(kind, id)?;
        let registry = self.keyed(&layout::registry(t)).await?;
        if registry.entries.contains_key(&format!("{kind}/{id}")) {
            Ok(())
        } else {
            Err(SportsError::NotFound { what: kind, id: id.to_string() })
        }
    }

    /// Creates a match (its format resolved: the match's, the tournament's default, or best of
    /// 3 to 25) and puts it on the schedule.
    pub async fn create_match(&self, actor: &Actor, t: &str, mut new: Match) -> Result<Match, SportsError> {
        Self::check_match_ids(t, &new)?;
        require(actor.is_official_in(t), "only staff or a director may schedule a match")?;
        let tournament = self.tournament(t).await?;
        self.check_match_references(t, &new).await?;
        let format = new.format.or(tournament.default_format).unwrap_or_else(ScoringFormat::best_of_3_to_25);
        format.validate()?;
        new.format = Some(format);

        let state_channel = layout::match_state(t, &new.id);
        let state = self.keyed(&state_channel).await?;
        if state.entries.contains_key("record") {
            return Err(SportsError::AlreadyExists { what: "match", id: new.id });
        }
        let group = AppendGroup {
            requests: vec![
                Self::record(state_channel.clone(), "record", &new),
                Self::record(layout::registry(t), &format!("match/{}", new.id), &new),
                self.public(layout::schedule(t), Some(&new.id), &json!({ "type": "match", "match": new })),
            ],
            expected: vec![ExpectedPosition { channel: state_channel, position: state.position }],
        };
        match self.try_append(group).await? {
            Some(_) => Ok(new),
            None => Err(SportsError::AlreadyExists { what: "match", id: new.id }),
        }
    }

    /// Edits a scheduled match: court and time always; teams, division and format only until
    /// its first score (staff, director). The schedule channel gets the new record.
    pub async fn update_match(&self, actor: &Actor, t: &str, mut edited: Match) -> Result<Match, SportsError> {
        Self::check_match_ids(t, &edited)?;
        require(actor.is_official_in(t), "only staff or a director may edit a match")?;
        let m = edited.id.clone();
        let tournament = self.tournament(t).await?;
        self.check_match_references(t, &edited).await?;
        for _ in 0..ATTEMPTS_MAX {
            let (current, score, position) = self.match_record(t, &m).await?;
            let format = edited.format.or(current.format).or(tournament.default_format).unwrap_or_else(ScoringFormat::best_of_3_to_25);
            format.validate()?;
            edited.format = Some(format);
            let started = score.is_some();
            let same_contest = edited.division_id == current.division_id
                && edited.home_team_id == current.home_team_id
                && edited.away_team_id == current.away_team_id
                && edited.format == current.format;
            if started && !same_contest {
                return Err(SportsError::InvalidField {
                    field: "id".into(),
                    message: format!("match {m} has a score: only its court and time can change"),
                });
            }
            let state_channel = layout::match_state(t, &m);
            let group = AppendGroup {
                requests: vec![
                    Self::record(state_channel.clone(), "record", &edited),
                    Self::record(layout::registry(t), &format!("match/{m}"), &edited),
                    self.public(layout::schedule(t), Some(&m), &json!({ "type": "match", "match": edited })),
                ],
                expected: vec![ExpectedPosition { channel: state_channel, position }],
            };
            if self.try_append(group).await?.is_some() {
                return Ok(edited);
            }
        }
        Err(SportsError::Contended)
    }

    /// The latest announcements, oldest first (as far as the channel's history reaches).
    pub async fn announcements(&self, t: &str, limit: usize) -> Result<Vec<serde_json::Value>, SportsError> {
        self.tournament(t).await?;
        let page = self.store.read(&layout::announcements(t), HistoryQuery::Latest { limit: limit.min(HISTORY_PAGE_MAX) }).await?;
        page.publications.iter().map(|p| decode(&p.data)).collect()
    }

    async fn match_record(&self, t: &str, m: &str) -> Result<(Match, Option<ScoreRecord>, StreamPosition), SportsError> {
        check_id("tournament", t)?;
        check_id("match", m)?;
        let state = self.keyed(&layout::match_state(t, m)).await?;
        let record: Match =
            state.get("record")?.ok_or_else(|| SportsError::NotFound { what: "match", id: m.to_string() })?;
        Ok((record, state.get("score")?, state.position))
    }

    // ---------------------------------------------------------------------------------------
    // Claims

    async fn claim_state(&self, t: &str, m: &str) -> Result<(ClaimState, StreamPosition), SportsError> {
        let keyed = self.keyed(&layout::claim(t, m)).await?;
        Ok((keyed.get("state")?.unwrap_or_default(), keyed.position))
    }

    /// Claims the match for `actor` (or renews their live claim); `expires_at_ms` defaults to
    /// the policy's TTL. Of two scorekeepers racing, exactly one wins.
    pub async fn claim(&self, actor: &Actor, t: &str, m: &str, expires_at_ms: Option<i64>) -> Result<Claim, SportsError> {
        check_id("tournament", t)?;
        check_id("match", m)?;
        require(actor.may_keep_score_in(t), "only a scorekeeper, staff or a director may claim a match")?;
        self.match_record(t, m).await?;
        for _ in 0..ATTEMPTS_MAX {
            let (state, position) = self.claim_state(t, m).await?;
            let now = self.now();
            let claimed =
                claim::claim(state.claim.as_ref(), state.last_token, &actor.user, now, expires_at_ms, &self.claim_policy)?;
            let stored = ClaimState { claim: Some(claimed.clone()), last_token: claimed.fencing_token.max(state.last_token) };
            let claim_channel = layout::claim(t, m);
            let group = AppendGroup {
                requests: vec![
                    Self::record(claim_channel.clone(), "state", &stored),
                    Self::record(layout::claims(t), m, &claimed),
                    self.public(
                        layout::match_channel(t, m),
                        Some("claim"),
                        &json!({ "type": "claim", "matchId": m, "claim": claimed }),
                    ),
                ],
                expected: vec![ExpectedPosition { channel: claim_channel, position }],
            };
            if self.try_append(group).await?.is_some() {
                return Ok(claimed);
            }
        }
        Err(SportsError::Contended)
    }

    /// Releases the claim: its holder, or a director forcing it. An expired claim is cleared
    /// (and its release published) whoever asks.
    pub async fn release(&self, actor: &Actor, t: &str, m: &str) -> Result<Release, SportsError> {
        self.match_record(t, m).await?;
        let decide = |state: &ClaimState, now: i64| -> Result<Option<Release>, SportsError> {
            Ok(Some(claim::release(state.claim.as_ref(), &actor.user, actor.is_director_in(t), now)?))
        };
        Ok(self.clear_claim(t, m, &actor.user, decide).await?.unwrap_or(Release::NotHeld))
    }

    /// Clears the match's stored claim as `decide` says (`None`: leave it), publishing the
    /// release; decided again if the claim changed meanwhile.
    async fn clear_claim(
        &self,
        t: &str,
        m: &str,
        by: &str,
        decide: impl Fn(&ClaimState, i64) -> Result<Option<Release>, SportsError>,
    ) -> Result<Option<Release>, SportsError> {
        for _ in 0..ATTEMPTS_MAX {
            let (state, position) = self.claim_state(t, m).await?;
            let now = self.now();
            let Some(outcome) = decide(&state, now)? else { return Ok(None) };
            let Some(previous) = state.claim.clone() else { return Ok(Some(outcome)) };
            let claim_channel = layout::claim(t, m);
            let cleared = ClaimState { claim: None, last_token: state.last_token };
            let reason = match &outcome {
                Release::Released => "released",
                Release::ForceReleased { .. } => "force_released",
                Release::NotHeld => "expired",
            };
            let mut public = self.public(
                layout::match_channel(t, m),
                Some("claim"),
                &json!({ "type": "claim_released", "matchId": m, "holder": previous.holder, "by": by, "reason": reason }),
            );
            public.remove_key = true;
            let group = AppendGroup {
                requests: vec![
                    Self::record(claim_channel.clone(), "state", &cleared),
                    AppendRequest { remove_key: true, ..Self::record(layout::claims(t), m, &previous) },
                    public,
                ],
                expected: vec![ExpectedPosition { channel: claim_channel, position }],
            };
            if self.try_append(group).await?.is_some() {
                return Ok(Some(outcome));
            }
        }
        Err(SportsError::Contended)
    }

    /// Releases every claim that has expired, publishing each release (reason `expired`), so
    /// subscribers learn of it without anyone asking. Returns how many were released. Meant to
    /// run every few seconds; several nodes may run it at once (a release already done is a
    /// no-op).
    ///
    /// Only the very claim seen expired is cleared: one taken or renewed meanwhile stays. A
    /// failure on one tournament or claim is logged and the sweep goes on.
    pub async fn expire_claims(&self) -> Result<usize, SportsError> {
        let now = self.now();
        let mut released = 0;
        for tournament in self.tournaments().await? {
            let t = &tournament.id;
            let keyed = match self.keyed(&layout::claims(t)).await {
                Ok(keyed) => keyed,
                Err(error) => {
                    tracing::warn!(tournament = t, %error, "claim sweep skipped a tournament");
                    continue;
                }
            };
            for (m, publication) in &keyed.entries {
                let Ok(seen) = decode::<Claim>(&publication.data) else {
                    tracing::warn!(tournament = t, match_id = m, "unreadable claim index entry");
                    continue;
                };
                if seen.is_live_at(now) {
                    continue;
                }
                let expired = |state: &ClaimState, now: i64| -> Result<Option<Release>, SportsError> {
                    let same_and_expired =
                        state.claim.as_ref().is_some_and(|c| c.fencing_token == seen.fencing_token && !c.is_live_at(now));
                    Ok(same_and_expired.then_some(Release::NotHeld))
                };
                match self.clear_claim(t, m, "courtside", expired).await {
                    Ok(Some(_)) => released += 1,
                    Ok(None) => {}
                    Err(error) => tracing::warn!(tournament = t, match_id = m, %error, "expired claim not released"),
                }
            }
        }
        Ok(released)
    }

    /// The match's live claim, if any.
    pub async fn claim_of(&self, t: &str, m: &str) -> Result<Option<Claim>, SportsError> {
        self.match_record(t, m).await?;
        let (state, _) = self.claim_state(t, m).await?;
        let now = self.now();
        Ok(state.claim.filter(|claim| claim.is_live_at(now)))
    }

    /// Every live claim of the tournament, by match id.
    pub async fn claims(&self, t: &str) -> Result<BTreeMap<String, Claim>, SportsError> {
        self.tournament(t).await?;
        let now = self.now();
        let keyed = self.keyed(&layout::claims(t)).await?;
        let mut live = BTreeMap::new();
        for (m, publication) in keyed.entries {
            let claim: Claim = decode(&publication.data)?;
            if claim.is_live_at(now) {
                live.insert(m, claim);
            }
        }
        Ok(live)
    }

    // ---------------------------------------------------------------------------------------
    // Scores

    /// Applies a score update; see the module docs for how it is decided.
    pub async fn update_score(&self, actor: &Actor, t: &str, update: ScoreUpdate) -> Result<ScoreOutcome, SportsError> {
        let m = update.match_id.clone();
        check_id("tournament", t)?;
        check_id("match", &m)?;
        require(actor.may_keep_score_in(t), "only a scorekeeper, staff or a director may update a score")?;
        if update.status == MatchStatus::Cancelled {
            require(actor.is_official_in(t), "only staff or a director may cancel a match")?;
        }
        let state_channel = layout::match_state(t, &m);
        if let Some(op_id) = &update.op_id {
            check_op_id(op_id)?;
        }
        // Tokens and versions are signed 64-bit numbers in every store and in the documented schema.
        for (field, value) in [("fencingToken", update.fencing_token), ("baseVersion", update.base_version)] {
            if value.is_some_and(|value| value > i64::MAX as u64) {
                return Err(SportsError::InvalidField { field: field.into(), message: format!("must be at most {}", i64::MAX) });
            }
        }
        for _ in 0..ATTEMPTS_MAX {
            // Each attempt first asks whether the operation is a retry of one already stored
            // (perhaps by the request it raced): a retry gets its first answer, never a refusal.
            if let Some(op_id) = &update.op_id {
                if let Some(original) = self.store.find_idempotent(&state_channel, op_id).await? {
                    let first: ScoreRecord = decode(&original.data)?;
                    return same_operation(t, &update, op_id, first).map(|score| ScoreOutcome { score, duplicate: true });
                }
            }
            let (record, current, match_position) = self.match_record(t, &m).await?;
            let (claim_state, claim_position) = self.claim_state(t, &m).await?;
            let now = self.now();
            if !actor.is_director_in(t) {
                match update.fencing_token {
                    Some(token) => claim::authorize_write(claim_state.claim.as_ref(), &actor.user, token, now)?,
                    // Without a token only the holder is checked (seed 001's API has none).
                    None => {
                        let token = claim_state.claim.as_ref().map_or(0, |claim| claim.fencing_token);
                        claim::authorize_write(claim_state.claim.as_ref(), &actor.user, token, now)?;
                    }
                }
                if current.as_ref().is_some_and(|score| score.status == MatchStatus::Completed) {
                    return Err(SportsError::MatchFinished { match_id: m });
                }
            }
            if current.as_ref().is_some_and(|score| score.status == MatchStatus::Cancelled) {
                require(actor.is_official_in(t), "the match is cancelled; only staff or a director may change it")?;
            }
            let format = record.format.unwrap_or_else(ScoringFormat::best_of_3_to_25);
            let accepted = scoring::check_status(&format, &update.sets, update.status).map_err(SportsError::ScoreRejected)?;
            // Neither a base version nor a client time (seed 001's API): an online write on
            // whatever is stored now, in the order the store serialises writes.
            let blind_write = update.base_version.is_none() && update.client_time_ms.is_none();
            let base_version =
                if blind_write { Some(current.as_ref().map_or(0, |score| score.version)) } else { update.base_version };
            let edit = ScoreEdit { base_version, client_time_ms: update.client_time_ms };
            let decision = conflict::decide(current.as_ref().map(ScoreRecord::revision).as_ref(), &edit, now);
            let stored = match &decision {
                Decision::Stale { base_version, .. } => {
                    return Err(SportsError::Stale { base_version: *base_version, current: Box::new(current) });
                }
                Decision::KeepServer { .. } => {
                    let Some(current) = current else { return Err(SportsError::Contended) };
                    if let Some(conflict) = decision.conflict_record() {
                        let entry = conflict_entry(&m, &actor.user, now, &conflict, &update.sets);
                        self.store.append_group(AppendGroup::single(Self::log_entry(layout::conflicts(t), &entry))).await?;
                    }
                    return Err(SportsError::KeptServer { current: Box::new(current) });
                }
                Decision::Apply { stored } | Decision::ApplyOverwriting { stored, .. } => *stored,
            };
            let score = ScoreRecord {
                tournament_id: t.to_string(),
                match_id: m.clone(),
                division_id: record.division_id.clone(),
                home_team_id: record.home_team_id.clone(),
                away_team_id: record.away_team_id.clone(),
                court_id: record.court_id.clone(),
                sets: update.sets.clone(),
                status: accepted.status,
                state: accepted.state,
                version: stored.version,
                updated_at_ms: stored.updated_at_ms,
                updated_by: actor.user.clone(),
            };
            let previous_status = current.as_ref().map_or(MatchStatus::Scheduled, |c| c.status);
            let change = ScoreChange {
                version: score.version,
                at_ms: now,
                by: actor.user.clone(),
                previous_sets: current.as_ref().map(|c| c.sets.clone()).unwrap_or_default(),
                sets: score.sets.clone(),
                previous_status,
                status: score.status,
                op_id: update.op_id.clone(),
            };
            let event = json!({ "type": "score", "score": score });
            let mut requests = vec![
                AppendRequest { idempotency_key: update.op_id.clone(), ..Self::record(state_channel.clone(), "score", &score) },
                Self::log_entry(layout::score_history(t, &m), &change),
                self.public(layout::match_channel(t, &m), Some("score"), &event),
                self.public(layout::scores(t), Some(&m), &event),
                self.public(layout::division(t, &record.division_id), None, &event),
            ];
            if let Some(court) = &record.court_id {
                requests.push(self.public(layout::court(t, court), None, &event));
            }
            if previous_status != score.status {
                let status = json!({ "type": "match_status", "matchId": m, "status": score.status, "winner": score.state.winner });
                requests.push(self.public(layout::schedule(t), None, &status));
            }
            // Seed 000's bracket update, keyed by match: who advances — set when a match is won
            // or a won match is corrected, withdrawn when a won match is reopened.
            let was_result = current.as_ref().filter(|c| c.status == MatchStatus::Completed);
            if score.status == MatchStatus::Completed {
                if was_result.is_none_or(|c| c.sets != score.sets) {
                    let winner_team = match score.state.winner {
                        Some(scoring::Side::Home) => Some(&score.home_team_id),
                        Some(scoring::Side::Away) => Some(&score.away_team_id),
                        None => None,
                    };
                    let result = json!({
                        "type": "match_result", "matchId": m, "divisionId": score.division_id,
                        "winnerTeamId": winner_team, "sets": score.sets,
                    });
                    requests.push(self.public(layout::brackets(t), Some(&m), &result));
                }
            } else if was_result.is_some() {
                let reopened = json!({ "type": "match_result_withdrawn", "matchId": m, "status": score.status });
                requests.push(AppendRequest { remove_key: true, ..self.public(layout::brackets(t), Some(&m), &reopened) });
            }
            if let Some(conflict) = decision.conflict_record() {
                requests.push(Self::log_entry(layout::conflicts(t), &conflict_entry(&m, &actor.user, now, &conflict, &update.sets)));
            }
            let group = AppendGroup {
                requests,
                expected: vec![
                    ExpectedPosition { channel: state_channel.clone(), position: match_position },
                    ExpectedPosition { channel: layout::claim(t, &m), position: claim_position },
                ],
            };
            match self.store.append_group(group).await {
                Ok(appended) => {
                    let duplicate = appended.first().is_some_and(|a| a.duplicate);
                    let score = match (appended.first(), &update.op_id) {
                        (Some(first), Some(op_id)) if duplicate => same_operation(t, &update, op_id, decode(&first.publication.data)?)?,
                        _ => score,
                    };
                    return Ok(ScoreOutcome { score, duplicate });
                }
                Err(StoreError::Conflict(_)) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(SportsError::Contended)
    }

    /// The match's current score (`None` before the first update).
    pub async fn score(&self, t: &str, m: &str) -> Result<Option<ScoreRecord>, SportsError> {
        Ok(self.match_record(t, m).await?.1)
    }

    /// Every current score of the tournament, optionally of one team or division.
    pub async fn scores(&self, t: &str, team_id: Option<&str>, division_id: Option<&str>) -> Result<Vec<ScoreRecord>, SportsError> {
        self.tournament(t).await?;
        let keyed = self.keyed(&layout::scores(t)).await?;
        let mut scores = Vec::with_capacity(keyed.entries.len());
        for publication in keyed.entries.values() {
            #[derive(Deserialize)]
            struct Event {
                score: ScoreRecord,
            }
            let score = decode::<Event>(&publication.data)?.score;
            let team_matches = team_id.is_none_or(|team| score.home_team_id == team || score.away_team_id == team);
            if team_matches && division_id.is_none_or(|division| score.division_id == division) {
                scores.push(score);
            }
        }
        Ok(scores)
    }

    /// A page of the match's score history, oldest first: `limit` entries after the first
    /// `offset`.
    pub async fn score_history(&self, t: &str, m: &str, limit: usize, offset: u64) -> Result<HistoryPageOut, SportsError> {
        self.match_record(t, m).await?;
        // Offsets are stored as signed 64-bit numbers; anything past the end is past the end.
        let offset = offset.min(i64::MAX as u64);
        let page = self
            .store
            .read(&layout::score_history(t, m), HistoryQuery::After { offset, limit: limit.min(HISTORY_PAGE_MAX) })
            .await?;
        let changes = page.publications.iter().map(|p| decode(&p.data)).collect::<Result<_, _>>()?;
        Ok(HistoryPageOut { changes, total: page.top.offset })
    }

    /// Every recorded crossing of edits in the tournament (directors only).
    pub async fn conflicts(&self, actor: &Actor, t: &str, limit: usize, offset: u64) -> Result<Vec<ConflictEntry>, SportsError> {
        check_id("tournament", t)?;
        require(actor.is_director_in(t), "only a director may list conflicts")?;
        self.tournament(t).await?;
        let page =
            self.store.read(&layout::conflicts(t), HistoryQuery::After { offset: offset.min(i64::MAX as u64), limit: limit.min(HISTORY_PAGE_MAX) }).await?;
        page.publications.iter().map(|p| decode(&p.data)).collect()
    }

    // ---------------------------------------------------------------------------------------
    // Announcements and coverage plans

    pub async fn announce(
        &self,
        actor: &Actor,
        t: &str,
        priority: Priority,
        title: &str,
        body: &str,
    ) -> Result<Announcement, SportsError> {
        check_id("tournament", t)?;
        require(actor.is_official_in(t), "only staff or a director may announce")?;
        check_name("title", title)?;
        self.tournament(t).await?;
        let now = self.now();
        let channel = layout::announcements(t);
        let announcement = Announcement {
            id: format!("a{now:x}-{:x}", announcement_sequence()),
            tournament_id: t.to_string(),
            priority,
            title: title.to_string(),
            body: body.to_string(),
            at_ms: now,
            by: actor.user.clone(),
        };
        let request = self.public(channel, None, &json!({ "type": "announcement", "announcement": announcement }));
        self.store.append_group(AppendGroup::single(request)).await?;
        Ok(announcement)
    }

    pub async fn coverage_plan(&self, actor: &Actor, t: &str) -> Result<Vec<String>, SportsError> {
        self.tournament(t).await?;
        Ok(self.keyed(&layout::coverage(t)).await?.get(&actor.user)?.unwrap_or_default())
    }

    pub async fn set_coverage_plan(&self, actor: &Actor, t: &str, matches: Vec<String>) -> Result<Vec<String>, SportsError> {
        check_id("tournament", t)?;
        for m in &matches {
            check_id("match", m)?;
        }
        self.tournament(t).await?;
        let request = Self::record(layout::coverage(t), &actor.user, &matches);
        self.store.append_group(AppendGroup::single(request)).await?;
        Ok(matches)
    }

    pub async fn clear_coverage_plan(&self, actor: &Actor, t: &str) -> Result<(), SportsError> {
        self.tournament(t).await?;
        let request = AppendRequest { remove_key: true, ..Self::record(layout::coverage(t), &actor.user, &Vec::<String>::new()) };
        self.store.append_group(AppendGroup::single(request)).await?;
        Ok(())
    }
}

/// Counts announcements made by this process, so ids made in the same millisecond differ.
fn announcement_sequence() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

fn require(allowed: bool, why: &str) -> Result<(), SportsError> {
    if allowed { Ok(()) } else { Err(SportsError::Forbidden(why.to_string())) }
}

/// Longest name or title, in characters (as JSON Schema's `maxLength` counts).
pub const NAME_LEN_MAX: usize = 200;

/// A name or title (`field`): 1 to [`NAME_LEN_MAX`] characters, not only spaces, tabs and line
/// breaks (the OpenAPI document says the same with a pattern every regex dialect reads alike).
fn check_name(field: &str, name: &str) -> Result<(), SportsError> {
    let blank = name.chars().all(|c| matches!(c, ' ' | '\t' | '\r' | '\n'));
    if blank || name.chars().count() > NAME_LEN_MAX {
        return Err(SportsError::InvalidField {
            field: field.into(),
            message: format!("must be 1 to {NAME_LEN_MAX} characters, not only spaces and line breaks"),
        });
    }
    Ok(())
}

/// Longest client operation id, in characters.
pub const OP_ID_LEN_MAX: usize = 128;

fn check_op_id(op_id: &str) -> Result<(), SportsError> {
    if op_id.is_empty() || op_id.chars().count() > OP_ID_LEN_MAX || op_id.chars().any(char::is_control) {
        return Err(SportsError::InvalidField {
            field: "opId".into(),
            message: format!("must be 1 to {OP_ID_LEN_MAX} characters without control characters"),
        });
    }
    Ok(())
}

/// The first answer to `op_id`, if `update` is that operation again: the same match, the same
/// sets and a status that was stored as the first one was (a won match sent as in progress is
/// stored as completed); anything else reuses the id for another edit.
fn same_operation(t: &str, update: &ScoreUpdate, op_id: &str, first: ScoreRecord) -> Result<ScoreRecord, SportsError> {
    let same_status = update.status == first.status
        || (update.status == MatchStatus::InProgress && first.status == MatchStatus::Completed && first.state.completed);
    if first.tournament_id == t && first.match_id == update.match_id && first.sets == update.sets && same_status {
        Ok(first)
    } else {
        Err(SportsError::OpIdReused { op_id: op_id.to_string() })
    }
}

fn conflict_entry(m: &str, editor: &str, now: i64, record: &conflict::ConflictRecord, sets: &[SetScore]) -> ConflictEntry {
    ConflictEntry {
        match_id: m.to_string(),
        kind: record.kind,
        at_ms: now,
        editor: editor.to_string(),
        edit_time_ms: record.edit_time_ms,
        server_version: record.server.version,
        server_updated_at_ms: record.server.updated_at_ms,
        sets_sent: sets.to_vec(),
    }
}

/// One tournament, whole: what `courtside export` writes and `courtside import` reads. Importing
/// an export and exporting again gives the same document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TournamentExport {
    /// The document's format; this build reads and writes 1.
    pub format_version: u32,
    pub tournament: Tournament,
    pub divisions: Vec<Division>,
    pub teams: Vec<Team>,
    pub courts: Vec<Court>,
    pub matches: Vec<MatchExport>,
    pub conflicts: Vec<ConflictEntry>,
    /// Announcements still in the channel's history (its namespace's retention), oldest first.
    pub announcements: Vec<serde_json::Value>,
    /// Coverage plans by user.
    pub coverage_plans: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MatchExport {
    pub record: Match,
    pub score: Option<ScoreRecord>,
    pub history: Vec<ScoreChange>,
    pub claim: ClaimState,
}

/// The export document version this build writes.
pub const EXPORT_FORMAT_VERSION: u32 = 1;

impl SportsService {
    async fn read_all(&self, channel: &ChannelName) -> Result<Vec<Publication>, SportsError> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let page = self.store.read(channel, HistoryQuery::After { offset: after, limit: HISTORY_PAGE_MAX }).await?;
            let Some(last) = page.publications.last() else { return Ok(all) };
            after = last.offset;
            all.extend(page.publications);
        }
    }

    /// One match's record, score, history and claim as of one moment: read again if the match
    /// or its claim changed while they were read (a score during play, say).
    async fn export_match(&self, t: &str, m: &str) -> Result<MatchExport, SportsError> {
        for _ in 0..ATTEMPTS_MAX {
            let (record, score, before) = self.match_record(t, m).await?;
            let (claim, claim_before) = self.claim_state(t, m).await?;
            let history = self.read_all(&layout::score_history(t, m)).await?;
            let history = history.iter().map(|p| decode(&p.data)).collect::<Result<_, _>>()?;
            let (_, _, after) = self.match_record(t, m).await?;
            let (_, claim_after) = self.claim_state(t, m).await?;
            if before == after && claim_before == claim_after {
                return Ok(MatchExport { record, score, history, claim });
            }
        }
        Err(SportsError::Contended)
    }

    /// Everything the tournament holds (directors only). Each match is consistent in itself;
    /// export a tournament that is not being played for one consistent whole.
    pub async fn export(&self, actor: &Actor, t: &str) -> Result<TournamentExport, SportsError> {
        check_id("tournament", t)?;
        require(actor.is_director_in(t), "only a director may export a tournament")?;
        let tournament = self.tournament(t).await?;
        let registry = self.registry(t).await?;
        let mut matches = Vec::with_capacity(registry.matches.len());
        for listed in &registry.matches {
            matches.push(self.export_match(t, &listed.id).await?);
        }
        let conflicts = self.read_all(&layout::conflicts(t)).await?.iter().map(|p| decode(&p.data)).collect::<Result<_, _>>()?;
        let announcements =
            self.read_all(&layout::announcements(t)).await?.iter().map(|p| decode(&p.data)).collect::<Result<_, _>>()?;
        let coverage = self.keyed(&layout::coverage(t)).await?;
        let mut coverage_plans = BTreeMap::new();
        for (user, publication) in &coverage.entries {
            coverage_plans.insert(user.clone(), decode(&publication.data)?);
        }
        Ok(TournamentExport {
            format_version: EXPORT_FORMAT_VERSION,
            tournament,
            divisions: registry.divisions,
            teams: registry.teams,
            courts: registry.courts,
            matches,
            conflicts,
            announcements,
            coverage_plans,
        })
    }

    /// Recreates an exported tournament in one atomic step (directors only); refused if a
    /// tournament with its id exists. Subscribers of its public channels see the current scores
    /// and the schedule as publications.
    pub async fn import(&self, actor: &Actor, export: TournamentExport) -> Result<Tournament, SportsError> {
        require(actor.is_director(), "only a director may import a tournament")?;
        if export.format_version != EXPORT_FORMAT_VERSION {
            return Err(SportsError::InvalidField {
                field: "formatVersion".into(),
                message: format!("this server reads version {EXPORT_FORMAT_VERSION}, not {}", export.format_version),
            });
        }
        let t = export.tournament.id.clone();
        check_id("tournament", &t)?;
        check_name("tournament.name", &export.tournament.name)?;
        if let Some(format) = &export.tournament.default_format {
            format.validate()?;
        }
        let registry = layout::registry(&t);
        let mut requests = Vec::new();
        for division in &export.divisions {
            check_id("division", &division.id)?;
            check_name("divisions.name", &division.name)?;
            requests.push(Self::record(registry.clone(), &format!("division/{}", division.id), division));
        }
        for team in &export.teams {
            check_id("team", &team.id)?;
            check_name("teams.name", &team.name)?;
            if let Some(division) = &team.division_id {
                check_id("division", division)?;
            }
            requests.push(Self::record(registry.clone(), &format!("team/{}", team.id), team));
        }
        for court in &export.courts {
            check_id("court", &court.id)?;
            check_name("courts.name", &court.name)?;
            requests.push(Self::record(registry.clone(), &format!("court/{}", court.id), court));
        }
        for exported in &export.matches {
            let m = &exported.record.id;
            Self::check_match_ids(&t, &exported.record)?;
            if let Some(format) = &exported.record.format {
                format.validate()?;
            }
            requests.push(Self::record(registry.clone(), &format!("match/{m}"), &exported.record));
            requests.push(Self::record(layout::match_state(&t, m), "record", &exported.record));
            requests.push(self.public(layout::schedule(&t), Some(m), &json!({ "type": "match", "match": exported.record })));
            if let Some(score) = &exported.score {
                requests.push(Self::record(layout::match_state(&t, m), "score", score));
                let event = json!({ "type": "score", "score": score });
                requests.push(self.public(layout::match_channel(&t, m), Some("score"), &event));
                requests.push(self.public(layout::scores(&t), Some(m), &event));
            }
            for change in &exported.history {
                requests.push(Self::log_entry(layout::score_history(&t, m), change));
            }
            requests.push(Self::record(layout::claim(&t, m), "state", &exported.claim));
            if let Some(claim) = &exported.claim.claim {
                requests.push(Self::record(layout::claims(&t), m, claim));
            }
        }
        for conflict in &export.conflicts {
            requests.push(Self::log_entry(layout::conflicts(&t), conflict));
        }
        for announcement in &export.announcements {
            requests.push(self.public(layout::announcements(&t), None, announcement));
        }
        for (user, plan) in &export.coverage_plans {
            requests.push(Self::record(layout::coverage(&t), user, plan));
        }
        let events = layout::events();
        for _ in 0..ATTEMPTS_MAX {
            let existing = self.keyed(&events).await?;
            if existing.entries.contains_key(&t) {
                return Err(SportsError::AlreadyExists { what: "tournament", id: t });
            }
            let mut group = requests.clone();
            group.push(Self::record(events.clone(), &t, &export.tournament));
            let group = AppendGroup {
                requests: group,
                expected: vec![ExpectedPosition { channel: events.clone(), position: existing.position }],
            };
            if self.try_append(group).await?.is_some() {
                return Ok(export.tournament);
            }
        }
        Err(SportsError::Contended)
    }
}
