//! Per-book committer tasks: bounded queues drained into batched storage transactions.
//!
//! Each active book has one task that owns a bounded queue of units (a
//! request's drafts: one post, or a bulk post's items). The task takes
//! whole units up to `write_batch_max` drafts at a time and commits them in one
//! storage transaction, so the book's lock and the fsync are paid once per
//! batch instead of once per draft. A task with nothing to do for
//! `committer_idle_ms` removes itself, which keeps memory bounded with many books.
//!
//! Batches of different books share storage transactions: each book's batch
//! goes to the combiner, which commits up to `commit_books_max` books' batches
//! at once through `Store::commit_books`, with at most `commits_in_flight`
//! such commits running. A book has at most one batch in flight (its task
//! waits for the outcome before taking the next), so the books of one commit
//! are always distinct and each book's drafts stay in order.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use talea_core::{BookName, Draft};
use talea_store::{BookBatch, Outcome, Store, StoreError};
use talea_telemetry::Metrics;
use tokio::sync::{Semaphore, mpsc, oneshot};

/// Most drafts one combined storage transaction carries, whatever
/// `commit_books_max` allows: it bounds the statement's arrays.
pub(crate) const COMMIT_DRAFTS_MAX: usize = 4_096;

/// Where a queued draft's outcome arrives.
pub(crate) type OutcomeReceiver = oneshot::Receiver<Result<Outcome, Arc<StoreError>>>;

/// The drafts of one request (one, or a bulk post's), queued as a unit: a
/// unit is never split between storage transactions, so a bulk post is one
/// storage transaction wherever it fits (`COMMIT_DRAFTS_MAX`).
type Unit = Vec<Job>;

/// A draft waiting for its batch, and where to send its outcome.
struct Job {
    draft: Draft,
    reply: oneshot::Sender<Result<Outcome, Arc<StoreError>>>,
}

/// One book's batch on its way to the combiner, and where its outcomes go.
struct Run {
    book: BookName,
    drafts: Vec<Draft>,
    reply: oneshot::Sender<Result<Vec<Outcome>, StoreError>>,
}

/// Why a draft was not accepted into a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EnqueueError {
    /// The book's queue is full.
    QueueFull,
}

/// The registry of live committers, one per book with recent writes.
#[derive(Debug)]
pub(crate) struct Committers {
    store: Arc<dyn Store>,
    metrics: Metrics,
    queue_depth: usize,
    batch_max: usize,
    idle: Duration,
    books_max: usize,
    in_flight: usize,
    // A std mutex: it is held only for a map lookup and a non-blocking send.
    senders: Mutex<HashMap<BookName, mpsc::Sender<Unit>>>,
    // The combiner's queue, started with the first batch that needs it.
    // Unbounded, yet never holds more than one run per live book task.
    combiner: std::sync::OnceLock<mpsc::UnboundedSender<Run>>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("key", &self.draft.idempotency_key)
            .finish()
    }
}

/// How batches are grouped into storage transactions.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Combine {
    /// Most books' batches per storage transaction (1: each book alone).
    pub(crate) books_max: usize,
    /// Most combined storage transactions running at once.
    pub(crate) in_flight: usize,
}

impl Committers {
    pub(crate) fn new(
        store: Arc<dyn Store>,
        metrics: Metrics,
        queue_depth: usize,
        batch_max: usize,
        idle: Duration,
        combine: Combine,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            metrics,
            queue_depth: queue_depth.max(1),
            batch_max: batch_max.max(1),
            idle,
            books_max: combine.books_max.max(1),
            in_flight: combine.in_flight.max(1),
            senders: Mutex::new(HashMap::new()),
            combiner: std::sync::OnceLock::new(),
        })
    }

    /// Queues `draft` on its book's committer (starting one if needed) and
    /// returns where its outcome will arrive.
    pub(crate) fn enqueue(
        self: &Arc<Self>,
        book: &BookName,
        draft: Draft,
    ) -> Result<OutcomeReceiver, EnqueueError> {
        let mut outcomes = self.enqueue_all(book, vec![draft])?;
        outcomes.pop().ok_or(EnqueueError::QueueFull)
    }

    /// Queues `drafts` as one unit (they go into one storage transaction,
    /// in order) and returns where each outcome will arrive. The unit takes
    /// one place in the book's queue.
    pub(crate) fn enqueue_all(
        self: &Arc<Self>,
        book: &BookName,
        drafts: Vec<Draft>,
    ) -> Result<Vec<OutcomeReceiver>, EnqueueError> {
        let mut unit = Vec::with_capacity(drafts.len());
        let mut outcomes = Vec::with_capacity(drafts.len());
        for draft in drafts {
            let (reply, outcome) = oneshot::channel();
            unit.push(Job { draft, reply });
            outcomes.push(outcome);
        }
        let count = unit.len() as i64;
        let mut senders = self.lock();
        let sender = match senders.get(book) {
            Some(sender) if !sender.is_closed() => sender.clone(),
            _ => {
                let (tx, rx) = mpsc::channel(self.queue_depth);
                senders.insert(book.clone(), tx.clone());
                self.metrics.committers.inc();
                tokio::spawn(Arc::clone(self).run(book.clone(), rx));
                tx
            }
        };
        match sender.try_send(unit) {
            Ok(()) => {
                self.metrics.write_queue_depth.add(count);
                Ok(outcomes)
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(EnqueueError::QueueFull),
            // The task ended between the lookup and the send: it removes its
            // own entry under this lock before ending, so this cannot happen;
            // report it as a full queue (retryable) rather than panic.
            Err(mpsc::error::TrySendError::Closed(_)) => Err(EnqueueError::QueueFull),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<BookName, mpsc::Sender<Unit>>> {
        // A poisoned lock only means another thread panicked while holding
        // it; the map itself is always consistent, so keep using it.
        self.senders.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The committer loop for one book.
    async fn run(self: Arc<Self>, book: BookName, mut rx: mpsc::Receiver<Unit>) {
        let mut jobs: Vec<Job> = Vec::with_capacity(self.batch_max);
        loop {
            match tokio::time::timeout(self.idle, rx.recv()).await {
                Ok(Some(unit)) => jobs.extend(unit),
                Ok(None) => break,
                Err(_) => {
                    // Idle: leave, unless a draft slipped in. Senders only send
                    // while holding the lock, so checking under it is exact.
                    let mut senders = self.lock();
                    if rx.is_empty() {
                        senders.remove(&book);
                        break;
                    }
                    continue;
                }
            }
            // Whole units only: the last unit taken may carry the batch past
            // `batch_max` (at most `BATCH_ITEMS_MAX` more, far below
            // `COMMIT_DRAFTS_MAX`), but a unit is never split.
            while jobs.len() < self.batch_max {
                match rx.try_recv() {
                    Ok(unit) => jobs.extend(unit),
                    Err(_) => break,
                }
            }
            self.metrics.write_queue_depth.sub(jobs.len() as i64);
            // A caller that gave up (timeout, disconnect) no longer waits; its
            // draft is skipped. Retrying with the same key later is still safe.
            jobs.retain(|job| !job.reply.is_closed());
            if jobs.is_empty() {
                continue;
            }
            self.commit(&book, &mut jobs).await;
        }
        self.metrics.committers.dec();
    }

    /// Commits one book's batch: alone when combining is off, else through
    /// the combiner, which may share the storage transaction with other books.
    async fn store_batch(
        self: &Arc<Self>,
        book: &BookName,
        drafts: Vec<Draft>,
    ) -> Result<Vec<Outcome>, StoreError> {
        if self.books_max == 1 {
            return self.store.commit_batch(book, &drafts).await;
        }
        let combiner = self.combiner.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(Arc::clone(self).combine(rx));
            tx
        });
        let (reply, outcome) = oneshot::channel();
        let run = Run {
            book: book.clone(),
            drafts,
            reply,
        };
        if combiner.send(run).is_err() {
            return Err(StoreError::Other(
                "the commit combiner has stopped".to_owned(),
            ));
        }
        outcome.await.unwrap_or_else(|_| {
            Err(StoreError::Other(
                "the commit combiner dropped a batch".to_owned(),
            ))
        })
    }

    /// The combiner loop: takes the runs waiting (up to `books_max` books and
    /// `COMMIT_DRAFTS_MAX` drafts) whenever one of `in_flight` slots is free,
    /// and commits them in one storage transaction.
    async fn combine(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Run>) {
        let slots = Arc::new(Semaphore::new(self.in_flight));
        while let Some(first) = rx.recv().await {
            // Waiting for a slot is what lets runs pile up behind the
            // commits in flight, to share the next storage transaction.
            let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                break;
            };
            let mut drafts = first.drafts.len();
            let mut runs = vec![first];
            while runs.len() < self.books_max && drafts < COMMIT_DRAFTS_MAX {
                match rx.try_recv() {
                    Ok(run) => {
                        drafts += run.drafts.len();
                        runs.push(run);
                    }
                    Err(_) => break,
                }
            }
            let store = Arc::clone(&self.store);
            let metrics = self.metrics.clone();
            tokio::spawn(async move {
                let batches: Vec<BookBatch<'_>> = runs
                    .iter()
                    .map(|run| BookBatch {
                        book: &run.book,
                        drafts: &run.drafts,
                    })
                    .collect();
                let mut results = store.commit_books(&batches).await;
                drop(batches);
                metrics.books_per_commit.observe(runs.len() as f64);
                if results.len() != runs.len() {
                    tracing::error!(
                        books = runs.len(),
                        results = results.len(),
                        "store returned the wrong number of batch results"
                    );
                    let err = StoreError::Other("batch result count mismatch".to_owned());
                    results = vec![Err(err); runs.len()];
                }
                for (run, result) in runs.into_iter().zip(results) {
                    // The book's task may have gone away meanwhile.
                    let _ = run.reply.send(result);
                }
                drop(slot);
            });
        }
    }

    async fn commit(self: &Arc<Self>, book: &BookName, jobs: &mut Vec<Job>) {
        let drafts: Vec<Draft> = jobs.iter().map(|job| job.draft.clone()).collect();
        let count = drafts.len();
        let started = Instant::now();
        let result = self.store_batch(book, drafts).await;
        let elapsed = started.elapsed();
        self.metrics
            .commit_duration_seconds
            .observe(elapsed.as_secs_f64());
        self.metrics.batch_size.observe(count as f64);
        match result {
            Ok(outcomes) if outcomes.len() == jobs.len() => {
                let committed = outcomes
                    .iter()
                    .filter(|o| matches!(o, Outcome::Committed(_)))
                    .count();
                self.metrics.commits_total.inc_by(committed as u64);
                tracing::debug!(
                    book = %book,
                    drafts = jobs.len(),
                    committed,
                    duration_ms = elapsed.as_millis() as u64,
                    "batch committed"
                );
                for (job, outcome) in jobs.drain(..).zip(outcomes) {
                    // The caller may have gone away meanwhile; nothing to do then.
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            Ok(outcomes) => {
                tracing::error!(
                    book = %book,
                    drafts = jobs.len(),
                    outcomes = outcomes.len(),
                    "store returned the wrong number of outcomes"
                );
                let err = Arc::new(StoreError::Other("outcome count mismatch".to_owned()));
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(Arc::clone(&err)));
                }
            }
            Err(err) => {
                tracing::warn!(book = %book, drafts = jobs.len(), error = %err, "batch failed");
                let err = Arc::new(err);
                for job in jobs.drain(..) {
                    let _ = job.reply.send(Err(Arc::clone(&err)));
                }
            }
        }
    }
}
