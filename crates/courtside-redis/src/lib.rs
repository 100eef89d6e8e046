//! Courtside's multi-node seams on Redis: [`RedisBroker`] carries committed publications from the
//! node whose store committed them to every other node that follows the channel, and
//! [`RedisPresence`] keeps who is in a channel across nodes, bounded by a TTL; [`RedisLimiter`]
//! keeps the rate limits every node counts against.
//!
//! # What this crate owns
//! - Keys and channels under one key prefix: `{prefix}:ch:{channel}` (pub/sub channel of a
//!   Courtside channel: its publications and joins/leaves), `{prefix}:presence:{channel}` (ZSET client id → expiry, ms) and
//!   `{prefix}:presence-clients:{channel}` (HASH client id → JSON `ClientInfo`),
//!   `{prefix}:ratelimit:{key}` (a rate limit's GCRA time, expiring when full). Nothing else in
//!   Redis is touched, so deployments (and test runs) with different prefixes never meet.
//! - The wire format of a publication on Redis ([`codec`]): a small binary header (version,
//!   flags, offset, commit time, origin node id, epoch, key) followed by the raw JSON payload.
//!
//! # Invariants
//! - Redis is never the source of truth for a stream. Pub/sub is at-most-once: whatever it
//!   drops (a failed publish, a disconnect, a restart) is repaired by the receiving node's
//!   [`Sequencer`](courtside_core::sequencer::Sequencer) from the store, after every reconnect
//!   and on a periodic position check. So publishing never blocks or fails the store's writer.
//! - A node's own publications reach its sequencer without a Redis round trip; the copy that
//!   comes back from Redis is recognised by its origin node id and skipped. Node ids must
//!   therefore be unique among the nodes sharing a prefix.
//! - `follow` resolves only after Redis confirmed the subscription; a failed `follow` is not
//!   counted (the node does not unfollow after a failed follow).
//! - A presence entry lives only while the node that joined it keeps refreshing it: a dead
//!   node's clients disappear within the TTL. Expiry uses the Redis server's clock, so nodes'
//!   clocks may disagree.
//!
//! # Redis requirements
//! Standalone Redis ≥ 5 (scripts call `TIME`), or a single primary. On Redis ≥ 7 the broker
//! uses sharded pub/sub (`SPUBLISH`/`SSUBSCRIBE`), before that plain `PUBLISH`/`SUBSCRIBE`
//! ([`PubSubChoice`] forces either). The receiving connection speaks RESP2 itself
//! ([`pubsub`], [`resp`]): the `redis` crate's async pub/sub offers `SSUBSCRIBE` only through its
//! cluster client. `rediss://` URLs connect over TLS ([`tls`]). Redis Cluster itself is not supported yet: publishing would have to follow
//! slot ownership, and the presence scripts touch two keys that carry no common hash tag.

pub mod broker;
pub mod codec;
pub mod limiter;
pub mod presence;
pub mod pubsub;
pub mod resp;
pub mod tls;

pub use broker::{PubSubChoice, RedisBroker, RedisBrokerConfig};
pub use pubsub::PubSubMode;
pub use presence::RedisPresence;
pub use limiter::RedisLimiter;
pub use tls::RedisEndpoint;

use std::time::Duration;

/// Why a Redis-backed seam could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("invalid Redis URL {url}: {source}")]
    InvalidUrl { url: String, source: redis::RedisError },
    #[error("cannot reach Redis at {url}: {source}")]
    Unreachable { url: String, source: redis::RedisError },
    #[error("connecting to Redis at {url} timed out after {timeout:?}")]
    ConnectTimeout { url: String, timeout: Duration },
    #[error("node id must be 1 to {max} bytes long, got {len} bytes")]
    InvalidNodeId { len: usize, max: usize },
    #[error("Redis pub/sub at {url}: {reason}")]
    PubSub { url: String, reason: String },
    #[error("Redis CA file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("presence TTL must be at least {min:?}, got {ttl:?}")]
    TtlTooShort { ttl: Duration, min: Duration },
}

/// The URL without its credentials, for errors and logs.
pub(crate) fn redacted_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => format!("{}://***@{}", &url[..scheme_end], &url[at + 1..]),
        _ => url.to_string(),
    }
}


/// A reconnecting connection to `url`: connecting may take `connect_timeout` (twice that in
/// all), each answer `response_timeout`, with `retries` retries of a failed command.
pub(crate) async fn connection_manager(
    endpoint: &RedisEndpoint,
    connect_timeout: Duration,
    response_timeout: Duration,
    retries: usize,
) -> Result<redis::aio::ConnectionManager, RedisError> {
    let client = endpoint.client()?;
    let url = redacted_url(endpoint.url());
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(connect_timeout))
        .set_response_timeout(Some(response_timeout))
        .set_number_of_retries(retries);
    let limit = connect_timeout * 2;
    match tokio::time::timeout(limit, redis::aio::ConnectionManager::new_with_config(client, config)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(source)) => Err(RedisError::Unreachable { url, source }),
        Err(_) => Err(RedisError::ConnectTimeout { url, timeout: limit }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_redacted() {
        assert_eq!(redacted_url("redis://user:secret@host:6379/0"), "redis://***@host:6379/0");
        assert_eq!(redacted_url("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
    }
}
