//! The wire contract: JSON shapes, error codes, timestamp format, and the `LedgerApi` trait.
//!
//! Only this crate defines JSON shapes. The in-process `LedgerService` and the
//! HTTP SDK both implement [`LedgerApi`] with these types, so code written
//! against the trait behaves the same over either.

/// The request header a book read's `min_seq` travels in (`docs/api.md`,
/// "Read your writes"); lowercase, as HTTP/2 and `HeaderName` spell it.
pub const MIN_SEQ_HEADER: &str = "talea-min-seq";

/// The answer header of a book read: the book's seq the answer reflects.
pub const SEQ_HEADER: &str = "talea-seq";

pub mod bus;
mod dto;
mod error;
pub mod event;
mod json;
#[cfg(feature = "openapi")]
mod openapi;
mod time;

pub use dto::*;
pub use error::{ApiError, CATALOGUE, ErrorBody, ErrorCode, ErrorInfo};
pub use event::{AssetScales, account_dto, event_dto, event_hash, transaction_dto};
pub use json::canonical_json;
pub use talea_verify::checkpoint::{Checkpoint, KeyList, PublicKey};
pub use talea_verify::files::{ConsistencyProof, InclusionProof, LiabilityProof, LiabilityStep};
pub use talea_verify::snapshot::{LiabilitySnapshot, RefusedAccount};
pub use time::{format_timestamp, parse_timestamp};

use async_trait::async_trait;

/// A bulk post's items split into those that go on, in order, and the
/// refusals of the others by position (`None` where an item went on).
pub fn split_batch<T>(items: Vec<Result<T, ApiError>>) -> (Vec<T>, Vec<Option<ApiError>>) {
    let mut going = Vec::with_capacity(items.len());
    let mut refused = Vec::with_capacity(items.len());
    for item in items {
        match item {
            Ok(value) => {
                going.push(value);
                refused.push(None);
            }
            Err(e) => refused.push(Some(e)),
        }
    }
    (going, refused)
}

/// A bulk post's item count must be 1..=`BATCH_ITEMS_MAX`: the refusal of
/// any other, the same from the ledger, the SDK and the route.
pub fn check_batch_len(count: usize) -> Result<(), ApiError> {
    let max = talea_core::limits::BATCH_ITEMS_MAX;
    if (1..=max).contains(&count) {
        return Ok(());
    }
    Err(ApiError::invalid(
        "/transactions",
        format!("a bulk post holds 1 to {max} transactions, not {count}"),
    ))
}

/// The ledger's interface. Every method validates its raw inputs (names,
/// amounts, limits, timestamps) and reports failures as [`ApiError`], so both
/// implementations refuse the same inputs with the same codes.
///
/// Authorization is not part of the trait: the HTTP layer decides scope before
/// calling it, and the SDK presents its token to that layer.
#[async_trait]
pub trait LedgerApi: Send + Sync {
    /// Registers an asset; `created` is false for an identical re-registration.
    async fn register_asset(&self, request: AssetRequest) -> Result<Created<AssetDto>, ApiError>;

    /// Every registered asset.
    async fn assets(&self) -> Result<AssetList, ApiError>;

    /// Opens an account; `created` is false for an identical re-open.
    async fn open_account(
        &self,
        book: &str,
        request: OpenAccountRequest,
    ) -> Result<Created<AccountDto>, ApiError>;

    /// A page of a book's accounts, by name.
    async fn accounts(&self, book: &str, page: NamePage) -> Result<AccountList, ApiError>;

    /// One account with its current balances.
    async fn account(&self, book: &str, account: &str) -> Result<AccountDto, ApiError>;

    /// Posts a transaction; a replay of a committed request comes back with
    /// `deduplicated: true` and the original commit.
    async fn post_transaction(
        &self,
        book: &str,
        request: PostTransactionRequest,
    ) -> Result<TransactionDto, ApiError>;

    /// Posts several transactions of `book` as one unit (one storage
    /// transaction wherever it fits): each answered as its own post would
    /// be, in order; seqs follow the order of the items that commit. Fails
    /// as a whole only for what fails a whole request (the book's name, a
    /// full queue, the count outside 1..=`BATCH_ITEMS_MAX`).
    async fn post_many(
        &self,
        book: &str,
        requests: Vec<PostTransactionRequest>,
    ) -> Result<Vec<Result<TransactionDto, ApiError>>, ApiError>;

    /// Settles a hold (`tx_id`): posts all of it, or the request's
    /// `postings` and releases the rest. A replay answers the original
    /// settle with `deduplicated: true`.
    async fn settle(
        &self,
        book: &str,
        tx_id: &str,
        request: SettleRequest,
    ) -> Result<TransactionDto, ApiError>;

    /// Voids a hold (`tx_id`): releases it, posting nothing. A replay
    /// answers the original void with `deduplicated: true`.
    async fn void(
        &self,
        book: &str,
        tx_id: &str,
        request: VoidRequest,
    ) -> Result<TransactionDto, ApiError>;

    /// A page of a book's transactions in seq order.
    async fn transactions(&self, book: &str, page: SeqPage) -> Result<TransactionList, ApiError>;

    /// One transaction by id (any book).
    async fn transaction(&self, tx_id: &str) -> Result<TransactionDto, ApiError>;

    /// A page of a book's transactions that pass the search's filters, in
    /// seq order. `next_after_seq` is set when more may follow: after a
    /// full page, or where the search stopped after examining its limit of
    /// candidates (a page may then hold fewer than `limit`, even none).
    async fn search_transactions(
        &self,
        book: &str,
        query: TransactionSearch,
    ) -> Result<TransactionList, ApiError>;

    /// The book's pending holds, soonest `expires_at` first, at most
    /// `limit` (1..=1000, default 100).
    async fn pending_holds(&self, book: &str, limit: Option<u32>) -> Result<HoldList, ApiError>;

    /// An account's balances now or as of a commit time.
    async fn balances(
        &self,
        book: &str,
        account: &str,
        as_of: Option<&str>,
    ) -> Result<BalancesDto, ApiError>;

    /// The balances of a book's accounts under a name prefix (optionally
    /// of one asset): how many match, totals over all of them, and a page
    /// of them by name.
    async fn book_balances(
        &self,
        book: &str,
        query: BookBalancesQuery,
    ) -> Result<BookBalancesDto, ApiError>;

    /// An account's posted balance in one asset over a time range: every
    /// change (paged) or downsampled into `points` equal buckets.
    async fn balance_history(
        &self,
        book: &str,
        account: &str,
        query: BalanceHistoryQuery,
    ) -> Result<BalanceHistoryDto, ApiError>;

    /// A page of an account's postings with running balances.
    async fn account_postings(
        &self,
        book: &str,
        account: &str,
        page: SeqPage,
    ) -> Result<PostingList, ApiError>;

    /// Totals per account and asset, now or as of a commit time.
    async fn trial_balance(
        &self,
        book: &str,
        as_of: Option<&str>,
    ) -> Result<TrialBalanceDto, ApiError>;

    /// A page of a book's event log.
    async fn events(&self, book: &str, page: SeqPage) -> Result<EventList, ApiError>;

    /// Every book with at least one event.
    async fn books(&self) -> Result<BookList, ApiError>;

    /// The public keys that sign checkpoints: the current one first, then
    /// retired ones (`docs/proofs.md`).
    async fn keys(&self) -> Result<KeyList, ApiError>;

    /// The book's latest signed checkpoint (tree head).
    async fn checkpoint(&self, book: &str) -> Result<Checkpoint, ApiError>;

    /// The audit path of event `seq` in the book's tree of `tree_size`
    /// events (the latest checkpoint's size when `None`).
    async fn inclusion_proof(
        &self,
        book: &str,
        seq: u64,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, ApiError>;

    /// The proof that the book's tree of `from` events is a prefix of its
    /// tree of `to` events, with both roots.
    async fn consistency_proof(
        &self,
        book: &str,
        from: u64,
        to: u64,
    ) -> Result<ConsistencyProof, ApiError>;

    /// Takes, signs and keeps a liability snapshot of the book's accounts
    /// under `request.prefix` in `request.asset`, at its last seq
    /// (`docs/proofs.md`, "Proof of liabilities").
    async fn create_liability_snapshot(
        &self,
        book: &str,
        request: LiabilityRequest,
    ) -> Result<LiabilitySnapshot, ApiError>;

    /// A kept liability snapshot.
    async fn liability_snapshot(
        &self,
        book: &str,
        snapshot: &str,
    ) -> Result<LiabilitySnapshot, ApiError>;

    /// One account's proof in a kept liability snapshot.
    async fn liability_proof(
        &self,
        book: &str,
        snapshot: &str,
        account: &str,
    ) -> Result<LiabilityProof, ApiError>;
}
