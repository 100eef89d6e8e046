//! Local fan-out: which connections follow which channel, and the bounded outbox of each.
//!
//! A committed publication is wrapped once in an [`Arc<Delivery>`] and pushed, by pointer, into
//! every subscriber's outbox with `try_send`: the hub never waits for a connection and takes no
//! per-subscriber lock. An outbox is bounded twice, by items and by the bytes of the payloads it
//! holds (so a few large publications cannot hold as much memory as a thousand small ones); a full
//! outbox marks its connection as a slow consumer; the connection then closes itself and its
//! client resumes from its last offset.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use bytes::Bytes;
use parking_lot::RwLock;
use tokio::sync::{mpsc, Notify};

use crate::channel::ChannelName;
use crate::presence::ClientInfo;
use crate::stream::Publication;

pub type ConnectionId = u64;

const SHARD_COUNT: usize = 64;

/// How many encodings of one publication the transports may cache on its [`Delivery`].
pub const WIRE_FORMATS: usize = 3;

/// One of the [`WIRE_FORMATS`] encodings a [`Delivery`] caches. The server names them (core
/// knows no wire format); an index out of range does not compile where the format is a const.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WireFormat(usize);

impl WireFormat {
    pub const fn new(index: usize) -> Self {
        assert!(index < WIRE_FORMATS, "a wire format index must be below WIRE_FORMATS");
        Self(index)
    }
}

/// A publication on its way to local subscribers, shared by all of them.
pub struct Delivery {
    pub publication: Publication,
    /// When the hub received it; publish→deliver latency is measured from here.
    pub received_at: Instant,
    wires: [OnceLock<Bytes>; WIRE_FORMATS],
}

impl Delivery {
    pub fn new(publication: Publication) -> Self {
        Self { publication, received_at: Instant::now(), wires: Default::default() }
    }

    /// The publication encoded in `format`: by the first connection that asks, then shared by
    /// every connection that speaks that format.
    pub fn wire(&self, format: WireFormat, encode: impl FnOnce(&Publication) -> Bytes) -> &Bytes {
        self.wires[format.0].get_or_init(|| encode(&self.publication))
    }
}

/// A join or leave in a channel with `join_leave` on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceEvent {
    pub channel: ChannelName,
    pub joined: bool,
    pub client: ClientInfo,
}

/// What the hub puts into a connection's outbox.
#[derive(Clone)]
pub enum Outbound {
    Publication(Arc<Delivery>),
    Presence(Arc<PresenceEvent>),
}

/// What one item counts against an outbox's byte bound besides its payload (the frame around it).
const ITEM_OVERHEAD_BYTES: usize = 128;

impl Outbound {
    /// The bytes this item counts against its outbox's bound: its payload and a fixed overhead.
    fn queued_bytes(&self) -> usize {
        match self {
            Outbound::Publication(delivery) => delivery.publication.data.len() + ITEM_OVERHEAD_BYTES,
            Outbound::Presence(_) => ITEM_OVERHEAD_BYTES,
        }
    }
}

struct OutboxSignal {
    overflowed: AtomicBool,
    notify: Notify,
    /// Bytes of the items queued now (pushed, not yet received).
    queued_bytes: AtomicUsize,
    queued_bytes_max: usize,
}

impl OutboxSignal {
    fn mark_overflowed(&self) {
        if !self.overflowed.swap(true, Ordering::AcqRel) {
            self.notify.notify_waiters();
        }
    }

    fn received(&self, item: Option<Outbound>) -> Option<Outbound> {
        if let Some(item) = &item {
            self.queued_bytes.fetch_sub(item.queued_bytes(), Ordering::Relaxed);
        }
        item
    }
}

/// Urgent items a connection may have queued ahead of the rest; more go to the normal queue.
const URGENT_QUEUE_LEN: usize = 16;

/// The sending side of a connection's bounded queue. Cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::Sender<Outbound>,
    /// A short lane read before `tx`: urgent items overtake whatever is queued.
    urgent_tx: mpsc::Sender<Outbound>,
    signal: Arc<OutboxSignal>,
}

/// The receiving side, owned by the connection's task.
pub struct Inbox {
    rx: mpsc::Receiver<Outbound>,
    urgent_rx: mpsc::Receiver<Outbound>,
    signal: Arc<OutboxSignal>,
}

/// A connection's queue, holding at most `capacity` items before it counts as a slow consumer.
pub fn outbox(capacity: usize) -> (Outbox, Inbox) {
    bounded_outbox(capacity, usize::MAX)
}

/// A connection's queue, holding at most `capacity` items and `bytes_max` bytes of payload
/// ([`Outbound`]'s payload plus a fixed overhead per item) before it counts as a slow consumer.
/// One item is always accepted into an empty queue, however large.
pub fn bounded_outbox(capacity: usize, bytes_max: usize) -> (Outbox, Inbox) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let (urgent_tx, urgent_rx) = mpsc::channel(URGENT_QUEUE_LEN);
    let signal = Arc::new(OutboxSignal {
        overflowed: AtomicBool::new(false),
        notify: Notify::new(),
        queued_bytes: AtomicUsize::new(0),
        queued_bytes_max: bytes_max,
    });
    (Outbox { tx, urgent_tx, signal: signal.clone() }, Inbox { rx, urgent_rx, signal })
}

/// Which publications overtake what a connection has queued (critical announcements, say).
/// Decided by the server, which knows what the payloads mean.
pub type UrgencyRule = Arc<dyn Fn(&Publication) -> bool + Send + Sync>;

impl Outbox {
    /// Queues ahead of everything already queued (in the urgent lane; if that is full, at the
    /// back like any item). Returns what [`Outbox::push`] returns.
    pub fn push_urgent(&self, item: Outbound) -> bool {
        let Some(bytes) = self.reserve_bytes(&item) else { return false };
        match self.urgent_tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(item)) => {
                self.release_bytes(bytes);
                self.push(item)
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.release_bytes(bytes);
                false
            }
        }
    }

    /// Queues without waiting. Returns `false` if the queue was full, by items or by bytes (the
    /// connection is then marked overflowed), or closed.
    pub fn push(&self, item: Outbound) -> bool {
        let Some(bytes) = self.reserve_bytes(&item) else { return false };
        match self.tx.try_send(item) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) => {
                self.release_bytes(bytes);
                self.signal.mark_overflowed();
                false
            }
            Err(mpsc::error::TrySendError::Closed(_)) => {
                self.release_bytes(bytes);
                false
            }
        }
    }

    /// Counts `item` against the byte bound; `None` (and the connection marked overflowed) if it
    /// does not fit. An empty queue takes any one item.
    fn reserve_bytes(&self, item: &Outbound) -> Option<usize> {
        let bytes = item.queued_bytes();
        // A count, not a guard of other memory: relaxed is enough (it is exact once pushes settle).
        let before = self.signal.queued_bytes.fetch_add(bytes, Ordering::Relaxed);
        if before > 0 && before.saturating_add(bytes) > self.signal.queued_bytes_max {
            self.release_bytes(bytes);
            self.signal.mark_overflowed();
            return None;
        }
        Some(bytes)
    }

    fn release_bytes(&self, bytes: usize) {
        self.signal.queued_bytes.fetch_sub(bytes, Ordering::Relaxed);
    }
}

impl Inbox {
    /// The next item: an urgent one if any is queued.
    pub async fn recv(&mut self) -> Option<Outbound> {
        let item = tokio::select! {
            biased;
            Some(item) = self.urgent_rx.recv() => Some(item),
            item = self.rx.recv() => item,
        };
        self.signal.received(item)
    }

    pub fn try_recv(&mut self) -> Option<Outbound> {
        let item = self.urgent_rx.try_recv().or_else(|_| self.rx.try_recv()).ok();
        self.signal.received(item)
    }

    /// A handle that tells when this queue overflows, usable while the inbox is being read.
    pub fn overflow_signal(&self) -> OverflowSignal {
        OverflowSignal(self.signal.clone())
    }

    pub fn is_overflowed(&self) -> bool {
        self.signal.overflowed.load(Ordering::Acquire)
    }
}

/// Tells when a connection's queue has overflowed.
#[derive(Clone)]
pub struct OverflowSignal(Arc<OutboxSignal>);

impl OverflowSignal {
    /// Resolves once the queue has overflowed.
    pub async fn overflowed(&self) {
        let notified = self.0.notify.notified();
        if self.0.overflowed.load(Ordering::Acquire) {
            return;
        }
        notified.await;
    }
}

/// Counters the metrics endpoint reads; bumped once per fan-out, not per delivery.
#[derive(Default)]
pub struct HubStats {
    pub publications: AtomicU64,
    pub deliveries: AtomicU64,
    pub overflows: AtomicU64,
}

type Subscribers = Vec<(ConnectionId, Outbox)>;

pub struct Hub {
    shards: Box<[RwLock<HashMap<ChannelName, Subscribers>>]>,
    urgency: Option<UrgencyRule>,
    pub stats: HubStats,
}

impl Default for Hub {
    fn default() -> Self {
        Self::new()
    }
}

impl Hub {
    pub fn new() -> Self {
        Self {
            shards: (0..SHARD_COUNT).map(|_| RwLock::new(HashMap::new())).collect(),
            urgency: None,
            stats: HubStats::default(),
        }
    }

    /// A hub whose publications matching `rule` overtake what each connection has queued.
    pub fn with_urgency(rule: UrgencyRule) -> Self {
        Self { urgency: Some(rule), ..Self::new() }
    }

    fn shard(&self, channel: &ChannelName) -> &RwLock<HashMap<ChannelName, Subscribers>> {
        let hash = BuildHasherDefault::<DefaultHasher>::default().hash_one(channel.as_str());
        &self.shards[(hash as usize) % SHARD_COUNT]
    }

    /// Adds a subscriber; returns `false` if this connection already follows the channel.
    pub fn subscribe(&self, channel: &ChannelName, connection: ConnectionId, outbox: Outbox) -> bool {
        let mut shard = self.shard(channel).write();
        let subscribers = shard.entry(channel.clone()).or_default();
        if subscribers.iter().any(|(id, _)| *id == connection) {
            return false;
        }
        subscribers.push((connection, outbox));
        true
    }

    /// Removes a subscriber; returns whether it was there.
    pub fn unsubscribe(&self, channel: &ChannelName, connection: ConnectionId) -> bool {
        let mut shard = self.shard(channel).write();
        let Some(subscribers) = shard.get_mut(channel) else { return false };
        let Some(index) = subscribers.iter().position(|(id, _)| *id == connection) else { return false };
        subscribers.swap_remove(index);
        if subscribers.is_empty() {
            shard.remove(channel);
        }
        true
    }

    /// Fans a committed publication out to the channel's local subscribers.
    pub fn deliver(&self, publication: Publication) {
        let channel = publication.channel.clone();
        let urgent = self.urgency.as_ref().is_some_and(|rule| rule(&publication));
        self.fan_out(&channel, Outbound::Publication(Arc::new(Delivery::new(publication))), urgent);
        self.stats.publications.fetch_add(1, Ordering::Relaxed);
    }

    /// Sends a join or leave to the channel's local subscribers.
    pub fn send_presence(&self, event: PresenceEvent) {
        let channel = event.channel.clone();
        self.fan_out(&channel, Outbound::Presence(Arc::new(event)), false);
    }

    fn fan_out(&self, channel: &ChannelName, item: Outbound, urgent: bool) {
        let shard = self.shard(channel).read();
        let Some(subscribers) = shard.get(channel) else { return };
        let mut delivered = 0u64;
        for (_, outbox) in subscribers {
            let pushed = if urgent { outbox.push_urgent(item.clone()) } else { outbox.push(item.clone()) };
            if pushed {
                delivered += 1;
            } else {
                self.stats.overflows.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.stats.deliveries.fetch_add(delivered, Ordering::Relaxed);
    }

    pub fn subscriber_count(&self, channel: &ChannelName) -> usize {
        self.shard(channel).read().get(channel).map_or(0, Vec::len)
    }

    /// Every channel with at least one local subscriber, with its subscriber count.
    pub fn channels(&self) -> Vec<(ChannelName, usize)> {
        let mut all: Vec<_> = self
            .shards
            .iter()
            .flat_map(|shard| shard.read().iter().map(|(c, s)| (c.clone(), s.len())).collect::<Vec<_>>())
            .collect();
        all.sort();
        all
    }

    /// Total subscriptions on this node.
    pub fn subscription_count(&self) -> usize {
        self.shards.iter().map(|s| s.read().values().map(Vec::len).sum::<usize>()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Epoch;

    fn publication(channel: &ChannelName, offset: u64) -> Publication {
        Publication {
            channel: channel.clone(),
            epoch: Epoch::from_text("e"),
            offset,
            key: None,
            removed: false,
            event: None,
            data: Bytes::from_static(b"{}"),
            time_ms: 0,
        }
    }

    #[tokio::test]
    async fn delivers_in_order_to_every_subscriber_and_shares_one_delivery() {
        let hub = Hub::new();
        let channel = ChannelName::parse("match:1").unwrap();
        let (a, mut inbox_a) = outbox(8);
        let (b, mut inbox_b) = outbox(8);
        assert!(hub.subscribe(&channel, 1, a.clone()));
        assert!(!hub.subscribe(&channel, 1, a));
        assert!(hub.subscribe(&channel, 2, b));
        for offset in 1..=3 {
            hub.deliver(publication(&channel, offset));
        }
        for offset in 1..=3 {
            let (Some(Outbound::Publication(x)), Some(Outbound::Publication(y))) =
                (inbox_a.try_recv(), inbox_b.try_recv())
            else {
                panic!("expected publications");
            };
            assert_eq!((x.publication.offset, y.publication.offset), (offset, offset));
            assert!(Arc::ptr_eq(&x, &y), "one shared delivery per publication");
        }
        assert_eq!(hub.stats.deliveries.load(Ordering::Relaxed), 6);
    }

    #[tokio::test]
    async fn urgent_publications_overtake_what_a_connection_has_queued() {
        let rule: UrgencyRule = Arc::new(|p: &Publication| p.channel.as_str().ends_with(":announcements"));
        let hub = Hub::with_urgency(rule);
        let scores = ChannelName::parse("match:1").unwrap();
        let news = ChannelName::parse("tournament:t:announcements").unwrap();
        let (connection, mut inbox) = outbox(64);
        hub.subscribe(&scores, 1, connection.clone());
        hub.subscribe(&news, 1, connection);
        for offset in 1..=10 {
            hub.deliver(publication(&scores, offset));
        }
        hub.deliver(publication(&news, 1));
        let order: Vec<String> = std::iter::from_fn(|| inbox.try_recv())
            .map(|item| match item {
                Outbound::Publication(d) => format!("{}#{}", d.publication.channel, d.publication.offset),
                Outbound::Presence(_) => "presence".into(),
            })
            .collect();
        assert_eq!(order[0], "tournament:t:announcements#1", "the urgent one comes first: {order:?}");
        assert_eq!(order[1..], (1..=10).map(|o| format!("match:1#{o}")).collect::<Vec<_>>()[..], "the rest keep their order");
        hub.deliver(publication(&scores, 11));
        hub.deliver(publication(&news, 2));
        let Some(Outbound::Publication(first)) = inbox.recv().await else { panic!("a publication") };
        assert_eq!(first.publication.channel, news, "recv prefers the urgent lane too");
    }

    #[tokio::test]
    async fn a_full_outbox_marks_only_that_connection_overflowed() {
        let hub = Hub::new();
        let channel = ChannelName::parse("match:1").unwrap();
        let (slow, slow_inbox) = outbox(2);
        let (fast, mut fast_inbox) = outbox(16);
        hub.subscribe(&channel, 1, slow);
        hub.subscribe(&channel, 2, fast);
        for offset in 1..=3 {
            hub.deliver(publication(&channel, offset));
        }
        assert!(slow_inbox.is_overflowed());
        tokio::time::timeout(std::time::Duration::from_secs(1), slow_inbox.overflow_signal().overflowed()).await.unwrap();
        assert!(!fast_inbox.is_overflowed());
        let mut got = 0;
        while fast_inbox.try_recv().is_some() {
            got += 1;
        }
        assert_eq!(got, 3);
        assert_eq!(hub.stats.overflows.load(Ordering::Relaxed), 1);
    }

    #[tokio::test]
    async fn an_outbox_full_by_bytes_overflows_before_it_is_full_by_items() {
        let hub = Hub::new();
        let channel = ChannelName::parse("match:1").unwrap();
        let large = |offset| Publication { data: Bytes::from(vec![b'1'; 10_000]), ..publication(&channel, offset) };
        let (slow, mut slow_inbox) = bounded_outbox(1024, 25_000);
        hub.subscribe(&channel, 1, slow);
        hub.deliver(large(1));
        hub.deliver(large(2));
        assert!(!slow_inbox.is_overflowed(), "two of 10 kB fit in 25 kB");
        // Reading frees what was read.
        assert!(slow_inbox.try_recv().is_some());
        hub.deliver(large(3));
        assert!(!slow_inbox.is_overflowed(), "the read one no longer counts");
        hub.deliver(large(4));
        assert!(slow_inbox.is_overflowed(), "a third queued one does not fit");
        assert_eq!(hub.stats.overflows.load(Ordering::Relaxed), 1);

        // However large, one item always fits an empty queue.
        let (lone, lone_inbox) = bounded_outbox(1024, 10);
        assert!(lone.push(Outbound::Publication(Arc::new(Delivery::new(large(5))))));
        assert!(!lone_inbox.is_overflowed());
    }

    #[test]
    fn each_wire_format_is_encoded_once_and_kept_apart() {
        const A: WireFormat = WireFormat::new(0);
        const B: WireFormat = WireFormat::new(1);
        let channel = ChannelName::parse("match:1").unwrap();
        let delivery = Delivery::new(publication(&channel, 1));
        let encodings = std::cell::Cell::new(0);
        let encodings = &encodings;
        let encode = |tag: &'static [u8]| {
            move |_: &Publication| {
                encodings.set(encodings.get() + 1);
                Bytes::from_static(tag)
            }
        };
        assert_eq!(delivery.wire(A, encode(b"a")), &Bytes::from_static(b"a"));
        assert_eq!(delivery.wire(B, encode(b"b")), &Bytes::from_static(b"b"));
        assert_eq!(delivery.wire(A, encode(b"x")), &Bytes::from_static(b"a"), "cached, not encoded again");
        assert_eq!(encodings.get(), 2);
    }

    #[test]
    fn unsubscribe_forgets_empty_channels() {
        let hub = Hub::new();
        let channel = ChannelName::parse("match:1").unwrap();
        let (a, _inbox) = outbox(2);
        hub.subscribe(&channel, 7, a);
        assert_eq!(hub.channels().len(), 1);
        assert!(hub.unsubscribe(&channel, 7));
        assert!(!hub.unsubscribe(&channel, 7));
        assert!(hub.channels().is_empty());
    }
}
