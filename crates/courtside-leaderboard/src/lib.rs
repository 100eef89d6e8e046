//! Courtside's leaderboards and ratings: boards of players ranked by score, kept durably in the
//! stream store, with the rank changes a score causes for the players who are listening, and ELO
//! ratings from match results.
//!
//! # Layout
//! - [`ranking`]: [`ranking::Ranking`], one board season's order-statistic index (rank, top N,
//!   pages, around a player) in memory.
//! - [`board`]: [`board::BoardSpec`] and the pure rules of a board: operators
//!   ([`board::apply`], checked), seasons, ids.
//! - [`calendar`]: UTC season names by integer date math.
//! - [`changes`]: [`changes::Listeners`]: which listening players a move passed.
//! - [`elo`]: ELO rating changes from a match result.
//! - [`layout`]: the internal channels a board lives in and the record each publication carries.
//! - [`season`]: [`season::SeasonIndex`], one board season as a node knows it: deciding a batch
//!   of operations, and applying committed publications (this node's or caught up).
//! - [`feed`]: what clients follow of a board — its public channel's top-N view and match
//!   results.
//! - [`listening`]: which players are registered for rank pushes (on every board).
//! - [`service`]: [`service::LeaderboardService`] over the `StreamStore` seam: batched
//!   compare-and-append writes, catch-up, queries, listeners.
//!
//! # Invariants
//! - Pure parts (`ranking`, `board`, `calendar`, `changes`, `elo`) have no I/O and no clock:
//!   times are the caller's `now_ms`.
//! - The index of a board season is a function of its channel's stream: every node that has
//!   read the same offset ranks every player the same way.
//! - Every write goes through `append_group` expecting the channel's top; the service opens
//!   nothing itself (store and clock are handed in).
//! - Client input (scores, ids, seasons, match results) is judged, never trusted: nothing panics
//!   or overflows on it. No wire format, HTTP or socket here.

pub mod board;
pub mod calendar;
pub mod changes;
pub mod elo;
pub mod feed;
pub mod layout;
pub mod listening;
pub mod ranking;
pub mod season;
pub mod service;

pub use board::{BoardSpec, Operator, ResetSchedule, ScoreError, SpecError, TieBreak};
pub use changes::RankChange;
pub use elo::{EloError, MatchResult, Outcome, RatingRules};
pub use feed::{FeedMessage, MatchPublished, TopView};
pub use ranking::{Order, Ranked, Score};
pub use season::ScoreUpdate;
pub use service::{LeaderboardError, LeaderboardService, MatchRecorded, Standings, Submitted, UpdateSink};
