//! The real talead binary deciding tokens through the real `talea-scope`
//! binary, and riding out its death (SIGKILL): decisions talead cached keep
//! their answers (200, 403, 404, 401) until their TTL, any other token is
//! 503 `unavailable`, and once the TTL is out every token is 503: it fails
//! closed, never "allow". A successor on the same address restores service.
//!
//! The bounds are talea-auth's `ScopeClient` (docs/auth.md, "What an
//! operator sees during a scope outage"): positive answers cached for the
//! service's `ttl_seconds` (here `TALEA_SCOPE_TTL_S=5`), negative ones for
//! 5 s, the breaker probing every 2 s.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use talea_testkit::process::{Service, talea_command, workspace_bin_async};

use crate::faults::migrate;

const SERVICE_TOKEN: &str = "scope-outage-service-token";

const TOKENS: &str = r#"
[tokens.admin]
token = "admin-secret"
books = ["*"]
access = "rw"

[tokens.payments]
token = "pay-secret"
books = ["payments"]
access = "rw"

[tokens.reader]
token = "read-secret"
books = ["payments"]
access = "ro"
"#;

/// `TALEA_SCOPE_TTL_S`: long enough that the checks right after the kill
/// run well inside it on a loaded machine; the test waits it out once, by
/// polling.
const TTL: Duration = Duration::from_secs(5);

/// The longest a poll for an expected change may take: the TTL plus a wide
/// margin for a loaded machine (the negative TTL and the breaker's 2 s are
/// shorter).
const CHANGE_DEADLINE: Duration = Duration::from_secs(20);

/// Starts talea-scope on `bind` with the tokens file in `dir`.
async fn scope(bin: &Path, dir: &Path, bind: &str) -> Service {
    let mut cmd = talea_command(bin, dir);
    cmd.env("TALEA_BIND", bind)
        .env("TALEA_TOKENS_FILE", dir.join("tokens.toml"))
        .env("TALEA_SCOPE_SERVICE_TOKEN", SERVICE_TOKEN)
        .env("TALEA_SCOPE_TTL_S", TTL.as_secs().to_string());
    Service::spawn_async(cmd, "talea-scope listening on ")
        .await
        .expect("talea-scope starts")
}

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "POST" => self.http.post(url),
            _ => self.http.get(url),
        };
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.expect("answered");
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call("GET", path, token, None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, token, Some(body)).await
    }

    /// Polls `GET path` with `token` until it answers `status`.
    async fn wait_status(&self, path: &str, token: &str, status: u16, what: &str) {
        talea_testkit::wait_until(CHANGE_DEADLINE, || async {
            self.get(path, token).await.0 == status
        })
        .await
        .unwrap_or_else(|_| panic!("{what}: {path} with {token:?} never answered {status}"));
    }
}

/// The contract's 503 for an undecidable token, naming nothing of it.
fn assert_unavailable((status, body): (u16, Value), token: &str) {
    assert_eq!(
        (status, &body["error"]),
        (503, &json!("unavailable")),
        "{body}"
    );
    assert!(!body.to_string().contains(token), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn talead_fails_closed_when_the_real_scope_service_dies_and_recovers_with_it() {
    let scope_bin = workspace_bin_async("talea-scope", "talea-scope")
        .await
        .unwrap_or_else(|e| panic!("the talea-scope binary: {e:#}"));
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("tokens.toml"), TOKENS).expect("tokens file");
    let mut scope_service = scope(&scope_bin, dir.path(), "127.0.0.1:0").await;
    let db = talea_testkit::fresh_database().await.expect("database");
    migrate(&db.url).await;
    let mut cmd = talea_command(crate::BIN, dir.path());
    cmd.arg("serve")
        .env("TALEA_DB_URL", &db.url)
        .env("TALEA_BIND", "127.0.0.1:0")
        .env("TALEA_SCOPE_URL", &scope_service.url)
        .env("TALEA_SCOPE_SERVICE_TOKEN", SERVICE_TOKEN);
    let talead = Service::spawn_async(cmd, "talead listening on ")
        .await
        .expect("talead starts");
    let api = Api {
        base: talead.url.clone(),
        http: reqwest::Client::new(),
    };

    // Setup, as admin: a transaction in each of two books.
    let (s, _) = api
        .post(
            "/v1/assets",
            "admin-secret",
            json!({"code": "BTC", "scale": 8}),
        )
        .await;
    assert_eq!(s, 201);
    let mut tx_paths = Vec::new();
    for book in ["payments", "other"] {
        for (name, kind) in [("cash", "asset"), ("equity", "equity")] {
            let (s, _) = api
                .post(
                    &format!("/v1/books/{book}/accounts"),
                    "admin-secret",
                    json!({"name": name, "kind": kind}),
                )
                .await;
            assert_eq!(s, 201);
        }
        let (s, tx) = api
            .post(
                &format!("/v1/books/{book}/transactions"),
                "admin-secret",
                json!({"idempotency_key": "k1", "postings": [
                    {"account": "cash", "asset": "BTC", "debit": "1"},
                    {"account": "equity", "asset": "BTC", "credit": "1"}]}),
            )
            .await;
        assert_eq!(s, 201);
        tx_paths.push(format!(
            "/v1/transactions/{}",
            tx["tx_id"].as_str().expect("id")
        ));
    }
    let (own_tx, other_tx) = (tx_paths[0].as_str(), tx_paths[1].as_str());
    let unknown_tx = "/v1/transactions/0193a2b4-0000-7000-8000-000000000000";

    // Decided by talea-scope: the tokens below are first seen here, just
    // before the kill, so their cached answers are fresh.
    let decided_at = Instant::now();
    let (s, _) = api.get("/v1/books/payments/accounts", "pay-secret").await;
    assert_eq!(s, 200, "allowed");
    let (s, b) = api.get("/v1/books/other/accounts", "pay-secret").await;
    assert_eq!(
        (s, &b["error"], &b["book"]),
        (403, &json!("forbidden"), &json!("other"))
    );
    let (s, b) = api.get("/v1/assets", "no-such-token").await;
    assert_eq!((s, &b["error"]), (401, &json!("unauthorized")));
    let (s, _) = api.get(own_tx, "read-secret").await;
    assert_eq!(s, 200);
    let (s, hidden) = api.get(other_tx, "read-secret").await;
    let (s2, unknown) = api.get(unknown_tx, "read-secret").await;
    assert_eq!((s, s2), (404, 404), "out of scope is not found");
    assert_eq!(hidden, unknown, "out of scope looks exactly like unknown");

    // talea-scope dies.
    scope_service.kill();
    let killed_at = Instant::now();
    // Cached decisions keep their answers, refusals included...
    let (s, _) = api.get("/v1/books/payments/accounts", "pay-secret").await;
    assert_eq!(s, 200);
    let (s, _) = api.get("/v1/books/other/accounts", "pay-secret").await;
    assert_eq!(s, 403, "a cached refusal stays a refusal");
    let (s, _) = api.get(other_tx, "read-secret").await;
    assert_eq!(s, 404);
    let (s, _) = api.get("/v1/assets", "no-such-token").await;
    assert_eq!(s, 401, "negative answers are cached too (5 s)");
    // ...and a token never seen cannot be decided: 503, not 401, not allowed.
    assert_unavailable(
        api.get("/v1/assets", "brand-new-token").await,
        "brand-new-token",
    );
    assert_unavailable(
        api.post(
            "/v1/books/payments/transactions",
            "another-new-token",
            json!({"idempotency_key": "k2", "postings": []}),
        )
        .await,
        "another-new-token",
    );
    let checked_in = killed_at.elapsed();
    assert!(
        decided_at.elapsed() < TTL,
        "the checks after the kill ran within the TTL ({:?} after the decisions; \
         {checked_in:?} after the kill): the machine is too slow for this test",
        decided_at.elapsed()
    );

    // Once the TTL is out, every token fails closed: 503, never allowed.
    api.wait_status("/v1/books/payments/accounts", "pay-secret", 503, "the TTL")
        .await;
    assert!(
        decided_at.elapsed() >= TTL,
        "a cached answer expired before its TTL ({:?})",
        decided_at.elapsed()
    );
    api.wait_status("/v1/assets", "no-such-token", 503, "the negative TTL")
        .await;
    assert_unavailable(
        api.get("/v1/books/other/accounts", "pay-secret").await,
        "pay-secret",
    );
    assert_unavailable(api.get(own_tx, "read-secret").await, "read-secret");
    assert_unavailable(api.get("/v1/assets", "admin-secret").await, "admin-secret");

    // A successor on the same address: decisions resume once the breaker
    // lets a probe through.
    let addr = scope_service.addr().to_owned();
    drop(scope_service);
    let _successor = scope(&scope_bin, dir.path(), &addr).await;
    api.wait_status(
        "/v1/books/payments/accounts",
        "pay-secret",
        200,
        "the recovery",
    )
    .await;
    let (s, _) = api.get("/v1/books/other/accounts", "pay-secret").await;
    assert_eq!(s, 403);
    let (s, _) = api.get("/v1/assets", "brand-new-token").await;
    assert_eq!(s, 401);
    let (s, _) = api.get(own_tx, "read-secret").await;
    assert_eq!(s, 200);
    let (s, _) = api.get(other_tx, "read-secret").await;
    assert_eq!(s, 404);

    drop(talead);
    db.drop_database().await.expect("drops");
}
