//! The `[namespaces.<name>]` tables: the built-in namespaces of the seeds (with seed 000's four
//! tiers of a tournament's channels as rules) and the checks of every configured namespace — its
//! name, its roles (custom ones must be declared in `auth.roles`), presence, keyed state, channel
//! quotas and rules. Each failure names its key.

use std::collections::BTreeMap;

use courtside_core::channel::{ChannelPattern, ChannelRule};
use courtside_core::{NamespaceOptions, Role};

use super::ConfigError;

/// The namespaces of seeds 000, 001, 003 and 004, with history on.
pub fn default_namespaces() -> BTreeMap<String, NamespaceOptions> {
    use Role::*;
    let everyone = Role::ALL.to_vec();
    let public = |publish: Vec<Role>, keyed: bool, presence: bool| NamespaceOptions {
        keyed,
        presence,
        subscribe: everyone.clone(),
        publish,
        ..NamespaceOptions::default()
    };
    let officials = vec![Staff, Director];
    let mut namespaces = BTreeMap::new();
    namespaces.insert(
        "tournament".into(),
        NamespaceOptions { rules: tournament_tiers(), ..public(officials.clone(), true, true) },
    );
    namespaces.insert("match".into(), public(vec![Scorekeeper, Staff, Director], true, true));
    namespaces.insert("division".into(), public(officials.clone(), true, false));
    namespaces.insert("court".into(), public(vec![Scorekeeper, Staff, Director], true, false));
    namespaces.insert("team".into(), public(vec![Coach, Staff, Director], false, false));
    namespaces.insert("leaderboard".into(), public(officials.clone(), true, false));
    namespaces.insert("player".into(), public(officials.clone(), true, false));
    namespaces.insert(
        "user".into(),
        NamespaceOptions {
            personal: true,
            subscribe: everyone.clone(),
            publish: Vec::new(),
            history_size: 100,
            history_ttl_secs: 7 * 24 * 3600,
            ..NamespaceOptions::default()
        },
    );
    namespaces
}

/// Seed 000's four tiers of a tournament's channels, as rules of the `tournament` namespace:
/// global (anyone), authenticated (signed in), staff and director — the last two held globally or
/// in the tournament the channel names. Publishing stays with the namespace's officials.
fn tournament_tiers() -> Vec<ChannelRule> {
    use Role::*;
    let tiers: [(&[&str], Vec<Role>); 4] = [
        (&["announcements", "scores", "brackets"], vec![Anonymous]),
        (&["teams", "schedule"], vec![Authenticated]),
        (&["staff", "operations", "emergency"], vec![Staff, Director]),
        (&["admin", "financial", "analytics"], vec![Director]),
    ];
    let mut rules = Vec::new();
    for (channels, subscribe) in tiers {
        for channel in channels {
            rules.push(ChannelRule {
                channel: ChannelPattern::parse(&format!("tournament:{{t}}:{channel}")).expect("a valid built-in pattern"),
                subscribe: Some(subscribe.clone()),
                publish: None,
                scope: Some("t".into()),
            });
        }
    }
    rules
}

/// The first namespace setting that is wrong, with its key; `declared`: the app's own roles.
pub(super) fn validate(namespaces: &BTreeMap<String, NamespaceOptions>, declared: &[Role]) -> Result<(), ConfigError> {
    let invalid = |key: &str, message: &str| Err(ConfigError::Invalid { key: key.to_string(), message: message.to_string() });
for (name, options) in namespaces {
        let lists = options.rules.iter().flat_map(|rule| rule.subscribe.iter().chain(&rule.publish));
        for role in lists.chain([&options.subscribe, &options.publish]).flatten() {
            if role.is_custom() && !declared.contains(role) {
                return invalid(&format!("namespaces.{name}"), &format!("names the role `{role}`, which is not built in: declare it in auth.roles"));
            }
        }
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@')) {
            return invalid(&format!("namespaces.{name}"), "namespace names use letters, digits and `_-.@`");
        }
        if name.starts_with('_') {
            return invalid(&format!("namespaces.{name}"), "names starting with `_` are reserved for the server's own records");
        }
        if options.join_leave && !options.presence {
            return invalid(&format!("namespaces.{name}.join_leave"), "needs presence = true");
        }
        if options.keyed && options.history_size == 0 {
            return invalid(&format!("namespaces.{name}.keyed"), "needs history_size > 0");
        }
        if let Err((key, message)) = options.check_channel_quotas() {
            return invalid(&format!("namespaces.{name}.{key}"), message);
        }
        for (index, rule) in options.rules.iter().enumerate() {
            let key = format!("namespaces.{name}.rules[{index}]");
            if rule.channel.namespace() != Some(name.as_str()) {
                return invalid(&format!("{key}.channel"), &format!("must start with the namespace `{name}:`"));
            }
            if let Some(scope) = &rule.scope
                && !rule.channel.has_capture(scope)
            {
                return invalid(&format!("{key}.scope"), &format!("names no `{{{scope}}}` of the rule's channel"));
            }
        }
    }
    Ok(())
}
