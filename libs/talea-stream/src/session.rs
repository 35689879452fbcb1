//! One subscriber's session: catch up from the log, then follow the live feed, as SSE frames.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::Stream;
use serde_json::json;
use talea_api::ApiError;
use talea_auth::Hide;
use tokio::sync::{broadcast, mpsc, oneshot};

use crate::{BACKFILL_PAGE_MAX, Hub, LiveEvent, StreamPermit};

/// What a subscriber asked for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// The book.
    pub book: String,
    /// Resume after this seq (`after_seq` or `Last-Event-ID`); `None` is
    /// live from now.
    pub after_seq: Option<u64>,
    /// Only events touching one of these accounts; `None` is every event.
    pub accounts: Option<BTreeSet<String>>,
    /// Fields removed from every event sent (the token's field scope).
    pub hide: Hide,
    /// Start with `event: snapshot`: the balances of the (filtered)
    /// accounts as of seq N, then every event from N + 1. Ignored on a
    /// resume (`after_seq` given): a resumed client has its state already.
    pub snapshot: bool,
}

/// The answer of a scope re-check: `Err` carries the `event: error` body
/// that ends the stream (`{"error":"forbidden","book":…}`).
pub type RecheckFuture = Pin<Box<dyn Future<Output = Result<(), serde_json::Value>> + Send>>;

/// A periodic re-check of the subscriber's right to the book.
pub struct Recheck {
    /// How often (the token's TTL).
    pub every: Duration,
    /// The check itself.
    pub check: Box<dyn Fn() -> RecheckFuture + Send + Sync>,
}

impl std::fmt::Debug for Recheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Recheck")
            .field("every", &self.every)
            .finish_non_exhaustive()
    }
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// The client went away.
    ClientGone,
    /// The client read too slowly and its buffer overflowed.
    SlowConsumer,
    /// The process is shutting down.
    Shutdown,
    /// A re-check no longer allows the book.
    Forbidden,
    /// The log could not be read.
    Failed,
}

/// Opens a session and returns its frames: `retry:`, then events (with
/// heartbeat comments in between), then at most one closing frame. The
/// session runs in its own task, holding `permit` (its token's slot and
/// its process slot, from [`Hub::try_admit`]) until it ends.
///
/// The start is fixed before this returns: the live feed is joined and, for
/// a stream "from now", the book's current end is read, so every event
/// committed after `open` returns is in the stream. Fails only when that
/// end cannot be read.
pub async fn open(
    hub: &Hub,
    subscription: Subscription,
    recheck: Option<Recheck>,
    permit: StreamPermit,
) -> Result<impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static, ApiError> {
    // Listen before reading the log, so nothing falls between the two.
    let live = hub.live(&subscription.book);
    let mut first = None;
    let position = match subscription.after_seq {
        Some(seq) => seq,
        None if subscription.snapshot => {
            // One consistent cut: the balances are exactly those at its
            // seq, and the session goes on from the seq after it.
            let snapshot = hub
                .backfill()
                .snapshot(&subscription.book, subscription.accounts.as_ref())
                .await?;
            first = Some(crate::snapshot_frame(&snapshot)?);
            snapshot.seq
        }
        None => hub
            .backfill()
            .last_seq(&subscription.book)
            .await?
            .unwrap_or(0),
    };
    let config = hub.config().clone();
    let (frames, rx) = mpsc::channel(config.buffer_events_max.max(1));
    if let Some(frame) = first {
        // The channel is new and holds at least one frame: this cannot fail.
        if frames.try_send(frame).is_err() {
            return Err(ApiError::unavailable("cannot queue the snapshot"));
        }
    }
    let (closing_tx, closing_rx) = oneshot::channel();
    let session = Session {
        hub: hub.clone(),
        subscription,
        frames,
    };
    tokio::spawn(async move {
        let (end, closing) = session.run(live, position, recheck).await;
        hub_stats(&session.hub, end);
        // The body may be gone already (the client left): nothing to tell.
        let _ = closing_tx.send(closing);
        drop(permit);
    });
    let heartbeat = Duration::from_secs(config.heartbeat_s.max(1));
    let now = tokio::time::Instant::now();
    let body = Body {
        frames: rx,
        closing: Some(closing_rx),
        started: false,
        heartbeat,
        last_write: now,
        heartbeat_due: Box::pin(tokio::time::sleep_until(now + heartbeat)),
    };
    Ok(futures::stream::unfold(body, |mut body| async move {
        let frame = body.next().await?;
        Some((Ok(frame), body))
    }))
}

fn hub_stats(hub: &Hub, end: End) {
    hub.observer().ended(end);
}

/// Most bytes of queued frames written to a subscriber as one chunk.
pub const WRITE_COALESCE_BYTES_MAX: usize = 64 * 1024;

/// How long a gap repair waits for the log to hold the missing events
/// (a read replica may trail the primary the live feed came from).
const GAP_REPAIR_WAIT_MS: u64 = 5_000;

/// The response side: drains the session's frames, adds heartbeats, and
/// ends with the session's closing frame.
///
/// The heartbeat timer is not reset on every frame (a timer reset takes the
/// runtime's timer lock, and a busy fan-out writes 100k frames a second):
/// each frame only records when it went out, and when the timer fires it
/// either sends the heartbeat or moves itself to a period after that write.
struct Body {
    frames: mpsc::Receiver<Bytes>,
    closing: Option<oneshot::Receiver<Option<String>>>,
    started: bool,
    heartbeat: Duration,
    last_write: tokio::time::Instant,
    heartbeat_due: Pin<Box<tokio::time::Sleep>>,
}

impl Body {
    async fn next(&mut self) -> Option<Bytes> {
        if !self.started {
            self.started = true;
            return Some(Bytes::from(crate::retry_frame()));
        }
        loop {
            let closing = self.closing.as_mut()?;
            tokio::select! {
                frame = self.frames.recv() => return match frame {
                    Some(frame) => {
                        self.last_write = tokio::time::Instant::now();
                        Some(self.coalesce(frame))
                    }
                    None => {
                        // Every event the session queued has been sent; the
                        // closing frame (if any) goes last.
                        let closing = closing.await.ok().flatten();
                        self.closing = None;
                        closing.map(Bytes::from)
                    }
                },
                () = self.heartbeat_due.as_mut() => {
                    let now = tokio::time::Instant::now();
                    let quiet_until = self.last_write + self.heartbeat;
                    if quiet_until > now {
                        // Something went out since: due a period after it.
                        self.heartbeat_due.as_mut().reset(quiet_until);
                        continue;
                    }
                    self.last_write = now;
                    self.heartbeat_due.as_mut().reset(now + self.heartbeat);
                    return Some(Bytes::from(crate::heartbeat_frame()));
                }
            }
        }
    }

    /// `first` plus whatever else is queued already, up to
    /// [`WRITE_COALESCE_BYTES_MAX`], as one chunk: one write for a burst
    /// instead of one per event, which is what keeps a busy fan-out's
    /// system calls in check. A lone frame goes out as is, uncopied.
    fn coalesce(&mut self, first: Bytes) -> Bytes {
        let Ok(second) = self.frames.try_recv() else {
            return first;
        };
        let mut chunk = BytesMut::with_capacity(first.len() + second.len());
        chunk.extend_from_slice(&first);
        chunk.extend_from_slice(&second);
        while chunk.len() < WRITE_COALESCE_BYTES_MAX {
            match self.frames.try_recv() {
                Ok(frame) => chunk.extend_from_slice(&frame),
                Err(_) => break,
            }
        }
        chunk.freeze()
    }
}

struct Session {
    hub: Hub,
    subscription: Subscription,
    frames: mpsc::Sender<Bytes>,
}

/// A session step that must stop the session.
type Stop = End;

impl Session {
    async fn run(
        &self,
        live: broadcast::Receiver<Arc<LiveEvent>>,
        position: u64,
        recheck: Option<Recheck>,
    ) -> (End, Option<String>) {
        let mut withdrawn = None;
        let end = self
            .follow(live, position, recheck.as_ref(), &mut withdrawn)
            .await;
        if let Some(body) = withdrawn {
            return (end, Some(crate::error_frame(&body)));
        }
        let closing = match end {
            End::ClientGone => None,
            End::SlowConsumer => Some(crate::error_frame(&json!({"error": "slow_consumer"}))),
            End::Shutdown => Some(crate::shutdown_frame()),
            End::Forbidden => Some(crate::error_frame(&json!({
                "error": "forbidden",
                "book": self.subscription.book,
            }))),
            End::Failed => Some(crate::error_frame(&json!({"error": "unavailable"}))),
        };
        (end, closing)
    }

    /// Runs the session; when a re-check withdraws access, its error body
    /// is left in `withdrawn` for the closing frame.
    async fn follow(
        &self,
        mut live: broadcast::Receiver<Arc<LiveEvent>>,
        mut position: u64,
        recheck: Option<&Recheck>,
        withdrawn: &mut Option<serde_json::Value>,
    ) -> End {
        let book = &self.subscription.book;
        let mut shutdown = self.hub.shutdown_signal();
        if let Err(end) = self.catch_up(&mut position, None, &shutdown).await {
            return end;
        }
        self.hub.joined(book, position);
        let mut recheck_timer = recheck.map(|r| {
            let every = r.every.max(Duration::from_millis(100));
            tokio::time::interval_at(tokio::time::Instant::now() + every, every)
        });
        loop {
            tokio::select! {
                biased;
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return End::Shutdown;
                    }
                }
                () = self.frames.closed() => return End::ClientGone,
                _ = tick(&mut recheck_timer) => {
                    if let Some(r) = recheck
                        && let Err(body) = (r.check)().await {
                            tracing::info!(book, reason = %body, "stream access withdrawn");
                            *withdrawn = Some(body);
                            return End::Forbidden;
                        }
                }
                received = live.recv() => {
                    let step = match received {
                        Ok(event) => self.on_live(event, &mut position, &shutdown).await,
                        Err(broadcast::error::RecvError::Lagged(_)) => {
                            self.catch_up(&mut position, None, &shutdown).await
                        }
                        Err(broadcast::error::RecvError::Closed) => {
                            // The book's feed ended: start a new one and read
                            // the log for what fell in between.
                            live = self.hub.live(book);
                            self.catch_up(&mut position, None, &shutdown).await
                        }
                    };
                    if let Err(end) = step {
                        return end;
                    }
                }
            }
        }
    }

    async fn on_live(
        &self,
        event: Arc<LiveEvent>,
        position: &mut u64,
        shutdown: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        if event.seq <= *position {
            return Ok(()); // Sent already (a repeat, or read from the log first).
        }
        if event.seq > *position + 1 {
            // A gap on the live feed: fill it from the log first.
            self.hub.observer().gap_repair();
            let deadline = tokio::time::Instant::now() + Duration::from_millis(GAP_REPAIR_WAIT_MS);
            loop {
                self.catch_up(position, Some(event.seq - 1), shutdown)
                    .await?;
                if event.seq <= *position + 1 {
                    break;
                }
                if tokio::time::Instant::now() >= deadline {
                    // Never send past a hole: the client resumes from
                    // what it has, once the log holds the rest.
                    tracing::warn!(
                        book = self.subscription.book,
                        at = *position,
                        next = event.seq,
                        "the log does not hold the events of a live gap"
                    );
                    return Err(End::Failed);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            if event.seq <= *position {
                return Ok(());
            }
        }
        *position = event.seq;
        if !self.wanted(&event) {
            return Ok(());
        }
        match self
            .frames
            .try_send(event.frame_for(self.subscription.hide))
        {
            Ok(()) => {
                self.hub.observer().delivered(&event);
                Ok(())
            }
            Err(mpsc::error::TrySendError::Full(_)) => Err(End::SlowConsumer),
            Err(mpsc::error::TrySendError::Closed(_)) => Err(End::ClientGone),
        }
    }

    /// Sends everything the log holds after `position` (up to `until` when
    /// given), waiting for the client as it reads.
    async fn catch_up(
        &self,
        position: &mut u64,
        until: Option<u64>,
        shutdown: &tokio::sync::watch::Receiver<bool>,
    ) -> Result<(), Stop> {
        let book = &self.subscription.book;
        loop {
            if until.is_some_and(|u| *position >= u) {
                return Ok(());
            }
            if *shutdown.borrow() {
                return Err(End::Shutdown);
            }
            self.hub.observer().backfill_read();
            let page = match self
                .hub
                .backfill()
                .events(book, *position, BACKFILL_PAGE_MAX)
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, book, "stream cannot read the log");
                    return Err(End::Failed);
                }
            };
            let full = page.len() >= BACKFILL_PAGE_MAX as usize;
            for event in page {
                if event.seq != *position + 1 {
                    tracing::error!(
                        book,
                        at = *position,
                        got = event.seq,
                        "the log skipped a seq"
                    );
                    return Err(End::Failed);
                }
                *position = event.seq;
                if self.wanted(&event) {
                    if self
                        .frames
                        .send(event.frame_for(self.subscription.hide))
                        .await
                        .is_err()
                    {
                        return Err(End::ClientGone);
                    }
                    self.hub.observer().delivered(&event);
                }
            }
            if !full {
                return Ok(());
            }
        }
    }

    fn wanted(&self, event: &LiveEvent) -> bool {
        match &self.subscription.accounts {
            None => true,
            Some(filter) => !filter.is_disjoint(&event.accounts),
        }
    }
}

/// Ticks `timer` if there is one; pends forever otherwise.
async fn tick(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}
