//! Conformance cases. Sequences and concurrency: dense seqs under racing writers, `min_balance` under racing overdraws.

use std::sync::Arc;

use talea_core::{Amount, Commit, Draft, EventKind};

use crate::{Balance, Outcome, Rejection, Store};

use super::support::*;

/// Sixteen writers on one book: the log stays dense, times monotonic,
/// each batch's seqs consecutive and sharing one commit time.
pub async fn dense_sequences_under_concurrency(store: Arc<dyn Store>) {
    let b = book("dense");
    customers(&store, &b).await;
    let tasks: Vec<_> = (0..16)
        .map(|w| {
            let (store, b) = (store.clone(), b.clone());
            tokio::spawn(async move {
                let mut batches = Vec::new();
                for i in 0..5 {
                    let drafts: Vec<Draft> = (0..3)
                        .map(|j| transfer(&format!("w{w}-b{i}-d{j}"), "bob", "hot", "USD", 100 + j))
                        .collect();
                    let outcomes = commit(&store, &b, &drafts).await;
                    batches.push(outcomes.iter().map(committed).collect::<Vec<_>>());
                }
                batches
            })
        })
        .collect();
    let batches: Vec<Vec<Commit>> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.expect("task"))
        .collect();
    for batch in &batches {
        for pair in batch.windows(2) {
            assert_eq!(
                pair[1].seq,
                pair[0].seq + 1,
                "a batch's commits take consecutive seqs"
            );
            assert_eq!(
                pair[1].committed_at, pair[0].committed_at,
                "a batch shares one commit time"
            );
        }
    }
    let events = assert_dense_log(&store, &b).await;
    assert_eq!(events.len(), 3 + 16 * 5 * 3);
    let mut from_log: Vec<Commit> = events
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Transaction(c) => Some(c),
            EventKind::AccountOpened(_) | EventKind::HoldExpired(_) => None,
        })
        .collect();
    let mut returned: Vec<Commit> = batches.into_iter().flatten().collect();
    from_log.sort_by_key(|c| c.seq);
    returned.sort_by_key(|c| c.seq);
    assert_eq!(
        from_log, returned,
        "the log holds exactly what commit_batch returned"
    );
    let total: i128 = 16 * 5 * (100 + 101 + 102);
    assert_eq!(
        balances_sorted(&store, &b, &acct("bob"), None).await,
        vec![Balance {
            asset: code("USD"),
            balance: minor(-total),
            held: crate::Held::default(),
        }]
    );
}

/// Forty racing withdrawals of 1 from an account holding 10 with
/// `min_balance` 0: exactly ten commit, and it is never overdrawn.
pub async fn min_balance_under_racing_overdraws(store: Arc<dyn Store>) {
    let b = book("overdraw");
    customers(&store, &b).await;
    committed(&commit_one(&store, &b, deposit("fund", "alice", "BTC", 10)).await);
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (store, b) = (store.clone(), b.clone());
            tokio::spawn(async move {
                commit_one(
                    &store,
                    &b,
                    withdraw(&format!("take-{i}"), "alice", "BTC", 1),
                )
                .await
            })
        })
        .collect();
    let outcomes = joined(tasks).await;
    let ok = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Committed(_)))
        .count();
    assert_eq!(
        ok, 10,
        "exactly the funded withdrawals commit: {outcomes:?}"
    );
    for o in &outcomes {
        match o {
            Outcome::Committed(c) => {
                let leg = c
                    .postings
                    .iter()
                    .find(|p| p.account.as_str() == "alice")
                    .expect("alice's leg");
                assert!(
                    leg.balance_after.minor() <= 0,
                    "alice is never overdrawn: {c:?}"
                );
            }
            Outcome::Rejected(r) => assert_eq!(
                r,
                &Rejection::InsufficientBalance {
                    account: acct("alice"),
                    asset: code("BTC"),
                    balance: Amount::ZERO,
                }
            ),
            Outcome::Deduplicated(c) => panic!("nothing is deduplicated: {c:?}"),
        }
    }
    assert_eq!(
        balances_sorted(&store, &b, &acct("alice"), None).await,
        vec![Balance {
            asset: code("BTC"),
            balance: Amount::ZERO,
            held: crate::Held::default(),
        }]
    );
    assert_dense_log(&store, &b).await;
}
