//! What every transport checks before it acts for a client, in one place: whether it may read
//! a channel (the channel rules, then the app's subscribe hook), the checks of a publication
//! (rules, size, nesting depth, the app's publish hook, the payload schema), of a history read,
//! of an RPC call, and of a token replacing a connection's own. The WebSocket session, SSE,
//! Socket.IO and the HTTP API all call these, so a rule holds on every transport.

use std::sync::atomic::Ordering;

use bytes::Bytes;
use courtside_core::access::Principal;
use courtside_core::node::PublishRequest;
use courtside_core::store::HistoryQuery;
use courtside_core::{ChannelName, NamespaceOptions};
use courtside_domain::layout;
use serde_json::value::RawValue;

use crate::hooks::{HookCaller, HookedPublication};
use crate::protocol::{ClientError, HistoryParams, PublishParams};
use crate::state::ServerState;

/// Largest history page a client may ask for.
pub const HISTORY_LIMIT_MAX: usize = 1000;
const HISTORY_LIMIT_DEFAULT: usize = 100;

/// Whether `caller` may read `channel` (subscribe to it, read its history or presence): its
/// namespace's rules, then, where the namespace is hooked, the app's backend. The namespace's
/// options on success.
pub async fn read_checked<'s>(state: &'s ServerState, caller: &HookCaller<'_>, channel: &ChannelName) -> Result<&'s NamespaceOptions, ClientError> {
    let options = state.node.options(channel)?;
    if !caller.principal.may_subscribe(channel, options) {
        return Err(ClientError::PermissionDenied);
    }
    state.hooks.subscribe(caller, channel).await?;
    Ok(options)
}

/// Of the channels a connection follows, those `principal` may no longer subscribe to (after a
/// refresh changed its roles).
pub fn forbidden_now(state: &ServerState, principal: &Principal, followed: Vec<ChannelName>) -> Vec<ChannelName> {
    followed
        .into_iter()
        .filter(|channel| state.node.options(channel).map_or(true, |options| !principal.may_subscribe(channel, options)))
        .collect()
}

/// A token that replaces a connection's own: valid, and for the same user.
pub fn verify_refresh(state: &ServerState, principal: &Principal, token: &str) -> Result<crate::auth::VerifiedToken, ClientError> {
    let verified = state.auth.verify(token)?;
    if verified.principal.user_id() != principal.user_id() {
        return Err(ClientError::Unauthorized("a refreshed token must be for the same user".into()));
    }
    Ok(verified)
}

/// Checks permission, size and nesting depth, asks the app's publish hook (which may rewrite
/// the payload), checks the payload schema, then publishes. Nothing is stored unless every
/// check passed.
pub async fn publish_checked(
    state: &ServerState,
    caller: &HookCaller<'_>,
    params: PublishParams<'_>,
) -> Result<courtside_core::store::Appended, ClientError> {
    let principal = caller.principal;
    let options = state.node.options(&params.channel)?;
    if !principal.may_publish(&params.channel, options) {
        return Err(ClientError::PermissionDenied);
    }
    if layout::is_sports_owned(&params.channel) && !matches!(principal, Principal::Server) {
        // Scores and claims change through the sports API, which checks and records them.
        return Err(ClientError::PermissionDenied);
    }
    if params.remove && params.key.is_none() {
        return Err(ClientError::BadRequest("`remove` needs a `key`".into()));
    }
    payload_within_limits(state, params.data.get().as_bytes())?;
    let publication = HookedPublication { channel: &params.channel, key: params.key.as_deref(), event: params.event.as_deref(), data: params.data };
    let rewritten = state.hooks.publish(caller, publication).await?;
    let data = match &rewritten {
        Some(rewritten) => {
            payload_within_limits(state, rewritten.get().as_bytes())?;
            rewritten.get().as_bytes()
        }
        None => params.data.get().as_bytes(),
    };
    state.payload_schemas.check(&params.channel, data)?;
    // Frames are separated by `\n`. Valid JSON has line breaks only as whitespace between
    // tokens (inside strings they are escaped), so blanking them keeps the value intact.
    let data = if data.iter().any(|b| matches!(b, b'\n' | b'\r')) {
        Bytes::from(data.iter().map(|b| if matches!(b, b'\n' | b'\r') { b' ' } else { *b }).collect::<Vec<u8>>())
    } else {
        Bytes::copy_from_slice(data)
    };
    let appended = state
        .node
        .publish(PublishRequest {
            channel: params.channel,
            data,
            key: params.key,
            remove_key: params.remove,
            event: params.event,
            idempotency_key: params.idempotency_key,
        })
        .await?;
    state.metrics.client_publications_total.fetch_add(1, Ordering::Relaxed);
    Ok(appended)
}

/// A payload's size and nesting depth within the configured limits.
fn payload_within_limits(state: &ServerState, data: &[u8]) -> Result<(), ClientError> {
    let limit = state.config.client.publication_bytes_max;
    if data.len() > limit {
        return Err(ClientError::PayloadTooLarge { size: data.len(), limit });
    }
    let depth_max = state.config.client.payload_depth_max;
    if crate::json::nests_deeper_than(data, depth_max) {
        return Err(ClientError::BadRequest(format!("`data` nests arrays and objects deeper than {depth_max} levels")));
    }
    Ok(())
}

/// Checks that `caller` may read the channel and the page's limits, then reads history.
pub async fn history_checked(
    state: &ServerState,
    caller: &HookCaller<'_>,
    params: &HistoryParams,
) -> Result<courtside_core::stream::HistoryPage, ClientError> {
    let limit = params.limit.unwrap_or(HISTORY_LIMIT_DEFAULT);
    if limit == 0 || limit > HISTORY_LIMIT_MAX {
        return Err(ClientError::BadRequest(format!("`limit` must be between 1 and {HISTORY_LIMIT_MAX}")));
    }
    read_checked(state, caller, &params.channel).await?;
    let query = match params.after {
        Some(offset) => HistoryQuery::After { offset, limit },
        None => HistoryQuery::Latest { limit },
    };
    Ok(state.node.history(&params.channel, query).await?)
}

/// Longest RPC method name.
const RPC_METHOD_BYTES_MAX: usize = 64;

/// Checks an RPC call and forwards it to the app's backend: the backend's answer.
pub async fn rpc_checked(state: &ServerState, caller: &HookCaller<'_>, method: &str, data: &RawValue) -> Result<Box<RawValue>, ClientError> {
    let well_formed = !method.is_empty()
        && method.len() <= RPC_METHOD_BYTES_MAX
        && method.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'/'));
    if !well_formed {
        return Err(ClientError::BadRequest(format!("`method` must be 1 to {RPC_METHOD_BYTES_MAX} of `A-Za-z0-9_-.:/`")));
    }
    payload_within_limits(state, data.get().as_bytes())?;
    state.hooks.rpc(caller, method, data).await
}
