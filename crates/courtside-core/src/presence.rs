//! Presence: which clients are subscribed to a channel, as a seam with an in-memory
//! implementation for a single node.

use std::collections::{BTreeMap, HashMap, HashSet};

use async_trait::async_trait;
use parking_lot::Mutex;
use serde::Serialize;

use crate::channel::ChannelName;

/// One subscribed client as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientInfo {
    /// The connection's id, unique on its node.
    pub client: String,
    /// The user (`sub` of the token); empty for anonymous clients.
    pub user: String,
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
