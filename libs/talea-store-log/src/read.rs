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
    Timestamp, TxId,
};
use talea_store::{
    AccountBalances, AccountPosting, Balance, BalanceCut, BookInfo, StoreError, TrialRow,
};

use crate::codec::{Record, TxRecord};
use crate::state::EntryRef;
use crate::writer::Shared;

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

/// Reads the transaction at `entry` of `book`, checking it is the one the index named.
fn transaction_at(
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

/// Reads the event at `entry` of `book`.
fn event_at(shared: &Shared, book: &BookName, entry: EntryRef) -> Result<Event, StoreError> {
    let event = match shared.file.read_record(entry.offset)? {
        Record::AccountOpened(a) if entry.is_account => Event {
            seq: a.seq,
            committed_at: a.opened_at,
            kind: EventKind::AccountOpened(a),
        },
        Record::Transaction(t) if !entry.is_account => Event {
            seq: t.commit.seq,
            committed_at: t.commit.committed_at,
            kind: EventKind::Transaction(t.commit),
        },
        other => {
            return Err(corrupt(format!(
                "book {book}, seq {}: the record at offset {} is not the event indexed: {other:?}",
                entry.seq, entry.offset
            )));
        }
    };
    let belongs = match &event.kind {
        EventKind::AccountOpened(a) => a.book == *book,
        EventKind::Transaction(c) => c.book == *book,
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

/// An account's storage balances, now or as of a commit time.
pub fn balances(
    shared: &Shared,
    book: &BookName,
    account: &AccountName,
    as_of: Option<Timestamp>,
) -> Vec<Balance> {
    let state = shared.state();
    let Some(b) = state.book(book) else {
        return Vec::new();
    };
    let Some(a) = b.account(account) else {
        return Vec::new();
    };
    match as_of {
        None => a
            .assets
            .iter()
            .map(|(asset, pair)| Balance {
                asset: asset.clone(),
                balance: Amount::from_minor(pair.totals.balance),
            })
            .collect(),
        Some(at) => {
            let cut = b.cut(at);
            a.assets
                .iter()
                .filter_map(|(asset, pair)| {
                    pair.as_of(cut).map(|e| Balance {
                        asset: asset.clone(),
                        balance: Amount::from_minor(e.balance()),
                    })
                })
                .collect()
        }
    }
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
    let balances = |a: &crate::state::AccountState| AccountBalances {
        account: a.account.name.clone(),
        kind: a.account.kind,
        balances: a
            .assets
            .iter()
            .map(|(asset, pair)| Balance {
                asset: asset.clone(),
                balance: Amount::from_minor(pair.totals.balance),
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

/// Totals per account and asset, now or as of a commit time.
pub fn trial_balance(
    shared: &Shared,
    book: &BookName,
    as_of: Option<Timestamp>,
) -> Result<Vec<TrialRow>, StoreError> {
    /// A row whose debits are read from the record at `entry`.
    struct Pending {
        row: usize,
        entry: EntryRef,
        balance: i128,
    }
    let mut rows = Vec::new();
    let mut pending = Vec::new();
    {
        let state = shared.state();
        let Some(b) = state.book(book) else {
            return Ok(Vec::new());
        };
        let cut = as_of.map(|at| b.cut(at));
        for a in b.accounts() {
            for (asset, pair) in &a.assets {
                let (debits, credits) = match cut {
                    None => (pair.totals.debits, pair.totals.credits),
                    Some(cut) => {
                        let Some(e) = pair.as_of(cut) else { continue };
                        let entry = b.entry(e.seq).ok_or_else(|| {
                            corrupt(format!("book {book}: history names missing seq {}", e.seq))
                        })?;
                        pending.push(Pending {
                            row: rows.len(),
                            entry,
                            balance: e.balance(),
                        });
                        (0, 0)
                    }
                };
                rows.push(TrialRow {
                    account: a.account.name.clone(),
                    kind: a.account.kind,
                    asset: asset.clone(),
                    debits: Amount::from_minor(debits),
                    credits: Amount::from_minor(credits),
                });
            }
        }
    }
    // As of a time, the debits come from the pair's last posting at or
    // before the cut; several pairs often share a transaction.
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
    Ok(rows)
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
            .filter(|e| !e.is_account)
            .take(limit as usize)
            .collect()
    };
    entries
        .into_iter()
        .map(|e| transaction_at(shared, book, e).map(|t| t.commit))
        .collect()
}

/// One transaction by id, in any book.
pub fn transaction(shared: &Shared, tx_id: TxId) -> Result<Option<Commit>, StoreError> {
    let candidates: Vec<u64> = shared.state().tx_candidates(tx_id).collect();
    for offset in candidates {
        if let Record::Transaction(t) = shared.file.read_record(offset)?
            && t.commit.tx_id == tx_id
        {
            return Ok(Some(t.commit));
        }
    }
    Ok(None)
}

/// Events of a book after a seq, in order.
pub fn events(
    shared: &Shared,
    book: &BookName,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let entries: Vec<EntryRef> = {
        let state = shared.state();
        let Some(b) = state.book(book) else {
            return Ok(Vec::new());
        };
        b.entries_after(after_seq).take(limit as usize).collect()
    };
    entries
        .into_iter()
        .map(|e| event_at(shared, book, e))
        .collect()
}
