//! The conformance suite for [`PresenceStore`]: join, leave, list, counts and presence info; with
//! `nodes_share_a_backend`, two nodes see each other's clients.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::channel::ChannelName;
use crate::presence::{ClientInfo, PresenceInfo, PresenceStats, PresenceStore};
use crate::stream::Epoch;

pub type OpenedPresence = Pin<Box<dyn Future<Output = Arc<dyn PresenceStore>>>>;

fn client(client: &str, user: &str) -> ClientInfo {
    ClientInfo::new(client, user)
}

/// Runs every check; `open` makes the presence store of a new node.
pub async fn presence<F>(open: F, nodes_share_a_backend: bool)
where
    F: Fn() -> OpenedPresence,
{
    let channel = ChannelName::parse(&format!("match:presence-{}", Epoch::new_random())).expect("channel");
    let a = open().await;
    let b = if nodes_share_a_backend { open().await } else { a.clone() };
    assert!(a.list(&channel).await.is_empty(), "a new channel is empty");
    assert_eq!(a.stats(&channel).await, PresenceStats::default());
    a.join(&channel, client("a-1", "alice")).await;
    a.join(&channel, client("a-2", "alice")).await;
    b.join(&channel, client("b-1", "bob")).await;
    b.join(&channel, client("b-2", "")).await;
    let everyone = vec![client("a-1", "alice"), client("a-2", "alice"), client("b-1", "bob"), client("b-2", "")];
    assert_eq!(a.list(&channel).await, everyone, "every node's clients, ordered by client id");
    assert_eq!(b.list(&channel).await, everyone);
    assert_eq!(a.stats(&channel).await, PresenceStats { clients: 4, users: 2 }, "users are distinct signed-in users");
    a.join(&channel, client("a-1", "alice")).await;
    assert_eq!(a.stats(&channel).await.clients, 4, "joining twice counts once");
    b.leave(&channel, "a-2").await;
    a.leave(&channel, "b-2").await;
    a.leave(&channel, "nobody").await;
    assert_eq!(b.list(&channel).await, vec![client("a-1", "alice"), client("b-1", "bob")]);
    let other = ChannelName::parse(&format!("match:presence-{}", Epoch::new_random())).expect("channel");
    assert!(a.list(&other).await.is_empty(), "channels are independent");
    // What a client says about itself is kept, and a join again replaces it.
    let away = PresenceInfo { status: Some("away".into()), location: Some("match:7".into()), device: Some("ios".into()) };
    b.join(&channel, ClientInfo { info: away.clone(), ..client("b-1", "bob") }).await;
    assert_eq!(a.list(&channel).await[1].info, away, "info is seen from every node");
    let in_match = PresenceInfo { status: Some("in_match".into()), ..PresenceInfo::default() };
    b.join(&channel, ClientInfo { info: in_match.clone(), ..client("b-1", "bob") }).await;
    assert_eq!(a.list(&channel).await[1].info, in_match, "joining again replaces the info");
    assert_eq!(a.stats(&channel).await.clients, 2);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::presence::MemoryPresence;

    #[tokio::test]
    async fn memory_presence_conforms() {
        presence(|| Box::pin(async { Arc::new(MemoryPresence::default()) as Arc<dyn PresenceStore> }), false).await;
    }
}
