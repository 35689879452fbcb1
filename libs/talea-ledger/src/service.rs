//! `LedgerService`'s own methods: construction, what the services read off
//! it (backend, store, metrics, readiness), and the lookups the API shares.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use talea_api::{ApiError, PostTransactionRequest, TransactionDto};
use talea_core::{AccountName, BookName, Commit, Draft, Timestamp, TxId};
use talea_store::{Backend, Outcome, Store};
use talea_telemetry::Metrics;

use crate::committer::{Committers, EnqueueError};
use crate::convert::{self, codes, store_error};
use crate::{Inner, LedgerConfig, LedgerService, Notary, committer};

/// How often the expirer looks for holds past their `expires_at`: an
/// expiry event follows `expires_at` within this plus one commit.
pub const HOLD_EXPIRY_POLL: Duration = Duration::from_millis(100);

/// Due holds the expirer lists per round (`Store::due_holds`); every book
/// among them has its due holds ended (`Store::expire_holds`; the log
/// store ends at most 100,000 per call). Books beyond the list, and the
/// rest of a book's holds, wait for the next round, at the next poll.
const EXPIRY_ROUND_MAX: u32 = 256;

/// One round of the expirer: expires every book with holds due now.
async fn expire_due(store: &dyn Store) {
    let due = match store.due_holds(crate::api::now(), EXPIRY_ROUND_MAX).await {
        Ok(due) => due,
        Err(e) => {
            tracing::warn!(error = %e, "cannot list the holds due to expire");
            return;
        }
    };
    let mut books: Vec<BookName> = due.into_iter().map(|d| d.book).collect();
    books.sort();
    books.dedup();
    for book in books {
        match store.expire_holds(&book).await {
            Ok(expired) if !expired.is_empty() => {
                tracing::debug!(book = %book, holds = expired.len(), "holds expired");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(book = %book, error = %e, "cannot expire holds"),
        }
    }
}

impl LedgerService {
    /// A ledger over `store`, signing checkpoints with a key of this
    /// process only ([`Notary::ephemeral`]; see [`Self::with_notary`]).
    pub fn new(store: Arc<dyn Store>, config: LedgerConfig, metrics: Metrics) -> Self {
        Self::with_notary(store, config, metrics, Notary::ephemeral())
    }

    /// A ledger over `store` whose checkpoints `notary` signs.
    pub fn with_notary(
        store: Arc<dyn Store>,
        config: LedgerConfig,
        metrics: Metrics,
        notary: Notary,
    ) -> Self {
        let committers = Committers::new(
            Arc::clone(&store),
            metrics.clone(),
            config.write_queue_depth,
            config.write_batch_max,
            Duration::from_millis(config.committer_idle_ms),
            committer::Combine {
                books_max: config.commit_books_max,
                in_flight: config.commits_in_flight,
            },
        );
        Self {
            inner: Arc::new(Inner {
                store,
                committers,
                metrics,
                assets: RwLock::new(HashMap::new()),
                notary,
                trees: Default::default(),
            }),
        }
    }

    /// One transaction by id, answered only if it is in one of `books` (a
    /// scoped token's books): otherwise `not_found`, exactly as for an
    /// unknown id, after the same work (one lookup that finds nothing), so
    /// ids of other books cannot be probed by body or by time.
    pub async fn transaction_in<'a>(
        &self,
        tx_id: &str,
        books: impl IntoIterator<Item = &'a str>,
    ) -> Result<TransactionDto, ApiError> {
        let books: Vec<&str> = books.into_iter().collect();
        self.find_transaction(tx_id, Some(&books)).await
    }

    /// One transaction by id, in any book or (with `books`) only in those;
    /// `not_found` for a malformed id, an unknown one and one elsewhere alike.
    pub(crate) async fn find_transaction(
        &self,
        tx_id: &str,
        books: Option<&[&str]>,
    ) -> Result<TransactionDto, ApiError> {
        let not_found = || ApiError::not_found("transaction not found");
        let id = TxId(uuid::Uuid::parse_str(tx_id).map_err(|_| not_found())?);
        let commit = self
            .inner
            .store
            .transaction(id, books)
            .await
            .map_err(|e| store_error(&e))?
            .ok_or_else(not_found)?;
        self.commit_dto(&commit).await
    }

    /// Starts the hold expirer: every [`HOLD_EXPIRY_POLL`], it asks the store
    /// for holds past their `expires_at` and expires their books
    /// (`Store::expire_holds`). Safe on every instance at once: the store
    /// ends each hold exactly once under its book's lock, so a second
    /// expirer finds nothing left. A write instance runs one; the task ends
    /// with the runtime.
    pub fn spawn_expirer(&self) -> tokio::task::JoinHandle<()> {
        let store = Arc::clone(&self.inner.store);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(HOLD_EXPIRY_POLL);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                expire_due(store.as_ref()).await;
            }
        })
    }

    /// The store's backend, for `X-Talea-Backend`.
    pub fn backend(&self) -> Backend {
        self.inner.store.backend()
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The metrics this ledger updates.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Readiness: the store answers.
    pub async fn ping(&self) -> Result<(), ApiError> {
        self.inner.store.ping().await.map_err(|e| store_error(&e))
    }

    /// The book's head in this ledger's store: its last seq, 0 for a book
    /// with no event (read-your-writes, `talea-http`'s `freshness`).
    pub async fn head(&self, book: &BookName) -> Result<u64, ApiError> {
        match self.inner.store.last_seq(book).await {
            Ok(seq) => Ok(seq.unwrap_or(0)),
            Err(e) => Err(store_error(&e)),
        }
    }

    /// Refreshes gauges sampled at scrape time (pool usage).
    pub fn refresh_gauges(&self) {
        if let Some(stats) = self.inner.store.pool_stats() {
            let g = &self.inner.metrics.db_pool_connections;
            g.with_label_values(&["idle"]).set(i64::from(stats.idle));
            g.with_label_values(&["busy"])
                .set(i64::from(stats.size.saturating_sub(stats.idle)));
            g.with_label_values(&["max"]).set(i64::from(stats.max));
        }
    }
    /// 404 unless the book has at least one event.
    pub(crate) async fn require_book(&self, book: &BookName) -> Result<u64, ApiError> {
        match self.inner.store.last_seq(book).await {
            Ok(Some(seq)) => Ok(seq),
            Ok(None) => Err(ApiError::not_found(format!("book {book} not found"))),
            Err(e) => Err(store_error(&e)),
        }
    }

    pub(crate) async fn require_account(
        &self,
        book: &BookName,
        name: &AccountName,
    ) -> Result<talea_core::Account, ApiError> {
        match self.inner.store.account(book, name).await {
            Ok(Some(a)) => Ok(a),
            Ok(None) => Err(ApiError::not_found(format!(
                "account {name} not found in book {book}"
            ))),
            Err(e) => Err(store_error(&e)),
        }
    }

    /// Counts a refusal made before the store (by its code), passing `result` on.
    pub(crate) fn counted<T>(&self, result: Result<T, ApiError>) -> Result<T, ApiError> {
        if let Err(e) = &result {
            self.inner
                .metrics
                .rejected_total
                .with_label_values(&[e.code()])
                .inc();
        }
        result
    }

    /// Queues a draft on its book's committer and answers its outcome: the
    /// commit (`deduplicated: false`), the original (`deduplicated: true`),
    /// or the refusal.
    pub(crate) async fn submit(
        &self,
        book: &BookName,
        draft: Draft,
    ) -> Result<TransactionDto, ApiError> {
        let receiver = self
            .inner
            .committers
            .enqueue(book, draft)
            .map_err(|e| self.queue_full(e))?;
        self.answer(book, receiver.await).await
    }

    /// Queues the drafts of a bulk post as one unit and answers each item,
    /// in order: the refusal of an item that is no draft, else its outcome.
    pub(crate) async fn submit_all(
        &self,
        book: &BookName,
        items: Vec<Result<Draft, ApiError>>,
    ) -> Result<Vec<Result<TransactionDto, ApiError>>, ApiError> {
        let (drafts, refused) = talea_api::split_batch(items);
        let mut receivers = self
            .inner
            .committers
            .enqueue_all(book, drafts)
            .map_err(|e| self.queue_full(e))?
            .into_iter();
        let mut answers = Vec::with_capacity(refused.len());
        for refusal in refused {
            answers.push(match (refusal, receivers.next()) {
                (Some(e), _) => Err(e),
                (None, Some(receiver)) => self.answer(book, receiver.await).await,
                (None, None) => Err(ApiError::unavailable("the commit was interrupted, retry")),
            });
        }
        Ok(answers)
    }

    /// A full queue, counted and answered 429.
    fn queue_full(&self, error: EnqueueError) -> ApiError {
        match error {
            EnqueueError::QueueFull => {
                self.inner
                    .metrics
                    .shed_total
                    .with_label_values(&["queue_full"])
                    .inc();
                ApiError::Overloaded {
                    status: 429,
                    retry_after_s: 1,
                }
            }
        }
    }

    /// A draft's outcome as the post route answers it.
    async fn answer(
        &self,
        book: &BookName,
        received: Result<
            Result<Outcome, Arc<talea_store::StoreError>>,
            tokio::sync::oneshot::error::RecvError,
        >,
    ) -> Result<TransactionDto, ApiError> {
        let outcome = match received {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => return Err(store_error(&e)),
            // The committer ended without answering: it cannot know whether
            // the draft committed, so the caller must retry with the same key.
            Err(_) => return Err(ApiError::unavailable("the commit was interrupted, retry")),
        };
        let (commit, deduplicated) = match outcome {
            Outcome::Committed(commit) => (commit, false),
            Outcome::Deduplicated(commit) => {
                self.inner.metrics.deduplicated_total.inc();
                (commit, true)
            }
            Outcome::Rejected(rejection) => return Err(self.rejection(book, rejection).await),
        };
        let mut dto = self.commit_dto(&commit).await?;
        dto.deduplicated = Some(deduplicated);
        Ok(dto)
    }

    /// Parses and checks a post, resolving asset scales.
    pub(crate) async fn draft(&self, request: PostTransactionRequest) -> Result<Draft, ApiError> {
        let post = convert::ParsedPost::parse(request, crate::api::now())?;
        let scales = self.scales(post.asset_codes()).await?;
        post.into_draft(&scales)
    }

    pub(crate) async fn commit_dto(&self, commit: &Commit) -> Result<TransactionDto, ApiError> {
        let scales = self
            .scales(codes(commit.postings.iter().map(|p| &p.asset)))
            .await?;
        Ok(convert::transaction_dto(commit, &scales))
    }

    pub(crate) fn parse_as_of(as_of: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
        as_of.map(|t| convert::timestamp(t, "as_of")).transpose()
    }
}
