//! Kept liability snapshots (`docs/proofs.md`, "Proof of liabilities";
//! table `liability_snapshots`): one row each, the balances the tree was
//! built from in one text column (`talea_store::liabilities::balances_text`).

use talea_core::BookName;
use talea_store::liabilities::{balances_text, parse_balances_text};
use talea_store::{LiabilitySnapshot, StoreError};

use crate::backend::{Param, SqlBackend};
use crate::decode;
use crate::error::corrupt;
use crate::rows::new_seq_param;

/// The statement of [`save_liability_snapshot`].
pub(crate) const SAVE_LIABILITY_SNAPSHOT: &str = "INSERT INTO liability_snapshots \
                     (book, snapshot_id, asset, prefix, seq, salt, root, total, taken_at, \
                      key_id, signature, balances) \
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
                   ON CONFLICT (book, snapshot_id) DO NOTHING RETURNING seq";

/// Keeps `snapshot`; see `Store::save_liability_snapshot`.
pub async fn save_liability_snapshot<B: SqlBackend>(
    store: &B,
    snapshot: &LiabilitySnapshot,
) -> Result<(), StoreError> {
    let total = snapshot.total.to_string();
    let balances = balances_text(&snapshot.balances);
    let params = [
        Param::Text(Some(snapshot.book.as_str())),
        Param::Text(Some(&snapshot.id)),
        Param::Text(Some(snapshot.asset.as_str())),
        Param::Text(Some(&snapshot.prefix)),
        Param::Int(new_seq_param(snapshot.seq)?),
        Param::Bytes(&snapshot.salt),
        Param::Bytes(&snapshot.root),
        Param::Text(Some(&total)),
        Param::Time(snapshot.timestamp),
        Param::Text(Some(&snapshot.key_id)),
        Param::Bytes(&snapshot.signature),
        Param::Text(Some(&balances)),
    ];
    let mut conn = store.writer().await?;
    let rows = decode::fetch::<B>(&mut conn, SAVE_LIABILITY_SNAPSHOT, &params).await?;
    match rows.is_empty() {
        true => Err(StoreError::Other(format!(
            "book {}: liability snapshot {} is kept already",
            snapshot.book, snapshot.id
        ))),
        false => Ok(()),
    }
}

/// The statement of [`liability_snapshot`].
pub(crate) const LIABILITY_SNAPSHOT: &str = "SELECT asset, prefix, seq, salt, root, total, taken_at, key_id, \
                     signature, balances \
                   FROM liability_snapshots WHERE book = $1 AND snapshot_id = $2";

/// The kept snapshot `id` of `book`; see `Store::liability_snapshot`.
pub async fn liability_snapshot<B: SqlBackend>(
    store: &B,
    book: &BookName,
    id: &str,
) -> Result<Option<LiabilitySnapshot>, StoreError> {
    let mut conn = store.reader().await?;
    let params = [Param::Text(Some(book.as_str())), Param::Text(Some(id))];
    let rows = decode::fetch::<B>(&mut conn, LIABILITY_SNAPSHOT, &params).await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let fixed = |column: &str| -> Result<Vec<u8>, StoreError> { decode::bytes::<B>(row, column) };
    let total = decode::text::<B>(row, "total")?;
    Ok(Some(LiabilitySnapshot {
        book: book.clone(),
        id: id.to_owned(),
        asset: decode::asset_code::<B>(row, "asset")?,
        prefix: decode::text::<B>(row, "prefix")?,
        seq: decode::seq::<B>(row, "seq")?,
        salt: <[u8; 32]>::try_from(fixed("salt")?.as_slice())
            .map_err(|_| corrupt("a liability snapshot's salt is not 32 bytes"))?,
        root: <[u8; 32]>::try_from(fixed("root")?.as_slice())
            .map_err(|_| corrupt("a liability snapshot's root is not 32 bytes"))?,
        total: total
            .parse()
            .map_err(|_| corrupt(format!("a liability snapshot's total {total:?}")))?,
        timestamp: decode::time::<B>(row, "taken_at")?,
        key_id: decode::text::<B>(row, "key_id")?,
        signature: <[u8; 64]>::try_from(fixed("signature")?.as_slice())
            .map_err(|_| corrupt("a liability snapshot's signature is not 64 bytes"))?,
        balances: parse_balances_text(&decode::text::<B>(row, "balances")?)?,
    }))
}
