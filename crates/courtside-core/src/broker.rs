//! The broker seam: how committed publications reach every node's hub.
//!
//! A broker is the store's [`CommitSink`]: the store hands it publications in commit order and
//! the broker delivers them to hubs. On one node that is [`InProcessBroker`]; across nodes it is
//! a pub/sub system whose gaps are repaired from the store.

use std::sync::Arc;

use tokio::sync::mpsc;

use crate::hub::Hub;
use crate::store::CommitSink;
use crate::stream::Publication;

/// Delivers into this node's hub, in the order the store committed.
///
/// The store's writer only queues the batch; a dispatcher task does the fan-out. The writer is
/// free for the next commit at once, and the subscriber tasks that a fan-out wakes are scheduled
/// from a runtime worker (its local run queue) rather than from a foreign thread.
pub struct InProcessBroker {
    dispatch: mpsc::UnboundedSender<Vec<Publication>>,
}

impl InProcessBroker {
    /// Starts the dispatcher task; call from within a Tokio runtime. The task ends when the
    /// broker is dropped.
    pub fn new(hub: Arc<Hub>) -> Self {
        let (dispatch, mut committed) = mpsc::unbounded_channel::<Vec<Publication>>();
        tokio::spawn(async move {
            while let Some(batch) = committed.recv().await {
                for publication in batch {
                    hub.deliver(publication);
                }
            }
        });
        Self { dispatch }
    }
}

impl CommitSink for InProcessBroker {
    fn committed(&self, publications: Vec<Publication>) {
        // The dispatcher outlives every store that holds this sink; if the runtime is gone
        // there is nobody left to deliver to.
        let _ = self.dispatch.send(publications);
    }
}
