//! Live feeds of committed events: commit notices, and the gapless subscription built on them.
//!
//! A backend only announces that a book has grown ([`Notice`]: "book B now
//! ends at seq N"); [`subscribe`] turns those announcements into a stream of
//! events by reading the log itself. Notices are hints, never the data: a
//! lost, late or repeated notice can delay an event by at most
//! [`FEED_POLL_INTERVAL_MS`], never skip or repeat one, because the stream's
//! position only advances by reading the store's dense log in order.

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use futures::Stream;
use talea_core::{BookName, Event};
use tokio::sync::broadcast;

use crate::{Store, StoreError};

/// Notices a slow in-process receiver may fall behind by before it is told it
/// lagged (it then re-reads the log, so nothing is lost).
pub const NOTICE_BUFFER_MAX: usize = 4096;

/// How often a subscription re-reads the log when no notice arrives, so a
/// lost notice (a dropped LISTEN connection, say) delays events, never loses them.
pub const FEED_POLL_INTERVAL_MS: u64 = 1_000;

/// Events read from the store per page while catching up.
pub const FEED_PAGE_MAX: u32 = 1_000;

/// "Book `book` now has events up to `last_seq`."
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// The book that grew.
    pub book: BookName,
    /// Its last seq after the commit.
    pub last_seq: u64,
}

/// The in-process notice channel a backend keeps: it publishes after each
/// durable commit, and every `Store::watch` call gets a receiver.
#[derive(Debug, Clone)]
pub struct NoticeBus {
    tx: broadcast::Sender<Notice>,
}

impl Default for NoticeBus {
    fn default() -> Self {
        Self::new()
    }
}

impl NoticeBus {
    /// A bus holding at most [`NOTICE_BUFFER_MAX`] unread notices per receiver.
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(NOTICE_BUFFER_MAX);
        Self { tx }
    }

    /// Announces that `book` now ends at `last_seq`. Call it only after the
    /// events are durable and readable. Having no receiver is fine.
    pub fn publish(&self, book: &BookName, last_seq: u64) {
        // An error only means nobody listens right now.
        let _ = self.tx.send(Notice {
            book: book.clone(),
            last_seq,
        });
    }

    /// A receiver of every notice published from now on.
    pub fn receiver(&self) -> broadcast::Receiver<Notice> {
        self.tx.subscribe()
    }

    /// How many receivers are alive (a listener may stop when none is).
    pub fn receiver_count(&self) -> usize {
        self.tx.receiver_count()
    }
}

/// A boxed stream of a book's events.
pub type EventStream = Pin<Box<dyn Stream<Item = Result<Event, StoreError>> + Send>>;

/// Every event of `book` with seq above `after_seq`, in order, with no gap
/// and no repeat: first what the log already holds, then live events as
/// they commit. The stream never ends by itself; it yields one `Err` and
/// ends if the store fails (the caller resumes from the last seq it saw).
pub fn subscribe(store: Arc<dyn Store>, book: BookName, after_seq: u64) -> EventStream {
    let state = Feed {
        store,
        book,
        position: after_seq,
        ready: VecDeque::new(),
        notices: None,
        failed: false,
    };
    Box::pin(futures::stream::unfold(state, |mut feed| async move {
        let item = feed.next().await?;
        Some((item, feed))
    }))
}

struct Feed {
    store: Arc<dyn Store>,
    book: BookName,
    /// The seq of the last event handed out (or read into `ready`).
    position: u64,
    ready: VecDeque<Event>,
    notices: Option<broadcast::Receiver<Notice>>,
    failed: bool,
}

impl Feed {
    async fn next(&mut self) -> Option<Result<Event, StoreError>> {
        if self.failed {
            return None;
        }
        match self.advance().await {
            Ok(event) => Some(Ok(event)),
            Err(error) => {
                self.failed = true;
                Some(Err(error))
            }
        }
    }

    async fn advance(&mut self) -> Result<Event, StoreError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(event);
            }
            // Listen before reading, so a commit that lands between the read
            // and the wait is announced to this receiver.
            if self.notices.is_none() {
                self.notices = Some(self.store.watch().await?);
            }
            let page = self
                .store
                .events(&self.book, self.position, FEED_PAGE_MAX)
                .await?;
            if !page.is_empty() {
                for event in page {
                    if event.seq != self.position + 1 {
                        return Err(StoreError::Corrupt(format!(
                            "book {} skipped from seq {} to {}",
                            self.book.as_str(),
                            self.position,
                            event.seq
                        )));
                    }
                    self.position = event.seq;
                    self.ready.push_back(event);
                }
                continue;
            }
            self.wait_for_growth().await;
        }
    }

    /// Waits until a notice says the book grew past `position`, the notice
    /// channel lagged or closed, or the poll interval passed.
    async fn wait_for_growth(&mut self) {
        let Some(notices) = self.notices.as_mut() else {
            return;
        };
        let deadline = tokio::time::Instant::now() + Duration::from_millis(FEED_POLL_INTERVAL_MS);
        loop {
            match tokio::time::timeout_at(deadline, notices.recv()).await {
                Err(_elapsed) => return,
                Ok(Ok(notice)) => {
                    if notice.book == self.book && notice.last_seq > self.position {
                        return;
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => return,
                Ok(Err(broadcast::error::RecvError::Closed)) => {
                    // The backend's listener went away: ask for a new one on
                    // the next round, after one poll interval.
                    self.notices = None;
                    tokio::time::sleep_until(deadline).await;
                    return;
                }
            }
        }
    }
}
