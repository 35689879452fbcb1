//! `LedgerService`: the ledger in process, over any `Store`, with group commit.
//!
//! It implements `talea_api::LedgerApi`: every raw input is parsed here into
//! domain values (so the HTTP layer and the SDK see the same refusals), posts
//! are queued on per-book committers (see `committer`), and reads are turned
//! back into wire DTOs with amounts on each account's normal side.
//!
//! This file is the table of contents: `config` (the write path's limits),
//! `service` (construction and shared lookups), `assets` (the asset cache),
//! `api` (the `LedgerApi` implementation), `convert` (every DTO and error
//! mapping), `committer` (per-book group commit), `snapshot` (balance cuts),
//! `proofs` (signing key, Merkle trees, checkpoints and proofs), `audit` (a book's log
//! against its chain and its projections: `audit_book`).

mod api;
mod assets;
mod audit;
mod committer;
mod config;
mod convert;
mod liabilities;
mod proofs;
mod search;
mod service;
mod snapshot;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use talea_core::{Asset, AssetCode};
use talea_store::Store;
use talea_telemetry::Metrics;

pub use audit::{
    AUDIT_ATTEMPTS_MAX, AUDIT_PAGE_MAX, AuditReport, Finding, FindingKind, audit_book,
};
pub use config::{
    COMMIT_BOOKS_MAX_DEFAULT, COMMIT_BOOKS_MAX_LIMIT, COMMITS_IN_FLIGHT_DEFAULT,
    COMMITS_IN_FLIGHT_LIMIT, LedgerConfig, WRITE_BATCH_MAX_LIMIT, WRITE_QUEUE_DEPTH_LIMIT,
};
pub use convert::{draft_from_request, event_dto};
pub use liabilities::{LIABILITY_BOOK_ACCOUNTS_MAX, LIABILITY_PREFIX_CHARS_MAX};
pub use proofs::{CHECKPOINT_EVERY_DEFAULT, CHECKPOINT_EVERY_S_MAX, CheckpointEvery, Notary};
pub use service::HOLD_EXPIRY_POLL;
pub use snapshot::SNAPSHOT_ACCOUNTS_MAX;

use crate::committer::Committers;

/// The ledger over a store. Cheap to clone; clones share committers and caches.
#[derive(Debug, Clone)]
pub struct LedgerService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    committers: Arc<Committers>,
    metrics: Metrics,
    // Asset definitions never change once registered, so a positive cache
    // never goes stale; misses fall through to the store.
    assets: RwLock<HashMap<AssetCode, Asset>>,
    /// Signs checkpoints (`proofs`).
    notary: Notary,
    /// The books' Merkle trees, built on demand (`proofs`).
    trees: proofs::Trees,
}
