//! In-process hot-book benchmark: commits per second through `LedgerApi` on each store.
//!
//! `cargo bench -p talea-ledger --bench hot_book` posts balanced two-leg
//! transactions with unique idempotency keys to ONE book from many
//! concurrent tasks, through `LedgerService` (so through the per-book
//! committer and group commit, exactly as talead does, minus HTTP), for each
//! store in turn, with fsync on everywhere, and prints one row per store:
//! committed transactions per second and the latency of a post (p50, p99,
//! p99.9). Every post must answer 201; anything else aborts the run.
//!
//! Settings (environment): `BENCH_STORES` (`log,sqlite,postgres`),
//! `BENCH_SECS` (10), `BENCH_CLIENTS` (256), `TALEA_WRITE_BATCH_MAX` (64),
//! `TALEA_WRITE_QUEUE_DEPTH` (the client count, so the queue never refuses),
//! `TALEA_TEST_PG_URL` (a superuser URL; a fresh database is created and
//! dropped). `BENCH_JSON=path` also writes the rows as JSON.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use talea_api::LedgerApi;
use talea_ledger::{LedgerConfig, LedgerService};
use talea_store::Store;

fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

struct Row {
    store: String,
    committed: u64,
    secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
}

fn percentile(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

async fn run(name: &str, store: Arc<dyn Store>, secs: u64, clients: usize) -> Row {
    let batch_max = env_or("TALEA_WRITE_BATCH_MAX", 64usize);
    let queue_depth = env_or("TALEA_WRITE_QUEUE_DEPTH", clients.max(1));
    let ledger = LedgerService::new(
        store,
        LedgerConfig {
            write_queue_depth: queue_depth,
            write_batch_max: batch_max,
            ..LedgerConfig::default()
        },
        talea_telemetry::Metrics::new(),
    );
    talea_testkit::ledger::seed(
        &ledger,
        &["hot"],
        &[("hot:a", "asset"), ("hot:b", "liability")],
    )
    .await
    .expect("seeds the ledger");

    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let tasks: Vec<_> = (0..clients)
        .map(|client| {
            let ledger = ledger.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let request = talea_testkit::ledger::transfer(
                        &format!("bench-{client}-{i}"),
                        "hot:a",
                        "hot:b",
                        "0.00000001",
                    );
                    let t = Instant::now();
                    match ledger.post_transaction("hot", request).await {
                        Ok(tx) if tx.deduplicated != Some(true) => latencies.push(t.elapsed()),
                        Ok(tx) => panic!("unexpected replay {}", tx.idempotency_key),
                        Err(e) => panic!("post failed: {e:?}"),
                    }
                    i += 1;
                }
                latencies
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("client task"));
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies.sort();
    Row {
        store: name.to_owned(),
        committed: latencies.len() as u64,
        secs: elapsed,
        p50_ms: percentile(&latencies, 0.50),
        p99_ms: percentile(&latencies, 0.99),
        p999_ms: percentile(&latencies, 0.999),
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let secs = env_or("BENCH_SECS", 10u64);
        let clients = env_or("BENCH_CLIENTS", 256usize);
        let stores = std::env::var("BENCH_STORES").unwrap_or_else(|_| "log,sqlite,postgres".into());
        let mut rows = Vec::new();
        for name in stores.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            eprintln!("hot_book: {name}, {clients} clients, {secs} s");
            let dir = tempfile::tempdir().expect("temp dir");
            let row = match name {
                "log" => {
                    let store = talea_store_log::LogStore::open(&dir.path().join("log"))
                        .expect("open log store");
                    run(name, Arc::new(store), secs, clients).await
                }
                "sqlite" => {
                    let store = talea_store_sqlite::SqliteStore::open(&dir.path().join("t.db"))
                        .await
                        .expect("open sqlite store");
                    run(name, Arc::new(store), secs, clients).await
                }
                "postgres" => {
                    let db = talea_testkit::fresh_database().await.expect("database");
                    let store = talea_store_pg::PgStore::connect(&db.url, 10)
                        .await
                        .expect("connect");
                    store.migrate().await.expect("migrate");
                    let row = run(name, Arc::new(store.clone()), secs, clients).await;
                    store.pool().close().await;
                    db.drop_database().await.expect("drop database");
                    row
                }
                other => panic!("unknown store {other} (log, sqlite, postgres)"),
            };
            rows.push(row);
        }
        println!();
        println!(
            "{:<10} {:>12} {:>10} {:>10} {:>10}",
            "store", "tx/s", "p50 ms", "p99 ms", "p99.9 ms"
        );
        for r in &rows {
            println!(
                "{:<10} {:>12.0} {:>10.2} {:>10.2} {:>10.2}",
                r.store,
                r.committed as f64 / r.secs,
                r.p50_ms,
                r.p99_ms,
                r.p999_ms
            );
        }
        if let Ok(path) = std::env::var("BENCH_JSON") {
            let json: Vec<_> = rows
                .iter()
                .map(|r| {
                    serde_json::json!({
                        "store": r.store, "clients": clients, "secs": r.secs,
                        "committed": r.committed, "tx_per_s": r.committed as f64 / r.secs,
                        "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "p999_ms": r.p999_ms,
                    })
                })
                .collect();
            std::fs::write(&path, serde_json::to_vec_pretty(&json).expect("json"))
                .expect("write BENCH_JSON");
        }
    });
}
