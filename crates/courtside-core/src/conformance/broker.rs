//! The conformance suite for [`Broker`]: publications committed on one node reach the hub of
//! every node that follows the channel, in order, once; follows are counted. Brokers that
//! connect nodes (`nodes_share_a_bus`) also prove that unfollowed channels stay quiet.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::broker::Broker;
use crate::channel::ChannelName;
use crate::hub::{outbox, Hub, Inbox, Outbound, PresenceEvent};
use crate::presence::{ClientInfo, PresenceInfo};
use crate::sequencer::Sequencer;
use crate::stream::{Epoch, Publication};

pub type OpenedBroker = Pin<Box<dyn Future<Output = Arc<dyn Broker>>>>;

/// One node's view: a hub with one subscriber per channel of interest.
struct TestNode {
    hub: Arc<Hub>,
    broker: Arc<dyn Broker>,
}

async fn node<F: Fn(Arc<Sequencer>) -> OpenedBroker>(open: &F) -> TestNode {
    let hub = Arc::new(Hub::new());
    let sequencer = Sequencer::new(hub.clone());
    TestNode { broker: open(sequencer).await, hub }
}

fn publication(channel: &ChannelName, epoch: &Epoch, offset: u64) -> Publication {
    Publication {
        channel: channel.clone(),
        epoch: epoch.clone(),
        offset,
        key: None,
        removed: false,
        // Every third carries an event name, which must cross the broker as it is.
        event: (offset % 3 == 0).then(|| format!("match:event-{offset}")),
        data: Bytes::from(format!("{{\"n\":{offset}}}")),
        time_ms: 1,
    }
}

/// Subscribes a local outbox to `channel` on the node's hub.
fn watch(node: &TestNode, channel: &ChannelName) -> Inbox {
    let (subscriber, inbox) = outbox(100_000);
    node.hub.subscribe(channel, 7, subscriber);
    inbox
}

async fn received(inbox: &mut Inbox, count: usize, wait: Duration) -> Vec<(u64, Bytes, Option<String>)> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while got.len() < count && tokio::time::Instant::now() < deadline {
        match inbox.try_recv() {
            Some(Outbound::Publication(d)) => {
                got.push((d.publication.offset, d.publication.data.clone(), d.publication.event.clone()));
            }
            Some(_) => {}
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    got
}

/// Runs every check. `open` makes a broker for a new node feeding the given sequencer; with
/// `nodes_share_a_bus`, brokers opened by one call of this suite reach each other.
pub async fn broker<F>(open: F, nodes_share_a_bus: bool)
where
    F: Fn(Arc<Sequencer>) -> OpenedBroker,
{
    delivers_in_order_once_to_a_following_node(&open, nodes_share_a_bus).await;
    delivers_unnumbered_publications(&open, nodes_share_a_bus).await;
    carries_joins_and_leaves(&open, nodes_share_a_bus).await;
    if nodes_share_a_bus {
        follows_are_counted_and_unfollowed_channels_stay_quiet(&open).await;
    }
}

async fn delivers_in_order_once_to_a_following_node<F: Fn(Arc<Sequencer>) -> OpenedBroker>(open: &F, shared: bool) {
    let origin = node(open).await;
    let follower = if shared { node(open).await } else { TestNode { hub: origin.hub.clone(), broker: origin.broker.clone() } };
    let channel = ChannelName::parse(&format!("match:broker-{}", Epoch::new_random())).expect("channel");
    let epoch = Epoch::new_random();
    let mut inbox = watch(&follower, &channel);
    follower.broker.follow(&channel).await.expect("follow");
    assert!(follower.broker.ready().await, "a connected broker is ready");
    for chunk in (1..=200u64).collect::<Vec<_>>().chunks(20) {
        origin.broker.committed(chunk.iter().map(|o| publication(&channel, &epoch, *o)).collect());
    }
    let got = received(&mut inbox, 200, Duration::from_secs(10)).await;
    let offsets: Vec<u64> = got.iter().map(|(o, _, _)| *o).collect();
    assert_eq!(offsets, (1..=200).collect::<Vec<_>>(), "every publication once, in order");
    assert_eq!(got[41].1, Bytes::from("{\"n\":42}"), "payloads arrive intact");
    assert_eq!(got[41].2.as_deref(), Some("match:event-42"), "event names arrive intact");
    assert_eq!(got[40].2, None, "a publication without an event name arrives without one");
    follower.broker.unfollow(&channel).await;
}

async fn delivers_unnumbered_publications<F: Fn(Arc<Sequencer>) -> OpenedBroker>(open: &F, shared: bool) {
    let origin = node(open).await;
    let follower = if shared { node(open).await } else { TestNode { hub: origin.hub.clone(), broker: origin.broker.clone() } };
    let channel = ChannelName::parse(&format!("live:broker-{}", Epoch::new_random())).expect("channel");
    let mut inbox = watch(&follower, &channel);
    follower.broker.follow(&channel).await.expect("follow");
    origin.broker.committed(vec![publication(&channel, &Epoch::default(), 0), publication(&channel, &Epoch::default(), 0)]);
    assert_eq!(received(&mut inbox, 2, Duration::from_secs(10)).await.len(), 2, "ephemeral publications pass through");
    follower.broker.unfollow(&channel).await;
}

async fn carries_joins_and_leaves<F: Fn(Arc<Sequencer>) -> OpenedBroker>(open: &F, shared: bool) {
    let origin = node(open).await;
    let follower = if shared { node(open).await } else { TestNode { hub: origin.hub.clone(), broker: origin.broker.clone() } };
    let channel = ChannelName::parse(&format!("court:presence-{}", Epoch::new_random())).expect("channel");
    let mut remote = watch(&follower, &channel);
    // One node alone: the follower is the origin, and its one watcher is both.
    let mut local = if shared { Some(watch(&origin, &channel)) } else { None };
    follower.broker.follow(&channel).await.expect("follow");
    if shared {
        origin.broker.follow(&channel).await.expect("follow on the origin");
    }
    let client = ClientInfo { info: PresenceInfo { status: Some("in_match".into()), location: Some("match:7".into()), device: None }, ..ClientInfo::new("c-1", "zoë") };
    origin.broker.announce(PresenceEvent { channel: channel.clone(), joined: true, client: client.clone() });
    origin.broker.announce(PresenceEvent { channel: channel.clone(), joined: false, client: client.clone() });
    let inboxes = [Some((&mut remote, "the following node's")), local.as_mut().map(|inbox| (inbox, "the origin's own"))];
    for (inbox, whose) in inboxes.into_iter().flatten() {
        let events = presence_events(inbox, 2, Duration::from_secs(10)).await;
        let seen: Vec<(bool, &str, &str)> =
            events.iter().map(|e| (e.joined, e.client.client.as_str(), e.client.user.as_str())).collect();
        assert_eq!(seen, [(true, "c-1", "zoë"), (false, "c-1", "zoë")], "{whose} subscribers see the join, then the leave, once");
        assert!(events.iter().all(|event| event.channel == channel));
    }
    follower.broker.unfollow(&channel).await;
    if shared {
        origin.broker.unfollow(&channel).await;
    }
}

async fn presence_events(inbox: &mut Inbox, count: usize, wait: Duration) -> Vec<PresenceEvent> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while tokio::time::Instant::now() < deadline {
        match inbox.try_recv() {
            Some(Outbound::Presence(event)) => got.push((*event).clone()),
            Some(_) => {}
            // Wait a little past the expected count: a repeat would show up here.
            None if got.len() >= count => break,
            None => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    if got.len() >= count {
        tokio::time::sleep(Duration::from_millis(100)).await;
        while let Some(item) = inbox.try_recv() {
            if let Outbound::Presence(event) = item {
                got.push((*event).clone());
            }
        }
    }
    got
}

async fn follows_are_counted_and_unfollowed_channels_stay_quiet<F: Fn(Arc<Sequencer>) -> OpenedBroker>(open: &F) {
    let origin = node(open).await;
    let follower = node(open).await;
    let channel = ChannelName::parse(&format!("match:count-{}", Epoch::new_random())).expect("channel");
    let epoch = Epoch::new_random();
    let mut inbox = watch(&follower, &channel);
    origin.broker.committed(vec![publication(&channel, &epoch, 1)]);
    assert!(received(&mut inbox, 1, Duration::from_millis(300)).await.is_empty(), "not followed: nothing arrives");
    follower.broker.follow(&channel).await.expect("follow");
    follower.broker.follow(&channel).await.expect("follow again");
    follower.broker.unfollow(&channel).await;
    origin.broker.committed(vec![publication(&channel, &epoch, 2)]);
    assert_eq!(received(&mut inbox, 1, Duration::from_secs(10)).await.len(), 1, "one follow is still open");
    follower.broker.unfollow(&channel).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    origin.broker.committed(vec![publication(&channel, &epoch, 3)]);
    assert!(received(&mut inbox, 1, Duration::from_millis(300)).await.is_empty(), "unfollowed: nothing arrives");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::InProcessBroker;

    #[tokio::test]
    async fn in_process_broker_conforms() {
        broker(|sequencer| Box::pin(async move { Arc::new(InProcessBroker::new(sequencer)) as Arc<dyn Broker> }), false).await;
    }
}
