//! Postgres-only behaviour: migration checks, instances sharing one database, NOTIFY.

use std::collections::BTreeMap;
use std::time::Duration;

use sqlx::postgres::{PgListener, PgNotification};
use talea_core::{AccountKind, Amount, BookName, Draft, IdempotencyKey, NewAccount};
use talea_store::{Opened, Outcome, Rejection, Store, StoreError};
use talea_store_pg::{NOTIFY_CHANNEL, PgStore};
use talea_testkit::domain::{acct, book, transfer};

use crate::{POOL_MAX, migrated_store};

/// How long a test waits for something asynchronous (a notification).
const DEADLINE: Duration = Duration::from_secs(10);

/// BTC and two unbounded accounts, `a` and `b`, in `book`.
async fn setup(store: &PgStore, b: &BookName) {
    store
        .register_asset(&talea_testkit::domain::asset())
        .await
        .expect("register BTC");
    for name in ["a", "b"] {
        let new = NewAccount {
            name: acct(name),
            kind: AccountKind::Asset,
            min_balance: None,
            metadata: "{}".to_owned(),
        };
        store.open_account(b, &new).await.expect("open account");
    }
}

#[tokio::test]
async fn an_unmigrated_database_is_reported_with_the_fix() {
    let db = talea_testkit::fresh_database()
        .await
        .expect("fresh database");
    let store = PgStore::connect(&db.url, 2).await.expect("connect");
    match store.check_migrated().await {
        Err(StoreError::NotMigrated(message)) => {
            assert!(message.contains("talead init"), "{message}")
        }
        other => panic!("expected NotMigrated, got {other:?}"),
    }
    // Using the store anyway says the same, not a generic error.
    assert!(matches!(
        store.books().await,
        Err(StoreError::NotMigrated(_))
    ));

    store.migrate().await.expect("migrate");
    store.check_migrated().await.expect("migrated now");
    store.migrate().await.expect("migrating again is a no-op");

    // A schema behind the binary (here: a migration record missing).
    sqlx::query("DELETE FROM _sqlx_migrations")
        .execute(store.pool())
        .await
        .expect("forget the migrations");
    match store.check_migrated().await {
        Err(StoreError::NotMigrated(message)) => {
            assert!(message.contains("talead init"), "{message}")
        }
        other => panic!("expected NotMigrated, got {other:?}"),
    }
    store.pool().close().await;
    db.drop_database().await.expect("drop database");
}

#[tokio::test]
async fn an_unreachable_server_is_unavailable() {
    // Port 1 on loopback refuses connections at once.
    match PgStore::connect("postgres://postgres@127.0.0.1:1/postgres", 1).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_one_sequence_and_one_key_space() {
    let (first, db) = migrated_store().await;
    // A second pool is a second "instance": it shares only the database.
    let second = PgStore::connect(&db.url, POOL_MAX)
        .await
        .expect("second instance");
    let b = book("shared");
    setup(&first, &b).await;

    // Each instance runs 8 writers; every key is posted by both instances.
    let mut tasks = Vec::new();
    for store in [first.clone(), second.clone()] {
        for w in 0..8 {
            let (store, b) = (store.clone(), b.clone());
            tasks.push(tokio::spawn(async move {
                let mut out = Vec::new();
                for i in 0..4 {
                    let drafts = vec![
                        transfer(&format!("w{w}-{i}-x"), "a", "b", 1),
                        transfer(&format!("w{w}-{i}-y"), "b", "a", 2),
                    ];
                    let outcomes = store.commit_batch(&b, &drafts).await.expect("commit_batch");
                    out.extend(drafts.into_iter().map(|d| d.idempotency_key).zip(outcomes));
                }
                out
            }));
        }
    }
    let mut by_key: BTreeMap<IdempotencyKey, Vec<Outcome>> = BTreeMap::new();
    for task in futures::future::join_all(tasks).await {
        for (key, outcome) in task.expect("writer task") {
            by_key.entry(key).or_default().push(outcome);
        }
    }
    assert_eq!(by_key.len(), 8 * 4 * 2);
    for (key, outcomes) in &by_key {
        let committed: Vec<_> = outcomes
            .iter()
            .filter(|o| matches!(o, Outcome::Committed(_)))
            .collect();
        assert_eq!(
            committed.len(),
            1,
            "key {key:?} commits exactly once: {outcomes:?}"
        );
        let (Outcome::Committed(c) | Outcome::Deduplicated(c)) = &outcomes[0] else {
            panic!("no outcome is a rejection: {outcomes:?}");
        };
        for o in outcomes {
            match o {
                Outcome::Committed(x) | Outcome::Deduplicated(x) => assert_eq!(x, c),
                Outcome::Rejected(r) => panic!("unexpected rejection {r:?}"),
            }
        }
    }
    let events = second.events(&b, 0, 1000).await.expect("events");
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (1..=2 + 64).collect::<Vec<_>>(),
        "one dense sequence across instances"
    );
    assert!(
        events
            .windows(2)
            .all(|w| w[0].committed_at <= w[1].committed_at)
    );
    assert_eq!(first.last_seq(&b).await.expect("last_seq"), Some(66));

    first.pool().close().await;
    second.pool().close().await;
    db.drop_database().await.expect("drop database");
}

/// The next notification, failing the test after [`DEADLINE`].
async fn next(listener: &mut PgListener) -> PgNotification {
    tokio::time::timeout(DEADLINE, listener.recv())
        .await
        .expect("a notification before the deadline")
        .expect("a notification")
}

#[tokio::test]
async fn each_commit_notifies_once_with_book_and_last_seq() {
    let (store, db) = migrated_store().await;
    let mut listener = PgListener::connect(&db.url).await.expect("listener");
    listener.listen(NOTIFY_CHANNEL).await.expect("LISTEN");
    let b = book("notified");

    setup(&store, &b).await;
    for expected in ["notified:1", "notified:2"] {
        let n = next(&mut listener).await;
        assert_eq!((n.channel(), n.payload()), (NOTIFY_CHANNEL, expected));
    }
    // A batch of three: one notification, with its last seq.
    let outcomes = store
        .commit_batch(
            &b,
            &[
                transfer("k1", "a", "b", 1),
                transfer("k2", "a", "b", 1),
                transfer("k3", "a", "b", 1),
            ],
        )
        .await
        .expect("commit_batch");
    assert!(outcomes.iter().all(|o| matches!(o, Outcome::Committed(_))));
    assert_eq!(next(&mut listener).await.payload(), "notified:5");
    // A batch that commits nothing notifies nothing: the next payload is
    // the next commit's.
    let outcomes = store
        .commit_batch(&b, &[transfer("k1", "a", "b", 1)])
        .await
        .expect("replay");
    assert!(matches!(outcomes[0], Outcome::Deduplicated(_)));
    store
        .commit_batch(&b, &[transfer("k4", "a", "b", 1)])
        .await
        .expect("commit_batch");
    assert_eq!(next(&mut listener).await.payload(), "notified:6");

    drop(listener);
    store.pool().close().await;
    db.drop_database().await.expect("drop database");
}

#[tokio::test]
async fn a_refused_draft_fails_alone_with_the_database_reason() {
    let (store, db) = migrated_store().await;
    let b = book("refused");
    setup(&store, &b).await;
    let nul = Draft::new(
        IdempotencyKey::parse("nul").expect("key"),
        transfer("nul", "a", "b", 7).postings,
        None,
        None,
        Some(("{\"x\":\"\0\"}".to_owned(), "{\"x\":\"\0\"}".to_owned())),
    )
    .expect("draft");
    let outcomes = store
        .commit_batch(
            &b,
            &[
                transfer("ok-1", "a", "b", 1),
                nul,
                transfer("ok-2", "a", "b", 1),
            ],
        )
        .await
        .expect("commit_batch");
    let Outcome::Rejected(Rejection::Failed(reason)) = &outcomes[1] else {
        panic!("the NUL draft is refused by the database: {outcomes:?}");
    };
    assert!(
        reason.contains("22021"),
        "the reason carries the SQLSTATE: {reason}"
    );
    let seqs: Vec<u64> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Committed(c) => Some(c.seq),
            _ => None,
        })
        .collect();
    assert_eq!(seqs, vec![3, 4]);
    let balances = store
        .balances(&b, &acct("b"), None)
        .await
        .expect("balances");
    assert_eq!(
        balances[0].balance,
        Amount::from_minor(2),
        "the refused draft moved nothing"
    );
    store.pool().close().await;
    db.drop_database().await.expect("drop database");
}

#[tokio::test]
async fn a_counter_row_without_events_is_not_a_book() {
    let (store, db) = migrated_store().await;
    sqlx::query("INSERT INTO books (book) VALUES ('empty')")
        .execute(store.pool())
        .await
        .expect("insert a bare counter row");
    assert!(store.books().await.expect("books").is_empty());
    assert_eq!(
        store.last_seq(&book("empty")).await.expect("last_seq"),
        None
    );
    // The book still works, starting at seq 1.
    let opened = store
        .open_account(
            &book("empty"),
            &NewAccount {
                name: acct("x"),
                kind: AccountKind::Equity,
                min_balance: None,
                metadata: "{}".to_owned(),
            },
        )
        .await
        .expect("open");
    assert!(matches!(opened, Opened::Created(ref a) if a.seq == 1));
    let stats = store.pool_stats();
    assert!(
        stats.size >= 1 && stats.idle <= stats.size && stats.max == POOL_MAX,
        "{stats:?}"
    );
    store.pool().close().await;
    db.drop_database().await.expect("drop database");
}

#[tokio::test]
async fn a_young_ledger_is_analyzed_once_a_book_passes_a_thousand_seqs() {
    let (store, db) = migrated_store().await;
    let b = book("young");
    setup(&store, &b).await;
    let analyzed = || async {
        let row: (i64,) = sqlx::query_as(
            "SELECT count(*) FROM pg_stat_user_tables \
             WHERE relname = 'transactions' AND last_analyze IS NOT NULL",
        )
        .fetch_one(store.pool())
        .await
        .expect("pg_stat_user_tables");
        row.0 == 1
    };
    let drafts: Vec<Draft> = (0..997)
        .map(|i| transfer(&format!("k{i}"), "a", "b", 1))
        .collect();
    store.commit_batch(&b, &drafts).await.expect("commit 997");
    // Seq 999: below the first threshold, nothing analyzed.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!analyzed().await, "analyzed before seq 1000");
    store
        .commit_batch(&b, &[transfer("last", "a", "b", 1)])
        .await
        .expect("commit seq 1000");
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while !analyzed().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the tables were not analyzed after seq 1000"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    store.pool().close().await;
    db.drop_database().await.expect("drop database");
}
