//! Socket.IO event maps: the `[socketio]` table of the configuration, by which an app team
//! makes Courtside speak its app's own events instead of writing server code — client events
//! that follow and leave channels and answer with an event built from server state, and
//! publications turned into the event names (and shapes) its client code listens for.
//!
//! This module owns the model as configured ([`SocketIoConfig`]), its checks (each failure names
//! its key) and the compiled form the Socket.IO transport runs ([`EventMap`]); the data
//! templates are [`template`]. It does no I/O: the transport follows channels and reads boards.

pub mod template;

use std::collections::{BTreeMap, HashMap};

use courtside_core::ChannelName;
use courtside_core::channel::ChannelPattern;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use template::{Context, Scope, TemplateError};

/// The generic events of the Socket.IO mapping, which an app's events may not redefine.
pub const GENERIC_EVENTS: [&str; 8] = ["subscribe", "unsubscribe", "publish", "history", "presence", "presence_stats", "presence_set", "refresh"];

/// `[socketio]`: how Socket.IO clients' own events map onto Courtside.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SocketIoConfig {
    /// Channels every socket follows once connected; `{user}` is the signed-in user (the
    /// channel is skipped for anonymous sockets).
    pub follow_on_connect: Vec<String>,
    /// `[socketio.on.<event>]`: what a client event does.
    pub on: BTreeMap<String, ClientEventRule>,
    /// `[[socketio.emit]]`: publications turned into the app's events.
    pub emit: Vec<EmitRule>,
}

/// What one client event does, in this order: check, leave, follow, reply.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClientEventRule {
    /// The event's first argument must be the socket's own user id (else error 103).
    pub arg_is_user: bool,
    /// Channels to leave (`{user}`, `{arg}` filled in).
    pub unfollow: Vec<String>,
    /// Channels to follow, with the same permissions as `subscribe` (`{user}`, `{arg}`).
    pub follow: Vec<String>,
    /// The event sent back (and the acknowledgement's value, when the client asked for one).
    pub reply: Option<Reply>,
}

/// An event sent back to the socket that sent a client event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    pub event: String,
    /// The server state `data` is built from; without one, `data` is built from `{}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// The template of the event's argument ([`template`]); without one, the source as it is
    /// (or no argument at all when there is no source either).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// Server state a reply is built from: a board's top (`top = N`) or one player's place
/// (`player = "$arg"` or `"$user"`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    pub leaderboard: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub player: Option<String>,
}

/// Publications of the channels `channel` matches (`*` matches one segment) whose data has the
/// fields of `when` (a field's value, or any value of an array) become the event `event`: one
/// per publication, or one per element of the array at `each`. With `presence`, the rule maps
/// the channel's presence events instead (`join` or `leave`; the source is the client:
/// `{channel, client, user, status?, location?, device?}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmitRule {
    pub channel: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub presence: Option<PresenceChange>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub when: BTreeMap<String, Value>,
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub each: Option<String>,
    /// The template of the event's argument; without one, the publication's data as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

/// Which presence events a rule maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PresenceChange {
    Join,
    Leave,
}

/// Why the `[socketio]` table was refused: the key, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("configuration key `{key}`: {reason}")]
pub struct MapError {
    pub key: String,
    pub reason: String,
}

fn refused(key: String, reason: impl ToString) -> MapError {
    MapError { key, reason: reason.to_string() }
}

/// A channel name with `{user}` and `{arg}` placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelTemplate(String);

/// What a placeholder could not be filled with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FillError {
    /// `{user}` on an anonymous socket, or `{arg}` without a string argument.
    Missing(&'static str),
    /// Filled in, the name is not a valid channel name.
    Invalid(String),
}

impl ChannelTemplate {
    fn parse(text: &str) -> Result<Self, String> {
        let probe = text.replace("{user}", "u").replace("{arg}", "a");
        ChannelName::parse(&probe).map_err(|error| format!("{text:?}: {error}"))?;
        Ok(Self(text.to_string()))
    }

    pub fn uses_arg(&self) -> bool {
        self.0.contains("{arg}")
    }

    /// The channel for this user and argument.
    pub fn fill(&self, user: Option<&str>, arg: Option<&str>) -> Result<ChannelName, FillError> {
        let mut name = self.0.clone();
        if name.contains("{user}") {
            name = name.replace("{user}", user.ok_or(FillError::Missing("{user}"))?);
        }
        if name.contains("{arg}") {
            name = name.replace("{arg}", arg.ok_or(FillError::Missing("{arg}"))?);
        }
        ChannelName::parse(&name).map_err(|_| FillError::Invalid(name))
    }
}

/// A client event's compiled rule.
#[derive(Debug, Clone)]
pub struct ClientRule {
    pub arg_is_user: bool,
    pub unfollow: Vec<ChannelTemplate>,
    pub follow: Vec<ChannelTemplate>,
    pub reply: Option<Reply>,
}

#[derive(Debug, Clone)]
struct CompiledEmit {
    pattern: ChannelPattern,
    presence: Option<PresenceChange>,
    when: Vec<(String, Value)>,
    event: String,
    each: Option<String>,
    data: Option<Value>,
}

/// The `[socketio]` table, checked and ready to run.
#[derive(Debug, Clone, Default)]
pub struct EventMap {
    pub follow_on_connect: Vec<ChannelTemplate>,
    on: HashMap<String, ClientRule>,
    emit: Vec<CompiledEmit>,
}

/// One event made from a publication: its name and argument.
#[derive(Debug, Clone, PartialEq)]
pub struct MappedEvent<'a> {
    pub event: &'a str,
    pub data: Value,
}

/// Event names follow the rule of publications' names (`courtside_core::event`), except that
/// the operator's map may use the names Courtside's transport sends (an app's own
/// `system_notification`, say); socket.io-client's own names never reach a listener.
fn check_event_name(key: String, name: &str) -> Result<(), MapError> {
    use courtside_core::event::{EventNameError, SOCKETIO_CLIENT_EVENTS, validate_event_name};
    match validate_event_name(name) {
        Err(EventNameError::Reserved(_)) if !SOCKETIO_CLIENT_EVENTS.contains(&name) => Ok(()),
        checked => checked.map_err(|error| refused(key, error)),
    }
}

fn check_template(key: String, template: &Value, scope: Scope) -> Result<(), MapError> {
    template::check(template, scope).map_err(|error: TemplateError| refused(key, error))
}

impl SocketIoConfig {
    /// Checks every key and compiles the map.
    pub fn compile(&self) -> Result<EventMap, MapError> {
        let templates = |key: &str, list: &[String]| -> Result<Vec<ChannelTemplate>, MapError> {
            list.iter().map(|text| ChannelTemplate::parse(text).map_err(|reason| refused(key.to_string(), reason))).collect()
        };
        let follow_on_connect = templates("socketio.follow_on_connect", &self.follow_on_connect)?;
        if let Some(bad) = follow_on_connect.iter().find(|t| t.uses_arg()) {
            return Err(refused("socketio.follow_on_connect".into(), format!("{:?}: a connect has no argument: only {{user}}", bad.0)));
        }
        let mut on = HashMap::new();
        for (name, rule) in &self.on {
            let key = format!("socketio.on.{name}");
            check_event_name(key.clone(), name)?;
            if GENERIC_EVENTS.contains(&name.as_str()) {
                return Err(refused(key, format!("{name:?} is one of the generic events ({})", GENERIC_EVENTS.join(", "))));
            }
            if let Some(reply) = &rule.reply {
                check_event_name(format!("{key}.reply.event"), &reply.event)?;
                if let Some(data) = &reply.data {
                    check_template(format!("{key}.reply.data"), data, Scope::Reply)?;
                }
                if let Some(source) = &reply.source {
                    check_source(&format!("{key}.reply.source"), source)?;
                }
            }
            let compiled = ClientRule {
                arg_is_user: rule.arg_is_user,
                unfollow: templates(&format!("{key}.unfollow"), &rule.unfollow)?,
                follow: templates(&format!("{key}.follow"), &rule.follow)?,
                reply: rule.reply.clone(),
            };
            on.insert(name.clone(), compiled);
        }
        let mut emit = Vec::with_capacity(self.emit.len());
        for (index, rule) in self.emit.iter().enumerate() {
            let key = format!("socketio.emit[{index}]");
            check_event_name(format!("{key}.event"), &rule.event)?;
            let pattern = ChannelPattern::parse(&rule.channel).map_err(|reason| refused(format!("{key}.channel"), reason))?;
            if let Some(each) = &rule.each
                && !(each.starts_with("$.") && template::check(&Value::String(each.clone()), Scope::Publication).is_ok())
            {
                return Err(refused(format!("{key}.each"), "a `$.path` into the publication's data"));
            }
            if let Some(data) = &rule.data {
                check_template(format!("{key}.data"), data, Scope::Publication)?;
            }
            emit.push(CompiledEmit {
                pattern,
                presence: rule.presence,
                when: rule.when.iter().map(|(field, value)| (field.clone(), value.clone())).collect(),
                event: rule.event.clone(),
                each: rule.each.clone(),
                data: rule.data.clone(),
            });
        }
        Ok(EventMap { follow_on_connect, on, emit })
    }
}

fn check_source(key: &str, source: &Source) -> Result<(), MapError> {
    courtside_leaderboard::board::check_board_id(&source.leaderboard).map_err(|error| refused(format!("{key}.leaderboard"), error))?;
    match (source.top, source.player.as_deref()) {
        (Some(top), None) if (1..=courtside_leaderboard::service::PAGE_LEN_MAX as u32).contains(&top) => Ok(()),
        (Some(_), None) => Err(refused(format!("{key}.top"), format!("must be between 1 and {}", courtside_leaderboard::service::PAGE_LEN_MAX))),
        (None, Some("$arg" | "$user")) => Ok(()),
        (None, Some(_)) => Err(refused(format!("{key}.player"), "`$arg` or `$user`")),
        _ => Err(refused(key.to_string(), "exactly one of `top` or `player`")),
    }
}

impl EventMap {
    pub fn is_empty(&self) -> bool {
        self.follow_on_connect.is_empty() && self.on.is_empty() && self.emit.is_empty()
    }

    /// The rule of the client event `name`, if the map has one.
    pub fn client_event(&self, name: &str) -> Option<&ClientRule> {
        self.on.get(name)
    }

    /// Whether any rule maps publications of `channel` (so the transport can skip the rest).
    pub fn maps_channel(&self, channel: &ChannelName) -> bool {
        self.emit.iter().any(|rule| rule.presence.is_none() && rule.pattern.matches(channel))
    }

    /// The events a publication of `channel` with `data` becomes, in rule order (none, when a
    /// matching rule's `each` array is empty); `None` when no rule matches (the publication
    /// then arrives as usual).
    pub fn events_for(&self, channel: &ChannelName, data: &Value, now_ms: u64) -> Option<Vec<MappedEvent<'_>>> {
        self.mapped(channel, None, data, now_ms)
    }

    /// The events a presence change of `channel` (`client`: the client as JSON) becomes; `None`
    /// when no rule maps it (it then arrives as `join` / `leave`).
    pub fn presence_events_for(&self, channel: &ChannelName, change: PresenceChange, client: &Value, now_ms: u64) -> Option<Vec<MappedEvent<'_>>> {
        self.mapped(channel, Some(change), client, now_ms)
    }

    fn mapped(&self, channel: &ChannelName, presence: Option<PresenceChange>, data: &Value, now_ms: u64) -> Option<Vec<MappedEvent<'_>>> {
        let context = Context { now_ms, user: None, arg: None };
        let mut matched = false;
        let mut events = Vec::new();
        for rule in self.emit.iter().filter(|rule| rule.presence == presence && rule.pattern.matches(channel)) {
            let holds = |(field, wanted): &(String, Value)| match (wanted, data.get(field)) {
                (Value::Array(any_of), Some(value)) => any_of.contains(value),
                (wanted, value) => value == Some(wanted),
            };
            if !rule.when.iter().all(holds) {
                continue;
            }
            matched = true;
            let build = |source: &Value| rule.data.as_ref().map_or_else(|| source.clone(), |t| template::render(t, source, &context));
            match &rule.each {
                Some(path) => {
                    let elements = template::lookup(data, path).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
                    events.extend(elements.iter().map(|element| MappedEvent { event: &rule.event, data: build(element) }));
                }
                None => events.push(MappedEvent { event: &rule.event, data: build(data) }),
            }
        }
        matched.then_some(events)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(toml_text: &str) -> Result<EventMap, MapError> {
        let config: SocketIoConfig = toml::from_str(toml_text).expect("toml");
        config.compile()
    }

    #[test]
    fn publications_become_the_apps_events_by_channel_and_type() {
        let map = map(r#"
            [[emit]]
            channel = "leaderboard:*"
            when = { type = "TOP" }
            event = "leaderboard_refresh"
            data = { totalUsers = "$.total" }

            [[emit]]
            channel = "leaderboard:*"
            when = { type = ["TOP", "OTHER"] }
            event = "scoreboard_update"
            each = "$.changes"
            data = { type = "$.type", userId = "$.player" }
        "#)
        .expect("valid");
        let channel = ChannelName::parse("leaderboard:global").expect("name");
        let view = json!({ "type": "TOP", "total": 3, "changes": [{ "type": "NEW_LEADER", "player": "ana" }, { "type": "RANK_CHANGE", "player": "bo" }] });
        let events: Vec<(&str, Value)> = map.events_for(&channel, &view, 0).unwrap_or_default().into_iter().map(|e| (e.event, e.data)).collect();
        assert_eq!(
            events,
            [
                ("leaderboard_refresh", json!({ "totalUsers": 3 })),
                ("scoreboard_update", json!({ "type": "NEW_LEADER", "userId": "ana" })),
                ("scoreboard_update", json!({ "type": "RANK_CHANGE", "userId": "bo" })),
            ]
        );
        assert!(map.events_for(&channel, &json!({ "type": "MATCH_RESULT" }), 0).is_none(), "`when` filters");
        assert!(map.events_for(&ChannelName::parse("leaderboard:a:b").expect("name"), &view, 0).is_none(), "`*` is one segment");
        let quiet = json!({ "type": "OTHER", "total": 3, "changes": [] });
        assert_eq!(map.events_for(&channel, &quiet, 0).map(|events| events.len()), Some(0), "matched, but nothing to send: not the default event");
    }

    #[test]
    fn presence_rules_map_joins_and_leaves_only() {
        let map = map(r#"
            [[emit]]
            channel = "players:online"
            presence = "join"
            event = "player:online"
            data = { playerId = "$.user", status = "$.status" }
        "#)
        .expect("valid");
        let channel = ChannelName::parse("players:online").expect("name");
        let client = json!({ "client": "n-1", "user": "ana", "status": "in_match" });
        let joined: Vec<(&str, Value)> = map.presence_events_for(&channel, PresenceChange::Join, &client, 0).unwrap_or_default().into_iter().map(|e| (e.event, e.data)).collect();
        assert_eq!(joined, [("player:online", json!({ "playerId": "ana", "status": "in_match" }))]);
        assert!(map.presence_events_for(&channel, PresenceChange::Leave, &client, 0).is_none());
        assert!(map.events_for(&channel, &client, 0).is_none(), "a presence rule maps no publication");
        assert!(!map.maps_channel(&channel));
    }

    #[test]
    fn bad_maps_name_their_key() {
        let refused = |text: &str| map(text).expect_err("refused").to_string();
        assert_eq!(refused("[on.subscribe]\nfollow = [\"a:b\"]"), "configuration key `socketio.on.subscribe`: \"subscribe\" is one of the generic events (subscribe, unsubscribe, publish, history, presence, presence_stats, presence_set, refresh)");
        assert_eq!(
            refused("[on.x]\nreply = { event = \"connect\" }"),
            "configuration key `socketio.on.x.reply.event`: event name \"connect\" is reserved (by socket.io-client or by Courtside's Socket.IO transport)"
        );
        assert!(refused("[on.x]\nfollow = [\"no spaces\"]").starts_with("configuration key `socketio.on.x.follow`"));
        assert!(refused("follow_on_connect = [\"score:{arg}\"]").contains("only {user}"));
        assert!(refused("[[emit]]\nchannel = \"a:*\"\nevent = \"e\"\ndata = { me = \"$user\" }").starts_with("configuration key `socketio.emit[0].data`"));
        assert!(refused("[on.x]\nreply = { event = \"y\", source = { leaderboard = \"b\" } }").contains("exactly one of `top` or `player`"));
    }

    #[test]
    fn channel_templates_fill_user_and_argument() {
        let template = ChannelTemplate::parse("score:{user}:{arg}").expect("valid");
        assert_eq!(template.fill(Some("ana"), Some("7")).map(|c| c.to_string()), Ok("score:ana:7".to_string()));
        assert_eq!(template.fill(None, Some("7")), Err(FillError::Missing("{user}")));
        assert_eq!(template.fill(Some("ana"), Some("a b")), Err(FillError::Invalid("score:ana:a b".into())));
    }
}
