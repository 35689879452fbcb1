//! Conformance cases. What a commit decides and keeps: `min_balance`, bad drafts beside good ones, amount extremes, every detail of a commit, and isolation of a database refusal.

use std::sync::Arc;

use talea_core::{AccountKind, Amount, Commit, Draft, DraftPosting, EventKind, Side, Timestamp};

use crate::{Balance, Outcome, Rejection, Store, TrialRow};

use super::support::*;

/// `min_balance` is in normal-side terms, per asset, binds only drafts that
/// lower the balance, and judges a draft by its net effect.
pub async fn min_balance_rules(store: Arc<dyn Store>) {
    let b = book("rules");
    customers(&store, &b).await;
    // An asset account that may not go below zero (debit-normal).
    open(&store, &b, "reserve", AccountKind::Asset, Some("0")).await;
    // A liability with an overdraft of 5 USD (credit-normal, min -5).
    open(
        &store,
        &b,
        "credit-line",
        AccountKind::Liability,
        Some("-5"),
    )
    .await;
    // A minimum above what the account holds.
    open(&store, &b, "floor", AccountKind::Liability, Some("100")).await;
    // A minimum finer than the asset's scale (USD has 2 decimals).
    open(&store, &b, "fine", AccountKind::Liability, Some("0.005")).await;

    // reserve: credit below zero is refused; its balance before was 0.
    let out = commit_one(&store, &b, transfer("r1", "reserve", "hot", "USD", 1)).await;
    assert_eq!(
        rejection(&out),
        Rejection::InsufficientBalance {
            account: acct("reserve"),
            asset: code("USD"),
            balance: Amount::ZERO
        }
    );
    committed(&commit_one(&store, &b, transfer("r2", "hot", "reserve", "USD", 7)).await);
    committed(&commit_one(&store, &b, transfer("r3", "reserve", "hot", "USD", 7)).await);

    // credit-line: may be debited down to -5.00 normal-side, not beyond.
    committed(&commit_one(&store, &b, withdraw("c1", "credit-line", "USD", 300)).await);
    committed(&commit_one(&store, &b, withdraw("c2", "credit-line", "USD", 200)).await);
    assert_eq!(
        rejection(&commit_one(&store, &b, withdraw("c3", "credit-line", "USD", 1)).await),
        Rejection::InsufficientBalance {
            account: acct("credit-line"),
            asset: code("USD"),
            balance: minor(500)
        },
        "balance is the storage balance before the draft (debits minus credits)"
    );

    // floor: below its minimum already; deposits still pass, withdrawals do not.
    committed(&commit_one(&store, &b, deposit("f1", "floor", "USD", 1000)).await);
    assert!(matches!(
        rejection(&commit_one(&store, &b, withdraw("f2", "floor", "USD", 1)).await),
        Rejection::InsufficientBalance { .. }
    ));

    // fine: 0.01 held, minimum 0.005: withdrawing 0.01 would leave 0 < 0.005.
    committed(&commit_one(&store, &b, deposit("n1", "fine", "USD", 1)).await);
    assert!(matches!(
        rejection(&commit_one(&store, &b, withdraw("n2", "fine", "USD", 1)).await),
        Rejection::InsufficientBalance { .. }
    ));

    // Net effect: out and back in within one draft does not lower alice.
    let round_trip = draft(
        "net",
        &[
            ("alice", "BTC", Side::Debit, 5),
            ("alice", "BTC", Side::Credit, 5),
            ("hot", "BTC", Side::Debit, 1),
            ("hot", "BTC", Side::Credit, 1),
        ],
    );
    committed(&commit_one(&store, &b, round_trip).await);

    // Per asset: alice holds BTC, not USD; a USD withdrawal is refused
    // even in a draft that also deposits BTC.
    committed(&commit_one(&store, &b, deposit("a1", "alice", "BTC", 50)).await);
    let mixed = draft(
        "mixed",
        &[
            ("hot", "BTC", Side::Debit, 10),
            ("alice", "BTC", Side::Credit, 10),
            ("alice", "USD", Side::Debit, 1),
            ("hot", "USD", Side::Credit, 1),
        ],
    );
    assert_eq!(
        rejection(&commit_one(&store, &b, mixed).await),
        Rejection::InsufficientBalance {
            account: acct("alice"),
            asset: code("USD"),
            balance: Amount::ZERO
        }
    );
    // An unbounded account may go anywhere.
    committed(&commit_one(&store, &b, withdraw("b1", "bob", "USD", 1_000_000)).await);
    assert_dense_log(&store, &b).await;
}

/// Bad drafts in the middle of a batch are refused alone; the rest commit
/// with consecutive seqs and see only each other.
pub async fn bad_drafts_in_batch(store: Arc<dyn Store>) {
    const BIG: i128 = i128::MAX - 100;
    let b = book("mixed");
    customers(&store, &b).await;
    let outcomes = commit(
        &store,
        &b,
        &[
            deposit("ok-1", "alice", "BTC", 10),
            withdraw("too-much", "alice", "BTC", 11),
            withdraw("ok-2", "alice", "BTC", 4),
            draft(
                "unknown",
                &[
                    ("hot", "BTC", Side::Debit, 1),
                    ("ghost-1", "BTC", Side::Credit, 1),
                    ("ghost-2", "BTC", Side::Debit, 1),
                    ("hot", "BTC", Side::Credit, 1),
                ],
            ),
            // Large but representable: bob goes to BIG, hot to 6 - BIG (and
            // hot's cumulative credits to 4 + BIG, which must fit as well).
            draft(
                "huge",
                &[
                    ("bob", "BTC", Side::Debit, BIG),
                    ("hot", "BTC", Side::Credit, BIG),
                ],
            ),
            // bob would pass i128::MAX.
            draft(
                "overflow",
                &[
                    ("bob", "BTC", Side::Debit, 101),
                    ("hot", "BTC", Side::Credit, 101),
                ],
            ),
            withdraw("ok-3", "alice", "BTC", 6),
        ],
    )
    .await;
    let c1 = committed(&outcomes[0]);
    assert_eq!(
        rejection(&outcomes[1]),
        Rejection::InsufficientBalance {
            account: acct("alice"),
            asset: code("BTC"),
            balance: minor(-10)
        },
        "a later draft sees the earlier committed drafts of its batch"
    );
    let c2 = committed(&outcomes[2]);
    assert_eq!(
        rejection(&outcomes[3]),
        Rejection::UnknownAccount(acct("ghost-1")),
        "the first unknown account in posting order is named"
    );
    let huge = committed(&outcomes[4]);
    assert_eq!(rejection(&outcomes[5]), Rejection::AmountOutOfRange);
    let c3 = committed(&outcomes[6]);
    assert_eq!(
        [c1.seq, c2.seq, huge.seq, c3.seq],
        [4, 5, 6, 7],
        "only committed drafts take seqs, consecutively"
    );
    assert_eq!(
        c3.postings[0].balance_after,
        Amount::ZERO,
        "alice: -10 + 4 + 6"
    );
    assert_eq!(
        c3.postings[1].balance_after,
        minor(-BIG),
        "hot: 10 - 4 - BIG - 6"
    );
    assert_dense_log(&store, &b).await;
}

/// Balances at the edges of i128 are stored and read back exactly.
pub async fn amount_extremes(store: Arc<dyn Store>) {
    let b = book("extremes");
    asset(&store, "WEI", 18).await;
    open(&store, &b, "a", AccountKind::Asset, None).await;
    open(&store, &b, "l", AccountKind::Liability, None).await;
    let max = i128::MAX;
    let c1 = committed(
        &commit_one(
            &store,
            &b,
            draft(
                "max",
                &[
                    ("a", "WEI", Side::Debit, max),
                    ("l", "WEI", Side::Credit, max),
                ],
            ),
        )
        .await,
    );
    assert_eq!(c1.postings[0].balance_after, minor(max));
    assert_eq!(c1.postings[1].balance_after, minor(-max));
    assert_eq!(
        rejection(
            &commit_one(
                &store,
                &b,
                draft(
                    "over",
                    &[("a", "WEI", Side::Debit, 1), ("l", "WEI", Side::Credit, 1)]
                )
            )
            .await
        ),
        Rejection::AmountOutOfRange
    );
    let c2 = committed(
        &commit_one(
            &store,
            &b,
            draft(
                "back",
                &[("l", "WEI", Side::Debit, 1), ("a", "WEI", Side::Credit, 1)],
            ),
        )
        .await,
    );
    assert_eq!(
        store
            .transaction(c1.tx_id, None)
            .await
            .expect("transaction"),
        Some(c1.clone())
    );
    assert_eq!(
        balances_sorted(&store, &b, &acct("a"), None).await,
        vec![Balance {
            asset: code("WEI"),
            balance: minor(max - 1),
            held: crate::Held::default(),
        }]
    );
    assert_eq!(
        balances_sorted(&store, &b, &acct("a"), Some(c1.committed_at)).await,
        expected_balances(&[c1.clone(), c2.clone()], &acct("a"), Some(c1.committed_at))
    );
    let trial = store.trial_balance(&b, None).await.expect("trial_balance");
    assert_eq!(
        trial,
        vec![
            TrialRow {
                account: acct("a"),
                kind: AccountKind::Asset,
                asset: code("WEI"),
                debits: minor(max),
                credits: minor(1),
                held: crate::Held::default(),
            },
            TrialRow {
                account: acct("l"),
                kind: AccountKind::Liability,
                asset: code("WEI"),
                debits: minor(1),
                credits: minor(max),
                held: crate::Held::default(),
            },
        ]
    );
    let postings = store
        .account_postings(&b, &acct("l"), 0, 10)
        .await
        .expect("account_postings");
    let amounts: Vec<(i128, i128)> = postings
        .iter()
        .map(|p| (p.amount.minor(), p.balance_after.minor()))
        .collect();
    assert_eq!(amounts, vec![(-max, -max), (1, -max + 1)]);
}

/// Every field of a commit round-trips; a batch shares one commit time.
pub async fn commit_details(store: Arc<dyn Store>) {
    let b = book("details");
    customers(&store, &b).await;
    let opened = store
        .account(&b, &acct("hot"))
        .await
        .expect("account")
        .expect("hot exists");
    let rich = rich_draft();
    let early = Draft::new(
        key("early"),
        deposit("early", "bob", "USD", 1).postings,
        Some(Timestamp::from_micros(-1)),
        None,
        None,
    )
    .expect("draft");
    let outcomes = commit(
        &store,
        &b,
        &[
            rich.clone(),
            early.clone(),
            deposit("plain", "bob", "BTC", 2),
        ],
    )
    .await;
    let commits: Vec<Commit> = outcomes.iter().map(committed).collect();
    let c = &commits[0];
    assert_eq!(c.book, b);
    assert_eq!(c.idempotency_key, rich.idempotency_key);
    assert_eq!(c.occurred_at, rich.occurred_at);
    assert_eq!(c.memo, rich.memo);
    assert_eq!(
        c.metadata.as_deref(),
        Some(r#"{"z":1, "a":[true,null]}"#),
        "metadata as given"
    );
    assert_eq!(commits[1].occurred_at, Some(Timestamp::from_micros(-1)));
    assert_eq!(commits[2].memo, None);
    assert_eq!(commits[2].metadata, None);
    assert_eq!(commits[2].occurred_at, None);
    let legs: Vec<(&str, Side, i128, i128)> = c
        .postings
        .iter()
        .map(|p| {
            (
                p.account.as_str(),
                p.side,
                p.amount.minor(),
                p.balance_after.minor(),
            )
        })
        .collect();
    assert_eq!(
        legs,
        vec![
            ("hot", Side::Debit, 1_500_000, 1_500_000),
            ("alice", Side::Credit, 1_500_000, -1_500_000)
        ]
    );
    assert!(
        commits.iter().all(|x| x.committed_at == c.committed_at),
        "one commit time per batch"
    );
    assert!(
        c.committed_at >= opened.opened_at,
        "commit time never goes backwards"
    );
    assert_eq!(
        commits.iter().map(|x| x.seq).collect::<Vec<_>>(),
        vec![4, 5, 6]
    );
    for x in &commits {
        assert_eq!(
            store
                .transaction(x.tx_id, None)
                .await
                .expect("transaction")
                .as_ref(),
            Some(x)
        );
    }
    let events = assert_dense_log(&store, &b).await;
    assert_eq!(events[3].kind, EventKind::Transaction(c.clone()));
    assert_eq!(events[3].committed_at, c.committed_at);
    assert_eq!(events[3].accounts(), vec![&acct("hot"), &acct("alice")]);
    // The stored commit is what a replay returns, byte for byte.
    assert_eq!(
        commit_one(&store, &b, rich).await,
        Outcome::Deduplicated(c.clone())
    );
}

/// A draft using every field: occurred_at, a memo beyond ASCII, and metadata
/// with its canonical form.
fn rich_draft() -> Draft {
    Draft::new(
        key("rich ~ key"),
        vec![
            DraftPosting {
                account: acct("hot"),
                asset: code("BTC"),
                side: Side::Debit,
                amount: minor(1_500_000),
            },
            DraftPosting {
                account: acct("alice"),
                asset: code("BTC"),
                side: Side::Credit,
                amount: minor(1_500_000),
            },
        ],
        Some(Timestamp::from_micros(1_700_000_000_123_456)),
        Some("withdrawal to bc1q… ✓".to_owned()),
        Some((
            r#"{"z":1, "a":[true,null]}"#.to_owned(),
            r#"{"a":[true,null],"z":1}"#.to_owned(),
        )),
    )
    .expect("draft")
}

/// A draft the database may refuse (a NUL byte in its memo) does not poison
/// its batch: either the backend stores it, or it alone is rejected with
/// `Failed`, and the drafts after it are decided without it.
pub async fn database_refusal_is_isolated(store: Arc<dyn Store>) {
    let b = book("refusal");
    customers(&store, &b).await;
    let nul = refused_by_database("nul");
    let outcomes = commit(
        &store,
        &b,
        &[
            deposit("before", "alice", "BTC", 5),
            nul,
            withdraw("after", "alice", "BTC", 5),
            withdraw("needs-nul", "alice", "BTC", 10),
        ],
    )
    .await;
    let before = committed(&outcomes[0]);
    assert_eq!(before.seq, 4);
    match &outcomes[1] {
        Outcome::Committed(c) => {
            assert_eq!(c.memo.as_deref(), Some("bad\0memo"));
            assert_eq!(committed(&outcomes[2]).seq, 6);
            assert_eq!(committed(&outcomes[3]).seq, 7, "funded by the stored draft");
        }
        Outcome::Rejected(Rejection::Failed(_)) => {
            let after = committed(&outcomes[2]);
            assert_eq!(after.seq, 5, "seqs stay dense around the refused draft");
            assert_eq!(after.postings[1].balance_after, Amount::ZERO);
            assert_eq!(
                rejection(&outcomes[3]),
                Rejection::InsufficientBalance {
                    account: acct("alice"),
                    asset: code("BTC"),
                    balance: Amount::ZERO
                },
                "later drafts do not see the refused one"
            );
            // Its key stays free.
            committed(&commit_one(&store, &b, deposit("nul", "alice", "BTC", 100)).await);
        }
        other => panic!("expected Committed or Rejected(Failed), got {other:?}"),
    }
    assert_dense_log(&store, &b).await;
}
