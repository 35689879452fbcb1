//! Conformance cases. Live events: subscriptions catching up and following, and `watch` notices.

use std::sync::Arc;

use talea_core::AccountKind;

use crate::Store;

use super::support::*;

/// Takes `n` events from a subscription, failing after 20 s.
async fn take_events(stream: &mut crate::EventStream, n: usize) -> Vec<talea_core::Event> {
    use futures::StreamExt;
    let mut out = Vec::with_capacity(n);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while out.len() < n {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(Ok(event))) => out.push(event),
            Ok(Some(Err(error))) => panic!("subscription failed: {error}"),
            Ok(None) => panic!("subscription ended after {} events", out.len()),
            Err(_) => panic!("only {} of {n} events within 20 s", out.len()),
        }
    }
    out
}

/// Subscribing after seq N yields N+1.. from the log, then live events as
/// concurrent writers commit them: in order, no gap, no repeat, and exactly
/// the events the log holds.
pub async fn subscribe_catch_up(store: Arc<dyn Store>) {
    let b = book("feed");
    customers(&store, &b).await;
    for i in 0..5 {
        committed(&commit_one(&store, &b, deposit(&format!("pre-{i}"), "bob", "BTC", 10)).await);
    }
    let before = store.last_seq(&b).await.expect("last_seq").expect("events");
    assert_eq!(before, 8);

    let mut from_two = crate::subscribe(store.clone(), b.clone(), 2);
    let mut live = crate::subscribe(store.clone(), b.clone(), before);
    let mut from_start = crate::subscribe(store.clone(), b.clone(), 0);
    let caught_up = take_events(&mut from_two, 6).await;
    assert_eq!(
        caught_up.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (3..=8).collect::<Vec<_>>()
    );

    // Four writers, ten posts each, racing while the streams are open.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = store.clone();
            let b = b.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let k = format!("live-{w}-{i}");
                    committed(&commit_one(&store, &b, deposit(&k, "bob", "BTC", 1)).await);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let log = assert_dense_log(&store, &b).await;
    assert_eq!(log.len(), 48);

    let rest = take_events(&mut from_two, 40).await;
    let seen: Vec<_> = caught_up.into_iter().chain(rest).collect();
    assert_eq!(
        seen,
        log[2..].to_vec(),
        "after 2: exactly the log, in order"
    );
    assert_eq!(take_events(&mut live, 40).await, log[8..].to_vec());
    assert_eq!(take_events(&mut from_start, 48).await, log);

    // Nothing more arrives: no repeats after the end of the log.
    use futures::StreamExt;
    let extra = tokio::time::timeout(std::time::Duration::from_millis(300), live.next()).await;
    assert!(extra.is_err(), "no event past the log: {extra:?}");

    // A subscription to a book with no events waits for its first one.
    let other = book("feed-later");
    let mut later = crate::subscribe(store.clone(), other.clone(), 0);
    open(&store, &other, "first", AccountKind::Asset, None).await;
    let first = take_events(&mut later, 1).await;
    assert_eq!(first[0].seq, 1);
}

/// `watch` announces commits and account opens with the book's new last seq.
pub async fn watch_announces_commits(store: Arc<dyn Store>) {
    let b = book("watched");
    let mut notices = store.watch().await.expect("watch");
    customers(&store, &b).await;
    committed(&commit_one(&store, &b, deposit("w-1", "bob", "BTC", 10)).await);
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let notice = tokio::time::timeout_at(deadline, notices.recv())
            .await
            .expect("a notice for seq 4 within 20 s");
        match notice {
            Ok(n) if n.book == b && n.last_seq == 4 => break,
            Ok(n) => assert!(n.book != b || n.last_seq < 4, "unexpected {n:?}"),
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(e) => panic!("notice channel: {e}"),
        }
    }
}
