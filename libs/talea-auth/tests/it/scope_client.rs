//! `ScopeClient` against wiremock. Time is skipped with `tokio::time::pause`
//! and `advance`, then resumed before any network call: a paused clock would
//! otherwise fire the HTTP timeout while the mock thread answers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use talea_auth::{
    Access, Authenticator, Books, Hide, NEGATIVE_TTL_S, Principal, ScopeClient, ScopeClientConfig,
    Secret, Undecided,
};
use talea_telemetry::Metrics;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const SERVICE_TOKEN: &str = "svc-token";

fn config(server: &MockServer) -> ScopeClientConfig {
    let mut c = ScopeClientConfig::new(server.uri(), Secret::new(SERVICE_TOKEN));
    // Short enough for a test to wait out a slow service.
    c.introspect_timeout_ms = 300;
    c
}

fn client(server: &MockServer) -> (ScopeClient, Metrics) {
    client_with(config(server))
}

fn client_with(config: ScopeClientConfig) -> (ScopeClient, Metrics) {
    let metrics = Metrics::new();
    let c = ScopeClient::new(config, metrics.auth.clone()).expect("client");
    (c, metrics)
}

fn active(name: &str, ttl: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "active": true, "name": name, "books": [name], "access": "rw", "ttl_seconds": ttl
    }))
}

fn inactive() -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({"active": false}))
}

fn principal(name: &str) -> Principal {
    Principal {
        name: Some(name.to_owned()),
        books: Books::Only([name.to_owned()].into()),
        access: Access::Rw,
        hide: Hide::NONE,
    }
}

async fn calls(server: &MockServer) -> usize {
    server.received_requests().await.map_or(0, |r| r.len())
}

/// Moves the clock forward by `d` at once.
async fn skip(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
}

#[tokio::test]
async fn hide_policies_reach_the_principal() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/introspect"))
        .and(body_json(json!({"token": "browser-token"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "active": true, "name": "browser", "books": ["*"], "access": "ro",
            "ttl_seconds": 60, "hide": ["memo", "metadata"]
        })))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/introspect"))
        .and(body_json(json!({"token": "odd-token"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "active": true, "name": "odd", "books": ["*"], "access": "ro",
            "ttl_seconds": 60, "hide": ["postings"]
        })))
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let p = c
        .authenticate("browser-token")
        .await
        .expect("decided")
        .expect("active");
    assert_eq!(p.hide.to_list(), ["metadata", "memo"]);
    assert_eq!(p.access, Access::Ro);
    // A policy this build cannot honour is undecidable, never ignored.
    assert_eq!(c.authenticate("odd-token").await, Err(Undecided));
}

#[tokio::test]
async fn positive_answers_are_cached_for_their_ttl() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/introspect"))
        .and(header("authorization", format!("Bearer {SERVICE_TOKEN}")))
        .and(body_json(json!({"token": "pay-token"})))
        .respond_with(active("payments", 60))
        .mount(&server)
        .await;
    let (c, metrics) = client(&server);

    assert_eq!(
        c.authenticate("pay-token").await,
        Ok(Some(principal("payments")))
    );
    assert_eq!(
        c.authenticate("pay-token").await,
        Ok(Some(principal("payments")))
    );
    assert_eq!(
        calls(&server).await,
        1,
        "the second answer came from the cache"
    );

    skip(Duration::from_secs(59)).await;
    assert_eq!(
        c.authenticate("pay-token").await,
        Ok(Some(principal("payments")))
    );
    assert_eq!(calls(&server).await, 1);

    skip(Duration::from_secs(2)).await;
    assert_eq!(
        c.authenticate("pay-token").await,
        Ok(Some(principal("payments")))
    );
    assert_eq!(calls(&server).await, 2, "expired after ttl_seconds");

    assert_eq!(metrics.auth.cache_hits_total.get(), 2);
    assert_eq!(metrics.auth.cache_misses_total.get(), 2);
    assert_eq!(metrics.auth.cache_entries.get(), 1);
    let text = metrics.render();
    assert!(
        text.contains("talea_auth_introspections_total{result=\"active\"} 2"),
        "{text}"
    );
    assert!(!text.contains("pay-token"));
}

#[tokio::test]
async fn negative_answers_are_cached_briefly() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(inactive())
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    assert_eq!(c.authenticate("nope").await, Ok(None));
    assert_eq!(c.authenticate("nope").await, Ok(None));
    assert_eq!(calls(&server).await, 1);
    skip(Duration::from_secs(NEGATIVE_TTL_S)).await;
    assert_eq!(c.authenticate("nope").await, Ok(None));
    assert_eq!(calls(&server).await, 2);
}

#[tokio::test]
async fn a_zero_ttl_is_not_cached() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(active("payments", 0))
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    for _ in 0..3 {
        assert_eq!(c.authenticate("t").await, Ok(Some(principal("payments"))));
    }
    assert_eq!(calls(&server).await, 3);
}

#[tokio::test]
async fn concurrent_requests_with_a_new_token_make_one_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(active("payments", 60).set_delay(Duration::from_millis(200)))
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    let answers = futures::future::join_all((0..50).map(|_| c.authenticate("fresh-token"))).await;
    assert!(
        answers
            .iter()
            .all(|a| *a == Ok(Some(principal("payments"))))
    );
    assert_eq!(calls(&server).await, 1, "single-flight");

    // Another token is its own flight.
    let (a, b) = tokio::join!(c.authenticate("other-1"), c.authenticate("other-2"));
    assert!(a.is_ok() && b.is_ok());
    assert_eq!(calls(&server).await, 3);
}

#[tokio::test]
async fn a_cancelled_caller_does_not_cancel_the_call() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(active("payments", 60).set_delay(Duration::from_millis(100)))
        .mount(&server)
        .await;
    let (c, _) = client(&server);
    // The first caller gives up long before the answer; the call goes on.
    let first = tokio::time::timeout(Duration::from_millis(10), c.authenticate("t")).await;
    assert!(first.is_err());
    assert_eq!(c.authenticate("t").await, Ok(Some(principal("payments"))));
    assert_eq!(calls(&server).await, 1);
}

#[tokio::test]
async fn a_slow_service_fails_closed_within_the_timeout() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(active("payments", 60).set_delay(Duration::from_secs(30)))
        .mount(&server)
        .await;
    let (c, metrics) = client(&server);
    let started = std::time::Instant::now();
    assert_eq!(c.authenticate("t").await, Err(Undecided));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(
        metrics
            .auth
            .introspections_total
            .with_label_values(&["error"])
            .get(),
        1
    );
}

#[tokio::test]
async fn refusals_and_malformed_answers_are_undecided() {
    for template in [
        ResponseTemplate::new(401).set_body_json(json!({"error": "unauthorized"})),
        ResponseTemplate::new(500),
        ResponseTemplate::new(200).set_body_string("not json"),
        ResponseTemplate::new(200).set_body_json(json!({"active": true})),
        ResponseTemplate::new(307).insert_header("location", "http://127.0.0.1:1/"),
    ] {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(template)
            .mount(&server)
            .await;
        let (c, _) = client(&server);
        assert_eq!(c.authenticate("t").await, Err(Undecided));
    }
}

#[tokio::test]
async fn during_an_outage_cached_tokens_work_until_their_ttl_and_new_ones_get_503() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(active("payments", 10))
        .mount(&server)
        .await;
    let (c, metrics) = client(&server);
    assert!(c.authenticate("established").await.is_ok());

    // The service starts failing.
    server.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    for token in ["new-1", "new-2", "new-3"] {
        assert_eq!(c.authenticate(token).await, Err(Undecided));
    }
    assert_eq!(calls(&server).await, 3);
    assert_eq!(metrics.auth.breaker_state.get(), 2, "open");

    // Open: new tokens fail at once, without a call; the cached one works.
    assert_eq!(c.authenticate("new-4").await, Err(Undecided));
    assert_eq!(calls(&server).await, 3);
    skip(Duration::from_secs(9)).await;
    assert_eq!(
        c.authenticate("established").await,
        Ok(Some(principal("payments")))
    );

    // Its TTL runs out: now it cannot be decided either (the half-open probe fails).
    skip(Duration::from_secs(1)).await;
    assert_eq!(c.authenticate("established").await, Err(Undecided));
    assert_eq!(calls(&server).await, 4, "one probe");
    assert_eq!(metrics.auth.breaker_state.get(), 2, "open again");
}

/// Answers while `up` is true, 503 otherwise.
struct Flapping {
    up: Arc<AtomicBool>,
}

impl Respond for Flapping {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        if self.up.load(Ordering::SeqCst) {
            active("payments", 60)
        } else {
            ResponseTemplate::new(503)
        }
    }
}

#[tokio::test]
async fn a_flapping_service_opens_and_closes_the_breaker() {
    let server = MockServer::start().await;
    let up = Arc::new(AtomicBool::new(true));
    Mock::given(method("POST"))
        .respond_with(Flapping { up: up.clone() })
        .mount(&server)
        .await;
    let mut cfg = config(&server);
    cfg.breaker_failures_to_open = 2;
    cfg.breaker_open_ms = 1_000;
    let (c, metrics) = client_with(cfg);

    assert!(c.authenticate("a").await.is_ok());
    up.store(false, Ordering::SeqCst);
    assert_eq!(c.authenticate("b").await, Err(Undecided));
    assert_eq!(
        metrics.auth.breaker_state.get(),
        0,
        "one failure is not an outage"
    );
    up.store(true, Ordering::SeqCst);
    assert!(
        c.authenticate("c").await.is_ok(),
        "a success resets the count"
    );
    up.store(false, Ordering::SeqCst);
    assert_eq!(c.authenticate("d").await, Err(Undecided));
    assert_eq!(c.authenticate("e").await, Err(Undecided));
    assert_eq!(metrics.auth.breaker_state.get(), 2, "two in a row: open");

    // Back up, but the breaker is still open: no call until the period ends.
    up.store(true, Ordering::SeqCst);
    let before = calls(&server).await;
    assert_eq!(c.authenticate("f").await, Err(Undecided));
    assert_eq!(calls(&server).await, before);
    assert!(c.authenticate("a").await.is_ok(), "cached meanwhile");

    skip(Duration::from_millis(1_000)).await;
    assert!(c.authenticate("f").await.is_ok(), "the probe succeeds");
    assert_eq!(metrics.auth.breaker_state.get(), 0, "closed");
    assert!(c.authenticate("g").await.is_ok());
}

#[tokio::test]
async fn the_cache_is_bounded() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(active("payments", 60))
        .mount(&server)
        .await;
    let mut cfg = config(&server);
    cfg.cache_entries_max = 2;
    let (c, metrics) = client_with(cfg);
    for token in ["t1", "t2", "t3", "t4"] {
        assert!(c.authenticate(token).await.is_ok());
    }
    assert_eq!(metrics.auth.cache_entries.get(), 2);
    assert!(c.authenticate("t4").await.is_ok());
    assert_eq!(calls(&server).await, 4, "the newest stayed");
}
