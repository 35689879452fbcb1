//! The hash chain on the append log: every event's chain hash is stored in
//! the frame that appends it and served as stored; reopening keeps it; a
//! log written before the chain existed gets its chain at open; and a
//! record changed along with its checksum shows as a broken link.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use talea_core::{AssetCode, BookName, Draft, Event, EventKind, IdempotencyKey, Scale, Timestamp};
use talea_store::Store;
use talea_store_log::{LogConfig, LogStore};

use crate::{book, commit_all, deposit, seeded};

fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::parse(s).expect("key")
}

fn soon(ms: u64) -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_micros()
        + u128::from(ms) * 1000;
    Timestamp::from_micros(i64::try_from(micros).expect("micros fit"))
}

/// A withdrawal of `n` from `alice` as a hold.
fn hold(k: &str, n: i128, expires_at: Option<Timestamp>) -> Draft {
    talea_testkit::domain::transfer(k, "hot", "alice", n).into_hold(expires_at)
}

/// Every kind of event in two books: account opens, posts, holds, a
/// settle, a void and an expiry.
async fn history(dir: &Path) -> (LogStore, Vec<BookName>) {
    let books = vec![book("chain-a"), book("chain-b")];
    let store = seeded(dir, &books[0]).await;
    open_accounts(&store, &books[1]).await;
    for b in &books {
        commit_all(&store, b, &[deposit("d1", 100), deposit("d2", 50)]).await;
        let held = commit_all(
            &store,
            b,
            &[
                hold("h1", 10, None),
                hold("h2", 5, None),
                hold("h3", 7, Some(soon(150))),
            ],
        )
        .await;
        commit_all(
            &store,
            b,
            &[
                Draft::settle(key("s1"), held[0].tx_id, None).expect("a settle"),
                Draft::void(key("v2"), held[1].tx_id),
                deposit("d3", 1),
            ],
        )
        .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for b in &books {
        let expired = store.expire_holds(b).await.expect("expire");
        assert_eq!(expired.len(), 1, "the hold with an expiry expired");
    }
    (store, books)
}

/// Opens `hot` and `alice` in a second book of an open store.
async fn open_accounts(store: &LogStore, b: &BookName) {
    for (name, kind) in [
        ("hot", talea_core::AccountKind::Asset),
        ("alice", talea_core::AccountKind::Liability),
    ] {
        let new = talea_core::NewAccount {
            name: crate::acct(name),
            kind,
            min_balance: None,
            metadata: "{}".to_owned(),
        };
        store.open_account(b, &new).await.expect("open account");
    }
}

async fn events(store: &LogStore, b: &BookName) -> Vec<Event> {
    store.events(b, 0, 10_000).await.expect("events")
}

/// The audit: recomputes each event's chain hash from the one stored
/// before it and the event as served; the first seq whose stored hash
/// differs (or is missing), if any.
async fn first_break(store: &LogStore, b: &BookName) -> Option<u64> {
    let scales: BTreeMap<AssetCode, Scale> = store
        .assets()
        .await
        .expect("assets")
        .into_iter()
        .map(|a| (a.code, a.scale))
        .collect();
    let mut prev = [0u8; 32];
    for event in events(store, b).await {
        let recomputed = talea_api::event::event_hash(&prev, b.as_str(), &event, &scales)
            .expect("a canonical form");
        match event.hash {
            Some(stored) if stored == recomputed => prev = stored,
            _ => return Some(event.seq),
        }
    }
    None
}

async fn all_events(store: &LogStore, books: &[BookName]) -> Vec<Vec<Event>> {
    let mut out = Vec::new();
    for b in books {
        out.push(events(store, b).await);
    }
    out
}

#[tokio::test]
async fn every_event_is_chained_and_reopening_keeps_the_hashes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, books) = history(dir.path()).await;
    let before = all_events(&store, &books).await;
    assert_eq!(store.audit_chains().expect("audit"), Vec::new());
    for (b, events) in books.iter().zip(&before) {
        assert_eq!(first_break(&store, b).await, None, "{b} is chained");
        assert_eq!(events.len(), 2 + 2 + 3 + 3 + 1, "{b}: every kind of event");
        assert!(
            events
                .iter()
                .any(|e| matches!(e.kind, EventKind::HoldExpired(_))),
            "{b} has an expiry"
        );
    }
    drop(store);

    let store = LogStore::open(dir.path()).expect("reopen");
    assert_eq!(store.stats().chain_caught_up_at_open, 0);
    assert_eq!(all_events(&store, &books).await, before, "the same hashes");
    // The chain carries on from the stored head.
    commit_all(&store, &books[0], &[deposit("after", 3)]).await;
    assert_eq!(first_break(&store, &books[0]).await, None);
}

#[tokio::test]
async fn a_log_written_before_the_chain_gets_it_at_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, books) = history(dir.path()).await;
    let chained = all_events(&store, &books).await;
    let event_count = store.stats().events;
    let records = store.verify().expect("verify");
    drop(store);

    // What a build from before the chain wrote: the same records, no hashes.
    let dropped = talea_store_log::testing::drop_chain_records(dir.path()).expect("rewrite");
    assert_eq!(dropped, event_count);

    // Small frames, so the catch-up takes several.
    let config = LogConfig {
        frame_bytes_target: 256,
        ..LogConfig::default()
    };
    let store = LogStore::open_with(dir.path(), config).expect("an old log opens");
    assert_eq!(store.stats().chain_caught_up_at_open, event_count);
    assert_eq!(
        store.stats().events,
        event_count,
        "nothing renumbered or lost"
    );
    assert_eq!(
        all_events(&store, &books).await,
        chained,
        "the chain computed at open is the one written with the events"
    );
    assert_eq!(store.verify().expect("verify"), records);
    drop(store);

    // Stored: the next open has nothing to catch up and serves the same.
    let store = LogStore::open(dir.path()).expect("reopen");
    assert_eq!(store.stats().chain_caught_up_at_open, 0);
    assert_eq!(all_events(&store, &books).await, chained);
    commit_all(&store, &books[1], &[deposit("after", 3)]).await;
    for b in &books {
        assert_eq!(first_break(&store, b).await, None, "{b} is chained");
    }
    assert_eq!(store.audit_chains().expect("audit"), Vec::new());
}

#[tokio::test]
async fn a_record_changed_with_its_checksum_breaks_the_chain_at_its_seq() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, books) = history(dir.path()).await;
    let before = all_events(&store, &books).await;
    drop(store);

    // Event 3 of the first book (the first deposit): new memo, good CRC.
    let found =
        talea_store_log::testing::set_memo(dir.path(), &books[0], 3, "tampered").expect("rewrite");
    assert!(found);

    // Not refused at open: the log is whole, only its data disagrees with
    // its hashes, which the audit reports.
    let store = LogStore::open(dir.path()).expect("opens");
    let after = all_events(&store, &books).await;
    let EventKind::Transaction(c) = &after[0][2].kind else {
        panic!("event 3 is a transaction");
    };
    assert_eq!(c.memo.as_deref(), Some("tampered"));
    assert_eq!(after[0][2].hash, before[0][2].hash, "the stored hash");
    assert_eq!(first_break(&store, &books[0]).await, Some(3));
    assert_eq!(first_break(&store, &books[1]).await, None);
    assert_eq!(after[1], before[1]);
    // The store's own audit says the same.
    let breaks = store.audit_chains().expect("audit");
    assert_eq!(breaks.len(), 1, "{breaks:?}");
    assert_eq!((&breaks[0].book, breaks[0].seq), (&books[0], 3));
    assert_eq!(breaks[0].stored, before[0][2].hash);
    assert_ne!(Some(breaks[0].recomputed), breaks[0].stored);
}

#[tokio::test]
async fn a_catch_up_cut_short_by_a_crash_carries_on_at_the_next_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (store, books) = history(dir.path()).await;
    let chained = all_events(&store, &books).await;
    let event_count = store.stats().events;
    drop(store);
    talea_store_log::testing::drop_chain_records(dir.path()).expect("rewrite");

    // The catch-up appends several small frames; then the last one is torn,
    // as if the process died while writing it.
    let config = LogConfig {
        frame_bytes_target: 256,
        ..LogConfig::default()
    };
    let store = LogStore::open_with(dir.path(), config).expect("an old log opens");
    assert_eq!(store.stats().chain_caught_up_at_open, event_count);
    drop(store);
    let log = dir.path().join(talea_store_log::LOG_FILE);
    let len = std::fs::metadata(&log).expect("stat").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&log)
        .expect("open the log")
        .set_len(len - 10)
        .expect("tear the last frame");

    let store = LogStore::open(dir.path()).expect("reopen after the crash");
    let stats = store.stats();
    assert!(stats.truncated_bytes_at_open > 0, "the torn frame is cut");
    assert!(
        (1..event_count).contains(&stats.chain_caught_up_at_open),
        "the rest of the chain is caught up: {} of {event_count}",
        stats.chain_caught_up_at_open
    );
    assert_eq!(all_events(&store, &books).await, chained);
    assert_eq!(store.audit_chains().expect("audit"), Vec::new());
}
