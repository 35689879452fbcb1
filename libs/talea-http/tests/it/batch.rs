//! Bulk posts (`POST /v1/books/{book}/transactions/batch`, issue 19 item 1):
//! each item answered as its own post would be, in order; bad items fail
//! alone; whole-request failures (envelope, count, body size, scope) fail it all.

use serde_json::{Value, json};

use crate::harness::*;

const BATCH: &str = "/v1/books/payments/transactions/batch";

fn item(key: &str, amount: &str) -> Value {
    transfer_body(key, "hot-wallet", "customers:alice", amount)
}

#[tokio::test]
async fn items_are_answered_in_order_and_bad_ones_fail_alone() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    let body = json!({"transactions": [
        item("b-1", "1"),
        "not an object",
        item("b-2", "2"),
        {"idempotency_key": "b-3"},
        item("b-1", "1"),
        item("b-2", "9"),
        item("b-4", "0.00000001"),
    ]});
    let r = app.post(BATCH, ROOT, &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let results = r.body["results"].as_array().expect("results").clone();
    let statuses: Vec<u64> = results
        .iter()
        .map(|r| r["status"].as_u64().expect("status"))
        .collect();
    // b-1 commits; a string and a body without postings are 400; b-1 again
    // in the same batch is its replay (200); b-2 with another body is 409.
    assert_eq!(
        statuses,
        [201, 400, 201, 400, 200, 409, 201],
        "{results:#?}"
    );
    assert_eq!(results[1]["body"]["error"], "invalid_request");
    assert_eq!(results[5]["body"]["error"], "idempotency_key_reused");
    let seqs: Vec<u64> = [0, 2, 6]
        .iter()
        .map(|&i| results[i]["body"]["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs[1], seqs[0] + 1, "seqs follow item order");
    assert_eq!(seqs[2], seqs[1] + 1);
    assert_eq!(results[4]["body"]["seq"], results[0]["body"]["seq"]);
    // A single post of the same key answers exactly the batch's item.
    let single = app
        .transfer("payments", "b-2", "hot-wallet", "customers:alice", "2")
        .await;
    assert_eq!(single.status, 200);
    let mut expected = results[2]["body"].clone();
    expected["deduplicated"] = json!(true);
    assert_eq!(single.body, expected);
    // The whole batch again: every item a replay or the same refusal.
    let again = app.post(BATCH, ROOT, &body).await;
    let statuses: Vec<u64> = again.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| r["status"].as_u64().expect("status"))
        .collect();
    assert_eq!(statuses, [200, 400, 200, 400, 200, 409, 200]);
}

#[tokio::test]
async fn whole_request_failures_fail_it_all() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    for body in [
        json!({"transactions": []}),
        json!({}),
        json!({"transactions": [], "x": 1}),
        json!([item("k", "1")]),
    ] {
        let r = app.post(BATCH, ROOT, &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.body);
    }
    // A bad book name fails the whole request, even when every item is bad.
    let r = app
        .post(
            "/v1/books/Bad!/transactions/batch",
            ROOT,
            &json!({"transactions": [null]}),
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["field"], "book");
    let too_many: Vec<Value> = (0..1001).map(|i| item(&format!("m-{i}"), "1")).collect();
    let r = app
        .post(BATCH, ROOT, &json!({"transactions": too_many}))
        .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.body["field"], "/transactions");
    // Scope: a read-only token, another book's token.
    let r = app
        .post(BATCH, PAY_RO, &json!({"transactions": [item("k", "1")]}))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = app
        .post(BATCH, OTHER_RW, &json!({"transactions": [item("k", "1")]}))
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    // Above 1 MiB (the single route's limit) and below 16 MiB: accepted.
    let memo = "m".repeat(1000);
    let big: Vec<Value> = (0..1000)
        .map(|i| {
            let mut v = item(&format!("big-{i}"), "0.00000001");
            v["memo"] = json!(memo);
            v
        })
        .collect();
    let r = app.post(BATCH, ROOT, &json!({"transactions": big})).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body["results"]
            .as_array()
            .expect("results")
            .iter()
            .all(|r| r["status"] == 201)
    );
    // Above 16 MiB: 413, nothing posted.
    let huge = format!(
        "{{\"transactions\": [\"{}\"]}}",
        "x".repeat(17 * 1024 * 1024)
    );
    let r = app.post_raw(BATCH, ROOT, huge).await;
    assert_eq!(r.status, 413, "{}", r.body);
}
