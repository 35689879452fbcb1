//! Transaction search and the pending holds list on the SQL stores.
//!
//! A search is `talea_store::search::Collector` over candidates read from
//! the index of the filter's driver, each a range scan in seq order that
//! stops at the page's need:
//!
//! - metadata: `transaction_metadata` (a trigger fills it on both
//!   databases) in (key, value, seq) order;
//! - account: `postings_account_idx` and `hold_postings_account_seq_idx`;
//! - status pending or expired: `holds_status_seq_idx`; voided: that and
//!   `transactions_voided_idx` (the voids themselves);
//! - otherwise the primary key of `transactions`.
//!
//! A time range becomes a seq range first (commit time is monotonic with
//! seq within a book), by two probes of `events_book_committed_at_idx`.

use talea_core::{BookName, Commit, Timestamp, TxStatus};
use talea_store::StoreError;
use talea_store::search::{Collector, Driver, TxFilter, TxSearchPage, merge_candidates};
use talea_store::stored::seq_param;

use crate::backend::{Conn, Param, SqlBackend};
use crate::decode::{self, fetch};
use crate::read::{attach_postings, current_status};

/// The first seq committed at or after `$2`: the first entry of
/// `events_book_committed_at_idx` from there (commit time is monotonic with
/// seq; `min(seq)` made Postgres walk the primary key instead: 120 ms on a
/// book of 1,000,000 events).
pub const FIRST_AT: &str = "SELECT seq FROM events WHERE book = $1 AND committed_at >= $2 \
     ORDER BY committed_at, seq LIMIT 1";
/// The last seq committed before `$2` (as [`FIRST_AT`], backwards).
pub const LAST_BEFORE: &str = "SELECT seq FROM events WHERE book = $1 AND committed_at < $2 \
     ORDER BY committed_at DESC, seq DESC LIMIT 1";

/// Candidates by seq alone: the book's transactions in `($2, $3]`.
pub const BY_RANGE: &str = "SELECT seq FROM transactions WHERE book = $1 AND seq > $2 AND seq <= $3 \
     ORDER BY seq LIMIT $4";
/// Candidates with a posted leg on account `$5`.
pub const BY_POSTING: &str = "SELECT DISTINCT seq FROM postings \
     WHERE book = $1 AND account = $5 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4";
/// Candidates with a held leg on account `$5`.
pub const BY_HOLD_POSTING: &str = "SELECT DISTINCT seq FROM hold_postings \
     WHERE book = $1 AND account = $5 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4";
/// Holds whose status is now `$5`.
pub const BY_HOLD_STATUS: &str = "SELECT seq FROM holds \
     WHERE book = $1 AND status = $5 AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4";
/// Transactions whose metadata has key `$5` with value `$6`, from
/// `transaction_metadata` (filled by a trigger on each store).
pub const BY_METADATA: &str = "SELECT seq FROM transaction_metadata \
     WHERE book = $1 AND key = $5 AND value = $6 AND seq > $2 AND seq <= $3 \
     ORDER BY seq LIMIT $4";
/// Voids.
pub const BY_VOID: &str = "SELECT seq FROM transactions \
     WHERE book = $1 AND status = 'voided' AND seq > $2 AND seq <= $3 ORDER BY seq LIMIT $4";

/// See `Store::search_transactions`.
pub async fn search_transactions<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    filter: &TxFilter,
    after_seq: u64,
    limit: u32,
) -> Result<TxSearchPage, StoreError> {
    let Some((after, hi)) = seq_range::<B>(conn, book, filter, after_seq).await? else {
        return Ok(TxSearchPage::default());
    };
    let driver = filter.driver();
    let metadata = filter.metadata.as_ref();
    let account = filter.account.as_ref().map(|a| a.as_str());
    let mut c = Collector::new(filter, after, limit);
    while let Some((from, max)) = c.next_read() {
        let range = [
            Param::Text(Some(book.as_str())),
            Param::Int(seq_param(from)),
            Param::Int(seq_param(hi)),
            Param::Int(i64::from(max)),
        ];
        let lists = match (driver, &metadata) {
            (Driver::Metadata, Some(m)) => {
                let params = with(
                    &range,
                    &[Param::Text(Some(&m.key)), Param::Text(Some(&m.value))],
                );
                vec![seqs::<B>(conn, BY_METADATA, &params).await?]
            }
            (Driver::Account, _) => {
                let params = with(&range, &[Param::Text(account)]);
                vec![
                    seqs::<B>(conn, BY_POSTING, &params).await?,
                    seqs::<B>(conn, BY_HOLD_POSTING, &params).await?,
                ]
            }
            (Driver::Status(status), _) => {
                let params = with(&range, &[Param::Text(Some(status.as_str()))]);
                let mut lists = vec![seqs::<B>(conn, BY_HOLD_STATUS, &params).await?];
                if status == TxStatus::Voided {
                    lists.push(seqs::<B>(conn, BY_VOID, &range).await?);
                }
                lists
            }
            _ => vec![seqs::<B>(conn, BY_RANGE, &range).await?],
        };
        let candidates = merge_candidates(lists, max);
        let commits = transactions_at::<B>(conn, book, &candidates).await?;
        c.feed(&candidates, commits);
    }
    Ok(c.finish())
}

/// The range parameters followed by `extra`.
fn with<'p>(range: &[Param<'p>], extra: &[Param<'p>]) -> Vec<Param<'p>> {
    range.iter().chain(extra).copied().collect()
}

/// The seq range `(after, hi]` the time range and the cursor leave, or
/// `None` when it is empty.
async fn seq_range<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    filter: &TxFilter,
    after_seq: u64,
) -> Result<Option<(u64, u64)>, StoreError> {
    let mut after = after_seq;
    let mut hi = i64::MAX as u64;
    if let Some(from) = filter.from {
        match bound::<B>(conn, FIRST_AT, book, from).await? {
            Some(first) => after = after.max(first.saturating_sub(1)),
            None => return Ok(None),
        }
    }
    if let Some(to) = filter.to {
        match bound::<B>(conn, LAST_BEFORE, book, to).await? {
            Some(last) => hi = last,
            None => return Ok(None),
        }
    }
    Ok((after < hi).then_some((after, hi)))
}

pub(crate) async fn bound<B: SqlBackend>(
    conn: &mut Conn<B>,
    sql: &str,
    book: &BookName,
    at: Timestamp,
) -> Result<Option<u64>, StoreError> {
    let params = [Param::Text(Some(book.as_str())), Param::Time(at)];
    let rows = fetch::<B>(conn, sql, &params).await?;
    rows.first()
        .map(|row| decode::seq::<B>(row, "seq"))
        .transpose()
}

async fn seqs<B: SqlBackend>(
    conn: &mut Conn<B>,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<u64>, StoreError> {
    fetch::<B>(conn, sql, params)
        .await?
        .iter()
        .map(|row| decode::seq::<B>(row, "seq"))
        .collect()
}

/// The transactions among `seqs` (ascending), with their postings and
/// current status, by seq.
async fn transactions_at<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    seqs: &[u64],
) -> Result<Vec<Commit>, StoreError> {
    if seqs.is_empty() {
        return Ok(Vec::new());
    }
    let list: Vec<i64> = seqs.iter().map(|s| seq_param(*s)).collect();
    let params = [Param::Text(Some(book.as_str())), Param::Ints(&list)];
    let rows = fetch::<B>(conn, B::SQL.transactions_at, &params).await?;
    commits_of::<B>(conn, book, &rows).await
}

/// Commits from rows of the transaction columns and `hold_status`.
async fn commits_of<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    rows: &[crate::Row<B>],
) -> Result<Vec<Commit>, StoreError> {
    let mut commits = rows
        .iter()
        .map(|row| decode::commit_head::<B>(book, row))
        .collect::<Result<Vec<_>, _>>()?;
    attach_postings::<B>(conn, book, &mut commits).await?;
    for (commit, row) in commits.iter_mut().zip(rows) {
        current_status::<B>(commit, row)?;
    }
    Ok(commits)
}

/// See `Store::pending_holds`: `holds_pending_expiry_idx` in order.
pub async fn pending_holds<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    limit: u32,
) -> Result<Vec<Commit>, StoreError> {
    let params = [
        Param::Text(Some(book.as_str())),
        Param::Int(i64::from(limit)),
    ];
    let rows = fetch::<B>(conn, PENDING_HOLDS, &params).await?;
    commits_of::<B>(conn, book, &rows).await
}

/// `$1` book, `$2` limit → the transaction columns and `hold_status` of
/// the book's pending holds, soonest `expires_at` first.
pub const PENDING_HOLDS: &str = concat!(
    "SELECT ",
    crate::transaction_columns!(),
    ", h.status AS hold_status FROM holds h \
          JOIN transactions t ON t.book = $1 AND t.seq = h.seq \
          WHERE h.book = $1 AND h.status = 'pending' \
          ORDER BY h.expires_at NULLS LAST, h.seq LIMIT $2"
);
