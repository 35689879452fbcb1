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
use talea_testkit::JsonClient;
use talea_testkit::process::{
    SCOPE_LISTENING, Service, TALEAD_LISTENING, scope_command, talead_serve, workspace_bin_async,
};
use talea_testkit::tokens::{Token, tokens_toml};

use crate::faults::migrate;

const SERVICE_TOKEN: &str = "scope-outage-service-token";

fn tokens() -> String {
    tokens_toml(&[
        Token::rw("admin", "admin-secret", &["*"]),
        Token::rw("payments", "pay-secret", &["payments"]),
        Token::ro("reader", "read-secret", &["payments"]),
    ])
}

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
    let mut cmd = scope_command(bin, dir, &dir.join("tokens.toml"), SERVICE_TOKEN);
    cmd.env("TALEA_BIND", bind)
        .env("TALEA_SCOPE_TTL_S", TTL.as_secs().to_string());
    Service::spawn_async(cmd, SCOPE_LISTENING)
        .await
        .expect("talea-scope starts")
}

/// Polls `GET path` with `token` until it answers `status`, within
/// [`CHANGE_DEADLINE`]; `what` names the change awaited.
async fn wait_status(api: &JsonClient, path: &str, token: &str, status: u16, what: &str) {
    api.wait_status(path, token, status, CHANGE_DEADLINE)
        .await
        .unwrap_or_else(|e| panic!("{what}: {e:#}"));
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
    talea_testkit::tokens_file(dir.path(), &tokens()).expect("tokens file");
    let mut scope_service = scope(&scope_bin, dir.path(), "127.0.0.1:0").await;
    let db = talea_testkit::fresh_database().await.expect("database");
    migrate(&db.url).await;
    let mut cmd = talead_serve(Path::new(crate::BIN), dir.path(), &db.url);
    cmd.env("TALEA_SCOPE_URL", &scope_service.url)
        .env("TALEA_SCOPE_SERVICE_TOKEN", SERVICE_TOKEN);
    let talead = Service::spawn_async(cmd, TALEAD_LISTENING)
        .await
        .expect("talead starts");
    let api = JsonClient::new(&talead.url);

    // Setup, as admin: a transaction in each of two books.
    api.create_ledger(
        "admin-secret",
        &["payments", "other"],
        &[("cash", "asset"), ("equity", "equity")],
    )
    .await
    .expect("a fresh ledger");
    let mut tx_paths = Vec::new();
    for book in ["payments", "other"] {
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
    wait_status(
        &api,
        "/v1/books/payments/accounts",
        "pay-secret",
        503,
        "the TTL",
    )
    .await;
    assert!(
        decided_at.elapsed() >= TTL,
        "a cached answer expired before its TTL ({:?})",
        decided_at.elapsed()
    );
    wait_status(&api, "/v1/assets", "no-such-token", 503, "the negative TTL").await;
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
    wait_status(
        &api,
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
