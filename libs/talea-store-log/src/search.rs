//! Transaction search and the pending holds list on the log store, from
//! the in-memory indexes:
//!
//! - account: the account's per-asset histories (the seqs of the
//!   transactions that posted on it) and the book's holds in seq order;
//! - status pending or expired: the book's holds in seq order, by their
//!   status in memory;
//! - metadata, status voided or posted, and no filter: every transaction
//!   of the seq range, in order (a bounded scan: no index).
//!
//! Every candidate's record is then read from the file and checked by the
//! shared predicate, so a call reads at most
//! [`SEARCH_SCAN_MAX`](talea_core::limits::SEARCH_SCAN_MAX) records. A time
//! range becomes a seq range by binary search of the book's commit times.

use talea_core::{BookName, Commit, Timestamp, TxStatus};
use talea_store::StoreError;
use talea_store::search::{Collector, Driver, TxFilter, TxSearchPage, merge_candidates};

use crate::read::{current_status, transaction_at};
use crate::state::{Book, EntryKind};
use crate::writer::Shared;

/// See `Store::search_transactions`.
pub fn search_transactions(
    shared: &Shared,
    book: &BookName,
    filter: &TxFilter,
    after_seq: u64,
    limit: u32,
) -> Result<TxSearchPage, StoreError> {
    let Some((after, hi)) = seq_range(shared, book, filter, after_seq) else {
        return Ok(TxSearchPage::default());
    };
    let mut c = Collector::new(filter, after, limit);
    while let Some((from, max)) = c.next_read() {
        let entries = {
            let state = shared.state();
            let Some(b) = state.book(book) else {
                break;
            };
            candidates(b, filter, from, hi, max as usize)
                .into_iter()
                .filter_map(|seq| b.entry(seq).map(|e| (seq, e)))
                .collect::<Vec<_>>()
        };
        let seqs: Vec<u64> = entries.iter().map(|(seq, _)| *seq).collect();
        let mut commits = Vec::with_capacity(entries.len());
        for (_, entry) in entries {
            if entry.kind == EntryKind::Transaction {
                commits.push(transaction_at(shared, book, entry)?.commit);
            }
        }
        let state = shared.state();
        if let Some(b) = state.book(book) {
            for commit in &mut commits {
                current_status(b, commit);
            }
        }
        c.feed(&seqs, commits);
    }
    Ok(c.finish())
}

/// The seq range `(after, hi]` of the cursor and the time range, or `None`
/// when it is empty.
fn seq_range(
    shared: &Shared,
    book: &BookName,
    filter: &TxFilter,
    after_seq: u64,
) -> Option<(u64, u64)> {
    let state = shared.state();
    let b = state.book(book)?;
    let before = |t: Timestamp| b.cut(Timestamp::from_micros(t.micros().saturating_sub(1)));
    let after = match filter.from {
        Some(from) => after_seq.max(before(from)),
        None => after_seq,
    };
    let hi = match filter.to {
        Some(to) => before(to),
        None => b.last_seq(),
    };
    (after < hi).then_some((after, hi))
}

/// Up to `max` candidate seqs in `(after, hi]`, ascending, from the index
/// the filter's driver names (see the module's documentation).
fn candidates(b: &Book, filter: &TxFilter, after: u64, hi: u64, max: usize) -> Vec<u64> {
    let in_range = |seq: &u64| *seq <= hi;
    let every = || {
        b.entries_after(after)
            .take_while(|e| e.seq <= hi)
            .filter(|e| e.kind == EntryKind::Transaction)
            .map(|e| e.seq)
            .take(max)
            .collect::<Vec<_>>()
    };
    match filter.driver() {
        Driver::Account => {
            let Some(account) = filter.account.as_ref().and_then(|a| b.account(a)) else {
                return Vec::new();
            };
            let mut lists: Vec<Vec<u64>> = account
                .assets
                .values()
                .map(|pair| pair.seqs_after(after, max).take_while(in_range).collect())
                .collect();
            // Holds keep their legs in their records, not in the
            // histories: every hold of the range is a candidate.
            lists.push(
                b.holds_after(after)
                    .map(|(seq, _)| seq)
                    .take_while(in_range)
                    .take(max)
                    .collect(),
            );
            merge_candidates(lists, max as u32)
        }
        Driver::Status(status @ (TxStatus::Pending | TxStatus::Expired)) => b
            .holds_after(after)
            .take_while(|(seq, _)| *seq <= hi)
            .filter(|(_, h)| h.status == status)
            .map(|(seq, _)| seq)
            .take(max)
            .collect(),
        Driver::Status(_) | Driver::Metadata | Driver::Range => every(),
    }
}

/// See `Store::pending_holds`: the book's expiry index in order, then its
/// pending holds without an expiry by seq; each from its record.
pub fn pending_holds(
    shared: &Shared,
    book: &BookName,
    limit: u32,
) -> Result<Vec<Commit>, StoreError> {
    let limit = limit as usize;
    let live: Vec<Commit> = {
        let state = shared.state();
        let Some(b) = state.book(book) else {
            return Ok(Vec::new());
        };
        let expiring = b
            .due(Timestamp::from_micros(i64::MAX))
            .map(|(_, hold)| hold);
        let open_ended = b
            .holds_after(0)
            .map(|(_, hold)| hold)
            .filter(|h| h.status == TxStatus::Pending && h.expires_at.is_none());
        expiring
            .chain(open_ended)
            .take(limit)
            .filter_map(|h| h.live.as_deref().cloned())
            .collect()
    };
    Ok(live)
}
