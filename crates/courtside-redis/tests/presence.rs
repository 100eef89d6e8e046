//! Redis presence against a real Redis: the core conformance suite with two nodes on one
//! backend, a dead node's clients expiring within the TTL, and entries written again after
//! they vanished from Redis.

mod common;

use std::sync::Arc;
use std::time::Duration;

use courtside_core::channel::ChannelName;
use courtside_core::conformance;
use courtside_core::presence::{ClientInfo, PresenceStats, PresenceStore};
use courtside_core::stream::Epoch;
use courtside_redis::RedisPresence;

use common::{reachable_redis, unique_key_prefix};

fn fresh_channel() -> ChannelName {
    ChannelName::parse(&format!("match:presence-{}", Epoch::new_random())).expect("channel")
}

fn client(client: &str, user: &str) -> ClientInfo {
    ClientInfo::new(client, user)
}

async fn keys_exist(url: &str, keys: &[String]) -> usize {
    let client = redis::Client::open(url).expect("url");
    let mut connection = client.get_multiplexed_async_connection().await.expect("connect");
    redis::cmd("EXISTS").arg(keys).query_async(&mut connection).await.expect("EXISTS")
}

fn presence_keys(prefix: &str, channel: &ChannelName) -> Vec<String> {
    vec![format!("{prefix}:presence:{channel}"), format!("{prefix}:presence-clients:{channel}")]
}

#[tokio::test]
async fn redis_presence_conforms_with_nodes_on_one_backend() {
    let Some(url) = reachable_redis().await else { return };
    let prefix = unique_key_prefix();
    conformance::presence::presence(
        || {
            let (url, prefix) = (url.clone(), prefix.clone());
            Box::pin(async move {
                RedisPresence::connect(&url, &prefix, Duration::from_secs(30)).await.expect("connect")
                    as Arc<dyn PresenceStore>
            })
        },
        true,
    )
    .await;
}

#[tokio::test]
async fn a_dead_nodes_clients_expire_within_the_ttl_while_live_ones_stay() {
    let Some(url) = reachable_redis().await else { return };
    let prefix = unique_key_prefix();
    let ttl = Duration::from_secs(1);
    let channel = fresh_channel();
    let alive = RedisPresence::connect(&url, &prefix, ttl).await.expect("connect");
    let dying = RedisPresence::connect(&url, &prefix, ttl).await.expect("connect");
    alive.join(&channel, client("a-1", "alice")).await;
    dying.join(&channel, client("d-1", "dave")).await;
    tokio::time::sleep(ttl * 2).await;
    assert_eq!(
        alive.list(&channel).await,
        vec![client("a-1", "alice"), client("d-1", "dave")],
        "refreshed entries outlive the TTL"
    );

    drop(dying);
    let died = tokio::time::Instant::now();
    while alive.list(&channel).await.len() > 1 {
        assert!(died.elapsed() < ttl + Duration::from_millis(300), "the dead node's client outlived the TTL");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(alive.list(&channel).await, vec![client("a-1", "alice")]);

    tokio::time::sleep(ttl * 2).await;
    assert_eq!(alive.stats(&channel).await, PresenceStats { clients: 1, users: 1 }, "the live node keeps its client");

    drop(alive);
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert_eq!(keys_exist(&url, &presence_keys(&prefix, &channel)).await, 0, "keys expire with their last member");
}

#[tokio::test]
async fn entries_lost_by_redis_are_written_again_by_the_next_refresh() {
    let Some(url) = reachable_redis().await else { return };
    let prefix = unique_key_prefix();
    let ttl = Duration::from_millis(900);
    let channel = fresh_channel();
    let node = RedisPresence::connect(&url, &prefix, ttl).await.expect("connect");
    node.join(&channel, client("c-1", "carol")).await;
    node.join(&channel, client("c-2", "")).await;
    node.leave(&channel, "c-2").await;

    // As after a Redis restart without persistence.
    let client_handle = redis::Client::open(url.as_str()).expect("url");
    let mut connection = client_handle.get_multiplexed_async_connection().await.expect("connect");
    let _: () =
        redis::cmd("DEL").arg(presence_keys(&prefix, &channel)).query_async(&mut connection).await.expect("DEL");
    assert!(node.list(&channel).await.is_empty());

    tokio::time::sleep(ttl / 3 + Duration::from_millis(200)).await;
    assert_eq!(
        node.list(&channel).await,
        vec![client("c-1", "carol")],
        "joined clients return; the one that left does not"
    );
}

#[tokio::test]
async fn a_ttl_too_short_to_refresh_is_refused() {
    let result = RedisPresence::connect("redis://127.0.0.1:1", "unused", Duration::from_millis(10)).await;
    assert!(matches!(result, Err(courtside_redis::RedisError::TtlTooShort { .. })));
}
