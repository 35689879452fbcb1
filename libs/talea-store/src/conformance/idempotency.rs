//! Conformance cases. Idempotency keys: replays, reuse with another body, duplicates in one batch, racing requests, and keys of rejected drafts.

use std::sync::Arc;

use talea_core::{AccountKind, Commit, Draft};

use crate::{Balance, Outcome, Rejection, Store};

use super::support::*;

/// Replaying a committed request answers with the original commit.
pub async fn idempotent_replay(store: Arc<dyn Store>) {
    let b = book("replay");
    customers(&store, &b).await;
    let dep = deposit("dep-1", "alice", "BTC", 150_000_000);
    let original = committed(&commit_one(&store, &b, dep.clone()).await);
    assert_eq!(original.seq, 4);
    assert_eq!(
        commit_one(&store, &b, dep.clone()).await,
        Outcome::Deduplicated(original.clone()),
        "a replay returns the original commit (same id, seq, time and postings)"
    );
    let outcomes = commit(&store, &b, &[dep, deposit("dep-2", "bob", "BTC", 1)]).await;
    assert_eq!(outcomes[0], Outcome::Deduplicated(original.clone()));
    assert_eq!(
        committed(&outcomes[1]).seq,
        5,
        "a deduplicated draft takes no seq"
    );
    assert_eq!(
        store
            .transactions(&b, 0, 10)
            .await
            .expect("transactions")
            .len(),
        2
    );
    let balances = balances_sorted(&store, &b, &acct("alice"), None).await;
    assert_eq!(
        balances,
        vec![Balance {
            asset: code("BTC"),
            balance: minor(-150_000_000),
            held: crate::Held::default(),
        }],
        "a replay moves nothing"
    );
    assert_dense_log(&store, &b).await;
}

/// The same key with another request is refused, naming the original.
pub async fn idempotency_key_reused(store: Arc<dyn Store>) {
    let b = book("reuse");
    customers(&store, &b).await;
    let original =
        committed(&commit_one(&store, &b, transfer("k", "alice", "hot", "BTC", 5)).await);
    for other in [
        transfer("k", "alice", "hot", "BTC", 6),
        transfer("k", "bob", "hot", "BTC", 5),
        Draft::new(
            key("k"),
            transfer("k", "alice", "hot", "BTC", 5).postings,
            None,
            Some("a memo makes it another request".to_owned()),
            None,
        )
        .expect("draft"),
    ] {
        assert_eq!(
            rejection(&commit_one(&store, &b, other).await),
            Rejection::IdempotencyKeyReused(original.tx_id)
        );
    }
    assert_eq!(
        store.last_seq(&b).await.expect("last_seq"),
        Some(original.seq)
    );
}

/// A key repeated inside one batch is answered against the earlier draft.
pub async fn duplicate_keys_within_batch(store: Arc<dyn Store>) {
    let b = book("dupes");
    customers(&store, &b).await;
    let a = transfer("k1", "alice", "hot", "BTC", 10);
    let a_other = transfer("k1", "alice", "hot", "BTC", 11);
    let c = transfer("k2", "bob", "hot", "BTC", 3);
    let outcomes = commit(&store, &b, &[a.clone(), a.clone(), a_other, c]).await;
    let first = committed(&outcomes[0]);
    assert_eq!(first.seq, 4);
    assert_eq!(outcomes[1], Outcome::Deduplicated(first.clone()));
    assert_eq!(
        rejection(&outcomes[2]),
        Rejection::IdempotencyKeyReused(first.tx_id)
    );
    assert_eq!(committed(&outcomes[3]).seq, 5);

    // An earlier draft that failed leaves the key free for a later one.
    let bad = transfer("k3", "nobody", "hot", "BTC", 1);
    let good = transfer("k3", "bob", "hot", "BTC", 1);
    let outcomes = commit(&store, &b, &[bad, good.clone(), good]).await;
    assert_eq!(
        rejection(&outcomes[0]),
        Rejection::UnknownAccount(acct("nobody"))
    );
    let second = committed(&outcomes[1]);
    assert_eq!(second.seq, 6);
    assert_eq!(outcomes[2], Outcome::Deduplicated(second));
    assert_dense_log(&store, &b).await;
}

/// Sixteen racing posts of one request: exactly one commits.
pub async fn concurrent_same_key(store: Arc<dyn Store>) {
    let b = book("race");
    customers(&store, &b).await;
    let before = store.last_seq(&b).await.expect("last_seq");
    let d = transfer("once", "alice", "hot", "BTC", 42);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, b, d) = (store.clone(), b.clone(), d.clone());
            tokio::spawn(async move { commit_one(&store, &b, d).await })
        })
        .collect();
    let outcomes = joined(tasks).await;
    let commits: Vec<&Commit> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Committed(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(commits.len(), 1, "exactly one racer commits: {outcomes:?}");
    for o in &outcomes {
        match o {
            Outcome::Committed(c) | Outcome::Deduplicated(c) => assert_eq!(c, commits[0]),
            Outcome::Rejected(r) => panic!("no racer is rejected: {r:?}"),
        }
    }
    assert_eq!(
        store.last_seq(&b).await.expect("last_seq"),
        before.map(|s| s + 1)
    );
}

/// A refused draft does not consume its key.
pub async fn rejected_key_stays_free(store: Arc<dyn Store>) {
    let b = book("free");
    customers(&store, &b).await;
    let to_later = transfer("k-later", "later", "hot", "BTC", 1);
    assert_eq!(
        rejection(&commit_one(&store, &b, to_later.clone()).await),
        Rejection::UnknownAccount(acct("later"))
    );
    open(&store, &b, "later", AccountKind::Liability, None).await;
    committed(&commit_one(&store, &b, to_later).await);

    let take = withdraw("k-take", "alice", "USD", 5);
    assert!(matches!(
        rejection(&commit_one(&store, &b, take.clone()).await),
        Rejection::InsufficientBalance { .. }
    ));
    committed(&commit_one(&store, &b, deposit("k-fund", "alice", "USD", 5)).await);
    committed(&commit_one(&store, &b, take).await);
    assert_dense_log(&store, &b).await;
}
