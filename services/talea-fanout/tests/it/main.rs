//! End to end over real Postgres and NATS: commits → relay → NATS → the real `talea-fanout` → SSE.
//!
//! Commits go through a `LedgerService` on the test's database; the relay
//! runs in process (aborting its task drops its connections, as a kill
//! would); the fan-out is the real binary, killed with SIGKILL and
//! restarted. Every client checks what it receives: strictly increasing
//! seqs, none missing, none twice, across every fault.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use talea_api::LedgerApi;
use talea_bus::{Relay, RelayConfig};
use talea_ledger::{LedgerConfig, LedgerService};
use talea_store_pg::PgStore;
use talea_testkit::TestDb;
use talea_testkit::process::talea_command;
use talea_testkit::sse::SseReader;
use tokio::sync::{mpsc, watch};

mod browser;
mod caps;
mod faults;
mod fields;
mod holds;

const BIN: &str = env!("CARGO_BIN_EXE_talea-fanout");
const TOKEN: &str = "fanout-test-token";

struct Fixture {
    db: TestDb,
    store: PgStore,
    ledger: LedgerService,
    prefix: String,
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
        talea_testkit::ledger::seed(&ledger, &["pay"], &talea_testkit::ledger::HOT_ALICE)
            .await
            .expect("seeds the ledger");
        Fixture {
            db,
            store,
            ledger,
            prefix: format!("{}.events", talea_testkit::unique_prefix()),
        }
    }

    async fn deposit(&self, key: &str) -> u64 {
        self.ledger
            .post_transaction("pay", talea_testkit::ledger::deposit(key))
            .await
            .expect("post")
            .seq
    }

    /// The relay in process on the test's NATS server.
    async fn relay(&self) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        self.relay_on(&talea_testkit::nats_url()).await
    }

    /// The relay in process on `nats_url`, scanning every 200 ms and trying
    /// for the lease every 100 ms.
    async fn relay_on(&self, nats_url: &str) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
        let store = PgStore::connect(&self.db.url, 4).await.expect("connect");
        let nats = async_nats::connect(nats_url).await.expect("NATS");
        let relay = Relay::new(
            store,
            nats,
            RelayConfig {
                subject_prefix: self.prefix.clone(),
                poll_ms: 200,
                standby_retry_ms: 100,
                lease_check_ms: 100,
            },
            talea_telemetry::RelayMetrics::new(),
        );
        let (stop, rx) = watch::channel(false);
        (stop, tokio::spawn(async move { relay.run(rx).await }))
    }

    /// Starts the fan-out binary on `port` (0: any) and waits for /health.
    async fn fanout(&self, port: u16) -> (Child, u16) {
        self.fanout_with(port, &[], Stdio::inherit()).await
    }

    /// [`Fixture::fanout`] with more variables and its stderr sent to `stderr`.
    async fn fanout_with(&self, port: u16, env: &[(&str, String)], stderr: Stdio) -> (Child, u16) {
        let port = if port == 0 { free_port() } else { port };
        let child = talea_command(BIN, &std::env::temp_dir())
            .env("TALEA_BIND", format!("127.0.0.1:{port}"))
            .env("TALEA_DB_URL", &self.db.url)
            .env("TALEA_NATS_URL", talea_testkit::nats_url())
            .env("TALEA_NATS_SUBJECT_PREFIX", &self.prefix)
            .env("TALEA_API_TOKEN", TOKEN)
            .env("TALEA_SSE_HEARTBEAT_S", "1")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("fan-out starts");
        talea_testkit::wait_http_ok(
            &format!("http://127.0.0.1:{port}/health"),
            Duration::from_secs(20),
        )
        .await
        .expect("fan-out answers /health");
        (child, port)
    }

    async fn finish(self) {
        self.store.pool().close().await;
        self.db.drop_database().await.expect("drop");
    }
}

/// A loopback port nothing listened on a moment ago.
fn free_port() -> u16 {
    talea_testkit::process::free_port().expect("a free port")
}

fn kill(mut child: Child) {
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
}

/// An EventSource-like client: follows the stream, and on any end or error
/// reconnects with `Last-Event-ID`, as browsers do. Sends each event id.
fn event_source(port_rx: watch::Receiver<u16>) -> mpsc::UnboundedReceiver<u64> {
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let client = reqwest::Client::new();
        let mut last: Option<u64> = Some(0);
        loop {
            let port = *port_rx.borrow();
            let mut request = client
                .get(format!("http://127.0.0.1:{port}/v1/books/pay/stream"))
                .bearer_auth(TOKEN)
                .header("accept", "text/event-stream");
            if let Some(id) = last {
                request = request.header("last-event-id", id.to_string());
            }
            if let Ok(response) = request.send().await
                && response.status().is_success()
            {
                let mut frames = SseReader::new(response);
                while let Some(frame) = frames.next().await {
                    if let Some(id) = frame.id.and_then(|id| id.parse().ok()) {
                        last = Some(id);
                        if tx.send(id).is_err() {
                            return;
                        }
                    }
                }
            }
            // The browser's `retry:` pause, shortened for the test.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    rx
}

/// Receives ids until `last` is seen; asserts they are exactly 1..=last, in order.
async fn expect_exactly(rx: &mut mpsc::UnboundedReceiver<u64>, seen: &mut Vec<u64>, last: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.last().copied().unwrap_or(0) < last {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(id)) => seen.push(id),
            _ => panic!("stream stalled at {:?} waiting for {last}", seen.last()),
        }
    }
    assert_eq!(
        *seen,
        (1..=last).collect::<Vec<_>>(),
        "every event exactly once, in order"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn no_gap_or_repeat_across_relay_and_fanout_kills() {
    let f = Fixture::new().await;
    let (stop_relay, relay) = f.relay().await;
    let (fanout, port) = f.fanout(0).await;
    let (port_tx, port_rx) = watch::channel(port);
    let mut ids = event_source(port_rx);
    let mut seen = Vec::new();

    let mut last = 0;
    for i in 0..20 {
        last = f.deposit(&format!("a{i}")).await;
    }
    expect_exactly(&mut ids, &mut seen, last).await;

    // The relay dies (its connections with it); commits go on meanwhile.
    relay.abort();
    let _ = relay.await;
    drop(stop_relay);
    for i in 0..20 {
        last = f.deposit(&format!("b{i}")).await;
    }
    let (stop_relay, relay) = f.relay().await;
    expect_exactly(&mut ids, &mut seen, last).await;

    // The fan-out is killed mid-stream and comes back on another port; the
    // client resumes with Last-Event-ID.
    kill(fanout);
    for i in 0..20 {
        last = f.deposit(&format!("c{i}")).await;
    }
    let (fanout, port) = f.fanout(0).await;
    port_tx.send_replace(port);
    for i in 0..20 {
        last = f.deposit(&format!("d{i}")).await;
    }
    expect_exactly(&mut ids, &mut seen, last).await;

    kill(fanout);
    stop_relay.send_replace(true);
    let _ = relay.await;
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_fanout_refuses_before_streaming_and_says_shutdown_at_the_end() {
    let f = Fixture::new().await;
    let (mut fanout, port) = f.fanout(0).await;
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/v1/books/pay/stream");
    let r = client.get(&url).send().await.expect("answer");
    assert_eq!(r.status(), 401);
    let r = client
        .get(format!("http://127.0.0.1:{port}/v1/books/nobook/stream"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 404);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["error"], "not_found");
    let r = client
        .get(format!("{url}?after_seq=x"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);

    let r = client
        .get(format!("{url}?after_seq=0"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/event-stream")
    );
    assert_eq!(
        r.headers()
            .get("x-accel-buffering")
            .and_then(|v| v.to_str().ok()),
        Some("no")
    );
    assert_eq!(
        r.headers()
            .get("x-talea-backend")
            .and_then(|v| v.to_str().ok()),
        Some("postgres")
    );
    let mut body = r.bytes_stream();
    let mut text = String::new();
    // Two account opens, then a heartbeat (1 s here).
    while !text.contains(": keepalive") {
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .expect("frames")
            .expect("open")
            .expect("chunk");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.starts_with("retry: 2000\n\n"), "{text}");
    assert!(text.contains("id: 2\nevent: account_opened\n"), "{text}");

    // SIGTERM: the stream ends with `event: shutdown`.
    let pid = fanout.id().to_string();
    Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill");
    let rest = tokio::time::timeout(Duration::from_secs(10), async {
        let mut rest = String::new();
        while let Some(Ok(chunk)) = body.next().await {
            rest.push_str(&String::from_utf8_lossy(&chunk));
        }
        rest
    })
    .await
    .expect("the stream ends");
    assert!(rest.ends_with("event: shutdown\ndata: {}\n\n"), "{rest}");
    let status = fanout.wait().expect("exits");
    assert!(status.success(), "{status}");
    f.finish().await;
}
