//! Authentication outcomes, per-token rate limits and instance roles.

use std::num::NonZeroU32;
use std::sync::Arc;

use async_trait::async_trait;
use serde_json::json;
use talea_auth::{Authenticator, Principal, Undecided};
use talea_http::{HttpConfig, RateLimit, Role};

use crate::harness::*;

fn with_role(role: Role) -> Options {
    Options {
        http: HttpConfig {
            role,
            ..HttpConfig::default()
        },
        ..Options::default()
    }
}

#[tokio::test]
async fn a_read_instance_serves_gets_and_refuses_writes_with_405() {
    let writer = spawn_app().await;
    writer.setup_book("payments").await;
    let r = writer
        .transfer("payments", "k1", "hot-wallet", "customers:alice", "1")
        .await;
    assert_eq!(r.status, 201);
    let reader = spawn_on(&writer.db_url, with_role(Role::Read)).await;

    // Every GET route answers, and sees what the writer committed.
    let r = reader.get("/v1/books/payments/trial-balance", ROOT).await;
    assert_eq!((r.status, &r.body["balanced"]), (200, &json!(true)));
    let tx_id = writer
        .get("/v1/books/payments/transactions", ROOT)
        .await
        .body["transactions"][0]["tx_id"]
        .as_str()
        .expect("tx id")
        .to_owned();
    for path in [
        "/v1/assets".to_owned(),
        "/v1/books".to_owned(),
        "/v1/books/payments/accounts".to_owned(),
        "/v1/books/payments/accounts/customers:alice".to_owned(),
        "/v1/books/payments/accounts/customers:alice/balances".to_owned(),
        "/v1/books/payments/accounts/customers:alice/postings".to_owned(),
        "/v1/books/payments/transactions".to_owned(),
        "/v1/books/payments/events".to_owned(),
        format!("/v1/transactions/{tx_id}"),
    ] {
        let r = reader.get(&path, ROOT).await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
    }
    assert_eq!(reader.get("/health", "").await.status, 200);

    // Writes: 405 with the route's Allow, before authentication.
    for (path, body) in [
        ("/v1/assets", json!({"code": "ETH", "scale": 18})),
        (
            "/v1/books/payments/accounts",
            json!({"name": "x", "kind": "asset"}),
        ),
        (
            "/v1/books/payments/transactions",
            transfer_body("k2", "hot-wallet", "customers:alice", "1"),
        ),
    ] {
        for token in [ROOT, "", "unknown-token"] {
            let r = reader.post(path, token, &body).await;
            assert_eq!((r.status, r.error()), (405, "method_not_allowed"), "{path}");
            let allow = r.header("allow").unwrap_or_default();
            assert!(allow.contains("GET") && allow.contains("HEAD"), "{allow:?}");
            assert!(!allow.contains("POST"), "{allow:?}");
        }
    }
    let r = writer.get("/v1/books/payments/transactions", ROOT).await;
    assert_eq!(r.body["transactions"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn a_write_instance_serves_everything() {
    let app = spawn_app_with(with_role(Role::Write)).await;
    app.setup_book("payments").await;
    let r = app
        .transfer("payments", "k1", "hot-wallet", "customers:alice", "1")
        .await;
    assert_eq!(r.status, 201);
    let r = app.get("/v1/books/payments/trial-balance", ROOT).await;
    assert_eq!(r.status, 200);
    // A method no route takes is still a 405 naming what is allowed.
    let r = app
        .send(
            app.client
                .delete(format!("{}/v1/assets", app.base))
                .bearer_auth(ROOT),
        )
        .await;
    assert_eq!((r.status, r.error()), (405, "method_not_allowed"));
    assert!(r.header("allow").is_some_and(|a| a.contains("POST")));
}

fn limited(per_s: u32, burst: u32) -> Options {
    Options {
        http: HttpConfig {
            rate_limit: Some(RateLimit {
                per_s: NonZeroU32::new(per_s).expect("non-zero"),
                burst: NonZeroU32::new(burst).expect("non-zero"),
            }),
            ..HttpConfig::default()
        },
        ..Options::default()
    }
}

#[tokio::test]
async fn rate_limits_key_on_the_token_name_then_on_the_peer() {
    // One request per second after a burst of two: the test's few requests
    // take milliseconds, far less than the second that refills one.
    let app = spawn_app_with(limited(1, 2)).await;
    for _ in 0..2 {
        assert_eq!(app.get("/v1/assets", ROOT).await.status, 200);
    }
    let r = app.get("/v1/assets", ROOT).await;
    assert_eq!((r.status, r.error()), (429, "rate_limited"), "{}", r.body);
    let retry: u64 = r
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After in seconds");
    assert!(retry >= 1);

    // Another token has its own budget; the same token's name is one budget.
    for _ in 0..2 {
        assert_eq!(app.get("/v1/assets", PAY_RO).await.status, 200);
    }
    assert_eq!(app.get("/v1/books", PAY_RO).await.status, 429);
    assert_eq!(app.get("/v1/books", PAY_RW).await.status, 200);

    // No token or an unknown one: one budget per peer address.
    assert_eq!(app.get("/v1/assets", "").await.status, 401);
    assert_eq!(app.get("/v1/assets", "bogus").await.status, 401);
    let r = app.get("/v1/assets", "").await;
    assert_eq!((r.status, r.error()), (429, "rate_limited"));

    // Probes are never limited.
    for _ in 0..5 {
        assert_eq!(app.get("/health", "").await.status, 200);
    }
    let text = app.metrics.render();
    assert!(
        text.contains("talea_requests_shed_total{reason=\"rate_limited\"} 3"),
        "{text}"
    );
}

#[derive(Debug)]
struct Unreachable;

#[async_trait]
impl Authenticator for Unreachable {
    async fn authenticate(&self, _: &str) -> Result<Option<Principal>, Undecided> {
        Err(Undecided)
    }
}

#[tokio::test]
async fn an_undecidable_token_is_503_and_a_missing_one_401() {
    let app = spawn_app_with(Options {
        auth: Some(Arc::new(Unreachable)),
        ..Options::default()
    })
    .await;
    let r = app.get("/v1/assets", "any-token").await;
    assert_eq!((r.status, r.error()), (503, "unavailable"));
    assert_eq!(r.header("retry-after"), Some("1"));
    assert!(!r.body.to_string().contains("any-token"));
    let r = app.get("/v1/assets", "").await;
    assert_eq!((r.status, r.error()), (401, "unauthorized"));
    assert_eq!(app.get("/health", "").await.status, 200);
    let text = app.metrics.render();
    assert!(
        text.contains("talea_auth_decisions_total{outcome=\"unavailable\"} 1"),
        "{text}"
    );
    assert!(text.contains("talea_auth_decisions_total{outcome=\"unauthorized\"} 1"));
}
