//! SSE for a test: the frames of a stream, read with the decoder the SDK
//! uses (`sse-stream`), within a deadline.
//!
//! Frames are the decoder's raw blocks: a frame's fields are its own (an id
//! is not carried over to the next frame), the `retry:` preamble is a frame
//! with only `retry`, and comments (heartbeats) are not frames at all. Tests
//! about those exact bytes compare the bytes.

use std::convert::Infallible;
use std::pin::Pin;
use std::time::Duration;

use futures::{FutureExt, Stream, StreamExt};
use serde_json::Value;
use sse_stream::SseByteStream;

/// One decoded SSE frame (its `id`, `event`, `data` and `retry`).
pub use sse_stream::Sse as Frame;

type Frames = Pin<Box<dyn Stream<Item = Result<Frame, sse_stream::Error>> + Send>>;

/// The frames of one stream, in order.
pub struct SseReader {
    frames: Frames,
}

impl std::fmt::Debug for SseReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SseReader")
    }
}

impl SseReader {
    /// Reads the body of `response` (a `200 text/event-stream`).
    pub fn new(response: reqwest::Response) -> SseReader {
        let chunks = futures::stream::try_unfold(response, |mut response| async move {
            Ok::<_, reqwest::Error>(response.chunk().await?.map(|chunk| (chunk, response)))
        });
        SseReader::from_bytes(chunks)
    }

    /// Reads a stream of byte chunks (a session's body, in process).
    pub fn from_bytes<S, B, E>(chunks: S) -> SseReader
    where
        S: Stream<Item = Result<B, E>> + Send + 'static,
        B: bytes::Buf + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        SseReader {
            frames: Box::pin(SseByteStream::new(chunks)),
        }
    }

    /// The next frame; `None` when the stream ended or broke.
    pub async fn next(&mut self) -> Option<Frame> {
        self.frames.next().await.and_then(Result::ok)
    }

    /// Reads frames until `stop` holds for those read so far, or the stream
    /// ends; fails the test after `within`, or on a stream that does not
    /// decode.
    pub async fn until(
        &mut self,
        within: Duration,
        mut stop: impl FnMut(&[Frame]) -> bool,
    ) -> Vec<Frame> {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + within;
        while !stop(&seen) {
            match tokio::time::timeout_at(deadline, self.frames.next()).await {
                Ok(Some(Ok(frame))) => seen.push(frame),
                Ok(Some(Err(e))) => panic!("the stream broke ({e}); frames so far: {seen:?}"),
                Ok(None) => break,
                Err(_) => panic!("timed out after {within:?}; frames so far: {seen:?}"),
            }
        }
        seen
    }

    /// Reads frames until the one with id `last` (or the end), within `within`.
    pub async fn until_id(&mut self, within: Duration, last: u64) -> Vec<Frame> {
        self.until(within, |frames| frames.iter().any(|f| seq(f) >= Some(last)))
            .await
    }
}

/// A frame's id as a seq; `None` for a frame without one. An id that is
/// not a number fails the test: talea's ids are seqs.
pub fn seq(frame: &Frame) -> Option<u64> {
    frame.id.as_ref().map(|id| {
        id.parse()
            .unwrap_or_else(|_| panic!("a numeric id: {frame:?}"))
    })
}

/// The ids of `frames`, in order.
pub fn ids(frames: &[Frame]) -> Vec<u64> {
    frames.iter().filter_map(seq).collect()
}

/// A frame's data as JSON (`Null` when it has none); data that is not JSON
/// fails the test.
pub fn json(frame: &Frame) -> Value {
    frame.data.as_deref().map_or(Value::Null, |data| {
        serde_json::from_str(data).unwrap_or_else(|e| panic!("JSON data ({e}): {frame:?}"))
    })
}

/// The whole frames in `bytes` (one chunk of a session's body).
pub fn decode(bytes: &[u8]) -> Vec<Frame> {
    let chunk = bytes::Bytes::copy_from_slice(bytes);
    let frames = SseByteStream::new(futures::stream::iter([Ok::<_, Infallible>(chunk)]));
    frames
        .filter_map(|frame| std::future::ready(frame.ok()))
        .collect::<Vec<_>>()
        .now_or_never()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_every_line_ending_multi_line_data_comments_and_a_bom() {
        let frames = decode(
            b"\xEF\xBB\xBFretry: 2000\r\n\r\n: keepalive\n\nid: 7\revent: transaction\rdata: {\"a\":\rdata: 1}\r\r",
        );
        assert_eq!(frames.len(), 2, "{frames:?}");
        assert_eq!(frames[0].retry, Some(2000));
        assert_eq!(seq(&frames[1]), Some(7));
        assert_eq!(frames[1].event.as_deref(), Some("transaction"));
        assert_eq!(frames[1].data.as_deref(), Some("{\"a\":\n1}"));
        assert_eq!(json(&frames[1])["a"], 1);
    }
}
