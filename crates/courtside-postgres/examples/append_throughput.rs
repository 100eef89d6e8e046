//! Acknowledged-append throughput: 50 concurrent publishers, each awaiting its own appends of a
//! ~200-byte JSON payload, against the PostgreSQL database named by `COURTSIDE_POSTGRES_URL`.
//!
//! `COURTSIDE_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!  cargo run --release -p courtside-postgres --example append_throughput [appends_per_publisher] [channels] [nodes]`
//! prints one JSON line: `{"publishes_per_sec":…,"publishers":50,"total":…,…}`.
//!
//! `nodes` (default 1) stores share the database and the publishers, as several Courtside nodes
//! would. The run writes to channels of its own (`bench:<run>:<n>`) and deletes their rows after.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use courtside_core::ChannelName;
use courtside_core::store::{AppendRequest, CommitSink, Retention, StreamStore};
use courtside_core::stream::{Publication, now_ms};
use courtside_postgres::PostgresStore;
use tokio_postgres::NoTls;

const PUBLISHERS: usize = 50;

/// Counts what reaches the sinks, so the run checks every acknowledged append was delivered.
#[derive(Default)]
struct CountingSink {
    delivered: AtomicU64,
    batches: AtomicU64,
}

impl CommitSink for CountingSink {
    fn committed(&self, publications: Vec<Publication>) {
        self.delivered.fetch_add(publications.len() as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
    }
}

/// A JSON object of about 200 bytes.
fn payload(publisher: usize, n: usize) -> Bytes {
    let mut text = format!(
        "{{\"type\":\"score\",\"publisher\":{publisher},\"n\":{n},\"team\":\"home\",\"player\":\"p-{:04}\",\"points\":3,\"note\":\"",
        n % 10_000
    );
    while text.len() < 196 {
        text.push('x');
    }
    text.push_str("\"}");
    Bytes::from(text)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::var("COURTSIDE_POSTGRES_URL")
        .map_err(|_| "set COURTSIDE_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/postgres")?;
    let mut args = std::env::args().skip(1);
    let appends_per_publisher: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2_000);
    let channel_count: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10).max(1);
    let node_count: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1).max(1);

    let sink = Arc::new(CountingSink::default());
    let mut stores = Vec::with_capacity(node_count);
    for _ in 0..node_count {
        stores.push(Arc::new(PostgresStore::connect(&url, sink.clone()).await?));
    }
    let run = now_ms();
    let channels: Vec<ChannelName> =
        (0..channel_count).map(|i| ChannelName::parse(&format!("bench:{run}:{i}"))).collect::<Result<_, _>>()?;
    let retention = Retention { history_size: 10_000, history_ttl_secs: 3_600, keyed: false };

    let started = Instant::now();
    let mut publishers = Vec::with_capacity(PUBLISHERS);
    for publisher in 0..PUBLISHERS {
        let store = stores[publisher % node_count].clone();
        let channel = channels[publisher % channel_count].clone();
        publishers.push(tokio::spawn(async move {
            for n in 0..appends_per_publisher {
                let request = AppendRequest {
                    channel: channel.clone(),
                    data: payload(publisher, n),
                    key: None,
                    remove_key: false,
                    idempotency_key: None,
                    retention,
                };
                store.append(request).await?;
            }
            Ok::<(), courtside_core::store::StoreError>(())
        }));
    }
    for publisher in publishers {
        publisher.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    for store in &stores {
        store.close().await;
    }
    remove_bench_rows(&url, &format!("bench:{run}:%")).await?;

    let total = (PUBLISHERS * appends_per_publisher) as u64;
    let delivered = sink.delivered.load(Ordering::Relaxed);
    let batches = sink.batches.load(Ordering::Relaxed).max(1);
    if delivered != total {
        return Err(format!("sinks saw {delivered} publications, expected {total}").into());
    }
    println!(
        "{{\"publishes_per_sec\":{:.0},\"publishers\":{PUBLISHERS},\"total\":{total},\"channels\":{channel_count},\"nodes\":{node_count},\"seconds\":{elapsed:.3},\"mean_batch\":{:.1},\"payload_bytes\":{}}}",
        total as f64 / elapsed,
        total as f64 / batches as f64,
        payload(0, 0).len(),
    );
    Ok(())
}

/// Deletes the rows this run wrote, so repeated runs leave the database as it was.
async fn remove_bench_rows(url: &str, channel_pattern: &str) -> Result<(), Box<dyn Error>> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    let driver = tokio::spawn(connection);
    for table in ["courtside_publications", "courtside_keyed_state", "courtside_idempotency"] {
        client.execute(&format!("DELETE FROM {table} WHERE channel LIKE $1"), &[&channel_pattern]).await?;
    }
    client.execute("DELETE FROM courtside_channels WHERE name LIKE $1", &[&channel_pattern]).await?;
    drop(client);
    driver.await??;
    Ok(())
}
