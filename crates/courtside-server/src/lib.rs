//! Courtside's server: the only crate that speaks HTTP, WebSocket, SSE and JSON.
//!
//! # Layout
//! - [`config`]: the configuration model, its defaults and layered loading.
//! - [`auth`]: JWT verification and minting, the server API key, generated secrets.
//! - [`accounts`]: users (Argon2id), login, rotating refresh tokens with reuse detection.
//! - [`auth_api`]: `/api/auth/login`, `/api/auth/refresh` and `/api/users` over HTTP.
//! - [`protocol`]: wire protocol v1 — command decoding, reply/push encoding, error and
//!   disconnect codes.
//! - [`session`]: one connection's state machine (transport-independent).
//! - [`transport`]: WebSocket and SSE, driving sessions and cursors over sockets.
//! - [`api`]: the HTTP routes — server API, health, readiness, metrics.
//! - [`sports_api`]: the sports REST API (seed 001's paths) over the domain's service.
//! - [`metrics`]: Prometheus counters and the delivery latency histogram.
//! - [`openapi`]: the OpenAPI 3.1 document of the HTTP API (`/openapi.json`) and its Markdown.
//! - [`rate_limit`]: token buckets, per connection and per caller and endpoint on the HTTP API.
//! - [`server`]: wiring, serving and graceful shutdown.
//!
//! # Architecture invariants
//! - Client-visible errors are [`protocol::ClientError`] (and [`protocol::Disconnect`] for
//!   closes), and the sports domain's `SportsError`; each is mapped to its code or HTTP status in
//!   exactly one place ([`api`], [`sports_api`]).
//! - Publications are encoded once per publication and shared by every subscriber.

pub mod accounts;
pub mod api;
pub mod auth;
pub mod auth_api;
pub mod config;
pub mod metrics;
pub mod openapi;
pub mod protocol;
pub mod rate_limit;
pub mod server;
pub mod session;
pub mod sports_api;
pub mod transport;

pub use config::{Config, ConfigOverrides};
pub use server::{run_until_signal, start, RunningServer};
