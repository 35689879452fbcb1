//! talead's router deciding 401/403/404 through the real `talea-scope`, and
//! riding out its death: cached tokens until their TTL, 503 for the rest,
//! recovery once a successor answers on the same address.
//!
//! The router is talea-http's, in process, with the `ScopeClient` talead
//! builds from `TALEA_SCOPE_URL`; it has no token configuration of its own,
//! so every decision below comes from the service.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use talea_auth::{ScopeClient, ScopeClientConfig, Secret};
use talea_http::{AppState, HttpConfig};
use talea_ledger::{LedgerConfig, LedgerService};
use talea_store_pg::PgStore;
use talea_testkit::JsonClient;
use talea_testkit::tokens::{Token, tokens_toml};

use crate::support::*;

fn tokens() -> String {
    tokens_toml(&[
        Token::rw("admin", "admin-secret", &["*"]),
        Token::rw("payments", "pay-secret", &["payments"]),
        Token::ro("reader", "read-secret", &["payments"]),
        Token::ro("browser", "browser-secret", &["other"]).hide(&["metadata", "memo"]),
    ])
}

/// Long enough that the checks right after the kill run well inside it on
/// a loaded machine; the test waits it out once, by polling.
const TTL_S: &str = "3";

/// talead's router in process, deciding through the scope service.
struct App {
    api: JsonClient,
    metrics: talea_telemetry::Metrics,
}

impl App {
    async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.api.get(path, token).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.api.post(path, token, body).await
    }
}

async fn spawn_app(scope_url: &str) -> App {
    let db = talea_testkit::fresh_database().await.expect("database");
    let store = PgStore::connect(&db.url, 5).await.expect("connects");
    store.migrate().await.expect("migrates");
    let metrics = talea_telemetry::Metrics::new();
    let ledger = LedgerService::new(Arc::new(store), LedgerConfig::default(), metrics.clone());
    let mut config = ScopeClientConfig::new(scope_url, Secret::new(SERVICE_TOKEN));
    // Quick to notice the successor; the defaults are for production.
    config.breaker_open_ms = 200;
    let scope = ScopeClient::new(config, metrics.auth.clone()).expect("client");
    let state = AppState::new(ledger, Arc::new(scope), &HttpConfig::default());
    let base = talea_testkit::serve_router(talea_http::router(state))
        .await
        .expect("serves");
    App {
        api: JsonClient::new(base),
        metrics,
    }
}

#[tokio::test]
async fn decisions_come_from_the_scope_service_and_survive_its_death_until_the_ttl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = talea_testkit::tokens_file(dir.path(), &tokens()).expect("tokens file");
    let file = file.display().to_string();
    let envs = |bind: &str| {
        vec![
            ("TALEA_BIND", bind.to_owned()),
            ("TALEA_TOKENS_FILE", file.clone()),
            ("TALEA_SCOPE_TTL_S", TTL_S.to_owned()),
        ]
    };
    let start = |bind: &str| {
        let envs = envs(bind);
        let envs: Vec<(&str, &str)> = envs.iter().map(|(k, v)| (*k, v.as_str())).collect();
        Scope::start(dir.path(), &envs)
    };
    let mut scope = start("127.0.0.1:0");
    let app = spawn_app(&scope.url).await;

    // Setup, as admin.
    app.api
        .create_ledger(
            "admin-secret",
            &["payments", "other"],
            &[("cash", "asset"), ("equity", "equity")],
        )
        .await
        .expect("a fresh ledger");
    let posting = json!({"idempotency_key": "k1", "postings": [
        {"account": "cash", "asset": "BTC", "debit": "1"},
        {"account": "equity", "asset": "BTC", "credit": "1"}],
        "memo": "a memo", "metadata": {"note": "private"}});
    let (s, other_tx) = app
        .post(
            "/v1/books/other/transactions",
            "admin-secret",
            posting.clone(),
        )
        .await;
    assert_eq!(s, 201);
    let other_tx = format!(
        "/v1/transactions/{}",
        other_tx["tx_id"].as_str().expect("id")
    );

    // The field scope travels in the answer: removed for `browser` only.
    let (s, full) = app.get(&other_tx, "admin-secret").await;
    assert_eq!(s, 200);
    assert_eq!(
        (&full["memo"], &full["metadata"]["note"]),
        (&json!("a memo"), &json!("private"))
    );
    let (s, stripped) = app.get(&other_tx, "browser-secret").await;
    assert_eq!(s, 200);
    assert!(
        stripped.get("memo").is_none() && stripped.get("metadata").is_none(),
        "{stripped}"
    );
    assert_eq!(stripped["tx_id"], full["tx_id"]);

    // 401 / 403 / 404, decided from the service's answers.
    let (s, b) = app.get("/v1/assets", "").await;
    assert_eq!((s, &b["error"]), (401, &json!("unauthorized")));
    let (s, b) = app.get("/v1/assets", "no-such-token").await;
    assert_eq!((s, &b["error"]), (401, &json!("unauthorized")));
    let (s, _) = app.get("/v1/books/payments/accounts", "pay-secret").await;
    assert_eq!(s, 200);
    let (s, b) = app.get("/v1/books/other/accounts", "pay-secret").await;
    assert_eq!(
        (s, &b),
        (
            403,
            &json!({"error": "forbidden", "book": "other", "message": b["message"]})
        )
    );
    let (s, b) = app
        .post(
            "/v1/books/payments/transactions",
            "read-secret",
            posting.clone(),
        )
        .await;
    assert_eq!((s, &b["book"]), (403, &json!("payments")));
    let (s, b) = app
        .post(
            "/v1/assets",
            "pay-secret",
            json!({"code": "ETH", "scale": 18}),
        )
        .await;
    assert_eq!((s, &b["book"]), (403, &json!("*")));
    let (s, hidden) = app.get(&other_tx, "read-secret").await;
    let (s2, unknown) = app
        .get(
            "/v1/transactions/0193a2b4-0000-7000-8000-000000000000",
            "read-secret",
        )
        .await;
    assert_eq!((s, s2), (404, 404));
    assert_eq!(hidden, unknown, "out of scope looks exactly like unknown");
    let (s, b) = app.get("/v1/books", "read-secret").await;
    assert_eq!(s, 200);
    assert_eq!(b["books"].as_array().map(Vec::len), Some(1), "{b}");

    // The service dies.
    scope.kill();
    // Established sessions keep their answers, refusals included...
    let (s, _) = app.get("/v1/books/payments/accounts", "pay-secret").await;
    assert_eq!(s, 200);
    let (s, _) = app
        .post(
            "/v1/books/payments/transactions",
            "read-secret",
            posting.clone(),
        )
        .await;
    assert_eq!(s, 403);
    let (s, _) = app.get("/v1/assets", "no-such-token").await;
    assert_eq!(s, 401, "negative answers are cached too");
    // ...and a token never seen cannot be decided: 503, not 401.
    let (s, b) = app.get("/v1/assets", "brand-new-token").await;
    assert_eq!((s, &b["error"]), (503, &json!("unavailable")));
    assert!(!b.to_string().contains("brand-new-token"));

    // Once the TTL runs out, the established token fails closed too.
    talea_testkit::wait_until(Duration::from_secs(20), || async {
        app.get("/v1/books/payments/accounts", "pay-secret").await.0 == 503
    })
    .await
    .expect("the cached answer expires within its TTL");

    // A successor on the same address: service resumes once the breaker probes.
    let addr = scope.addr().to_owned();
    let _successor = start(&addr);
    talea_testkit::wait_until(Duration::from_secs(20), || async {
        app.get("/v1/books/payments/accounts", "pay-secret").await.0 == 200
    })
    .await
    .expect("decisions resume after the restart");
    let (s, _) = app.get("/v1/assets", "brand-new-token").await;
    assert_eq!(s, 401);

    assert_eq!(app.metrics.auth.breaker_state.get(), 0, "closed again");
    let text = app.metrics.render();
    assert!(app.metrics.auth.cache_hits_total.get() > 0, "{text}");
    for secret in ["pay-secret", "read-secret", "admin-secret", SERVICE_TOKEN] {
        assert!(!text.contains(secret));
    }
    let unavailable = app
        .metrics
        .auth
        .decisions_total
        .with_label_values(&["unavailable"])
        .get();
    assert!(unavailable >= 2, "{text}");
}
