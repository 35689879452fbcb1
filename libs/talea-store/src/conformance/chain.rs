//! Conformance cases. The hash chain and checkpoints (`docs/proofs.md`):
//! every appended event is chained (checked on every whole log the other
//! cases read, by `assert_dense_log`), the chain's leaves read alone, and
//! kept checkpoints.

use std::sync::Arc;

use talea_core::Timestamp;

use crate::{Checkpoint, Store};

use super::support::*;

/// `event_hashes` answers each event's chain hash, page by page, as the
/// events themselves carry them.
pub async fn event_hashes_are_the_leaves(store: Arc<dyn Store>) {
    let b = book("leaves");
    customers(&store, &b).await;
    for i in 0..5 {
        committed(&commit_one(&store, &b, deposit(&format!("d{i}"), "alice", "BTC", 10)).await);
    }
    let events = assert_dense_log(&store, &b).await;
    let mut hashes = Vec::new();
    let mut after = 0;
    loop {
        let page = store.event_hashes(&b, after, 3).await.expect("hashes");
        assert!(page.len() <= 3);
        if page.is_empty() {
            break;
        }
        after += page.len() as u64;
        hashes.extend(page);
    }
    let carried: Vec<Option<[u8; 32]>> = events.iter().map(|e| e.hash).collect();
    assert_eq!(hashes, carried);
    assert!(hashes.iter().all(Option::is_some));
    assert!(
        store
            .event_hashes(&book("nothing-here"), 0, 10)
            .await
            .expect("unknown book")
            .is_empty()
    );
}

/// Checkpoints are kept, once per (book, tree size), the latest by size
/// answered per book.
pub async fn checkpoints_are_kept(store: Arc<dyn Store>) {
    let b = book("heads");
    let other = book("other-heads");
    assert_eq!(store.latest_checkpoint(&b).await.expect("none"), None);
    let head = |book: &talea_core::BookName, size: u64, fill: u8| Checkpoint {
        book: book.clone(),
        tree_size: size,
        root_hash: [fill; 32],
        timestamp: Timestamp::from_micros(1_765_000_000_000_000 + size as i64),
        key_id: "34750f98bd59fcfc".to_owned(),
        signature: [fill; 64],
    };
    assert!(store.save_checkpoint(&head(&b, 2, 1)).await.expect("save"));
    assert!(store.save_checkpoint(&head(&b, 7, 2)).await.expect("save"));
    assert!(
        !store.save_checkpoint(&head(&b, 7, 3)).await.expect("again"),
        "the first kept of a size wins"
    );
    assert!(store.save_checkpoint(&head(&b, 5, 4)).await.expect("older"));
    assert!(
        store
            .save_checkpoint(&head(&other, 1, 5))
            .await
            .expect("save")
    );
    assert_eq!(
        store.latest_checkpoint(&b).await.expect("latest"),
        Some(head(&b, 7, 2))
    );
    assert_eq!(
        store.latest_checkpoint(&other).await.expect("latest"),
        Some(head(&other, 1, 5))
    );
}
