//! The read side of `LogStore`: answers from the in-memory indexes, and
//! payloads read by offset.
//!
//! Each query finds what it needs under the indexes' read lock (offsets,
//! seqs, balances), releases the lock, and only then reads records from the
//! file, so a slow disk never holds up the writer. That is safe because the
//! log is append-only: an offset, once in the indexes, names the same
//! durable bytes forever.

use std::collections::HashMap;

use talea_core::{
    Account, AccountName, Amount, Asset, AssetCode, BookName, Commit, Event, EventKind, Side,
    Timestamp, TxId, TxStatus,
};
use talea_store::plan::Pair;
use talea_store::{
    AccountBalances, AccountPosting, Balance, BalanceCut, BookInfo, DueHold, Held, PrefixBalances,
    StoreError, TrialRow,
};

use crate::codec::{Record, TxRecord};
use crate::state::{Book, EntryKind, EntryRef, PairState};
use crate::writer::{Shared, now};

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

/// Reads the transaction at `entry` of `book`, checking it is the one the index named.
pub(crate) fn transaction_at(
    shared: &Shared,
    book: &BookName,
    entry: EntryRef,
) -> Result<TxRecord, StoreError> {
    match shared.file.read_record(entry.offset)? {
        Record::Transaction(t) if t.commit.book == *book && t.commit.seq == entry.seq => Ok(t),
        other => Err(corrupt(format!(
            "book {book}, seq {}: the record at offset {} is not that transaction: {other:?}",
            entry.seq, entry.offset
        ))),
    }
}

/// Reads the event at `entry` of `book`, with its stored chain `hash`; an
/// expiry's hold is read from the offset `hold_at` gives for its id.
fn event_at(
    shared: &Shared,
    book: &BookName,
    (entry, hash): (EntryRef, Option<[u8; 32]>),
    hold_at: &dyn Fn(TxId) -> Option<u64>,
) -> Result<Event, StoreError> {
    let event = match shared.file.read_record(entry.offset)? {
        Record::AccountOpened(a) if entry.kind == EntryKind::Account => Event {
            seq: a.seq,
            committed_at: a.opened_at,
            kind: EventKind::AccountOpened(a),
            hash,
        },
        Record::Transaction(t) if entry.kind == EntryKind::Transaction => Event {
            seq: t.commit.seq,
            committed_at: t.commit.committed_at,
            kind: EventKind::Transaction(t.commit),
            hash,
        },
        Record::HoldExpired(e) if entry.kind == EntryKind::Expiry && e.book == *book => {
            let offset = hold_at(e.hold).ok_or_else(|| {
                corrupt(format!(
                    "book {book}, seq {}: hold {} that expired is not indexed",
                    e.seq, e.hold.0
                ))
            })?;
            let mut hold = match shared.file.read_record(offset)? {
                Record::Transaction(t) if t.commit.tx_id == e.hold => t.commit,
                other => {
                    return Err(corrupt(format!(
                        "book {book}: hold {} is indexed at offset {offset}, which holds {other:?}",
                        e.hold.0
                    )));
                }
            };
            hold.status = TxStatus::Expired;
            Event {
                seq: e.seq,
                committed_at: e.committed_at,
                kind: EventKind::HoldExpired(hold),
                hash,
            }
        }
        other => {
            return Err(corrupt(format!(
                "book {book}, seq {}: the record at offset {} is not the event indexed: {other:?}",
                entry.seq, entry.offset
            )));
        }
    };
    let belongs = match &event.kind {
        EventKind::AccountOpened(a) => a.book == *book,
        EventKind::Transaction(c) | EventKind::HoldExpired(c) => c.book == *book,
    };
    if !belongs || event.seq != entry.seq {
        return Err(corrupt(format!(
            "book {book}, seq {}: the record at offset {} belongs elsewhere",
            entry.seq, entry.offset
        )));
    }
    Ok(event)
}

/// One asset.
pub fn asset(shared: &Shared, code: &AssetCode) -> Option<Asset> {
    shared.state().asset(code).cloned()
}

/// Every asset, by code.
pub fn assets(shared: &Shared) -> Vec<Asset> {
    shared.state().assets().cloned().collect()
}

/// Books with events, by name.
pub fn books(shared: &Shared) -> Vec<BookInfo> {
    shared
        .state()
        .books()
        .filter(|(_, b)| b.last_seq() > 0)
        .map(|(name, b)| BookInfo {
            book: name.clone(),
            last_seq: b.last_seq(),
        })
        .collect()
}

/// A book's last seq.
pub fn last_seq(shared: &Shared, book: &BookName) -> Option<u64> {
    shared
        .state()
        .book(book)
        .map(|b| b.last_seq())
        .filter(|s| *s > 0)
}

/// One account.
pub fn account(shared: &Shared, book: &BookName, name: &AccountName) -> Option<Account> {
    shared
        .state()
        .book(book)
        .and_then(|b| b.account(name))
        .map(|a| a.account.clone())
}

/// Accounts by name, strictly after `after`.
pub fn accounts(
    shared: &Shared,
    book: &BookName,
    after: Option<&AccountName>,
    limit: u32,
) -> Vec<Account> {
    let state = shared.state();
    let Some(b) = state.book(book) else {
        return Vec::new();
    };
    b.accounts_after(after)
        .take(limit as usize)
        .map(|a| a.account.clone())
        .collect()
}

/// Adds (`add`) or takes away a leg's amount to held amounts; `None`
/// outside 128 bits or below zero.
fn move_held(held: &mut Held, side: Side, amount: Amount, add: bool) -> Option<()> {
    let total = match side {
        Side::Debit => &mut held.debits,
        Side::Credit => &mut held.credits,
    };
    *total = if add {
        total.checked_add(amount)?
    } else {
        total.checked_sub(amount).filter(|a| *a >= Amount::ZERO)?
    };
    Some(())
}

/// Adds a hold's legs (on `account` only, if given) to `held`.
fn add_legs(
    held: &mut HashMap<Pair, Held>,
    hold: &Commit,
    account: Option<&AccountName>,
) -> Result<(), StoreError> {
    for p in &hold.postings {
        if account.is_some_and(|a| *a != p.account) {
            continue;
        }
        let slot = held
            .entry((p.account.clone(), p.asset.clone()))
            .or_default();
        move_held(slot, p.side, p.amount, true).ok_or_else(|| {
            corrupt(format!(
                "book {}: held amounts of {} leave 128 bits",
                hold.book, p.account
            ))
        })?;
    }
    Ok(())
}

/// What the holds due at `at` (pending, `expires_at` at or before it)
/// hold, per pair (of `account` only, if given): what readers take off a
/// pair's `held` for the amounts live now.
fn due_legs(
    b: &Book,
    at: Timestamp,
    account: Option<&AccountName>,
) -> Result<HashMap<Pair, Held>, StoreError> {
    let mut due = HashMap::new();
    for (_, hold) in b.due(at) {
        if let Some(live) = hold.live.as_deref() {
            add_legs(&mut due, live, account)?;
        }
    }
    Ok(due)
}

/// A pair's held amounts live now: all pending holds' less the due ones'.
fn live_held(pair: &PairState, due: &HashMap<Pair, Held>, key: &Pair) -> Held {
    let mut held = pair.held;
    if let Some(gone) = due.get(key) {
        held.debits = held
            .debits
            .checked_sub(gone.debits)
            .unwrap_or(Amount::ZERO)
            .max(Amount::ZERO);
        held.credits = held
            .credits
            .checked_sub(gone.credits)
            .unwrap_or(Amount::ZERO)
            .max(Amount::ZERO);
    }
    held
}

/// What the book's holds reserved at the instant `at` (its last seq
/// `cut`), per pair (of `account` only, if given): from the holds still
/// pending, and the offsets of ended holds whose legs must be read.
fn held_at(
    b: &Book,
    (cut, at): (u64, Timestamp),
    account: Option<&AccountName>,
) -> Result<(HashMap<Pair, Held>, Vec<u64>), StoreError> {
    let mut held = HashMap::new();
    let mut to_read = Vec::new();
    for (_, hold) in b.holds_in_order().take_while(|(seq, _)| *seq <= cut) {
        if !hold.held_at(cut, at) {
            continue;
        }
        match hold.live.as_deref() {
            Some(live) => add_legs(&mut held, live, account)?,
            None => to_read.push(hold.offset),
        }
    }
    Ok((held, to_read))
}

/// Adds the legs of the ended holds at `offsets` to `held`.
fn read_held(
    shared: &Shared,
    book: &BookName,
    offsets: Vec<u64>,
    account: Option<&AccountName>,
    held: &mut HashMap<Pair, Held>,
) -> Result<(), StoreError> {
    for offset in offsets {
        match shared.file.read_record(offset)? {
            Record::Transaction(t) if t.commit.book == *book => {
                add_legs(held, &t.commit, account)?;
            }
            other => {
                return Err(corrupt(format!(
                    "book {book}: a hold is indexed at offset {offset}, which holds {other:?}"
                )));
            }
        }
    }
    Ok(())
}

/// Whether a pair has a row at `cut`: a posting at or before it, or a hold.
fn exists_at(pair: &PairState, cut: u64) -> bool {
    pair.as_of(cut).is_some() || pair.first_hold.is_some_and(|seq| seq <= cut)
}

/// An account's storage balances with what holds reserve, now or as of a
/// commit time.
pub fn balances(
    shared: &Shared,
    book: &BookName,
    account: &AccountName,
    as_of: Option<Timestamp>,
) -> Result<Vec<Balance>, StoreError> {
    let (mut out, to_read, mut held) = {
        let state = shared.state();
        let Some(b) = state.book(book) else {
            return Ok(Vec::new());
        };
        let Some(a) = b.account(account) else {
            return Ok(Vec::new());
        };
        match as_of {
            None => {
                let due = due_legs(b, now(), Some(account))?;
                let out: Vec<Balance> = a
                    .assets
                    .iter()
                    .map(|(asset, pair)| Balance {
                        asset: asset.clone(),
                        balance: Amount::from_minor(pair.totals.balance),
                        held: live_held(pair, &due, &(account.clone(), asset.clone())),
                    })
                    .collect();
                return Ok(out);
            }
            Some(at) => {
                let cut = b.cut(at);
                let (held, to_read) = held_at(b, (cut, at), Some(account))?;
                let out: Vec<Balance> = a
                    .assets
                    .iter()
                    .filter(|(_, pair)| exists_at(pair, cut))
                    .map(|(asset, pair)| Balance {
                        asset: asset.clone(),
                        balance: Amount::from_minor(pair.as_of(cut).map_or(0, |e| e.balance())),
                        held: Held::default(),
                    })
                    .collect();
                (out, to_read, held)
            }
        }
    };
    read_held(shared, book, to_read, Some(account), &mut held)?;
    for row in &mut out {
        row.held = held
            .get(&(account.clone(), row.asset.clone()))
            .copied()
            .unwrap_or_default();
    }
    Ok(out)
}

/// The book's balances with its head seq, all read under one hold of the
/// indexes' read lock (the writer applies a frame under the write lock), so
/// they agree.
pub fn balance_cut(
    shared: &Shared,
    book: &BookName,
    accounts: Option<&[AccountName]>,
    limit: u32,
) -> Option<BalanceCut> {
    let state = shared.state();
    let b = state.book(book)?;
    let committed_at = b.last_time().filter(|_| b.last_seq() > 0)?;
    let mut cut = BalanceCut::new(b.last_seq(), committed_at);
    // Held as of the cut: a hold due by the cut's commit time reserves
    // nothing there, as on the SQL stores. Corrupt held sums cannot be told
    // apart here: they read as none due.
    let due = due_legs(b, committed_at, None).unwrap_or_default();
    let balances = |a: &crate::state::AccountState| AccountBalances {
        account: a.account.name.clone(),
        kind: a.account.kind,
        balances: a
            .assets
            .iter()
            .map(|(asset, pair)| Balance {
                asset: asset.clone(),
                balance: Amount::from_minor(pair.totals.balance),
                held: live_held(pair, &due, &(a.account.name.clone(), asset.clone())),
            })
            .collect(),
    };
    let limit = limit as usize;
    cut.accounts = match accounts {
        None => b.accounts().take(limit).map(balances).collect(),
        Some(names) => {
            let mut names: Vec<&AccountName> = names.iter().collect();
            names.sort_unstable();
            names.dedup();
            names
                .into_iter()
                .filter_map(|name| b.account(name))
                .take(limit)
                .map(balances)
                .collect()
        }
    };
    Some(cut)
}

/// The current balances under a name prefix, all read under one hold of
/// the indexes' read lock: O(matching accounts and their assets) for the
/// count and the totals, whatever the page.
pub fn prefix_balances(
    shared: &Shared,
    book: &BookName,
    prefix: Option<&AccountName>,
    asset: Option<&AssetCode>,
    after: Option<&AccountName>,
    limit: u32,
) -> Result<PrefixBalances, StoreError> {
    let state = shared.state();
    let Some(b) = state.book(book) else {
        return Ok(PrefixBalances::default());
    };
    let due = due_legs(b, now(), None)?;
    let accounts = b.accounts_with_prefix(prefix).map(|a| AccountBalances {
        account: a.account.name.clone(),
        kind: a.account.kind,
        balances: a
            .assets
            .iter()
            .filter(|(code, _)| asset.is_none_or(|want| *code == want))
            .map(|(code, pair)| Balance {
                asset: code.clone(),
                balance: Amount::from_minor(pair.totals.balance),
                held: live_held(pair, &due, &(a.account.name.clone(), code.clone())),
            })
            .collect(),
    });
    PrefixBalances::fold(accounts, asset, after, limit)
}

/// Totals per account and asset, now or as of a commit time.
///
/// In phases: under the read lock, the rows from the indexes
/// (`trial_rows`) and, as of a time, what to read for the held amounts;
/// then, without the lock, the held amounts (`past_held_into_rows`) and
/// the totals (`past_totals_into_rows`) read from the log.
pub fn trial_balance(
    shared: &Shared,
    book: &BookName,
    as_of: Option<Timestamp>,
) -> Result<Vec<TrialRow>, StoreError> {
    let (mut rows, pending, held, to_read) = {
        let state = shared.state();
        let Some(b) = state.book(book) else {
            return Ok(Vec::new());
        };
        let cut = as_of.map(|at| b.cut(at));
        let (due, held, to_read) = match (cut, as_of) {
            (Some(cut), Some(at)) => {
                let (held, to_read) = held_at(b, (cut, at), None)?;
                (HashMap::new(), held, to_read)
            }
            _ => (due_legs(b, now(), None)?, HashMap::new(), Vec::new()),
        };
        let (rows, pending) = trial_rows(b, book, cut, &due)?;
        (rows, pending, held, to_read)
    };
    if as_of.is_some() {
        past_held_into_rows(shared, book, to_read, held, &mut rows)?;
    }
    past_totals_into_rows(shared, book, pending, &mut rows)?;
    Ok(rows)
}

/// A trial balance row whose totals are read from the record at `entry`.
struct PendingTotals {
    row: usize,
    entry: EntryRef,
    balance: i128,
}

/// The trial balance rows of `b` from the indexes: now (`cut` is `None`),
/// complete, with what is held less the `due` legs; as of `cut`, with no
/// held amounts yet, and the totals of each pair touched by then left to
/// read (the returned `PendingTotals`).
fn trial_rows(
    b: &Book,
    book: &BookName,
    cut: Option<u64>,
    due: &HashMap<Pair, Held>,
) -> Result<(Vec<TrialRow>, Vec<PendingTotals>), StoreError> {
    let mut rows = Vec::new();
    let mut pending = Vec::new();
    for a in b.accounts() {
        for (asset, pair) in &a.assets {
            let (debits, credits) = match cut {
                None => (pair.totals.debits, pair.totals.credits),
                Some(cut) if !exists_at(pair, cut) => continue,
                Some(cut) => {
                    let Some(e) = pair.as_of(cut) else {
                        // Only held by then: no totals yet.
                        rows.push(TrialRow {
                            account: a.account.name.clone(),
                            kind: a.account.kind,
                            asset: asset.clone(),
                            debits: Amount::ZERO,
                            credits: Amount::ZERO,
                            held: Held::default(),
                        });
                        continue;
                    };
                    let entry = b.entry(e.seq).ok_or_else(|| {
                        corrupt(format!("book {book}: history names missing seq {}", e.seq))
                    })?;
                    pending.push(PendingTotals {
                        row: rows.len(),
                        entry,
                        balance: e.balance(),
                    });
                    (0, 0)
                }
            };
            let key = (a.account.name.clone(), asset.clone());
            rows.push(TrialRow {
                held: match cut {
                    None => live_held(pair, due, &key),
                    Some(_) => Held::default(),
                },
                account: key.0,
                kind: a.account.kind,
                asset: key.1,
                debits: Amount::from_minor(debits),
                credits: Amount::from_minor(credits),
            });
        }
    }
    Ok((rows, pending))
}

/// As of a time: completes `held` (the held amounts the indexes gave) from
/// the hold records at `to_read`, and sets each row's held amounts.
fn past_held_into_rows(
    shared: &Shared,
    book: &BookName,
    to_read: Vec<u64>,
    mut held: HashMap<Pair, Held>,
    rows: &mut [TrialRow],
) -> Result<(), StoreError> {
    read_held(shared, book, to_read, None, &mut held)?;
    for row in rows {
        if let Some(h) = held.remove(&(row.account.clone(), row.asset.clone())) {
            row.held = h;
        }
    }
    Ok(())
}

/// As of a time, the debits come from the pair's last posting at or
/// before the cut (several pairs often share a transaction, read once);
/// the credits follow from them and the balance.
fn past_totals_into_rows(
    shared: &Shared,
    book: &BookName,
    pending: Vec<PendingTotals>,
    rows: &mut [TrialRow],
) -> Result<(), StoreError> {
    let mut read: HashMap<u64, TxRecord> = HashMap::new();
    for p in pending {
        let t = match read.entry(p.entry.offset) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(transaction_at(shared, book, p.entry)?)
            }
        };
        let row = &mut rows[p.row];
        let debits = t
            .commit
            .postings
            .iter()
            .zip(&t.debits_after)
            .rev()
            .find(|(posting, _)| posting.account == row.account && posting.asset == row.asset)
            .map(|(_, d)| *d)
            .ok_or_else(|| {
                corrupt(format!(
                    "book {book}, seq {}: no posting to {} in {}",
                    p.entry.seq, row.account, row.asset
                ))
            })?;
        let credits = debits.checked_sub(p.balance).ok_or_else(|| {
            corrupt(format!(
                "book {book}, seq {}: totals of {} leave 128 bits",
                p.entry.seq, row.account
            ))
        })?;
        row.debits = Amount::from_minor(debits);
        row.credits = Amount::from_minor(credits);
    }
    Ok(())
}

/// An account's postings after a seq, never splitting a transaction.
pub fn account_postings(
    shared: &Shared,
    book: &BookName,
    account: &AccountName,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<AccountPosting>, StoreError> {
    let limit = limit as usize;
    // Each transaction holds at least one posting of the account, so the
    // first `limit` transactions after `after_seq` are enough.
    let entries: Vec<EntryRef> = {
        let state = shared.state();
        let Some(b) = state.book(book) else {
            return Ok(Vec::new());
        };
        let Some(a) = b.account(account) else {
            return Ok(Vec::new());
        };
        let mut seqs: Vec<u64> = a
            .assets
            .values()
            .flat_map(|pair| pair.seqs_after(after_seq, limit))
            .collect();
        seqs.sort_unstable();
        seqs.dedup();
        seqs.truncate(limit);
        seqs.into_iter()
            .map(|seq| {
                b.entry(seq)
                    .ok_or_else(|| corrupt(format!("book {book}: history names missing seq {seq}")))
            })
            .collect::<Result<_, _>>()?
    };
    let mut out = Vec::new();
    for entry in entries {
        if out.len() >= limit {
            break;
        }
        let t = transaction_at(shared, book, entry)?;
        for p in t.commit.postings.iter().filter(|p| p.account == *account) {
            let amount = match p.side {
                Side::Debit => p.amount,
                Side::Credit => p
                    .amount
                    .checked_neg()
                    .ok_or_else(|| corrupt(format!("book {book}, seq {}: amount", entry.seq)))?,
            };
            out.push(AccountPosting {
                seq: t.commit.seq,
                tx_id: t.commit.tx_id,
                committed_at: t.commit.committed_at,
                asset: p.asset.clone(),
                amount,
                balance_after: p.balance_after,
            });
        }
    }
    Ok(out)
}

/// Transactions of a book after a seq, in order.
pub fn transactions(
    shared: &Shared,
    book: &BookName,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<Commit>, StoreError> {
    let entries: Vec<EntryRef> = {
        let state = shared.state();
        let Some(b) = state.book(book) else {
            return Ok(Vec::new());
        };
        b.entries_after(after_seq)
            .filter(|e| e.kind == EntryKind::Transaction)
            .take(limit as usize)
            .collect()
    };
    let mut commits = entries
        .into_iter()
        .map(|e| transaction_at(shared, book, e).map(|t| t.commit))
        .collect::<Result<Vec<_>, _>>()?;
    let state = shared.state();
    if let Some(b) = state.book(book) {
        for commit in &mut commits {
            current_status(b, commit);
        }
    }
    Ok(commits)
}

/// A hold as it stands now: its status once it ended.
pub(crate) fn current_status(b: &Book, commit: &mut Commit) {
    if commit.status == TxStatus::Pending
        && let Some(hold) = b.hold(&commit.tx_id)
    {
        commit.status = hold.status;
    }
}

/// Up to `limit` pending holds due at or before `until`, across books,
/// earliest first.
pub fn due_holds(shared: &Shared, until: Timestamp, limit: u32) -> Vec<DueHold> {
    let state = shared.state();
    let mut due: Vec<(Timestamp, &BookName, u64)> = Vec::new();
    for (name, b) in state.books() {
        due.extend(
            b.due(until)
                .take(limit as usize)
                .map(|(expires_at, hold)| (expires_at, name, hold.seq)),
        );
    }
    due.sort_unstable();
    due.into_iter()
        .take(limit as usize)
        .map(|(expires_at, book, _)| DueHold {
            book: book.clone(),
            expires_at,
        })
        .collect()
}

/// One transaction by id, in any book.
pub fn transaction(shared: &Shared, tx_id: TxId) -> Result<Option<Commit>, StoreError> {
    let candidates: Vec<u64> = shared.state().tx_candidates(tx_id).collect();
    for offset in candidates {
        if let Record::Transaction(t) = shared.file.read_record(offset)?
            && t.commit.tx_id == tx_id
        {
            let mut commit = t.commit;
            if let Some(b) = shared.state().book(&commit.book) {
                current_status(b, &mut commit);
            }
            return Ok(Some(commit));
        }
    }
    Ok(None)
}

/// The chain hashes of `book`'s events after `after_seq`, from the index
/// (no record is read); see `Store::event_hashes`.
pub fn event_hashes(
    shared: &Shared,
    book: &BookName,
    after_seq: u64,
    limit: u32,
) -> Vec<Option<[u8; 32]>> {
    let state = shared.state();
    let Some(b) = state.book(book) else {
        return Vec::new();
    };
    let last = b.last_seq();
    let first = after_seq.saturating_add(1);
    let end = first
        .saturating_add(u64::from(limit))
        .min(last.saturating_add(1));
    (first..end).map(|seq| b.hash(seq)).collect()
}

/// Events of a book after a seq, in order, each with its stored chain
/// hash (kept in the indexes; `None` only for an event of a log written
/// before the chain existed, until it is caught up at open).
pub fn events(
    shared: &Shared,
    book: &BookName,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let entries: Vec<(EntryRef, Option<[u8; 32]>)> = {
        let state = shared.state();
        let Some(b) = state.book(book) else {
            return Ok(Vec::new());
        };
        b.entries_after(after_seq)
            .take(limit as usize)
            .map(|e| (e, b.hash(e.seq)))
            .collect()
    };
    // Holds never move once indexed: an expiry's hold is found by id.
    let hold_at = |tx_id: TxId| {
        shared
            .state()
            .book(book)
            .and_then(|b| b.hold(&tx_id).map(|h| h.offset))
    };
    entries
        .into_iter()
        .map(|e| event_at(shared, book, e, &hold_at))
        .collect()
}
