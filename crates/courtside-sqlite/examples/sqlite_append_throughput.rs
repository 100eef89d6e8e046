//! Acknowledged-append throughput: 50 concurrent publishers, each awaiting its own appends of a
//! ~200-byte JSON payload, against a fresh store in a temporary directory (same disk as `/tmp`).
//!
//! `cargo run --release -p courtside-sqlite --example sqlite_append_throughput [appends_per_publisher] [channels]`
//! prints one JSON line: `{"publishes_per_sec":…,"publishers":50,"total":…,…}`.

use std::error::Error;
use std::sync::Arc;

use courtside_core::ChannelName;
use courtside_core::conformance::load::{CountingSink, append_load};
use courtside_core::store::StreamStore;
use courtside_sqlite::SqliteStore;

const PUBLISHERS: usize = 50;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let appends_per_publisher: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2_000);
    let channel_count: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10).max(1);

    let directory = tempfile::tempdir()?;
    let sink = Arc::new(CountingSink::default());
    let store: Arc<dyn StreamStore> = Arc::new(SqliteStore::open(&directory.path().join("bench.db"), sink.clone())?);
    let channels: Vec<ChannelName> =
        (0..channel_count).map(|i| ChannelName::parse(&format!("match:{i}"))).collect::<Result<_, _>>()?;
    let report = append_load(&[store.clone()], &sink, &channels, PUBLISHERS, appends_per_publisher).await?;
    store.close().await;
    println!("{}", report.to_json(&format!("\"channels\":{channel_count}")));
    Ok(())
}
