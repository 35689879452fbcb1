//! Commit notices from PostgreSQL: one LISTEN connection per store, fanned out in process.
//!
//! Every commit ends with `pg_notify('talea_events', '<book>:<last seq>')`,
//! from whichever instance made it. The first `watch` call opens one LISTEN
//! connection (taken from the store's pool) and starts a task that turns
//! each notification into a [`Notice`] on an in-process [`NoticeBus`];
//! every later `watch` call shares it, so subscribers never cost a database
//! connection each. When the last receiver is gone the task gives the
//! connection back. A notification lost while the connection reconnects is
//! harmless: subscriptions poll the log as well (see `talea_store::feed`).

use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgPool};
use talea_core::BookName;
use talea_store::{Notice, NoticeBus, StoreError};
use tokio::sync::{Mutex, broadcast};

use crate::NOTIFY_CHANNEL;
use crate::error::store_error;

/// How often the listener task checks whether anyone still listens.
const IDLE_CHECK_MS: u64 = 1_000;

/// The pause after a failed receive before the listener reconnects.
const RECONNECT_PAUSE_MS: u64 = 500;

/// The shared listener of one store: `None` while nobody watches.
#[derive(Debug, Clone, Default)]
pub(crate) struct Listener {
    bus: Arc<Mutex<Option<NoticeBus>>>,
}

impl Listener {
    /// A receiver of notices; opens the LISTEN connection if none is open.
    /// Returns only once the server has confirmed the LISTEN, so every
    /// commit after this call is announced.
    pub(crate) async fn watch(
        &self,
        pool: &PgPool,
    ) -> Result<broadcast::Receiver<Notice>, StoreError> {
        let mut slot = self.bus.lock().await;
        if let Some(bus) = slot.as_ref() {
            return Ok(bus.receiver());
        }
        let mut listener = PgListener::connect_with(pool).await.map_err(store_error)?;
        listener.listen(NOTIFY_CHANNEL).await.map_err(store_error)?;
        let bus = NoticeBus::new();
        let receiver = bus.receiver();
        *slot = Some(bus.clone());
        tokio::spawn(run(listener, bus, self.bus.clone()));
        Ok(receiver)
    }
}

/// Parses a `<book>:<last seq>` payload (book names hold no colon).
pub(crate) fn parse_payload(payload: &str) -> Option<Notice> {
    let (book, seq) = payload.rsplit_once(':')?;
    Some(Notice {
        book: BookName::parse(book).ok()?,
        last_seq: seq.parse().ok()?,
    })
}

async fn run(mut listener: PgListener, bus: NoticeBus, slot: Arc<Mutex<Option<NoticeBus>>>) {
    loop {
        match tokio::time::timeout(Duration::from_millis(IDLE_CHECK_MS), listener.recv()).await {
            Ok(Ok(notification)) => match parse_payload(notification.payload()) {
                Some(notice) => bus.publish(&notice.book, notice.last_seq),
                None => tracing::warn!(
                    payload = notification.payload(),
                    "ignoring a malformed commit notification"
                ),
            },
            Ok(Err(sqlx::Error::PoolClosed)) => break,
            Ok(Err(error)) => {
                // recv reconnects on the next call; subscribers poll meanwhile.
                tracing::warn!(%error, "commit notification listener failed; reconnecting");
                tokio::time::sleep(Duration::from_millis(RECONNECT_PAUSE_MS)).await;
            }
            Err(_idle) => {}
        }
        // Under the slot's lock, so `watch` cannot hand out a receiver of a
        // bus this task is about to abandon.
        let mut guard = slot.lock().await;
        if bus.receiver_count() == 0 {
            *guard = None;
            return;
        }
    }
    *slot.lock().await = None;
}

#[cfg(test)]
mod tests {
    use super::parse_payload;

    #[test]
    fn payloads() {
        let notice = parse_payload("pay-ments_1:42").expect("valid");
        assert_eq!(notice.book.as_str(), "pay-ments_1");
        assert_eq!(notice.last_seq, 42);
        assert!(parse_payload("nobook").is_none());
        assert!(parse_payload("Bad:1").is_none());
        assert!(parse_payload("book:x").is_none());
    }
}
