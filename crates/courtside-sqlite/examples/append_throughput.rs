//! Acknowledged-append throughput: 50 concurrent publishers, each awaiting its own appends of a
//! ~200-byte JSON payload, against a fresh store in a temporary directory (same disk as `/tmp`).
//!
//! `cargo run --release -p courtside-sqlite --example append_throughput [appends_per_publisher] [channels]`
//! prints one JSON line: `{"publishes_per_sec":…,"publishers":50,"total":…,…}`.

use std::error::Error;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use bytes::Bytes;
use courtside_core::ChannelName;
use courtside_core::store::{AppendRequest, CommitSink, Retention, StreamStore};
use courtside_core::stream::Publication;
use courtside_sqlite::SqliteStore;

const PUBLISHERS: usize = 50;

/// Counts what reaches the sink, so the run checks every acknowledged append was delivered.
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
    let mut args = std::env::args().skip(1);
    let appends_per_publisher: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2_000);
    let channel_count: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10).max(1);

    let directory = tempfile::tempdir()?;
    let sink = Arc::new(CountingSink::default());
    let store = Arc::new(SqliteStore::open(&directory.path().join("bench.db"), sink.clone())?);
    let channels: Vec<ChannelName> =
        (0..channel_count).map(|i| ChannelName::parse(&format!("match:{i}"))).collect::<Result<_, _>>()?;
    let retention = Retention { history_size: 10_000, history_ttl_secs: 3_600, keyed: false };

    let started = Instant::now();
    let mut publishers = Vec::with_capacity(PUBLISHERS);
    for publisher in 0..PUBLISHERS {
        let store = store.clone();
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
    store.close().await;

    let total = (PUBLISHERS * appends_per_publisher) as u64;
    let delivered = sink.delivered.load(Ordering::Relaxed);
    let batches = sink.batches.load(Ordering::Relaxed).max(1);
    if delivered != total {
        return Err(format!("sink saw {delivered} publications, expected {total}").into());
    }
    println!(
        "{{\"publishes_per_sec\":{:.0},\"publishers\":{PUBLISHERS},\"total\":{total},\"channels\":{channel_count},\"seconds\":{elapsed:.3},\"mean_batch\":{:.1},\"payload_bytes\":{}}}",
        total as f64 / elapsed,
        total as f64 / batches as f64,
        payload(0, 0).len(),
    );
    Ok(())
}
