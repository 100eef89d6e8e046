//! Stream semantics over the real WebSocket protocol: offsets, resume, keyed snapshots,
//! idempotency, ordering under concurrent publishers, durability across restarts.

mod common;

use common::{error_code, offsets, result, TestServer};
use courtside_core::Role;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};

#[tokio::test]
async fn offsets_count_up_and_subscribers_receive_in_order() {
    let server = TestServer::start().await;
    let mut watcher = server.connected("", &[]).await;
    let subscribed = watcher.request("subscribe", json!({ "channel": "match:1" })).await;
    assert_eq!(result(&subscribed)["offset"], 0);
    let mut keeper = server.connected("kim", &[Role::Scorekeeper]).await;
    for n in 1..=5u64 {
        let reply = keeper.request("publish", json!({ "channel": "match:1", "data": { "n": n } })).await;
        assert_eq!(result(&reply)["offset"], n);
        assert_eq!(result(&reply)["epoch"], result(&subscribed)["epoch"]);
    }
    for n in 1..=5u64 {
        let publication = watcher.next_publication().await;
        assert_eq!((publication["offset"].as_u64(), publication["data"]["n"].as_u64()), (Some(n), Some(n)));
        assert_eq!(publication["channel"], "match:1");
    }
}

#[tokio::test]
async fn resume_returns_exactly_the_missed_publications_then_live_ones() {
    let server = TestServer::start().await;
    let mut first = server.connected("", &[]).await;
    let epoch = result(&first.request("subscribe", json!({ "channel": "match:7" })).await)["epoch"].clone();
    for n in 1..=3 {
        server.publish("match:7", json!(n)).await;
    }
    for _ in 1..=3 {
        first.next_publication().await;
    }
    drop(first);
    for n in 4..=6 {
        server.publish("match:7", json!(n)).await;
    }
    let mut again = server.connected("", &[]).await;
    let reply = again.request("subscribe", json!({ "channel": "match:7", "since": { "epoch": epoch, "offset": 3 } })).await;
    let resumed = result(&reply);
    assert_eq!(resumed["recovered"], true);
    assert_eq!(offsets(&resumed["publications"]), vec![4, 5, 6]);
    assert_eq!(resumed["offset"], 6);
    server.publish("match:7", json!(7)).await;
    assert_eq!(again.next_publication().await["offset"], 7, "live continues after the replay");
}

#[tokio::test]
async fn a_resume_point_older_than_the_history_gets_the_snapshot_never_a_partial_replay() {
    let server = TestServer::start_with(|c| {
        c.namespaces.get_mut("match").expect("match").history_size = 3;
    })
    .await;
    let mut keeper = server.connected("kim", &[Role::Scorekeeper]).await;
    let mut epoch = Value::Null;
    for (n, key) in [(1, "home"), (2, "away"), (3, "home"), (4, "away"), (5, "home"), (6, "clock")] {
        let reply = keeper.request("publish", json!({ "channel": "match:9", "data": n, "key": key })).await;
        epoch = result(&reply)["epoch"].clone();
    }
    let mut late = server.connected("", &[]).await;
    let reply = late.request("subscribe", json!({ "channel": "match:9", "since": { "epoch": epoch, "offset": 1 } })).await;
    let outcome = result(&reply);
    assert_eq!(outcome["recovered"], false);
    assert_eq!(outcome["publications"], json!([]), "no partial replay");
    let snapshot: Vec<(String, u64)> = outcome["snapshot"]
        .as_array()
        .expect("snapshot")
        .iter()
        .map(|p| (p["key"].as_str().unwrap_or_default().to_string(), p["offset"].as_u64().unwrap_or_default()))
        .collect();
    assert_eq!(snapshot, vec![("away".into(), 4), ("clock".into(), 6), ("home".into(), 5)]);
    assert_eq!(outcome["offset"], 6);

    let wrong_epoch = late.request("subscribe", json!({ "channel": "match:10", "since": { "epoch": "gone", "offset": 0 } })).await;
    assert_eq!(result(&wrong_epoch)["recovered"], false);
}

#[tokio::test]
async fn snapshot_then_live_is_one_consistent_view_while_others_publish() {
    let server = TestServer::start().await;
    let channel = "leaderboard:season";
    let publisher = {
        let key = server.api_key();
        let url = server.http("/api/publish");
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0..200u64 {
                let body = json!({ "channel": channel, "data": { "points": n }, "key": format!("player{}", n % 7) });
                let response = http.post(&url).header("authorization", format!("apikey {key}")).json(&body).send().await;
                assert!(response.expect("publish").status().is_success());
            }
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(30)).await;
    let mut viewer = server.connected("", &[]).await;
    let reply = viewer.request("subscribe", json!({ "channel": channel, "snapshot": true })).await;
    let outcome = result(&reply).clone();
    let mut state: std::collections::BTreeMap<String, u64> = outcome["snapshot"]
        .as_array()
        .expect("snapshot")
        .iter()
        .map(|p| (p["key"].as_str().unwrap_or_default().to_string(), p["data"]["points"].as_u64().unwrap_or_default()))
        .collect();
    let mut next = outcome["offset"].as_u64().expect("offset") + 1;
    publisher.await.expect("publisher");
    while next <= 200 {
        let publication = viewer.next_publication().await;
        assert_eq!(publication["offset"], next, "live continues right after the snapshot's offset");
        state.insert(publication["key"].as_str().unwrap_or_default().to_string(), publication["data"]["points"].as_u64().unwrap_or_default());
        next += 1;
    }
    let expected: std::collections::BTreeMap<String, u64> = (193..200u64).map(|n| (format!("player{}", n % 7), n)).collect();
    assert_eq!(state, expected, "snapshot + live = the final state");
}

#[tokio::test]
async fn an_idempotency_key_returns_the_original_offset_and_delivers_once() {
    let server = TestServer::start().await;
    let mut watcher = server.connected("", &[]).await;
    result(&watcher.request("subscribe", json!({ "channel": "match:3" })).await);
    let mut keeper = server.connected("kim", &[Role::Scorekeeper]).await;
    let params = json!({ "channel": "match:3", "data": { "point": "home" }, "idempotency_key": "op-17" });
    let first = keeper.request("publish", params.clone()).await;
    let retry = keeper.request("publish", params).await;
    assert_eq!(result(&first)["offset"], 1);
    assert_eq!(result(&retry)["offset"], 1);
    assert_eq!(result(&retry)["duplicate"], true);
    server.publish("match:3", json!("next")).await;
    assert_eq!(watcher.next_publication().await["offset"], 1);
    assert_eq!(watcher.next_publication().await["offset"], 2, "the retry was not delivered again");
}

/// Several publishers race on one channel while a subscriber keeps dropping its connection
/// at seeded-random moments and resuming from its last offset: it must end up with every
/// acknowledged publication exactly once, in offset order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnecting_subscriber_sees_everything_once_in_order_under_concurrent_publishing() {
    let seed: u64 = std::env::var("COURTSIDE_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261122);
    eprintln!("seed {seed} (set COURTSIDE_TEST_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let server = TestServer::start().await;
    let channel = "match:race";
    // Learn the channel's epoch first, so the first subscription starts at offset 0.
    let mut probe = server.connected("", &[]).await;
    let epoch = result(&probe.request("history", json!({ "channel": channel })).await)["epoch"].clone();
    drop(probe);
    const PUBLISHERS: u64 = 4;
    const EACH: u64 = 150;
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let token = server.token(&format!("keeper{p}"), &[Role::Scorekeeper]);
        let url = format!("ws://{}/ws", server.server.addr);
        publishers.push(tokio::spawn(async move {
            let mut client = common::Client::open(&url).await;
            result(&client.request("connect", json!({ "token": token })).await);
            let mut acknowledged = Vec::new();
            for n in 0..EACH {
                let reply = client.request("publish", json!({ "channel": channel, "data": [p, n] })).await;
                acknowledged.push(result(&reply)["offset"].as_u64().expect("offset"));
                if n % 40 == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                }
            }
            acknowledged
        }));
    }
    let total = PUBLISHERS * EACH;
    let mut seen: Vec<u64> = Vec::new();
    let mut position: (Value, u64) = (epoch, 0);
    let mut reconnects = 0;
    while (seen.len() as u64) < total {
        let mut client = server.connected("", &[]).await;
        let params = json!({ "channel": channel, "since": { "epoch": position.0, "offset": position.1 } });
        let reply = client.request("subscribe", params).await;
        let outcome = result(&reply).clone();
        assert_eq!(outcome["recovered"], true, "history covers the whole run");
        let epoch = outcome["epoch"].clone();
        seen.extend(offsets(&outcome["publications"]));
        position = (epoch.clone(), seen.last().copied().unwrap_or(0));
        let stay_for = rng.random_range(5..60);
        for _ in 0..stay_for {
            if seen.len() as u64 >= total {
                break;
            }
            let publication = client.next_publication().await;
            seen.push(publication["offset"].as_u64().expect("offset"));
            position = (epoch.clone(), *seen.last().expect("one"));
        }
        reconnects += 1;
    }
    let mut acknowledged: Vec<u64> = Vec::new();
    for publisher in publishers {
        acknowledged.extend(publisher.await.expect("publisher"));
    }
    acknowledged.sort_unstable();
    assert_eq!(acknowledged, (1..=total).collect::<Vec<_>>(), "acknowledged offsets are gap-free and distinct");
    assert_eq!(seen, (1..=total).collect::<Vec<_>>(), "seen once each, in order, over {reconnects} connections");
}

#[tokio::test]
async fn history_survives_a_restart_and_resume_works_across_it() {
    let server = TestServer::start().await;
    let mut client = server.connected("", &[]).await;
    let epoch = result(&client.request("subscribe", json!({ "channel": "tournament:t1:scores" })).await)["epoch"].clone();
    for n in 1..=3 {
        server.publish("tournament:t1:scores", json!({ "n": n })).await;
    }
    client.next_publication().await;
    drop(client);
    let server = server.restart().await;
    server.publish("tournament:t1:scores", json!({ "n": 4 })).await;
    let mut client = server.connected("", &[]).await;
    let reply = client
        .request("subscribe", json!({ "channel": "tournament:t1:scores", "since": { "epoch": epoch, "offset": 1 } }))
        .await;
    let outcome = result(&reply);
    assert_eq!(outcome["recovered"], true, "the epoch survives a restart: {outcome}");
    assert_eq!(offsets(&outcome["publications"]), vec![2, 3, 4]);
}

#[tokio::test]
async fn history_command_pages_forward_and_returns_the_latest() {
    let server = TestServer::start().await;
    for n in 1..=10 {
        server.publish("division:d1", json!(n)).await;
    }
    let mut client = server.connected("", &[]).await;
    let latest = client.request("history", json!({ "channel": "division:d1", "limit": 3 })).await;
    assert_eq!(offsets(&result(&latest)["publications"]), vec![8, 9, 10]);
    let page = client.request("history", json!({ "channel": "division:d1", "after": 2, "limit": 4 })).await;
    assert_eq!(offsets(&result(&page)["publications"]), vec![3, 4, 5, 6]);
    assert_eq!((result(&page)["offset"].as_u64(), result(&page)["earliest"].as_u64()), (Some(10), Some(1)));
    let too_many = client.request("history", json!({ "channel": "division:d1", "limit": 100000 })).await;
    assert_eq!(error_code(&too_many), 107);
}
