//! Every statement this store issues, by name: the shared core's, the
//! dialect's and Postgres's own. `tests/it/routing.rs` parses each one and
//! holds it to the rule that lets a distributed Postgres (Citus, by `book`)
//! route it to one node; a test there also scans this crate's and the
//! core's sources so that a statement missing from this list fails too.

use talea_store_sql::statements::Named;

use crate::{citus, codec, dialect, relay, young};

/// Every statement, by name.
pub fn all() -> Vec<Named> {
    let mut all = talea_store_sql::statements::core();
    all.extend(dialect::SQL.statements());
    all.extend([
        ("dialect::LOCK_BOOKS", dialect::LOCK_BOOKS),
        ("dialect::CREATE_BOOKS", dialect::CREATE_BOOKS),
        ("dialect::ADVANCE_BOOKS", dialect::ADVANCE_BOOKS),
        ("dialect::WRITE_BATCH", dialect::WRITE_BATCH),
        ("dialect::WRITE_DRAFTS", dialect::WRITE_DRAFTS),
        (
            "dialect::WITH_HOLDS.drafts",
            dialect::WITH_HOLDS.drafts.as_str(),
        ),
        (
            "dialect::WITH_HOLDS.batch",
            dialect::WITH_HOLDS.batch.as_str(),
        ),
        ("relay::RELAY_BACKLOG", relay::RELAY_BACKLOG),
        ("relay::RELAY_POSITION", relay::RELAY_POSITION),
        ("relay::RECORD_PUBLISHED", relay::RECORD_PUBLISHED),
        ("relay::LEASE", relay::LEASE),
        ("relay::PROBE", relay::PROBE),
        ("young::ANALYZE", young::ANALYZE),
        ("codec::SESSION_SETUP", codec::SESSION_SETUP),
        ("lib::MIGRATIONS", crate::MIGRATIONS),
        ("lib::PING", crate::PING),
        ("citus::EXTENSION", citus::EXTENSION),
        ("citus::WORKERS", citus::WORKERS),
        ("citus::TABLES", citus::TABLES),
        ("citus::FOREIGN_KEYS", citus::FOREIGN_KEYS),
        ("citus::REFERENCE", citus::REFERENCE),
        ("citus::DISTRIBUTE_ANCHOR", citus::DISTRIBUTE_ANCHOR),
        ("citus::DISTRIBUTE", citus::DISTRIBUTE),
    ]);
    all
}
