//! The `SqlBackend` trait: what a SQL database must provide for the shared core to be its store.
//!
//! The core writes every read, the group-commit protocol and the decoding of
//! rows once; a backend supplies only what truly differs between databases:
//! how to get a connection, how to bind a [`Param`] and read a column, the
//! statements whose text differs ([`Dialect`]), how a write transaction
//! starts and takes its locks, how rows are written, and how commits are
//! announced.

use std::collections::HashMap;
use std::future::Future;

use sqlx::Row as _;
use sqlx::error::DatabaseError;
use sqlx::pool::PoolConnection;
use talea_core::{Draft, Timestamp};
use talea_store::{Backend, Notice, PoolStats, Rejection, StoreError};

use crate::error::Class;
use crate::rows::{Advance, Rows};
use crate::scales::ScaleCache;

/// A connection of backend `B` (a pooled connection or a transaction derefs to it).
pub type Conn<B> = <<B as SqlBackend>::Db as sqlx::Database>::Connection;

/// A result row of backend `B`.
pub type Row<B> = <<B as SqlBackend>::Db as sqlx::Database>::Row;

/// A write transaction of backend `B`, holding its pooled connection.
pub type Tx<B> = sqlx::Transaction<'static, <B as SqlBackend>::Db>;

/// The column types that every driver decodes alike, read the same way;
/// implemented for each sqlx driver that decodes them.
pub trait Columns: sqlx::Database {
    /// A text column (NULL: `None`).
    fn text(row: &Self::Row, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// An integer column.
    fn int(row: &Self::Row, column: &str) -> Result<Option<i64>, sqlx::Error>;
    /// A UUID column.
    fn uuid(row: &Self::Row, column: &str) -> Result<Option<uuid::Uuid>, sqlx::Error>;
    /// A byte-string column.
    fn bytes(row: &Self::Row, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error>;
}

impl<DB> Columns for DB
where
    DB: sqlx::Database,
    for<'r> String: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> i64: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> uuid::Uuid: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Vec<u8>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'a> &'a str: sqlx::ColumnIndex<DB::Row>,
{
    fn text(row: &DB::Row, column: &str) -> Result<Option<String>, sqlx::Error> {
        row.try_get(column)
    }

    fn int(row: &DB::Row, column: &str) -> Result<Option<i64>, sqlx::Error> {
        row.try_get(column)
    }

    fn uuid(row: &DB::Row, column: &str) -> Result<Option<uuid::Uuid>, sqlx::Error> {
        row.try_get(column)
    }

    fn bytes(row: &DB::Row, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        row.try_get(column)
    }
}

/// A statement parameter in the neutral form the shared statements use;
/// each backend binds it in its own types.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    /// Text (or NULL).
    Text(Option<&'a str>),
    /// A 64-bit integer.
    Int(i64),
    /// A 64-bit integer or NULL.
    OptInt(Option<i64>),
    /// A UUID.
    Uuid(uuid::Uuid),
    /// An instant: a commit time to store, or an `as_of` bound that commit
    /// times are compared with. A backend clamps it into what it can
    /// represent, which keeps a bound's meaning and never changes a commit
    /// time (those come from the store's own clock).
    Time(Timestamp),
    /// A list of texts, or NULL for "no filter" (Postgres: `text[]`;
    /// SQLite: a JSON array read with `json_each`).
    Texts(Option<&'a [&'a str]>),
    /// A list of integers (as [`Param::Texts`]).
    Ints(&'a [i64]),
    /// A list of UUIDs (Postgres: `uuid[]`; SQLite: a JSON array of their
    /// hex texts, read back with `unhex`).
    Uuids(&'a [uuid::Uuid]),
    /// A UUID or NULL.
    OptUuid(Option<uuid::Uuid>),
    /// An instant or NULL (as [`Param::Time`]).
    OptTime(Option<Timestamp>),
    /// A byte string.
    Bytes(&'a [u8]),
}

/// The statements whose text differs between dialects: lists (arrays
/// against `json_each`), lateral joins, and planner hints. Every other
/// statement is written once in the core, with `$n` parameters (which
/// SQLite reads as positional too) and `CAST`s that both databases take.
///
/// Each statement's parameters and result columns are documented on its
/// field; a backend's text must take and return exactly those.
#[derive(Debug, Clone, Copy)]
pub struct Dialect {
    /// `$1` book, `$2` account, `$3` time → `asset, balance` (text): the
    /// account's balance per asset held at the last commit at or before the
    /// time, by asset; nothing when no commit is that old.
    pub balances_as_of: &'static str,
    /// `$1` book, `$2` names (list or NULL), `$3` limit → `last_seq,
    /// last_committed_at, name, kind, asset, balance`: the counter row joined
    /// with at most `$3` accounts by name and their balance rows, ordered by
    /// name then asset; no row when the book has no events.
    pub balance_cut: &'static str,
    /// `$1` book, `$2` lowest name, `$3` name bound (exclusive) → `name,
    /// kind, asset, balance, amount` (text), ordered by name: per account
    /// of the range one row per balance row (`amount` NULL; one row with
    /// `asset` NULL when it has none) and one per leg of a live hold on it
    /// (`balance` NULL), in one snapshot. The range is a range of the
    /// `(book, name)` primary key of `accounts`.
    pub prefix_balances: &'static str,
    /// `$1` book, `$2` time → `account, kind, asset, debits, balance` (text):
    /// per pair, the totals after the last posting at or before the cut.
    pub trial_balance_as_of: &'static str,
    /// `$1` book, `$2` account, `$3` after seq, `$4` limit → `seq, tx_id,
    /// committed_at, asset, amount, balance_after`: at least `$4` postings,
    /// never splitting a transaction.
    pub account_postings: &'static str,
    /// `$1` book, `$2` seqs (list) → `seq, account, asset, amount,
    /// balance_after`, by seq then leg.
    pub postings_of: &'static str,
    /// `$1` tx id, `$2` books (list or NULL) → `book` and the transaction
    /// columns ([`crate::read::TRANSACTION_COLUMNS`]).
    pub transaction: &'static str,
    /// `$1` books, `$2` keys (parallel lists) → `book`, the transaction
    /// columns, `request_hash` and `hold_status` (a hold's current status).
    pub transactions_by_keys: &'static str,
    /// `$1` books, `$2` names (parallel lists), `$3` assets (list) → `book,
    /// name, kind, min_balance_mantissa, min_balance_scale, asset, balance,
    /// debits, credits`: each named account that exists, once per balance row
    /// in those assets (asset NULL when it has none).
    pub batch_accounts: &'static str,
    /// `$1` codes (list) → `code, scale` of those registered.
    pub scales: &'static str,
    /// `$1` code, `$2` scale, `$3` name: inserts the asset unless the code
    /// exists, returning a row only when it did.
    pub register_asset: &'static str,
    /// `$1` book, `$2` name, `$3` kind, `$4` min_balance mantissa (text or
    /// NULL), `$5` its scale, `$6` metadata, `$7` seq, `$8` time: inserts an
    /// `accounts` row.
    pub insert_account: &'static str,
    /// `$1` books, `$2` keys (parallel lists), `$3` books, `$4` tx ids
    /// (parallel lists) → `found_by`, then the columns of
    /// `transactions_by_keys` and `ended_tx_id`, `account, asset, amount,
    /// balance_after, leg`: rows `found_by` 'key' are `transactions_by_keys`'
    /// (legs NULL); rows 'id' are the transactions those ids name in those
    /// books, `hold_status` and `ended_tx_id` NULL unless a hold (resp. an
    /// ended one), one row per leg of a hold, one row with NULL legs for any
    /// other transaction; by `found_by`, book, seq and leg.
    pub keys_and_holds: &'static str,
    /// `$1` book, `$2` seqs (list) → `seq, account, asset, amount,
    /// balance_after` of those holds' legs, by seq then leg.
    pub hold_postings_of: &'static str,
    /// `$1` books, `$2` names (parallel lists), `$3` assets (list), `$4`
    /// books, `$5` names (parallel lists), `$6` time → `row_kind`, then the
    /// columns of `batch_accounts` and `amount` (text), `expires_at`: rows
    /// `row_kind` 'account' are `batch_accounts`' for `$1`/`$2`; rows 'held'
    /// (`book, name, asset, amount, expires_at`, the rest NULL) are every
    /// leg of the `$4` books' pending holds with no `expires_at` or one
    /// after the time, on those of the `$4`/`$5` accounts that have a
    /// `min_balance` (held amounts decide nothing else), in those assets.
    pub accounts_and_held: &'static str,
    /// `$1` book, `$2` account → `asset, balance, amount` (text), in one
    /// snapshot: the account's balance rows (amount NULL), then every leg
    /// on the account of the book's live holds (pending, not expired at the
    /// database's clock; balance NULL).
    pub balances_now: &'static str,
    /// `$1` book → `account, kind, asset, debits, credits, amount` (text),
    /// in one snapshot: the book's balance rows (amount NULL), then every
    /// leg of its live holds as in `balances_now` (debits and credits NULL).
    pub trial_balance_now: &'static str,
    /// `$1` book, `$2` seqs (list) → the transaction columns and
    /// `hold_status` of those seqs that are transactions, by seq.
    pub transactions_at: &'static str,
    /// `$1` book, `$2` after seq, `$3` last seq, `$4` limit, `$5` and `$6`
    /// a metadata match spelt as [`metadata_params`](Self::metadata_params)
    /// says → `seq`: transactions in `($2, $3]` whose metadata may match
    /// (a superset is fine: the predicate decides), by seq, at most `$4`.
    pub search_metadata: &'static str,
    /// How `search_metadata` takes a match.
    pub metadata_params: crate::search::MetadataParams,
}

/// A book's state under its write lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// The seq of its last event (0 without events).
    pub last_seq: u64,
    /// The commit time of everything this transaction appends to it: the
    /// store's clock, never earlier than the book's previous commit time.
    pub committed_at: Timestamp,
    /// Its pending holds (`books.open_holds`): held amounts are read only
    /// when there are some.
    pub open_holds: u64,
    /// The seq whose chain hash the counter row holds (`books.chain_seq`):
    /// `last_seq`, unless events were written before the chain existed
    /// (`crate::chain::catch_up` brings it up under the lock).
    pub chain_seq: u64,
    /// The chain hash of event `chain_seq` (32 zero bytes at 0).
    pub chain: [u8; 32],
}

/// A SQL database that the shared core turns into a `talea_store::Store`
/// (through [`crate::impl_store!`]).
///
/// Errors of statements come back as `sqlx::Error` so that the core can
/// tell a refused draft from a broken connection ([`SqlBackend::classify`]).
pub trait SqlBackend: Send + Sync + std::fmt::Debug + 'static {
    /// The sqlx driver.
    type Db: Columns;
    /// Which backend this is.
    const BACKEND: Backend;
    /// The statements whose text is this dialect's own.
    const SQL: Dialect;

    /// A connection for reads.
    fn reader(&self) -> impl Future<Output = Result<PoolConnection<Self::Db>, StoreError>> + Send;

    /// The connection writes go through.
    fn writer(&self) -> impl Future<Output = Result<PoolConnection<Self::Db>, StoreError>> + Send;

    /// Pool usage, for metrics.
    fn pool_stats(&self) -> PoolStats;

    /// The cache of asset scales shared by this store's handles.
    fn scale_cache(&self) -> &ScaleCache;

    /// Runs `sql` with `params` bound in order; all result rows.
    fn fetch(
        conn: &mut Conn<Self>,
        sql: &str,
        params: &[Param<'_>],
    ) -> impl Future<Output = Result<Vec<Row<Self>>, sqlx::Error>> + Send;

    /// Runs statements without parameters or preparation (savepoints):
    /// several may share one round trip.
    fn control(
        conn: &mut Conn<Self>,
        sql: &'static str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// A commit-time column (the one column type the drivers store
    /// differently; the others are read through [`Columns`]).
    fn time(row: &Row<Self>, column: &str) -> Result<Option<Timestamp>, sqlx::Error>;

    /// What an error the database itself reported means to the store
    /// (see [`Class`]), by its code and constraint, never its message.
    fn classify_database(error: &dyn DatabaseError) -> Class;
    /// A short description of an error the database reported, with its code.
    fn describe_database(error: &dyn DatabaseError) -> String;

    /// Starts a write transaction and locks `books` (distinct) for it, in
    /// an order every writer shares (so that writers never deadlock); the
    /// head of each book, by name. A book without events has head 0. Under
    /// the locks every statement sees every earlier commit of those books.
    fn begin_locked(
        &self,
        books: &[&str],
    ) -> impl Future<Output = Result<(Tx<Self>, HashMap<String, Head>), StoreError>> + Send;

    /// Writes `rows`, the plain ones and those only holds, settles and
    /// voids have (`special`, `hold_postings`, `holds`, `hold_ends`); with
    /// `advance`, also moves the books' counters (and notifies, where
    /// notifications are part of the transaction). Fails if a hold to end
    /// is not pending ([`crate::write::not_pending`]).
    fn write_rows(
        conn: &mut Conn<Self>,
        rows: &Rows<'_>,
        advance: Option<&Advance>,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Moves the books' counters (and notifies, as in `write_rows`).
    fn advance(
        conn: &mut Conn<Self>,
        advance: &Advance,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Called once the transaction that made `advance` has committed: where
    /// commit notices are not part of the transaction, announce them here.
    fn committed(&self, advance: &Advance) {
        let _ = advance;
    }

    /// A refusal of this backend's own, beyond the shared planner's rules
    /// (a value the database cannot store).
    fn check_draft(draft: &Draft) -> Result<(), Rejection> {
        let _ = draft;
        Ok(())
    }

    /// Checks that the store answers.
    fn ping(&self) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// A receiver of commit notices (see `Store::watch`).
    fn watch(
        &self,
    ) -> impl Future<Output = Result<tokio::sync::broadcast::Receiver<Notice>, StoreError>> + Send;
}
