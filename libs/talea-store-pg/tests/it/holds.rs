//! The hold lifecycle on Postgres (the cases are the SQLite tests'
//! `holds_cases.rs`, included by path), each on its own database.

use crate::holds_cases as cases;

/// Runs one case on a fresh database, then drops it.
macro_rules! case {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (store, db) = crate::migrated_store().await;
            cases::$name(&store).await;
            store.pool().close().await;
            db.drop_database().await.expect("drop the test database");
        }
    };
}

case!(hold_then_settle_whole);
case!(partial_settle);
case!(hold_then_void);
case!(hold_and_settle_in_one_batch);
case!(hold_expires);
