//! [`FollowTable`]: the counted follows of a broker that connects nodes, and the handshake
//! between `follow`/`unfollow` (called by subscribing connections) and the task that owns the
//! broker's receiving connection (which subscribes, listens, and reconnects).
//!
//! # How it works
//! Each followed channel maps to a *route*: what the receiving connection subscribes to (a
//! Redis channel, a PostgreSQL notification channel; several channels may share one route).
//! The first follow of a channel records it as pending and wakes the connection task; that task
//! brings its subscriptions in line with [`FollowTable::wanted_routes`] and reports which routes
//! the server confirmed ([`FollowTable::applied`]), which resolves the waiting follows. The last
//! unfollow removes the channel and waits (bounded) until the task has applied the removal.
//! Requests are numbered, so a waiting caller knows when a pass of the task covered it.
//!
//! While the connection is down, follows fail at once ([`BrokerError::Unavailable`]) and are not
//! counted; pending ones fail when the connection is lost ([`FollowTable::connection_lost`]).

use std::collections::HashMap;
use std::collections::HashSet;
use std::collections::hash_map::Entry;
use std::hash::Hash;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

use crate::broker::BrokerError;
use crate::channel::ChannelName;

/// Where the subscription of a followed channel stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum RouteState {
    /// Requested, not yet confirmed by the server.
    Pending,
    Confirmed,
    /// The connection failed before the server confirmed; the waiting follows give up.
    Failed(String),
}

struct Following<R> {
    /// Follows not yet matched by an unfollow.
    follows: usize,
    route: R,
    state: watch::Sender<RouteState>,
}

/// Wakes the connection task when the followed set changed. Owned by that task.
pub struct FollowChanges {
    changed: mpsc::Receiver<()>,
    closed: Arc<AtomicBool>,
}

impl FollowChanges {
    /// Waits for the next change; `None` once the broker closed the table (it was dropped).
    pub async fn next(&mut self) -> Option<()> {
        if self.closed.load(Ordering::SeqCst) {
            return None;
        }
        self.changed.recv().await?;
        if self.closed.load(Ordering::SeqCst) { None } else { Some(()) }
    }
}

/// The counted follows of one broker, shared by its handle and its connection task.
pub struct FollowTable<R> {
    followed: Mutex<HashMap<ChannelName, Following<R>>>,
    /// Numbered requests to bring the connection's subscriptions in line with `followed`.
    changes_requested: AtomicU64,
    /// The highest request number the connection task has carried out.
    changes_applied: watch::Sender<u64>,
    /// Capacity 1: wake-ups coalesce, each pass covers every request made before it.
    changed: mpsc::Sender<()>,
    connected: AtomicBool,
    /// Set by [`FollowTable::close`]: the connection task stops.
    closed: Arc<AtomicBool>,
    /// Longest an unfollow waits for the connection task.
    unfollow_wait_max: Duration,
    /// What a follow says while the connection is down, e.g. "the Redis pub/sub connection is down".
    down_reason: String,
}

impl<R: Clone + Eq + Hash> FollowTable<R> {
    /// A table whose connection is up (the broker connected before building it).
    pub fn new(unfollow_wait_max: Duration, down_reason: impl Into<String>) -> (Self, FollowChanges) {
        let (changed, changed_rx) = mpsc::channel(1);
        let closed = Arc::new(AtomicBool::new(false));
        let table = Self {
            closed: closed.clone(),
            followed: Mutex::new(HashMap::new()),
            changes_requested: AtomicU64::new(0),
            changes_applied: watch::Sender::new(0),
            changed,
            connected: AtomicBool::new(true),
            unfollow_wait_max,
            down_reason: down_reason.into(),
        };
        (table, FollowChanges { changed: changed_rx, closed })
    }

    /// Stops the connection task (its [`FollowChanges`] ends). The connection task, and tasks
    /// it feeds, hold the table; so the broker calls this when it is dropped.
    pub fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.changed.try_send(());
    }

    /// Counts a follow of `channel` (travelling on `route`) and resolves once the server
    /// confirmed the route, or fails (uncounted) if the connection is or goes down first.
    pub async fn follow(&self, channel: &ChannelName, route: impl FnOnce() -> R) -> Result<(), BrokerError> {
        if !self.is_connected() {
            return Err(BrokerError::Unavailable(self.down_reason.clone()));
        }
        let (mut state, is_first) = {
            let mut followed = self.followed.lock();
            match followed.entry(channel.clone()) {
                Entry::Occupied(mut entry) => {
                    entry.get_mut().follows += 1;
                    (entry.get().state.subscribe(), false)
                }
                Entry::Vacant(entry) => {
                    let (state, receiver) = watch::channel(RouteState::Pending);
                    entry.insert(Following { follows: 1, route: route(), state });
                    (receiver, true)
                }
            }
        };
        if is_first {
            self.request_change();
        }
        let outcome = state.wait_for(|state| *state != RouteState::Pending).await.map(|state| state.clone());
        match outcome {
            Ok(RouteState::Confirmed) => Ok(()),
            Ok(RouteState::Failed(reason)) => {
                self.release(channel);
                Err(BrokerError::Unavailable(reason))
            }
            Ok(RouteState::Pending) | Err(_) => {
                self.release(channel);
                Err(BrokerError::Unavailable("the broker stopped".into()))
            }
        }
    }

    /// Matches one follow; after the last one, waits (at most `unfollow_wait_max`: a hung server
    /// must not hang a closing connection) until the connection task dropped the route.
    pub async fn unfollow(&self, channel: &ChannelName) {
        let Some(request) = self.release(channel) else { return };
        let mut applied = self.changes_applied.subscribe();
        let _ = tokio::time::timeout(self.unfollow_wait_max, applied.wait_for(|applied| *applied >= request)).await;
    }

    pub fn is_connected(&self) -> bool {
        self.connected.load(Ordering::SeqCst)
    }

    /// Channels followed right now.
    pub fn channels(&self) -> Vec<ChannelName> {
        self.followed.lock().keys().cloned().collect()
    }

    pub fn is_followed(&self, channel: &ChannelName) -> bool {
        self.followed.lock().contains_key(channel)
    }

    /// For the connection task, starting a pass: the routes wanted now, and the request number
    /// the pass covers (to hand back to [`FollowTable::applied`]).
    pub fn wanted_routes(&self) -> (u64, HashSet<R>) {
        let covered = self.changes_requested.load(Ordering::SeqCst);
        let routes = self.followed.lock().values().map(|following| following.route.clone()).collect();
        (covered, routes)
    }

    /// For the connection task, ending a pass: the routes the server confirmed on this
    /// connection; resolves the follows waiting for them and the unfollows the pass covered.
    pub fn applied(&self, covered: u64, confirmed: &HashSet<R>) {
        for following in self.followed.lock().values() {
            if confirmed.contains(&following.route) {
                following.state.send_if_modified(|state| {
                    let pending = *state == RouteState::Pending;
                    if pending {
                        *state = RouteState::Confirmed;
                    }
                    pending
                });
            }
        }
        self.mark_applied(covered);
    }

    /// For the connection task: the connection (and every subscription on it) is gone. Pending
    /// follows fail, pending unfollows are done, new follows fail until [`FollowTable::reconnected`].
    pub fn connection_lost(&self, reason: &str) {
        self.connected.store(false, Ordering::SeqCst);
        self.fail_pending(reason);
    }

    /// For the connection task, while reconnecting: fails the follows asked for meanwhile.
    pub fn refuse_pending(&self) {
        self.fail_pending(&self.down_reason.clone());
    }

    /// For the connection task: the new connection holds every wanted route again.
    pub fn reconnected(&self) {
        self.connected.store(true, Ordering::SeqCst);
    }

    fn fail_pending(&self, reason: &str) {
        for following in self.followed.lock().values() {
            following.state.send_if_modified(|state| {
                let pending = *state == RouteState::Pending;
                if pending {
                    *state = RouteState::Failed(reason.to_string());
                }
                pending
            });
        }
        self.mark_applied(self.changes_requested.load(Ordering::SeqCst));
    }

    fn request_change(&self) -> u64 {
        let request = self.changes_requested.fetch_add(1, Ordering::SeqCst) + 1;
        // A full queue means a wake-up is already pending, and it will cover this request.
        let _ = self.changed.try_send(());
        request
    }

    /// Matches one follow; the last one makes the channel unfollowed. Returns the number of the
    /// change to wait for, if any.
    fn release(&self, channel: &ChannelName) -> Option<u64> {
        {
            let mut followed = self.followed.lock();
            let Entry::Occupied(mut entry) = followed.entry(channel.clone()) else { return None };
            entry.get_mut().follows -= 1;
            if entry.get().follows > 0 {
                return None;
            }
            entry.remove();
        }
        Some(self.request_change())
    }

    fn mark_applied(&self, request: u64) {
        self.changes_applied.send_if_modified(|applied| {
            let newer = request > *applied;
            if newer {
                *applied = request;
            }
            newer
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str) -> ChannelName {
        ChannelName::parse(name).expect("valid name")
    }

    /// A connection task that confirms every wanted route, as a server would.
    fn confirm_all(table: Arc<FollowTable<String>>, mut changes: FollowChanges) {
        tokio::spawn(async move {
            while changes.next().await.is_some() {
                let (covered, routes) = table.wanted_routes();
                table.applied(covered, &routes);
            }
        });
    }

    #[tokio::test]
    async fn follows_are_counted_and_resolve_on_confirmation() {
        let (table, changes) = FollowTable::<String>::new(Duration::from_secs(1), "down");
        let table = Arc::new(table);
        confirm_all(table.clone(), changes);
        let scores = channel("match:1");
        table.follow(&scores, || "r1".into()).await.expect("confirmed");
        table.follow(&scores, || unreachable!("the route is known")).await.expect("counted");
        table.unfollow(&scores).await;
        assert!(table.is_followed(&scores), "one follow is left");
        table.unfollow(&scores).await;
        assert!(!table.is_followed(&scores));
        assert!(table.wanted_routes().1.is_empty());
    }

    #[tokio::test]
    async fn closing_ends_the_connection_task() {
        let (table, mut changes) = FollowTable::<String>::new(Duration::from_secs(1), "down");
        table.close();
        assert_eq!(changes.next().await, None);
    }

    #[tokio::test]
    async fn a_lost_connection_fails_pending_follows_and_refuses_new_ones() {
        let (table, _changes) = FollowTable::<String>::new(Duration::from_millis(50), "the link is down");
        let table = Arc::new(table);
        let pending = tokio::spawn({
            let table = table.clone();
            async move { table.follow(&channel("match:1"), || "r1".into()).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        table.connection_lost("connection reset");
        let failed = pending.await.expect("task");
        assert_eq!(failed, Err(BrokerError::Unavailable("connection reset".into())));
        assert!(!table.is_followed(&channel("match:1")), "a failed follow is not counted");
        let refused = table.follow(&channel("match:2"), || "r2".into()).await;
        assert_eq!(refused, Err(BrokerError::Unavailable("the link is down".into())));
        table.reconnected();
        assert!(table.is_connected());
    }

    #[tokio::test]
    async fn an_unfollow_is_bounded_when_nobody_applies_it() {
        let (table, _changes) = FollowTable::<String>::new(Duration::from_millis(30), "down");
        let table = Arc::new(table);
        let follower = tokio::spawn({
            let table = table.clone();
            async move { table.follow(&channel("match:1"), || "r1".into()).await }
        });
        tokio::time::sleep(Duration::from_millis(10)).await;
        let (covered, routes) = table.wanted_routes();
        table.applied(covered, &routes);
        follower.await.expect("task").expect("confirmed");
        let started = std::time::Instant::now();
        table.unfollow(&channel("match:1")).await;
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
