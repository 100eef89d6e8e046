//! Whether PostgreSQL is reachable, as last seen: the writer records the outcome of each batch,
//! and `ready()` probes with `SELECT 1` (short timeout) only when that knowledge is stale, so a
//! readiness endpoint polled often costs at most one round trip per [`FRESH_FOR`].

use std::time::{Duration, Instant};

use deadpool_postgres::{Object, Pool};
use parking_lot::Mutex;

/// How long an observation (a batch's outcome or a probe) answers `ready()` without a new probe.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// How long a probe (pool checkout, connecting if needed, and `SELECT 1`) may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The last observation of the database: when, and whether it answered.
pub(crate) struct Health {
    last_seen: Mutex<Option<(Instant, bool)>>,
    /// Held while probing, so concurrent `ready()` calls share one probe.
    probing: tokio::sync::Mutex<()>,
}

impl Health {
    pub(crate) fn new() -> Self {
        Self { last_seen: Mutex::new(None), probing: tokio::sync::Mutex::new(()) }
    }

    /// Records that the database just answered (`true`) or could not be reached (`false`).
    pub(crate) fn record(&self, reachable: bool) {
        *self.last_seen.lock() = Some((Instant::now(), reachable));
    }

    fn fresh_observation(&self) -> Option<bool> {
        self.last_seen.lock().and_then(|(at, reachable)| (at.elapsed() < FRESH_FOR).then_some(reachable))
    }

    /// Is the database reachable? Answers from a fresh observation, or probes through `pool`.
    pub(crate) async fn reachable(&self, pool: &Pool) -> bool {
        if let Some(reachable) = self.fresh_observation() {
            return reachable;
        }
        let _probing = self.probing.lock().await;
        if let Some(reachable) = self.fresh_observation() {
            return reachable;
        }
        let reachable = probe(pool).await;
        self.record(reachable);
        reachable
    }
}

/// One `SELECT 1` on a pooled connection; a connection that did not answer in time is discarded.
async fn probe(pool: &Pool) -> bool {
    let Ok(Ok(client)) = tokio::time::timeout(PROBE_TIMEOUT, pool.get()).await else { return false };
    match tokio::time::timeout(PROBE_TIMEOUT, client.simple_query("SELECT 1")).await {
        Ok(Ok(_)) => true,
        Ok(Err(error)) => {
            tracing::debug!(%error, "postgres readiness probe failed");
            drop(Object::take(client));
            false
        }
        Err(_) => {
            drop(Object::take(client));
            false
        }
    }
}
