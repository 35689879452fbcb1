//! An account's balance history in one asset on the SQL stores: one
//! backward probe of `postings_account_asset_idx` for the opening balance
//! and one forward range of it for the changes, the time range first
//! turned into a seq range (as a search does). O(the changes returned),
//! whatever the account's postings in other assets or outside the range.

use talea_core::{AccountName, AssetCode, BookName};
use talea_store::StoreError;
use talea_store::history::{BalanceChange, BalanceHistory, HistoryRange};
use talea_store::stored::seq_param;

use crate::backend::{Conn, Param, SqlBackend};
use crate::decode::{self, fetch};
use crate::search::{FIRST_AT, LAST_BEFORE, bound};

/// `$1` book, `$2` account, `$3` asset, `$4` seq → `balance_after`: the
/// pair's storage balance after its last posting at or before the seq.
/// `{postings}` is where the dialect names the table (and its index).
macro_rules! opening {
    ($postings:literal) => {
        concat!(
            "SELECT CAST(balance_after AS TEXT) AS balance_after FROM ",
            $postings,
            " WHERE book = $1 AND account = $2 AND asset = $3 AND seq <= $4 \
             ORDER BY seq DESC, leg DESC LIMIT 1"
        )
    };
}

/// `$1` book, `$2` account, `$3` asset, `$4` after seq, `$5` last seq, `$6`
/// rows → `seq, committed_at, balance_after`: the pair's postings in
/// `($4, $5]`, by seq and leg, at most `$6`.
macro_rules! changes {
    ($postings:literal) => {
        concat!(
            "SELECT p.seq, e.committed_at, CAST(p.balance_after AS TEXT) AS balance_after FROM ",
            $postings,
            " JOIN events e ON e.book = $1 AND e.seq = p.seq \
             WHERE p.book = $1 AND p.account = $2 AND p.asset = $3 AND p.seq > $4 AND p.seq <= $5 \
             ORDER BY p.seq, p.leg LIMIT $6"
        )
    };
}

/// The two statements as Postgres runs them (its planner picks
/// `postings_account_asset_idx` by itself).
pub const PG: (&str, &str) = (opening!("postings"), changes!("postings p"));

/// The two statements as SQLite runs them: without statistics its planner
/// would walk the book's primary key over the seq range instead.
pub const SQLITE: (&str, &str) = (
    opening!("postings INDEXED BY postings_account_asset_idx"),
    changes!("postings p INDEXED BY postings_account_asset_idx"),
);

/// See `Store::balance_history`.
pub async fn balance_history<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    account: &AccountName,
    asset: &AssetCode,
    range: HistoryRange,
) -> Result<BalanceHistory, StoreError> {
    // Changes lie in (lo, hi]; the opening is the balance at min(lo, hi).
    let mut lo = range.after_seq;
    let mut hi = i64::MAX as u64;
    if let Some(from) = range.from {
        lo = match bound::<B>(conn, FIRST_AT, book, from).await? {
            Some(first) => lo.max(first - 1),
            None => hi,
        };
    }
    if let Some(to) = range.to {
        hi = bound::<B>(conn, LAST_BEFORE, book, to).await?.unwrap_or(0);
    }
    let pair = [
        Param::Text(Some(book.as_str())),
        Param::Text(Some(account.as_str())),
        Param::Text(Some(asset.as_str())),
    ];
    let mut out = BalanceHistory::default();
    let cut = [pair[0], pair[1], pair[2], Param::Int(seq_param(lo.min(hi)))];
    if let Some(row) = fetch::<B>(conn, B::SQL.history.0, &cut).await?.first() {
        out.opening = decode::amount::<B>(row, "balance_after")?;
    }
    if lo >= hi || range.limit == 0 {
        return Ok(out);
    }
    // Enough rows for `limit` changes and the next, unless transactions
    // have several legs on the pair: then a short page says `more`.
    let rows_max = u64::from(range.limit) + 1 + u64::from(talea_core::limits::POSTINGS_MAX as u32);
    let params = [
        pair[0],
        pair[1],
        pair[2],
        Param::Int(seq_param(lo)),
        Param::Int(seq_param(hi)),
        Param::Int(seq_param(rows_max)),
    ];
    let rows = fetch::<B>(conn, B::SQL.history.1, &params).await?;
    let full = rows.len() as u64 >= rows_max;
    for row in &rows {
        let seq = decode::seq::<B>(row, "seq")?;
        let balance = decode::amount::<B>(row, "balance_after")?;
        // Postings of one event come together: the balance after its last leg.
        if let Some(prev) = out.changes.last_mut().filter(|c| c.seq == seq) {
            prev.balance = balance;
            continue;
        }
        if out.changes.len() >= range.limit as usize {
            out.more = true;
            return Ok(out);
        }
        out.changes.push(BalanceChange {
            seq,
            committed_at: decode::time::<B>(row, "committed_at")?,
            balance,
        });
    }
    if full {
        // The last event's legs may go on past the rows read: leave it to
        // the next page.
        out.changes.pop();
        out.more = true;
    }
    Ok(out)
}
