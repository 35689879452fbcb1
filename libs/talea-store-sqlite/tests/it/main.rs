//! Integration tests of `SqliteStore` on temporary files: every conformance
//! case, plus what only the embedded store has (reopening a file, several
//! handles on one file, the single writer under racing overdraws).

mod chain;
mod chain_cases;
mod conformance;
mod holds;
mod holds_cases;
mod sqlite;

use talea_store_sqlite::SqliteStore;
use tempfile::TempDir;

/// A store on a new file in a new temporary directory; the directory goes
/// when the `TempDir` is dropped.
pub async fn temp_store() -> (SqliteStore, TempDir) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = SqliteStore::open(&dir.path().join("talea.db"))
        .await
        .expect("open a new store");
    (store, dir)
}
