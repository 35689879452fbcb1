//! Conformance cases. Commits of several books in one storage transaction, alone and crossed.

use std::sync::Arc;

use talea_core::{BookName, Draft};

use crate::{Balance, BookBatch, Outcome, Rejection, Store, StoreError};

use super::support::*;

/// Several books' batches in one `commit_books`: each is decided exactly as
/// alone (its own seqs, keys, balances and rejections), a database refusal in
/// one book leaves the others' drafts alone, a replay deduplicates, and a
/// book named twice is refused whole.
pub async fn books_share_a_commit(store: Arc<dyn Store>) {
    let (a, b, c, fresh) = (
        book("multi-a"),
        book("multi-b"),
        book("multi-c"),
        book("multi-new"),
    );
    for bk in [&a, &b, &c] {
        customers(&store, bk).await;
    }
    let nul = refused_by_database("nul");
    let a_drafts = vec![
        deposit("k1", "alice", "BTC", 5),
        withdraw("k2", "alice", "BTC", 7),
        deposit("k1", "alice", "BTC", 5),
    ];
    // The same key in another book is another transaction.
    let b_drafts = vec![deposit("k1", "bob", "USD", 9), nul];
    let c_drafts = vec![transfer("k1", "nobody", "hot", "BTC", 1)];
    let fresh_drafts = vec![transfer("k1", "x", "y", "BTC", 1)];
    let batches = [
        BookBatch {
            book: &a,
            drafts: &a_drafts,
        },
        BookBatch {
            book: &fresh,
            drafts: &fresh_drafts,
        },
        BookBatch {
            book: &b,
            drafts: &b_drafts,
        },
        BookBatch {
            book: &c,
            drafts: &c_drafts,
        },
    ];
    let results = store.commit_books(&batches).await;
    assert_eq!(results.len(), 4, "one result per batch");
    let results: Vec<Vec<Outcome>> = results
        .into_iter()
        .map(|r| r.expect("commit_books"))
        .collect();
    let first = committed(&results[0][0]);
    assert_eq!((first.book.clone(), first.seq), (a.clone(), 4));
    assert_eq!(
        rejection(&results[0][1]),
        Rejection::InsufficientBalance {
            account: acct("alice"),
            asset: code("BTC"),
            balance: minor(-5)
        }
    );
    assert_eq!(results[0][2], Outcome::Deduplicated(first.clone()));
    assert_eq!(
        rejection(&results[1][0]),
        Rejection::UnknownAccount(acct("y")),
        "a book with no accounts yet"
    );
    let b_first = committed(&results[2][0]);
    assert_eq!((b_first.book.clone(), b_first.seq), (b.clone(), 4));
    assert_ne!(b_first.tx_id, first.tx_id);
    match &results[2][1] {
        Outcome::Committed(c) => assert_eq!(c.seq, 5),
        Outcome::Rejected(Rejection::Failed(_)) => {}
        other => panic!("expected Committed or Rejected(Failed), got {other:?}"),
    }
    assert_eq!(
        rejection(&results[3][0]),
        Rejection::UnknownAccount(acct("nobody"))
    );
    assert_logs_after_shared_commit(&store, [&a, &b, &c, &fresh]).await;

    // A replay of the whole call deduplicates book by book.
    let again = store.commit_books(&batches[..1]).await;
    let again = again
        .into_iter()
        .next()
        .expect("one result")
        .expect("commit_books");
    assert_eq!(again[0], Outcome::Deduplicated(first));
    assert_book_named_twice_refused(&store, &a, &a_drafts[..1]).await;
}

/// After the shared commit of `books_share_a_commit`: logs dense, heads and
/// balances as committed, and the book whose drafts all failed unknown.
async fn assert_logs_after_shared_commit(store: &Arc<dyn Store>, books: [&BookName; 4]) {
    let [a, b, c, fresh] = books;
    for bk in [a, b, c] {
        assert_dense_log(store, bk).await;
    }
    assert_eq!(store.last_seq(a).await.expect("last_seq"), Some(4));
    assert_eq!(store.last_seq(c).await.expect("last_seq"), Some(3));
    assert_eq!(
        store.last_seq(fresh).await.expect("last_seq"),
        None,
        "a book whose drafts all failed stays unknown"
    );
    assert_eq!(
        balances_sorted(store, a, &acct("alice"), None).await,
        vec![Balance {
            asset: code("BTC"),
            balance: minor(-5),
            held: crate::Held::default(),
        }]
    );
}

/// A book named twice in one call: refused whole, nothing written.
async fn assert_book_named_twice_refused(store: &Arc<dyn Store>, a: &BookName, drafts: &[Draft]) {
    let twice = [BookBatch { book: a, drafts }, BookBatch { book: a, drafts }];
    let results = store.commit_books(&twice).await;
    assert_eq!(results.len(), 2);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(StoreError::Other(_)))),
        "{results:?}"
    );
    assert_eq!(store.last_seq(a).await.expect("last_seq"), Some(4));
    assert!(store.commit_books(&[]).await.is_empty());
}

/// Eight writers committing the same four books at once, each naming them
/// in another order: nobody deadlocks, every draft commits once, and every
/// book's log stays dense.
pub async fn crossed_multi_book_commits(store: Arc<dyn Store>) {
    let books: Vec<BookName> = (0..4).map(|i| book(&format!("cross-{i}"))).collect();
    for bk in &books {
        customers(&store, bk).await;
    }
    let tasks: Vec<_> = (0..8)
        .map(|w| {
            let (store, books) = (store.clone(), books.clone());
            tokio::spawn(async move {
                let mut order: Vec<&BookName> = books.iter().collect();
                order.rotate_left(w % 4);
                if w % 2 == 1 {
                    order.reverse();
                }
                for round in 0..5 {
                    let drafts: Vec<Vec<Draft>> = order
                        .iter()
                        .map(|_| {
                            (0..3)
                                .map(|j| deposit(&format!("w{w}-r{round}-d{j}"), "bob", "USD", 1))
                                .collect()
                        })
                        .collect();
                    let batches: Vec<BookBatch<'_>> = order
                        .iter()
                        .zip(&drafts)
                        .map(|(book, drafts)| BookBatch { book, drafts })
                        .collect();
                    for result in store.commit_books(&batches).await {
                        for outcome in result.expect("commit_books") {
                            committed(&outcome);
                        }
                    }
                }
            })
        })
        .collect();
    let all = futures::future::join_all(tasks);
    tokio::time::timeout(std::time::Duration::from_secs(60), all)
        .await
        .expect("crossed commits finish (no deadlock)")
        .into_iter()
        .for_each(|r| r.expect("task"));
    for bk in &books {
        let events = assert_dense_log(&store, bk).await;
        assert_eq!(events.len(), 3 + 8 * 5 * 3);
        assert_eq!(
            balances_sorted(&store, bk, &acct("bob"), None).await,
            vec![Balance {
                asset: code("USD"),
                balance: minor(-(8 * 5 * 3)),
                held: crate::Held::default(),
            }]
        );
    }
}
