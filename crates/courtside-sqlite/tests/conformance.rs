//! The shared `StreamStore` conformance suite, run against fresh SQLite files.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use courtside_core::conformance;
use courtside_core::store::StreamStore;
use courtside_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_conforms() {
    let directory = tempfile::tempdir().expect("temp dir");
    let root = directory.path().to_path_buf();
    let opened = Arc::new(AtomicUsize::new(0));
    conformance::stream_store(|sink| {
        // Each check gets its own, empty database file (in a not-yet-existing subdirectory).
        let path = root.join(format!("store-{}", opened.fetch_add(1, Ordering::Relaxed))).join("courtside.db");
        async move { Arc::new(SqliteStore::open(&path, sink).expect("open store")) as Arc<dyn StreamStore> }
    })
    .await;
    assert_eq!(opened.load(Ordering::Relaxed), conformance::store::STORE_CHECKS, "every conformance check opened its own store");
}
