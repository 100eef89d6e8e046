//! Expiry of what clients create and stop using: idle channels of namespaces with
//! `idle_expiry_secs` (a reset of the channel, docs/protocol.md §6) and the sign-in records of
//! users whose every refresh-token family has expired.
//!
//! One task runs each job on its own period, a quarter of its idle time (at least 250 ms, at most
//! 60 s). Before a namespace's channels are expired, the channels this node's clients are
//! subscribed to are marked active in the store: every node does the same, so a channel with a
//! subscriber on any node never goes idle and no subscriber waits on an epoch that is gone.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use courtside_core::stream::now_ms;
use tokio::time::Instant;

use crate::state::ServerState;

/// The shortest period of a job (a namespace idle for 1 s is checked four times a second).
const PERIOD_MIN: Duration = Duration::from_millis(250);
/// The longest period of a job.
const PERIOD_MAX: Duration = Duration::from_secs(60);

/// How often a job whose records expire after `idle_secs` runs.
pub fn period(idle_secs: u64) -> Duration {
    (Duration::from_secs(idle_secs) / 4).clamp(PERIOD_MIN, PERIOD_MAX)
}

/// What one job expires.
enum Job {
    /// The idle channels of a namespace.
    Channels { namespace: String, idle_secs: u64 },
    /// The sign-in records whose every family has expired.
    SignIns { refresh_secs: u64 },
}

/// Runs the expiry jobs until the task is aborted.
pub async fn run(state: Arc<ServerState>) {
    let mut jobs: Vec<(Job, Duration, Instant)> = state
        .node
        .namespaces()
        .iter()
        .filter(|(_, options)| options.has_history() && options.idle_expiry_secs > 0)
        .map(|(namespace, options)| {
            (Job::Channels { namespace: namespace.clone(), idle_secs: options.idle_expiry_secs }, period(options.idle_expiry_secs))
        })
        .chain([(Job::SignIns { refresh_secs: state.config.auth.refresh_token_ttl_secs }, period(state.config.auth.refresh_token_ttl_secs))])
        .map(|(job, every)| (job, every, Instant::now() + every))
        .collect();
    loop {
        let Some(due) = jobs.iter().map(|(_, _, due)| *due).min() else { return };
        tokio::time::sleep_until(due).await;
        let now = Instant::now();
        for (job, every, due) in jobs.iter_mut().filter(|(_, _, due)| *due <= now) {
            *due = now + *every;
            run_job(&state, job).await;
        }
    }
}

async fn run_job(state: &ServerState, job: &Job) {
    match job {
        Job::Channels { namespace, idle_secs } => match expire_channels(state, namespace, *idle_secs).await {
            Ok(0) => {}
            Ok(expired) => tracing::debug!(namespace, expired, "idle channels removed"),
            Err(error) => tracing::warn!(namespace, %error, "idle-channel expiry failed"),
        },
        Job::SignIns { refresh_secs } => match state.accounts.expire_sign_ins(*refresh_secs, now_ms()).await {
            Ok(0) => {}
            Ok(expired) => {
                state.metrics.sign_ins_expired_total.fetch_add(expired as u64, Ordering::Relaxed);
                tracing::debug!(expired, "expired sign-in records removed");
            }
            Err(error) => tracing::warn!(%error, "sign-in record expiry failed"),
        },
    }
}

/// Marks this node's subscribed channels of `namespace` active, then removes its idle ones.
async fn expire_channels(state: &ServerState, namespace: &str, idle_secs: u64) -> Result<u64, courtside_core::store::StoreError> {
    let node = &state.node;
    let watched: Vec<_> =
        node.hub.channels().into_iter().map(|(channel, _)| channel).filter(|channel| channel.namespace() == namespace).collect();
    let now = now_ms();
    node.store.touch_channels(&watched, now).await?;
    let expired = node.store.expire_idle(namespace, idle_secs, now).await?.len() as u64;
    state.metrics.channels_expired_total.fetch_add(expired, Ordering::Relaxed);
    Ok(expired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_runs_four_times_per_idle_time_within_bounds() {
        assert_eq!(period(1), PERIOD_MIN);
        assert_eq!(period(8), Duration::from_secs(2));
        assert_eq!(period(3600), PERIOD_MAX);
        assert_eq!(period(u64::MAX / 2), PERIOD_MAX);
    }
}
