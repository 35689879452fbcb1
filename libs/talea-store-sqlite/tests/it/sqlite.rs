//! SQLite-only behaviour: reopening a file, several handles on one file, another
//! process holding the write lock, racing overdraws, and how values are stored.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, SqliteConnection};
use talea_core::{
    AccountKind, Amount, Asset, BookName, Commit, Decimal, Draft, IdempotencyKey, NewAccount,
    Scale, Timestamp,
};
use talea_store::{Opened, Outcome, Registered, Rejection, Store, StoreError};
use talea_store_sqlite::{BUSY_TIMEOUT_MS, SqliteStore};
use talea_testkit::domain::{acct, asset_code, book, transfer};

use crate::temp_store;

/// How long a test waits for something asynchronous (a notice).
const DEADLINE: Duration = Duration::from_secs(10);

/// alice deposits `n`: debit `hot`, credit `alice` (raising her liability).
fn deposit(key: &str, n: i128) -> Draft {
    transfer(key, "alice", "hot", n)
}

/// alice withdraws `n`: debit `alice`, credit `hot`.
fn withdraw(key: &str, n: i128) -> Draft {
    transfer(key, "hot", "alice", n)
}

/// BTC; `hot` (an unbounded asset account) and `alice` (a liability that may
/// not go below zero) in `b`.
async fn setup(store: &SqliteStore, b: &BookName) {
    store
        .register_asset(&Asset {
            code: asset_code(),
            scale: Scale::new(8).expect("scale"),
            name: Some("Bitcoin".to_owned()),
        })
        .await
        .expect("register BTC");
    for (name, kind, min) in [
        ("hot", AccountKind::Asset, None),
        ("alice", AccountKind::Liability, Some(Decimal::ZERO)),
    ] {
        let new = NewAccount {
            name: acct(name),
            kind,
            min_balance: min,
            metadata: r#"{"owner":"ops"}"#.to_owned(),
        };
        store.open_account(b, &new).await.expect("open account");
    }
}

fn committed(outcome: &Outcome) -> Commit {
    match outcome {
        Outcome::Committed(c) => c.clone(),
        other => panic!("expected Committed, got {other:?}"),
    }
}

async fn commit_one(store: &SqliteStore, b: &BookName, d: Draft) -> Outcome {
    let mut outcomes = store.commit_batch(b, &[d]).await.expect("commit_batch");
    assert_eq!(outcomes.len(), 1);
    outcomes.remove(0)
}

/// Every seq of `b` from 1 to its last, in order, with no gap.
async fn assert_dense(store: &SqliteStore, b: &BookName) -> Vec<talea_core::Event> {
    let events = store.events(b, 0, 1000).await.expect("events");
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs, expected, "the log is dense");
    assert_eq!(
        store.last_seq(b).await.expect("last_seq"),
        events.last().map(|e| e.seq)
    );
    events
}

/// Everything the store can say about `b`, for comparing before and after.
#[derive(Debug, PartialEq)]
struct Snapshot {
    assets: Vec<Asset>,
    books: Vec<talea_store::BookInfo>,
    accounts: Vec<talea_core::Account>,
    events: Vec<talea_core::Event>,
    transactions: Vec<Commit>,
    balances: Vec<Vec<talea_store::Balance>>,
    balances_as_of: Vec<Vec<talea_store::Balance>>,
    trial: Vec<talea_store::TrialRow>,
    trial_as_of: Vec<talea_store::TrialRow>,
    postings: Vec<talea_store::AccountPosting>,
}

async fn snapshot(store: &SqliteStore, b: &BookName, as_of: Timestamp) -> Snapshot {
    let accounts = store.accounts(b, None, 1000).await.expect("accounts");
    let mut balances = Vec::new();
    let mut balances_as_of = Vec::new();
    for a in &accounts {
        balances.push(store.balances(b, &a.name, None).await.expect("balances"));
        balances_as_of.push(
            store
                .balances(b, &a.name, Some(as_of))
                .await
                .expect("balances as of"),
        );
    }
    Snapshot {
        assets: store.assets().await.expect("assets"),
        books: store.books().await.expect("books"),
        events: store.events(b, 0, 1000).await.expect("events"),
        transactions: store.transactions(b, 0, 1000).await.expect("transactions"),
        balances,
        balances_as_of,
        trial: store.trial_balance(b, None).await.expect("trial"),
        trial_as_of: store.trial_balance(b, Some(as_of)).await.expect("trial"),
        postings: store
            .account_postings(b, &acct("alice"), 0, 1000)
            .await
            .expect("postings"),
        accounts,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_file_reads_back_everything() {
    let (store, dir) = temp_store().await;
    let path = store.path().to_owned();
    let b = book("reopen");
    setup(&store, &b).await;
    let rich = Draft::new(
        IdempotencyKey::parse("rich").expect("key"),
        deposit("x", 5).postings,
        Some(Timestamp::from_micros(-62_135_596_800_000_000)),
        Some("memo ✓".to_owned()),
        Some((r#"{"b":1,"a":2}"#.to_owned(), r#"{"a":2,"b":1}"#.to_owned())),
    )
    .expect("draft");
    let first = store
        .commit_batch(
            &b,
            &[deposit("d-1", 1_000), deposit("d-2", i128::from(u64::MAX))],
        )
        .await
        .expect("first batch");
    let cut = committed(&first[1]).committed_at;
    committed(&commit_one(&store, &b, rich.clone()).await);
    let before = snapshot(&store, &b, cut).await;
    assert_eq!(before.events.len(), 5);

    // Closed cleanly: the WAL is checkpointed into the file.
    store.close().await;
    drop(store);
    let reopened = SqliteStore::open(&path).await.expect("reopen");
    assert_eq!(snapshot(&reopened, &b, cut).await, before);
    // Keys survive: a retry is answered with the stored commit.
    let Outcome::Deduplicated(original) = commit_one(&reopened, &b, rich).await else {
        panic!("a retry after reopening is deduplicated");
    };
    assert_eq!(
        Some(&talea_core::EventKind::Transaction(original)),
        before.events.last().map(|e| &e.kind)
    );
    // The log goes on where it stopped, and time does not go backwards.
    let next = committed(&commit_one(&reopened, &b, deposit("d-3", 1)).await);
    assert_eq!(next.seq, 6);
    assert!(next.committed_at >= before.events[4].committed_at);

    // Dropped without closing (as a crash would leave it): the WAL holds the
    // last commit, and the next open replays it.
    drop(reopened);
    let again = SqliteStore::open(&path).await.expect("open again");
    let events = assert_dense(&again, &b).await;
    assert_eq!(events.len(), 6);
    assert_eq!(
        events[5].kind,
        talea_core::EventKind::Transaction(next.clone())
    );
    again.close().await;
    dir.close().expect("remove the directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn handles_on_one_file_share_one_writer_and_one_notice_bus() {
    let (first, dir) = temp_store().await;
    let b = book("shared");
    setup(&first, &b).await;
    // The same file by other spellings: another `open`, and a URL.
    let second = SqliteStore::open(&dir.path().join(".").join("talea.db"))
        .await
        .expect("second handle");
    let url = format!("sqlite://{}", dir.path().join("talea.db").display());
    let third = SqliteStore::connect(&url).await.expect("third handle");
    assert_eq!(second.path(), first.path());
    assert_eq!(third.path(), first.path());

    // A commit through one handle is announced to a watcher of another.
    let mut notices = third.watch().await.expect("watch");
    let c = committed(&commit_one(&first, &b, deposit("fund", 100)).await);
    let notice = tokio::time::timeout(DEADLINE, async {
        loop {
            match notices.recv().await {
                Ok(n) if n.book == b && n.last_seq == c.seq => return n,
                Ok(_) => {}
                Err(e) => panic!("notice channel: {e}"),
            }
        }
    })
    .await
    .expect("a notice within the deadline");
    assert_eq!(notice.last_seq, 3);

    // Writers on every handle at once: one dense log, every post counted once.
    let handles = [first.clone(), second.clone(), third.clone()];
    let writers: Vec<_> = (0..12)
        .map(|w| {
            let store = handles[w % 3].clone();
            let b = b.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let key = format!("w-{w}-{i}");
                    committed(&commit_one(&store, &b, deposit(&key, 1)).await);
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.expect("writer");
    }
    let events = assert_dense(&second, &b).await;
    assert_eq!(events.len(), 3 + 120);
    let balances = third
        .balances(&b, &acct("alice"), None)
        .await
        .expect("balances");
    assert_eq!(balances[0].balance, Amount::from_minor(-(100 + 120)));

    // Closing through one handle closes the file for all of them; the path
    // then opens as a new store with the same contents.
    second.close().await;
    assert!(first.books().await.is_err(), "closed for every handle");
    let reopened = SqliteStore::open(first.path()).await.expect("reopen");
    assert_eq!(assert_dense(&reopened, &b).await, events);
    reopened.close().await;
    dir.close().expect("remove the directory");
}

/// A raw connection to the store's file, as another process would hold.
async fn other_process(path: &Path) -> SqliteConnection {
    let url = format!("sqlite://{}", path.display());
    SqliteConnection::connect(&url)
        .await
        .expect("a second connection to the file")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_process_holding_the_write_lock_delays_writes_only() {
    let (store, dir) = temp_store().await;
    let b = book("locked");
    setup(&store, &b).await;
    let mut other = other_process(store.path()).await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .expect("take the write lock");

    let writer = {
        let store = store.clone();
        let b = b.clone();
        tokio::spawn(async move { commit_one(&store, &b, deposit("k", 1)).await })
    };
    let mut writer = std::pin::pin!(writer);
    // While the lock is held the commit waits (bounded by the busy timeout),
    // and reads go on (WAL readers never wait for the writer).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut writer)
            .await
            .is_err(),
        "the commit waits for the other process's write lock"
    );
    assert_eq!(store.last_seq(&b).await.expect("read"), Some(2));
    sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("release the write lock");
    let outcome = tokio::time::timeout(DEADLINE, writer)
        .await
        .expect("the commit proceeds once the lock is free")
        .expect("writer task");
    assert_eq!(committed(&outcome).seq, 3);
    other.close().await.expect("close the other connection");
    store.close().await;
    dir.close().expect("remove the directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_past_the_busy_timeout_is_unavailable() {
    let (store, dir) = temp_store().await;
    let b = book("stuck");
    setup(&store, &b).await;
    let mut other = other_process(store.path()).await;
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .expect("take the write lock");
    let started = tokio::time::Instant::now();
    let result = store.commit_batch(&b, &[deposit("k", 1)]).await;
    assert!(
        matches!(result, Err(StoreError::Unavailable(_))),
        "expected Unavailable, got {result:?}"
    );
    assert!(started.elapsed() >= Duration::from_millis(BUSY_TIMEOUT_MS / 2));
    sqlx::query("ROLLBACK")
        .execute(&mut other)
        .await
        .expect("release the write lock");
    // Nothing was written, and the key is free.
    assert_eq!(store.last_seq(&b).await.expect("read"), Some(2));
    assert_eq!(
        committed(&commit_one(&store, &b, deposit("k", 1)).await).seq,
        3
    );
    other.close().await.expect("close the other connection");
    store.close().await;
    dir.close().expect("remove the directory");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn min_balance_holds_under_many_racing_tasks() {
    let (store, dir) = temp_store().await;
    let b = book("race");
    setup(&store, &b).await;
    // alice holds 100; 64 tasks try to withdraw 7 each, some in batches of
    // four, through two handles: exactly 14 fit above zero.
    committed(&commit_one(&store, &b, deposit("fund", 100)).await);
    let other = SqliteStore::open(store.path())
        .await
        .expect("second handle");
    let handles = Arc::new([store.clone(), other]);
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let store = handles[t % 2].clone();
            let b = b.clone();
            tokio::spawn(async move {
                let drafts: Vec<Draft> = if t % 4 == 0 {
                    (0..4).map(|i| withdraw(&format!("w-{t}-{i}"), 7)).collect()
                } else {
                    vec![withdraw(&format!("w-{t}"), 7)]
                };
                store.commit_batch(&b, &drafts).await.expect("commit_batch")
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.extend(task.await.expect("task"));
    }
    assert_eq!(outcomes.len(), 8 * 4 + 24);
    let wins = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Committed(_)))
        .count();
    assert_eq!(wins, 14);
    for outcome in &outcomes {
        match outcome {
            Outcome::Committed(_) => {}
            Outcome::Rejected(Rejection::InsufficientBalance {
                account, balance, ..
            }) => {
                assert_eq!(account, &acct("alice"));
                assert_eq!(
                    *balance,
                    Amount::from_minor(-2),
                    "refused only at the floor"
                );
            }
            other => panic!("unexpected outcome {other:?}"),
        }
    }
    let balances = store
        .balances(&b, &acct("alice"), None)
        .await
        .expect("balances");
    assert_eq!(balances[0].balance, Amount::from_minor(-2));
    // The log tells the same story: alice's balance after each commit walks
    // down by 7 from -100, in seq order.
    let events = assert_dense(&store, &b).await;
    let walk: Vec<i128> = events
        .iter()
        .filter_map(|e| match &e.kind {
            talea_core::EventKind::Transaction(c) => c
                .postings
                .iter()
                .find(|p| p.account == acct("alice"))
                .map(|p| p.balance_after.minor()),
            _ => None,
        })
        .collect();
    let expected: Vec<i128> = (0..=14).map(|i| -100 + 7 * i).collect();
    assert_eq!(walk, expected);
    store.close().await;
    dir.close().expect("remove the directory");
}

#[tokio::test]
async fn amounts_are_stored_as_text_in_a_wal_file() {
    let (store, dir) = temp_store().await;
    let b = book("text");
    setup(&store, &b).await;
    committed(&commit_one(&store, &b, deposit("max", i128::MAX)).await);
    let mut raw = other_process(store.path()).await;
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut raw)
        .await
        .expect("journal mode");
    assert_eq!(mode, "wal");
    let stored: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT typeof(amount) || typeof(balance_after) || typeof(debits_after), amount, \
                balance_after FROM postings ORDER BY seq, leg",
    )
    .fetch_all(&mut raw)
    .await
    .expect("postings");
    let max = i128::MAX.to_string();
    let min = format!("-{max}");
    assert_eq!(
        stored,
        vec![
            ("texttexttext".to_owned(), max.clone(), max.clone()),
            ("texttexttext".to_owned(), min.clone(), min),
        ]
    );
    raw.close().await.expect("close");
    store.close().await;
    dir.close().expect("remove the directory");
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("notes.txt");
    std::fs::write(&path, vec![b'x'; 4096]).expect("write a non-database file");
    match SqliteStore::open(&path).await {
        Err(StoreError::Corrupt(message)) => {
            assert!(message.contains("notes.txt"), "{message}")
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Opening creates missing directories.
    let nested = dir.path().join("a").join("b").join("talea.db");
    let store = SqliteStore::open(&nested).await.expect("open nested");
    assert!(nested.exists());
    assert!(matches!(
        store
            .register_asset(&Asset {
                code: asset_code(),
                scale: Scale::new(8).expect("scale"),
                name: None,
            })
            .await,
        Ok(Registered::Created(_))
    ));
    assert!(matches!(
        store
            .open_account(
                &book("b"),
                &NewAccount {
                    name: acct("a"),
                    kind: AccountKind::Asset,
                    min_balance: None,
                    metadata: "{}".to_owned(),
                },
            )
            .await,
        Ok(Opened::Created(_))
    ));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_draft_the_database_refuses_fails_alone() {
    let (store, dir) = temp_store().await;
    let b = book("refusal");
    setup(&store, &b).await;
    // Valid drafts hold nothing SQLite refuses (a NUL byte in a memo, which
    // Postgres refuses, is stored as is), so a trigger stands in for a
    // constraint that only the database knows.
    let nul = Draft::new(
        IdempotencyKey::parse("nul").expect("key"),
        deposit("nul", 1).postings,
        None,
        Some("bad\0memo".to_owned()),
        None,
    )
    .expect("draft");
    let stored = committed(&commit_one(&store, &b, nul).await);
    assert_eq!(
        store
            .transaction(stored.tx_id, None)
            .await
            .expect("read")
            .map(|c| c.memo),
        Some(Some("bad\0memo".to_owned()))
    );
    let mut raw = other_process(store.path()).await;
    sqlx::query(
        "CREATE TRIGGER refuse_memo BEFORE INSERT ON transactions \
         WHEN NEW.memo = 'refuse me' BEGIN SELECT RAISE(ABORT, 'memo refused'); END",
    )
    .execute(&mut raw)
    .await
    .expect("create the trigger");
    let refused = Draft::new(
        IdempotencyKey::parse("refused").expect("key"),
        deposit("refused", 100).postings,
        None,
        Some("refuse me".to_owned()),
        None,
    )
    .expect("draft");
    let outcomes = store
        .commit_batch(
            &b,
            &[
                deposit("before", 5),
                refused,
                withdraw("after", 6),
                withdraw("needs-refused", 10),
            ],
        )
        .await
        .expect("commit_batch");
    assert_eq!(committed(&outcomes[0]).seq, 4);
    match &outcomes[1] {
        Outcome::Rejected(Rejection::Failed(message)) => {
            assert!(message.contains("memo refused"), "{message}")
        }
        other => panic!("expected Rejected(Failed), got {other:?}"),
    }
    let after = committed(&outcomes[2]);
    assert_eq!(after.seq, 5, "seqs stay dense around the refused draft");
    assert_eq!(
        outcomes[3],
        Outcome::Rejected(Rejection::InsufficientBalance {
            account: acct("alice"),
            asset: asset_code(),
            balance: Amount::ZERO,
        }),
        "later drafts do not see the refused one"
    );
    assert_eq!(assert_dense(&store, &b).await.len(), 5);

    // Its key stays free.
    sqlx::query("DROP TRIGGER refuse_memo")
        .execute(&mut raw)
        .await
        .expect("drop the trigger");
    assert_eq!(
        committed(&commit_one(&store, &b, deposit("refused", 100)).await).seq,
        6
    );
    raw.close().await.expect("close");
    store.close().await;
    dir.close().expect("remove the directory");
}
