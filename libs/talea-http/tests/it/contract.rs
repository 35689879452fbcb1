//! The wire contract, route by route, against a real Postgres.

use serde_json::{Value, json};

use crate::harness::*;

#[tokio::test]
async fn every_response_carries_backend_and_request_id() {
    let app = spawn_app().await;
    let r = app.get("/health", "").await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, json!({"status": "ok", "backend": "postgres"}));
    assert_eq!(r.header("x-talea-backend"), Some("postgres"));
    assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()));
    assert!(
        r.header("content-type")
            .is_some_and(|v| v.starts_with("application/json"))
    );

    let r = app
        .send(
            app.client
                .get(format!("{}/v1/assets", app.base))
                .header("x-request-id", "abc-123"),
        )
        .await;
    assert_eq!(r.status, 401);
    assert_eq!(r.error(), "unauthorized");
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
    assert_eq!(r.header("x-talea-backend"), Some("postgres"));

    let r = app.get("/livez", "").await;
    assert_eq!(r.status, 200);
    let r = app.get("/no/such/route", ROOT).await;
    assert_eq!((r.status, r.error()), (404, "not_found"));
}

#[tokio::test]
async fn assets_register_idempotently_and_conflict_on_change() {
    let app = spawn_app().await;
    let btc = json!({"code": "BTC", "scale": 8, "name": "Bitcoin"});
    let r = app.post("/v1/assets", ROOT, &btc).await;
    assert_eq!(r.status, 201);
    assert_eq!(r.body, btc);
    let r = app.post("/v1/assets", ROOT, &btc).await;
    assert_eq!(r.status, 200);
    let r = app
        .post(
            "/v1/assets",
            ROOT,
            &json!({"code": "BTC", "scale": 2, "name": "Bitcoin"}),
        )
        .await;
    assert_eq!((r.status, r.error()), (409, "conflict"));
    for bad in [
        json!({"code": "BTC!", "scale": 8}),
        json!({"code": "X", "scale": 31}),
        json!({"code": "X", "scale": -1}),
        json!({"code": "X", "scale": 2, "extra": true}),
        json!({"scale": 2}),
    ] {
        let r = app.post("/v1/assets", ROOT, &bad).await;
        assert_eq!((r.status, r.error()), (400, "invalid_request"), "{bad}");
        assert!(r.body.get("field").is_some(), "{bad}: {}", r.body);
    }
    // Registering needs rw and ["*"].
    let r = app
        .post("/v1/assets", PAY_RW, &json!({"code": "ETH", "scale": 18}))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "forbidden");
    let r = app.get("/v1/assets", PAY_RO).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["assets"][0]["code"], "BTC");
}

#[tokio::test]
async fn accounts_open_list_and_conflict() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    let body = json!({"name": "customers:carol", "kind": "liability", "min_balance": "0", "metadata": {"tier": "gold", "a": 1}});
    let r = app.post("/v1/books/payments/accounts", PAY_RW, &body).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["seq"], 5);
    assert_eq!(r.body["book"], "payments");
    assert_eq!(r.body["min_balance"], "0");
    assert_eq!(r.body["metadata"], json!({"tier": "gold", "a": 1}));
    let opened_at = r.body["opened_at"].as_str().expect("opened_at").to_owned();
    assert_eq!(
        opened_at.len(),
        "2026-11-22T10:00:00.123456Z".len(),
        "{opened_at}"
    );
    // Same definition (other key order) again: 200 with the original.
    let same = json!({"metadata": {"a": 1, "tier": "gold"}, "min_balance": "0.0", "kind": "liability", "name": "customers:carol"});
    let r = app.post("/v1/books/payments/accounts", PAY_RW, &same).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["opened_at"], opened_at.as_str());
    assert_eq!(r.body["seq"], 5);
    let r = app
        .post(
            "/v1/books/payments/accounts",
            PAY_RW,
            &json!({"name": "customers:carol", "kind": "asset"}),
        )
        .await;
    assert_eq!((r.status, r.error()), (409, "conflict"));

    let r = app.get("/v1/books/payments/accounts?limit=2", PAY_RO).await;
    assert_eq!(r.status, 200);
    let names: Vec<&str> = r.body["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|a| a["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["customers:alice", "customers:bob"]);
    assert_eq!(r.body["next"], "customers:bob");
    let r = app
        .get(
            "/v1/books/payments/accounts?after=customers:bob&limit=10",
            PAY_RO,
        )
        .await;
    assert_eq!(r.body["accounts"].as_array().map(Vec::len), Some(3));
    assert_eq!(r.body["next"], Value::Null);

    let r = app
        .get("/v1/books/payments/accounts/customers:carol", PAY_RO)
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["balances"], json!({}));
    let r = app.get("/v1/books/payments/accounts/nobody", PAY_RO).await;
    assert_eq!((r.status, r.error()), (404, "not_found"));
    let r = app.get("/v1/books/nobook/accounts", ROOT).await;
    assert_eq!((r.status, r.error()), (404, "not_found"));
    for bad in [
        json!({"name": ":bad", "kind": "asset"}),
        json!({"name": "x", "kind": "nope"}),
        json!({"name": "x", "kind": "asset", "min_balance": "1e3"}),
        json!({"name": "x", "kind": "asset", "metadata": []}),
    ] {
        let r = app.post("/v1/books/payments/accounts", PAY_RW, &bad).await;
        assert_eq!((r.status, r.error()), (400, "invalid_request"), "{bad}");
    }
    let r = app
        .post(
            "/v1/books/Bad/accounts",
            ROOT,
            &json!({"name": "x", "kind": "asset"}),
        )
        .await;
    assert_eq!((r.status, r.error()), (400, "invalid_request"));
}

#[tokio::test]
async fn transactions_commit_replay_and_reuse() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    let body = json!({
        "idempotency_key": "withdrawal-7f3a",
        "postings": [
            {"account": "hot-wallet", "asset": "BTC", "debit": "0.015"},
            {"account": "customers:alice", "asset": "BTC", "credit": "0.015"}
        ],
        "occurred_at": "2026-11-22T09:59:58Z",
        "memo": "deposit",
        "metadata": {"chain_tx": "ab12", "n": 1}
    });
    let r = app
        .post("/v1/books/payments/transactions", PAY_RW, &body)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let tx = r.body.clone();
    assert_eq!(tx["deduplicated"], false);
    assert_eq!(tx["seq"], 5);
    assert_eq!(tx["book"], "payments");
    assert_eq!(tx["occurred_at"], "2026-11-22T09:59:58.000000Z");
    assert_eq!(tx["memo"], "deposit");
    assert_eq!(tx["metadata"], json!({"chain_tx": "ab12", "n": 1}));
    assert_eq!(tx["postings"], body["postings"]);
    let committed_at = tx["committed_at"].as_str().expect("committed_at");
    assert!(
        committed_at.ends_with('Z') && committed_at.len() == 27,
        "{committed_at}"
    );

    // Same request, other key order and whitespace: the original, deduplicated.
    let replay = r#"{ "metadata": {"n": 1, "chain_tx": "ab12"}, "memo": "deposit",
        "occurred_at": "2026-11-22T09:59:58Z", "postings": [
            {"asset": "BTC", "debit": "0.015", "account": "hot-wallet"},
            {"credit": "0.015", "account": "customers:alice", "asset": "BTC"}],
        "idempotency_key": "withdrawal-7f3a" }"#;
    let r = app
        .post_raw("/v1/books/payments/transactions", PAY_RW, replay)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["deduplicated"], true);
    for k in ["tx_id", "seq", "committed_at", "postings", "metadata"] {
        assert_eq!(r.body[k], tx[k], "{k}");
    }
    // Same key, different body.
    let mut other = body.clone();
    other["memo"] = json!("changed");
    let r = app
        .post("/v1/books/payments/transactions", PAY_RW, &other)
        .await;
    assert_eq!((r.status, r.error()), (409, "idempotency_key_reused"));
    assert_eq!(r.body["tx_id"], tx["tx_id"]);

    // Reads reflect the commit at once.
    let id = tx["tx_id"].as_str().expect("tx_id");
    let r = app.get(&format!("/v1/transactions/{id}"), PAY_RO).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["committed_at"], tx["committed_at"]);
    assert_eq!(r.body["postings"], tx["postings"]);
    let r = app
        .get("/v1/books/payments/accounts/customers:alice", PAY_RO)
        .await;
    assert_eq!(r.body["balances"], json!({"BTC": "0.015"}));
    let r = app
        .get("/v1/books/payments/accounts/hot-wallet", PAY_RO)
        .await;
    assert_eq!(r.body["balances"], json!({"BTC": "0.015"}));
    let r = app.get("/v1/books/payments/transactions", PAY_RO).await;
    assert_eq!(r.body["transactions"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["next_after_seq"], Value::Null);
    let r = app
        .get("/v1/books/payments/events?after_seq=4", PAY_RO)
        .await;
    assert_eq!(r.body["events"][0]["type"], "transaction");
    assert_eq!(r.body["events"][0]["seq"], 5);
    assert_eq!(r.body["events"][0]["data"]["tx_id"], tx["tx_id"]);
    let r = app.get("/v1/books", PAY_RO).await;
    assert_eq!(
        r.body,
        json!({"books": [{"book": "payments", "last_seq": 5}]})
    );
}

#[tokio::test]
async fn rejections_use_the_contract_codes_and_do_not_consume_keys() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    let path = "/v1/books/payments/transactions";
    let cases: Vec<(Value, u16, &str)> = vec![
        (json!({"postings": []}), 400, "invalid_request"),
        (
            transfer_body("", "hot-wallet", "treasury", "1"),
            400,
            "invalid_request",
        ),
        (
            transfer_body("k\u{7}", "hot-wallet", "treasury", "1"),
            400,
            "invalid_request",
        ),
        (
            transfer_body("k", "hot-wallet", "treasury", "0.000000001"),
            400,
            "invalid_request",
        ),
        (
            transfer_body("k", "hot-wallet", "treasury", "0"),
            400,
            "invalid_request",
        ),
        (
            transfer_body("k", "hot-wallet", "treasury", "-1"),
            400,
            "invalid_request",
        ),
        (
            transfer_body("k", "hot-wallet", "treasury", "1e3"),
            400,
            "invalid_request",
        ),
        (
            transfer_body(
                "k",
                "hot-wallet",
                "treasury",
                "99999999999999999999999999999999999",
            ),
            400,
            "amount_out_of_range",
        ),
        (
            json!({"idempotency_key": "k", "postings": [{"account": "hot-wallet", "asset": "BTC", "debit": 1}, {"account": "treasury", "asset": "BTC", "credit": "1"}]}),
            400,
            "invalid_request",
        ),
        (
            json!({"idempotency_key": "k", "postings": [{"account": "hot-wallet", "asset": "BTC", "debit": "1", "credit": "1"}, {"account": "treasury", "asset": "BTC", "credit": "1"}]}),
            400,
            "invalid_request",
        ),
        (
            json!({"idempotency_key": "k", "postings": [{"account": "hot-wallet", "asset": "BTC", "debit": "1"}]}),
            400,
            "invalid_request",
        ),
        (
            json!({"idempotency_key": "k", "postings": [{"account": "hot-wallet", "asset": "BTC", "debit": "1"}, {"account": "treasury", "asset": "BTC", "credit": "0.9"}]}),
            422,
            "unbalanced",
        ),
        (
            transfer_body("k", "hot-wallet", "ghost", "1"),
            422,
            "unknown_account",
        ),
        (
            json!({"idempotency_key": "k", "postings": [{"account": "hot-wallet", "asset": "DOGE", "debit": "1"}, {"account": "treasury", "asset": "DOGE", "credit": "1"}]}),
            422,
            "unknown_asset",
        ),
        (
            transfer_body("k", "customers:alice", "hot-wallet", "1"),
            422,
            "insufficient_balance",
        ),
        (
            json!({"idempotency_key": "k", "postings": [], "surprise": 1}),
            400,
            "invalid_request",
        ),
        (
            json!({"idempotency_key": "k", "memo": "x".repeat(1025), "postings": transfer_body("k", "hot-wallet", "treasury", "1")["postings"]}),
            400,
            "invalid_request",
        ),
    ];
    for (body, status, code) in cases {
        let r = app.post(path, ROOT, &body).await;
        assert_eq!((r.status, r.error()), (status, code), "{body}: {}", r.body);
        if status == 400 {
            assert!(r.body.get("field").is_some(), "{body}: {}", r.body);
        }
    }
    let r = app
        .post(path, ROOT, &json!({"idempotency_key": "k", "postings": [{"account": "hot-wallet", "asset": "BTC", "debit": "1"}, {"account": "treasury", "asset": "BTC", "credit": "0.9"}]}))
        .await;
    assert_eq!(r.body["imbalances"], json!({"BTC": "0.1"}));
    let r = app
        .transfer("payments", "k", "customers:alice", "hot-wallet", "1")
        .await;
    assert_eq!(r.body["account"], "customers:alice");
    assert_eq!(r.body["asset"], "BTC");
    assert_eq!(r.body["balance"], "0");
    assert_eq!(r.body["min_balance"], "0");
    // The key "k" was never consumed by any of those refusals.
    let r = app
        .transfer("payments", "k", "hot-wallet", "treasury", "1")
        .await;
    assert_eq!(r.status, 201, "{}", r.body);

    let r = app.post_raw(path, ROOT, "{not json").await;
    assert_eq!((r.status, r.error()), (400, "invalid_request"));
    let r = app.post_raw(path, ROOT, vec![b' '; 1024 * 1024 + 1]).await;
    assert_eq!((r.status, r.error()), (413, "payload_too_large"));
    let mut big = transfer_body("big", "hot-wallet", "treasury", "1");
    big["metadata"] = json!({"blob": "x".repeat(16 * 1024)});
    let r = app.post(path, ROOT, &big).await;
    assert_eq!((r.status, r.error()), (400, "invalid_request"));
    assert_eq!(r.body["field"], "/metadata");
}

#[tokio::test]
async fn scope_rules_answer_401_403_and_indistinguishable_404() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    app.setup_book("other").await;
    let r = app
        .transfer("other", "o1", "hot-wallet", "treasury", "1")
        .await;
    let other_tx = r.body["tx_id"].as_str().expect("tx_id").to_owned();

    let r = app.get("/v1/books/payments/accounts", "wrong-token").await;
    assert_eq!((r.status, r.error()), (401, "unauthorized"));
    let r = app
        .send(
            app.client
                .get(format!("{}/v1/books/payments/accounts", app.base)),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = app.get("/v1/books/other/accounts", PAY_RW).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["error"], "forbidden");
    assert_eq!(r.body["book"], "other");
    let r = app
        .post(
            "/v1/books/payments/transactions",
            PAY_RO,
            &transfer_body("x", "hot-wallet", "treasury", "1"),
        )
        .await;
    assert_eq!((r.status, r.error()), (403, "forbidden"));
    assert_eq!(r.body["book"], "payments");
    let r = app
        .post(
            "/v1/books/payments/accounts",
            PAY_RO,
            &json!({"name": "x", "kind": "asset"}),
        )
        .await;
    assert_eq!(r.status, 403);

    let unknown = app
        .get(
            "/v1/transactions/01937e3c-0000-7000-8000-000000000000",
            PAY_RO,
        )
        .await;
    let hidden = app
        .get(&format!("/v1/transactions/{other_tx}"), PAY_RO)
        .await;
    assert_eq!(unknown.status, 404);
    assert_eq!(hidden.status, 404);
    assert_eq!(unknown.body, hidden.body);
    let visible = app
        .get(&format!("/v1/transactions/{other_tx}"), OTHER_RW)
        .await;
    assert_eq!(visible.status, 200);
    let garbage = app.get("/v1/transactions/not-a-uuid", PAY_RO).await;
    assert_eq!(garbage.body, unknown.body);

    let r = app.get("/v1/books", PAY_RO).await;
    assert_eq!(
        r.body,
        json!({"books": [{"book": "payments", "last_seq": 4}]})
    );
    let r = app.get("/v1/books", ROOT).await;
    assert_eq!(r.body["books"].as_array().map(Vec::len), Some(2));
}

#[tokio::test]
async fn balances_history_as_of_and_trial_balance() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    let before = app
        .get("/v1/books/payments/accounts/hot-wallet/balances", ROOT)
        .await;
    assert_eq!(before.body["balances"], json!({}));
    let mut cuts = Vec::new();
    for (i, amount) in ["1", "2.5", "0.25"].iter().enumerate() {
        let r = app
            .transfer(
                "payments",
                &format!("d{i}"),
                "hot-wallet",
                "customers:alice",
                amount,
            )
            .await;
        assert_eq!(r.status, 201);
        cuts.push(r.body["committed_at"].as_str().expect("ts").to_owned());
    }
    let r = app
        .transfer("payments", "w1", "customers:alice", "hot-wallet", "0.75")
        .await;
    assert_eq!(r.status, 201);
    let r = app
        .get("/v1/books/payments/accounts/customers:alice/balances", ROOT)
        .await;
    assert_eq!(r.body["balances"], json!({"BTC": "3"}));
    assert_eq!(r.body["account"], "customers:alice");
    let r = app
        .get(
            &format!(
                "/v1/books/payments/accounts/customers:alice/balances?as_of={}",
                cuts[1]
            ),
            ROOT,
        )
        .await;
    assert_eq!(r.body["balances"], json!({"BTC": "3.5"}), "{}", r.body);
    let r = app
        .get(
            "/v1/books/payments/accounts/customers:alice/balances?as_of=2000-01-01T00:00:00Z",
            ROOT,
        )
        .await;
    assert_eq!(r.body["balances"], json!({}));
    let r = app
        .get(
            "/v1/books/payments/accounts/customers:alice/balances?as_of=2999-01-01T00:00:00Z",
            ROOT,
        )
        .await;
    assert_eq!(r.body["balances"], json!({"BTC": "3"}));
    let r = app
        .get(
            "/v1/books/payments/accounts/customers:alice/balances?as_of=yesterday",
            ROOT,
        )
        .await;
    assert_eq!((r.status, r.error()), (400, "invalid_request"));

    let r = app
        .get(
            "/v1/books/payments/accounts/customers:alice/postings?limit=2",
            ROOT,
        )
        .await;
    let postings = r.body["postings"].as_array().expect("postings");
    assert_eq!(postings.len(), 2);
    assert_eq!(postings[0]["credit"], "1");
    assert_eq!(postings[0]["balance_after"], "1");
    assert_eq!(postings[1]["balance_after"], "3.5");
    let next = r.body["next_after_seq"].as_u64().expect("next");
    let r = app
        .get(
            &format!("/v1/books/payments/accounts/customers:alice/postings?after_seq={next}"),
            ROOT,
        )
        .await;
    let postings = r.body["postings"].as_array().expect("postings");
    assert_eq!(postings.len(), 2);
    assert_eq!(postings[1]["debit"], "0.75");
    assert_eq!(postings[1]["balance_after"], "3");
    assert_eq!(r.body["next_after_seq"], Value::Null);

    let r = app.get("/v1/books/payments/trial-balance", ROOT).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["balanced"], true);
    assert_eq!(
        r.body["totals"]["BTC"],
        json!({"debits": "4.5", "credits": "4.5"})
    );
    let rows = r.body["rows"].as_array().expect("rows");
    let alice = rows
        .iter()
        .find(|row| row["account"] == "customers:alice")
        .expect("alice row");
    assert_eq!(
        alice,
        &json!({"account": "customers:alice", "kind": "liability", "asset": "BTC", "debits": "0.75", "credits": "3.75", "balance": "3"})
    );
    let r = app
        .get(
            &format!("/v1/books/payments/trial-balance?as_of={}", cuts[0]),
            ROOT,
        )
        .await;
    assert_eq!(
        r.body["totals"]["BTC"],
        json!({"debits": "1", "credits": "1"})
    );
    assert_eq!(r.body["as_of"], cuts[0].as_str());
}

#[tokio::test]
async fn pages_enforce_their_limits() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    for i in 0..5 {
        app.transfer("payments", &format!("p{i}"), "hot-wallet", "treasury", "1")
            .await;
    }
    let r = app
        .get("/v1/books/payments/transactions?limit=2", ROOT)
        .await;
    assert_eq!(r.body["transactions"].as_array().map(Vec::len), Some(2));
    assert_eq!(r.body["next_after_seq"], 6);
    let r = app
        .get("/v1/books/payments/transactions?after_seq=8&limit=2", ROOT)
        .await;
    assert_eq!(r.body["transactions"].as_array().map(Vec::len), Some(1));
    assert_eq!(r.body["next_after_seq"], Value::Null);
    let r = app.get("/v1/books/payments/events?limit=1000", ROOT).await;
    let seqs: Vec<u64> = r.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["seq"].as_u64().expect("seq"))
        .collect();
    assert_eq!(seqs, (1..=9).collect::<Vec<_>>());
    for bad in ["limit=0", "limit=1001", "limit=x", "after_seq=-1"] {
        let r = app
            .get(&format!("/v1/books/payments/events?{bad}"), ROOT)
            .await;
        assert_eq!((r.status, r.error()), (400, "invalid_request"), "{bad}");
    }
}

/// An amount sent as a JSON number, a boolean or an object is refused like
/// every other bad amount: 400 with its field and what to send instead.
#[tokio::test]
async fn amounts_that_are_not_strings_say_what_to_send() {
    let app = spawn_app().await;
    let path = "/v1/books/payments/transactions";
    for (bad, field) in [
        (json!(0.01), "/postings/0/debit"),
        (json!(true), "/postings/0/debit"),
        (json!({"value": "1"}), "/postings/0/debit"),
    ] {
        let mut body = transfer_body("k", "hot-wallet", "treasury", "1");
        body["postings"][0]["debit"] = bad.clone();
        let r = app.post(path, ROOT, &body).await;
        assert_eq!((r.status, r.error()), (400, "invalid_request"), "{bad}");
        assert_eq!(r.body["field"], field, "{bad}: {}", r.body);
        let message = r.body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("a decimal string such as \"0.01\""),
            "{bad}: {message}"
        );
    }
    let r = app
        .post(
            "/v1/books/payments/accounts",
            ROOT,
            &json!({"name": "floor", "kind": "asset", "min_balance": 0}),
        )
        .await;
    assert_eq!(
        (r.status, r.error()),
        (400, "invalid_request"),
        "{}",
        r.body
    );
    assert_eq!(r.body["field"], "/min_balance");
}
