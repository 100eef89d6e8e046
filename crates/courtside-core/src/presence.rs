//! Presence: which clients are subscribed to a channel and what they said about themselves
//! ([`PresenceInfo`]: status, location, device), as a seam with an in-memory implementation for
//! a single node.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::channel::ChannelName;

/// One subscribed client as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientInfo {
    /// The connection's id, unique on its node.
    pub client: String,
    /// The user (`sub` of the token); empty for anonymous clients.
    #[serde(default)]
    pub user: String,
    /// What the client says about itself.
    #[serde(flatten)]
    pub info: PresenceInfo,
}

impl ClientInfo {
    /// A client that said nothing about itself.
    pub fn new(client: impl Into<String>, user: impl Into<String>) -> Self {
        Self { client: client.into(), user: user.into(), info: PresenceInfo::default() }
    }
}

/// Longest presence field, in bytes.
pub const PRESENCE_FIELD_LEN_MAX: usize = 64;

/// What a client says about itself, shown to the others present (seed 003's online status,
/// seed 000's "who is watching"): each field optional, 1 to [`PRESENCE_FIELD_LEN_MAX`] bytes
/// of printable text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceInfo {
    /// E.g. `online`, `away`, `in_match`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// E.g. `match:123`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// E.g. `ios`, `web`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
}

/// Why presence info was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("presence field `{field}` must be 1 to {PRESENCE_FIELD_LEN_MAX} bytes of printable text")]
pub struct PresenceInfoError {
    pub field: &'static str,
}

impl PresenceInfo {
    pub fn is_empty(&self) -> bool {
        self.status.is_none() && self.location.is_none() && self.device.is_none()
    }

    pub fn validate(&self) -> Result<(), PresenceInfoError> {
        for (field, value) in [("status", &self.status), ("location", &self.location), ("device", &self.device)] {
            if let Some(value) = value
                && (value.is_empty() || value.len() > PRESENCE_FIELD_LEN_MAX || value.chars().any(char::is_control))
            {
                return Err(PresenceInfoError { field });
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct PresenceStats {
    /// Connections present, anonymous ones included.
    pub clients: usize,
    /// Distinct signed-in users present.
    pub users: usize,
}

#[async_trait]
pub trait PresenceStore: Send + Sync + 'static {
    async fn join(&self, channel: &ChannelName, client: ClientInfo);
    async fn leave(&self, channel: &ChannelName, client: &str);
    /// Everyone present, ordered by client id.
    async fn list(&self, channel: &ChannelName) -> Vec<ClientInfo>;
    async fn stats(&self, channel: &ChannelName) -> PresenceStats;
}

#[derive(Default)]
pub struct MemoryPresence {
    channels: Mutex<HashMap<ChannelName, BTreeMap<String, ClientInfo>>>,
}

#[async_trait]
impl PresenceStore for MemoryPresence {
    async fn join(&self, channel: &ChannelName, client: ClientInfo) {
        self.channels.lock().entry(channel.clone()).or_default().insert(client.client.clone(), client);
    }

    async fn leave(&self, channel: &ChannelName, client: &str) {
        let mut channels = self.channels.lock();
        if let Some(present) = channels.get_mut(channel) {
            present.remove(client);
            if present.is_empty() {
                channels.remove(channel);
            }
        }
    }

    async fn list(&self, channel: &ChannelName) -> Vec<ClientInfo> {
        self.channels.lock().get(channel).map(|p| p.values().cloned().collect()).unwrap_or_default()
    }

    async fn stats(&self, channel: &ChannelName) -> PresenceStats {
        let channels = self.channels.lock();
        let Some(present) = channels.get(channel) else { return PresenceStats::default() };
        let users: HashSet<&str> = present.values().map(|c| c.user.as_str()).filter(|u| !u.is_empty()).collect();
        PresenceStats { clients: present.len(), users: users.len() }
    }
}
