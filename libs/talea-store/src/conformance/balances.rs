//! Conformance cases. Balances: per account and trial balance `as_of` a time, and the consistent balance cut.

use std::collections::BTreeMap;
use std::sync::Arc;

use talea_core::{
    AccountKind, AccountName, Amount, AssetCode, BookName, Commit, EventKind, Side, Timestamp,
};

use crate::{AccountBalances, Balance, BalanceCut, Store};

use super::support::*;

/// Balances as of several commit times, including before the first commit.
pub async fn balances_as_of(store: Arc<dyn Store>) {
    let b = book("history");
    customers(&store, &b).await;
    let alice = acct("alice");
    let mut commits = Vec::new();
    for d in [
        deposit("d1", "alice", "BTC", 5),
        deposit("d2", "alice", "USD", 300),
        withdraw("w1", "alice", "BTC", 2),
        withdraw("w2", "alice", "USD", 300),
        deposit("d3", "bob", "BTC", 9),
    ] {
        commits.push(committed(&commit_one(&store, &b, d).await));
    }
    let first = commits[0].committed_at;
    assert!(
        balances_sorted(&store, &b, &alice, Some(micros_before(first)))
            .await
            .is_empty()
            || commits.iter().all(|c| c.committed_at == first),
        "nothing is held before the first commit"
    );
    let mut points: Vec<Option<Timestamp>> = commits.iter().map(|c| Some(c.committed_at)).collect();
    points.extend(commits.iter().map(|c| Some(micros_before(c.committed_at))));
    points.extend([
        None,
        Some(Timestamp::from_micros(i64::MAX)),
        Some(Timestamp::from_micros(i64::MIN)),
        Some(Timestamp::from_micros(0)),
        Some(Timestamp::from_micros(first.micros() + 3_600_000_000)),
    ]);
    for at in points {
        for account in [&alice, &acct("bob"), &acct("hot")] {
            assert_eq!(
                balances_sorted(&store, &b, account, at).await,
                expected_balances(&commits, account, at),
                "balances of {account} as of {at:?}"
            );
        }
    }
    // USD went to zero: present (it was touched), at zero.
    assert!(
        balances_sorted(&store, &b, &alice, None)
            .await
            .contains(&Balance {
                asset: code("USD"),
                balance: Amount::ZERO,
                held: crate::Held::default(),
            })
    );
}

/// The trial balance as of several commit times.
pub async fn trial_balance_as_of(store: Arc<dyn Store>) {
    let b = book("trial");
    customers(&store, &b).await;
    open(&store, &b, "fees", AccountKind::Revenue, None).await;
    let kinds: BTreeMap<AccountName, AccountKind> = [
        ("alice", AccountKind::Liability),
        ("bob", AccountKind::Liability),
        ("hot", AccountKind::Asset),
        ("fees", AccountKind::Revenue),
    ]
    .into_iter()
    .map(|(n, k)| (acct(n), k))
    .collect();
    let mut commits = Vec::new();
    let steps = [
        vec![deposit("d1", "alice", "BTC", 50)],
        vec![
            deposit("d2", "bob", "USD", 1000),
            deposit("d3", "alice", "USD", 20),
        ],
        vec![draft(
            "fee",
            &[
                ("alice", "BTC", Side::Debit, 10),
                ("hot", "BTC", Side::Credit, 9),
                ("fees", "BTC", Side::Credit, 1),
            ],
        )],
        vec![withdraw("w1", "bob", "USD", 1000)],
    ];
    for batch in steps {
        commits.extend(commit(&store, &b, &batch).await.iter().map(committed));
    }
    let mut points: Vec<Option<Timestamp>> =
        vec![None, Some(micros_before(commits[0].committed_at))];
    points.extend(commits.iter().map(|c| Some(c.committed_at)));
    points.push(Some(Timestamp::from_micros(i64::MAX)));
    for at in points {
        let rows = store.trial_balance(&b, at).await.expect("trial_balance");
        assert_eq!(
            rows,
            expected_trial(&commits, &kinds, at),
            "trial balance as of {at:?}"
        );
        let mut per_asset: BTreeMap<&AssetCode, (i128, i128)> = BTreeMap::new();
        for row in &rows {
            let e = per_asset.entry(&row.asset).or_default();
            e.0 += row.debits.minor();
            e.1 += row.credits.minor();
        }
        assert!(
            per_asset.values().all(|(d, c)| d == c),
            "every asset balances as of {at:?}"
        );
    }
}

/// The balances a cut reports are exactly those the log holds up to its
/// seq, even while writers commit; filters, limits and unknown names.
pub async fn balance_cut_is_consistent(store: Arc<dyn Store>) {
    let b = book("cut");
    assert_eq!(
        store.balance_cut(&b, None, 10).await.expect("cut"),
        None,
        "a book without events has no cut"
    );
    customers(&store, &b).await;
    let cut = store
        .balance_cut(&b, None, 10)
        .await
        .expect("cut")
        .expect("a cut");
    assert_eq!(cut.last_seq, 3);
    let names: Vec<&str> = cut.accounts.iter().map(|a| a.account.as_str()).collect();
    assert_eq!(names, ["alice", "bob", "hot"]);
    assert!(cut.accounts.iter().all(|a| a.balances.is_empty()));
    assert_eq!(cut.accounts[2].kind, AccountKind::Asset);

    commit_one(&store, &b, deposit("d0", "alice", "BTC", 500)).await;
    commit_one(&store, &b, deposit("d1", "bob", "USD", 70)).await;

    let cuts = cuts_under_racing_writers(&store, &b).await;
    let (last_seq, commits) = assert_cuts_match_log(&store, &b, &cuts).await;
    assert_cut_filters(&store, &b, last_seq, &commits).await;
}

/// Takes cuts while writers race them; the last is taken after they end.
async fn cuts_under_racing_writers(store: &Arc<dyn Store>, b: &BookName) -> Vec<BalanceCut> {
    // Writers race the cuts; each cut must match the log at its seq.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, b) = (Arc::clone(store), b.clone());
            tokio::spawn(async move {
                for i in 0..15 {
                    let drafts = [
                        transfer(&format!("w{w}-{i}-a"), "alice", "bob", "USD", 3 + w),
                        transfer(&format!("w{w}-{i}-b"), "bob", "alice", "BTC", 1),
                    ];
                    for outcome in commit(&store, &b, &drafts).await {
                        committed(&outcome);
                    }
                }
            })
        })
        .collect();
    let mut cuts = Vec::new();
    for _ in 0..20 {
        cuts.push(
            store
                .balance_cut(b, None, 10)
                .await
                .expect("cut")
                .expect("a cut"),
        );
        tokio::task::yield_now().await;
    }
    for w in writers {
        w.await.expect("writer");
    }
    cuts.push(
        store
            .balance_cut(b, None, 10)
            .await
            .expect("cut")
            .expect("a cut"),
    );
    cuts
}

/// Each cut matches the log at its seq; returns the last seq and every commit.
async fn assert_cuts_match_log(
    store: &Arc<dyn Store>,
    b: &BookName,
    cuts: &[BalanceCut],
) -> (u64, Vec<Commit>) {
    let events = assert_dense_log(store, b).await;
    let commits: Vec<Commit> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Transaction(c) => Some(c.clone()),
            EventKind::AccountOpened(_) | EventKind::HoldExpired(_) => None,
        })
        .collect();
    for cut in cuts {
        let at_seq: Vec<Commit> = commits
            .iter()
            .filter(|c| c.seq <= cut.last_seq)
            .cloned()
            .collect();
        let event = &events[usize::try_from(cut.last_seq).expect("seq") - 1];
        assert_eq!(
            cut.committed_at, event.committed_at,
            "the cut's commit time"
        );
        for a in &cut.accounts {
            assert_eq!(
                a.balances,
                expected_balances(&at_seq, &a.account, None),
                "{} at seq {}",
                a.account,
                cut.last_seq
            );
        }
    }
    let last = cuts.last().expect("a cut");
    assert_eq!(last.last_seq, events.len() as u64);
    (last.last_seq, commits)
}

/// Filters keep only existing names, by name, each once; limits count accounts.
async fn assert_cut_filters(
    store: &Arc<dyn Store>,
    b: &BookName,
    last_seq: u64,
    commits: &[Commit],
) {
    let filter = [acct("hot"), acct("nobody"), acct("alice"), acct("hot")];
    let filtered = store
        .balance_cut(b, Some(&filter), 10)
        .await
        .expect("cut")
        .expect("a cut");
    assert_eq!(filtered.last_seq, last_seq);
    let names: Vec<&str> = filtered
        .accounts
        .iter()
        .map(|a| a.account.as_str())
        .collect();
    assert_eq!(names, ["alice", "hot"]);
    assert_eq!(
        filtered.accounts[0],
        AccountBalances {
            account: acct("alice"),
            kind: AccountKind::Liability,
            balances: expected_balances(commits, &acct("alice"), None),
        }
    );
    let nobody = store
        .balance_cut(b, Some(&[acct("nobody")]), 10)
        .await
        .expect("cut")
        .expect("the book still has a cut");
    assert!(nobody.accounts.is_empty());
    assert_eq!(nobody.last_seq, last_seq);
    let limited = store
        .balance_cut(b, None, 2)
        .await
        .expect("cut")
        .expect("a cut");
    assert_eq!(limited.accounts.len(), 2);
    assert_eq!(limited.accounts[1].account, acct("bob"));
}
