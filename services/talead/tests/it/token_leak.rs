//! Tokens never leak: the real talead at `RUST_LOG=debug`, asked with valid,
//! unknown, out-of-scope and malformed credentials on success and error
//! paths, never prints a token (nor any 12-character piece of one) to its
//! logs, its `/metrics` text, or any response it sends.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::json;
use talea_testkit::tokens::{Token, tokens_toml};
use wiremock::matchers::{body_json, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::{SEED, env_value, talead};

/// Every secret of a test and every 12-character piece of each: a log line
/// holding a token's prefix leaks as much as one holding all of it.
struct Secrets(Vec<String>);

impl Secrets {
    fn new(tokens: &[&str]) -> Self {
        Self(tokens.iter().map(|t| (*t).to_owned()).collect())
    }

    /// Panics naming `what` when `text` holds a secret or a piece of one.
    fn assert_absent(&self, what: &str, text: &str) {
        for token in &self.0 {
            let chars: Vec<char> = token.chars().collect();
            for piece in chars.windows(12.min(chars.len())) {
                let piece: String = piece.iter().collect();
                assert!(
                    !text.contains(&piece),
                    "{what} holds {piece:?}, a piece of a token:\n{text}"
                );
            }
        }
    }
}

/// A `talead serve` whose stdout and stderr are captured whole.
struct Captured {
    child: Child,
    api: String,
    metrics: String,
    readers: Vec<JoinHandle<()>>,
    output: Arc<Mutex<String>>,
}

impl Captured {
    fn start(dir: &Path, envs: &[(&str, &str)]) -> Self {
        let mut child = talead(dir)
            .arg("serve")
            .envs(envs.iter().copied())
            .env("RUST_LOG", "debug")
            .env("TALEA_BIND", "127.0.0.1:0")
            .env("TALEA_METRICS_BIND", "127.0.0.1:0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawns");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let mut readers = Vec::new();
        let stdout = child.stdout.take().expect("stdout");
        let out = Arc::clone(&output);
        readers.push(std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line.clone());
                push(&out, &line);
            }
        }));
        let mut stderr = child.stderr.take().expect("stderr");
        let out = Arc::clone(&output);
        readers.push(std::thread::spawn(move || {
            // Raw bytes, not lines: a token must not hide in invalid UTF-8.
            let mut buf = [0u8; 8192];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                push(&out, &String::from_utf8_lossy(&buf[..n]));
            }
        }));
        let (mut api, mut metrics) = (String::new(), String::new());
        while api.is_empty() {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("talead did not start:\n{}", snapshot(&output)));
            if let Some(url) = line.strip_prefix("talead metrics on ") {
                metrics = url.to_owned();
            } else if let Some(rest) = line.strip_prefix("talead listening on ") {
                api = rest
                    .split_whitespace()
                    .next()
                    .unwrap_or_default()
                    .to_owned();
            }
        }
        Self {
            child,
            api,
            metrics,
            readers,
            output,
        }
    }

    /// Stops talead with SIGTERM (so shutdown logging runs too) and returns
    /// everything it printed.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().ok().flatten().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        snapshot(&self.output)
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn push(output: &Mutex<String>, text: &str) {
    let mut out = output.lock().unwrap_or_else(|p| p.into_inner());
    out.push_str(text);
    out.push('\n');
}

fn snapshot(output: &Mutex<String>) -> String {
    output.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Everything a client saw: status line, headers and body of each answer.
#[derive(Default)]
struct Seen(String);

impl Seen {
    async fn record(&mut self, what: &str, response: reqwest::Result<reqwest::Response>) -> u16 {
        let response = response.unwrap_or_else(|e| panic!("{what}: no answer: {e}"));
        let status = response.status().as_u16();
        self.0.push_str(&format!("{what}: {status}\n"));
        for (name, value) in response.headers() {
            self.0.push_str(&format!(
                "{name}: {}\n",
                String::from_utf8_lossy(value.as_bytes())
            ));
        }
        let body = response.bytes().await.unwrap_or_default();
        self.0.push_str(&String::from_utf8_lossy(&body));
        self.0.push('\n');
        status
    }
}

/// Requests on success and error paths with `token` as credentials (bearer,
/// other schemes, stream query parameters), recording every answer.
async fn exercise(api: &str, token: &str, seen: &mut Seen) -> Vec<u16> {
    // A fresh connection per request: the server may close one on a 413
    // without reading the rest of the body.
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("client");
    let post = json!({"idempotency_key": "leak-1", "postings": [
        {"account": "hot-wallet", "asset": "BTC", "debit": "1"},
        {"account": "customers:alice", "asset": "BTC", "credit": "1"}]});
    let unbalanced = json!({"idempotency_key": "leak-2", "postings": [
        {"account": "hot-wallet", "asset": "BTC", "debit": "1"},
        {"account": "customers:alice", "asset": "BTC", "credit": "2"}]});
    let overdraw = json!({"idempotency_key": "leak-3", "postings": [
        {"account": "customers:alice", "asset": "BTC", "debit": "100"},
        {"account": "hot-wallet", "asset": "BTC", "credit": "100"}]});
    let mut statuses = Vec::new();
    let tx = format!("{api}/v1/books/demo/transactions");
    let requests = [
        ("post", client.post(&tx).bearer_auth(token).json(&post)),
        ("replay", client.post(&tx).bearer_auth(token).json(&post)),
        (
            "reused key",
            client.post(&tx).bearer_auth(token).json(&json!({
                "idempotency_key": "leak-1", "postings": [
                {"account": "hot-wallet", "asset": "BTC", "debit": "2"},
                {"account": "customers:alice", "asset": "BTC", "credit": "2"}]})),
        ),
        (
            "unbalanced",
            client.post(&tx).bearer_auth(token).json(&unbalanced),
        ),
        (
            "overdraw",
            client.post(&tx).bearer_auth(token).json(&overdraw),
        ),
        (
            "bad json",
            client
                .post(&tx)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(format!("{{\"idempotency_key\": \"{token}\", ")),
        ),
        (
            "too large",
            client
                .post(&tx)
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(vec![b' '; (1 << 20) + 1]),
        ),
        (
            "other book",
            client
                .post(format!("{api}/v1/books/other/transactions"))
                .bearer_auth(token)
                .json(&post),
        ),
        (
            "global write",
            client
                .post(format!("{api}/v1/assets"))
                .bearer_auth(token)
                .json(&json!({"code": "ETH", "scale": 18})),
        ),
        (
            "read",
            client
                .get(format!("{api}/v1/books/demo/trial-balance"))
                .bearer_auth(token),
        ),
        (
            "read other book",
            client
                .get(format!("{api}/v1/books/other/accounts"))
                .bearer_auth(token),
        ),
        (
            "unknown route",
            client.get(format!("{api}/v1/nowhere")).bearer_auth(token),
        ),
        ("wrong method", client.delete(&tx).bearer_auth(token)),
        (
            "basic scheme",
            client
                .get(format!("{api}/v1/books"))
                .header("authorization", format!("Basic {token}")),
        ),
        (
            "bare token",
            client
                .get(format!("{api}/v1/books"))
                .header("authorization", token),
        ),
        (
            "stream",
            client
                .get(format!("{api}/v1/books/other/stream"))
                .bearer_auth(token),
        ),
        (
            "stream, token as ticket",
            client.get(format!("{api}/v1/books/demo/stream?ticket={token}")),
        ),
        (
            "stream, token as query",
            client.get(format!("{api}/v1/books/demo/stream?token={token}")),
        ),
    ];
    for (what, request) in requests {
        statuses.push(seen.record(what, request.send().await).await);
    }
    statuses
}

/// Initialises a Postgres-backed talead directory with the seed and a tokens
/// file; returns the admin token `talead init` generated.
async fn prepare(dir: &Path, db_url: &str, scoped: &[Token]) -> String {
    std::fs::write(dir.join("talea.seed.toml"), SEED).expect("seed");
    let out = talead(dir)
        .args(["init", "--db-url", db_url])
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    talea_testkit::tokens_file(dir, &tokens_toml(scoped)).expect("tokens file");
    env_value(dir, "TALEA_API_TOKEN").expect("token")
}

#[tokio::test]
async fn no_token_reaches_logs_metrics_or_answers_of_an_in_process_talead() {
    let db = talea_testkit::fresh_database().await.expect("database");
    let dir = tempfile::tempdir().expect("tempdir");
    let reader = "talea_ro_5b0e2c9d41f7a3c6e8d2b1f04a9c7e35";
    let other = "talea_ot_c3a9f1e27d4b8056a2e9c1d7f30b6a84";
    let unknown = "talea_xx_8e1d4c7a2f9b3e06d5c8a1f47b2e9d30";
    let admin = prepare(
        dir.path(),
        &db.url,
        &[
            Token::ro("demo_reader", reader, &["demo"]),
            Token::rw("other_writer", other, &["other"]),
        ],
    )
    .await;
    let secrets = Secrets::new(&[&admin, reader, other, unknown]);
    let server = Captured::start(
        dir.path(),
        &[(
            "TALEA_TOKENS_FILE",
            &dir.path().join("tokens.toml").to_string_lossy(),
        )],
    );

    let mut seen = Seen::default();
    let statuses = exercise(&server.api, &admin, &mut seen).await;
    assert_eq!(&statuses[..5], &[201, 200, 409, 422, 422], "{}", seen.0);
    assert!(
        statuses.contains(&400) && statuses.contains(&413),
        "{statuses:?}"
    );
    let statuses = exercise(&server.api, reader, &mut seen).await;
    assert_eq!(statuses[0], 403, "read-only: {statuses:?}");
    let statuses = exercise(&server.api, other, &mut seen).await;
    assert!(
        statuses.contains(&404) || statuses.contains(&403),
        "{statuses:?}"
    );
    let statuses = exercise(&server.api, unknown, &mut seen).await;
    assert_eq!(statuses[0], 401, "{statuses:?}");

    let metrics = reqwest::get(&server.metrics)
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(metrics.contains("talea_http_requests_total"), "{metrics}");
    let logs = server.stop();
    assert!(
        logs.contains("DEBUG"),
        "the logs were captured at debug level:\n{logs}"
    );
    assert!(
        logs.contains("unauthorized"),
        "error paths were logged:\n{logs}"
    );
    secrets.assert_absent("the logs", &logs);
    secrets.assert_absent("/metrics", &metrics);
    secrets.assert_absent("an answer", &seen.0);
}

#[tokio::test]
async fn no_token_reaches_logs_or_answers_when_the_scope_service_decides_or_is_down() {
    let service_token = "talea_svc_0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a";
    let admin = "talea_adm_a1b2c3d4e5f60718293a4b5c6d7e8f90";
    let unknown = "talea_unk_f0e1d2c3b4a5968778695a4b3c2d1e0f";
    let scope = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/introspect"))
        .and(body_json(json!({"token": admin})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "active": true, "name": "admin", "books": ["*"], "access": "rw", "ttl_seconds": 60
        })))
        .mount(&scope)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/introspect"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"active": false})))
        .mount(&scope)
        .await;
    let secrets = Secrets::new(&[service_token, admin, unknown]);
    let mut seen = Seen::default();
    let mut logs = String::new();
    let mut metrics = String::new();

    for scope_url in [scope.uri(), "http://127.0.0.1:9".to_owned()] {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = Captured::start(
            dir.path(),
            &[
                ("TALEA_SCOPE_URL", &scope_url),
                ("TALEA_SCOPE_SERVICE_TOKEN", service_token),
                ("TALEA_API_TOKEN", "ignored-beside-the-scope-service"),
            ],
        );
        let client = reqwest::Client::new();
        let r = client
            .post(format!("{}/v1/assets", server.api))
            .bearer_auth(admin)
            .json(&json!({"code": "BTC", "scale": 8}))
            .send()
            .await;
        let status = seen.record("register", r).await;
        let expected = if scope_url == scope.uri() { 201 } else { 503 };
        assert_eq!(status, expected, "{}", seen.0);
        exercise(&server.api, admin, &mut seen).await;
        exercise(&server.api, unknown, &mut seen).await;
        metrics.push_str(
            &reqwest::get(&server.metrics)
                .await
                .expect("metrics")
                .text()
                .await
                .expect("text"),
        );
        logs.push_str(&server.stop());
    }
    assert!(
        logs.contains("unavailable"),
        "the outage was logged:\n{logs}"
    );
    secrets.assert_absent("the logs", &logs);
    secrets.assert_absent("/metrics", &metrics);
    secrets.assert_absent("an answer", &seen.0);
}
