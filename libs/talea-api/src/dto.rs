//! Request and response bodies, exactly as they appear on the wire.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A response that may have created something: `created` picks 201 over 200.
#[derive(Debug, Clone, PartialEq)]
pub struct Created<T> {
    /// The resource.
    pub value: T,
    /// True when this call created it.
    pub created: bool,
}

/// `POST /v1/assets`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetRequest {
    /// The asset code.
    pub code: String,
    /// Fractional digits, 0..=30.
    pub scale: i64,
    /// Optional display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// An asset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetDto {
    /// The asset code.
    pub code: String,
    /// Fractional digits.
    pub scale: u8,
    /// Display name.
    pub name: Option<String>,
}

/// `GET /v1/assets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetList {
    /// By code.
    pub assets: Vec<AssetDto>,
}

/// `POST /v1/books/{book}/accounts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountRequest {
    /// Account name.
    pub name: String,
    /// `asset | expense | liability | equity | revenue`.
    pub kind: String,
    /// Lowest normal-side balance per asset; absent or null is unbounded.
    #[serde(default)]
    pub min_balance: Option<String>,
    /// Free-form object.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// An account; `balances` appears on the single-account route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountDto {
    /// Its book.
    pub book: String,
    /// Its name.
    pub name: String,
    /// Its kind.
    pub kind: String,
    /// Normal-side floor, or null.
    pub min_balance: Option<String>,
    /// As given at opening.
    pub metadata: Map<String, Value>,
    /// The seq of its `account_opened` event.
    pub seq: u64,
    /// Commit time of that event.
    pub opened_at: String,
    /// Current normal-side balances by asset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balances: Option<BTreeMap<String, String>>,
}

/// `GET /v1/books/{book}/accounts`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountList {
    /// By name.
    pub accounts: Vec<AccountDto>,
    /// Pass as `after` for the next page; null at the end.
    pub next: Option<String>,
}

/// Paging by name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamePage {
    /// Strictly after this name.
    pub after: Option<String>,
    /// 1..=1000, default 100.
    pub limit: Option<u32>,
}

/// Paging by seq.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqPage {
    /// Strictly after this seq (default 0).
    pub after_seq: Option<u64>,
    /// 1..=1000, default 100.
    pub limit: Option<u32>,
}

/// One leg: exactly one of `debit` or `credit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostingDto {
    /// Account name.
    pub account: String,
    /// Asset code.
    pub asset: String,
    /// Amount debited, as an exact decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debit: Option<String>,
    /// Amount credited, as an exact decimal string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<String>,
}

/// `POST /v1/books/{book}/transactions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostTransactionRequest {
    /// 1..=128 printable ASCII, unique per book.
    pub idempotency_key: String,
    /// 2..=256 legs, balanced per asset.
    pub postings: Vec<PostingDto>,
    /// Business time (RFC 3339).
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// At most 1 KiB.
    #[serde(default)]
    pub memo: Option<String>,
    /// A JSON object of at most 16 KiB.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// A committed transaction. `deduplicated` is present on post responses only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionDto {
    /// UUIDv7.
    pub tx_id: String,
    /// Its book.
    pub book: String,
    /// Its place in the book's log.
    pub seq: u64,
    /// Database clock at commit.
    pub committed_at: String,
    /// True when a post was answered with an earlier commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deduplicated: Option<bool>,
    /// The caller's key.
    pub idempotency_key: String,
    /// Legs as posted (amounts in canonical form).
    pub postings: Vec<PostingDto>,
    /// Business time, or null.
    pub occurred_at: Option<String>,
    /// Memo, or null.
    pub memo: Option<String>,
    /// Metadata as given, or null.
    pub metadata: Option<Map<String, Value>>,
}

/// `GET /v1/books/{book}/transactions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionList {
    /// In seq order.
    pub transactions: Vec<TransactionDto>,
    /// Pass as `after_seq` for the next page; null at the end.
    pub next_after_seq: Option<u64>,
}

/// `GET …/balances`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancesDto {
    /// The account.
    pub account: String,
    /// The instant the balances are as of (now, when not asked).
    pub as_of: String,
    /// Normal-side balances by asset.
    pub balances: BTreeMap<String, String>,
}

/// One posting on an account's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountPostingDto {
    /// The transaction's seq.
    pub seq: u64,
    /// The transaction's id.
    pub tx_id: String,
    /// Its commit time.
    pub committed_at: String,
    /// The asset.
    pub asset: String,
    /// Amount debited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debit: Option<String>,
    /// Amount credited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credit: Option<String>,
    /// Normal-side running balance right after this posting.
    pub balance_after: String,
}

/// `GET …/postings`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostingList {
    /// In seq order.
    pub postings: Vec<AccountPostingDto>,
    /// Pass as `after_seq` for the next page; null at the end.
    pub next_after_seq: Option<u64>,
}

/// One trial-balance row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialRowDto {
    /// The account.
    pub account: String,
    /// Its kind.
    pub kind: String,
    /// The asset.
    pub asset: String,
    /// Sum of debits.
    pub debits: String,
    /// Sum of credits.
    pub credits: String,
    /// Normal-side balance.
    pub balance: String,
}

/// Per-asset totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalsDto {
    /// Sum of all debits.
    pub debits: String,
    /// Sum of all credits.
    pub credits: String,
}

/// `GET …/trial-balance`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialBalanceDto {
    /// The book.
    pub book: String,
    /// The instant it is as of.
    pub as_of: String,
    /// By account, then asset.
    pub rows: Vec<TrialRowDto>,
    /// Per asset.
    pub totals: BTreeMap<String, TotalsDto>,
    /// True when debits equal credits in every asset.
    pub balanced: bool,
}

/// One log entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDto {
    /// Dense from 1.
    pub seq: u64,
    /// `account_opened` or `transaction`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Commit time.
    pub committed_at: String,
    /// The account or transaction resource.
    pub data: Value,
}

/// `GET …/events`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventList {
    /// In seq order.
    pub events: Vec<EventDto>,
    /// Pass as `after_seq` for the next page; null at the end.
    pub next_after_seq: Option<u64>,
}

/// A book and its last seq.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookDto {
    /// The book.
    pub book: String,
    /// Seq of its last event.
    pub last_seq: u64,
}

/// `GET /v1/books`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookList {
    /// By name.
    pub books: Vec<BookDto>,
}

/// `GET /health`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthDto {
    /// `ok`.
    pub status: String,
    /// `postgres`, `sqlite` or `log`.
    pub backend: String,
}
