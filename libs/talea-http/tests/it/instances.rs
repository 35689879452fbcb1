//! Concurrency within one instance and across two instances on one database.

use std::collections::HashSet;

use futures::future::join_all;
use serde_json::Value;

use crate::harness::*;

fn assert_dense_and_monotonic(events: &[Value]) {
    let mut last_time = String::new();
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"].as_u64(), Some(i as u64 + 1), "gap at {i}");
        let t = e["committed_at"].as_str().expect("time").to_owned();
        assert!(
            t >= last_time,
            "commit time went backwards at seq {}",
            i + 1
        );
        last_time = t;
    }
}

#[tokio::test]
async fn sixteen_writers_on_one_book_get_a_dense_sequence() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    let writers = (0..16).map(|w| {
        let app = &app;
        async move {
            for i in 0..10 {
                let r = app
                    .transfer(
                        "payments",
                        &format!("w{w}-{i}"),
                        "hot-wallet",
                        "treasury",
                        "0.001",
                    )
                    .await;
                assert_eq!(r.status, 201, "{}", r.body);
            }
        }
    });
    join_all(writers).await;
    let events = all_events(&app, "payments").await;
    assert_eq!(events.len(), 4 + 160);
    assert_dense_and_monotonic(&events);
    let r = app.get("/v1/books/payments/accounts/treasury", ROOT).await;
    assert_eq!(r.body["balances"]["BTC"], "0.16");
}

#[tokio::test]
async fn racing_overdraws_never_overdraw() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    let r = app
        .transfer("payments", "fund", "hot-wallet", "customers:alice", "10")
        .await;
    assert_eq!(r.status, 201);
    let attempts = (0..40).map(|i| {
        let app = &app;
        async move {
            app.transfer(
                "payments",
                &format!("take{i}"),
                "customers:alice",
                "hot-wallet",
                "1",
            )
            .await
        }
    });
    let results = join_all(attempts).await;
    let ok = results.iter().filter(|r| r.status == 201).count();
    let refused = results
        .iter()
        .filter(|r| r.status == 422 && r.error() == "insufficient_balance")
        .count();
    assert_eq!((ok, refused), (10, 30));
    let r = app
        .get("/v1/books/payments/accounts/customers:alice", ROOT)
        .await;
    assert_eq!(r.body["balances"]["BTC"], "0");
    assert_dense_and_monotonic(&all_events(&app, "payments").await);
}

#[tokio::test]
async fn concurrent_duplicates_yield_exactly_one_commit() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    let results = join_all((0..24).map(|_| {
        let app = &app;
        async move {
            app.transfer("payments", "same-key", "hot-wallet", "treasury", "5")
                .await
        }
    }))
    .await;
    let created = results.iter().filter(|r| r.status == 201).count();
    let deduped = results
        .iter()
        .filter(|r| r.status == 200 && r.body["deduplicated"] == true)
        .count();
    assert_eq!((created, deduped), (1, 23));
    let ids: HashSet<&str> = results
        .iter()
        .map(|r| r.body["tx_id"].as_str().expect("tx_id"))
        .collect();
    assert_eq!(ids.len(), 1);
}

#[tokio::test]
async fn two_instances_share_one_dense_log() {
    let a = spawn_app().await;
    let b = spawn_on(&a.db_url, Options::default()).await;
    a.setup_book("payments").await;

    // A commit through A is visible through B the moment A answers.
    let r = a
        .transfer("payments", "first", "hot-wallet", "treasury", "1")
        .await;
    assert_eq!(r.status, 201);
    let id = r.body["tx_id"].as_str().expect("tx_id").to_owned();
    let seen = b.get(&format!("/v1/transactions/{id}"), ROOT).await;
    assert_eq!(seen.status, 200);
    assert_eq!(seen.body["committed_at"], r.body["committed_at"]);
    let r = b.get("/v1/books/payments/accounts/treasury", ROOT).await;
    assert_eq!(r.body["balances"]["BTC"], "1");

    // Interleaved writers on both instances, plus the same keys sent to both.
    let writers = (0..16).map(|w| {
        let (a, b) = (&a, &b);
        async move {
            let mut outcomes = Vec::new();
            for i in 0..8 {
                let app = if (w + i) % 2 == 0 { a } else { b };
                let unique = app
                    .transfer(
                        "payments",
                        &format!("u{w}-{i}"),
                        "hot-wallet",
                        "treasury",
                        "1",
                    )
                    .await;
                assert_eq!(unique.status, 201, "{}", unique.body);
                let shared = app
                    .transfer(
                        "payments",
                        &format!("shared-{i}"),
                        "hot-wallet",
                        "treasury",
                        "1",
                    )
                    .await;
                outcomes.push((shared.status, shared.body["tx_id"].clone()));
            }
            outcomes
        }
    });
    let outcomes: Vec<(u16, Value)> = join_all(writers).await.into_iter().flatten().collect();
    assert_eq!(outcomes.iter().filter(|(s, _)| *s == 201).count(), 8);
    assert_eq!(outcomes.iter().filter(|(s, _)| *s == 200).count(), 8 * 15);
    let distinct: HashSet<String> = outcomes.iter().map(|(_, id)| id.to_string()).collect();
    assert_eq!(distinct.len(), 8);

    let events_a = all_events(&a, "payments").await;
    let events_b = all_events(&b, "payments").await;
    assert_eq!(events_a, events_b);
    assert_eq!(events_a.len(), 4 + 1 + 128 + 8);
    assert_dense_and_monotonic(&events_a);
}
