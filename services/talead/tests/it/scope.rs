//! The real talead binary with `TALEA_SCOPE_URL`, `TALEA_ROLE` and per-token rate limits.
//!
//! The scope service is played by wiremock here (the contract's answers);
//! `talea-scope`'s own tests run the real service against a router.

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::start_with;

const SERVICE_TOKEN: &str = "service-token";

async fn scope() -> MockServer {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/introspect"))
        .and(header("authorization", format!("Bearer {SERVICE_TOKEN}")))
        .and(body_json(json!({"token": "reader"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "active": true, "name": "reader", "books": ["demo"], "access": "ro", "ttl_seconds": 60
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/introspect"))
        .and(header("authorization", format!("Bearer {SERVICE_TOKEN}")))
        .and(body_json(json!({"token": "admin"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "active": true, "name": "admin", "books": ["*"], "access": "rw", "ttl_seconds": 60
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/introspect"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({"active": false})))
        .mount(&server)
        .await;
    server
}

#[tokio::test]
async fn tokens_are_decided_by_the_scope_service_and_local_tokens_are_ignored() {
    let scope = scope().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_with(
        dir.path(),
        &[
            ("TALEA_SCOPE_URL", &scope.uri()),
            ("TALEA_SCOPE_SERVICE_TOKEN", SERVICE_TOKEN),
            ("TALEA_API_TOKEN", "local"),
        ],
    );
    let client = reqwest::Client::new();
    let post = |token: &'static str| {
        client
            .post(format!("{}/v1/assets", server.api))
            .bearer_auth(token)
            .json(&json!({"code": "BTC", "scale": 8}))
            .send()
    };
    assert_eq!(post("admin").await.expect("answer").status(), 201);
    let r = post("reader").await.expect("answer");
    assert_eq!(r.status(), 403, "ro and not [\"*\"]");
    assert_eq!(
        post("local").await.expect("answer").status(),
        401,
        "TALEA_API_TOKEN does not authenticate beside TALEA_SCOPE_URL"
    );
    let r = client
        .get(format!("{}/v1/books", server.api))
        .bearer_auth("reader")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn a_read_instance_refuses_writes_and_a_rate_limit_answers_429() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_with(
        dir.path(),
        &[
            ("TALEA_API_TOKEN", "root"),
            ("TALEA_ROLE", "read"),
            ("TALEA_RATE_LIMIT_PER_S", "1"),
            ("TALEA_RATE_LIMIT_BURST", "2"),
        ],
    );
    let client = reqwest::Client::new();
    let r = client
        .post(format!("{}/v1/assets", server.api))
        .bearer_auth("root")
        .json(&json!({"code": "BTC", "scale": 8}))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 405);
    let allow = r
        .headers()
        .get("allow")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(allow.contains("GET"), "{allow}");
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..4 {
        let r = client
            .get(format!("{}/v1/assets", server.api))
            .bearer_auth("root")
            .send()
            .await
            .expect("answer");
        if r.status() == 429 {
            retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body: serde_json::Value = r.json().await.expect("json");
            assert_eq!(body["error"], "rate_limited");
            statuses.push(429);
        } else {
            statuses.push(r.status().as_u16());
        }
    }
    assert_eq!(&statuses[..2], &[200, 200], "{statuses:?}");
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    assert!(retry_after.is_some_and(|s| s.parse::<u64>().is_ok_and(|n| n >= 1)));
}
