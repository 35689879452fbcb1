//! The verifiable log's server side (`docs/proofs.md`): the signing key,
//! each book's Merkle tree over its chain, signed checkpoints and the
//! inclusion and consistency proofs served from them.
//!
//! The tree of a book is built from its chain hashes
//! (`Store::event_hashes`), the same on every store, and kept in memory
//! (two hashes a leaf, 64 bytes an event) once a proof or a checkpoint of
//! the book is asked for; it grows by the events appended since, so a proof
//! costs O(log n) node reads and hashes (`talea_verify::merkle`). A
//! checkpoint signs the root of the whole log at one size and is kept by
//! the store ([`talea_store::Store::save_checkpoint`]); the checkpointer
//! ([`LedgerService::spawn_checkpointer`]) takes them every
//! `TALEA_CHECKPOINT_EVERY` events or seconds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use talea_api::{ApiError, format_timestamp};
use talea_core::BookName;
use talea_store::Store;
use talea_verify::checkpoint::{Checkpoint as SignedHead, KeyList, PublicKey, SigningKey};
use talea_verify::files::{ConsistencyProof, InclusionProof};
use talea_verify::hash::to_hex;
use talea_verify::merkle::{self, MemoryLog};

use crate::LedgerService;
use crate::convert::store_error;

/// Chain hashes read per page while a tree catches up with its book.
const TREE_PAGE: u32 = 10_000;

/// The key that signs checkpoints, and the public keys a verifier may meet
/// (this one first, then retired ones, so that old checkpoints still
/// verify after a rotation).
#[derive(Debug)]
pub struct Notary {
    key: SigningKey,
    keys: KeyList,
}

impl Notary {
    /// Signs with `key`; `retired` are served beside it.
    pub fn new(key: SigningKey, retired: Vec<PublicKey>) -> Self {
        let mut keys = vec![key.public_key()];
        keys.extend(retired.into_iter().filter(|k| k.key_id != key.key_id()));
        Self {
            key,
            keys: KeyList { keys },
        }
    }

    /// A key of this process only, for a ledger built without one (tests,
    /// embedding): its checkpoints verify against `GET /v1/keys` for as long
    /// as the process runs. `talead` always configures a kept key.
    pub fn ephemeral() -> Self {
        let mut seed = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
        Self::new(SigningKey::generate(seed), Vec::new())
    }

    /// The id of the signing key.
    pub fn key_id(&self) -> String {
        self.key.key_id()
    }

    /// The signing key (liability snapshots are signed with it too).
    pub(crate) fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

/// When the checkpointer signs a book: after so many events, or so long
/// after its last checkpoint (if anything was appended since).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointEvery {
    /// Once a book has this many events beyond its last checkpoint.
    Events(u64),
    /// Once this long has passed since a book's last checkpoint.
    Interval(Duration),
}

/// Default of `TALEA_CHECKPOINT_EVERY`.
pub const CHECKPOINT_EVERY_DEFAULT: &str = "10s";

/// Largest `TALEA_CHECKPOINT_EVERY` in seconds (a day).
pub const CHECKPOINT_EVERY_S_MAX: u64 = 86_400;

impl std::str::FromStr for CheckpointEvery {
    type Err = String;

    /// `N` events (1..=10^9) or `Ns` seconds (1..=86,400).
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "TALEA_CHECKPOINT_EVERY must be a number of events (1 to 1000000000) or of \
                 seconds with an `s` (1s to {CHECKPOINT_EVERY_S_MAX}s), got {text:?}"
            )
        };
        let text = text.trim();
        match text.strip_suffix('s') {
            Some(seconds) => match seconds.parse::<u64>() {
                Ok(s) if (1..=CHECKPOINT_EVERY_S_MAX).contains(&s) => {
                    Ok(Self::Interval(Duration::from_secs(s)))
                }
                _ => Err(bad()),
            },
            None => match text.parse::<u64>() {
                Ok(n) if (1..=1_000_000_000).contains(&n) => Ok(Self::Events(n)),
                _ => Err(bad()),
            },
        }
    }
}

/// The books' trees, built on demand.
#[derive(Debug, Default)]
pub(crate) struct Trees {
    books: Mutex<HashMap<BookName, Arc<tokio::sync::Mutex<MemoryLog>>>>,
}

impl Trees {
    fn of(&self, book: &BookName) -> Arc<tokio::sync::Mutex<MemoryLog>> {
        let mut books = self.books.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(books.entry(book.clone()).or_default())
    }
}

/// Grows `tree` to at least `size` leaves from the store's chain hashes.
async fn grow(
    store: &dyn Store,
    book: &BookName,
    tree: &mut MemoryLog,
    size: u64,
) -> Result<(), ApiError> {
    while tree.len() < size {
        let hashes = store
            .event_hashes(book, tree.len(), TREE_PAGE)
            .await
            .map_err(|e| store_error(&e))?;
        if hashes.is_empty() {
            return Err(internal(format!(
                "book {book}: events up to {size} are not readable"
            )));
        }
        for hash in hashes {
            let Some(hash) = hash else {
                return Err(ApiError::unavailable(format!(
                    "book {book}: event {} is not chained yet (talead computes the chain of \
                     older events when it starts)",
                    tree.len() + 1
                )));
            };
            tree.append_data(&hash);
        }
    }
    Ok(())
}

/// A proof error that can only mean a bug: the sizes were checked.
fn prove_error(e: impl std::fmt::Display) -> ApiError {
    internal(format!("cannot prove: {e}"))
}

/// A 500, its cause logged (the client sees the catalogue's message only).
fn internal(message: String) -> ApiError {
    tracing::error!(%message, "proofs");
    ApiError::Internal
}

impl LedgerService {
    /// The public keys that sign checkpoints (`GET /v1/keys`).
    pub(crate) fn key_list(&self) -> KeyList {
        self.inner.notary.keys.clone()
    }

    /// The book's last seq, `not_found` for a book without events.
    async fn last_seq_of(&self, book: &BookName) -> Result<u64, ApiError> {
        self.inner
            .store
            .last_seq(book)
            .await
            .map_err(|e| store_error(&e))?
            .ok_or_else(|| ApiError::not_found("book not found"))
    }

    /// Signs and keeps the checkpoint of `book` at `size` events (the kept
    /// one, if one of that size was kept first).
    async fn take_checkpoint(&self, book: &BookName, size: u64) -> Result<SignedHead, ApiError> {
        let tree = self.inner.trees.of(book);
        let mut tree = tree.lock().await;
        grow(self.inner.store.as_ref(), book, &mut tree, size).await?;
        let root = merkle::root(&*tree, size).map_err(prove_error)?;
        drop(tree);
        let now = crate::api::now();
        let signed = self
            .inner
            .notary
            .key
            .sign(book.as_str(), size, &root, &format_timestamp(now))
            .map_err(prove_error)?;
        let kept = talea_store::Checkpoint {
            book: book.clone(),
            tree_size: size,
            root_hash: root,
            timestamp: now,
            key_id: signed.key_id.clone(),
            signature: signature_bytes(&signed)?,
        };
        let store = &self.inner.store;
        if store
            .save_checkpoint(&kept)
            .await
            .map_err(|e| store_error(&e))?
        {
            tracing::debug!(%book, tree_size = size, "checkpoint signed");
            return Ok(signed);
        }
        // Another instance kept one of this size first: serve that one.
        match store
            .latest_checkpoint(book)
            .await
            .map_err(|e| store_error(&e))?
        {
            Some(latest) => Ok(head_of(&latest)),
            None => Ok(signed),
        }
    }

    /// The latest kept checkpoint of `book`; one is taken now if the book
    /// has none yet.
    pub(crate) async fn latest_checkpoint(&self, book: &BookName) -> Result<SignedHead, ApiError> {
        let last_seq = self.last_seq_of(book).await?;
        match self
            .inner
            .store
            .latest_checkpoint(book)
            .await
            .map_err(|e| store_error(&e))?
        {
            Some(kept) => Ok(head_of(&kept)),
            None => self.take_checkpoint(book, last_seq).await,
        }
    }

    /// The audit path of event `seq` in the tree of `tree_size` events (the
    /// latest checkpoint's size when not given).
    pub(crate) async fn prove_inclusion(
        &self,
        book: &BookName,
        seq: u64,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, ApiError> {
        let last_seq = self.last_seq_of(book).await?;
        let tree_size = match tree_size {
            Some(size) => size,
            None => self.latest_checkpoint(book).await?.tree_size,
        };
        if tree_size == 0 || tree_size > last_seq {
            return Err(ApiError::invalid(
                "tree_size",
                format!("must be 1 to the book's last seq, {last_seq}"),
            ));
        }
        if seq == 0 || seq > tree_size {
            return Err(ApiError::invalid(
                "seq",
                format!("must be 1 to tree_size, {tree_size}"),
            ));
        }
        let tree = self.inner.trees.of(book);
        let mut tree = tree.lock().await;
        grow(self.inner.store.as_ref(), book, &mut tree, tree_size).await?;
        let path = merkle::inclusion_proof(&*tree, seq - 1, tree_size).map_err(prove_error)?;
        let leaf = merkle::Nodes::node(&*tree, 0, seq - 1).map_err(prove_error)?;
        Ok(InclusionProof {
            book: book.to_string(),
            seq,
            tree_size,
            leaf_hash: to_hex(&leaf),
            audit_path: path.iter().map(|h| to_hex(h)).collect(),
        })
    }

    /// The consistency proof between the trees of `from` and `to` events,
    /// with both roots.
    pub(crate) async fn prove_consistency(
        &self,
        book: &BookName,
        from: u64,
        to: u64,
    ) -> Result<ConsistencyProof, ApiError> {
        let last_seq = self.last_seq_of(book).await?;
        if to == 0 || to > last_seq {
            return Err(ApiError::invalid(
                "to",
                format!("must be 1 to the book's last seq, {last_seq}"),
            ));
        }
        if from == 0 || from > to {
            return Err(ApiError::invalid(
                "from",
                format!("must be 1 to `to`, {to}"),
            ));
        }
        let tree = self.inner.trees.of(book);
        let mut tree = tree.lock().await;
        grow(self.inner.store.as_ref(), book, &mut tree, to).await?;
        let proof = merkle::consistency_proof(&*tree, from, to).map_err(prove_error)?;
        let first = merkle::root(&*tree, from).map_err(prove_error)?;
        let second = merkle::root(&*tree, to).map_err(prove_error)?;
        Ok(ConsistencyProof {
            book: book.to_string(),
            from,
            to,
            first_root: Some(to_hex(&first)),
            second_root: Some(to_hex(&second)),
            proof: proof.iter().map(|h| to_hex(h)).collect(),
        })
    }

    /// Starts the checkpointer: every second (or every interval, when
    /// shorter) it signs each book that is due by `every` and keeps the
    /// checkpoint. Safe on every instance at once: the store keeps the first
    /// checkpoint of a size. The task ends with the runtime.
    pub fn spawn_checkpointer(&self, every: CheckpointEvery) -> tokio::task::JoinHandle<()> {
        let ledger = self.clone();
        let poll = match every {
            CheckpointEvery::Interval(interval) => interval.min(Duration::from_secs(1)),
            CheckpointEvery::Events(_) => Duration::from_secs(1),
        };
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                ledger.checkpoint_due(every).await;
            }
        })
    }

    /// One round of the checkpointer.
    async fn checkpoint_due(&self, every: CheckpointEvery) {
        let books = match self.inner.store.books().await {
            Ok(books) => books,
            Err(e) => {
                tracing::warn!(error = %e, "checkpointer: cannot list books");
                return;
            }
        };
        let now = crate::api::now();
        for info in books {
            let kept = match self.inner.store.latest_checkpoint(&info.book).await {
                Ok(kept) => kept,
                Err(e) => {
                    tracing::warn!(book = %info.book, error = %e, "checkpointer: cannot read");
                    continue;
                }
            };
            let (size, at) = kept.map_or((0, None), |k| (k.tree_size, Some(k.timestamp)));
            if info.last_seq <= size {
                continue;
            }
            let due = match every {
                CheckpointEvery::Events(n) => info.last_seq - size >= n,
                CheckpointEvery::Interval(interval) => at.is_none_or(|at| {
                    now.micros().saturating_sub(at.micros())
                        >= i64::try_from(interval.as_micros()).unwrap_or(i64::MAX)
                }),
            };
            if !due {
                continue;
            }
            if let Err(e) = self.take_checkpoint(&info.book, info.last_seq).await {
                tracing::warn!(book = %info.book, error = %e, "checkpointer: cannot sign");
            }
        }
    }
}

/// A kept checkpoint as served.
fn head_of(kept: &talea_store::Checkpoint) -> SignedHead {
    SignedHead {
        book: kept.book.to_string(),
        tree_size: kept.tree_size,
        root_hash: to_hex(&kept.root_hash),
        timestamp: format_timestamp(kept.timestamp),
        key_id: kept.key_id.clone(),
        signature: to_hex(&kept.signature),
    }
}

fn signature_bytes(signed: &SignedHead) -> Result<[u8; 64], ApiError> {
    talea_verify::hash::parse_hex::<64>(&signed.signature).map_err(prove_error)
}
