//! Conformance cases. Reads and pagination: accounts, transactions, events, account postings, lookups by id, books, and unknown books.

use std::sync::Arc;

use talea_core::{AccountKind, AccountName, Commit, EventKind, Side, Timestamp, TxId};

use crate::{BookInfo, Rejection, Store};

use super::support::*;

/// Accounts page by name, bytewise, strictly after `after`.
pub async fn accounts_pagination(store: Arc<dyn Store>) {
    let b = book("names");
    let names = [
        "beta:x", "Zeta", "alpha", "beta.y", "0num", "beta-z", "alpha:1", "Alpha",
    ];
    for name in names {
        open(&store, &b, name, AccountKind::Expense, None).await;
    }
    let mut sorted: Vec<&str> = names.to_vec();
    sorted.sort_unstable();
    let all: Vec<String> = store
        .accounts(&b, None, 100)
        .await
        .expect("accounts")
        .into_iter()
        .map(|a| a.name.as_str().to_owned())
        .collect();
    assert_eq!(all, sorted, "accounts are ordered bytewise");

    let mut paged = Vec::new();
    let mut after: Option<AccountName> = None;
    loop {
        let page = store
            .accounts(&b, after.as_ref(), 3)
            .await
            .expect("accounts");
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = Some(last.name.clone());
        paged.extend(page.into_iter().map(|a| a.name.as_str().to_owned()));
    }
    assert_eq!(paged, sorted, "pages concatenate to the full list");
    let after_b: Vec<String> = store
        .accounts(&b, Some(&acct("b")), 100)
        .await
        .expect("accounts")
        .into_iter()
        .map(|a| a.name.as_str().to_owned())
        .collect();
    let expected: Vec<&str> = sorted.iter().copied().filter(|n| *n > "b").collect();
    assert_eq!(
        after_b, expected,
        "`after` need not name an existing account"
    );
}

/// Transactions and events page by seq.
pub async fn transactions_and_events_pagination(store: Arc<dyn Store>) {
    let b = book("pages");
    customers(&store, &b).await; // seqs 1..=3
    let mut commits = Vec::new();
    for i in 0..5 {
        commits.push(committed(
            &commit_one(&store, &b, deposit(&format!("t{i}"), "bob", "BTC", 1 + i)).await,
        ));
    }
    let late = open(&store, &b, "late", AccountKind::Equity, None).await; // seq 9
    for i in 5..7 {
        commits.push(committed(
            &commit_one(&store, &b, deposit(&format!("t{i}"), "bob", "BTC", 1 + i)).await,
        ));
    }
    let seqs = |cs: &[Commit]| cs.iter().map(|c| c.seq).collect::<Vec<_>>();
    assert_eq!(seqs(&commits), vec![4, 5, 6, 7, 8, 10, 11]);
    assert_eq!(late.seq, 9);

    let page = store.transactions(&b, 0, 3).await.expect("transactions");
    assert_eq!(
        page,
        commits[..3].to_vec(),
        "transactions carry their postings"
    );
    assert_eq!(
        seqs(&store.transactions(&b, 6, 3).await.expect("transactions")),
        vec![7, 8, 10]
    );
    assert_eq!(
        seqs(&store.transactions(&b, 10, 3).await.expect("transactions")),
        vec![11]
    );
    assert!(
        store
            .transactions(&b, 11, 3)
            .await
            .expect("transactions")
            .is_empty()
    );
    assert!(
        store
            .transactions(&b, u64::MAX, 3)
            .await
            .expect("transactions")
            .is_empty()
    );

    let page = store.events(&b, 7, 3).await.expect("events");
    assert_eq!(
        page.iter().map(|e| e.seq).collect::<Vec<_>>(),
        vec![8, 9, 10]
    );
    assert_eq!(page[0].kind, EventKind::Transaction(commits[4].clone()));
    assert_eq!(page[0].committed_at, commits[4].committed_at);
    assert_eq!(page[1].kind, EventKind::AccountOpened(late));
    assert_eq!(page[2].kind, EventKind::Transaction(commits[5].clone()));
    assert!(store.events(&b, 11, 10).await.expect("events").is_empty());
    assert_eq!(assert_dense_log(&store, &b).await.len(), 11);
}

/// An account's postings carry running balances, and a page never splits
/// a transaction.
pub async fn account_postings_pages(store: Arc<dyn Store>) {
    let b = book("postings");
    customers(&store, &b).await;
    let alice = acct("alice");
    let t1 = committed(&commit_one(&store, &b, deposit("t1", "alice", "BTC", 10)).await);
    let t2 = committed(
        &commit_one(
            &store,
            &b,
            draft(
                "t2",
                &[
                    ("alice", "BTC", Side::Debit, 3),
                    ("hot", "BTC", Side::Credit, 5),
                    ("alice", "BTC", Side::Debit, 2),
                ],
            ),
        )
        .await,
    );
    let t3 = committed(&commit_one(&store, &b, deposit("t3", "alice", "USD", 7)).await);
    let t4 = committed(&commit_one(&store, &b, deposit("t4", "alice", "BTC", 1)).await);
    let _other = committed(&commit_one(&store, &b, deposit("t5", "bob", "BTC", 1)).await);

    let all = store
        .account_postings(&b, &alice, 0, 100)
        .await
        .expect("account_postings");
    let view: Vec<(u64, &str, i128, i128)> = all
        .iter()
        .map(|p| {
            (
                p.seq,
                p.asset.as_str(),
                p.amount.minor(),
                p.balance_after.minor(),
            )
        })
        .collect();
    assert_eq!(
        view,
        vec![
            (t1.seq, "BTC", -10, -10),
            (t2.seq, "BTC", 3, -7),
            (t2.seq, "BTC", 2, -5),
            (t3.seq, "USD", -7, -7),
            (t4.seq, "BTC", -1, -6),
        ]
    );
    for (p, c) in all.iter().zip([&t1, &t2, &t2, &t3, &t4]) {
        assert_eq!((p.tx_id, p.committed_at), (c.tx_id, c.committed_at));
    }

    // A limit that would end inside t2 takes the rest of t2 as well.
    let page = store
        .account_postings(&b, &alice, 0, 2)
        .await
        .expect("account_postings");
    assert_eq!(page, all[..3].to_vec());
    let page = store
        .account_postings(&b, &alice, t1.seq, 1)
        .await
        .expect("account_postings");
    assert_eq!(page, all[1..3].to_vec());
    let page = store
        .account_postings(&b, &alice, t2.seq, 1)
        .await
        .expect("account_postings");
    assert_eq!(page, all[3..4].to_vec());

    let mut paged = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .account_postings(&b, &alice, after, 1)
            .await
            .expect("account_postings");
        let Some(last) = page.last() else { break };
        after = last.seq;
        paged.extend(page);
    }
    assert_eq!(paged, all, "pages concatenate to the full history");
    assert!(
        store
            .account_postings(&b, &acct("nobody"), 0, 10)
            .await
            .expect("account_postings")
            .is_empty()
    );
}

/// A transaction is found by id in whatever book it is.
pub async fn transaction_by_id(store: Arc<dyn Store>) {
    let (left, right) = (book("left"), book("right"));
    customers(&store, &left).await;
    for name in ["alice", "bob", "hot"] {
        open(&store, &right, name, AccountKind::Asset, None).await;
    }
    let l = committed(&commit_one(&store, &left, deposit("same-key", "bob", "BTC", 3)).await);
    let r = committed(&commit_one(&store, &right, deposit("same-key", "bob", "BTC", 4)).await);
    assert_ne!(l.tx_id, r.tx_id, "keys are per book: both commit");
    assert_eq!(
        store.transaction(l.tx_id, None).await.expect("transaction"),
        Some(l.clone())
    );
    assert_eq!(
        store.transaction(r.tx_id, None).await.expect("transaction"),
        Some(r.clone())
    );
    assert_eq!(
        store
            .transaction(TxId::generate(), None)
            .await
            .expect("transaction"),
        None
    );

    // Scoped: found in the books given, absent outside them as if unknown.
    let scoped = |id, books: &'static [&'static str]| {
        let store = store.clone();
        async move {
            store
                .transaction(id, Some(books))
                .await
                .expect("transaction in books")
        }
    };
    assert_eq!(scoped(l.tx_id, &["left"]).await, Some(l.clone()));
    assert_eq!(
        scoped(l.tx_id, &["elsewhere", "left"]).await,
        Some(l.clone())
    );
    assert_eq!(scoped(l.tx_id, &["right"]).await, None);
    assert_eq!(scoped(r.tx_id, &["left", "elsewhere"]).await, None);
    assert_eq!(scoped(l.tx_id, &[]).await, None);
    assert_eq!(scoped(TxId::generate(), &["left"]).await, None);
}

/// Only books with events are listed.
pub async fn books_and_last_seq(store: Arc<dyn Store>) {
    assert!(store.books().await.expect("books").is_empty());
    let (alpha, bravo, charlie) = (book("alpha"), book("bravo"), book("charlie"));
    open(&store, &bravo, "x", AccountKind::Asset, None).await;
    open(&store, &alpha, "x", AccountKind::Asset, None).await;
    asset(&store, "BTC", 8).await;
    // A batch whose every draft is refused creates no book.
    let out = commit(&store, &charlie, &[transfer("k", "x", "y", "BTC", 1)]).await;
    assert_eq!(rejection(&out[0]), Rejection::UnknownAccount(acct("y")));
    assert_eq!(store.last_seq(&charlie).await.expect("last_seq"), None);
    open(&store, &bravo, "y", AccountKind::Asset, None).await;
    committed(&commit_one(&store, &bravo, transfer("k", "x", "y", "BTC", 1)).await);
    assert_eq!(
        store.books().await.expect("books"),
        vec![
            BookInfo {
                book: alpha.clone(),
                last_seq: 1
            },
            BookInfo {
                book: bravo.clone(),
                last_seq: 3
            },
        ]
    );
    assert_eq!(store.last_seq(&alpha).await.expect("last_seq"), Some(1));
    assert_eq!(store.last_seq(&bravo).await.expect("last_seq"), Some(3));
}

/// Reads of a book that does not exist behave as on an empty book.
pub async fn unknown_book_reads_empty(store: Arc<dyn Store>) {
    let b = book("nowhere");
    let a = acct("nobody");
    assert_eq!(store.last_seq(&b).await.expect("last_seq"), None);
    assert_eq!(store.account(&b, &a).await.expect("account"), None);
    assert!(
        store
            .accounts(&b, None, 10)
            .await
            .expect("accounts")
            .is_empty()
    );
    assert!(
        store
            .balances(&b, &a, None)
            .await
            .expect("balances")
            .is_empty()
    );
    assert!(
        store
            .balances(&b, &a, Some(Timestamp::from_micros(0)))
            .await
            .expect("balances")
            .is_empty()
    );
    assert!(
        store
            .account_postings(&b, &a, 0, 10)
            .await
            .expect("account_postings")
            .is_empty()
    );
    assert!(
        store
            .trial_balance(&b, None)
            .await
            .expect("trial_balance")
            .is_empty()
    );
    assert!(
        store
            .trial_balance(&b, Some(Timestamp::from_micros(i64::MAX)))
            .await
            .expect("trial")
            .is_empty()
    );
    assert!(
        store
            .transactions(&b, 0, 10)
            .await
            .expect("transactions")
            .is_empty()
    );
    assert!(store.events(&b, 0, 10).await.expect("events").is_empty());
    assert!(store.books().await.expect("books").is_empty());
    assert!(
        store
            .commit_batch(&b, &[])
            .await
            .expect("empty batch")
            .is_empty()
    );
    assert!(
        store.books().await.expect("books").is_empty(),
        "an empty batch creates nothing"
    );
}
