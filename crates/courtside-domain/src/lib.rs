//! Courtside's sports-domain rules: how a match is scored and which scores are possible, what
//! happens when score edits cross or arrive late, and who may write a match's score.
//!
//! # Layout
//! - [`scoring`]: scoring formats and their presets; [`scoring::evaluate`] judges a score (where
//!   the match stands, or every rule it breaks, each with a path and a reason);
//!   [`scoring::check_status`] judges the status claimed for it.
//! - [`conflict`]: the rule for concurrent and offline edits ("latest timestamp wins, the server
//!   wins ties"): [`conflict::decide`] says what to store, what to answer and what to record.
//! - [`claim`]: scorekeeper claims with fencing tokens: [`claim::claim`], [`claim::release`],
//!   [`claim::authorize_write`].
//! - [`model`]: the records as stored and sent (camelCase JSON, as seed 001).
//! - [`layout`]: which store channels hold a tournament, public and internal.
//! - [`service`]: [`service::SportsService`], the domain over the `StreamStore` seam: every
//!   change stored and published to its channels in one atomic group that expects the positions
//!   it was decided on.
//!
//! # Invariants
//! - The rules (`scoring`, `conflict`, `claim`) are pure and deterministic: no I/O and no clock —
//!   every function that depends on time takes the caller's `now_ms`; the same inputs always
//!   give the same answer, on every node.
//! - The service opens nothing itself: the store and the clock are handed in. It decides with
//!   the pure rules and writes only through `append_group` with expected positions, so
//!   concurrent writers (on any node) never interleave.
//! - Client-controlled input (points, versions, times, tokens) is judged, never trusted: nothing
//!   here panics or overflows on it.
//! - Knows no wire format or HTTP status: types derive serde for the server to use, and the
//!   decisions say what to answer in words the server maps once.

pub mod claim;
pub mod conflict;
pub mod layout;
pub mod model;
pub mod scoring;
pub mod service;

pub use claim::{
    Claim, ClaimError, ClaimPolicy, ClaimPolicyError, FenceError, Release, ReleaseError,
};
pub use conflict::{
    ConflictKind, ConflictRecord, Decision, KeepServerReason, ScoreEdit, StoredRevision,
};
pub use scoring::{
    AcceptedScore, FormatError, MatchStatus, ScoreState, ScoreViolation, ScoringFormat,
    ScoringPreset, SetScore, Side, ViolationCode,
};
