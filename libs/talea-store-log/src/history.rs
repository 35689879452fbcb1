//! An account's balance history in one asset on the log store: the pair's
//! in-memory history (one entry per transaction that touched it, with the
//! balance after it) and the book's commit-time runs, under the indexes'
//! read lock; no record is read from the file. O(log n) to find the range,
//! then O(the changes returned).

use talea_core::{AccountName, AssetCode, BookName, Timestamp};
use talea_store::StoreError;
use talea_store::history::{BalanceChange, BalanceHistory, HistoryRange};

use crate::writer::Shared;

/// See `Store::balance_history`.
pub fn balance_history(
    shared: &Shared,
    book: &BookName,
    account: &AccountName,
    asset: &AssetCode,
    range: HistoryRange,
) -> Result<BalanceHistory, StoreError> {
    let state = shared.state();
    let mut out = BalanceHistory::default();
    let Some(b) = state.book(book) else {
        return Ok(out);
    };
    let Some(pair) = b.account(account).and_then(|a| a.assets.get(asset)) else {
        return Ok(out);
    };
    let before = |t: Timestamp| b.cut(Timestamp::from_micros(t.micros().saturating_sub(1)));
    // Changes lie in (lo, hi]; the opening is the balance at min(lo, hi).
    let lo = range
        .from
        .map_or(range.after_seq, |from| range.after_seq.max(before(from)));
    let hi = range.to.map_or(u64::MAX, before);
    if let Some(entry) = pair.as_of(lo.min(hi)) {
        out.opening = talea_core::Amount::from_minor(entry.balance());
    }
    for entry in pair.entries_after(lo).take_while(|e| e.seq <= hi) {
        if out.changes.len() >= range.limit as usize {
            out.more = true;
            break;
        }
        let committed_at = b.time_of(entry.seq).ok_or_else(|| {
            StoreError::Corrupt(format!(
                "book {book}: a history names seq {} past its end",
                entry.seq
            ))
        })?;
        out.changes.push(BalanceChange {
            seq: entry.seq,
            committed_at,
            balance: talea_core::Amount::from_minor(entry.balance()),
        });
    }
    Ok(out)
}
