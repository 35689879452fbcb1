//! Field scopes (`hide = [...]`) on REST bodies and streams, and the
//! `?snapshot=balances` stream start, on Postgres and on the embedded store.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use talea_auth::{Secret, TokenSet};
use talea_testkit::sse::{self, SseReader};
use talea_testkit::tokens::{Token, tokens_toml};

use crate::harness::*;

const BROWSER: &str = "browser-token";
const BROWSER_RW: &str = "browser-rw-token";

fn tokens() -> String {
    tokens_toml(&[
        Token::ro("reader", "pay-ro-token", &["payments"]),
        Token::ro("browser", BROWSER, &["payments"]).hide(&["metadata", "memo"]),
        Token::rw("browser-rw", BROWSER_RW, &["payments"]).hide(&["memo"]),
    ])
}

const SECRET_MEMO: &str = "SECRET-MEMO";
const SECRET_META: &str = "SECRET-META";

fn options() -> Options {
    let tokens = TokenSet::parse_file(&tokens())
        .expect("tokens parse")
        .with_api_token(&Secret::new(ROOT));
    Options {
        auth: Some(Arc::new(tokens)),
        ..Options::default()
    }
}

async fn on_postgres() -> TestApp {
    spawn_app_with(options()).await
}

async fn on_sqlite(dir: &tempfile::TempDir) -> TestApp {
    let path = dir.path().join("talea.db");
    let store = talea_store_sqlite::SqliteStore::open(&path)
        .await
        .expect("opens");
    spawn_store(Arc::new(store), &path.display().to_string(), options()).await
}

/// An account and a transaction that carry a memo and metadata.
async fn seed(app: &TestApp) -> (String, u64) {
    app.setup_book("payments").await;
    let r = app
        .post(
            "/v1/books/payments/accounts",
            ROOT,
            &json!({"name": "vault", "kind": "asset", "metadata": {"secret": SECRET_META}}),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let mut body = transfer_body("secret-tx", "vault", "treasury", "2");
    body["memo"] = json!(SECRET_MEMO);
    body["metadata"] = json!({"secret": SECRET_META});
    let r = app
        .post("/v1/books/payments/transactions", ROOT, &body)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let seq = r.body["seq"].as_u64().expect("seq");
    (r.body["tx_id"].as_str().expect("tx_id").to_owned(), seq)
}

fn carries_secrets(body: &Value) -> (bool, bool) {
    let text = body.to_string();
    (text.contains(SECRET_MEMO), text.contains(SECRET_META))
}

async fn rest_bodies_follow_the_field_scope(app: &TestApp) {
    let (tx_id, _) = seed(app).await;
    let reads = [
        format!("/v1/transactions/{tx_id}"),
        "/v1/books/payments/transactions".to_owned(),
        "/v1/books/payments/events".to_owned(),
        "/v1/books/payments/accounts".to_owned(),
        "/v1/books/payments/accounts/vault".to_owned(),
    ];
    for path in &reads {
        let plain = app.get(path, PAY_RO).await;
        assert_eq!(plain.status, 200, "{path}: {}", plain.body);
        let hidden = app.get(path, BROWSER).await;
        assert_eq!(hidden.status, 200, "{path}: {}", hidden.body);
        let (memo, meta) = carries_secrets(&plain.body);
        assert!(meta, "{path}: a normal token sees metadata: {}", plain.body);
        if !path.contains("accounts") {
            assert!(memo, "{path}: a normal token sees the memo: {}", plain.body);
        }
        assert_eq!(
            carries_secrets(&hidden.body),
            (false, false),
            "{path}: {}",
            hidden.body
        );
        let text = hidden.body.to_string();
        assert!(
            !text.contains("\"memo\"") && !text.contains("\"metadata\""),
            "{path}: the fields are removed, not emptied: {text}"
        );
    }
    // Everything else of the resource is there.
    let hidden = app.get(&format!("/v1/transactions/{tx_id}"), BROWSER).await;
    assert_eq!(hidden.body["tx_id"], json!(tx_id));
    assert_eq!(hidden.body["postings"].as_array().map(Vec::len), Some(2));
    let account = app.get("/v1/books/payments/accounts/vault", BROWSER).await;
    assert_eq!(amount(&account.body["balances"]["BTC"]), 2.0);

    // A write answered to a token hiding only `memo`.
    let mut body = transfer_body("rw-tx", "vault", "treasury", "1");
    body["memo"] = json!(SECRET_MEMO);
    body["metadata"] = json!({"secret": SECRET_META});
    for status in [201, 200] {
        let r = app
            .post("/v1/books/payments/transactions", BROWSER_RW, &body)
            .await;
        assert_eq!(r.status, status, "{}", r.body);
        assert_eq!(carries_secrets(&r.body), (false, true), "{}", r.body);
        assert!(r.body.get("memo").is_none(), "{}", r.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_bodies_hide_fields_on_postgres() {
    rest_bodies_follow_the_field_scope(&on_postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rest_bodies_hide_fields_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    rest_bodies_follow_the_field_scope(&on_sqlite(&dir).await).await;
}

/// One SSE frame: its id, event name and data.
#[derive(Debug)]
struct Frame {
    id: Option<u64>,
    event: String,
    data: Value,
}

/// Reads frames from `response` until one with id `last` (20 s at most).
async fn frames_until(response: reqwest::Response, last: u64) -> Vec<Frame> {
    let frames = SseReader::new(response)
        .until_id(Duration::from_secs(20), last)
        .await;
    frames
        .iter()
        .filter(|f| f.id.is_some() || f.event.is_some())
        .map(|f| Frame {
            id: sse::seq(f),
            event: f.event.clone().unwrap_or_default(),
            data: sse::json(f),
        })
        .collect()
}

async fn open_stream(app: &TestApp, token: &str, query: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/v1/books/payments/stream{query}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .expect("answer")
}

async fn streams_follow_the_field_scope(app: &TestApp) {
    let (_, seq) = seed(app).await;
    let hidden = open_stream(app, BROWSER, "?after_seq=0").await;
    let plain = open_stream(app, PAY_RO, "?after_seq=0").await;
    let live_hidden = open_stream(app, BROWSER, "").await;
    assert_eq!(hidden.status(), 200);
    // A live event too, after the live subscriber has joined.
    let mut body = transfer_body("live-tx", "vault", "treasury", "1");
    body["memo"] = json!(SECRET_MEMO);
    body["metadata"] = json!({"secret": SECRET_META});
    let r = app
        .post("/v1/books/payments/transactions", ROOT, &body)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let last = r.body["seq"].as_u64().expect("seq");
    assert_eq!(last, seq + 1);
    for frames in [
        frames_until(hidden, last).await,
        frames_until(live_hidden, last).await,
    ] {
        assert!(!frames.is_empty());
        for f in &frames {
            assert_eq!(carries_secrets(&f.data), (false, false), "{f:?}");
            assert!(f.data.get("memo").is_none() && f.data.get("metadata").is_none());
        }
    }
    let frames = frames_until(plain, last).await;
    let all = Value::Array(frames.into_iter().map(|f| f.data).collect());
    assert_eq!(carries_secrets(&all), (true, true));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_hide_fields_on_postgres() {
    streams_follow_the_field_scope(&on_postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_hide_fields_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    streams_follow_the_field_scope(&on_sqlite(&dir).await).await;
}

fn amount(v: &Value) -> f64 {
    v.as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("an amount: {v}"))
}

/// Adds a transaction event's postings to normal-side `balances`
/// (`debit_normal`: the accounts followed, and whether each is debit-normal).
fn apply(balances: &mut BTreeMap<String, f64>, data: &Value, debit_normal: &BTreeMap<&str, bool>) {
    for p in data["postings"].as_array().expect("postings") {
        let account = p["account"].as_str().expect("account");
        let Some(&debit_side) = debit_normal.get(account) else {
            continue;
        };
        let (n, is_debit) = match (p.get("debit"), p.get("credit")) {
            (Some(d), None) => (amount(d), true),
            (None, Some(c)) => (amount(c), false),
            other => panic!("one side: {other:?}"),
        };
        let signed = if is_debit == debit_side { n } else { -n };
        *balances.entry(account.to_owned()).or_default() += signed;
    }
}

/// Writers post while snapshots are taken: for each, the snapshot plus the
/// postings of the events after it equals the final balances (no gap, no
/// overlap), and the first event after `event: snapshot` is its seq + 1.
async fn snapshots_are_consistent_cuts(app: &TestApp) {
    app.setup_book("payments").await;
    let r = app
        .transfer("payments", "fund", "hot-wallet", "treasury", "1000")
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (client, base) = (app.client.clone(), app.base.clone());
            tokio::spawn(async move {
                let mut last = 0;
                for i in 0..25 {
                    let r = client
                        .post(format!("{base}/v1/books/payments/transactions"))
                        .bearer_auth(ROOT)
                        .json(&transfer_body(
                            &format!("w{w}-{i}"),
                            "treasury",
                            "hot-wallet",
                            "1",
                        ))
                        .send()
                        .await
                        .expect("answer");
                    assert_eq!(r.status(), 201);
                    let body: Value = r.json().await.expect("json");
                    last = last.max(body["seq"].as_u64().expect("seq"));
                }
                last
            })
        })
        .collect();
    let mut streams = Vec::new();
    for i in 0..6 {
        let query = if i % 2 == 0 {
            "?snapshot=balances"
        } else {
            "?snapshot=balances&accounts=hot-wallet,treasury,nobody"
        };
        let s = open_stream(app, PAY_RO, query).await;
        assert_eq!(s.status(), 200);
        streams.push(s);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut last = 0;
    for w in writers {
        last = last.max(w.await.expect("writer"));
    }
    let debit_normal: BTreeMap<&str, bool> = [("hot-wallet", true), ("treasury", false)].into();
    let mut finals = BTreeMap::new();
    for account in ["hot-wallet", "treasury"] {
        let r = app
            .get(&format!("/v1/books/payments/accounts/{account}"), PAY_RO)
            .await;
        finals.insert(account.to_owned(), amount(&r.body["balances"]["BTC"]));
    }
    let mut cuts = Vec::new();
    for s in streams {
        let frames = frames_until(s, last).await;
        let snapshot = &frames[0];
        assert_eq!(snapshot.event, "snapshot", "{frames:?}");
        let n = snapshot.id.expect("id");
        assert_eq!(snapshot.data["seq"], json!(n));
        assert_eq!(snapshot.data["book"], json!("payments"));
        let mut balances = BTreeMap::new();
        for row in snapshot.data["balances"].as_array().expect("rows") {
            let account = row["account"].as_str().expect("account");
            assert!(row["as_of"].is_string(), "{row}");
            if debit_normal.contains_key(account) {
                let btc = row["balances"].get("BTC").map_or(0.0, amount);
                balances.insert(account.to_owned(), btc);
            }
        }
        assert_eq!(balances.len(), 2, "{:?}", snapshot.data);
        let ids: Vec<u64> = frames[1..].iter().filter_map(|f| f.id).collect();
        let expected: Vec<u64> = (n + 1..=last).collect();
        assert_eq!(ids, expected, "every event after the snapshot, once");
        for f in &frames[1..] {
            if f.event == "transaction" {
                apply(&mut balances, &f.data, &debit_normal);
            }
        }
        assert_eq!(balances, finals, "snapshot at {n} plus what followed");
        cuts.push(n);
    }
    assert!(
        cuts.iter().any(|n| *n < last),
        "a snapshot raced the writers: {cuts:?}"
    );

    // A resume never re-sends a snapshot; unknown kinds are refused.
    let resumed = open_stream(
        app,
        PAY_RO,
        &format!("?snapshot=balances&after_seq={}", last - 1),
    )
    .await;
    let frames = frames_until(resumed, last).await;
    assert_eq!(frames[0].event, "transaction");
    assert_eq!(frames[0].id, Some(last));
    let resumed = app
        .client
        .get(format!(
            "{}/v1/books/payments/stream?snapshot=balances",
            app.base
        ))
        .bearer_auth(PAY_RO)
        .header("Last-Event-ID", (last - 1).to_string())
        .send()
        .await
        .expect("answer");
    let frames = frames_until(resumed, last).await;
    assert_eq!(
        (frames[0].event.as_str(), frames[0].id),
        ("transaction", Some(last))
    );
    for bad in ["?snapshot=", "?snapshot=everything", "?snapshot=Balances"] {
        let r = open_stream(app, PAY_RO, bad).await;
        assert_eq!(r.status(), 400, "{bad}");
        let body: Value = r.json().await.expect("json");
        assert_eq!(body["error"], json!("invalid_request"), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_are_consistent_on_postgres() {
    snapshots_are_consistent_cuts(&on_postgres().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_are_consistent_on_the_embedded_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    snapshots_are_consistent_cuts(&on_sqlite(&dir).await).await;
}
