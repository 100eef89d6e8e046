//! Who may do what on a channel: the one place channel permissions are decided.
//!
//! A channel's namespace options say who may subscribe and publish; a rule of the namespace whose
//! pattern matches the channel says it instead ([`NamespaceOptions::rule_for`]). A rule with a
//! `scope` also counts the roles a token holds in the tournament the channel names — a coach at
//! one tournament is a spectator at another.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::channel::{ChannelName, NamespaceOptions, Role};

/// Roles a token holds per tournament id (its `tournament_roles` claim).
pub type TournamentRoles = Arc<BTreeMap<String, Vec<Role>>>;

/// The party behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An app backend holding the server API key: may do anything.
    Server,
    /// A client with a verified token: global roles, and roles per tournament.
    User { id: String, roles: Vec<Role>, tournament_roles: TournamentRoles },
    /// A client without a token.
    Anonymous,
}

impl Principal {
    /// A signed-in user with global roles only.
    pub fn user(id: impl Into<String>, roles: Vec<Role>) -> Self {
        Principal::User { id: id.into(), roles, tournament_roles: TournamentRoles::default() }
    }

    pub fn user_id(&self) -> &str {
        match self {
            Principal::User { id, .. } => id,
            Principal::Server | Principal::Anonymous => "",
        }
    }

    /// The roles this principal holds in tournament `tournament` ([`roles_held_in`]).
    pub fn roles_in<'a>(&'a self, tournament: Option<&str>) -> impl Iterator<Item = &'a Role> + 'a {
        let held = match self {
            Principal::User { roles, tournament_roles, .. } => Some(roles_held_in(roles, tournament_roles, tournament)),
            Principal::Server | Principal::Anonymous => None,
        };
        held.into_iter().flatten()
    }

    /// Whether the principal is let in by `allowed`, counting roles held in `tournament`.
    fn admitted(&self, allowed: &[Role], tournament: Option<&str>) -> bool {
        match self {
            Principal::Server => true,
            Principal::Anonymous => allowed.contains(&Role::Anonymous),
            Principal::User { .. } => {
                allowed.iter().any(|role| matches!(role, Role::Anonymous | Role::Authenticated))
                    || self.roles_in(tournament).any(|role| allowed.contains(role))
            }
        }
    }

    /// May subscribe to, read the history of, and see presence in `channel`.
    pub fn may_subscribe(&self, channel: &ChannelName, options: &NamespaceOptions) -> bool {
        if options.personal {
            return match self {
                Principal::Server => true,
                Principal::User { id, .. } => channel.owner_segment() == Some(id.as_str()),
                Principal::Anonymous => false,
            };
        }
        let (allowed, tournament) = decided_by(channel, options, |rule| rule.subscribe.as_deref(), &options.subscribe);
        self.admitted(allowed, tournament)
    }

    pub fn may_publish(&self, channel: &ChannelName, options: &NamespaceOptions) -> bool {
        let (allowed, tournament) = decided_by(channel, options, |rule| rule.publish.as_deref(), &options.publish);
        if options.personal && !matches!(self, Principal::Server) {
            // Personal channels take client publishes only from their owner, and only if allowed.
            return self.may_subscribe(channel, options) && self.admitted(allowed, tournament);
        }
        self.admitted(allowed, tournament)
    }
}

/// The roles held in tournament `tournament`: the global ones and those granted there. Channel
/// rules ([`Principal::roles_in`]) and the sports API's actor count roles the same way.
pub fn roles_held_in<'a>(
    global: &'a [Role],
    tournament_roles: &'a TournamentRoles,
    tournament: Option<&str>,
) -> impl Iterator<Item = &'a Role> + 'a {
    global.iter().chain(scoped_roles(tournament_roles, tournament))
}

fn scoped_roles<'a>(tournament_roles: &'a TournamentRoles, tournament: Option<&str>) -> &'a [Role] {
    tournament.and_then(|t| tournament_roles.get(t)).map(Vec::as_slice).unwrap_or(&[])
}

/// The list that decides for `channel` (a matching rule's, else the namespace's `fallback`) and
/// the tournament whose roles count (a scoped rule's capture).
fn decided_by<'o>(
    channel: &'o ChannelName,
    options: &'o NamespaceOptions,
    list: impl Fn(&'o crate::channel::ChannelRule) -> Option<&'o [Role]>,
    fallback: &'o [Role],
) -> (&'o [Role], Option<&'o str>) {
    match options.rule_for(channel) {
        Some(rule) => {
            let tournament = rule.scope.as_deref().and_then(|scope| rule.channel.capture(channel, scope));
            (list(rule).unwrap_or(fallback), tournament)
        }
        None => (fallback, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::channel::{ChannelPattern, ChannelRule};

    #[test]
    fn personal_channels_are_readable_only_by_their_owner() {
        let options = NamespaceOptions { personal: true, ..Default::default() };
        let channel = ChannelName::parse("user:alice:notifications").unwrap();
        let alice = Principal::user("alice", vec![Role::Spectator]);
        let bob = Principal::user("bob", vec![Role::Director]);
        assert!(alice.may_subscribe(&channel, &options));
        assert!(!bob.may_subscribe(&channel, &options));
        assert!(!Principal::Anonymous.may_subscribe(&channel, &options));
        assert!(Principal::Server.may_subscribe(&channel, &options));
    }

    #[test]
    fn roles_decide_publish() {
        let options = NamespaceOptions { publish: vec![Role::Scorekeeper], ..Default::default() };
        let channel = ChannelName::parse("match:1").unwrap();
        let keeper = Principal::user("k", vec![Role::Scorekeeper]);
        let fan = Principal::user("f", vec![Role::Spectator]);
        assert!(keeper.may_publish(&channel, &options));
        assert!(!fan.may_publish(&channel, &options));
        assert!(!Principal::Anonymous.may_publish(&channel, &options));
    }

    #[test]
    fn a_scoped_rule_counts_the_roles_held_in_the_channels_tournament() {
        let staff_only = ChannelRule {
            channel: ChannelPattern::parse("tournament:{t}:staff").unwrap(),
            subscribe: Some(vec![Role::Staff, Role::Director]),
            publish: None,
            scope: Some("t".into()),
        };
        let signed_in = ChannelRule {
            channel: ChannelPattern::parse("tournament:{t}:teams").unwrap(),
            subscribe: Some(vec![Role::Authenticated]),
            publish: None,
            scope: None,
        };
        let options = NamespaceOptions { rules: vec![staff_only, signed_in], ..Default::default() };
        let staff_at_t1 = Principal::User {
            id: "s".into(),
            roles: vec![Role::Spectator],
            tournament_roles: Arc::new(BTreeMap::from([("t1".to_string(), vec![Role::Staff])])),
        };
        let channel = |text: &str| ChannelName::parse(text).unwrap();
        assert!(staff_at_t1.may_subscribe(&channel("tournament:t1:staff"), &options));
        assert!(!staff_at_t1.may_subscribe(&channel("tournament:t2:staff"), &options), "staff at t1 only");
        assert!(Principal::user("d", vec![Role::Director]).may_subscribe(&channel("tournament:t2:staff"), &options));
        assert!(!Principal::Anonymous.may_subscribe(&channel("tournament:t1:staff"), &options));
        assert!(Principal::user("n", vec![]).may_subscribe(&channel("tournament:t1:teams"), &options), "signed in, no roles");
        assert!(!Principal::Anonymous.may_subscribe(&channel("tournament:t1:teams"), &options));
        assert!(Principal::Anonymous.may_subscribe(&channel("tournament:t1:scores"), &options), "no rule: the namespace's list");
    }
}
