//! Holds over HTTP: pending posts, settle and void, their refusals, expiry
//! (on one instance and on two), balances that see promises, field scopes
//! and the stream, against a real Postgres.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use talea_api::{format_timestamp, parse_timestamp};
use talea_auth::{Secret, TokenSet};
use talea_core::Timestamp;
use talea_http::{HttpConfig, Role};
use talea_testkit::sse::{self, SseReader};

use crate::harness::*;

/// How long a test waits for the expirer: generous, as speed belongs to
/// the benchmarks; the p99 delay is printed, not asserted.
const EXPIRY_DEADLINE: Duration = Duration::from_secs(15);

fn now_micros() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    i64::try_from(since.as_micros()).expect("fits")
}

/// `secs` from now (negative: in the past), as the wire writes it.
fn in_secs(secs: f64) -> String {
    let delta = (secs * 1_000_000.0) as i64;
    format_timestamp(Timestamp::from_micros(now_micros() + delta))
}

fn micros(text: &str) -> i64 {
    parse_timestamp(text)
        .unwrap_or_else(|| panic!("a timestamp: {text}"))
        .micros()
}

/// A hold of `amount` BTC from `from` (debit) to `to` (credit).
fn hold_body(key: &str, from: &str, to: &str, amount: &str, expires_at: Option<&str>) -> Value {
    let mut body = transfer_body(key, from, to, amount);
    body["pending"] = json!(true);
    if let Some(at) = expires_at {
        body["expires_at"] = json!(at);
    }
    body
}

fn settle_path(book: &str, tx_id: &str) -> String {
    format!("/v1/books/{book}/transactions/{tx_id}/post")
}

fn void_path(book: &str, tx_id: &str) -> String {
    format!("/v1/books/{book}/transactions/{tx_id}/void")
}

fn tx_id(r: &Resp) -> String {
    r.body["tx_id"]
        .as_str()
        .unwrap_or_else(|| panic!("a tx_id: {}", r.body))
        .to_owned()
}

/// The usual book, with 1 BTC credited to alice.
async fn funded(app: &TestApp) {
    app.setup_book("payments").await;
    let r = app
        .transfer(
            "payments",
            "fund-alice",
            "hot-wallet",
            "customers:alice",
            "1",
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Holds `amount` of alice's BTC for a withdrawal (alice debit, hot-wallet credit).
async fn hold(app: &TestApp, key: &str, amount: &str, expires_at: Option<&str>) -> Resp {
    app.post(
        "/v1/books/payments/transactions",
        ROOT,
        &hold_body(key, "customers:alice", "hot-wallet", amount, expires_at),
    )
    .await
}

async fn balances(app: &TestApp, account: &str) -> Value {
    let r = app
        .get(
            &format!("/v1/books/payments/accounts/{account}/balances"),
            ROOT,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

/// What a refused request must leave alone: the log and alice's balances.
async fn state(app: &TestApp) -> (usize, Value, Value) {
    (
        all_events(app, "payments").await.len(),
        balances(app, "customers:alice").await,
        balances(app, "hot-wallet").await,
    )
}

fn assert_unchanged(before: &(usize, Value, Value), after: &(usize, Value, Value), what: &str) {
    assert_eq!(before.0, after.0, "{what}: the log grew");
    for (b, a) in [(&before.1, &after.1), (&before.2, &after.2)] {
        for k in ["balances", "pending", "available"] {
            assert_eq!(b[k], a[k], "{what}: {k} changed");
        }
    }
}

#[tokio::test]
async fn a_hold_reserves_without_moving_posted_balances() {
    let app = spawn_app().await;
    funded(&app).await;
    let at = in_secs(3600.0);
    let r = hold(&app, "withdrawal-1", "0.4", Some(&at)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "pending");
    assert_eq!(r.body["expires_at"], json!(at));
    assert_eq!(r.body["deduplicated"], false);
    assert!(r.body.get("pending_tx_id").is_none(), "{}", r.body);
    let hold_id = tx_id(&r);

    let alice = balances(&app, "customers:alice").await;
    assert_eq!(alice["balances"], json!({"BTC": "1"}), "{alice}");
    assert_eq!(
        alice["pending"],
        json!({"BTC": {"debits": "0.4", "credits": "0"}}),
        "{alice}"
    );
    assert_eq!(alice["available"], json!({"BTC": "0.6"}), "{alice}");
    let wallet = balances(&app, "hot-wallet").await;
    assert_eq!(wallet["balances"], json!({"BTC": "1"}), "{wallet}");
    assert_eq!(
        wallet["pending"],
        json!({"BTC": {"debits": "0", "credits": "0.4"}}),
        "{wallet}"
    );
    assert_eq!(wallet["available"], json!({"BTC": "0.6"}), "{wallet}");

    // The trial balance stays posted-only, with what holds reserve beside it.
    let r = app.get("/v1/books/payments/trial-balance", ROOT).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["balanced"], true);
    assert_eq!(r.body["totals"]["BTC"]["debits"], "1", "{}", r.body);
    assert_eq!(r.body["totals"]["BTC"]["credits"], "1", "{}", r.body);
    assert_eq!(r.body["pending"], json!({"BTC": "0.4"}), "{}", r.body);

    // The log records the hold as pending; a read of it says so.
    let log = all_events(&app, "payments").await;
    let last = log.last().expect("events");
    assert_eq!(last["type"], "transaction");
    assert_eq!(last["data"]["status"], "pending");
    assert_eq!(last["data"]["tx_id"], json!(hold_id));
    let r = app.get(&format!("/v1/transactions/{hold_id}"), ROOT).await;
    assert_eq!((r.status, &r.body["status"]), (200, &json!("pending")));
    assert_eq!(r.body["expires_at"], json!(at));

    // A replay answers the hold as it stands.
    let r = hold(&app, "withdrawal-1", "0.4", Some(&at)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (r.body["deduplicated"].clone(), tx_id(&r)),
        (json!(true), hold_id)
    );

    // The floor applies to what is available: 0.6, not 1.
    let before = state(&app).await;
    let r = hold(&app, "withdrawal-2", "0.7", None).await;
    assert_eq!(
        (r.status, r.error()),
        (422, "insufficient_balance"),
        "{}",
        r.body
    );
    let r = app
        .transfer("payments", "send-2", "customers:alice", "hot-wallet", "0.7")
        .await;
    assert_eq!(
        (r.status, r.error()),
        (422, "insufficient_balance"),
        "{}",
        r.body
    );
    assert_unchanged(&before, &state(&app).await, "over the available balance");
    let r = hold(&app, "withdrawal-3", "0.6", None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["expires_at"], Value::Null);
}

#[tokio::test]
async fn settling_a_whole_hold_posts_it_once() {
    let app = spawn_app().await;
    funded(&app).await;
    let r = hold(&app, "withdrawal", "0.4", None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let hold_id = tx_id(&r);
    let hold_seq = r.body["seq"].as_u64().expect("seq");
    let hold_postings = r.body["postings"].clone();

    let settle = json!({"idempotency_key": "withdrawal-confirmed"});
    let r = app
        .post(&settle_path("payments", &hold_id), PAY_RW, &settle)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let settle_id = tx_id(&r);
    assert_ne!(settle_id, hold_id);
    assert_eq!(r.body["status"], "posted");
    assert_eq!(r.body["pending_tx_id"], json!(hold_id));
    assert_eq!(r.body["deduplicated"], false);
    assert_eq!(r.body["seq"], json!(hold_seq + 1));
    assert_eq!(r.body["postings"], hold_postings);
    let original = r.body.clone();

    let r = app.get(&format!("/v1/transactions/{hold_id}"), ROOT).await;
    assert_eq!(
        (r.status, &r.body["status"]),
        (200, &json!("posted")),
        "{}",
        r.body
    );
    let alice = balances(&app, "customers:alice").await;
    assert_eq!(alice["balances"], json!({"BTC": "0.6"}), "{alice}");
    assert_eq!(alice["available"], json!({"BTC": "0.6"}), "{alice}");

    // A replay: the original, deduplicated.
    let r = app
        .post(&settle_path("payments", &hold_id), PAY_RW, &settle)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["deduplicated"], true);
    for k in ["tx_id", "seq", "committed_at", "postings", "pending_tx_id"] {
        assert_eq!(r.body[k], original[k], "{k}");
    }
    // The same key with another body.
    let partial = json!({"idempotency_key": "withdrawal-confirmed", "postings": [
        {"account": "customers:alice", "asset": "BTC", "debit": "0.1"},
        {"account": "hot-wallet", "asset": "BTC", "credit": "0.1"}]});
    let r = app
        .post(&settle_path("payments", &hold_id), PAY_RW, &partial)
        .await;
    assert_eq!(
        (r.status, r.error()),
        (409, "idempotency_key_reused"),
        "{}",
        r.body
    );

    // The hold ended: another settle or a void is refused, naming how.
    let before = state(&app).await;
    for path in [
        settle_path("payments", &hold_id),
        void_path("payments", &hold_id),
    ] {
        let r = app
            .post(&path, PAY_RW, &json!({"idempotency_key": "second-try"}))
            .await;
        assert_eq!(
            (r.status, r.error()),
            (409, "hold_not_pending"),
            "{}",
            r.body
        );
        assert_eq!(r.body["status"], "posted", "{}", r.body);
        assert_eq!(r.body["tx_id"], json!(settle_id), "{}", r.body);
    }
    assert_unchanged(&before, &state(&app).await, "a second outcome");
}

#[tokio::test]
async fn a_partial_settle_posts_part_and_releases_the_rest() {
    let app = spawn_app().await;
    funded(&app).await;
    let r = app
        .post(
            "/v1/assets",
            ROOT,
            &json!({"code": "ETH", "scale": 18, "name": "Ether"}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = hold(&app, "withdrawal", "0.4", None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let hold_id = tx_id(&r);
    let path = settle_path("payments", &hold_id);
    let partial = |amount_out: &str, amount_in: &str| {
        json!({"idempotency_key": "part", "postings": [
            {"account": "customers:alice", "asset": "BTC", "debit": amount_out},
            {"account": "hot-wallet", "asset": "BTC", "credit": amount_in}]})
    };

    // Refusals first: each changes nothing.
    let before = state(&app).await;
    let r = app.post(&path, PAY_RW, &partial("0.5", "0.5")).await;
    assert_eq!((r.status, r.error()), (422, "exceeds_hold"), "{}", r.body);
    assert_eq!(r.body["account"], "customers:alice", "{}", r.body);
    assert_eq!(r.body["asset"], "BTC");
    assert_eq!(r.body["held"], "0.4");
    assert_eq!(r.body["requested"], "0.5");

    // Split legs count together.
    let split = json!({"idempotency_key": "part", "postings": [
        {"account": "customers:alice", "asset": "BTC", "debit": "0.25"},
        {"account": "customers:alice", "asset": "BTC", "debit": "0.25"},
        {"account": "hot-wallet", "asset": "BTC", "credit": "0.5"}]});
    let r = app.post(&path, PAY_RW, &split).await;
    assert_eq!((r.status, r.error()), (422, "exceeds_hold"), "{}", r.body);
    assert_eq!(
        (&r.body["held"], &r.body["requested"]),
        (&json!("0.4"), &json!("0.5")),
        "{}",
        r.body
    );
    // An account the hold does not have.
    let other_account = json!({"idempotency_key": "part", "postings": [
        {"account": "customers:bob", "asset": "BTC", "debit": "0.1"},
        {"account": "hot-wallet", "asset": "BTC", "credit": "0.1"}]});
    let r = app.post(&path, PAY_RW, &other_account).await;
    assert_eq!((r.status, r.error()), (422, "exceeds_hold"), "{}", r.body);
    assert_eq!(
        (&r.body["account"], &r.body["held"], &r.body["requested"]),
        (&json!("customers:bob"), &json!("0"), &json!("0.1")),
        "{}",
        r.body
    );
    // An asset the hold does not have.
    let other_asset = json!({"idempotency_key": "part", "postings": [
        {"account": "customers:alice", "asset": "ETH", "debit": "0.000000000000000001"},
        {"account": "hot-wallet", "asset": "ETH", "credit": "0.000000000000000001"}]});
    let r = app.post(&path, PAY_RW, &other_asset).await;
    assert_eq!((r.status, r.error()), (422, "exceeds_hold"), "{}", r.body);
    assert_eq!(
        (&r.body["asset"], &r.body["held"], &r.body["requested"]),
        (&json!("ETH"), &json!("0"), &json!("0.000000000000000001")),
        "{}",
        r.body
    );
    // The other side of the same account.
    let wrong_side = json!({"idempotency_key": "part", "postings": [
        {"account": "hot-wallet", "asset": "BTC", "debit": "0.1"},
        {"account": "customers:alice", "asset": "BTC", "credit": "0.1"}]});
    let r = app.post(&path, PAY_RW, &wrong_side).await;
    assert_eq!((r.status, r.error()), (422, "exceeds_hold"), "{}", r.body);
    assert_eq!(r.body["held"], "0", "{}", r.body);
    // Not balanced.
    let r = app.post(&path, PAY_RW, &partial("0.2", "0.1")).await;
    assert_eq!((r.status, r.error()), (422, "unbalanced"), "{}", r.body);
    // Not even well formed.
    let r = app.post(&path, PAY_RW, &partial("-0.1", "-0.1")).await;
    assert_eq!(
        (r.status, r.error()),
        (400, "invalid_request"),
        "{}",
        r.body
    );
    assert_unchanged(&before, &state(&app).await, "a refused settle");
    let r = app.get(&format!("/v1/transactions/{hold_id}"), ROOT).await;
    assert_eq!(r.body["status"], "pending");

    // Part of it: 0.25 posts, 0.15 is released.
    let r = app.post(&path, PAY_RW, &partial("0.25", "0.25")).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "posted");
    assert_eq!(r.body["pending_tx_id"], json!(hold_id));
    assert_eq!(
        r.body["postings"],
        partial("0.25", "0.25")["postings"],
        "{}",
        r.body
    );
    let settle_id = tx_id(&r);
    let alice = balances(&app, "customers:alice").await;
    assert_eq!(alice["balances"], json!({"BTC": "0.75"}), "{alice}");
    assert_eq!(alice["available"], json!({"BTC": "0.75"}), "{alice}");
    let r = app.get("/v1/books/payments/trial-balance", ROOT).await;
    assert_eq!(r.body["pending"], json!({"BTC": "0"}), "{}", r.body);
    // Its replay is the original.
    let r = app.post(&path, PAY_RW, &partial("0.25", "0.25")).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        (tx_id(&r), r.body["deduplicated"].clone()),
        (settle_id, json!(true))
    );
}

#[tokio::test]
async fn a_void_releases_the_hold_once() {
    let app = spawn_app().await;
    funded(&app).await;
    let r = hold(&app, "withdrawal", "0.4", None).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let hold_id = tx_id(&r);
    let path = void_path("payments", &hold_id);

    // Bodies of the wrong shape: 400, nothing changes.
    let before = state(&app).await;
    for bad in [
        json!({}),
        json!({"idempotency_key": "failed", "postings": []}),
        json!({"idempotency_key": "failed", "reason": "x"}),
        json!({"idempotency_key": ""}),
        json!({"idempotency_key": 7}),
        json!("failed"),
    ] {
        let r = app.post(&path, PAY_RW, &bad).await;
        assert_eq!(
            (r.status, r.error()),
            (400, "invalid_request"),
            "{bad}: {}",
            r.body
        );
    }
    let r = app.post_raw(&path, PAY_RW, "{\"idempotency_key\": ").await;
    assert_eq!(
        (r.status, r.error()),
        (400, "invalid_request"),
        "{}",
        r.body
    );
    assert_unchanged(&before, &state(&app).await, "a bad void");

    let void = json!({"idempotency_key": "failed"});
    let r = app.post(&path, PAY_RW, &void).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["status"], "voided");
    assert_eq!(r.body["pending_tx_id"], json!(hold_id));
    let void_id = tx_id(&r);
    assert_ne!(void_id, hold_id);
    let original = r.body.clone();
    let r = app.get(&format!("/v1/transactions/{hold_id}"), ROOT).await;
    assert_eq!(r.body["status"], "voided", "{}", r.body);
    let alice = balances(&app, "customers:alice").await;
    assert_eq!(alice["balances"], json!({"BTC": "1"}), "{alice}");
    assert_eq!(alice["available"], json!({"BTC": "1"}), "{alice}");

    let r = app.post(&path, PAY_RW, &void).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["deduplicated"], true);
    for k in ["tx_id", "seq", "committed_at", "pending_tx_id", "status"] {
        assert_eq!(r.body[k], original[k], "{k}");
    }
    // The void's key on a settle is another request.
    let r = app
        .post(&settle_path("payments", &hold_id), PAY_RW, &void)
        .await;
    assert_eq!(
        (r.status, r.error()),
        (409, "idempotency_key_reused"),
        "{}",
        r.body
    );
    let r = app
        .post(
            &settle_path("payments", &hold_id),
            PAY_RW,
            &json!({"idempotency_key": "late-confirmation"}),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (409, "hold_not_pending"),
        "{}",
        r.body
    );
    assert_eq!(
        (&r.body["status"], &r.body["tx_id"]),
        (&json!("voided"), &json!(void_id))
    );
}

#[tokio::test]
async fn settle_and_void_name_holds_only() {
    let app = spawn_app().await;
    funded(&app).await;
    let posted = app.get("/v1/books/payments/transactions", ROOT).await;
    let posted_id = posted.body["transactions"][0]["tx_id"]
        .as_str()
        .expect("tx_id")
        .to_owned();
    let key = json!({"idempotency_key": "k"});
    let before = state(&app).await;
    for path in [
        settle_path("payments", &posted_id),
        void_path("payments", &posted_id),
    ] {
        let r = app.post(&path, PAY_RW, &key).await;
        assert_eq!((r.status, r.error()), (422, "not_a_hold"), "{}", r.body);
        assert_eq!(r.body["tx_id"], json!(posted_id));
    }
    for id in ["0b9a4e9e-1f43-4a3c-9d2a-6c1d2b7e8f00", "not-a-uuid", "1"] {
        for path in [settle_path("payments", id), void_path("payments", id)] {
            let r = app.post(&path, PAY_RW, &key).await;
            assert_eq!(
                (r.status, r.error()),
                (404, "not_found"),
                "{path}: {}",
                r.body
            );
        }
    }
    // A hold of another book is not found through this one.
    app.setup_book("other").await;
    let r = app
        .post(
            "/v1/books/other/transactions",
            ROOT,
            &hold_body("h", "treasury", "hot-wallet", "1", None),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let elsewhere = tx_id(&r);
    let r = app
        .post(&void_path("payments", &elsewhere), ROOT, &key)
        .await;
    assert_eq!((r.status, r.error()), (404, "not_found"), "{}", r.body);
    assert_unchanged(&before, &state(&app).await, "not a hold");
}

#[tokio::test]
async fn expires_at_is_checked_and_changes_nothing() {
    let app = spawn_app().await;
    funded(&app).await;
    let before = state(&app).await;
    let past = in_secs(-1.0);
    let too_far = in_secs(91.0 * 86_400.0);
    let soon = in_secs(60.0);
    let mut without_pending = transfer_body("k", "customers:alice", "hot-wallet", "0.1");
    without_pending["expires_at"] = json!(soon);
    for body in [
        hold_body("k", "customers:alice", "hot-wallet", "0.1", Some(&past)),
        hold_body("k", "customers:alice", "hot-wallet", "0.1", Some(&too_far)),
        hold_body(
            "k",
            "customers:alice",
            "hot-wallet",
            "0.1",
            Some("tomorrow"),
        ),
        without_pending,
    ] {
        let r = app
            .post("/v1/books/payments/transactions", PAY_RW, &body)
            .await;
        assert_eq!(
            (r.status, r.error()),
            (400, "invalid_request"),
            "{body}: {}",
            r.body
        );
        assert_eq!(r.body["field"], "/expires_at", "{body}: {}", r.body);
    }
    assert_unchanged(&before, &state(&app).await, "a bad expires_at");
    // 89 days is fine.
    let r = hold(&app, "k", "0.1", Some(&in_secs(89.0 * 86_400.0))).await;
    assert_eq!(r.status, 201, "{}", r.body);
}

#[tokio::test]
async fn settle_and_void_need_a_write_instance_and_a_write_token() {
    let writer = spawn_app().await;
    funded(&writer).await;
    let r = hold(&writer, "withdrawal", "0.4", None).await;
    let hold_id = tx_id(&r);
    let reader = spawn_on(
        &writer.db_url,
        Options {
            http: HttpConfig {
                role: Role::Read,
                ..HttpConfig::default()
            },
            ..Options::default()
        },
    )
    .await;
    let key = json!({"idempotency_key": "k"});
    for path in [
        settle_path("payments", &hold_id),
        void_path("payments", &hold_id),
    ] {
        for token in [PAY_RO, OTHER_RW] {
            let r = writer.post(&path, token, &key).await;
            assert_eq!(
                (r.status, r.error()),
                (403, "forbidden"),
                "{path}: {}",
                r.body
            );
        }
        let r = writer.post(&path, "", &key).await;
        assert_eq!(r.status, 401, "{path}: {}", r.body);
    }
    // The reader reads the hold, still pending.
    let r = reader
        .get(&format!("/v1/transactions/{hold_id}"), PAY_RO)
        .await;
    assert_eq!((r.status, &r.body["status"]), (200, &json!("pending")));
}

#[tokio::test]
async fn a_read_instance_answers_settle_and_void_405() {
    let writer = spawn_app().await;
    funded(&writer).await;
    let hold_id = tx_id(&hold(&writer, "withdrawal", "0.4", None).await);
    let reader = spawn_on(
        &writer.db_url,
        Options {
            http: HttpConfig {
                role: Role::Read,
                ..HttpConfig::default()
            },
            ..Options::default()
        },
    )
    .await;
    for path in [
        settle_path("payments", &hold_id),
        void_path("payments", &hold_id),
    ] {
        let r = reader
            .post(&path, ROOT, &json!({"idempotency_key": "k"}))
            .await;
        assert_eq!(
            (r.status, r.error()),
            (405, "method_not_allowed"),
            "{path}: {}",
            r.body
        );
        assert_eq!(
            r.header("allow"),
            Some(""),
            "{path}: no method is served here"
        );
    }
}

#[tokio::test]
async fn a_void_body_that_is_an_array_is_refused() {
    let app = spawn_app().await;
    funded(&app).await;
    let hold_id = tx_id(&hold(&app, "withdrawal", "0.4", None).await);
    let before = state(&app).await;
    let r = app
        .post(&void_path("payments", &hold_id), PAY_RW, &json!(["failed"]))
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "invalid_request"),
        "{}",
        r.body
    );
    assert_unchanged(&before, &state(&app).await, "an array body");
}

const SCOPED_TOKENS: &str = r#"
[tokens.browser]
token = "browser-token"
books = ["payments"]
access = "ro"
hide = ["metadata", "memo"]

[tokens.browser-rw]
token = "browser-rw-token"
books = ["payments"]
access = "rw"
hide = ["memo", "metadata"]
"#;

#[tokio::test]
async fn field_scopes_apply_to_holds_settles_and_voids() {
    let tokens = TokenSet::parse_file(SCOPED_TOKENS)
        .expect("tokens parse")
        .with_api_token(&Secret::new(ROOT));
    let app = spawn_app_with(Options {
        auth: Some(Arc::new(tokens)),
        ..Options::default()
    })
    .await;
    funded(&app).await;
    let mut ids = Vec::new();
    for key in ["to-settle", "to-void"] {
        let mut body = hold_body(key, "customers:alice", "hot-wallet", "0.1", None);
        body["memo"] = json!("SECRET-MEMO");
        body["metadata"] = json!({"secret": "SECRET-META"});
        let r = app
            .post("/v1/books/payments/transactions", "browser-rw-token", &body)
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
        assert!(!r.body.to_string().contains("SECRET"), "{}", r.body);
        assert_eq!(r.body["status"], "pending");
        ids.push(tx_id(&r));
    }
    let hidden = |body: &Value| {
        let text = body.to_string();
        !text.contains("SECRET") && !text.contains("\"memo\"") && !text.contains("\"metadata\"")
    };
    for status in [201, 200] {
        let r = app
            .post(
                &settle_path("payments", &ids[0]),
                "browser-rw-token",
                &json!({"idempotency_key": "s"}),
            )
            .await;
        assert_eq!(r.status, status, "{}", r.body);
        assert!(hidden(&r.body), "{}", r.body);
        assert_eq!(r.body["pending_tx_id"], json!(ids[0]));
        let r = app
            .post(
                &void_path("payments", &ids[1]),
                "browser-rw-token",
                &json!({"idempotency_key": "v"}),
            )
            .await;
        assert_eq!(r.status, status, "{}", r.body);
        assert!(hidden(&r.body), "{}", r.body);
        assert_eq!(r.body["status"], "voided");
    }
    for path in [
        format!("/v1/transactions/{}", ids[0]),
        "/v1/books/payments/transactions".to_owned(),
        "/v1/books/payments/events".to_owned(),
    ] {
        let plain = app.get(&path, ROOT).await;
        assert!(plain.body.to_string().contains("SECRET-MEMO"), "{path}");
        let r = app.get(&path, "browser-token").await;
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert!(hidden(&r.body), "{path}: {}", r.body);
    }
}

/// Waits for the `hold_expired` event of every hold in `holds` (by book),
/// and answers the events of each book.
async fn wait_expired(
    app: &TestApp,
    holds: &BTreeMap<String, Vec<String>>,
) -> BTreeMap<String, Vec<Value>> {
    talea_testkit::wait_for(EXPIRY_DEADLINE, move || async move {
        let mut all = BTreeMap::new();
        for (book, ids) in holds {
            let log = all_events(app, book).await;
            let expired = log
                .iter()
                .filter(|e| e["type"] == "hold_expired")
                .filter(|e| ids.iter().any(|id| e["data"]["tx_id"] == json!(id)))
                .count();
            if expired < ids.len() {
                return None;
            }
            all.insert(book.clone(), log);
        }
        Some(all)
    })
    .await
    .unwrap_or_else(|e| panic!("the holds expire: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_hold_appends_hold_expired_and_ends() {
    let app = spawn_app().await;
    app.ledger.spawn_expirer();
    funded(&app).await;
    let at = in_secs(1.0);
    let r = hold(&app, "withdrawal", "0.4", Some(&at)).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let hold_id = tx_id(&r);
    let holds = BTreeMap::from([("payments".to_owned(), vec![hold_id.clone()])]);
    let log = wait_expired(&app, &holds)
        .await
        .remove("payments")
        .expect("log");
    let expired: Vec<&Value> = log.iter().filter(|e| e["type"] == "hold_expired").collect();
    assert_eq!(expired.len(), 1, "{log:?}");
    let event = expired[0];
    assert_eq!(event["data"]["tx_id"], json!(hold_id));
    assert_eq!(event["data"]["expires_at"], json!(at));
    assert!(micros(event["committed_at"].as_str().expect("committed_at")) >= micros(&at));
    let seqs: Vec<u64> = log.iter().filter_map(|e| e["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=log.len() as u64).collect::<Vec<_>>());

    let r = app.get(&format!("/v1/transactions/{hold_id}"), ROOT).await;
    assert_eq!(r.body["status"], "expired", "{}", r.body);
    let alice = balances(&app, "customers:alice").await;
    assert_eq!(alice["available"], json!({"BTC": "1"}), "{alice}");
    for path in [
        settle_path("payments", &hold_id),
        void_path("payments", &hold_id),
    ] {
        let r = app
            .post(&path, PAY_RW, &json!({"idempotency_key": "late"}))
            .await;
        assert_eq!(
            (r.status, r.error()),
            (409, "hold_not_pending"),
            "{}",
            r.body
        );
        assert_eq!(r.body["status"], "expired");
        assert!(r.body.get("tx_id").is_none(), "{}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_expire_each_hold_exactly_once() {
    let a = spawn_app().await;
    let b = spawn_on(&a.db_url, Options::default()).await;
    a.ledger.spawn_expirer();
    b.ledger.spawn_expirer();
    let books = ["exp-a", "exp-b", "exp-c"];
    for book in books {
        a.setup_book(book).await;
    }
    // 50 holds expiring 1.5 to 2.5 s from now, posted through both instances.
    let posts = (0..50).map(|i| {
        let (app, book) = (if i % 2 == 0 { &a } else { &b }, books[i % books.len()]);
        let at = in_secs(1.5 + (i as f64) / 50.0);
        async move {
            let r = app
                .post(
                    &format!("/v1/books/{book}/transactions"),
                    ROOT,
                    &hold_body(&format!("h{i}"), "hot-wallet", "treasury", "1", Some(&at)),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.body);
            (book.to_owned(), tx_id(&r))
        }
    });
    let mut holds: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (book, id) in futures::future::join_all(posts).await {
        holds.entry(book).or_default().push(id);
    }
    wait_expired(&a, &holds).await;
    // Both expirers run a few more rounds: a second expiry would show now.
    tokio::time::sleep(talea_ledger::HOLD_EXPIRY_POLL * 5).await;

    let mut delays = Vec::new();
    for (book, ids) in &holds {
        let log = all_events(&b, book).await;
        let seqs: Vec<u64> = log.iter().filter_map(|e| e["seq"].as_u64()).collect();
        assert_eq!(
            seqs,
            (1..=log.len() as u64).collect::<Vec<_>>(),
            "{book}: dense"
        );
        for id in ids {
            let expiries: Vec<&Value> = log
                .iter()
                .filter(|e| e["type"] == "hold_expired" && e["data"]["tx_id"] == json!(id))
                .collect();
            assert_eq!(expiries.len(), 1, "{book} {id}: {expiries:?}");
            let expires_at = micros(expiries[0]["data"]["expires_at"].as_str().expect("at"));
            let committed = micros(expiries[0]["committed_at"].as_str().expect("at"));
            assert!(committed >= expires_at, "expired early: {:?}", expiries[0]);
            delays.push(committed - expires_at);
            let r = a.get(&format!("/v1/transactions/{id}"), ROOT).await;
            assert_eq!(r.body["status"], "expired", "{}", r.body);
        }
        let total = log.iter().filter(|e| e["type"] == "hold_expired").count();
        assert_eq!(total, ids.len(), "{book}: no other expiry");
        // Per asset of the posted totals (none here): nothing held.
        let r = a
            .get(&format!("/v1/books/{book}/trial-balance"), ROOT)
            .await;
        let pending = r.body["pending"].as_object().expect("pending");
        assert!(pending.values().all(|v| v == "0"), "{}", r.body);
    }
    delays.sort_unstable();
    let p99 = delays[(delays.len() * 99).div_ceil(100) - 1];
    eprintln!(
        "hold expiry delay over {} holds, two instances: p50 {} ms, p99 {} ms, max {} ms",
        delays.len(),
        delays[delays.len() / 2] / 1000,
        p99 / 1000,
        delays[delays.len() - 1] / 1000
    );
}

async fn open_stream(app: &TestApp, query: &str) -> reqwest::Response {
    let r = app
        .client
        .get(format!("{}/v1/books/payments/stream{query}", app.base))
        .bearer_auth(PAY_RO)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_and_its_expiry_reach_stream_subscribers() {
    let app = spawn_app().await;
    app.ledger.spawn_expirer();
    funded(&app).await;
    let everything = open_stream(&app, "").await;
    let alice_only = open_stream(&app, "?accounts=customers:alice").await;
    let bob_only = open_stream(&app, "?accounts=customers:bob").await;
    let r = hold(&app, "withdrawal", "0.4", Some(&in_secs(1.0))).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let hold_id = tx_id(&r);
    let hold_seq = r.body["seq"].as_u64().expect("seq");
    let expired = |frames: &[sse::Frame]| {
        frames
            .iter()
            .any(|f| f.event.as_deref() == Some("hold_expired"))
    };
    for response in [everything, alice_only] {
        let frames = SseReader::new(response)
            .until(EXPIRY_DEADLINE, expired)
            .await;
        let events: Vec<(Option<&str>, Value)> = frames
            .iter()
            .filter(|f| f.id.is_some())
            .map(|f| (f.event.as_deref(), sse::json(f)))
            .collect();
        assert_eq!(events.len(), 2, "{frames:?}");
        assert_eq!(events[0].0, Some("transaction"));
        assert_eq!(events[0].1["status"], "pending");
        assert_eq!(events[0].1["tx_id"], json!(hold_id));
        assert_eq!(events[1].0, Some("hold_expired"));
        assert_eq!(events[1].1["tx_id"], json!(hold_id));
        assert_eq!(sse::ids(&frames), [hold_seq, hold_seq + 1]);
    }
    // A subscriber of an account the hold does not touch sees neither; a
    // later event of bob's proves it was not just slow.
    let r = app
        .transfer("payments", "fund-bob", "hot-wallet", "customers:bob", "1")
        .await;
    let bob_seq = r.body["seq"].as_u64().expect("seq");
    let frames = SseReader::new(bob_only)
        .until_id(Duration::from_secs(20), bob_seq)
        .await;
    assert_eq!(sse::ids(&frames), [bob_seq], "{frames:?}");
}
