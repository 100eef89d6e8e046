//! Conformance suites: one set of checks per seam that every implementation must pass with the
//! same results. A backend's tests call the suite with a function that opens a fresh instance.
//!
//! - [`store`]: `StreamStore` (memory, SQLite, PostgreSQL).
//! - [`broker`]: `Broker` (in-process, Redis).
//! - [`presence`]: `PresenceStore` (memory, Redis, PostgreSQL).
//! - [`limiter`]: `LimiterBackend` (memory, Redis, PostgreSQL).
//! - [`load`]: the append load behind each store's throughput example.

pub mod broker;
pub mod limiter;
pub mod load;
pub mod presence;
pub mod store;

pub use store::{request, stream_store, RecordingSink, RETAIN_ALL};
