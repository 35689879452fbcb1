//! The stream route of talead: scope, resume, and a commit on one instance streamed by another.

use std::time::Duration;

use talea_testkit::sse::{SseReader, ids};

use crate::harness::*;

/// Reads SSE ids from `response` until `last` is seen (20 s at most).
async fn ids_until(response: reqwest::Response, last: u64) -> Vec<u64> {
    let frames = SseReader::new(response)
        .until_id(Duration::from_secs(20), last)
        .await;
    ids(&frames)
}

async fn open_stream(app: &TestApp, book: &str, token: &str, query: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/v1/books/{book}/stream{query}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_commit_through_one_instance_reaches_subscribers_of_another() {
    let a = spawn_app().await;
    let b = spawn_on(&a.db_url, Options::default()).await;
    a.setup_book("payments").await;
    let from_now = open_stream(&b, "payments", PAY_RO, "").await;
    assert_eq!(from_now.status(), 200);
    let resumed = open_stream(&b, "payments", PAY_RO, "?after_seq=1").await;
    let mut last = 0;
    for i in 0..10 {
        let r = a
            .transfer("payments", &format!("s{i}"), "hot-wallet", "treasury", "1")
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        last = r.body["seq"].as_u64().expect("seq");
    }
    let live = ids_until(from_now, last).await;
    assert_eq!(live, (last - 9..=last).collect::<Vec<_>>());
    let all = ids_until(resumed, last).await;
    assert_eq!(all, (2..=last).collect::<Vec<_>>());
    // Both streams' deliveries are counted, each with its commit-to-queue latency.
    let delivered = b.metrics.stream.delivered_total.get();
    assert!(delivered >= 10 + (last - 1), "{delivered}");
    assert_eq!(
        b.metrics.stream.delivery_latency_seconds.get_sample_count(),
        delivered,
        "every delivery is timed from its event's commit time"
    );
}

#[tokio::test]
async fn stream_refusals_are_plain_json_before_the_stream_starts() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    let r = app
        .client
        .get(format!("{}/v1/books/payments/stream", app.base))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 401);
    let r = open_stream(&app, "payments", OTHER_RW, "").await;
    assert_eq!(r.status(), 403);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(
        body,
        serde_json::json!({"error": "forbidden", "book": "payments", "message": body["message"]})
    );
    let r = open_stream(&app, "nobook", ROOT, "").await;
    assert_eq!(r.status(), 404);
    let r = open_stream(&app, "payments", ROOT, "?after_seq=-1").await;
    assert_eq!(r.status(), 400);
    let r = app
        .client
        .get(format!("{}/v1/books/payments/stream", app.base))
        .bearer_auth(ROOT)
        .header("last-event-id", "abc")
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 400);
    let r = open_stream(&app, "payments", ROOT, "?bogus=1").await;
    assert_eq!(r.status(), 400);
    let r = open_stream(&app, "payments", ROOT, "?accounts=,").await;
    assert_eq!(r.status(), 400);
}
