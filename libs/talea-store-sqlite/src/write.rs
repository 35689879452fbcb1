//! The write side of `SqliteStore`: asset registration, account opening and group commit.
//!
//! Every write runs on the store's one writer connection, and every write
//! transaction is `BEGIN IMMEDIATE`: it takes SQLite's write lock before it
//! reads anything it decides on. Within the process the writer pool (one
//! connection) already serializes writers in FIFO order; the lock extends
//! that to other processes on the same file, which wait up to the busy
//! timeout. Under the lock every statement sees every earlier commit, so
//! key and balance lookups are authoritative: this is Postgres's "book
//! counter row lock", held for the whole file rather than per book.
//!
//! `commit_books` (one write transaction for every book of the call, each
//! book in a savepoint of its own; `commit_batch` is its one-book case)
//! follows the same protocol as Postgres for each book: read the batch's
//! inputs in a few statements, decide every draft in memory with the shared
//! planner (`talea_store::plan`), write the passing drafts set-wise, move
//! the book's counter once, commit (one fsync), then announce the new last
//! seq. A set-wise write the database refuses is rolled back to a savepoint
//! and the drafts are written one by one, each in its own savepoint.

use std::collections::HashMap;

use sqlx::{Connection, SqliteConnection};
use talea_core::{Account, AccountName, Asset, AssetCode, BookName, Draft, NewAccount, Timestamp};
use talea_store::plan::{
    AccountRule, Loaded, Pair, Planned, Planner, StoredKey, Totals, Verdict, Wanted,
    final_balances, outcomes,
};
use talea_store::{BookBatch, Opened, Outcome, Registered, Rejection, StoreError, repeated_book};

use crate::SqliteStore;
use crate::codec::{self, amount_text, get, new_seq_param};
use crate::error::{Class, classify, describe, store_error};
use crate::read;
use crate::rows::{self, Bound, Row};

/// How every write transaction starts: with SQLite's write lock taken at
/// once. A deferred `BEGIN` would read under a snapshot and could then fail
/// to upgrade to a writer (`SQLITE_BUSY_SNAPSHOT`, which no timeout cures).
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// Registers an asset unless its code exists.
pub(crate) async fn register_asset(
    store: &SqliteStore,
    asset: &Asset,
) -> Result<Registered<Asset>, StoreError> {
    let mut conn = store.writer().await?;
    let inserted = sqlx::query(
        "INSERT INTO assets (code, scale, name, created_at) VALUES (?1, ?2, ?3, ?4) \
         ON CONFLICT (code) DO NOTHING",
    )
    .bind(asset.code.as_str())
    .bind(i64::from(asset.scale.digits()))
    .bind(asset.name.as_deref())
    .bind(codec::now().micros())
    .execute(&mut *conn)
    .await
    .map_err(store_error)?
    .rows_affected();
    if inserted == 1 {
        return Ok(Registered::Created(asset.clone()));
    }
    // Read on the writer: the conflicting row committed before this
    // statement took the write lock, so the writer sees it.
    read::asset(&mut conn, &asset.code)
        .await?
        .map(Registered::Existing)
        .ok_or_else(|| {
            StoreError::Other(format!(
                "asset {} conflicted but cannot be read",
                asset.code
            ))
        })
}

/// A book's state under the write lock.
#[derive(Debug, Clone, Copy)]
struct Head {
    last_seq: u64,
    /// The commit time of everything this transaction appends.
    committed_at: Timestamp,
}

/// Reads the book's counter row under the write lock and takes the commit
/// time: the system clock truncated to microseconds, raised to the book's
/// previous commit time so that it never goes backwards with seq, whatever
/// the clock does (or another process's clock did).
async fn head(conn: &mut SqliteConnection, book: &BookName) -> Result<Head, StoreError> {
    let (last_seq, previous) = read::head(conn, book).await?;
    let now = codec::now();
    Ok(Head {
        last_seq,
        committed_at: previous.map_or(now, |p| p.max(now)),
    })
}

/// Moves the book's counter to `last_seq` at `committed_at`, creating the
/// row with the book's first event.
async fn advance_book(
    conn: &mut SqliteConnection,
    book: &BookName,
    last_seq: u64,
    committed_at: Timestamp,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO books (book, last_seq, last_committed_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (book) DO UPDATE \
           SET last_seq = excluded.last_seq, last_committed_at = excluded.last_committed_at",
    )
    .bind(book.as_str())
    .bind(codec::seq_param(last_seq))
    .bind(committed_at.micros())
    .execute(conn)
    .await
    .map(|_| ())
}

/// Opens an account, appending its event, unless the name exists.
pub(crate) async fn open_account(
    store: &SqliteStore,
    book: &BookName,
    new: &NewAccount,
) -> Result<Opened, StoreError> {
    // Accounts are never changed or deleted, so one that exists without the
    // lock exists under it too: re-opens (seeding, retries) skip the writer.
    if let Some(existing) = read::account(&mut *store.reader().await?, book, &new.name).await? {
        return Ok(Opened::Existing(existing));
    }
    let mut conn = store.writer().await?;
    let mut tx = conn.begin_with(BEGIN_WRITE).await.map_err(store_error)?;
    let head = head(&mut tx, book).await?;
    if let Some(existing) = read::account(&mut tx, book, &new.name).await? {
        tx.rollback().await.map_err(store_error)?;
        return Ok(Opened::Existing(existing));
    }
    let seq = head.last_seq + 1;
    let seq_value = new_seq_param(seq)?;
    let (mantissa, scale) = codec::min_balance_parts(new.min_balance);
    let result: Result<(), sqlx::Error> = async {
        // The event first: the account row's foreign key points at it.
        sqlx::query(
            "INSERT INTO events (book, seq, type, committed_at) \
             VALUES (?1, ?2, 'account_opened', ?3)",
        )
        .bind(book.as_str())
        .bind(seq_value)
        .bind(head.committed_at.micros())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO accounts (book, name, kind, min_balance_mantissa, min_balance_scale, \
                                   metadata, seq, opened_at) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )
        .bind(book.as_str())
        .bind(new.name.as_str())
        .bind(new.kind.as_str())
        .bind(mantissa)
        .bind(scale)
        .bind(new.metadata.as_str())
        .bind(seq_value)
        .bind(head.committed_at.micros())
        .execute(&mut *tx)
        .await?;
        advance_book(&mut tx, book, seq, head.committed_at).await
    }
    .await;
    result.map_err(|e| write_error(book, e))?;
    tx.commit().await.map_err(store_error)?;
    store.bus().publish(book, seq);
    Ok(Opened::Created(Account {
        book: book.clone(),
        name: new.name.clone(),
        kind: new.kind,
        min_balance: new.min_balance,
        metadata: new.metadata.clone(),
        seq,
        opened_at: head.committed_at,
    }))
}

/// Runs transaction-control SQL (savepoints).
async fn control(conn: &mut SqliteConnection, sql: &'static str) -> Result<(), StoreError> {
    sqlx::Executor::execute(conn, sql)
        .await
        .map(|_| ())
        .map_err(store_error)
}

/// Whether a failed write may be retried draft by draft: the database
/// refused the data (a CHECK constraint, a size limit), not the file, and
/// not because a seq or key was already taken.
fn isolatable(error: &sqlx::Error) -> bool {
    classify(error) == Class::Refused
}

/// The store error for a write that cannot be blamed on one draft.
fn write_error(book: &BookName, error: sqlx::Error) -> StoreError {
    match classify(&error) {
        Class::Duplicate => StoreError::Other(format!(
            "book {book}: a seq or idempotency key was already taken ({}); \
             a writer bypassed the write lock",
            describe(&error)
        )),
        _ => store_error(error),
    }
}

/// Commits a batch of drafts to one book; see `Store::commit_batch`.
pub(crate) async fn commit_batch(
    store: &SqliteStore,
    book: &BookName,
    drafts: &[Draft],
) -> Result<Vec<Outcome>, StoreError> {
    talea_store::only_batch(
        book,
        commit_books(store, &[BookBatch { book, drafts }]).await,
    )
}

/// Commits batches of distinct books in one write transaction (one fsync);
/// see `Store::commit_books`. One outcome list per batch, in order.
pub(crate) async fn commit_books(
    store: &SqliteStore,
    batches: &[BookBatch<'_>],
) -> Result<Vec<Vec<Outcome>>, StoreError> {
    if let Some(err) = repeated_book(batches) {
        return Err(err);
    }
    let mut results: Vec<Vec<Outcome>> = vec![Vec::new(); batches.len()];
    if batches.iter().all(|b| b.drafts.is_empty()) {
        return Ok(results);
    }
    let mut conn = store.writer().await?;
    let mut tx = conn.begin_with(BEGIN_WRITE).await.map_err(store_error)?;
    let mut advanced = Vec::new();
    for (batch, result) in batches.iter().zip(results.iter_mut()) {
        if batch.drafts.is_empty() {
            continue;
        }
        let (outcomes, last_seq) = commit_in(&mut tx, batch.book, batch.drafts).await?;
        *result = outcomes;
        if let Some(last_seq) = last_seq {
            advanced.push((batch.book, last_seq));
        }
    }
    if advanced.is_empty() {
        // Nothing passed: nothing to write.
        tx.rollback().await.map_err(store_error)?;
    } else {
        tx.commit().await.map_err(store_error)?;
        for (book, last_seq) in advanced {
            store.bus().publish(book, last_seq);
        }
    }
    Ok(results)
}

/// Decides and writes one book's batch inside the write transaction `tx`;
/// returns its outcomes and, when it wrote anything, the book's new last seq.
async fn commit_in(
    tx: &mut SqliteConnection,
    book: &BookName,
    drafts: &[Draft],
) -> Result<(Vec<Outcome>, Option<u64>), StoreError> {
    let Wanted {
        accounts,
        assets,
        keys,
    } = Wanted::of(drafts);
    let head = head(tx, book).await?;
    let stored = StoredKey::by_key(read::transactions_by_key(tx, book, &keys).await?);
    let scales = read::scales(tx, &assets).await?;
    let (rules, balances) = load_accounts(tx, book, &accounts, &assets).await?;
    let loaded = Loaded {
        accounts: rules,
        balances,
        scales,
        stored,
    };

    // The fast path: decide every draft in memory, then write all passing
    // drafts with a few set-wise statements. SQLite stores every valid
    // draft's values (any i64 time, any text), so the planner needs no
    // backend check of its own.
    let mut planner = Planner::new(book, &loaded, head.last_seq, head.committed_at);
    let verdicts = planner.decide_all(drafts);
    let last_seq = planner.last_seq();
    if last_seq == head.last_seq {
        // Nothing passed: nothing to write for this book.
        return Ok((outcomes(verdicts), None));
    }

    // A savepoint is nearly free in SQLite and lets a refused set-wise write
    // be retried draft by draft inside the same lock.
    control(tx, "SAVEPOINT batch").await?;
    let plans: Vec<&Planned> = verdicts
        .iter()
        .filter_map(|v| match v {
            Verdict::Write(planned) => Some(planned.as_ref()),
            _ => None,
        })
        .collect();
    let rows = Rows::of(book, head.committed_at, &plans)?;
    let written = match rows.write(tx).await {
        Ok(()) => advance_book(tx, book, last_seq, head.committed_at).await,
        Err(error) => Err(error),
    };
    match written {
        Ok(()) => {
            control(tx, "RELEASE SAVEPOINT batch").await?;
            tracing::debug!(
                %book,
                drafts = drafts.len(),
                committed = plans.len(),
                last_seq,
                "batch written"
            );
            return Ok((outcomes(verdicts), Some(last_seq)));
        }
        Err(error) if isolatable(&error) => {
            tracing::warn!(
                %book,
                drafts = drafts.len(),
                error = %describe(&error),
                "the database refused a batch; writing its drafts one by one"
            );
            control(tx, "ROLLBACK TO SAVEPOINT batch; RELEASE SAVEPOINT batch").await?;
        }
        Err(error) => return Err(write_error(book, error)),
    }

    let (verdicts, last_seq) = write_one_by_one(tx, book, &loaded, head, drafts).await?;
    if last_seq > head.last_seq {
        advance_book(tx, book, last_seq, head.committed_at)
            .await
            .map_err(|e| write_error(book, e))?;
        Ok((outcomes(verdicts), Some(last_seq)))
    } else {
        Ok((outcomes(verdicts), None))
    }
}

/// The careful path: decides and writes each draft in turn, each in its own
/// savepoint. A draft the database refuses is rejected alone, and the drafts
/// after it are decided without it (seqs stay dense; balances and in-batch
/// keys never include it). Returns the verdicts and the last seq written.
async fn write_one_by_one(
    tx: &mut SqliteConnection,
    book: &BookName,
    loaded: &Loaded,
    head: Head,
    drafts: &[Draft],
) -> Result<(Vec<Verdict>, u64), StoreError> {
    let mut planner = Planner::new(book, loaded, head.last_seq, head.committed_at);
    let mut verdicts = Vec::with_capacity(drafts.len());
    for (i, draft) in drafts.iter().enumerate() {
        let verdict = match planner.evaluate(draft) {
            Verdict::Write(planned) => {
                control(tx, "SAVEPOINT draft").await?;
                match Rows::of(book, head.committed_at, &[planned.as_ref()])?
                    .write(tx)
                    .await
                {
                    Ok(()) => {
                        control(tx, "RELEASE SAVEPOINT draft").await?;
                        planner.accept(i, &planned);
                        Verdict::Write(planned)
                    }
                    Err(error) if isolatable(&error) => {
                        control(tx, "ROLLBACK TO SAVEPOINT draft; RELEASE SAVEPOINT draft").await?;
                        Verdict::Settled(Outcome::Rejected(Rejection::Failed(format!(
                            "the database refused this transaction: {}",
                            describe(&error)
                        ))))
                    }
                    Err(error) => return Err(write_error(book, error)),
                }
            }
            other => other,
        };
        verdicts.push(verdict);
    }
    Ok((verdicts, planner.last_seq()))
}

/// Reads the rules of the named accounts and their balance rows in the
/// batch's assets, in one statement.
async fn load_accounts(
    conn: &mut SqliteConnection,
    book: &BookName,
    accounts: &[&str],
    assets: &[&AssetCode],
) -> Result<(HashMap<AccountName, AccountRule>, HashMap<Pair, Totals>), StoreError> {
    let rows = sqlx::query(
        "SELECT a.name, a.kind, a.min_balance_mantissa, a.min_balance_scale, \
                b.asset, b.balance, b.debits, b.credits \
         FROM accounts a \
         LEFT JOIN balances b ON b.book = a.book AND b.account = a.name \
           AND b.asset IN (SELECT value FROM json_each(?3)) \
         WHERE a.book = ?1 AND a.name IN (SELECT value FROM json_each(?2))",
    )
    .bind(book.as_str())
    .bind(codec::text_list(accounts.iter().copied())?)
    .bind(codec::text_list(assets.iter().map(|a| a.as_str()))?)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    let mut rules = HashMap::new();
    let mut balances = HashMap::new();
    for row in &rows {
        let name = codec::account_name(&get::<String>(row, "name")?)?;
        if let Some(asset) = get::<Option<String>>(row, "asset")? {
            let totals = Totals {
                balance: codec::get_amount(row, "balance")?.minor(),
                debits: codec::get_amount(row, "debits")?.minor(),
                credits: codec::get_amount(row, "credits")?.minor(),
            };
            balances.insert((name.clone(), codec::asset_code(&asset)?), totals);
        }
        // An account with several balance rows comes once per row.
        if let std::collections::hash_map::Entry::Vacant(slot) = rules.entry(name) {
            slot.insert(AccountRule {
                kind: codec::account_kind(&get::<String>(row, "kind")?)?,
                min_balance: codec::min_balance(
                    get(row, "min_balance_mantissa")?,
                    get(row, "min_balance_scale")?,
                )?,
            });
        }
    }
    Ok((rules, balances))
}

/// An `events` row of a transaction.
#[derive(Debug)]
struct EventRow<'a> {
    book: &'a str,
    seq: i64,
    committed_at: i64,
}

impl Row for EventRow<'_> {
    const COLUMNS: usize = 4;

    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        query
            .bind(self.book)
            .bind(self.seq)
            .bind("transaction")
            .bind(self.committed_at)
    }
}

/// A `transactions` row.
#[derive(Debug)]
struct TransactionRow<'a> {
    book: &'a str,
    seq: i64,
    tx_id: uuid::Uuid,
    key: &'a str,
    hash: &'a [u8],
    committed_at: i64,
    occurred_at: Option<i64>,
    memo: Option<&'a str>,
    metadata: Option<&'a str>,
}

impl Row for TransactionRow<'_> {
    const COLUMNS: usize = 9;

    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        query
            .bind(self.book)
            .bind(self.seq)
            .bind(self.tx_id)
            .bind(self.key)
            .bind(self.hash)
            .bind(self.committed_at)
            .bind(self.occurred_at)
            .bind(self.memo)
            .bind(self.metadata)
    }
}

/// A `postings` row.
#[derive(Debug)]
struct PostingRow<'a> {
    book: &'a str,
    seq: i64,
    leg: i64,
    account: &'a str,
    asset: &'a str,
    amount: String,
    balance_after: String,
    debits_after: String,
}

impl Row for PostingRow<'_> {
    const COLUMNS: usize = 8;

    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        query
            .bind(self.book)
            .bind(self.seq)
            .bind(self.leg)
            .bind(self.account)
            .bind(self.asset)
            .bind(self.amount.as_str())
            .bind(self.balance_after.as_str())
            .bind(self.debits_after.as_str())
    }
}

/// A `balances` row at its new totals.
#[derive(Debug)]
struct BalanceRow<'a> {
    book: &'a str,
    account: &'a str,
    asset: &'a str,
    balance: String,
    debits: String,
    credits: String,
}

impl Row for BalanceRow<'_> {
    const COLUMNS: usize = 6;

    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        query
            .bind(self.book)
            .bind(self.account)
            .bind(self.asset)
            .bind(self.balance.as_str())
            .bind(self.debits.as_str())
            .bind(self.credits.as_str())
    }
}

/// The rows that some passing drafts add to each table.
#[derive(Debug, Default)]
struct Rows<'a> {
    events: Vec<EventRow<'a>>,
    transactions: Vec<TransactionRow<'a>>,
    postings: Vec<PostingRow<'a>>,
    balances: Vec<BalanceRow<'a>>,
}

impl<'a> Rows<'a> {
    /// The rows of `plans`, with each touched balance row once, at its final value.
    fn of(
        book: &'a BookName,
        committed_at: Timestamp,
        plans: &[&'a Planned],
    ) -> Result<Self, StoreError> {
        let book_name = book.as_str();
        let at = committed_at.micros();
        let mut rows = Rows::default();
        for planned in plans {
            let commit = &planned.commit;
            let seq = new_seq_param(commit.seq)?;
            rows.events.push(EventRow {
                book: book_name,
                seq,
                committed_at: at,
            });
            rows.transactions.push(TransactionRow {
                book: book_name,
                seq,
                tx_id: commit.tx_id.0,
                key: commit.idempotency_key.as_str(),
                hash: &planned.request_hash,
                committed_at: at,
                occurred_at: commit.occurred_at.map(Timestamp::micros),
                memo: commit.memo.as_deref(),
                metadata: commit.metadata.as_deref(),
            });
            for (leg, (posting, stored)) in
                planned.postings.iter().zip(&commit.postings).enumerate()
            {
                rows.postings.push(PostingRow {
                    book: book_name,
                    seq,
                    leg: i64::try_from(leg)
                        .map_err(|_| StoreError::Other(format!("leg {leg} exceeds i64")))?,
                    account: stored.account.as_str(),
                    asset: stored.asset.as_str(),
                    amount: amount_text(posting.amount),
                    balance_after: amount_text(posting.balance_after),
                    debits_after: amount_text(posting.debits_after),
                });
            }
        }
        for (pair, totals) in final_balances(plans) {
            rows.balances.push(BalanceRow {
                book: book_name,
                account: pair.0.as_str(),
                asset: pair.1.as_str(),
                balance: amount_text(totals.balance),
                debits: amount_text(totals.debits),
                credits: amount_text(totals.credits),
            });
        }
        Ok(rows)
    }

    /// Writes the rows: a few multi-row statements per table.
    async fn write(&self, conn: &mut SqliteConnection) -> Result<(), sqlx::Error> {
        rows::insert(
            conn,
            "INSERT INTO events (book, seq, type, committed_at)",
            "",
            &self.events,
        )
        .await?;
        rows::insert(
            conn,
            "INSERT INTO transactions (book, seq, tx_id, idempotency_key, request_hash, \
             committed_at, occurred_at, memo, metadata)",
            "",
            &self.transactions,
        )
        .await?;
        rows::insert(
            conn,
            "INSERT INTO postings (book, seq, leg, account, asset, amount, balance_after, \
             debits_after)",
            "",
            &self.postings,
        )
        .await?;
        rows::insert(
            conn,
            "INSERT INTO balances (book, account, asset, balance, debits, credits)",
            " ON CONFLICT (book, account, asset) DO UPDATE \
               SET balance = excluded.balance, debits = excluded.debits, \
                   credits = excluded.credits",
            &self.balances,
        )
        .await
    }
}
