//! The server API for app backends (publish, broadcast, history, presence, channels), health,
//! readiness and metrics. Errors are [`ClientError`]s, answered in the one shape of
//! [`crate::http`].

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use courtside_core::access::Principal;
use courtside_core::ChannelName;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

#[allow(unused_imports)] // named by the `utoipa::path` annotations
use crate::schemas::{BroadcastBodyDoc, BroadcastResultDoc, ChannelNameDoc, ChannelsDoc, ErrorBody, HistoryDoc, PresenceDoc, PublishBodyDoc, PublishResultDoc, RpcBodyDoc, RpcResultDoc};
use crate::http::{principal_from, ApiError};
use crate::protocol::{ClientError, HistoryParams, Publications, PublishParams, RpcResult};
use crate::state::ServerState;
use crate::guard::{history_checked, publish_checked, read_checked, rpc_checked};
use crate::hooks::{HookCaller, Transport};
use crate::session::{HistoryResult, PublishResult};

/// Most channels in one broadcast.
const BROADCAST_CHANNELS_MAX: usize = 1000;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PublishBody {
    channel: ChannelName,
    data: Box<RawValue>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    remove: bool,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

#[derive(Serialize)]
pub(crate) struct ChannelPublishResult<'a> {
    channel: &'a ChannelName,
    #[serde(flatten)]
    result: PublishResult<'a>,
}

#[utoipa::path(
    post,
    path = "/api/publish",
    tag = "channels",
    summary = "Publish one payload to a channel",
    request_body = PublishBodyDoc,
    responses((status = 200, description = "Stored and delivered, or the original of a repeated idempotency key", body = PublishResultDoc), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 413, description = "Payload too large", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = []), ()),
)]
pub(crate) async fn publish(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Result<Json<PublishBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let principal = principal_from(&state, &headers, None)?;
    let Json(body) = body?;
    let params = PublishParams {
        channel: body.channel.clone(),
        data: &body.data,
        key: body.key,
        remove: body.remove,
        event: body.event,
        idempotency_key: body.idempotency_key,
    };
    let appended = publish_checked(&state, &http_caller(&principal), params).await?;
    let result = PublishResult {
        epoch: appended.publication.epoch.as_str(),
        offset: appended.publication.offset,
        duplicate: appended.duplicate,
    };
    Ok(Json(ChannelPublishResult { channel: &body.channel, result }).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RpcBody {
    method: String,
    #[serde(default = "null_data")]
    data: Box<RawValue>,
}

fn null_data() -> Box<RawValue> {
    RawValue::NULL.to_owned()
}

/// An RPC call answered by the app's backend (the `rpc` hook; docs/hooks.md).
#[utoipa::path(
    post,
    path = "/api/rpc",
    tag = "channels",
    summary = "Call a method the app's backend answers",
    request_body = RpcBodyDoc,
    responses((status = 200, description = "The backend's answer", body = RpcResultDoc), (status = 400, description = "Bad request: not the documented JSON, an invalid method name, or RPC is not configured", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The app's backend refused", body = ErrorBody), (status = 413, description = "Payload too large", body = ErrorBody), (status = 503, description = "The app's backend did not answer", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = []), ()),
)]
pub(crate) async fn rpc(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Result<Json<RpcBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let principal = principal_from(&state, &headers, None)?;
    let Json(body) = body?;
    let data = rpc_checked(&state, &http_caller(&principal), &body.method, &body.data).await?;
    Ok(Json(RpcResult { data: &data }).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BroadcastBody {
    channels: Vec<ChannelName>,
    data: Box<RawValue>,
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    event: Option<String>,
    #[serde(default)]
    idempotency_key: Option<String>,
}

/// One payload to many channels. Each channel is published independently (each gets its own
/// offset); the response lists each channel's result or error, in request order.
#[utoipa::path(
    post,
    path = "/api/broadcast",
    tag = "channels",
    summary = "Publish one payload to up to 1000 channels",
    request_body = BroadcastBodyDoc,
    responses((status = 200, description = "One result or error per channel, in order", body = BroadcastResultDoc), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = []), ()),
)]
pub(crate) async fn broadcast(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    body: Result<Json<BroadcastBody>, JsonRejection>,
) -> Result<Response, ApiError> {
    let principal = principal_from(&state, &headers, None)?;
    let Json(body) = body?;
    if body.channels.is_empty() || body.channels.len() > BROADCAST_CHANNELS_MAX {
        return Err(ClientError::BadRequest(format!("`channels` must hold 1 to {BROADCAST_CHANNELS_MAX} channels")).into());
    }
    // One event name for every channel: refused once, before any channel is tried.
    if let Some(event) = &body.event {
        courtside_core::event::validate_event_name(event).map_err(|error| ClientError::BadRequest(error.to_string()))?;
    }
    let caller = http_caller(&principal);
    let publishes = body.channels.iter().map(|channel| {
        let params = PublishParams {
            channel: channel.clone(),
            data: &body.data,
            key: body.key.clone(),
            remove: false,
            event: body.event.clone(),
            idempotency_key: body.idempotency_key.clone(),
        };
        publish_checked(&state, &caller, params)
    });
    let outcomes = futures_util::future::join_all(publishes).await;
    let results: Vec<serde_json::Value> = body
        .channels
        .iter()
        .zip(outcomes)
        .map(|(channel, outcome)| match outcome {
            Ok(appended) => serde_json::to_value(ChannelPublishResult {
                channel,
                result: PublishResult {
                    epoch: appended.publication.epoch.as_str(),
                    offset: appended.publication.offset,
                    duplicate: appended.duplicate,
                },
            })
            .unwrap_or_default(),
            Err(error) => {
                let (status, code) = error.http();
                serde_json::json!({
                    "channel": channel,
                    "error": { "code": code, "status": status.as_u16(), "message": error.to_string() },
                })
            }
        })
        .collect();
    Ok(Json(serde_json::json!({ "results": results })).into_response())
}

#[utoipa::path(
    get,
    path = "/api/history",
    tag = "channels",
    summary = "A page of a channel's history",
    params(("channel" = ChannelNameDoc, Query, description = "The channel"), ("after" = Option<u64>, Query, description = "Publications after this offset; without it, the newest `limit`", minimum = 0, maximum = 9_223_372_036_854_775_807_i64), ("limit" = Option<u64>, Query, description = "At most this many (default 100)", minimum = 1, maximum = 1000)),
    responses((status = 200, description = "The page", body = HistoryDoc), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = []), ()),
)]
pub(crate) async fn history(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    query: Result<Query<HistoryParams>, QueryRejection>,
) -> Result<Response, ApiError> {
    let principal = principal_from(&state, &headers, None)?;
    let Query(params) = query?;
    let page = history_checked(&state, &http_caller(&principal), &params).await?;
    #[derive(Serialize)]
    struct Body<'a> {
        channel: &'a ChannelName,
        #[serde(flatten)]
        page: HistoryResult<'a>,
    }
    Ok(Json(Body {
        channel: &params.channel,
        page: HistoryResult {
            epoch: page.top.epoch.as_str(),
            offset: page.top.offset,
            earliest: page.earliest_offset,
            publications: Publications(&page.publications),
        },
    })
    .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChannelQuery {
    channel: ChannelName,
}

#[utoipa::path(
    get,
    path = "/api/presence",
    tag = "channels",
    summary = "Who is subscribed to a channel, across the cluster",
    params(("channel" = ChannelNameDoc, Query, description = "The channel")),
    responses((status = 200, description = "The clients", body = PresenceDoc), (status = 400, description = "Bad request: not the documented JSON, or an invalid id", body = ErrorBody), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 404, description = "Not found", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("bearer" = []), ("apikey" = []), ()),
)]
pub(crate) async fn presence(
    State(state): State<Arc<ServerState>>,
    headers: HeaderMap,
    query: Result<Query<ChannelQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let principal = principal_from(&state, &headers, None)?;
    let Query(ChannelQuery { channel }) = query?;
    let options = read_checked(&state, &http_caller(&principal), &channel).await?;
    if !options.presence {
        return Err(ClientError::BadRequest(format!("namespace {:?} keeps no presence", channel.namespace())).into());
    }
    let clients = state.node.presence(&channel).await.map_err(ClientError::from)?;
    let stats = state.node.presence_stats(&channel).await.map_err(ClientError::from)?;
    Ok(Json(serde_json::json!({ "channel": channel, "clients": clients, "stats": stats })).into_response())
}

/// Channels with subscribers on this node (server API key only).
#[utoipa::path(
    get,
    path = "/api/channels",
    tag = "channels",
    summary = "Channels with subscribers on this node (API key)",
    responses((status = 200, description = "The channels", body = ChannelsDoc), (status = 401, description = "No, a bad or an expired token", body = ErrorBody), (status = 403, description = "The caller may not do this", body = ErrorBody), (status = 503, description = "The store is unavailable, or the request kept meeting concurrent changes", body = ErrorBody)),
    security(("apikey" = [])),
)]
pub(crate) async fn channels(State(state): State<Arc<ServerState>>, headers: HeaderMap) -> Result<Response, ApiError> {
    match principal_from(&state, &headers, None)? {
        Principal::Server => {}
        Principal::Anonymous => return Err(ClientError::Unauthorized("this endpoint needs the API key".into()).into()),
        Principal::User { .. } => return Err(ClientError::PermissionDenied.into()),
    }
    let channels: Vec<_> = state
        .node
        .hub
        .channels()
        .into_iter()
        .map(|(channel, subscribers)| serde_json::json!({ "channel": channel, "subscribers": subscribers }))
        .collect();
    Ok(Json(serde_json::json!({ "channels": channels })).into_response())
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "operations",
    summary = "Liveness: the process answers",
    responses((status = 200, description = "`ok`")),
)]
pub(crate) async fn health() -> &'static str {
    "ok\n"
}

/// Ready while the node can take publishes: not shutting down and the store writable. A broker
/// that is reconnecting does not make a node unready (publishes still commit, and other nodes
/// repair what the broker missed from the store); it is reported in the body.
#[utoipa::path(
    get,
    path = "/ready",
    tag = "operations",
    summary = "Readiness: the store takes writes and the server is not shutting down",
    responses(
        (status = 200, description = "`ready`, or `ready (broker reconnecting)`", content_type = "text/plain", body = String),
        (status = 503, description = "`not ready: shutting down` (while connections drain) or `not ready: store unavailable`", content_type = "text/plain", body = String),
    ),
)]
pub(crate) async fn ready(State(state): State<Arc<ServerState>>) -> Response {
    if state.shutdown.is_cancelled() {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: shutting down\n").into_response();
    }
    if !state.node.store.ready().await {
        return (StatusCode::SERVICE_UNAVAILABLE, "not ready: store unavailable\n").into_response();
    }
    if !state.node.broker.ready().await {
        return (StatusCode::OK, "ready (broker reconnecting)\n").into_response();
    }
    (StatusCode::OK, "ready\n").into_response()
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "operations",
    summary = "Prometheus metrics (text)",
    responses((status = 200, description = "Metrics in the Prometheus text format")),
)]
pub(crate) async fn metrics(State(state): State<Arc<ServerState>>) -> Response {
    let mut body = state.metrics.render(&state.node);
    // Which node answered: the operations dashboard names it (each node has its own figures).
    body.push_str(&format!(
        "# HELP courtside_node_info This node's id among its peers (random per start).\n# TYPE courtside_node_info gauge\ncourtside_node_info{{node=\"{}\"}} 1\n",
        state.node_id
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// An HTTP request's caller, as the app's hooks are told.
fn http_caller(principal: &Principal) -> HookCaller<'_> {
    HookCaller { principal, transport: Transport::Http, client: None }
}
