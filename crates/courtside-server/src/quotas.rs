//! [`UserQuotas`]: this node's count of live connections and live subscriptions per user, and the
//! per-user limits on them (`client.connections_per_user_max`, `client.subscriptions_per_user_max`;
//! 0 = no limit). Every transport (WebSocket, SSE, Socket.IO) takes a [`UserSlot`] when a user's
//! connection is admitted; the slot counts that connection's subscriptions and gives everything
//! back when it is dropped, so the counts follow the connection however it ends. Anonymous
//! connections have no user and take no slot. The counts are per node: a cluster-wide count is
//! future work.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use courtside_core::access::Principal;

use crate::metrics::QuotaRefusals;
use crate::protocol::ClientError;

/// Which per-user limit refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum QuotaExceeded {
    #[error("this user has {0} connections open on this node, the most allowed")]
    Connections(usize),
    #[error("this user follows {0} channels on this node, the most allowed")]
    Subscriptions(usize),
}

/// The one mapping to the client's vocabulary: a connection over the limit is 108 (too many
/// requests: retry once another connection of the user closed), a subscription over it 107, the
/// code `client.subscriptions_max` answers with.
impl From<QuotaExceeded> for ClientError {
    fn from(error: QuotaExceeded) -> Self {
        match error {
            QuotaExceeded::Connections(_) => ClientError::TooManyRequests,
            QuotaExceeded::Subscriptions(_) => ClientError::BadRequest(error.to_string()),
        }
    }
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Counts {
    connections: usize,
    subscriptions: usize,
}

/// The per-user counts of one node.
pub struct UserQuotas {
    connections_max: usize,
    subscriptions_max: usize,
    users: Mutex<HashMap<Arc<str>, Counts>>,
    refusals: Arc<QuotaRefusals>,
}

impl UserQuotas {
    /// Limits of 0 mean no limit.
    pub fn new(connections_max: usize, subscriptions_max: usize, refusals: Arc<QuotaRefusals>) -> Arc<Self> {
        Arc::new(Self { connections_max, subscriptions_max, users: Mutex::new(HashMap::new()), refusals })
    }

    fn users(&self) -> MutexGuard<'_, HashMap<Arc<str>, Counts>> {
        // The map is consistent after every statement; a panic elsewhere leaves it usable.
        self.users.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The slot of a connection made as `principal`: `None` for anonymous connections (and the
    /// server's own), which no per-user quota counts.
    pub fn admit(self: &Arc<Self>, principal: &Principal) -> Result<Option<UserSlot>, QuotaExceeded> {
        match principal {
            Principal::User { id, .. } => self.connect(id).map(Some),
            Principal::Server | Principal::Anonymous => Ok(None),
        }
    }

    /// Admits one more connection of `user`, or refuses it when the user has
    /// `connections_per_user_max` open on this node.
    pub fn connect(self: &Arc<Self>, user: &str) -> Result<UserSlot, QuotaExceeded> {
        let mut users = self.users();
        let key: Arc<str> = match users.get_key_value(user) {
            Some((key, _)) => key.clone(),
            None => Arc::from(user),
        };
        let counts = users.entry(key.clone()).or_default();
        if self.connections_max != 0 && counts.connections >= self.connections_max {
            self.refusals.connections_per_user.fetch_add(1, Ordering::Relaxed);
            return Err(QuotaExceeded::Connections(counts.connections));
        }
        counts.connections += 1;
        Ok(UserSlot { quotas: self.clone(), user: key, subscriptions: 0 })
    }

    /// The live connections and subscriptions of `user` on this node.
    pub fn counts(&self, user: &str) -> (usize, usize) {
        self.users().get(user).map(|c| (c.connections, c.subscriptions)).unwrap_or((0, 0))
    }

    /// Users with anything counted (none once every slot is dropped).
    pub fn users_counted(&self) -> usize {
        self.users().len()
    }

    fn release(&self, user: &str, connections: usize, subscriptions: usize) {
        let mut users = self.users();
        if let Some(counts) = users.get_mut(user) {
            counts.connections = counts.connections.saturating_sub(connections);
            counts.subscriptions = counts.subscriptions.saturating_sub(subscriptions);
            if counts.connections == 0 && counts.subscriptions == 0 {
                users.remove(user);
            }
        }
    }
}

/// One admitted connection of a user, and the subscriptions it holds. Dropping it gives them all
/// back.
pub struct UserSlot {
    quotas: Arc<UserQuotas>,
    user: Arc<str>,
    subscriptions: usize,
}

impl UserSlot {
    /// Counts `n` more subscriptions of this connection, or none of them when that would take the
    /// user past `subscriptions_per_user_max` on this node.
    pub fn subscribe(&mut self, n: usize) -> Result<(), QuotaExceeded> {
        let quotas = &self.quotas;
        let mut users = quotas.users();
        let counts = users.entry(self.user.clone()).or_default();
        let after = counts.subscriptions.saturating_add(n);
        if quotas.subscriptions_max != 0 && n > 0 && after > quotas.subscriptions_max {
            quotas.refusals.subscriptions_per_user.fetch_add(1, Ordering::Relaxed);
            return Err(QuotaExceeded::Subscriptions(counts.subscriptions));
        }
        counts.subscriptions = after;
        self.subscriptions += n;
        Ok(())
    }

    /// Gives back one subscription of this connection (none if it holds none).
    pub fn unsubscribe(&mut self) {
        if self.subscriptions > 0 {
            self.subscriptions -= 1;
            self.quotas.release(&self.user, 0, 1);
        }
    }

    /// The subscriptions this connection holds.
    pub fn subscriptions(&self) -> usize {
        self.subscriptions
    }
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        self.quotas.release(&self.user, 1, self.subscriptions);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn quotas(connections: usize, subscriptions: usize) -> Arc<UserQuotas> {
        UserQuotas::new(connections, subscriptions, Arc::default())
    }

    #[test]
    fn connections_are_counted_per_user_and_given_back() {
        let q = quotas(2, 0);
        let a = q.connect("alice").expect("first");
        let _b = q.connect("alice").expect("second");
        assert_eq!(q.connect("alice").err(), Some(QuotaExceeded::Connections(2)));
        let _other = q.connect("bob").expect("another user is not affected");
        drop(a);
        let _c = q.connect("alice").expect("a closed connection frees its slot");
        assert_eq!(q.refusals.connections_per_user.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn subscriptions_are_counted_across_connections() {
        let q = quotas(0, 3);
        let mut a = q.connect("alice").expect("a");
        let mut b = q.connect("alice").expect("b");
        a.subscribe(2).expect("two");
        assert_eq!(b.subscribe(2).err(), Some(QuotaExceeded::Subscriptions(2)));
        b.subscribe(1).expect("third");
        assert_eq!(a.subscribe(1).err(), Some(QuotaExceeded::Subscriptions(3)));
        b.unsubscribe();
        a.subscribe(1).expect("a subscription given back frees its slot");
        drop(a);
        assert_eq!(q.counts("alice"), (1, 0));
        drop(b);
        assert_eq!(q.users_counted(), 0);
        assert_eq!(q.refusals.subscriptions_per_user.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn zero_is_no_limit() {
        let q = quotas(0, 0);
        let mut slots: Vec<UserSlot> = (0..1000).map(|_| q.connect("alice").expect("unlimited")).collect();
        for slot in &mut slots {
            slot.subscribe(1000).expect("unlimited");
        }
        assert_eq!(q.counts("alice"), (1000, 1_000_000));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Connect(u8),
        Close(usize),
        Subscribe(usize, u8),
        Unsubscribe(usize),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            (0u8..3).prop_map(Step::Connect),
            any::<usize>().prop_map(Step::Close),
            (any::<usize>(), 0u8..4).prop_map(|(i, n)| Step::Subscribe(i, n)),
            any::<usize>().prop_map(Step::Unsubscribe),
        ]
    }

    proptest! {
        /// Whatever the order of admissions, subscriptions and closes, the counts equal what the
        /// live slots hold, stay within the limits, and are all gone once every slot is dropped.
        #[test]
        fn counts_follow_the_live_slots(steps in proptest::collection::vec(step(), 0..200)) {
            let q = quotas(3, 5);
            let users = ["a", "b", "c"];
            let mut live: Vec<(usize, UserSlot)> = Vec::new();
            for step in steps {
                match step {
                    Step::Connect(u) => {
                        let u = usize::from(u);
                        let open = live.iter().filter(|(owner, _)| *owner == u).count();
                        match q.connect(users[u]) {
                            Ok(slot) => { prop_assert!(open < 3); live.push((u, slot)); }
                            Err(_) => prop_assert_eq!(open, 3),
                        }
                    }
                    Step::Close(i) if !live.is_empty() => { live.swap_remove(i % live.len()); }
                    Step::Subscribe(i, n) if !live.is_empty() => {
                        let i = i % live.len();
                        let u = live[i].0;
                        let held: usize = live.iter().filter(|(owner, _)| *owner == u).map(|(_, s)| s.subscriptions()).sum();
                        let n = usize::from(n);
                        match live[i].1.subscribe(n) {
                            Ok(()) => prop_assert!(held + n <= 5),
                            Err(_) => prop_assert!(held + n > 5),
                        }
                    }
                    Step::Unsubscribe(i) if !live.is_empty() => { let i = i % live.len(); live[i].1.unsubscribe(); }
                    _ => {}
                }
                for (u, user) in users.iter().enumerate() {
                    let mine = live.iter().filter(|(owner, _)| *owner == u);
                    let expected = (mine.clone().count(), mine.map(|(_, s)| s.subscriptions()).sum());
                    prop_assert_eq!(q.counts(user), expected);
                }
            }
            drop(live);
            prop_assert_eq!(q.users_counted(), 0);
        }
    }
}
