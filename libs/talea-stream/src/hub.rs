//! The hub: one live-source task per book with subscribers, fanned out in process.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Semaphore, broadcast, watch};

use crate::limit::{Refusal, StreamPermit, TokenCounts};
use crate::{Backfill, End, LiveEvent, LiveSource, StreamConfig};

/// Hears what streams do, for metrics. Every method defaults to nothing.
pub trait StreamObserver: Send + Sync + std::fmt::Debug + 'static {
    /// An event was queued for a subscriber.
    fn delivered(&self, _event: &LiveEvent) {}
    /// A gap on the live feed was filled from the log.
    fn gap_repair(&self) {}
    /// A page was read from the log (resume, catch-up or repair).
    fn backfill_read(&self) {}
    /// A session ended.
    fn ended(&self, _end: End) {}
    /// A stream was refused before it started, at a limit.
    fn refused(&self, _refusal: Refusal) {}
}

/// The observer that hears nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoObserver;

impl StreamObserver for NoObserver {}

/// How often a book's feed task checks whether anyone still listens.
const IDLE_CHECK_MS: u64 = 1_000;

/// Silence on a book's feed after which the hub checks the log's tail.
pub const TAIL_CHECK_MS: u64 = 2_000;

/// Live events one book's channel holds for its slowest subscriber before
/// that subscriber lags (it then repairs from the log, losing nothing).
pub const BOOK_CHANNEL_EVENTS_MAX: usize = 4_096;

/// Shared by every stream of a process: the live feeds by book, the
/// backfill reader, the connection permits, the per-token counts and the
/// shutdown signal.
#[derive(Debug, Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    source: Arc<dyn LiveSource>,
    backfill: Arc<dyn Backfill>,
    observer: Arc<dyn StreamObserver>,
    config: StreamConfig,
    permits: Arc<Semaphore>,
    tokens: Arc<TokenCounts>,
    books: Mutex<HashMap<String, Feed>>,
    shutdown: watch::Sender<bool>,
}

/// One followed book: its channel, and the lowest position a subscriber
/// reached in the log before relying on the feed (`u64::MAX`: none yet).
#[derive(Debug, Clone)]
struct Feed {
    tx: broadcast::Sender<Arc<LiveEvent>>,
    floor: Arc<AtomicU64>,
}

impl Hub {
    /// A hub reading live events from `source` and the log from `backfill`.
    pub fn new(
        source: Arc<dyn LiveSource>,
        backfill: Arc<dyn Backfill>,
        observer: Arc<dyn StreamObserver>,
        config: StreamConfig,
    ) -> Hub {
        let (shutdown, _) = watch::channel(false);
        Hub {
            inner: Arc::new(Inner {
                source,
                backfill,
                observer,
                permits: Arc::new(Semaphore::new(config.max_connections)),
                tokens: TokenCounts::new(config.max_per_token),
                config,
                books: Mutex::new(HashMap::new()),
                shutdown,
            }),
        }
    }

    /// The limits in force.
    pub fn config(&self) -> &StreamConfig {
        &self.inner.config
    }

    /// The log reader.
    pub fn backfill(&self) -> &Arc<dyn Backfill> {
        &self.inner.backfill
    }

    /// The metrics observer.
    pub fn observer(&self) -> &Arc<dyn StreamObserver> {
        &self.inner.observer
    }

    /// Admits a stream of the token named `token` (`None`: the unnamed
    /// `TALEA_API_TOKEN`; a ticket's stream passes the name it is bound
    /// to), never waiting: first one of the token's `max_per_token` slots,
    /// then one of the process's `max_connections`. The token's cap comes
    /// first so that a token at its cap is told so (its own doing, 429)
    /// whatever the rest of the process does, and never holds a process
    /// slot, even for a moment. A refusal is reported to the observer.
    pub fn try_admit(&self, token: Option<&str>) -> Result<StreamPermit, Refusal> {
        let admitted = match self.inner.tokens.try_take(token) {
            None => Err(Refusal::TokenCap),
            // Refused here, the token's slot is dropped, so given back.
            Some(slot) => match self.inner.permits.clone().try_acquire_owned() {
                Ok(permit) => Ok(StreamPermit::new(slot, permit)),
                Err(_) => Err(Refusal::Connections),
            },
        };
        if let Err(refusal) = admitted {
            self.inner.observer.refused(refusal);
        }
        admitted
    }

    /// Streams open now.
    pub fn open_streams(&self) -> usize {
        self.inner.config.max_connections - self.inner.permits.available_permits()
    }

    /// Streams the token named `token` has open now (`None`: `TALEA_API_TOKEN`).
    pub fn token_streams(&self, token: Option<&str>) -> usize {
        self.inner.tokens.open(token)
    }

    /// Tokens with at least one stream open now.
    pub fn streaming_tokens(&self) -> usize {
        self.inner.tokens.tokens()
    }

    /// Books with a live feed running now.
    pub fn followed_books(&self) -> usize {
        self.books().len()
    }

    /// Ends every stream with `event: shutdown` (for graceful shutdown).
    pub fn shut_down(&self) {
        self.inner.shutdown.send_replace(true);
    }

    /// Whether [`shut_down`](Self::shut_down) was called, as a watch.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// A receiver of `book`'s live events, starting the book's feed if it
    /// is not running.
    pub fn live(&self, book: &str) -> broadcast::Receiver<Arc<LiveEvent>> {
        let mut books = self.books();
        if let Some(feed) = books.get(book) {
            return feed.tx.subscribe();
        }
        let (tx, rx) = broadcast::channel(BOOK_CHANNEL_EVENTS_MAX);
        let feed = Feed {
            tx,
            floor: Arc::new(AtomicU64::new(u64::MAX)),
        };
        books.insert(book.to_owned(), feed.clone());
        tokio::spawn(follow(self.inner.clone(), book.to_owned(), feed));
        rx
    }

    /// A subscriber of `book` has read the log up to `position` and now
    /// relies on the live feed. Until the feed has sent anything, the tail
    /// check repairs from the lowest such position: the feed may have
    /// started listening after a subscriber's read, and a commit in between
    /// would otherwise reach neither.
    pub fn joined(&self, book: &str, position: u64) {
        if let Some(feed) = self.books().get(book) {
            feed.floor.fetch_min(position, Ordering::AcqRel);
        }
    }

    fn books(&self) -> MutexGuard<'_, HashMap<String, Feed>> {
        lock(&self.inner.books)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere; the map stays consistent.
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the book's source until the book has no subscriber left, and keeps
/// its tail honest: a feed that loses the last events of a burst (a lost
/// message with nothing after it to reveal the gap) would leave subscribers
/// waiting, so every `TAIL_CHECK_MS` of silence the hub compares the last
/// seq it saw with the log's and sends what the feed missed. One read per
/// book, however many subscribers it has.
async fn follow(inner: Arc<Inner>, book: String, feed: Feed) {
    let Feed { tx, floor } = feed;
    // The hub's own receiver, to see what the feed sends.
    let mut seen = tx.subscribe();
    let mut last_seen: Option<u64> = None;
    let feed = inner.source.follow(book.clone(), tx.clone());
    tokio::pin!(feed);
    let mut idle_check = tokio::time::interval(Duration::from_millis(IDLE_CHECK_MS));
    let mut tail_check = tokio::time::interval(Duration::from_millis(TAIL_CHECK_MS));
    tail_check.reset();
    loop {
        tokio::select! {
            () = &mut feed => {
                tracing::warn!(book, "live feed ended; subscribers fall back to the log");
                break;
            }
            received = seen.recv() => match received {
                Ok(event) => {
                    last_seen = Some(last_seen.map_or(event.seq, |s| s.max(event.seq)));
                    tail_check.reset();
                }
                Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = tail_check.tick() => repair_tail(&inner, &book, &tx, &floor, &mut last_seen).await,
            _ = idle_check.tick() => {
                // Under the map's lock, so `live` cannot hand out a receiver
                // of a channel this task is about to abandon. One receiver
                // is the hub's own.
                let mut books = lock(&inner.books);
                if tx.receiver_count() <= 1 {
                    books.remove(&book);
                    return;
                }
            }
        }
    }
    let mut books = lock(&inner.books);
    if books.get(&book).is_some_and(|f| f.tx.same_channel(&tx)) {
        books.remove(&book);
    }
}

/// Sends the events the log holds past `last_seen`, if the feed went quiet
/// behind it. Before the feed has sent anything, sends those past the lowest
/// position a subscriber joined at (see [`Hub::joined`]); with no subscriber
/// joined yet, only records the log's end.
async fn repair_tail(
    inner: &Inner,
    book: &str,
    tx: &broadcast::Sender<Arc<LiveEvent>>,
    floor: &AtomicU64,
    last_seen: &mut Option<u64>,
) {
    let Ok(Some(last)) = inner.backfill.last_seq(book).await else {
        return;
    };
    let mut position = match *last_seen {
        Some(seen) => seen,
        None => match floor.load(Ordering::Acquire) {
            u64::MAX => {
                *last_seen = Some(last);
                return;
            }
            lowest => lowest,
        },
    };
    while position < last {
        inner.observer.gap_repair();
        let Ok(page) = inner
            .backfill
            .events(book, position, crate::BACKFILL_PAGE_MAX)
            .await
        else {
            return;
        };
        let Some(end) = page.last().map(|e| e.seq) else {
            return;
        };
        for event in page {
            let _ = tx.send(event);
        }
        position = end;
    }
    *last_seen = Some(position);
}
