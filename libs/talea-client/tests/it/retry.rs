//! The SDK's retry policy against scripted servers (wiremock): what is
//! retried, what is not, how long it waits, and that every attempt carries
//! exactly the same request.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use talea_api::{ApiError, LedgerApi, PostTransactionRequest, PostingDto, SeqPage};
use talea_client::{RetryNotice, RetryPolicy, RetryReason, TaleaClient};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

const TX_PATH: &str = "/v1/books/demo/transactions";

fn policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 6,
        deadline: Duration::from_secs(20),
        base_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(50),
        attempt_timeout: Duration::from_secs(5),
    }
}

/// A client of `server` that records every retry notice.
fn client_with(
    server: &MockServer,
    policy: RetryPolicy,
) -> (TaleaClient, Arc<Mutex<Vec<RetryNotice>>>) {
    let notices = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&notices);
    let client = TaleaClient::builder(server.uri())
        .token("t0ken")
        .retry_policy(policy)
        .on_retry(move |n| seen.lock().expect("not poisoned").push(n.clone()))
        .build()
        .expect("client builds");
    (client, notices)
}

fn request() -> PostTransactionRequest {
    PostTransactionRequest {
        idempotency_key: "withdrawal-7f3a".to_owned(),
        postings: vec![
            PostingDto {
                account: "customers:alice".to_owned(),
                asset: "BTC".to_owned(),
                debit: Some("0.015".to_owned()),
                credit: None,
            },
            PostingDto {
                account: "hot-wallet".to_owned(),
                asset: "BTC".to_owned(),
                debit: None,
                credit: Some("0.015".to_owned()),
            },
        ],
        occurred_at: None,
        memo: Some("withdrawal".to_owned()),
        metadata: None,
        pending: false,
        expires_at: None,
    }
}

fn committed(deduplicated: bool) -> Value {
    json!({
        "tx_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
        "book": "demo",
        "seq": 42,
        "committed_at": "2026-11-22T10:00:00.123456Z",
        "deduplicated": deduplicated,
        "idempotency_key": "withdrawal-7f3a",
        "postings": [
            {"account": "customers:alice", "asset": "BTC", "debit": "0.015"},
            {"account": "hot-wallet", "asset": "BTC", "credit": "0.015"}
        ],
        "occurred_at": null,
        "memo": "withdrawal",
        "metadata": null
    })
}

fn error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({"error": code, "message": "busy"}))
}

async fn requests(server: &MockServer) -> Vec<Request> {
    server.received_requests().await.expect("recording is on")
}

#[tokio::test]
async fn posts_through_503_and_429_with_retry_after_then_201() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TX_PATH))
        .respond_with(error(503, "unavailable"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TX_PATH))
        .respond_with(error(429, "overloaded").insert_header("Retry-After", "1"))
        .up_to_n_times(1)
        .with_priority(2)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(TX_PATH))
        .and(header("authorization", "Bearer t0ken"))
        .respond_with(ResponseTemplate::new(201).set_body_json(committed(false)))
        .with_priority(3)
        .mount(&server)
        .await;
    let (client, notices) = client_with(&server, policy());

    let started = Instant::now();
    let tx = client
        .post_transaction("demo", request())
        .await
        .expect("the third attempt commits");
    assert_eq!(tx.deduplicated, Some(false));
    assert_eq!(tx.seq, 42);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After: 1 was honoured"
    );

    let seen = requests(&server).await;
    assert_eq!(seen.len(), 3);
    // Every attempt sent exactly the same bytes: same body, same key.
    assert!(seen.iter().all(|r| r.body == seen[0].body));
    let body: Value = serde_json::from_slice(&seen[0].body).expect("JSON body");
    assert_eq!(body["idempotency_key"], "withdrawal-7f3a");
    assert_eq!(body, serde_json::to_value(request()).expect("serializes"));

    let notices = notices.lock().expect("not poisoned");
    let reasons: Vec<&RetryReason> = notices.iter().map(|n| &n.reason).collect();
    assert_eq!(
        reasons,
        [
            &RetryReason::Status {
                status: 503,
                code: "unavailable".to_owned()
            },
            &RetryReason::Status {
                status: 429,
                code: "overloaded".to_owned()
            },
        ]
    );
    assert!(notices[1].delay >= Duration::from_secs(1));
}

#[tokio::test]
async fn a_408_is_retried_and_the_commit_it_hid_comes_back_deduplicated() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TX_PATH))
        .respond_with(error(408, "timeout"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    // What talead answers when the timed-out post had committed after all.
    Mock::given(method("POST"))
        .and(path(TX_PATH))
        .and(body_json(request()))
        .respond_with(ResponseTemplate::new(200).set_body_json(committed(true)))
        .with_priority(2)
        .mount(&server)
        .await;
    let (client, _) = client_with(&server, policy());
    let tx = client
        .post_transaction("demo", request())
        .await
        .expect("the retry finds the commit");
    assert_eq!(tx.deduplicated, Some(true));
    assert_eq!(requests(&server).await.len(), 2);
}

#[tokio::test]
async fn refusals_are_final_and_never_retried() {
    let cases = [
        (
            422,
            json!({"error": "unbalanced", "message": "debits and credits differ",
                   "imbalances": {"BTC": "0.001"}}),
            ApiError::Unbalanced {
                imbalances: [("BTC".to_owned(), "0.001".to_owned())]
                    .into_iter()
                    .collect(),
            },
        ),
        (
            409,
            json!({"error": "idempotency_key_reused", "message": "x", "tx_id": "t-1"}),
            ApiError::IdempotencyKeyReused {
                tx_id: "t-1".to_owned(),
            },
        ),
        (
            401,
            json!({"error": "unauthorized", "message": "missing or unknown bearer token"}),
            ApiError::Unauthorized,
        ),
        (
            500,
            json!({"error": "internal", "message": "internal error"}),
            ApiError::Internal,
        ),
        // A gateway error is not in the retry list: the request may be
        // anywhere, and only the caller knows whether to try again.
        (502, json!("bad gateway"), ApiError::Internal),
    ];
    for (status, body, expected) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(status).set_body_json(body))
            .mount(&server)
            .await;
        let (client, notices) = client_with(&server, policy());
        let e = client
            .post_transaction("demo", request())
            .await
            .expect_err("refused");
        assert_eq!(e, expected, "status {status}");
        assert_eq!(requests(&server).await.len(), 1, "status {status} retried");
        assert!(notices.lock().expect("not poisoned").is_empty());
    }
}

#[tokio::test]
async fn attempts_are_capped_and_the_last_answer_returned() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(error(503, "overloaded").insert_header("Retry-After", "0"))
        .mount(&server)
        .await;
    let (client, notices) = client_with(
        &server,
        RetryPolicy {
            max_attempts: 3,
            ..policy()
        },
    );
    let e = client
        .post_transaction("demo", request())
        .await
        .expect_err("gives up");
    assert_eq!(
        e,
        ApiError::Overloaded {
            status: 503,
            retry_after_s: 0
        }
    );
    assert!(e.is_retryable());
    assert_eq!(requests(&server).await.len(), 3);
    assert_eq!(notices.lock().expect("not poisoned").len(), 2);
}

#[tokio::test]
async fn the_deadline_caps_the_whole_call() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(error(503, "unavailable"))
        .mount(&server)
        .await;
    let (client, _) = client_with(
        &server,
        RetryPolicy {
            max_attempts: 1000,
            deadline: Duration::from_millis(400),
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(80),
            ..policy()
        },
    );
    let started = Instant::now();
    let e = client.assets().await.expect_err("gives up");
    assert_eq!(e.code(), "unavailable");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let attempts = requests(&server).await.len();
    assert!((2..1000).contains(&attempts), "{attempts} attempts");
}

#[tokio::test]
async fn a_retry_after_beyond_the_deadline_ends_the_call_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(error(429, "rate_limited").insert_header("Retry-After", "120"))
        .mount(&server)
        .await;
    let (client, _) = client_with(&server, policy());
    let started = Instant::now();
    let e = client.books().await.expect_err("gives up");
    assert_eq!(e, ApiError::RateLimited { retry_after_s: 120 });
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(requests(&server).await.len(), 1);
}

#[tokio::test]
async fn a_server_that_hangs_is_cut_off_per_attempt_and_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"books": []}))
                .set_delay(Duration::from_secs(30)),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"books": [{"book": "b", "last_seq": 3}]})),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    let (client, notices) = client_with(
        &server,
        RetryPolicy {
            attempt_timeout: Duration::from_millis(300),
            ..policy()
        },
    );
    let list = client.books().await.expect("the second attempt answers");
    assert_eq!(list.books.len(), 1);
    let notices = notices.lock().expect("not poisoned");
    assert!(
        matches!(&notices[0].reason, RetryReason::Transport(m) if m.contains("no answer within")),
        "{notices:?}"
    );
}

#[tokio::test]
async fn nothing_listening_is_unavailable_after_retries() {
    // A port that was just free: nothing listens there.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        l.local_addr().expect("address").port()
    };
    let notices = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&notices);
    let client = TaleaClient::builder(format!("http://127.0.0.1:{port}"))
        .retry_policy(RetryPolicy {
            max_attempts: 3,
            ..policy()
        })
        .on_retry(move |n| seen.lock().expect("not poisoned").push(n.clone()))
        .build()
        .expect("builds");
    let e = client
        .post_transaction("demo", request())
        .await
        .expect_err("nothing answers");
    match &e {
        ApiError::Unavailable { message } => {
            assert!(message.contains("3 attempts"), "{message}");
            assert!(message.contains("same idempotency key"), "{message}");
        }
        other => panic!("expected unavailable, got {other:?}"),
    }
    let notices = notices.lock().expect("not poisoned");
    assert_eq!(notices.len(), 2);
    assert!(matches!(notices[0].reason, RetryReason::Transport(_)));
}

#[tokio::test]
async fn paths_and_queries_are_encoded() {
    let server = MockServer::start().await;
    let as_of = "2026-11-22T11:00:00.5+01:00";
    Mock::given(method("GET"))
        .and(path("/v1/books/demo/accounts/customers:alice.v2/balances"))
        .and(query_param("as_of", as_of))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "account": "customers:alice.v2", "as_of": "2026-11-22T10:00:00.500000Z",
            "balances": {"BTC": "1"}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/books/demo/accounts/a%2Fb%20c/postings"))
        .and(query_param("after_seq", "7"))
        .and(query_param("limit", "2"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"postings": [], "next_after_seq": null})),
        )
        .mount(&server)
        .await;
    let (client, _) = client_with(&server, policy());
    let b = client
        .balances("demo", "customers:alice.v2", Some(as_of))
        .await
        .expect("answered");
    assert_eq!(b.balances["BTC"], "1");
    client
        .account_postings(
            "demo",
            "a/b c",
            SeqPage {
                after_seq: Some(7),
                limit: Some(2),
            },
        )
        .await
        .expect("answered");
    let seen = requests(&server).await;
    assert_eq!(
        seen[0].url.query(),
        Some("as_of=2026-11-22T11%3A00%3A00.5%2B01%3A00")
    );
}

#[tokio::test]
async fn created_and_existing_follow_the_status() {
    let server = MockServer::start().await;
    let asset = json!({"code": "BTC", "scale": 8, "name": null});
    Mock::given(method("POST"))
        .and(path("/v1/assets"))
        .respond_with(ResponseTemplate::new(201).set_body_json(asset.clone()))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/assets"))
        .respond_with(ResponseTemplate::new(200).set_body_json(asset))
        .with_priority(2)
        .mount(&server)
        .await;
    let (client, _) = client_with(&server, policy());
    let request = talea_api::AssetRequest {
        code: "BTC".to_owned(),
        scale: 8,
        name: None,
    };
    assert!(
        client
            .register_asset(request.clone())
            .await
            .expect("201")
            .created
    );
    assert!(!client.register_asset(request).await.expect("200").created);
}

/// Reads of a book carry `Talea-Min-Seq` with the last seq this client
/// wrote to it (and only that book's reads); a `503 replica_behind` is
/// retried after its `Retry-After`; `read_your_writes(false)` sends none.
#[tokio::test]
async fn reads_carry_the_last_written_seq() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TX_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(committed(false)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/books/demo/events"))
        .and(header("talea-min-seq", "42"))
        .respond_with(
            ResponseTemplate::new(503)
                .set_body_json(json!({
                    "error": "replica_behind", "message": "behind", "min_seq": 42, "seq": 41
                }))
                .insert_header("retry-after", "0"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path_regex_events())
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"events": [], "next_after_seq": null})),
        )
        .mount(&server)
        .await;
    let (client, notices) = client_with(&server, policy());
    assert_eq!(client.last_written_seq("demo"), None);
    client
        .events("demo", SeqPage::default())
        .await
        .expect("a read before any write");
    client
        .post_transaction("demo", request())
        .await
        .expect("posts");
    assert_eq!(client.last_written_seq("demo"), Some(42));
    client
        .events("demo", SeqPage::default())
        .await
        .expect("a read after the write, retried once");
    client
        .events("other", SeqPage::default())
        .await
        .expect("another book's read");
    let min_seqs: Vec<(String, Option<String>)> = requests(&server)
        .await
        .into_iter()
        .filter(|r| r.method.as_str() == "GET")
        .map(|r| {
            let seq = r
                .headers
                .get("talea-min-seq")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            (r.url.path().to_owned(), seq)
        })
        .collect();
    assert_eq!(
        min_seqs,
        [
            ("/v1/books/demo/events".to_owned(), None),
            ("/v1/books/demo/events".to_owned(), Some("42".to_owned())),
            ("/v1/books/demo/events".to_owned(), Some("42".to_owned())),
            ("/v1/books/other/events".to_owned(), None),
        ]
    );
    assert_eq!(notices.lock().expect("not poisoned").len(), 1);

    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path(TX_PATH))
        .respond_with(ResponseTemplate::new(201).set_body_json(committed(false)))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"events": [], "next_after_seq": null})),
        )
        .mount(&server)
        .await;
    let client = TaleaClient::builder(server.uri())
        .token("t0ken")
        .read_your_writes(false)
        .build()
        .expect("client builds");
    client
        .post_transaction("demo", request())
        .await
        .expect("posts");
    assert_eq!(client.last_written_seq("demo"), None);
    client
        .events("demo", SeqPage::default())
        .await
        .expect("a read");
    let sent = requests(&server).await;
    assert!(
        sent.iter()
            .all(|r| r.headers.get("talea-min-seq").is_none())
    );
}

fn path_regex_events() -> wiremock::matchers::PathRegexMatcher {
    wiremock::matchers::path_regex(r"^/v1/books/[a-z]+/events$")
}
