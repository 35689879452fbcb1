//! The write side of `PgStore`: asset registration, account opening and group commit.
//!
//! Every write to a book first locks the book's counter row; see `lock_book`.
//! `commit_books` (and `commit_batch`, its one-book case) then follows the
//! design's fast path (a handful of round trips whatever the batch size and
//! however many books share the transaction) and falls back to per-draft
//! savepoints only when the database refuses the set-based write.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};
use talea_core::{Account, AccountName, Asset, AssetCode, BookName, Draft, NewAccount};
use talea_store::{BookBatch, Opened, Outcome, Registered, Rejection, StoreError, repeated_book};

use crate::PgStore;
use crate::codec::{self, amount_text, get, get_seq, new_seq_param};
use crate::error::{Class, classify, constraint, corrupt, describe, store_error};
use crate::plan::{
    AccountRule, Loaded, Pair, Planned, StoredKey, Totals, Verdict, Wanted, final_balances,
    outcomes, planner,
};
use crate::read;

/// The channel commit notifications go to; the payload is `<book>:<last seq>`.
pub const NOTIFY_CHANNEL: &str = "talea_events";

/// Registers an asset unless its code exists.
pub(crate) async fn register_asset(
    conn: &mut PgConnection,
    asset: &Asset,
) -> Result<Registered<Asset>, StoreError> {
    let inserted = crate::codec::query(
        "INSERT INTO assets (code, scale, name) VALUES ($1, $2, $3) \
         ON CONFLICT ON CONSTRAINT assets_pkey DO NOTHING",
    )
    .bind(asset.code.as_str())
    .bind(i16::from(asset.scale.digits()))
    .bind(asset.name.as_deref())
    .execute(&mut *conn)
    .await
    .map_err(store_error)?
    .rows_affected();
    if inserted == 1 {
        return Ok(Registered::Created(asset.clone()));
    }
    // The conflicting row is committed by now (ON CONFLICT waits for a
    // concurrent inserter), and this new statement's snapshot sees it.
    read::asset(conn, &asset.code)
        .await?
        .map(Registered::Existing)
        .ok_or_else(|| {
            StoreError::Other(format!(
                "asset {} conflicted but cannot be read",
                asset.code
            ))
        })
}

/// The state of a book's counter row, locked for this transaction.
#[derive(Debug, Clone, Copy)]
struct Head {
    last_seq: u64,
    /// The commit time of everything this transaction appends.
    committed_at: DateTime<Utc>,
}

/// Locks the book's counter row (creating it if needed) and reads the clock.
///
/// The lock serializes every writer of the book, on every instance: after it
/// is granted, each READ COMMITTED statement of this transaction sees every
/// commit made to the book before, so key and balance lookups are
/// authoritative. The commit time is the database clock truncated to
/// microseconds (the contract's unit), raised to the previous commit time of
/// the book so it never goes backwards with seq, whatever the clock does.
/// If the row was locked by another writer, Postgres re-evaluates the row
/// (and so the clock and `last_committed_at`) once that writer is done.
async fn lock_book(conn: &mut PgConnection, book: &BookName) -> Result<Head, StoreError> {
    const LOCK: &str = "SELECT last_seq, \
           greatest(date_trunc('microseconds', clock_timestamp()), last_committed_at) AS now \
         FROM books WHERE book = $1 FOR UPDATE";
    let mut row = crate::codec::query(LOCK)
        .bind(book.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    if row.is_none() {
        // A new book. Inserting only when the row is missing keeps the common
        // path at one round trip; a concurrent creator makes this a no-op.
        crate::codec::query(
            "INSERT INTO books (book) VALUES ($1) ON CONFLICT ON CONSTRAINT books_pkey DO NOTHING",
        )
        .bind(book.as_str())
        .execute(&mut *conn)
        .await
        .map_err(store_error)?;
        row = crate::codec::query(LOCK)
            .bind(book.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(store_error)?;
    }
    let row = row.ok_or_else(|| {
        StoreError::Other(format!("book {book}: counter row missing after insert"))
    })?;
    Ok(Head {
        last_seq: get_seq(&row, "last_seq")?,
        committed_at: get(&row, "now")?,
    })
}

/// Opens an account, appending its event, unless the name exists.
pub(crate) async fn open_account(
    store: &PgStore,
    book: &BookName,
    new: &NewAccount,
) -> Result<Opened, StoreError> {
    let mut conn = store.connection().await?;
    // Accounts are never changed or deleted, so one that exists without the
    // lock exists under it too: re-opens (seeding, retries) skip the lock.
    if let Some(existing) = read::account(&mut conn, book, &new.name).await? {
        return Ok(Opened::Existing(existing));
    }
    let mut tx = conn.begin().await.map_err(store_error)?;
    let head = lock_book(&mut tx, book).await?;
    if let Some(existing) = read::account(&mut tx, book, &new.name).await? {
        tx.rollback().await.map_err(store_error)?;
        return Ok(Opened::Existing(existing));
    }
    let seq = head.last_seq + 1;
    let (mantissa, scale) = codec::min_balance_parts(new.min_balance);
    crate::codec::query(
        "WITH event AS ( \
           INSERT INTO events (book, seq, type, committed_at) VALUES ($1, $2, 'account_opened', $3) \
         ), account AS ( \
           INSERT INTO accounts (book, name, kind, min_balance_mantissa, min_balance_scale, metadata, seq, opened_at) \
           VALUES ($1, $4, $5, $6::text::numeric, $7, $8, $2, $3) \
         ), bump AS ( \
           UPDATE books SET last_seq = $2, last_committed_at = $3 WHERE book = $1 \
         ) SELECT pg_notify('talea_events', $9)",
    )
    .bind(book.as_str())
    .bind(new_seq_param(seq)?)
    .bind(head.committed_at)
    .bind(new.name.as_str())
    .bind(new.kind.as_str())
    .bind(mantissa)
    .bind(scale)
    .bind(new.metadata.as_str())
    .bind(format!("{book}:{seq}"))
    .execute(&mut *tx)
    .await
    .map_err(|e| write_error(book.as_str(), e))?;
    tx.commit().await.map_err(store_error)?;
    Ok(Opened::Created(Account {
        book: book.clone(),
        name: new.name.clone(),
        kind: new.kind,
        min_balance: new.min_balance,
        metadata: new.metadata.clone(),
        seq,
        opened_at: codec::timestamp(head.committed_at),
    }))
}

/// Runs transaction-control SQL (savepoints) with the simple protocol: no
/// statement to prepare, and several statements may share one round trip.
async fn control(conn: &mut PgConnection, sql: &'static str) -> Result<(), StoreError> {
    sqlx::Executor::execute(conn, sql)
        .await
        .map(|_| ())
        .map_err(store_error)
}

/// Constraints whose violation means a seq was taken twice: some writer
/// bypassed the counter lock. No draft is to blame, so the batch fails whole.
const SEQ_CONSTRAINTS: &[&str] = &[
    "events_pkey",
    "transactions_pkey",
    "postings_pkey",
    "accounts_seq_key",
];

/// Whether a failed write may be retried draft by draft: the database
/// refused the data (not the connection, not the schema), and not because
/// the log itself is inconsistent.
fn isolatable(error: &sqlx::Error) -> bool {
    classify(error) == Class::Refused
        && !constraint(error).is_some_and(|c| SEQ_CONSTRAINTS.contains(&c))
}

/// The store error for a write that cannot be blamed on one draft.
fn write_error(books: &str, error: sqlx::Error) -> StoreError {
    match constraint(&error) {
        Some(c) if SEQ_CONSTRAINTS.contains(&c) => StoreError::Other(format!(
            "book {books}: a seq was already taken ({}); a writer bypassed the book's counter lock",
            describe(&error)
        )),
        _ => store_error(error),
    }
}

/// Locks the counter rows of `books` in one statement, in the database's
/// order of book names, and reads the clock for each; see `lock_book`.
///
/// Every caller locks its books in the same order (a statement's `ORDER BY
/// … FOR UPDATE` locks rows in the order it returns them), so two commits
/// sharing books wait for each other and never deadlock. Books whose row is
/// missing are absent from the answer.
async fn lock_books(
    conn: &mut PgConnection,
    books: &[&str],
) -> Result<HashMap<String, Head>, StoreError> {
    let rows = crate::codec::query(
        "SELECT book, last_seq, \
           greatest(date_trunc('microseconds', clock_timestamp()), last_committed_at) AS now \
         FROM books WHERE book = ANY($1) ORDER BY book FOR UPDATE",
    )
    .bind(books)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    let mut heads = HashMap::with_capacity(rows.len());
    for row in &rows {
        heads.insert(
            get::<String>(row, "book")?,
            Head {
                last_seq: get_seq(row, "last_seq")?,
                committed_at: get(row, "now")?,
            },
        );
    }
    Ok(heads)
}

/// One book's part of a commit: what was loaded for it under the lock.
#[derive(Debug)]
struct Part<'a> {
    /// Index of the batch in the caller's slice.
    index: usize,
    book: &'a BookName,
    drafts: &'a [Draft],
    head: Head,
    loaded: Loaded,
}

/// Commits a batch of drafts to one book; see `Store::commit_batch`.
pub(crate) async fn commit_batch(
    store: &PgStore,
    book: &BookName,
    drafts: &[Draft],
) -> Result<Vec<Outcome>, StoreError> {
    talea_store::only_batch(
        book,
        commit_books(store, &[BookBatch { book, drafts }]).await,
    )
}

/// Commits batches of distinct books in one database transaction; see
/// `Store::commit_books`. One outcome list per batch, in order.
pub(crate) async fn commit_books(
    store: &PgStore,
    batches: &[BookBatch<'_>],
) -> Result<Vec<Vec<Outcome>>, StoreError> {
    if let Some(err) = repeated_book(batches) {
        return Err(err);
    }
    let mut results: Vec<Vec<Outcome>> = vec![Vec::new(); batches.len()];
    let wanted: Vec<usize> = (0..batches.len())
        .filter(|&i| !batches[i].drafts.is_empty())
        .collect();
    if wanted.is_empty() {
        return Ok(results);
    }
    let wants: Vec<(&BookName, Wanted<'_>)> = wanted
        .iter()
        .map(|&i| (batches[i].book, Wanted::of(batches[i].drafts)))
        .collect();
    let assets: Vec<&AssetCode> = wants
        .iter()
        .flat_map(|(_, w)| w.assets.iter().copied())
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let names: Vec<&str> = wants.iter().map(|(book, _)| book.as_str()).collect();
    let label = names.join(",");

    let mut conn = store.connection().await?;
    // Scales never change and assets are never deleted, so they are read
    // (mostly from cache) before the lock, keeping the lock's hold short.
    let scales = store.scales(&mut conn, &assets).await?;

    let mut tx = conn.begin().await.map_err(store_error)?;
    let mut heads = lock_books(&mut tx, &names).await?;
    if heads.len() < names.len() {
        // New books: start over, creating their rows first, in name order,
        // then locking every row in order. A creation waits only for other
        // creations of the same rows, which go in the same order, so this
        // cannot deadlock either; and if nothing passes, the rollback
        // leaves no empty book behind.
        tx.rollback().await.map_err(store_error)?;
        tx = conn.begin().await.map_err(store_error)?;
        crate::codec::query(
            "INSERT INTO books (book) SELECT b FROM unnest($1::text[]) AS b ORDER BY b COLLATE \"C\" \
             ON CONFLICT ON CONSTRAINT books_pkey DO NOTHING",
        )
        .bind(&names)
        .execute(&mut *tx)
        .await
        .map_err(store_error)?;
        heads = lock_books(&mut tx, &names).await?;
    }
    let key_sets: Vec<(&BookName, &[&str])> = wants
        .iter()
        .map(|(book, w)| (*book, w.keys.as_slice()))
        .collect();
    let mut stored = read::transactions_by_keys(&mut tx, &key_sets).await?;
    let account_sets: Vec<(&BookName, &[&str])> = wants
        .iter()
        .map(|(book, w)| (*book, w.accounts.as_slice()))
        .collect();
    let mut accounts = load_accounts(&mut tx, &account_sets, &assets).await?;

    let mut parts = Vec::with_capacity(wanted.len());
    for (n, &index) in wanted.iter().enumerate() {
        let book = batches[index].book;
        let head = *heads.get(book.as_str()).ok_or_else(|| {
            StoreError::Other(format!("book {book}: counter row missing after insert"))
        })?;
        let (rules, balances) = std::mem::take(&mut accounts[n]);
        let stored = StoredKey::by_key(std::mem::take(&mut stored[n]));
        parts.push(Part {
            index,
            book,
            drafts: batches[index].drafts,
            head,
            loaded: Loaded {
                accounts: rules,
                balances,
                scales: scales.clone(),
                stored,
            },
        });
    }

    // The fast path: decide every draft in memory, then write all passing
    // drafts of every book with one set-based statement.
    let mut decided = Vec::with_capacity(parts.len());
    for part in &parts {
        let mut planner = planner(
            part.book,
            &part.loaded,
            part.head.last_seq,
            codec::timestamp(part.head.committed_at),
        );
        let verdicts = planner.decide_all(part.drafts);
        decided.push((verdicts, planner.last_seq()));
    }
    if parts
        .iter()
        .zip(&decided)
        .all(|(part, (_, last_seq))| *last_seq == part.head.last_seq)
    {
        // Nothing passed: nothing to write, and no counter row to keep.
        tx.rollback().await.map_err(store_error)?;
        for (part, (verdicts, _)) in parts.iter().zip(decided) {
            results[part.index] = outcomes(verdicts);
        }
        return Ok(results);
    }

    // A savepoint costs one round trip and lets a refused set-based write be
    // retried draft by draft inside the same locks. Raw SQL rather than a
    // nested sqlx transaction, which would also cost a RELEASE on success.
    control(&mut tx, "SAVEPOINT batch").await?;
    let mut rows = Rows::default();
    let mut advance = Advance::default();
    for (part, (verdicts, last_seq)) in parts.iter().zip(&decided) {
        let plans: Vec<&Planned> = verdicts
            .iter()
            .filter_map(|v| match v {
                Verdict::Write(planned) => Some(planned.as_ref()),
                _ => None,
            })
            .collect();
        rows.push(part.book, part.head.committed_at, &plans)?;
        advance.push(part.book, *last_seq, part.head)?;
    }
    match rows.write(&mut tx, Some(&advance)).await {
        Ok(()) => {
            tx.commit().await.map_err(store_error)?;
            tracing::debug!(
                books = %label,
                drafts = batches.iter().map(|b| b.drafts.len()).sum::<usize>(),
                committed = rows.seqs.len(),
                "batch committed"
            );
            for (part, (verdicts, _)) in parts.iter().zip(decided) {
                results[part.index] = outcomes(verdicts);
            }
            return Ok(results);
        }
        Err(error) if isolatable(&error) => {
            tracing::warn!(
                books = %label,
                error = %describe(&error),
                "the database refused a batch; writing its drafts one by one"
            );
            control(&mut tx, "ROLLBACK TO SAVEPOINT batch").await?;
        }
        Err(error) => return Err(write_error(&label, error)),
    }

    let mut advance = Advance::default();
    for part in &parts {
        let (verdicts, last_seq) =
            write_one_by_one(&mut tx, part.book, &part.loaded, part.head, part.drafts).await?;
        advance.push(part.book, last_seq, part.head)?;
        results[part.index] = outcomes(verdicts);
    }
    if advance.books.is_empty() {
        tx.rollback().await.map_err(store_error)?;
    } else {
        crate::codec::query(ADVANCE_BOOKS)
            .bind(&advance.books)
            .bind(&advance.last_seqs)
            .bind(&advance.committed_at)
            .bind(&advance.payloads)
            .execute(&mut *tx)
            .await
            .map_err(|e| write_error(&label, e))?;
        tx.commit().await.map_err(store_error)?;
    }
    Ok(results)
}

/// The careful path: decides and writes each draft in turn, each in its own
/// savepoint. A draft the database refuses is rejected alone, and the drafts
/// after it are decided without it (seqs stay dense; balances and in-batch
/// keys never include it). Returns the verdicts and the last seq written.
async fn write_one_by_one(
    tx: &mut PgConnection,
    book: &BookName,
    loaded: &Loaded,
    head: Head,
    drafts: &[Draft],
) -> Result<(Vec<Verdict>, u64), StoreError> {
    let mut planner = planner(
        book,
        loaded,
        head.last_seq,
        codec::timestamp(head.committed_at),
    );
    let mut verdicts = Vec::with_capacity(drafts.len());
    for (i, draft) in drafts.iter().enumerate() {
        let verdict = match planner.evaluate(draft) {
            Verdict::Write(planned) => {
                control(tx, "SAVEPOINT draft").await?;
                let mut rows = Rows::default();
                rows.push(book, head.committed_at, &[planned.as_ref()])?;
                match rows.write(tx, None).await {
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
                    Err(error) => return Err(write_error(book.as_str(), error)),
                }
            }
            other => other,
        };
        verdicts.push(verdict);
    }
    Ok((verdicts, planner.last_seq()))
}

/// The rules of an account and its balance rows, as one book's batch needs them.
type AccountState = (HashMap<AccountName, AccountRule>, HashMap<Pair, Totals>);

/// Reads the rules of the named accounts of each book and their balance
/// rows in the batches' assets, in one statement; one state per book, in order.
///
/// No `FOR UPDATE` on the balance rows: every writer of a book holds its
/// counter lock, which already excludes concurrent changes, and row locks
/// would cost a WAL record per row for nothing.
async fn load_accounts(
    conn: &mut PgConnection,
    wanted: &[(&BookName, &[&str])],
    assets: &[&AssetCode],
) -> Result<Vec<AccountState>, StoreError> {
    let assets: Vec<&str> = assets.iter().map(|a| a.as_str()).collect();
    let mut books = Vec::new();
    let mut names = Vec::new();
    let mut slot_of: HashMap<&str, usize> = HashMap::with_capacity(wanted.len());
    for (slot, (book, accounts)) in wanted.iter().enumerate() {
        slot_of.insert(book.as_str(), slot);
        for name in accounts.iter() {
            books.push(book.as_str());
            names.push(*name);
        }
    }
    let rows = crate::codec::query(
        "SELECT a.book, a.name, a.kind, a.min_balance_mantissa::text AS min_balance_mantissa, \
                a.min_balance_scale, \
                b.asset, b.balance::text AS balance, b.debits::text AS debits, b.credits::text AS credits \
         FROM unnest($1::text[], $2::text[]) AS w (book, name) \
         JOIN accounts a ON a.book = w.book AND a.name = w.name \
         LEFT JOIN balances b ON b.book = a.book AND b.account = a.name AND b.asset = ANY($3)",
    )
    .bind(&books)
    .bind(&names)
    .bind(&assets)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    let mut states: Vec<AccountState> = vec![(HashMap::new(), HashMap::new()); wanted.len()];
    for row in &rows {
        let book: String = get(row, "book")?;
        let slot = *slot_of
            .get(book.as_str())
            .ok_or_else(|| corrupt(format!("account of book {book}, which was not asked for")))?;
        let (rules, balances) = &mut states[slot];
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
    Ok(states)
}

/// The counter moves and notifications that close a commit: one per book
/// that wrote something.
#[derive(Debug, Default)]
struct Advance {
    books: Vec<String>,
    last_seqs: Vec<i64>,
    committed_at: Vec<DateTime<Utc>>,
    payloads: Vec<String>,
}

impl Advance {
    /// Adds `book`'s move to `last_seq`, unless it wrote nothing.
    fn push(&mut self, book: &BookName, last_seq: u64, head: Head) -> Result<(), StoreError> {
        if last_seq > head.last_seq {
            self.books.push(book.as_str().to_owned());
            self.last_seqs.push(new_seq_param(last_seq)?);
            self.committed_at.push(head.committed_at);
            self.payloads.push(format!("{book}:{last_seq}"));
        }
        Ok(())
    }
}

/// Moves the counters and notifies once per book, when drafts were written
/// one by one.
const ADVANCE_BOOKS: &str = "WITH bump AS ( \
       UPDATE books SET last_seq = u.last_seq, last_committed_at = u.at \
       FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) AS u (book, last_seq, at) \
       WHERE books.book = u.book \
     ) SELECT pg_notify('talea_events', p) FROM unnest($4::text[]) AS p";

/// The rows of some passing drafts, as the parallel arrays `UNNEST` takes.
#[derive(Debug, Default)]
struct Rows<'a> {
    books: Vec<&'a str>,
    seqs: Vec<i64>,
    committed_at: Vec<DateTime<Utc>>,
    tx_ids: Vec<uuid::Uuid>,
    keys: Vec<&'a str>,
    hashes: Vec<&'a [u8]>,
    occurred_at: Vec<Option<DateTime<Utc>>>,
    memos: Vec<Option<&'a str>>,
    metadata: Vec<Option<&'a str>>,
    posting_books: Vec<&'a str>,
    posting_seqs: Vec<i64>,
    legs: Vec<i16>,
    posting_accounts: Vec<&'a str>,
    posting_assets: Vec<&'a str>,
    amounts: Vec<String>,
    balances_after: Vec<String>,
    debits_after: Vec<String>,
    balance_books: Vec<&'a str>,
    balance_accounts: Vec<&'a str>,
    balance_assets: Vec<&'a str>,
    balances: Vec<String>,
    debits: Vec<String>,
    credits: Vec<String>,
}

/// The set-based write of drafts of any number of books: events,
/// transactions, postings and the balance upsert in one statement, so a
/// commit costs one round trip to write and a draft's rows can never be half
/// written (every data-modifying CTE runs, atomically with the rest of the
/// statement).
macro_rules! write_drafts {
    () => {
        "WITH event AS ( \
           INSERT INTO events (book, seq, type, committed_at) \
           SELECT u.book, u.seq, 'transaction', u.at \
           FROM unnest($1::text[], $2::bigint[], $3::timestamptz[]) AS u (book, seq, at) \
         ), tx AS ( \
           INSERT INTO transactions \
             (book, seq, tx_id, idempotency_key, request_hash, committed_at, occurred_at, memo, metadata) \
           SELECT u.book, u.seq, u.tx_id, u.key, u.hash, u.at, u.occurred_at, u.memo, u.metadata \
           FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::uuid[], $5::text[], $6::bytea[], \
                       $7::timestamptz[], $8::text[], $9::text[]) \
             AS u (book, seq, at, tx_id, key, hash, occurred_at, memo, metadata) \
         ), posting AS ( \
           INSERT INTO postings (book, seq, leg, account, asset, amount, balance_after, debits_after) \
           SELECT u.book, u.seq, u.leg, u.account, u.asset, u.amount::numeric, u.balance_after::numeric, \
                  u.debits_after::numeric \
           FROM unnest($10::text[], $11::bigint[], $12::smallint[], $13::text[], $14::text[], $15::text[], \
                       $16::text[], $17::text[]) \
             AS u (book, seq, leg, account, asset, amount, balance_after, debits_after) \
         ), balance AS ( \
           INSERT INTO balances (book, account, asset, balance, debits, credits) \
           SELECT u.book, u.account, u.asset, u.balance::numeric, u.debits::numeric, u.credits::numeric \
           FROM unnest($18::text[], $19::text[], $20::text[], $21::text[], $22::text[], $23::text[]) \
             AS u (book, account, asset, balance, debits, credits) \
           ON CONFLICT ON CONSTRAINT balances_pkey DO UPDATE \
             SET balance = excluded.balance, debits = excluded.debits, credits = excluded.credits \
         )"
    };
}

/// Writes drafts and closes the commit: each book's counter, commit time
/// and one notification.
const WRITE_BATCH: &str = concat!(
    write_drafts!(),
    ", bump AS ( \
       UPDATE books SET last_seq = u.last_seq, last_committed_at = u.at \
       FROM unnest($24::text[], $25::bigint[], $26::timestamptz[]) AS u (book, last_seq, at) \
       WHERE books.book = u.book \
     ) SELECT pg_notify('talea_events', p) FROM unnest($27::text[]) AS p"
);

/// Writes drafts only (the careful path closes the commit with `ADVANCE_BOOKS`).
const WRITE_DRAFTS: &str = concat!(write_drafts!(), " SELECT 1");

impl<'a> Rows<'a> {
    /// Adds the rows of `book`'s `plans`, committed at `committed_at`, with
    /// each touched balance row once, at its final value.
    fn push(
        &mut self,
        book: &'a BookName,
        committed_at: DateTime<Utc>,
        plans: &[&'a Planned],
    ) -> Result<(), StoreError> {
        for planned in plans {
            let commit = &planned.commit;
            let seq = new_seq_param(commit.seq)?;
            self.books.push(book.as_str());
            self.seqs.push(seq);
            self.committed_at.push(committed_at);
            self.tx_ids.push(commit.tx_id.0);
            self.keys.push(commit.idempotency_key.as_str());
            self.hashes.push(&planned.request_hash);
            self.occurred_at.push(match commit.occurred_at {
                Some(at) => Some(codec::datetime(at).ok_or_else(|| {
                    corrupt(format!("occurred_at {} is out of range", at.micros()))
                })?),
                None => None,
            });
            self.memos.push(commit.memo.as_deref());
            self.metadata.push(commit.metadata.as_deref());
            for (leg, (posting, stored)) in
                planned.postings.iter().zip(&commit.postings).enumerate()
            {
                self.posting_books.push(book.as_str());
                self.posting_seqs.push(seq);
                self.legs.push(
                    i16::try_from(leg)
                        .map_err(|_| StoreError::Other(format!("leg {leg} exceeds smallint")))?,
                );
                self.posting_accounts.push(stored.account.as_str());
                self.posting_assets.push(stored.asset.as_str());
                self.amounts.push(amount_text(posting.amount));
                self.balances_after.push(amount_text(posting.balance_after));
                self.debits_after.push(amount_text(posting.debits_after));
            }
        }
        // ON CONFLICT DO UPDATE may touch a row once per statement, so a
        // pair touched by several drafts is written once, at its last value.
        for (pair, totals) in final_balances(plans) {
            self.balance_books.push(book.as_str());
            self.balance_accounts.push(pair.0.as_str());
            self.balance_assets.push(pair.1.as_str());
            self.balances.push(amount_text(totals.balance));
            self.debits.push(amount_text(totals.debits));
            self.credits.push(amount_text(totals.credits));
        }
        Ok(())
    }

    /// Writes the rows; with `advance`, also moves the counters and notifies.
    async fn write(
        &self,
        conn: &mut PgConnection,
        advance: Option<&Advance>,
    ) -> Result<(), sqlx::Error> {
        let query = crate::codec::query(if advance.is_some() {
            WRITE_BATCH
        } else {
            WRITE_DRAFTS
        })
        .bind(&self.books)
        .bind(&self.seqs)
        .bind(&self.committed_at)
        .bind(&self.tx_ids)
        .bind(&self.keys)
        .bind(&self.hashes)
        .bind(&self.occurred_at)
        .bind(&self.memos)
        .bind(&self.metadata)
        .bind(&self.posting_books)
        .bind(&self.posting_seqs)
        .bind(&self.legs)
        .bind(&self.posting_accounts)
        .bind(&self.posting_assets)
        .bind(&self.amounts)
        .bind(&self.balances_after)
        .bind(&self.debits_after)
        .bind(&self.balance_books)
        .bind(&self.balance_accounts)
        .bind(&self.balance_assets)
        .bind(&self.balances)
        .bind(&self.debits)
        .bind(&self.credits);
        let query = match advance {
            Some(advance) => query
                .bind(&advance.books)
                .bind(&advance.last_seqs)
                .bind(&advance.committed_at)
                .bind(&advance.payloads),
            None => query,
        };
        query.execute(conn).await.map(|_| ())
    }
}
