//! The acknowledged-append load behind the stores' `*_append_throughput` examples: concurrent
//! publishers, each awaiting its own appends of a ~200-byte JSON payload, spread over channels
//! and over one or more stores (nodes), with a sink that checks every append was delivered.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;

use crate::channel::ChannelName;
use crate::store::{AppendRequest, CommitSink, Retention, StoreError, StreamStore};
use crate::stream::Publication;

/// Counts what reaches the sink: publications and the batches (commits) they came in.
#[derive(Default)]
pub struct CountingSink {
    pub delivered: AtomicU64,
    pub batches: AtomicU64,
}

impl CommitSink for CountingSink {
    fn committed(&self, publications: Vec<Publication>) {
        self.delivered.fetch_add(publications.len() as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
    }
}

/// A JSON object of about 200 bytes.
pub fn payload(publisher: usize, n: usize) -> Bytes {
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

/// What [`append_load`] measured.
#[derive(Debug, Clone, PartialEq)]
pub struct AppendLoadReport {
    pub publishers: usize,
    pub total: u64,
    pub seconds: f64,
    pub publishes_per_sec: f64,
    /// Appends per commit, on average.
    pub mean_batch: f64,
    pub payload_bytes: usize,
}

impl AppendLoadReport {
    /// One JSON line, with `extra` fields (already formatted `"key":value` pairs) appended.
    pub fn to_json(&self, extra: &str) -> String {
        format!(
            "{{\"publishes_per_sec\":{:.0},\"publishers\":{},\"total\":{},\"seconds\":{:.3},\"mean_batch\":{:.1},\"payload_bytes\":{}{}{extra}}}",
            self.publishes_per_sec,
            self.publishers,
            self.total,
            self.seconds,
            self.mean_batch,
            self.payload_bytes,
            if extra.is_empty() { "" } else { "," },
        )
    }
}

/// Runs `publishers` concurrent publishers of `appends_per_publisher` appends each; publisher
/// `i` writes to `channels[i % channels.len()]` through `stores[i % stores.len()]`. Every store
/// must hand its commits to `sink`. Fails if an append fails or the sink missed any.
pub async fn append_load(
    stores: &[Arc<dyn StreamStore>],
    sink: &CountingSink,
    channels: &[ChannelName],
    publishers: usize,
    appends_per_publisher: usize,
) -> Result<AppendLoadReport, String> {
    if stores.is_empty() || channels.is_empty() {
        return Err("at least one store and one channel".into());
    }
    let retention = Retention { history_size: 10_000, history_ttl_secs: 3_600, keyed: false };
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(publishers);
    for publisher in 0..publishers {
        let store = stores[publisher % stores.len()].clone();
        let channel = channels[publisher % channels.len()].clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..appends_per_publisher {
                let request = AppendRequest {
                    channel: channel.clone(),
                    data: payload(publisher, n),
                    key: None,
                    remove_key: false,
                    event: None,
                    idempotency_key: None,
                    retention,
                };
                store.append(request).await?;
            }
            Ok::<(), StoreError>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let total = (publishers * appends_per_publisher) as u64;
    let delivered = sink.delivered.load(Ordering::Relaxed);
    if delivered != total {
        return Err(format!("the sink saw {delivered} publications, expected {total}"));
    }
    let batches = sink.batches.load(Ordering::Relaxed).max(1);
    Ok(AppendLoadReport {
        publishers,
        total,
        seconds,
        publishes_per_sec: total as f64 / seconds,
        mean_batch: total as f64 / batches as f64,
        payload_bytes: payload(0, 0).len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::memory::MemoryStore;

    #[tokio::test]
    async fn the_load_counts_every_append() {
        let sink = Arc::new(CountingSink::default());
        let store: Arc<dyn StreamStore> = Arc::new(MemoryStore::new(sink.clone()));
        let channels = vec![ChannelName::parse("match:load").unwrap()];
        let report = append_load(&[store], &sink, &channels, 4, 25).await.expect("load");
        assert_eq!(report.total, 100);
        assert!(payload(1, 2).len() >= 190);
        assert!(report.to_json("\"channels\":1").ends_with(",\"channels\":1}"));
    }
}
