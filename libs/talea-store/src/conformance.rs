//! Backend-agnostic conformance tests: free functions every store backend's tests call.
//!
//! Each case is `pub async fn case(store: Arc<dyn Store>)`, takes a fresh,
//! empty store, and panics on failure. A backend wires all of them at once
//! with [`conformance_tests!`](crate::conformance_tests), which expands to
//! one `#[tokio::test]` per case, so a case added here runs everywhere
//! without anyone remembering to call it; [`ALL`] and [`run_all`] serve
//! other harnesses.
//!
//! Expectations are computed from what the store returned (commit times,
//! ids) rather than assumed, so the cases hold for any correct backend:
//! "the stores behave identically" is what this module checks.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use talea_core::{
    Account, AccountKind, AccountName, Amount, Asset, AssetCode, BookName, Commit, Decimal, Draft,
    DraftPosting, EventKind, IdempotencyKey, NewAccount, Scale, Side, Timestamp, TxId,
};

use crate::{
    AccountBalances, Balance, BookBatch, BookInfo, Opened, Outcome, Registered, Rejection, Store,
    StoreError, TrialRow,
};

/// A conformance case, boxed so cases can sit in one list.
pub type Case = fn(Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Declares the list of cases once: [`ALL`] and `conformance_tests!` both
/// expand from it, so they cannot drift apart.
macro_rules! cases {
    ($d:tt $($name:ident),* $(,)?) => {
        /// Every case with its name, in a stable order.
        pub const ALL: &[(&str, Case)] = &[$((stringify!($name), |store| Box::pin($name(store)))),*];

        /// Expands to one `#[tokio::test]` per conformance case (named after
        /// the case). The calling crate needs `tokio` (with the `macros` and
        /// `rt-multi-thread` features) as a dev-dependency.
        ///
        /// With one argument, `$make_store().await` yields a fresh, empty
        /// `Arc<dyn Store>`. With two, it yields `(store, fixture)`, and
        /// `$teardown(fixture).await` runs after the case passes (to drop a
        /// test database, say; a failed case leaves it for inspection).
        ///
        /// ```text
        /// mod conformance {
        ///     talea_store::conformance_tests!(super::fresh_store);
        ///     // or: talea_store::conformance_tests!(super::fresh_store, super::teardown);
        /// }
        /// ```
        #[macro_export]
        macro_rules! conformance_tests {
            ($d make_store:expr) => {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        let store: ::std::sync::Arc<dyn $d crate::Store> = ($d make_store)().await;
                        $d crate::conformance::$name(store).await;
                    }
                )*
            };
            ($d make_store:expr, $d teardown:expr) => {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        let (store, fixture): (::std::sync::Arc<dyn $d crate::Store>, _) =
                            ($d make_store)().await;
                        $d crate::conformance::$name(store).await;
                        ($d teardown)(fixture).await;
                    }
                )*
            };
        }
    };
}

cases!($
    asset_registration,
    account_open,
    concurrent_account_opens,
    idempotent_replay,
    idempotency_key_reused,
    duplicate_keys_within_batch,
    concurrent_same_key,
    dense_sequences_under_concurrency,
    min_balance_under_racing_overdraws,
    min_balance_rules,
    bad_drafts_in_batch,
    rejected_key_stays_free,
    amount_extremes,
    accounts_pagination,
    transactions_and_events_pagination,
    balances_as_of,
    trial_balance_as_of,
    account_postings_pages,
    transaction_by_id,
    books_and_last_seq,
    unknown_book_reads_empty,
    commit_details,
    database_refusal_is_isolated,
    subscribe_catch_up,
    watch_announces_commits,
    balance_cut_is_consistent,
    books_share_a_commit,
    crossed_multi_book_commits,
);

/// Runs every case in order, each on a store from `make_store`.
pub async fn run_all<F, Fut>(mut make_store: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    for (name, case) in ALL {
        eprintln!("conformance: {name}");
        case(make_store().await).await;
    }
}

// ---------------------------------------------------------------------------
// Helpers. They panic with a message, as test code does.

fn book(s: &str) -> BookName {
    BookName::parse(s).expect("valid book name")
}

fn acct(s: &str) -> AccountName {
    AccountName::parse(s).expect("valid account name")
}

fn code(s: &str) -> AssetCode {
    AssetCode::parse(s).expect("valid asset code")
}

fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::parse(s).expect("valid idempotency key")
}

fn dec(s: &str) -> Decimal {
    Decimal::parse(s).expect("valid decimal")
}

fn minor(n: i128) -> Amount {
    Amount::from_minor(n)
}

fn micros_before(t: Timestamp) -> Timestamp {
    Timestamp::from_micros(t.micros() - 1)
}

async fn asset(store: &Arc<dyn Store>, c: &str, scale: i64) -> Asset {
    let asset = Asset {
        code: code(c),
        scale: Scale::new(scale).expect("valid scale"),
        name: None,
    };
    match store.register_asset(&asset).await.expect("register_asset") {
        Registered::Created(a) | Registered::Existing(a) => a,
    }
}

async fn open(
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
fn draft(k: &str, legs: &[(&str, &str, Side, i128)]) -> Draft {
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
fn transfer(k: &str, from: &str, to: &str, asset: &str, n: i128) -> Draft {
    draft(
        k,
        &[(to, asset, Side::Debit, n), (from, asset, Side::Credit, n)],
    )
}

/// A customer (a liability) deposits: debit `hot`, credit the customer.
fn deposit(k: &str, customer: &str, asset: &str, n: i128) -> Draft {
    transfer(k, customer, "hot", asset, n)
}

/// A customer withdraws: debit the customer, credit `hot`.
fn withdraw(k: &str, customer: &str, asset: &str, n: i128) -> Draft {
    transfer(k, "hot", customer, asset, n)
}

async fn commit(store: &Arc<dyn Store>, b: &BookName, drafts: &[Draft]) -> Vec<Outcome> {
    let outcomes = store.commit_batch(b, drafts).await.expect("commit_batch");
    assert_eq!(outcomes.len(), drafts.len(), "one outcome per draft");
    outcomes
}

async fn commit_one(store: &Arc<dyn Store>, b: &BookName, d: Draft) -> Outcome {
    commit(store, b, &[d]).await.remove(0)
}

#[track_caller]
fn committed(outcome: &Outcome) -> Commit {
    match outcome {
        Outcome::Committed(c) => c.clone(),
        other => panic!("expected Committed, got {other:?}"),
    }
}

#[track_caller]
fn rejection(outcome: &Outcome) -> Rejection {
    match outcome {
        Outcome::Rejected(r) => r.clone(),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

fn signed(side: Side, amount: Amount) -> i128 {
    match side {
        Side::Debit => amount.minor(),
        Side::Credit => -amount.minor(),
    }
}

/// Every event of a book, read in pages of `page` to exercise paging too.
async fn all_events(store: &Arc<dyn Store>, b: &BookName, page: u32) -> Vec<talea_core::Event> {
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
async fn assert_dense_log(store: &Arc<dyn Store>, b: &BookName) -> Vec<talea_core::Event> {
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
    events
}

/// The balances an account held as of `at`, computed from commits.
fn expected_balances(
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
        })
        .collect()
}

/// An account's balances as the store reports them, ordered by asset (the
/// trait does not fix an order for this call).
async fn balances_sorted(
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
fn expected_trial(
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
        })
        .collect()
}

/// A book with BTC (scale 8) and USD (scale 2), a customer liability
/// `alice` that may not go below zero, an unbounded customer `bob`, and a
/// `hot` wallet (an asset account) funding them.
async fn customers(store: &Arc<dyn Store>, b: &BookName) {
    asset(store, "BTC", 8).await;
    asset(store, "USD", 2).await;
    open(store, b, "alice", AccountKind::Liability, Some("0")).await;
    open(store, b, "bob", AccountKind::Liability, None).await;
    open(store, b, "hot", AccountKind::Asset, None).await;
}

// ---------------------------------------------------------------------------
// The cases.

/// Registering creates once; the stored definition wins afterwards.
pub async fn asset_registration(store: Arc<dyn Store>) {
    let btc = Asset {
        code: code("BTC"),
        scale: Scale::new(8).expect("scale"),
        name: Some("Bitcoin".to_owned()),
    };
    assert_eq!(store.asset(&btc.code).await.expect("asset"), None);
    assert_eq!(
        store.register_asset(&btc).await.expect("register"),
        Registered::Created(btc.clone())
    );
    assert_eq!(
        store.register_asset(&btc).await.expect("register"),
        Registered::Existing(btc.clone())
    );
    let other = Asset {
        scale: Scale::new(2).expect("scale"),
        name: None,
        ..btc.clone()
    };
    assert_eq!(
        store.register_asset(&other).await.expect("register"),
        Registered::Existing(btc.clone()),
        "a different definition returns the stored one unchanged"
    );
    assert_eq!(
        store.asset(&btc.code).await.expect("asset"),
        Some(btc.clone())
    );

    for (c, scale) in [
        ("usdc", 6),
        ("USDC.e", 6),
        ("ETH", 18),
        ("0X", 0),
        ("Z_Z", 30),
    ] {
        asset(&store, c, scale).await;
    }
    let codes: Vec<String> = store
        .assets()
        .await
        .expect("assets")
        .into_iter()
        .map(|a| a.code.as_str().to_owned())
        .collect();
    let mut sorted = codes.clone();
    sorted.sort();
    assert_eq!(codes, sorted, "assets are ordered by code, bytewise");
    assert_eq!(codes.len(), 6);

    // Racing registrations of one code: exactly one creates it.
    let sol = Asset {
        code: code("SOL"),
        scale: Scale::new(9).expect("scale"),
        name: None,
    };
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, sol) = (store.clone(), sol.clone());
            tokio::spawn(async move { store.register_asset(&sol).await.expect("register") })
        })
        .collect();
    let results = futures::future::join_all(tasks).await;
    let created = results
        .into_iter()
        .map(|r| r.expect("task"))
        .filter(|r| matches!(r, Registered::Created(_)))
        .count();
    assert_eq!(
        created, 1,
        "exactly one racing registration creates the asset"
    );
}

/// Opening takes dense seqs; re-opening returns the stored account and writes nothing.
pub async fn account_open(store: Arc<dyn Store>) {
    let b = book("ledger");
    assert_eq!(store.last_seq(&b).await.expect("last_seq"), None);
    let alice = NewAccount {
        name: acct("customers:alice"),
        kind: AccountKind::Liability,
        min_balance: Some(dec("-10.50")),
        metadata: r#"{"tier":"gold","n":[1,2]}"#.to_owned(),
    };
    let Opened::Created(a) = store.open_account(&b, &alice).await.expect("open") else {
        panic!("first open creates");
    };
    assert_eq!(a.book, b);
    assert_eq!(a.name, alice.name);
    assert_eq!(a.kind, AccountKind::Liability);
    assert_eq!(a.min_balance, Some(dec("-10.5")));
    assert_eq!(
        a.metadata, alice.metadata,
        "metadata is kept exactly as given"
    );
    assert_eq!(a.seq, 1);

    let hot = open(&store, &b, "hot-wallet", AccountKind::Asset, None).await;
    assert_eq!(hot.seq, 2);
    assert_eq!(hot.min_balance, None);
    assert!(hot.opened_at >= a.opened_at);

    let different = NewAccount {
        kind: AccountKind::Asset,
        min_balance: None,
        ..alice.clone()
    };
    assert_eq!(
        store.open_account(&b, &different).await.expect("open"),
        Opened::Existing(a.clone()),
        "re-opening returns the stored account unchanged"
    );
    assert_eq!(
        store.last_seq(&b).await.expect("last_seq"),
        Some(2),
        "a re-open writes nothing"
    );
    assert_eq!(
        store.account(&b, &alice.name).await.expect("account"),
        Some(a.clone())
    );
    assert_eq!(
        store.account(&b, &acct("nobody")).await.expect("account"),
        None
    );
    assert_eq!(
        store
            .account(&book("other"), &alice.name)
            .await
            .expect("account"),
        None
    );

    let events = assert_dense_log(&store, &b).await;
    assert_eq!(events[0].kind, EventKind::AccountOpened(a.clone()));
    assert_eq!(events[0].committed_at, a.opened_at);
    assert_eq!(events[1].kind, EventKind::AccountOpened(hot.clone()));
    assert_eq!(events[1].accounts(), vec![&hot.name]);
}

/// Concurrent opens of distinct names take dense seqs; of one name, one wins.
pub async fn concurrent_account_opens(store: Arc<dyn Store>) {
    let b = book("busy");
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let (store, b) = (store.clone(), b.clone());
            tokio::spawn(async move {
                open(
                    &store,
                    &b,
                    &format!("acct-{i:02}"),
                    AccountKind::Asset,
                    None,
                )
                .await
            })
        })
        .collect();
    let mut seqs: Vec<u64> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task").seq)
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=16).collect::<Vec<_>>());

    let same = NewAccount {
        name: acct("shared"),
        kind: AccountKind::Revenue,
        min_balance: None,
        metadata: "{}".to_owned(),
    };
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (store, b, same) = (store.clone(), b.clone(), same.clone());
            tokio::spawn(async move { store.open_account(&b, &same).await.expect("open") })
        })
        .collect();
    let results: Vec<Opened> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let created: Vec<&Account> = results
        .iter()
        .filter_map(|r| match r {
            Opened::Created(a) => Some(a),
            Opened::Existing(_) => None,
        })
        .collect();
    assert_eq!(
        created.len(),
        1,
        "exactly one racing open creates the account"
    );
    for r in &results {
        let (Opened::Created(a) | Opened::Existing(a)) = r;
        assert_eq!(a, created[0], "every racer sees the same account");
    }
    assert_eq!(created[0].seq, 17);
    assert_dense_log(&store, &b).await;
}

/// Replaying a committed request answers with the original commit.
pub async fn idempotent_replay(store: Arc<dyn Store>) {
    let b = book("replay");
    customers(&store, &b).await;
    let dep = deposit("dep-1", "alice", "BTC", 150_000_000);
    let original = committed(&commit_one(&store, &b, dep.clone()).await);
    assert_eq!(original.seq, 4);
    assert_eq!(
        commit_one(&store, &b, dep.clone()).await,
        Outcome::Deduplicated(original.clone()),
        "a replay returns the original commit (same id, seq, time and postings)"
    );
    let outcomes = commit(&store, &b, &[dep, deposit("dep-2", "bob", "BTC", 1)]).await;
    assert_eq!(outcomes[0], Outcome::Deduplicated(original.clone()));
    assert_eq!(
        committed(&outcomes[1]).seq,
        5,
        "a deduplicated draft takes no seq"
    );
    assert_eq!(
        store
            .transactions(&b, 0, 10)
            .await
            .expect("transactions")
            .len(),
        2
    );
    let balances = balances_sorted(&store, &b, &acct("alice"), None).await;
    assert_eq!(
        balances,
        vec![Balance {
            asset: code("BTC"),
            balance: minor(-150_000_000)
        }],
        "a replay moves nothing"
    );
    assert_dense_log(&store, &b).await;
}

/// The same key with another request is refused, naming the original.
pub async fn idempotency_key_reused(store: Arc<dyn Store>) {
    let b = book("reuse");
    customers(&store, &b).await;
    let original =
        committed(&commit_one(&store, &b, transfer("k", "alice", "hot", "BTC", 5)).await);
    for other in [
        transfer("k", "alice", "hot", "BTC", 6),
        transfer("k", "bob", "hot", "BTC", 5),
        Draft::new(
            key("k"),
            transfer("k", "alice", "hot", "BTC", 5).postings,
            None,
            Some("a memo makes it another request".to_owned()),
            None,
        )
        .expect("draft"),
    ] {
        assert_eq!(
            rejection(&commit_one(&store, &b, other).await),
            Rejection::IdempotencyKeyReused(original.tx_id)
        );
    }
    assert_eq!(
        store.last_seq(&b).await.expect("last_seq"),
        Some(original.seq)
    );
}

/// A key repeated inside one batch is answered against the earlier draft.
pub async fn duplicate_keys_within_batch(store: Arc<dyn Store>) {
    let b = book("dupes");
    customers(&store, &b).await;
    let a = transfer("k1", "alice", "hot", "BTC", 10);
    let a_other = transfer("k1", "alice", "hot", "BTC", 11);
    let c = transfer("k2", "bob", "hot", "BTC", 3);
    let outcomes = commit(&store, &b, &[a.clone(), a.clone(), a_other, c]).await;
    let first = committed(&outcomes[0]);
    assert_eq!(first.seq, 4);
    assert_eq!(outcomes[1], Outcome::Deduplicated(first.clone()));
    assert_eq!(
        rejection(&outcomes[2]),
        Rejection::IdempotencyKeyReused(first.tx_id)
    );
    assert_eq!(committed(&outcomes[3]).seq, 5);

    // An earlier draft that failed leaves the key free for a later one.
    let bad = transfer("k3", "nobody", "hot", "BTC", 1);
    let good = transfer("k3", "bob", "hot", "BTC", 1);
    let outcomes = commit(&store, &b, &[bad, good.clone(), good]).await;
    assert_eq!(
        rejection(&outcomes[0]),
        Rejection::UnknownAccount(acct("nobody"))
    );
    let second = committed(&outcomes[1]);
    assert_eq!(second.seq, 6);
    assert_eq!(outcomes[2], Outcome::Deduplicated(second));
    assert_dense_log(&store, &b).await;
}

/// Sixteen racing posts of one request: exactly one commits.
pub async fn concurrent_same_key(store: Arc<dyn Store>) {
    let b = book("race");
    customers(&store, &b).await;
    let before = store.last_seq(&b).await.expect("last_seq");
    let d = transfer("once", "alice", "hot", "BTC", 42);
    let tasks: Vec<_> = (0..16)
        .map(|_| {
            let (store, b, d) = (store.clone(), b.clone(), d.clone());
            tokio::spawn(async move { commit_one(&store, &b, d).await })
        })
        .collect();
    let outcomes: Vec<Outcome> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let commits: Vec<&Commit> = outcomes
        .iter()
        .filter_map(|o| match o {
            Outcome::Committed(c) => Some(c),
            _ => None,
        })
        .collect();
    assert_eq!(commits.len(), 1, "exactly one racer commits: {outcomes:?}");
    for o in &outcomes {
        match o {
            Outcome::Committed(c) | Outcome::Deduplicated(c) => assert_eq!(c, commits[0]),
            Outcome::Rejected(r) => panic!("no racer is rejected: {r:?}"),
        }
    }
    assert_eq!(
        store.last_seq(&b).await.expect("last_seq"),
        before.map(|s| s + 1)
    );
}

/// Sixteen writers on one book: the log stays dense, times monotonic,
/// each batch's seqs consecutive and sharing one commit time.
pub async fn dense_sequences_under_concurrency(store: Arc<dyn Store>) {
    let b = book("dense");
    customers(&store, &b).await;
    let tasks: Vec<_> = (0..16)
        .map(|w| {
            let (store, b) = (store.clone(), b.clone());
            tokio::spawn(async move {
                let mut batches = Vec::new();
                for i in 0..5 {
                    let drafts: Vec<Draft> = (0..3)
                        .map(|j| transfer(&format!("w{w}-b{i}-d{j}"), "bob", "hot", "USD", 100 + j))
                        .collect();
                    let outcomes = commit(&store, &b, &drafts).await;
                    batches.push(outcomes.iter().map(committed).collect::<Vec<_>>());
                }
                batches
            })
        })
        .collect();
    let batches: Vec<Vec<Commit>> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .flat_map(|r| r.expect("task"))
        .collect();
    for batch in &batches {
        for pair in batch.windows(2) {
            assert_eq!(
                pair[1].seq,
                pair[0].seq + 1,
                "a batch's commits take consecutive seqs"
            );
            assert_eq!(
                pair[1].committed_at, pair[0].committed_at,
                "a batch shares one commit time"
            );
        }
    }
    let events = assert_dense_log(&store, &b).await;
    assert_eq!(events.len(), 3 + 16 * 5 * 3);
    let mut from_log: Vec<Commit> = events
        .into_iter()
        .filter_map(|e| match e.kind {
            EventKind::Transaction(c) => Some(c),
            EventKind::AccountOpened(_) => None,
        })
        .collect();
    let mut returned: Vec<Commit> = batches.into_iter().flatten().collect();
    from_log.sort_by_key(|c| c.seq);
    returned.sort_by_key(|c| c.seq);
    assert_eq!(
        from_log, returned,
        "the log holds exactly what commit_batch returned"
    );
    let total: i128 = 16 * 5 * (100 + 101 + 102);
    assert_eq!(
        balances_sorted(&store, &b, &acct("bob"), None).await,
        vec![Balance {
            asset: code("USD"),
            balance: minor(-total)
        }]
    );
}

/// Forty racing withdrawals of 1 from an account holding 10 with
/// `min_balance` 0: exactly ten commit, and it is never overdrawn.
pub async fn min_balance_under_racing_overdraws(store: Arc<dyn Store>) {
    let b = book("overdraw");
    customers(&store, &b).await;
    committed(&commit_one(&store, &b, deposit("fund", "alice", "BTC", 10)).await);
    let tasks: Vec<_> = (0..40)
        .map(|i| {
            let (store, b) = (store.clone(), b.clone());
            tokio::spawn(async move {
                commit_one(
                    &store,
                    &b,
                    withdraw(&format!("take-{i}"), "alice", "BTC", 1),
                )
                .await
            })
        })
        .collect();
    let outcomes: Vec<Outcome> = futures::future::join_all(tasks)
        .await
        .into_iter()
        .map(|r| r.expect("task"))
        .collect();
    let ok = outcomes
        .iter()
        .filter(|o| matches!(o, Outcome::Committed(_)))
        .count();
    assert_eq!(
        ok, 10,
        "exactly the funded withdrawals commit: {outcomes:?}"
    );
    for o in &outcomes {
        match o {
            Outcome::Committed(c) => {
                let leg = c
                    .postings
                    .iter()
                    .find(|p| p.account.as_str() == "alice")
                    .expect("alice's leg");
                assert!(
                    leg.balance_after.minor() <= 0,
                    "alice is never overdrawn: {c:?}"
                );
            }
            Outcome::Rejected(r) => assert_eq!(
                r,
                &Rejection::InsufficientBalance {
                    account: acct("alice"),
                    asset: code("BTC"),
                    balance: Amount::ZERO,
                }
            ),
            Outcome::Deduplicated(c) => panic!("nothing is deduplicated: {c:?}"),
        }
    }
    assert_eq!(
        balances_sorted(&store, &b, &acct("alice"), None).await,
        vec![Balance {
            asset: code("BTC"),
            balance: Amount::ZERO
        }]
    );
    assert_dense_log(&store, &b).await;
}

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

/// A refused draft does not consume its key.
pub async fn rejected_key_stays_free(store: Arc<dyn Store>) {
    let b = book("free");
    customers(&store, &b).await;
    let to_later = transfer("k-later", "later", "hot", "BTC", 1);
    assert_eq!(
        rejection(&commit_one(&store, &b, to_later.clone()).await),
        Rejection::UnknownAccount(acct("later"))
    );
    open(&store, &b, "later", AccountKind::Liability, None).await;
    committed(&commit_one(&store, &b, to_later).await);

    let take = withdraw("k-take", "alice", "USD", 5);
    assert!(matches!(
        rejection(&commit_one(&store, &b, take.clone()).await),
        Rejection::InsufficientBalance { .. }
    ));
    committed(&commit_one(&store, &b, deposit("k-fund", "alice", "USD", 5)).await);
    committed(&commit_one(&store, &b, take).await);
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
            balance: minor(max - 1)
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
            },
            TrialRow {
                account: acct("l"),
                kind: AccountKind::Liability,
                asset: code("WEI"),
                debits: minor(1),
                credits: minor(max),
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
                balance: Amount::ZERO
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

/// Every field of a commit round-trips; a batch shares one commit time.
pub async fn commit_details(store: Arc<dyn Store>) {
    let b = book("details");
    customers(&store, &b).await;
    let opened = store
        .account(&b, &acct("hot"))
        .await
        .expect("account")
        .expect("hot exists");
    let rich = Draft::new(
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
    .expect("draft");
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

/// A draft the database may refuse (a NUL byte in its memo) does not poison
/// its batch: either the backend stores it, or it alone is rejected with
/// `Failed`, and the drafts after it are decided without it.
pub async fn database_refusal_is_isolated(store: Arc<dyn Store>) {
    let b = book("refusal");
    customers(&store, &b).await;
    let nul = Draft::new(
        key("nul"),
        deposit("nul", "alice", "BTC", 100).postings,
        None,
        Some("bad\0memo".to_owned()),
        None,
    )
    .expect("draft");
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
    let nul = Draft::new(
        key("nul"),
        deposit("nul", "alice", "BTC", 100).postings,
        None,
        Some("bad\0memo".to_owned()),
        None,
    )
    .expect("draft");
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
    for bk in [&a, &b, &c] {
        assert_dense_log(&store, bk).await;
    }
    assert_eq!(store.last_seq(&a).await.expect("last_seq"), Some(4));
    assert_eq!(store.last_seq(&c).await.expect("last_seq"), Some(3));
    assert_eq!(
        store.last_seq(&fresh).await.expect("last_seq"),
        None,
        "a book whose drafts all failed stays unknown"
    );
    assert_eq!(
        balances_sorted(&store, &a, &acct("alice"), None).await,
        vec![Balance {
            asset: code("BTC"),
            balance: minor(-5)
        }]
    );

    // A replay of the whole call deduplicates book by book.
    let again = store.commit_books(&batches[..1]).await;
    let again = again
        .into_iter()
        .next()
        .expect("one result")
        .expect("commit_books");
    assert_eq!(again[0], Outcome::Deduplicated(first));

    // A book named twice: refused whole, nothing written.
    let twice = [
        BookBatch {
            book: &a,
            drafts: &a_drafts[..1],
        },
        BookBatch {
            book: &a,
            drafts: &a_drafts[..1],
        },
    ];
    let results = store.commit_books(&twice).await;
    assert_eq!(results.len(), 2);
    assert!(
        results
            .iter()
            .all(|r| matches!(r, Err(StoreError::Other(_)))),
        "{results:?}"
    );
    assert_eq!(store.last_seq(&a).await.expect("last_seq"), Some(4));
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
                balance: minor(-(8 * 5 * 3))
            }]
        );
    }
}

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

    // Writers race the cuts; each cut must match the log at its seq.
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (store, b) = (store.clone(), b.clone());
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
                .balance_cut(&b, None, 10)
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
            .balance_cut(&b, None, 10)
            .await
            .expect("cut")
            .expect("a cut"),
    );
    let events = assert_dense_log(&store, &b).await;
    let commits: Vec<Commit> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Transaction(c) => Some(c.clone()),
            EventKind::AccountOpened(_) => None,
        })
        .collect();
    for cut in &cuts {
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

    // Filters: only existing names, by name, each once; limits count accounts.
    let filter = [acct("hot"), acct("nobody"), acct("alice"), acct("hot")];
    let filtered = store
        .balance_cut(&b, Some(&filter), 10)
        .await
        .expect("cut")
        .expect("a cut");
    assert_eq!(filtered.last_seq, last.last_seq);
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
            balances: expected_balances(&commits, &acct("alice"), None),
        }
    );
    let nobody = store
        .balance_cut(&b, Some(&[acct("nobody")]), 10)
        .await
        .expect("cut")
        .expect("the book still has a cut");
    assert!(nobody.accounts.is_empty());
    assert_eq!(nobody.last_seq, last.last_seq);
    let limited = store
        .balance_cut(&b, None, 2)
        .await
        .expect("cut")
        .expect("a cut");
    assert_eq!(limited.accounts.len(), 2);
    assert_eq!(limited.accounts[1].account, acct("bob"));
}
