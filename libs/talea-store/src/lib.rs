//! The persistence boundary: the `Store` trait every backend implements, and its errors.
//!
//! A store owns the book logs and their projections (accounts, postings,
//! balances, idempotency keys). Writes arrive in batches so that a backend can
//! amortise its lock and its fsync over many drafts; see `commit_batch`.

use async_trait::async_trait;
use talea_core::{
    Account, AccountName, Amount, Asset, AssetCode, BookName, Commit, Draft, Event, NewAccount,
    Timestamp, TxId, TxStatus,
};

#[cfg(feature = "conformance")]
pub mod conformance;
pub mod feed;
pub mod history;
pub mod liabilities;
pub mod plan;
pub mod prefix;
pub mod search;
pub mod stored;

pub use feed::{EventStream, Notice, NoticeBus, subscribe};
pub use history::{BalanceChange, BalanceHistory, Bucket, HistoryRange};
pub use liabilities::LiabilitySnapshot;
pub use prefix::{KindTotal, PrefixBalances};
pub use search::{Driver, MetadataMatch, TxFilter, TxSearchPage};

/// Which backend a store is, reported in `X-Talea-Backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL, the distributed production store.
    Postgres,
    /// SQLite, the embedded default.
    Sqlite,
    /// The append-log store.
    Log,
}

impl Backend {
    /// The header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
            Self::Log => "log",
        }
    }
}

/// A failure of the store itself (not a refusal of a draft, see [`Rejection`]).
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The store cannot be reached or its connection broke; retrying later may work.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// The schema is missing or older than this binary expects.
    #[error("storage schema is not migrated: {0}")]
    NotMigrated(String),
    /// Stored data could not be decoded into domain values (a bug or corruption).
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    /// Anything else the backend reported.
    #[error("storage error: {0}")]
    Other(String),
}

/// The result of registering an asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered<T> {
    /// Newly created by this call.
    Created(T),
    /// Already present; the stored definition is returned unchanged, for the
    /// caller to compare with what it asked for.
    Existing(T),
}

/// Why one draft of a batch was refused by the store (the batch goes on without it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rejection {
    /// The key was used before with a different request; the original's id.
    IdempotencyKeyReused(TxId),
    /// A posting names an account not opened in this book.
    UnknownAccount(AccountName),
    /// A posting would take `account` below its `min_balance` in `asset`;
    /// `balance` is the storage balance before the draft.
    InsufficientBalance {
        /// The account.
        account: AccountName,
        /// The asset.
        asset: AssetCode,
        /// Storage balance (debits minus credits) before the draft.
        balance: Amount,
    },
    /// A resulting balance would not fit 128 bits.
    AmountOutOfRange,
    /// A hold's `expires_at` is not after the batch's commit time (checked
    /// after the key, so a replay of a hold whose expiry has passed is
    /// answered with the original).
    ExpiresInPast,
    /// A settle or void names a transaction that is not in this book.
    UnknownTransaction(TxId),
    /// A settle or void names a transaction that is not a hold.
    NotAHold(TxId),
    /// The hold ended before: how (`Posted`, `Voided` or `Expired`) and the
    /// transaction that ended it (none for an expiry).
    HoldNotPending {
        /// How it ended.
        status: TxStatus,
        /// The settle or void that ended it.
        ended_by: Option<TxId>,
    },
    /// A settle posts more than the hold holds on one (account, asset,
    /// side); `held` is zero for a leg the hold does not have.
    ExceedsHold {
        /// The account.
        account: AccountName,
        /// The asset.
        asset: AssetCode,
        /// What the hold holds there, in minor units.
        held: Amount,
        /// What the settle asked to post there, in minor units.
        requested: Amount,
    },
    /// The database refused this draft alone (it was isolated with a savepoint).
    Failed(String),
}

/// What became of one draft of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Committed now.
    Committed(Commit),
    /// The same request was committed before (or earlier in this batch): the original.
    Deduplicated(Commit),
    /// Refused; nothing was written for it and its key stays free.
    Rejected(Rejection),
}

/// The result of opening an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Opened {
    /// Opened by this call, with its new event's seq.
    Created(Account),
    /// An account of that name already exists; the stored one, for comparison.
    Existing(Account),
}

/// Connection pool usage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// The most connections the pool will open.
    pub max: u32,
}

/// A book and the seq of its last event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookInfo {
    /// The book.
    pub book: BookName,
    /// Its last event's seq.
    pub last_seq: u64,
}

/// A posting as listed on an account's history page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountPosting {
    /// The transaction's seq.
    pub seq: u64,
    /// The transaction's id.
    pub tx_id: TxId,
    /// Its commit time.
    pub committed_at: Timestamp,
    /// The asset.
    pub asset: AssetCode,
    /// Signed storage amount: above zero for a debit, below for a credit.
    pub amount: Amount,
    /// The account's storage balance in this asset right after the posting.
    pub balance_after: Amount,
}

/// One row of a trial balance: an account's totals in one asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrialRow {
    /// The account.
    pub account: AccountName,
    /// Its kind (for the normal-side balance).
    pub kind: talea_core::AccountKind,
    /// The asset.
    pub asset: AssetCode,
    /// Sum of debits, at or above zero.
    pub debits: Amount,
    /// Sum of credits, at or above zero.
    pub credits: Amount,
    /// What live holds reserve on the account in the asset (not in the totals).
    pub held: Held,
}

/// A storage-side balance of one account in one asset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Balance {
    /// The asset.
    pub asset: AssetCode,
    /// Debits minus credits, posted.
    pub balance: Amount,
    /// What live holds reserve on the account in the asset.
    pub held: Held,
}

/// The debits and credits reserved by live holds (pending, not expired at
/// the moment read) on one account in one asset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Held {
    /// Held debits, at or above zero, in minor units.
    pub debits: Amount,
    /// Held credits, at or above zero, in minor units.
    pub credits: Amount,
}

impl Held {
    /// Whether nothing is held.
    pub fn is_zero(&self) -> bool {
        self.debits == Amount::ZERO && self.credits == Amount::ZERO
    }
}

/// A hold whose `expires_at` has passed, ended by [`Store::expire_holds`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expiry {
    /// The seq of its `hold_expired` event.
    pub seq: u64,
    /// That event's commit time.
    pub committed_at: Timestamp,
    /// The hold, with status `Expired`.
    pub hold: Commit,
}

/// A signed tree head of a book's log (`docs/proofs.md`, "Checkpoints"),
/// as a store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The book.
    pub book: BookName,
    /// Events 1..=tree_size are its leaves.
    pub tree_size: u64,
    /// Their RFC 9162 Merkle root.
    pub root_hash: [u8; 32],
    /// When it was signed (µs, the signed text's precision).
    pub timestamp: Timestamp,
    /// The signing key's id (16 lowercase hex digits).
    pub key_id: String,
    /// The Ed25519 signature of the checkpoint message.
    pub signature: [u8; 64],
}

/// A live hold that expires soon, as [`Store::due_holds`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueHold {
    /// Its book.
    pub book: BookName,
    /// Its `expires_at`.
    pub expires_at: Timestamp,
}

/// One account's storage balances, as part of a [`BalanceCut`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountBalances {
    /// The account.
    pub account: AccountName,
    /// Its kind (for normal-side balances).
    pub kind: talea_core::AccountKind,
    /// Per asset it ever held, by asset code.
    pub balances: Vec<Balance>,
}

/// A book's balances exactly as of one seq: everything committed up to
/// `last_seq` and nothing after, read in one consistent snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceCut {
    /// The book's last seq at the cut.
    pub last_seq: u64,
    /// That event's commit time.
    pub committed_at: Timestamp,
    /// The accounts asked for that exist at the cut, by name.
    pub accounts: Vec<AccountBalances>,
}

impl BalanceCut {
    /// An empty cut at `last_seq`, to fill with [`BalanceCut::push`].
    pub fn new(last_seq: u64, committed_at: Timestamp) -> Self {
        Self {
            last_seq,
            committed_at,
            accounts: Vec::new(),
        }
    }

    /// Adds one row of a backend's `(account, kind, asset, balance)`
    /// listing, ordered by account: a row without a balance is an account
    /// that never held anything.
    pub fn push(
        &mut self,
        account: AccountName,
        kind: talea_core::AccountKind,
        balance: Option<Balance>,
    ) {
        let same = self.accounts.last().is_some_and(|a| a.account == account);
        if !same {
            self.accounts.push(AccountBalances {
                account,
                kind,
                balances: Vec::new(),
            });
        }
        if let (Some(balance), Some(last)) = (balance, self.accounts.last_mut()) {
            last.balances.push(balance);
        }
    }
}

/// One book's drafts, for [`Store::commit_books`].
#[derive(Debug, Clone, Copy)]
pub struct BookBatch<'a> {
    /// The book the drafts go to.
    pub book: &'a BookName,
    /// The drafts, in the order they are decided.
    pub drafts: &'a [Draft],
}

/// The error for batches naming a book twice, or `None` when every book is distinct.
pub fn repeated_book(batches: &[BookBatch<'_>]) -> Option<StoreError> {
    let mut seen = std::collections::HashSet::with_capacity(batches.len());
    batches
        .iter()
        .find(|batch| !seen.insert(batch.book))
        .map(|batch| StoreError::Other(format!("book {} appears twice in one commit", batch.book)))
}

/// Spreads the result of one storage transaction that held `batches`
/// batches over them, as `Store::commit_books` answers: each batch's
/// outcomes, or the same error for every batch (they shared its fate).
pub fn shared_fate(
    result: Result<Vec<Vec<Outcome>>, StoreError>,
    batches: usize,
) -> Vec<Result<Vec<Outcome>, StoreError>> {
    match result {
        Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
        Err(err) => vec![Err(err); batches],
    }
}

/// The persistence trait. Every method is safe to call concurrently from many
/// tasks and (for Postgres) from many processes: the store is the arbiter.
///
/// Paging arguments (`limit`) are already validated by the caller (1..=1000).
/// Methods on an unknown book behave as on an empty book; the caller decides
/// whether that is a 404.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Checks that the store answers (readiness).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Connection pool usage, for metrics; `None` where the backend has no pool.
    fn pool_stats(&self) -> Option<PoolStats> {
        None
    }

    /// Registers an asset, or returns the existing definition of that code unchanged.
    async fn register_asset(&self, asset: &Asset) -> Result<Registered<Asset>, StoreError>;

    /// One asset by code.
    async fn asset(&self, code: &AssetCode) -> Result<Option<Asset>, StoreError>;

    /// Every asset, by code.
    async fn assets(&self) -> Result<Vec<Asset>, StoreError>;

    /// Opens an account: appends its `account_opened` event (taking the next
    /// seq of the book, creating the book with its first event). If the name
    /// exists, writes nothing and returns the stored account.
    async fn open_account(
        &self,
        book: &BookName,
        account: &NewAccount,
    ) -> Result<Opened, StoreError>;

    /// Commits one batch of drafts for each of several distinct books, in
    /// as few storage transactions as the backend can: the SQL stores commit
    /// them all in one (taking the books' locks in an order every writer
    /// shares, so concurrent callers never deadlock); the log store, one
    /// after another. This is the one write entry point of a backend;
    /// [`commit_batch`](Self::commit_batch) is its one-book case.
    ///
    /// Returns one result per batch, in order. For each batch: one outcome
    /// per draft, in order. Drafts are applied in order: a later draft sees
    /// the balances left by the earlier committed ones. A draft whose key
    /// was committed before with the same request hash (or earlier in this
    /// batch) is `Deduplicated` with the original commit; with another hash,
    /// `Rejected(IdempotencyKeyReused)`. Only committed drafts take seqs, so
    /// the log stays dense. A batch shares one commit time, taken from the
    /// store's clock under the book's lock, never earlier than the book's
    /// previous commit time. `Err` means the batch was not acknowledged:
    /// nothing was written, except when the connection broke during the
    /// commit itself, where the outcome is unknown. Either way the callers
    /// retry with the same keys, which is safe. Batches sharing a storage
    /// transaction share its fate: an `Err` for one is an `Err` for all of
    /// them. The caller guarantees the books are distinct (a book repeated
    /// is refused with `StoreError::Other` for every batch).
    async fn commit_books(
        &self,
        batches: &[BookBatch<'_>],
    ) -> Vec<Result<Vec<Outcome>, StoreError>>;

    /// Commits a batch of drafts to one book: [`commit_books`](Self::commit_books)
    /// with one batch. Provided; a backend does not override it.
    async fn commit_batch(
        &self,
        book: &BookName,
        drafts: &[Draft],
    ) -> Result<Vec<Outcome>, StoreError> {
        self.commit_books(&[BookBatch { book, drafts }])
            .await
            .pop()
            .unwrap_or_else(|| {
                Err(StoreError::Other(format!(
                    "book {book}: no outcomes for the batch"
                )))
            })
    }

    /// Books with at least one event, by name.
    async fn books(&self) -> Result<Vec<BookInfo>, StoreError>;

    /// A book's last seq, or `None` if it has no events.
    async fn last_seq(&self, book: &BookName) -> Result<Option<u64>, StoreError>;

    /// One account.
    async fn account(
        &self,
        book: &BookName,
        name: &AccountName,
    ) -> Result<Option<Account>, StoreError>;

    /// Accounts by name, strictly after `after`, at most `limit`.
    async fn accounts(
        &self,
        book: &BookName,
        after: Option<&AccountName>,
        limit: u32,
    ) -> Result<Vec<Account>, StoreError>;

    /// An account's storage balances per asset, ordered by asset code, as of
    /// `as_of` (inclusive, by commit time) or now. Assets it never touched
    /// (posted or held) are absent. `held` is what the book's holds reserved
    /// at that instant: committed by then, not ended by then, and not
    /// expired at it (an `expires_at` at or before it reserves nothing,
    /// even before its `hold_expired` event is appended).
    async fn balances(
        &self,
        book: &BookName,
        account: &AccountName,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<Balance>, StoreError>;

    /// The current balances of the book's accounts (only those named in
    /// `accounts` when given; names that do not exist are left out), at most
    /// `limit` accounts by name, together with the last seq and commit time
    /// they correspond to: one consistent read, so the balances are exactly
    /// those after every event up to `last_seq` and none after. `None` when
    /// the book has no events.
    async fn balance_cut(
        &self,
        book: &BookName,
        accounts: Option<&[AccountName]>,
        limit: u32,
    ) -> Result<Option<BalanceCut>, StoreError>;

    /// The current balances of the accounts whose name starts with `prefix`
    /// (every account of the book for `None`), only in `asset` when given:
    /// how many accounts match, totals over all of them per kind and asset
    /// (storage balance and held amounts, as [`balances`](Self::balances)
    /// reads them now), and one page of them strictly after `after`, by
    /// name, at most `limit`. One consistent read; it costs O(matching
    /// accounts and their balances) on every backend, for the totals.
    async fn prefix_balances(
        &self,
        book: &BookName,
        prefix: Option<&AccountName>,
        asset: Option<&AssetCode>,
        after: Option<&AccountName>,
        limit: u32,
    ) -> Result<PrefixBalances, StoreError>;

    /// An account's postings with seq above `after_seq`, in (seq, leg) order.
    /// Returns at least `limit` postings when that many exist, plus any further
    /// postings of the last transaction included, so a transaction is never
    /// split across pages.
    async fn account_postings(
        &self,
        book: &BookName,
        account: &AccountName,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AccountPosting>, StoreError>;

    /// The account's storage balance in `asset` after each committed event
    /// that changed it, within `range` (see [`HistoryRange`]), with the
    /// balance before the first change returned. Posted balances only:
    /// holds do not appear. The SQL stores read the pair's range of
    /// `postings_account_asset_idx`, the log store the pair's history in
    /// memory: O(the changes returned).
    async fn balance_history(
        &self,
        book: &BookName,
        account: &AccountName,
        asset: &AssetCode,
        range: HistoryRange,
    ) -> Result<BalanceHistory, StoreError>;

    /// Totals per account and asset over commits at or before `as_of` (or
    /// all), with what live holds reserved at that instant (as in
    /// [`balances`](Self::balances); a pair with only held amounts has zero totals),
    /// ordered by account then asset.
    async fn trial_balance(
        &self,
        book: &BookName,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<TrialRow>, StoreError>;

    /// Transactions with seq above `after_seq`, in seq order, at most `limit`.
    async fn transactions(
        &self,
        book: &BookName,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Commit>, StoreError>;

    /// The book's transactions that pass `filter` (see [`TxFilter`]), with
    /// seq above `after_seq`, in seq order, at most `limit`: the shared
    /// [`search::Collector`] over candidates from the index of the filter's
    /// [`Driver`] (each backend documents its indexes and their cost), so
    /// a call examines at most
    /// [`SEARCH_SCAN_MAX`](talea_core::limits::SEARCH_SCAN_MAX)
    /// candidates and says where it stopped when it stopped early.
    async fn search_transactions(
        &self,
        book: &BookName,
        filter: &TxFilter,
        after_seq: u64,
        limit: u32,
    ) -> Result<TxSearchPage, StoreError>;

    /// The book's pending holds with their legs, soonest `expires_at`
    /// first (then by seq), those without an expiry after them by seq, at
    /// most `limit`. A hold past its expiry whose `hold_expired` event is
    /// not yet appended is still pending here (first in line).
    async fn pending_holds(&self, book: &BookName, limit: u32) -> Result<Vec<Commit>, StoreError>;

    /// One transaction by id: in whatever book it is, or with `books` only
    /// if it is in one of them (what a token limited to those books may
    /// see). An id in another book does the same work as an unknown one
    /// (one lookup, found nothing), so neither the answer nor its time
    /// tells them apart.
    async fn transaction(
        &self,
        tx_id: TxId,
        books: Option<&[&str]>,
    ) -> Result<Option<Commit>, StoreError>;

    /// Events with seq above `after_seq`, in seq order, at most `limit`.
    async fn events(
        &self,
        book: &BookName,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError>;

    /// Ends every hold of `book` that is still pending and whose
    /// `expires_at` is at or before the commit time taken under the book's
    /// lock: appends one `hold_expired` event each. Exactly once across
    /// callers and processes (the lock orders them; a hold already ended is
    /// skipped). The expiries, in seq order.
    async fn expire_holds(&self, book: &BookName) -> Result<Vec<Expiry>, StoreError>;

    /// Up to `limit` pending holds with an `expires_at` at or before
    /// `until`, earliest first, for the expirer to end (a book may come
    /// more than once).
    async fn due_holds(&self, until: Timestamp, limit: u32) -> Result<Vec<DueHold>, StoreError>;

    /// The chain hashes of `book`'s events with seq above `after_seq`, in seq
    /// order, at most `limit` (`None` for an event not chained yet): the
    /// leaves of the book's Merkle tree, read without the events' data.
    async fn event_hashes(
        &self,
        book: &BookName,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Option<[u8; 32]>>, StoreError>;

    /// Keeps a signed checkpoint of `checkpoint.book`; false when one of
    /// the same tree size was kept before (that one stays: the first kept
    /// wins, so every instance serves the same checkpoint).
    async fn save_checkpoint(&self, checkpoint: &Checkpoint) -> Result<bool, StoreError>;

    /// The kept checkpoint of `book` with the largest tree size, if any.
    async fn latest_checkpoint(&self, book: &BookName) -> Result<Option<Checkpoint>, StoreError>;

    /// Keeps a signed liability snapshot with its balances. Ids are drawn
    /// at random: saving an id kept before is an error, never an overwrite.
    async fn save_liability_snapshot(&self, snapshot: &LiabilitySnapshot)
    -> Result<(), StoreError>;

    /// The kept liability snapshot `id` of `book`, if any.
    async fn liability_snapshot(
        &self,
        book: &BookName,
        id: &str,
    ) -> Result<Option<LiabilitySnapshot>, StoreError>;

    /// A receiver of commit notices: after every durable commit or account
    /// open (by this process, and for Postgres by any process), a
    /// [`Notice`] with the book's new last seq. Notices are hints that may be
    /// lost or repeated; [`subscribe`] builds the gapless event stream on
    /// them. A backend keeps at most one listener of its own however many
    /// receivers it hands out (Postgres: one LISTEN connection per store).
    async fn watch(&self) -> Result<tokio::sync::broadcast::Receiver<Notice>, StoreError>;
}
