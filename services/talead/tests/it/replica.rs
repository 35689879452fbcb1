//! Read replicas with read-your-writes, on real processes: a throwaway
//! primary and its streaming standby (`pg_basebackup -R`), a write talead on
//! the primary and a read talead on the standby (`TALEA_REPLICA_URL`).
//!
//! WAL replay on the standby is paused (`pg_wal_replay_pause()`) to hold the
//! replica behind at will: a read with `min_seq` then waits, answers once
//! replay resumes, or runs out its wait with 503 `replica_behind`.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::Value;
use sqlx::PgPool;
use talea_api::LedgerApi;
use talea_client::TaleaClient;
use talea_testkit::process::{PgCluster, PgStopMode, Service, TALEAD_LISTENING, talead_serve};

use crate::faults::migrate;

const BIN: &str = env!("CARGO_BIN_EXE_talead");
const TOKEN: &str = "replica-test-token";
const BOOK: &str = "pay";
/// How long the read instance lets a read wait for its `min_seq`.
const WAIT_MS: u64 = 1_500;

/// A primary, its standby, and talead on each.
struct Setup {
    primary: Arc<PgCluster>,
    standby: Arc<PgCluster>,
    writer: Service,
    reader: Service,
    /// The SDK on the write instance.
    client: TaleaClient,
    http: reqwest::Client,
}

async fn serve(db_url: &str, envs: &[(&str, &str)]) -> Service {
    let mut cmd = talead_serve(Path::new(BIN), &std::env::temp_dir(), db_url);
    cmd.env("TALEA_API_TOKEN", TOKEN)
        .env("TALEA_AUDIT_EVERY_S", "0")
        .envs(envs.iter().copied());
    Service::spawn_async(cmd, TALEAD_LISTENING)
        .await
        .expect("talead starts")
}

async fn setup(wait_ms: u64) -> Setup {
    let primary = Arc::new(PgCluster::start_async().await.expect("a primary"));
    migrate(&primary.url("postgres")).await;
    let standby = Arc::new(primary.standby_async().await.expect("a streaming standby"));
    let writer = serve(&primary.url("postgres"), &[("TALEA_ROLE", "write")]).await;
    let wait = wait_ms.to_string();
    let reader = serve(
        &primary.url("postgres"),
        &[
            ("TALEA_ROLE", "read"),
            ("TALEA_REPLICA_URL", &standby.url("postgres")),
            ("TALEA_REPLICA_WAIT_MS", &wait),
            ("TALEA_METRICS_BIND", "127.0.0.1:0"),
        ],
    )
    .await;
    let client = TaleaClient::new(&writer.url, TOKEN).expect("a client");
    talea_testkit::ledger::seed(&client, &[BOOK], &talea_testkit::ledger::HOT_ALICE)
        .await
        .expect("seeds the ledger");
    Setup {
        primary,
        standby,
        writer,
        reader,
        client,
        http: reqwest::Client::new(),
    }
}

impl Setup {
    async fn standby_pool(&self) -> PgPool {
        PgPool::connect(&self.standby.url("postgres"))
            .await
            .expect("connects to the standby")
    }

    /// Posts one deposit on the primary; its seq.
    async fn deposit(&self, key: &str) -> u64 {
        self.client
            .post_transaction(BOOK, talea_testkit::ledger::deposit(key))
            .await
            .expect("posts")
            .seq
    }

    /// `GET {path}` on the read instance with `min_seq` in the query.
    async fn read(&self, path: &str, min_seq: Option<&str>) -> reqwest::Response {
        read(&self.http, &self.reader.url, path, min_seq).await
    }
}

async fn read(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    min_seq: Option<&str>,
) -> reqwest::Response {
    let mut url = format!("{base}{path}");
    if let Some(seq) = min_seq {
        url.push_str(if url.contains('?') { "&" } else { "?" });
        url.push_str(&format!("min_seq={seq}"));
    }
    http.get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("an answer")
}

/// Pauses WAL replay on the standby, polling until it is paused.
async fn pause_replay(pool: &PgPool) {
    sqlx::query("SELECT pg_wal_replay_pause()")
        .execute(pool)
        .await
        .expect("pauses replay");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let state: String = sqlx::query_scalar("SELECT pg_get_wal_replay_pause_state()")
            .fetch_one(pool)
            .await
            .expect("replay state");
        if state == "paused" {
            return;
        }
        assert!(Instant::now() < deadline, "replay never paused: {state}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn resume_replay(pool: &PgPool) {
    sqlx::query("SELECT pg_wal_replay_resume()")
        .execute(pool)
        .await
        .expect("resumes replay");
}

fn talea_seq(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get("talea-seq")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// The seqs of the events an events page carries.
async fn event_seqs(response: reqwest::Response) -> Vec<u64> {
    let body: Value = response.json().await.expect("a JSON page");
    body["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect()
}

/// A read whose `min_seq` the replica has not applied waits and answers
/// once it has; held behind past the wait bound it is 503 `replica_behind`
/// with `Retry-After`; a `min_seq` beyond the primary's head is 409 at once;
/// bad values are 400; writes are 405 on the read role; the SDK waits for
/// its own writes; the lag is a metric.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replica_reads_wait_for_their_seq_or_answer_replica_behind() {
    let s = setup(WAIT_MS).await;
    let standby = s.standby_pool().await;
    let events = format!("/v1/books/{BOOK}/events");

    // Caught up: answered at once with the seq it reflects.
    let seq = s.deposit("k-1").await;
    // Within WAIT_MS the standby of a quiet primary catches up.
    let answer = s.read(&events, Some(&seq.to_string())).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let reflected = talea_seq(&answer).expect("Talea-Seq on a book read");
    assert!(reflected >= seq, "Talea-Seq {reflected} < min_seq {seq}");
    assert!(event_seqs(answer).await.contains(&seq));

    // Held behind: the read waits, then answers once replay resumes.
    pause_replay(&standby).await;
    let seq = s.deposit("k-2").await;
    let http = s.http.clone();
    let url = s.reader.url.clone();
    let path = events.clone();
    let min = seq.to_string();
    let mut waiting = tokio::spawn(async move { read(&http, &url, &path, Some(&min)).await });
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiting)
            .await
            .is_err(),
        "a read of an unapplied seq answered at once"
    );
    resume_replay(&standby).await;
    let answer = waiting.await.expect("the reader");
    assert_eq!(answer.status(), StatusCode::OK);
    let reflected = talea_seq(&answer).expect("Talea-Seq");
    assert!(reflected >= seq, "Talea-Seq {reflected} < min_seq {seq}");
    assert!(
        event_seqs(answer).await.contains(&seq),
        "the write is in the answer"
    );

    // Held behind past the bound: 503 replica_behind with Retry-After.
    pause_replay(&standby).await;
    let seq = s.deposit("k-3").await;
    let started = Instant::now();
    let answer = s.read(&events, Some(&seq.to_string())).await;
    let waited = started.elapsed();
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        answer.headers().get("retry-after").map(|v| v.as_bytes()),
        Some(&b"1"[..])
    );
    assert!(answer.headers().get("talea-seq").is_none());
    assert!(
        waited >= Duration::from_millis(WAIT_MS),
        "answered after {waited:?}, before the wait bound"
    );
    let body: Value = answer.json().await.expect("an error body");
    assert_eq!(body["error"], "replica_behind");
    assert_eq!(body["min_seq"], seq);
    assert!(body["seq"].as_u64().expect("seq") < seq);
    // Without min_seq the replica answers at once, saying what it reflects.
    let answer = s.read(&events, None).await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(talea_seq(&answer).expect("Talea-Seq") < seq);
    // The lag is a metric of the read instance.
    assert_lag_reported(&s).await;
    resume_replay(&standby).await;

    // Bad input: 400 at once; beyond the primary's head: 409 at once.
    for bad in [
        "0",
        "-1",
        "abc",
        "1.5",
        "99999999999999999999",
        "9223372036854775808",
    ] {
        let answer = s.read(&events, Some(bad)).await;
        assert_eq!(answer.status(), StatusCode::BAD_REQUEST, "min_seq={bad}");
        let body: Value = answer.json().await.expect("an error body");
        assert_eq!(body["error"], "invalid_request");
        assert_eq!(body["field"], "min_seq");
    }
    let answer = s
        .http
        .get(format!("{}{events}", s.reader.url))
        .bearer_auth(TOKEN)
        .header("talea-min-seq", "zero")
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    let started = Instant::now();
    let answer = s.read(&events, Some(&(seq + 1000).to_string())).await;
    assert!(started.elapsed() < Duration::from_millis(WAIT_MS));
    assert_eq!(answer.status(), StatusCode::CONFLICT);
    let body: Value = answer.json().await.expect("an error body");
    assert_eq!(body["error"], "min_seq_ahead");
    assert_eq!(body["head"], seq);
    // The same on the primary's own store.
    let answer = read(
        &s.http,
        &s.writer.url,
        &events,
        Some(&(seq + 1).to_string()),
    )
    .await;
    assert_eq!(answer.status(), StatusCode::CONFLICT);

    // Writes are refused on the read role, and nothing is written.
    let answer = s
        .http
        .post(format!("{}/v1/books/{BOOK}/transactions", s.reader.url))
        .bearer_auth(TOKEN)
        .json(&talea_testkit::ledger::deposit("k-refused"))
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), StatusCode::METHOD_NOT_ALLOWED);
    let reader = TaleaClient::new(&s.reader.url, TOKEN).expect("a client");
    let refused = reader
        .post_transaction(BOOK, talea_testkit::ledger::deposit("k-refused"))
        .await
        .expect_err("a write on the read role");
    assert_eq!(refused.code(), "method_not_allowed");

    // What the SDK remembers of its writes is what a read of the replica
    // waits for (that the SDK sends it by itself: talea-client's
    // `reads_carry_the_last_written_seq`).
    pause_replay(&standby).await;
    let tx = s
        .client
        .post_transaction(BOOK, talea_testkit::ledger::deposit("k-sdk"))
        .await
        .expect("posts");
    assert_eq!(s.client.last_written_seq(BOOK), Some(tx.seq));
    let resumed = {
        let standby = standby.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            resume_replay(&standby).await;
        })
    };
    let answer = s
        .http
        .get(format!("{}{events}?after_seq={}", s.reader.url, tx.seq - 1))
        .bearer_auth(TOKEN)
        .header(
            "talea-min-seq",
            s.client.last_written_seq(BOOK).unwrap_or(0),
        )
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), StatusCode::OK);
    assert_eq!(event_seqs(answer).await.first(), Some(&tx.seq));
    resumed.await.expect("resumed");
    drop(s);
}

/// `talea_replica_lag_seq{book}` on the read instance's metrics shows the
/// paused replica behind (sampled every second: polled with a deadline).
async fn assert_lag_reported(s: &Setup) {
    let metrics = s
        .reader
        .printed_url(talea_testkit::process::TALEAD_METRICS)
        .expect("the read instance's metrics listener");
    // The printed URL is the whole scrape URL.
    let url = metrics.to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = s
            .http
            .get(&url)
            .send()
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        let lag = text
            .lines()
            .find(|l| l.starts_with(&format!("talea_replica_lag_seq{{book=\"{BOOK}\"}}")))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<i64>().ok());
        if lag.is_some_and(|lag| lag > 0) {
            return;
        }
        assert!(Instant::now() < deadline, "no lag reported: {lag:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The standby is promoted (its primary gone) while readers wait for a seq
/// it has received but not applied: each reader gets the data with a
/// `Talea-Seq` at or past its `min_seq`, or a clear error; never an answer
/// that does not reflect its `min_seq`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn readers_waiting_through_a_promotion_never_get_stale_data() {
    let s = setup(8_000).await;
    let standby = s.standby_pool().await;
    pause_replay(&standby).await;
    let mut last = 0;
    for i in 0..5 {
        last = s.deposit(&format!("p-{i}")).await;
    }
    let readers: Vec<_> = (0..8)
        .map(|i| {
            let http = s.http.clone();
            let url = s.reader.url.clone();
            let min_seq = last - (i % 3);
            tokio::spawn(async move {
                let path = format!("/v1/books/{BOOK}/events?after_seq={}", min_seq - 1);
                let answer = read(&http, &url, &path, Some(&min_seq.to_string())).await;
                let status = answer.status();
                let seq = talea_seq(&answer);
                let body: Value = answer.json().await.unwrap_or(Value::Null);
                (min_seq, status, seq, body)
            })
        })
        .collect();
    // The readers are waiting: none has answered.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        readers.iter().all(|r| !r.is_finished()),
        "a reader answered while replay was paused"
    );
    // The primary goes away (a fast stop streams its last WAL to the
    // standby), and the standby is promoted.
    let primary = Arc::clone(&s.primary);
    tokio::task::spawn_blocking(move || primary.stop(PgStopMode::Fast))
        .await
        .expect("the stop task")
        .expect("the primary stops");
    s.standby.promote_async().await.expect("promotes");
    let mut answered = 0;
    for reader in readers {
        let (min_seq, status, seq, body) = reader.await.expect("a reader");
        match status {
            StatusCode::OK => {
                let seq = seq.expect("Talea-Seq on a 200");
                assert!(seq >= min_seq, "Talea-Seq {seq} below min_seq {min_seq}");
                let first = body["events"][0]["seq"].as_u64();
                assert_eq!(first, Some(min_seq), "the awaited event is in the answer");
                answered += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                let code = body["error"].as_str().unwrap_or_default();
                assert!(
                    code == "replica_behind" || code == "unavailable",
                    "a clear error: {body}"
                );
            }
            other => panic!("reader for {min_seq}: unexpected {other}: {body}"),
        }
    }
    // The promoted standby had received every write: every reader got it.
    assert_eq!(answered, 8, "every reader answered after the promotion");
    // After the promotion the read instance reads the new primary.
    let answer = s
        .read(&format!("/v1/books/{BOOK}/events"), Some(&last.to_string()))
        .await;
    assert_eq!(answer.status(), StatusCode::OK);
    assert!(talea_seq(&answer).expect("Talea-Seq") >= last);
}

/// A replica URL that names a primary is refused at start, with a clear
/// message and a nonzero exit; so is a replica URL on a role other than read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_given_as_the_replica_is_refused_at_start() {
    let primary = Arc::new(PgCluster::start_async().await.expect("a primary"));
    let url = primary.url("postgres");
    migrate(&url).await;
    for (role, expected) in [
        ("read", "names a primary (pg_is_in_recovery() is false)"),
        ("write", "set TALEA_ROLE=read"),
    ] {
        let mut cmd = talead_serve(Path::new(BIN), &std::env::temp_dir(), &url);
        cmd.env("TALEA_API_TOKEN", TOKEN)
            .env("TALEA_ROLE", role)
            .env("TALEA_REPLICA_URL", &url);
        let out = tokio::task::spawn_blocking(move || cmd.output())
            .await
            .expect("the task")
            .expect("runs");
        assert!(!out.status.success(), "{role}: started");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(expected), "{role}: {stderr}");
    }
}
