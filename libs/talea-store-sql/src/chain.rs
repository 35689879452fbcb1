//! The hash chain of each book's log (`docs/proofs.md`), kept under the
//! book's lock.
//!
//! Every event row carries its chain hash, computed in the commit that
//! appends it, from the book's `chain_hash` (the hash of event `chain_seq`)
//! read with the lock. A book whose `chain_seq` is behind its `last_seq` was
//! written before the chain existed (or by a talead that predates it): the
//! first writer that locks it hashes the missing events first, in the same
//! transaction ([`catch_up`]), and `talead` does it for every book when it
//! starts ([`upgrade`]). Nothing is renumbered or rewritten but the `hash`
//! column.

use std::collections::HashMap;

use talea_api::event::{AssetScales, event_hash};
use talea_core::{AssetCode, BookName, Event, EventKind, Scale};
use talea_store::{Checkpoint, StoreError};
use talea_verify::Hash;
pub use talea_verify::chain::GENESIS;

use crate::backend::{Conn, Head, Param, SqlBackend};
use crate::error::store_error;
use crate::read;
use crate::rows::new_seq_param;

/// Events hashed per read while catching a book's chain up.
const CATCH_UP_PAGE: u32 = 1_000;

/// Sets `hash` of event `seq` of `book` (catching up only).
pub(crate) const SET_EVENT_HASH: &str = "UPDATE events SET hash = $3 WHERE book = $1 AND seq = $2";

/// The chain position a counter row holds: the hash of event `chain_seq`
/// (genesis at 0), refused if the row is inconsistent.
pub fn stored_head(chain_seq: u64, chain_hash: Option<Vec<u8>>) -> Result<Hash, StoreError> {
    match (chain_seq, chain_hash) {
        (0, None) => Ok(GENESIS),
        (_, Some(hash)) if chain_seq > 0 => <Hash>::try_from(hash.as_slice())
            .map_err(|_| StoreError::Other("books.chain_hash is not 32 bytes".to_owned())),
        _ => Err(StoreError::Other(format!(
            "books.chain_hash disagrees with chain_seq {chain_seq}"
        ))),
    }
}

/// The chain hash of each of `events` of `book`, in order, after `prev`.
pub fn hash_all<'e>(
    book: &BookName,
    prev: Hash,
    events: impl IntoIterator<Item = &'e Event>,
    scales: &(impl AssetScales + ?Sized),
) -> Result<Vec<Hash>, StoreError> {
    let mut prev = prev;
    events
        .into_iter()
        .map(|event| {
            prev = hash_one(book, &prev, event, scales)?;
            Ok(prev)
        })
        .collect()
}

/// The chain hash of `event` of `book` after `prev`.
pub fn hash_one(
    book: &BookName,
    prev: &Hash,
    event: &Event,
    scales: &(impl AssetScales + ?Sized),
) -> Result<Hash, StoreError> {
    event_hash(prev, book.as_str(), event, scales).map_err(|e| StoreError::Other(e.to_string()))
}

/// The assets `events` mention.
fn assets_of(events: &[Event]) -> Vec<&AssetCode> {
    let mut assets: Vec<&AssetCode> = Vec::new();
    for event in events {
        if let EventKind::Transaction(c) | EventKind::HoldExpired(c) = &event.kind {
            for p in &c.postings {
                if !assets.contains(&&p.asset) {
                    assets.push(&p.asset);
                }
            }
        }
    }
    assets
}

/// Brings `book`'s chain up to its last seq under the lock `conn` holds:
/// hashes the events after `head.chain_seq` (read in this transaction) and
/// sets their `hash`; `head` then names the hash of its last seq. The
/// counter row's chain columns move with the commit's `Advance` (or with
/// [`upgrade`]). Nothing to do for a book whose chain is current.
pub async fn catch_up<B: SqlBackend>(
    store: &B,
    conn: &mut Conn<B>,
    book: &BookName,
    head: &mut Head,
) -> Result<(), StoreError> {
    if head.chain_seq >= head.last_seq {
        return Ok(());
    }
    tracing::info!(
        %book,
        from = head.chain_seq,
        to = head.last_seq,
        "computing the hash chain of events written before it existed"
    );
    let mut scales: HashMap<AssetCode, Scale> = HashMap::new();
    while head.chain_seq < head.last_seq {
        let events = read::events::<B>(conn, book, head.chain_seq, CATCH_UP_PAGE).await?;
        let events: Vec<Event> = events
            .into_iter()
            .take_while(|e| e.seq <= head.last_seq)
            .collect();
        let Some(last) = events.last() else {
            return Err(StoreError::Other(format!(
                "book {book}: events {}..={} are missing",
                head.chain_seq + 1,
                head.last_seq
            )));
        };
        let last_seq = last.seq;
        let missing: Vec<&AssetCode> = assets_of(&events)
            .into_iter()
            .filter(|a| !scales.contains_key(*a))
            .collect();
        if !missing.is_empty() {
            scales.extend(store.scale_cache().get(store, &missing).await?);
        }
        let hashes = hash_all(book, head.chain, &events, &scales)?;
        for (event, hash) in events.iter().zip(&hashes) {
            if event.seq != head.chain_seq + 1 {
                return Err(StoreError::Other(format!(
                    "book {book}: event {} is missing",
                    head.chain_seq + 1
                )));
            }
            let params = [
                Param::Text(Some(book.as_str())),
                Param::Int(new_seq_param(event.seq)?),
                Param::Bytes(hash),
            ];
            B::fetch(conn, SET_EVENT_HASH, &params)
                .await
                .map_err(store_error::<B>)?;
            head.chain_seq = event.seq;
            head.chain = *hash;
        }
        debug_assert_eq!(head.chain_seq, last_seq);
    }
    Ok(())
}

/// Records a caught-up chain on the counter row (when no commit follows).
pub(crate) const SET_BOOK_CHAIN: &str =
    "UPDATE books SET chain_seq = $2, chain_hash = $3 WHERE book = $1";

/// The statement of [`upgrade`].
pub(crate) const BEHIND: &str = "SELECT book FROM books WHERE chain_seq < last_seq ORDER BY book";

/// Computes the chain of every book written before it existed, each under
/// its lock; returns how many books it caught up. Safe to run at any time,
/// on any number of instances: a book is caught up once, by whichever
/// writer locks it first.
pub async fn upgrade<B: SqlBackend>(store: &B) -> Result<usize, StoreError> {
    let rows = {
        let mut conn = store.reader().await?;
        crate::decode::fetch::<B>(&mut conn, BEHIND, &[]).await?
    };
    let mut books = Vec::with_capacity(rows.len());
    for row in &rows {
        books.push(crate::decode::book::<B>(row, "book")?);
    }
    let mut done = 0;
    for book in &books {
        let (mut tx, mut heads) = store.begin_locked(&[book.as_str()]).await?;
        let Some(head) = heads.get_mut(book.as_str()) else {
            continue;
        };
        if head.chain_seq >= head.last_seq {
            tx.rollback().await.map_err(store_error::<B>)?;
            continue;
        }
        catch_up(store, &mut tx, book, head).await?;
        let params = [
            Param::Text(Some(book.as_str())),
            Param::Int(new_seq_param(head.chain_seq)?),
            Param::Bytes(&head.chain),
        ];
        B::fetch(&mut tx, SET_BOOK_CHAIN, &params)
            .await
            .map_err(store_error::<B>)?;
        tx.commit().await.map_err(store_error::<B>)?;
        done += 1;
    }
    Ok(done)
}

/// The statement of [`event_hashes`].
pub(crate) const EVENT_HASHES: &str = "SELECT seq, hash FROM events WHERE book = $1 AND seq > $2 \
                   ORDER BY seq LIMIT $3";

/// The chain hashes of `book`'s events after `after_seq`; see
/// `Store::event_hashes`.
pub async fn event_hashes<B: SqlBackend>(
    store: &B,
    book: &BookName,
    after_seq: u64,
    limit: u32,
) -> Result<Vec<Option<Hash>>, StoreError> {
    let mut conn = store.reader().await?;
    let params = [
        Param::Text(Some(book.as_str())),
        Param::Int(talea_store::stored::seq_param(after_seq)),
        Param::Int(i64::from(limit)),
    ];
    let rows = crate::decode::fetch::<B>(&mut conn, EVENT_HASHES, &params).await?;
    let mut expected = after_seq;
    let mut hashes = Vec::with_capacity(rows.len());
    for row in &rows {
        expected += 1;
        let seq = crate::decode::seq::<B>(row, "seq")?;
        if seq != expected {
            return Err(crate::error::corrupt(format!(
                "book {book}: event {expected} is missing"
            )));
        }
        hashes.push(crate::decode::opt_hash::<B>(row, "hash")?);
    }
    Ok(hashes)
}

/// The statement of [`save_checkpoint`].
pub(crate) const SAVE_CHECKPOINT: &str = "INSERT INTO checkpoints \
                     (book, tree_size, root_hash, taken_at, key_id, signature) \
                   VALUES ($1, $2, $3, $4, $5, $6) \
                   ON CONFLICT (book, tree_size) DO NOTHING RETURNING tree_size";

/// Keeps `checkpoint` unless one of its size is kept; see
/// `Store::save_checkpoint`.
pub async fn save_checkpoint<B: SqlBackend>(
    store: &B,
    checkpoint: &Checkpoint,
) -> Result<bool, StoreError> {
    let mut conn = store.writer().await?;
    let params = [
        Param::Text(Some(checkpoint.book.as_str())),
        Param::Int(new_seq_param(checkpoint.tree_size)?),
        Param::Bytes(&checkpoint.root_hash),
        Param::Time(checkpoint.timestamp),
        Param::Text(Some(&checkpoint.key_id)),
        Param::Bytes(&checkpoint.signature),
    ];
    let rows = crate::decode::fetch::<B>(&mut conn, SAVE_CHECKPOINT, &params).await?;
    Ok(!rows.is_empty())
}

/// The statement of [`latest_checkpoint`].
pub(crate) const LATEST_CHECKPOINT: &str = "SELECT tree_size, root_hash, taken_at, key_id, signature FROM checkpoints \
                   WHERE book = $1 ORDER BY tree_size DESC LIMIT 1";

/// The kept checkpoint of `book` with the largest tree size.
pub async fn latest_checkpoint<B: SqlBackend>(
    store: &B,
    book: &BookName,
) -> Result<Option<Checkpoint>, StoreError> {
    let mut conn = store.reader().await?;
    let rows = crate::decode::fetch::<B>(
        &mut conn,
        LATEST_CHECKPOINT,
        &[Param::Text(Some(book.as_str()))],
    )
    .await?;
    let Some(row) = rows.first() else {
        return Ok(None);
    };
    let signature = crate::decode::bytes::<B>(row, "signature")?;
    Ok(Some(Checkpoint {
        book: book.clone(),
        tree_size: crate::decode::seq::<B>(row, "tree_size")?,
        root_hash: crate::decode::opt_hash::<B>(row, "root_hash")?
            .ok_or_else(|| crate::error::corrupt("a checkpoint has no root"))?,
        timestamp: crate::decode::time::<B>(row, "taken_at")?,
        key_id: crate::decode::text::<B>(row, "key_id")?,
        signature: <[u8; 64]>::try_from(signature.as_slice())
            .map_err(|_| crate::error::corrupt("a checkpoint's signature is not 64 bytes"))?,
    }))
}
