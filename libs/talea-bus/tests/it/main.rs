//! The relay against a real Postgres and a real NATS: order, headers, restart catch-up, fail-over.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use talea_api::LedgerApi;
use talea_bus::{Relay, RelayConfig};
use talea_ledger::{LedgerConfig, LedgerService};
use talea_store_pg::PgStore;
use talea_telemetry::RelayMetrics;
use talea_testkit::TestDb;
use tokio::sync::{mpsc, watch};

struct Fixture {
    store: PgStore,
    ledger: LedgerService,
    db: TestDb,
    prefix: String,
    nats: async_nats::Client,
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
        talea_testkit::ledger::seed(&ledger, &["pay", "fees"], &talea_testkit::ledger::HOT_ALICE)
            .await
            .expect("seeds the ledger");
        let nats = talea_testkit::nats::connect().await.expect("NATS");
        Fixture {
            store,
            ledger,
            db,
            prefix: format!("{}.events", talea_testkit::unique_prefix()),
            nats,
        }
    }

    async fn deposit(&self, book: &str, key: &str) -> u64 {
        self.ledger
            .post_transaction(book, talea_testkit::ledger::deposit(key))
            .await
            .expect("post")
            .seq
    }

    /// Starts a relay on a store of its own; returns its shutdown switch and task.
    async fn relay(
        &self,
    ) -> (
        watch::Sender<bool>,
        tokio::task::JoinHandle<()>,
        RelayMetrics,
    ) {
        let store = PgStore::connect(&self.db.url, 4).await.expect("connect");
        let metrics = RelayMetrics::new();
        let relay = Relay::new(
            store,
            self.nats.clone(),
            RelayConfig {
                subject_prefix: self.prefix.clone(),
                poll_ms: 200,
                standby_retry_ms: 100,
                lease_check_ms: 100,
            },
            metrics.clone(),
        );
        relay
            .check_listen()
            .await
            .expect("LISTEN works on a direct connection");
        let (stop, rx) = watch::channel(false);
        let task = tokio::spawn(async move { relay.run(rx).await });
        (stop, task, metrics)
    }

    /// Collects (book, seq, msg id, payload seq) of every message under the prefix.
    async fn collect(&self) -> mpsc::UnboundedReceiver<(String, u64, String, u64)> {
        let mut sub =
            talea_testkit::nats::subscribe_ready(&self.nats, format!("{}.>", self.prefix))
                .await
                .expect("subscribe");
        let (tx, rx) = mpsc::unbounded_channel();
        let prefix = self.prefix.clone();
        tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let book = msg
                    .subject
                    .as_str()
                    .strip_prefix(&format!("{prefix}."))
                    .unwrap_or_default()
                    .to_owned();
                let headers = msg.headers.clone().unwrap_or_default();
                let seq: u64 = headers
                    .get("Talea-Seq")
                    .and_then(|v| v.as_str().parse().ok())
                    .unwrap_or(0);
                // Parsed names of well-known headers compare by their
                // standard form, so look this one up by its constant.
                let id = headers
                    .get(async_nats::header::NATS_MESSAGE_ID)
                    .map(|v| v.as_str().to_owned())
                    .unwrap_or_default();
                let payload: serde_json::Value =
                    serde_json::from_slice(&msg.payload).expect("JSON payload");
                let payload_seq = payload["seq"].as_u64().unwrap_or(0);
                if tx.send((book, seq, id, payload_seq)).is_err() {
                    break;
                }
            }
        });
        rx
    }

    async fn finish(self) {
        self.store.pool().close().await;
        self.db.drop_database().await.expect("drop");
    }
}

/// Receives until every book's seqs from..=last have been seen; returns
/// what arrived, in arrival order.
async fn until_complete(
    rx: &mut mpsc::UnboundedReceiver<(String, u64, String, u64)>,
    want: &[(&str, u64, u64)],
) -> Vec<(String, u64, String, u64)> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let complete = want.iter().all(|(book, from, last)| {
            (*from..=*last).all(|s| got.iter().any(|(b, q, _, _)| b == book && *q == s))
        });
        if complete {
            return got;
        }
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(m)) => got.push(m),
            _ => panic!("incomplete after 30 s: {got:?}"),
        }
    }
}

/// Per book, seqs arrive in increasing order (repeats allowed only as a
/// restart of an earlier suffix, never as a skip).
fn assert_no_skip(got: &[(String, u64, String, u64)], book: &str) {
    let mut seqs = got.iter().filter(|m| m.0 == book).map(|m| m.1);
    let Some(first) = seqs.next() else {
        return;
    };
    let mut highest = first;
    for seq in seqs {
        let seq = &seq;
        assert!(
            *seq <= highest + 1,
            "book {book}: seq {seq} arrived after {highest}: a skip"
        );
        highest = highest.max(*seq);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn publishes_every_event_in_order_with_the_contract_headers() {
    let f = Fixture::new().await;
    let mut rx = f.collect().await;
    // Committed before the relay starts: found by its first scan.
    f.deposit("pay", "before").await;
    let (stop, task, metrics) = f.relay().await;
    let mut last_pay = 0;
    for i in 0..20 {
        last_pay = f.deposit("pay", &format!("p{i}")).await;
        f.deposit("fees", &format!("f{i}")).await;
    }
    let got = until_complete(&mut rx, &[("pay", 1, last_pay), ("fees", 1, 22)]).await;
    for (book, seq, id, payload_seq) in &got {
        assert_eq!(id, &format!("{book}:{seq}"), "Nats-Msg-Id is <book>:<seq>");
        assert_eq!(seq, payload_seq, "Talea-Seq matches the payload");
    }
    let pay: Vec<u64> = got.iter().filter(|m| m.0 == "pay").map(|m| m.1).collect();
    assert_eq!(
        pay,
        (1..=last_pay).collect::<Vec<_>>(),
        "in order, once each"
    );
    talea_testkit::wait_until(Duration::from_secs(10), || {
        let m = metrics.clone();
        async move { m.published_total.get() >= last_pay + 22 }
    })
    .await
    .expect("every publish counted");
    assert_eq!(metrics.leader.get(), 1);
    stop.send_replace(true);
    task.await.expect("relay stops");
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_relay_catches_up_from_its_recorded_position() {
    let f = Fixture::new().await;
    let mut rx = f.collect().await;
    let (stop, task, _) = f.relay().await;
    let first = f.deposit("pay", "a").await;
    until_complete(&mut rx, &[("pay", 1, first)]).await;
    talea_testkit::wait_until(Duration::from_secs(10), || {
        let store = f.store.clone();
        async move {
            let book = talea_core::BookName::parse("pay").expect("name");
            store.relay_position(&book).await.ok() == Some(first)
        }
    })
    .await
    .expect("position recorded");
    stop.send_replace(true);
    task.await.expect("relay stops");

    // Committed while no relay runs, with every NOTIFY lost.
    let mut last = 0;
    for i in 0..10 {
        last = f.deposit("pay", &format!("down-{i}")).await;
    }
    let (stop, task, _) = f.relay().await;
    let got = until_complete(&mut rx, &[("pay", first + 1, last)]).await;
    assert_no_skip(&got, "pay");
    let after: Vec<u64> = got.iter().filter(|m| m.1 > first).map(|m| m.1).collect();
    assert_eq!(after, (first + 1..=last).collect::<Vec<_>>());
    stop.send_replace(true);
    task.await.expect("relay stops");
    f.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_standby_takes_over_when_the_leader_dies() {
    let f = Fixture::new().await;
    let mut rx = f.collect().await;
    let (stop_a, task_a, metrics_a) = f.relay().await;
    talea_testkit::wait_until(Duration::from_secs(10), || {
        let m = metrics_a.clone();
        async move { m.leader.get() == 1 }
    })
    .await
    .expect("the first relay leads");
    let (stop_b, task_b, metrics_b) = f.relay().await;
    let mut last = 0;
    for i in 0..10 {
        last = f.deposit("pay", &format!("x{i}")).await;
    }
    until_complete(&mut rx, &[("pay", 1, last)]).await;
    let before = last;
    assert_eq!(metrics_b.leader.get(), 0, "one leader at a time");

    // The leader dies without a goodbye: its task is aborted, and with it
    // the lease's connection.
    task_a.abort();
    let _ = task_a.await;
    drop(stop_a);
    let started = tokio::time::Instant::now();
    talea_testkit::wait_until(Duration::from_secs(20), || {
        let m = metrics_b.clone();
        async move { m.leader.get() == 1 }
    })
    .await
    .expect("the standby takes over");
    let took = started.elapsed();
    for i in 0..10 {
        last = f.deposit("pay", &format!("y{i}")).await;
    }
    let got = until_complete(&mut rx, &[("pay", before + 1, last)]).await;
    assert_no_skip(&got, "pay");
    eprintln!("fail-over took {took:?}");
    stop_b.send_replace(true);
    task_b.await.expect("relay stops");
    f.finish().await;
}
