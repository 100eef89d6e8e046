//! One client connection's state machine, independent of the transport: authentication,
//! subscriptions with their cursors, the command rate limit, and the frames waiting to be
//! written. The WebSocket transport feeds it messages and outbox items and writes `out`.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use courtside_core::access::Principal;
use courtside_core::cursor::{Admit, Cursor};
use courtside_core::hub::{ConnectionId, Delivery, Outbound, Outbox, PresenceEvent};
use courtside_core::node::SubscribeRequest;
use courtside_core::presence::{ClientInfo, PresenceInfo};
use courtside_core::store::HistoryQuery;
use courtside_core::ChannelName;
use serde::Serialize;

use crate::auth::{now_secs, TokenError};
use crate::protocol::{SystemNotice, 
    decode_command, encode_error, encode_publication_push, encode_result, ChannelParams, ClientError, DecodeError,
    Disconnect, HistoryParams, Method, Publications, PublishParams, RpcParams, RpcResult, SubscribeParams, NATIVE_WIRE,
};
use crate::guard::{forbidden_now, history_checked, publish_checked, read_checked, rpc_checked, verify_refresh};
use crate::hooks::{ClientRef, HookCaller, Transport};
use crate::rate_limit::TokenBucket;
use crate::quotas::UserSlot;
use crate::state::ServerState;


/// A token bucket: `rate` tokens per second, at most `burst` saved up.
/// Offsets `from..=to` are missing before `delivery` on its channel.
pub struct Gap {
    delivery: Arc<Delivery>,
    from: u64,
    to: u64,
}

pub struct Session {
    pub id: ConnectionId,
    state: Arc<ServerState>,
    outbox: Outbox,
    principal: Option<Principal>,
    token_expires_at_secs: Option<u64>,
    subscriptions: HashMap<ChannelName, Cursor>,
    /// The user's quota slot, counting this connection and its subscriptions (`None`: anonymous).
    quota: Option<UserSlot>,
    rate: TokenBucket,
    refused_in_a_row: u32,
    /// What the connection says about itself to those present (`connect`, `presence_set`).
    presence_info: PresenceInfo,
    /// Frames waiting to be written, separated by `\n`.
    pub out: Vec<u8>,
}

#[derive(Serialize)]
struct ConnectResult<'a> {
    client: String,
    user: &'a str,
    version: &'static str,
    ping_interval_secs: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_in_secs: Option<u64>,
}

#[derive(Serialize)]
struct SubscribeResult<'a> {
    epoch: &'a str,
    offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    recovered: Option<bool>,
    publications: Publications<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    snapshot: Option<Publications<'a>>,
}

#[derive(Serialize)]
pub struct PublishResult<'a> {
    pub epoch: &'a str,
    pub offset: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

#[derive(Serialize)]
pub struct HistoryResult<'a> {
    pub epoch: &'a str,
    pub offset: u64,
    pub earliest: u64,
    pub publications: Publications<'a>,
}

#[derive(Serialize)]
struct Empty {}

impl Session {
    pub fn new(state: Arc<ServerState>, outbox: Outbox) -> Self {
        let id = state.next_connection_id();
        let limits = &state.config.client;
        let rate = TokenBucket::new(limits.commands_per_sec, limits.commands_burst);
        Self {
            id,
            state,
            outbox,
            principal: None,
            token_expires_at_secs: None,
            subscriptions: HashMap::new(),
            quota: None,
            rate,
            refused_in_a_row: 0,
            presence_info: PresenceInfo::default(),
            out: Vec::new(),
        }
    }

    pub fn is_connected(&self) -> bool {
        self.principal.is_some()
    }

    /// The `exp` of the connection's token, if it has one.
    pub fn token_expires_at_secs(&self) -> Option<u64> {
        self.token_expires_at_secs
    }

    /// When the connection's token runs out, if it has one.
    pub fn token_deadline(&self) -> Option<Instant> {
        let expires = self.token_expires_at_secs?;
        Some(Instant::now() + Duration::from_secs(expires.saturating_sub(now_secs())))
    }

    /// Who asks, as the app's hooks are told.
    fn caller<'a>(&'a self, principal: &'a Principal) -> HookCaller<'a> {
        HookCaller { principal, transport: Transport::Websocket, client: Some(self.client_ref()) }
    }

    /// Unique across the cluster: `{node}-{connection}`.
    fn client_ref(&self) -> ClientRef<'_> {
        ClientRef { node: &self.state.node_id, connection: self.id }
    }

    fn client_id(&self) -> String {
        self.client_ref().to_string()
    }

    fn client_info(&self) -> ClientInfo {
        ClientInfo {
            client: self.client_id(),
            user: self.principal.as_ref().map(|p| p.user_id().to_string()).unwrap_or_default(),
            info: self.presence_info.clone(),
        }
    }

    /// Replaces what the connection says about itself and tells every channel it is present in
    /// (a new `join` with the new info, where the namespace announces joins).
    async fn set_presence(&mut self, id: Option<u64>, info: PresenceInfo) -> Result<(), ClientError> {
        info.validate().map_err(|error| ClientError::BadRequest(error.to_string()))?;
        self.presence_info = info;
        let client = self.client_info();
        let channels: Vec<ChannelName> = self.subscriptions.keys().cloned().collect();
        for channel in channels {
            self.state.node.join(&channel, client.clone()).await;
        }
        self.reply(id, &Empty {});
        Ok(())
    }

    fn start_frame(&mut self) {
        if !self.out.is_empty() {
            self.out.push(b'\n');
        }
    }

    fn reply(&mut self, id: Option<u64>, result: &impl Serialize) {
        self.start_frame();
        encode_result(&mut self.out, id, result);
    }

    fn reply_error(&mut self, id: Option<u64>, error: &ClientError) {
        self.state.metrics.command_errors_total.fetch_add(1, Ordering::Relaxed);
        self.start_frame();
        encode_error(&mut self.out, id, error);
    }

    /// Queues the push `{"push":{"notice":…}}`.
    pub fn push_notice(&mut self, notice: &SystemNotice) {
        self.push_bytes(&notice.encode_push());
    }

    fn push_bytes(&mut self, frame: &[u8]) {
        self.start_frame();
        self.out.extend_from_slice(frame);
    }

    /// Handles one WebSocket text message: one or more frames separated by `\n`.
    pub async fn handle_message(&mut self, text: &str) -> Result<(), Disconnect> {
        for frame in text.split('\n') {
            if !frame.trim().is_empty() {
                self.handle_frame(frame).await?;
            }
        }
        Ok(())
    }

    async fn handle_frame(&mut self, frame: &str) -> Result<(), Disconnect> {
        self.state.metrics.commands_total.fetch_add(1, Ordering::Relaxed);
        let decoded = decode_command(frame);
        let id = match &decoded {
            Err(DecodeError::Malformed(_)) => return Err(Disconnect::InvalidFrame),
            Err(DecodeError::Invalid { id, .. }) => *id,
            Ok(command) => command.id,
        };
        if !self.rate.take(Instant::now()) {
            self.refused_in_a_row += 1;
            if self.refused_in_a_row > self.state.config.client.commands_burst {
                return Err(Disconnect::TooManyRequests);
            }
            self.reply_error(id, &ClientError::TooManyRequests);
            return Ok(());
        }
        self.refused_in_a_row = 0;
        let command = match decoded {
            Ok(command) => command,
            Err(DecodeError::Invalid { error, .. }) if self.principal.is_some() => {
                self.reply_error(id, &error);
                return Ok(());
            }
            Err(_) => return Err(Disconnect::ConnectRequired),
        };
        let Some(principal) = self.principal.clone() else {
            return match command.method {
                Method::Connect(params) => {
                    if let Some(info) = params.presence {
                        if let Err(error) = info.validate() {
                            self.reply_error(id, &ClientError::BadRequest(error.to_string()));
                            return Ok(());
                        }
                        self.presence_info = info;
                    }
                    self.connect(id, params.token).await
                }
                _ => Err(Disconnect::ConnectRequired),
            };
        };
        let outcome = match command.method {
            Method::Connect(_) => Err(ClientError::BadRequest("already connected".into())),
            Method::Subscribe(params) => self.subscribe(id, &principal, params).await,
            Method::Unsubscribe(ChannelParams { channel }) => self.unsubscribe(id, &channel).await,
            Method::Publish(params) => self.publish(id, &principal, params).await,
            Method::History(params) => self.history(id, &principal, params).await,
            Method::Presence(ChannelParams { channel }) => self.presence(id, &principal, &channel, false).await,
            Method::PresenceStats(ChannelParams { channel }) => self.presence(id, &principal, &channel, true).await,
            Method::PresenceSet(info) => self.set_presence(id, info).await,
            Method::Refresh(params) => self.refresh(id, &principal, &params.token).await,
            Method::Rpc(params) => self.rpc(id, &principal, params).await,
            Method::Ping => {
                self.reply(id, &Empty {});
                Ok(())
            }
        };
        if let Err(error) = outcome {
            self.reply_error(id, &error);
        }
        Ok(())
    }

    async fn connect(&mut self, id: Option<u64>, token: Option<String>) -> Result<(), Disconnect> {
        let (principal, expires) = match token {
            Some(token) => match self.state.auth.verify(&token) {
                Ok(verified) => (verified.principal, Some(verified.expires_at_secs)),
                Err(TokenError::Expired) => {
                    self.reply_error(id, &ClientError::TokenExpired);
                    return Ok(());
                }
                Err(TokenError::Invalid(_)) => return Err(Disconnect::InvalidToken),
            },
            None if self.state.config.allow_anonymous => (Principal::Anonymous, None),
            None => {
                self.reply_error(id, &ClientError::Unauthorized("this server needs a token".into()));
                return Ok(());
            }
        };
        let slot = match self.state.quotas.admit(&principal) {
            Ok(slot) => slot,
            Err(refused) => {
                self.reply_error(id, &ClientError::from(refused));
                return Ok(());
            }
        };
        if let Err(refused) = self.state.hooks.connect(&self.caller(&principal)).await {
            self.reply_error(id, &refused);
            return Ok(());
        }
        self.quota = slot;
        self.principal = Some(principal);
        self.token_expires_at_secs = expires;
        let user = self.principal.as_ref().map(Principal::user_id).unwrap_or_default().to_string();
        self.reply(
            id,
            &ConnectResult {
                client: self.client_id(),
                user: &user,
                version: "1",
                ping_interval_secs: self.state.config.client.ping_interval_secs,
                expires_in_secs: expires.map(|e| e.saturating_sub(now_secs())),
            },
        );
        Ok(())
    }

    /// Takes the new token's roles, then leaves every channel they no longer allow, with an
    /// `unsubscribed` push for each.
    async fn refresh(&mut self, id: Option<u64>, principal: &Principal, token: &str) -> Result<(), ClientError> {
        let verified = verify_refresh(&self.state, principal, token)?;
        self.token_expires_at_secs = Some(verified.expires_at_secs);
        #[derive(Serialize)]
        struct RefreshResult {
            expires_in_secs: u64,
        }
        self.reply(id, &RefreshResult { expires_in_secs: verified.expires_at_secs.saturating_sub(now_secs()) });
        let followed: Vec<ChannelName> = self.subscriptions.keys().cloned().collect();
        for channel in forbidden_now(&self.state, &verified.principal, followed) {
            self.subscriptions.remove(&channel);
            self.release_subscription();
            self.state.node.unsubscribe(&channel, self.id).await;
            self.state.node.leave(&channel, self.client_info()).await;
            self.push_bytes(&unsubscribed_push(&channel));
        }
        self.principal = Some(verified.principal);
        Ok(())
    }

    async fn subscribe(&mut self, id: Option<u64>, principal: &Principal, params: SubscribeParams) -> Result<(), ClientError> {
        let node = self.state.node.clone();
        if self.subscriptions.contains_key(&params.channel) {
            return Err(ClientError::AlreadySubscribed);
        }
        if self.subscriptions.len() >= self.state.config.client.subscriptions_max {
            return Err(ClientError::BadRequest(format!(
                "a connection may follow at most {} channels",
                self.state.config.client.subscriptions_max
            )));
        }
        read_checked(&self.state, &self.caller(principal), &params.channel).await?;
        if let Some(slot) = &mut self.quota {
            slot.subscribe(1)?;
        }
        let resuming = params.since.is_some();
        let outcome = node
            .subscribe(
                &params.channel,
                self.id,
                self.outbox.clone(),
                SubscribeRequest { since: params.since, snapshot: params.snapshot },
            )
            .await
            .map_err(|error| {
                self.release_subscription();
                ClientError::from(error)
            })?;
        self.subscriptions.insert(params.channel.clone(), Cursor::new(outcome.position.clone()));
        self.reply(
            id,
            &SubscribeResult {
                epoch: outcome.position.epoch.as_str(),
                offset: outcome.position.offset,
                recovered: resuming.then_some(outcome.recovered),
                publications: Publications(&outcome.publications),
                snapshot: outcome.snapshot.as_deref().map(Publications),
            },
        );
        node.join(&params.channel, self.client_info()).await;
        Ok(())
    }

    async fn unsubscribe(&mut self, id: Option<u64>, channel: &ChannelName) -> Result<(), ClientError> {
        if self.subscriptions.remove(channel).is_none() {
            return Err(ClientError::NotSubscribed);
        }
        self.release_subscription();
        self.state.node.unsubscribe(channel, self.id).await;
        self.state.node.leave(channel, self.client_info()).await;
        self.reply(id, &Empty {});
        Ok(())
    }

    async fn publish(&mut self, id: Option<u64>, principal: &Principal, params: PublishParams<'_>) -> Result<(), ClientError> {
        let appended = publish_checked(&self.state, &self.caller(principal), params).await?;
        self.reply(
            id,
            &PublishResult {
                epoch: appended.publication.epoch.as_str(),
                offset: appended.publication.offset,
                duplicate: appended.duplicate,
            },
        );
        Ok(())
    }

    async fn rpc(&mut self, id: Option<u64>, principal: &Principal, params: RpcParams<'_>) -> Result<(), ClientError> {
        let data = rpc_checked(&self.state, &self.caller(principal), params.method, params.data).await?;
        self.reply(id, &RpcResult { data: &data });
        Ok(())
    }

    async fn history(&mut self, id: Option<u64>, principal: &Principal, params: HistoryParams) -> Result<(), ClientError> {
        let page = history_checked(&self.state, &self.caller(principal), &params).await?;
        self.reply(
            id,
            &HistoryResult {
                epoch: page.top.epoch.as_str(),
                offset: page.top.offset,
                earliest: page.earliest_offset,
                publications: Publications(&page.publications),
            },
        );
        Ok(())
    }

    async fn presence(&mut self, id: Option<u64>, principal: &Principal, channel: &ChannelName, stats_only: bool) -> Result<(), ClientError> {
        let node = self.state.node.clone();
        let options = read_checked(&self.state, &self.caller(principal), channel).await?;
        if !options.presence {
            return Err(ClientError::BadRequest(format!("namespace {:?} keeps no presence", channel.namespace())));
        }
        if stats_only {
            let stats = node.presence_stats(channel).await?;
            self.reply(id, &stats);
        } else {
            #[derive(Serialize)]
            struct PresenceResult {
                clients: Vec<ClientInfo>,
            }
            let clients = node.presence(channel).await?;
            self.reply(id, &PresenceResult { clients });
        }
        Ok(())
    }

    /// Writes an item from the hub, keeping each channel gap-free and duplicate-free: a
    /// duplicate is dropped. This is the hot path and does not wait: when offsets are missing
    /// before the item, it returns the [`Gap`] to fill with [`Session::deliver_after_gap`].
    pub fn handle_outbound(&mut self, item: Outbound) -> Result<Option<Gap>, Disconnect> {
        let delivery = match item {
            Outbound::Publication(delivery) => delivery,
            Outbound::Presence(event) => {
                self.push_presence(&event);
                return Ok(None);
            }
        };
        let publication = &delivery.publication;
        let Some(cursor) = self.subscriptions.get_mut(&publication.channel) else { return Ok(None) };
        match cursor.admit(publication) {
            Admit::Deliver | Admit::Unnumbered => {}
            Admit::Duplicate => {
                self.state.metrics.duplicates_dropped_total.fetch_add(1, Ordering::Relaxed);
                return Ok(None);
            }
            Admit::Gap { from, to } => return Ok(Some(Gap { delivery, from, to })),
            // The history this subscription points into was reset: the client must resubscribe,
            // which a reconnect does (it then gets `recovered: false`).
            Admit::EpochChanged { .. } => return Err(Disconnect::InternalError),
        }
        self.push_delivery(&delivery);
        Ok(None)
    }

    fn push_delivery(&mut self, delivery: &Delivery) {
        let frame = delivery.wire(NATIVE_WIRE, encode_publication_push);
        self.start_frame();
        self.out.extend_from_slice(frame);
        self.state.metrics.deliver_latency.observe(delivery.received_at.elapsed());
    }

    /// Fills a gap from history, then writes the publication that revealed it.
    pub async fn deliver_after_gap(&mut self, gap: Gap) -> Result<(), Disconnect> {
        let channel = gap.delivery.publication.channel.clone();
        self.fill_gap(&channel, gap.from, gap.to).await?;
        let cursor = self.subscriptions.get_mut(&channel).ok_or(Disconnect::InternalError)?;
        if cursor.admit(&gap.delivery.publication) != Admit::Deliver {
            return Err(Disconnect::InternalError);
        }
        self.push_delivery(&gap.delivery);
        Ok(())
    }

    async fn fill_gap(&mut self, channel: &ChannelName, from: u64, to: u64) -> Result<(), Disconnect> {
        let missing = read_missing(&self.state, channel, from, to).await?;
        self.state.metrics.gaps_filled_total.fetch_add(1, Ordering::Relaxed);
        for publication in &missing {
            let cursor = self.subscriptions.get_mut(channel).ok_or(Disconnect::InternalError)?;
            if cursor.admit(publication) != Admit::Deliver {
                return Err(Disconnect::InternalError);
            }
            self.push_bytes(&encode_publication_push(publication));
        }
        Ok(())
    }

    fn push_presence(&mut self, event: &PresenceEvent) {
        if !self.subscriptions.contains_key(&event.channel) {
            return;
        }
        #[derive(Serialize)]
        struct PresencePush<'a> {
            push: PresenceBody<'a>,
        }
        #[derive(Serialize)]
        struct PresenceBody<'a> {
            channel: &'a ChannelName,
            #[serde(skip_serializing_if = "Option::is_none")]
            join: Option<&'a ClientInfo>,
            #[serde(skip_serializing_if = "Option::is_none")]
            leave: Option<&'a ClientInfo>,
        }
        let body = PresenceBody {
            channel: &event.channel,
            join: event.joined.then_some(&event.client),
            leave: (!event.joined).then_some(&event.client),
        };
        if let Ok(frame) = serde_json::to_vec(&PresencePush { push: body }) {
            self.push_bytes(&frame);
        }
    }

    /// Gives one subscription back to the user's quota.
    fn release_subscription(&mut self) {
        if let Some(slot) = &mut self.quota {
            slot.unsubscribe();
        }
    }

    /// Leaves every channel and gives the user's quota slot back; called once when the
    /// connection ends (dropping the session gives the slot back too).
    pub async fn close(&mut self) {
        let client = self.client_info();
        for (channel, _) in self.subscriptions.drain() {
            self.state.node.unsubscribe(&channel, self.id).await;
            self.state.node.leave(&channel, client.clone()).await;
        }
        self.quota = None;
    }
}

/// `{"push":{"channel":…,"unsubscribed":{"code":103,"reason":"permission denied"}}}`: the server
/// left a channel for the connection.
fn unsubscribed_push(channel: &ChannelName) -> Vec<u8> {
    let error = ClientError::PermissionDenied;
    let push = serde_json::json!({ "push": { "channel": channel.as_str(), "unsubscribed": { "code": error.code(), "reason": error.to_string() } } });
    serde_json::to_vec(&push).unwrap_or_default()
}

/// Offsets `from..=to` of `channel`, read from history to fill a connection's gap; all of them,
/// or an error that closes the connection (trimmed meanwhile: the client resumes, which reports
/// the loss). Shared by every transport that follows channels.
pub async fn read_missing(state: &ServerState, channel: &ChannelName, from: u64, to: u64) -> Result<Vec<courtside_core::stream::Publication>, Disconnect> {
    let count = usize::try_from(to.saturating_sub(from).saturating_add(1)).map_err(|_| Disconnect::InternalError)?;
    let page = state
        .node
        .history(channel, HistoryQuery::After { offset: from.saturating_sub(1), limit: count })
        .await
        .map_err(|_| Disconnect::InternalError)?;
    if page.publications.len() != count {
        return Err(Disconnect::InternalError);
    }
    Ok(page.publications)
}
