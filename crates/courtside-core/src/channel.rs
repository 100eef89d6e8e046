//! Channel names, namespaces and roles: the vocabulary permissions are written in.
//!
//! A channel name is `namespace:rest`, e.g. `match:42` or `user:alice:notifications`. The part
//! before the first `:` names the namespace whose options (history, keyed state, presence, who may
//! subscribe and publish) apply to the channel.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Longest accepted channel name, in bytes.
pub const CHANNEL_NAME_LEN_MAX: usize = 200;

/// A validated channel name. Cheap to clone: the text is shared.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChannelName(Arc<str>);

/// Why a channel name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelNameError {
    #[error("channel name is empty")]
    Empty,
    #[error("channel name is longer than {CHANNEL_NAME_LEN_MAX} bytes")]
    TooLong,
    #[error("channel name has no namespace: expected `namespace:name`")]
    NoNamespace,
    #[error("channel name contains {0:?}: allowed are letters, digits and `_-.:@`")]
    BadCharacter(char),
    #[error("channel name has an empty segment")]
    EmptySegment,
}

impl ChannelName {
    pub fn parse(text: &str) -> Result<Self, ChannelNameError> {
        if text.is_empty() {
            return Err(ChannelNameError::Empty);
        }
        if text.len() > CHANNEL_NAME_LEN_MAX {
            return Err(ChannelNameError::TooLong);
        }
        if let Some(bad) = text
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':' | '@')))
        {
            return Err(ChannelNameError::BadCharacter(bad));
        }
        if !text.contains(':') {
            return Err(ChannelNameError::NoNamespace);
        }
        if text.split(':').any(str::is_empty) {
            return Err(ChannelNameError::EmptySegment);
        }
        Ok(Self(Arc::from(text)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The namespace: the text before the first `:`.
    pub fn namespace(&self) -> &str {
        self.0.split(':').next().unwrap_or_default()
    }

    /// The second segment, which names the owner of a personal channel (`user:{id}:…`).
    pub fn owner_segment(&self) -> Option<&str> {
        self.0.split(':').nth(1)
    }
}

impl fmt::Display for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ChannelName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", &*self.0)
    }
}

impl Serialize for ChannelName {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ChannelName {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        ChannelName::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Who a client is, as far as channel permissions go (seeds 000 and 001).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Anonymous,
    Spectator,
    Media,
    Coach,
    Scorekeeper,
    Staff,
    Director,
}

impl Role {
    pub const ALL: [Role; 7] = [
        Role::Anonymous,
        Role::Spectator,
        Role::Media,
        Role::Coach,
        Role::Scorekeeper,
        Role::Staff,
        Role::Director,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Anonymous => "anonymous",
            Role::Spectator => "spectator",
            Role::Media => "media",
            Role::Coach => "coach",
            Role::Scorekeeper => "scorekeeper",
            Role::Staff => "staff",
            Role::Director => "director",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// What a namespace's channels keep and who may use them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamespaceOptions {
    /// Publications kept per channel; 0 makes the namespace ephemeral (no offsets, no resume).
    pub history_size: u64,
    /// Publications older than this are dropped from history (keyed state stays); 0 keeps
    /// them until `history_size` pushes them out.
    pub history_ttl_secs: u64,
    /// Keep the latest publication per `key` (a compacted channel) for snapshots.
    pub keyed: bool,
    /// Track who is subscribed.
    pub presence: bool,
    /// Push join/leave events to subscribers (needs `presence`).
    pub join_leave: bool,
    /// Roles that may subscribe (and read history and presence).
    pub subscribe: Vec<Role>,
    /// Roles that may publish from a client connection.
    pub publish: Vec<Role>,
    /// `ns:{user}:…` channels: only the user named in the second segment may subscribe.
    pub personal: bool,
}

impl Default for NamespaceOptions {
    fn default() -> Self {
        Self {
            history_size: 1000,
            history_ttl_secs: 24 * 3600,
            keyed: false,
            presence: false,
            join_leave: false,
            subscribe: Role::ALL.to_vec(),
            publish: vec![Role::Staff, Role::Director],
            personal: false,
        }
    }
}

impl NamespaceOptions {
    /// What the store keeps of this namespace's channels.
    pub fn retention(&self) -> crate::store::Retention {
        crate::store::Retention { history_size: self.history_size, history_ttl_secs: self.history_ttl_secs, keyed: self.keyed }
    }

    pub fn has_history(&self) -> bool {
        self.history_size > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names_from_the_seeds() {
        for name in ["match:42", "tournament:t1:scores", "user:alice:notifications", "leaderboard:global"] {
            assert_eq!(ChannelName::parse(name).map(|c| c.to_string()), Ok(name.to_string()));
        }
        let c = ChannelName::parse("user:alice:notifications").unwrap();
        assert_eq!(c.namespace(), "user");
        assert_eq!(c.owner_segment(), Some("alice"));
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(ChannelName::parse(""), Err(ChannelNameError::Empty));
        assert_eq!(ChannelName::parse("nonamespace"), Err(ChannelNameError::NoNamespace));
        assert_eq!(ChannelName::parse("match:"), Err(ChannelNameError::EmptySegment));
        assert_eq!(ChannelName::parse("match:a b"), Err(ChannelNameError::BadCharacter(' ')));
        assert_eq!(ChannelName::parse(&format!("m:{}", "x".repeat(300))), Err(ChannelNameError::TooLong));
    }
}
