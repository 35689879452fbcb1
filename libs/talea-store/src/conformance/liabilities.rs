//! Conformance cases. Liability snapshots (`docs/proofs.md`, "Proof of
//! liabilities"): kept with every field and balance exactly, found by book
//! and id only, and an id is never overwritten.

use std::sync::Arc;

use talea_core::Timestamp;

use crate::{LiabilitySnapshot, Store};

use super::support::*;

fn snapshot(book_name: &str, id: &str, accounts: usize) -> LiabilitySnapshot {
    LiabilitySnapshot {
        book: book(book_name),
        id: id.to_owned(),
        asset: code("BTC"),
        prefix: "customers:".to_owned(),
        seq: 12,
        salt: [1; 32],
        root: [2; 32],
        total: u128::MAX,
        timestamp: Timestamp::from_micros(1_765_000_000_000_001),
        key_id: "34750f98bd59fcfc".to_owned(),
        signature: [3; 64],
        balances: (0..accounts)
            .map(|i| (acct(&format!("customers:{i:04}")), i as i128 - 2))
            .chain(std::iter::once((acct("customers:max"), i128::MAX)))
            .collect(),
    }
}

/// A liability snapshot reads back exactly as saved (u128 total, negative
/// and extreme balances, every byte field), per book and id; an unknown
/// one is `None`; saving an id again fails and keeps the first.
pub async fn liability_snapshots_are_kept(store: Arc<dyn Store>) {
    let first = snapshot("owes", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", 500);
    let b = first.book.clone();
    assert_eq!(
        store.liability_snapshot(&b, &first.id).await.expect("none"),
        None
    );
    store
        .save_liability_snapshot(&first)
        .await
        .expect("save a snapshot");
    let empty = LiabilitySnapshot {
        id: "empty".to_owned(),
        total: 0,
        balances: Vec::new(),
        ..first.clone()
    };
    store
        .save_liability_snapshot(&empty)
        .await
        .expect("save an empty snapshot");
    assert_eq!(
        store.liability_snapshot(&b, &first.id).await.expect("read"),
        Some(first.clone())
    );
    assert_eq!(
        store.liability_snapshot(&b, "empty").await.expect("read"),
        Some(empty)
    );
    let again = LiabilitySnapshot {
        total: 1,
        ..first.clone()
    };
    assert!(
        store.save_liability_snapshot(&again).await.is_err(),
        "an id is never overwritten"
    );
    assert_eq!(
        store.liability_snapshot(&b, &first.id).await.expect("read"),
        Some(first.clone()),
        "the first kept stays"
    );
    let other = book("other-owes");
    assert_eq!(
        store
            .liability_snapshot(&other, &first.id)
            .await
            .expect("other book"),
        None,
        "a snapshot is found in its own book only"
    );
    assert_eq!(
        store.liability_snapshot(&b, "unknown").await.expect("read"),
        None
    );
}
