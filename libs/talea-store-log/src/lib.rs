//! The append-log store: an embedded backend of `talea_store::Store` with its own file format.
//!
//! A store is a directory holding one append-only log file (format in
//! `FORMAT.md`) and a lock file. Every write (asset, account open,
//! transaction) is a checksummed record; records are written in frames, one
//! `pwrite` and one `fdatasync` per frame, and no write is acknowledged
//! before its frame is durable. One writer thread decides every write in
//! order (group commit: requests that queue while a frame syncs share the
//! next one; see `writer`), using the same planner as the other backends
//! (`talea_store::plan`), so the stores agree on every rule.
//!
//! Indexes live in memory and are rebuilt from the log when the store opens,
//! verifying every checksum on the way; event payloads stay on disk and are
//! read by offset (the last `tail_cache_bytes_max` of the log are also kept
//! in memory). A torn tail (an unacknowledged frame cut short by a crash) is
//! cut off; damage anywhere else makes `open` fail with
//! `StoreError::Corrupt`. A directory lock (`flock`) keeps a second
//! process, or a second `LogStore` in this one, out.
//!
//! # Costs, measured (`talea-store-log-load --reopen`, release build)
//!
//! On this project's 2-core machine (ext4 on virtio; `fdatasync` after an
//! appending 8 KiB write: 0.13 ms at p50 on a quiet disk, 0.2 to 4 ms while
//! other builds and databases share it):
//!
//! - **Memory**: 103 bytes of index per event (1.54 million two-leg
//!   transactions: resident memory after reopening grew by 103 bytes per
//!   event, matching `LogStats::index_bytes`), so about 100 to 140 MB per
//!   million events depending on where the hash tables are in their growth.
//!   Per event: an 8-byte offset, a 24-byte balance-history entry per
//!   touched (account, asset) pair, and two 16-byte fingerprint-map entries
//!   plus table slack (idempotency key and transaction id). Payloads stay on
//!   disk; accounts and current balances cost per account, not per event.
//! - **Disk**: 156 bytes per two-leg transaction with short names.
//! - **Start-up**: every record is read, checked and replayed: 1.2 to
//!   1.4 s per million events.
//! - **Throughput**: one book, one writer, 64 drafts per `commit_batch`, one
//!   batch in flight: 101,000 transactions/s with a quiet disk (batch
//!   latency 0.54 ms at p50, of which 0.13 ms is the `fdatasync`), falling
//!   to 23,000/s when `fdatasync` takes 4 ms. Batches in flight at once
//!   (several books, or several writers of one book) share each frame's
//!   `fdatasync`: four writers of one book reach 46,000 to 51,000/s even
//!   with 4 ms syncs.
//!
//! Reads run on the caller's thread: index lookups, then short `pread`s of
//! records that the page cache (or the tail cache) usually holds.
//!
//! # Holds
//!
//! A hold (`Intent::Hold`) is a transaction record with status `pending`
//! (record kind 4); a settle or a void is one that names it, and an expiry
//! is a `hold_expired` record (kind 5) that `expire_holds` appends under the
//! writer's ordering, so each hold ends exactly once. The indexes keep, per
//! book, every hold's place and status (about 120 bytes each), the legs of
//! the pending ones, their expiries in order (for `due_holds`), and per
//! (account, asset) what the pending holds reserve. A hold past its
//! `expires_at` reserves nothing from that instant on, before its expiry
//! record too: the writer and the readers take the due holds' legs off.
//! Balances `as_of` an instant scan the book's holds committed by then and
//! read the records of those that ended since (in memory: the pending ones).
//!
//! Measured with `talea-store-log-load --holds` (each round a batch of 64
//! holds, then a batch settling each whole; release build, on the 2-core
//! machine while other builds ran): 164 bytes of log and about 170 bytes of
//! index per event (an ended hold keeps its ~120-byte entry), and each
//! batch took about as long as a batch of plain posts on the same machine
//! (p50 6.5 ms per hold-then-settle round, 3.5 ms per plain batch).

//! # Hash chain
//!
//! Every event carries its chain hash (`docs/proofs.md`): the writer
//! computes it (one `event_hash` per event, in the writer thread) and
//! writes it as a `chain` record right after the event's record, in the
//! same frame (`FORMAT.md`, kind 6). Replay keeps the stored hashes in
//! memory (32 bytes per event) and reads serve them; it does not recompute
//! them, so a log whose data was changed along with its checksums opens,
//! and [`LogStore::audit_chains`] reports the first seq per book where the
//! stored hash is not the recomputed one. A log written before the chain
//! has its books' chains computed and appended when it is opened
//! ([`LogStats::chain_caught_up_at_open`]). Each event's `chain` record
//! takes about 45 bytes plus its book's name on disk.
//!
//! Measured (`talea-store-log-load`, release build, one book, one writer,
//! 64 drafts per batch, the build before the chain and this one run back
//! to back on the 2-core machine): 156 → 206 bytes of log per event, and
//! 105,000 → 40,000 transactions/s (batch latency p50 0.53 → 1.5 ms) on a
//! quiet disk. The difference is `talea_api::event::event_hash`, about
//! 15 µs per event (building the event's JSON, canonicalizing it, then
//! SHA-256), run in the writer thread before each frame's `fdatasync`.
//! Reopening takes about 1.6 s per million events; `audit_chains` about
//! 17 µs per event.

#[cfg(not(unix))]
compile_error!("talea-store-log needs a Unix system (pread, pwrite, flock)");

mod checkpoints;
mod codec;
mod file;
#[doc(hidden)]
pub mod fuzzing;
mod index;
mod liabilities;
mod read;
mod search;
mod sidecar;
mod state;
#[doc(hidden)]
pub mod testing;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use talea_core::{
    Account, AccountName, Asset, AssetCode, BookName, Commit, Draft, Event, NewAccount, Timestamp,
    TxId,
};
use talea_store::{
    AccountPosting, Backend, Balance, BalanceCut, BookBatch, BookInfo, DueHold, Expiry, Notice,
    NoticeBus, Opened, Outcome, PrefixBalances, Registered, Store, StoreError, TrialRow, TxFilter,
    TxSearchPage,
};
use tokio::sync::{mpsc, oneshot};

pub use crate::codec::{FORMAT_VERSION, FRAME_BYTES_MAX, RECORD_BYTES_MAX};
use crate::file::{DirLock, LogFile};
pub use crate::file::{LOCK_FILE, LOG_FILE};
use crate::writer::{Request, Shared, Writer};

/// The URL scheme `connect` accepts: `log://DIR` (`log:///abs/dir` or `log://rel/dir`).
pub const URL_SCHEME: &str = "log://";

/// Limits of a log store, with their defaults.
#[derive(Debug, Clone)]
pub struct LogConfig {
    /// A frame stops taking more requests once its records reach this many
    /// bytes (default 1 MiB, at most half of [`FRAME_BYTES_MAX`]); a single
    /// request is never split, so a batch's records must fit in what the
    /// frame limit leaves.
    pub frame_bytes_target: usize,
    /// Most requests (batches, account opens, asset registrations) decided
    /// into one frame (default 1024).
    pub frame_requests_max: usize,
    /// Write requests that may wait for the writer before senders wait too
    /// (default 1024).
    pub write_queue_requests_max: usize,
    /// Bytes of the most recent frames kept in memory for reads (default 8 MiB).
    pub tail_cache_bytes_max: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            frame_bytes_target: 1 << 20,
            frame_requests_max: 1024,
            write_queue_requests_max: 1024,
            tail_cache_bytes_max: 8 << 20,
        }
    }
}

/// Figures about an open store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogStats {
    /// Events (account opens, transactions and hold expiries) across books.
    pub events: u64,
    /// Bytes of the log file that are durable and indexed.
    pub log_bytes: u64,
    /// Estimated heap bytes of the in-memory indexes.
    pub index_bytes: usize,
    /// Bytes of a torn tail cut off when the store was opened.
    pub truncated_bytes_at_open: u64,
    /// How long opening (recovery included) took.
    pub open_duration: Duration,
    /// Events whose chain hash was computed and stored when the store was
    /// opened: those of a log written before the hash chain existed (0 for
    /// a current log).
    pub chain_caught_up_at_open: u64,
    /// Frames written (each one `pwrite` and one `fdatasync`) since opening.
    pub frames: u64,
    /// Write requests (batches, account opens, asset registrations)
    /// answered by the writer since opening; over `frames`, how many
    /// requests share an fsync.
    pub requests: u64,
}

/// The first event of a book whose stored chain hash is not the one its
/// data hashes to (see [`LogStore::audit_chains`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainBreak {
    /// The book.
    pub book: BookName,
    /// The event's seq.
    pub seq: u64,
    /// The hash stored for it (`None`: none stored).
    pub stored: Option<[u8; 32]>,
    /// The hash recomputed from the previous event's stored hash and the
    /// event as served.
    pub recomputed: [u8; 32],
}

/// The append-log store. Cheap to clone: clones share the writer and the indexes.
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    checkpoints: checkpoints::Checkpoints,
    liabilities: liabilities::Liabilities,
    requests: Option<mpsc::Sender<Request>>,
    writer: Option<JoinHandle<()>>,
    truncated_bytes: u64,
    open_duration: Duration,
    chain_caught_up: u64,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer once it has answered what is
        // queued; waiting for it means the directory lock is released (and
        // the store can be reopened) as soon as this returns.
        self.requests.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl std::fmt::Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogStore")
            .field("dir", &self.inner.shared.dir)
            .finish_non_exhaustive()
    }
}

impl LogStore {
    /// Opens the store in `dir` (created if missing) with default limits.
    /// See [`LogStore::open_with`].
    pub fn open(dir: &Path) -> Result<LogStore, StoreError> {
        Self::open_with(dir, LogConfig::default())
    }

    /// Opens the store in `dir`: takes the directory lock (failing at once
    /// if another process or store holds it), replays the log into the
    /// indexes verifying every checksum, cuts a torn tail, and starts the
    /// writer thread. Blocks for the replay (about 1.5 s per million events).
    pub fn open_with(dir: &Path, config: LogConfig) -> Result<LogStore, StoreError> {
        let started = Instant::now();
        std::fs::create_dir_all(dir)
            .map_err(|e| file::io_error(dir, "cannot create the store directory", e))?;
        let lock = DirLock::acquire(dir)?;
        let (file, recovered) = LogFile::open(dir, config.tail_cache_bytes_max)?;
        let checkpoints = checkpoints::Checkpoints::open(dir)?;
        let liabilities = liabilities::Liabilities::open(dir)?;
        let shared = Arc::new(Shared {
            dir: dir.to_path_buf(),
            file,
            state: RwLock::new(recovered.state),
            bus: NoticeBus::new(),
            failure: OnceLock::new(),
            frames: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        });
        let (requests, receiver) = mpsc::channel(config.write_queue_requests_max.max(1));
        let writer = Writer::new(Arc::clone(&shared), config, lock);
        // A log written before the hash chain existed gets its chain now,
        // before any write can extend it.
        let chain_caught_up = writer.catch_up()?;
        let handle = std::thread::Builder::new()
            .name("talea-log-writer".to_owned())
            .spawn(move || writer.run(receiver))
            .map_err(|e| StoreError::Other(format!("cannot start the log writer thread: {e}")))?;
        let open_duration = started.elapsed();
        tracing::info!(
            dir = %dir.display(),
            events = shared.state().event_count(),
            duration_ms = open_duration.as_millis() as u64,
            truncated_bytes = recovered.truncated_bytes,
            chain_caught_up,
            "log store opened"
        );
        Ok(LogStore {
            inner: Arc::new(Inner {
                shared,
                checkpoints,
                liabilities,
                requests: Some(requests),
                writer: Some(handle),
                truncated_bytes: recovered.truncated_bytes,
                open_duration,
                chain_caught_up,
            }),
        })
    }

    /// Opens the store named by a `log://DIR` URL, off the async runtime's
    /// threads (recovery reads the whole log).
    pub async fn connect(url: &str) -> Result<LogStore, StoreError> {
        let dir = Self::dir_of_url(url)?;
        tokio::task::spawn_blocking(move || Self::open(&dir))
            .await
            .map_err(|e| StoreError::Other(format!("opening the log store failed: {e}")))?
    }

    /// The directory a `log://DIR` URL names.
    pub fn dir_of_url(url: &str) -> Result<PathBuf, StoreError> {
        match url.strip_prefix(URL_SCHEME) {
            Some(dir) if !dir.is_empty() => Ok(PathBuf::from(dir)),
            _ => Err(StoreError::Other(format!(
                "not a log store URL: {url:?} (expected {URL_SCHEME}DIR)"
            ))),
        }
    }

    /// The store directory.
    pub fn dir(&self) -> &Path {
        &self.inner.shared.dir
    }

    /// Figures about the store.
    pub fn stats(&self) -> LogStats {
        let state = self.inner.shared.state();
        LogStats {
            events: state.event_count(),
            log_bytes: state.end,
            index_bytes: state.heap_bytes(),
            truncated_bytes_at_open: self.inner.truncated_bytes,
            open_duration: self.inner.open_duration,
            chain_caught_up_at_open: self.inner.chain_caught_up,
            frames: self.inner.shared.frames.load(Ordering::Relaxed),
            requests: self.inner.shared.requests.load(Ordering::Relaxed),
        }
    }

    /// Re-reads the durable log and checks every frame and record checksum
    /// and every record's encoding; returns the number of records. Runs on
    /// the calling thread and reads the whole file.
    pub fn verify(&self) -> Result<u64, StoreError> {
        let end = self.inner.shared.state().end;
        self.inner.shared.file.verify(end)
    }

    /// Audits every book's hash chain (`docs/proofs.md`): recomputes each
    /// event's chain hash from the hash stored for the event before it and
    /// the event as it is served, and compares it with the hash stored for
    /// the event. Returns, per book, the first event where they differ (a
    /// record changed after it was written, its checksum fixed up, shows
    /// here and nowhere else); empty when every chain holds. Runs on the
    /// calling thread and reads every event.
    pub fn audit_chains(&self) -> Result<Vec<ChainBreak>, StoreError> {
        let shared = &self.inner.shared;
        let (books, scales) = {
            let state = shared.state();
            let books: Vec<BookName> = state.books().map(|(name, _)| name.clone()).collect();
            let scales: std::collections::HashMap<AssetCode, talea_core::Scale> =
                state.assets().map(|a| (a.code.clone(), a.scale)).collect();
            (books, scales)
        };
        let mut breaks = Vec::new();
        for book in books {
            let mut prev = talea_verify::chain::GENESIS;
            let mut after = 0;
            'book: loop {
                let events = read::events(shared, &book, after, 1_000)?;
                let Some(last) = events.last() else {
                    break;
                };
                after = last.seq;
                for event in events {
                    let recomputed =
                        talea_api::event::event_hash(&prev, book.as_str(), &event, &scales)
                            .map_err(|e| StoreError::Other(e.to_string()))?;
                    if event.hash != Some(recomputed) {
                        breaks.push(ChainBreak {
                            book: book.clone(),
                            seq: event.seq,
                            stored: event.hash,
                            recomputed,
                        });
                        break 'book;
                    }
                    prev = recomputed;
                }
            }
        }
        Ok(breaks)
    }

    /// Sends a request to the writer and waits for its answer.
    async fn call<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        self.inner.shared.check_writable()?;
        let stopped = || StoreError::Unavailable("the log store's writer has stopped".to_owned());
        let sender = self.inner.requests.as_ref().ok_or_else(stopped)?;
        let (reply, answer) = oneshot::channel();
        sender.send(request(reply)).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    /// Commits one book's batch through the writer.
    async fn commit_one(
        &self,
        book: &BookName,
        drafts: &[Draft],
    ) -> Result<Vec<Outcome>, StoreError> {
        if drafts.is_empty() {
            return Ok(Vec::new());
        }
        let (book, drafts) = (book.clone(), drafts.to_vec());
        self.call(|reply| Request::Commit(book, drafts, reply))
            .await
    }
}

#[async_trait]
impl Store for LogStore {
    fn backend(&self) -> Backend {
        Backend::Log
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.shared.check_writable()
    }

    async fn register_asset(&self, asset: &Asset) -> Result<Registered<Asset>, StoreError> {
        // Assets never change: one that is durable is the answer as it stands.
        if let Some(existing) = read::asset(&self.inner.shared, &asset.code) {
            return Ok(Registered::Existing(existing));
        }
        let asset = asset.clone();
        self.call(|reply| Request::RegisterAsset(asset, reply))
            .await
    }

    async fn asset(&self, code: &AssetCode) -> Result<Option<Asset>, StoreError> {
        Ok(read::asset(&self.inner.shared, code))
    }

    async fn assets(&self) -> Result<Vec<Asset>, StoreError> {
        Ok(read::assets(&self.inner.shared))
    }

    async fn open_account(
        &self,
        book: &BookName,
        account: &NewAccount,
    ) -> Result<Opened, StoreError> {
        // Accounts never change: re-opens (seeding, retries) skip the writer.
        if let Some(existing) = read::account(&self.inner.shared, book, &account.name) {
            return Ok(Opened::Existing(existing));
        }
        let (book, account) = (book.clone(), account.clone());
        self.call(|reply| Request::OpenAccount(book, account, reply))
            .await
    }

    async fn commit_books(
        &self,
        batches: &[BookBatch<'_>],
    ) -> Vec<Result<Vec<Outcome>, StoreError>> {
        if let Some(err) = talea_store::repeated_book(batches) {
            return vec![Err(err); batches.len()];
        }
        // Each book's batch is one request to the writer, which already
        // group-commits whatever is queued behind one fsync.
        let mut results = Vec::with_capacity(batches.len());
        for batch in batches {
            results.push(self.commit_one(batch.book, batch.drafts).await);
        }
        results
    }

    async fn books(&self) -> Result<Vec<BookInfo>, StoreError> {
        Ok(read::books(&self.inner.shared))
    }

    async fn last_seq(&self, book: &BookName) -> Result<Option<u64>, StoreError> {
        Ok(read::last_seq(&self.inner.shared, book))
    }

    async fn account(
        &self,
        book: &BookName,
        name: &AccountName,
    ) -> Result<Option<Account>, StoreError> {
        Ok(read::account(&self.inner.shared, book, name))
    }

    async fn accounts(
        &self,
        book: &BookName,
        after: Option<&AccountName>,
        limit: u32,
    ) -> Result<Vec<Account>, StoreError> {
        Ok(read::accounts(&self.inner.shared, book, after, limit))
    }

    async fn balances(
        &self,
        book: &BookName,
        account: &AccountName,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<Balance>, StoreError> {
        read::balances(&self.inner.shared, book, account, as_of)
    }

    async fn balance_cut(
        &self,
        book: &BookName,
        accounts: Option<&[AccountName]>,
        limit: u32,
    ) -> Result<Option<BalanceCut>, StoreError> {
        Ok(read::balance_cut(&self.inner.shared, book, accounts, limit))
    }

    async fn prefix_balances(
        &self,
        book: &BookName,
        prefix: Option<&AccountName>,
        asset: Option<&AssetCode>,
        after: Option<&AccountName>,
        limit: u32,
    ) -> Result<PrefixBalances, StoreError> {
        read::prefix_balances(&self.inner.shared, book, prefix, asset, after, limit)
    }

    async fn account_postings(
        &self,
        book: &BookName,
        account: &AccountName,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AccountPosting>, StoreError> {
        read::account_postings(&self.inner.shared, book, account, after_seq, limit)
    }

    async fn trial_balance(
        &self,
        book: &BookName,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<TrialRow>, StoreError> {
        read::trial_balance(&self.inner.shared, book, as_of)
    }

    async fn transactions(
        &self,
        book: &BookName,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Commit>, StoreError> {
        read::transactions(&self.inner.shared, book, after_seq, limit)
    }

    async fn search_transactions(
        &self,
        book: &BookName,
        filter: &TxFilter,
        after_seq: u64,
        limit: u32,
    ) -> Result<TxSearchPage, StoreError> {
        search::search_transactions(&self.inner.shared, book, filter, after_seq, limit)
    }

    async fn pending_holds(&self, book: &BookName, limit: u32) -> Result<Vec<Commit>, StoreError> {
        search::pending_holds(&self.inner.shared, book, limit)
    }

    async fn transaction(
        &self,
        tx_id: TxId,
        books: Option<&[&str]>,
    ) -> Result<Option<Commit>, StoreError> {
        // The lookup is in memory: filtering its answer costs nothing that
        // would tell an id in another book from an unknown one.
        Ok(read::transaction(&self.inner.shared, tx_id)?
            .filter(|commit| books.is_none_or(|books| books.contains(&commit.book.as_str()))))
    }

    async fn events(
        &self,
        book: &BookName,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        read::events(&self.inner.shared, book, after_seq, limit)
    }

    async fn event_hashes(
        &self,
        book: &BookName,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Option<[u8; 32]>>, StoreError> {
        Ok(read::event_hashes(
            &self.inner.shared,
            book,
            after_seq,
            limit,
        ))
    }

    async fn save_checkpoint(
        &self,
        checkpoint: &talea_store::Checkpoint,
    ) -> Result<bool, StoreError> {
        self.inner.checkpoints.save(checkpoint)
    }

    async fn latest_checkpoint(
        &self,
        book: &BookName,
    ) -> Result<Option<talea_store::Checkpoint>, StoreError> {
        Ok(self.inner.checkpoints.latest(book))
    }

    async fn save_liability_snapshot(
        &self,
        snapshot: &talea_store::LiabilitySnapshot,
    ) -> Result<(), StoreError> {
        self.inner.liabilities.save(snapshot)
    }

    async fn liability_snapshot(
        &self,
        book: &BookName,
        id: &str,
    ) -> Result<Option<talea_store::LiabilitySnapshot>, StoreError> {
        self.inner.liabilities.get(book, id)
    }

    async fn expire_holds(&self, book: &BookName) -> Result<Vec<Expiry>, StoreError> {
        let book = book.clone();
        self.call(|reply| Request::Expire(book, reply)).await
    }

    async fn due_holds(&self, until: Timestamp, limit: u32) -> Result<Vec<DueHold>, StoreError> {
        Ok(read::due_holds(&self.inner.shared, until, limit))
    }

    async fn watch(&self) -> Result<tokio::sync::broadcast::Receiver<Notice>, StoreError> {
        Ok(self.inner.shared.bus.receiver())
    }
}
