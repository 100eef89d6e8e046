//! What every broker that connects nodes shares, whatever carries the messages: the
//! [`Dispatcher`] between the store's writer and the transport, the periodic position check that
//! repairs what an at-most-once transport dropped, reconnecting with backoff, and the counters.
//!
//! A transport (Redis pub/sub, PostgreSQL `LISTEN`/`NOTIFY`) supplies only what differs: how a
//! [`Relayed`] item is encoded and sent, and how its receiving connection subscribes, reads and
//! pings. The follow bookkeeping is [`super::follow::FollowTable`].

use std::fmt::Display;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

use crate::broker::BrokerCounter;
use crate::broker::follow::{FollowChanges, FollowTable};
use crate::channel::ChannelName;
use crate::hub::PresenceEvent;
use crate::sequencer::Sequencer;
use crate::stream::Publication;

/// What travels between nodes: a committed publication, or a join/leave.
#[derive(Debug, Clone)]
pub enum Relayed {
    Publication(Publication),
    Presence(PresenceEvent),
}

impl Relayed {
    pub fn channel(&self) -> &ChannelName {
        match self {
            Relayed::Publication(publication) => &publication.channel,
            Relayed::Presence(event) => &event.channel,
        }
    }

    /// Hands the item to this node's sequencer: publications are ordered, joins/leaves go
    /// straight to the channel's local subscribers.
    pub fn deliver_to(self, sequencer: &Arc<Sequencer>) {
        match self {
            Relayed::Publication(publication) => sequencer.receive(publication),
            Relayed::Presence(event) => sequencer.announce(event),
        }
    }
}

/// Counters every connecting broker keeps; each only grows.
#[derive(Debug, Default)]
pub struct RelayStats {
    /// Items the transport accepted from this node.
    pub published: AtomicU64,
    /// Items from other nodes handed to this node's sequencer.
    pub received: AtomicU64,
    /// This node's own items coming back (already delivered locally).
    pub skipped_own: AtomicU64,
    /// Items this node could not carry (failed send, full queue, too large to encode);
    /// followers repair publications with an offset from the store.
    pub publish_errors: AtomicU64,
    /// Times the receiving connection was re-established after it was lost.
    pub reconnects: AtomicU64,
    /// Messages on a followed route that could not be read.
    pub malformed: AtomicU64,
    /// Completed position checks (all followed channels compared with the store).
    pub position_checks: AtomicU64,
}

impl RelayStats {
    /// The counters for the metrics endpoint, named `{transport}_published` and so on;
    /// `carrier` names the transport in help texts ("Redis", "PostgreSQL").
    pub fn counters(&self, transport: &str, carrier: &str) -> Vec<BrokerCounter> {
        let counter = |name: &str, help: String, value: &AtomicU64| BrokerCounter {
            name: format!("{transport}_{name}"),
            help,
            value: value.load(Ordering::Relaxed),
        };
        vec![
            counter("published", format!("Publications and joins/leaves {carrier} accepted from this node."), &self.published),
            counter("received", format!("Publications and joins/leaves from other nodes received through {carrier}."), &self.received),
            counter("publish_errors", format!("Items this node could not carry through {carrier} (publications are repaired from the store by followers)."), &self.publish_errors),
            counter("reconnects", format!("Times the {carrier} receiving connection was re-established."), &self.reconnects),
            counter("malformed", format!("Messages from {carrier} on a followed route that could not be read."), &self.malformed),
            BrokerCounter {
                name: "position_checks".into(),
                help: "Completed checks of every followed channel against the store.".into(),
                value: self.position_checks.load(Ordering::Relaxed),
            },
        ]
    }
}

pub fn count(counter: &AtomicU64, n: usize) {
    counter.fetch_add(n as u64, Ordering::Relaxed);
}

/// Between the store's writer (or a joining connection) and the transport: a task hands each
/// item to this node's sequencer at once (local subscribers never wait for the transport), then
/// queues the encoded batch for the transport's publisher. The writer only queues, so it never
/// waits, not even for a lock a subscriber holds; and the subscriber tasks a fan-out wakes are
/// scheduled from a runtime worker rather than a foreign thread.
pub struct Dispatcher {
    items: mpsc::UnboundedSender<Vec<Relayed>>,
}

impl Dispatcher {
    /// A dispatcher for one node alone: items only reach this node's sequencer.
    pub fn local(sequencer: Arc<Sequencer>) -> Self {
        let (items, mut received) = mpsc::unbounded_channel::<Vec<Relayed>>();
        tokio::spawn(async move {
            while let Some(batch) = received.recv().await {
                for item in batch {
                    item.deliver_to(&sequencer);
                }
            }
        });
        Self { items }
    }

    /// A dispatcher that also queues each item, as `encode` makes it, to `publish_queue` (one
    /// queue entry per batch, in commit order). An item `encode` refuses, and a batch that
    /// finds the queue full, is dropped and counted in `stats.publish_errors`. Call from within
    /// a Tokio runtime; the task ends when the dispatcher or the queue's receiver is dropped.
    pub fn relaying<M, E>(
        sequencer: Arc<Sequencer>,
        stats: Arc<RelayStats>,
        carrier: &'static str,
        mut encode: E,
        publish_queue: mpsc::Sender<Vec<M>>,
    ) -> Self
    where
        M: Send + 'static,
        E: FnMut(&Relayed) -> Result<M, String> + Send + 'static,
    {
        let (items, mut received) = mpsc::unbounded_channel::<Vec<Relayed>>();
        tokio::spawn(async move {
            let mut queue_was_full = false;
            while let Some(batch) = received.recv().await {
                let mut outgoing = Vec::with_capacity(batch.len());
                for item in batch {
                    // Namespaces starting with `_` hold the server's own records: no client
                    // follows them, so other nodes have nothing to deliver (and they may be
                    // private: password hashes must not cross the broker).
                    if item.channel().namespace().starts_with('_') {
                        item.deliver_to(&sequencer);
                        continue;
                    }
                    match encode(&item) {
                        Ok(message) => outgoing.push(message),
                        Err(why) => {
                            count(&stats.publish_errors, 1);
                            tracing::warn!(channel = %item.channel(), "not sent through {carrier}, reaches this node only: {why}");
                        }
                    }
                    item.deliver_to(&sequencer);
                }
                if outgoing.is_empty() {
                    continue;
                }
                let outgoing_count = outgoing.len();
                match publish_queue.try_send(outgoing) {
                    Ok(()) => queue_was_full = false,
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        count(&stats.publish_errors, outgoing_count);
                        if !queue_was_full {
                            tracing::warn!("the {carrier} publish queue is full: dropping until it drains");
                        }
                        queue_was_full = true;
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => return,
                }
            }
        });
        Self { items }
    }

    /// Publications the store committed, in commit order.
    pub fn committed(&self, publications: Vec<Publication>) {
        // If the runtime is gone there is nobody left to deliver to.
        let _ = self.items.send(publications.into_iter().map(Relayed::Publication).collect());
    }

    /// A join or leave, for the channel's subscribers on every node.
    pub fn announce(&self, event: PresenceEvent) {
        let _ = self.items.send(vec![Relayed::Presence(event)]);
    }

    pub fn is_running(&self) -> bool {
        !self.items.is_closed()
    }
}

/// How often and how widely followed channels are compared with the store.
#[derive(Debug, Clone, Copy)]
pub struct PositionCheckConfig {
    pub interval: Duration,
    /// Channels checked at the same time.
    pub concurrent_max: usize,
}

/// Starts the task that compares every followed channel with the store every
/// `config.interval`, and whenever asked through the returned sender (after a reconnect). A
/// transport that is at most once loses messages without a disconnect (a failed publish, a
/// slow receiver cut off); the sequencer repairs what the check finds missing. The task ends
/// when the returned sender is dropped.
pub fn spawn_position_checks<R>(
    sequencer: Arc<Sequencer>,
    follows: Arc<FollowTable<R>>,
    stats: Arc<RelayStats>,
    config: PositionCheckConfig,
) -> mpsc::Sender<()>
where
    R: Clone + Eq + std::hash::Hash + Send + Sync + 'static,
{
    let (requests, mut check_requests) = mpsc::channel::<()>(1);
    tokio::spawn(async move {
        let mut ticks = interval_at(Instant::now() + config.interval, config.interval);
        ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                request = check_requests.recv() => if request.is_none() { return },
            }
            let sequencer = &sequencer;
            futures_util::stream::iter(follows.channels())
                .for_each_concurrent(config.concurrent_max.max(1), |channel| async move {
                    sequencer.check(&channel).await;
                })
                .await;
            count(&stats.position_checks, 1);
        }
    });
    requests
}

/// Delays between reconnect attempts: from `min`, doubling up to `max`.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub min: Duration,
    pub max: Duration,
}

/// Reopens a receiving connection with exponential backoff; `None` once the broker is dropped.
/// Follows asked for meanwhile fail at once.
pub async fn reconnect<R, C, F, Fut>(
    follows: &FollowTable<R>,
    changes: &mut FollowChanges,
    backoff: Backoff,
    mut open: F,
) -> Option<C>
where
    R: Clone + Eq + std::hash::Hash,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<C, String>>,
{
    let mut delay = backoff.min;
    loop {
        let wake = tokio::time::sleep(delay);
        tokio::pin!(wake);
        loop {
            tokio::select! {
                _ = &mut wake => break,
                change = changes.next() => {
                    change?;
                    follows.refuse_pending();
                }
            }
        }
        match open().await {
            Ok(connection) => return Some(connection),
            Err(error) => {
                tracing::debug!(%error, "reconnect failed");
                delay = (delay * 2).min(backoff.max);
            }
        }
    }
}

/// `future` within `limit`, its error described for logs: "{what} failed: …" or "{what} timed out".
pub async fn within<T, E: Display>(
    limit: Duration,
    what: &str,
    future: impl Future<Output = Result<T, E>>,
) -> Result<T, String> {
    match tokio::time::timeout(limit, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(format!("{what} failed: {error}")),
        Err(_) => Err(format!("{what} timed out after {limit:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hub::Hub;
    use crate::stream::Epoch;
    use std::sync::atomic::AtomicUsize;

    fn publication(channel: &str) -> Publication {
        Publication {
            channel: ChannelName::parse(channel).expect("name"),
            epoch: Epoch::from_text("e"),
            offset: 1,
            key: None,
            removed: false,
            event: None,
            data: bytes::Bytes::from_static(b"{}"),
            time_ms: 0,
        }
    }

    #[tokio::test]
    async fn the_servers_own_records_never_leave_the_node() {
        let sequencer = Sequencer::new(Arc::new(Hub::new()));
        let encoded = Arc::new(AtomicUsize::new(0));
        let counting = encoded.clone();
        let (queue, mut sent) = mpsc::channel::<Vec<String>>(8);
        let dispatcher = Dispatcher::relaying(
            sequencer,
            Arc::new(RelayStats::default()),
            "test",
            move |item: &Relayed| {
                counting.fetch_add(1, Ordering::SeqCst);
                Ok(item.channel().to_string())
            },
            queue,
        );
        dispatcher.committed(vec![publication("_users:all"), publication("match:1")]);
        let batch = tokio::time::timeout(Duration::from_secs(1), sent.recv()).await.expect("sent").expect("a batch");
        assert_eq!(batch, ["match:1"]);
        assert_eq!(encoded.load(Ordering::SeqCst), 1, "the internal record was never encoded");
    }
}
