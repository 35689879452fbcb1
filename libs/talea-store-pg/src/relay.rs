//! What the change relay needs from Postgres: leadership, published positions, a checked LISTEN.
//!
//! Exactly one relay publishes at a time: the leader holds a session-level
//! advisory lock on a connection of its own, so the lock goes with the
//! connection when the leader dies (or its network does) and a standby's
//! next attempt wins. The relay's per-book published position lives in
//! `relay_positions`, so a restarted or new leader resumes from the log.

use std::time::Duration;

use sqlx::postgres::{PgConnection, PgListener};
use sqlx::{Connection, Row};
use talea_core::BookName;
use talea_store::{Notice, StoreError};

use crate::NOTIFY_CHANNEL;
use crate::PgStore;
use crate::error::store_error;
use crate::listen::parse_payload;

/// The advisory lock key of relay leadership (`hashtext('talea-relay')` is
/// not stable across versions, so a fixed number).
pub const RELAY_LOCK_KEY: i64 = 0x7461_6c65_6172_6c79; // "talearly"

/// The channel of the start-up round trip check.
const PROBE_CHANNEL: &str = "talea_relay_probe";

/// How long the start-up check waits for its own NOTIFY to come back.
pub const PROBE_TIMEOUT_MS: u64 = 5_000;

/// Relay leadership: held while this value lives and its connection does.
#[derive(Debug)]
pub struct RelayLease {
    conn: PgConnection,
}

impl RelayLease {
    /// Takes leadership if no other relay holds it; `None` when one does.
    pub async fn try_acquire(store: &PgStore) -> Result<Option<RelayLease>, StoreError> {
        let options = store.pool().connect_options();
        let mut conn = PgConnection::connect_with(&options)
            .await
            .map_err(store_error)?;
        let held: bool = sqlx::query_scalar(LEASE)
            .bind(RELAY_LOCK_KEY)
            .fetch_one(&mut conn)
            .await
            .map_err(store_error)?;
        if held {
            Ok(Some(RelayLease { conn }))
        } else {
            // Closing the connection is enough: it holds nothing.
            let _ = conn.close().await;
            Ok(None)
        }
    }

    /// Fails when the lease's connection is gone (leadership may have passed
    /// to another relay: stop publishing).
    pub async fn check(&mut self) -> Result<(), StoreError> {
        self.conn.ping().await.map_err(store_error)
    }

    /// Gives leadership up now.
    pub async fn release(self) {
        let _ = self.conn.close().await;
    }
}

/// One book the relay is behind on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backlog {
    /// The book.
    pub book: BookName,
    /// The last seq published.
    pub published_seq: u64,
    /// The last seq committed.
    pub last_seq: u64,
}

/// Takes the relay's lease (a session advisory lock).
pub(crate) const LEASE: &str = "SELECT pg_try_advisory_lock($1)";

/// Sends the LISTEN check's own notification.
pub(crate) const PROBE: &str = "SELECT pg_notify($1, $2)";

/// Every book ahead of the relay (a sweep of every book, by design).
pub(crate) const RELAY_BACKLOG: &str = "SELECT b.book, COALESCE(r.published_seq, 0) AS published, \
       b.last_seq \
     FROM books b LEFT JOIN relay_positions r ON r.book = b.book \
     WHERE b.last_seq > COALESCE(r.published_seq, 0) \
     ORDER BY b.book";

/// One book's published position.
pub(crate) const RELAY_POSITION: &str = "SELECT published_seq FROM relay_positions WHERE book = $1";

/// Several books' published positions, never moved backwards.
pub(crate) const RECORD_PUBLISHED: &str = "INSERT INTO relay_positions (book, published_seq) \
     SELECT * FROM unnest($1::text[], $2::bigint[]) \
     ON CONFLICT ON CONSTRAINT relay_positions_pkey DO UPDATE \
       SET published_seq = GREATEST(relay_positions.published_seq, EXCLUDED.published_seq), \
           updated_at = now()";

impl PgStore {
    /// Every book whose log is ahead of the relay's published position.
    pub async fn relay_backlog(&self) -> Result<Vec<Backlog>, StoreError> {
        let rows = sqlx::query(RELAY_BACKLOG)
            .fetch_all(self.pool())
            .await
            .map_err(store_error)?;
        rows.iter()
            .map(|row| {
                let book: String = row.try_get("book").map_err(store_error)?;
                let published: i64 = row.try_get("published").map_err(store_error)?;
                let last: i64 = row.try_get("last_seq").map_err(store_error)?;
                Ok(Backlog {
                    book: BookName::parse(&book)
                        .map_err(|e| StoreError::Corrupt(format!("book name {book:?}: {e}")))?,
                    published_seq: u64::try_from(published).unwrap_or(0),
                    last_seq: u64::try_from(last).unwrap_or(0),
                })
            })
            .collect()
    }

    /// The relay's published position of `book` (0 when nothing was published).
    pub async fn relay_position(&self, book: &BookName) -> Result<u64, StoreError> {
        let seq: Option<i64> = sqlx::query_scalar(RELAY_POSITION)
            .bind(book.as_str())
            .fetch_optional(self.pool())
            .await
            .map_err(store_error)?;
        Ok(seq.and_then(|s| u64::try_from(s).ok()).unwrap_or(0))
    }

    /// Records several books' published positions (each book once) in one
    /// statement; never moves one backwards.
    pub async fn record_published(&self, positions: &[(BookName, u64)]) -> Result<(), StoreError> {
        if positions.is_empty() {
            return Ok(());
        }
        let books: Vec<&str> = positions.iter().map(|(b, _)| b.as_str()).collect();
        let seqs = positions
            .iter()
            .map(|(_, seq)| {
                i64::try_from(*seq)
                    .map_err(|_| StoreError::Other(format!("seq {seq} does not fit bigint")))
            })
            .collect::<Result<Vec<i64>, _>>()?;
        sqlx::query(RECORD_PUBLISHED)
            .bind(&books)
            .bind(&seqs)
            .execute(self.pool())
            .await
            .map_err(store_error)?;
        Ok(())
    }
}

/// A LISTEN on commit notifications that is known to work: before it is
/// returned, a NOTIFY it sent itself has come back. Behind a
/// transaction-mode pooler (PgBouncer) LISTEN silently receives nothing;
/// this turns that into a start-up error.
#[derive(Debug)]
pub struct CommitListener {
    listener: PgListener,
}

impl CommitListener {
    /// Listens for commits, after checking the round trip.
    pub async fn connect(store: &PgStore) -> Result<CommitListener, StoreError> {
        let mut listener = PgListener::connect_with(store.pool())
            .await
            .map_err(store_error)?;
        listener
            .listen_all([NOTIFY_CHANNEL, PROBE_CHANNEL])
            .await
            .map_err(store_error)?;
        let nonce = uuid::Uuid::new_v4().to_string();
        sqlx::query(PROBE)
            .bind(PROBE_CHANNEL)
            .bind(&nonce)
            .execute(store.pool())
            .await
            .map_err(store_error)?;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(PROBE_TIMEOUT_MS);
        loop {
            let received = tokio::time::timeout_at(deadline, listener.recv())
                .await
                .map_err(|_| {
                    StoreError::Unavailable(format!(
                        "a NOTIFY sent on {PROBE_CHANNEL} did not come back within \
                         {PROBE_TIMEOUT_MS} ms: LISTEN does not work on this connection. \
                         The relay needs a direct connection to PostgreSQL (not through a \
                         transaction-mode pooler such as PgBouncer): point TALEA_DB_URL at \
                         the server itself"
                    ))
                })?
                .map_err(store_error)?;
            if received.channel() == PROBE_CHANNEL && received.payload() == nonce {
                return Ok(CommitListener { listener });
            }
        }
    }

    /// The notices already received and buffered, without waiting: a busy
    /// relay handles them together (a book notified twice is read once).
    pub fn drain_buffered(&mut self) -> Vec<Notice> {
        let mut notices = Vec::new();
        while let Some(received) = self.listener.next_buffered() {
            if received.channel() != NOTIFY_CHANNEL {
                continue;
            }
            if let Some(notice) = parse_payload(received.payload()) {
                notices.push(notice);
            }
        }
        notices
    }

    /// The next commit notice, or `None` when `wait` passes without one.
    /// A broken connection is an error; calling again reconnects.
    pub async fn next(&mut self, wait: Duration) -> Result<Option<Notice>, StoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let received = match tokio::time::timeout_at(deadline, self.listener.recv()).await {
                Err(_) => return Ok(None),
                Ok(received) => received.map_err(store_error)?,
            };
            if received.channel() != NOTIFY_CHANNEL {
                continue;
            }
            if let Some(notice) = parse_payload(received.payload()) {
                return Ok(Some(notice));
            }
        }
    }
}
