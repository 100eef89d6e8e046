//! The broker seam: how committed publications reach every node's hub.
//!
//! A broker is the store's [`CommitSink`]: the store hands it publications in commit order and
//! the broker delivers them to hubs. On one node that is a direct call ([`InProcessBroker`]);
//! across nodes it is a pub/sub system whose gaps are repaired from the store.

use std::sync::Arc;

use crate::hub::Hub;
use crate::store::CommitSink;
use crate::stream::Publication;

/// Delivers straight into this node's hub, in the order the store committed.
pub struct InProcessBroker {
    hub: Arc<Hub>,
}

impl InProcessBroker {
    pub fn new(hub: Arc<Hub>) -> Self {
        Self { hub }
    }
}

impl CommitSink for InProcessBroker {
    fn committed(&self, publications: Vec<Publication>) {
        for publication in publications {
            self.hub.deliver(publication);
        }
    }
}
