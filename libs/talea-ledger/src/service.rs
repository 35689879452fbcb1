//! `LedgerService`'s own methods: construction, what the services read off
//! it (backend, store, metrics, readiness), and the lookups the API shares.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use talea_api::{ApiError, PostTransactionRequest, TransactionDto};
use talea_core::{AccountName, BookName, Commit, Draft, Timestamp, TxId};
use talea_store::{Backend, Store};
use talea_telemetry::Metrics;

use crate::committer::Committers;
use crate::convert::{self, codes, store_error};
use crate::{Inner, LedgerConfig, LedgerService, committer};

impl LedgerService {
    /// A ledger over `store`.
    pub fn new(store: Arc<dyn Store>, config: LedgerConfig, metrics: Metrics) -> Self {
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

    /// Parses and checks a post, resolving asset scales.
    pub(crate) async fn draft(&self, request: PostTransactionRequest) -> Result<Draft, ApiError> {
        let post = convert::ParsedPost::parse(request)?;
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
