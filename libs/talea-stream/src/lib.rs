//! Live streams of a book's events for SSE subscribers: resume, backfill, dedup, gap repair, limits.
//!
//! A subscriber asks for a book's events after some seq (or from now). The
//! stream first backfills what the log already holds, then follows a live
//! feed ([`Hub`]), dropping anything it has already sent (dedup by seq) and
//! filling from the log any gap it sees before it sends anything later. So
//! an unfiltered stream delivers every event exactly once, in order, however
//! the live feed behaves (lost, repeated or reordered messages).
//!
//! The pieces:
//! - [`Backfill`]: reads events by seq from a store (talead's own ledger, or
//!   the fanout's read-only one), as the wire DTOs.
//! - [`LiveSource`]: where live events come from: [`NoticeSource`] turns the
//!   store's commit notices into events (talead); NATS does it in the fanout.
//! - [`Hub`]: one live-source task per book with subscribers, fanned out in
//!   process to every subscriber of that book.
//! - [`Hub::try_admit`]: a stream's slots, one of its token's
//!   (`max_per_token`) and one of the process's (`max_connections`), held
//!   by the session as a [`StreamPermit`] until it ends.
//! - [`open`]: one subscriber's session, as a stream of SSE text frames with
//!   heartbeats, a bounded buffer (slow consumers are told and cut off), a
//!   periodic scope re-check, and a `shutdown` event on graceful shutdown.
//!
//! Frames are plain `text/event-stream` text, so this crate needs no HTTP
//! framework; talea-http and the fanout wrap them in a response body.

mod hub;
mod limit;
mod session;
mod source;

use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use talea_api::{EventDto, SnapshotDto};
use talea_auth::{HIDE_SETS, Hide};

pub use hub::{BOOK_CHANNEL_EVENTS_MAX, Hub, NoObserver, StreamObserver, TAIL_CHECK_MS};
pub use limit::{Refusal, StreamPermit, max_per_token};
pub use session::{End, Recheck, RecheckFuture, Subscription, WRITE_COALESCE_BYTES_MAX, open};
pub use source::{Backfill, LedgerBackfill, LiveSource, NoticeSource};

/// Default `TALEA_SSE_HEARTBEAT_S`.
pub const HEARTBEAT_S_DEFAULT: u64 = 15;
/// Default `TALEA_SSE_BUFFER`: events queued for one subscriber before it is a slow consumer.
pub const BUFFER_EVENTS_DEFAULT: usize = 1024;
/// Default `TALEA_SSE_MAX_CONNECTIONS`.
pub const MAX_CONNECTIONS_DEFAULT: usize = 10_000;
/// Default `TALEA_SSE_MAX_PER_TOKEN`: streams one token (by name, across
/// every book) may hold open in one process. A tenth of
/// [`MAX_CONNECTIONS_DEFAULT`], so one runaway token leaves at least 90% of
/// the slots to everyone else; and high enough for a browser app whose
/// pages all stream with tickets minted from one token (1,000 open tabs per
/// replica).
pub const MAX_PER_TOKEN_DEFAULT: usize = 1_000;
const _: () =
    assert!(MAX_PER_TOKEN_DEFAULT >= 1 && MAX_PER_TOKEN_DEFAULT <= MAX_CONNECTIONS_DEFAULT);
/// The reconnection delay sent to clients (`retry:`), in milliseconds.
pub const RETRY_MS: u64 = 2_000;
/// Events read from the store per backfill page.
pub const BACKFILL_PAGE_MAX: u32 = 1_000;
/// Most accounts one `accounts=` filter may name.
pub const FILTER_ACCOUNTS_MAX: usize = 100;

/// Limits and timings of streams, one set per process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// Seconds between heartbeat comments.
    pub heartbeat_s: u64,
    /// Events queued for one subscriber before it is cut off as slow.
    pub buffer_events_max: usize,
    /// Concurrent streams the process serves (the caller enforces it with
    /// [`Hub::try_admit`]).
    pub max_connections: usize,
    /// Concurrent streams one token (by name) may hold in the process,
    /// across every book; `1..=max_connections` (see [`max_per_token`]).
    pub max_per_token: usize,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            heartbeat_s: HEARTBEAT_S_DEFAULT,
            buffer_events_max: BUFFER_EVENTS_DEFAULT,
            max_connections: MAX_CONNECTIONS_DEFAULT,
            max_per_token: MAX_PER_TOKEN_DEFAULT,
        }
    }
}

/// One committed event, ready to send: its SSE frame is built once and
/// shared (reference-counted, never copied) by every subscriber. A
/// subscriber whose token hides fields gets the frame without them, built
/// on first demand and then shared by every subscriber with the same hide
/// set.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveEvent {
    /// The event's seq in its book.
    pub seq: u64,
    /// `transaction` or `account_opened`.
    pub kind: String,
    /// The commit time, as on the wire.
    pub committed_at: String,
    /// The accounts the event touches (for `accounts=` filters).
    pub accounts: BTreeSet<String>,
    /// `committed_at` in microseconds since the epoch, parsed once (for
    /// the delivery-latency metric, which would otherwise parse it per
    /// delivery).
    pub committed_micros: Option<i64>,
    frame: Bytes,
    /// Where `data: ` starts in `frame`, to rebuild it without hidden fields.
    data_at: usize,
    /// The frame per non-empty hide set ([`Hide::index`]), built on demand.
    hidden: [OnceLock<Bytes>; HIDE_SETS],
}

impl LiveEvent {
    /// An event whose `data` serializes to `data_json`. Its frame carries,
    /// beside `id`, `event` and `data`, the event's `committed_at` and (when
    /// it has one) its chain `hash`, so a subscriber can check the chain
    /// (`docs/proofs.md`); SSE clients ignore fields they do not know.
    pub fn new(
        seq: u64,
        kind: String,
        committed_at: String,
        hash: Option<&str>,
        accounts: BTreeSet<String>,
        data_json: &str,
    ) -> Arc<LiveEvent> {
        let mut head = format!("id: {seq}\nevent: {kind}\ncommitted_at: {committed_at}\n");
        if let Some(hash) = hash {
            head.push_str("hash: ");
            head.push_str(hash);
            head.push('\n');
        }
        let data_at = head.len();
        let frame = Bytes::from(format!("{head}data: {data_json}\n\n"));
        let committed_micros = talea_api::parse_timestamp(&committed_at).map(|t| t.micros());
        Arc::new(LiveEvent {
            seq,
            kind,
            committed_at,
            accounts,
            committed_micros,
            frame,
            data_at,
            hidden: Default::default(),
        })
    }

    /// Builds the shared form of a wire event.
    pub fn from_dto(dto: &EventDto) -> Arc<LiveEvent> {
        let mut accounts = BTreeSet::new();
        if let Some(postings) = dto.data.get("postings").and_then(|p| p.as_array()) {
            for posting in postings {
                if let Some(account) = posting.get("account").and_then(|a| a.as_str()) {
                    accounts.insert(account.to_owned());
                }
            }
        } else if let Some(name) = dto.data.get("name").and_then(|n| n.as_str()) {
            accounts.insert(name.to_owned());
        }
        LiveEvent::new(
            dto.seq,
            dto.kind.clone(),
            dto.committed_at.clone(),
            dto.hash.as_deref(),
            accounts,
            &dto.data.to_string(),
        )
    }

    /// The SSE frame of this event (a cheap, shared handle).
    pub fn frame(&self) -> Bytes {
        self.frame.clone()
    }

    /// The frame as a subscriber hiding `hide` may see it: [`Self::frame`]
    /// when nothing is hidden, else the frame without those fields in
    /// `data`, built once per event and hide set, then shared.
    pub fn frame_for(&self, hide: Hide) -> Bytes {
        match hide.index().and_then(|i| self.hidden.get(i)) {
            None => self.frame(),
            Some(slot) => slot.get_or_init(|| self.strip(hide)).clone(),
        }
    }

    fn strip(&self, hide: Hide) -> Bytes {
        let head = self.frame.get(..self.data_at).unwrap_or_default();
        let data = self
            .frame
            .get(self.data_at..)
            .and_then(|rest| rest.strip_prefix(b"data: "))
            .and_then(|rest| rest.strip_suffix(b"\n\n"));
        let stripped = data
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(d).ok())
            .map(|mut value| {
                hide.strip_value(&mut value);
                value.to_string()
            });
        match stripped {
            Some(data) => {
                let mut frame = Vec::with_capacity(head.len() + data.len() + 8);
                frame.extend_from_slice(head);
                frame.extend_from_slice(b"data: ");
                frame.extend_from_slice(data.as_bytes());
                frame.extend_from_slice(b"\n\n");
                Bytes::from(frame)
            }
            // Data that is not JSON carries no field to hide; it cannot
            // happen (every source serializes a JSON value), but if it did,
            // sending nothing of it is the safe side.
            None => {
                let mut frame = Vec::with_capacity(head.len() + 10);
                frame.extend_from_slice(head);
                frame.extend_from_slice(b"data: {}\n\n");
                Bytes::from(frame)
            }
        }
    }
}

/// The first frame of every stream: the client's reconnection delay.
pub fn retry_frame() -> String {
    format!("retry: {RETRY_MS}\n\n")
}

/// The `event: snapshot` frame that starts a `?snapshot=balances` stream,
/// with the snapshot's seq as its `id` (a client resuming from it gets
/// every event after the snapshot).
pub fn snapshot_frame(snapshot: &SnapshotDto) -> Result<Bytes, talea_api::ApiError> {
    let data = serde_json::to_string(snapshot)
        .map_err(|_| talea_api::ApiError::unavailable("cannot encode the snapshot"))?;
    Ok(Bytes::from(format!(
        "id: {}\nevent: snapshot\ndata: {data}\n\n",
        snapshot.seq
    )))
}

/// A heartbeat comment.
pub fn heartbeat_frame() -> String {
    ": keepalive\n\n".to_owned()
}

/// An `event: error` frame with a JSON body.
pub fn error_frame(body: &serde_json::Value) -> String {
    format!("event: error\ndata: {body}\n\n")
}

/// The `event: shutdown` frame.
pub fn shutdown_frame() -> String {
    "event: shutdown\ndata: {}\n\n".to_owned()
}

/// Parses an `accounts=a,b` filter: `None` for no filter.
pub fn parse_accounts(text: Option<&str>) -> Result<Option<BTreeSet<String>>, String> {
    let Some(text) = text else {
        return Ok(None);
    };
    let names: BTreeSet<String> = text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err("accounts= names no account".to_owned());
    }
    if names.len() > FILTER_ACCOUNTS_MAX {
        return Err(format!(
            "accounts= names {} accounts; at most {FILTER_ACCOUNTS_MAX}",
            names.len()
        ));
    }
    Ok(Some(names))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn events_know_their_accounts_and_frame_themselves() {
        let tx = EventDto {
            seq: 43,
            kind: "transaction".to_owned(),
            committed_at: "2026-11-22T10:00:00.000000Z".to_owned(),
            data: json!({"tx_id": "t", "postings": [{"account": "a"}, {"account": "b"}]}),
            hash: Some("ab".repeat(32)),
        };
        let live = LiveEvent::from_dto(&tx);
        assert_eq!(
            live.accounts.iter().map(String::as_str).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(
            live.frame(),
            format!(
                "id: 43\nevent: transaction\ncommitted_at: 2026-11-22T10:00:00.000000Z\nhash: {}\n\
                 data: {{\"tx_id\":\"t\",\"postings\":[{{\"account\":\"a\"}},{{\"account\":\"b\"}}]}}\n\n",
                "ab".repeat(32)
            )
        );
        let opened = EventDto {
            seq: 1,
            kind: "account_opened".to_owned(),
            committed_at: String::new(),
            data: json!({"name": "hot"}),
            hash: None,
        };
        assert!(LiveEvent::from_dto(&opened).accounts.contains("hot"));
    }

    #[test]
    fn hidden_frames_are_built_once_per_hide_set_and_shared() {
        let tx = EventDto {
            seq: 7,
            kind: "transaction".to_owned(),
            committed_at: "2026-11-22T10:00:00.000000Z".to_owned(),
            data: json!({"tx_id": "t", "memo": "secret memo", "metadata": {"k": "secret"}}),
            hash: None,
        };
        let live = LiveEvent::from_dto(&tx);
        assert_eq!(live.frame_for(Hide::NONE), live.frame());
        let both = Hide::from_list(&["metadata", "memo"]).expect("valid");
        let stripped = live.frame_for(both);
        assert_eq!(
            stripped,
            "id: 7\nevent: transaction\ncommitted_at: 2026-11-22T10:00:00.000000Z\n\
             data: {\"tx_id\":\"t\"}\n\n"
        );
        // The second subscriber with the same set shares the same bytes.
        assert_eq!(live.frame_for(both).as_ptr(), stripped.as_ptr());
        let memo = Hide::from_list(&["memo"]).expect("valid");
        let text = String::from_utf8(live.frame_for(memo).to_vec()).expect("utf-8");
        assert!(
            !text.contains("secret memo") && text.contains("\"k\":\"secret\""),
            "{text}"
        );
        // The shared frame is untouched.
        assert!(String::from_utf8_lossy(&live.frame()).contains("secret memo"));
    }

    #[test]
    fn account_filters() {
        assert_eq!(parse_accounts(None), Ok(None));
        let parsed = parse_accounts(Some("a, b,,a"))
            .expect("valid")
            .expect("some");
        assert_eq!(parsed.len(), 2);
        assert!(parse_accounts(Some(",")).is_err());
        let many = (0..=FILTER_ACCOUNTS_MAX)
            .map(|i| format!("a{i}"))
            .collect::<Vec<_>>()
            .join(",");
        assert!(parse_accounts(Some(&many)).is_err());
    }
}
