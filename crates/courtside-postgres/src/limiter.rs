//! [`PostgresLimiter`]: rate limits shared by every node on one PostgreSQL database, for
//! clusters without Redis.
//!
//! One row of `courtside_rate_limits` per key: its GCRA theoretical arrival time `tat_us` (Unix
//! microseconds, see `courtside_core::limiter`) and whether the last request was `allowed`. Each
//! request is one `INSERT … ON CONFLICT DO UPDATE … RETURNING` statement computing the rule in
//! SQL on the locked row, so nodes never race; the time is the node's, passed in (the rule is
//! then the same in every backend). A row whose time has passed means the same as no row: a
//! background task deletes such rows every minute, without waiting for rows a request holds.

use std::sync::{Arc, Weak};
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Object, Pool};
use tokio::time::{Instant, MissedTickBehavior, interval_at};

use courtside_core::limiter::{Decision, LimiterBackend, LimiterError, Quota, unix_now_us};

use crate::{PostgresError, build_pool, describe_error, from_sql_int, schema, to_sql_int};

/// Pooled connections of one limiter (each request holds one for a single statement).
const POOLED_CONNECTIONS: usize = 8;
/// Limit for each wait of one decision (a connection, the statement): the request waits.
const DECISION_LIMIT: Duration = Duration::from_millis(1_000);
/// How often rows whose bucket is full again are deleted.
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);
/// Rows deleted per sweep, at most (the next sweep continues).
const SWEPT_PER_RUN_MAX: i64 = 10_000;

/// `$1` key, `$2` now, `$3` interval T, `$4` window (µs): the rule of
/// `courtside_core::limiter::gcra` on the key's row. Returns whether it was allowed and the
/// time kept.
const TAKE: &str = "\
    INSERT INTO courtside_rate_limits AS r (key, tat_us, allowed) VALUES ($1, $2::int8 + $3::int8, true) \
    ON CONFLICT (key) DO UPDATE SET \
        allowed = GREATEST(r.tat_us, $2::int8) + $3::int8 - $2::int8 <= $4::int8, \
        tat_us = CASE WHEN GREATEST(r.tat_us, $2::int8) + $3::int8 - $2::int8 <= $4::int8 \
            THEN GREATEST(r.tat_us, $2::int8) + $3::int8 ELSE GREATEST(r.tat_us, $2::int8) END \
    RETURNING allowed, tat_us";

/// Deletes rows whose time is before `$1` (µs), at most `$2`, skipping those in use.
const SWEEP: &str = "\
    DELETE FROM courtside_rate_limits WHERE ctid IN ( \
        SELECT ctid FROM courtside_rate_limits WHERE tat_us < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)";

/// The PostgreSQL [`LimiterBackend`] of one node; see the module docs.
pub struct PostgresLimiter {
    pool: Pool,
}

impl PostgresLimiter {
    /// Connects to the database at `url` (as for the store), brings its schema up to date and
    /// starts the sweeper, which ends when the limiter is dropped. Call within a Tokio runtime.
    pub async fn connect(url: &str) -> Result<Arc<Self>, PostgresError> {
        let config = schema::store_config(url)?;
        schema::migrate_url(url).await?;
        let limiter = Arc::new(Self { pool: build_pool(&config, POOLED_CONNECTIONS)? });
        tokio::spawn(sweep_while_alive(Arc::downgrade(&limiter)));
        Ok(limiter)
    }

    /// Deletes the rows whose bucket is full again as of `now_us`; how many were deleted.
    pub async fn sweep(&self, now_us: u64) -> Result<u64, LimiterError> {
        let client = self.pool.get().await.map_err(|error| unavailable(&error))?;
        let statement = client.prepare_cached(SWEEP).await.map_err(|error| unavailable(&error))?;
        client.execute(&statement, &[&to_sql_int(now_us), &SWEPT_PER_RUN_MAX]).await.map_err(|error| unavailable(&error))
    }

    /// The decision within [`DECISION_LIMIT`] for each of its two waits (a pooled connection,
    /// the statement); a connection that broke or did not answer is discarded.
    async fn decide(&self, key: &str, quota: Quota, now_us: u64) -> Result<Decision, LimiterError> {
        let client = tokio::time::timeout(DECISION_LIMIT, self.pool.get())
            .await
            .map_err(|_| LimiterError(format!("no PostgreSQL connection within {DECISION_LIMIT:?}")))?
            .map_err(|error| unavailable(&error))?;
        let answer = async {
            let statement = client.prepare_cached(TAKE).await?;
            let parameters = [now_us, quota.interval_us(), quota.window_us()].map(to_sql_int);
            let row = client.query_one(&statement, &[&key, &parameters[0], &parameters[1], &parameters[2]]).await?;
            Ok::<_, tokio_postgres::Error>((row.try_get::<_, bool>(0)?, row.try_get::<_, i64>(1)?))
        };
        match tokio::time::timeout(DECISION_LIMIT, answer).await {
            Ok(Ok((allowed, tat))) => Ok(Decision::from_tat(allowed, from_sql_int(tat), now_us, quota)),
            Ok(Err(error)) => {
                if error.as_db_error().is_none() {
                    drop(Object::take(client));
                }
                Err(unavailable(&error))
            }
            Err(_) => {
                drop(Object::take(client));
                Err(LimiterError(format!("PostgreSQL did not answer within {DECISION_LIMIT:?}")))
            }
        }
    }
}

fn unavailable(error: &(dyn std::error::Error + 'static)) -> LimiterError {
    LimiterError(format!("PostgreSQL: {}", describe_error(error)))
}

#[async_trait]
impl LimiterBackend for PostgresLimiter {
    async fn take(&self, key: &str, quota: Quota, now_us: u64) -> Result<Decision, LimiterError> {
        self.decide(key, quota, now_us).await
    }
}

/// Sweeps `limiter` every [`SWEEP_INTERVAL`] until it is dropped.
async fn sweep_while_alive(limiter: Weak<PostgresLimiter>) {
    let mut ticks = interval_at(Instant::now() + SWEEP_INTERVAL, SWEEP_INTERVAL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(limiter) = limiter.upgrade() else { return };
        if let Err(error) = limiter.sweep(unix_now_us()).await {
            tracing::warn!(%error, "sweeping full rate-limit buckets failed");
        }
    }
}
