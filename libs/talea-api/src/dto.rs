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
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssetRequest {
    /// The asset code.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
    )]
    pub code: String,
    /// Fractional digits, 0..=30.
    #[cfg_attr(feature = "openapi", schema(minimum = 0, maximum = 30))]
    pub scale: i64,
    /// Optional display name.
    #[serde(default)]
    pub name: Option<String>,
}

/// An asset.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetDto {
    /// The asset code.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
    )]
    pub code: String,
    /// Fractional digits.
    #[cfg_attr(feature = "openapi", schema(maximum = 30))]
    pub scale: u8,
    /// Display name.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub name: Option<String>,
}

/// `GET /v1/assets`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssetList {
    /// By code.
    pub assets: Vec<AssetDto>,
}

/// `POST /v1/books/{book}/accounts`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenAccountRequest {
    /// Account name.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$")
    )]
    pub name: String,
    /// `asset | expense | liability | equity | revenue`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::account_kind))]
    pub kind: String,
    /// Lowest normal-side balance per asset; absent or null is unbounded.
    #[serde(default, deserialize_with = "amount_text::deserialize")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$"))]
    pub min_balance: Option<String>,
    /// Free-form object.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
}

/// An account; `balances` appears on the single-account route.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountDto {
    /// Its book.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$"))]
    pub book: String,
    /// Its name.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$")
    )]
    pub name: String,
    /// Its kind.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::account_kind))]
    pub kind: String,
    /// Normal-side floor, or null.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$", required = true)
    )]
    pub min_balance: Option<String>,
    /// As given at opening; absent for a token that hides it.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub metadata: Map<String, Value>,
    /// The seq of its `account_opened` event.
    pub seq: u64,
    /// Commit time of that event.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub opened_at: String,
    /// Current normal-side balances by asset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balances: Option<BTreeMap<String, String>>,
}

/// `GET /v1/books/{book}/accounts`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountList {
    /// By name.
    pub accounts: Vec<AccountDto>,
    /// Pass as `after` for the next page; null at the end.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$", required = true)
    )]
    pub next: Option<String>,
}

/// Paging by name.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NamePage {
    /// Strictly after this name.
    pub after: Option<String>,
    /// 1..=1000, default 100.
    pub limit: Option<u32>,
}

/// Paging by seq.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeqPage {
    /// Strictly after this seq (default 0).
    pub after_seq: Option<u64>,
    /// 1..=1000, default 100.
    pub limit: Option<u32>,
}

/// One leg: exactly one of `debit` or `credit`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostingDto {
    /// Account name.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$")
    )]
    pub account: String,
    /// Asset code.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
    )]
    pub asset: String,
    /// Amount debited, as an exact decimal string.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "amount_text::deserialize"
    )]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub debit: Option<String>,
    /// Amount credited, as an exact decimal string.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "amount_text::deserialize"
    )]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub credit: Option<String>,
}

/// `POST /v1/books/{book}/transactions`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostTransactionRequest {
    /// 1..=128 printable ASCII, unique per book.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[ -~]{1,128}$"))]
    pub idempotency_key: String,
    /// 2..=256 legs, balanced per asset.
    #[cfg_attr(feature = "openapi", schema(min_items = 2, max_items = 256))]
    pub postings: Vec<PostingDto>,
    /// Business time (RFC 3339).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub occurred_at: Option<String>,
    /// At most 1 KiB.
    #[serde(default)]
    pub memo: Option<String>,
    /// A JSON object of at most 16 KiB.
    #[serde(default)]
    pub metadata: Option<Map<String, Value>>,
    /// `true`: a hold, reserving its postings until settled, voided or expired.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pending: bool,
    /// A hold's expiry (RFC 3339, in the future, at most 90 days ahead);
    /// only with `pending`. Absent: held until settled or voided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub expires_at: Option<String>,
}

/// `POST /v1/books/{book}/transactions/{tx_id}/post`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettleRequest {
    /// 1..=128 printable ASCII, unique per book.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[ -~]{1,128}$"))]
    pub idempotency_key: String,
    /// A partial settlement: each amount at most what the hold holds on the
    /// same account, asset and side, balanced per asset. Absent: all of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_items = 2, max_items = 256))]
    pub postings: Option<Vec<PostingDto>>,
}

/// `POST /v1/books/{book}/transactions/{tx_id}/void`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VoidRequest {
    /// 1..=128 printable ASCII, unique per book.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[ -~]{1,128}$"))]
    pub idempotency_key: String,
}

/// `POST /v1/books/{book}/transactions/batch`: 1 to `BATCH_ITEMS_MAX`
/// transactions, each exactly the body of a single post; each item is read
/// on its own, so a bad one fails alone.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchRequest {
    /// The transactions, in the order they are answered and committed.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::batch_items))]
    pub transactions: Vec<Value>,
}

/// One item's answer in a bulk post: what the single post route would
/// have answered for it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchItemResult {
    /// 201 committed, 200 deduplicated, or the error's status.
    pub status: u16,
    /// The transaction, or the error body.
    pub body: Value,
}

/// The answer to a bulk post: one result per item, in order.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// Per item, in order.
    pub results: Vec<BatchItemResult>,
}

/// A committed transaction. `deduplicated` is present on post responses only.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionDto {
    /// UUIDv7.
    #[cfg_attr(feature = "openapi", schema(format = "uuid"))]
    pub tx_id: String,
    /// Its book.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$"))]
    pub book: String,
    /// Its place in the book's log.
    pub seq: u64,
    /// Database clock at commit.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub committed_at: String,
    /// True when a post was answered with an earlier commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deduplicated: Option<bool>,
    /// The caller's key.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[ -~]{1,128}$"))]
    pub idempotency_key: String,
    /// Legs as posted (amounts in canonical form).
    pub postings: Vec<PostingDto>,
    /// Business time, or null.
    #[cfg_attr(feature = "openapi", schema(format = DateTime, required = true))]
    pub occurred_at: Option<String>,
    /// Memo, or null; absent for a token that hides it.
    pub memo: Option<String>,
    /// Metadata as given, or null; absent for a token that hides it.
    pub metadata: Option<Map<String, Value>>,
    /// `posted` or `pending` (a hold); a hold that ended reports how
    /// (`posted`, `voided`, `expired`) except in its own log event; a void
    /// is `voided`.
    #[serde(default = "posted")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::tx_status))]
    pub status: String,
    /// A hold's expiry, or null.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(format = DateTime, required = true))]
    pub expires_at: Option<String>,
    /// The hold that this settle or void ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(format = "uuid"))]
    pub pending_tx_id: Option<String>,
}

/// The status of a transaction from a server that predates holds.
fn posted() -> String {
    "posted".to_owned()
}

/// `GET /v1/books/{book}/transactions`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionList {
    /// In seq order.
    pub transactions: Vec<TransactionDto>,
    /// Pass as `after_seq` for the next page; null at the end.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub next_after_seq: Option<u64>,
}

/// `GET /v1/books/{book}/transactions` with filters: which transactions
/// and which page. Every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionSearch {
    /// Transactions with a leg (posted or held) on this account.
    pub account: Option<String>,
    /// RFC 3339: committed at or after it.
    pub from: Option<String>,
    /// RFC 3339: committed before it.
    pub to: Option<String>,
    /// `posted`, `pending`, `voided` or `expired`: the status a read of the
    /// transaction reports now.
    pub status: Option<String>,
    /// Exact match on one top-level metadata key (`metadata.<key>=<value>`
    /// on the wire): a string equal to the value, or an integer or boolean
    /// whose JSON text equals it. At most one entry.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    /// Strictly after this seq (the previous page's `next_after_seq`).
    pub after_seq: Option<u64>,
    /// 1..=1000, default 100.
    pub limit: Option<u32>,
}

impl TransactionSearch {
    /// Whether no filter is given (a plain page of the book's log).
    pub fn is_unfiltered(&self) -> bool {
        self.account.is_none()
            && self.from.is_none()
            && self.to.is_none()
            && self.status.is_none()
            && self.metadata.is_empty()
    }
}

/// `GET /v1/books/{book}/holds`: the book's pending holds, soonest
/// `expires_at` first, those without an expiry last (by seq).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HoldList {
    /// Each exactly as `GET /v1/transactions/{tx_id}` answers it.
    pub holds: Vec<TransactionDto>,
}

/// `GET …/balances`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalancesDto {
    /// The account.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$")
    )]
    pub account: String,
    /// The instant the balances are as of (now, when not asked).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub as_of: String,
    /// Normal-side balances by asset.
    pub balances: BTreeMap<String, String>,
    /// What live holds reserve, by asset (every asset of `balances`).
    #[serde(default)]
    pub pending: BTreeMap<String, HeldDto>,
    /// Normal-side posted balance minus the held amounts that would lower
    /// it, by asset: what `min_balance` applies to.
    #[serde(default)]
    pub available: BTreeMap<String, String>,
}

/// `GET /v1/books/{book}/balances`: which accounts and which page.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookBalancesQuery {
    /// Only accounts whose name starts with it (bytewise); empty or absent:
    /// every account. At most 128 bytes, the start of an account name.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^([A-Za-z0-9][A-Za-z0-9:._-]{0,127})?$")
    )]
    pub prefix: Option<String>,
    /// Only this registered asset's balances and totals.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
    )]
    pub asset: Option<String>,
    /// Strictly after this account name (the previous page's `next`).
    pub after: Option<String>,
    /// 1..=1000, default 100.
    pub limit: Option<u32>,
}

/// Per-asset sums over every account a [`BookBalancesDto`] matches,
/// shaped as [`BalancesDto`]'s maps.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceTotalsDto {
    /// Sum of the accounts' normal-side posted balances, by asset.
    pub balances: BTreeMap<String, String>,
    /// Sum of what live holds reserve on them, by asset.
    pub pending: BTreeMap<String, HeldDto>,
    /// Sum of their available balances, by asset.
    pub available: BTreeMap<String, String>,
}

/// `GET /v1/books/{book}/balances`: the balances of the accounts under a
/// name prefix, totals over all of them and one page of rows.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookBalancesDto {
    /// The book.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$"))]
    pub book: String,
    /// The prefix asked for (empty: every account).
    pub prefix: String,
    /// The asset asked for, or null.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub asset: Option<String>,
    /// The instant the balances are as of (now).
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub as_of: String,
    /// How many accounts match (every page, not this one).
    pub count: u64,
    /// Per asset, over every matching account.
    pub totals: BalanceTotalsDto,
    /// This page, by account name (bytewise), each as `GET …/balances`
    /// answers for one account.
    pub accounts: Vec<BalancesDto>,
    /// Pass as `after` for the next page; null at the end.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$", required = true)
    )]
    pub next: Option<String>,
}

/// `GET /v1/books/{book}/accounts/{account}/balances/history`: which asset,
/// which time range, and either a page of changes or `points` buckets.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceHistoryQuery {
    /// The registered asset (required).
    pub asset: Option<String>,
    /// RFC 3339; changes committed at or after it (absent: from the start).
    pub from: Option<String>,
    /// RFC 3339; changes committed before it (absent: up to now).
    pub to: Option<String>,
    /// Changes strictly after this seq (the previous page's `next_after_seq`).
    pub after_seq: Option<u64>,
    /// 1..=1000, default 100 (changes mode).
    pub limit: Option<u32>,
    /// 1..=1000: downsample `[from, to)` into this many equal buckets.
    pub points: Option<u32>,
}

/// One change of a balance history.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceChangeDto {
    /// The event that changed the balance.
    pub seq: u64,
    /// Its commit time.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub committed_at: String,
    /// Normal-side posted balance right after it.
    pub balance: String,
}

/// One equal time bucket of a downsampled balance history.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceBucketDto {
    /// The bucket's first instant.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub start: String,
    /// The balance the bucket opens with.
    pub first: String,
    /// The balance after its last change (carried forward when none).
    pub last: String,
    /// The least balance in the bucket.
    pub min: String,
    /// The greatest.
    pub max: String,
}

/// `GET …/balances/history`: an account's posted balance in one asset over time.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceHistoryDto {
    /// The book.
    pub book: String,
    /// The account.
    pub account: String,
    /// The asset.
    pub asset: String,
    /// The range's start, or null.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub from: Option<String>,
    /// The range's end (exclusive), or null.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub to: Option<String>,
    /// Normal-side balance before the first change listed (before `from`,
    /// or at `after_seq`).
    pub opening: String,
    /// Changes mode: this page of changes in seq order (empty with `points`).
    pub changes: Vec<BalanceChangeDto>,
    /// Points mode: one bucket per point, every one present (empty otherwise).
    pub buckets: Vec<BalanceBucketDto>,
    /// Pass as `after_seq` for the next page; null at the end.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub next_after_seq: Option<u64>,
}

/// Debits and credits held by live holds.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldDto {
    /// Held debits.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub debits: String,
    /// Held credits.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub credits: String,
}

/// The first event of a `?snapshot=balances` stream: the balances of the
/// (filtered) accounts exactly as of `seq`; the stream goes on from `seq + 1`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotDto {
    /// The book.
    pub book: String,
    /// The seq the balances are as of (also the frame's `id`).
    pub seq: u64,
    /// One row per account, by name, shaped as `GET …/balances` answers
    /// (`as_of` is the commit time of `seq`).
    pub balances: Vec<BalancesDto>,
}

/// One posting on an account's history.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountPostingDto {
    /// The transaction's seq.
    pub seq: u64,
    /// The transaction's id.
    #[cfg_attr(feature = "openapi", schema(format = "uuid"))]
    pub tx_id: String,
    /// Its commit time.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub committed_at: String,
    /// The asset.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
    )]
    pub asset: String,
    /// Amount debited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub debit: Option<String>,
    /// Amount credited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub credit: Option<String>,
    /// Normal-side running balance right after this posting.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$"))]
    pub balance_after: String,
}

/// `GET …/postings`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostingList {
    /// In seq order.
    pub postings: Vec<AccountPostingDto>,
    /// Pass as `after_seq` for the next page; null at the end.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub next_after_seq: Option<u64>,
}

/// One trial-balance row.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialRowDto {
    /// The account.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$")
    )]
    pub account: String,
    /// Its kind.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::account_kind))]
    pub kind: String,
    /// The asset.
    #[cfg_attr(
        feature = "openapi",
        schema(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")
    )]
    pub asset: String,
    /// Sum of debits.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub debits: String,
    /// Sum of credits.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub credits: String,
    /// Normal-side balance.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^-?[0-9]+(\.[0-9]+)?$"))]
    pub balance: String,
}

/// Per-asset totals.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotalsDto {
    /// Sum of all debits.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub debits: String,
    /// Sum of all credits.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9]+(\.[0-9]+)?$"))]
    pub credits: String,
}

/// `GET …/trial-balance`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialBalanceDto {
    /// The book.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$"))]
    pub book: String,
    /// The instant it is as of.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub as_of: String,
    /// By account, then asset.
    pub rows: Vec<TrialRowDto>,
    /// Per asset.
    pub totals: BTreeMap<String, TotalsDto>,
    /// True when debits equal credits in every asset.
    pub balanced: bool,
    /// Per asset of `totals`: what live holds reserve (their debits, equal
    /// to their credits), not in the posted totals.
    #[serde(default)]
    pub pending: BTreeMap<String, String>,
}

/// One log entry.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventDto {
    /// Dense from 1.
    pub seq: u64,
    /// `account_opened` or `transaction`.
    #[serde(rename = "type")]
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::event_type))]
    pub kind: String,
    /// Commit time.
    #[cfg_attr(feature = "openapi", schema(format = DateTime))]
    pub committed_at: String,
    /// The account or transaction resource.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::event_data))]
    pub data: Value,
    /// The event's chain hash (`docs/proofs.md`): lowercase hex SHA-256 of
    /// the previous event's hash and this event's canonical bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[0-9a-f]{64}$"))]
    pub hash: Option<String>,
}

/// `GET …/events`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventList {
    /// In seq order.
    pub events: Vec<EventDto>,
    /// Pass as `after_seq` for the next page; null at the end.
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub next_after_seq: Option<u64>,
}

/// A book and its last seq.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookDto {
    /// The book.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$"))]
    pub book: String,
    /// Seq of its last event.
    pub last_seq: u64,
}

/// `GET /v1/books`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BookList {
    /// By name.
    pub books: Vec<BookDto>,
}

/// `GET /health`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthDto {
    /// `ok`.
    pub status: String,
    /// `postgres`, `sqlite` or `log`.
    #[cfg_attr(feature = "openapi", schema(schema_with = crate::openapi::backend))]
    pub backend: String,
}

/// `POST /v1/stream-tickets`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamTicketRequest {
    /// The one book whose stream the ticket opens.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$"))]
    pub book: String,
}

/// A stream ticket: `?ticket=` on the book's stream route, until `expires_at`.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamTicketDto {
    /// Opaque, URL-safe; as secret as a token while it lives.
    pub ticket: String,
    /// When it stops being accepted (at most 60 s after issue).
    pub expires_at: String,
}

/// Amounts in request bodies: a JSON string, or null or absent. A number, a
/// boolean, an array or an object is refused with what to send instead, in
/// the words every other amount error uses: a float would already have lost
/// exactness on its way here, and no amount is ever guessed from one.
mod amount_text {
    use std::fmt;

    use serde::Deserializer;
    use serde::de::{self, Unexpected, Visitor};

    /// The message of every amount sent as something other than a string.
    fn refusal(got: Unexpected<'_>) -> String {
        format!("must be a decimal string such as \"0.01\", not {got}")
    }

    struct AmountText;

    impl<'de> Visitor<'de> for AmountText {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a decimal string such as \"0.01\"")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }

        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Err(E::custom(refusal(Unexpected::Float(v))))
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Err(E::custom(refusal(Unexpected::Signed(v))))
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Err(E::custom(refusal(Unexpected::Unsigned(v))))
        }

        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Err(E::custom(refusal(Unexpected::Bool(v))))
        }

        fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(de::Error::custom(refusal(Unexpected::Seq)))
        }

        fn visit_map<A: de::MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
            Err(de::Error::custom(refusal(Unexpected::Map)))
        }
    }

    /// Deserializes an optional amount string (see the module's doc).
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
        d.deserialize_option(AmountText)
    }

    #[cfg(test)]
    mod tests {
        #[derive(serde::Deserialize, Debug)]
        struct Leg {
            #[serde(default, deserialize_with = "super::deserialize")]
            debit: Option<String>,
        }

        fn message(json: &str) -> String {
            match serde_json::from_str::<Leg>(json) {
                Ok(leg) => format!("accepted {leg:?}"),
                Err(e) => e.to_string(),
            }
        }

        #[test]
        fn strings_and_nulls_pass_everything_else_says_what_to_send() {
            let ok = |json| serde_json::from_str::<Leg>(json).map(|l| l.debit).ok();
            assert_eq!(ok(r#"{"debit":"0.01"}"#), Some(Some("0.01".to_owned())));
            assert_eq!(ok(r#"{"debit":null}"#), Some(None));
            assert_eq!(ok("{}"), Some(None));
            for (json, got) in [
                (r#"{"debit":0.01}"#, "floating point `0.01`"),
                (r#"{"debit":5}"#, "integer `5`"),
                (r#"{"debit":-5}"#, "integer `-5`"),
                (r#"{"debit":true}"#, "boolean `true`"),
                (r#"{"debit":{"a":1}}"#, "map"),
                (r#"{"debit":["1"]}"#, "sequence"),
            ] {
                let m = message(json);
                assert!(
                    m.starts_with(&format!(
                        "must be a decimal string such as \"0.01\", not {got}"
                    )),
                    "{json}: {m}"
                );
            }
        }
    }
}

/// `POST /v1/books/{book}/liabilities`: a signed liability snapshot of the
/// accounts whose names start with `prefix`, in `asset`, at the book's
/// last seq.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiabilityRequest {
    /// A registered asset code.
    pub asset: String,
    /// 1..=128 characters of an account name (`A-Z a-z 0-9 : . _ -`),
    /// such as `customers:`.
    #[cfg_attr(feature = "openapi", schema(pattern = r"^[A-Za-z0-9:._-]{1,128}$"))]
    pub prefix: String,
}
