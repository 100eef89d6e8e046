//! Channel names, namespaces and roles: the vocabulary permissions are written in.
//!
//! A channel name is `namespace:rest`, e.g. `match:42` or `user:alice:notifications`. The part
//! before the first `:` names the namespace whose options (history, keyed state, presence, who may
//! subscribe and publish) apply to the channel. A channel pattern (`tournament:{t}:staff`,
//! `match:*:*`) matches channel names segment by segment: permission rules within a namespace
//! and the Socket.IO event map are written with them.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// Who a client is, as far as channel permissions go: seed 000's and 001's roles, and an app's
/// own roles declared in the configuration (seed 002's `rider`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// Anyone, signed in or not: in a list of roles, it opens the channel to everyone.
    Anonymous,
    /// Every signed-in client holds it (seed 000's "authenticated" tier). Only permission
    /// lists name it; a token cannot carry it.
    Authenticated,
    Spectator,
    Media,
    Coach,
    Scorekeeper,
    Staff,
    Director,
    /// An app's own role; the server knows it only if the configuration declares it.
    Custom(Arc<str>),
}

/// Longest name of an app's own role, in bytes.
pub const ROLE_NAME_LEN_MAX: usize = 32;

impl Role {
    /// The built-in roles a token may carry.
    pub const ALL: [Role; 7] = [
        Role::Anonymous,
        Role::Spectator,
        Role::Media,
        Role::Coach,
        Role::Scorekeeper,
        Role::Staff,
        Role::Director,
    ];

    pub fn as_str(&self) -> &str {
        match self {
            Role::Anonymous => "anonymous",
            Role::Authenticated => "authenticated",
            Role::Spectator => "spectator",
            Role::Media => "media",
            Role::Coach => "coach",
            Role::Scorekeeper => "scorekeeper",
            Role::Staff => "staff",
            Role::Director => "director",
            Role::Custom(name) => name,
        }
    }

    /// A built-in role a token may carry ([`Role::ALL`]), by name.
    pub fn parse(text: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Any role by name: a built-in one (`authenticated` included), else an app's own when the
    /// name is 1 to 32 of `[a-z0-9_-]`. Whether an app's own role is declared is the caller's
    /// check.
    pub fn named(text: &str) -> Result<Role, String> {
        if let Some(role) = Role::parse(text) {
            return Ok(role);
        }
        if text == "authenticated" {
            return Ok(Role::Authenticated);
        }
        let valid = !text.is_empty()
            && text.len() <= ROLE_NAME_LEN_MAX
            && text.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-'));
        match valid {
            true => Ok(Role::Custom(Arc::from(text))),
            false => Err(format!("{text:?} is not a role name (1 to {ROLE_NAME_LEN_MAX} of a-z, 0-9, `_`, `-`)")),
        }
    }

    pub fn is_custom(&self) -> bool {
        matches!(self, Role::Custom(_))
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Role {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Role {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Role::named(&text).map_err(serde::de::Error::custom)
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
    /// Rules for channels of the namespace by pattern: the first that matches a channel decides
    /// who may subscribe and publish there; a channel no rule matches takes `subscribe` and
    /// `publish` above.
    pub rules: Vec<ChannelRule>,
    /// Stored channels the namespace may hold (0: no limit); a subscribe, publish or history
    /// read that would create one more is refused.
    pub channels_max: u64,
    /// A channel with no publication and no subscriber for this long is removed from the store
    /// (history, keyed state, epoch: a reset); 0 keeps channels forever.
    pub idle_expiry_secs: u64,
}

/// Who may use the channels that match a pattern, within a namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelRule {
    /// The channels it covers, e.g. `tournament:{t}:staff`.
    pub channel: ChannelPattern,
    /// Roles that may subscribe (and read history and presence); absent: the namespace's.
    #[serde(default)]
    pub subscribe: Option<Vec<Role>>,
    /// Roles that may publish from a client connection; absent: the namespace's.
    #[serde(default)]
    pub publish: Option<Vec<Role>>,
    /// A capture of `channel` naming a tournament: the roles a token holds in that tournament
    /// (its `tournament_roles` claim) count as well as its global roles.
    #[serde(default)]
    pub scope: Option<String>,
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
            rules: Vec::new(),
            channels_max: 0,
            idle_expiry_secs: 0,
        }
    }
}

impl NamespaceOptions {
    /// What the store keeps of this namespace's channels.
    pub fn retention(&self) -> crate::store::Retention {
        crate::store::Retention { history_size: self.history_size, history_ttl_secs: self.history_ttl_secs, keyed: self.keyed }
    }

    /// The rule that decides for `channel`, if one matches it.
    pub fn rule_for(&self, channel: &ChannelName) -> Option<&ChannelRule> {
        self.rules.iter().find(|rule| rule.channel.matches(channel))
    }

    pub fn has_history(&self) -> bool {
        self.history_size > 0
    }

    /// Checks `channels_max` and `idle_expiry_secs`, which only mean something for a namespace
    /// that stores its channels: the first mistake as (key within the namespace, message).
    pub fn check_channel_quotas(&self) -> Result<(), (&'static str, &'static str)> {
        const STORED_ONLY: &str = "needs history_size > 0 (a live-only namespace stores no channel)";
        if self.channels_max > 0 && !self.has_history() {
            return Err(("channels_max", STORED_ONLY));
        }
        if self.idle_expiry_secs > 0 && !self.has_history() {
            return Err(("idle_expiry_secs", STORED_ONLY));
        }
        Ok(())
    }

    /// Whether the store must be asked before a channel is used (so it can refuse a channel
    /// beyond `channels_max` and record a subscribe as activity against `idle_expiry_secs`).
    pub fn opens_channels(&self) -> bool {
        self.has_history() && (self.channels_max > 0 || self.idle_expiry_secs > 0)
    }
}

// ---- Channel patterns ----

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Any,
    Capture(String),
}

/// A parsed channel pattern, e.g. `tournament:{t}:staff` or `match:*:*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelPattern {
    text: String,
    segments: Vec<Segment>,
}

impl ChannelPattern {
    /// Reads a pattern: a valid channel name once every wildcard is replaced by a plain segment;
    /// a capture's name is letters, digits and `_`, and names one segment only once.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut segments = Vec::new();
        for part in text.split(':') {
            let segment = match part {
                "*" => Segment::Any,
                _ if part.starts_with('{') && part.ends_with('}') && part.len() > 2 => {
                    let name = &part[1..part.len() - 1];
                    if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                        return Err(format!("{text:?}: a capture is `{{name}}` with letters, digits and `_`"));
                    }
                    if segments.contains(&Segment::Capture(name.to_string())) {
                        return Err(format!("{text:?}: `{{{name}}}` appears twice"));
                    }
                    Segment::Capture(name.to_string())
                }
                _ => Segment::Literal(part.to_string()),
            };
            segments.push(segment);
        }
        let plain: Vec<&str> = segments
            .iter()
            .map(|segment| match segment {
                Segment::Literal(text) => text.as_str(),
                Segment::Any | Segment::Capture(_) => "x",
            })
            .collect();
        ChannelName::parse(&plain.join(":")).map_err(|error| format!("{text:?}: {error}"))?;
        Ok(Self { text: text.to_string(), segments })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The namespace the pattern's channels are in, when its first segment is literal.
    pub fn namespace(&self) -> Option<&str> {
        match self.segments.first() {
            Some(Segment::Literal(text)) => Some(text),
            _ => None,
        }
    }

    pub fn matches(&self, channel: &ChannelName) -> bool {
        let mut parts = channel.as_str().split(':');
        self.segments.iter().all(|segment| {
            parts.next().is_some_and(|part| match segment {
                Segment::Literal(text) => text == part,
                Segment::Any | Segment::Capture(_) => true,
            })
        }) && parts.next().is_none()
    }

    /// The segment of `channel` captured as `name`, when the pattern matches it.
    pub fn capture<'c>(&self, channel: &'c ChannelName, name: &str) -> Option<&'c str> {
        if !self.matches(channel) {
            return None;
        }
        let index = self.segments.iter().position(|segment| matches!(segment, Segment::Capture(n) if n == name))?;
        channel.as_str().split(':').nth(index)
    }

    /// Whether the pattern captures a segment as `name`.
    pub fn has_capture(&self, name: &str) -> bool {
        self.segments.iter().any(|segment| matches!(segment, Segment::Capture(n) if n == name))
    }
}

impl fmt::Display for ChannelPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for ChannelPattern {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for ChannelPattern {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        ChannelPattern::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

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

    // ---- Channel patterns ----

    fn channel(text: &str) -> ChannelName {
        ChannelName::parse(text).expect("valid")
    }

    #[test]
    fn wildcards_match_one_segment_and_captures_name_it() {
        let pattern = ChannelPattern::parse("tournament:{t}:staff").expect("valid");
        assert!(pattern.matches(&channel("tournament:t1:staff")));
        assert!(!pattern.matches(&channel("tournament:t1:scores")));
        assert!(!pattern.matches(&channel("tournament:t1:staff:x")));
        assert!(!pattern.matches(&channel("tournament:t1")));
        assert_eq!(pattern.capture(&channel("tournament:t1:staff"), "t"), Some("t1"));
        assert_eq!(pattern.capture(&channel("tournament:t1:scores"), "t"), None);
        assert_eq!(pattern.namespace(), Some("tournament"));
        assert!(ChannelPattern::parse("match:*:*").expect("valid").matches(&channel("match:a:b")));
    }

    #[test]
    fn bad_patterns_are_refused() {
        for bad in ["tournament", "tournament::x", "tournament:{t}:{t}", "tournament:{a b}", "tour nament:x"] {
            assert!(ChannelPattern::parse(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn a_channel_matches_the_pattern_of_itself_with_any_segment_wildcarded(
            segments in proptest::collection::vec("[a-z0-9]{1,6}", 2..5),
            wildcard in 0usize..5,
        ) {
            let name = channel(&segments.join(":"));
            let mut parts = segments.clone();
            let index = wildcard % parts.len();
            parts[index] = "{w}".into();
            let pattern = ChannelPattern::parse(&parts.join(":")).expect("valid");
            prop_assert!(pattern.matches(&name));
            prop_assert_eq!(pattern.capture(&name, "w"), Some(segments[index].as_str()));
        }
    }
}
