//! Hold lifecycle cases run against each SQL backend (this file is shared:
//! the Postgres tests include it by path). They work on a fresh store each
//! and panic with a message, as test code does.

use std::time::Duration;

use talea_core::{
    AccountKind, Amount, BookName, Commit, Decimal, Draft, DraftPosting, EventKind, IdempotencyKey,
    NewAccount, Side, Timestamp, TxId, TxStatus,
};
use talea_store::{Balance, Held, Opened, Outcome, Rejection, Store};
use talea_testkit::domain::{acct, asset, asset_code, book, transfer};

/// BTC, `hot` (an asset account, unbounded) and `alice` (a liability that
/// may not go below zero) in `b`, with 100 deposited for alice.
pub async fn setup(store: &dyn Store, b: &BookName) {
    store.register_asset(&asset()).await.expect("register BTC");
    for (name, kind, min) in [
        ("hot", AccountKind::Asset, None),
        ("alice", AccountKind::Liability, Some(Decimal::ZERO)),
    ] {
        let new = NewAccount {
            name: acct(name),
            kind,
            min_balance: min,
            metadata: "{}".to_owned(),
        };
        assert!(matches!(
            store.open_account(b, &new).await.expect("open account"),
            Opened::Created(_)
        ));
    }
    committed(&commit_one(store, b, transfer("deposit", "alice", "hot", 100)).await);
}

/// A withdrawal of `n` from alice, as a draft.
pub fn withdraw(key: &str, n: i128) -> Draft {
    transfer(key, "hot", "alice", n)
}

/// A hold of a withdrawal of `n` from alice.
pub fn hold(key: &str, n: i128, expires_at: Option<Timestamp>) -> Draft {
    withdraw(key, n).into_hold(expires_at)
}

fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::parse(s).expect("a valid key")
}

/// Commits one draft alone.
pub async fn commit_one(store: &dyn Store, b: &BookName, draft: Draft) -> Outcome {
    let mut outcomes = store
        .commit_batch(b, std::slice::from_ref(&draft))
        .await
        .expect("commit_batch");
    assert_eq!(outcomes.len(), 1);
    outcomes.remove(0)
}

/// The commit of a committed outcome.
pub fn committed(outcome: &Outcome) -> Commit {
    match outcome {
        Outcome::Committed(c) => c.clone(),
        other => panic!("expected a commit, got {other:?}"),
    }
}

/// The rejection of a rejected outcome.
pub fn rejected(outcome: &Outcome) -> Rejection {
    match outcome {
        Outcome::Rejected(r) => r.clone(),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

/// Alice's BTC balance and held amounts.
pub async fn alice(store: &dyn Store, b: &BookName, as_of: Option<Timestamp>) -> Balance {
    let balances = store
        .balances(b, &acct("alice"), as_of)
        .await
        .expect("balances");
    assert_eq!(balances.len(), 1, "{balances:?}");
    balances[0].clone()
}

fn held_debits(n: i128) -> Held {
    Held {
        debits: Amount::from_minor(n),
        credits: Amount::ZERO,
    }
}

/// Now, by the system clock.
fn now() -> Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after the epoch")
        .as_micros();
    Timestamp::from_micros(i64::try_from(micros).expect("micros fit"))
}

/// Hold, a post refused because of it, a whole settle, a second settle
/// refused with what ended the hold; events and reads agree.
pub async fn hold_then_settle_whole(store: &dyn Store) {
    let b = book("holds-settle");
    setup(store, &b).await;
    let h = committed(&commit_one(store, &b, hold("h", 60, None)).await);
    assert_eq!(h.status, TxStatus::Pending);
    assert_eq!(h.postings.len(), 2);
    let during = alice(store, &b, None).await;
    assert_eq!(during.balance, Amount::from_minor(-100), "nothing posted");
    assert_eq!(during.held, held_debits(60));
    let trial = store.trial_balance(&b, None).await.expect("trial balance");
    let row = trial
        .iter()
        .find(|r| r.account == acct("alice"))
        .expect("alice's row");
    assert_eq!(row.held, held_debits(60));

    // Available: 100 - 60 = 40.
    assert!(matches!(
        rejected(&commit_one(store, &b, withdraw("over", 50)).await),
        Rejection::InsufficientBalance { .. }
    ));
    committed(&commit_one(store, &b, withdraw("fits", 40)).await);
    tokio::time::sleep(Duration::from_millis(5)).await;

    let settle = Draft::settle(key("s"), h.tx_id, None).expect("settle");
    let s = committed(&commit_one(store, &b, settle).await);
    assert_eq!(s.status, TxStatus::Posted);
    assert_eq!(s.pending_tx_id, Some(h.tx_id));
    assert_eq!(s.postings.len(), 2);
    let after = alice(store, &b, None).await;
    assert_eq!(after.balance, Amount::ZERO);
    assert!(after.held.is_zero());
    // As of the hold: held, not posted.
    let then = alice(store, &b, Some(h.committed_at)).await;
    assert_eq!(then.balance, Amount::from_minor(-100));
    assert_eq!(then.held, held_debits(60));

    let again = Draft::settle(key("s2"), h.tx_id, None).expect("settle");
    assert_eq!(
        rejected(&commit_one(store, &b, again).await),
        Rejection::HoldNotPending {
            status: TxStatus::Posted,
            ended_by: Some(s.tx_id),
        }
    );
    // A replay answers the original.
    let replay = Draft::settle(key("s"), h.tx_id, None).expect("settle");
    assert_eq!(
        commit_one(store, &b, replay).await,
        Outcome::Deduplicated(s.clone())
    );

    let read = store
        .transaction(h.tx_id, None)
        .await
        .expect("transaction")
        .expect("the hold");
    assert_eq!(read.status, TxStatus::Posted, "a hold reads as it ended");
    assert_eq!(read.postings, h.postings);
    let events = store.events(&b, 0, 100).await.expect("events");
    let statuses: Vec<TxStatus> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Transaction(c) => Some(c.status),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses,
        vec![
            TxStatus::Posted,
            TxStatus::Pending,
            TxStatus::Posted,
            TxStatus::Posted
        ],
        "events say what each was when committed"
    );
    // Plain posts keep working once no hold is open.
    committed(&commit_one(store, &b, transfer("refill", "alice", "hot", 5)).await);
    let history = store
        .account_postings(&b, &acct("alice"), 0, 100)
        .await
        .expect("postings");
    assert_eq!(history.len(), 4, "posted legs only: {history:?}");
}

/// A partial settle posts part of the hold and releases the rest; more than
/// held is refused.
pub async fn partial_settle(store: &dyn Store) {
    let b = book("holds-partial");
    setup(store, &b).await;
    let h = committed(&commit_one(store, &b, hold("h", 60, None)).await);
    let legs = |n: i128| {
        vec![
            DraftPosting {
                account: acct("alice"),
                asset: asset_code(),
                side: Side::Debit,
                amount: Amount::from_minor(n),
            },
            DraftPosting {
                account: acct("hot"),
                asset: asset_code(),
                side: Side::Credit,
                amount: Amount::from_minor(n),
            },
        ]
    };
    let too_much = Draft::settle(key("big"), h.tx_id, Some(legs(70))).expect("settle");
    assert_eq!(
        rejected(&commit_one(store, &b, too_much).await),
        Rejection::ExceedsHold {
            account: acct("alice"),
            asset: asset_code(),
            held: Amount::from_minor(60),
            requested: Amount::from_minor(70),
        }
    );
    let part = Draft::settle(key("part"), h.tx_id, Some(legs(25))).expect("settle");
    let s = committed(&commit_one(store, &b, part).await);
    assert_eq!(s.postings.len(), 2);
    let after = alice(store, &b, None).await;
    assert_eq!(after.balance, Amount::from_minor(-75));
    assert!(after.held.is_zero(), "the rest is released");
}

/// A void releases the hold; a second void is refused with the first.
pub async fn hold_then_void(store: &dyn Store) {
    let b = book("holds-void");
    setup(store, &b).await;
    let h = committed(&commit_one(store, &b, hold("h", 60, None)).await);
    let v = committed(&commit_one(store, &b, Draft::void(key("v"), h.tx_id)).await);
    assert_eq!(v.status, TxStatus::Voided);
    assert_eq!(v.pending_tx_id, Some(h.tx_id));
    assert!(v.postings.is_empty());
    let after = alice(store, &b, None).await;
    assert_eq!(after.balance, Amount::from_minor(-100));
    assert!(after.held.is_zero());
    assert_eq!(
        rejected(&commit_one(store, &b, Draft::void(key("v2"), h.tx_id)).await),
        Rejection::HoldNotPending {
            status: TxStatus::Voided,
            ended_by: Some(v.tx_id),
        }
    );
    let read_void = store
        .transaction(v.tx_id, None)
        .await
        .expect("transaction")
        .expect("the void");
    assert_eq!(read_void, v);
    let read_hold = store
        .transaction(h.tx_id, None)
        .await
        .expect("transaction")
        .expect("the hold");
    assert_eq!(read_hold.status, TxStatus::Voided);
    let listed = store.transactions(&b, 0, 100).await.expect("transactions");
    assert_eq!(listed.len(), 3);
    // Not a hold, not in the book.
    let deposit = listed[0].tx_id;
    assert_eq!(
        rejected(&commit_one(store, &b, Draft::void(key("n"), deposit)).await),
        Rejection::NotAHold(deposit)
    );
    let unknown = TxId::generate();
    assert_eq!(
        rejected(&commit_one(store, &b, Draft::void(key("u"), unknown)).await),
        Rejection::UnknownTransaction(unknown)
    );
    // All 100 is available again.
    committed(&commit_one(store, &b, withdraw("all", 100)).await);

    // An account only held in: its asset is reported, at zero.
    let new = NewAccount {
        name: acct("bob"),
        kind: AccountKind::Asset,
        min_balance: None,
        metadata: "{}".to_owned(),
    };
    store.open_account(&b, &new).await.expect("open bob");
    let hb = committed(
        &commit_one(
            store,
            &b,
            transfer("hb", "alice", "bob", 10).into_hold(None),
        )
        .await,
    );
    let bob = store
        .balances(&b, &acct("bob"), None)
        .await
        .expect("balances");
    assert_eq!(
        bob,
        vec![Balance {
            asset: asset_code(),
            balance: Amount::ZERO,
            held: held_debits(10),
        }]
    );
    let trial = store.trial_balance(&b, None).await.expect("trial balance");
    let row = trial
        .iter()
        .find(|r| r.account == acct("bob"))
        .expect("bob's row");
    assert_eq!((row.debits, row.credits), (Amount::ZERO, Amount::ZERO));
    assert_eq!(row.held, held_debits(10));
    let trial_then = store
        .trial_balance(&b, Some(hb.committed_at))
        .await
        .expect("trial balance as of");
    assert_eq!(trial_then.len(), trial.len(), "{trial_then:?}");
    committed(&commit_one(store, &b, Draft::void(key("vb"), hb.tx_id)).await);
    assert!(
        store
            .trial_balance(&b, None)
            .await
            .expect("trial balance")
            .iter()
            .all(|r| r.account != acct("bob")),
        "nothing held or posted: no row"
    );
}

/// A hold and its settle in one batch, and a second hold: the counter of
/// open holds follows, and the batch's later drafts see the earlier ones.
pub async fn hold_and_settle_in_one_batch(store: &dyn Store) {
    let b = book("holds-batch");
    setup(store, &b).await;
    let first = hold("h1", 30, None);
    let outcomes = store
        .commit_batch(&b, std::slice::from_ref(&first))
        .await
        .expect("commit");
    let h1 = committed(&outcomes[0]);
    let h2 = hold("h2", 50, None);
    let drafts = vec![
        Draft::settle(key("s1"), h1.tx_id, None).expect("settle"),
        h2,
        withdraw("over", 30),
        withdraw("fits", 20),
    ];
    let outcomes = store.commit_batch(&b, &drafts).await.expect("commit");
    committed(&outcomes[0]);
    let h2 = committed(&outcomes[1]);
    // 100 - 30 settled - 50 held = 20 available.
    assert!(matches!(
        rejected(&outcomes[2]),
        Rejection::InsufficientBalance { .. }
    ));
    committed(&outcomes[3]);
    let v = Draft::void(key("v2"), h2.tx_id);
    let w = withdraw("rest", 50);
    let outcomes = store.commit_batch(&b, &[v, w]).await.expect("commit");
    committed(&outcomes[0]);
    committed(&outcomes[1]);
    let after = alice(store, &b, None).await;
    assert_eq!(after.balance, Amount::ZERO);
    assert!(after.held.is_zero());
}

/// A hold expires: it reserves nothing from `expires_at` on, cannot be
/// settled, and `expire_holds` appends its expiry once.
pub async fn hold_expires(store: &dyn Store) {
    let b = book("holds-expiry");
    setup(store, &b).await;
    let expires_at = Timestamp::from_micros(now().micros() + 1_500_000);
    let h = committed(&commit_one(store, &b, hold("h", 60, Some(expires_at))).await);
    assert_eq!(h.expires_at, Some(expires_at));
    assert!(
        store.expire_holds(&b).await.expect("expire").is_empty(),
        "not due yet"
    );
    let due = store
        .due_holds(Timestamp::from_micros(expires_at.micros() + 1), 10)
        .await
        .expect("due holds");
    assert!(
        due.iter()
            .any(|d| d.book == b && d.expires_at == expires_at),
        "{due:?}"
    );
    assert_eq!(alice(store, &b, None).await.held, held_debits(60));
    tokio::time::sleep(Duration::from_millis(1_700)).await;
    assert!(
        alice(store, &b, None).await.held.is_zero(),
        "an expired hold reserves nothing, even before its event"
    );
    let last = store.last_seq(&b).await.expect("last seq").expect("events");
    let expiries = store.expire_holds(&b).await.expect("expire");
    assert_eq!(expiries.len(), 1, "{expiries:?}");
    assert_eq!(expiries[0].seq, last + 1);
    assert_eq!(expiries[0].hold.tx_id, h.tx_id);
    assert_eq!(expiries[0].hold.status, TxStatus::Expired);
    assert_eq!(expiries[0].hold.postings, h.postings);
    assert!(
        store.expire_holds(&b).await.expect("expire").is_empty(),
        "exactly once"
    );
    assert!(
        store
            .due_holds(Timestamp::from_micros(expires_at.micros() + 1), 10)
            .await
            .expect("due")
            .iter()
            .all(|d| d.book != b)
    );
    let events = store.events(&b, last, 10).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, last + 1);
    match &events[0].kind {
        EventKind::HoldExpired(hold) => {
            assert_eq!(hold.tx_id, h.tx_id);
            assert_eq!(hold.status, TxStatus::Expired);
            assert_eq!(hold.postings, h.postings);
        }
        other => panic!("expected an expiry, got {other:?}"),
    }
    let read = store
        .transaction(h.tx_id, None)
        .await
        .expect("transaction")
        .expect("the hold");
    assert_eq!(read.status, TxStatus::Expired);
    let settle = Draft::settle(key("late"), h.tx_id, None).expect("settle");
    assert_eq!(
        rejected(&commit_one(store, &b, settle).await),
        Rejection::HoldNotPending {
            status: TxStatus::Expired,
            ended_by: None,
        }
    );
    // As of its commit it held; as of its expiry it did not.
    assert_eq!(
        alice(store, &b, Some(h.committed_at)).await.held,
        held_debits(60)
    );
    assert!(alice(store, &b, Some(expires_at)).await.held.is_zero());
    // Everything is available again, and the seqs stay dense.
    committed(&commit_one(store, &b, withdraw("all", 100)).await);
    let seqs: Vec<u64> = store
        .events(&b, 0, 100)
        .await
        .expect("events")
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>());
}
