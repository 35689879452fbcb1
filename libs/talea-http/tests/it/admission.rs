//! Admission: the in-flight limit (503), full book queues (429) and request deadlines (408).
//!
//! Each test holds the book's counter row locked from a separate connection,
//! which stalls the committer exactly as a slow database would.

use std::time::Duration;

use futures::future::join_all;
use sqlx::Connection;
use talea_http::HttpConfig;
use talea_ledger::LedgerConfig;

use crate::harness::*;

/// Opens a transaction that holds `book`'s counter row until dropped or committed.
async fn lock_book(db_url: &str, book: &str) -> (sqlx::PgConnection, ()) {
    let mut conn = sqlx::PgConnection::connect(db_url).await.expect("connects");
    sqlx::query("BEGIN")
        .execute(&mut conn)
        .await
        .expect("begin");
    sqlx::query("SELECT last_seq FROM books WHERE book = $1 FOR UPDATE")
        .bind(book)
        .fetch_one(&mut conn)
        .await
        .expect("locks the counter row");
    (conn, ())
}

async fn unlock(mut conn: sqlx::PgConnection) {
    sqlx::query("COMMIT")
        .execute(&mut conn)
        .await
        .expect("commit");
}

/// Polls `f` until it holds, failing after a deadline.
async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn in_flight_limit_sheds_with_503_and_health_is_inside_it() {
    let app = spawn_app_with(Options {
        http: HttpConfig {
            max_inflight: 2,
            ..HttpConfig::default()
        },
        ..Options::default()
    })
    .await;
    app.setup_book("payments").await;
    let (conn, ()) = lock_book(&app.db_url, "payments").await;
    let stuck: Vec<_> = (0..2)
        .map(|i| {
            let app_base = app.base.clone();
            tokio::spawn(async move {
                reqwest::Client::new()
                    .post(format!("{app_base}/v1/books/payments/transactions"))
                    .bearer_auth(ROOT)
                    .json(&transfer_body(
                        &format!("s{i}"),
                        "hot-wallet",
                        "treasury",
                        "1",
                    ))
                    .send()
                    .await
                    .expect("answered")
                    .status()
                    .as_u16()
            })
        })
        .collect();
    let gauge = app.metrics.http_inflight_requests.clone();
    eventually("two requests in flight", || gauge.get() == 2).await;
    let r = app
        .transfer("payments", "extra", "hot-wallet", "treasury", "1")
        .await;
    assert_eq!((r.status, r.error()), (503, "overloaded"));
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = app.get("/health", "").await;
    assert_eq!((r.status, r.error()), (503, "overloaded"));
    let r = app.get("/livez", "").await;
    assert_eq!(r.status, 200);
    unlock(conn).await;
    for status in join_all(stuck).await {
        assert_eq!(status.expect("task"), 201);
    }
    let r = app
        .transfer("payments", "extra", "hot-wallet", "treasury", "1")
        .await;
    assert_eq!(r.status, 201, "the shed request did not consume its key");
}

#[tokio::test]
async fn a_full_book_queue_answers_429_then_everything_lands_on_retry() {
    let app = spawn_app_with(Options {
        ledger: LedgerConfig {
            write_queue_depth: 2,
            write_batch_max: 1,
            ..LedgerConfig::default()
        },
        ..Options::default()
    })
    .await;
    app.setup_book("payments").await;
    let (conn, ()) = lock_book(&app.db_url, "payments").await;
    let posts: Vec<_> = (0..12)
        .map(|i| {
            let base = app.base.clone();
            tokio::spawn(async move {
                let resp = reqwest::Client::new()
                    .post(format!("{base}/v1/books/payments/transactions"))
                    .bearer_auth(ROOT)
                    .json(&transfer_body(
                        &format!("q{i}"),
                        "hot-wallet",
                        "treasury",
                        "1",
                    ))
                    .send()
                    .await
                    .expect("answered");
                let retry_after = resp
                    .headers()
                    .get("retry-after")
                    .map(|v| v.to_str().unwrap_or("").to_owned());
                (i, resp.status().as_u16(), retry_after)
            })
        })
        .collect();
    // Wait until the committer is stuck on one draft and the queue is full.
    let shed = app.metrics.shed_total.with_label_values(&["queue_full"]);
    eventually("queue-full refusals", || shed.get() >= 9).await;
    unlock(conn).await;
    let mut refused = Vec::new();
    for result in join_all(posts).await {
        let (i, status, retry_after) = result.expect("task");
        match status {
            201 => {}
            429 => {
                assert_eq!(retry_after.as_deref(), Some("1"));
                refused.push(i);
            }
            other => panic!("unexpected status {other}"),
        }
    }
    assert!(refused.len() >= 9, "{refused:?}");
    for i in refused {
        let r = app
            .transfer("payments", &format!("q{i}"), "hot-wallet", "treasury", "1")
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let r = app
        .get("/v1/books/payments/transactions?limit=100", ROOT)
        .await;
    assert_eq!(r.body["transactions"].as_array().map(Vec::len), Some(12));
}

#[tokio::test]
async fn a_request_past_its_deadline_gets_408_and_a_retry_finds_the_commit() {
    // Set up through an instance with the default deadline: on a loaded
    // machine the set-up itself could outlive 300 ms.
    let setup = spawn_app().await;
    setup.setup_book("payments").await;
    let app = spawn_on(
        &setup.db_url,
        Options {
            http: HttpConfig {
                request_timeout_ms: 300,
                ..HttpConfig::default()
            },
            ..Options::default()
        },
    )
    .await;
    let (conn, ()) = lock_book(&app.db_url, "payments").await;
    let r = app
        .transfer("payments", "slow", "hot-wallet", "treasury", "1")
        .await;
    assert_eq!((r.status, r.error()), (408, "timeout"));
    unlock(conn).await;
    // The draft was already inside a storage transaction when the deadline
    // passed, so it committed: the retry gets the original.
    let r = app
        .transfer("payments", "slow", "hot-wallet", "treasury", "1")
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.body);
    let r2 = app
        .transfer("payments", "slow", "hot-wallet", "treasury", "1")
        .await;
    assert_eq!(r2.status, 200);
    assert_eq!(r2.body["tx_id"], r.body["tx_id"]);
    let r = app.get("/v1/books/payments/transactions", ROOT).await;
    assert_eq!(r.body["transactions"].as_array().map(Vec::len), Some(1));
}
