//! `spawn_app`: a real talead router on port 0 over a fresh database, with typed helpers.

use std::sync::Arc;

use serde_json::{Value, json};
use talea_auth::{Authenticator, Secret, TokenSet};
use talea_http::{AppState, HttpConfig};
use talea_ledger::{LedgerConfig, LedgerService};
use talea_store_pg::PgStore;
use talea_testkit::tokens::{Token, tokens_toml};

pub const ROOT: &str = "root-token";
pub const PAY_RW: &str = "pay-rw-token";
pub const PAY_RO: &str = "pay-ro-token";
pub const OTHER_RW: &str = "other-rw-token";

fn tokens() -> String {
    tokens_toml(&[
        Token::rw("payments", PAY_RW, &["payments"]),
        Token::ro("payments-reader", PAY_RO, &["payments"]),
        Token::rw("other", OTHER_RW, &["other"]),
    ])
}

#[derive(Debug, Clone, Default)]
pub struct Options {
    pub http: HttpConfig,
    pub ledger: LedgerConfig,
    /// Replaces the test tokens file.
    pub auth: Option<Arc<dyn Authenticator>>,
    /// The stream hub's limits and timings.
    pub stream: talea_stream::StreamConfig,
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    pub db_url: String,
    pub metrics: talea_telemetry::Metrics,
    /// The instance's stream hub, for its counts.
    pub hub: talea_stream::Hub,
    /// The instance's ledger, to start its hold expirer as talead does.
    pub ledger: LedgerService,
}

pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let db = talea_testkit::fresh_database()
        .await
        .expect("a fresh test database");
    let store = PgStore::connect(&db.url, 5).await.expect("connects");
    store.migrate().await.expect("migrates");
    spawn_on(&db.url, options).await
}

/// Another talead instance on an existing database: shares nothing but Postgres.
pub async fn spawn_on(db_url: &str, options: Options) -> TestApp {
    let store = PgStore::connect(db_url, 10).await.expect("connects");
    store.check_migrated().await.expect("migrated");
    spawn_store(Arc::new(store), db_url, options).await
}

/// The router over any store (`db_url` only names it for the test).
pub async fn spawn_store(
    store: Arc<dyn talea_store::Store>,
    db_url: &str,
    options: Options,
) -> TestApp {
    let metrics = talea_telemetry::Metrics::new();
    let ledger = LedgerService::new(store, options.ledger, metrics.clone());
    let auth = options.auth.unwrap_or_else(|| {
        Arc::new(
            TokenSet::parse_file(&tokens())
                .expect("test tokens parse")
                .with_api_token(&Secret::new(ROOT)),
        )
    });
    // Every instance serves streams, as talead does: one LISTEN connection
    // per instance, fanned out in process.
    let hub = talea_stream::Hub::new(
        Arc::new(talea_stream::NoticeSource::new(ledger.clone())),
        Arc::new(talea_stream::LedgerBackfill::new(ledger.clone())),
        Arc::new(talea_http::MetricsObserver(metrics.stream.clone())),
        options.stream,
    );
    let state = AppState::new(ledger.clone(), auth, &options.http).with_stream(hub.clone());
    let base = talea_testkit::serve_router(talea_http::router(state))
        .await
        .expect("serves");
    TestApp {
        base,
        client: reqwest::Client::new(),
        db_url: db_url.to_owned(),
        metrics,
        hub,
        ledger,
    }
}

impl TestApp {
    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let resp = req.send().await.expect("request is answered");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.expect("body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "non-JSON body with status {status}: {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, token: &str) -> Resp {
        self.send(
            self.client
                .get(format!("{}{path}", self.base))
                .bearer_auth(token),
        )
        .await
    }

    pub async fn post(&self, path: &str, token: &str, body: &Value) -> Resp {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .bearer_auth(token)
                .json(body),
        )
        .await
    }

    pub async fn post_raw(&self, path: &str, token: &str, body: impl Into<reqwest::Body>) -> Resp {
        self.send(
            self.client
                .post(format!("{}{path}", self.base))
                .bearer_auth(token)
                .header("content-type", "application/json")
                .body(body),
        )
        .await
    }

    /// Registers BTC (scale 8) and opens the usual accounts in `book`.
    pub async fn setup_book(&self, book: &str) {
        let r = self
            .post(
                "/v1/assets",
                ROOT,
                &json!({"code": "BTC", "scale": 8, "name": "Bitcoin"}),
            )
            .await;
        assert!(r.status == 201 || r.status == 200, "{:?}", r.body);
        for (name, kind, min) in [
            ("treasury", "equity", Value::Null),
            ("hot-wallet", "asset", Value::Null),
            ("customers:alice", "liability", json!("0")),
            ("customers:bob", "liability", json!("0")),
        ] {
            let r = self
                .post(
                    &format!("/v1/books/{book}/accounts"),
                    ROOT,
                    &json!({"name": name, "kind": kind, "min_balance": min}),
                )
                .await;
            assert!(r.status == 201 || r.status == 200, "{:?}", r.body);
        }
    }

    /// Posts `amount` BTC from `from` (debit) to `to` (credit).
    pub async fn transfer(
        &self,
        book: &str,
        key: &str,
        from: &str,
        to: &str,
        amount: &str,
    ) -> Resp {
        self.post(
            &format!("/v1/books/{book}/transactions"),
            ROOT,
            &transfer_body(key, from, to, amount),
        )
        .await
    }
}

pub fn transfer_body(key: &str, debit: &str, credit: &str, amount: &str) -> Value {
    json!({
        "idempotency_key": key,
        "postings": [
            {"account": debit, "asset": "BTC", "debit": amount},
            {"account": credit, "asset": "BTC", "credit": amount}
        ]
    })
}

/// Every event of `book`, all pages.
pub async fn all_events(app: &TestApp, book: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let r = app
            .get(
                &format!("/v1/books/{book}/events?after_seq={after}&limit=1000"),
                ROOT,
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        out.extend(r.body["events"].as_array().expect("events").iter().cloned());
        match r.body["next_after_seq"].as_u64() {
            Some(next) => after = next,
            None => return out,
        }
    }
}
