//! The backend-agnostic conformance suite, one test per case, each on its own directory.

use std::sync::Arc;

use talea_store::Store;
use talea_store_log::LogStore;
use tempfile::TempDir;

/// A fresh store in a new temporary directory (kept until teardown).
async fn fresh_store() -> (Arc<dyn Store>, TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = LogStore::open(dir.path()).expect("open a fresh log store");
    (Arc::new(store), dir)
}

/// Removes the directory of a case that passed.
async fn teardown(dir: TempDir) {
    dir.close().expect("remove the temporary directory");
}

talea_store::conformance_tests!(fresh_store, teardown);
