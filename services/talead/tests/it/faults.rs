//! Fault tests on real processes under a write load from SDK clients that
//! retry: a talead killed with SIGKILL mid-load beside a second instance,
//! Postgres restarted under load, and a burst past a book's write queue.
//!
//! After every fault the same invariants are checked on the database:
//! every key is applied exactly once, every commit a client was told about
//! is in the log with the seq and id it was told, the book's log is dense
//! (seqs 1..=N), and every balance equals the sum of its postings.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::PgPool;
use talea_api::{ApiError, LedgerApi};
use talea_client::{RetryPolicy, RetryReason, TaleaClient};
use talea_store_pg::PgStore;
use talea_testkit::process::{
    PgCluster, PgStopMode, Service, TALEAD_LISTENING, free_port, talead_serve,
};

const BIN: &str = env!("CARGO_BIN_EXE_talead");
const TOKEN: &str = "fault-test-token";
const BOOK: &str = "pay";
/// One BTC at scale 8, in minor units: what every deposit moves.
const UNIT: i128 = 100_000_000;
/// How long a whole load may take, faults included.
const LOAD_DEADLINE: Duration = Duration::from_secs(45);

/// Starts `talead serve` on `db_url`, bound to `bind`, with `envs` added.
async fn serve(db_url: &str, bind: &str, envs: &[(&str, &str)]) -> Service {
    let mut cmd = talead_serve(Path::new(BIN), &std::env::temp_dir(), db_url);
    cmd.env("TALEA_API_TOKEN", TOKEN)
        .env("TALEA_BIND", bind)
        .envs(envs.iter().copied());
    Service::spawn_async(cmd, TALEAD_LISTENING)
        .await
        .expect("talead starts")
}

/// Migrates the database at `db_url` (as `talead init` would, without its `.env`).
pub(crate) async fn migrate(db_url: &str) {
    let store = PgStore::connect(db_url, 2).await.expect("connects");
    store.migrate().await.expect("migrates");
    store.pool().close().await;
}

/// The asset and the book's two accounts (seqs 1 and 2).
async fn setup(api: &dyn LedgerApi) {
    talea_testkit::ledger::seed(api, &[BOOK], &talea_testkit::ledger::HOT_ALICE)
        .await
        .expect("seeds the ledger");
}

/// What the load's clients saw.
#[derive(Default)]
struct Seen {
    /// key → (seq, tx_id) of every success a client received.
    acked: Mutex<BTreeMap<String, (u64, String)>>,
    /// Every HTTP status a client saw, retried or final, with its count.
    statuses: Mutex<BTreeMap<u16, u64>>,
    /// Attempts that got no answer at all (refused, reset, timed out).
    transport_failures: AtomicU64,
    /// Final refusals that are not retryable: always a bug here.
    fatal: Mutex<Vec<(String, ApiError)>>,
    /// Keys acknowledged so far, to time the faults.
    progress: AtomicU64,
}

impl Seen {
    fn status(&self, status: u16) {
        *lock(&self.statuses).entry(status).or_default() += 1;
    }

    fn statuses(&self) -> BTreeMap<u16, u64> {
        lock(&self.statuses).clone()
    }

    async fn wait_progress(&self, at_least: u64) {
        talea_testkit::wait_until(LOAD_DEADLINE, || async {
            self.progress.load(Ordering::SeqCst) >= at_least
        })
        .await
        .unwrap_or_else(|_| panic!("the load never reached {at_least} acknowledged keys"));
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// An SDK client on `base` that records every retried status in `seen`.
fn client(base: &str, policy: RetryPolicy, seen: &Arc<Seen>) -> TaleaClient {
    let seen = Arc::clone(seen);
    TaleaClient::builder(base)
        .token(TOKEN)
        .retry_policy(policy)
        .on_retry(move |notice| match &notice.reason {
            RetryReason::Status { status, .. } => seen.status(*status),
            RetryReason::Transport(_) => {
                seen.transport_failures.fetch_add(1, Ordering::SeqCst);
            }
            _ => {}
        })
        .build()
        .expect("builds")
}

fn policy(deadline: Duration) -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10_000,
        deadline,
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(200),
        attempt_timeout: Duration::from_secs(5),
    }
}

/// Runs `workers` tasks, each posting `per_worker` unique keys. Worker `w`
/// starts on `clients[w % len]`; when its SDK gives up on a retryable
/// error (the instance is gone), it sends the same request to the next
/// client. Returns when every key is acknowledged or refused for good.
fn load(
    clients: Vec<TaleaClient>,
    workers: usize,
    per_worker: usize,
    seen: &Arc<Seen>,
) -> tokio::task::JoinHandle<()> {
    let seen = Arc::clone(seen);
    tokio::spawn(async move {
        let mut tasks = tokio::task::JoinSet::new();
        for w in 0..workers {
            let clients = clients.clone();
            let seen = Arc::clone(&seen);
            tasks.spawn(async move {
                let mut current = w % clients.len();
                for i in 0..per_worker {
                    let key = format!("w{w}-k{i}");
                    let started = tokio::time::Instant::now();
                    loop {
                        match clients[current]
                            .post_transaction(BOOK, talea_testkit::ledger::deposit(&key))
                            .await
                        {
                            Ok(tx) => {
                                seen.status(if tx.deduplicated == Some(true) {
                                    200
                                } else {
                                    201
                                });
                                lock(&seen.acked).insert(key.clone(), (tx.seq, tx.tx_id));
                                seen.progress.fetch_add(1, Ordering::SeqCst);
                                break;
                            }
                            Err(e) if e.is_retryable() && started.elapsed() < LOAD_DEADLINE => {
                                seen.status(e.status());
                                current = (current + 1) % clients.len();
                            }
                            Err(e) => {
                                seen.status(e.status());
                                lock(&seen.fatal).push((key.clone(), e));
                                break;
                            }
                        }
                    }
                }
            });
        }
        while tasks.join_next().await.is_some() {}
    })
}

/// Waits for the load to finish and asserts no key was refused for good.
async fn finish(load: tokio::task::JoinHandle<()>, seen: &Seen) {
    tokio::time::timeout(LOAD_DEADLINE, load)
        .await
        .expect("the load finishes in time")
        .expect("the load task");
    let fatal = lock(&seen.fatal);
    assert!(fatal.is_empty(), "refused for good: {fatal:?}");
}

/// The invariants, read from the database: `keys` applied exactly once,
/// every acknowledged commit there as acknowledged, a dense log of
/// `2 + keys` events, and balances equal to the sums of their postings.
async fn check_log(db_url: &str, keys: usize, seen: &Seen) {
    let pool = PgPool::connect(db_url).await.expect("connects");
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT idempotency_key, seq, tx_id::text FROM transactions WHERE book = $1",
    )
    .bind(BOOK)
    .fetch_all(&pool)
    .await
    .expect("transactions");
    assert_eq!(rows.len(), keys, "one transaction per key");
    let by_key: BTreeMap<&str, (u64, &str)> = rows
        .iter()
        .map(|(k, seq, id)| (k.as_str(), (u64::try_from(*seq).expect("seq"), id.as_str())))
        .collect();
    assert_eq!(by_key.len(), keys, "no key twice");
    let acked = lock(&seen.acked).clone();
    assert_eq!(acked.len(), keys, "every key acknowledged");
    for (key, (seq, tx_id)) in acked.iter() {
        assert_eq!(
            by_key.get(key.as_str()),
            Some(&(*seq, tx_id.as_str())),
            "the acknowledged commit of {key} is in the log as acknowledged"
        );
    }

    let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM events WHERE book = $1 ORDER BY seq")
        .bind(BOOK)
        .fetch_all(&pool)
        .await
        .expect("events");
    let total = i64::try_from(keys + 2).expect("small");
    assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "a dense log");
    let last: i64 = sqlx::query_scalar("SELECT last_seq FROM books WHERE book = $1")
        .bind(BOOK)
        .fetch_one(&pool)
        .await
        .expect("counter");
    assert_eq!(last, total);

    let wrong: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM balances b WHERE b.book = $1 AND b.balance <> \
         (SELECT coalesce(sum(p.amount), 0) FROM postings p \
          WHERE p.book = b.book AND p.account = b.account AND p.asset = b.asset)",
    )
    .bind(BOOK)
    .fetch_one(&pool)
    .await
    .expect("balances");
    assert_eq!(wrong, 0, "every balance is the sum of its postings");
    let hot: String = sqlx::query_scalar(
        "SELECT balance::text FROM balances WHERE book = $1 AND account = 'hot' AND asset = 'BTC'",
    )
    .bind(BOOK)
    .fetch_one(&pool)
    .await
    .expect("hot balance");
    let expected = i128::try_from(keys).expect("small") * UNIT;
    assert_eq!(hot, expected.to_string());
    pool.close().await;
}

/// Only successes and the retryable statuses.
fn assert_only_retryable(statuses: &BTreeMap<u16, u64>) {
    let allowed: BTreeSet<u16> = [200, 201, 408, 429, 503].into();
    assert!(
        statuses.keys().all(|s| allowed.contains(s)),
        "callers saw a status that is neither success nor retryable: {statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_talead_killed_mid_load_loses_and_doubles_nothing() {
    let db = talea_testkit::fresh_database().await.expect("database");
    migrate(&db.url).await;
    let port_a = free_port().expect("port");
    let bind_a = format!("127.0.0.1:{port_a}");
    let mut a = serve(&db.url, &bind_a, &[]).await;
    let b = serve(&db.url, "127.0.0.1:0", &[]).await;
    let seen = Arc::new(Seen::default());
    // A short SDK deadline: a caller whose instance died moves on quickly.
    let clients = vec![
        client(&a.url, policy(Duration::from_secs(2)), &seen),
        client(&b.url, policy(Duration::from_secs(2)), &seen),
    ];
    setup(&clients[0]).await;

    let (workers, per_worker) = (8, 50);
    let running = load(clients, workers, per_worker, &seen);
    seen.wait_progress(100).await;
    // SIGKILL while eight writers have posts queued and batches in flight.
    a.kill();
    seen.wait_progress(200).await;
    // The same address again, as a supervisor would restart it.
    let a = serve(&db.url, &bind_a, &[]).await;
    finish(running, &seen).await;

    check_log(&db.url, workers * per_worker, &seen).await;
    assert!(
        seen.transport_failures.load(Ordering::SeqCst) > 0,
        "the kill was felt by the callers"
    );
    drop((a, b));
    db.drop_database().await.expect("drops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_under_load_costs_only_retryable_answers() {
    let cluster = Arc::new(PgCluster::start_async().await.expect("a throwaway cluster"));
    let url = cluster.url("postgres");
    migrate(&url).await;
    let server = serve(&url, "127.0.0.1:0", &[("TALEA_REQUEST_TIMEOUT_MS", "3000")]).await;
    let seen = Arc::new(Seen::default());
    // Long enough to ride out both restarts on one instance.
    let clients = vec![client(&server.url, policy(Duration::from_secs(40)), &seen)];
    setup(&clients[0]).await;

    let (workers, per_worker) = (6, 60);
    let load_started = postmaster_started(&url).await;
    let running = load(clients.clone(), workers, per_worker, &seen);
    seen.wait_progress(60).await;
    cluster
        .restart_async(PgStopMode::Fast)
        .await
        .expect("fast restart");
    seen.wait_progress(180).await;
    cluster
        .restart_async(PgStopMode::Immediate)
        .await
        .expect("immediate restart (crash recovery)");
    finish(running, &seen).await;

    let statuses = seen.statuses();
    assert_only_retryable(&statuses);
    // The restarts happened under the load (whether a caller saw a 503 is
    // timing: a restart between two batches costs only pooled connections,
    // which the pool replaces unseen).
    let restarted_at = postmaster_started(&url).await;
    assert!(
        restarted_at > load_started,
        "the server restarted during the load: {restarted_at} vs {load_started}"
    );
    check_log(&url, workers * per_worker, &seen).await;
    // The same process serves on: nobody restarted talead.
    let health = clients[0].health().await.expect("healthy");
    assert_eq!(health.status, "ok");
    drop(server);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_past_the_book_queue_is_refused_429_then_lands_once() {
    const DEPTH: usize = 4;
    const BATCH: usize = 2;
    const BURST: usize = 40;
    let db = talea_testkit::fresh_database().await.expect("database");
    migrate(&db.url).await;
    let depth = DEPTH.to_string();
    let batch = BATCH.to_string();
    let server = serve(
        &db.url,
        "127.0.0.1:0",
        &[
            ("TALEA_WRITE_QUEUE_DEPTH", &depth),
            ("TALEA_WRITE_BATCH_MAX", &batch),
        ],
    )
    .await;
    let seen = Arc::new(Seen::default());
    let sdk = client(&server.url, policy(Duration::from_secs(30)), &seen);
    setup(&sdk).await;

    // Stall the book's committer: hold its counter row, as a slow database would.
    let pool = PgPool::connect(&db.url).await.expect("connects");
    let mut stall = pool.begin().await.expect("begins");
    sqlx::query("SELECT last_seq FROM books WHERE book = $1 FOR UPDATE")
        .bind(BOOK)
        .execute(&mut *stall)
        .await
        .expect("locks the counter row");

    // The burst, raw, to read every status and header.
    let http = reqwest::Client::new();
    let answered = Arc::new(AtomicU64::new(0));
    let mut burst = tokio::task::JoinSet::new();
    for i in 0..BURST {
        let (http, url, answered) = (
            http.clone(),
            format!("{}/v1/books/{BOOK}/transactions", server.url),
            Arc::clone(&answered),
        );
        burst.spawn(async move {
            let r = http
                .post(url)
                .bearer_auth(TOKEN)
                .json(&talea_testkit::ledger::deposit(&format!("burst-{i}")))
                .send()
                .await
                .expect("answered");
            answered.fetch_add(1, Ordering::SeqCst);
            let status = r.status().as_u16();
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (status, retry_after, body)
        });
    }
    // Everything beyond one batch in the committer and a full queue is
    // refused at once, while the lock is still held.
    let refused_at_once = (BURST - DEPTH - BATCH) as u64;
    talea_testkit::wait_until(Duration::from_secs(20), || async {
        answered.load(Ordering::SeqCst) >= refused_at_once
    })
    .await
    .expect("the overflow is refused without waiting");
    stall.rollback().await.expect("releases the lock");

    let mut statuses: BTreeMap<u16, u64> = BTreeMap::new();
    while let Some(joined) = burst.join_next().await {
        let (status, retry_after, body) = joined.expect("the request task");
        *statuses.entry(status).or_default() += 1;
        if status == 429 {
            assert_eq!(body["error"], "overloaded", "{body}");
            let after = retry_after.expect("a 429 carries Retry-After");
            assert!(after.parse::<u64>().is_ok_and(|s| s >= 1), "{after}");
        }
    }
    assert!(
        statuses.get(&429).copied().unwrap_or(0) >= refused_at_once,
        "{statuses:?}"
    );
    assert!(
        statuses.keys().all(|s| [201, 429].contains(s)),
        "{statuses:?}"
    );

    // The callers retry (the SDK, honouring Retry-After): everything lands once.
    let mut retries = tokio::task::JoinSet::new();
    for i in 0..BURST {
        let sdk = sdk.clone();
        retries.spawn(async move {
            let key = format!("burst-{i}");
            let tx = sdk
                .post_transaction(BOOK, talea_testkit::ledger::deposit(&key))
                .await;
            (key, tx)
        });
    }
    while let Some(joined) = retries.join_next().await {
        let (key, tx) = joined.expect("the retry task");
        let tx = tx.unwrap_or_else(|e| panic!("{key} lands after retries: {e:?}"));
        lock(&seen.acked).insert(key, (tx.seq, tx.tx_id));
    }
    check_log(&db.url, BURST, &seen).await;
    pool.close().await;
    drop(server);
    db.drop_database().await.expect("drops");
}

/// When the server at `url` last started, in seconds since the epoch.
async fn postmaster_started(url: &str) -> f64 {
    let pool = PgPool::connect(url).await.expect("connects");
    let at = sqlx::query_scalar("SELECT extract(epoch FROM pg_postmaster_start_time())::float8")
        .fetch_one(&pool)
        .await
        .expect("start time");
    pool.close().await;
    at
}
