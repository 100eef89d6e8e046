//! `rediss://`: a `redis-server` of the test's own with a TLS port and a certificate from a CA
//! made at run time. The broker (commands and its own receiving connection) and presence pass
//! their conformance suites over it, trusting that CA; a node trusting another CA is refused.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use common::unique_key_prefix;
use courtside_core::broker::Broker;
use courtside_core::conformance;
use courtside_core::hub::Hub;
use courtside_core::presence::PresenceStore;
use courtside_core::sequencer::Sequencer;
use courtside_redis::{RedisBroker, RedisEndpoint, RedisPresence};
use courtside_testkit::tls::TestCa;
use courtside_testkit::tls_services::TlsRedis;

fn temp_dir(label: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("courtside-redis-{label}-{}-{:x}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_and_presence_conform_over_rediss_trusting_a_private_ca() {
    let ca = TestCa::new("courtside redis test CA");
    let dir = temp_dir("tls");
    let files = ca.issue("redis-server", &[]).write(&dir, "redis");
    let ca_file = ca.write_cert(&dir.join("ca.pem"));
    let Some(redis) = TlsRedis::start_or_skip(&files, &ca_file, &dir) else { return };
    let endpoint = RedisEndpoint::new(redis.url()).with_ca_file(&ca_file).expect("CA file");

    let prefix = unique_key_prefix();
    let nodes = AtomicUsize::new(0);
    conformance::broker::broker(
        |sequencer| {
            let (endpoint, prefix) = (endpoint.clone(), prefix.clone());
            let node_id = format!("node-{}", nodes.fetch_add(1, Ordering::Relaxed));
            Box::pin(async move {
                RedisBroker::connect(&endpoint, &prefix, &node_id, sequencer).await.expect("broker connects over TLS") as Arc<dyn Broker>
            })
        },
        true,
    )
    .await;
    conformance::presence::presence(
        || {
            let (endpoint, prefix) = (endpoint.clone(), prefix.clone());
            Box::pin(async move {
                RedisPresence::connect(&endpoint, &prefix, Duration::from_secs(30)).await.expect("presence connects over TLS")
                    as Arc<dyn PresenceStore>
            })
        },
        true,
    )
    .await;

    // Another CA's trust gets no connection, for commands and pub/sub alike.
    let stranger = TestCa::new("another CA");
    let stranger_endpoint = RedisEndpoint::new(redis.url()).with_ca_pem(stranger.cert_pem().into_bytes()).expect("CA PEM");
    let sequencer = Sequencer::new(Arc::new(Hub::new()));
    let refused = RedisBroker::connect(&stranger_endpoint, &unique_key_prefix(), "stranger", sequencer).await;
    assert!(refused.is_err(), "a broker trusting another CA connects");
    let refused = RedisPresence::connect(&stranger_endpoint, &unique_key_prefix(), Duration::from_secs(30)).await;
    assert!(refused.is_err(), "presence trusting another CA connects");
    // And a plain redis:// client gets no answer from the TLS port.
    let plain = RedisPresence::connect(format!("redis://127.0.0.1:{}", redis.port), &unique_key_prefix(), Duration::from_secs(30)).await;
    assert!(plain.is_err(), "plain Redis protocol on the TLS port");
}

#[test]
fn a_ca_file_without_a_certificate_is_refused() {
    let dir = temp_dir("ca-file");
    let empty = dir.join("empty.pem");
    std::fs::write(&empty, "no certificate here").expect("write");
    let error = RedisEndpoint::new("rediss://127.0.0.1:1").with_ca_file(&empty).err().expect("refused").to_string();
    assert!(error.contains("empty.pem") && error.contains("no PEM certificate"), "{error}");
    let error = RedisEndpoint::new("rediss://127.0.0.1:1").with_ca_file(&dir.join("missing.pem")).err().expect("refused").to_string();
    assert!(error.contains("missing.pem"), "{error}");
}
