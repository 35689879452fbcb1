//! Integration tests of `PgStore` against a real PostgreSQL: every
//! conformance case, plus what only Postgres has (migrations, several
//! instances on one database, NOTIFY).

mod chain;
#[path = "../../../talea-store-sqlite/tests/it/chain_cases.rs"]
mod chain_cases;
mod conformance;
mod distribution;
mod holds;
#[path = "../../../talea-store-sqlite/tests/it/holds_cases.rs"]
mod holds_cases;
mod postgres;
mod routing;

use talea_store_pg::PgStore;
use talea_testkit::TestDb;

/// Pool size of test stores: the conformance suite runs up to 40 writers at
/// once, and two tests run in parallel within Postgres's default 100 connections.
const POOL_MAX: u32 = 20;

/// A store on a fresh database with the schema applied.
pub async fn migrated_store() -> (PgStore, TestDb) {
    let db = talea_testkit::fresh_database()
        .await
        .expect("a fresh test database");
    let store = PgStore::connect(&db.url, POOL_MAX)
        .await
        .expect("connect to the test database");
    store.migrate().await.expect("migrate the test database");
    (store, db)
}
