//! The hold lifecycle on SQLite (cases in `holds_cases.rs`, shared with
//! the Postgres tests), each on its own file.

use crate::holds_cases as cases;

/// Runs one case on a fresh store, then removes it.
macro_rules! case {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (store, dir) = crate::temp_store().await;
            cases::$name(&store).await;
            store.close().await;
            dir.close().expect("remove the temporary directory");
        }
    };
}

case!(hold_then_settle_whole);
case!(partial_settle);
case!(hold_then_void);
case!(hold_and_settle_in_one_batch);
case!(hold_expires);
