//! The broker seam: how committed publications reach every node's hub.
//!
//! A broker is the store's [`CommitSink`]: the store hands it publications in commit order and
//! the broker carries them to the [`Sequencer`] of every node that follows the channel. A broker
//! may drop, repeat or reorder (Redis pub/sub is at-most-once): the sequencer restores order and
//! fills gaps from the store, so a broker only has to be fast.
//!
//! # Contract
//! - `follow(channel)` resolves once publications committed from then on will be received; a
//!   node follows a channel before it reads the store for a new subscriber, so nothing falls
//!   between the read and the live stream.
//! - `follow`/`unfollow` are counted: a channel is followed while follows outnumber unfollows. A
//!   failed `follow` is not counted (the caller does not `unfollow` it).
//! - `announce` carries a join or leave to the channel's subscribers on every node that follows
//!   it (this one included). Joins and leaves have no offset: a lost one is not repaired, the
//!   presence list stays the truth.
//!
//! Brokers that connect nodes share their bookkeeping: [`follow::FollowTable`] (counted follows
//! and the handshake with the receiving connection) and [`relay`] (dispatcher, position checks,
//! reconnects, counters).

pub mod follow;
pub mod relay;

use std::sync::Arc;

use async_trait::async_trait;

use crate::broker::relay::Dispatcher;
use crate::channel::ChannelName;
use crate::hub::PresenceEvent;
use crate::sequencer::Sequencer;
use crate::store::CommitSink;
use crate::stream::Publication;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BrokerError {
    #[error("broker unavailable: {0}")]
    Unavailable(String),
}

#[async_trait]
pub trait Broker: CommitSink {
    /// Starts receiving the channel's publications on this node.
    async fn follow(&self, channel: &ChannelName) -> Result<(), BrokerError>;
    /// Stops receiving them (once every follow has been matched).
    async fn unfollow(&self, channel: &ChannelName);
    /// Can the broker carry publications right now?
    async fn ready(&self) -> bool;
    /// Sends a join or leave to the channel's subscribers on every node, this one included.
    fn announce(&self, event: PresenceEvent);

    /// The broker's own counters for the metrics endpoint (name without prefix, help, value).
    fn counters(&self) -> Vec<BrokerCounter> {
        Vec::new()
    }
}

/// One counter a broker reports, rendered as `courtside_broker_<name>_total`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerCounter {
    pub name: String,
    pub help: String,
    pub value: u64,
}

/// One node: committed publications go straight to this node's sequencer, in commit order.
///
/// The store's writer only queues the batch; a dispatcher task does the fan-out. The writer is
/// free for the next commit at once, and the subscriber tasks a fan-out wakes are scheduled from
/// a runtime worker (its local run queue) rather than from a foreign thread.
pub struct InProcessBroker {
    dispatcher: Dispatcher,
}

impl InProcessBroker {
    /// Starts the dispatcher task; call from within a Tokio runtime. The task ends when the
    /// broker is dropped.
    pub fn new(sequencer: Arc<Sequencer>) -> Self {
        Self { dispatcher: Dispatcher::local(sequencer) }
    }
}

impl CommitSink for InProcessBroker {
    fn committed(&self, publications: Vec<Publication>) {
        self.dispatcher.committed(publications);
    }
}

#[async_trait]
impl Broker for InProcessBroker {
    async fn follow(&self, _channel: &ChannelName) -> Result<(), BrokerError> {
        Ok(())
    }

    async fn unfollow(&self, _channel: &ChannelName) {}

    async fn ready(&self) -> bool {
        self.dispatcher.is_running()
    }

    fn announce(&self, event: PresenceEvent) {
        self.dispatcher.announce(event);
    }
}
