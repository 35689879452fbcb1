//! Faults of the streaming path under a write load.
//!
//! NATS restarted mid-stream: a throwaway `nats-server` owned by the test,
//! the relay (in process) and the real fan-out on it. Killed with SIGKILL
//! and started again on the same port, it costs the subscriber no gap and
//! no repeat: the relay and the fan-out reconnect on their own, and the
//! session repairs whatever NATS lost from the log.
//!
//! The relay and the fan-out killed under SDK load: the real talead, relay
//! and fan-out binaries, SDK clients (with their retry policy) posting
//! unique keys through talead, an SSE subscriber on the fan-out; the relay
//! and then the fan-out are killed with SIGKILL mid-load and started again.
//! The subscriber receives every seq once, in order, and the database holds
//! every acknowledged key exactly once in a dense log.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use talea_api::LedgerApi;
use talea_client::{RetryPolicy, TaleaClient};
use talea_testkit::nats::{subscribe_ready, wait_for_seq};
use talea_testkit::process::{
    NatsServer, Service, TALEAD_LISTENING, talea_command, talead_serve, workspace_bin_async,
};
use tokio::sync::watch;

use super::{Fixture, TOKEN, event_source, expect_exactly, kill};

/// How long the relay may take to publish a commit on NATS.
const PUBLISH_DEADLINE: Duration = Duration::from_secs(20);

async fn wait_progress(progress: &AtomicU64, at_least: u64) {
    talea_testkit::wait_until(Duration::from_secs(30), || async {
        progress.load(Ordering::SeqCst) >= at_least
    })
    .await
    .unwrap_or_else(|_| panic!("the writers never reached {at_least} commits"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nats_restart_mid_stream_costs_no_gap_or_repeat() {
    let nats = tokio::task::spawn_blocking(NatsServer::start)
        .await
        .expect("the start task")
        .expect("a throwaway nats-server");
    let f = Arc::new(Fixture::new().await);
    let (stop_relay, relay) = f.relay_on(&nats.url()).await;
    let (fanout, port) = f
        .fanout_with(0, &[("TALEA_NATS_URL", nats.url())], Stdio::inherit())
        .await;
    let (_port_tx, port_rx) = watch::channel(port);
    let mut ids = event_source(port_rx);
    let mut seen = Vec::new();
    expect_exactly(&mut ids, &mut seen, 2).await;

    // Four writers, 40 commits each, while NATS dies and comes back.
    let (writers, per_writer) = (4u64, 40u64);
    let progress = Arc::new(AtomicU64::new(0));
    let mut load = tokio::task::JoinSet::new();
    for w in 0..writers {
        let (f, progress) = (Arc::clone(&f), Arc::clone(&progress));
        load.spawn(async move {
            for i in 0..per_writer {
                f.deposit(&format!("w{w}-{i}")).await;
                progress.fetch_add(1, Ordering::SeqCst);
            }
        });
    }
    wait_progress(&progress, 40).await;
    let mut nats = tokio::task::spawn_blocking(move || {
        let mut nats = nats;
        nats.kill();
        nats
    })
    .await
    .expect("the kill task");
    wait_progress(&progress, 100).await;
    nats = tokio::task::spawn_blocking(move || nats.start_again().map(|()| nats))
        .await
        .expect("the restart task")
        .expect("nats-server starts again on its port");
    while let Some(done) = load.join_next().await {
        done.expect("a writer");
    }
    let mut last = 2 + writers * per_writer;
    expect_exactly(&mut ids, &mut seen, last).await;

    // The live path is back: the relay publishes new commits on NATS again.
    let watcher = async_nats::connect(nats.url()).await.expect("NATS");
    let mut live = subscribe_ready(&watcher, format!("{}.pay", f.prefix))
        .await
        .expect("subscribes");
    for i in 0..5 {
        last = f.deposit(&format!("after-{i}")).await;
    }
    assert!(
        wait_for_seq(&mut live, last, PUBLISH_DEADLINE).await,
        "the relay publishes on the restarted NATS"
    );
    expect_exactly(&mut ids, &mut seen, last).await;

    kill(fanout);
    stop_relay.send_replace(true);
    let _ = relay.await;
    drop(nats);
    let f = Arc::into_inner(f).expect("the writers are done");
    f.finish().await;
}

/// Another service's binary, built by cargo if needed.
async fn service_bin(package: &str) -> PathBuf {
    workspace_bin_async(package, package)
        .await
        .unwrap_or_else(|e| panic!("the {package} binary: {e:#}"))
}

/// The real talead on the fixture's database.
async fn talead_on(f: &Fixture, bin: &Path) -> Service {
    let mut cmd = talead_serve(bin, &std::env::temp_dir(), &f.db.url);
    cmd.env("TALEA_API_TOKEN", TOKEN);
    Service::spawn_async(cmd, TALEAD_LISTENING)
        .await
        .expect("talead starts")
}

/// The real relay on the fixture's database and NATS prefix, scanning
/// every 200 ms and trying for the lease every 100 ms.
async fn relay_binary(f: &Fixture, bin: &Path) -> Service {
    let mut cmd = talea_command(bin, &std::env::temp_dir());
    cmd.env("TALEA_DB_URL", &f.db.url)
        .env("TALEA_NATS_URL", talea_testkit::nats_url())
        .env("TALEA_NATS_SUBJECT_PREFIX", &f.prefix)
        .env("TALEA_BIND", "127.0.0.1:0")
        .env("TALEA_RELAY_POLL_MS", "200")
        .env("TALEA_RELAY_STANDBY_RETRY_MS", "100");
    Service::spawn_async(cmd, "talea-relay on ")
        .await
        .expect("talea-relay starts")
}

/// What the SDK load saw.
#[derive(Default)]
struct Acked {
    /// key → (seq, tx_id) of every acknowledged post.
    keys: Mutex<BTreeMap<String, (u64, String)>>,
    /// Posts acknowledged so far, to time the faults.
    count: AtomicU64,
    /// Set to end the load.
    stop: AtomicBool,
}

impl Acked {
    async fn wait(&self, at_least: u64) {
        talea_testkit::wait_until(Duration::from_secs(30), || async {
            self.count.load(Ordering::SeqCst) >= at_least
        })
        .await
        .unwrap_or_else(|_| panic!("the load never reached {at_least} acknowledged posts"));
    }

    fn keys(&self) -> BTreeMap<String, (u64, String)> {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_and_fanout_killed_under_sdk_load_cost_no_gap_or_repeat() {
    const WRITERS: usize = 4;
    /// Acknowledged posts between two steps of the scenario.
    const STEP: u64 = 300;
    let (talead_bin, relay_bin) = (
        service_bin("talead").await,
        service_bin("talea-relay").await,
    );
    let f = Fixture::new().await;
    let api = talead_on(&f, &talead_bin).await;
    let mut relay = relay_binary(&f, &relay_bin).await;
    let (fanout, port) = f.fanout(0).await;
    let (_port_tx, port_rx) = watch::channel(port);
    let mut ids = event_source(port_rx);
    let mut seen = Vec::new();
    expect_exactly(&mut ids, &mut seen, 2).await;
    // What reaches NATS: the relays' live path, checked at the end.
    let nats = talea_testkit::nats::connect().await.expect("NATS");
    let mut published = subscribe_ready(&nats, format!("{}.pay", f.prefix))
        .await
        .expect("subscribes");

    // SDK clients posting unique keys through talead until told to stop.
    let acked = Arc::new(Acked::default());
    let mut load = tokio::task::JoinSet::new();
    for w in 0..WRITERS {
        let client = TaleaClient::builder(&api.url)
            .token(TOKEN)
            .retry_policy(RetryPolicy {
                deadline: Duration::from_secs(20),
                base_delay: Duration::from_millis(10),
                max_delay: Duration::from_millis(200),
                ..RetryPolicy::default()
            })
            .build()
            .expect("an SDK client");
        let acked = Arc::clone(&acked);
        load.spawn(async move {
            let mut i = 0;
            while !acked.stop.load(Ordering::SeqCst) {
                let key = format!("w{w}-k{i}");
                let tx = client
                    .post_transaction("pay", talea_testkit::ledger::deposit(&key))
                    .await
                    .unwrap_or_else(|e| panic!("{key} refused for good: {e:?}"));
                acked
                    .keys
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(key, (tx.seq, tx.tx_id));
                acked.count.fetch_add(1, Ordering::SeqCst);
                i += 1;
            }
        });
    }

    // The relay dies mid-load (its lease with its connection); a new one
    // takes the lease and publishes from the recorded position.
    acked.wait(STEP).await;
    relay.kill();
    acked.wait(2 * STEP).await;
    let relay = relay_binary(&f, &relay_bin).await;
    // The fan-out dies mid-stream and comes back on the same address; the
    // subscriber resumes with Last-Event-ID.
    acked.wait(3 * STEP).await;
    kill(fanout);
    acked.wait(4 * STEP).await;
    let (fanout, _) = f.fanout(port).await;
    acked.wait(5 * STEP).await;
    acked.stop.store(true, Ordering::SeqCst);
    while let Some(done) = load.join_next().await {
        done.expect("a writer");
    }

    let keys = acked.keys();
    let last: i64 = sqlx::query_scalar("SELECT last_seq FROM books WHERE book = 'pay'")
        .fetch_one(f.store.pool())
        .await
        .expect("the book's counter");
    let last = u64::try_from(last).expect("a seq");
    assert_eq!(
        last,
        2 + keys.len() as u64,
        "one event per acknowledged key"
    );
    eprintln!("{} posts acknowledged, up to seq {last}", keys.len());
    expect_exactly(&mut ids, &mut seen, last).await;

    // The database: every acknowledged key committed once, as acknowledged,
    // in a dense log.
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT idempotency_key, seq, tx_id::text FROM transactions WHERE book = 'pay'",
    )
    .fetch_all(f.store.pool())
    .await
    .expect("transactions");
    let stored: BTreeMap<String, (u64, String)> = rows
        .into_iter()
        .map(|(key, seq, id)| (key, (u64::try_from(seq).expect("a seq"), id)))
        .collect();
    assert_eq!(stored, keys, "every acknowledged key once, as acknowledged");
    let seqs: Vec<i64> =
        sqlx::query_scalar("SELECT seq FROM events WHERE book = 'pay' ORDER BY seq")
            .fetch_all(f.store.pool())
            .await
            .expect("events");
    let dense: Vec<i64> = (1..=i64::try_from(last).expect("small")).collect();
    assert_eq!(seqs, dense, "a dense log");

    // The second relay published the end of the load on NATS.
    assert!(
        wait_for_seq(&mut published, last, PUBLISH_DEADLINE).await,
        "the new relay publishes up to {last}"
    );

    kill(fanout);
    drop((relay, api));
    f.finish().await;
}
