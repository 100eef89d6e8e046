//! Transports: how sessions and cursors meet sockets.
//! - [`ws`]: the bidirectional WebSocket transport (protocol v1).
//! - [`sse`]: read-only Server-Sent Events with `Last-Event-ID` resume.
//! - [`socketio`]: Socket.IO clients (Engine.IO long-polling and WebSocket) with resume.

pub mod socketio;
pub mod sse;
pub mod ws;
