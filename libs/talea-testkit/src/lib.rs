//! Dev-only test fixtures, shared by every crate's tests so that none builds
//! them by hand: a Postgres database per test ([`db`]), a NATS subject
//! prefix per test and waits on what NATS delivers ([`nats`]), polling with
//! a deadline ([`poll`]), tokens files ([`tokens`]), a JSON client and
//! metrics checks ([`http`]), an SSE reader using the SDK's decoder
//! ([`sse`]), a seeded ledger through `LedgerApi`
//! ([`ledger`]) and domain values for store tests ([`domain`]), and real
//! processes: spawned services, talea-scope, talead on a given store,
//! throwaway Postgres clusters and NATS servers ([`process`]).
//!
//! Of talea's crates it knows only the two at the bottom, `talea-core` and
//! `talea-api`, whose tests do not use it; stores, the ledger and the
//! services stay the callers' (who migrate with `PgStore::migrate` and name
//! binaries by path), so any crate can use it as a dev-dependency without
//! a dependency cycle.

pub mod db;
pub mod domain;
pub mod http;
pub mod ledger;
pub mod nats;
pub mod poll;
pub mod process;
pub mod sse;
pub mod tokens;

pub use db::{DEFAULT_PG_URL, TestDb, admin_url, fresh_database};
pub use http::{JsonClient, promtool_check, scrape_metrics, serve_router};
pub use nats::{DEFAULT_NATS_URL, nats_url, unique_prefix};
pub use poll::{wait_for, wait_http_ok, wait_until};
pub use tokens::tokens_file;
