//! One scenario suite, two implementations: every scenario runs against the
//! in-process `LedgerService` and against `TaleaClient` talking to a real
//! talead, and the refusals seen over HTTP must equal (`==`, message text
//! included) the ones the in-process ledger gives for the same calls.
//!
//! Scenarios are written once, against `&dyn LedgerApi`; the `scenarios!`
//! macro at the bottom makes two tests of each: `in_process`, and
//! `over_http`, which also runs an in-process reference and compares.

use std::fmt::Debug;
use std::sync::Mutex;

use serde_json::{Map, Value, json};
use talea_api::{
    ApiError, AssetDto, AssetRequest, BalanceHistoryQuery, BookBalancesQuery, LedgerApi, NamePage,
    OpenAccountRequest, PostTransactionRequest, PostingDto, SeqPage, SettleRequest, TransactionDto,
    TransactionSearch, VoidRequest,
};
use talea_testkit::TestDb;

use crate::support::{self, Server};

/// One implementation under test, recording every refusal it gives.
pub struct Probe {
    api: Box<dyn LedgerApi>,
    errors: Mutex<Vec<ApiError>>,
    db: TestDb,
    server: Option<Server>,
}

impl Probe {
    pub async fn in_process() -> Self {
        let db = support::fresh_db().await;
        let api = Box::new(support::ledger(&db).await);
        Self {
            api,
            errors: Mutex::new(Vec::new()),
            db,
            server: None,
        }
    }

    pub async fn over_http() -> Self {
        let db = support::fresh_db().await;
        let server = Server::start(&db.url, "127.0.0.1:0".parse().expect("addr")).await;
        let api = Box::new(support::client(&server.base));
        Self {
            api,
            errors: Mutex::new(Vec::new()),
            db,
            server: Some(server),
        }
    }

    fn api(&self) -> &dyn LedgerApi {
        self.api.as_ref()
    }

    /// The refusal `result` must be; recorded for the comparison. Ids differ
    /// between two databases, so they are blanked in the record (scenarios
    /// check them against the original themselves).
    fn refused<T: Debug>(&self, what: &str, result: Result<T, ApiError>) -> ApiError {
        let error = match result {
            Ok(value) => panic!("{what}: expected a refusal, got {value:?}"),
            Err(e) => e,
        };
        let recorded = match &error {
            ApiError::IdempotencyKeyReused { .. } => ApiError::IdempotencyKeyReused {
                tx_id: "<tx_id>".to_owned(),
            },
            ApiError::HoldNotPending { status, tx_id } => ApiError::HoldNotPending {
                status: status.clone(),
                tx_id: tx_id.as_ref().map(|_| "<tx_id>".to_owned()),
            },
            ApiError::NotAHold { .. } => ApiError::NotAHold {
                tx_id: "<tx_id>".to_owned(),
            },
            other => other.clone(),
        };
        self.errors.lock().expect("not poisoned").push(recorded);
        error
    }

    pub fn errors(&self) -> Vec<ApiError> {
        self.errors.lock().expect("not poisoned").clone()
    }

    pub async fn finish(self) {
        if let Some(server) = self.server {
            server.stop().await;
        }
        drop(self.api);
        self.db.drop_database().await.expect("drops the database");
    }
}

// ---------------------------------------------------------------------------
// Builders and checks.

fn asset(code: &str, scale: i64, name: Option<&str>) -> AssetRequest {
    AssetRequest {
        code: code.to_owned(),
        scale,
        name: name.map(str::to_owned),
    }
}

fn account(name: &str, kind: &str, min_balance: Option<&str>) -> OpenAccountRequest {
    OpenAccountRequest {
        name: name.to_owned(),
        kind: kind.to_owned(),
        min_balance: min_balance.map(str::to_owned),
        metadata: None,
    }
}

fn debit(account: &str, asset: &str, amount: &str) -> PostingDto {
    PostingDto {
        account: account.to_owned(),
        asset: asset.to_owned(),
        debit: Some(amount.to_owned()),
        credit: None,
    }
}

fn credit(account: &str, asset: &str, amount: &str) -> PostingDto {
    PostingDto {
        account: account.to_owned(),
        asset: asset.to_owned(),
        debit: None,
        credit: Some(amount.to_owned()),
    }
}

fn tx(key: &str, postings: Vec<PostingDto>) -> PostTransactionRequest {
    PostTransactionRequest {
        idempotency_key: key.to_owned(),
        postings,
        occurred_at: None,
        memo: None,
        metadata: None,
        pending: false,
        expires_at: None,
    }
}

/// `amount` of BTC debited to `from`, credited to `to`.
fn transfer(key: &str, from: &str, to: &str, amount: &str) -> PostTransactionRequest {
    tx(
        key,
        vec![debit(from, "BTC", amount), credit(to, "BTC", amount)],
    )
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn page(after_seq: Option<u64>, limit: Option<u32>) -> SeqPage {
    SeqPage { after_seq, limit }
}

/// Asserts a 400 `invalid_request` naming `field`.
#[track_caller]
fn assert_invalid(e: &ApiError, field: &str) {
    match e {
        ApiError::InvalidRequest { field: Some(f), .. } if f == field => {}
        other => panic!("expected invalid_request at {field:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_code(e: &ApiError, code: &str) {
    assert_eq!(e.code(), code, "{e:?}");
}

/// Registers BTC (8) and USDC (6) and opens the usual accounts in `book`.
async fn setup(api: &dyn LedgerApi, book: &str) {
    for a in [
        asset("BTC", 8, Some("Bitcoin")),
        asset("USDC", 6, Some("USD Coin")),
    ] {
        api.register_asset(a).await.expect("registers");
    }
    for a in [
        account("treasury", "equity", None),
        account("hot-wallet", "asset", None),
        account("customers:alice", "liability", Some("0")),
        account("customers:bob", "liability", Some("0")),
    ] {
        api.open_account(book, a).await.expect("opens");
    }
}

async fn post(api: &dyn LedgerApi, book: &str, request: PostTransactionRequest) -> TransactionDto {
    let key = request.idempotency_key.clone();
    api.post_transaction(book, request)
        .await
        .unwrap_or_else(|e| panic!("posting {key}: {e:?}"))
}

#[track_caller]
fn assert_timestamp(ts: &str) {
    // 2026-11-22T10:00:00.123456Z
    assert_eq!(ts.len(), 27, "{ts}");
    assert!(ts.ends_with('Z') && ts.as_bytes()[19] == b'.', "{ts}");
}

// ---------------------------------------------------------------------------
// Scenarios.

async fn assets(p: &Probe) {
    let api = p.api();
    let btc = api
        .register_asset(asset("BTC", 8, Some("Bitcoin")))
        .await
        .expect("registers");
    let expected = AssetDto {
        code: "BTC".to_owned(),
        scale: 8,
        name: Some("Bitcoin".to_owned()),
    };
    assert!(btc.created);
    assert_eq!(btc.value, expected);
    let again = api
        .register_asset(asset("BTC", 8, Some("Bitcoin")))
        .await
        .expect("identical re-registration");
    assert!(!again.created);
    assert_eq!(again.value, expected);

    let e = p.refused(
        "other scale",
        api.register_asset(asset("BTC", 6, Some("Bitcoin"))).await,
    );
    assert_code(&e, "conflict");
    let e = p.refused(
        "other name",
        api.register_asset(asset("BTC", 8, Some("Other"))).await,
    );
    assert_code(&e, "conflict");

    let usdc = api
        .register_asset(asset("USDC", 6, None))
        .await
        .expect("registers");
    assert!(usdc.created);
    assert_eq!(usdc.value.name, None);
    let list = api.assets().await.expect("lists");
    let codes: Vec<&str> = list.assets.iter().map(|a| a.code.as_str()).collect();
    assert_eq!(codes, ["BTC", "USDC"]);

    assert_invalid(
        &p.refused("bad code", api.register_asset(asset("-x", 2, None)).await),
        "/code",
    );
    assert_invalid(
        &p.refused("empty code", api.register_asset(asset("", 2, None)).await),
        "/code",
    );
    assert_invalid(
        &p.refused("scale 31", api.register_asset(asset("X", 31, None)).await),
        "/scale",
    );
    assert_invalid(
        &p.refused("scale -1", api.register_asset(asset("X", -1, None)).await),
        "/scale",
    );
    let long = "n".repeat(257);
    assert_invalid(
        &p.refused(
            "long name",
            api.register_asset(asset("X", 2, Some(&long))).await,
        ),
        "/name",
    );
    // Refusals registered nothing.
    assert_eq!(api.assets().await.expect("lists").assets.len(), 2);
}

async fn accounts(p: &Probe) {
    let api = p.api();
    setup(api, "ops").await;
    let opened = api
        .open_account("demo", account("treasury", "equity", None))
        .await
        .expect("opens");
    assert!(opened.created);
    let a = &opened.value;
    assert_eq!(
        (a.book.as_str(), a.name.as_str(), a.kind.as_str(), a.seq),
        ("demo", "treasury", "equity", 1)
    );
    assert_eq!(a.min_balance, None);
    assert_eq!(a.metadata, Map::new());
    assert_eq!(a.balances, None);
    assert_timestamp(&a.opened_at);
    let again = api
        .open_account("demo", account("treasury", "equity", None))
        .await
        .expect("identical re-open");
    assert!(!again.created);
    assert_eq!(again.value, opened.value);

    // min_balance compares by value and comes back canonical.
    let alice = api
        .open_account("demo", account("customers:alice", "liability", Some("0.0")))
        .await
        .expect("opens");
    assert_eq!(alice.value.min_balance.as_deref(), Some("0"));
    let same = api
        .open_account("demo", account("customers:alice", "liability", Some("0")))
        .await
        .expect("same definition");
    assert!(!same.created);
    assert_code(
        &p.refused(
            "other kind",
            api.open_account("demo", account("customers:alice", "asset", Some("0")))
                .await,
        ),
        "conflict",
    );
    assert_code(
        &p.refused(
            "other floor",
            api.open_account("demo", account("customers:alice", "liability", Some("5")))
                .await,
        ),
        "conflict",
    );
    assert_code(
        &p.refused(
            "unbounded now",
            api.open_account("demo", account("customers:alice", "liability", None))
                .await,
        ),
        "conflict",
    );

    // Metadata: equal whatever the key order, returned as first given.
    let mut fees = account("ops:fees.v2", "expense", Some("-10"));
    fees.metadata = Some(object(json!({"team": "ops", "cost_center": 42})));
    let opened = api.open_account("demo", fees.clone()).await.expect("opens");
    assert_eq!(opened.value.min_balance.as_deref(), Some("-10"));
    fees.metadata = Some(object(json!({"cost_center": 42, "team": "ops"})));
    let again = api.open_account("demo", fees).await.expect("same metadata");
    assert!(!again.created);
    let keys: Vec<&String> = again.value.metadata.keys().collect();
    assert_eq!(keys, ["team", "cost_center"]);

    assert_invalid(
        &p.refused(
            "bad name",
            api.open_account("demo", account("bad name", "asset", None))
                .await,
        ),
        "/name",
    );
    assert_invalid(
        &p.refused(
            "bad kind",
            api.open_account("demo", account("cash", "cash", None))
                .await,
        ),
        "/kind",
    );
    assert_invalid(
        &p.refused(
            "bad floor",
            api.open_account("demo", account("cash", "asset", Some("1,5")))
                .await,
        ),
        "/min_balance",
    );
    assert_invalid(
        &p.refused(
            "bad book",
            api.open_account("Demo", account("cash", "asset", None))
                .await,
        ),
        "book",
    );

    let one = api.account("demo", "customers:alice").await.expect("reads");
    assert_eq!(one.balances, Some(Default::default()));
    assert_eq!(one.kind, "liability");
    assert_code(
        &p.refused("unknown account", api.account("demo", "nobody").await),
        "not_found",
    );
    assert_code(
        &p.refused("unknown book", api.account("nobook", "treasury").await),
        "not_found",
    );
    assert_invalid(
        &p.refused("bad account", api.account("demo", "-x").await),
        "account",
    );
    assert_invalid(
        &p.refused("bad book", api.account("DEMO", "treasury").await),
        "book",
    );
}

async fn account_pages(p: &Probe) {
    let api = p.api();
    let names = ["a:1", "a:2", "b.x", "c_3", "d-4", "e:f:g"];
    for name in names.iter().rev() {
        api.open_account("demo", account(name, "asset", None))
            .await
            .expect("opens");
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let list = api
            .accounts(
                "demo",
                NamePage {
                    after: after.clone(),
                    limit: Some(4),
                },
            )
            .await
            .expect("lists");
        assert!(list.accounts.len() <= 4);
        assert!(list.accounts.iter().all(|a| a.balances.is_none()));
        seen.extend(list.accounts.iter().map(|a| a.name.clone()));
        match list.next {
            Some(next) => {
                assert_eq!(Some(&next), seen.last());
                after = Some(next);
            }
            None => break,
        }
    }
    assert_eq!(seen, names);
    let all = api
        .accounts("demo", NamePage::default())
        .await
        .expect("lists");
    assert_eq!(all.accounts.len(), names.len());
    assert_eq!(all.next, None);
    let exact = api
        .accounts(
            "demo",
            NamePage {
                after: None,
                limit: Some(6),
            },
        )
        .await
        .expect("lists");
    assert_eq!(
        exact.next, None,
        "next is null exactly when nothing follows"
    );
    let past = api
        .accounts(
            "demo",
            NamePage {
                after: Some("zzz".to_owned()),
                limit: None,
            },
        )
        .await
        .expect("lists");
    assert!(past.accounts.is_empty() && past.next.is_none());

    for limit in [0, 1001] {
        let e = p.refused(
            "limit",
            api.accounts(
                "demo",
                NamePage {
                    after: None,
                    limit: Some(limit),
                },
            )
            .await,
        );
        assert_invalid(&e, "limit");
    }
    let e = p.refused(
        "bad after",
        api.accounts(
            "demo",
            NamePage {
                after: Some("a b".to_owned()),
                limit: None,
            },
        )
        .await,
    );
    assert_invalid(&e, "after");
    let e = p.refused(
        "empty after",
        api.accounts(
            "demo",
            NamePage {
                after: Some(String::new()),
                limit: None,
            },
        )
        .await,
    );
    assert_invalid(&e, "after");
    assert_code(
        &p.refused(
            "unknown book",
            api.accounts("nobook", NamePage::default()).await,
        ),
        "not_found",
    );
}

async fn posting(p: &Probe) {
    let api = p.api();
    setup(api, "demo").await;
    let mut request = tx(
        "deposit-1",
        vec![
            debit("hot-wallet", "BTC", "0.0150"),
            credit("customers:alice", "BTC", "0.015"),
        ],
    );
    request.occurred_at = Some("2026-11-22T11:00:00+01:00".to_owned());
    request.memo = Some("deposit from bc1q…".to_owned());
    request.metadata = Some(object(json!({"z": 1, "chain": {"tx": "ab12", "n": 2.5}})));
    let committed = post(api, "demo", request).await;
    assert_eq!(committed.deduplicated, Some(false));
    assert_eq!(committed.book, "demo");
    assert_eq!(committed.seq, 5, "four accounts opened first");
    assert_eq!(committed.idempotency_key, "deposit-1");
    assert_timestamp(&committed.committed_at);
    assert_eq!(
        committed.postings,
        [
            debit("hot-wallet", "BTC", "0.015"),
            credit("customers:alice", "BTC", "0.015")
        ]
    );
    assert_eq!(
        committed.occurred_at.as_deref(),
        Some("2026-11-22T10:00:00.000000Z")
    );
    assert_eq!(committed.memo.as_deref(), Some("deposit from bc1q…"));
    let metadata = committed.metadata.clone().expect("metadata");
    assert_eq!(metadata.keys().collect::<Vec<_>>(), ["z", "chain"]);
    assert_eq!(metadata["chain"]["n"], json!(2.5));

    // Reads return the same resource without `deduplicated`.
    let read = api.transaction(&committed.tx_id).await.expect("reads");
    assert_eq!(
        read,
        TransactionDto {
            deduplicated: None,
            ..committed.clone()
        }
    );
    let list = api
        .transactions("demo", SeqPage::default())
        .await
        .expect("lists");
    assert_eq!(list.transactions, std::slice::from_ref(&read));
    assert_eq!(list.next_after_seq, None);

    // Several assets in one transaction, balanced per asset.
    let swap = post(
        api,
        "demo",
        tx(
            "swap-1",
            vec![
                debit("customers:alice", "BTC", "0.005"),
                credit("treasury", "BTC", "0.005"),
                debit("treasury", "USDC", "450.5"),
                credit("customers:alice", "USDC", "450.50"),
            ],
        ),
    )
    .await;
    assert_eq!(swap.seq, 6);
    assert_eq!(swap.occurred_at, None);
    assert_eq!(swap.memo, None);
    assert_eq!(swap.metadata, None);
    let alice = api.account("demo", "customers:alice").await.expect("reads");
    assert_eq!(
        alice.balances,
        Some(
            [
                ("BTC".to_owned(), "0.01".to_owned()),
                ("USDC".to_owned(), "450.5".to_owned())
            ]
            .into_iter()
            .collect()
        )
    );
}

async fn replay(p: &Probe) {
    let api = p.api();
    setup(api, "demo").await;
    let mut first = transfer("dep-1", "hot-wallet", "customers:alice", "1.50");
    first.occurred_at = Some("2026-11-22T10:00:00Z".to_owned());
    first.metadata = Some(object(json!({"a": 1, "b": [1, 2]})));
    let original = post(api, "demo", first).await;
    assert_eq!(original.deduplicated, Some(false));

    // The same request in other spellings is a replay, answered with the original.
    let mut again = transfer("dep-1", "hot-wallet", "customers:alice", "1.5");
    again.occurred_at = Some("2026-11-22T11:00:00.000+01:00".to_owned());
    again.metadata = Some(object(json!({"b": [1, 2], "a": 1})));
    let replayed = post(api, "demo", again).await;
    assert_eq!(replayed.deduplicated, Some(true));
    assert_eq!(
        replayed,
        TransactionDto {
            deduplicated: Some(true),
            ..original.clone()
        }
    );

    // Racing duplicates: exactly one commits, all see the same transaction.
    let racers = (0..8).map(|_| {
        api.post_transaction(
            "demo",
            transfer("dep-2", "hot-wallet", "customers:bob", "2"),
        )
    });
    let results = futures::future::join_all(racers).await;
    let txs: Vec<TransactionDto> = results
        .into_iter()
        .map(|r| r.expect("every racer is answered"))
        .collect();
    let fresh = txs.iter().filter(|t| t.deduplicated == Some(false)).count();
    assert_eq!(fresh, 1, "exactly one racer commits");
    assert!(txs.iter().all(|t| t.tx_id == txs[0].tx_id));

    let log = api.events("demo", SeqPage::default()).await.expect("reads");
    let transactions = log
        .events
        .iter()
        .filter(|e| e.kind == "transaction")
        .count();
    assert_eq!(transactions, 2);
    let bob = api
        .balances("demo", "customers:bob", None)
        .await
        .expect("reads");
    assert_eq!(bob.balances.get("BTC").map(String::as_str), Some("2"));
}

async fn key_reuse(p: &Probe) {
    let api = p.api();
    setup(api, "demo").await;
    let original = post(
        api,
        "demo",
        transfer("k-1", "hot-wallet", "customers:alice", "1"),
    )
    .await;
    let e = p.refused(
        "same key, other body",
        api.post_transaction(
            "demo",
            transfer("k-1", "hot-wallet", "customers:alice", "2"),
        )
        .await,
    );
    assert_eq!(
        e,
        ApiError::IdempotencyKeyReused {
            tx_id: original.tx_id.clone()
        }
    );
    // Postings in another order are another request.
    let e = p.refused(
        "same key, postings swapped",
        api.post_transaction(
            "demo",
            tx(
                "k-1",
                vec![
                    credit("customers:alice", "BTC", "1"),
                    debit("hot-wallet", "BTC", "1"),
                ],
            ),
        )
        .await,
    );
    assert_code(&e, "idempotency_key_reused");

    // A refused request leaves its key free.
    let e = p.refused(
        "overdraw",
        api.post_transaction(
            "demo",
            transfer("k-2", "customers:alice", "customers:bob", "5"),
        )
        .await,
    );
    assert_code(&e, "insufficient_balance");
    let later = post(
        api,
        "demo",
        transfer("k-2", "customers:alice", "customers:bob", "0.5"),
    )
    .await;
    assert_eq!(later.deduplicated, Some(false));
}

async fn rejections(p: &Probe) {
    let api = p.api();
    setup(api, "demo").await;
    post(
        api,
        "demo",
        transfer("seed", "hot-wallet", "customers:alice", "1"),
    )
    .await;
    let before = api.events("demo", SeqPage::default()).await.expect("reads");
    let refuse = |what: &'static str, request: PostTransactionRequest| async move {
        p.refused(what, api.post_transaction("demo", request).await)
    };
    let ok = || {
        vec![
            debit("hot-wallet", "BTC", "1"),
            credit("customers:alice", "BTC", "1"),
        ]
    };

    // invalid_request, field by field.
    assert_invalid(&refuse("empty key", tx("", ok())).await, "/idempotency_key");
    assert_invalid(
        &refuse("control in key", tx("a\nb", ok())).await,
        "/idempotency_key",
    );
    assert_invalid(
        &refuse("long key", tx(&"k".repeat(129), ok())).await,
        "/idempotency_key",
    );
    assert_invalid(
        &refuse(
            "one posting",
            tx("r", vec![debit("hot-wallet", "BTC", "1")]),
        )
        .await,
        "/postings",
    );
    let many = (0..257)
        .map(|i| {
            if i % 2 == 0 {
                debit("hot-wallet", "BTC", "1")
            } else {
                credit("customers:alice", "BTC", "1")
            }
        })
        .collect();
    assert_invalid(&refuse("257 postings", tx("r", many)).await, "/postings");
    assert_invalid(
        &refuse(
            "bad account",
            tx(
                "r",
                vec![
                    debit("hot wallet", "BTC", "1"),
                    credit("customers:alice", "BTC", "1"),
                ],
            ),
        )
        .await,
        "/postings/0/account",
    );
    assert_invalid(
        &refuse(
            "bad asset",
            tx(
                "r",
                vec![
                    debit("hot-wallet", "BTC", "1"),
                    credit("customers:alice", "B TC", "1"),
                ],
            ),
        )
        .await,
        "/postings/1/asset",
    );
    let both = PostingDto {
        credit: Some("1".to_owned()),
        ..debit("hot-wallet", "BTC", "1")
    };
    assert_invalid(
        &refuse(
            "debit and credit",
            tx("r", vec![both, credit("customers:alice", "BTC", "1")]),
        )
        .await,
        "/postings/0",
    );
    let neither = PostingDto {
        debit: None,
        ..debit("hot-wallet", "BTC", "1")
    };
    assert_invalid(
        &refuse(
            "no amount",
            tx("r", vec![credit("customers:alice", "BTC", "1"), neither]),
        )
        .await,
        "/postings/1",
    );
    for (what, amount) in [
        ("syntax", "1,5"),
        ("exponent", "1e3"),
        ("plus", "+1"),
        ("zero", "0"),
        ("negative", "-1"),
        ("past scale", "0.000000001"),
        ("zeros past scale", "1.000000000"),
    ] {
        let e = refuse(
            what,
            tx(
                "r",
                vec![
                    debit("hot-wallet", "BTC", amount),
                    credit("customers:alice", "BTC", "1"),
                ],
            ),
        )
        .await;
        assert_invalid(&e, "/postings/0/debit");
    }
    let mut bad_time = tx("r", ok());
    bad_time.occurred_at = Some("yesterday".to_owned());
    assert_invalid(&refuse("occurred_at", bad_time).await, "/occurred_at");
    let mut long_memo = tx("r", ok());
    long_memo.memo = Some("m".repeat(1025));
    assert_invalid(&refuse("long memo", long_memo).await, "/memo");
    let mut nul_memo = tx("r", ok());
    nul_memo.memo = Some("a\0b".to_owned());
    assert_invalid(&refuse("NUL in memo", nul_memo).await, "/memo");
    let mut big_meta = tx("r", ok());
    big_meta.metadata = Some(object(json!({"blob": "x".repeat(17 * 1024)})));
    assert_invalid(&refuse("big metadata", big_meta).await, "/metadata");
    assert_invalid(
        &p.refused(
            "bad book",
            api.post_transaction("Demo", tx("r", ok())).await,
        ),
        "book",
    );

    // amount_out_of_range: valid syntax, too many minor units for i128.
    let huge = "9".repeat(40);
    let e = refuse(
        "huge",
        tx(
            "r",
            vec![
                debit("hot-wallet", "BTC", &huge),
                credit("customers:alice", "BTC", &huge),
            ],
        ),
    )
    .await;
    assert_code(&e, "amount_out_of_range");

    // unbalanced, per asset, debits minus credits.
    let e = refuse(
        "unbalanced",
        tx(
            "r",
            vec![
                debit("hot-wallet", "BTC", "1"),
                credit("customers:alice", "BTC", "0.5"),
                debit("hot-wallet", "USDC", "1"),
                credit("customers:alice", "USDC", "3"),
            ],
        ),
    )
    .await;
    assert_eq!(
        e,
        ApiError::Unbalanced {
            imbalances: [
                ("BTC".to_owned(), "0.5".to_owned()),
                ("USDC".to_owned(), "-2".to_owned())
            ]
            .into_iter()
            .collect()
        }
    );

    // unknown_asset and unknown_account name the culprit.
    let e = refuse(
        "unknown asset",
        tx(
            "r",
            vec![
                debit("hot-wallet", "DOGE", "1"),
                credit("customers:alice", "DOGE", "1"),
            ],
        ),
    )
    .await;
    assert_eq!(
        e,
        ApiError::UnknownAsset {
            asset: "DOGE".to_owned()
        }
    );
    let e = refuse(
        "unknown account",
        transfer("r", "hot-wallet", "customers:carol", "1"),
    )
    .await;
    assert_eq!(
        e,
        ApiError::UnknownAccount {
            account: "customers:carol".to_owned()
        }
    );
    let e = p.refused(
        "book without accounts",
        api.post_transaction("empty", transfer("r", "hot-wallet", "treasury", "1"))
            .await,
    );
    assert_eq!(
        e,
        ApiError::UnknownAccount {
            account: "hot-wallet".to_owned()
        }
    );

    // insufficient_balance carries the balance before and the floor.
    let e = refuse(
        "overdraw",
        transfer("r", "customers:alice", "customers:bob", "1.5"),
    )
    .await;
    assert_eq!(
        e,
        ApiError::InsufficientBalance {
            account: "customers:alice".to_owned(),
            asset: "BTC".to_owned(),
            balance: "1".to_owned(),
            min_balance: "0".to_owned(),
        }
    );

    // idempotency_key_reused.
    let e = refuse(
        "key reuse",
        transfer("seed", "hot-wallet", "customers:alice", "2"),
    )
    .await;
    assert_code(&e, "idempotency_key_reused");

    // conflict.
    assert_code(
        &p.refused(
            "asset conflict",
            api.register_asset(asset("BTC", 2, None)).await,
        ),
        "conflict",
    );
    assert_code(
        &p.refused(
            "account conflict",
            api.open_account("demo", account("treasury", "revenue", None))
                .await,
        ),
        "conflict",
    );

    // not_found, on every read that names something.
    let unknown_tx = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";
    assert_code(
        &p.refused("unknown tx", api.transaction(unknown_tx).await),
        "not_found",
    );
    assert_code(
        &p.refused("garbage tx id", api.transaction("not-a-uuid").await),
        "not_found",
    );
    assert_code(
        &p.refused(
            "unknown account balances",
            api.balances("demo", "nobody", None).await,
        ),
        "not_found",
    );
    assert_code(
        &p.refused(
            "unknown account postings",
            api.account_postings("demo", "nobody", SeqPage::default())
                .await,
        ),
        "not_found",
    );
    assert_code(
        &p.refused("unknown book tb", api.trial_balance("nobook", None).await),
        "not_found",
    );
    assert_code(
        &p.refused(
            "unknown book events",
            api.events("nobook", SeqPage::default()).await,
        ),
        "not_found",
    );
    assert_code(
        &p.refused(
            "unknown book transactions",
            api.transactions("nobook", SeqPage::default()).await,
        ),
        "not_found",
    );

    // Limits and instants in queries.
    assert_invalid(
        &p.refused(
            "limit 0",
            api.transactions("demo", page(None, Some(0))).await,
        ),
        "limit",
    );
    assert_invalid(
        &p.refused(
            "limit 1001",
            api.events("demo", page(None, Some(1001))).await,
        ),
        "limit",
    );
    assert_invalid(
        &p.refused(
            "postings limit",
            api.account_postings("demo", "hot-wallet", page(None, Some(0)))
                .await,
        ),
        "limit",
    );
    assert_invalid(
        &p.refused(
            "bad as_of",
            api.balances("demo", "hot-wallet", Some("yesterday")).await,
        ),
        "as_of",
    );
    assert_invalid(
        &p.refused("empty as_of", api.trial_balance("demo", Some("")).await),
        "as_of",
    );

    // Nothing refused was written.
    let after = api.events("demo", SeqPage::default()).await.expect("reads");
    assert_eq!(after, before);
}

async fn balances(p: &Probe) {
    let api = p.api();
    setup(api, "demo").await;
    post(
        api,
        "demo",
        transfer("dep", "hot-wallet", "customers:alice", "10"),
    )
    .await;
    post(
        api,
        "demo",
        transfer("pay", "customers:alice", "customers:bob", "3"),
    )
    .await;
    post(
        api,
        "demo",
        transfer("wd", "customers:alice", "hot-wallet", "2"),
    )
    .await;
    // Two postings on alice in one transaction.
    post(
        api,
        "demo",
        tx(
            "split",
            vec![
                debit("hot-wallet", "BTC", "3"),
                credit("customers:alice", "BTC", "1"),
                credit("customers:alice", "BTC", "2"),
            ],
        ),
    )
    .await;

    // Normal side: a liability holding 8 reads "8", the asset account too.
    let read = |account: &'static str| async move {
        api.balances("demo", account, None)
            .await
            .expect("reads")
            .balances
            .get("BTC")
            .cloned()
    };
    assert_eq!(read("customers:alice").await.as_deref(), Some("8"));
    assert_eq!(read("customers:bob").await.as_deref(), Some("3"));
    assert_eq!(read("hot-wallet").await.as_deref(), Some("11"));
    assert_eq!(read("treasury").await, None, "untouched assets are absent");
    let b = api
        .balances("demo", "customers:alice", None)
        .await
        .expect("reads");
    assert_eq!(b.account, "customers:alice");
    assert_timestamp(&b.as_of);

    let history = api
        .account_postings("demo", "customers:alice", SeqPage::default())
        .await
        .expect("reads");
    let running: Vec<(&str, Option<&str>, Option<&str>)> = history
        .postings
        .iter()
        .map(|p| {
            (
                p.balance_after.as_str(),
                p.debit.as_deref(),
                p.credit.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        running,
        [
            ("10", None, Some("10")),
            ("7", Some("3"), None),
            ("5", Some("2"), None),
            ("6", None, Some("1")),
            ("8", None, Some("2")),
        ]
    );
    assert_eq!(history.next_after_seq, None);

    // A page never splits a transaction: limit 4 ends inside "split".
    let first = api
        .account_postings("demo", "customers:alice", page(None, Some(4)))
        .await
        .expect("reads");
    assert_eq!(first.postings.len(), 5);
    let split_seq = first.postings[4].seq;
    assert_eq!(first.next_after_seq, Some(split_seq));
    let rest = api
        .account_postings("demo", "customers:alice", page(Some(split_seq), Some(4)))
        .await
        .expect("reads");
    assert!(rest.postings.is_empty() && rest.next_after_seq.is_none());
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let pg = api
            .account_postings("demo", "customers:alice", page(after, Some(1)))
            .await
            .expect("reads");
        pages.push(pg.postings.len());
        match pg.next_after_seq {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(pages.iter().sum::<usize>(), 5);

    let tb = api.trial_balance("demo", None).await.expect("reads");
    assert_eq!(tb.book, "demo");
    assert!(tb.balanced);
    let rows: Vec<(&str, &str, &str, &str, &str)> = tb
        .rows
        .iter()
        .map(|r| {
            (
                r.account.as_str(),
                r.kind.as_str(),
                r.debits.as_str(),
                r.credits.as_str(),
                r.balance.as_str(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        [
            ("customers:alice", "liability", "5", "13", "8"),
            ("customers:bob", "liability", "0", "3", "3"),
            ("hot-wallet", "asset", "13", "2", "11"),
        ]
    );
    let totals = &tb.totals["BTC"];
    assert_eq!(
        (totals.debits.as_str(), totals.credits.as_str()),
        ("18", "18")
    );
}

async fn as_of(p: &Probe) {
    let api = p.api();
    setup(api, "demo").await;
    let t1 = post(
        api,
        "demo",
        transfer("d1", "hot-wallet", "customers:alice", "1"),
    )
    .await
    .committed_at;
    let t2 = post(
        api,
        "demo",
        transfer("d2", "hot-wallet", "customers:alice", "2"),
    )
    .await
    .committed_at;
    assert!(t2 >= t1);
    let at = |as_of: String| async move {
        api.balances("demo", "customers:alice", Some(&as_of))
            .await
            .expect("reads")
    };
    let b1 = at(t1.clone()).await;
    assert_eq!(b1.as_of, t1, "as_of is echoed, normalised");
    assert_eq!(b1.balances.get("BTC").map(String::as_str), Some("1"));
    assert_eq!(
        at(t2.clone()).await.balances.get("BTC").map(String::as_str),
        Some("3")
    );
    // The same instant with an offset: `+` and `:` must survive the query string.
    let shifted = chrono::DateTime::parse_from_rfc3339(&t1)
        .expect("rfc3339")
        .with_timezone(&chrono::FixedOffset::east_opt(3600).expect("offset"))
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, false);
    assert!(shifted.contains('+'), "{shifted}");
    let b = at(shifted).await;
    assert_eq!(b.as_of, t1);
    assert_eq!(b.balances.get("BTC").map(String::as_str), Some("1"));
    let before = at("2000-01-01T00:00:00Z".to_owned()).await;
    assert!(before.balances.is_empty());
    assert_eq!(before.as_of, "2000-01-01T00:00:00.000000Z");
    let future = at("2999-01-01T00:00:00Z".to_owned()).await;
    assert_eq!(future.balances.get("BTC").map(String::as_str), Some("3"));

    let tb = api.trial_balance("demo", Some(&t1)).await.expect("reads");
    assert_eq!(tb.as_of, t1);
    let alice = tb
        .rows
        .iter()
        .find(|r| r.account == "customers:alice")
        .expect("alice row");
    assert_eq!(alice.credits, "1");
    let empty = api
        .trial_balance("demo", Some("2000-01-01T00:00:00Z"))
        .await
        .expect("reads");
    assert!(empty.rows.is_empty() && empty.totals.is_empty());
    assert!(empty.balanced);
    assert_invalid(
        &p.refused(
            "as_of without zone",
            api.balances("demo", "customers:alice", Some("2026-01-01T00:00:00"))
                .await,
        ),
        "as_of",
    );
}

async fn log_pages(p: &Probe) {
    let api = p.api();
    setup(api, "demo").await;
    let empty = api
        .transactions("demo", SeqPage::default())
        .await
        .expect("a book with only accounts lists no transactions");
    assert!(empty.transactions.is_empty() && empty.next_after_seq.is_none());
    for i in 0..5 {
        post(
            api,
            "demo",
            transfer(&format!("t{i}"), "hot-wallet", "customers:alice", "1"),
        )
        .await;
    }
    // Events: dense seqs from 1, pages of 3.
    let mut seqs = Vec::new();
    let mut kinds = Vec::new();
    let mut after = None;
    loop {
        let pg = api
            .events("demo", page(after, Some(3)))
            .await
            .expect("reads");
        assert!(pg.events.len() <= 3);
        for e in &pg.events {
            seqs.push(e.seq);
            kinds.push(e.kind.clone());
            assert_eq!(e.data["seq"], json!(e.seq));
            assert_timestamp(&e.committed_at);
        }
        match pg.next_after_seq {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(seqs, (1..=9).collect::<Vec<u64>>());
    assert_eq!(kinds[..4], ["account_opened"; 4]);
    assert_eq!(kinds[4..], ["transaction"; 5]);

    let mut keys = Vec::new();
    let mut after = None;
    loop {
        let pg = api
            .transactions("demo", page(after, Some(2)))
            .await
            .expect("reads");
        keys.extend(pg.transactions.iter().map(|t| t.idempotency_key.clone()));
        match pg.next_after_seq {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(keys, ["t0", "t1", "t2", "t3", "t4"]);
    let tail = api
        .transactions("demo", page(Some(7), None))
        .await
        .expect("reads");
    assert_eq!(tail.transactions.len(), 2);
    let past = api
        .events("demo", page(Some(100), None))
        .await
        .expect("reads");
    assert!(past.events.is_empty() && past.next_after_seq.is_none());

    // An event's data is the resource itself.
    let last = api
        .events("demo", page(Some(8), None))
        .await
        .expect("reads");
    let tx: TransactionDto =
        serde_json::from_value(last.events[0].data.clone()).expect("a transaction");
    assert_eq!(api.transaction(&tx.tx_id).await.expect("reads"), tx);
}

async fn books(p: &Probe) {
    let api = p.api();
    assert!(api.books().await.expect("lists").books.is_empty());
    setup(api, "payments").await;
    api.open_account("ops", account("treasury", "equity", None))
        .await
        .expect("opens");
    post(
        api,
        "payments",
        transfer("x", "hot-wallet", "customers:alice", "1"),
    )
    .await;
    let list = api.books().await.expect("lists");
    let books: Vec<(&str, u64)> = list
        .books
        .iter()
        .map(|b| (b.book.as_str(), b.last_seq))
        .collect();
    assert_eq!(books, [("ops", 1), ("payments", 5)]);
}

/// Names that a URL cannot carry, or only escaped: both implementations
/// must refuse (or find) exactly the same.
async fn awkward_names(p: &Probe) {
    let api = p.api();
    setup(api, "demo").await;
    api.open_account("demo", account("a.b:c-d_e:.", "asset", None))
        .await
        .expect("dots and colons are fine in names");
    let read = api.account("demo", "a.b:c-d_e:.").await.expect("reads");
    assert_eq!(read.name, "a.b:c-d_e:.");
    let refused = [
        ("empty account", api.account("demo", "").await),
        ("dot account", api.account("demo", ".").await),
        ("dot-dot account", api.account("demo", "..").await),
        ("slash account", api.account("demo", "hot-wallet/x").await),
        ("escaped slash", api.account("demo", "a%2Fb").await),
        ("query mark", api.account("demo", "a?b=c").await),
        ("hash", api.account("demo", "a#b").await),
        ("space", api.account("demo", "hot wallet").await),
        ("unicode", api.account("demo", "café").await),
        ("backslash", api.account("demo", "a\\b").await),
        ("empty book", api.account("", "hot-wallet").await),
        ("dot book", api.account(".", "hot-wallet").await),
        ("bad book, empty account", api.account("Demo", "").await),
    ];
    for (what, result) in refused {
        assert_code(&p.refused(what, result), "invalid_request");
    }
    let more = [
        (
            "balances ..",
            api.balances("demo", "..", None).await.map(|_| ()),
        ),
        (
            "postings empty",
            api.account_postings("demo", "", SeqPage::default())
                .await
                .map(|_| ()),
        ),
        (
            "tb empty book",
            api.trial_balance("", None).await.map(|_| ()),
        ),
        (
            "events ..",
            api.events("..", SeqPage::default()).await.map(|_| ()),
        ),
        (
            "transactions .",
            api.transactions(".", SeqPage::default()).await.map(|_| ()),
        ),
        (
            "accounts empty book",
            api.accounts("", NamePage::default()).await.map(|_| ()),
        ),
        (
            "open in empty book",
            api.open_account("", account("x", "asset", None))
                .await
                .map(|_| ()),
        ),
        (
            "post to ..",
            api.post_transaction("..", transfer("k", "hot-wallet", "treasury", "1"))
                .await
                .map(|_| ()),
        ),
        (
            "book with slash",
            api.trial_balance("demo/x", None).await.map(|_| ()),
        ),
    ];
    for (what, result) in more {
        assert_code(&p.refused(what, result), "invalid_request");
    }
    for id in [
        "",
        ".",
        "..",
        "a/b",
        "%",
        "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/x",
    ] {
        assert_code(&p.refused(id, api.transaction(id).await), "not_found");
    }
}

/// A hold, settled whole, in part, or voided, through the API; replays and
/// the refusals of each outcome.
async fn holds(p: &Probe) {
    let api = p.api();
    setup(api, "payments").await;
    post(
        api,
        "payments",
        transfer("fund", "hot-wallet", "customers:alice", "1"),
    )
    .await;
    let hold = |key: &str, amount: &str| {
        let mut request = transfer(key, "customers:alice", "hot-wallet", amount);
        request.pending = true;
        request
    };
    let settle = |key: &str, postings: Option<Vec<PostingDto>>| SettleRequest {
        idempotency_key: key.to_owned(),
        postings,
    };
    let void = |key: &str| VoidRequest {
        idempotency_key: key.to_owned(),
    };

    let whole = post(api, "payments", hold("h-whole", "0.3")).await;
    assert_eq!(
        (whole.status.as_str(), whole.expires_at.as_deref()),
        ("pending", None)
    );
    let part = post(api, "payments", hold("h-part", "0.3")).await;
    let voided = post(api, "payments", hold("h-void", "0.3")).await;
    let b = api
        .balances("payments", "customers:alice", None)
        .await
        .expect("balances");
    assert_eq!(b.balances["BTC"], "1");
    assert_eq!(b.available["BTC"], "0.1");
    assert_eq!(
        (
            b.pending["BTC"].debits.as_str(),
            b.pending["BTC"].credits.as_str()
        ),
        ("0.9", "0")
    );
    let over = api
        .post_transaction("payments", hold("h-over", "0.2"))
        .await;
    assert_code(&p.refused("over available", over), "insufficient_balance");

    let s = api
        .settle("payments", &whole.tx_id, settle("s-whole", None))
        .await
        .expect("settles");
    assert_eq!(s.deduplicated, Some(false));
    assert_eq!(s.status, "posted");
    assert_eq!(s.pending_tx_id.as_deref(), Some(whole.tx_id.as_str()));
    assert_eq!(s.postings, whole.postings);
    let again = api
        .settle("payments", &whole.tx_id, settle("s-whole", None))
        .await
        .expect("replays");
    assert_eq!((again.deduplicated, &again.tx_id), (Some(true), &s.tx_id));

    let legs = vec![
        debit("customers:alice", "BTC", "0.1"),
        credit("hot-wallet", "BTC", "0.1"),
    ];
    let too_much = vec![
        debit("customers:alice", "BTC", "0.4"),
        credit("hot-wallet", "BTC", "0.4"),
    ];
    let e = p.refused(
        "exceeds",
        api.settle("payments", &part.tx_id, settle("s-part", Some(too_much)))
            .await,
    );
    match &e {
        ApiError::ExceedsHold {
            account,
            asset,
            held,
            requested,
        } => assert_eq!(
            (
                account.as_str(),
                asset.as_str(),
                held.as_str(),
                requested.as_str()
            ),
            ("customers:alice", "BTC", "0.3", "0.4")
        ),
        other => panic!("expected exceeds_hold, got {other:?}"),
    }
    let s_part = api
        .settle(
            "payments",
            &part.tx_id,
            settle("s-part", Some(legs.clone())),
        )
        .await
        .expect("settles part");
    assert_eq!(s_part.postings, legs);
    let e = p.refused(
        "key reused",
        api.settle("payments", &part.tx_id, settle("s-part", None))
            .await,
    );
    assert_code(&e, "idempotency_key_reused");

    let v = api
        .void("payments", &voided.tx_id, void("v"))
        .await
        .expect("voids");
    assert_eq!((v.status.as_str(), v.deduplicated), ("voided", Some(false)));
    assert_eq!(v.pending_tx_id.as_deref(), Some(voided.tx_id.as_str()));
    let again = api
        .void("payments", &voided.tx_id, void("v"))
        .await
        .expect("replays");
    assert_eq!((again.deduplicated, &again.tx_id), (Some(true), &v.tx_id));

    // Each hold ended once; the second outcome names the first.
    for (hold_id, status, by) in [
        (&whole.tx_id, "posted", &s.tx_id),
        (&part.tx_id, "posted", &s_part.tx_id),
        (&voided.tx_id, "voided", &v.tx_id),
    ] {
        let e = p.refused("ended", api.void("payments", hold_id, void("late")).await);
        match &e {
            ApiError::HoldNotPending {
                status: ended,
                tx_id,
            } => {
                assert_eq!((ended.as_str(), tx_id.as_ref()), (status, Some(by)));
            }
            other => panic!("expected hold_not_pending, got {other:?}"),
        }
        let read = api.transaction(hold_id).await.expect("reads");
        assert_eq!(read.status, status);
    }
    let e = p.refused(
        "not a hold",
        api.settle("payments", &s.tx_id, settle("late", None)).await,
    );
    assert_code(&e, "not_a_hold");
    let e = p.refused(
        "unknown",
        api.void(
            "payments",
            "0b9a4e9e-1f43-4a3c-9d2a-6c1d2b7e8f00",
            void("late"),
        )
        .await,
    );
    assert_code(&e, "not_found");

    // 0.3 + 0.1 posted, the rest released.
    let b = api
        .balances("payments", "customers:alice", None)
        .await
        .expect("balances");
    assert_eq!(b.balances["BTC"], "0.6");
    assert_eq!(b.available["BTC"], "0.6");
    let tb = api
        .trial_balance("payments", None)
        .await
        .expect("trial balance");
    assert_eq!(tb.pending["BTC"], "0");
}

/// Bulk posts (`post_many`): each item answered as its own post, in
/// order; a bad item refused alone with the single post's refusal; seqs in
/// item order; the whole batch again is all replays.
async fn bulk(p: &Probe) {
    let api = p.api();
    setup(api, "demo").await;
    let items = vec![
        transfer("bulk-1", "hot-wallet", "customers:alice", "1"),
        transfer("bulk-2", "hot-wallet", "nobody", "1"),
        transfer("bulk-3", "hot-wallet", "customers:alice", "2"),
        transfer("bulk-1", "hot-wallet", "customers:alice", "5"),
    ];
    let answers = api
        .post_many("demo", items.clone())
        .await
        .expect("a bulk post");
    assert_eq!(answers.len(), 4);
    let first = answers[0].clone().expect("committed");
    let third = answers[2].clone().expect("committed");
    assert_eq!(first.deduplicated, Some(false));
    assert_eq!(third.seq, first.seq + 1, "seqs in item order");
    p.refused("an unknown account", answers[1].clone());
    p.refused("a reused key with another body", answers[3].clone());
    let again = api.post_many("demo", items).await.expect("again");
    assert_eq!(again[0].clone().expect("replay").deduplicated, Some(true));
    assert_eq!(again[2].clone().expect("replay").seq, third.seq);
    p.refused("an unknown account", again[1].clone());
    p.refused("a reused key with another body", again[3].clone());
    p.refused(
        "an empty bulk post",
        api.post_many("demo", Vec::new()).await,
    );
}

/// Balances under a name prefix: totals over every match beside one page,
/// each row as the single-account read answers it, and the refusals.
async fn prefix_balances(p: &Probe) {
    let api = p.api();
    setup(api, "demo").await;
    api.open_account("demo", account("customersx", "liability", None))
        .await
        .expect("opens");
    for request in [
        transfer("a", "hot-wallet", "customers:alice", "10"),
        transfer("x", "hot-wallet", "customersx", "100"),
        tx(
            "b",
            vec![
                debit("hot-wallet", "USDC", "5"),
                credit("customers:bob", "USDC", "5"),
            ],
        ),
    ] {
        post(api, "demo", request).await;
    }
    let mut hold = transfer("h", "customers:alice", "hot-wallet", "4");
    hold.pending = true;
    post(api, "demo", hold).await;
    let query = |prefix: &str, asset: Option<&str>, after: Option<&str>, limit: Option<u32>| {
        BookBalancesQuery {
            prefix: Some(prefix.to_owned()),
            asset: asset.map(str::to_owned),
            after: after.map(str::to_owned),
            limit,
        }
    };

    let first = api
        .book_balances("demo", query("customers:", None, None, Some(1)))
        .await
        .expect("reads");
    assert_eq!((first.book.as_str(), first.count), ("demo", 2));
    assert_timestamp(&first.as_of);
    assert_eq!(first.next.as_deref(), Some("customers:alice"));
    let alice = &first.accounts[..];
    assert_eq!(alice.len(), 1);
    let single = api
        .balances("demo", "customers:alice", None)
        .await
        .expect("reads");
    assert_eq!(
        (&alice[0].balances, &alice[0].pending, &alice[0].available),
        (&single.balances, &single.pending, &single.available),
        "a row is what the single-account read answers"
    );
    assert_eq!(alice[0].available["BTC"], "6");
    let t = &first.totals;
    assert_eq!(
        (t.balances["BTC"].as_str(), t.balances["USDC"].as_str()),
        ("10", "5"),
        "totals cover bob too, off the page"
    );
    assert_eq!(t.pending["BTC"].debits, "4");
    assert_eq!(t.available["BTC"], "6");

    let second = api
        .book_balances(
            "demo",
            query("customers:", None, Some("customers:alice"), Some(1)),
        )
        .await
        .expect("reads");
    let names: Vec<&str> = second.accounts.iter().map(|a| a.account.as_str()).collect();
    assert_eq!((names, second.next), (vec!["customers:bob"], None));
    assert_eq!(second.totals, first.totals);

    let usdc = api
        .book_balances("demo", query("customers:", Some("USDC"), None, None))
        .await
        .expect("reads");
    assert_eq!(usdc.asset.as_deref(), Some("USDC"));
    assert_eq!(usdc.totals.balances.keys().collect::<Vec<_>>(), ["USDC"]);
    let all = api
        .book_balances("demo", query("", None, None, None))
        .await
        .expect("reads");
    assert_eq!(all.count, 5, "the empty prefix is every account");
    let none = api
        .book_balances("demo", query("nobody", None, None, None))
        .await
        .expect("reads");
    assert_eq!((none.count, none.accounts.len()), (0, 0));
    assert!(none.totals.balances.is_empty());

    let long = "a".repeat(129);
    for (prefix, field) in [("customers alice", "prefix"), (long.as_str(), "prefix")] {
        let e = p.refused(
            "a bad prefix",
            api.book_balances("demo", query(prefix, None, None, None))
                .await,
        );
        assert_invalid(&e, field);
    }
    for limit in [0, 1001] {
        let e = p.refused(
            "a limit out of range",
            api.book_balances("demo", query("", None, None, Some(limit)))
                .await,
        );
        assert_invalid(&e, "limit");
    }
    let e = p.refused(
        "an unknown asset",
        api.book_balances("demo", query("", Some("DOGE"), None, None))
            .await,
    );
    assert_code(&e, "unknown_asset");
    let e = p.refused(
        "an unknown book",
        api.book_balances("nobook", query("", None, None, None))
            .await,
    );
    assert_code(&e, "not_found");
}

/// Balance history of one account and asset: every change, range bounds,
/// pages, one downsampled bucket with known min and max, and the refusals.
async fn balance_history(p: &Probe) {
    let api = p.api();
    setup(api, "demo").await;
    let t1 = post(
        api,
        "demo",
        transfer("a", "hot-wallet", "customers:alice", "10"),
    )
    .await;
    let t2 = post(
        api,
        "demo",
        transfer("w", "customers:alice", "hot-wallet", "4"),
    )
    .await;
    let t3 = post(
        api,
        "demo",
        transfer("c", "hot-wallet", "customers:alice", "1"),
    )
    .await;
    let query =
        |from: Option<&str>, to: Option<&str>, after_seq, limit, points| BalanceHistoryQuery {
            asset: Some("BTC".to_owned()),
            from: from.map(str::to_owned),
            to: to.map(str::to_owned),
            after_seq,
            limit,
            points,
        };
    let read = |q: BalanceHistoryQuery| api.balance_history("demo", "customers:alice", q);
    let rows = |h: &talea_api::BalanceHistoryDto| -> Vec<(u64, String)> {
        h.changes
            .iter()
            .map(|c| (c.seq, c.balance.clone()))
            .collect()
    };

    let every = read(query(None, None, None, None, None))
        .await
        .expect("reads");
    let all = vec![
        (t1.seq, "10".to_owned()),
        (t2.seq, "6".to_owned()),
        (t3.seq, "7".to_owned()),
    ];
    assert_eq!((every.opening.as_str(), rows(&every)), ("0", all.clone()));
    assert_eq!(every.changes[1].committed_at, t2.committed_at);
    assert_eq!(every.next_after_seq, None);

    let first = read(query(None, None, None, Some(2), None))
        .await
        .expect("reads");
    assert_eq!(rows(&first), all[..2].to_vec());
    assert_eq!(first.next_after_seq, Some(t2.seq));
    let rest = read(query(None, None, Some(t2.seq), Some(2), None))
        .await
        .expect("reads");
    assert_eq!(
        (rest.opening.as_str(), rows(&rest)),
        ("6", all[2..].to_vec())
    );
    assert_eq!(rest.next_after_seq, None);

    let ranged = read(query(
        Some(&t2.committed_at),
        Some(&t3.committed_at),
        None,
        None,
        None,
    ))
    .await
    .expect("reads");
    assert_eq!(ranged.opening, "10", "the balance before from opens");
    assert!(
        rows(&ranged).iter().all(|(seq, _)| *seq == t2.seq),
        "{ranged:?}"
    );

    let far = "2100-01-01T00:00:00Z";
    let one = read(query(
        Some(&t1.committed_at),
        Some(far),
        None,
        None,
        Some(1),
    ))
    .await
    .expect("reads");
    assert!(one.changes.is_empty());
    let b = &one.buckets[..];
    assert_eq!(b.len(), 1, "{one:?}");
    assert_eq!(
        (
            b[0].first.as_str(),
            b[0].last.as_str(),
            b[0].min.as_str(),
            b[0].max.as_str()
        ),
        ("0", "7", "0", "10")
    );
    let three = read(query(
        Some(&t1.committed_at),
        Some(far),
        None,
        None,
        Some(3),
    ))
    .await
    .expect("reads");
    assert_eq!(three.buckets.len(), 3);
    assert!(
        three.buckets[1..]
            .iter()
            .all(|b| (b.first.as_str(), b.max.as_str()) == ("7", "7")),
        "empty buckets carry the balance forward: {three:?}"
    );
    let empty = read(query(Some(far), None, None, None, None))
        .await
        .expect("reads");
    assert_eq!((empty.opening.as_str(), empty.changes.len()), ("7", 0));

    let e = p.refused(
        "a time range backwards",
        read(query(Some(far), Some(&t1.committed_at), None, None, None)).await,
    );
    assert_invalid(&e, "from");
    for points in [0, 1001] {
        let e = p.refused(
            "points out of range",
            read(query(None, None, None, None, Some(points))).await,
        );
        assert_invalid(&e, "points");
    }
    let mut no_asset = query(None, None, None, None, None);
    no_asset.asset = None;
    assert_invalid(&p.refused("no asset", read(no_asset).await), "asset");
    let mut doge = query(None, None, None, None, None);
    doge.asset = Some("DOGE".to_owned());
    assert_code(
        &p.refused("an unknown asset", read(doge).await),
        "unknown_asset",
    );
    assert_code(
        &p.refused(
            "an unknown account's history",
            api.balance_history("demo", "nobody", query(None, None, None, None, None))
                .await,
        ),
        "not_found",
    );
    assert_code(
        &p.refused(
            "an unknown book's history",
            api.balance_history(
                "nobook",
                "customers:alice",
                query(None, None, None, None, None),
            )
            .await,
        ),
        "not_found",
    );
}

async fn transaction_search(p: &Probe) {
    let api = p.api();
    setup(api, "demo").await;
    let with_meta = |mut r: PostTransactionRequest, meta: Value| {
        r.metadata = Some(object(meta));
        r
    };
    let in_hours = |h: i64| {
        (chrono::Utc::now() + chrono::Duration::hours(h))
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let t1 = post(
        api,
        "demo",
        with_meta(
            transfer("a", "hot-wallet", "customers:alice", "10"),
            json!({"order_id": "A-17", "attempt": 2}),
        ),
    )
    .await;
    let t2 = post(
        api,
        "demo",
        with_meta(
            transfer("b", "hot-wallet", "customers:bob", "5"),
            json!({"order_id": "B-1"}),
        ),
    )
    .await;
    let mut later = transfer("h-later", "customers:alice", "hot-wallet", "1");
    later.pending = true;
    later.expires_at = Some(in_hours(2));
    let later = post(api, "demo", later).await;
    let mut soon = transfer("h-soon", "customers:bob", "hot-wallet", "1");
    soon.pending = true;
    soon.expires_at = Some(in_hours(1));
    let soon = post(api, "demo", soon).await;
    let mut open_ended = transfer("h-open", "customers:bob", "hot-wallet", "1");
    open_ended.pending = true;
    let open_ended = post(api, "demo", open_ended).await;
    let t3 = post(
        api,
        "demo",
        with_meta(
            transfer("c", "customers:alice", "hot-wallet", "2"),
            json!({"order_id": "A-17"}),
        ),
    )
    .await;

    let search = |q: TransactionSearch| api.search_transactions("demo", q);
    let seqs = |l: &talea_api::TransactionList| -> Vec<u64> {
        l.transactions.iter().map(|t| t.seq).collect()
    };
    let alice = TransactionSearch {
        account: Some("customers:alice".to_owned()),
        ..TransactionSearch::default()
    };
    let found = search(alice.clone()).await.expect("searches");
    assert_eq!(seqs(&found), vec![t1.seq, later.seq, t3.seq]);
    assert_eq!(found.next_after_seq, None);
    assert_eq!(
        found.transactions[0],
        api.transaction(&t1.tx_id).await.expect("reads")
    );
    let first = search(TransactionSearch {
        limit: Some(2),
        ..alice.clone()
    })
    .await
    .expect("searches");
    assert_eq!(
        (seqs(&first), first.next_after_seq),
        (vec![t1.seq, later.seq], Some(later.seq))
    );
    let rest = search(TransactionSearch {
        after_seq: first.next_after_seq,
        ..alice.clone()
    })
    .await
    .expect("searches");
    assert_eq!(seqs(&rest), vec![t3.seq]);

    let order = |v: &str| TransactionSearch {
        metadata: [("order_id".to_owned(), v.to_owned())].into(),
        ..TransactionSearch::default()
    };
    let by_order = search(order("A-17")).await.expect("searches");
    assert_eq!(seqs(&by_order), vec![t1.seq, t3.seq]);
    let attempt = TransactionSearch {
        metadata: [("attempt".to_owned(), "2".to_owned())].into(),
        ..TransactionSearch::default()
    };
    assert_eq!(
        seqs(&search(attempt).await.expect("searches")),
        vec![t1.seq]
    );
    let pending = TransactionSearch {
        status: Some("pending".to_owned()),
        ..TransactionSearch::default()
    };
    assert_eq!(
        seqs(&search(pending).await.expect("searches")),
        vec![later.seq, soon.seq, open_ended.seq]
    );
    let ranged = TransactionSearch {
        from: Some(t2.committed_at.clone()),
        to: Some(t3.committed_at.clone()),
        account: Some("customers:bob".to_owned()),
        ..TransactionSearch::default()
    };
    assert_eq!(
        seqs(&search(ranged).await.expect("searches")),
        vec![t2.seq, soon.seq, open_ended.seq]
    );
    let plain = search(TransactionSearch::default()).await.expect("pages");
    assert_eq!(plain.transactions.len(), 6);

    let holds = api.pending_holds("demo", None).await.expect("holds");
    let ids: Vec<&str> = holds.holds.iter().map(|h| h.tx_id.as_str()).collect();
    assert_eq!(
        ids,
        vec![
            soon.tx_id.as_str(),
            later.tx_id.as_str(),
            open_ended.tx_id.as_str()
        ]
    );
    assert_eq!(
        holds.holds[0],
        api.transaction(&soon.tx_id).await.expect("reads")
    );
    let one = api.pending_holds("demo", Some(1)).await.expect("holds");
    assert_eq!(one.holds.len(), 1);

    // Refusals, in the order the checks run.
    let bad = |f: fn(&mut TransactionSearch)| {
        let mut q = TransactionSearch::default();
        f(&mut q);
        q
    };
    assert_invalid(
        &p.refused(
            "a time range backwards",
            search(bad(|q| {
                q.from = Some("2100-01-01T00:00:00Z".to_owned());
                q.to = Some("2000-01-01T00:00:00Z".to_owned());
            }))
            .await,
        ),
        "from",
    );
    assert_invalid(
        &p.refused(
            "a bad time",
            search(bad(|q| q.to = Some("yesterday".to_owned()))).await,
        ),
        "to",
    );
    assert_invalid(
        &p.refused(
            "an unknown status",
            search(bad(|q| q.status = Some("settled".to_owned()))).await,
        ),
        "status",
    );
    assert_invalid(
        &p.refused(
            "two metadata filters",
            search(bad(|q| {
                q.metadata = [
                    ("a".to_owned(), "1".to_owned()),
                    ("b".to_owned(), "2".to_owned()),
                ]
                .into();
            }))
            .await,
        ),
        "metadata",
    );
    assert_invalid(
        &p.refused(
            "a metadata key past its limit",
            search(bad(|q| {
                q.metadata = [("k".repeat(129), "v".to_owned())].into()
            }))
            .await,
        ),
        "metadata",
    );
    assert_invalid(
        &p.refused(
            "a metadata value past its limit",
            search(bad(|q| {
                q.metadata = [("order_id".to_owned(), "v".repeat(257))].into()
            }))
            .await,
        ),
        "metadata.order_id",
    );
    assert_invalid(
        &p.refused(
            "a page too large",
            search(bad(|q| {
                q.status = Some("posted".to_owned());
                q.limit = Some(1001);
            }))
            .await,
        ),
        "limit",
    );
    assert_code(
        &p.refused(
            "an unknown account",
            search(bad(|q| q.account = Some("nobody".to_owned()))).await,
        ),
        "not_found",
    );
    assert_code(
        &p.refused(
            "an unknown book",
            api.search_transactions("nobook", order("A-17")).await,
        ),
        "not_found",
    );
    assert_code(
        &p.refused(
            "an unknown book's holds",
            api.pending_holds("nobook", None).await,
        ),
        "not_found",
    );
    assert_invalid(
        &p.refused("holds limit", api.pending_holds("demo", Some(0)).await),
        "limit",
    );
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use super::Probe;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn in_process() {
                let p = Probe::in_process().await;
                super::$name(&p).await;
                p.finish().await;
            }

            /// Over HTTP, with the in-process refusals as the reference.
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn over_http() {
                let (http, reference) = tokio::join!(Probe::over_http(), Probe::in_process());
                super::$name(&http).await;
                super::$name(&reference).await;
                let (seen, expected) = (http.errors(), reference.errors());
                assert_eq!(seen.len(), expected.len());
                for (i, (h, r)) in seen.iter().zip(&expected).enumerate() {
                    assert_eq!(h, r, "refusal #{i} differs between HTTP and in-process");
                }
                http.finish().await;
                reference.finish().await;
            }
        }
    )*};
}

scenarios!(
    assets,
    accounts,
    account_pages,
    posting,
    replay,
    key_reuse,
    rejections,
    balances,
    as_of,
    log_pages,
    books,
    awkward_names,
    holds,
    bulk,
    prefix_balances,
    balance_history,
    transaction_search,
);
