//! The operator's endpoint: `POST /api/maintenance` announces maintenance to every connection
//! of this node — native, SSE and Socket.IO get the `system_notification` notice — and closes
//! them when its time is up, with a code that tells clients to reconnect (3006). Directors and
//! the app backend (API key) may call it; SIGTERM does the same with
//! `maintenance_notice_secs` before the server stops.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;

use crate::http::{ApiError, optional_json, require_director};
use crate::protocol::ClientError;
use crate::schemas::ErrorBody;
use crate::state::ServerState;

/// Longest notice, in seconds.
pub const NOTICE_SECS_MAX: u64 = 3600;
/// Longest message, in characters.
pub const MESSAGE_CHARS_MAX: usize = 500;
/// The notice when the request names none.
pub const DEFAULT_MESSAGE: &str = "Server maintenance: you will be reconnected shortly";
/// The notice's duration when the request names none (seed 004's 30 s).
pub const DEFAULT_NOTICE_SECS: u64 = 30;

pub fn routes() -> Router<Arc<ServerState>> {
    Router::new().route("/api/maintenance", post(announce))
}

/// What to announce.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct MaintenanceBody {
    /// What connections are told (default: a generic maintenance message).
    #[schema(min_length = 1, max_length = 500)]
    message: Option<String>,
    /// Seconds until connections are closed (default 30).
    #[schema(minimum = 0, maximum = 3600)]
    duration_secs: Option<u64>,
}

/// The notice every connection receives.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub(crate) struct NoticeDoc {
    /// `MAINTENANCE`
    r#type: String,
    message: String,
    /// `warning`
    severity: String,
    /// When it was announced (ISO 8601 UTC).
    timestamp: String,
    /// Milliseconds until connections are closed.
    duration: u64,
}

#[utoipa::path(
    post,
    path = "/api/maintenance",
    operation_id = "announce_maintenance",
    tag = "operations",
    summary = "Announce maintenance to every connection of this node, then close them",
    request_body(content = Option<MaintenanceBody>, description = "Optional; without a body the defaults apply"),
    responses((status = 202, description = "Announced: the notice every connection got", body = NoticeDoc), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = [])),
)]
pub(crate) async fn announce(State(state): State<Arc<ServerState>>, headers: HeaderMap, body: axum::body::Bytes) -> Result<Response, ApiError> {
    require_director(&state, &headers)?;
    let body: MaintenanceBody = optional_json(&body)?;
    let message = body.message.unwrap_or_else(|| DEFAULT_MESSAGE.to_string());
    if message.is_empty() || message.chars().count() > MESSAGE_CHARS_MAX {
        return Err(ClientError::BadRequest(format!("`message` must be 1 to {MESSAGE_CHARS_MAX} characters")).into());
    }
    let secs = body.duration_secs.unwrap_or(DEFAULT_NOTICE_SECS);
    if secs > NOTICE_SECS_MAX {
        return Err(ClientError::BadRequest(format!("`durationSecs` must be at most {NOTICE_SECS_MAX}")).into());
    }
    let maintenance = state.announce_maintenance(message, Duration::from_secs(secs), true);
    tracing::info!(secs, "maintenance announced");
    Ok((StatusCode::ACCEPTED, Json(&maintenance.notice)).into_response())
}
