//! The writer thread: decides write requests in order, packs them into frames, and
//! acknowledges each only after its frame is durable.
//!
//! Group commit works like this. Callers (`commit_batch`, `open_account`,
//! `register_asset`) send requests over one bounded channel and wait. The
//! writer takes the first request, then every request already queued (up to
//! `frame_requests_max` or `frame_bytes_target`), whatever their books. It
//! decides each in arrival order against the durable indexes plus an
//! overlay of what the earlier requests of the same frame did, encodes the
//! records into one frame, checks the frame as recovery would, writes it
//! with one `pwrite`, makes it durable with one `fdatasync`, applies it to
//! the indexes (readers see it from then on), publishes one notice per book,
//! and only then answers. Requests that arrive during the `fdatasync` wait
//! in the channel and form the next frame, so the busier the store, the more
//! each `fdatasync` is shared.
//!
//! Because one thread decides everything, there is no lock order to get
//! wrong: seqs are dense, commit times monotonic and keys unique by
//! construction, and readers (who take the indexes' read lock) never see a
//! record before it is durable.
//!
//! Every event record is followed in its frame by a `chain` record holding
//! the event's chain hash (`docs/proofs.md`), computed here from the book's
//! chain head (in the overlay: the durable head, then the frame's earlier
//! events) and the event exactly as the read path rebuilds it: one
//! `event_hash` per event, in the writer thread. [`Writer::catch_up`] hashes
//! the events of a log written before the chain existed, once, at open.
//!
//! The holds side of deciding (ending due holds for `expire_holds`, the
//! held amounts a frame leaves, how a hold stands for a settle or void)
//! lives in `writer/holds.rs`.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, PoisonError, RwLock, RwLockReadGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use talea_api::event::AssetScales;
use talea_core::{
    Account, AccountName, Amount, Asset, AssetCode, BookName, Commit, Draft, Event, EventKind,
    IdempotencyKey, NewAccount, Scale, Side, Timestamp, TxId, TxStatus,
};
use talea_store::plan::{
    AccountRule, HoldState, Loaded, Pair, Planner, StoredKey, Totals, Verdict, outcomes,
};
use talea_store::{Expiry, Held, NoticeBus, Opened, Outcome, Registered, Rejection, StoreError};
use tokio::sync::{mpsc, oneshot};

use crate::LogConfig;
use crate::codec::{self, ChainRecord, FRAME_BYTES_MAX, FRAME_HEADER_BYTES, Record, TxRecord};
use crate::file::{DirLock, LogFile};
use crate::state::State;

mod holds;

use holds::{change_raw_held, due_holds, expire, hold_state, raw_held};

/// What the store shares between its handles, its readers and its writer.
#[derive(Debug)]
pub struct Shared {
    /// The store directory.
    pub dir: PathBuf,
    /// The log file.
    pub file: LogFile,
    /// The indexes; written only by the writer thread, after each fsync.
    pub state: RwLock<State>,
    /// Commit notices for `Store::watch`.
    pub bus: NoticeBus,
    /// Set once if a write failed: the store then refuses further writes
    /// until it is reopened (and recovery has read the file again).
    pub failure: OnceLock<String>,
    /// Frames made durable since the store opened.
    pub frames: AtomicU64,
    /// Write requests answered since the store opened.
    pub requests: AtomicU64,
}

impl Shared {
    /// The indexes, for reading.
    pub fn state(&self) -> RwLockReadGuard<'_, State> {
        // Only the writer takes the write lock, and `apply` leaves the state
        // whole when it fails, so a poisoned lock still guards valid indexes.
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// `Err` once a write has failed.
    pub fn check_writable(&self) -> Result<(), StoreError> {
        match self.failure.get() {
            None => Ok(()),
            Some(reason) => Err(StoreError::Unavailable(format!(
                "the log store in {} stopped writing after a failure ({reason}); \
                 reopen it to recover",
                self.dir.display()
            ))),
        }
    }
}

/// A reply channel.
type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

/// A write for the writer thread.
#[derive(Debug)]
pub enum Request {
    /// `Store::register_asset`.
    RegisterAsset(Asset, Reply<Registered<Asset>>),
    /// `Store::open_account`.
    OpenAccount(BookName, NewAccount, Reply<Opened>),
    /// `Store::commit_batch`.
    Commit(BookName, Vec<Draft>, Reply<Vec<Outcome>>),
    /// `Store::expire_holds`.
    Expire(BookName, Reply<Vec<Expiry>>),
}

impl Request {
    fn fail(self, error: StoreError) {
        // A caller that went away does not need the answer.
        match self {
            Request::RegisterAsset(_, reply) => drop(reply.send(Err(error))),
            Request::OpenAccount(_, _, reply) => drop(reply.send(Err(error))),
            Request::Commit(_, _, reply) => drop(reply.send(Err(error))),
            Request::Expire(_, reply) => drop(reply.send(Err(error))),
        }
    }
}

/// A decided request waiting for its frame to be durable.
enum Answer {
    Asset(
        Reply<Registered<Asset>>,
        Result<Registered<Asset>, StoreError>,
    ),
    Account(Reply<Opened>, Result<Opened, StoreError>),
    Commit(Reply<Vec<Outcome>>, Result<Vec<Outcome>, StoreError>),
    Expire(Reply<Vec<Expiry>>, Result<Vec<Expiry>, StoreError>),
}

impl Answer {
    fn send(self) {
        match self {
            Answer::Asset(reply, result) => drop(reply.send(result)),
            Answer::Account(reply, result) => drop(reply.send(result)),
            Answer::Commit(reply, result) => drop(reply.send(result)),
            Answer::Expire(reply, result) => drop(reply.send(result)),
        }
    }

    /// Sends `error` instead of a success (a failure stays as it was).
    fn fail(self, error: &StoreError) {
        match self {
            Answer::Asset(reply, result) => drop(reply.send(result.and(Err(copy(error))))),
            Answer::Account(reply, result) => drop(reply.send(result.and(Err(copy(error))))),
            Answer::Commit(reply, result) => drop(reply.send(result.and(Err(copy(error))))),
            Answer::Expire(reply, result) => drop(reply.send(result.and(Err(copy(error))))),
        }
    }
}

/// The same error again (`StoreError` is not `Clone`).
pub fn copy(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::NotMigrated(m) => StoreError::NotMigrated(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::Other(m) => StoreError::Other(m.clone()),
        other => StoreError::Other(other.to_string()),
    }
}

/// The records of a frame being built.
#[derive(Debug)]
struct Sink {
    /// A header placeholder, then the encoded records.
    buf: Vec<u8>,
    /// Each record, with its offset in `buf`.
    records: Vec<(Record, usize)>,
}

impl Sink {
    fn new() -> Self {
        Self {
            buf: vec![0; FRAME_HEADER_BYTES],
            records: Vec::new(),
        }
    }

    fn body_bytes(&self) -> usize {
        self.buf.len() - FRAME_HEADER_BYTES
    }

    /// Encodes and keeps `record`; returns its index among the frame's records.
    fn push(&mut self, record: Record) -> Result<usize, codec::Malformed> {
        let at = self.buf.len();
        codec::append_record(&mut self.buf, &record)?;
        self.records.push((record, at));
        Ok(self.records.len() - 1)
    }

    /// Drops every record pushed since `mark` (a `(buf, records)` length pair).
    fn rollback(&mut self, mark: (usize, usize)) {
        self.buf.truncate(mark.0);
        self.records.truncate(mark.1);
    }

    fn mark(&self) -> (usize, usize) {
        (self.buf.len(), self.records.len())
    }

    /// Encodes and keeps the record of `event` of `book`, then its `chain`
    /// record, hashed after `chain`'s head, which then moves to it. Returns
    /// the event record's index among the frame's records. On `Err`
    /// nothing was kept and `chain` is as it was: `Ok(Err)` when the record
    /// is too large to store, `Err` when the event cannot be chained.
    fn push_event(
        &mut self,
        chain: &mut ChainHead,
        (book, record, event): (&BookName, Record, &Event),
        scales: &(impl AssetScales + ?Sized),
    ) -> Result<Result<usize, codec::Malformed>, StoreError> {
        if event.seq != chain.seq + 1 {
            return Err(StoreError::Other(format!(
                "internal error: book {book}'s chain is at seq {}, not before event {}",
                chain.seq, event.seq
            )));
        }
        let hash = talea_api::event::event_hash(&chain.hash, book.as_str(), event, scales)
            .map_err(|e| StoreError::Other(e.to_string()))?;
        let mark = self.mark();
        let index = match self.push(record) {
            Ok(index) => index,
            Err(e) => return Ok(Err(e)),
        };
        let link = Record::Chain(ChainRecord {
            book: book.clone(),
            seq: event.seq,
            hash,
        });
        if let Err(e) = self.push(link) {
            self.rollback(mark);
            return Ok(Err(e));
        }
        *chain = ChainHead {
            seq: event.seq,
            hash,
        };
        Ok(Ok(index))
    }
}

/// Where a book's hash chain stands: the seq and hash of its last chained
/// event (0 and genesis before the first).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChainHead {
    seq: u64,
    hash: [u8; 32],
}

impl ChainHead {
    fn of(state: &State, book: &BookName) -> Self {
        state.book(book).map_or(
            ChainHead {
                seq: 0,
                hash: talea_verify::chain::GENESIS,
            },
            |b| ChainHead {
                seq: b.chained_seq(),
                hash: b.chain_head(),
            },
        )
    }
}

/// Asset scales for formatting an event's amounts: the frame's new assets,
/// then the durable ones.
pub(crate) struct Scales<'a> {
    frame: &'a HashMap<AssetCode, Asset>,
    state: &'a State,
}

impl AssetScales for Scales<'_> {
    fn scale(&self, asset: &AssetCode) -> Option<Scale> {
        self.frame
            .get(asset)
            .or_else(|| self.state.asset(asset))
            .map(|a| a.scale)
    }
}

/// An account open as an event, as the read path serves it.
fn account_event(account: &Account) -> Event {
    Event {
        seq: account.seq,
        committed_at: account.opened_at,
        kind: EventKind::AccountOpened(account.clone()),
        hash: None,
    }
}

/// A transaction as an event, as the read path serves it.
fn transaction_event(commit: &Commit) -> Event {
    Event {
        seq: commit.seq,
        committed_at: commit.committed_at,
        kind: EventKind::Transaction(commit.clone()),
        hash: None,
    }
}

/// What the earlier requests of a frame did to one book.
#[derive(Debug, Default)]
struct BookOverlay {
    last_seq: u64,
    last_time: Option<Timestamp>,
    accounts: HashMap<AccountName, Account>,
    balances: HashMap<Pair, Totals>,
    /// Key → index of its transaction among the frame's records.
    keys: HashMap<IdempotencyKey, usize>,
    /// What all pending holds reserve on the pairs the frame changed
    /// (due holds included, as in `PairState::held`).
    held: HashMap<Pair, Held>,
    /// Holds the frame made (pending) or ended.
    holds: HashMap<TxId, HoldState>,
    /// The book's chain after the frame's events so far.
    chain: Option<ChainHead>,
}

impl BookOverlay {
    /// The book's chain head as the frame leaves it.
    fn chain(&mut self, state: &State, book: &BookName) -> &mut ChainHead {
        self.chain.get_or_insert_with(|| ChainHead::of(state, book))
    }
}

/// What the earlier requests of a frame did, over the durable indexes.
#[derive(Debug, Default)]
struct Overlay {
    assets: HashMap<AssetCode, Asset>,
    books: HashMap<BookName, BookOverlay>,
}

/// The overlay of `book`, started from the durable head of the book.
fn book_head<'o>(
    books: &'o mut HashMap<BookName, BookOverlay>,
    state: &State,
    book: &BookName,
) -> &'o mut BookOverlay {
    books.entry(book.clone()).or_insert_with(|| {
        let durable = state.book(book);
        BookOverlay {
            last_seq: durable.map_or(0, |b| b.last_seq()),
            last_time: durable.and_then(|b| b.last_time()),
            ..BookOverlay::default()
        }
    })
}

/// A frame being built.
struct Frame {
    sink: Sink,
    overlay: Overlay,
    answers: Vec<Answer>,
}

/// The writer: owns the directory lock, so that the lock is released only
/// once the last write is done.
pub struct Writer {
    shared: Arc<Shared>,
    config: LogConfig,
    _lock: DirLock,
}

impl Writer {
    /// A writer for `shared`, holding `lock`.
    pub fn new(shared: Arc<Shared>, mut config: LogConfig, lock: DirLock) -> Self {
        // A frame stops growing once past the target, so the target leaves
        // room below the format's frame limit for one more large batch.
        config.frame_bytes_target = config.frame_bytes_target.min(FRAME_BYTES_MAX / 2);
        Self {
            shared,
            config,
            _lock: lock,
        }
    }

    /// Serves requests until every sender is gone.
    pub fn run(self, mut requests: mpsc::Receiver<Request>) {
        while let Some(first) = requests.blocking_recv() {
            if let Err(error) = self.shared.check_writable() {
                first.fail(error);
                continue;
            }
            let mut frame = Frame {
                sink: Sink::new(),
                overlay: Overlay::default(),
                answers: Vec::new(),
            };
            {
                let state = self.shared.state();
                self.decide(&state, &mut frame, first);
                while frame.answers.len() < self.config.frame_requests_max
                    && frame.sink.body_bytes() < self.config.frame_bytes_target
                {
                    match requests.try_recv() {
                        Ok(request) => self.decide(&state, &mut frame, request),
                        Err(_) => break,
                    }
                }
            }
            self.finish(frame);
        }
    }

    fn decide(&self, state: &State, frame: &mut Frame, request: Request) {
        let answer = match request {
            Request::RegisterAsset(asset, reply) => {
                Answer::Asset(reply, register_asset(state, frame, asset))
            }
            Request::OpenAccount(book, new, reply) => {
                Answer::Account(reply, open_account(state, frame, &book, new))
            }
            Request::Commit(book, drafts, reply) => Answer::Commit(
                reply,
                commit(state, &self.shared.file, frame, &book, &drafts),
            ),
            Request::Expire(book, reply) => Answer::Expire(reply, expire(state, frame, &book)),
        };
        frame.answers.push(answer);
    }

    /// Makes the frame durable, applies it, announces it, answers.
    fn finish(&self, frame: Frame) {
        let Frame {
            mut sink, answers, ..
        } = frame;
        self.shared
            .requests
            .fetch_add(answers.len() as u64, Ordering::Relaxed);
        if sink.records.is_empty() {
            answers.into_iter().for_each(Answer::send);
            return;
        }
        match self.write(&mut sink) {
            Ok(books) => {
                self.shared.frames.fetch_add(1, Ordering::Relaxed);
                for (book, last_seq) in books {
                    self.shared.bus.publish(&book, last_seq);
                }
                answers.into_iter().for_each(Answer::send);
            }
            Err(error) => {
                tracing::error!(error = %error, "the log store could not write a frame");
                answers.into_iter().for_each(|a| a.fail(&error));
            }
        }
    }

    /// Seals, checks, appends, syncs and applies a frame; returns each
    /// book it grew with the book's new last seq.
    fn write(&self, sink: &mut Sink) -> Result<HashMap<BookName, u64>, StoreError> {
        let count = u32::try_from(sink.records.len())
            .map_err(|_| StoreError::Other("too many records for one frame".to_owned()))?;
        codec::seal_frame(&mut sink.buf, 0, count).map_err(|e| StoreError::Other(e.0))?;
        // Checked on write as recovery will check it on read, so that a bug
        // in the encoder fails this frame instead of the next start-up.
        codec::check_frame_header(&sink.buf)
            .and_then(|h| codec::check_frame_body(&sink.buf[FRAME_HEADER_BYTES..], h.records))
            .map_err(|e| StoreError::Other(format!("a frame failed its own check: {e}")))?;
        #[cfg(debug_assertions)]
        for (record, at) in &sink.records {
            let decoded = codec::check_record(&sink.buf[*at..])
                .and_then(|(payload, _)| codec::decode_payload(payload));
            debug_assert_eq!(decoded.as_ref(), Ok(record), "records decode as encoded");
        }

        let end = self.shared.state().end;
        let bytes = Arc::new(std::mem::take(&mut sink.buf));
        let size = bytes.len() as u64;
        if let Err(error) = self.shared.file.append(end, bytes) {
            self.fail(&error);
            return Err(error);
        }

        let mut books: HashMap<BookName, u64> = HashMap::new();
        let mut state = self
            .shared
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for (record, at) in &sink.records {
            if let Err(error) = state.apply(record, end + *at as u64, &self.shared.file) {
                // The frame is durable but the indexes refuse it: a bug.
                // Stop writing; recovery will say the same on the next start.
                self.fail(&error);
                return Err(error);
            }
            match record {
                Record::AccountOpened(a) => {
                    books.insert(a.book.clone(), a.seq);
                }
                Record::Transaction(t) => {
                    books.insert(t.commit.book.clone(), t.commit.seq);
                }
                Record::HoldExpired(e) => {
                    books.insert(e.book.clone(), e.seq);
                }
                Record::Asset(_) | Record::Chain(_) => {}
            }
        }
        state.end = end + size;
        Ok(books)
    }

    fn fail(&self, error: &StoreError) {
        let _ = self.shared.failure.set(error.to_string());
    }

    /// Computes and stores the hash chain of every book with events written
    /// before the chain existed (by a build that wrote no `chain` records):
    /// appends a `chain` record for each event after the book's last stored
    /// hash, in frames of about `frame_bytes_target`, each durable before
    /// the next, and applied like any frame. Nothing is renumbered or
    /// rewritten. Runs at open, before the writer takes any request;
    /// returns the number of events hashed (0 for a current log). A crash
    /// part way leaves a torn tail or a partly caught-up chain, which the
    /// next open carries on from.
    pub fn catch_up(&self) -> Result<u64, StoreError> {
        let behind: Vec<(BookName, ChainHead, u64)> = {
            let state = self.shared.state();
            state
                .books()
                .filter(|(_, b)| b.chained_seq() < b.last_seq())
                .map(|(name, b)| (name.clone(), ChainHead::of(&state, name), b.last_seq()))
                .collect()
        };
        if behind.is_empty() {
            return Ok(0);
        }
        let scales: HashMap<AssetCode, Scale> = self
            .shared
            .state()
            .assets()
            .map(|a| (a.code.clone(), a.scale))
            .collect();
        let mut sink = Sink::new();
        let mut hashed = 0;
        for (book, mut chain, last_seq) in behind {
            tracing::info!(
                %book,
                from = chain.seq + 1,
                to = last_seq,
                "computing the hash chain of events written before it existed"
            );
            while chain.seq < last_seq {
                let events = crate::read::events(&self.shared, &book, chain.seq, CATCH_UP_PAGE)?;
                if events.is_empty() {
                    return Err(StoreError::Corrupt(format!(
                        "book {book}: events {}..={last_seq} are missing",
                        chain.seq + 1
                    )));
                }
                for event in events.iter().take_while(|e| e.seq <= last_seq) {
                    if event.seq != chain.seq + 1 {
                        return Err(StoreError::Corrupt(format!(
                            "book {book}: event {} is missing",
                            chain.seq + 1
                        )));
                    }
                    let hash =
                        talea_api::event::event_hash(&chain.hash, book.as_str(), event, &scales)
                            .map_err(|e| StoreError::Other(e.to_string()))?;
                    sink.push(Record::Chain(ChainRecord {
                        book: book.clone(),
                        seq: event.seq,
                        hash,
                    }))
                    .map_err(too_large)?;
                    chain = ChainHead {
                        seq: event.seq,
                        hash,
                    };
                    hashed += 1;
                    if sink.body_bytes() >= self.config.frame_bytes_target {
                        self.write(&mut sink)?;
                        sink = Sink::new();
                    }
                }
            }
        }
        if !sink.records.is_empty() {
            self.write(&mut sink)?;
        }
        Ok(hashed)
    }
}

/// Events read at a time while catching a book's chain up.
const CATCH_UP_PAGE: u32 = 1_000;

/// Microseconds since the epoch, now (truncated: the contract's unit).
pub fn now() -> Timestamp {
    let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |m| -m),
    };
    Timestamp::from_micros(micros)
}

/// The commit time of the next write to a book: the clock, but never
/// earlier than the book's previous commit.
fn commit_time(last: Option<Timestamp>) -> Timestamp {
    let now = now();
    last.map_or(now, |last| now.max(last))
}

fn too_large(e: codec::Malformed) -> StoreError {
    StoreError::Other(format!("cannot store it: {e}"))
}

fn register_asset(
    state: &State,
    frame: &mut Frame,
    asset: Asset,
) -> Result<Registered<Asset>, StoreError> {
    if let Some(existing) = frame
        .overlay
        .assets
        .get(&asset.code)
        .or_else(|| state.asset(&asset.code))
    {
        return Ok(Registered::Existing(existing.clone()));
    }
    frame
        .sink
        .push(Record::Asset(asset.clone()))
        .map_err(too_large)?;
    frame
        .overlay
        .assets
        .insert(asset.code.clone(), asset.clone());
    Ok(Registered::Created(asset))
}

fn open_account(
    state: &State,
    frame: &mut Frame,
    book: &BookName,
    new: NewAccount,
) -> Result<Opened, StoreError> {
    let head = book_head(&mut frame.overlay.books, state, book);
    if let Some(existing) = head.accounts.get(&new.name) {
        return Ok(Opened::Existing(existing.clone()));
    }
    if let Some(existing) = state.book(book).and_then(|b| b.account(&new.name)) {
        return Ok(Opened::Existing(existing.account.clone()));
    }
    let account = Account {
        book: book.clone(),
        name: new.name,
        kind: new.kind,
        min_balance: new.min_balance,
        metadata: new.metadata,
        seq: head.last_seq + 1,
        opened_at: commit_time(head.last_time),
    };
    let scales = Scales {
        frame: &frame.overlay.assets,
        state,
    };
    let event = account_event(&account);
    frame
        .sink
        .push_event(
            head.chain(state, book),
            (book, Record::AccountOpened(account.clone()), &event),
            &scales,
        )?
        .map_err(too_large)?;
    head.last_seq = account.seq;
    head.last_time = Some(account.opened_at);
    head.accounts.insert(account.name.clone(), account.clone());
    Ok(Opened::Created(account))
}

/// The commit stored under `key` in `book`, if any: from this frame's
/// records, else from the log (by fingerprint, confirmed on the record).
fn stored_key(
    state: &State,
    file: &LogFile,
    records: &[(Record, usize)],
    head: &BookOverlay,
    book: &BookName,
    key: &IdempotencyKey,
) -> Result<Option<StoredKey>, StoreError> {
    // A replay answers a hold as it stands now, as a read of it would.
    let as_stored = |t: &TxRecord| {
        let mut commit = t.commit.clone();
        if let Some(b) = state.book(book) {
            crate::read::current_status(b, &mut commit);
        }
        StoredKey {
            request_hash: t.request_hash,
            commit,
        }
    };
    if let Some(&index) = head.keys.get(key) {
        return match records.get(index) {
            Some((Record::Transaction(t), _)) => Ok(Some(as_stored(t))),
            _ => Err(StoreError::Other(format!(
                "internal error: key {key:?} points at a frame record that is no transaction"
            ))),
        };
    }
    for offset in state.key_candidates(book, key.as_str()) {
        if let Record::Transaction(t) = file.read_record(offset)?
            && t.commit.idempotency_key == *key
            && t.commit.book == *book
        {
            return Ok(Some(as_stored(&t)));
        }
    }
    Ok(None)
}

fn commit(
    state: &State,
    file: &LogFile,
    frame: &mut Frame,
    book: &BookName,
    drafts: &[Draft],
) -> Result<Vec<Outcome>, StoreError> {
    if drafts.is_empty() {
        return Ok(Vec::new());
    }
    let head = book_head(&mut frame.overlay.books, state, book);

    let committed_at = commit_time(head.last_time);
    let loaded = load(
        state,
        file,
        (&frame.overlay.assets, &frame.sink.records),
        head,
        (book, committed_at),
        drafts,
    )?;
    let mut planner = Planner::new(book, &loaded, head.last_seq, committed_at);
    let scales = Scales {
        frame: &frame.overlay.assets,
        state,
    };
    let (verdicts, written) = plan_into_sink(
        &mut planner,
        (&mut frame.sink, head.chain(state, book)),
        (book, &scales),
        drafts,
    )?;
    publish(
        (state, book, &loaded),
        head,
        &frame.sink.records,
        (&verdicts, written),
        planner.last_seq(),
        committed_at,
    );
    Ok(outcomes(verdicts))
}

/// Reads what the planner needs, as Postgres reads it under the book's
/// lock: here from the frame's overlay (its assets and records, and the
/// book's `head`) first, then the durable indexes.
fn load(
    state: &State,
    file: &LogFile,
    (assets, records): (&HashMap<AssetCode, Asset>, &[(Record, usize)]),
    head: &BookOverlay,
    (book, committed_at): (&BookName, Timestamp),
    drafts: &[Draft],
) -> Result<Loaded, StoreError> {
    let durable = state.book(book);
    let mut loaded = Loaded::default();
    for draft in drafts {
        if let Some(tx_id) = draft.intent.ends()
            && !loaded.holds.contains_key(&tx_id)
            && let Some(found) = hold_state(state, file, records, head, book, tx_id)?
        {
            loaded.holds.insert(tx_id, found);
        }
    }
    // A settle of a whole hold posts the hold's legs: their pairs too.
    let hold_pairs: Vec<Pair> = loaded
        .holds
        .values()
        .flat_map(|h| h.commit.postings.iter())
        .map(|p| (p.account.clone(), p.asset.clone()))
        .collect();
    let legs = drafts
        .iter()
        .flat_map(|d| d.postings.iter().map(|p| (&p.account, &p.asset)))
        .chain(hold_pairs.iter().map(|(a, s)| (a, s)));
    // Holds due at the commit time reserve nothing any more, though their
    // `hold_expired` events may not be appended yet. Read once, and only
    // if some pair of the batch holds anything.
    let mut due: Option<Vec<Commit>> = None;
    let mut seen: HashSet<(&AccountName, &AssetCode)> = HashSet::new();
    {
        for (account, asset) in legs {
            if !loaded.accounts.contains_key(account) {
                let rule = head
                    .accounts
                    .get(account)
                    .or_else(|| durable.and_then(|b| b.account(account)).map(|a| &a.account))
                    .map(|a| AccountRule {
                        kind: a.kind,
                        min_balance: a.min_balance,
                    });
                if let Some(rule) = rule {
                    loaded.accounts.insert(account.clone(), rule);
                }
            }
            if !loaded.scales.contains_key(asset)
                && let Some(found) = assets.get(asset).or_else(|| state.asset(asset))
            {
                loaded.scales.insert(asset.clone(), found.scale);
            }
            if seen.insert((account, asset)) {
                let pair = (account.clone(), asset.clone());
                let totals = head.balances.get(&pair).copied().or_else(|| {
                    durable
                        .and_then(|b| b.account(account))
                        .and_then(|a| a.assets.get(asset))
                        .map(|s| s.totals)
                });
                if let Some(totals) = totals {
                    loaded.balances.insert(pair.clone(), totals);
                }
                let mut held = raw_held(state, head, book, &pair);
                if !held.is_zero() {
                    let due = due.get_or_insert_with(|| due_holds(state, head, book, committed_at));
                    for p in due.iter().flat_map(|c| &c.postings) {
                        if p.account == *account && p.asset == *asset {
                            let total = match p.side {
                                Side::Debit => &mut held.debits,
                                Side::Credit => &mut held.credits,
                            };
                            *total = total
                                .checked_sub(p.amount)
                                .filter(|a| *a >= Amount::ZERO)
                                .unwrap_or(Amount::ZERO);
                        }
                    }
                    loaded.held.insert(pair, held);
                }
            }
        }
    }
    for draft in drafts {
        let key = &draft.idempotency_key;
        if !loaded.stored.contains_key(key)
            && let Some(stored) = stored_key(state, file, records, head, book, key)?
        {
            loaded.stored.insert(key.clone(), stored);
        }
    }
    Ok(loaded)
}

/// Decides each draft in order and appends the passing ones to the frame's
/// sink; returns the verdicts and the sink indexes of the written records.
/// A batch too large for one frame is rolled back whole.
fn plan_into_sink(
    planner: &mut Planner<'_>,
    (sink, chain): (&mut Sink, &mut ChainHead),
    (book, scales): (&BookName, &Scales<'_>),
    drafts: &[Draft],
) -> Result<(Vec<Verdict>, Vec<usize>), StoreError> {
    let mark = sink.mark();
    let chain_before = *chain;
    let mut verdicts = Vec::with_capacity(drafts.len());
    let mut written: Vec<usize> = Vec::new();
    for (i, draft) in drafts.iter().enumerate() {
        let verdict = match planner.evaluate(draft) {
            Verdict::Write(planned) => {
                let record = Record::Transaction(TxRecord {
                    commit: planned.commit.clone(),
                    request_hash: planned.request_hash,
                    debits_after: planned.postings.iter().map(|p| p.debits_after).collect(),
                });
                let event = transaction_event(&planned.commit);
                let pushed = match sink.push_event(chain, (book, record, &event), scales) {
                    Ok(pushed) => pushed,
                    Err(error) => {
                        sink.rollback(mark);
                        *chain = chain_before;
                        return Err(error);
                    }
                };
                match pushed {
                    Ok(index) => {
                        planner.accept(i, &planned);
                        written.push(index);
                        Verdict::Write(planned)
                    }
                    // Too large to store: refused alone, like a draft the
                    // database refuses; later drafts are decided without it.
                    Err(e) => Verdict::Settled(Outcome::Rejected(Rejection::Failed(format!(
                        "cannot store this transaction: {e}"
                    )))),
                }
            }
            other => other,
        };
        verdicts.push(verdict);
        if sink.body_bytes() > FRAME_BYTES_MAX {
            sink.rollback(mark);
            *chain = chain_before;
            return Err(StoreError::Other(format!(
                "the batch needs more than {FRAME_BYTES_MAX} bytes; send fewer drafts at once"
            )));
        }
    }
    Ok((verdicts, written))
}

/// Lets the frame's later requests see this batch: the balances it left,
/// its keys, and the book's new head.
fn publish(
    (state, book, loaded): (&State, &BookName, &Loaded),
    head: &mut BookOverlay,
    records: &[(Record, usize)],
    (verdicts, written): (&[Verdict], Vec<usize>),
    last_seq: u64,
    committed_at: Timestamp,
) {
    for verdict in verdicts {
        if let Verdict::Write(planned) = verdict {
            for (pair, totals) in &planned.touched {
                match head.balances.get_mut(pair) {
                    Some(slot) => *slot = *totals,
                    None => {
                        head.balances.insert(pair.clone(), *totals);
                    }
                }
            }
            let c = &planned.commit;
            if c.status == TxStatus::Pending {
                change_raw_held(state, head, book, c, true);
                head.holds.insert(
                    c.tx_id,
                    HoldState {
                        commit: c.clone(),
                        status: TxStatus::Pending,
                        ended_by: None,
                    },
                );
            } else if let Some(hold) = c.pending_tx_id {
                let prior = head
                    .holds
                    .get(&hold)
                    .or_else(|| loaded.holds.get(&hold))
                    .cloned();
                if let Some(mut ended) = prior {
                    change_raw_held(state, head, book, &ended.commit, false);
                    ended.status = c.status;
                    ended.ended_by = Some(c.tx_id);
                    head.holds.insert(hold, ended);
                }
            }
        }
    }
    for index in written {
        if let Some((Record::Transaction(t), _)) = records.get(index) {
            head.keys.insert(t.commit.idempotency_key.clone(), index);
        }
    }
    if last_seq > head.last_seq {
        head.last_seq = last_seq;
        head.last_time = Some(committed_at);
    }
}
