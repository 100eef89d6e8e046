//! Who may do what on a channel: the one place namespace permissions are decided.

use crate::channel::{ChannelName, NamespaceOptions, Role};

/// The party behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// An app backend holding the server API key: may do anything.
    Server,
    /// A client with a verified token.
    User { id: String, roles: Vec<Role> },
    /// A client without a token.
    Anonymous,
}

impl Principal {
    pub fn user_id(&self) -> &str {
        match self {
            Principal::User { id, .. } => id,
            Principal::Server | Principal::Anonymous => "",
        }
    }

    fn has_any(&self, allowed: &[Role]) -> bool {
        match self {
            Principal::Server => true,
            Principal::User { roles, .. } => roles.iter().any(|r| allowed.contains(r)),
            Principal::Anonymous => allowed.contains(&Role::Anonymous),
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
        self.has_any(&options.subscribe)
    }

    pub fn may_publish(&self, channel: &ChannelName, options: &NamespaceOptions) -> bool {
        if options.personal && !matches!(self, Principal::Server) {
            // Personal channels take client publishes only from their owner, and only if allowed.
            return self.may_subscribe(channel, options) && self.has_any(&options.publish);
        }
        self.has_any(&options.publish)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn personal_channels_are_readable_only_by_their_owner() {
        let options = NamespaceOptions { personal: true, ..Default::default() };
        let channel = ChannelName::parse("user:alice:notifications").unwrap();
        let alice = Principal::User { id: "alice".into(), roles: vec![Role::Spectator] };
        let bob = Principal::User { id: "bob".into(), roles: vec![Role::Director] };
        assert!(alice.may_subscribe(&channel, &options));
        assert!(!bob.may_subscribe(&channel, &options));
        assert!(!Principal::Anonymous.may_subscribe(&channel, &options));
        assert!(Principal::Server.may_subscribe(&channel, &options));
    }

    #[test]
    fn roles_decide_publish() {
        let options = NamespaceOptions { publish: vec![Role::Scorekeeper], ..Default::default() };
        let channel = ChannelName::parse("match:1").unwrap();
        let keeper = Principal::User { id: "k".into(), roles: vec![Role::Scorekeeper] };
        let fan = Principal::User { id: "f".into(), roles: vec![Role::Spectator] };
        assert!(keeper.may_publish(&channel, &options));
        assert!(!fan.may_publish(&channel, &options));
        assert!(!Principal::Anonymous.may_publish(&channel, &options));
    }
}
