//! Where stream events come from: the log (backfill) and the live feed (sources).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use talea_api::{ApiError, LedgerApi, SeqPage, SnapshotDto};
use talea_core::BookName;
use talea_ledger::LedgerService;
use talea_store::{Notice, feed::FEED_POLL_INTERVAL_MS};
use tokio::sync::broadcast;

use crate::{BACKFILL_PAGE_MAX, LiveEvent};

/// Reads a book's events from the log by seq: the source of truth that
/// resumes and gap repairs read from.
#[async_trait]
pub trait Backfill: Send + Sync + std::fmt::Debug + 'static {
    /// The book's last seq now; `None` when the book has no events.
    async fn last_seq(&self, book: &str) -> Result<Option<u64>, ApiError>;

    /// Events with seq above `after_seq`, in order, at most `limit`; empty
    /// past the end (and for a book with no events).
    async fn events(
        &self,
        book: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Arc<LiveEvent>>, ApiError>;

    /// The balances of the book's accounts (only `accounts` when given)
    /// exactly as of one seq, read in one consistent cut: the start of a
    /// `?snapshot=balances` stream.
    async fn snapshot(
        &self,
        book: &str,
        accounts: Option<&BTreeSet<String>>,
    ) -> Result<SnapshotDto, ApiError>;
}

/// [`Backfill`] over a ledger (talead's own, or the fanout's read-only one).
#[derive(Debug, Clone)]
pub struct LedgerBackfill {
    ledger: LedgerService,
}

impl LedgerBackfill {
    /// Reads through `ledger`.
    pub fn new(ledger: LedgerService) -> Self {
        Self { ledger }
    }
}

#[async_trait]
impl Backfill for LedgerBackfill {
    async fn last_seq(&self, book: &str) -> Result<Option<u64>, ApiError> {
        let name = book_name(book)?;
        self.ledger
            .store()
            .last_seq(&name)
            .await
            .map_err(|e| ApiError::unavailable(e.to_string()))
    }

    async fn events(
        &self,
        book: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Arc<LiveEvent>>, ApiError> {
        let page = SeqPage {
            after_seq: Some(after_seq),
            limit: Some(limit.clamp(1, BACKFILL_PAGE_MAX)),
        };
        match self.ledger.events(book, page).await {
            Ok(list) => Ok(list.events.iter().map(LiveEvent::from_dto).collect()),
            // A book with no events yet reads as an empty page here.
            Err(ApiError::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    async fn snapshot(
        &self,
        book: &str,
        accounts: Option<&BTreeSet<String>>,
    ) -> Result<SnapshotDto, ApiError> {
        self.ledger.balance_snapshot(book, accounts).await
    }
}

fn book_name(book: &str) -> Result<BookName, ApiError> {
    BookName::parse(book).map_err(|e| ApiError::invalid("/book", e.to_string()))
}

/// A live feed of one book's events. The hub runs one `follow` per book
/// with subscribers and stops it (drops the future) when the last leaves.
/// What it sends may have gaps or repeats: sessions repair both.
#[async_trait]
pub trait LiveSource: Send + Sync + std::fmt::Debug + 'static {
    /// Sends the book's events as they commit, from about now, until the
    /// future is dropped. Returning ends the feed (subscribers fall back
    /// to reading the log).
    async fn follow(&self, book: String, tx: broadcast::Sender<Arc<LiveEvent>>);
}

/// The live feed of a process that owns a store: on each commit notice of
/// the book it reads the new events from the log once and sends them to
/// every subscriber. It never skips (it reads the dense log), so sessions
/// fed by it never need a repair.
#[derive(Debug, Clone)]
pub struct NoticeSource {
    ledger: LedgerService,
    backfill: LedgerBackfill,
}

impl NoticeSource {
    /// Follows the commits of `ledger`'s store.
    pub fn new(ledger: LedgerService) -> Self {
        Self {
            backfill: LedgerBackfill::new(ledger.clone()),
            ledger,
        }
    }
}

#[async_trait]
impl LiveSource for NoticeSource {
    async fn follow(&self, book: String, tx: broadcast::Sender<Arc<LiveEvent>>) {
        let mut notices = loop {
            match self.ledger.store().watch().await {
                Ok(rx) => break rx,
                Err(error) => {
                    tracing::warn!(%error, book, "cannot watch commits; retrying");
                    tokio::time::sleep(Duration::from_millis(FEED_POLL_INTERVAL_MS)).await;
                }
            }
        };
        // Listening already: nothing committed from here on is missed.
        let mut position = loop {
            match self.backfill.last_seq(&book).await {
                Ok(last) => break last.unwrap_or(0),
                Err(error) => {
                    tracing::warn!(%error, book, "cannot read the book's position; retrying");
                    tokio::time::sleep(Duration::from_millis(FEED_POLL_INTERVAL_MS)).await;
                }
            }
        };
        loop {
            wait_for(&mut notices, &book, position).await;
            loop {
                let page = match self
                    .backfill
                    .events(&book, position, BACKFILL_PAGE_MAX)
                    .await
                {
                    Ok(page) => page,
                    Err(error) => {
                        tracing::warn!(%error, book, "cannot read new events; retrying");
                        break;
                    }
                };
                let Some(last) = page.last().map(|e| e.seq) else {
                    break;
                };
                for event in page {
                    // No receiver is fine: the hub stops this task soon.
                    let _ = tx.send(event);
                }
                position = last;
            }
        }
    }
}

/// Waits for a notice that `book` grew past `position`, a lag, or the poll interval.
async fn wait_for(notices: &mut broadcast::Receiver<Notice>, book: &str, position: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(FEED_POLL_INTERVAL_MS);
    loop {
        match tokio::time::timeout_at(deadline, notices.recv()).await {
            Err(_) => return,
            Ok(Ok(notice)) if notice.book.as_str() == book && notice.last_seq > position => return,
            Ok(Ok(_)) => {}
            Ok(Err(broadcast::error::RecvError::Lagged(_))) => return,
            Ok(Err(broadcast::error::RecvError::Closed)) => {
                tokio::time::sleep_until(deadline).await;
                return;
            }
        }
    }
}
