//! A socket's generic events — `subscribe`, `unsubscribe`, `publish`, `history`, `presence`,
//! `presence_stats`, `presence_set`, `refresh`, `rpc` — over the same checks as the native
//! protocol (`guard`), and how a subscription is announced (only events move the position
//! socket.io-client keeps).

use courtside_core::ChannelName;
use courtside_core::access::Principal;
use courtside_core::event::{SUBSCRIBED_EVENT, UNSUBSCRIBED_EVENT};
use courtside_core::cursor::Cursor;
use courtside_core::node::SubscribeRequest;
use courtside_core::presence::PresenceInfo;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use super::{Followed, SioSocket, parse};
use crate::auth::now_secs;
use crate::protocol::{ChannelParams, ClientError, HistoryParams, Publications, PublishParams, RpcParams, RpcResult, SubscribeParams, SubscribedReply};
use crate::hooks::{ClientRef, HookCaller, Transport};
use crate::guard::{forbidden_now, history_checked, publish_checked, read_checked, rpc_checked, verify_refresh};
use crate::session::{HistoryResult, PublishResult};

impl SioSocket {
    /// One generic event; an `Err` is answered to the client, the socket stays.
    pub(super) async fn event(&mut self, name: &str, argument: Option<&RawValue>, ack: Option<u64>) -> Result<(), ClientError> {
        let principal = self.principal.clone().ok_or(ClientError::Unauthorized("connect first".into()))?;
        match name {
            "subscribe" => self.subscribe(parse(argument)?, ack).await,
            "unsubscribe" => {
                let ChannelParams { channel } = parse(argument)?;
                self.unsubscribe(&channel).await?;
                self.acknowledge(ack, &serde_json::json!({}))?;
                // An event, because only events move the position socket.io-client keeps.
                self.emit_json(UNSUBSCRIBED_EVENT, &serde_json::json!({ "channel": channel.as_str() })).map_err(|_| ClientError::Internal)
            }
            "publish" => {
                let raw = argument.ok_or_else(|| ClientError::BadRequest("publish needs {channel, data}".into()))?;
                let params: PublishParams<'_> = crate::json::decode_object(raw.get()).map_err(|e| ClientError::BadRequest(e.to_string()))?;
                let appended = publish_checked(&self.state, &self.caller(&principal), params).await?;
                let result = PublishResult {
                    epoch: appended.publication.epoch.as_str(),
                    offset: appended.publication.offset,
                    duplicate: appended.duplicate,
                };
                self.acknowledge(ack, &result)
            }
            "history" => {
                let params: HistoryParams = parse(argument)?;
                let page = history_checked(&self.state, &self.caller(&principal), &params).await?;
                let result = HistoryResult {
                    epoch: page.top.epoch.as_str(),
                    offset: page.top.offset,
                    earliest: page.earliest_offset,
                    publications: Publications(&page.publications),
                };
                self.acknowledge(ack, &result)
            }
            "presence" | "presence_stats" => {
                let ChannelParams { channel } = parse(argument)?;
                let node = self.state.node.clone();
                let options = read_checked(&self.state, &self.caller(&principal), &channel).await?;
                if !options.presence {
                    return Err(ClientError::BadRequest(format!("namespace {:?} keeps no presence", channel.namespace())));
                }
                if name == "presence_stats" {
                    let stats = node.presence_stats(&channel).await?;
                    self.acknowledge(ack, &stats)
                } else {
                    let clients = node.presence(&channel).await?;
                    self.acknowledge(ack, &serde_json::json!({ "clients": clients }))
                }
            }
            "presence_set" => {
                let info: PresenceInfo = parse(argument)?;
                info.validate().map_err(|error| ClientError::BadRequest(error.to_string()))?;
                self.presence_info = info;
                let client = self.client_info();
                for channel in self.followed.iter().map(|f| f.channel.clone()).collect::<Vec<_>>() {
                    self.state.node.join(&channel, client.clone()).await;
                }
                self.acknowledge(ack, &serde_json::json!({}))
            }
            "refresh" => {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct RefreshParams {
                    token: String,
                }
                let RefreshParams { token } = parse(argument)?;
                let verified = verify_refresh(&self.state, &principal, &token)?;
                self.token_expires_at_secs = Some(verified.expires_at_secs);
                let left = verified.expires_at_secs.saturating_sub(now_secs());
                self.acknowledge(ack, &serde_json::json!({ "expires_in_secs": left }))?;
                // What the new roles no longer allow is left, each with an `unsubscribed` event.
                let followed = self.followed.iter().map(|f| f.channel.clone()).collect();
                for channel in forbidden_now(&self.state, &verified.principal, followed) {
                    self.unsubscribe(&channel).await?;
                    let error = ClientError::PermissionDenied;
                    let event = serde_json::json!({ "channel": channel.as_str(), "code": error.code(), "reason": error.to_string() });
                    self.emit_json(UNSUBSCRIBED_EVENT, &event).map_err(|_| ClientError::Internal)?;
                }
                self.principal = Some(verified.principal);
                Ok(())
            }
            "rpc" => {
                let raw = argument.ok_or_else(|| ClientError::BadRequest("rpc needs {method, data}".into()))?;
                let params: RpcParams<'_> = crate::json::decode_object(raw.get()).map_err(|e| ClientError::BadRequest(e.to_string()))?;
                let data = rpc_checked(&self.state, &self.caller(&principal), params.method, params.data).await?;
                self.acknowledge(ack, &RpcResult { data: &data })
            }
            other => match self.state.socketio_map.clone().client_event(other) {
                Some(rule) => self.mapped_event(rule, argument, ack).await,
                None => Err(ClientError::UnknownMethod(other.chars().take(64).collect())),
            },
        }
    }

    /// Answers `ack` if the client asked for one; a failure to queue it ends the socket later
    /// (the queue reports the overflow).
    pub(super) fn acknowledge(&mut self, ack: Option<u64>, value: &impl Serialize) -> Result<(), ClientError> {
        match ack {
            Some(id) => self.ack(id, value).map_err(|_| ClientError::Internal),
            None => Ok(()),
        }
    }

    pub(super) async fn subscribe(&mut self, params: SubscribeParams, ack: Option<u64>) -> Result<(), ClientError> {
        let principal = self.principal.clone().ok_or(ClientError::Unauthorized("connect first".into()))?;
        let node = self.state.node.clone();
        if let Some(followed) = self.followed.iter().find(|f| f.channel == params.channel) {
            // Apps subscribe on every `connect`, also after a resume already followed the
            // channel again: answer where it stands, as a repeat, not an error.
            let position = followed.cursor.position.clone();
            let reply = SubscribedReply { channel: &params.channel, epoch: position.epoch.as_str(), offset: position.offset, recovered: None, snapshot: None };
            return self.announce_subscribed(ack, &reply);
        }
        let limit = self.state.config.client.subscriptions_max;
        if self.followed.len() >= limit {
            return Err(ClientError::BadRequest(format!("a connection may follow at most {limit} channels")));
        }
        // A channel a resume could not follow yet resumes from where the client left it.
        read_checked(&self.state, &self.caller(&principal), &params.channel).await?;
        let since = params.since.or_else(|| self.take_pending(&params.channel));
        let resuming = since.is_some();
        let request = SubscribeRequest { since, snapshot: params.snapshot };
        if let Some(slot) = &mut self.quota {
            slot.subscribe(1)?;
        }
        let outcome = match node.subscribe(&params.channel, self.id, self.outbox.clone(), request).await {
            Ok(outcome) => outcome,
            Err(error) => {
                self.release_subscription();
                return Err(error.into());
            }
        };
        self.pending.retain(|(pending, _)| *pending != params.channel);
        // Missed publications go out as events, each followed by the position it leads to.
        let mut cursor = Cursor::new(outcome.position.clone());
        cursor.position.offset = cursor.position.offset.saturating_sub(outcome.publications.len() as u64);
        self.followed.push(Followed { channel: params.channel.clone(), cursor });
        for publication in &outcome.publications {
            self.admit_and_emit(publication).map_err(|_| ClientError::Internal)?;
        }
        let reply = SubscribedReply {
            channel: &params.channel,
            epoch: outcome.position.epoch.as_str(),
            offset: outcome.position.offset,
            recovered: resuming.then_some(outcome.recovered),
            snapshot: outcome.snapshot.as_deref().map(Publications),
        };
        self.announce_subscribed(ack, &reply)?;
        node.join(&params.channel, self.client_info()).await;
        Ok(())
    }

    /// The ack when the client asked for one, and a `subscribed` event in any case: only
    /// events move the position socket.io-client keeps, so the new channel must reach it.
    fn announce_subscribed(&mut self, ack: Option<u64>, reply: &SubscribedReply<'_>) -> Result<(), ClientError> {
        if let Some(id) = ack {
            self.ack(id, reply).map_err(|_| ClientError::Internal)?;
        }
        self.emit_json(SUBSCRIBED_EVENT, reply).map_err(|_| ClientError::Internal)
    }

    pub(super) async fn unsubscribe(&mut self, channel: &ChannelName) -> Result<(), ClientError> {
        let index = self.followed.iter().position(|f| &f.channel == channel).ok_or(ClientError::NotSubscribed)?;
        self.followed.remove(index);
        self.release_subscription();
        self.state.node.unsubscribe(channel, self.id).await;
        self.state.node.leave(channel, self.client_info()).await;
        Ok(())
    }

    /// Gives one subscription back to the user's quota.
    fn release_subscription(&mut self) {
        if let Some(slot) = &mut self.quota {
            slot.unsubscribe();
        }
    }
}

impl SioSocket {
    /// Unique across the cluster: `{node}-{connection}`.
    pub(super) fn client_ref(&self) -> ClientRef<'_> {
        ClientRef { node: &self.state.node_id, connection: self.id }
    }

    /// Who asks, as the app's hooks are told.
    pub(super) fn caller<'a>(&'a self, principal: &'a Principal) -> HookCaller<'a> {
        HookCaller { principal, transport: Transport::Socketio, client: Some(self.client_ref()) }
    }
}
