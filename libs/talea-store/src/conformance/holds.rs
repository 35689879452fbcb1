//! Conformance cases. Holds: the lifecycle (hold, settle, void, expiry),
//! available balances, partial settles, races between outcomes, replays,
//! and what was held as of an instant. Each Blnk bug class of issue #17 is
//! a named case or assertion: a hold voided twice (`voids_and_replays`), a
//! void rolled back (`racing_outcomes_end_a_hold_once`), more committed
//! than held (`partial_settles`), a rejected hold committed
//! (`rejected_hold_cannot_be_settled`), held debits left out of the funds
//! check (`holds_reserve_available_balance`).

use std::sync::Arc;
use std::time::Duration;

use talea_core::{Commit, Draft, EventKind, Side, Timestamp, TxId, TxStatus};

use crate::{Held, Outcome, Rejection, Store};

use super::support::*;

/// `withdraw` as a hold: debit the customer, credit `hot`, reserved.
fn hold(k: &str, customer: &str, n: i128, expires_at: Option<Timestamp>) -> Draft {
    withdraw(k, customer, "BTC", n).into_hold(expires_at)
}

fn settle(k: &str, hold: TxId) -> Draft {
    Draft::settle(key(k), hold, None).expect("settle")
}

fn settle_part(k: &str, hold: TxId, legs: &[(&str, &str, Side, i128)]) -> Draft {
    let postings = draft(k, legs).postings;
    Draft::settle(key(k), hold, Some(postings)).expect("partial settle")
}

fn void(k: &str, hold: TxId) -> Draft {
    Draft::void(key(k), hold)
}

/// What `account` has held in BTC now.
async fn held_btc(store: &Arc<dyn Store>, b: &talea_core::BookName, account: &str) -> Held {
    held_at(store, b, account, None).await
}

async fn held_at(
    store: &Arc<dyn Store>,
    b: &talea_core::BookName,
    account: &str,
    at: Option<Timestamp>,
) -> Held {
    balances_sorted(store, b, &acct(account), at)
        .await
        .into_iter()
        .find(|x| x.asset == code("BTC"))
        .map(|x| x.held)
        .unwrap_or_default()
}

/// The posted storage balance of `account` in BTC now.
async fn posted_btc(store: &Arc<dyn Store>, b: &talea_core::BookName, account: &str) -> i128 {
    balances_sorted(store, b, &acct(account), None)
        .await
        .into_iter()
        .find(|x| x.asset == code("BTC"))
        .map_or(0, |x| x.balance.minor())
}

fn held(debits: i128, credits: i128) -> Held {
    Held {
        debits: minor(debits),
        credits: minor(credits),
    }
}

async fn status_of(store: &Arc<dyn Store>, tx_id: TxId) -> TxStatus {
    store
        .transaction(tx_id, None)
        .await
        .expect("transaction")
        .map(|c| c.status)
        .expect("the hold is found")
}

/// Hold, then settle the whole of it: the hold moves no posted balance and
/// reserves its legs; the settle posts them, names the hold, and ends it.
pub async fn hold_lifecycle(store: Arc<dyn Store>) {
    let b = book("holds");
    customers(&store, &b).await;
    committed(&commit_one(&store, &b, deposit("in", "alice", "BTC", 100)).await);
    let h = committed(&commit_one(&store, &b, hold("h", "alice", 30, None)).await);
    assert_eq!(h.status, TxStatus::Pending);
    assert_eq!(h.pending_tx_id, None);
    assert_eq!(
        posted_btc(&store, &b, "alice").await,
        -100,
        "nothing posted"
    );
    assert_eq!(held_btc(&store, &b, "alice").await, held(30, 0));
    assert_eq!(held_btc(&store, &b, "hot").await, held(0, 30));
    assert_eq!(status_of(&store, h.tx_id).await, TxStatus::Pending);

    let s = committed(&commit_one(&store, &b, settle("s", h.tx_id)).await);
    assert_eq!(s.status, TxStatus::Posted);
    assert_eq!(s.pending_tx_id, Some(h.tx_id));
    assert_eq!(s.seq, h.seq + 1);
    assert_ne!(s.tx_id, h.tx_id);
    let legs = |c: &Commit| {
        c.postings
            .iter()
            .map(|p| (p.account.clone(), p.side, p.amount))
            .collect::<Vec<_>>()
    };
    assert_eq!(legs(&s), legs(&h), "a whole settle posts the hold's legs");
    assert_eq!(posted_btc(&store, &b, "alice").await, -70);
    assert_eq!(held_btc(&store, &b, "alice").await, Held::default());
    assert_eq!(status_of(&store, h.tx_id).await, TxStatus::Posted);
    assert_eq!(
        store.transaction(s.tx_id, None).await.expect("settle read"),
        Some(s.clone())
    );

    // The log: the hold's event says pending, the settle's posted.
    let events = assert_dense_log(&store, &b).await;
    let statuses: Vec<(u64, TxStatus)> = events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::Transaction(c) => Some((e.seq, c.status)),
            _ => None,
        })
        .collect();
    assert_eq!(
        statuses[statuses.len() - 2..],
        [(h.seq, TxStatus::Pending), (s.seq, TxStatus::Posted)]
    );

    // Ended once: another settle or a void is refused with who ended it.
    for d in [settle("s2", h.tx_id), void("v", h.tx_id)] {
        assert_eq!(
            rejection(&commit_one(&store, &b, d).await),
            Rejection::HoldNotPending {
                status: TxStatus::Posted,
                ended_by: Some(s.tx_id)
            }
        );
    }
}

/// A partial settle posts at most what is held per (account, asset,
/// side), must balance, and releases the rest.
pub async fn partial_settles(store: Arc<dyn Store>) {
    let b = book("partial");
    customers(&store, &b).await;
    committed(&commit_one(&store, &b, deposit("in", "alice", "BTC", 100)).await);
    let h = committed(&commit_one(&store, &b, hold("h", "alice", 30, None)).await);
    let over = settle_part(
        "over",
        h.tx_id,
        &[
            ("alice", "BTC", Side::Debit, 40),
            ("hot", "BTC", Side::Credit, 40),
        ],
    );
    assert_eq!(
        rejection(&commit_one(&store, &b, over).await),
        Rejection::ExceedsHold {
            account: acct("alice"),
            asset: code("BTC"),
            held: minor(30),
            requested: minor(40),
        }
    );
    let elsewhere = settle_part(
        "elsewhere",
        h.tx_id,
        &[
            ("bob", "BTC", Side::Debit, 1),
            ("hot", "BTC", Side::Credit, 1),
        ],
    );
    assert_eq!(
        rejection(&commit_one(&store, &b, elsewhere).await),
        Rejection::ExceedsHold {
            account: acct("bob"),
            asset: code("BTC"),
            held: minor(0),
            requested: minor(1),
        },
        "an account the hold does not have holds nothing"
    );
    assert_eq!(
        held_btc(&store, &b, "alice").await,
        held(30, 0),
        "refusals change nothing"
    );
    let part = settle_part(
        "part",
        h.tx_id,
        &[
            ("alice", "BTC", Side::Debit, 20),
            ("hot", "BTC", Side::Credit, 20),
        ],
    );
    let s = committed(&commit_one(&store, &b, part).await);
    assert_eq!(s.postings.len(), 2);
    assert_eq!(posted_btc(&store, &b, "alice").await, -80, "20 posted");
    assert_eq!(
        held_btc(&store, &b, "alice").await,
        Held::default(),
        "10 released"
    );
    assert_eq!(status_of(&store, h.tx_id).await, TxStatus::Posted);
}

/// Held debits count against the available balance: a post or another
/// hold that would take it below `min_balance` is refused, and a void
/// gives the funds back.
pub async fn holds_reserve_available_balance(store: Arc<dyn Store>) {
    let b = book("available");
    customers(&store, &b).await;
    committed(&commit_one(&store, &b, deposit("in", "alice", "BTC", 100)).await);
    let h = committed(&commit_one(&store, &b, hold("h", "alice", 80, None)).await);
    for d in [
        withdraw("w", "alice", "BTC", 30),
        hold("h2", "alice", 30, None),
    ] {
        assert!(
            matches!(
                rejection(&commit_one(&store, &b, d).await),
                Rejection::InsufficientBalance { .. }
            ),
            "80 of 100 are held: 30 more is over"
        );
    }
    committed(&commit_one(&store, &b, withdraw("w20", "alice", "BTC", 20)).await);
    // Incoming held credits are not available before they post.
    committed(
        &commit_one(
            &store,
            &b,
            deposit("in2", "alice", "BTC", 5).into_hold(None),
        )
        .await,
    );
    assert!(matches!(
        rejection(&commit_one(&store, &b, withdraw("w5", "alice", "BTC", 5)).await),
        Rejection::InsufficientBalance { .. }
    ));
    committed(&commit_one(&store, &b, void("v", h.tx_id)).await);
    committed(&commit_one(&store, &b, withdraw("w30", "alice", "BTC", 30)).await);
    // Settling never fails for funds: they were reserved.
    let h3 = committed(&commit_one(&store, &b, hold("h3", "alice", 50, None)).await);
    committed(&commit_one(&store, &b, settle("s3", h3.tx_id)).await);
    assert_eq!(posted_btc(&store, &b, "alice").await, 0);
}

/// Voids and settles replay by key; a key reused for another request is
/// refused; a void of what is not a hold, or of an unknown id, is refused.
pub async fn voids_and_replays(store: Arc<dyn Store>) {
    let b = book("voids");
    customers(&store, &b).await;
    let p = committed(&commit_one(&store, &b, deposit("in", "alice", "BTC", 100)).await);
    let h = committed(&commit_one(&store, &b, hold("h", "alice", 10, None)).await);
    let v = committed(&commit_one(&store, &b, void("v", h.tx_id)).await);
    assert_eq!(v.status, TxStatus::Voided);
    assert_eq!(v.pending_tx_id, Some(h.tx_id));
    assert!(v.postings.is_empty());
    assert_eq!(status_of(&store, h.tx_id).await, TxStatus::Voided);
    assert_eq!(held_btc(&store, &b, "alice").await, Held::default());
    // The same void again: the original, not a second void.
    match commit_one(&store, &b, void("v", h.tx_id)).await {
        Outcome::Deduplicated(c) => assert_eq!(c.tx_id, v.tx_id),
        other => panic!("a void replay is deduplicated, got {other:?}"),
    }
    // The key of the void for another request.
    let h2 = committed(&commit_one(&store, &b, hold("h2", "alice", 10, None)).await);
    assert_eq!(
        rejection(&commit_one(&store, &b, void("v", h2.tx_id)).await),
        Rejection::IdempotencyKeyReused(v.tx_id)
    );
    // A second void under a new key: the hold ended already.
    assert_eq!(
        rejection(&commit_one(&store, &b, void("v-again", h.tx_id)).await),
        Rejection::HoldNotPending {
            status: TxStatus::Voided,
            ended_by: Some(v.tx_id)
        }
    );
    assert_eq!(
        rejection(&commit_one(&store, &b, void("not-hold", p.tx_id)).await),
        Rejection::NotAHold(p.tx_id)
    );
    let unknown = TxId::generate();
    assert_eq!(
        rejection(&commit_one(&store, &b, settle("unknown", unknown)).await),
        Rejection::UnknownTransaction(unknown)
    );
    // A hold of another book is unknown here.
    let other = book("voids-other");
    customers(&store, &other).await;
    assert_eq!(
        rejection(&commit_one(&store, &other, void("x", h2.tx_id)).await),
        Rejection::UnknownTransaction(h2.tx_id)
    );
    // A replay of the hold itself answers the hold, now voided.
    match commit_one(&store, &b, hold("h", "alice", 10, None)).await {
        Outcome::Deduplicated(c) => {
            assert_eq!(c.tx_id, h.tx_id);
            assert_eq!(c.status, TxStatus::Voided);
            assert_eq!(c.postings, h.postings, "with the hold's legs");
        }
        other => panic!("a hold replay is deduplicated, got {other:?}"),
    }
    // The same key as a posted transaction is another request.
    assert_eq!(
        rejection(&commit_one(&store, &b, withdraw("h2", "alice", "BTC", 10)).await),
        Rejection::IdempotencyKeyReused(h2.tx_id)
    );
}

/// A hold refused for funds leaves nothing to settle; holds, settles and
/// voids in one batch see each other in order.
pub async fn rejected_hold_cannot_be_settled(store: Arc<dyn Store>) {
    let b = book("in-batch");
    customers(&store, &b).await;
    committed(&commit_one(&store, &b, deposit("in", "alice", "BTC", 10)).await);
    assert!(matches!(
        rejection(&commit_one(&store, &b, hold("big", "alice", 11, None)).await),
        Rejection::InsufficientBalance { .. }
    ));
    // A batch: a hold, its settle, a void of it (refused), another hold
    // that needs the funds the settle posted (refused), a replay.
    let first = committed(&commit_one(&store, &b, hold("h1", "alice", 4, None)).await);
    let batch = [
        hold("h2", "alice", 6, None),
        void("v1", first.tx_id),
        settle("s1", first.tx_id),
        hold("h3", "alice", 5, None),
        void("v1", first.tx_id),
    ];
    let outcomes = commit(&store, &b, &batch).await;
    let h2 = committed(&outcomes[0]);
    let v1 = committed(&outcomes[1]);
    assert_eq!(
        rejection(&outcomes[2]),
        Rejection::HoldNotPending {
            status: TxStatus::Voided,
            ended_by: Some(v1.tx_id)
        }
    );
    assert!(
        matches!(
            rejection(&outcomes[3]),
            Rejection::InsufficientBalance { .. }
        ),
        "6 of 10 held, 4 available: 5 is over: {:?}",
        outcomes[3]
    );
    match &outcomes[4] {
        Outcome::Deduplicated(c) => assert_eq!(c.tx_id, v1.tx_id),
        other => panic!("in-batch replay: {other:?}"),
    }
    assert_eq!(held_btc(&store, &b, "alice").await, held(6, 0));
    assert_eq!(status_of(&store, h2.tx_id).await, TxStatus::Pending);
    assert_dense_log(&store, &b).await;
}

/// Settles and voids race from many tasks: exactly one ends the hold, every
/// other is told how and by whom.
pub async fn racing_outcomes_end_a_hold_once(store: Arc<dyn Store>) {
    let b = book("race");
    customers(&store, &b).await;
    committed(&commit_one(&store, &b, deposit("in", "alice", "BTC", 100)).await);
    for round in 0..4 {
        let h =
            committed(&commit_one(&store, &b, hold(&format!("h{round}"), "alice", 10, None)).await);
        let tasks: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                let b = b.clone();
                let d = if i % 2 == 0 {
                    settle(&format!("r{round}-s{i}"), h.tx_id)
                } else {
                    void(&format!("r{round}-v{i}"), h.tx_id)
                };
                tokio::spawn(async move { commit_one(&store, &b, d).await })
            })
            .collect();
        let outcomes = joined(tasks).await;
        let winners: Vec<Commit> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Committed(c) => Some(c.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "exactly one outcome: {outcomes:?}");
        let winner = &winners[0];
        for o in &outcomes {
            if let Outcome::Rejected(r) = o {
                assert_eq!(
                    *r,
                    Rejection::HoldNotPending {
                        status: winner.status,
                        ended_by: Some(winner.tx_id)
                    }
                );
            }
        }
        assert_eq!(status_of(&store, h.tx_id).await, winner.status);
    }
    assert_eq!(held_btc(&store, &b, "alice").await, Held::default());
    assert_dense_log(&store, &b).await;
}

/// A hold with `expires_at` reserves nothing from that instant, cannot be
/// settled, and `expire_holds` appends its expiry exactly once.
pub async fn holds_expire(store: Arc<dyn Store>) {
    let b = book("expiry");
    customers(&store, &b).await;
    let first = committed(&commit_one(&store, &b, deposit("in", "alice", "BTC", 100)).await);
    let at = Timestamp::from_micros(first.committed_at.micros() + 1_500_000);
    let h = committed(&commit_one(&store, &b, hold("h", "alice", 60, Some(at))).await);
    let forever = committed(&commit_one(&store, &b, hold("keep", "alice", 1, None)).await);
    assert_eq!(h.expires_at, Some(at));
    let due = store
        .due_holds(Timestamp::from_micros(at.micros() + 1), 10)
        .await
        .expect("due_holds");
    assert!(
        due.iter().any(|d| d.book == b && d.expires_at == at),
        "{due:?}"
    );
    assert!(
        store.expire_holds(&b).await.expect("expire").is_empty(),
        "not due yet"
    );
    assert_eq!(held_btc(&store, &b, "alice").await, held(61, 0));
    tokio::time::sleep(Duration::from_millis(1_700)).await;

    // Past `expires_at`: reserves nothing, even before its expiry event.
    assert_eq!(held_btc(&store, &b, "alice").await, held(1, 0));
    assert_eq!(
        rejection(&commit_one(&store, &b, settle("late", h.tx_id)).await),
        Rejection::HoldNotPending {
            status: TxStatus::Expired,
            ended_by: None
        }
    );
    committed(&commit_one(&store, &b, withdraw("w", "alice", "BTC", 99)).await);

    let expired = store.expire_holds(&b).await.expect("expire");
    assert_eq!(expired.len(), 1);
    assert_eq!(expired[0].hold.tx_id, h.tx_id);
    assert_eq!(expired[0].hold.status, TxStatus::Expired);
    assert!(
        store.expire_holds(&b).await.expect("again").is_empty(),
        "once"
    );
    assert_eq!(status_of(&store, h.tx_id).await, TxStatus::Expired);
    assert_eq!(status_of(&store, forever.tx_id).await, TxStatus::Pending);
    let events = assert_dense_log(&store, &b).await;
    let last = events.last().expect("events");
    assert_eq!(last.seq, expired[0].seq);
    match &last.kind {
        EventKind::HoldExpired(c) => {
            assert_eq!(c.tx_id, h.tx_id);
            assert_eq!(c.status, TxStatus::Expired);
            assert_eq!(c.postings.len(), 2);
        }
        other => panic!("expected the expiry, got {other:?}"),
    }
    assert_eq!(
        rejection(&commit_one(&store, &b, void("v", h.tx_id)).await),
        Rejection::HoldNotPending {
            status: TxStatus::Expired,
            ended_by: None
        }
    );
    // A retry of the hold after its expiry: the original, not a refusal.
    match commit_one(&store, &b, hold("h", "alice", 60, Some(at))).await {
        Outcome::Deduplicated(c) => {
            assert_eq!((c.tx_id, c.status), (h.tx_id, TxStatus::Expired));
            assert_eq!(c.postings, h.postings, "with the hold's legs");
        }
        other => panic!("a late retry of a hold is deduplicated, got {other:?}"),
    }
    // A new hold expiring in the past is refused, and its key stays free.
    assert_eq!(
        rejection(&commit_one(&store, &b, hold("past", "alice", 1, Some(at))).await),
        Rejection::ExpiresInPast
    );
    let incoming = deposit("past", "alice", "BTC", 1).into_hold(None);
    committed(&commit_one(&store, &b, incoming).await);
    assert!(
        !store
            .due_holds(Timestamp::from_micros(i64::MAX), 10)
            .await
            .expect("due")
            .iter()
            .any(|d| d.book == b && d.expires_at == at),
        "an expired hold is no longer due"
    );
}

/// What was held as of an instant: committed by then, not ended by then.
pub async fn holds_as_of(store: Arc<dyn Store>) {
    let b = book("held-as-of");
    customers(&store, &b).await;
    committed(&commit_one(&store, &b, deposit("in", "alice", "BTC", 100)).await);
    let h = committed(&commit_one(&store, &b, hold("h", "alice", 25, None)).await);
    tokio::time::sleep(Duration::from_millis(5)).await;
    let s = committed(&commit_one(&store, &b, settle("s", h.tx_id)).await);
    assert!(s.committed_at > h.committed_at);
    assert_eq!(
        held_at(&store, &b, "alice", Some(micros_before(h.committed_at))).await,
        Held::default()
    );
    assert_eq!(
        held_at(&store, &b, "alice", Some(h.committed_at)).await,
        held(25, 0)
    );
    assert_eq!(
        held_at(&store, &b, "alice", Some(micros_before(s.committed_at))).await,
        held(25, 0)
    );
    assert_eq!(
        held_at(&store, &b, "alice", Some(s.committed_at)).await,
        Held::default()
    );
    // The trial balance stays posted-only and reports the held amounts.
    let rows = store
        .trial_balance(&b, Some(h.committed_at))
        .await
        .expect("trial balance");
    let alice = rows
        .iter()
        .find(|r| r.account == acct("alice") && r.asset == code("BTC"))
        .expect("alice's row");
    assert_eq!((alice.debits, alice.credits), (minor(0), minor(100)));
    assert_eq!(alice.held, held(25, 0));
    let now = store.trial_balance(&b, None).await.expect("trial balance");
    assert!(now.iter().all(|r| r.held == Held::default()));

    // A balance cut (the stream's snapshot) carries what is held at it.
    let h2 = committed(&commit_one(&store, &b, hold("h2", "alice", 5, None)).await);
    let cut = store
        .balance_cut(&b, Some(&[acct("alice")]), 10)
        .await
        .expect("cut")
        .expect("the book has events");
    assert_eq!(cut.last_seq, h2.seq);
    let alice = &cut.accounts[0].balances;
    assert_eq!(alice.len(), 1);
    assert_eq!((alice[0].balance, alice[0].held), (minor(-75), held(5, 0)));
}
