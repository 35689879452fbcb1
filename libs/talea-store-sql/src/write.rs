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
//!
//! Holds (migrations/0003_holds.sql): under the lock a batch also loads the
//! holds its settles and voids name (only when it has some) and the held
//! amounts of its pairs (only when the book's `open_holds` is above zero),
//! so a batch of plain posts on a book without holds runs exactly the
//! statements it always did. Holds, settles and voids add their own rows to
//! the same write ([`SqlBackend::write_rows`]: one statement on Postgres,
//! multi-row statements on SQLite), in the same savepoint. [`expire_holds`]
//! ends a book's due holds under its lock.

use std::collections::{HashMap, HashSet};

use talea_core::{
    Account, AccountName, Asset, AssetCode, BookName, Commit, Draft, Event, EventKind, NewAccount,
    Scale, Timestamp, TxId, TxStatus,
};
use talea_store::plan::{
    AccountRule, HoldState, Loaded, Pair, Planned, Planner, StoredKey, Totals, Verdict, Wanted,
    outcomes,
};
use talea_store::{
    BookBatch, DueHold, Expiry, Held, Opened, Outcome, Registered, Rejection, StoreError,
    repeated_book,
};

use crate::backend::{Conn, Head, Param, Row, SqlBackend, Tx};
use crate::chain;
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
    let (mut tx, head) = begin_chained(store, book).await?;
    if let Some(existing) = read::account::<B>(&mut tx, book, &new.name).await? {
        tx.rollback().await.map_err(store_error::<B>)?;
        return Ok(Opened::Existing(existing));
    }
    let seq = head.last_seq + 1;
    let seq_value = new_seq_param(seq)?;
    let (mantissa, scale) = talea_store::stored::min_balance_parts(new.min_balance);
    let account = Account {
        book: book.clone(),
        name: new.name.clone(),
        kind: new.kind,
        min_balance: new.min_balance,
        metadata: new.metadata.clone(),
        seq,
        opened_at: head.committed_at,
    };
    let event = Event {
        seq,
        committed_at: head.committed_at,
        kind: EventKind::AccountOpened(account),
        hash: None,
    };
    let no_scales: HashMap<AssetCode, Scale> = HashMap::new();
    let hash = chain::hash_one(book, &head.chain, &event, &no_scales)?;
    let mut advance = Advance::default();
    advance.push(book, seq, head, hash);
    let result: Result<(), sqlx::Error> = async {
        // The event first: the account row's foreign key points at it.
        let event = [
            Param::Text(Some(book.as_str())),
            Param::Int(seq_value),
            Param::Time(head.committed_at),
            Param::Bytes(&hash),
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
    match event.kind {
        EventKind::AccountOpened(account) => Ok(Opened::Created(account)),
        _ => Err(StoreError::Other(
            "an account event lost its account".to_owned(),
        )),
    }
}

/// A write transaction holding `book`'s lock, its chain caught up.
async fn begin_chained<B: SqlBackend>(
    store: &B,
    book: &BookName,
) -> Result<(Tx<B>, Head), StoreError> {
    let (mut tx, heads) = store.begin_locked(&[book.as_str()]).await?;
    let mut head = head_of(&heads, book)?;
    chain::catch_up(store, &mut tx, book, &mut head).await?;
    Ok((tx, head))
}

/// The `events` row of an account opening: `$1` book, `$2` seq, `$3` time,
/// `$4` chain hash.
pub(crate) const INSERT_ACCOUNT_EVENT: &str = "INSERT INTO events (book, seq, type, committed_at, hash) \
                                    VALUES ($1, $2, 'account_opened', $3, $4)";

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
    let chains = parts
        .iter()
        .zip(&decided)
        .map(|(part, (verdicts, _))| chain_of(part, &written(verdicts)))
        .collect::<Result<Vec<_>, _>>()?;
    let mut advance = Advance::default();
    for ((part, (verdicts, last_seq)), hashes) in parts.iter().zip(&decided).zip(&chains) {
        let delta = Advance::open_holds_delta(written(verdicts));
        let chain_hash = hashes.last().copied().unwrap_or(part.head.chain);
        advance.push_holds(part.book, *last_seq, part.head, delta, chain_hash);
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
    for ((part, (verdicts, _)), hashes) in parts.iter().zip(&decided).zip(&chains) {
        rows.push(
            part.book,
            part.head.committed_at,
            &written(verdicts),
            hashes,
        )?;
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
        let (verdicts, last_seq, chain_hash) = write_one_by_one::<B>(&mut tx, part).await?;
        let delta = Advance::open_holds_delta(written(&verdicts));
        advance.push_holds(part.book, last_seq, part.head, delta, chain_hash);
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

/// The chain hashes of the events of `plans` (in order) of `part`'s book.
fn chain_of(part: &Part<'_>, plans: &[&Planned]) -> Result<Vec<[u8; 32]>, StoreError> {
    let mut prev = part.head.chain;
    plans
        .iter()
        .map(|planned| {
            prev = plan_hash(part, &prev, planned)?;
            Ok(prev)
        })
        .collect()
}

/// The chain hash of `planned`'s event after `prev`.
fn plan_hash(part: &Part<'_>, prev: &[u8; 32], planned: &Planned) -> Result<[u8; 32], StoreError> {
    let event = Event {
        seq: planned.commit.seq,
        committed_at: planned.commit.committed_at,
        kind: EventKind::Transaction(planned.commit.clone()),
        hash: None,
    };
    chain::hash_one(part.book, prev, &event, &part.loaded.scales)
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

    let (mut tx, mut heads) = store.begin_locked(&names).await?;
    for (book, _) in &wants {
        if let Some(head) = heads.get_mut(book.as_str()) {
            chain::catch_up(store, &mut tx, book, head).await?;
        }
    }
    let key_sets: Vec<(&BookName, &[&str])> = wants
        .iter()
        .map(|(book, w)| (*book, w.keys.as_slice()))
        .collect();
    // The holds that settles and voids name come with the stored keys, in
    // one statement (then their accounts and assets are wanted too: a
    // settle of a whole hold posts its legs).
    let hold_sets: Vec<(&BookName, &[TxId])> = wants
        .iter()
        .map(|(book, w)| (*book, w.holds.as_slice()))
        .collect();
    let (mut stored, hold_maps) = if hold_sets.iter().all(|(_, ids)| ids.is_empty()) {
        let stored = read::transactions_by_keys::<B>(&mut tx, &key_sets).await?;
        (stored, vec![HashMap::new(); wants.len()])
    } else {
        keys_and_holds::<B>(&mut tx, &key_sets, &hold_sets).await?
    };
    let mut wants = wants;
    for ((_, want), holds) in wants.iter_mut().zip(&hold_maps) {
        want.add_holds(holds);
    }
    let mut assets = assets;
    let before = assets.len();
    for (_, want) in &wants {
        for asset in &want.assets {
            if !assets.contains(asset) {
                assets.push(asset);
            }
        }
    }
    let mut scales = scales;
    if assets.len() > before {
        // Holds in assets the drafts themselves do not name (the cache
        // answers registered assets without a statement, mostly).
        scales = store.scale_cache().get(store, &assets).await?;
    }
    let account_sets: Vec<(&BookName, &[&str])> = wants
        .iter()
        .map(|(book, w)| (*book, w.accounts.as_slice()))
        .collect();
    // Held amounts only where the book has pending holds, with the
    // accounts in one statement: a plain post on a book without holds
    // costs no statement more than before holds.
    let mut held_sets: Vec<(&BookName, &[&str])> = Vec::new();
    for (book, want) in &wants {
        if head_of(&heads, book)?.open_holds > 0 {
            held_sets.push((*book, want.accounts.as_slice()));
        }
    }
    let (mut accounts, mut held) = if held_sets.is_empty() {
        let accounts = load_accounts::<B>(&mut tx, &account_sets, &assets).await?;
        (accounts, HashMap::new())
    } else {
        accounts_and_held::<B>(&mut tx, &account_sets, &held_sets, &assets, &heads).await?
    };
    drop(account_sets);
    drop(held_sets);
    drop(wants);

    let mut parts = Vec::with_capacity(wanted.len());
    for ((n, &index), holds) in wanted.iter().enumerate().zip(hold_maps) {
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
                held: held.remove(book.as_str()).unwrap_or_default(),
                holds,
            },
        });
    }
    Ok((tx, parts))
}

/// What a batch with settles or voids decides on from its book's log, in
/// one statement: the stored transactions of its keys (as
/// [`read::transactions_by_keys`]) and the transactions its settles and
/// voids name ([`holds_of`]).
async fn keys_and_holds<B: SqlBackend>(
    conn: &mut Conn<B>,
    key_sets: &[(&BookName, &[&str])],
    hold_sets: &[(&BookName, &[TxId])],
) -> Result<(Vec<Vec<(Commit, [u8; 32])>>, Vec<HashMap<TxId, HoldState>>), StoreError> {
    let (key_books, keys, _) = read::parallel(key_sets);
    let mut hold_books = Vec::new();
    let mut ids = Vec::new();
    for (book, book_ids) in hold_sets {
        for id in book_ids.iter() {
            hold_books.push(book.as_str());
            ids.push(id.0);
        }
    }
    let params = [
        Param::Texts(Some(&key_books)),
        Param::Texts(Some(&keys)),
        Param::Texts(Some(&hold_books)),
        Param::Uuids(&ids),
    ];
    let rows = fetch::<B>(conn, B::SQL.keys_and_holds, &params).await?;
    let mut by_key = Vec::new();
    let mut by_id = Vec::new();
    for row in &rows {
        match decode::text::<B>(row, "found_by")?.as_str() {
            "key" => by_key.push(row),
            _ => by_id.push(row),
        }
    }
    let holds = holds_of::<B>(hold_sets, &by_id)?;
    let stored = read::stored_of::<B>(conn, key_sets, &by_key).await?;
    Ok((stored, holds))
}

/// The transactions named by each book's settles and voids, from `rows`
/// (the 'id' rows of `keys_and_holds`), as the planner wants them: a hold
/// with its legs, its current status and what ended it; any other
/// transaction without its postings (the planner only needs to know it is
/// not a hold).
fn holds_of<B: SqlBackend>(
    wanted: &[(&BookName, &[TxId])],
    rows: &[&Row<B>],
) -> Result<Vec<HashMap<TxId, HoldState>>, StoreError> {
    let mut out: Vec<HashMap<TxId, HoldState>> = vec![HashMap::new(); wanted.len()];
    let slot_of = read::slots(wanted);
    for row in rows {
        let slot = read::slot::<B>(&slot_of, row, "hold")?;
        let tx_id = decode::opt_uuid::<B>(row, "tx_id")?
            .map(TxId)
            .ok_or_else(|| crate::error::corrupt("tx_id is NULL"))?;
        let found = match out[slot].entry(tx_id) {
            std::collections::hash_map::Entry::Occupied(found) => found.into_mut(),
            std::collections::hash_map::Entry::Vacant(slot_entry) => {
                let commit = decode::commit_head::<B>(wanted[slot].0, row)?;
                // A hold answers its holds row's status; anything else its own.
                let status = match commit.status {
                    TxStatus::Pending => {
                        decode::opt_status::<B>(row, "hold_status")?.ok_or_else(|| {
                            crate::error::corrupt(format!(
                                "hold at seq {} has no holds row",
                                commit.seq
                            ))
                        })?
                    }
                    other => other,
                };
                let ended_by = match commit.status {
                    TxStatus::Pending => decode::opt_uuid::<B>(row, "ended_tx_id")?.map(TxId),
                    _ => None,
                };
                slot_entry.insert(HoldState {
                    commit,
                    status,
                    ended_by,
                })
            }
        };
        if found.commit.status == TxStatus::Pending
            && decode::opt_text::<B>(row, "account")?.is_some()
        {
            found
                .commit
                .postings
                .push(decode::stored_posting::<B>(row)?);
        }
    }
    for holds in &out {
        if let Some(short) = holds.values().find(|h| {
            h.commit.status == TxStatus::Pending
                && h.commit.postings.len() < talea_core::limits::POSTINGS_MIN
        }) {
            return Err(crate::error::corrupt(format!(
                "hold at seq {} has too few legs",
                short.commit.seq
            )));
        }
    }
    Ok(out)
}

/// Held amounts per book (by name) and pair, by book name.
type HeldByBook = HashMap<String, HashMap<Pair, Held>>;

/// [`load_accounts`] and, in the same statement, the held amounts of the
/// `held` books (those with pending holds) on their named accounts: the
/// legs of each book's live holds (pending, not expired at the book's
/// commit time) in `assets`, summed.
async fn accounts_and_held<B: SqlBackend>(
    conn: &mut Conn<B>,
    wanted: &[(&BookName, &[&str])],
    held: &[(&BookName, &[&str])],
    assets: &[&AssetCode],
    heads: &HashMap<String, Head>,
) -> Result<(Vec<AccountState>, HeldByBook), StoreError> {
    let asset_codes: Vec<&str> = assets.iter().map(|a| a.as_str()).collect();
    let (books, names, _) = read::parallel(wanted);
    let (held_books, held_names, _) = read::parallel(held);
    // Held legs of every book filtered at the earliest commit time of
    // them, then each book's again at its own (the commit times of the
    // books of one transaction differ by microseconds at most).
    let at = held
        .iter()
        .filter_map(|(book, _)| heads.get(book.as_str()).map(|h| h.committed_at))
        .min()
        .unwrap_or(Timestamp::from_micros(i64::MIN));
    let params = [
        Param::Texts(Some(&books)),
        Param::Texts(Some(&names)),
        Param::Texts(Some(&asset_codes)),
        Param::Texts(Some(&held_books)),
        Param::Texts(Some(&held_names)),
        Param::Time(at),
    ];
    let rows = fetch::<B>(conn, B::SQL.accounts_and_held, &params).await?;
    let mut account_rows = Vec::new();
    let mut held_by_book: HeldByBook = HashMap::new();
    for row in &rows {
        if decode::text::<B>(row, "row_kind")? == "account" {
            account_rows.push(row);
            continue;
        }
        let book = decode::text::<B>(row, "book")?;
        let expires_at = decode::opt_time::<B>(row, "expires_at")?;
        if let (Some(at), Some(head)) = (expires_at, heads.get(&book))
            && at <= head.committed_at
        {
            continue;
        }
        let pair = (
            decode::account_name::<B>(row, "name")?,
            decode::asset_code::<B>(row, "asset")?,
        );
        let held = held_by_book
            .entry(book)
            .or_default()
            .entry(pair)
            .or_default();
        read::add_held(held, decode::amount::<B>(row, "amount")?)?;
    }
    Ok((accounts_of::<B>(wanted, &account_rows)?, held_by_book))
}

/// The error of a settle, void or expiry whose hold is not pending in the
/// database: the state the planner decided on was wrong, so the write fails.
pub fn not_pending(book: &str, hold: uuid::Uuid) -> sqlx::Error {
    sqlx::Error::Protocol(format!("hold {hold} of book {book} is not pending"))
}

/// The `events` row of an expiry: `$1` book, `$2` seq, `$3` time, `$4`
/// chain hash.
pub(crate) const INSERT_TRANSACTION_EVENT: &str = "INSERT INTO events (book, seq, type, committed_at, hash) \
                                        VALUES ($1, $2, 'transaction', $3, $4)";

/// Ends a pending hold: `$1` book, `$2` its seq, `$3` status, `$4` the
/// ending event's seq, `$5` the settle or void (NULL for an expiry); a row
/// back only if it was pending.
pub(crate) const END_HOLD: &str = "UPDATE holds SET status = $3, ended_seq = $4, ended_tx_id = $5 \
                        WHERE book = $1 AND seq = $2 AND status = 'pending' RETURNING seq";

/// The book's due holds, as transactions, by seq ([`expire_holds`]).
pub(crate) const DUE_IN_BOOK: &str = concat!(
    "SELECT ",
    crate::transaction_columns!(),
    " FROM holds h JOIN transactions t ON t.book = $1 AND t.seq = h.seq \
      WHERE h.book = $1 AND h.status = 'pending' AND h.expires_at IS NOT NULL \
        AND h.expires_at <= $2 ORDER BY h.seq"
);

/// Ends every hold of `book` still pending whose `expires_at` is at or
/// before the commit time taken under the book's lock; see
/// `Store::expire_holds`.
pub async fn expire_holds<B: SqlBackend>(
    store: &B,
    book: &BookName,
) -> Result<Vec<Expiry>, StoreError> {
    let (mut tx, head) = begin_chained(store, book).await?;
    if head.open_holds == 0 {
        tx.rollback().await.map_err(store_error::<B>)?;
        return Ok(Vec::new());
    }
    let params = [
        Param::Text(Some(book.as_str())),
        Param::Time(head.committed_at),
    ];
    let rows = fetch::<B>(&mut tx, DUE_IN_BOOK, &params).await?;
    let mut due = rows
        .iter()
        .map(|row| decode::commit_head::<B>(book, row))
        .collect::<Result<Vec<_>, _>>()?;
    if due.is_empty() {
        tx.rollback().await.map_err(store_error::<B>)?;
        return Ok(Vec::new());
    }
    read::attach_postings::<B>(&mut tx, book, &mut due).await?;
    let expiries = talea_store::plan::expiries(due, head.last_seq, head.committed_at);
    let last_seq = expiries.last().map_or(head.last_seq, |e| e.seq);
    let count = i64::try_from(expiries.len())
        .map_err(|_| StoreError::Other("too many expiries".to_owned()))?;
    let assets: Vec<&AssetCode> = expiries
        .iter()
        .flat_map(|e| e.hold.postings.iter().map(|p| &p.asset))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let scales = store.scale_cache().get(store, &assets).await?;
    let events: Vec<Event> = expiries
        .iter()
        .map(|e| Event {
            seq: e.seq,
            committed_at: e.committed_at,
            kind: EventKind::HoldExpired(e.hold.clone()),
            hash: None,
        })
        .collect();
    let hashes = chain::hash_all(book, head.chain, &events, &scales)?;
    let chain_hash = hashes.last().copied().unwrap_or(head.chain);
    let mut advance = Advance::default();
    advance.push_holds(book, last_seq, head, -count, chain_hash);
    let result: Result<(), sqlx::Error> = async {
        for (expiry, hash) in expiries.iter().zip(&hashes) {
            let seq =
                new_seq_param(expiry.seq).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            let event = [
                Param::Text(Some(book.as_str())),
                Param::Int(seq),
                Param::Time(head.committed_at),
                Param::Bytes(hash),
            ];
            B::fetch(&mut tx, INSERT_TRANSACTION_EVENT, &event).await?;
            let end = [
                Param::Text(Some(book.as_str())),
                Param::Int(
                    new_seq_param(expiry.hold.seq)
                        .map_err(|e| sqlx::Error::Protocol(e.to_string()))?,
                ),
                Param::Text(Some(TxStatus::Expired.as_str())),
                Param::Int(seq),
                Param::OptUuid(None),
            ];
            if B::fetch(&mut tx, END_HOLD, &end).await?.is_empty() {
                return Err(not_pending(book.as_str(), expiry.hold.tx_id.0));
            }
        }
        B::advance(&mut tx, &advance).await
    }
    .await;
    result.map_err(|e| write_error::<B>(book.as_str(), e))?;
    tx.commit().await.map_err(store_error::<B>)?;
    store.committed(&advance);
    Ok(expiries)
}

/// The statement of [`due_holds`].
pub(crate) const DUE_HOLDS: &str = "SELECT book, expires_at FROM holds \
                   WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at <= $1 \
                   ORDER BY expires_at LIMIT $2";

/// Up to `limit` pending holds due at or before `until`, earliest first;
/// see `Store::due_holds`. Reads the expirer's partial index.
pub async fn due_holds<B: SqlBackend>(
    store: &B,
    until: Timestamp,
    limit: u32,
) -> Result<Vec<DueHold>, StoreError> {
    let mut conn = store.reader().await?;
    let params = [Param::Time(until), Param::Int(i64::from(limit))];
    let rows = fetch::<B>(&mut conn, DUE_HOLDS, &params).await?;
    rows.iter()
        .map(|row| {
            Ok(DueHold {
                book: decode::book::<B>(row, "book")?,
                expires_at: decode::time::<B>(row, "expires_at")?,
            })
        })
        .collect()
}

/// The careful path: decides and writes each draft of `part` in turn, each
/// in its own savepoint. A draft the database refuses is rejected alone,
/// and the drafts after it are decided without it (seqs stay dense;
/// balances and in-batch keys never include it). Returns the verdicts and
/// the last seq written, with its chain hash.
async fn write_one_by_one<B: SqlBackend>(
    tx: &mut Conn<B>,
    part: &Part<'_>,
) -> Result<(Vec<Verdict>, u64, [u8; 32]), StoreError> {
    let mut planner = planner::<B>(part);
    let mut verdicts = Vec::with_capacity(part.drafts.len());
    let mut chain = part.head.chain;
    for (i, draft) in part.drafts.iter().enumerate() {
        let verdict = match planner.evaluate(draft) {
            Verdict::Write(planned) => {
                control::<B>(tx, "SAVEPOINT draft").await?;
                let hash = [plan_hash(part, &chain, &planned)?];
                let mut rows = Rows::default();
                rows.push(
                    part.book,
                    part.head.committed_at,
                    &[planned.as_ref()],
                    &hash,
                )?;
                match B::write_rows(tx, &rows, None).await {
                    Ok(()) => {
                        control::<B>(tx, "RELEASE SAVEPOINT draft").await?;
                        drop(rows);
                        chain = hash[0];
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
    Ok((verdicts, planner.last_seq(), chain))
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
    let (books, names, _) = read::parallel(wanted);
    let params = [
        Param::Texts(Some(&books)),
        Param::Texts(Some(&names)),
        Param::Texts(Some(&assets)),
    ];
    let rows = fetch::<B>(conn, B::SQL.batch_accounts, &params).await?;
    let rows: Vec<&Row<B>> = rows.iter().collect();
    accounts_of::<B>(wanted, &rows)
}

/// The account states of `wanted` from `rows` (of `batch_accounts`' shape).
fn accounts_of<B: SqlBackend>(
    wanted: &[(&BookName, &[&str])],
    rows: &[&Row<B>],
) -> Result<Vec<AccountState>, StoreError> {
    let slot_of = read::slots(wanted);
    let mut states: Vec<AccountState> = vec![(HashMap::new(), HashMap::new()); wanted.len()];
    for row in rows {
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
