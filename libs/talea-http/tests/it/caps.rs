//! Per-token stream caps (`TALEA_SSE_MAX_PER_TOKEN`) over real sockets: a
//! token at its cap is refused 429 `rate_limited` with `Retry-After` while
//! other tokens stream, refusals keep their order (401/400/403/404 first,
//! then the token's cap, then the process's 503), a stream ticket counts
//! against its token, and a closed stream gives its slot back.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use talea_auth::{Secret, TokenSet};
use talea_stream::{Hub, StreamConfig};
use talea_testkit::tokens::{Token, tokens_toml};

use crate::harness::*;

/// Reads every book; the token whose streams are capped.
const ALL_RO: &str = "all-ro-token";

fn tokens() -> String {
    tokens_toml(&[
        Token::ro("reader-all", ALL_RO, &["*"]),
        Token::rw("payments", PAY_RW, &["payments"]),
        Token::ro("payments-reader", PAY_RO, &["payments"]),
    ])
}

/// A talead router on a fresh database whose hub allows `max_connections`
/// streams, `max_per_token` per token, with 1 s heartbeats (so a closed
/// client is noticed within a second); the hub is returned for its counts.
async fn spawn_capped(max_connections: usize, max_per_token: usize) -> (TestApp, Hub) {
    let auth = Arc::new(
        TokenSet::parse_file(&tokens())
            .expect("test tokens parse")
            .with_api_token(&Secret::new(ROOT)),
    );
    let app = spawn_app_with(Options {
        auth: Some(auth),
        stream: StreamConfig {
            heartbeat_s: 1,
            max_connections,
            max_per_token,
            ..StreamConfig::default()
        },
        ..Options::default()
    })
    .await;
    let hub = app.hub.clone();
    (app, hub)
}

/// `GET` the stream of `book` with `query`, with `token` as bearer (none: no header).
async fn stream(app: &TestApp, book: &str, token: Option<&str>, query: &str) -> reqwest::Response {
    let mut request = app
        .client
        .get(format!("{}/v1/books/{book}/stream{query}", app.base));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("answer")
}

/// Asserts `response` is a JSON refusal with `status` and `code`; returns its `Retry-After`.
async fn refused(response: reqwest::Response, status: u16, code: &str) -> Option<String> {
    assert_eq!(response.status(), status);
    let retry_after = response
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    assert_eq!(body["error"], code, "{body}");
    retry_after
}

/// Opens the stream with `token` (or `?ticket=` in `query`) as soon as a
/// slot is free: every attempt before that must be the token's 429.
async fn open_when_free(app: &TestApp, token: Option<&str>, query: &str) -> reqwest::Response {
    talea_testkit::wait_for(Duration::from_secs(20), || async move {
        let r = stream(app, "payments", token, query).await;
        match r.status().as_u16() {
            200 => Some(r),
            429 => None,
            other => panic!("only 200 or 429 while the slot comes back, got {other}"),
        }
    })
    .await
    .expect("a closed stream gives its slot back")
}

fn refusals(app: &TestApp, reason: &str) -> u64 {
    app.metrics
        .stream
        .refused_total
        .with_label_values(&[reason])
        .get()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_at_its_cap_gets_429_while_others_stream_and_a_closed_stream_frees_a_slot() {
    let (app, hub) = spawn_capped(5, 2).await;
    app.setup_book("payments").await;

    let a1 = stream(&app, "payments", Some(ALL_RO), "").await;
    let a2 = stream(&app, "payments", Some(ALL_RO), "?after_seq=0").await;
    assert_eq!((a1.status().as_u16(), a2.status().as_u16()), (200, 200));
    assert_eq!(hub.token_streams(Some("reader-all")), 2);

    // The third is refused before the stream starts, with a Retry-After of
    // one heartbeat.
    let retry_after = refused(
        stream(&app, "payments", Some(ALL_RO), "").await,
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(
        retry_after.as_deref(),
        Some("1"),
        "Retry-After is one heartbeat"
    );
    // The other answers come first, as before: at its cap, the token still
    // hears 400 for a bad query and 404 for a book that does not exist, and
    // a request without a token 401.
    refused(
        stream(&app, "payments", Some(ALL_RO), "?after_seq=x").await,
        400,
        "invalid_request",
    )
    .await;
    refused(
        stream(&app, "no-such-book", Some(ALL_RO), "").await,
        404,
        "not_found",
    )
    .await;
    refused(
        stream(&app, "payments", None, "").await,
        401,
        "unauthorized",
    )
    .await;

    // Other tokens still open streams, up to the process's limit.
    let p1 = stream(&app, "payments", Some(PAY_RO), "").await;
    let p2 = stream(&app, "payments", Some(PAY_RO), "").await;
    let w1 = stream(&app, "payments", Some(PAY_RW), "").await;
    assert_eq!(
        [p1.status(), p2.status(), w1.status()].map(|s| s.as_u16()),
        [200; 3]
    );
    // A token at its own cap is forbidden a book outside its scope as before.
    refused(
        stream(&app, "other", Some(PAY_RO), "").await,
        403,
        "forbidden",
    )
    .await;
    // The process is full: a token under its cap gets the process's answer,
    // a token at its cap still its own.
    assert_eq!(hub.open_streams(), 5);
    let retry_after = refused(
        stream(&app, "payments", Some(ROOT), "").await,
        503,
        "overloaded",
    )
    .await;
    assert_eq!(retry_after.as_deref(), Some("1"));
    refused(
        stream(&app, "payments", Some(ALL_RO), "").await,
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(refusals(&app, "token_cap"), 2);
    assert_eq!(refusals(&app, "connections"), 1);

    // A stream ticket counts against the token it was issued to: once one
    // of the token's streams closes, the ticket's stream takes its slot …
    let r = app
        .post("/v1/stream-tickets", ALL_RO, &json!({"book": "payments"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let ticket = r.body["ticket"].as_str().expect("a ticket").to_owned();
    refused(
        stream(&app, "payments", None, &format!("?ticket={ticket}")).await,
        429,
        "rate_limited",
    )
    .await;
    drop(a1);
    let t1 = open_when_free(&app, None, &format!("?ticket={ticket}")).await;
    // … and the token's bearer streams are at the cap again.
    refused(
        stream(&app, "payments", Some(ALL_RO), "").await,
        429,
        "rate_limited",
    )
    .await;
    assert_eq!(hub.token_streams(Some("reader-all")), 2);

    // Every stream closed: no slot is held and no token is remembered.
    drop((a2, t1, p1, p2, w1));
    talea_testkit::wait_until(Duration::from_secs(20), || {
        let hub = hub.clone();
        async move { hub.open_streams() == 0 && hub.streaming_tokens() == 0 }
    })
    .await
    .expect("closed streams give back every slot and leave no entry");
    let again = open_when_free(&app, Some(ALL_RO), "").await;
    assert_eq!(again.status(), 200);
}
