//! `LedgerService` over a real Postgres: batches of many books sharing
//! storage transactions (the combiner in `committer.rs`); `audit`: the
//! audit of a book over Postgres, SQLite and the log store.

use std::sync::Arc;

use talea_api::{LedgerApi, PostTransactionRequest};
use talea_ledger::{LedgerConfig, LedgerService};
use talea_store::Store;
use talea_store_pg::PgStore;
use talea_testkit::TestDb;

mod audit;

const BOOKS: usize = 24;
const POSTS_PER_BOOK: usize = 20;

async fn ledger(config: LedgerConfig) -> (LedgerService, TestDb) {
    let db = talea_testkit::fresh_database()
        .await
        .expect("test database");
    let store = PgStore::connect(&db.url, 8).await.expect("connect");
    store.migrate().await.expect("migrate");
    let store: Arc<dyn Store> = Arc::new(store);
    let ledger = LedgerService::new(store, config, talea_telemetry::Metrics::new());
    let books: Vec<String> = (0..BOOKS).map(|book| format!("book-{book}")).collect();
    let books: Vec<&str> = books.iter().map(String::as_str).collect();
    talea_testkit::ledger::seed(&ledger, &books, &[("a", "asset"), ("b", "liability")])
        .await
        .expect("seeds the ledger");
    (ledger, db)
}

/// One minor unit from `a` to `b`.
fn post(key: String) -> PostTransactionRequest {
    talea_testkit::ledger::transfer(&key, "a", "b", "0.00000001")
}

/// Posts `POSTS_PER_BOOK` to each book, one client per book, all at once;
/// checks every post committed with the book's next seq.
async fn post_everywhere(ledger: &LedgerService) {
    let tasks: Vec<_> = (0..BOOKS)
        .map(|book| {
            let ledger = ledger.clone();
            tokio::spawn(async move {
                let name = format!("book-{book}");
                let mut seqs = Vec::new();
                for i in 0..POSTS_PER_BOOK {
                    let tx = ledger
                        .post_transaction(&name, post(format!("k-{book}-{i}")))
                        .await
                        .expect("post");
                    assert_ne!(tx.deduplicated, Some(true));
                    seqs.push(tx.seq);
                }
                seqs
            })
        })
        .collect();
    for task in tasks {
        let seqs = task.await.expect("task");
        // Two account openings, then one seq per post, in order.
        let expected: Vec<u64> = (3..3 + POSTS_PER_BOOK as u64).collect();
        assert_eq!(seqs, expected);
    }
    for book in 0..BOOKS {
        let events = ledger
            .events(
                &format!("book-{book}"),
                talea_api::SeqPage {
                    after_seq: None,
                    limit: Some(1000),
                },
            )
            .await
            .expect("events");
        assert_eq!(events.events.len(), 2 + POSTS_PER_BOOK, "book-{book}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_of_many_books_share_storage_transactions() {
    let (ledger, db) = ledger(LedgerConfig {
        commits_in_flight: 1,
        ..LedgerConfig::default()
    })
    .await;
    post_everywhere(&ledger).await;
    let shared = &ledger.metrics().books_per_commit;
    let (count, sum) = (shared.get_sample_count(), shared.get_sample_sum());
    assert!(count > 0);
    assert!(
        sum / count as f64 > 1.0,
        "with one commit in flight and {BOOKS} busy books, commits carry several books \
         ({sum} book batches in {count} commits)"
    );
    db.drop_database().await.expect("drop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn combining_off_commits_each_book_alone() {
    let (ledger, db) = ledger(LedgerConfig {
        commit_books_max: 1,
        ..LedgerConfig::default()
    })
    .await;
    post_everywhere(&ledger).await;
    assert_eq!(ledger.metrics().books_per_commit.get_sample_count(), 0);
    db.drop_database().await.expect("drop");
}

#[test]
fn settings_out_of_bounds_are_refused_by_name() {
    assert_eq!(LedgerConfig::default().check(), Ok(()));
    let cases = [
        (
            LedgerConfig {
                commit_books_max: 0,
                ..LedgerConfig::default()
            },
            "TALEA_COMMIT_BOOKS_MAX must be 1..=256, not 0",
        ),
        (
            LedgerConfig {
                commits_in_flight: 65,
                ..LedgerConfig::default()
            },
            "TALEA_COMMITS_IN_FLIGHT must be 1..=64, not 65",
        ),
        (
            LedgerConfig {
                write_batch_max: 1_025,
                ..LedgerConfig::default()
            },
            "TALEA_WRITE_BATCH_MAX must be 1..=1024, not 1025",
        ),
        (
            LedgerConfig {
                write_queue_depth: 0,
                ..LedgerConfig::default()
            },
            "TALEA_WRITE_QUEUE_DEPTH must be 1..=1000000, not 0",
        ),
    ];
    for (config, message) in cases {
        assert_eq!(config.check(), Err(message.to_owned()));
    }
}

/// Many clients on one book, in small batches, alone and combined with
/// other books: every post commits exactly once, the book's seqs stay
/// dense, the balance is the sum, and a retry of every key is deduplicated.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_clients_of_one_book_commit_densely_once() {
    const CLIENTS: usize = 32;
    const POSTS: usize = 10;
    for books_max in [1, 32] {
        let (ledger, db) = ledger(LedgerConfig {
            commit_books_max: books_max,
            write_batch_max: 4,
            ..LedgerConfig::default()
        })
        .await;
        let post_all = |ledger: LedgerService| async move {
            let tasks: Vec<_> = (0..CLIENTS)
                .map(|client| {
                    let ledger = ledger.clone();
                    tokio::spawn(async move {
                        let mut answers = Vec::new();
                        for i in 0..POSTS {
                            let tx = ledger
                                .post_transaction("book-0", post(format!("k-{client}-{i}")))
                                .await
                                .expect("post");
                            answers.push(tx);
                        }
                        answers
                    })
                })
                .collect();
            let mut answers = Vec::new();
            for task in tasks {
                answers.extend(task.await.expect("task"));
            }
            answers
        };
        let first = post_all(ledger.clone()).await;
        assert!(first.iter().all(|tx| tx.deduplicated != Some(true)));
        let mut seqs: Vec<u64> = first.iter().map(|tx| tx.seq).collect();
        seqs.sort_unstable();
        // Two account openings, then one seq per post, none skipped.
        let expected: Vec<u64> = (3..3 + (CLIENTS * POSTS) as u64).collect();
        assert_eq!(seqs, expected, "books_max {books_max}");

        let again = post_all(ledger.clone()).await;
        assert!(again.iter().all(|tx| tx.deduplicated == Some(true)));
        let events = ledger
            .events(
                "book-0",
                talea_api::SeqPage {
                    after_seq: None,
                    limit: Some(1000),
                },
            )
            .await
            .expect("events");
        assert_eq!(events.events.len(), 2 + CLIENTS * POSTS);
        let balances = ledger
            .balances("book-0", "b", None)
            .await
            .expect("balances");
        // 320 minor units of an asset of scale 8.
        assert_eq!(
            balances.balances.get("BTC").map(String::as_str),
            Some("0.0000032"),
            "books_max {books_max}"
        );
        db.drop_database().await.expect("drop");
    }
}
