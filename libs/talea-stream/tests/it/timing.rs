//! Heartbeats and re-check timing on a paused clock, over an in-memory log.
//!
//! The log here is a `Vec` standing in for the store: these tests are about
//! timers, which a paused tokio clock makes exact; the store-backed
//! behaviour is tested against Postgres in `main.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use talea_api::ApiError;
use talea_stream::{
    Backfill, Hub, LiveEvent, LiveSource, NoObserver, Recheck, StreamConfig, Subscription,
};
use tokio::sync::broadcast;

use talea_testkit::sse::{self, Frame};

#[derive(Debug, Default)]
struct MemoryLog {
    events: Mutex<Vec<Arc<LiveEvent>>>,
}

impl MemoryLog {
    fn append(&self) -> Arc<LiveEvent> {
        let mut events = self.events.lock().expect("lock");
        let seq = events.len() as u64 + 1;
        let event = LiveEvent::new(
            seq,
            "transaction".to_owned(),
            "2026-11-22T10:00:00.000000Z".to_owned(),
            None,
            Default::default(),
            &format!("{{\"seq\":{seq}}}"),
        );
        events.push(event.clone());
        event
    }
}

#[async_trait]
impl Backfill for MemoryLog {
    async fn last_seq(&self, _book: &str) -> Result<Option<u64>, ApiError> {
        Ok(self.events.lock().expect("lock").last().map(|e| e.seq))
    }

    async fn events(
        &self,
        _book: &str,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Arc<LiveEvent>>, ApiError> {
        let events = self.events.lock().expect("lock");
        Ok(events
            .iter()
            .filter(|e| e.seq > after_seq)
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn snapshot(
        &self,
        book: &str,
        _accounts: Option<&std::collections::BTreeSet<String>>,
    ) -> Result<talea_api::SnapshotDto, ApiError> {
        Ok(talea_api::SnapshotDto {
            book: book.to_owned(),
            seq: self.last_seq(book).await?.unwrap_or(0),
            balances: Vec::new(),
        })
    }
}

/// A live source the test feeds by hand.
#[derive(Debug)]
struct Manual(broadcast::Sender<Arc<LiveEvent>>);

#[async_trait]
impl LiveSource for Manual {
    async fn follow(&self, _book: String, tx: broadcast::Sender<Arc<LiveEvent>>) {
        let mut rx = self.0.subscribe();
        while let Ok(event) = rx.recv().await {
            let _ = tx.send(event);
        }
    }
}

/// The next chunk a session writes: the body writes each frame, and each
/// heartbeat, as one chunk.
async fn next_chunk<S>(frames: &mut S) -> bytes::Bytes
where
    S: futures::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> + Unpin,
{
    match frames.next().await {
        Some(Ok(chunk)) => chunk,
        Some(Err(never)) => match never {},
        None => panic!("stream ended"),
    }
}

/// The next frame, decoded as the SDK decodes it.
async fn next_frame<S>(frames: &mut S) -> Frame
where
    S: futures::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> + Unpin,
{
    let chunk = next_chunk(frames).await;
    sse::decode(&chunk)
        .pop()
        .unwrap_or_else(|| panic!("a frame: {chunk:?}"))
}

/// Whether the next chunk is a heartbeat: a comment, which decoders skip,
/// so it is recognised by its bytes.
async fn next_is_heartbeat<S>(frames: &mut S) -> bool
where
    S: futures::Stream<Item = Result<bytes::Bytes, std::convert::Infallible>> + Unpin,
{
    let chunk = next_chunk(frames).await;
    chunk.starts_with(b":") && sse::decode(&chunk).is_empty()
}

fn hub(log: Arc<MemoryLog>, live: broadcast::Sender<Arc<LiveEvent>>) -> Hub {
    Hub::new(
        Arc::new(Manual(live)),
        log,
        Arc::new(NoObserver),
        StreamConfig {
            heartbeat_s: 15,
            ..StreamConfig::default()
        },
    )
}

#[tokio::test(start_paused = true)]
async fn heartbeats_fill_silence_and_events_reset_them() {
    let log = Arc::new(MemoryLog::default());
    let (live, _) = broadcast::channel(16);
    let hub = hub(log.clone(), live.clone());
    let permit = hub.try_admit(None).expect("permit");
    let mut frames = Box::pin(
        talea_stream::open(
            &hub,
            Subscription {
                book: "b".to_owned(),
                after_seq: None,
                accounts: None,
                ..Default::default()
            },
            None,
            permit,
        )
        .await
        .expect("open"),
    );
    assert!(next_frame(&mut frames).await.retry.is_some());
    let start = tokio::time::Instant::now();
    assert!(next_is_heartbeat(&mut frames).await, "a heartbeat comes");
    assert_eq!(start.elapsed(), Duration::from_secs(15));

    tokio::time::sleep(Duration::from_secs(10)).await;
    let event = log.append();
    live.send(event).expect("a subscriber");
    let frame = next_frame(&mut frames).await;
    assert_eq!(sse::seq(&frame), Some(1));
    let after_event = tokio::time::Instant::now();
    assert!(next_is_heartbeat(&mut frames).await);
    assert_eq!(
        after_event.elapsed(),
        Duration::from_secs(15),
        "an event restarts the heartbeat period"
    );
}

#[tokio::test(start_paused = true)]
async fn the_recheck_runs_at_its_interval() {
    let log = Arc::new(MemoryLog::default());
    let (live, _) = broadcast::channel(16);
    let hub = hub(log, live);
    let calls = Arc::new(Mutex::new(Vec::new()));
    let seen = calls.clone();
    let start = tokio::time::Instant::now();
    let permit = hub.try_admit(None).expect("permit");
    let mut frames = Box::pin(
        talea_stream::open(
            &hub,
            Subscription {
                book: "b".to_owned(),
                after_seq: None,
                accounts: None,
                ..Default::default()
            },
            Some(Recheck {
                every: Duration::from_secs(60),
                check: Box::new(move || {
                    let mut calls = seen.lock().expect("lock");
                    calls.push(start.elapsed());
                    let allowed = calls.len() < 3;
                    Box::pin(async move {
                        if allowed {
                            Ok(())
                        } else {
                            Err(serde_json::json!({"error": "forbidden"}))
                        }
                    })
                }),
            }),
            permit,
        )
        .await
        .expect("open"),
    );
    let mut last = None;
    while let Some(Ok(chunk)) = frames.next().await {
        last = Some(chunk);
    }
    // The last chunk written, decoded: a heartbeat there would be no frame.
    let last = last.and_then(|chunk| sse::decode(&chunk).pop());
    assert_eq!(
        last.and_then(|f| f.event).as_deref(),
        Some("error"),
        "closed with the error"
    );
    assert_eq!(
        *calls.lock().expect("lock"),
        vec![
            Duration::from_secs(60),
            Duration::from_secs(120),
            Duration::from_secs(180)
        ]
    );
}
