//! The route table: every HTTP route, the WebSocket, SSE and Socket.IO endpoints and the
//! OpenAPI document on one listener, with the body limit and CORS. The top of the HTTP layer: it
//! names every route module; none of them names it.

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{middleware, Router};

use crate::api::{broadcast, channels, health, history, metrics, presence, publish, ready, rpc};
use crate::http::{cors, method_not_allowed, not_found, rate_limited, BODY_BYTES_MAX};
use crate::state::ServerState;
use crate::transport::{socketio, sse, ws};

/// The whole HTTP surface of a server over `state`.
pub fn router(state: Arc<ServerState>) -> Router {
    let cors = cors(&state.config);
    // Opening a connection, on any transport, counts against the client address's `connect` limit.
    let connections = Router::new()
        .route("/ws", get(ws::upgrade))
        .route("/sse", get(sse::stream))
        .merge(socketio::routes())
        .route_layer(middleware::from_fn_with_state(state.clone(), rate_limited));
    Router::new()
        .merge(connections)
        .route("/api/publish", post(publish))
        .route("/api/broadcast", post(broadcast))
        .route("/api/rpc", post(rpc))
        .route("/api/history", get(history))
        .route("/api/presence", get(presence))
        .route("/api/channels", get(channels))
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(crate::openapi::serve_document))
        .merge(crate::sports_api::routes(state.clone()))
        .merge(crate::leaderboard_api::routes(state.clone()))
        .merge(crate::auth_api::routes(state.clone()))
        .merge(crate::admin_api::routes())
        .merge(crate::pages::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(BODY_BYTES_MAX))
        .layer(cors)
        .with_state(state)
}
