//! Helpers of the conformance cases: names, drafts, commits and the
//! expectations computed from what a store returned. They panic with a
//! message, as test code does.

use std::collections::BTreeMap;
use std::sync::Arc;

use talea_core::{
    Account, AccountKind, AccountName, Amount, Asset, AssetCode, BookName, Commit, Decimal, Draft,
    DraftPosting, IdempotencyKey, NewAccount, Scale, Side, Timestamp,
};

use crate::{Balance, Held, Opened, Outcome, Registered, Rejection, Store, TrialRow};

pub(super) fn book(s: &str) -> BookName {
    BookName::parse(s).expect("valid book name")
}

pub(super) fn acct(s: &str) -> AccountName {
    AccountName::parse(s).expect("valid account name")
}

pub(super) fn code(s: &str) -> AssetCode {
    AssetCode::parse(s).expect("valid asset code")
}

pub(super) fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::parse(s).expect("valid idempotency key")
}

pub(super) fn dec(s: &str) -> Decimal {
    Decimal::parse(s).expect("valid decimal")
}

pub(super) fn minor(n: i128) -> Amount {
    Amount::from_minor(n)
}

pub(super) fn micros_before(t: Timestamp) -> Timestamp {
    Timestamp::from_micros(t.micros() - 1)
}

pub(super) async fn asset(store: &Arc<dyn Store>, c: &str, scale: i64) -> Asset {
    let asset = Asset {
        code: code(c),
        scale: Scale::new(scale).expect("valid scale"),
        name: None,
    };
    match store.register_asset(&asset).await.expect("register_asset") {
        Registered::Created(a) | Registered::Existing(a) => a,
    }
}

pub(super) async fn open(
    store: &Arc<dyn Store>,
    b: &BookName,
    name: &str,
    kind: AccountKind,
    min: Option<&str>,
) -> Account {
    let new = NewAccount {
        name: acct(name),
        kind,
        min_balance: min.map(dec),
        metadata: "{}".to_owned(),
    };
    match store.open_account(b, &new).await.expect("open_account") {
        Opened::Created(a) => a,
        Opened::Existing(a) => panic!("account {name} already existed: {a:?}"),
    }
}

/// A draft from `(account, asset, side, minor units)` legs.
pub(super) fn draft(k: &str, legs: &[(&str, &str, Side, i128)]) -> Draft {
    let postings = legs
        .iter()
        .map(|&(account, asset, side, n)| DraftPosting {
            account: acct(account),
            asset: code(asset),
            side,
            amount: minor(n),
        })
        .collect();
    Draft::new(key(k), postings, None, None, None).expect("balanced draft")
}

/// Moves `n` of `asset` from `from` to `to`: credit `from`, debit `to`.
pub(super) fn transfer(k: &str, from: &str, to: &str, asset: &str, n: i128) -> Draft {
    draft(
        k,
        &[(to, asset, Side::Debit, n), (from, asset, Side::Credit, n)],
    )
}

/// A customer (a liability) deposits: debit `hot`, credit the customer.
pub(super) fn deposit(k: &str, customer: &str, asset: &str, n: i128) -> Draft {
    transfer(k, customer, "hot", asset, n)
}

/// A customer withdraws: debit the customer, credit `hot`.
pub(super) fn withdraw(k: &str, customer: &str, asset: &str, n: i128) -> Draft {
    transfer(k, "hot", customer, asset, n)
}

pub(super) async fn commit(store: &Arc<dyn Store>, b: &BookName, drafts: &[Draft]) -> Vec<Outcome> {
    let outcomes = store.commit_batch(b, drafts).await.expect("commit_batch");
    assert_eq!(outcomes.len(), drafts.len(), "one outcome per draft");
    outcomes
}

pub(super) async fn commit_one(store: &Arc<dyn Store>, b: &BookName, d: Draft) -> Outcome {
    commit(store, b, &[d]).await.remove(0)
}

#[track_caller]
pub(super) fn committed(outcome: &Outcome) -> Commit {
    match outcome {
        Outcome::Committed(c) => c.clone(),
        other => panic!("expected Committed, got {other:?}"),
    }
}

#[track_caller]
pub(super) fn rejection(outcome: &Outcome) -> Rejection {
    match outcome {
        Outcome::Rejected(r) => r.clone(),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

pub(super) fn signed(side: Side, amount: Amount) -> i128 {
    match side {
        Side::Debit => amount.minor(),
        Side::Credit => -amount.minor(),
    }
}

/// Every event of a book, read in pages of `page` to exercise paging too.
pub(super) async fn all_events(
    store: &Arc<dyn Store>,
    b: &BookName,
    page: u32,
) -> Vec<talea_core::Event> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let events = store.events(b, after, page).await.expect("events");
        assert!(
            events.len() <= page as usize,
            "events pages hold at most `limit`"
        );
        let Some(last) = events.last() else {
            return out;
        };
        after = last.seq;
        out.extend(events);
    }
}

/// Asserts the log is 1..=n with no gap and commit times non-decreasing.
pub(super) async fn assert_dense_log(
    store: &Arc<dyn Store>,
    b: &BookName,
) -> Vec<talea_core::Event> {
    let events = all_events(store, b, 97).await;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let expected: Vec<u64> = (1..=events.len() as u64).collect();
    assert_eq!(seqs, expected, "seqs are dense from 1");
    for pair in events.windows(2) {
        assert!(
            pair[0].committed_at <= pair[1].committed_at,
            "committed_at must not decrease with seq: {:?} then {:?}",
            pair[0],
            pair[1]
        );
    }
    let last = events.last().map(|e| e.seq);
    assert_eq!(
        store.last_seq(b).await.expect("last_seq"),
        last,
        "last_seq matches the log"
    );
    assert_chained(store, b, &events).await;
    events
}

/// Asserts every event of `b` carries its chain hash (`docs/proofs.md`):
/// the one the served JSON of the events, read back, hashes to.
pub(super) async fn assert_chained(
    store: &Arc<dyn Store>,
    b: &BookName,
    events: &[talea_core::Event],
) {
    let scales: BTreeMap<AssetCode, Scale> = store
        .assets()
        .await
        .expect("assets")
        .into_iter()
        .map(|a| (a.code, a.scale))
        .collect();
    let mut prev = [0u8; 32];
    for event in events {
        let expected = talea_api::event::event_hash(&prev, b.as_str(), event, &scales)
            .expect("an event has a canonical form");
        assert_eq!(
            event.hash,
            Some(expected),
            "event {} of {b} carries its chain hash",
            event.seq
        );
        prev = expected;
    }
}

/// The balances an account held as of `at`, computed from commits.
pub(super) fn expected_balances(
    commits: &[Commit],
    account: &AccountName,
    at: Option<Timestamp>,
) -> Vec<Balance> {
    let mut sums: BTreeMap<AssetCode, i128> = BTreeMap::new();
    for c in commits
        .iter()
        .filter(|c| at.is_none_or(|at| c.committed_at <= at))
    {
        for p in c.postings.iter().filter(|p| &p.account == account) {
            *sums.entry(p.asset.clone()).or_default() += signed(p.side, p.amount);
        }
    }
    sums.into_iter()
        .map(|(asset, n)| Balance {
            asset,
            balance: minor(n),
            held: Held::default(),
        })
        .collect()
}

/// An account's balances as the store reports them, ordered by asset (the
/// trait does not fix an order for this call).
pub(super) async fn balances_sorted(
    store: &Arc<dyn Store>,
    b: &BookName,
    account: &AccountName,
    at: Option<Timestamp>,
) -> Vec<Balance> {
    let mut balances = store.balances(b, account, at).await.expect("balances");
    balances.sort_by(|x, y| x.asset.cmp(&y.asset));
    balances
}

/// The trial balance as of `at`, computed from commits.
pub(super) fn expected_trial(
    commits: &[Commit],
    kinds: &BTreeMap<AccountName, AccountKind>,
    at: Option<Timestamp>,
) -> Vec<TrialRow> {
    let mut sums: BTreeMap<(AccountName, AssetCode), (i128, i128)> = BTreeMap::new();
    for c in commits
        .iter()
        .filter(|c| at.is_none_or(|at| c.committed_at <= at))
    {
        for p in &c.postings {
            let entry = sums
                .entry((p.account.clone(), p.asset.clone()))
                .or_default();
            match p.side {
                Side::Debit => entry.0 += p.amount.minor(),
                Side::Credit => entry.1 += p.amount.minor(),
            }
        }
    }
    sums.into_iter()
        .map(|((account, asset), (debits, credits))| TrialRow {
            kind: kinds[&account],
            account,
            asset,
            debits: minor(debits),
            credits: minor(credits),
            held: Held::default(),
        })
        .collect()
}

/// A book with BTC (scale 8) and USD (scale 2), a customer liability
/// `alice` that may not go below zero, an unbounded customer `bob`, and a
/// `hot` wallet (an asset account) funding them.
pub(super) async fn customers(store: &Arc<dyn Store>, b: &BookName) {
    asset(store, "BTC", 8).await;
    asset(store, "USD", 2).await;
    open(store, b, "alice", AccountKind::Liability, Some("0")).await;
    open(store, b, "bob", AccountKind::Liability, None).await;
    open(store, b, "hot", AccountKind::Asset, None).await;
}

/// A deposit of 100 BTC to `alice` whose memo holds a NUL byte: valid for
/// the planner, but a database may refuse it (Postgres text cannot hold a
/// NUL), so it exercises a refusal only the database makes.
pub(super) fn refused_by_database(k: &str) -> Draft {
    Draft::new(
        key(k),
        deposit(k, "alice", "BTC", 100).postings,
        None,
        Some("bad\0memo".to_owned()),
        None,
    )
    .expect("draft")
}

/// The outcomes of spawned commits, in spawn order.
pub(super) async fn joined(tasks: Vec<tokio::task::JoinHandle<Outcome>>) -> Vec<Outcome> {
    futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect()
}
