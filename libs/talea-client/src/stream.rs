//! Following a book's live stream (SSE) with automatic, exact resume.
//!
//! [`TaleaClient::follow`] behaves like a browser's `EventSource`, minus its
//! blind spots: it reconnects after any end of the stream (a network
//! failure, a server restart, `event: shutdown`, a `slow_consumer` cut-off)
//! with `Last-Event-ID` set to the last seq it handed out, so the caller
//! sees every event once, in order, whatever happens in between. Only a
//! refusal (401, 403, 404, 400, or access withdrawn mid-stream) ends it.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use reqwest::header::{ACCEPT, AUTHORIZATION, RETRY_AFTER};
use serde_json::Value;
use sse_stream::{Sse, SseByteStream};
use talea_api::ApiError;

use crate::TaleaClient;
use crate::client::{error_body, parse_retry_after};
use crate::path;

/// Longest single SSE line kept while reading (an event is far smaller;
/// a longer line means the server is not a talea).
pub const SSE_LINE_BYTES_MAX: usize = 4 * 1024 * 1024;

/// One event of a book's log, as streamed.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamEvent {
    /// Its seq in the book.
    pub seq: u64,
    /// `transaction` or `account_opened`.
    pub kind: String,
    /// The REST resource (a transaction or an account).
    pub data: Value,
    /// The event's commit time, from the frame's `committed_at:` line (the
    /// data of a `hold_expired` event holds the hold's, not the expiry's).
    pub committed_at: Option<String>,
    /// The event's chain hash, from the frame's `hash:` line
    /// (`docs/proofs.md`); a server older than the chain sends none.
    pub hash: Option<String>,
}

impl StreamEvent {
    /// The event as `GET …/events` serves it (`seq`, `type`,
    /// `committed_at`, `data`, `hash`), for `talea_verify`'s chain checks.
    pub fn to_event_json(&self) -> Value {
        serde_json::json!({
            "seq": self.seq,
            "type": self.kind,
            "committed_at": self.committed_at,
            "data": self.data,
            "hash": self.hash,
        })
    }
}

/// Longest `committed_at:` or `hash:` line kept (both are far shorter).
const CHAIN_LINE_BYTES_MAX: usize = 128;

/// The chain fields of the frames read so far, by id: the lines SSE
/// decoders skip (`committed_at:`, `hash:`), picked out of the bytes before
/// the decoder sees them. Each is taken when its frame is dispatched.
#[derive(Debug, Default)]
struct ChainLines {
    /// The bytes of the current line, if it is short enough to matter.
    line: Vec<u8>,
    /// The current line is longer than any chain field: ignored.
    long: bool,
    /// The last byte was a CR (a CRLF is one line end).
    after_cr: bool,
    /// The fields of the block being read.
    id: Option<u64>,
    committed_at: Option<String>,
    hash: Option<String>,
    /// Finished blocks' fields, by id.
    done: std::collections::HashMap<u64, (Option<String>, Option<String>)>,
}

impl ChainLines {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    self.end_line();
                }
                _ => {
                    self.after_cr = false;
                    if self.line.len() < CHAIN_LINE_BYTES_MAX {
                        self.line.push(b);
                    } else {
                        self.long = true;
                    }
                }
            }
        }
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let long = std::mem::replace(&mut self.long, false);
        if line.is_empty() && !long {
            // A blank line ends the block.
            if let Some(id) = self.id.take() {
                let fields = (self.committed_at.take(), self.hash.take());
                // Bounded: the decoder dispatches each block right after.
                if self.done.len() < 4096 {
                    self.done.insert(id, fields);
                }
            }
            self.committed_at = None;
            self.hash = None;
            return;
        }
        if long {
            return;
        }
        let Ok(text) = std::str::from_utf8(&line) else {
            return;
        };
        let (name, value) = text.split_once(':').unwrap_or((text, ""));
        let value = value.strip_prefix(' ').unwrap_or(value).to_owned();
        match name {
            "id" => self.id = value.parse().ok(),
            "committed_at" => self.committed_at = Some(value),
            "hash" => self.hash = Some(value),
            _ => {}
        }
    }

    fn take(&mut self, id: u64) -> (Option<String>, Option<String>) {
        let fields = self.done.remove(&id).unwrap_or_default();
        // Anything older was a frame the decoder did not dispatch.
        self.done.retain(|&other, _| other > id);
        fields
    }
}

/// What [`TaleaClient::follow`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamItem {
    /// The next event.
    Event(StreamEvent),
    /// The stream broke and is being resumed after `after_seq`.
    Reconnecting {
        /// The last seq delivered so far (0: none).
        after_seq: u64,
        /// Why, for people.
        reason: String,
    },
}

impl TaleaClient {
    /// Follows `book`'s events after `after_seq` (`None`: from now),
    /// reconnecting and resuming by itself. Ends with one `Err` on a
    /// refusal; never ends otherwise.
    pub fn follow(
        &self,
        book: &str,
        after_seq: Option<u64>,
    ) -> impl Stream<Item = Result<StreamItem, ApiError>> + Send + 'static {
        let state = Follow {
            client: self.clone(),
            book: book.to_owned(),
            last: after_seq,
            frames: None,
            chain: Arc::default(),
            failures: 0,
            retry_after: None,
            done: false,
        };
        futures::stream::unfold(state, |mut state| async move {
            let item = state.next().await?;
            Some((item, state))
        })
    }
}

/// The decoded frames of one connection.
type Frames = Pin<Box<dyn Stream<Item = Result<Sse, sse_stream::Error>> + Send>>;

/// Why reading a connection's bytes stopped.
#[derive(Debug, thiserror::Error)]
enum ReadError {
    #[error("{0}")]
    Transport(#[from] reqwest::Error),
    #[error("an SSE line longer than {SSE_LINE_BYTES_MAX} bytes")]
    LineTooLong,
}

/// Decodes `response`'s body with the SSE decoder (sse-stream), refusing a
/// line past [`SSE_LINE_BYTES_MAX`]: the decoder keeps a partial line
/// whole, so without the cap a server that never ends a line could fill
/// memory.
fn frames(response: reqwest::Response, chain: Arc<Mutex<ChainLines>>) -> Frames {
    let chunks = futures::stream::try_unfold(response, |mut response| async move {
        Ok::<_, ReadError>(response.chunk().await?.map(|chunk| (chunk, response)))
    });
    let mut line = 0usize;
    let guarded = chunks.and_then(move |chunk| {
        chain
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .feed(&chunk);
        // `line` counts the bytes since the last line end (CR or LF), across
        // chunks: the first piece of a chunk continues the line before it,
        // each later piece starts a new one.
        let mut too_long = false;
        for (i, piece) in chunk.split(|b| matches!(b, b'\n' | b'\r')).enumerate() {
            line = if i == 0 {
                line.saturating_add(piece.len())
            } else {
                piece.len()
            };
            too_long |= line > SSE_LINE_BYTES_MAX;
        }
        let result = if too_long {
            Err(ReadError::LineTooLong)
        } else {
            Ok(chunk)
        };
        std::future::ready(result)
    });
    Box::pin(SseByteStream::new(guarded))
}

struct Follow {
    client: TaleaClient,
    book: String,
    last: Option<u64>,
    /// The open connection's frames; `None` between connections.
    frames: Option<Frames>,
    /// The open connection's chain fields, by frame id.
    chain: Arc<Mutex<ChainLines>>,
    failures: u32,
    retry_after: Option<Duration>,
    done: bool,
}

/// What a dispatched frame means.
enum Dispatch {
    Event(StreamEvent),
    Reconnect(String),
    Fatal(ApiError),
    Nothing,
}

impl Follow {
    async fn next(&mut self) -> Option<Result<StreamItem, ApiError>> {
        if self.done {
            return None;
        }
        loop {
            let Some(frames) = self.frames.as_mut() else {
                if let Some(item) = self.connect().await {
                    return Some(item);
                }
                continue;
            };
            match frames.next().await {
                Some(Ok(frame)) => {
                    self.failures = 0;
                    match self.dispatch(frame) {
                        Dispatch::Event(event) => return Some(Ok(StreamItem::Event(event))),
                        Dispatch::Reconnect(reason) => {
                            return Some(Ok(self.drop_connection(reason)));
                        }
                        Dispatch::Fatal(error) => {
                            self.done = true;
                            return Some(Err(error));
                        }
                        Dispatch::Nothing => {}
                    }
                }
                Some(Err(e)) => return Some(Ok(self.drop_connection(format!("read failed: {e}")))),
                None => return Some(Ok(self.drop_connection("the stream ended".to_owned()))),
            }
        }
    }

    fn drop_connection(&mut self, reason: String) -> StreamItem {
        self.frames = None;
        StreamItem::Reconnecting {
            after_seq: self.last.unwrap_or(0),
            reason,
        }
    }

    /// Opens the stream; `Some` is an item to hand out (a refusal, or a
    /// reconnect notice after a failed attempt), `None` means connected.
    async fn connect(&mut self) -> Option<Result<StreamItem, ApiError>> {
        if self.failures > 0 {
            let delay = self
                .client
                .retry_policy()
                .delay(self.failures, self.retry_after.take());
            tokio::time::sleep(delay).await;
        }
        let url = path::url(
            self.client.base(),
            &["v1", "books", &self.book, "stream"],
            &[],
        );
        let mut request = self
            .client
            .http()
            .get(url)
            .header(ACCEPT, "text/event-stream");
        if let Some(auth) = self.client.authorization() {
            request = request.header(AUTHORIZATION, auth.clone());
        }
        if let Some(last) = self.last {
            request = request.header("last-event-id", last.to_string());
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                self.failures = self.failures.saturating_add(1);
                return Some(Ok(StreamItem::Reconnecting {
                    after_seq: self.last.unwrap_or(0),
                    reason: format!("cannot connect: {e}"),
                }));
            }
        };
        let status = response.status().as_u16();
        if status == 200 {
            self.chain = Arc::default();
            self.frames = Some(frames(response, Arc::clone(&self.chain)));
            return None;
        }
        self.retry_after = response
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let body = response
            .bytes()
            .await
            .map(|b| b.to_vec())
            .unwrap_or_default();
        let error = ApiError::from_body(
            status,
            self.retry_after.map(|d| d.as_secs()),
            &error_body(status, &body),
        );
        if matches!(status, 408 | 429 | 502 | 503 | 504) {
            self.failures = self.failures.saturating_add(1);
            return Some(Ok(StreamItem::Reconnecting {
                after_seq: self.last.unwrap_or(0),
                reason: format!("{status} {}", error.code()),
            }));
        }
        self.done = true;
        Some(Err(error))
    }

    /// What one decoded frame means. `retry:` is ignored (our own backoff
    /// rules apply), and so is a frame without data: the server's `retry:`
    /// preamble.
    fn dispatch(&mut self, frame: Sse) -> Dispatch {
        let Some(data) = frame.data else {
            return Dispatch::Nothing;
        };
        let kind = frame.event.unwrap_or_else(|| "message".to_owned());
        let data: Value = serde_json::from_str(&data).unwrap_or(Value::Null);
        match kind.as_str() {
            "shutdown" => Dispatch::Reconnect("the server is shutting down".to_owned()),
            "error" => {
                let code = data["error"].as_str().unwrap_or("error").to_owned();
                if code == "forbidden" {
                    Dispatch::Fatal(ApiError::Forbidden {
                        book: data["book"].as_str().unwrap_or(&self.book).to_owned(),
                    })
                } else {
                    // slow_consumer, unavailable: resume where we are.
                    Dispatch::Reconnect(format!("the server ended the stream: {code}"))
                }
            }
            _ => match frame.id.and_then(|id| id.parse::<u64>().ok()) {
                Some(seq) if self.last.is_none_or(|last| seq > last) => {
                    self.last = Some(seq);
                    let (committed_at, hash) = self
                        .chain
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .take(seq);
                    Dispatch::Event(StreamEvent {
                        seq,
                        kind,
                        data,
                        committed_at,
                        hash,
                    })
                }
                // A repeat (never sent by talea, but harmless) or an id-less frame.
                _ => Dispatch::Nothing,
            },
        }
    }
}
