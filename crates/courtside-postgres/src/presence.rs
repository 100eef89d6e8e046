//! [`PostgresPresence`]: presence shared by every node on one PostgreSQL database, bounded by a
//! TTL, for clusters without Redis.
//!
//! One row of `courtside_presence` per client in a channel: `(channel, client, user, info,
//! expires_at)`, the expiry on the database clock (so the nodes' clocks may disagree). `join`
//! upserts with `expires_at = now() + ttl`, `leave` deletes, and `list`/`stats` skip expired rows
//! and delete those of the channel (without waiting for rows another session holds).
//!
//! A node keeps the clients it joined in a local map, and a background task pushes their expiry
//! forward every `ttl / 3` (and deletes expired rows of any channel). A node that dies stops
//! doing so, and its clients are gone from `list` and `stats` within the TTL. A client whose row
//! vanished while its node lives (a crash of the database, which empties the unlogged table, or
//! a pause longer than the TTL) is written again by the next refresh.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{ClientWrapper, Object, Pool};
use parking_lot::Mutex;
use tokio::time::{Instant, MissedTickBehavior, interval_at};

use courtside_core::channel::ChannelName;
use courtside_core::presence::{ClientInfo, PresenceStats, PresenceStore};

use crate::{PostgresError, build_pool, describe_error, schema};

/// Shortest accepted TTL (entries are refreshed every third of it).
pub const PRESENCE_TTL_MIN: Duration = Duration::from_millis(300);
/// Pooled connections of one presence store.
const POOLED_CONNECTIONS: usize = 4;
/// Limit for one statement, as seen from the client (the server's own limit is a little less).
const STATEMENT_LIMIT: Duration = Duration::from_secs(5);
/// Clients per statement when many are written or refreshed at once.
const CLIENTS_PER_STATEMENT_MAX: usize = 1_000;
/// Expired rows deleted per refresh, at most (the next refresh continues).
const EXPIRED_DELETED_PER_REFRESH_MAX: i64 = 10_000;

/// Adds or renews clients: `$1` channels, `$2` client ids, `$3` users, `$4` TTL in ms, `$5`
/// presence info (JSON, or null).
const UPSERT: &str = "\
    INSERT INTO courtside_presence (channel, client, \"user\", expires_at, info) \
    SELECT j.channel, j.client, j.user_name, now() + $4::float8 * interval '1 millisecond', j.info \
    FROM unnest($1::text[], $2::text[], $3::text[], $5::text[]) AS j(channel, client, user_name, info) \
    ON CONFLICT (channel, client) DO UPDATE SET \"user\" = EXCLUDED.\"user\", expires_at = EXCLUDED.expires_at, info = EXCLUDED.info";

/// Renews the clients still present (`$1` channels, `$2` client ids, `$3` TTL in ms); returns
/// those renewed.
const REFRESH: &str = "\
    UPDATE courtside_presence p SET expires_at = now() + $3::float8 * interval '1 millisecond' \
    FROM unnest($1::text[], $2::text[]) AS mine(channel, client) \
    WHERE p.channel = mine.channel AND p.client = mine.client \
    RETURNING p.channel, p.client";

const LEAVE: &str = "DELETE FROM courtside_presence WHERE channel = $1 AND client = $2";

/// Deletes the channel's expired rows that no other session holds; yields nothing.
macro_rules! delete_expired_of_channel {
    () => {
        "WITH expired AS ( \
            DELETE FROM courtside_presence WHERE channel = $1 AND client IN ( \
                SELECT client FROM courtside_presence WHERE channel = $1 AND expires_at <= now() \
                FOR UPDATE SKIP LOCKED)) "
    };
}

const LIST: &str = concat!(
    delete_expired_of_channel!(),
    "SELECT client, \"user\", info FROM courtside_presence WHERE channel = $1 AND expires_at > now() ORDER BY client"
);

const STATS: &str = concat!(
    delete_expired_of_channel!(),
    "SELECT count(*), count(DISTINCT \"user\") FILTER (WHERE \"user\" <> '') \
     FROM courtside_presence WHERE channel = $1 AND expires_at > now()"
);

/// Deletes expired rows of any channel (dead nodes' clients in channels nobody lists).
const DELETE_EXPIRED: &str = "\
    DELETE FROM courtside_presence WHERE ctid IN ( \
        SELECT ctid FROM courtside_presence WHERE expires_at <= now() LIMIT $1 FOR UPDATE SKIP LOCKED)";

/// The PostgreSQL [`PresenceStore`] of one node; see the module docs.
pub struct PostgresPresence {
    pool: Pool,
    ttl: Duration,
    /// Clients joined through this node, per channel: client id → the client.
    joined: Mutex<HashMap<ChannelName, BTreeMap<String, ClientInfo>>>,
    database_errors: AtomicU64,
}

impl PostgresPresence {
    /// Connects to the database at `url` (as for the store), brings its schema up to date and
    /// starts the refresher, which ends when the store is dropped (as it would when the node
    /// dies: its clients then expire within `ttl`). Call within a Tokio runtime.
    pub async fn connect(url: &str, ttl: Duration) -> Result<Arc<Self>, PostgresError> {
        if ttl < PRESENCE_TTL_MIN {
            return Err(PostgresError::TtlTooShort { ttl, min: PRESENCE_TTL_MIN });
        }
        let config = schema::store_config(url)?;
        schema::migrate_url(url).await?;
        let presence = Arc::new(Self {
            pool: build_pool(&config, POOLED_CONNECTIONS)?,
            ttl,
            joined: Mutex::new(HashMap::new()),
            database_errors: AtomicU64::new(0),
        });
        tokio::spawn(refresh_while_alive(Arc::downgrade(&presence), ttl / 3));
        Ok(presence)
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Database calls that failed (each is logged); presence reads return nothing meanwhile.
    pub fn database_errors(&self) -> u64 {
        self.database_errors.load(Ordering::Relaxed)
    }

    /// Pushes the expiry of every client joined through this node forward by the TTL, writes
    /// again those whose row vanished, and deletes expired rows. The background task calls this
    /// every `ttl / 3`.
    pub async fn refresh(&self) {
        let joined: Vec<(ChannelName, String)> = self
            .joined
            .lock()
            .iter()
            .flat_map(|(channel, clients)| clients.keys().map(|client| (channel.clone(), client.clone())))
            .collect();
        let ttl_ms = self.ttl_ms();
        for chunk in joined.chunks(CLIENTS_PER_STATEMENT_MAX) {
            let channels: Vec<&str> = chunk.iter().map(|(channel, _)| channel.as_str()).collect();
            let clients: Vec<&str> = chunk.iter().map(|(_, client)| client.as_str()).collect();
            let renewed = self
                .on_connection("refresh", async |client| {
                    let statement = client.prepare_cached(REFRESH).await?;
                    let rows = client.query(&statement, &[&channels, &clients, &ttl_ms]).await?;
                    rows.iter()
                        .map(|row| Ok((row.try_get::<_, String>(0)?, row.try_get::<_, String>(1)?)))
                        .collect::<Result<HashSet<(String, String)>, tokio_postgres::Error>>()
                })
                .await;
            let Some(renewed) = renewed else { continue };
            // Only those still joined here: one that left meanwhile must not come back.
            let rejoin: Vec<(ChannelName, ClientInfo)> = {
                let joined = self.joined.lock();
                chunk
                    .iter()
                    .filter(|(channel, client)| !renewed.contains(&(channel.as_str().to_string(), client.clone())))
                    .filter_map(|(channel, client)| {
                        Some((channel.clone(), joined.get(channel)?.get(client)?.clone()))
                    })
                    .collect()
            };
            self.write(&rejoin).await;
        }
        let limit = EXPIRED_DELETED_PER_REFRESH_MAX;
        self.on_connection("expiry", async |client| {
            let statement = client.prepare_cached(DELETE_EXPIRED).await?;
            client.execute(&statement, &[&limit]).await
        })
        .await;
    }

    fn ttl_ms(&self) -> f64 {
        self.ttl.as_secs_f64() * 1000.0
    }

    /// Runs `work` on a pooled connection under [`STATEMENT_LIMIT`]; `None` (logged and
    /// counted) if it failed. A connection that broke or did not answer is discarded.
    async fn on_connection<T>(
        &self,
        operation: &str,
        work: impl AsyncFnOnce(&ClientWrapper) -> Result<T, tokio_postgres::Error>,
    ) -> Option<T> {
        let client = match self.pool.get().await {
            Ok(client) => client,
            Err(error) => return self.failed(operation, &format!("no connection: {}", describe_error(&error))),
        };
        match tokio::time::timeout(STATEMENT_LIMIT, work(&client)).await {
            Ok(Ok(found)) => Some(found),
            Ok(Err(error)) => {
                if error.as_db_error().is_none() {
                    drop(Object::take(client));
                }
                self.failed(operation, &describe_error(&error))
            }
            Err(_) => {
                drop(Object::take(client));
                self.failed(operation, &format!("no answer within {STATEMENT_LIMIT:?}"))
            }
        }
    }

    fn failed<T>(&self, operation: &str, error: &str) -> Option<T> {
        self.database_errors.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(%error, "PostgreSQL presence {operation} failed");
        None
    }

    /// Adds or renews `clients` (channel, client).
    async fn write(&self, clients: &[(ChannelName, ClientInfo)]) {
        let ttl_ms = self.ttl_ms();
        for chunk in clients.chunks(CLIENTS_PER_STATEMENT_MAX) {
            let channels: Vec<&str> = chunk.iter().map(|(channel, _)| channel.as_str()).collect();
            let ids: Vec<&str> = chunk.iter().map(|(_, client)| client.client.as_str()).collect();
            let users: Vec<&str> = chunk.iter().map(|(_, client)| client.user.as_str()).collect();
            let infos: Vec<Option<String>> = chunk
                .iter()
                .map(|(_, client)| (!client.info.is_empty()).then(|| serde_json::to_string(&client.info).unwrap_or_default()))
                .collect();
            self.on_connection("join", async |client| {
                let statement = client.prepare_cached(UPSERT).await?;
                client.execute(&statement, &[&channels, &ids, &users, &ttl_ms, &infos]).await
            })
            .await;
        }
    }
}

#[async_trait]
impl PresenceStore for PostgresPresence {
    async fn join(&self, channel: &ChannelName, client: ClientInfo) {
        self.joined.lock().entry(channel.clone()).or_default().insert(client.client.clone(), client.clone());
        self.write(&[(channel.clone(), client)]).await;
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
        self.on_connection("leave", async |connection| {
            let statement = connection.prepare_cached(LEAVE).await?;
            connection.execute(&statement, &[&channel.as_str(), &client]).await
        })
        .await;
    }

    async fn list(&self, channel: &ChannelName) -> Vec<ClientInfo> {
        let rows = self
            .on_connection("list", async |client| {
                let statement = client.prepare_cached(LIST).await?;
                client.query(&statement, &[&channel.as_str()]).await
            })
            .await
            .unwrap_or_default();
        let mut present: Vec<ClientInfo> = rows
            .iter()
            .filter_map(|row| {
                let info = row.try_get::<_, Option<String>>(2).ok()?.and_then(|json| serde_json::from_str(&json).ok()).unwrap_or_default();
                Some(ClientInfo { client: row.try_get(0).ok()?, user: row.try_get(1).ok()?, info })
            })
            .collect();
        present.sort_by(|a, b| a.client.cmp(&b.client));
        present
    }

    async fn stats(&self, channel: &ChannelName) -> PresenceStats {
        let counts = self
            .on_connection("stats", async |client| {
                let statement = client.prepare_cached(STATS).await?;
                let row = client.query_one(&statement, &[&channel.as_str()]).await?;
                Ok((row.try_get::<_, i64>(0)?, row.try_get::<_, i64>(1)?))
            })
            .await;
        let Some((clients, users)) = counts else { return PresenceStats::default() };
        PresenceStats { clients: usize::try_from(clients).unwrap_or(0), users: usize::try_from(users).unwrap_or(0) }
    }
}

/// Refreshes `presence` every `period` until it is dropped.
async fn refresh_while_alive(presence: Weak<PostgresPresence>, period: Duration) {
    let mut ticks = interval_at(Instant::now() + period, period);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(presence) = presence.upgrade() else { return };
        presence.refresh().await;
    }
}
