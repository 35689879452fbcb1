//! Read your writes on a single instance (its store is the primary), over
//! Postgres and SQLite: `Talea-Seq` on book reads, `min_seq` at or below
//! the head answered at once, beyond it `409 min_seq_ahead` at once, bad
//! values 400, and the order of checks (401, 400, 403 before any wait).
//! The waits of a replica: `services/talead/tests/it/replica.rs`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::harness::{OTHER_RW, Options, PAY_RO, ROOT, TestApp, spawn_app, spawn_store};

const BOOK: &str = "payments";

async fn get_with(
    app: &TestApp,
    path: &str,
    token: Option<&str>,
    header: Option<&str>,
) -> crate::harness::Resp {
    let mut req = app.client.get(format!("{}{path}", app.base));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(value) = header {
        req = req.header("talea-min-seq", value);
    }
    app.send(req).await
}

async fn check(app: &TestApp) {
    app.setup_book(BOOK).await;
    let r = app
        .transfer(BOOK, "k1", "treasury", "hot-wallet", "1")
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let head = r.body["seq"].as_u64().expect("seq");
    let events = format!("/v1/books/{BOOK}/events");

    // Every book read says what it reflects; other routes do not.
    for path in [
        events.clone(),
        format!("/v1/books/{BOOK}/accounts/hot-wallet"),
        format!("/v1/books/{BOOK}/trial-balance"),
        format!("/v1/books/{BOOK}/transactions?after_seq=0&limit=2"),
    ] {
        let r = app.get(&path, ROOT).await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        assert_eq!(
            r.header("talea-seq"),
            Some(head.to_string().as_str()),
            "{path}"
        );
    }
    assert!(
        app.get("/v1/books", ROOT)
            .await
            .header("talea-seq")
            .is_none()
    );
    assert!(
        app.get("/v1/assets", ROOT)
            .await
            .header("talea-seq")
            .is_none()
    );

    // At or below the head: at once, with the other query parameters intact.
    for min in [1, head] {
        let r = app
            .get(
                &format!("{events}?after_seq={}&min_seq={min}&limit=1", head - 1),
                ROOT,
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["events"][0]["seq"], head);
        assert_eq!(r.header("talea-seq"), Some(head.to_string().as_str()));
        let r = get_with(app, &events, Some(ROOT), Some(&min.to_string())).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }

    // Beyond the head on the primary: 409 at once, naming the head.
    let started = Instant::now();
    let r = app
        .get(&format!("{events}?min_seq={}", head + 1), ROOT)
        .await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(r.error(), "min_seq_ahead");
    assert_eq!(r.body["min_seq"], head + 1);
    assert_eq!(r.body["head"], head);
    assert!(r.header("talea-seq").is_none());
    // A book with no event has head 0.
    let r = app.get("/v1/books/empty/events?min_seq=1", ROOT).await;
    assert_eq!(r.status, 409, "{:?}", r.body);
    assert_eq!(r.body["head"], 0);

    // Bad values: 400 naming min_seq, from the query or the header.
    for bad in [
        "0",
        "-1",
        "abc",
        "",
        "+1",
        "1e3",
        "9223372036854775808",
        "99999999999999999999",
    ] {
        let r = app.get(&format!("{events}?min_seq={bad}"), ROOT).await;
        assert_eq!(r.status, 400, "min_seq={bad}: {:?}", r.body);
        assert_eq!(r.body["field"], "min_seq");
        let r = get_with(app, &events, Some(ROOT), Some(bad)).await;
        assert_eq!(r.status, 400, "Talea-Min-Seq: {bad}: {:?}", r.body);
    }
    let r = app
        .get(&format!("{events}?min_seq=1&min_seq=1"), ROOT)
        .await;
    assert_eq!(r.status, 400);
    // With both, the larger applies.
    let r = get_with(
        app,
        &format!("{events}?min_seq=1"),
        Some(ROOT),
        Some(&(head + 5).to_string()),
    )
    .await;
    assert_eq!(r.status, 409, "{:?}", r.body);

    // The order of checks: 401 first, then the parameter, then the scope;
    // no wait and no head for a token outside the book.
    let r = get_with(app, &format!("{events}?min_seq=abc"), None, None).await;
    assert_eq!(r.status, 401);
    let r = app.get(&format!("{events}?min_seq=abc"), OTHER_RW).await;
    assert_eq!(r.status, 400);
    let r = app
        .get(&format!("{events}?min_seq={}", head + 1), OTHER_RW)
        .await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert!(r.header("talea-seq").is_none());
    let r = app.get(&format!("{events}?min_seq={head}"), PAY_RO).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn min_seq_on_a_postgres_primary() {
    let app = spawn_app().await;
    check(&app).await;
}

#[tokio::test]
async fn min_seq_on_sqlite() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("ledger.db");
    let store = talea_store_sqlite::SqliteStore::open(&path)
        .await
        .expect("opens");
    let app = spawn_store(Arc::new(store), "sqlite", Options::default()).await;
    check(&app).await;
}
