//! The read side of `PgStore`: accounts, balances (now and as of), postings, commits, events.
//!
//! Reads run outside any explicit transaction. That is safe because the log
//! is append-only and each write is one transaction: a transaction row that
//! is visible has all its postings visible, whatever snapshot a later
//! statement takes. Statements that must agree with each other (a balance
//! row and the postings behind it) are written as one statement.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use sqlx::postgres::PgRow;
use talea_core::{
    Account, AccountName, Asset, AssetCode, BookName, Commit, Event, EventKind, Side,
    StoredPosting, Timestamp, TxId,
};
use talea_store::{AccountPosting, Balance, BalanceCut, BookInfo, StoreError, TrialRow};

use crate::codec::{self, get, get_amount, get_seq, seq_param};
use crate::error::{corrupt, store_error};

/// The columns `account_from_row` decodes, selected from `accounts a`.
macro_rules! account_columns {
    () => {
        "a.name, a.kind, a.min_balance_mantissa::text AS min_balance_mantissa, \
         a.min_balance_scale, a.metadata AS account_metadata, a.seq AS account_seq, a.opened_at"
    };
}

/// The columns `commit_head` decodes, selected from `transactions t`.
macro_rules! transaction_columns {
    () => {
        "t.seq AS tx_seq, t.tx_id, t.idempotency_key, t.committed_at AS tx_committed_at, \
         t.occurred_at, t.memo, t.metadata"
    };
}

/// Decodes an account selected with `account_columns!`.
pub(crate) fn account_from_row(book: &BookName, row: &PgRow) -> Result<Account, StoreError> {
    Ok(Account {
        book: book.clone(),
        name: codec::account_name(&get::<String>(row, "name")?)?,
        kind: codec::account_kind(&get::<String>(row, "kind")?)?,
        min_balance: codec::min_balance(
            get(row, "min_balance_mantissa")?,
            get(row, "min_balance_scale")?,
        )?,
        metadata: get(row, "account_metadata")?,
        seq: get_seq(row, "account_seq")?,
        opened_at: codec::timestamp(get(row, "opened_at")?),
    })
}

/// Decodes a transaction selected with `transaction_columns!`, without its postings.
pub(crate) fn commit_head(book: &BookName, row: &PgRow) -> Result<Commit, StoreError> {
    Ok(Commit {
        tx_id: TxId(get(row, "tx_id")?),
        book: book.clone(),
        seq: get_seq(row, "tx_seq")?,
        committed_at: codec::timestamp(get(row, "tx_committed_at")?),
        idempotency_key: codec::idempotency_key(&get::<String>(row, "idempotency_key")?)?,
        postings: Vec::new(),
        occurred_at: get::<Option<DateTime<Utc>>>(row, "occurred_at")?.map(codec::timestamp),
        memo: get(row, "memo")?,
        metadata: get(row, "metadata")?,
    })
}

/// Rebuilds a stored posting from its signed amount.
fn stored_posting(row: &PgRow) -> Result<StoredPosting, StoreError> {
    let signed = get_amount(row, "amount")?;
    let (side, amount) = if signed.is_positive() {
        (Side::Debit, signed)
    } else {
        // A stored amount below zero is a credit of its negation, which
        // exists because posted amounts are positive i128s.
        let amount = signed
            .checked_neg()
            .filter(|a| a.is_positive())
            .ok_or_else(|| corrupt(format!("posting amount {}", signed.minor())))?;
        (Side::Credit, amount)
    };
    Ok(StoredPosting {
        account: codec::account_name(&get::<String>(row, "account")?)?,
        asset: codec::asset_code(&get::<String>(row, "asset")?)?,
        side,
        amount,
        balance_after: get_amount(row, "balance_after")?,
    })
}

/// Fills in the postings of `commits` (all of one book) with one statement.
pub(crate) async fn attach_postings(
    conn: &mut PgConnection,
    book: &BookName,
    commits: &mut [Commit],
) -> Result<(), StoreError> {
    if commits.is_empty() {
        return Ok(());
    }
    let mut by_seq: HashMap<u64, usize> = HashMap::with_capacity(commits.len());
    let mut seqs = Vec::with_capacity(commits.len());
    for (i, commit) in commits.iter().enumerate() {
        by_seq.insert(commit.seq, i);
        seqs.push(seq_param(commit.seq));
    }
    let rows = crate::codec::query(
        "SELECT seq, account, asset, amount::text AS amount, balance_after::text AS balance_after \
         FROM postings WHERE book = $1 AND seq = ANY($2) ORDER BY seq, leg",
    )
    .bind(book.as_str())
    .bind(&seqs)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    for row in &rows {
        let seq = get_seq(row, "seq")?;
        let index = by_seq
            .get(&seq)
            .copied()
            .ok_or_else(|| corrupt(format!("posting of seq {seq} that was not asked for")))?;
        commits[index].postings.push(stored_posting(row)?);
    }
    if let Some(empty) = commits
        .iter()
        .find(|c| c.postings.len() < talea_core::limits::POSTINGS_MIN)
    {
        return Err(corrupt(format!(
            "transaction at seq {} has too few postings",
            empty.seq
        )));
    }
    Ok(())
}

/// Decodes an asset row (`code, scale, name`).
pub(crate) fn asset_from_row(row: &PgRow) -> Result<Asset, StoreError> {
    Ok(Asset {
        code: codec::asset_code(&get::<String>(row, "code")?)?,
        scale: codec::scale(get(row, "scale")?)?,
        name: get(row, "name")?,
    })
}

/// One asset by code.
pub(crate) async fn asset(
    conn: &mut PgConnection,
    code: &AssetCode,
) -> Result<Option<Asset>, StoreError> {
    let row = crate::codec::query("SELECT code, scale, name FROM assets WHERE code = $1")
        .bind(code.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    row.as_ref().map(asset_from_row).transpose()
}

/// Every asset, by code (bytewise: the column is `COLLATE "C"`).
pub(crate) async fn assets(conn: &mut PgConnection) -> Result<Vec<Asset>, StoreError> {
    let rows = crate::codec::query("SELECT code, scale, name FROM assets ORDER BY code")
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
    rows.iter().map(asset_from_row).collect()
}

/// Books with at least one event, by name.
pub(crate) async fn books(conn: &mut PgConnection) -> Result<Vec<BookInfo>, StoreError> {
    // A counter row can exist at 0 (a book whose every draft was rejected, or
    // one that an older version created eagerly); such a book has no events.
    let rows =
        crate::codec::query("SELECT book, last_seq FROM books WHERE last_seq > 0 ORDER BY book")
            .fetch_all(&mut *conn)
            .await
            .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            Ok(BookInfo {
                book: codec::book(&get::<String>(row, "book")?)?,
                last_seq: get_seq(row, "last_seq")?,
            })
        })
        .collect()
}

/// A book's last seq, `None` without events.
pub(crate) async fn last_seq(
    conn: &mut PgConnection,
    book: &BookName,
) -> Result<Option<u64>, StoreError> {
    let value: Option<i64> =
        crate::codec::query_scalar("SELECT last_seq FROM books WHERE book = $1")
            .bind(book.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(store_error)?;
    match value {
        None | Some(0) => Ok(None),
        Some(v) => codec::seq(v).map(Some),
    }
}

/// One account by name.
pub(crate) async fn account(
    conn: &mut PgConnection,
    book: &BookName,
    name: &AccountName,
) -> Result<Option<Account>, StoreError> {
    let row = crate::codec::query(concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts a WHERE a.book = $1 AND a.name = $2"
    ))
    .bind(book.as_str())
    .bind(name.as_str())
    .fetch_optional(&mut *conn)
    .await
    .map_err(store_error)?;
    row.map(|row| account_from_row(book, &row)).transpose()
}

/// Accounts by name strictly after `after`.
pub(crate) async fn accounts(
    conn: &mut PgConnection,
    book: &BookName,
    after: Option<&AccountName>,
    limit: u32,
) -> Result<Vec<Account>, StoreError> {
    // No `after` is "after the empty string", which sorts before every name
    // (bytewise collation), so the bound stays an index range condition in
    // both cases instead of an `IS NULL OR` that a generic plan cannot use.
    let rows = crate::codec::query(concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts a WHERE a.book = $1 AND a.name > $2 ORDER BY a.name LIMIT $3"
    ))
    .bind(book.as_str())
    .bind(after.map_or("", AccountName::as_str))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    rows.iter().map(|row| account_from_row(book, row)).collect()
}

/// An account's storage balances, now or as of a commit time.
pub(crate) async fn balances(
    conn: &mut PgConnection,
    book: &BookName,
    account: &AccountName,
    as_of: Option<Timestamp>,
) -> Result<Vec<Balance>, StoreError> {
    let query = match as_of {
        None => crate::codec::query(
            "SELECT asset, balance::text AS balance FROM balances \
             WHERE book = $1 AND account = $2 ORDER BY asset",
        )
        .bind(book.as_str())
        .bind(account.as_str()),
        // The last seq committed at or before `as_of` (commit time is
        // monotonic with seq), then per asset ever held the last posting at
        // or before that seq: two index probes per asset, never a scan.
        Some(at) => crate::codec::query(
            "WITH cut AS ( \
               SELECT seq FROM events WHERE book = $1 AND committed_at <= $3 \
               ORDER BY committed_at DESC, seq DESC LIMIT 1 \
             ) \
             SELECT b.asset, p.balance_after::text AS balance \
             FROM cut, balances b \
             CROSS JOIN LATERAL ( \
               SELECT balance_after FROM postings \
               WHERE book = b.book AND account = b.account AND asset = b.asset AND seq <= cut.seq \
               ORDER BY seq DESC, leg DESC LIMIT 1 \
             ) p \
             WHERE b.book = $1 AND b.account = $2 ORDER BY b.asset",
        )
        .bind(book.as_str())
        .bind(account.as_str())
        .bind(codec::as_of_bound(at)),
    };
    let rows = query.fetch_all(&mut *conn).await.map_err(store_error)?;
    rows.iter()
        .map(|row| {
            Ok(Balance {
                asset: codec::asset_code(&get::<String>(row, "asset")?)?,
                balance: get_amount(row, "balance")?,
            })
        })
        .collect()
}

/// The book's balances with its head seq, in one statement (one snapshot):
/// the counter row and the balance rows are written by the same
/// transactions, so they agree.
pub(crate) async fn balance_cut(
    conn: &mut PgConnection,
    book: &BookName,
    accounts: Option<&[AccountName]>,
    limit: u32,
) -> Result<Option<BalanceCut>, StoreError> {
    let names: Option<Vec<&str>> = accounts.map(|list| list.iter().map(|a| a.as_str()).collect());
    let rows = crate::codec::query(
        "SELECT bk.last_seq, bk.last_committed_at, a.name, a.kind, b.asset, \
           b.balance::text AS balance \
         FROM books bk \
         LEFT JOIN LATERAL ( \
           SELECT name, kind FROM accounts \
           WHERE book = bk.book AND ($2::text[] IS NULL OR name = ANY($2::text[])) \
           ORDER BY name LIMIT $3 \
         ) a ON true \
         LEFT JOIN balances b ON b.book = bk.book AND b.account = a.name \
         WHERE bk.book = $1 AND bk.last_seq > 0 \
         ORDER BY a.name, b.asset",
    )
    .bind(book.as_str())
    .bind(names)
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let committed_at: Option<DateTime<Utc>> = get(first, "last_committed_at")?;
    let committed_at = committed_at
        .map(codec::timestamp)
        .ok_or_else(|| corrupt(format!("book {book} has events but no commit time")))?;
    let mut cut = BalanceCut::new(get_seq(first, "last_seq")?, committed_at);
    for row in &rows {
        let Some(name) = get::<Option<String>>(row, "name")? else {
            continue;
        };
        let account = codec::account_name(&name)?;
        let kind = codec::account_kind(&get::<String>(row, "kind")?)?;
        let balance = match get::<Option<String>>(row, "asset")? {
            None => None,
            Some(asset) => Some(Balance {
                asset: codec::asset_code(&asset)?,
                balance: get_amount(row, "balance")?,
            }),
        };
        cut.push(account, kind, balance);
    }
    Ok(Some(cut))
}

/// Totals per account and asset, now or as of a commit time.
pub(crate) async fn trial_balance(
    conn: &mut PgConnection,
    book: &BookName,
    as_of: Option<Timestamp>,
) -> Result<Vec<TrialRow>, StoreError> {
    let query = match as_of {
        None => crate::codec::query(
            "SELECT b.account, a.kind, b.asset, b.debits::text AS debits, b.credits::text AS credits \
             FROM balances b JOIN accounts a ON a.book = b.book AND a.name = b.account \
             WHERE b.book = $1 ORDER BY b.account, b.asset",
        )
        .bind(book.as_str()),
        // As in `balances`: the cut seq, then each pair's last posting at or
        // before it, whose `debits_after` and `balance_after` give both totals.
        Some(at) => crate::codec::query(
            "WITH cut AS ( \
               SELECT seq FROM events WHERE book = $1 AND committed_at <= $2 \
               ORDER BY committed_at DESC, seq DESC LIMIT 1 \
             ) \
             SELECT b.account, a.kind, b.asset, p.debits_after::text AS debits, \
                    (p.debits_after - p.balance_after)::text AS credits \
             FROM cut, balances b \
             JOIN accounts a ON a.book = b.book AND a.name = b.account \
             CROSS JOIN LATERAL ( \
               SELECT debits_after, balance_after FROM postings \
               WHERE book = b.book AND account = b.account AND asset = b.asset AND seq <= cut.seq \
               ORDER BY seq DESC, leg DESC LIMIT 1 \
             ) p \
             WHERE b.book = $1 ORDER BY b.account, b.asset",
        )
        .bind(book.as_str())
        .bind(codec::as_of_bound(at)),
    };
    let rows = query.fetch_all(&mut *conn).await.map_err(store_error)?;
    rows.iter()
        .map(|row| {
            Ok(TrialRow {
                account: codec::account_name(&get::<String>(row, "account")?)?,
                kind: codec::account_kind(&get::<String>(row, "kind")?)?,
                asset: codec::asset_code(&get::<String>(row, "asset")?)?,
                debits: get_amount(row, "debits")?,
                credits: get_amount(row, "credits")?,
            })
        })
        .collect()
}

/// An account's postings after a seq, never splitting a transaction.
pub(crate) async fn account_postings(
    conn: &mut PgConnection,
    book: &BookName,
    account: &AccountName,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<AccountPosting>, StoreError> {
    // `page` is the first `limit` postings; the outer query then takes every
    // posting up to the last seq of that page, which adds the remaining legs
    // of the page's last transaction on this account (if any).
    let rows = crate::codec::query(
        "WITH page AS ( \
           SELECT seq FROM postings WHERE book = $1 AND account = $2 AND seq > $3 \
           ORDER BY seq, leg LIMIT $4 \
         ) \
         SELECT p.seq, t.tx_id, t.committed_at, p.asset, p.amount::text AS amount, \
                p.balance_after::text AS balance_after \
         FROM postings p JOIN transactions t ON t.book = p.book AND t.seq = p.seq \
         WHERE p.book = $1 AND p.account = $2 AND p.seq > $3 \
           AND p.seq <= (SELECT max(seq) FROM page) \
         ORDER BY p.seq, p.leg",
    )
    .bind(book.as_str())
    .bind(account.as_str())
    .bind(seq_param(after_seq))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            Ok(AccountPosting {
                seq: get_seq(row, "seq")?,
                tx_id: TxId(get(row, "tx_id")?),
                committed_at: codec::timestamp(get(row, "committed_at")?),
                asset: codec::asset_code(&get::<String>(row, "asset")?)?,
                amount: get_amount(row, "amount")?,
                balance_after: get_amount(row, "balance_after")?,
            })
        })
        .collect()
}

/// Transactions of a book after a seq, with their postings.
pub(crate) async fn transactions(
    conn: &mut PgConnection,
    book: &BookName,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<Commit>, StoreError> {
    let rows = crate::codec::query(concat!(
        "SELECT ",
        transaction_columns!(),
        " FROM transactions t WHERE t.book = $1 AND t.seq > $2 ORDER BY t.seq LIMIT $3"
    ))
    .bind(book.as_str())
    .bind(seq_param(after_seq))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    let mut commits = rows
        .iter()
        .map(|row| commit_head(book, row))
        .collect::<Result<Vec<_>, _>>()?;
    attach_postings(conn, book, &mut commits).await?;
    Ok(commits)
}

/// Commits under the given keys of each book, with their request hashes:
/// one list per book, in order, in one statement (plus one per book that
/// has any, for their postings).
pub(crate) async fn transactions_by_keys(
    conn: &mut PgConnection,
    wanted: &[(&BookName, &[&str])],
) -> Result<Vec<Vec<(Commit, [u8; 32])>>, StoreError> {
    let mut books = Vec::new();
    let mut keys = Vec::new();
    let mut slot_of: HashMap<&str, usize> = HashMap::with_capacity(wanted.len());
    for (slot, (book, book_keys)) in wanted.iter().enumerate() {
        slot_of.insert(book.as_str(), slot);
        for key in book_keys.iter() {
            books.push(book.as_str());
            keys.push(*key);
        }
    }
    let rows = crate::codec::query(concat!(
        "SELECT t.book, ",
        transaction_columns!(),
        ", t.request_hash FROM unnest($1::text[], $2::text[]) AS w (book, key) \
         JOIN transactions t ON t.book = w.book AND t.idempotency_key = w.key"
    ))
    .bind(&books)
    .bind(&keys)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    let mut found: Vec<(Vec<Commit>, Vec<[u8; 32]>)> = vec![(Vec::new(), Vec::new()); wanted.len()];
    for row in &rows {
        let book: String = get(row, "book")?;
        let slot = *slot_of.get(book.as_str()).ok_or_else(|| {
            corrupt(format!(
                "transaction of book {book}, which was not asked for"
            ))
        })?;
        let hash: Vec<u8> = get(row, "request_hash")?;
        let (commits, hashes) = &mut found[slot];
        commits.push(commit_head(wanted[slot].0, row)?);
        hashes.push(
            <[u8; 32]>::try_from(hash.as_slice())
                .map_err(|_| corrupt("request hash is not 32 bytes"))?,
        );
    }
    let mut out = Vec::with_capacity(found.len());
    for ((mut commits, hashes), (book, _)) in found.into_iter().zip(wanted) {
        attach_postings(conn, book, &mut commits).await?;
        out.push(commits.into_iter().zip(hashes).collect());
    }
    Ok(out)
}

/// One transaction by id, in any book, or (with `books`) only in those:
/// the filter is in the one statement, so an id outside them costs what an
/// unknown one does.
pub(crate) async fn transaction(
    conn: &mut PgConnection,
    tx_id: TxId,
    books: Option<&[&str]>,
) -> Result<Option<Commit>, StoreError> {
    let row = crate::codec::query(concat!(
        "SELECT t.book, ",
        transaction_columns!(),
        " FROM transactions t WHERE t.tx_id = $1 AND ($2::text[] IS NULL OR t.book = ANY($2)) LIMIT 1"
    ))
    .bind(tx_id.0)
    .bind(books)
    .fetch_optional(&mut *conn)
    .await
    .map_err(store_error)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let book = codec::book(&get::<String>(&row, "book")?)?;
    let mut commits = vec![commit_head(&book, &row)?];
    attach_postings(conn, &book, &mut commits).await?;
    Ok(commits.pop())
}

/// Events of a book after a seq: the log joined with what each entry recorded.
pub(crate) async fn events(
    conn: &mut PgConnection,
    book: &BookName,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let rows = crate::codec::query(concat!(
        "SELECT e.seq, e.type, e.committed_at, ",
        account_columns!(),
        ", ",
        transaction_columns!(),
        " FROM events e \
          LEFT JOIN accounts a ON a.book = e.book AND a.seq = e.seq \
          LEFT JOIN transactions t ON t.book = e.book AND t.seq = e.seq \
          WHERE e.book = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3"
    ))
    .bind(book.as_str())
    .bind(seq_param(after_seq))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;

    /// An event decoded except for its postings.
    enum Entry {
        Opened(Account),
        Transaction(usize),
    }
    let mut heads = Vec::with_capacity(rows.len());
    let mut commits = Vec::new();
    for row in &rows {
        let seq = get_seq(row, "seq")?;
        let committed_at = codec::timestamp(get(row, "committed_at")?);
        let kind: String = get(row, "type")?;
        let has_account = get::<Option<String>>(row, "name")?.is_some();
        let has_transaction = get::<Option<uuid::Uuid>>(row, "tx_id")?.is_some();
        let entry = match kind.as_str() {
            "account_opened" if has_account => Entry::Opened(account_from_row(book, row)?),
            "transaction" if has_transaction => {
                commits.push(commit_head(book, row)?);
                Entry::Transaction(commits.len() - 1)
            }
            other => {
                return Err(corrupt(format!(
                    "event {seq} of type {other:?} has no matching record"
                )));
            }
        };
        heads.push((seq, committed_at, entry));
    }
    attach_postings(conn, book, &mut commits).await?;
    let mut commits: Vec<Option<Commit>> = commits.into_iter().map(Some).collect();
    heads
        .into_iter()
        .map(|(seq, committed_at, entry)| {
            let kind = match entry {
                Entry::Opened(account) => EventKind::AccountOpened(account),
                Entry::Transaction(i) => EventKind::Transaction(
                    commits
                        .get_mut(i)
                        .and_then(Option::take)
                        .ok_or_else(|| corrupt("transaction event decoded twice"))?,
                ),
            };
            Ok(Event {
                seq,
                committed_at,
                kind,
            })
        })
        .collect()
}
