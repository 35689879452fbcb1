//! The write side of the SQL stores: asset registration, account opening and group commit.
//!
//! `commit_books` (which `Store::commit_batch` calls with one book) follows the
//! design's fast path for every backend: take the books' locks
//! ([`SqlBackend::begin_locked`]), read the batches' keys and accounts in
//! a few statements, decide every draft in memory with the shared planner
//! (`talea_store::plan`), write all passing drafts of every book set-wise
//! and move the counters ([`SqlBackend::write_rows`]), commit (one fsync),
//! announce. A set-wise write the database refuses is rolled back to a
//! savepoint and the drafts are written one by one, each in a savepoint of
//! its own, so that only the refused draft is rejected.

use std::collections::{HashMap, HashSet};

use talea_core::{Account, AccountName, Asset, AssetCode, BookName, Draft, NewAccount};
use talea_store::plan::{
    AccountRule, Loaded, Pair, Planned, Planner, StoredKey, Totals, Verdict, Wanted, outcomes,
};
use talea_store::{BookBatch, Opened, Outcome, Registered, Rejection, StoreError, repeated_book};

use crate::backend::{Conn, Head, Param, SqlBackend, Tx};
use crate::decode::{self, fetch};
use crate::error::{Class, classify, describe, store_error, write_error};
use crate::read;
use crate::rows::{Advance, Rows, new_seq_param};

/// Registers an asset unless its code exists.
pub async fn register_asset<B: SqlBackend>(
    store: &B,
    asset: &Asset,
) -> Result<Registered<Asset>, StoreError> {
    let mut conn = store.writer().await?;
    let params = [
        Param::Text(Some(asset.code.as_str())),
        Param::Int(i64::from(asset.scale.digits())),
        Param::Text(asset.name.as_deref()),
    ];
    let inserted = fetch::<B>(&mut conn, B::SQL.register_asset, &params).await?;
    if !inserted.is_empty() {
        return Ok(Registered::Created(asset.clone()));
    }
    // The conflicting row is committed by now (the insert waited for a
    // concurrent inserter), and this new statement sees it.
    read::asset::<B>(&mut conn, &asset.code)
        .await?
        .map(Registered::Existing)
        .ok_or_else(|| {
            StoreError::Other(format!(
                "asset {} conflicted but cannot be read",
                asset.code
            ))
        })
}

/// The head of `book` from what `begin_locked` answered.
fn head_of(heads: &HashMap<String, Head>, book: &BookName) -> Result<Head, StoreError> {
    heads
        .get(book.as_str())
        .copied()
        .ok_or_else(|| StoreError::Other(format!("book {book}: no head under the lock")))
}

/// Opens an account, appending its event, unless the name exists.
pub async fn open_account<B: SqlBackend>(
    store: &B,
    book: &BookName,
    new: &NewAccount,
) -> Result<Opened, StoreError> {
    // Accounts are never changed or deleted, so one that exists without the
    // lock exists under it too: re-opens (seeding, retries) skip the lock.
    if let Some(existing) = read::account::<B>(&mut *store.reader().await?, book, &new.name).await?
    {
        return Ok(Opened::Existing(existing));
    }
    let (mut tx, heads) = store.begin_locked(&[book.as_str()]).await?;
    let head = head_of(&heads, book)?;
    if let Some(existing) = read::account::<B>(&mut tx, book, &new.name).await? {
        tx.rollback().await.map_err(store_error::<B>)?;
        return Ok(Opened::Existing(existing));
    }
    let seq = head.last_seq + 1;
    let seq_value = new_seq_param(seq)?;
    let (mantissa, scale) = talea_store::stored::min_balance_parts(new.min_balance);
    let mut advance = Advance::default();
    advance.push(book, seq, head);
    let result: Result<(), sqlx::Error> = async {
        // The event first: the account row's foreign key points at it.
        let event = [
            Param::Text(Some(book.as_str())),
            Param::Int(seq_value),
            Param::Time(head.committed_at),
        ];
        B::fetch(&mut tx, INSERT_ACCOUNT_EVENT, &event).await?;
        let account = [
            Param::Text(Some(book.as_str())),
            Param::Text(Some(new.name.as_str())),
            Param::Text(Some(new.kind.as_str())),
            Param::Text(mantissa.as_deref()),
            Param::OptInt(scale),
            Param::Text(Some(new.metadata.as_str())),
            Param::Int(seq_value),
            Param::Time(head.committed_at),
        ];
        B::fetch(&mut tx, B::SQL.insert_account, &account).await?;
        B::advance(&mut tx, &advance).await
    }
    .await;
    result.map_err(|e| write_error::<B>(book.as_str(), e))?;
    tx.commit().await.map_err(store_error::<B>)?;
    store.committed(&advance);
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

/// The `events` row of an account opening: `$1` book, `$2` seq, `$3` time.
const INSERT_ACCOUNT_EVENT: &str = "INSERT INTO events (book, seq, type, committed_at) \
                                    VALUES ($1, $2, 'account_opened', $3)";

/// Whether a failed write may be retried draft by draft: the database
/// refused the data (not the connection, not the schema), and not because
/// the log itself is inconsistent.
fn isolatable<B: SqlBackend>(error: &sqlx::Error) -> bool {
    classify::<B>(error) == Class::Refused
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

/// A planner for one book's part, with the backend's own draft check.
fn planner<'a, B: SqlBackend>(part: &'a Part<'_>) -> Planner<'a> {
    Planner::new(
        part.book,
        &part.loaded,
        part.head.last_seq,
        part.head.committed_at,
    )
    .with_draft_check(B::check_draft)
}

/// Commits batches of distinct books in one database transaction; see
/// `Store::commit_books`. One outcome list per batch, in order.
pub async fn commit_books<B: SqlBackend>(
    store: &B,
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
    let (mut tx, parts) = load(store, batches, &wanted).await?;
    let label = parts
        .iter()
        .map(|p| p.book.as_str())
        .collect::<Vec<_>>()
        .join(",");

    // The fast path: decide every draft in memory, then write all passing
    // drafts of every book set-wise.
    let decided: Vec<(Vec<Verdict>, u64)> = parts
        .iter()
        .map(|part| {
            let mut planner = planner::<B>(part);
            let verdicts = planner.decide_all(part.drafts);
            (verdicts, planner.last_seq())
        })
        .collect();
    let mut advance = Advance::default();
    for (part, (_, last_seq)) in parts.iter().zip(&decided) {
        advance.push(part.book, *last_seq, part.head);
    }
    if advance.is_empty() {
        // Nothing passed: nothing to write, and no counter row to keep.
        tx.rollback().await.map_err(store_error::<B>)?;
        for (part, (verdicts, _)) in parts.iter().zip(decided) {
            results[part.index] = outcomes(verdicts);
        }
        return Ok(results);
    }

    // A savepoint costs (at most) one round trip and lets a refused
    // set-wise write be retried draft by draft inside the same locks.
    control::<B>(&mut tx, "SAVEPOINT batch").await?;
    let mut rows = Rows::default();
    for (part, (verdicts, _)) in parts.iter().zip(&decided) {
        rows.push(part.book, part.head.committed_at, &written(verdicts))?;
    }
    match B::write_rows(&mut tx, &rows, Some(&advance)).await {
        Ok(()) => {
            tx.commit().await.map_err(store_error::<B>)?;
            store.committed(&advance);
            tracing::debug!(
                books = %label,
                drafts = parts.iter().map(|p| p.drafts.len()).sum::<usize>(),
                committed = rows.transactions.len(),
                "batch written"
            );
            for (part, (verdicts, _)) in parts.iter().zip(decided) {
                results[part.index] = outcomes(verdicts);
            }
            return Ok(results);
        }
        Err(error) if isolatable::<B>(&error) => {
            tracing::warn!(
                books = %label,
                error = %describe::<B>(&error),
                "the database refused a batch; writing its drafts one by one"
            );
            control::<B>(&mut tx, "ROLLBACK TO SAVEPOINT batch").await?;
        }
        Err(error) => return Err(write_error::<B>(&label, error)),
    }
    drop(rows);

    let mut advance = Advance::default();
    for part in &parts {
        let (verdicts, last_seq) = write_one_by_one::<B>(&mut tx, part).await?;
        advance.push(part.book, last_seq, part.head);
        results[part.index] = outcomes(verdicts);
    }
    if advance.is_empty() {
        tx.rollback().await.map_err(store_error::<B>)?;
    } else {
        B::advance(&mut tx, &advance)
            .await
            .map_err(|e| write_error::<B>(&label, e))?;
        tx.commit().await.map_err(store_error::<B>)?;
        store.committed(&advance);
    }
    Ok(results)
}

/// The plans of the drafts that pass, in order.
fn written(verdicts: &[Verdict]) -> Vec<&Planned> {
    verdicts
        .iter()
        .filter_map(|v| match v {
            Verdict::Write(planned) => Some(planned.as_ref()),
            _ => None,
        })
        .collect()
}

/// Runs savepoint control statements.
async fn control<B: SqlBackend>(conn: &mut Conn<B>, sql: &'static str) -> Result<(), StoreError> {
    B::control(conn, sql).await.map_err(store_error::<B>)
}

/// Takes the locks of the wanted batches' books and loads, under them, what
/// their drafts are decided on: stored keys, accounts and balance rows.
/// Scales are read before the lock (from the cache, mostly): they never
/// change, and the lock's hold stays short.
async fn load<'b, B: SqlBackend>(
    store: &B,
    batches: &'b [BookBatch<'b>],
    wanted: &[usize],
) -> Result<(Tx<B>, Vec<Part<'b>>), StoreError> {
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
    let scales = store.scale_cache().get(store, &assets).await?;

    let (mut tx, heads) = store.begin_locked(&names).await?;
    let key_sets: Vec<(&BookName, &[&str])> = wants
        .iter()
        .map(|(book, w)| (*book, w.keys.as_slice()))
        .collect();
    let mut stored = read::transactions_by_keys::<B>(&mut tx, &key_sets).await?;
    let account_sets: Vec<(&BookName, &[&str])> = wants
        .iter()
        .map(|(book, w)| (*book, w.accounts.as_slice()))
        .collect();
    let mut accounts = load_accounts::<B>(&mut tx, &account_sets, &assets).await?;

    let mut parts = Vec::with_capacity(wanted.len());
    for (n, &index) in wanted.iter().enumerate() {
        let book = batches[index].book;
        let (rules, balances) = std::mem::take(&mut accounts[n]);
        parts.push(Part {
            index,
            book,
            drafts: batches[index].drafts,
            head: head_of(&heads, book)?,
            loaded: Loaded {
                accounts: rules,
                balances,
                scales: scales.clone(),
                stored: StoredKey::by_key(std::mem::take(&mut stored[n])),
            },
        });
    }
    Ok((tx, parts))
}

/// The careful path: decides and writes each draft of `part` in turn, each
/// in its own savepoint. A draft the database refuses is rejected alone,
/// and the drafts after it are decided without it (seqs stay dense;
/// balances and in-batch keys never include it). Returns the verdicts and
/// the last seq written.
async fn write_one_by_one<B: SqlBackend>(
    tx: &mut Conn<B>,
    part: &Part<'_>,
) -> Result<(Vec<Verdict>, u64), StoreError> {
    let mut planner = planner::<B>(part);
    let mut verdicts = Vec::with_capacity(part.drafts.len());
    for (i, draft) in part.drafts.iter().enumerate() {
        let verdict = match planner.evaluate(draft) {
            Verdict::Write(planned) => {
                control::<B>(tx, "SAVEPOINT draft").await?;
                let mut rows = Rows::default();
                rows.push(part.book, part.head.committed_at, &[planned.as_ref()])?;
                match B::write_rows(tx, &rows, None).await {
                    Ok(()) => {
                        control::<B>(tx, "RELEASE SAVEPOINT draft").await?;
                        planner.accept(i, &planned);
                        Verdict::Write(planned)
                    }
                    Err(error) if isolatable::<B>(&error) => {
                        control::<B>(tx, "ROLLBACK TO SAVEPOINT draft; RELEASE SAVEPOINT draft")
                            .await?;
                        Verdict::Settled(Outcome::Rejected(Rejection::Failed(format!(
                            "the database refused this transaction: {}",
                            describe::<B>(&error)
                        ))))
                    }
                    Err(error) => return Err(write_error::<B>(part.book.as_str(), error)),
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
/// No row locks on the balance rows: every writer of a book holds its
/// lock, which already excludes concurrent changes.
async fn load_accounts<B: SqlBackend>(
    conn: &mut Conn<B>,
    wanted: &[(&BookName, &[&str])],
    assets: &[&AssetCode],
) -> Result<Vec<AccountState>, StoreError> {
    let assets: Vec<&str> = assets.iter().map(|a| a.as_str()).collect();
    let (books, names, slot_of) = read::parallel(wanted);
    let params = [
        Param::Texts(Some(&books)),
        Param::Texts(Some(&names)),
        Param::Texts(Some(&assets)),
    ];
    let rows = fetch::<B>(conn, B::SQL.batch_accounts, &params).await?;
    let mut states: Vec<AccountState> = vec![(HashMap::new(), HashMap::new()); wanted.len()];
    for row in &rows {
        let (rules, balances) = &mut states[read::slot::<B>(&slot_of, row, "account")?];
        let name = decode::account_name::<B>(row, "name")?;
        if decode::opt_text::<B>(row, "asset")?.is_some() {
            let totals = Totals {
                balance: decode::amount::<B>(row, "balance")?.minor(),
                debits: decode::amount::<B>(row, "debits")?.minor(),
                credits: decode::amount::<B>(row, "credits")?.minor(),
            };
            balances.insert(
                (name.clone(), decode::asset_code::<B>(row, "asset")?),
                totals,
            );
        }
        // An account with several balance rows comes once per row.
        if let std::collections::hash_map::Entry::Vacant(slot) = rules.entry(name) {
            slot.insert(AccountRule {
                kind: decode::account_kind::<B>(row, "kind")?,
                min_balance: decode::min_balance::<B>(row)?,
            });
        }
    }
    Ok(states)
}
