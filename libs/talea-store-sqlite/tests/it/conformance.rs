//! The backend-agnostic conformance suite, one test per case, each on its own file.

use std::sync::Arc;

use talea_store::Store;
use talea_store_sqlite::SqliteStore;
use tempfile::TempDir;

/// A fresh store, and what `teardown` needs to remove its file.
async fn fresh_store() -> (Arc<dyn Store>, (SqliteStore, TempDir)) {
    let (store, dir) = crate::temp_store().await;
    (Arc::new(store.clone()), (store, dir))
}

/// Closes the store, then removes its directory (a case that fails leaves
/// its directory behind only until the process ends, as `TempDir` is dropped
/// while unwinding).
async fn teardown((store, dir): (SqliteStore, TempDir)) {
    store.close().await;
    dir.close().expect("remove the temporary directory");
}

talea_store::conformance_tests!(fresh_store, teardown);
