//! The node: the composition root holding the store, the hub and presence, and the operations
//! every transport shares — publish, subscribe with resume or snapshot, history, presence.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;

use crate::broker::{Broker, BrokerError};
use crate::channel::{ChannelName, NamespaceOptions};
use crate::event::{validate_event_name, EventNameError};
use crate::sequencer::Sequencer;
use crate::hub::{ConnectionId, Hub, Outbox, PresenceEvent};
use crate::presence::{ClientInfo, PresenceStats, PresenceStore};
use crate::store::{AppendGroup, AppendRequest, Appended, HistoryQuery, StoreError, StreamStore};
use crate::stream::{now_ms, Epoch, HistoryPage, Publication, Snapshot, StreamPosition, OFFSET_MAX};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error("no namespace {0:?} is configured")]
    UnknownNamespace(String),
    #[error("namespace {0:?} keeps no keyed state, so it has no snapshot")]
    NotKeyed(String),
    #[error("namespace {0:?} keeps no history (needed for history reads and idempotency keys)")]
    NoHistory(String),
    #[error("offset {0} is above the largest offset a channel can reach ({max})", max = OFFSET_MAX)]
    OffsetOutOfRange(u64),
    #[error("already subscribed to {0}")]
    AlreadySubscribed(ChannelName),
    #[error(transparent)]
    InvalidEvent(#[from] EventNameError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Broker(#[from] BrokerError),
}

/// A publish as a transport hands it over, already authorised.
#[derive(Debug, Clone)]
pub struct PublishRequest {
    pub channel: ChannelName,
    pub data: Bytes,
    pub key: Option<String>,
    pub remove_key: bool,
    /// The event name; refused unless [`validate_event_name`] accepts it.
    pub event: Option<String>,
    pub idempotency_key: Option<String>,
}

/// Where a subscription should start.
#[derive(Debug, Clone, Default)]
pub struct SubscribeRequest {
    /// Resume after this position.
    pub since: Option<StreamPosition>,
    /// Start from the keyed state.
    pub snapshot: bool,
}

/// What a subscriber gets before live publications.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeOutcome {
    /// The position the client is at once it has applied `publications` or `snapshot`; live
    /// publications continue from `position.offset + 1`.
    pub position: StreamPosition,
    /// With `since`: whether `publications` are exactly what was missed.
    pub recovered: bool,
    /// Missed publications, in order (only when recovered).
    pub publications: Vec<Publication>,
    /// The keyed state as of `position`, when asked for or when a resume failed on a keyed channel.
    pub snapshot: Option<Vec<Publication>>,
}

pub struct Node {
    pub hub: Arc<Hub>,
    pub sequencer: Arc<Sequencer>,
    pub store: Arc<dyn StreamStore>,
    pub broker: Arc<dyn Broker>,
    pub presence: Arc<dyn PresenceStore>,
    namespaces: HashMap<String, NamespaceOptions>,
    /// The store as writers must use it: see [`Node::writer`].
    writer: Arc<dyn StreamStore>,
    /// Told of every subscription this node adds and removes (see [`Node::watch_subscriptions`]).
    watch: OnceLock<Arc<dyn SubscriptionWatch>>,
    /// Subscribes, publishes and history reads refused because a namespace is at `channels_max`.
    channel_limit_refusals: AtomicU64,
}

/// Learns of each local subscription as it is added and removed, whatever the transport: how
/// the server knows which players are online to receive rank pushes. Called on the subscribe
/// path, so it must be quick and must not block.
pub trait SubscriptionWatch: Send + Sync + 'static {
    fn subscribed(&self, channel: &ChannelName);
    fn unsubscribed(&self, channel: &ChannelName);
}

/// The store, for writers: a write whose outcome is unknown (the database failed during
/// `COMMIT`: it may have stored the publications without telling anyone, and then no broker
/// carries them) has the sequencer compare each channel with the store once it answers again,
/// so live subscribers get whatever was stored.
struct CheckedWrites {
    store: Arc<dyn StreamStore>,
    sequencer: Arc<Sequencer>,
}

#[async_trait::async_trait]
impl StreamStore for CheckedWrites {
    async fn append_group(&self, group: AppendGroup) -> Result<Vec<Appended>, StoreError> {
        let mut channels: Vec<ChannelName> = group.requests.iter().map(|request| request.channel.clone()).collect();
        let appended = self.store.append_group(group).await;
        if let Err(StoreError::Unavailable(_)) = &appended {
            channels.sort_unstable();
            channels.dedup();
            for channel in channels {
                self.sequencer.check_when_store_answers(channel);
            }
        }
        appended
    }

    async fn find_idempotent(&self, channel: &ChannelName, key: &str) -> Result<Option<Publication>, StoreError> {
        self.store.find_idempotent(channel, key).await
    }

    async fn position(&self, channel: &ChannelName) -> Result<StreamPosition, StoreError> {
        self.store.position(channel).await
    }

    async fn read(&self, channel: &ChannelName, query: HistoryQuery) -> Result<HistoryPage, StoreError> {
        self.store.read(channel, query).await
    }

    async fn snapshot(&self, channel: &ChannelName) -> Result<Snapshot, StoreError> {
        self.store.snapshot(channel).await
    }

    async fn sweep_expired(&self, now_ms: u64) -> Result<u64, StoreError> {
        self.store.sweep_expired(now_ms).await
    }

    async fn open_channel(
        &self,
        channel: &ChannelName,
        channels_max: u64,
        now_ms: u64,
    ) -> Result<StreamPosition, StoreError> {
        self.store.open_channel(channel, channels_max, now_ms).await
    }

    async fn touch_channels(&self, channels: &[ChannelName], now_ms: u64) -> Result<(), StoreError> {
        self.store.touch_channels(channels, now_ms).await
    }

    async fn expire_idle(&self, namespace: &str, idle_secs: u64, now_ms: u64) -> Result<Vec<ChannelName>, StoreError> {
        self.store.expire_idle(namespace, idle_secs, now_ms).await
    }

    async fn ready(&self) -> bool {
        self.store.ready().await
    }

    async fn close(&self) {
        self.store.close().await;
    }
}

/// The parts a node is built from.
pub struct NodeParts {
    pub hub: Arc<Hub>,
    pub sequencer: Arc<Sequencer>,
    pub store: Arc<dyn StreamStore>,
    pub broker: Arc<dyn Broker>,
    pub presence: Arc<dyn PresenceStore>,
    pub namespaces: HashMap<String, NamespaceOptions>,
}

impl Node {
    pub fn new(parts: NodeParts) -> Self {
        let NodeParts { hub, sequencer, store, broker, presence, namespaces } = parts;
        sequencer.attach_store(store.clone());
        let writer = Arc::new(CheckedWrites { store: store.clone(), sequencer: sequencer.clone() });
        Self {
            hub,
            sequencer,
            store,
            broker,
            presence,
            namespaces,
            writer,
            watch: OnceLock::new(),
            channel_limit_refusals: AtomicU64::new(0),
        }
    }

    /// Sets the one [`SubscriptionWatch`]; a second is refused (returns `false`).
    pub fn watch_subscriptions(&self, watch: Arc<dyn SubscriptionWatch>) -> bool {
        self.watch.set(watch).is_ok()
    }

    fn removed(&self, channel: &ChannelName, connection: ConnectionId) -> bool {
        let removed = self.hub.unsubscribe(channel, connection);
        if removed && let Some(watch) = self.watch.get() {
            watch.unsubscribed(channel);
        }
        removed
    }

    /// The store for anything that writes on this node's behalf (the sports service): like
    /// [`Node::store`], but a write of unknown outcome is checked and delivered once the store
    /// answers again.
    pub fn writer(&self) -> Arc<dyn StreamStore> {
        self.writer.clone()
    }

    pub fn options(&self, channel: &ChannelName) -> Result<&NamespaceOptions, NodeError> {
        self.namespaces
            .get(channel.namespace())
            .ok_or_else(|| NodeError::UnknownNamespace(channel.namespace().to_string()))
    }

    pub fn namespaces(&self) -> &HashMap<String, NamespaceOptions> {
        &self.namespaces
    }

    /// How many uses of a channel were refused because its namespace is at `channels_max`.
    pub fn channel_limit_refusals(&self) -> u64 {
        self.channel_limit_refusals.load(Ordering::Relaxed)
    }

    /// Asks the store for `channel` before it is used, where the namespace limits or expires
    /// its channels: a channel beyond `channels_max` is refused (and counted), and the use marks
    /// the channel active.
    async fn open_channel(&self, channel: &ChannelName, options: &NamespaceOptions) -> Result<(), NodeError> {
        if !options.opens_channels() {
            return Ok(());
        }
        match self.store.open_channel(channel, options.channels_max, now_ms()).await {
            Ok(_) => Ok(()),
            Err(error) => {
                if let StoreError::ChannelLimit { .. } = error {
                    self.channel_limit_refusals.fetch_add(1, Ordering::Relaxed);
                }
                Err(error.into())
            }
        }
    }

    /// Stores (when the namespace keeps history) and delivers one publication.
    pub async fn publish(&self, request: PublishRequest) -> Result<Appended, NodeError> {
        let options = self.options(&request.channel)?;
        if let Some(event) = &request.event {
            validate_event_name(event)?;
        }
        if !options.has_history() {
            if request.idempotency_key.is_some() {
                return Err(NodeError::NoHistory(request.channel.namespace().to_string()));
            }
            let publication = Publication {
                channel: request.channel,
                epoch: Epoch::default(),
                offset: 0,
                key: request.key,
                removed: request.remove_key,
                event: request.event,
                data: request.data,
                time_ms: now_ms(),
            };
            self.broker.committed(vec![publication.clone()]);
            return Ok(Appended { publication, duplicate: false });
        }
        let retention = options.retention();
        if options.channels_max > 0 {
            self.open_channel(&request.channel, options).await?;
        }
        let appended = self
            .writer
            .append(AppendRequest {
                channel: request.channel,
                data: request.data,
                key: request.key,
                remove_key: request.remove_key,
                event: request.event,
                idempotency_key: request.idempotency_key,
                retention,
            })
            .await;
        Ok(appended?)
    }

    /// Registers `outbox` for live publications on `channel`, then works out what the client
    /// missed. Live publications that race with the read reach the outbox too; the subscriber
    /// drops those at or below `outcome.position.offset`, so nothing is lost or seen twice.
    pub async fn subscribe(
        &self,
        channel: &ChannelName,
        connection: ConnectionId,
        outbox: Outbox,
        request: SubscribeRequest,
    ) -> Result<SubscribeOutcome, NodeError> {
        let options = self.options(channel)?.clone();
        if request.snapshot && !options.keyed {
            return Err(NodeError::NotKeyed(channel.namespace().to_string()));
        }
        if let Some(since) = &request.since {
            check_offset(since.offset)?;
        }
        self.open_channel(channel, &options).await?;
        if !self.hub.subscribe(channel, connection, outbox) {
            return Err(NodeError::AlreadySubscribed(channel.clone()));
        }
        if let Some(watch) = self.watch.get() {
            watch.subscribed(channel);
        }
        if let Err(error) = self.broker.follow(channel).await {
            self.removed(channel, connection);
            return Err(error.into());
        }
        let outcome = self.catch_up(channel, &options, request).await;
        match &outcome {
            Ok(outcome) => self.sequencer.observe(channel, &outcome.position),
            Err(_) => self.unsubscribe(channel, connection).await,
        }
        outcome
    }

    async fn catch_up(
        &self,
        channel: &ChannelName,
        options: &NamespaceOptions,
        request: SubscribeRequest,
    ) -> Result<SubscribeOutcome, NodeError> {
        if !options.has_history() {
            return Ok(SubscribeOutcome { recovered: request.since.is_none(), ..Default::default() });
        }
        if let Some(since) = request.since {
            let page = self
                .store
                .read(channel, HistoryQuery::After { offset: since.offset, limit: options.history_size as usize + 1 })
                .await?;
            if is_complete_replay(&since, &page) {
                return Ok(SubscribeOutcome {
                    position: page.top,
                    recovered: true,
                    publications: page.publications,
                    snapshot: None,
                });
            }
            if !options.keyed {
                return Ok(SubscribeOutcome { position: page.top, ..Default::default() });
            }
        } else if !request.snapshot {
            return Ok(SubscribeOutcome { position: self.store.position(channel).await?, ..Default::default() });
        }
        let snapshot = self.store.snapshot(channel).await?;
        Ok(SubscribeOutcome {
            position: snapshot.position,
            recovered: false,
            publications: Vec::new(),
            snapshot: Some(snapshot.entries),
        })
    }

    pub async fn unsubscribe(&self, channel: &ChannelName, connection: ConnectionId) {
        if self.removed(channel, connection) {
            self.broker.unfollow(channel).await;
        }
    }

    pub async fn history(&self, channel: &ChannelName, query: HistoryQuery) -> Result<HistoryPage, NodeError> {
        let options = self.options(channel)?;
        if !options.has_history() {
            return Err(NodeError::NoHistory(channel.namespace().to_string()));
        }
        if let HistoryQuery::After { offset, .. } = query {
            check_offset(offset)?;
        }
        if options.channels_max > 0 {
            self.open_channel(channel, options).await?;
        }
        Ok(self.store.read(channel, query).await?)
    }

    /// Records a subscriber in presence and, where the namespace wants it, tells the others.
    pub async fn join(&self, channel: &ChannelName, client: ClientInfo) {
        let Ok(options) = self.options(channel) else { return };
        if !options.presence {
            return;
        }
        let announce = options.join_leave;
        self.presence.join(channel, client.clone()).await;
        if announce {
            self.broker.announce(PresenceEvent { channel: channel.clone(), joined: true, client });
        }
    }

    pub async fn leave(&self, channel: &ChannelName, client: ClientInfo) {
        let Ok(options) = self.options(channel) else { return };
        if !options.presence {
            return;
        }
        let announce = options.join_leave;
        self.presence.leave(channel, &client.client).await;
        if announce {
            self.broker.announce(PresenceEvent { channel: channel.clone(), joined: false, client });
        }
    }

    pub async fn presence(&self, channel: &ChannelName) -> Result<Vec<ClientInfo>, NodeError> {
        self.options(channel)?;
        Ok(self.presence.list(channel).await)
    }

    pub async fn presence_stats(&self, channel: &ChannelName) -> Result<PresenceStats, NodeError> {
        self.options(channel)?;
        Ok(self.presence.stats(channel).await)
    }
}

/// An offset a client names (a resume position, a history read's `after`) must be one a stream
/// can reach; past [`OFFSET_MAX`] it is the caller's mistake, not the store's.
fn check_offset(offset: u64) -> Result<(), NodeError> {
    if offset > OFFSET_MAX {
        return Err(NodeError::OffsetOutOfRange(offset));
    }
    Ok(())
}

/// Does `page` hold exactly the publications after `since`, up to the top, in the same epoch?
pub fn is_complete_replay(since: &StreamPosition, page: &HistoryPage) -> bool {
    since.epoch == page.top.epoch
        && since.offset <= page.top.offset
        && since.offset + 1 >= page.earliest_offset
        && page.publications.len() as u64 == page.top.offset - since.offset
        && page.publications.iter().zip(since.offset + 1..).all(|(p, expected)| p.offset == expected)
}
