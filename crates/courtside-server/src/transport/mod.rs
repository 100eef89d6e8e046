//! Transports: how sessions and cursors meet sockets.
//! - [`ws`]: the bidirectional WebSocket transport (protocol v1).
//! - [`sse`]: read-only Server-Sent Events with `Last-Event-ID` resume.
//! - [`socketio`]: Socket.IO clients (Engine.IO long-polling and WebSocket) with resume.
//! - [`linger`]: the lingering close of every accepted connection, so that what the server
//!   wrote last (a close frame, an error response) is not lost to a reset.
//! - [`tls`]: the optional TLS listener over it, its certificate reloaded without a restart.

pub mod linger;
pub mod socketio;
pub mod sse;
pub mod tls;
pub mod ws;
