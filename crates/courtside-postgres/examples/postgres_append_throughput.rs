//! Acknowledged-append throughput: 50 concurrent publishers, each awaiting its own appends of a
//! ~200-byte JSON payload, against the PostgreSQL database named by `COURTSIDE_POSTGRES_URL`.
//!
//! `COURTSIDE_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/postgres \
//!  cargo run --release -p courtside-postgres --example postgres_append_throughput [appends_per_publisher] [channels] [nodes]`
//! prints one JSON line: `{"publishes_per_sec":…,"publishers":50,"total":…,…}`.
//!
//! `nodes` (default 1) stores share the database and the publishers, as several Courtside nodes
//! would. The run writes to channels of its own (`bench:<run>:<n>`) and deletes their rows after.

use std::error::Error;
use std::sync::Arc;

use courtside_core::ChannelName;
use courtside_core::conformance::load::{CountingSink, append_load};
use courtside_core::store::StreamStore;
use courtside_core::stream::now_ms;
use courtside_postgres::PostgresStore;
use tokio_postgres::NoTls;

const PUBLISHERS: usize = 50;

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::var("COURTSIDE_POSTGRES_URL")
        .map_err(|_| "set COURTSIDE_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/postgres")?;
    let mut args = std::env::args().skip(1);
    let appends_per_publisher: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(2_000);
    let channel_count: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(10).max(1);
    let node_count: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1).max(1);

    let sink = Arc::new(CountingSink::default());
    let mut stores: Vec<Arc<dyn StreamStore>> = Vec::with_capacity(node_count);
    for _ in 0..node_count {
        stores.push(Arc::new(PostgresStore::connect(&url, sink.clone()).await?));
    }
    let run = now_ms();
    let channels: Vec<ChannelName> =
        (0..channel_count).map(|i| ChannelName::parse(&format!("bench:{run}:{i}"))).collect::<Result<_, _>>()?;
    let report = append_load(&stores, &sink, &channels, PUBLISHERS, appends_per_publisher).await;
    for store in &stores {
        store.close().await;
    }
    remove_bench_rows(&url, &format!("bench:{run}:%")).await?;
    println!("{}", report?.to_json(&format!("\"channels\":{channel_count},\"nodes\":{node_count}")));
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
