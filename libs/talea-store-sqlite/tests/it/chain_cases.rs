//! The hash chain of a book written before it existed, shared by the SQLite
//! and Postgres tests (the Postgres crate includes this file): its hashes
//! and the counter's chain columns emptied, as the migration leaves them,
//! the book gets exactly the chain it had, from `upgrade_chain` or from its
//! next writer.

use std::future::Future;
use std::sync::Arc;

use talea_core::{AccountKind, BookName, NewAccount};
use talea_store::Store;
use talea_testkit::domain::{acct, asset, book, transfer};

/// What the migration leaves of `b`: no event hashes, no chain on the counter.
pub const UNCHAIN: [&str; 2] = [
    "UPDATE events SET hash = NULL WHERE book = 'old'",
    "UPDATE books SET chain_seq = 0, chain_hash = NULL WHERE book = 'old'",
];

async fn hashes(store: &Arc<dyn Store>, b: &BookName) -> Vec<Option<[u8; 32]>> {
    store.event_hashes(b, 0, 1000).await.expect("hashes")
}

/// `run_sql` runs statements on the store's database behind its back;
/// `upgrade` is the store's `upgrade_chain`.
pub async fn a_book_without_its_chain_is_caught_up<S, SF, U, UF>(
    store: Arc<dyn Store>,
    run_sql: S,
    upgrade: U,
) where
    S: Fn(&'static [&'static str]) -> SF,
    SF: Future<Output = ()>,
    U: Fn() -> UF,
    UF: Future<Output = usize>,
{
    let b = book("old");
    store.register_asset(&asset()).await.expect("asset");
    for name in ["hot", "alice"] {
        let new = NewAccount {
            name: acct(name),
            kind: AccountKind::Asset,
            min_balance: None,
            metadata: "{}".to_owned(),
        };
        store.open_account(&b, &new).await.expect("account");
    }
    let drafts = [
        transfer("k1", "hot", "alice", 5),
        transfer("k2", "alice", "hot", 2),
    ];
    store.commit_batch(&b, &drafts).await.expect("commit");
    let chained = hashes(&store, &b).await;
    assert_eq!(chained.len(), 4);
    assert!(chained.iter().all(Option::is_some));

    run_sql(&UNCHAIN).await;
    assert!(hashes(&store, &b).await.iter().all(Option::is_none));
    assert_eq!(upgrade().await, 1, "one book caught up");
    assert_eq!(hashes(&store, &b).await, chained);
    assert_eq!(upgrade().await, 0, "nothing left behind");

    // Its next writer catches it up too, then chains its own event.
    run_sql(&UNCHAIN).await;
    store
        .commit_batch(&b, &[transfer("k3", "hot", "alice", 1)])
        .await
        .expect("commit");
    let after = hashes(&store, &b).await;
    assert_eq!(after[..4], chained[..]);
    let events = store.events(&b, 0, 10).await.expect("events");
    let scales: std::collections::BTreeMap<_, _> =
        [(asset().code, asset().scale)].into_iter().collect();
    let mut prev = [0u8; 32];
    for event in &events {
        prev = talea_api::event::event_hash(&prev, "old", event, &scales).expect("hash");
        assert_eq!(event.hash, Some(prev), "seq {}", event.seq);
    }
    assert_eq!(events.len(), 5);
}
