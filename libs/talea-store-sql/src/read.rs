//! Every read of the SQL stores, written once over [`SqlBackend`].
//!
//! Reads run outside any explicit transaction. That is safe because the log
//! is append-only and each write is one transaction: a transaction row that
//! is visible has all its postings visible, whatever snapshot a later
//! statement takes. Statements that must agree with each other (a balance
//! row and the postings behind it, the counter row and the balances) are
//! written as one statement.
//!
//! Statements use `$n` parameters, which both databases read positionally,
//! and `CAST`s both accept (amounts are `numeric` in Postgres and text in
//! SQLite; both come back as text). The few whose text must differ are the
//! backend's [`crate::Dialect`].

use std::collections::{BTreeMap, HashMap};

use talea_core::{
    Account, AccountKind, AccountName, Amount, Asset, AssetCode, BookName, Commit, Event,
    EventKind, Timestamp, TxId, TxStatus,
};
use talea_store::stored::seq_param;
use talea_store::{
    AccountBalances, AccountPosting, Balance, BalanceCut, BookInfo, Held, PrefixBalances,
    StoreError, TrialRow,
};

use crate::backend::{Conn, Param, Row, SqlBackend};
use crate::decode::{self, fetch};
use crate::error::corrupt;

/// The columns [`decode::account`] reads, selected from `accounts a`.
#[macro_export]
macro_rules! account_columns {
    () => {
        "a.name, a.kind, CAST(a.min_balance_mantissa AS TEXT) AS min_balance_mantissa, \
         CAST(a.min_balance_scale AS BIGINT) AS min_balance_scale, \
         a.metadata AS account_metadata, a.seq AS account_seq, a.opened_at"
    };
}

/// The columns [`decode::commit_head`] reads, selected from `transactions t`.
#[macro_export]
macro_rules! transaction_columns {
    () => {
        "t.seq AS tx_seq, t.tx_id, t.idempotency_key, t.committed_at AS tx_committed_at, \
         t.occurred_at, t.memo, t.metadata, t.status AS tx_status, t.expires_at, t.pending_tx_id"
    };
}

/// The columns of an asset row.
pub(crate) const ASSET: &str =
    "SELECT code, CAST(scale AS BIGINT) AS scale, name FROM assets WHERE code = $1";

/// One asset by code.
pub async fn asset<B: SqlBackend>(
    conn: &mut Conn<B>,
    code: &AssetCode,
) -> Result<Option<Asset>, StoreError> {
    let rows = fetch::<B>(conn, ASSET, &[Param::Text(Some(code.as_str()))]).await?;
    rows.first().map(decode::asset::<B>).transpose()
}

/// The statement of [`assets`].
pub(crate) const ASSETS: &str =
    "SELECT code, CAST(scale AS BIGINT) AS scale, name FROM assets ORDER BY code";

/// Every asset, by code (bytewise: the column's collation is).
pub async fn assets<B: SqlBackend>(conn: &mut Conn<B>) -> Result<Vec<Asset>, StoreError> {
    let rows = fetch::<B>(conn, ASSETS, &[]).await?;
    rows.iter().map(decode::asset::<B>).collect()
}

/// The statement of [`books`].
pub(crate) const BOOKS: &str = "SELECT book, last_seq FROM books WHERE last_seq > 0 ORDER BY book";

/// Books with at least one event, by name.
pub async fn books<B: SqlBackend>(conn: &mut Conn<B>) -> Result<Vec<BookInfo>, StoreError> {
    // A counter row can exist at 0 (a book whose every draft was rejected, or
    // one that an older version created eagerly); such a book has no events.
    let rows = fetch::<B>(conn, BOOKS, &[]).await?;
    rows.iter()
        .map(|row| {
            Ok(BookInfo {
                book: decode::book::<B>(row, "book")?,
                last_seq: decode::seq::<B>(row, "last_seq")?,
            })
        })
        .collect()
}

/// The statement of [`head`].
pub(crate) const HEAD: &str = "SELECT last_seq, last_committed_at FROM books WHERE book = $1";

/// A book's counter row: last seq and last commit time (`(0, None)`
/// without one).
pub async fn head<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
) -> Result<(u64, Option<Timestamp>), StoreError> {
    let rows = fetch::<B>(conn, HEAD, &[Param::Text(Some(book.as_str()))]).await?;
    match rows.first() {
        None => Ok((0, None)),
        Some(row) => Ok((
            decode::seq::<B>(row, "last_seq")?,
            decode::opt_time::<B>(row, "last_committed_at")?,
        )),
    }
}

/// A book's last seq, `None` without events.
pub async fn last_seq<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
) -> Result<Option<u64>, StoreError> {
    let (seq, _) = head::<B>(conn, book).await?;
    Ok((seq > 0).then_some(seq))
}

/// The statement of [`account`].
pub(crate) const ACCOUNT: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts a WHERE a.book = $1 AND a.name = $2"
);

/// One account by name.
pub async fn account<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    name: &AccountName,
) -> Result<Option<Account>, StoreError> {
    let params = [
        Param::Text(Some(book.as_str())),
        Param::Text(Some(name.as_str())),
    ];
    let rows = fetch::<B>(conn, ACCOUNT, &params).await?;
    rows.first()
        .map(|row| decode::account::<B>(book, row))
        .transpose()
}

/// The statement of [`accounts`].
pub(crate) const ACCOUNTS: &str = concat!(
    "SELECT ",
    account_columns!(),
    " FROM accounts a WHERE a.book = $1 AND a.name > $2 ORDER BY a.name LIMIT $3"
);

/// Accounts by name strictly after `after`.
pub async fn accounts<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    after: Option<&AccountName>,
    limit: u32,
) -> Result<Vec<Account>, StoreError> {
    // No `after` is "after the empty string", which sorts before every name
    // (bytewise collation), so the bound stays an index range condition in
    // both cases instead of an `IS NULL OR` that a plan cannot use.
    let params = [
        Param::Text(Some(book.as_str())),
        Param::Text(Some(after.map_or("", AccountName::as_str))),
        Param::Int(i64::from(limit)),
    ];
    let rows = fetch::<B>(conn, ACCOUNTS, &params).await?;
    rows.iter()
        .map(|row| decode::account::<B>(book, row))
        .collect()
}

/// An account's storage balances, now or as of a commit time (the last seq
/// committed at or before it: commit time is monotonic with seq), with what
/// live holds reserved at that instant (now: in the same statement; as of
/// a time: one more). An asset only held appears with a zero balance.
pub async fn balances<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    account: &AccountName,
    as_of: Option<Timestamp>,
) -> Result<Vec<Balance>, StoreError> {
    let mut params = vec![
        Param::Text(Some(book.as_str())),
        Param::Text(Some(account.as_str())),
    ];
    // Now: posted and held in one statement (one snapshot). As of a time
    // in the past the two statements agree whatever commits in between
    // (later commits are later than the time).
    let (rows, held_rows) = match as_of {
        None => (
            fetch::<B>(conn, B::SQL.balances_now, &params).await?,
            Vec::new(),
        ),
        Some(at) => {
            params.push(Param::Time(at));
            let rows = fetch::<B>(conn, B::SQL.balances_as_of, &params).await?;
            (rows, fetch::<B>(conn, HELD_AS_OF, &params).await?)
        }
    };
    let mut out: BTreeMap<AssetCode, Balance> = BTreeMap::new();
    // `balances_as_of` rows have no `amount` column: they are posted rows.
    let posted_only = as_of.is_some();
    for (row, posted_only) in rows
        .iter()
        .map(|r| (r, posted_only))
        .chain(held_rows.iter().map(|r| (r, false)))
    {
        let asset = decode::asset_code::<B>(row, "asset")?;
        let entry = out.entry(asset.clone()).or_insert_with(|| Balance {
            asset,
            balance: Amount::ZERO,
            held: Held::default(),
        });
        if let Some(balance) = decode::opt_text::<B>(row, "balance")? {
            entry.balance = talea_store::stored::amount(&balance)?;
        }
        if posted_only {
            continue;
        }
        if let Some(amount) = decode::opt_text::<B>(row, "amount")? {
            add_held(&mut entry.held, talea_store::stored::amount(&amount)?)?;
        }
    }
    Ok(out.into_values().collect())
}

/// Adds one held leg (signed: a debit above zero) to `held`.
pub(crate) fn add_held(held: &mut Held, signed: Amount) -> Result<(), StoreError> {
    let (total, amount) = if signed.is_positive() {
        (&mut held.debits, Some(signed))
    } else {
        (&mut held.credits, signed.checked_neg())
    };
    *total = amount
        .and_then(|a| total.checked_add(a))
        .ok_or_else(|| corrupt(format!("held amounts beyond 128 bits ({})", signed.minor())))?;
    Ok(())
}

/// The cut seq of book `$1` at time `$3`, for [`HELD_AS_OF`].
macro_rules! cut_at {
    ($at:literal) => {
        concat!(
            "(SELECT seq FROM events WHERE book = $1 AND committed_at <= ",
            $at,
            " ORDER BY committed_at DESC, seq DESC LIMIT 1)"
        )
    };
}

/// `$1` book, `$2` account, `$3` time → `asset, balance` (NULL), `amount`: the legs on the
/// account of the holds live at the time: committed at or before its cut
/// seq, not ended at or before that seq, and not expired at the time.
/// Walks the account's history of holds (`hold_postings_account_asset_idx`,
/// covering; the unary `+` keeps SQLite from walking the book's instead, by
/// the primary key's seq range).
pub const HELD_AS_OF: &str = concat!(
    "SELECT hp.asset, NULL AS balance, CAST(hp.amount AS TEXT) AS amount \
     FROM hold_postings hp JOIN holds h ON h.book = $1 AND h.seq = hp.seq \
     WHERE hp.book = $1 AND hp.account = $2 AND +hp.seq <= ",
    cut_at!("$3"),
    " AND (h.ended_seq IS NULL OR h.ended_seq > ",
    cut_at!("$3"),
    ") AND (h.expires_at IS NULL OR h.expires_at > $3)"
);

/// `$1` book, `$2` time → `account, kind, asset, amount`: as
/// [`HELD_AS_OF`], for every account of the book (walks the book's
/// history of holds up to the cut).
pub const TRIAL_HELD_AS_OF: &str = concat!(
    "SELECT hp.account, a.kind, hp.asset, CAST(hp.amount AS TEXT) AS amount \
     FROM hold_postings hp JOIN holds h ON h.book = $1 AND h.seq = hp.seq \
     JOIN accounts a ON a.book = $1 AND a.name = hp.account \
     WHERE hp.book = $1 AND hp.seq <= ",
    cut_at!("$2"),
    " AND (h.ended_seq IS NULL OR h.ended_seq > ",
    cut_at!("$2"),
    ") AND (h.expires_at IS NULL OR h.expires_at > $2)"
);

/// The legs of the holds of book `$1` live at a balance cut: committed at
/// or before seq `$2`, not ended at or before it, not expired at its commit
/// time `$3`. Exact whatever was committed since: the seqs decide.
pub(crate) const CUT_HELD: &str = "SELECT hp.account, hp.asset, CAST(hp.amount AS TEXT) AS amount \
     FROM hold_postings hp JOIN holds h ON h.book = $1 AND h.seq = hp.seq \
     WHERE hp.book = $1 AND hp.seq <= $2 \
       AND (h.ended_seq IS NULL OR h.ended_seq > $2) \
       AND (h.expires_at IS NULL OR h.expires_at > $3)";

/// Adds the cut's held amounts to its accounts (an asset only held gets a
/// zero balance), keeping each account's assets in order.
async fn add_cut_held<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    cut: &mut BalanceCut,
) -> Result<(), StoreError> {
    let params = [
        Param::Text(Some(book.as_str())),
        Param::Int(crate::rows::new_seq_param(cut.last_seq)?),
        Param::Time(cut.committed_at),
    ];
    for row in fetch::<B>(conn, CUT_HELD, &params).await? {
        let name = decode::account_name::<B>(&row, "account")?;
        let Some(account) = cut.accounts.iter_mut().find(|a| a.account == name) else {
            continue;
        };
        let asset = decode::asset_code::<B>(&row, "asset")?;
        let at = match account.balances.binary_search_by(|b| b.asset.cmp(&asset)) {
            Ok(at) => at,
            Err(at) => {
                account.balances.insert(
                    at,
                    Balance {
                        asset,
                        balance: Amount::ZERO,
                        held: Held::default(),
                    },
                );
                at
            }
        };
        add_held(
            &mut account.balances[at].held,
            decode::amount::<B>(&row, "amount")?,
        )?;
    }
    Ok(())
}

/// The balances under a name prefix: every account of the key range with
/// its balance rows and the legs of live holds on it, in one statement (one
/// snapshot), folded into the count, the totals and the page in Rust
/// (SQLite cannot sum 128-bit amounts, so neither database sums them).
pub async fn prefix_balances<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    prefix: Option<&AccountName>,
    asset: Option<&AssetCode>,
    after: Option<&AccountName>,
    limit: u32,
) -> Result<PrefixBalances, StoreError> {
    let upper = talea_store::prefix::upper_bound(prefix);
    let params = [
        Param::Text(Some(book.as_str())),
        Param::Text(Some(prefix.map_or("", AccountName::as_str))),
        Param::Text(Some(&upper)),
    ];
    let rows = fetch::<B>(conn, B::SQL.prefix_balances, &params).await?;
    let mut accounts: Vec<AccountBalances> = Vec::new();
    for row in &rows {
        let name = decode::account_name::<B>(row, "name")?;
        if accounts.last().is_none_or(|a| a.account != name) {
            accounts.push(AccountBalances {
                account: name,
                kind: decode::account_kind::<B>(row, "kind")?,
                balances: Vec::new(),
            });
        }
        let Some(code) = decode::opt_text::<B>(row, "asset")? else {
            continue;
        };
        let Some(account) = accounts.last_mut() else {
            continue;
        };
        let code = talea_store::stored::asset_code(&code)?;
        let at = match account.balances.binary_search_by(|b| b.asset.cmp(&code)) {
            Ok(at) => at,
            Err(at) => {
                account.balances.insert(
                    at,
                    Balance {
                        asset: code,
                        balance: Amount::ZERO,
                        held: Held::default(),
                    },
                );
                at
            }
        };
        let entry = &mut account.balances[at];
        if let Some(balance) = decode::opt_text::<B>(row, "balance")? {
            entry.balance = talea_store::stored::amount(&balance)?;
        }
        if let Some(amount) = decode::opt_text::<B>(row, "amount")? {
            add_held(&mut entry.held, talea_store::stored::amount(&amount)?)?;
        }
    }
    PrefixBalances::fold(accounts, asset, after, limit)
}

/// The book's balances with its head seq, in one statement (one snapshot):
/// the counter row and the balance rows are written by the same
/// transactions, so they agree.
pub async fn balance_cut<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    accounts: Option<&[AccountName]>,
    limit: u32,
) -> Result<Option<BalanceCut>, StoreError> {
    let names: Option<Vec<&str>> = accounts.map(|list| list.iter().map(|a| a.as_str()).collect());
    let params = [
        Param::Text(Some(book.as_str())),
        Param::Texts(names.as_deref()),
        Param::Int(i64::from(limit)),
    ];
    let rows = fetch::<B>(conn, B::SQL.balance_cut, &params).await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let committed_at = decode::opt_time::<B>(first, "last_committed_at")?
        .ok_or_else(|| corrupt(format!("book {book} has events but no commit time")))?;
    let mut cut = BalanceCut::new(decode::seq::<B>(first, "last_seq")?, committed_at);
    for row in &rows {
        if decode::opt_text::<B>(row, "name")?.is_none() {
            continue;
        }
        let balance = match decode::opt_text::<B>(row, "asset")? {
            None => None,
            // Held amounts are added below, from the holds live at the cut.
            Some(asset) => Some(Balance {
                asset: talea_store::stored::asset_code(&asset)?,
                balance: decode::amount::<B>(row, "balance")?,
                held: Held::default(),
            }),
        };
        cut.push(
            decode::account_name::<B>(row, "name")?,
            decode::account_kind::<B>(row, "kind")?,
            balance,
        );
    }
    add_cut_held::<B>(conn, book, &mut cut).await?;
    Ok(Some(cut))
}

/// Totals per account and asset, now or as of a commit time, with what
/// live holds reserved at that instant (now: in the same statement; as of
/// a time: one more); a pair only held has zero totals.
pub async fn trial_balance<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    as_of: Option<Timestamp>,
) -> Result<Vec<TrialRow>, StoreError> {
    let mut out: BTreeMap<(AccountName, AssetCode), TrialRow> = BTreeMap::new();
    let mut keep = |row: TrialRow| {
        out.insert((row.account.clone(), row.asset.clone()), row);
    };
    let held_rows = match as_of {
        None => {
            // Posted and held in one statement (one snapshot).
            let params = [Param::Text(Some(book.as_str()))];
            let rows = fetch::<B>(conn, B::SQL.trial_balance_now, &params).await?;
            let mut held = Vec::new();
            for row in rows {
                if decode::opt_text::<B>(&row, "amount")?.is_some() {
                    held.push(row);
                    continue;
                }
                let debits = decode::amount::<B>(&row, "debits")?;
                keep(trial_row::<B>(
                    &row,
                    debits,
                    decode::amount::<B>(&row, "credits")?,
                )?);
            }
            held
        }
        Some(at) => {
            // The cut gives each pair's debits and balance after its last
            // posting at or before the cut; the credits are their
            // difference, computed here (SQLite cannot subtract 128-bit amounts).
            let params = [Param::Text(Some(book.as_str())), Param::Time(at)];
            let rows = fetch::<B>(conn, B::SQL.trial_balance_as_of, &params).await?;
            for row in &rows {
                let debits = decode::amount::<B>(row, "debits")?;
                let balance = decode::amount::<B>(row, "balance")?;
                let credits = debits.checked_sub(balance).ok_or_else(|| {
                    corrupt(format!(
                        "debits {} and balance {} imply credits beyond 128 bits",
                        debits.minor(),
                        balance.minor()
                    ))
                })?;
                keep(trial_row::<B>(row, debits, credits)?);
            }
            fetch::<B>(conn, TRIAL_HELD_AS_OF, &params).await?
        }
    };
    for row in &held_rows {
        let pair = (
            decode::account_name::<B>(row, "account")?,
            decode::asset_code::<B>(row, "asset")?,
        );
        let kind: AccountKind = decode::account_kind::<B>(row, "kind")?;
        let entry = out.entry(pair.clone()).or_insert_with(|| TrialRow {
            account: pair.0,
            kind,
            asset: pair.1,
            debits: Amount::ZERO,
            credits: Amount::ZERO,
            held: Held::default(),
        });
        add_held(&mut entry.held, decode::amount::<B>(row, "amount")?)?;
    }
    Ok(out.into_values().collect())
}

/// Decodes a trial row's names; the totals come from the caller.
fn trial_row<B: SqlBackend>(
    row: &Row<B>,
    debits: Amount,
    credits: Amount,
) -> Result<TrialRow, StoreError> {
    Ok(TrialRow {
        account: decode::account_name::<B>(row, "account")?,
        kind: decode::account_kind::<B>(row, "kind")?,
        asset: decode::asset_code::<B>(row, "asset")?,
        debits,
        credits,
        held: Held::default(),
    })
}

/// An account's postings after a seq, never splitting a transaction.
pub async fn account_postings<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    account: &AccountName,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<AccountPosting>, StoreError> {
    let params = [
        Param::Text(Some(book.as_str())),
        Param::Text(Some(account.as_str())),
        Param::Int(seq_param(after_seq)),
        Param::Int(i64::from(limit)),
    ];
    let rows = fetch::<B>(conn, B::SQL.account_postings, &params).await?;
    rows.iter()
        .map(|row| {
            let tx_id =
                decode::opt_uuid::<B>(row, "tx_id")?.ok_or_else(|| corrupt("tx_id is NULL"))?;
            Ok(AccountPosting {
                seq: decode::seq::<B>(row, "seq")?,
                tx_id: TxId(tx_id),
                committed_at: decode::time::<B>(row, "committed_at")?,
                asset: decode::asset_code::<B>(row, "asset")?,
                amount: decode::amount::<B>(row, "amount")?,
                balance_after: decode::amount::<B>(row, "balance_after")?,
            })
        })
        .collect()
}

/// Fills in the postings of `commits` (all of one book, each with its
/// status as committed): a hold's legs from `hold_postings`, the others'
/// from `postings` (a void has none); one statement per kind present.
pub(crate) async fn attach_postings<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    commits: &mut [Commit],
) -> Result<(), StoreError> {
    if commits.is_empty() {
        return Ok(());
    }
    let mut by_seq: HashMap<u64, usize> = HashMap::with_capacity(commits.len());
    let mut seqs = Vec::with_capacity(commits.len());
    let mut hold_seqs = Vec::new();
    for (i, commit) in commits.iter().enumerate() {
        by_seq.insert(commit.seq, i);
        match commit.status {
            TxStatus::Pending => hold_seqs.push(seq_param(commit.seq)),
            TxStatus::Voided => {}
            TxStatus::Posted | TxStatus::Expired => seqs.push(seq_param(commit.seq)),
        }
    }
    for (sql, list) in [
        (B::SQL.postings_of, &seqs),
        (B::SQL.hold_postings_of, &hold_seqs),
    ] {
        if list.is_empty() {
            continue;
        }
        let params = [Param::Text(Some(book.as_str())), Param::Ints(list)];
        let rows = fetch::<B>(conn, sql, &params).await?;
        for row in &rows {
            let seq = decode::seq::<B>(row, "seq")?;
            let index = by_seq
                .get(&seq)
                .copied()
                .ok_or_else(|| corrupt(format!("posting of seq {seq} that was not asked for")))?;
            commits[index]
                .postings
                .push(decode::stored_posting::<B>(row)?);
        }
    }
    if let Some(empty) = commits.iter().find(|c| {
        c.status != TxStatus::Voided && c.postings.len() < talea_core::limits::POSTINGS_MIN
    }) {
        return Err(corrupt(format!(
            "transaction at seq {} has too few postings",
            empty.seq
        )));
    }
    Ok(())
}

/// The statement of [`transactions`].
pub(crate) const TRANSACTIONS: &str = concat!(
    "SELECT ",
    transaction_columns!(),
    ", h.status AS hold_status FROM transactions t \
      LEFT JOIN holds h ON h.book = $1 AND h.seq = t.seq \
      WHERE t.book = $1 AND t.seq > $2 ORDER BY t.seq LIMIT $3"
);

/// Transactions of a book after a seq, with their postings.
pub async fn transactions<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<Commit>, StoreError> {
    let params = [
        Param::Text(Some(book.as_str())),
        Param::Int(seq_param(after_seq)),
        Param::Int(i64::from(limit)),
    ];
    let rows = fetch::<B>(conn, TRANSACTIONS, &params).await?;
    let mut commits = rows
        .iter()
        .map(|row| decode::commit_head::<B>(book, row))
        .collect::<Result<Vec<_>, _>>()?;
    attach_postings::<B>(conn, book, &mut commits).await?;
    for (commit, row) in commits.iter_mut().zip(&rows) {
        current_status::<B>(commit, row)?;
    }
    Ok(commits)
}

/// A hold's current status (`hold_status`, from its `holds` row) in place
/// of the status it was committed with; other transactions keep theirs.
pub(crate) fn current_status<B: SqlBackend>(
    commit: &mut Commit,
    row: &Row<B>,
) -> Result<(), StoreError> {
    if let Some(status) = decode::opt_status::<B>(row, "hold_status")? {
        commit.status = status;
    }
    Ok(())
}

/// Commits under the given keys of each book, with their request hashes:
/// one list per book, in order, in one statement (plus one per book that
/// has any, for their postings).
pub async fn transactions_by_keys<B: SqlBackend>(
    conn: &mut Conn<B>,
    wanted: &[(&BookName, &[&str])],
) -> Result<Vec<Vec<(Commit, [u8; 32])>>, StoreError> {
    let (books, keys, _) = parallel(wanted);
    let params = [Param::Texts(Some(&books)), Param::Texts(Some(&keys))];
    let rows = fetch::<B>(conn, B::SQL.transactions_by_keys, &params).await?;
    let rows: Vec<&Row<B>> = rows.iter().collect();
    stored_of::<B>(conn, wanted, &rows).await
}

/// The stored transactions of `wanted`'s keys from `rows` (of
/// `transactions_by_keys`' shape), with their postings: one list per book,
/// in order.
pub(crate) async fn stored_of<B: SqlBackend>(
    conn: &mut Conn<B>,
    wanted: &[(&BookName, &[&str])],
    rows: &[&Row<B>],
) -> Result<Vec<Vec<(Commit, [u8; 32])>>, StoreError> {
    let slot_of = slots(wanted);
    let mut found: Vec<(Vec<Commit>, Vec<&Row<B>>)> = vec![(Vec::new(), Vec::new()); wanted.len()];
    for row in rows {
        let slot = slot::<B>(&slot_of, row, "transaction")?;
        let (commits, of) = &mut found[slot];
        commits.push(decode::commit_head::<B>(wanted[slot].0, row)?);
        of.push(row);
    }
    let mut out = Vec::with_capacity(found.len());
    for ((mut commits, of), (book, _)) in found.into_iter().zip(wanted) {
        // Postings by the status as committed (a hold's are in
        // `hold_postings`), then a replay answers a hold as it stands now,
        // as a read of it would.
        attach_postings::<B>(conn, book, &mut commits).await?;
        let mut stored = Vec::with_capacity(commits.len());
        for (mut commit, row) in commits.into_iter().zip(of) {
            current_status::<B>(&mut commit, row)?;
            stored.push((commit, decode::request_hash::<B>(row, "request_hash")?));
        }
        out.push(stored);
    }
    Ok(out)
}

/// Each book's slot in `wanted`, by name.
pub(crate) fn slots<'a, T>(wanted: &[(&'a BookName, T)]) -> HashMap<&'a str, usize> {
    wanted
        .iter()
        .enumerate()
        .map(|(slot, (book, _))| (book.as_str(), slot))
        .collect()
}

/// Per-book name lists as the parallel lists (book, name) a statement
/// takes, with each book's slot.
pub(crate) fn parallel<'a>(
    wanted: &[(&'a BookName, &[&'a str])],
) -> (Vec<&'a str>, Vec<&'a str>, HashMap<&'a str, usize>) {
    let mut books = Vec::new();
    let mut names = Vec::new();
    let mut slot_of = HashMap::with_capacity(wanted.len());
    for (slot, (book, book_names)) in wanted.iter().enumerate() {
        slot_of.insert(book.as_str(), slot);
        for name in book_names.iter() {
            books.push(book.as_str());
            names.push(*name);
        }
    }
    (books, names, slot_of)
}

/// The slot of the book a row of a multi-book statement belongs to.
pub(crate) fn slot<B: SqlBackend>(
    slot_of: &HashMap<&str, usize>,
    row: &Row<B>,
    what: &str,
) -> Result<usize, StoreError> {
    let book = decode::text::<B>(row, "book")?;
    slot_of
        .get(book.as_str())
        .copied()
        .ok_or_else(|| corrupt(format!("{what} of book {book}, which was not asked for")))
}

/// One transaction by id, in any book, or (with `books`) only in those:
/// the filter is in the one statement, so an id outside them costs what an
/// unknown one does.
pub async fn transaction<B: SqlBackend>(
    conn: &mut Conn<B>,
    tx_id: TxId,
    books: Option<&[&str]>,
) -> Result<Option<Commit>, StoreError> {
    let params = [Param::Uuid(tx_id.0), Param::Texts(books)];
    let rows = fetch::<B>(conn, B::SQL.transaction, &params).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let book = decode::book::<B>(row, "book")?;
    let mut commits = vec![decode::commit_head::<B>(&book, row)?];
    attach_postings::<B>(conn, &book, &mut commits).await?;
    let mut commit = commits.pop();
    if let Some(commit) = &mut commit {
        current_status::<B>(commit, row)?;
    }
    Ok(commit)
}

/// The statement of [`events`].
pub(crate) const EVENTS: &str = concat!(
    "SELECT e.seq, e.type, e.committed_at, e.hash AS event_hash, ",
    account_columns!(),
    ", ",
    transaction_columns!(),
    " FROM events e \
      LEFT JOIN accounts a ON a.book = $1 AND a.seq = e.seq \
      LEFT JOIN transactions t ON t.book = $1 AND t.seq = e.seq \
      WHERE e.book = $1 AND e.seq > $2 ORDER BY e.seq LIMIT $3"
);

/// Events of a book after a seq: the log joined with what each entry recorded.
pub async fn events<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<Event>, StoreError> {
    let params = [
        Param::Text(Some(book.as_str())),
        Param::Int(seq_param(after_seq)),
        Param::Int(i64::from(limit)),
    ];
    let rows = fetch::<B>(conn, EVENTS, &params).await?;

    /// An event decoded except for its postings.
    enum Entry {
        Opened(Account),
        Transaction(usize),
        /// A hold's expiry: the hold is found by the event's seq.
        Expired,
    }
    let mut heads = Vec::with_capacity(rows.len());
    let mut commits = Vec::new();
    let mut expiry_seqs: Vec<u64> = Vec::new();
    for row in &rows {
        let seq = decode::seq::<B>(row, "seq")?;
        let committed_at = decode::time::<B>(row, "committed_at")?;
        let kind = decode::text::<B>(row, "type")?;
        let hash = decode::opt_hash::<B>(row, "event_hash")?;
        let has_account = decode::opt_text::<B>(row, "name")?.is_some();
        let has_transaction = decode::opt_uuid::<B>(row, "tx_id")?.is_some();
        let entry = match kind.as_str() {
            "account_opened" if has_account => Entry::Opened(decode::account::<B>(book, row)?),
            "transaction" if has_transaction => {
                commits.push(decode::commit_head::<B>(book, row)?);
                Entry::Transaction(commits.len() - 1)
            }
            // A `transaction` event without a transactions row is an
            // expiry (migrations/0003_holds.sql).
            "transaction" => {
                expiry_seqs.push(seq);
                Entry::Expired
            }
            other => {
                return Err(corrupt(format!(
                    "event {seq} of type {other:?} has no matching record"
                )));
            }
        };
        heads.push((seq, committed_at, hash, entry));
    }
    attach_postings::<B>(conn, book, &mut commits).await?;
    let mut expired = expired_holds::<B>(conn, book, &expiry_seqs).await?;
    let mut commits: Vec<Option<Commit>> = commits.into_iter().map(Some).collect();
    heads
        .into_iter()
        .map(|(seq, committed_at, hash, entry)| {
            let kind = match entry {
                Entry::Opened(account) => EventKind::AccountOpened(account),
                Entry::Transaction(i) => EventKind::Transaction(
                    commits
                        .get_mut(i)
                        .and_then(Option::take)
                        .ok_or_else(|| corrupt("transaction event decoded twice"))?,
                ),
                Entry::Expired => {
                    EventKind::HoldExpired(expired.remove(&seq).ok_or_else(|| {
                        corrupt(format!(
                            "event {seq} is neither a transaction nor an expiry"
                        ))
                    })?)
                }
            };
            Ok(Event {
                seq,
                committed_at,
                kind,
                hash,
            })
        })
        .collect()
}

/// The statement of [`expired_holds`].
pub(crate) const EXPIRED_HOLDS: &str = concat!(
    "SELECT h.ended_seq, ",
    transaction_columns!(),
    " FROM holds h JOIN transactions t ON t.book = $1 AND t.seq = h.seq \
      WHERE h.book = $1 AND h.ended_seq >= $2 AND h.ended_seq <= $3 \
        AND h.status = 'expired'"
);

/// The holds that the expiry events at `seqs` (ascending) of `book` ended,
/// by event seq, each with its legs and status `Expired`: one statement
/// over the seq range (plus one for the legs), none without expiries.
async fn expired_holds<B: SqlBackend>(
    conn: &mut Conn<B>,
    book: &BookName,
    seqs: &[u64],
) -> Result<HashMap<u64, Commit>, StoreError> {
    let (Some(&first), Some(&last)) = (seqs.first(), seqs.last()) else {
        return Ok(HashMap::new());
    };
    let params = [
        Param::Text(Some(book.as_str())),
        Param::Int(seq_param(first)),
        Param::Int(seq_param(last)),
    ];
    let rows = fetch::<B>(conn, EXPIRED_HOLDS, &params).await?;
    let mut ended = Vec::with_capacity(rows.len());
    let mut holds = Vec::with_capacity(rows.len());
    for row in &rows {
        ended.push(decode::seq::<B>(row, "ended_seq")?);
        holds.push(decode::commit_head::<B>(book, row)?);
    }
    attach_postings::<B>(conn, book, &mut holds).await?;
    Ok(ended
        .into_iter()
        .zip(holds)
        .map(|(seq, mut hold)| {
            hold.status = TxStatus::Expired;
            (seq, hold)
        })
        .collect())
}
