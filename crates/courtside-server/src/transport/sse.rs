//! Server-Sent Events for read-only clients: `GET /sse?channel=a&channel=b`. Each event carries
//! the same JSON as a WebSocket push; its `id` is the stream position of every channel
//! (`epoch:offset` per channel, comma-separated, in query order), so a browser's `EventSource`
//! resumes exactly where it was through the standard `Last-Event-ID` header.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use courtside_core::cursor::{Admit, Cursor};
use courtside_core::hub::{self, ConnectionId, Inbox, Outbound, OverflowSignal};
use courtside_core::node::SubscribeRequest;
use courtside_core::presence::ClientInfo;
use courtside_core::store::HistoryQuery;
use courtside_core::stream::OFFSET_MAX;
use courtside_core::{ChannelName, Epoch, Publication, StreamPosition};
use futures_util::stream::{self, Stream};
use tokio::time::Sleep;
use tokio_util::task::task_tracker::TaskTrackerToken;

use crate::guard::read_checked;
use crate::hooks::{ClientRef, HookCaller, Transport};
use crate::http::{authenticate, ApiError};
use crate::protocol::{encode_publication_push, ClientError, Publications, SubscribedReply, NATIVE_WIRE, NOTICE_EVENT};
use crate::state::{Maintenance, ServerState};

const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a browser waits before reconnecting a dropped stream (sent with the first event).
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// The query of `GET /sse`.
struct SseQuery {
    channels: Vec<ChannelName>,
    token: Option<String>,
    snapshot: bool,
    last_event_id: Option<String>,
}

fn parse_query(raw: Option<&str>) -> Result<SseQuery, ClientError> {
    let mut query = SseQuery { channels: Vec::new(), token: None, snapshot: false, last_event_id: None };
    for (key, value) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match key.as_ref() {
            "channel" => {
                let channel = ChannelName::parse(&value).map_err(|e| ClientError::BadRequest(format!("channel {value:?}: {e}")))?;
                if !query.channels.contains(&channel) {
                    query.channels.push(channel);
                }
            }
            "token" => query.token = Some(value.into_owned()),
            "snapshot" => query.snapshot = matches!(value.as_ref(), "1" | "true" | "yes"),
            "last_event_id" => query.last_event_id = Some(value.into_owned()),
            other => return Err(ClientError::BadRequest(format!("unknown query parameter {other:?}"))),
        }
    }
    if query.channels.is_empty() {
        return Err(ClientError::BadRequest("name at least one `channel`".into()));
    }
    Ok(query)
}

/// Parses a `Last-Event-ID`: `epoch:offset` per channel, comma-separated. An offset no stream
/// can reach (over [`OFFSET_MAX`]) makes the id unusable, like any id the server never issued.
pub fn parse_event_id(id: &str, channels: usize) -> Option<Vec<StreamPosition>> {
    let positions: Option<Vec<_>> = id
        .split(',')
        .map(|part| {
            let (epoch, offset) = part.rsplit_once(':')?;
            let offset = offset.parse().ok().filter(|offset| *offset <= OFFSET_MAX)?;
            Some(StreamPosition { epoch: Epoch::from_text(epoch), offset })
        })
        .collect();
    positions.filter(|p| p.len() == channels)
}

pub fn format_event_id(positions: &[StreamPosition]) -> String {
    positions.iter().map(|p| format!("{}:{}", p.epoch, p.offset)).collect::<Vec<_>>().join(",")
}

pub async fn stream(State(state): State<Arc<ServerState>>, headers: HeaderMap, RawQuery(raw): RawQuery) -> Response {
    match open(state, headers, raw).await {
        Ok(sse) => sse.into_response(),
        Err(error) => error.into_response(),
    }
}

async fn open(
    state: Arc<ServerState>,
    headers: HeaderMap,
    raw: Option<String>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let query = parse_query(raw.as_deref())?;
    let (principal, expires_at_secs) = authenticate(&state, &headers, query.token.as_deref())?;
    if query.channels.len() > state.config.client.subscriptions_max {
        return Err(ClientError::BadRequest(format!(
            "at most {} channels per stream",
            state.config.client.subscriptions_max
        ))
        .into());
    }
    for channel in &query.channels {
        if !principal.may_subscribe(channel, state.node.options(channel).map_err(ClientError::from)?) {
            return Err(ClientError::PermissionDenied.into());
        }
    }
    let id = state.next_connection_id();
    let client = ClientRef { node: &state.node_id, connection: id };
    let caller = HookCaller { principal: &principal, transport: Transport::Sse, client: Some(client) };
    // The user's quota counts the stream as a connection following all its channels.
    let mut quota = state.quotas.admit(&principal).map_err(ClientError::from)?;
    if let Some(slot) = &mut quota {
        slot.subscribe(query.channels.len()).map_err(ClientError::from)?;
    }
    // Then the app's backend, when hooked: the connection, then each channel.
    state.hooks.connect(&caller).await?;
    for channel in &query.channels {
        read_checked(&state, &caller, channel).await?;
    }
    let last_event_id = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
        .or(query.last_event_id);
    // An id that does not fit this channel list (changed list, garbage) cannot be resumed
    // from: the stream starts fresh and says `recovered: false`, with snapshots where keyed.
    let resume_requested = last_event_id.is_some();
    let resume = last_event_id.and_then(|id| parse_event_id(&id, query.channels.len()));
    let (outbox, inbox) = hub::bounded_outbox(state.config.client.send_queue_len_max, state.config.client.send_queue_bytes_max);
    let mut sse = SseStream {
        id,
        channels: query.channels.clone(),
        cursors: Vec::new(),
        pending: VecDeque::new(),
        overflow: inbox.overflow_signal(),
        expiry: expires_at_secs.map(|exp| {
            let left = Duration::from_secs(exp.saturating_sub(crate::auth::now_secs()));
            Box::pin(tokio::time::sleep(left))
        }),
        inbox,
        maintenance: {
            let mut maintenance = state.maintenance.subscribe();
            maintenance.mark_changed();
            maintenance
        },
        told: None,
        opened_at: tokio::time::Instant::now(),
        cut: None,
        viewer: ClientInfo::new(String::new(), ""),
        _task: state.tasks.token(),
        _quota: quota,
        state: state.clone(),
    };
    for (index, channel) in query.channels.iter().enumerate() {
        let since = resume.as_ref().map(|r| r[index].clone());
        let resuming = since.is_some();
        let keyed = state.node.options(channel).map(|o| o.keyed).unwrap_or(false);
        let request = SubscribeRequest { since, snapshot: keyed && !resuming && (query.snapshot || resume_requested) };
        let outcome = state.node.subscribe(channel, sse.id, outbox.clone(), request).await.map_err(ClientError::from)?;
        sse.cursors.push(Cursor::new(outcome.position.clone()));
        let subscribed = SubscribedReply {
            channel,
            epoch: outcome.position.epoch.as_str(),
            offset: outcome.position.offset,
            recovered: resume_requested.then_some(resuming && outcome.recovered),
            snapshot: outcome.snapshot.as_deref().map(Publications),
        };
        let data = serde_json::to_string(&subscribed).map_err(|_| ClientError::Internal)?;
        sse.pending.push_back(PendingEvent { name: Some("subscribed"), data, advances: None, retry: index == 0 });
        for publication in &outcome.publications {
            sse.pending.push_back(PendingEvent::publication(index, publication));
        }
        // The position of a channel whose replay is still pending is only reached once those
        // events are out; ids are computed as events leave the queue, see `next_event`.
        sse.cursors[index] = Cursor::new(StreamPosition {
            epoch: outcome.position.epoch.clone(),
            offset: outcome.position.offset - outcome.publications.len() as u64,
        });
    }
    // A viewer counts in presence like any connection ("N watching"); SSE streams get no
    // join/leave events themselves.
    sse.viewer = ClientInfo::new(client.to_string(), principal.user_id());
    for channel in &query.channels {
        state.node.join(channel, sse.viewer.clone()).await;
    }
    state.metrics.sse_connections.fetch_add(1, Ordering::Relaxed);
    let events = stream::unfold(sse, |mut sse| async move {
        let event = sse.next_event().await?;
        Some((Ok(event), sse))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// An event waiting to be sent; a publication moves its channel's cursor when it leaves.
struct PendingEvent {
    name: Option<&'static str>,
    data: String,
    advances: Option<(usize, u64)>,
    /// Carries the `retry:` field (the first event of a stream).
    retry: bool,
}

impl PendingEvent {
    fn publication(channel_index: usize, publication: &Publication) -> Self {
        let frame: Bytes = encode_publication_push(publication);
        Self {
            name: None,
            data: String::from_utf8_lossy(&frame).into_owned(),
            advances: Some((channel_index, publication.offset)),
            retry: false,
        }
    }
}

struct SseStream {
    id: ConnectionId,
    channels: Vec<ChannelName>,
    cursors: Vec<Cursor>,
    /// Events ready to send, in order.
    pending: VecDeque<PendingEvent>,
    inbox: Inbox,
    overflow: OverflowSignal,
    /// Ends the stream when the token it was opened with expires.
    expiry: Option<Pin<Box<Sleep>>>,
    /// Announced maintenance: the notice is sent as an event, then the stream ends at `cut`.
    maintenance: tokio::sync::watch::Receiver<Option<Arc<Maintenance>>>,
    told: Option<Arc<Maintenance>>,
    opened_at: tokio::time::Instant,
    cut: Option<Pin<Box<Sleep>>>,
    /// How the stream appears in presence (its channels' viewers).
    viewer: ClientInfo,
    state: Arc<ServerState>,
    _task: TaskTrackerToken,
    /// The user's quota slot (`None`: anonymous), given back when the stream ends.
    _quota: Option<crate::quotas::UserSlot>,
}

impl SseStream {
    fn event_id(&self) -> String {
        format_event_id(&self.cursors.iter().map(|c| c.position.clone()).collect::<Vec<_>>())
    }

    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(PendingEvent { name, data, advances, retry }) = self.pending.pop_front() {
                if let Some((index, offset)) = advances {
                    self.cursors[index].position.offset = offset;
                }
                let mut event = Event::default().data(data).id(self.event_id());
                if retry {
                    event = event.retry(RECONNECT_AFTER);
                }
                if let Some(name) = name {
                    event = event.event(name);
                }
                return Some(event);
            }
            let expiry = async {
                match self.expiry.as_mut() {
                    Some(sleep) => sleep.as_mut().await,
                    None => std::future::pending().await,
                }
            };
            let cut = async {
                match self.cut.as_mut() {
                    Some(sleep) => sleep.as_mut().await,
                    None => std::future::pending().await,
                }
            };
            let item = tokio::select! {
                biased;
                _ = self.state.shutdown.cancelled() => {
                    // A notice announced just before the shutdown still goes out first.
                    let untold = Maintenance::untold(&self.state.maintenance.borrow(), &self.told, self.opened_at)?;
                    self.told = Some(untold.clone());
                    return Some(notice_event(&untold));
                }
                _ = self.overflow.overflowed() => return None,
                _ = expiry => return None,
                _ = cut => return None,
                Ok(()) = self.maintenance.changed() => {
                    let untold = Maintenance::untold(&self.maintenance.borrow_and_update(), &self.told, self.opened_at);
                    let Some(untold) = untold else { continue };
                    if let Some(cut) = untold.cut_at {
                        self.cut = Some(Box::pin(tokio::time::sleep_until(cut)));
                    }
                    self.told = Some(untold.clone());
                    return Some(notice_event(&untold));
                }
                item = self.inbox.recv() => item?,
            };
            let Outbound::Publication(delivery) = item else { continue };
            let publication = &delivery.publication;
            let Some(index) = self.channels.iter().position(|c| *c == publication.channel) else { continue };
            let mut probe = self.cursors[index].clone();
            match probe.admit(publication) {
                Admit::Deliver | Admit::Unnumbered => {
                    self.cursors[index] = probe;
                    let frame = delivery.wire(NATIVE_WIRE, encode_publication_push);
                    self.state.metrics.deliver_latency.observe(delivery.received_at.elapsed());
                    let data = String::from_utf8_lossy(frame).into_owned();
                    return Some(Event::default().data(data).id(self.event_id()));
                }
                Admit::Duplicate => {}
                Admit::Gap { from, to } => {
                    let page = self
                        .state
                        .node
                        .history(&publication.channel, HistoryQuery::After { offset: from - 1, limit: (to - from + 1) as usize })
                        .await
                        .ok()?;
                    if page.publications.len() as u64 != to - from + 1 {
                        return None; // trimmed meanwhile: the client reconnects and learns it
                    }
                    for missing in page.publications.iter().chain(std::iter::once(publication)) {
                        self.pending.push_back(PendingEvent::publication(index, missing));
                    }
                }
                Admit::EpochChanged { .. } => return None,
            }
        }
    }
}

/// The `system_notification` event of a maintenance notice.
fn notice_event(maintenance: &Maintenance) -> Event {
    Event::default().event(NOTICE_EVENT).data(maintenance.notice.to_json())
}

impl Drop for SseStream {
    fn drop(&mut self) {
        let (state, channels, id) = (self.state.clone(), std::mem::take(&mut self.channels), self.id);
        let viewer = self.viewer.clone();
        tokio::spawn(async move {
            for channel in &channels {
                state.node.unsubscribe(channel, id).await;
                if !viewer.client.is_empty() {
                    state.node.leave(channel, viewer.clone()).await;
                }
            }
        });
        self.state.metrics.sse_connections.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_round_trip() {
        let positions = vec![
            StreamPosition { epoch: Epoch::from_text("ab12"), offset: 7 },
            StreamPosition { epoch: Epoch::from_text("cd34"), offset: 0 },
        ];
        let id = format_event_id(&positions);
        assert_eq!(id, "ab12:7,cd34:0");
        assert_eq!(parse_event_id(&id, 2), Some(positions));
        assert_eq!(parse_event_id(&id, 3), None, "a different channel list ignores the id");
        assert_eq!(parse_event_id("garbage", 1), None);
    }
}
