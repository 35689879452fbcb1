//! The hold lifecycle on Postgres (the cases are the SQLite tests'
//! `holds_cases.rs`, included by path), each on its own database.

use crate::holds_cases as cases;

/// Runs one case on a fresh database, then drops it.
macro_rules! case {
    ($name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let (store, db) = crate::migrated_store().await;
            cases::$name(&store).await;
            store.pool().close().await;
            db.drop_database().await.expect("drop the test database");
        }
    };
}

case!(hold_then_settle_whole);
case!(partial_settle);
case!(hold_then_void);
case!(hold_and_settle_in_one_batch);
case!(hold_expires);

/// A settle and a void of one hold race on two instances, many times:
/// exactly one ends it, and the other is told how, and by which.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn settle_and_void_race_across_instances() {
    use talea_core::{Draft, IdempotencyKey, TxStatus};
    use talea_store::{Outcome, Rejection, Store};

    let (first, db) = crate::migrated_store().await;
    let second = talea_store_pg::PgStore::connect(&db.url, crate::POOL_MAX)
        .await
        .expect("second instance");
    let b = talea_testkit::domain::book("holds-race");
    cases::setup(&first, &b).await;
    let key = |s: String| IdempotencyKey::parse(&s).expect("key");
    for round in 0..10 {
        let hold = cases::committed(
            &cases::commit_one(&first, &b, cases::hold(&format!("h{round}"), 5, None)).await,
        );
        let settle = Draft::settle(key(format!("s{round}")), hold.tx_id, None).expect("settle");
        let void = Draft::void(key(format!("v{round}")), hold.tx_id);
        let (a, b2) = tokio::join!(
            first.commit_batch(&b, std::slice::from_ref(&settle)),
            second.commit_batch(&b, std::slice::from_ref(&void)),
        );
        let (a, b2) = (a.expect("settle").remove(0), b2.expect("void").remove(0));
        let (winner, loser) = match (&a, &b2) {
            (Outcome::Committed(w), Outcome::Rejected(l)) => (w.clone(), l.clone()),
            (Outcome::Rejected(l), Outcome::Committed(w)) => (w.clone(), l.clone()),
            other => panic!("exactly one must win: {other:?}"),
        };
        assert_eq!(
            loser,
            Rejection::HoldNotPending {
                status: winner.status,
                ended_by: Some(winner.tx_id),
            }
        );
        let read = second
            .transaction(hold.tx_id, None)
            .await
            .expect("read")
            .expect("the hold");
        assert_eq!(read.status, winner.status);
        assert!(matches!(read.status, TxStatus::Posted | TxStatus::Voided));
    }
    // 100 deposited, 5 posted per settle won; nothing held any more.
    let alice = cases::alice(&first, &b, None).await;
    assert!(alice.held.is_zero());
    first.pool().close().await;
    second.pool().close().await;
    db.drop_database().await.expect("drop the test database");
}
