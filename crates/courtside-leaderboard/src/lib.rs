//! Courtside's leaderboards and ratings: boards of players ranked by score, kept durably in the
//! stream store, with the rank changes a score causes for the players who are listening, and ELO
//! ratings from match results.
//!
//! # Layout
//! - [`ranking`]: [`ranking::Ranking`], one board season's order-statistic index (rank, top N,
//!   pages, around a player) in memory.
pub mod ranking;
pub mod board;
pub mod calendar;
pub mod elo;
pub mod changes;
