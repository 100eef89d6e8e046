//! Courtside's server: the only crate that speaks HTTP, WebSocket, SSE and JSON.
//!
//! # Layout, in layers (each uses only the layers above it)
//! 1. Wire and settings: [`json`] (JSON shape checks: structs from objects only, payload
//!    nesting depth), [`protocol`] (wire protocol v1: commands, replies, pushes, error and
//!    disconnect codes), [`payload_schema`] (JSON Schema checks of publication payloads, per
//!    namespace), [`config`] (the configuration model, defaults, layered loading),
//!    [`rate_limit`] (token buckets and per-caller limits), [`metrics`], [`event_map`] (the
//!    Socket.IO event maps of the configuration, checked and compiled, and their templates).
//! 2. Identity: [`auth`] (JWT, the API key, generated secrets), [`accounts`] (users, sign-in,
//!    rotating refresh tokens).
//! 3. Shared state and the bottom of HTTP: [`state`] (what every handler and connection
//!    shares), [`http`] (the one error shape and status mapping, who the caller is, CORS, the
//!    rate-limit middleware), [`schemas`] (the documented shapes of bodies and errors).
//! 4. Connections and pushes: [`session`] (one native connection's state machine,
//!    transport-independent), [`leaderboard_feed`] (top-N views and rank pushes the node
//!    writes for followers), [`expiry`] (removing idle channels and expired sign-in records).
//! 5. Routes and transports: [`api`] (server API, health, readiness, metrics), [`sports_api`],
//!    [`leaderboard_api`], [`auth_api`], [`admin_api`] (maintenance notices), [`transport`]
//!    (WebSocket, SSE, Socket.IO).
//! 6. Assembly: [`router`] (the route table), [`openapi`] (the document, from the routes'
//!    annotations), [`server`] (wiring, serving, graceful shutdown).
//!
//! # Architecture invariants
//! - Imports point up this list only: no module names one below it, so there is no import
//!   circle (a route or transport never names the router or the server).
//! - Client-visible errors are [`protocol::ClientError`] (and [`protocol::Disconnect`] for
//!   closes), the sports domain's `SportsError` and the leaderboards' `LeaderboardError`; each is
//!   mapped to its code or HTTP status in exactly one place ([`http`], [`sports_api`],
//!   [`leaderboard_api`]).
//! - Publications are encoded once per publication and wire format (native, Socket.IO) and
//!   shared by every subscriber that speaks it.

pub mod accounts;
pub mod admin_api;
pub mod api;
pub mod auth;
pub mod auth_api;
pub mod config;
pub mod event_map;
pub mod expiry;
pub mod guard;
pub mod histogram;
pub mod hooks;
pub mod http;
pub mod json;
pub mod leaderboard_api;
pub mod leaderboard_feed;
pub mod metrics;
pub mod openapi;
pub mod pages;
pub mod payload_schema;
pub mod protocol;
pub mod quotas;
pub mod rate_limit;
pub mod router;
pub mod schemas;
pub mod server;
pub mod session;
pub mod sports_api;
pub mod state;
pub mod transport;

pub use config::{Config, ConfigOverrides};
pub use server::{run_until_signal, start, RunningServer};
