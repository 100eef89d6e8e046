//! A socket's admission and resume: who the client is (the JWT in `auth.token`, else the
//! handshake's `Authorization: Bearer`, else anonymous where allowed), and, when socket.io-client
//! sends back the private id and the position it kept, the channels followed again from there.
//!
//! The CONNECT reply is decided last: the client's private id is echoed (so `socket.recovered`
//! is `true`) only when its position decoded and every channel in it is followed again;
//! otherwise a new one is issued and the app knows to subscribe again. What the resume sends
//! (missed publications, `subscribed` events) is held until the CONNECT reply has gone out, and
//! channels that could not be followed again stay in the position every event carries, so a
//! later reconnect tries them again.

use courtside_core::stream::StreamPosition;
use serde::Deserialize;
use serde_json::value::RawValue;

use super::super::{engine, recovery, sio};
use super::{is_private_id, SioSocket};
use courtside_core::presence::PresenceInfo;

use crate::protocol::{ClientError, Disconnect, SubscribeParams};

/// The data of `connect`: the client's `auth`, plus what socket.io-client adds to resume.
#[derive(Deserialize, Default)]
struct ConnectData {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    pid: Option<String>,
    #[serde(default)]
    offset: Option<String>,
    /// What the socket says about itself to those present (status, location, device).
    #[serde(default)]
    presence: Option<PresenceInfo>,
}

impl SioSocket {
    /// Handles CONNECT: admits or refuses the client, resumes what it names.
    pub(super) async fn connect(&mut self, data: Option<&RawValue>) -> Result<(), Disconnect> {
        if self.principal.is_some() {
            return Ok(());
        }
        let data: ConnectData = match data.map(|raw| serde_json::from_str(raw.get())) {
            None => ConnectData::default(),
            Some(Ok(data)) => data,
            Some(Err(error)) => {
                let refused = ClientError::BadRequest(format!("the connect data is not `{{token?, pid?, offset?}}`: {error}"));
                return self.refuse_connect(&refused);
            }
        };
        // An empty token is none (an app that has no token yet sends `auth: { token: "" }`).
        if let Some(info) = data.presence.clone() {
            if let Err(error) = info.validate() {
                return self.refuse_connect(&ClientError::BadRequest(error.to_string()));
            }
            self.presence_info = info;
        }
        let token = data.token.clone().filter(|token| !token.is_empty()).or_else(|| self.header_token.clone());
        let (principal, expires) = match self.state.admit(token.as_deref()) {
            Ok(admitted) => admitted,
            Err(error) => return self.refuse_connect(&error),
        };
        let slot = match self.state.quotas.admit(&principal) {
            Ok(slot) => slot,
            Err(refused) => return self.refuse_connect_with(&refused.to_string(), ClientError::from(refused).code()),
        };
        if let Err(refused) = self.state.hooks.connect(&self.caller(&principal)).await {
            return self.refuse_connect(&refused);
        }
        self.quota = slot;
        self.principal = Some(principal);
        self.token_expires_at_secs = expires;

        self.held = Some(Vec::new());
        let resumed = match (data.pid.as_deref().filter(|pid| is_private_id(pid)), data.offset.as_deref()) {
            (Some(_), Some(offset)) => self.resume(offset).await,
            _ => false,
        };
        let held = self.held.take().unwrap_or_default();
        let pid = match (resumed, data.pid) {
            (true, Some(pid)) => pid,
            _ => engine::random_id(),
        };
        let mut accepted = String::new();
        sio::encode::connect(&mut accepted, &self.client_id(), &pid);
        self.send_raw(accepted)?;
        for packet in held {
            self.send_raw(packet)?;
        }
        self.follow_on_connect().await
    }

    fn refuse_connect(&mut self, error: &ClientError) -> Result<(), Disconnect> {
        self.refuse_connect_with(&error.to_string(), error.code())
    }

    /// `connect_error` with `message` and `{"code": code}` as its data.
    fn refuse_connect_with(&mut self, message: &str, code: u16) -> Result<(), Disconnect> {
        let mut refused = String::new();
        sio::encode::connect_error(&mut refused, "/", message, &serde_json::json!({ "code": code }));
        self.send_raw(refused)
    }

    /// Follows again every channel of a position a reconnecting client sent back; `true` when
    /// all of them are followed again. Channels that failed for a reason that may pass (the store
    /// or broker unavailable) stay pending: in the position, and resumed from it when the app
    /// subscribes to them.
    async fn resume(&mut self, offset: &str) -> bool {
        let Ok(positions) = recovery::decode(offset, self.state.config.client.subscriptions_max) else { return false };
        self.pending = positions;
        let mut all = true;
        for (channel, since) in self.pending.clone() {
            let since = (!since.epoch.as_str().is_empty()).then_some(since);
            let params = SubscribeParams { channel: channel.clone(), since, snapshot: false };
            match self.subscribe(params, None).await {
                Ok(()) => {}
                Err(error) => {
                    all = false;
                    if !matches!(error, ClientError::Unavailable(_)) {
                        self.pending.retain(|(pending, _)| *pending != channel);
                    }
                    if self.refuse("subscribe", None, &error).is_err() {
                        return false;
                    }
                }
            }
        }
        all
    }

    /// Where a channel the app subscribes to was left, if a resume could not follow it yet.
    pub(super) fn take_pending(&mut self, channel: &courtside_core::ChannelName) -> Option<StreamPosition> {
        let index = self.pending.iter().position(|(pending, _)| pending == channel)?;
        let (_, position) = self.pending.remove(index);
        (!position.epoch.as_str().is_empty()).then_some(position)
    }
}
