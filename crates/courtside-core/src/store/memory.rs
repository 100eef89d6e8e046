//! An in-memory `StreamStore`: the reference implementation of the contract, for tests and for
//! nodes that need no durability. Everything lives behind one mutex; the sink is called under it,
//! which is what keeps commit order equal to offset order.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use async_trait::async_trait;
use parking_lot::Mutex;

use super::{
    in_namespace, AppendGroup, AppendRequest, Appended, CommitSink, HistoryQuery, PositionConflict, StoreError,
    StreamStore, IDEMPOTENCY_WINDOW_SECS,
};
use crate::channel::ChannelName;
use crate::stream::{now_ms, Epoch, HistoryPage, Publication, Snapshot, StreamPosition};

pub struct MemoryStore {
    channels: Mutex<Option<HashMap<ChannelName, MemoryChannel>>>,
    sink: Arc<dyn CommitSink>,
}

#[derive(Default)]
struct MemoryChannel {
    epoch: Epoch,
    top: u64,
    history_ttl_secs: u64,
    history: VecDeque<Publication>,
    state: BTreeMap<String, Publication>,
    idempotency: HashMap<String, Publication>,
    /// When the channel was last created, appended to, opened or touched.
    active_ms: u64,
}

impl MemoryChannel {
    fn new() -> Self {
        Self { epoch: Epoch::new_random(), active_ms: now_ms(), ..Default::default() }
    }

    fn position(&self) -> StreamPosition {
        StreamPosition { epoch: self.epoch.clone(), offset: self.top }
    }

    fn earliest_offset(&self) -> u64 {
        self.history.front().map_or(self.top + 1, |p| p.offset)
    }

    /// Stores one publication at the next offset (the caller checked idempotency).
    fn append(&mut self, request: AppendRequest, now: u64) -> Publication {
        self.top += 1;
        self.active_ms = self.active_ms.max(now);
        self.history_ttl_secs = request.retention.history_ttl_secs;
        let publication = Publication {
            channel: request.channel,
            epoch: self.epoch.clone(),
            offset: self.top,
            key: request.key,
            removed: request.remove_key,
            event: request.event,
            data: request.data,
            time_ms: now,
        };
        self.history.push_back(publication.clone());
        while self.history.len() as u64 > request.retention.history_size {
            self.history.pop_front();
        }
        if let (true, Some(key)) = (request.retention.keyed, &publication.key) {
            if request.remove_key {
                self.state.remove(key);
            } else {
                self.state.insert(key.clone(), publication.clone());
            }
        }
        publication
    }
}

impl MemoryStore {
    pub fn new(sink: Arc<dyn CommitSink>) -> Self {
        Self { channels: Mutex::new(Some(HashMap::new())), sink }
    }
}

#[async_trait]
impl StreamStore for MemoryStore {
    async fn append_group(&self, group: AppendGroup) -> Result<Vec<Appended>, StoreError> {
        let mut guard = self.channels.lock();
        let channels = guard.as_mut().ok_or(StoreError::Closed)?;
        let first = group.requests.first().ok_or(StoreError::EmptyGroup)?;
        let now = now_ms();
        let channel = channels.entry(first.channel.clone()).or_insert_with(MemoryChannel::new);
        channel.idempotency.retain(|_, p| p.time_ms + IDEMPOTENCY_WINDOW_SECS * 1000 > now);
        if let Some(original) = first.idempotency_key.as_ref().and_then(|k| channel.idempotency.get(k)) {
            return Ok(vec![Appended { publication: original.clone(), duplicate: true }]);
        }
        for expected in &group.expected {
            let channel = channels.entry(expected.channel.clone()).or_insert_with(MemoryChannel::new);
            PositionConflict::check(expected, &channel.position())?;
        }
        let group_key = first.idempotency_key.clone();
        let mut appended = Vec::with_capacity(group.requests.len());
        for (index, request) in group.requests.into_iter().enumerate() {
            let channel = channels.entry(request.channel.clone()).or_insert_with(MemoryChannel::new);
            let publication = channel.append(request, now);
            if let (0, Some(key)) = (index, &group_key) {
                channel.idempotency.insert(key.clone(), publication.clone());
            }
            appended.push(publication);
        }
        self.sink.committed(appended.clone());
        Ok(appended.into_iter().map(|publication| Appended { publication, duplicate: false }).collect())
    }

    async fn find_idempotent(&self, channel: &ChannelName, key: &str) -> Result<Option<Publication>, StoreError> {
        let guard = self.channels.lock();
        let channels = guard.as_ref().ok_or(StoreError::Closed)?;
        let now = now_ms();
        Ok(channels
            .get(channel)
            .and_then(|channel| channel.idempotency.get(key))
            .filter(|original| original.time_ms + IDEMPOTENCY_WINDOW_SECS * 1000 > now)
            .cloned())
    }

    async fn position(&self, channel: &ChannelName) -> Result<StreamPosition, StoreError> {
        let mut guard = self.channels.lock();
        let channels = guard.as_mut().ok_or(StoreError::Closed)?;
        Ok(channels.entry(channel.clone()).or_insert_with(MemoryChannel::new).position())
    }

    async fn read(&self, channel: &ChannelName, query: HistoryQuery) -> Result<HistoryPage, StoreError> {
        let mut guard = self.channels.lock();
        let channels = guard.as_mut().ok_or(StoreError::Closed)?;
        let channel = channels.entry(channel.clone()).or_insert_with(MemoryChannel::new);
        let publications = match query {
            HistoryQuery::After { offset, limit } => {
                channel.history.iter().filter(|p| p.offset > offset).take(limit).cloned().collect()
            }
            HistoryQuery::Latest { limit } => {
                let skip = channel.history.len().saturating_sub(limit);
                channel.history.iter().skip(skip).cloned().collect()
            }
        };
        Ok(HistoryPage { publications, top: channel.position(), earliest_offset: channel.earliest_offset() })
    }

    async fn snapshot(&self, channel: &ChannelName) -> Result<Snapshot, StoreError> {
        let mut guard = self.channels.lock();
        let channels = guard.as_mut().ok_or(StoreError::Closed)?;
        let channel = channels.entry(channel.clone()).or_insert_with(MemoryChannel::new);
        Ok(Snapshot { entries: channel.state.values().cloned().collect(), position: channel.position() })
    }

    async fn sweep_expired(&self, now_ms: u64) -> Result<u64, StoreError> {
        let mut guard = self.channels.lock();
        let channels = guard.as_mut().ok_or(StoreError::Closed)?;
        let mut dropped = 0;
        for channel in channels.values_mut().filter(|c| c.history_ttl_secs > 0) {
            let cutoff = now_ms.saturating_sub(channel.history_ttl_secs * 1000);
            while channel.history.front().is_some_and(|p| p.time_ms < cutoff) {
                channel.history.pop_front();
                dropped += 1;
            }
        }
        Ok(dropped)
    }

    async fn open_channel(
        &self,
        channel: &ChannelName,
        channels_max: u64,
        now_ms: u64,
    ) -> Result<StreamPosition, StoreError> {
        let mut guard = self.channels.lock();
        let channels = guard.as_mut().ok_or(StoreError::Closed)?;
        if !channels.contains_key(channel) && channels_max > 0 {
            let namespace = channel.namespace();
            let held = channels.keys().filter(|name| in_namespace(name.as_str(), namespace)).count() as u64;
            if held >= channels_max {
                return Err(StoreError::ChannelLimit { namespace: namespace.to_string(), max: channels_max });
            }
        }
        let opened = channels.entry(channel.clone()).or_insert_with(MemoryChannel::new);
        opened.active_ms = opened.active_ms.max(now_ms);
        Ok(opened.position())
    }

    async fn touch_channels(&self, touched: &[ChannelName], now_ms: u64) -> Result<(), StoreError> {
        let mut guard = self.channels.lock();
        let channels = guard.as_mut().ok_or(StoreError::Closed)?;
        for name in touched {
            if let Some(channel) = channels.get_mut(name) {
                channel.active_ms = channel.active_ms.max(now_ms);
            }
        }
        Ok(())
    }

    async fn expire_idle(&self, namespace: &str, idle_secs: u64, now_ms: u64) -> Result<Vec<ChannelName>, StoreError> {
        let mut guard = self.channels.lock();
        let channels = guard.as_mut().ok_or(StoreError::Closed)?;
        let cutoff = now_ms.saturating_sub(idle_secs.saturating_mul(1000));
        let mut expired: Vec<ChannelName> = channels
            .iter()
            .filter(|(name, channel)| in_namespace(name.as_str(), namespace) && channel.active_ms < cutoff)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &expired {
            channels.remove(name);
        }
        expired.sort_unstable();
        Ok(expired)
    }

    async fn ready(&self) -> bool {
        self.channels.lock().is_some()
    }

    async fn close(&self) {
        self.channels.lock().take();
    }
}
