//! A socket running the configured event map ([`crate::event_map`]): the channels it follows
//! once connected, the app's own client events (leave, follow, reply built from server state),
//! and publications turned into the app's event names — encoded once per publication and node
//! like the default `publication` event.

use bytes::Bytes;
use courtside_core::ChannelName;
use courtside_core::access::Principal;
use courtside_core::event::UNSUBSCRIBED_EVENT;
use courtside_core::stream::{Publication, now_ms};
use serde_json::Value;
use serde_json::value::RawValue;

use super::{SioSocket, event_head, publication_event_start};
use crate::event_map::template::{self, Context};
use crate::event_map::{ChannelTemplate, ClientRule, EventMap, FillError, Reply, Source};
use crate::protocol::{ClientError, Disconnect, SubscribeParams};

/// Separates the events one publication becomes in their shared encoding (never part of JSON
/// text, which escapes control characters).
pub(super) const EVENT_SEPARATOR: u8 = 0x1e;

impl SioSocket {
    /// The user a token named (`None`: anonymous, or the server API key).
    fn signed_in_user(&self) -> Option<String> {
        match &self.principal {
            Some(Principal::User { id, .. }) => Some(id.clone()),
            _ => None,
        }
    }

    /// Follows the map's `follow_on_connect` channels; one that cannot be followed is reported
    /// as an `error` event and the others are still followed.
    pub(super) async fn follow_on_connect(&mut self) -> Result<(), Disconnect> {
        let map = self.state.socketio_map.clone();
        for template in &map.follow_on_connect {
            let user = self.signed_in_user();
            let channel = match template.fill(user.as_deref(), None) {
                Ok(channel) => channel,
                Err(FillError::Missing(_)) => continue,
                Err(FillError::Invalid(name)) => {
                    self.refuse("connect", None, &ClientError::BadRequest(format!("{name:?} is not a channel name")))?;
                    continue;
                }
            };
            if let Err(error) = self.follow(channel).await {
                self.refuse("connect", None, &error)?;
            }
        }
        Ok(())
    }

    /// A client event of the map: check, leave, follow, reply (and acknowledge).
    pub(super) async fn mapped_event(&mut self, rule: &ClientRule, argument: Option<&RawValue>, ack: Option<u64>) -> Result<(), ClientError> {
        let arg: Option<Value> = argument.map(|raw| serde_json::from_str(raw.get())).transpose().map_err(|e| ClientError::BadRequest(e.to_string()))?;
        let user = self.signed_in_user();
        if rule.arg_is_user && (user.is_none() || arg.as_ref().and_then(Value::as_str) != user.as_deref()) {
            return Err(ClientError::PermissionDenied);
        }
        let arg_text = arg.as_ref().and_then(Value::as_str);
        for template in &rule.unfollow {
            let channel = fill(template, user.as_deref(), arg_text)?;
            if self.followed.iter().any(|f| f.channel == channel) {
                self.unsubscribe(&channel).await?;
                // An event, because only events move the position socket.io-client keeps: a
                // resume must not follow the channel again.
                self.emit_json(UNSUBSCRIBED_EVENT, &serde_json::json!({ "channel": channel.as_str() })).map_err(|_| ClientError::Internal)?;
            }
        }
        for template in &rule.follow {
            let channel = fill(template, user.as_deref(), arg_text)?;
            self.follow(channel).await?;
        }
        let context = Context { now_ms: now_ms(), user: user.as_deref(), arg: arg.as_ref() };
        let data = match &rule.reply {
            Some(reply) => self.reply_data(reply, &context).await?,
            None => None,
        };
        if let Some(reply) = &rule.reply {
            let mut out = Vec::new();
            event_start(&mut out, &reply.event, data.as_ref());
            self.finish_event(out).map_err(|_| ClientError::Internal)?;
        }
        self.acknowledge(ack, &data.unwrap_or_else(|| Value::Object(Default::default())))
    }

    /// Follows `channel` from now on, as `subscribe` does (a channel already followed is fine).
    async fn follow(&mut self, channel: ChannelName) -> Result<(), ClientError> {
        self.subscribe(SubscribeParams { channel, since: None, snapshot: false }, None).await
    }

    /// The reply's argument: its template filled from its source; `None`: no argument.
    async fn reply_data(&self, reply: &Reply, context: &Context<'_>) -> Result<Option<Value>, ClientError> {
        let source = match &reply.source {
            Some(source) => Some(self.read_source(source, context).await?),
            None => None,
        };
        Ok(match (&reply.data, source) {
            (Some(data), source) => Some(template::render(data, source.as_ref().unwrap_or(&Value::Object(Default::default())), context)),
            (None, source) => source,
        })
    }

    /// A board's top, or one player's place: `{board, season, player, score, rank}` (`score`
    /// and `rank` null when the player is not on the board).
    async fn read_source(&self, source: &Source, context: &Context<'_>) -> Result<Value, ClientError> {
        let board = source.leaderboard.as_str();
        let spec = self.state.fresh_board(board, None).await?;
        let leaderboards = &self.state.leaderboards;
        match (source.top, source.player.as_deref()) {
            (Some(n), _) => serde_json::to_value(leaderboards.top(board, None, n as usize).await?).map_err(|_| ClientError::Internal),
            (None, Some(who)) => {
                let player = match who {
                    "$user" => context.user.map(str::to_string),
                    _ => context.arg.and_then(Value::as_str).map(str::to_string),
                }
                .ok_or_else(|| ClientError::BadRequest("this event needs a player id".into()))?;
                courtside_leaderboard::board::check_player(&player).map_err(|e| ClientError::BadRequest(e.to_string()))?;
                let season = spec.season_at(i64::try_from(now_ms()).unwrap_or(i64::MAX));
                let ranked = leaderboards.rank(board, None, &player).await?;
                Ok(serde_json::json!({
                    "board": board,
                    "season": season,
                    "player": player,
                    "score": ranked.as_ref().map(|r| r.score),
                    "rank": ranked.as_ref().map(|r| r.rank),
                }))
            }
            (None, None) => Err(ClientError::Internal),
        }
    }
}

fn fill(template: &ChannelTemplate, user: Option<&str>, arg: Option<&str>) -> Result<ChannelName, ClientError> {
    template.fill(user, arg).map_err(|error| match error {
        FillError::Missing("{user}") => ClientError::Unauthorized("this event needs a signed-in user".into()),
        FillError::Missing(_) => ClientError::BadRequest("this event needs a string argument".into()),
        FillError::Invalid(name) => ClientError::BadRequest(format!("{name:?} is not a channel name")),
    })
}

/// `42["<event>",<data>,` (no data: `42["<event>",`): an event up to the resume position.
fn event_start(out: &mut Vec<u8>, event: &str, data: Option<&Value>) {
    event_head(out, event);
    if let Some(data) = data {
        // A `Value` always serialises.
        let _ = serde_json::to_writer(&mut *out, data);
        out.push(b',');
    }
}

/// What every socket of this node sends for `publication`, up to each one's resume position:
/// the map's events when a rule matches it (several are separated by [`EVENT_SEPARATOR`]),
/// else the default `publication` event.
pub(super) fn publication_events(map: &EventMap, publication: &Publication) -> Bytes {
    if map.maps_channel(&publication.channel)
        && let Ok(data) = serde_json::from_slice::<Value>(&publication.data)
    {
        if let Some(events) = map.events_for(&publication.channel, &data, now_ms()) {
            // Several events are separated; none (a matching rule with nothing to send) is empty.
            let mut out = Vec::with_capacity(publication.data.len() * events.len() + 64);
            for (index, mapped) in events.iter().enumerate() {
                if index > 0 {
                    out.push(EVENT_SEPARATOR);
                }
                event_start(&mut out, mapped.event, Some(&mapped.data));
            }
            return Bytes::from(out);
        }
    }
    publication_event_start(publication)
}
