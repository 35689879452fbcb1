//! The change relay: Postgres commit log → NATS subjects, in order, never skipping.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use async_nats::HeaderMap;
use talea_api::{LedgerApi, SeqPage, bus};
use talea_core::BookName;
use talea_ledger::LedgerService;
use talea_store::StoreError;
use talea_store_pg::{CommitListener, PgStore, RelayLease};
use talea_telemetry::RelayMetrics;
use tokio::sync::watch;

/// Events read and published per page (one flush and one position write per page).
pub const PUBLISH_PAGE_MAX: u32 = 1_000;

/// How often the leader records published positions in Postgres (all
/// changed books in one statement), and always on shutdown. A relay that
/// dies between two records republishes at most this much on restart:
/// duplicates carry the same `Nats-Msg-Id` and seq, and streams drop
/// them by seq. One write per interval instead of one (and an fsync) per
/// published page is what lets the relay keep up with a thousand commits
/// a second across many books.
pub const POSITION_RECORD_MS: u64 = 200;

/// The relay's timings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayConfig {
    /// Subject prefix (`talea.v1.events`).
    pub subject_prefix: String,
    /// How often the leader scans every book for unpublished events even
    /// without a notification, in milliseconds.
    pub poll_ms: u64,
    /// How often a standby tries to take leadership, in milliseconds.
    pub standby_retry_ms: u64,
    /// How often the leader checks that it still holds its lease, in milliseconds.
    pub lease_check_ms: u64,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            subject_prefix: bus::EVENTS_SUBJECT_PREFIX.to_owned(),
            poll_ms: 1_000,
            standby_retry_ms: 1_000,
            lease_check_ms: 500,
        }
    }
}

/// Why leading stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RelayError {
    /// Postgres failed; the relay steps down and tries again.
    #[error("database: {0}")]
    Database(#[from] StoreError),
    /// NATS refused a publish or a flush; the relay steps down and tries again.
    #[error("nats: {0}")]
    Nats(String),
    /// Reading events failed.
    #[error("reading events: {0}")]
    Read(String),
}

/// The relay. One per process; any number of processes may run, one leads.
#[derive(Debug, Clone)]
pub struct Relay {
    store: PgStore,
    ledger: LedgerService,
    nats: async_nats::Client,
    config: RelayConfig,
    metrics: RelayMetrics,
}

impl Relay {
    /// A relay over `store` (a direct connection, not through a pooler),
    /// publishing with `nats`.
    pub fn new(
        store: PgStore,
        nats: async_nats::Client,
        config: RelayConfig,
        metrics: RelayMetrics,
    ) -> Relay {
        let ledger = LedgerService::new(
            std::sync::Arc::new(store.clone()),
            talea_ledger::LedgerConfig::default(),
            talea_telemetry::Metrics::new(),
        );
        Relay {
            store,
            ledger,
            nats,
            config,
            metrics,
        }
    }

    /// Checks that LISTEN works on the store's connection (fails behind a
    /// transaction-mode pooler): call once at start-up.
    pub async fn check_listen(&self) -> Result<(), StoreError> {
        CommitListener::connect(&self.store).await.map(drop)
    }

    /// Stands by or leads until `shutdown` turns true.
    pub async fn run(&self, mut shutdown: watch::Receiver<bool>) {
        let retry = Duration::from_millis(self.config.standby_retry_ms);
        while !*shutdown.borrow() {
            match RelayLease::try_acquire(&self.store).await {
                Ok(Some(lease)) => {
                    tracing::info!("relay: leading");
                    self.metrics.leader.set(1);
                    let result = self.lead(lease, &mut shutdown).await;
                    self.metrics.leader.set(0);
                    match result {
                        Ok(()) => return,
                        Err(error) => {
                            self.count(&error);
                            tracing::warn!(%error, "relay: stepping down");
                        }
                    }
                }
                Ok(None) => tracing::debug!("relay: standing by"),
                Err(error) => {
                    self.metrics
                        .errors_total
                        .with_label_values(&["database"])
                        .inc();
                    tracing::warn!(%error, "relay: cannot try for leadership");
                }
            }
            tokio::select! {
                () = tokio::time::sleep(retry) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    fn count(&self, error: &RelayError) {
        let stage = match error {
            RelayError::Nats(_) => "nats",
            _ => "database",
        };
        self.metrics.errors_total.with_label_values(&[stage]).inc();
    }

    /// Publishes while holding `lease`; returns Ok on shutdown.
    async fn lead(
        &self,
        mut lease: RelayLease,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), RelayError> {
        let mut listener = CommitListener::connect(&self.store).await?;
        // Positions are read once per leadership: while this relay leads,
        // nobody else moves them.
        let mut positions = Positions::default();
        self.catch_up_all(&mut positions).await?;
        let poll = Duration::from_millis(self.config.poll_ms);
        let lease_check = Duration::from_millis(self.config.lease_check_ms);
        let record_every = Duration::from_millis(POSITION_RECORD_MS);
        let mut last_check = tokio::time::Instant::now();
        let mut last_record = tokio::time::Instant::now();
        loop {
            let notice = tokio::select! {
                notice = listener.next(poll) => notice,
                _ = shutdown.changed() => {
                    self.record(&mut positions).await?;
                    lease.release().await;
                    return Ok(());
                }
            };
            match notice {
                Ok(Some(notice)) => {
                    // Everything else already received goes in the same
                    // round: a book notified many times is read once.
                    let mut books = BTreeSet::from([notice.book]);
                    books.extend(listener.drain_buffered().into_iter().map(|n| n.book));
                    for book in &books {
                        self.publish_book(book, &mut positions).await?;
                    }
                }
                Ok(None) => self.catch_up_all(&mut positions).await?,
                Err(error) => {
                    // The listener reconnects on its next call; what was
                    // notified meanwhile is found by the scan.
                    tracing::warn!(%error, "relay: LISTEN connection failed");
                    self.catch_up_all(&mut positions).await?;
                }
            }
            if last_record.elapsed() >= record_every {
                self.record(&mut positions).await?;
                last_record = tokio::time::Instant::now();
            }
            if last_check.elapsed() >= lease_check {
                lease.check().await?;
                last_check = tokio::time::Instant::now();
            }
        }
    }

    /// Persists the positions published since the last call, in one statement.
    async fn record(&self, positions: &mut Positions) -> Result<(), RelayError> {
        let changed: Vec<(BookName, u64)> = positions.unrecorded.drain().collect();
        self.store.record_published(&changed).await?;
        Ok(())
    }

    /// Publishes every book that is behind, and records the lag.
    async fn catch_up_all(&self, positions: &mut Positions) -> Result<(), RelayError> {
        let backlog = self.store.relay_backlog().await?;
        let lag: u64 = backlog
            .iter()
            .map(|b| b.last_seq.saturating_sub(b.published_seq))
            .sum();
        self.metrics
            .lag_events
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
        for entry in backlog {
            positions
                .published
                .insert(entry.book.clone(), entry.published_seq);
            self.publish_book(&entry.book, positions).await?;
        }
        self.record(positions).await
    }

    /// Publishes `book`'s events after its position, in order.
    async fn publish_book(
        &self,
        book: &BookName,
        positions: &mut Positions,
    ) -> Result<(), RelayError> {
        let mut position = match positions.published.get(book) {
            Some(&p) => p,
            None => self.store.relay_position(book).await?,
        };
        let subject = bus::events_subject(&self.config.subject_prefix, book.as_str());
        loop {
            let page = self
                .ledger
                .events(
                    book.as_str(),
                    SeqPage {
                        after_seq: Some(position),
                        limit: Some(PUBLISH_PAGE_MAX),
                    },
                )
                .await
                .map_err(|e| RelayError::Read(e.to_string()))?;
            let Some(last) = page.events.last().map(|e| e.seq) else {
                break;
            };
            for event in &page.events {
                let payload =
                    serde_json::to_vec(event).map_err(|e| RelayError::Read(e.to_string()))?;
                let mut headers = HeaderMap::new();
                headers.insert(bus::MSG_ID_HEADER, bus::msg_id(book.as_str(), event.seq));
                headers.insert(bus::SEQ_HEADER, event.seq.to_string());
                self.nats
                    .publish_with_headers(subject.clone(), headers, payload.into())
                    .await
                    .map_err(|e| RelayError::Nats(e.to_string()))?;
            }
            // Recorded only once the server has everything up to `last`.
            self.nats
                .flush()
                .await
                .map_err(|e| RelayError::Nats(e.to_string()))?;
            positions.unrecorded.insert(book.clone(), last);
            self.metrics
                .published_total
                .inc_by(page.events.len() as u64);
            position = last;
            if page.next_after_seq.is_none() {
                break;
            }
        }
        positions.published.insert(book.clone(), position);
        Ok(())
    }
}

/// The leader's view of what it published.
#[derive(Debug, Default)]
struct Positions {
    /// The last seq published, by book.
    published: HashMap<BookName, u64>,
    /// Positions flushed to NATS but not yet recorded in Postgres.
    unrecorded: HashMap<BookName, u64>,
}
