//! Socket.IO (protocol 5 over Engine.IO 4, as socket.io-client 3.x and 4.x speak it) at
//! `/socket.io/`, on the same listener, node and permissions as the native protocol.
//!
//! - [`eio`]: Engine.IO packets and polling payloads.
//! - [`sio`]: Socket.IO packets.
//! - [`engine`]: Engine.IO sessions, long-polling, WebSocket and the upgrade between them.
//! - [`socket`]: the socket task — admission, the generic events, deliveries.
//! - [`recovery`]: the resume position every event carries.
//!
//! # Why not a Socket.IO crate
//! socketioxide speaks the protocol well, but it cannot resume: it has no connection-state
//! recovery (its CONNECT reply carries no private id, so socket.io-client never sends back the
//! offset it kept) and it encodes every event per socket from a serde value. Courtside needs
//! both: a reconnecting client must get exactly what it missed, on any node and after a restart,
//! and a publication's bytes must be written once and copied, not serialised again per socket.
//! The protocol surface a server needs is small (five Engine.IO and five Socket.IO packet
//! types, text only), so it is spoken here directly, with fuzzed decoders.

pub mod engine;
pub mod eio;
pub mod recovery;
pub mod sio;
pub mod socket;

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{FromRequestParts, Query, State, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use courtside_core::hub;

use crate::http::ApiError;
use crate::protocol::ClientError;
use crate::state::ServerState;
use engine::{Engine, EngineError, EngineSession};
use eio::EioPacket;

/// The Engine.IO protocol revision spoken (socket.io-client 3.x and 4.x).
const ENGINE_IO_VERSION: &str = "4";

/// The `/socket.io/` routes, with this server's session table.
pub fn routes() -> Router<Arc<ServerState>> {
    let engine = Arc::new(Engine::default());
    Router::new()
        .route("/socket.io/", get(get_request).post(post_request))
        .layer(Extension(engine))
}

type Params = HashMap<String, String>;

/// A WebSocket upgrade, if the request is one.
struct MaybeUpgrade(Option<WebSocketUpgrade>);

impl<S: Send + Sync> FromRequestParts<S> for MaybeUpgrade {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(MaybeUpgrade(WebSocketUpgrade::from_request_parts(parts, state).await.ok()))
    }
}

async fn get_request(
    State(state): State<Arc<ServerState>>,
    Extension(engine): Extension<Arc<Engine>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    MaybeUpgrade(upgrade): MaybeUpgrade,
) -> Response {
    if let Err(refused) = check_request(&state, &params, &headers) {
        return refused;
    }
    let sid = params.get("sid");
    match (params.get("transport").map(String::as_str), sid) {
        (Some("polling"), None) => handshake(&state, &engine, &headers),
        (Some("polling"), Some(sid)) => {
            let Some(session) = engine.get(sid) else { return engine_error(EngineError::UnknownSid) };
            match engine::poll(&session, state.config.client.message_bytes_max).await {
                Ok(payload) => text(payload),
                Err(error) => engine_error(error),
            }
        }
        (Some("websocket"), sid) => {
            let Some(upgrade) = upgrade else { return engine_error(EngineError::BadRequest) };
            websocket(state, engine, upgrade, sid.map(String::as_str), &headers)
        }
        _ => engine_error(EngineError::UnknownTransport),
    }
}

async fn post_request(
    State(state): State<Arc<ServerState>>,
    Extension(engine): Extension<Arc<Engine>>,
    Query(params): Query<Params>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(refused) = check_request(&state, &params, &headers) {
        return refused;
    }
    if params.get("transport").map(String::as_str) != Some("polling") {
        return engine_error(EngineError::UnknownTransport);
    }
    let Some(sid) = params.get("sid") else { return engine_error(EngineError::BadHandshakeMethod) };
    let Some(session) = engine.get(sid) else { return engine_error(EngineError::UnknownSid) };
    if body.len() > state.config.client.message_bytes_max {
        session.close();
        return engine_error(EngineError::PayloadTooLarge);
    }
    let Ok(body) = std::str::from_utf8(&body) else {
        session.close();
        return engine_error(EngineError::BadRequest);
    };
    match engine::receive_payload(&session, body).await {
        Ok(()) => text("ok".to_string()),
        Err(error) => engine_error(error),
    }
}

/// The protocol version and the browser origin, checked on every request.
fn check_request(state: &ServerState, params: &Params, headers: &HeaderMap) -> Result<(), Response> {
    if params.get("EIO").map(String::as_str) != Some(ENGINE_IO_VERSION) {
        return Err(engine_error(EngineError::UnsupportedProtocolVersion));
    }
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    if origin.is_some_and(|o| !state.config.allows_origin(o)) {
        return Err(ApiError(ClientError::PermissionDenied).into_response());
    }
    Ok(())
}

/// `Authorization: Bearer <jwt>` of the request that opened the session.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim().to_string())
}

/// Heartbeat and size limits announced in the handshake.
fn handshake_packet(state: &ServerState, sid: &str, upgrades: &[&str]) -> String {
    let limits = &state.config.client;
    let ping_interval_ms = limits.ping_interval_secs * 1000;
    let ping_timeout_ms = limits.idle_timeout_secs.saturating_sub(limits.ping_interval_secs).max(1) * 1000;
    let handshake = eio::handshake_json(sid, upgrades, ping_interval_ms, ping_timeout_ms, limits.message_bytes_max);
    EioPacket::Open(handshake).to_string()
}

/// Opens a session on long-polling: the open packet is the answer.
fn handshake(state: &Arc<ServerState>, engine: &Arc<Engine>, headers: &HeaderMap) -> Response {
    let session = start_socket(state, engine, false, bearer_token(headers));
    text(handshake_packet(state, &session.sid, &["websocket"]))
}

/// Starts a session's socket task; returns the session.
fn start_socket(state: &Arc<ServerState>, engine: &Arc<Engine>, over_websocket: bool, header_token: Option<String>) -> Arc<EngineSession> {
    let limits = &state.config.client;
    let (session, incoming) = engine.open(over_websocket, limits.send_queue_bytes_max);
    let (outbox, inbox) = hub::bounded_outbox(limits.send_queue_len_max, limits.send_queue_bytes_max);
    let start = socket::SocketStart {
        state: state.clone(),
        engine: engine.clone(),
        session: session.clone(),
        incoming,
        header_token,
        outbox,
        inbox,
    };
    let task = state.tasks.token();
    tokio::spawn(async move {
        socket::run(start).await;
        drop(task);
    });
    session
}

/// A WebSocket: a new session on it, or the upgrade of a polling session.
fn websocket(state: Arc<ServerState>, engine: Arc<Engine>, upgrade: WebSocketUpgrade, sid: Option<&str>, headers: &HeaderMap) -> Response {
    let limits = &state.config.client;
    let message_bytes_max = limits.message_bytes_max;
    let (session, upgrading) = match sid {
        Some(sid) => match engine.get(sid) {
            // One WebSocket per session: a second upgrade is refused, as Engine.IO does.
            Some(session) if session.claim_websocket() => (session, true),
            Some(_) => return engine_error(EngineError::BadRequest),
            None => return engine_error(EngineError::UnknownSid),
        },
        None => {
            let session = start_socket(&state, &engine, true, bearer_token(headers));
            if session.send(handshake_packet(&state, &session.sid, &[])).is_err() {
                return engine_error(EngineError::BadRequest);
            }
            (session, false)
        }
    };
    let task = state.tasks.token();
    upgrade
        .read_buffer_size(limits.read_buffer_bytes)
        .write_buffer_size(0)
        .max_message_size(message_bytes_max * 4)
        .max_frame_size(message_bytes_max * 4)
        .on_upgrade(move |socket| async move {
            engine::run_websocket(socket, session, upgrading, message_bytes_max).await;
            drop(task);
        })
}

fn text(body: String) -> Response {
    let mut response = body.into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=UTF-8"));
    response
}

fn engine_error(error: EngineError) -> Response {
    let status = match error {
        EngineError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    let (code, message) = error.code_and_message();
    (status, axum::Json(serde_json::json!({ "code": code, "message": message }))).into_response()
}
