//! Per-channel order on the way into the hub: whatever a broker does (drop, repeat, reorder —
//! Redis pub/sub is at-most-once), the hub sees each channel's publications once, in offset
//! order. A gap is filled from the store before anything after it is delivered, without
//! disconnecting anyone.
//!
//! Only channels with local subscribers are tracked; the order of a channel starts at the
//! position its first subscriber learned from the store ([`Sequencer::observe`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parking_lot::Mutex;

use crate::channel::ChannelName;
use crate::hub::{Hub, PresenceEvent};
use crate::store::{HistoryQuery, StreamStore};
use crate::stream::{Epoch, Publication, StreamPosition};

/// Retries of a failed history read before a repair gives up (subscribers' cursors then notice).
const REPAIR_ATTEMPTS_MAX: u32 = 50;
const REPAIR_RETRY_DELAY: Duration = Duration::from_millis(100);
/// Pauses between checks after a commit of unknown outcome; the checks stop at the first answer.
const UNKNOWN_OUTCOME_CHECK_PAUSES_MS: [u64; 6] = [200, 800, 2_000, 5_000, 10_000, 30_000];

#[derive(Default)]
pub struct SequencerStats {
    /// Gaps in a broker's stream filled from the store.
    pub gaps_repaired: AtomicU64,
    /// Publications a broker delivered more than once.
    pub duplicates_dropped: AtomicU64,
    /// Repairs abandoned because the store could not be read.
    pub repairs_abandoned: AtomicU64,
}

#[derive(Default)]
struct ChannelOrder {
    /// The last publication delivered to the hub.
    last: Option<(Epoch, u64)>,
    /// A repair task is filling a gap; arrivals wait in `held`.
    repairing: bool,
    held: BTreeMap<u64, Publication>,
}

pub struct Sequencer {
    hub: Arc<Hub>,
    store: OnceLock<Arc<dyn StreamStore>>,
    channels: Mutex<HashMap<ChannelName, ChannelOrder>>,
    /// Channels with a [`Sequencer::check_when_store_answers`] task running.
    checking: Mutex<HashSet<ChannelName>>,
    pub stats: SequencerStats,
}

impl Sequencer {
    pub fn new(hub: Arc<Hub>) -> Arc<Self> {
        Arc::new(Self {
            hub,
            store: OnceLock::new(),
            channels: Mutex::new(HashMap::new()),
            checking: Mutex::new(HashSet::new()),
            stats: SequencerStats::default(),
        })
    }

    /// Hands a join or leave to the channel's local subscribers (unnumbered: nothing to order).
    pub fn announce(&self, event: PresenceEvent) {
        self.hub.send_presence(event);
    }

    /// Gives the sequencer the store it repairs gaps from (the store is built after the broker
    /// that feeds the sequencer, hence not in `new`).
    pub fn attach_store(&self, store: Arc<dyn StreamStore>) {
        let _ = self.store.set(store);
    }

    /// The position a subscriber of `channel` was given by the store: publications after it
    /// must follow without a gap.
    pub fn observe(&self, channel: &ChannelName, position: &StreamPosition) {
        let mut channels = self.channels.lock();
        let order = channels.entry(channel.clone()).or_default();
        match &order.last {
            Some((epoch, last)) if *epoch == position.epoch && *last >= position.offset => {}
            _ if order.repairing => {}
            _ => order.last = Some((position.epoch.clone(), position.offset)),
        }
    }

    /// A publication arrived from the broker.
    pub fn receive(self: &Arc<Self>, publication: Publication) {
        if publication.offset == 0 {
            self.hub.deliver(publication);
            return;
        }
        let mut channels = self.channels.lock();
        if self.hub.subscriber_count(&publication.channel) == 0 {
            channels.remove(&publication.channel);
            return;
        }
        let channel = publication.channel.clone();
        let order = channels.entry(channel.clone()).or_default();
        let last = match &order.last {
            Some((epoch, last)) if *epoch == publication.epoch => *last,
            // First sight, or the history was reset: start over from here.
            _ => {
                order.last = Some((publication.epoch.clone(), publication.offset));
                order.held.clear();
                self.hub.deliver(publication);
                return;
            }
        };
        if publication.offset <= last || order.held.contains_key(&publication.offset) {
            self.stats.duplicates_dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if order.repairing || publication.offset > last + 1 {
            let (from, to) = (last + 1, publication.offset - 1);
            order.held.insert(publication.offset, publication);
            if !order.repairing {
                order.repairing = true;
                self.spawn_repair(channel, from, to);
            }
            return;
        }
        self.deliver_in_order(order, publication);
    }

    /// Delivers `publication` (the next in order) and whatever held ones now follow it.
    fn deliver_in_order(&self, order: &mut ChannelOrder, publication: Publication) {
        let mut next = Some(publication);
        while let Some(publication) = next {
            order.last = Some((publication.epoch.clone(), publication.offset));
            let following = publication.offset + 1;
            self.hub.deliver(publication);
            next = order.held.remove(&following);
        }
    }

    /// Compares a channel with the store and fills any tail the broker never delivered (after
    /// a broker reconnect, on a periodic check, or after a commit whose outcome was unknown).
    /// Returns whether the store answered.
    pub async fn check(self: &Arc<Self>, channel: &ChannelName) -> bool {
        let Some(store) = self.store.get() else { return false };
        let Ok(top) = store.position(channel).await else { return false };
        let mut channels = self.channels.lock();
        let Some(order) = channels.get_mut(channel) else { return true };
        if order.repairing {
            return true;
        }
        if let Some((epoch, last)) = &order.last {
            if *epoch == top.epoch && top.offset > *last {
                let from = last + 1;
                order.repairing = true;
                self.spawn_repair(channel.clone(), from, top.offset);
            }
        }
        true
    }

    /// After a publish failed with the store unavailable (it may have committed unseen): checks
    /// the channel against the store once the store answers again. Only channels with local
    /// subscribers are checked, one checker per channel at a time.
    pub fn check_when_store_answers(self: &Arc<Self>, channel: ChannelName) {
        if !self.channels.lock().contains_key(&channel) || !self.checking.lock().insert(channel.clone()) {
            return;
        }
        let this = self.clone();
        tokio::spawn(async move {
            for pause_ms in UNKNOWN_OUTCOME_CHECK_PAUSES_MS {
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                if this.check(&channel).await {
                    break;
                }
            }
            this.checking.lock().remove(&channel);
        });
    }

    /// Channels being ordered (those with local subscribers).
    pub fn channels(&self) -> Vec<ChannelName> {
        self.channels.lock().keys().cloned().collect()
    }

    fn spawn_repair(self: &Arc<Self>, channel: ChannelName, from: u64, to: u64) {
        let this = self.clone();
        tokio::spawn(async move { this.repair(channel, from, to).await });
    }

    async fn repair(self: Arc<Self>, channel: ChannelName, mut from: u64, mut to: u64) {
        let mut attempts = 0;
        loop {
            let page = match self.store.get() {
                Some(store) => {
                    store.read(&channel, HistoryQuery::After { offset: from - 1, limit: (to - from + 1) as usize }).await
                }
                None => Err(crate::store::StoreError::Closed),
            };
            let step = match page {
                Ok(page) => {
                    attempts = 0;
                    self.apply_repair(&channel, page.publications, to)
                }
                Err(_) => {
                    attempts += 1;
                    self.after_failed_read(&channel, attempts)
                }
            };
            match step {
                RepairStep::Done => return,
                RepairStep::Next { from: f, to: t } => (from, to) = (f, t),
                RepairStep::Retry => tokio::time::sleep(REPAIR_RETRY_DELAY).await,
            }
        }
    }

    /// Delivers what history returned for the gap, then whatever held publications follow.
    fn apply_repair(&self, channel: &ChannelName, publications: Vec<Publication>, to: u64) -> RepairStep {
        let mut channels = self.channels.lock();
        let Some(order) = channels.get_mut(channel) else { return RepairStep::Done };
        self.stats.gaps_repaired.fetch_add(1, Ordering::Relaxed);
        for publication in publications {
            let expected = order.last.as_ref().map_or(publication.offset, |(_, last)| last + 1);
            if publication.offset == expected {
                order.held.remove(&publication.offset);
                self.deliver_in_order(order, publication);
            }
        }
        // What history no longer holds is skipped here; each subscriber's cursor sees the jump
        // and its client resumes (and learns of the loss).
        if let Some((epoch, last)) = order.last.clone() {
            if last < to {
                order.last = Some((epoch, to));
            }
        }
        let last = order.last.as_ref().map_or(0, |(_, last)| *last);
        if let Some(next) = order.held.remove(&(last + 1)) {
            self.deliver_in_order(order, next);
        }
        let last = order.last.as_ref().map_or(0, |(_, last)| *last);
        match order.held.keys().next().copied() {
            Some(first_held) => RepairStep::Next { from: last + 1, to: first_held - 1 },
            None => {
                order.repairing = false;
                RepairStep::Done
            }
        }
    }

    /// After a failed history read: retry, or give up and deliver what is held.
    fn after_failed_read(&self, channel: &ChannelName, attempts: u32) -> RepairStep {
        if attempts < REPAIR_ATTEMPTS_MAX {
            return RepairStep::Retry;
        }
        let mut channels = self.channels.lock();
        let Some(order) = channels.get_mut(channel) else { return RepairStep::Done };
        self.stats.repairs_abandoned.fetch_add(1, Ordering::Relaxed);
        order.repairing = false;
        for (_, publication) in std::mem::take(&mut order.held) {
            order.last = Some((publication.epoch.clone(), publication.offset));
            self.hub.deliver(publication);
        }
        RepairStep::Done
    }
}

enum RepairStep {
    Done,
    Next { from: u64, to: u64 },
    Retry,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{request, RecordingSink};
    use crate::hub::{outbox, Outbound};
    use crate::store::memory::MemoryStore;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// A broker that drops, repeats and reorders (seeded): the hub must still see every
    /// publication once, in order.
    #[tokio::test]
    async fn a_lossy_reordering_broker_still_yields_exactly_once_in_order() {
        for seed in 0..20u64 {
            let mut rng = StdRng::seed_from_u64(seed);
            let hub = Arc::new(Hub::new());
            let sequencer = Sequencer::new(hub.clone());
            let sink = Arc::new(RecordingSink::default());
            let store: Arc<dyn StreamStore> = Arc::new(MemoryStore::new(sink.clone()));
            sequencer.attach_store(store.clone());
            let channel = ChannelName::parse("match:seq").unwrap();
            let (subscriber, mut inbox) = outbox(10_000);
            hub.subscribe(&channel, 1, subscriber);
            let start = store.position(&channel).await.unwrap();
            sequencer.observe(&channel, &start);
            for n in 0..300 {
                store.append(request(&channel, &n.to_string())).await.unwrap();
            }
            let mut stream: Vec<Publication> = sink.seen.lock().clone();
            // Drop 10%, duplicate 10%, and swap neighbours now and then.
            stream.retain(|_| rng.random_range(0..10) != 0);
            let mut delivered = Vec::new();
            for p in stream {
                if rng.random_range(0..10) == 0 {
                    delivered.push(p.clone());
                }
                delivered.push(p);
            }
            for i in 1..delivered.len() {
                if rng.random_range(0..8) == 0 {
                    delivered.swap(i - 1, i);
                }
            }
            for p in delivered {
                sequencer.receive(p);
            }
            // The tail the broker dropped is found by a check, as after a reconnect.
            tokio::time::sleep(Duration::from_millis(20)).await;
            sequencer.check(&channel).await;
            let mut got = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            while got.len() < 300 && tokio::time::Instant::now() < deadline {
                match inbox.try_recv() {
                    Some(Outbound::Publication(d)) => got.push(d.publication.offset),
                    Some(_) => {}
                    None => tokio::time::sleep(Duration::from_millis(5)).await,
                }
            }
            assert_eq!(got, (1..=300).collect::<Vec<_>>(), "seed {seed}");
        }
    }

    #[tokio::test]
    async fn channels_without_local_subscribers_are_not_tracked() {
        let hub = Arc::new(Hub::new());
        let sequencer = Sequencer::new(hub);
        let sink = Arc::new(RecordingSink::default());
        let store: Arc<dyn StreamStore> = Arc::new(MemoryStore::new(sink.clone()));
        let channel = ChannelName::parse("match:nobody").unwrap();
        store.append(request(&channel, "1")).await.unwrap();
        for p in sink.seen.lock().clone() {
            sequencer.receive(p);
        }
        assert!(sequencer.channels().is_empty());
    }
}
