//! Proof of liabilities over HTTP (`docs/proofs.md`): a snapshot is signed
//! and kept, a customer's proof verifies against its root and total with
//! talea-verify, negative balances are refused and listed, leaves cannot be
//! linked across snapshots, scopes are those of the account reads, and bad
//! input is a clear 4xx.

use serde_json::{Value, json};
use talea_http::{HttpConfig, Role};
use talea_verify::checkpoint::KeyList;
use talea_verify::files::LiabilityProof;
use talea_verify::hash::parse_hash;
use talea_verify::snapshot::LiabilitySnapshot;

use crate::harness::*;

const CREATE: &str = "/v1/books/payments/liabilities";

fn parse<T: serde::de::DeserializeOwned>(status: u16, r: &Resp) -> T {
    assert_eq!(r.status, status, "{}", r.body);
    serde_json::from_value(r.body.clone()).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

/// payments with alice 1.5 BTC, bob 0.25, carol 0 (opened, a zero
/// balance) and mallory −0.0009 (no min_balance), all under `customers:`.
async fn funded() -> TestApp {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    for name in ["customers:carol", "customers:mallory"] {
        let r = app
            .post(
                "/v1/books/payments/accounts",
                ROOT,
                &json!({"name": name, "kind": "liability"}),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    for (key, from, to, amount) in [
        ("d1", "hot-wallet", "customers:alice", "1.5"),
        ("d2", "hot-wallet", "customers:bob", "0.25"),
        ("d3", "hot-wallet", "customers:carol", "0.1"),
        ("w3", "customers:carol", "hot-wallet", "0.1"),
        ("m1", "customers:mallory", "hot-wallet", "0.0009"),
    ] {
        let r = app.transfer("payments", key, from, to, amount).await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    app
}

async fn snapshot(app: &TestApp) -> LiabilitySnapshot {
    parse(
        201,
        &app.post(
            CREATE,
            PAY_RW,
            &json!({"asset": "BTC", "prefix": "customers:"}),
        )
        .await,
    )
}

async fn proof(app: &TestApp, id: &str, account: &str, token: &str) -> Resp {
    app.get(
        &format!("/v1/books/payments/liabilities/{id}/accounts/{account}"),
        token,
    )
    .await
}

#[tokio::test]
async fn a_signed_snapshot_proves_each_customer_and_refuses_negatives() {
    let app = funded().await;
    let snap = snapshot(&app).await;
    assert_eq!(snap.book, "payments");
    assert_eq!(snap.asset, "BTC");
    assert_eq!(snap.scale, 8);
    assert_eq!(snap.prefix, "customers:");
    assert_eq!(snap.seq, 11, "6 accounts opened, 5 transfers");
    assert_eq!(snap.total, "175000000", "minor units: 1.5 + 0.25 + 0");
    assert_eq!(snap.total_amount, "1.75");
    assert_eq!(snap.accounts, 3, "alice, bob and carol (zero) are in");
    let refused: Vec<(&str, &str)> = snap
        .refused
        .iter()
        .map(|r| (r.account.as_str(), r.balance.as_str()))
        .collect();
    assert_eq!(refused, vec![("customers:mallory", "-0.0009")]);
    let keys: KeyList = parse(200, &app.get("/v1/keys", PAY_RO).await);
    snap.verify(&keys)
        .expect("the snapshot's signature verifies");

    // Kept: read back byte for byte, with a read-only token.
    let path = format!("{CREATE}/{}", snap.snapshot);
    let again: LiabilitySnapshot = parse(200, &app.get(&path, PAY_RO).await);
    assert_eq!(again, snap);

    let root = parse_hash(&snap.root).expect("root");
    let total: u128 = snap.total.parse().expect("total");
    for (account, balance) in [
        ("customers:alice", "150000000"),
        ("customers:bob", "25000000"),
        ("customers:carol", "0"),
    ] {
        let p: LiabilityProof = parse(200, &proof(&app, &snap.snapshot, account, PAY_RO).await);
        assert_eq!(p.balance, balance);
        assert_eq!(p.account, account);
        p.verify_published(&root, total)
            .expect("the customer's proof verifies against the signed root and total");
    }
    // Mallory is refused, and told so; a non-customer is not in it.
    let r = proof(&app, &snap.snapshot, "customers:mallory", PAY_RO).await;
    assert_eq!((r.status, r.error()), (404, "not_found"), "{}", r.body);
    assert!(
        r.body["message"].as_str().unwrap_or("").contains("refused"),
        "{}",
        r.body
    );
    let r = proof(&app, &snap.snapshot, "hot-wallet", PAY_RO).await;
    assert_eq!((r.status, r.error()), (404, "not_found"), "{}", r.body);
}

#[tokio::test]
async fn leaves_cannot_be_linked_across_snapshots() {
    let app = funded().await;
    let first = snapshot(&app).await;
    let second = snapshot(&app).await;
    assert_ne!(first.snapshot, second.snapshot);
    assert_eq!((first.seq, &first.total), (second.seq, &second.total));
    assert_ne!(first.root, second.root, "a fresh salt per snapshot");
    let a: LiabilityProof = parse(
        200,
        &proof(&app, &first.snapshot, "customers:bob", PAY_RO).await,
    );
    let b: LiabilityProof = parse(
        200,
        &proof(&app, &second.snapshot, "customers:bob", PAY_RO).await,
    );
    assert_ne!(a.salt, b.salt);
    let hashes =
        |p: &LiabilityProof| -> Vec<String> { p.path.iter().map(|s| s.hash.clone()).collect() };
    assert!(
        hashes(&a).iter().all(|h| !hashes(&b).contains(h)),
        "no sibling hash is shared between the snapshots"
    );
}

#[tokio::test]
async fn scopes_are_those_of_the_book() {
    let app = funded().await;
    let body = json!({"asset": "BTC", "prefix": "customers:"});
    for token in [PAY_RO, OTHER_RW] {
        let r = app.post(CREATE, token, &body).await;
        assert_eq!((r.status, r.error()), (403, "forbidden"), "{}", r.body);
    }
    assert_eq!(app.post(CREATE, "", &body).await.status, 401);
    let snap = snapshot(&app).await;
    let r = app
        .get(&format!("{CREATE}/{}", snap.snapshot), OTHER_RW)
        .await;
    assert_eq!((r.status, r.error()), (403, "forbidden"), "{}", r.body);
    let r = proof(&app, &snap.snapshot, "customers:alice", OTHER_RW).await;
    assert_eq!((r.status, r.error()), (403, "forbidden"), "{}", r.body);
    // As the account route answers the same token.
    let r = app
        .get("/v1/books/payments/accounts/customers:alice", OTHER_RW)
        .await;
    assert_eq!(r.status, 403, "{}", r.body);

    // A read instance refuses the write, as it does settle and void.
    let reader = spawn_on(
        &app.db_url,
        Options {
            http: HttpConfig {
                role: Role::Read,
                ..HttpConfig::default()
            },
            ..Options::default()
        },
    )
    .await;
    let r = reader.post(CREATE, PAY_RW, &body).await;
    assert_eq!(r.status, 405, "{}", r.body);
    let r = proof(&reader, &snap.snapshot, "customers:alice", PAY_RO).await;
    assert_eq!(r.status, 200, "the reads are served: {}", r.body);
}

#[tokio::test]
async fn bad_input_is_a_clear_4xx() {
    let app = funded().await;
    let long = "a".repeat(talea_ledger::LIABILITY_PREFIX_CHARS_MAX + 1);
    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"asset": "DOGE", "prefix": "customers:"}),
            422,
            "unknown_asset",
        ),
        (
            json!({"asset": "b t c", "prefix": "customers:"}),
            400,
            "invalid_request",
        ),
        (
            json!({"asset": "BTC", "prefix": ""}),
            400,
            "invalid_request",
        ),
        (
            json!({"asset": "BTC", "prefix": "customers/"}),
            400,
            "invalid_request",
        ),
        (
            json!({"asset": "BTC", "prefix": long}),
            400,
            "invalid_request",
        ),
        (json!({"asset": "BTC"}), 400, "invalid_request"),
        (
            json!({"asset": "BTC", "prefix": "c", "extra": 1}),
            400,
            "invalid_request",
        ),
        (json!(["BTC"]), 400, "invalid_request"),
    ];
    for (body, status, code) in cases {
        let r = app.post(CREATE, PAY_RW, &body).await;
        assert_eq!((r.status, r.error()), (status, code), "{body}: {}", r.body);
    }
    let r = app.post_raw(CREATE, PAY_RW, "{not json").await;
    assert_eq!(
        (r.status, r.error()),
        (400, "invalid_request"),
        "{}",
        r.body
    );
    // The longest prefix is fine (it takes nobody).
    let longest = "a".repeat(talea_ledger::LIABILITY_PREFIX_CHARS_MAX);
    let r = app
        .post(CREATE, PAY_RW, &json!({"asset": "BTC", "prefix": longest}))
        .await;
    let empty: LiabilitySnapshot = parse(201, &r);
    assert_eq!((empty.accounts, empty.total.as_str()), (0, "0"));
    // A book without events.
    let r = app
        .post(
            "/v1/books/other/liabilities",
            OTHER_RW,
            &json!({"asset": "BTC", "prefix": "c"}),
        )
        .await;
    assert_eq!((r.status, r.error()), (404, "not_found"), "{}", r.body);

    let snap = snapshot(&app).await;
    for path in [
        format!("{CREATE}/0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"),
        format!("{CREATE}/{}", "x".repeat(200)),
        format!("{CREATE}/0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/accounts/customers:alice"),
        format!("{CREATE}/{}/accounts/customers:nobody", snap.snapshot),
    ] {
        let r = app.get(&path, PAY_RO).await;
        assert_eq!(
            (r.status, r.error()),
            (404, "not_found"),
            "{path}: {}",
            r.body
        );
    }
    let r = proof(&app, &snap.snapshot, "bad%20name", PAY_RO).await;
    assert_eq!(
        (r.status, r.error()),
        (400, "invalid_request"),
        "{}",
        r.body
    );
}
