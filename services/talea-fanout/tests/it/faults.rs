//! NATS restarted mid-stream under a write load: a throwaway `nats-server`
//! owned by the test, the relay (in process) and the real fan-out on it.
//! Killed with SIGKILL and started again on the same port, it costs the
//! subscriber no gap and no repeat: the relay and the fan-out reconnect on
//! their own, and the session repairs whatever NATS lost from the log.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt;
use talea_bus::{Relay, RelayConfig};
use talea_store_pg::PgStore;
use talea_testkit::process::NatsServer;
use tokio::sync::watch;

use super::{Fixture, event_source, expect_exactly, kill};

/// The relay in process, on `nats_url`.
async fn relay_on(
    f: &Fixture,
    nats_url: &str,
) -> (watch::Sender<bool>, tokio::task::JoinHandle<()>) {
    let store = PgStore::connect(&f.db.url, 4).await.expect("connect");
    let nats = async_nats::connect(nats_url).await.expect("NATS");
    let relay = Relay::new(
        store,
        nats,
        RelayConfig {
            subject_prefix: f.prefix.clone(),
            poll_ms: 200,
            standby_retry_ms: 100,
            lease_check_ms: 100,
        },
        talea_telemetry::RelayMetrics::new(),
    );
    let (stop, rx) = watch::channel(false);
    (stop, tokio::spawn(async move { relay.run(rx).await }))
}

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
    let (stop_relay, relay) = relay_on(&f, &nats.url()).await;
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
    let mut live = watcher
        .subscribe(format!("{}.pay", f.prefix))
        .await
        .expect("subscribes");
    watcher.flush().await.expect("flushes");
    for i in 0..5 {
        last = f.deposit(&format!("after-{i}")).await;
    }
    let published = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(message) = live.next().await {
            let seq = message
                .headers
                .as_ref()
                .and_then(|h| h.get("Talea-Seq"))
                .and_then(|v| v.as_str().parse::<u64>().ok());
            if seq == Some(last) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        published,
        Ok(true),
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
