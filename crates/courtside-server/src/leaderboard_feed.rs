//! Leaderboard pushes: what a node writes so that clients following channels learn of board
//! moves without asking.
//!
//! - **Top N, conflated:** every `leaderboard_push_interval_ms` the [`Ticker`] brings each
//!   board up to date (when nodes share the store) and rewrites its view in
//!   `leaderboard:{board}` if it changed ([`LeaderboardService::publish_top`]). However many
//!   submits a board takes, its followers get at most one view per interval.
//! - **Rank pushes:** a player is *listening* while at least one connection on this node follows
//!   their personal channel `user:{player}` ([`ListenerWatch`], told by the node of every
//!   subscription, whatever the transport). Each applied move ([`UpdateSink`]) that concerns a
//!   listening player — their own move, or someone passing them — becomes a publication on
//!   `user:{player}` ([`PersonalPushes`]), written by a queue so the write path never waits. The
//!   idempotency key names the move, so two nodes pushing one move store it once.
//!
//! Pushes are notifications: the board is the truth. A push that does not fit the queue
//! ([`PUSH_QUEUE_LEN`]) or fails to write is counted (`courtside_leaderboard_pushes_dropped_total`,
//! `…_failed_total`), not retried; a client that needs certainty reads its rank.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use courtside_core::channel::ChannelName;
use courtside_core::node::SubscriptionWatch;
use courtside_core::store::{AppendGroup, AppendRequest, Retention, StreamStore};
use courtside_leaderboard::{LeaderboardService, ScoreUpdate, UpdateSink};
use futures_util::StreamExt;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::metrics::PushCounters;
use crate::state::ServerState;

/// The personal namespace rank pushes go to (`user:{player}`).
pub const PERSONAL_NAMESPACE: &str = "user";
/// Moves waiting to be turned into pushes; more are dropped (and counted).
pub const PUSH_QUEUE_LEN: usize = 65_536;
/// Push writes in flight at once.
const WRITES_IN_FLIGHT: usize = 32;

/// What a listening player receives on `user:{player}` (`type` says why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RankPush<'a> {
    /// `SCORE_UPDATE` (their own move), `NEW_LEADER` (their own move took first place) or
    /// `RANK_CHANGE` (someone passed them, or they passed someone who left).
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub board: &'a str,
    pub season: &'a str,
    pub player: &'a str,
    pub score: i64,
    pub rank: u64,
    pub previous_score: Option<i64>,
    pub previous_rank: Option<u64>,
    /// How much the score moved: the rating change of a match result, else `score` minus
    /// `previousScore` (the whole score for a first score; 0 for `RANK_CHANGE`).
    pub score_change: i64,
    /// Who moved (the player themselves for `SCORE_UPDATE` and `NEW_LEADER`).
    pub mover: &'a str,
    /// When the push was made (milliseconds since the Unix epoch).
    pub time: u64,
}

/// The pushes one applied move makes (each to `user:{push.player}`).
pub fn rank_pushes(update: &ScoreUpdate, time: u64) -> Vec<RankPush<'_>> {
    let mut pushes = Vec::with_capacity(update.changes.len() + 1);
    if update.listening {
        let kind = if update.new_leader.as_deref() == Some(update.player.as_str()) { "NEW_LEADER" } else { "SCORE_UPDATE" };
        pushes.push(RankPush {
            kind,
            board: &update.board,
            season: &update.season,
            player: &update.player,
            score: update.score,
            rank: update.rank,
            previous_score: update.previous_score,
            previous_rank: update.previous_rank,
            score_change: update.rating_change.unwrap_or_else(|| update.score.saturating_sub(update.previous_score.unwrap_or(0))),
            mover: &update.player,
            time,
        });
    }
    for change in &update.changes {
        pushes.push(RankPush {
            kind: "RANK_CHANGE",
            board: &update.board,
            season: &update.season,
            player: &change.player,
            score: change.score,
            rank: change.new_rank,
            previous_score: Some(change.score),
            previous_rank: Some(change.old_rank),
            score_change: 0,
            mover: &update.player,
            time,
        });
    }
    pushes
}

/// The [`UpdateSink`] of the server's leaderboard service: queues the moves that concern a
/// listening player.
pub struct PersonalPushes {
    queue: mpsc::Sender<ScoreUpdate>,
    counters: Arc<PushCounters>,
}

impl UpdateSink for PersonalPushes {
    fn updated(&self, update: &ScoreUpdate) {
        if !update.listening && update.changes.is_empty() {
            return;
        }
        if self.queue.try_send(update.clone()).is_err() {
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Whether rank pushes can be written: the configuration has a personal `user` namespace with
/// history. Without it, nobody is registered as listening and no rank change is computed.
pub fn pushes_enabled(config: &Config) -> bool {
    config.namespaces.get(PERSONAL_NAMESPACE).is_some_and(|options| options.personal && options.has_history())
}

impl PersonalPushes {
    /// The sink, and the task that writes its pushes through `store` (ends when the sink is
    /// dropped). `None` unless [`pushes_enabled`].
    pub fn start(config: &Config, store: Arc<dyn StreamStore>, counters: Arc<PushCounters>) -> Option<Arc<Self>> {
        let options = config.namespaces.get(PERSONAL_NAMESPACE).filter(|_| pushes_enabled(config))?;
        let retention = options.retention();
        let (queue, moves) = mpsc::channel(PUSH_QUEUE_LEN);
        tokio::spawn(write_pushes(moves, store, retention, counters.clone()));
        Some(Arc::new(Self { queue, counters }))
    }
}

async fn write_pushes(mut moves: mpsc::Receiver<ScoreUpdate>, store: Arc<dyn StreamStore>, retention: Retention, counters: Arc<PushCounters>) {
    let requests = futures_util::stream::poll_fn(move |cx| moves.poll_recv(cx)).flat_map(|update| {
        let time = courtside_core::stream::now_ms();
        let requests: Vec<AppendRequest> = rank_pushes(&update, time).into_iter().filter_map(|push| push_request(&update, &push, retention)).collect();
        futures_util::stream::iter(requests)
    });
    requests
        .for_each_concurrent(WRITES_IN_FLIGHT, |request| {
            let (store, counters) = (store.clone(), counters.clone());
            async move {
                let counter = match store.append_group(AppendGroup::single(request)).await {
                    Ok(_) => &counters.written,
                    Err(error) => {
                        tracing::debug!(%error, "a rank push was not written");
                        &counters.failed
                    }
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        })
        .await;
}

fn push_request(update: &ScoreUpdate, push: &RankPush<'_>, retention: Retention) -> Option<AppendRequest> {
    let player = push.player;
    let channel = ChannelName::parse(&format!("{PERSONAL_NAMESPACE}:{player}")).ok()?;
    let data = Bytes::from(serde_json::to_vec(push).ok()?);
    Some(AppendRequest {
        channel,
        data,
        key: None,
        remove_key: false,
        event: None,
        idempotency_key: Some(format!("lb:{}:{}:{}:{}:{player}", update.board, update.season, update.epoch, update.offset)),
        retention,
    })
}

/// Registers a player for rank pushes while a connection on this node follows `user:{player}`.
pub struct ListenerWatch {
    pub leaderboards: LeaderboardService,
}

fn listening_player(channel: &ChannelName) -> Option<&str> {
    let mut segments = channel.as_str().split(':');
    match (segments.next(), segments.next(), segments.next()) {
        (Some(PERSONAL_NAMESPACE), Some(player), None) => Some(player),
        _ => None,
    }
}

impl SubscriptionWatch for ListenerWatch {
    fn subscribed(&self, channel: &ChannelName) {
        if let Some(player) = listening_player(channel) {
            // A name that is no valid player id simply listens to nothing.
            let _ = self.leaderboards.listen(player);
        }
    }

    fn unsubscribed(&self, channel: &ChannelName) {
        if let Some(player) = listening_player(channel) {
            self.leaderboards.unlisten(player);
        }
    }
}

/// Publishes every board's top-N view once per interval until the server shuts down.
pub struct Ticker;

impl Ticker {
    pub fn spawn(state: Arc<ServerState>) {
        let interval = Duration::from_millis(state.config.leaderboard_push_interval_ms.max(1));
        let shared_store = state.shares_store();
        let (shutdown, tasks) = (state.shutdown.clone(), state.tasks.clone());
        tasks.spawn(async move {
            let mut ticks = tokio::time::interval(interval);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = ticks.tick() => {}
                }
                for board in state.leaderboards.boards() {
                    if shared_store && let Err(error) = state.leaderboards.catch_up(&board.id, None).await {
                        tracing::warn!(board = %board.id, %error, "leaderboard catch-up failed");
                        continue;
                    }
                    if let Err(error) = state.leaderboards.publish_top(&board.id).await {
                        tracing::warn!(board = %board.id, %error, "leaderboard view not published");
                    }
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use courtside_leaderboard::RankChange;

    #[test]
    fn a_move_pushes_to_its_mover_and_the_players_it_passed() {
        let update = ScoreUpdate {
            board: "global".into(),
            season: "all".into(),
            player: "ana".into(),
            score: 90,
            rank: 1,
            previous_score: Some(10),
            previous_rank: Some(3),
            changes: vec![RankChange { player: "bo".into(), old_rank: 1, new_rank: 2, score: 50 }],
            new_leader: Some("ana".into()),
            offset: 7,
            epoch: courtside_core::stream::Epoch::from_text("e1"),
            listening: true,
            rating_change: None,
        };
        let pushes = rank_pushes(&update, 5);
        let summary: Vec<(&str, &str, u64, Option<u64>)> = pushes.iter().map(|push| (push.player, push.kind, push.rank, push.previous_rank)).collect();
        assert_eq!(summary, [("ana", "NEW_LEADER", 1, Some(3)), ("bo", "RANK_CHANGE", 2, Some(1))]);
        let request = push_request(&update, &pushes[1], Retention { history_size: 10, history_ttl_secs: 0, keyed: false }).expect("request");
        assert_eq!((request.channel.as_str(), request.idempotency_key.as_deref()), ("user:bo", Some("lb:global:all:e1:7:bo")));
        let quiet = ScoreUpdate { listening: false, changes: Vec::new(), ..update };
        assert!(rank_pushes(&quiet, 5).is_empty(), "nobody listening: no push");
    }

    #[test]
    fn only_a_players_own_channel_makes_them_listen() {
        let name = |text: &str| ChannelName::parse(text).expect("name");
        assert_eq!(listening_player(&name("user:ana")), Some("ana"));
        assert_eq!(listening_player(&name("user:ana:notifications")), None);
        assert_eq!(listening_player(&name("leaderboard:ana")), None);
    }
}
