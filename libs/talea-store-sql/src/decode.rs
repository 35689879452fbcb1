//! Rows back into domain values: typed columns, and the records every read shares.
//!
//! Every value read back is parsed into its domain type again
//! (`talea_store::stored`), so a row that somehow holds an impossible value
//! surfaces as `StoreError::Corrupt` instead of travelling further.

use talea_core::{
    Account, AccountKind, AccountName, Amount, Asset, AssetCode, BookName, Commit, Decimal,
    IdempotencyKey, Scale, Side, StoredPosting, Timestamp, TxId, TxStatus,
};
use talea_store::{StoreError, stored};

use crate::backend::{Columns, Conn, Param, Row, SqlBackend};
use crate::error::{corrupt, store_error};

/// Runs a statement, mapping failures to the store's error.
pub(crate) async fn fetch<B: SqlBackend>(
    conn: &mut Conn<B>,
    sql: &str,
    params: &[Param<'_>],
) -> Result<Vec<Row<B>>, StoreError> {
    B::fetch(conn, sql, params).await.map_err(store_error::<B>)
}

/// A column that may be NULL, read with one of the backend's getters.
fn nullable<B: SqlBackend, T>(
    read: fn(&Row<B>, &str) -> Result<Option<T>, sqlx::Error>,
    row: &Row<B>,
    column: &str,
) -> Result<Option<T>, StoreError> {
    read(row, column).map_err(store_error::<B>)
}

/// A column that must not be NULL.
fn required<B: SqlBackend, T>(
    read: fn(&Row<B>, &str) -> Result<Option<T>, sqlx::Error>,
    row: &Row<B>,
    column: &str,
) -> Result<T, StoreError> {
    nullable::<B, T>(read, row, column)?.ok_or_else(|| corrupt(format!("{column} is NULL")))
}

/// A text column that may be NULL.
pub(crate) fn opt_text<B: SqlBackend>(
    row: &Row<B>,
    column: &str,
) -> Result<Option<String>, StoreError> {
    nullable::<B, _>(<B::Db as Columns>::text, row, column)
}

/// A text column.
pub(crate) fn text<B: SqlBackend>(row: &Row<B>, column: &str) -> Result<String, StoreError> {
    required::<B, _>(<B::Db as Columns>::text, row, column)
}

/// A commit-time column.
pub(crate) fn time<B: SqlBackend>(row: &Row<B>, column: &str) -> Result<Timestamp, StoreError> {
    required::<B, _>(B::time, row, column)
}

/// A commit-time column that may be NULL.
pub(crate) fn opt_time<B: SqlBackend>(
    row: &Row<B>,
    column: &str,
) -> Result<Option<Timestamp>, StoreError> {
    nullable::<B, _>(B::time, row, column)
}

/// A UUID column that may be NULL.
pub(crate) fn opt_uuid<B: SqlBackend>(
    row: &Row<B>,
    column: &str,
) -> Result<Option<uuid::Uuid>, StoreError> {
    nullable::<B, _>(<B::Db as Columns>::uuid, row, column)
}

/// A seq column.
pub(crate) fn seq<B: SqlBackend>(row: &Row<B>, column: &str) -> Result<u64, StoreError> {
    stored::seq(required::<B, _>(<B::Db as Columns>::int, row, column)?)
}

/// An amount column (decimal text of minor units).
pub(crate) fn amount<B: SqlBackend>(row: &Row<B>, column: &str) -> Result<Amount, StoreError> {
    stored::amount(&text::<B>(row, column)?)
}

/// An asset code column.
pub(crate) fn asset_code<B: SqlBackend>(
    row: &Row<B>,
    column: &str,
) -> Result<AssetCode, StoreError> {
    stored::asset_code(&text::<B>(row, column)?)
}

/// An account name column.
pub(crate) fn account_name<B: SqlBackend>(
    row: &Row<B>,
    column: &str,
) -> Result<AccountName, StoreError> {
    stored::account_name(&text::<B>(row, column)?)
}

/// An account kind column.
pub(crate) fn account_kind<B: SqlBackend>(
    row: &Row<B>,
    column: &str,
) -> Result<AccountKind, StoreError> {
    stored::account_kind(&text::<B>(row, column)?)
}

/// A book name column.
pub(crate) fn book<B: SqlBackend>(row: &Row<B>, column: &str) -> Result<BookName, StoreError> {
    stored::book(&text::<B>(row, column)?)
}

/// An asset scale column.
pub(crate) fn scale<B: SqlBackend>(row: &Row<B>, column: &str) -> Result<Scale, StoreError> {
    let value = required::<B, _>(<B::Db as Columns>::int, row, column)?;
    Scale::new(value).ok_or_else(|| corrupt(format!("asset scale {value}")))
}

/// A request fingerprint column.
pub(crate) fn request_hash<B: SqlBackend>(
    row: &Row<B>,
    column: &str,
) -> Result<[u8; 32], StoreError> {
    let hash = required::<B, _>(<B::Db as Columns>::bytes, row, column)?;
    <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| corrupt("request hash is not 32 bytes"))
}

/// A byte-string column that is never NULL.
pub(crate) fn bytes<B: SqlBackend>(row: &Row<B>, column: &str) -> Result<Vec<u8>, StoreError> {
    required::<B, _>(<B::Db as Columns>::bytes, row, column)
}

/// An event's chain hash, NULL for an event whose chain is not computed yet.
pub(crate) fn opt_hash<B: SqlBackend>(
    row: &Row<B>,
    column: &str,
) -> Result<Option<[u8; 32]>, StoreError> {
    nullable::<B, _>(<B::Db as Columns>::bytes, row, column)?
        .map(|hash| {
            <[u8; 32]>::try_from(hash.as_slice()).map_err(|_| corrupt("event hash is not 32 bytes"))
        })
        .transpose()
}

/// A `min_balance` from its two columns (both NULL: unbounded).
pub(crate) fn min_balance<B: SqlBackend>(row: &Row<B>) -> Result<Option<Decimal>, StoreError> {
    stored::min_balance(
        opt_text::<B>(row, "min_balance_mantissa")?,
        nullable::<B, _>(<B::Db as Columns>::int, row, "min_balance_scale")?,
    )
}

/// An asset row (`code, scale, name`).
pub(crate) fn asset<B: SqlBackend>(row: &Row<B>) -> Result<Asset, StoreError> {
    Ok(Asset {
        code: asset_code::<B>(row, "code")?,
        scale: scale::<B>(row, "scale")?,
        name: opt_text::<B>(row, "name")?,
    })
}

/// An account selected with [`crate::read::ACCOUNT_COLUMNS`].
pub(crate) fn account<B: SqlBackend>(book: &BookName, row: &Row<B>) -> Result<Account, StoreError> {
    Ok(Account {
        book: book.clone(),
        name: account_name::<B>(row, "name")?,
        kind: account_kind::<B>(row, "kind")?,
        min_balance: min_balance::<B>(row)?,
        metadata: text::<B>(row, "account_metadata")?,
        seq: seq::<B>(row, "account_seq")?,
        opened_at: time::<B>(row, "opened_at")?,
    })
}

/// A transaction selected with [`crate::read::TRANSACTION_COLUMNS`], without its postings.
pub(crate) fn commit_head<B: SqlBackend>(
    book: &BookName,
    row: &Row<B>,
) -> Result<Commit, StoreError> {
    let tx_id = opt_uuid::<B>(row, "tx_id")?.ok_or_else(|| corrupt("tx_id is NULL"))?;
    Ok(Commit {
        tx_id: TxId(tx_id),
        book: book.clone(),
        seq: seq::<B>(row, "tx_seq")?,
        committed_at: time::<B>(row, "tx_committed_at")?,
        idempotency_key: idempotency_key::<B>(row)?,
        postings: Vec::new(),
        occurred_at: opt_time::<B>(row, "occurred_at")?,
        memo: opt_text::<B>(row, "memo")?,
        metadata: opt_text::<B>(row, "metadata")?,
        status: status::<B>(row, "tx_status")?,
        expires_at: opt_time::<B>(row, "expires_at")?,
        pending_tx_id: opt_uuid::<B>(row, "pending_tx_id")?.map(TxId),
    })
}

/// A status column (`posted`, `pending`, `voided`, `expired`).
pub(crate) fn status<B: SqlBackend>(row: &Row<B>, column: &str) -> Result<TxStatus, StoreError> {
    let text = text::<B>(row, column)?;
    TxStatus::parse(&text).ok_or_else(|| corrupt(format!("{column} {text:?}")))
}

/// A status column that may be NULL.
pub(crate) fn opt_status<B: SqlBackend>(
    row: &Row<B>,
    column: &str,
) -> Result<Option<TxStatus>, StoreError> {
    opt_text::<B>(row, column)?
        .map(|text| TxStatus::parse(&text).ok_or_else(|| corrupt(format!("{column} {text:?}"))))
        .transpose()
}

/// The `idempotency_key` column.
fn idempotency_key<B: SqlBackend>(row: &Row<B>) -> Result<IdempotencyKey, StoreError> {
    stored::idempotency_key(&text::<B>(row, "idempotency_key")?)
}

/// A stored posting (`account, asset, amount, balance_after`), its side
/// from the sign of its amount.
pub(crate) fn stored_posting<B: SqlBackend>(row: &Row<B>) -> Result<StoredPosting, StoreError> {
    let signed = amount::<B>(row, "amount")?;
    let balance_after = amount::<B>(row, "balance_after")?;
    let (side, posted) = if signed.is_positive() {
        (Side::Debit, signed)
    } else {
        // A stored amount below zero is a credit of its negation, which
        // exists because posted amounts are positive i128s.
        let credit = signed
            .checked_neg()
            .filter(|a| a.is_positive())
            .ok_or_else(|| corrupt(format!("posting amount {}", signed.minor())))?;
        (Side::Credit, credit)
    };
    Ok(StoredPosting {
        account: account_name::<B>(row, "account")?,
        asset: asset_code::<B>(row, "asset")?,
        side,
        amount: posted,
        balance_after,
    })
}
