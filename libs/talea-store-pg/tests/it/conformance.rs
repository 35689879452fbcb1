//! The backend-agnostic conformance suite, one test per case, each on its own database.

use std::sync::Arc;

use talea_store::Store;
use talea_store_pg::PgStore;
use talea_testkit::TestDb;

/// A fresh store, and what `teardown` needs to remove its database.
async fn fresh_store() -> (Arc<dyn Store>, (PgStore, TestDb)) {
    let (store, db) = crate::migrated_store().await;
    (Arc::new(store.clone()), (store, db))
}

/// Closes the pool and drops the database of a case that passed.
async fn teardown((store, db): (PgStore, TestDb)) {
    store.pool().close().await;
    db.drop_database().await.expect("drop the test database");
}

talea_store::conformance_tests!(fresh_store, teardown);
