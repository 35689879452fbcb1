//! The read side of `SqliteStore`: assets, accounts, balances (now and as of), postings, commits, events.
//!
//! Reads run on the read pool, outside any explicit transaction: each
//! statement sees what was committed when it started (WAL snapshots). That
//! is safe because the log is append-only and each write is one
//! transaction: a transaction row that is visible has all its postings
//! visible, whatever a later statement sees. Statements that must agree
//! with each other (a balance row and the postings behind it) are one
//! statement. Amounts come back as text and are added up, where needed, in Rust.

use std::collections::HashMap;

use sqlx::SqliteConnection;
use sqlx::sqlite::SqliteRow;
use talea_core::{
    Account, AccountName, Amount, Asset, AssetCode, BookName, Commit, Event, EventKind, Side,
    StoredPosting, Timestamp, TxId,
};
use talea_store::{AccountPosting, Balance, BalanceCut, BookInfo, StoreError, TrialRow};

use crate::codec::{self, get, get_amount, get_seq, get_timestamp, seq_param};
use crate::error::{corrupt, store_error};

/// The columns `account_from_row` decodes, selected from `accounts a`.
macro_rules! account_columns {
    () => {
        "a.name, a.kind, a.min_balance_mantissa, a.min_balance_scale, \
         a.metadata AS account_metadata, a.seq AS account_seq, a.opened_at"
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
fn account_from_row(book: &BookName, row: &SqliteRow) -> Result<Account, StoreError> {
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
        opened_at: get_timestamp(row, "opened_at")?,
    })
}

/// Decodes a transaction selected with `transaction_columns!`, without its postings.
fn commit_head(book: &BookName, row: &SqliteRow) -> Result<Commit, StoreError> {
    Ok(Commit {
        tx_id: TxId(get(row, "tx_id")?),
        book: book.clone(),
        seq: get_seq(row, "tx_seq")?,
        committed_at: get_timestamp(row, "tx_committed_at")?,
        idempotency_key: codec::idempotency_key(&get::<String>(row, "idempotency_key")?)?,
        postings: Vec::new(),
        occurred_at: get::<Option<i64>>(row, "occurred_at")?.map(Timestamp::from_micros),
        memo: get(row, "memo")?,
        metadata: get(row, "metadata")?,
    })
}

/// Rebuilds a stored posting from its signed amount.
fn stored_posting(row: &SqliteRow) -> Result<StoredPosting, StoreError> {
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
async fn attach_postings(
    conn: &mut SqliteConnection,
    book: &BookName,
    commits: &mut [Commit],
) -> Result<(), StoreError> {
    if commits.is_empty() {
        return Ok(());
    }
    let mut by_seq: HashMap<u64, usize> = HashMap::with_capacity(commits.len());
    for (i, commit) in commits.iter().enumerate() {
        by_seq.insert(commit.seq, i);
    }
    let seqs = codec::int_list(commits.iter().map(|c| seq_param(c.seq)));
    let rows = sqlx::query(
        "SELECT seq, account, asset, amount, balance_after FROM postings \
         WHERE book = ?1 AND seq IN (SELECT value FROM json_each(?2)) ORDER BY seq, leg",
    )
    .bind(book.as_str())
    .bind(seqs)
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
fn asset_from_row(row: &SqliteRow) -> Result<Asset, StoreError> {
    Ok(Asset {
        code: codec::asset_code(&get::<String>(row, "code")?)?,
        scale: codec::scale(get(row, "scale")?)?,
        name: get(row, "name")?,
    })
}

/// One asset by code.
pub(crate) async fn asset(
    conn: &mut SqliteConnection,
    code: &AssetCode,
) -> Result<Option<Asset>, StoreError> {
    let row = sqlx::query("SELECT code, scale, name FROM assets WHERE code = ?1")
        .bind(code.as_str())
        .fetch_optional(&mut *conn)
        .await
        .map_err(store_error)?;
    row.as_ref().map(asset_from_row).transpose()
}

/// Every asset, by code (bytewise: the column is `COLLATE BINARY`).
pub(crate) async fn assets(conn: &mut SqliteConnection) -> Result<Vec<Asset>, StoreError> {
    let rows = sqlx::query("SELECT code, scale, name FROM assets ORDER BY code")
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
    rows.iter().map(asset_from_row).collect()
}

/// Scales of the registered assets among `codes` (absent: not registered).
pub(crate) async fn scales(
    conn: &mut SqliteConnection,
    codes: &[&AssetCode],
) -> Result<HashMap<AssetCode, talea_core::Scale>, StoreError> {
    let rows = sqlx::query(
        "SELECT code, scale FROM assets WHERE code IN (SELECT value FROM json_each(?1))",
    )
    .bind(codec::text_list(codes.iter().map(|c| c.as_str()))?)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            Ok((
                codec::asset_code(&get::<String>(row, "code")?)?,
                codec::scale(get(row, "scale")?)?,
            ))
        })
        .collect()
}

/// Books with at least one event, by name.
pub(crate) async fn books(conn: &mut SqliteConnection) -> Result<Vec<BookInfo>, StoreError> {
    let rows = sqlx::query("SELECT book, last_seq FROM books WHERE last_seq > 0 ORDER BY book")
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

/// A book's counter row: last seq and last commit time (`(0, None)` without events).
pub(crate) async fn head(
    conn: &mut SqliteConnection,
    book: &BookName,
) -> Result<(u64, Option<Timestamp>), StoreError> {
    let row: Option<(i64, Option<i64>)> =
        sqlx::query_as("SELECT last_seq, last_committed_at FROM books WHERE book = ?1")
            .bind(book.as_str())
            .fetch_optional(&mut *conn)
            .await
            .map_err(store_error)?;
    match row {
        None => Ok((0, None)),
        Some((seq, at)) => Ok((codec::seq(seq)?, at.map(Timestamp::from_micros))),
    }
}

/// A book's last seq, `None` without events.
pub(crate) async fn last_seq(
    conn: &mut SqliteConnection,
    book: &BookName,
) -> Result<Option<u64>, StoreError> {
    let (seq, _) = head(conn, book).await?;
    Ok((seq > 0).then_some(seq))
}

/// One account by name.
pub(crate) async fn account(
    conn: &mut SqliteConnection,
    book: &BookName,
    name: &AccountName,
) -> Result<Option<Account>, StoreError> {
    let row = sqlx::query(concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts a WHERE a.book = ?1 AND a.name = ?2"
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
    conn: &mut SqliteConnection,
    book: &BookName,
    after: Option<&AccountName>,
    limit: u32,
) -> Result<Vec<Account>, StoreError> {
    // No `after` is "after the empty string", which sorts before every name
    // bytewise, so one statement (and one index range) serves both cases.
    let rows = sqlx::query(concat!(
        "SELECT ",
        account_columns!(),
        " FROM accounts a WHERE a.book = ?1 AND a.name > ?2 ORDER BY a.name LIMIT ?3"
    ))
    .bind(book.as_str())
    .bind(after.map_or("", AccountName::as_str))
    .bind(i64::from(limit))
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    rows.iter().map(|row| account_from_row(book, row)).collect()
}

/// The last seq committed at or before `as_of` (commit time is monotonic
/// with seq), as a subquery over `?1` (book) and the given time parameter.
macro_rules! cut_seq {
    ($at:literal) => {
        concat!(
            "(SELECT seq FROM events WHERE book = ?1 AND committed_at <= ",
            $at,
            " ORDER BY committed_at DESC, seq DESC LIMIT 1)"
        )
    };
}

/// Balances of account `?2` in book `?1` as of time `?3`: the cut seq, then
/// per asset ever held the last posting at or before it, whose
/// `balance_after` is the answer. Two index probes per asset, never a scan;
/// an asset first touched after the cut has no such posting and is left out.
///
/// `INDEXED BY` pins the probe: for a correlated subquery SQLite's planner
/// (without statistics) prefers a backward range scan of the primary key,
/// which reads every posting of the book before the cut. With the clause a
/// plan without the index is an error, never a silent slowdown.
pub(crate) const BALANCES_AS_OF: &str = concat!(
    "SELECT asset, balance FROM ( \
               SELECT b.asset, ( \
                 SELECT p.balance_after FROM postings p INDEXED BY postings_account_asset_idx \
                 WHERE p.book = b.book AND p.account = b.account AND p.asset = b.asset \
                   AND p.seq <= cut.seq \
                 ORDER BY p.seq DESC, p.leg DESC LIMIT 1 \
               ) AS balance \
               FROM (SELECT ",
    cut_seq!("?3"),
    " AS seq) cut, balances b \
               WHERE cut.seq IS NOT NULL AND b.book = ?1 AND b.account = ?2 \
             ) WHERE balance IS NOT NULL ORDER BY asset"
);

/// The trial balance of book `?1` as of time `?2`: as in [`BALANCES_AS_OF`],
/// each pair's last posting at or before the cut, whose `debits_after` and
/// `balance_after` give both totals (one index probe each: SQLite has no
/// LATERAL join to fetch both columns with one).
pub(crate) const TRIAL_BALANCE_AS_OF: &str = concat!(
    "SELECT account, kind, asset, debits, balance FROM ( \
           SELECT b.account, a.kind, b.asset, \
             (SELECT p.debits_after FROM postings p INDEXED BY postings_account_asset_idx \
              WHERE p.book = b.book AND p.account = b.account AND p.asset = b.asset \
                AND p.seq <= cut.seq \
              ORDER BY p.seq DESC, p.leg DESC LIMIT 1) AS debits, \
             (SELECT p.balance_after FROM postings p INDEXED BY postings_account_asset_idx \
              WHERE p.book = b.book AND p.account = b.account AND p.asset = b.asset \
                AND p.seq <= cut.seq \
              ORDER BY p.seq DESC, p.leg DESC LIMIT 1) AS balance \
           FROM (SELECT ",
    cut_seq!("?2"),
    " AS seq) cut, balances b \
           JOIN accounts a ON a.book = b.book AND a.name = b.account \
           WHERE cut.seq IS NOT NULL AND b.book = ?1 \
         ) WHERE debits IS NOT NULL ORDER BY account, asset"
);

/// An account's storage balances, now or as of a commit time.
pub(crate) async fn balances(
    conn: &mut SqliteConnection,
    book: &BookName,
    account: &AccountName,
    as_of: Option<Timestamp>,
) -> Result<Vec<Balance>, StoreError> {
    let query = match as_of {
        None => sqlx::query(
            "SELECT asset, balance FROM balances WHERE book = ?1 AND account = ?2 ORDER BY asset",
        )
        .bind(book.as_str())
        .bind(account.as_str()),
        Some(at) => sqlx::query(BALANCES_AS_OF)
            .bind(book.as_str())
            .bind(account.as_str())
            .bind(at.micros()),
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

/// The book's balances with its head seq, in one statement (one WAL
/// snapshot): the counter row and the balance rows are written by the same
/// transactions, so they agree. The names travel as one JSON array.
pub(crate) async fn balance_cut(
    conn: &mut SqliteConnection,
    book: &BookName,
    accounts: Option<&[AccountName]>,
    limit: u32,
) -> Result<Option<BalanceCut>, StoreError> {
    let names = accounts
        .map(|list| serde_json::to_string(&list.iter().map(|a| a.as_str()).collect::<Vec<_>>()))
        .transpose()
        .map_err(|e| StoreError::Other(format!("cannot encode account names: {e}")))?;
    let rows = sqlx::query(
        "SELECT bk.last_seq, bk.last_committed_at, a.name, a.kind, b.asset, b.balance \
         FROM books bk \
         LEFT JOIN ( \
           SELECT name, kind FROM accounts \
           WHERE book = ?1 AND (?2 IS NULL OR name IN (SELECT value FROM json_each(?2))) \
           ORDER BY name LIMIT ?3 \
         ) a ON 1 \
         LEFT JOIN balances b ON b.book = bk.book AND b.account = a.name \
         WHERE bk.book = ?1 AND bk.last_seq > 0 \
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
    let committed_at = get::<Option<i64>>(first, "last_committed_at")?
        .map(Timestamp::from_micros)
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
    conn: &mut SqliteConnection,
    book: &BookName,
    as_of: Option<Timestamp>,
) -> Result<Vec<TrialRow>, StoreError> {
    let Some(at) = as_of else {
        let rows = sqlx::query(
            "SELECT b.account, a.kind, b.asset, b.debits, b.credits \
             FROM balances b JOIN accounts a ON a.book = b.book AND a.name = b.account \
             WHERE b.book = ?1 ORDER BY b.account, b.asset",
        )
        .bind(book.as_str())
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
        return rows
            .iter()
            .map(|row| trial_row(row, get_amount(row, "debits")?, get_amount(row, "credits")?))
            .collect();
    };
    // The credits are debits minus balance, computed here: SQLite cannot
    // subtract i128s.
    let rows = sqlx::query(TRIAL_BALANCE_AS_OF)
        .bind(book.as_str())
        .bind(at.micros())
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
    rows.iter()
        .map(|row| {
            let debits = get_amount(row, "debits")?;
            let balance = get_amount(row, "balance")?;
            let credits = debits.checked_sub(balance).ok_or_else(|| {
                corrupt(format!(
                    "debits {} and balance {} imply credits beyond 128 bits",
                    debits.minor(),
                    balance.minor()
                ))
            })?;
            trial_row(row, debits, credits)
        })
        .collect()
}

/// Decodes a trial row's names; the totals come from the caller.
fn trial_row(row: &SqliteRow, debits: Amount, credits: Amount) -> Result<TrialRow, StoreError> {
    Ok(TrialRow {
        account: codec::account_name(&get::<String>(row, "account")?)?,
        kind: codec::account_kind(&get::<String>(row, "kind")?)?,
        asset: codec::asset_code(&get::<String>(row, "asset")?)?,
        debits,
        credits,
    })
}

/// Postings of account `?2` in book `?1` after seq `?3`, at least `?4` of
/// them: `page` is the first `?4` postings, and the outer query takes every
/// posting up to the last seq of that page, which adds the remaining legs of
/// the page's last transaction on this account (if any). `INDEXED BY` for
/// the reason given at [`BALANCES_AS_OF`]: left alone, SQLite walks the
/// primary key over every posting of the book in the page's seq range.
pub(crate) const ACCOUNT_POSTINGS: &str = "WITH page AS ( \
           SELECT seq FROM postings INDEXED BY postings_account_idx \
           WHERE book = ?1 AND account = ?2 AND seq > ?3 \
           ORDER BY seq, leg LIMIT ?4 \
         ) \
         SELECT p.seq, t.tx_id, t.committed_at, p.asset, p.amount, p.balance_after \
         FROM postings p INDEXED BY postings_account_idx \
         JOIN transactions t ON t.book = p.book AND t.seq = p.seq \
         WHERE p.book = ?1 AND p.account = ?2 AND p.seq > ?3 \
           AND p.seq <= (SELECT max(seq) FROM page) \
         ORDER BY p.seq, p.leg";

/// An account's postings after a seq, never splitting a transaction.
pub(crate) async fn account_postings(
    conn: &mut SqliteConnection,
    book: &BookName,
    account: &AccountName,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<AccountPosting>, StoreError> {
    let rows = sqlx::query(ACCOUNT_POSTINGS)
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
                committed_at: get_timestamp(row, "committed_at")?,
                asset: codec::asset_code(&get::<String>(row, "asset")?)?,
                amount: get_amount(row, "amount")?,
                balance_after: get_amount(row, "balance_after")?,
            })
        })
        .collect()
}

/// Transactions of a book after a seq, with their postings.
pub(crate) async fn transactions(
    conn: &mut SqliteConnection,
    book: &BookName,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<Commit>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        transaction_columns!(),
        " FROM transactions t WHERE t.book = ?1 AND t.seq > ?2 ORDER BY t.seq LIMIT ?3"
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

/// Transactions of a book by idempotency key, with their postings and
/// request hashes: the originals a batch's retries are answered with.
pub(crate) async fn transactions_by_key(
    conn: &mut SqliteConnection,
    book: &BookName,
    keys: &[&str],
) -> Result<Vec<(Commit, [u8; 32])>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT ",
        transaction_columns!(),
        ", t.request_hash FROM transactions t \
         WHERE t.book = ?1 AND t.idempotency_key IN (SELECT value FROM json_each(?2))"
    ))
    .bind(book.as_str())
    .bind(codec::text_list(keys.iter().copied())?)
    .fetch_all(&mut *conn)
    .await
    .map_err(store_error)?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let mut commits = Vec::with_capacity(rows.len());
    let mut hashes = Vec::with_capacity(rows.len());
    for row in &rows {
        commits.push(commit_head(book, row)?);
        let hash: Vec<u8> = get(row, "request_hash")?;
        hashes.push(
            <[u8; 32]>::try_from(hash.as_slice())
                .map_err(|_| corrupt("request hash is not 32 bytes"))?,
        );
    }
    attach_postings(conn, book, &mut commits).await?;
    Ok(commits.into_iter().zip(hashes).collect())
}

/// One transaction by id, in any book, or (with `books`) only in those.
pub(crate) async fn transaction(
    conn: &mut SqliteConnection,
    tx_id: TxId,
    books: Option<&[&str]>,
) -> Result<Option<Commit>, StoreError> {
    // The books as a JSON array, so the filter is in the one statement and
    // an id outside them costs what an unknown one does.
    let books = books.map(|books| serde_json::Value::from(books.to_vec()).to_string());
    let row = sqlx::query(concat!(
        "SELECT t.book, ",
        transaction_columns!(),
        " FROM transactions t WHERE t.tx_id = ?1 \
           AND (?2 IS NULL OR t.book IN (SELECT value FROM json_each(?2))) LIMIT 1"
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
    conn: &mut SqliteConnection,
    book: &BookName,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let rows = sqlx::query(concat!(
        "SELECT e.seq, e.type, e.committed_at, ",
        account_columns!(),
        ", ",
        transaction_columns!(),
        " FROM events e \
          LEFT JOIN accounts a ON a.book = e.book AND a.seq = e.seq \
          LEFT JOIN transactions t ON t.book = e.book AND t.seq = e.seq \
          WHERE e.book = ?1 AND e.seq > ?2 ORDER BY e.seq LIMIT ?3"
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
        let committed_at = get_timestamp(row, "committed_at")?;
        let kind: String = get(row, "type")?;
        let has_account = get::<Option<String>>(row, "name")?.is_some();
        let has_transaction = get::<Option<Vec<u8>>>(row, "tx_id")?.is_some();
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The query plan of `sql`, one line per step.
    async fn plan(conn: &mut SqliteConnection, sql: &str, binds: usize) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query(&explain);
        for _ in 0..binds {
            query = query.bind("x");
        }
        let rows = query.fetch_all(&mut *conn).await.expect("explain");
        rows.iter()
            .map(|row| get::<String>(row, "detail").expect("detail"))
            .collect()
    }

    /// `as_of` reads and account histories probe indexes; a scan of the log
    /// or of the book's postings would make them linear in the book's size.
    #[tokio::test]
    async fn book_wide_reads_never_scan_the_log() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = crate::SqliteStore::open(&dir.path().join("plans.db"))
            .await
            .expect("open");
        let mut conn = store.reader().await.expect("reader");
        for (sql, binds, postings_index) in [
            (BALANCES_AS_OF, 3, "postings_account_asset_idx"),
            (TRIAL_BALANCE_AS_OF, 2, "postings_account_asset_idx"),
            (ACCOUNT_POSTINGS, 4, "postings_account_idx"),
        ] {
            let steps = plan(&mut conn, sql, binds).await;
            for step in &steps {
                let slow = match step.split_whitespace().collect::<Vec<_>>().as_slice() {
                    // One row: the cut, or a constant.
                    ["SCAN", "cut" | "CONSTANT", ..] => false,
                    ["SCAN", ..] => true,
                    ["SEARCH", "p" | "postings", ..] => !step.contains(postings_index),
                    ["SEARCH", "events", ..] => !step.contains("events_book_committed_at_idx"),
                    _ => false,
                };
                assert!(!slow, "{step} in {steps:#?}");
            }
        }
    }
}
