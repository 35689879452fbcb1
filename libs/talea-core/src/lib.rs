//! The ledger's domain: names, exact amounts, assets, accounts, drafts, commits and events.
//!
//! This crate does no IO, knows nothing of async, JSON or SQL. Every value is
//! parsed once at the edge (`BookName::parse`, `Amount::parse`) and is valid
//! from then on, so the layers above never re-check what a type guarantees.

mod amount;
mod model;
mod names;
mod time;

pub use amount::{Amount, AmountError, Decimal, SCALE_MAX, Scale};
pub use model::{
    Account, AccountKind, Asset, Commit, Draft, DraftError, DraftPosting, Event, EventKind, Intent,
    NewAccount, NormalSide, Side, StoredPosting, TxId, TxStatus,
};
pub use names::{AccountName, AssetCode, BookName, IdempotencyKey, NameError};
pub use time::Timestamp;

/// Request and field limits that are part of the contract.
pub mod limits {
    /// Fewest postings a transaction may carry.
    pub const POSTINGS_MIN: usize = 2;
    /// Most postings a transaction may carry.
    pub const POSTINGS_MAX: usize = 256;
    /// Longest memo, in bytes of UTF-8.
    pub const MEMO_BYTES_MAX: usize = 1024;
    /// Largest metadata object, in bytes of its compact JSON serialization.
    pub const METADATA_BYTES_MAX: usize = 16 * 1024;
    /// Largest request body, in bytes.
    pub const BODY_BYTES_MAX: usize = 1024 * 1024;
    /// Transactions in one bulk post (`POST …/transactions/batch`).
    pub const BATCH_ITEMS_MAX: usize = 1000;
    /// Request body of a bulk post, in bytes: 1,000 items of up to 16 KiB.
    pub const BATCH_BODY_BYTES_MAX: usize = 16 * 1024 * 1024;
    /// Largest page a list route returns.
    pub const PAGE_LIMIT_MAX: u32 = 1000;
    /// Page size when the caller does not say.
    pub const PAGE_LIMIT_DEFAULT: u32 = 100;
    /// Most buckets a downsampled balance history is split into (`points`).
    pub const HISTORY_POINTS_MAX: u32 = 1000;
    /// Longest metadata key a transaction search matches on
    /// (`metadata.<key>=`), in bytes.
    pub const SEARCH_METADATA_KEY_BYTES_MAX: usize = 128;
    /// Longest metadata value a transaction search matches, in bytes.
    pub const SEARCH_METADATA_VALUE_BYTES_MAX: usize = 256;
    /// Candidates one transaction search examines before it answers with
    /// what matched so far and the seq it reached (`next_after_seq`).
    pub const SEARCH_SCAN_MAX: u32 = 10_000;
    /// Longest asset display name, in bytes.
    pub const ASSET_NAME_BYTES_MAX: usize = 256;
    /// Furthest a hold's `expires_at` may lie ahead of the request, in seconds (90 days).
    pub const HOLD_EXPIRY_SECS_MAX: i64 = 90 * 24 * 60 * 60;
}
