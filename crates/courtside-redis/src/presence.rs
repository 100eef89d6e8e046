//! [`RedisPresence`]: presence shared by every node on one Redis, bounded by a TTL.
//!
//! Per channel, a ZSET `{prefix}:presence:{channel}` maps each client id to the time (Redis
//! server clock, ms) its entry expires, and a HASH `{prefix}:presence-clients:{channel}` maps
//! the client id to its `ClientInfo` as JSON. Every change runs as one Lua script, so the two
//! keys never disagree, and both keys expire with their last member.
//!
//! A node keeps the clients it joined in a local map, and a background task pushes their expiry
//! forward every `ttl / 3`. A node that dies stops doing so, and its clients are gone from
//! `list` and `stats` within the TTL (`list`/`stats` drop expired members before reading). A
//! client whose entry vanished while its node lives (a Redis restart without persistence, or a
//! pause longer than the TTL) is written again by the next refresh.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use redis::Script;
use redis::aio::ConnectionManager;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

use courtside_core::channel::ChannelName;
use courtside_core::presence::{ClientInfo, PresenceStats, PresenceStore};

use crate::{RedisEndpoint, RedisError, connection_manager};

/// Shortest accepted TTL (entries are refreshed every third of it).
pub const PRESENCE_TTL_MIN: Duration = Duration::from_millis(300);
/// Limit for connecting and for each command's answer.
const REDIS_TIMEOUT: Duration = Duration::from_secs(5);
/// Clients per script call when refreshing a large channel.
const CLIENTS_PER_SCRIPT_MAX: usize = 500;

/// Defines `now_ms()` (Redis server time) and `expire_with_last_member(zset, hash)`.
macro_rules! lua_prelude {
    () => {
        r#"
local function now_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end
local function expire_with_last_member(zset, hash)
  local last = redis.call('ZRANGE', zset, -1, -1, 'WITHSCORES')
  if last[2] then
    local at = math.floor(tonumber(last[2]))
    redis.call('PEXPIREAT', zset, at)
    redis.call('PEXPIREAT', hash, at)
  end
end
"#
    };
}

/// KEYS: zset, hash. ARGV: ttl ms, then client id and JSON pairs. Adds or renews the clients.
const JOIN_SCRIPT: &str = concat!(
    lua_prelude!(),
    r#"
local expiry = now_ms() + tonumber(ARGV[1])
for i = 2, #ARGV, 2 do
  redis.call('ZADD', KEYS[1], expiry, ARGV[i])
  redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1])
end
expire_with_last_member(KEYS[1], KEYS[2])
return 0
"#
);

/// KEYS: zset, hash. ARGV: ttl ms, then client ids. Renews the clients still present; returns
/// the ids that are not.
const REFRESH_SCRIPT: &str = concat!(
    lua_prelude!(),
    r#"
local expiry = now_ms() + tonumber(ARGV[1])
local missing = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], 'XX', expiry, ARGV[i])
  else
    missing[#missing + 1] = ARGV[i]
  end
end
expire_with_last_member(KEYS[1], KEYS[2])
return missing
"#
);

/// KEYS: zset, hash. ARGV: client id.
const LEAVE_SCRIPT: &str = r#"
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 0
"#;

/// KEYS: zset, hash. Drops expired members, then returns client id, JSON (or nil) pairs.
const LIST_SCRIPT: &str = concat!(
    lua_prelude!(),
    r#"
local now = now_ms()
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now)
if #expired > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
  for i = 1, #expired, 1000 do
    redis.call('HDEL', KEYS[2], unpack(expired, i, math.min(i + 999, #expired)))
  end
end
local alive = redis.call('ZRANGE', KEYS[1], 0, -1)
local reply = {}
for i = 1, #alive, 1000 do
  local infos = redis.call('HMGET', KEYS[2], unpack(alive, i, math.min(i + 999, #alive)))
  for j = 1, #infos do
    reply[#reply + 1] = alive[i + j - 1]
    reply[#reply + 1] = infos[j]
  end
end
return reply
"#
);

struct PresenceScripts {
    join: Script,
    refresh: Script,
    leave: Script,
    list: Script,
}

/// The Redis [`PresenceStore`] of one node; see the module docs.
pub struct RedisPresence {
    connection: ConnectionManager,
    key_prefix: String,
    ttl: Duration,
    scripts: PresenceScripts,
    /// Clients joined through this node, per channel: client id → JSON `ClientInfo`.
    joined: Mutex<HashMap<ChannelName, BTreeMap<String, String>>>,
    redis_errors: AtomicU64,
}

impl RedisPresence {
    /// Connects and starts the refresher, which ends when the store is dropped (as it would
    /// when the node dies: its clients then expire within `ttl`). Call within a Tokio runtime.
    pub async fn connect(endpoint: impl Into<RedisEndpoint>, key_prefix: &str, ttl: Duration) -> Result<Arc<Self>, RedisError> {
        if ttl < PRESENCE_TTL_MIN {
            return Err(RedisError::TtlTooShort { ttl, min: PRESENCE_TTL_MIN });
        }
        let connection = connection_manager(&endpoint.into(), REDIS_TIMEOUT, REDIS_TIMEOUT, 2).await?;
        let presence = Arc::new(Self {
            connection,
            key_prefix: key_prefix.to_string(),
            ttl,
            scripts: PresenceScripts {
                join: Script::new(JOIN_SCRIPT),
                refresh: Script::new(REFRESH_SCRIPT),
                leave: Script::new(LEAVE_SCRIPT),
                list: Script::new(LIST_SCRIPT),
            },
            joined: Mutex::new(HashMap::new()),
            redis_errors: AtomicU64::new(0),
        });
        tokio::spawn(refresh_while_alive(Arc::downgrade(&presence), ttl / 3));
        Ok(presence)
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Redis commands that failed (each is logged); presence reads return nothing meanwhile.
    pub fn redis_errors(&self) -> u64 {
        self.redis_errors.load(Ordering::Relaxed)
    }

    /// Pushes the expiry of every client joined through this node forward by the TTL, and
    /// writes again those whose entry vanished. The background task calls this every `ttl / 3`.
    pub async fn refresh(&self) {
        let joined: Vec<(ChannelName, Vec<String>)> = self
            .joined
            .lock()
            .iter()
            .map(|(channel, clients)| (channel.clone(), clients.keys().cloned().collect()))
            .collect();
        for (channel, clients) in joined {
            for clients in clients.chunks(CLIENTS_PER_SCRIPT_MAX) {
                let mut invocation = self.scripts.refresh.prepare_invoke();
                invocation.key(self.members_key(&channel)).key(self.clients_key(&channel)).arg(self.ttl_ms());
                for client in clients {
                    invocation.arg(client);
                }
                let mut connection = self.connection.clone();
                let missing: Vec<String> = match invocation.invoke_async(&mut connection).await {
                    Ok(missing) => missing,
                    Err(error) => {
                        self.failed("refresh", &channel, &error);
                        continue;
                    }
                };
                if missing.is_empty() {
                    continue;
                }
                // Only those still joined here: one that left meanwhile must not come back.
                let rejoin: Vec<(String, String)> = {
                    let joined = self.joined.lock();
                    let Some(present) = joined.get(&channel) else { continue };
                    missing
                        .into_iter()
                        .filter_map(|client| present.get(&client).map(|json| (client, json.clone())))
                        .collect()
                };
                self.write(&channel, &rejoin).await;
            }
        }
    }

    fn members_key(&self, channel: &ChannelName) -> String {
        format!("{}:presence:{}", self.key_prefix, channel)
    }

    fn clients_key(&self, channel: &ChannelName) -> String {
        format!("{}:presence-clients:{}", self.key_prefix, channel)
    }

    fn ttl_ms(&self) -> u64 {
        self.ttl.as_millis() as u64
    }

    fn failed(&self, operation: &str, channel: &ChannelName, error: &redis::RedisError) {
        self.redis_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%channel, %error, "Redis presence {operation} failed");
    }

    /// Adds or renews `clients` (client id, JSON pairs).
    async fn write(&self, channel: &ChannelName, clients: &[(String, String)]) {
        if clients.is_empty() {
            return;
        }
        let mut invocation = self.scripts.join.prepare_invoke();
        invocation.key(self.members_key(channel)).key(self.clients_key(channel)).arg(self.ttl_ms());
        for (client, json) in clients {
            invocation.arg(client).arg(json);
        }
        let mut connection = self.connection.clone();
        if let Err(error) = invocation.invoke_async::<()>(&mut connection).await {
            self.failed("join", channel, &error);
        }
    }
}

#[async_trait]
impl PresenceStore for RedisPresence {
    async fn join(&self, channel: &ChannelName, client: ClientInfo) {
        let json = match serde_json::to_string(&client) {
            Ok(json) => json,
            Err(error) => {
                tracing::warn!(%channel, %error, "client info cannot be written as JSON");
                return;
            }
        };
        self.joined.lock().entry(channel.clone()).or_default().insert(client.client.clone(), json.clone());
        self.write(channel, &[(client.client, json)]).await;
    }

    async fn leave(&self, channel: &ChannelName, client: &str) {
        {
            let mut joined = self.joined.lock();
            if let Some(present) = joined.get_mut(channel) {
                present.remove(client);
                if present.is_empty() {
                    joined.remove(channel);
                }
            }
        }
        let mut connection = self.connection.clone();
        let result = self
            .scripts
            .leave
            .key(self.members_key(channel))
            .key(self.clients_key(channel))
            .arg(client)
            .invoke_async::<()>(&mut connection)
            .await;
        if let Err(error) = result {
            self.failed("leave", channel, &error);
        }
    }

    async fn list(&self, channel: &ChannelName) -> Vec<ClientInfo> {
        let mut connection = self.connection.clone();
        let reply: Vec<Option<String>> = match self
            .scripts
            .list
            .key(self.members_key(channel))
            .key(self.clients_key(channel))
            .invoke_async(&mut connection)
            .await
        {
            Ok(reply) => reply,
            Err(error) => {
                self.failed("list", channel, &error);
                return Vec::new();
            }
        };
        let mut present = Vec::with_capacity(reply.len() / 2);
        for pair in reply.chunks_exact(2) {
            let (Some(client), Some(json)) = (&pair[0], &pair[1]) else { continue };
            match serde_json::from_str::<ClientInfo>(json) {
                Ok(stored) if stored.client == *client => present.push(stored),
                Ok(_) | Err(_) => tracing::debug!(%channel, client, "unreadable presence entry skipped"),
            }
        }
        present.sort_by(|a, b| a.client.cmp(&b.client));
        present
    }

    async fn stats(&self, channel: &ChannelName) -> PresenceStats {
        let present = self.list(channel).await;
        let users: HashSet<&str> = present.iter().map(|c| c.user.as_str()).filter(|u| !u.is_empty()).collect();
        PresenceStats { clients: present.len(), users: users.len() }
    }
}

/// Refreshes `presence` every `period` until it is dropped.
async fn refresh_while_alive(presence: Weak<RedisPresence>, period: Duration) {
    let mut ticks = interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(presence) = presence.upgrade() else { return };
        presence.refresh().await;
    }
}
