//! Streams over a real Postgres ledger: resume, live, filters, gap repair, slow consumers, shutdown.

mod timing;

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use talea_api::LedgerApi;
use talea_ledger::{LedgerConfig, LedgerService};
use talea_store_pg::PgStore;
use talea_stream::{
    Hub, LedgerBackfill, LiveEvent, LiveSource, NoObserver, NoticeSource, Recheck, Refusal,
    StreamConfig, Subscription,
};
use talea_testkit::TestDb;
use talea_testkit::ledger::transfer;
use talea_testkit::sse::{Frame, SseReader, ids};
use tokio::sync::broadcast;

/// A session's frames, decoded as the SDK decodes them.
type Frames = SseReader;

/// Reads frames until `until` says stop (or the stream ends), failing after 20 s.
pub async fn read_until(frames: &mut Frames, until: impl FnMut(&[Frame]) -> bool) -> Vec<Frame> {
    frames.until(Duration::from_secs(20), until).await
}

struct Fixture {
    ledger: LedgerService,
    store: PgStore,
    db: TestDb,
}

impl Fixture {
    async fn new() -> Fixture {
        let db = talea_testkit::fresh_database().await.expect("database");
        let store = PgStore::connect(&db.url, 8).await.expect("connect");
        store.migrate().await.expect("migrate");
        let ledger = LedgerService::new(
            Arc::new(store.clone()),
            LedgerConfig::default(),
            talea_telemetry::Metrics::new(),
        );
        talea_testkit::ledger::seed(
            &ledger,
            &["pay"],
            &[
                ("hot", "asset"),
                ("alice", "liability"),
                ("bob", "liability"),
            ],
        )
        .await
        .expect("seeds the ledger");
        Fixture { ledger, store, db }
    }

    fn hub(&self, source: Arc<dyn LiveSource>, config: StreamConfig) -> Hub {
        Hub::new(
            source,
            Arc::new(LedgerBackfill::new(self.ledger.clone())),
            Arc::new(NoObserver),
            config,
        )
    }

    fn notice_hub(&self) -> Hub {
        self.hub(
            Arc::new(NoticeSource::new(self.ledger.clone())),
            StreamConfig::default(),
        )
    }

    /// Posts a deposit to `customer`; returns its seq.
    async fn deposit(&self, key: &str, customer: &str) -> u64 {
        self.ledger
            .post_transaction("pay", transfer(key, "hot", customer, "1"))
            .await
            .expect("post")
            .seq
    }

    async fn finish(self) {
        self.store.pool().close().await;
        self.db.drop_database().await.expect("drop");
    }
}

async fn open(hub: &Hub, after_seq: Option<u64>, accounts: Option<&[&str]>) -> Frames {
    let permit = hub.try_admit(None).expect("a connection slot");
    SseReader::from_bytes(
        talea_stream::open(
            hub,
            Subscription {
                book: "pay".to_owned(),
                after_seq,
                accounts: accounts
                    .map(|a| a.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>()),
                ..Default::default()
            },
            None,
            permit,
        )
        .await
        .expect("open"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resumes_from_the_log_then_follows_live_commits_in_order() {
    let f = Fixture::new().await;
    for i in 0..5 {
        f.deposit(&format!("pre-{i}"), "alice").await;
    }
    let hub = f.notice_hub();
    let mut resumed = open(&hub, Some(2), None).await;
    let mut from_now = open(&hub, None, None).await;
    let first = read_until(&mut resumed, |s| ids(s).len() >= 6).await;
    assert!(first[0].retry.is_some(), "retry: comes first");
    assert_eq!(ids(&first), (3..=8).collect::<Vec<_>>());
    assert_eq!(first[1].event.as_deref(), Some("account_opened"));
    assert_eq!(first[3].event.as_deref(), Some("transaction"));

    // Concurrent writers while both streams are open.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let ledger = f.ledger.clone();
            tokio::spawn(async move {
                let fx = Fixture::deposit_with(&ledger);
                for i in 0..10 {
                    fx(format!("live-{w}-{i}")).await;
                }
            })
        })
        .collect();
    for w in writers {
        w.await.expect("writer");
    }
    let rest = read_until(&mut resumed, |s| ids(s).len() >= 40).await;
    assert_eq!(ids(&rest), (9..=48).collect::<Vec<_>>());
    let live = read_until(&mut from_now, |s| ids(s).len() >= 40).await;
    assert_eq!(
        ids(&live),
        (9..=48).collect::<Vec<_>>(),
        "live from now: 9.."
    );
    let data: serde_json::Value =
        serde_json::from_str(rest[0].data.as_deref().expect("data")).expect("json");
    assert_eq!(data["book"], "pay");
    assert_eq!(data["seq"], 9);
    drop((resumed, from_now));
    f.finish().await;
}

impl Fixture {
    fn deposit_with(
        ledger: &LedgerService,
    ) -> impl Fn(String) -> Pin<Box<dyn std::future::Future<Output = u64> + Send>> + use<> {
        let ledger = ledger.clone();
        move |key| {
            let ledger = ledger.clone();
            Box::pin(async move {
                ledger
                    .post_transaction("pay", transfer(&key, "hot", "bob", "1"))
                    .await
                    .expect("post")
                    .seq
            })
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_accounts_filter_sends_only_events_touching_them() {
    let f = Fixture::new().await;
    let hub = f.notice_hub();
    let mut alice = open(&hub, Some(0), Some(&["alice"])).await;
    let a1 = f.deposit("a1", "alice").await;
    f.deposit("b1", "bob").await;
    let a2 = f.deposit("a2", "alice").await;
    // seq 2 is alice's account_opened event.
    let seen = read_until(&mut alice, |s| ids(s).len() >= 3).await;
    assert_eq!(ids(&seen), vec![2, a1, a2]);
    drop(alice);
    f.finish().await;
}

/// A live source that loses every third event and repeats every other one.
#[derive(Debug)]
struct Lossy(NoticeSource);

#[async_trait]
impl LiveSource for Lossy {
    async fn follow(&self, book: String, tx: broadcast::Sender<Arc<LiveEvent>>) {
        let (inner_tx, mut inner_rx) = broadcast::channel(1024);
        let inner = self.0.clone();
        let forward = tokio::spawn(async move { inner.follow(book, inner_tx).await });
        let mut n = 0u64;
        while let Ok(event) = inner_rx.recv().await {
            n += 1;
            if n.is_multiple_of(3) {
                continue;
            }
            let _ = tx.send(event.clone());
            if n.is_multiple_of(2) {
                let _ = tx.send(event);
            }
        }
        forward.abort();
    }
}

/// A live source that starts listening only when told: a feed task that a
/// loaded machine schedules after a subscriber has already read the log.
#[derive(Debug)]
struct LateStart {
    source: NoticeSource,
    gate: Arc<tokio::sync::Notify>,
}

#[async_trait]
impl LiveSource for LateStart {
    async fn follow(&self, book: String, tx: broadcast::Sender<Arc<LiveEvent>>) {
        self.gate.notified().await;
        self.source.follow(book, tx).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_made_before_the_feed_listens_still_reaches_a_joined_subscriber() {
    let f = Fixture::new().await;
    let gate = Arc::new(tokio::sync::Notify::new());
    let hub = Hub::new(
        Arc::new(LateStart {
            source: NoticeSource::new(f.ledger.clone()),
            gate: gate.clone(),
        }),
        Arc::new(LedgerBackfill::new(f.ledger.clone())),
        Arc::new(NoObserver),
        StreamConfig::default(),
    );
    let mut stream = open(&hub, Some(0), None).await;
    // The three account openings, read from the log.
    let seen = read_until(&mut stream, |s| ids(s).len() >= 3).await;
    assert_eq!(ids(&seen), vec![1, 2, 3]);
    // Committed after the subscriber's read and before the feed listens:
    // the feed starts after it, and no later commit reveals the gap. Only
    // the hub's tail check, from where the subscriber joined, delivers it.
    let seq = f.deposit("before-listening", "alice").await;
    gate.notify_one();
    let seen = read_until(&mut stream, |s| ids(s).contains(&seq)).await;
    assert_eq!(ids(&seen), vec![seq]);
    drop(stream);
    f.finish().await;
}

#[derive(Debug, Default)]
struct Counting {
    gaps: AtomicU64,
}

impl talea_stream::StreamObserver for Counting {
    fn gap_repair(&self) {
        self.gaps.fetch_add(1, Ordering::Relaxed);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn gaps_and_repeats_on_the_live_feed_never_reach_the_client() {
    let f = Fixture::new().await;
    let counting = Arc::new(Counting::default());
    let hub = Hub::new(
        Arc::new(Lossy(NoticeSource::new(f.ledger.clone()))),
        Arc::new(LedgerBackfill::new(f.ledger.clone())),
        counting.clone(),
        StreamConfig::default(),
    );
    let mut stream = open(&hub, None, None).await;
    // Let the session reach the live phase before committing.
    read_until(&mut stream, |s| !s.is_empty()).await;
    for i in 0..30 {
        f.deposit(&format!("k{i}"), "alice").await;
    }
    let seen = read_until(&mut stream, |s| ids(s).len() >= 30).await;
    assert_eq!(ids(&seen), (4..=33).collect::<Vec<_>>());
    assert!(
        counting.gaps.load(Ordering::Relaxed) > 0,
        "gaps were repaired"
    );
    drop(stream);
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_consumer_is_cut_off_and_others_are_not() {
    let f = Fixture::new().await;
    let hub = f.hub(
        Arc::new(NoticeSource::new(f.ledger.clone())),
        StreamConfig {
            buffer_events_max: 16,
            ..StreamConfig::default()
        },
    );
    let mut slow = open(&hub, None, None).await;
    let mut fast = open(&hub, None, None).await;
    read_until(&mut slow, |s| !s.is_empty()).await;
    read_until(&mut fast, |s| !s.is_empty()).await;
    let reader = tokio::spawn(async move { read_until(&mut fast, |s| ids(s).len() >= 60).await });
    for i in 0..60 {
        f.deposit(&format!("s{i}"), "alice").await;
    }
    let fast_seen = reader.await.expect("reader");
    assert_eq!(ids(&fast_seen), (4..=63).collect::<Vec<_>>());
    // The slow one gets what was buffered, then the error, then the end.
    let slow_seen = read_until(&mut slow, |_| false).await;
    let last = slow_seen.last().expect("frames");
    assert_eq!(last.event.as_deref(), Some("error"));
    assert_eq!(last.data.as_deref(), Some(r#"{"error":"slow_consumer"}"#));
    let slow_ids = ids(&slow_seen);
    assert!(slow_ids.len() <= 17, "at most the buffer: {slow_ids:?}");
    assert_eq!(slow_ids, (4..4 + slow_ids.len() as u64).collect::<Vec<_>>());
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shutdown_and_withdrawn_access_close_with_their_event() {
    let f = Fixture::new().await;
    let hub = f.notice_hub();
    let mut stream = open(&hub, Some(0), None).await;
    read_until(&mut stream, |s| ids(s).len() >= 3).await;
    hub.shut_down();
    let rest = read_until(&mut stream, |_| false).await;
    assert_eq!(
        rest.last().and_then(|f| f.event.clone()).as_deref(),
        Some("shutdown")
    );

    let hub = f.notice_hub();
    let allowed = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let flag = allowed.clone();
    let permit = hub.try_admit(None).expect("permit");
    let mut stream: Frames = SseReader::from_bytes(
        talea_stream::open(
            &hub,
            Subscription {
                book: "pay".to_owned(),
                after_seq: Some(0),
                accounts: None,
                ..Default::default()
            },
            Some(Recheck {
                every: Duration::from_millis(200),
                check: Box::new(move || {
                    let ok = flag.load(Ordering::SeqCst);
                    Box::pin(async move {
                        if ok {
                            Ok(())
                        } else {
                            Err(serde_json::json!({"error": "forbidden", "book": "pay"}))
                        }
                    })
                }),
            }),
            permit,
        )
        .await
        .expect("open"),
    );
    read_until(&mut stream, |s| ids(s).len() >= 3).await;
    allowed.store(false, Ordering::SeqCst);
    let rest = read_until(&mut stream, |_| false).await;
    let last = rest.last().expect("closing frame");
    assert_eq!(last.event.as_deref(), Some("error"));
    assert_eq!(
        last.data.as_deref(),
        Some(r#"{"error":"forbidden","book":"pay"}"#)
    );
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_are_capped_and_released() {
    let f = Fixture::new().await;
    let hub = f.hub(
        Arc::new(NoticeSource::new(f.ledger.clone())),
        StreamConfig {
            max_connections: 1,
            ..StreamConfig::default()
        },
    );
    let mut first = open(&hub, None, None).await;
    read_until(&mut first, |s| !s.is_empty()).await;
    assert_eq!(
        hub.try_admit(Some("other")).err(),
        Some(Refusal::Connections),
        "the one slot is taken"
    );
    assert_eq!(hub.streaming_tokens(), 1, "the refused token holds nothing");
    drop(first);
    talea_testkit::wait_until(Duration::from_secs(10), || {
        let hub = hub.clone();
        async move { hub.open_streams() == 0 && hub.streaming_tokens() == 0 }
    })
    .await
    .expect("the slots come back when the client leaves");
    assert!(hub.try_admit(None).is_ok());
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_at_its_cap_is_refused_without_taking_a_process_slot() {
    let f = Fixture::new().await;
    let refusals = Arc::new(Refusals::default());
    let hub = Hub::new(
        Arc::new(NoticeSource::new(f.ledger.clone())),
        Arc::new(LedgerBackfill::new(f.ledger.clone())),
        refusals.clone(),
        StreamConfig {
            max_connections: 3,
            max_per_token: 2,
            ..StreamConfig::default()
        },
    );
    let a1 = hub.try_admit(Some("a")).expect("a's first");
    let a2 = hub.try_admit(Some("a")).expect("a's second");
    assert_eq!(hub.try_admit(Some("a")).err(), Some(Refusal::TokenCap));
    assert_eq!(hub.open_streams(), 2, "the refusal took no process slot");
    assert_eq!(hub.token_streams(Some("a")), 2);
    // The last process slot goes to another token; then the process is full
    // for everyone, and a token at its cap is still told it is.
    let b = hub.try_admit(Some("b")).expect("b's first");
    assert_eq!(hub.try_admit(Some("c")).err(), Some(Refusal::Connections));
    assert_eq!(hub.try_admit(Some("a")).err(), Some(Refusal::TokenCap));
    assert_eq!(hub.token_streams(Some("c")), 0);
    assert_eq!(
        refusals.seen(),
        [Refusal::TokenCap, Refusal::Connections, Refusal::TokenCap]
    );
    drop(a1);
    let a3 = hub.try_admit(Some("a")).expect("a's freed slot");
    drop((a2, a3, b));
    assert_eq!((hub.open_streams(), hub.streaming_tokens()), (0, 0));
    f.finish().await;
}

/// Records refusals.
#[derive(Debug, Default)]
struct Refusals(std::sync::Mutex<Vec<Refusal>>);

impl Refusals {
    fn seen(&self) -> Vec<Refusal> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl talea_stream::StreamObserver for Refusals {
    fn refused(&self, refusal: Refusal) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(refusal);
    }
}
