//! The real `talead` binary: `init`, `serve`, start-up refusals, metrics, shutdown.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use talea_testkit::TestDb;
use talea_testkit::process::{Service, TALEAD_LISTENING, TALEAD_METRICS, talea_command};

mod bootstrap;
mod console;
mod embedded;
mod faults;
mod probing;
mod proofs;
mod replica;
mod scope;
mod scope_outage;
mod settings_documented;
mod token_leak;

const BIN: &str = env!("CARGO_BIN_EXE_talead");

/// A `talead` command in `dir` with a clean `TALEA_*` environment.
fn talead(dir: &Path) -> Command {
    talea_command(BIN, dir)
}

fn env_value(dir: &Path, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(dir.join(".env")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")).map(str::to_owned))
}

const SEED: &str = r#"
[[assets]]
code = "BTC"
scale = 8
name = "Bitcoin"

[[accounts]]
book = "demo"
name = "hot-wallet"
kind = "asset"

[[accounts]]
book = "demo"
name = "customers:alice"
kind = "liability"
min_balance = "0"
"#;

#[tokio::test]
async fn init_migrates_writes_env_and_seeds_idempotently() {
    let db = talea_testkit::fresh_database().await.expect("database");
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("talea.seed.toml"), SEED).expect("seed");
    std::fs::write(dir.path().join(".env"), "# kept\nOTHER=1\n").expect("env");

    let out = talead(dir.path())
        .args(["init", "--db-url", &db.url])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 assets created"), "{stdout}");
    assert!(stdout.contains("2 accounts opened"), "{stdout}");
    let token = env_value(dir.path(), "TALEA_API_TOKEN").expect("token written");
    assert!(token.starts_with("talea_") && token.len() > 40);
    assert_eq!(
        env_value(dir.path(), "TALEA_DB_URL").as_deref(),
        Some(db.url.as_str())
    );
    assert_eq!(
        env_value(dir.path(), "TALEA_BIND").as_deref(),
        Some("127.0.0.1:8080")
    );
    assert_eq!(env_value(dir.path(), "OTHER").as_deref(), Some("1"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join(".env"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "the .env file holds secrets");
    }

    // Again: nothing changes, the token stays (TALEA_DB_URL now comes from .env).
    let out = talead(dir.path()).arg("init").output().expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 already there"), "{stdout}");
    assert!(stdout.contains("2 already there"), "{stdout}");
    assert_eq!(
        env_value(dir.path(), "TALEA_API_TOKEN").as_deref(),
        Some(token.as_str())
    );

    let out = talead(dir.path())
        .args(["init", "--force"])
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert_ne!(
        env_value(dir.path(), "TALEA_API_TOKEN").as_deref(),
        Some(token.as_str())
    );

    // A conflicting seed stops init with a clear error.
    std::fs::write(
        dir.path().join("talea.seed.toml"),
        "[[assets]]\ncode = \"BTC\"\nscale = 2\n",
    )
    .expect("seed");
    let out = talead(dir.path()).arg("init").output().expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("seeding asset BTC"));
}

#[tokio::test]
async fn serve_refuses_an_unmigrated_database_and_a_missing_token() {
    let db = talea_testkit::fresh_database().await.expect("database");
    let dir = tempfile::tempdir().expect("tempdir");
    let out = talead(dir.path())
        .arg("serve")
        .env("TALEA_DB_URL", &db.url)
        .env("TALEA_API_TOKEN", "t")
        .env("TALEA_BIND", "127.0.0.1:0")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("talead init"), "{stderr}");

    let out = talead(dir.path())
        .arg("serve")
        .env("TALEA_DB_URL", &db.url)
        .env("TALEA_BIND", "127.0.0.1:0")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no API token"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");

    std::fs::write(dir.path().join("tokens.toml"), "").expect("tokens");
    let out = talead(dir.path())
        .arg("serve")
        .env("TALEA_DB_URL", &db.url)
        .env("TALEA_TOKENS_FILE", dir.path().join("tokens.toml"))
        .output()
        .expect("runs");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("tokens file"));
}

/// A running `talead serve` with its API and metrics listeners on free
/// ports, killed when dropped.
struct Server {
    service: Service,
    api: String,
    /// The metrics URL talead printed (empty if it printed none).
    metrics: String,
    /// What talead printed up to its listening line.
    printed: Vec<String>,
}

fn start(dir: &Path) -> Server {
    start_with(dir, &[])
}

fn start_with(dir: &Path, envs: &[(&str, &str)]) -> Server {
    let mut cmd = talead(dir);
    cmd.arg("serve")
        .envs(envs.iter().copied())
        .env("TALEA_BIND", "127.0.0.1:0")
        .env("TALEA_METRICS_BIND", "127.0.0.1:0");
    let service = Service::spawn(cmd, TALEAD_LISTENING).expect("talead printed its address");
    Server {
        api: service.url.clone(),
        metrics: service
            .printed_url(TALEAD_METRICS)
            .unwrap_or_default()
            .to_owned(),
        printed: service.printed.clone(),
        service,
    }
}

/// `talead init` on a fresh database in a fresh directory, seeded with
/// [`SEED`] when `seeded`.
struct Initialised {
    db: TestDb,
    dir: tempfile::TempDir,
    /// The API token init wrote to `.env`.
    token: String,
}

async fn initialised(seeded: bool) -> Initialised {
    let db = talea_testkit::fresh_database().await.expect("database");
    let dir = tempfile::tempdir().expect("tempdir");
    if seeded {
        std::fs::write(dir.path().join("talea.seed.toml"), SEED).expect("seed");
    }
    let out = talead(dir.path())
        .args(["init", "--db-url", &db.url])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = env_value(dir.path(), "TALEA_API_TOKEN").expect("token");
    Initialised { db, dir, token }
}

/// Posts `k1` to the seeded book `demo` (one BTC from `hot-wallet` to
/// `customers:alice`) with `token`; returns the status.
async fn post_k1(client: &reqwest::Client, api: &str, token: &str) -> u16 {
    client
        .post(format!("{api}/v1/books/demo/transactions"))
        .bearer_auth(token)
        .json(&json!({"idempotency_key": "k1", "postings": [
            {"account": "hot-wallet", "asset": "BTC", "debit": "1"},
            {"account": "customers:alice", "asset": "BTC", "credit": "1"}]}))
        .send()
        .await
        .expect("answered")
        .status()
        .as_u16()
}

/// `GET url` with `token`, answered with JSON.
async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Value {
    client
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json")
}

#[tokio::test]
async fn serve_answers_exports_valid_metrics_and_stops_on_sigterm() {
    let Initialised {
        db: _db,
        dir,
        token,
    } = initialised(true).await;

    let mut server = start(dir.path());
    assert!(!server.metrics.is_empty(), "metrics address printed");
    let client = reqwest::Client::new();
    assert_eq!(post_k1(&client, &server.api, &token).await, 201);
    let r = get_json(
        &client,
        &format!("{}/v1/books/demo/trial-balance", server.api),
        &token,
    )
    .await;
    assert_eq!(r["balanced"], true);
    let text = talea_testkit::scrape_metrics(&server.api, &server.metrics).await;
    for name in [
        "talea_commits_total 1",
        "talea_batch_size_bucket",
        "talea_commit_duration_seconds_bucket",
        "talea_write_queue_depth",
        "talea_db_pool_connections{state=\"max\"} 10",
        "talea_http_requests_total",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
    assert!(!text.contains(&token), "tokens never appear in metrics");
    talea_testkit::promtool_check(&text);

    // SIGTERM: a graceful stop with exit code 0.
    let status = server
        .service
        .terminate(Duration::from_secs(10))
        .expect("talead stops on SIGTERM");
    assert!(status.success(), "{status}");
}

/// A client that trickles its headers loses its connection after
/// `TALEA_HEADER_READ_TIMEOUT_MS`, and everyone else is served meanwhile;
/// a value out of range stops start-up.
#[tokio::test]
async fn a_client_trickling_its_headers_is_cut_off_and_others_are_served() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let Initialised { db: _db, dir, .. } = initialised(false).await;

    let out = talead(dir.path())
        .arg("serve")
        .env("TALEA_BIND", "127.0.0.1:0")
        .env("TALEA_HEADER_READ_TIMEOUT_MS", "0")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("TALEA_HEADER_READ_TIMEOUT_MS"), "{stderr}");

    let server = start_with(dir.path(), &[("TALEA_HEADER_READ_TIMEOUT_MS", "500")]);
    let addr = server.api.trim_start_matches("http://").to_owned();
    let mut slow = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connects");
    slow.write_all(b"GET /livez HTTP/1.1\r\nHost: talea\r\n")
        .await
        .expect("writes");
    let started = std::time::Instant::now();
    // Meanwhile, a well-behaved client is answered at once.
    let r = reqwest::get(format!("{}/livez", server.api))
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    // The trickler keeps sending a byte at a time, well inside any read
    // timeout, but never ends its headers: the server closes on it.
    let mut buf = [0u8; 256];
    let closed = loop {
        if started.elapsed() > Duration::from_secs(10) {
            break false;
        }
        if slow.write_all(b"X").await.is_err() {
            break true;
        }
        match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => break true, // an answer (408) before the close
            Err(_) => {}
        }
    };
    assert!(closed, "a client that never ends its headers is cut off");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "cut off after {waited:?}, configured 500 ms"
    );
}

/// What a trickling client got: whether the server closed its connection
/// (within `limit`), what it answered, and when the answer began.
struct Trickled {
    closed: bool,
    answer: String,
    answered_after: Option<Duration>,
}

/// Sends one more body byte on `stream` every second from `started`,
/// reading whatever comes back, until the server closes the connection or
/// `limit` has passed.
async fn trickle(
    stream: &mut tokio::net::TcpStream,
    started: std::time::Instant,
    limit: Duration,
) -> Trickled {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut answer = Vec::new();
    let mut answered_after = None;
    let mut buf = [0u8; 1024];
    let mut next_byte = started + Duration::from_secs(1);
    let closed = loop {
        if started.elapsed() > limit {
            break false;
        }
        if std::time::Instant::now() >= next_byte {
            if stream.write_all(b" ").await.is_err() {
                break true;
            }
            next_byte += Duration::from_secs(1);
        }
        match tokio::time::timeout(Duration::from_millis(100), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(n)) => {
                answered_after.get_or_insert_with(|| started.elapsed());
                answer.extend_from_slice(&buf[..n]);
            }
            Err(_) => {}
        }
    };
    Trickled {
        closed,
        answer: String::from_utf8_lossy(&answer).into_owned(),
        answered_after,
    }
}

/// Connects to `addr` and sends `head` (a request's headers declaring
/// `Content-Length: 1000`) and the first body byte.
async fn slow_request(addr: &str, head: &str) -> (tokio::net::TcpStream, std::time::Instant) {
    use tokio::io::AsyncWriteExt;
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connects");
    stream
        .write_all(format!("{head}Content-Length: 1000\r\n\r\n{{").as_bytes())
        .await
        .expect("writes");
    (stream, std::time::Instant::now())
}

/// A client that sends its headers promptly, then trickles the body it
/// declared (`Content-Length: 1000`) a byte a second, is answered 408
/// `timeout` once `TALEA_REQUEST_TIMEOUT_MS` is out (the handler reads the
/// body inside the request deadline) and loses its connection; everyone
/// else is served meanwhile. A route that reads no body (here `/livez`,
/// outside the deadline) answers at once and the connection is closed
/// rather than held open for the declared body.
#[tokio::test]
async fn a_client_trickling_its_body_is_answered_408_and_others_are_served() {
    const DEADLINE_MS: u64 = 1_500;

    let Initialised { db, dir, token } = initialised(true).await;
    let server = start_with(
        dir.path(),
        &[("TALEA_REQUEST_TIMEOUT_MS", &DEADLINE_MS.to_string())],
    );
    let addr = server.api.trim_start_matches("http://").to_owned();

    let (mut slow, started) = slow_request(
        &addr,
        &format!(
            "POST /v1/books/demo/transactions HTTP/1.1\r\nHost: talea\r\n\
             Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        ),
    )
    .await;

    // Meanwhile, well-behaved clients are served at once, writes included.
    let client = reqwest::Client::new();
    assert_eq!(post_k1(&client, &server.api, &token).await, 201);
    let r = client
        .get(format!("{}/v1/books/demo/accounts", server.api))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    let served_after = started.elapsed();

    let got = trickle(&mut slow, started, Duration::from_secs(15)).await;
    let text = &got.answer;
    assert!(
        got.closed,
        "the trickler's connection is closed; it got {text:?}"
    );
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains(r#""error":"timeout""#), "{text}");
    let answered_after = got.answered_after.expect("an answer before the close");
    assert!(
        answered_after >= Duration::from_millis(DEADLINE_MS - 100)
            && answered_after < Duration::from_millis(DEADLINE_MS + 3_500),
        "answered after {answered_after:?}, deadline {DEADLINE_MS} ms"
    );
    assert!(
        served_after < answered_after,
        "the others were served ({served_after:?}) while the trickler held on"
    );

    // Nothing of the trickled post was committed: one transaction, k1.
    let r = get_json(
        &client,
        &format!("{}/v1/books/demo/transactions", server.api),
        &token,
    )
    .await;
    assert_eq!(r["transactions"].as_array().map(Vec::len), Some(1), "{r}");

    // A route that reads no body answers at once and closes the connection
    // instead of waiting for the declared body: `/livez` has no deadline,
    // so only the close bounds this client.
    let (mut slow, started) = slow_request(&addr, "GET /livez HTTP/1.1\r\nHost: talea\r\n").await;
    let got = trickle(&mut slow, started, Duration::from_secs(10)).await;
    assert!(got.answer.starts_with("HTTP/1.1 200 "), "{}", got.answer);
    assert!(
        got.closed,
        "a connection whose declared body is never read is closed; it got {:?}",
        got.answer
    );
    drop(server);
    db.drop_database().await.expect("drops");
}
