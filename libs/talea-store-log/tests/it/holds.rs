//! Holds on the append log: the lifecycle (settle whole or in part, void,
//! expiry), what balances and reads report, overdrafts refused because of
//! a hold, races between endings, and replay after reopening.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use talea_core::{
    AccountKind, Amount, BookName, Commit, Decimal, Draft, DraftPosting, EventKind, IdempotencyKey,
    NewAccount, Timestamp, TxId, TxStatus,
};
use talea_store::{Held, Opened, Outcome, Rejection, Store};
use talea_store_log::LogStore;

use crate::{acct, book, commit_all, deposit, seeded};

fn key(s: &str) -> IdempotencyKey {
    IdempotencyKey::parse(s).expect("key")
}

fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_micros();
    Timestamp::from_micros(i64::try_from(micros).expect("micros fit"))
}

fn btc() -> talea_core::AssetCode {
    talea_testkit::domain::asset_code()
}

/// A withdrawal of `n` from `from` (debit it, credit `hot`) as a hold.
fn hold(k: &str, from: &str, n: i128, expires_at: Option<Timestamp>) -> Draft {
    talea_testkit::domain::transfer(k, "hot", from, n).into_hold(expires_at)
}

/// A withdrawal of `n` from `from`, posted.
fn withdraw(k: &str, from: &str, n: i128) -> Draft {
    talea_testkit::domain::transfer(k, "hot", from, n)
}

fn legs(from: &str, n: i128) -> Vec<DraftPosting> {
    withdraw("x", from, n).postings
}

fn settle(k: &str, hold: TxId, postings: Option<Vec<DraftPosting>>) -> Draft {
    Draft::settle(key(k), hold, postings).expect("a settle")
}

fn void(k: &str, hold: TxId) -> Draft {
    Draft::void(key(k), hold)
}

async fn one(store: &LogStore, b: &BookName, draft: Draft) -> Outcome {
    let mut out = store.commit_batch(b, &[draft]).await.expect("commit_batch");
    assert_eq!(out.len(), 1);
    out.remove(0)
}

async fn committed(store: &LogStore, b: &BookName, draft: Draft) -> Commit {
    match one(store, b, draft).await {
        Outcome::Committed(c) => c,
        other => panic!("expected Committed, got {other:?}"),
    }
}

async fn rejected(store: &LogStore, b: &BookName, draft: Draft) -> Rejection {
    match one(store, b, draft).await {
        Outcome::Rejected(r) => r,
        other => panic!("expected Rejected, got {other:?}"),
    }
}

/// `(storage balance, held debits, held credits)` of an account in BTC.
async fn btc_of(
    store: &LogStore,
    b: &BookName,
    account: &str,
    as_of: Option<Timestamp>,
) -> Option<(i128, i128, i128)> {
    store
        .balances(b, &acct(account), as_of)
        .await
        .expect("balances")
        .into_iter()
        .find(|row| row.asset == btc())
        .map(|row| {
            (
                row.balance.minor(),
                row.held.debits.minor(),
                row.held.credits.minor(),
            )
        })
}

async fn status_of(store: &LogStore, tx_id: TxId) -> TxStatus {
    store
        .transaction(tx_id, None)
        .await
        .expect("transaction")
        .expect("the transaction exists")
        .status
}

async fn open(store: &LogStore, b: &BookName, name: &str, min: Option<&str>) {
    let new = NewAccount {
        name: acct(name),
        kind: AccountKind::Liability,
        min_balance: min.map(|m| Decimal::parse(m).expect("decimal")),
        metadata: "{}".to_owned(),
    };
    assert!(matches!(
        store.open_account(b, &new).await.expect("open"),
        Opened::Created(_)
    ));
}

#[tokio::test]
async fn a_hold_reserves_then_settles_whole() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = book("holds");
    let store = seeded(dir.path(), &b).await;
    commit_all(&store, &b, &[deposit("d", 100)]).await;

    let h = committed(&store, &b, hold("h", "alice", 30, None)).await;
    assert_eq!(h.status, TxStatus::Pending);
    assert_eq!(h.expires_at, None);
    // A hold's legs record the posted balance they leave unchanged.
    assert_eq!(h.postings[0].balance_after, Amount::from_minor(-100));
    assert_eq!(btc_of(&store, &b, "alice", None).await, Some((-100, 30, 0)));
    assert_eq!(btc_of(&store, &b, "hot", None).await, Some((100, 0, 30)));
    assert_eq!(status_of(&store, h.tx_id).await, TxStatus::Pending);

    let s = committed(&store, &b, settle("s", h.tx_id, None)).await;
    assert_eq!(s.status, TxStatus::Posted);
    assert_eq!(s.pending_tx_id, Some(h.tx_id));
    assert_eq!(s.postings.len(), 2);
    assert_eq!(s.postings[0].balance_after, Amount::from_minor(-70));
    assert_eq!(btc_of(&store, &b, "alice", None).await, Some((-70, 0, 0)));
    assert_eq!(btc_of(&store, &b, "hot", None).await, Some((70, 0, 0)));

    // The hold now reads as posted; its event still says what it was.
    assert_eq!(status_of(&store, h.tx_id).await, TxStatus::Posted);
    let txs = store.transactions(&b, 0, 100).await.expect("transactions");
    let listed = txs.iter().find(|c| c.tx_id == h.tx_id).expect("listed");
    assert_eq!(listed.status, TxStatus::Posted);
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
        vec![TxStatus::Posted, TxStatus::Pending, TxStatus::Posted]
    );

    // The hold is not in the postings history; the settle is.
    let postings = store
        .account_postings(&b, &acct("alice"), 0, 100)
        .await
        .expect("postings");
    let seqs: Vec<u64> = postings.iter().map(|p| p.seq).collect();
    assert_eq!(seqs, vec![3, 5]);

    // Ended once: a void now is refused, naming the settle.
    assert_eq!(
        rejected(&store, &b, void("v", h.tx_id)).await,
        Rejection::HoldNotPending {
            status: TxStatus::Posted,
            ended_by: Some(s.tx_id),
        }
    );
    // A retry of the settle answers the original.
    assert_eq!(
        one(&store, &b, settle("s", h.tx_id, None)).await,
        Outcome::Deduplicated(s)
    );
}

#[tokio::test]
async fn a_partial_settle_posts_part_and_releases_the_rest() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = book("partial");
    let store = seeded(dir.path(), &b).await;
    commit_all(&store, &b, &[deposit("d", 100)]).await;
    let h = committed(&store, &b, hold("h", "alice", 30, None)).await;

    let too_much = rejected(&store, &b, settle("s1", h.tx_id, Some(legs("alice", 31)))).await;
    assert_eq!(
        too_much,
        Rejection::ExceedsHold {
            account: acct("alice"),
            asset: btc(),
            held: Amount::from_minor(30),
            requested: Amount::from_minor(31),
        }
    );
    let s = committed(&store, &b, settle("s2", h.tx_id, Some(legs("alice", 10)))).await;
    assert_eq!(s.pending_tx_id, Some(h.tx_id));
    assert_eq!(btc_of(&store, &b, "alice", None).await, Some((-90, 0, 0)));
    assert_eq!(btc_of(&store, &b, "hot", None).await, Some((90, 0, 0)));
    assert_eq!(status_of(&store, h.tx_id).await, TxStatus::Posted);
}

#[tokio::test]
async fn a_void_releases_once_and_refuses_a_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = book("voids");
    let store = seeded(dir.path(), &b).await;
    let d = commit_all(&store, &b, &[deposit("d", 100)]).await;
    let h = committed(&store, &b, hold("h", "alice", 30, None)).await;

    let v = committed(&store, &b, void("v", h.tx_id)).await;
    assert_eq!(v.status, TxStatus::Voided);
    assert_eq!(v.pending_tx_id, Some(h.tx_id));
    assert!(v.postings.is_empty());
    assert_eq!(btc_of(&store, &b, "alice", None).await, Some((-100, 0, 0)));
    assert_eq!(status_of(&store, h.tx_id).await, TxStatus::Voided);
    assert_eq!(status_of(&store, v.tx_id).await, TxStatus::Voided);

    assert_eq!(
        rejected(&store, &b, void("v2", h.tx_id)).await,
        Rejection::HoldNotPending {
            status: TxStatus::Voided,
            ended_by: Some(v.tx_id),
        }
    );
    assert_eq!(
        rejected(&store, &b, settle("s", h.tx_id, None)).await,
        Rejection::HoldNotPending {
            status: TxStatus::Voided,
            ended_by: Some(v.tx_id),
        }
    );
    assert_eq!(
        one(&store, &b, void("v", h.tx_id)).await,
        Outcome::Deduplicated(v)
    );
    assert_eq!(
        rejected(&store, &b, void("n", d[0].tx_id)).await,
        Rejection::NotAHold(d[0].tx_id)
    );
    let nobody = TxId(uuid::Uuid::from_u128(7));
    assert_eq!(
        rejected(&store, &b, void("u", nobody)).await,
        Rejection::UnknownTransaction(nobody)
    );
    // A hold of another book is unknown here.
    let other = book("voids-other");
    open_pair(&store, &other).await;
    let foreign = committed(&store, &other, hold("h", "alice", 1, None)).await;
    assert_eq!(
        rejected(&store, &b, void("f", foreign.tx_id)).await,
        Rejection::UnknownTransaction(foreign.tx_id)
    );
}

/// Opens `hot` and `alice` in another book of the same store.
async fn open_pair(store: &LogStore, b: &BookName) {
    for (name, kind) in [
        ("hot", AccountKind::Asset),
        ("alice", AccountKind::Liability),
    ] {
        let new = NewAccount {
            name: acct(name),
            kind,
            min_balance: None,
            metadata: "{}".to_owned(),
        };
        store.open_account(b, &new).await.expect("open");
    }
}

#[tokio::test]
async fn a_hold_expires_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = book("expiry");
    let store = seeded(dir.path(), &b).await;
    commit_all(&store, &b, &[deposit("d", 100)]).await;
    let expires_at = Timestamp::from_micros(now().micros() + 1_000_000);
    let h = committed(&store, &b, hold("h", "alice", 30, Some(expires_at))).await;
    assert_eq!(h.expires_at, Some(expires_at));
    let long = committed(&store, &b, hold("h2", "alice", 5, None)).await;

    assert!(store.expire_holds(&b).await.expect("expire").is_empty());
    let due = store
        .due_holds(Timestamp::from_micros(i64::MAX), 10)
        .await
        .expect("due");
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].book.clone(), due[0].expires_at),
        (b.clone(), expires_at)
    );
    assert!(
        store
            .due_holds(Timestamp::from_micros(expires_at.micros() - 1), 10)
            .await
            .expect("due")
            .is_empty()
    );

    tokio::time::sleep(Duration::from_millis(1_100)).await;
    // Past its expiry it reserves nothing and cannot be settled, even
    // before its event is appended.
    assert_eq!(btc_of(&store, &b, "alice", None).await, Some((-100, 5, 0)));
    assert_eq!(
        rejected(&store, &b, settle("s", h.tx_id, None)).await,
        Rejection::HoldNotPending {
            status: TxStatus::Expired,
            ended_by: None,
        }
    );
    let last = store.last_seq(&b).await.expect("last").expect("some");
    let expiries = store.expire_holds(&b).await.expect("expire");
    assert_eq!(expiries.len(), 1);
    assert_eq!(expiries[0].seq, last + 1);
    assert_eq!(expiries[0].hold.tx_id, h.tx_id);
    assert_eq!(expiries[0].hold.status, TxStatus::Expired);
    assert!(expiries[0].committed_at >= expires_at);
    assert!(store.expire_holds(&b).await.expect("again").is_empty());
    assert!(
        store
            .due_holds(Timestamp::from_micros(i64::MAX), 10)
            .await
            .expect("due")
            .is_empty()
    );

    let events = store.events(&b, last, 10).await.expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].seq, last + 1);
    match &events[0].kind {
        EventKind::HoldExpired(c) => {
            assert_eq!(c.tx_id, h.tx_id);
            assert_eq!(c.status, TxStatus::Expired);
            assert_eq!(c.postings, h.postings);
        }
        other => panic!("expected HoldExpired, got {other:?}"),
    }
    assert_eq!(status_of(&store, h.tx_id).await, TxStatus::Expired);
    assert_eq!(status_of(&store, long.tx_id).await, TxStatus::Pending);
    // Expiries are events, not transactions.
    let txs = store.transactions(&b, 0, 100).await.expect("transactions");
    assert!(txs.iter().all(|c| c.seq != last + 1));
    assert_eq!(
        rejected(&store, &b, void("v", h.tx_id)).await,
        Rejection::HoldNotPending {
            status: TxStatus::Expired,
            ended_by: None,
        }
    );
    // Held as of a moment before the expiry, not at it.
    let before = Timestamp::from_micros(expires_at.micros() - 1);
    assert_eq!(
        btc_of(&store, &b, "alice", Some(before)).await,
        Some((-100, 35, 0))
    );
    assert_eq!(
        btc_of(&store, &b, "alice", Some(expires_at)).await,
        Some((-100, 5, 0))
    );
}

#[tokio::test]
async fn held_amounts_as_of_follow_each_hold() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = book("as-of");
    let store = seeded(dir.path(), &b).await;
    open(&store, &b, "carol", None).await;
    let d = commit_all(&store, &b, &[deposit("d", 100)]).await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let h = committed(&store, &b, hold("h", "alice", 30, None)).await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    // A deposit to carol, held: she has nothing posted, only held credits.
    let incoming = talea_testkit::domain::transfer("in", "carol", "hot", 5).into_hold(None);
    let c = committed(&store, &b, incoming).await;
    tokio::time::sleep(Duration::from_millis(2)).await;
    let v = committed(&store, &b, void("v", h.tx_id)).await;

    assert_eq!(btc_of(&store, &b, "carol", None).await, Some((0, 0, 5)));
    assert_eq!(
        btc_of(&store, &b, "alice", Some(d[0].committed_at)).await,
        Some((-100, 0, 0))
    );
    assert_eq!(
        btc_of(&store, &b, "alice", Some(h.committed_at)).await,
        Some((-100, 30, 0))
    );
    assert_eq!(
        btc_of(&store, &b, "alice", Some(v.committed_at)).await,
        Some((-100, 0, 0))
    );
    assert_eq!(
        btc_of(&store, &b, "carol", Some(d[0].committed_at)).await,
        None
    );
    assert_eq!(
        btc_of(&store, &b, "carol", Some(c.committed_at)).await,
        Some((0, 0, 5))
    );

    let trial = |rows: Vec<talea_store::TrialRow>| -> Vec<(String, i128, i128, Held)> {
        rows.into_iter()
            .map(|r| {
                (
                    r.account.as_str().to_owned(),
                    r.debits.minor(),
                    r.credits.minor(),
                    r.held,
                )
            })
            .collect()
    };
    let held = |debits: i128, credits: i128| Held {
        debits: Amount::from_minor(debits),
        credits: Amount::from_minor(credits),
    };
    assert_eq!(
        trial(
            store
                .trial_balance(&b, Some(h.committed_at))
                .await
                .expect("trial")
        ),
        vec![
            ("alice".to_owned(), 0, 100, held(30, 0)),
            ("hot".to_owned(), 100, 0, held(0, 30)),
        ]
    );
    assert_eq!(
        trial(store.trial_balance(&b, None).await.expect("trial")),
        vec![
            ("alice".to_owned(), 0, 100, held(0, 0)),
            ("carol".to_owned(), 0, 0, held(0, 5)),
            ("hot".to_owned(), 100, 0, held(5, 0)),
        ]
    );
    let cut = store
        .balance_cut(&b, None, 100)
        .await
        .expect("cut")
        .expect("a cut");
    let carol = cut
        .accounts
        .iter()
        .find(|a| a.account == acct("carol"))
        .expect("carol");
    assert_eq!(carol.balances[0].held, held(0, 5));
}

#[tokio::test]
async fn a_hold_makes_an_overdraft_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = book("overdraft");
    let store = seeded(dir.path(), &b).await;
    open(&store, &b, "bob", Some("0")).await;
    commit_all(
        &store,
        &b,
        &[talea_testkit::domain::transfer("d", "bob", "hot", 100)],
    )
    .await;
    let h = committed(&store, &b, hold("h", "bob", 80, None)).await;
    assert!(matches!(
        rejected(&store, &b, withdraw("w1", "bob", 30)).await,
        Rejection::InsufficientBalance { account, .. } if account == acct("bob")
    ));
    assert!(matches!(
        rejected(&store, &b, hold("h2", "bob", 21, None)).await,
        Rejection::InsufficientBalance { .. }
    ));
    committed(&store, &b, withdraw("w2", "bob", 20)).await;
    // The reserved funds settle whatever happened since.
    committed(&store, &b, settle("s", h.tx_id, None)).await;
    assert_eq!(btc_of(&store, &b, "bob", None).await, Some((0, 0, 0)));
}

#[tokio::test]
async fn racing_endings_and_same_batch_endings_end_a_hold_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = book("races");
    let store = seeded(dir.path(), &b).await;
    commit_all(&store, &b, &[deposit("d", 1000)]).await;

    // A hold and its settle in one batch, then a void of it in the same batch.
    let first = hold("h0", "alice", 10, None);
    let out = store
        .commit_batch(&b, std::slice::from_ref(&first))
        .await
        .expect("batch");
    let Outcome::Committed(h0) = &out[0] else {
        panic!("{out:?}");
    };
    let out = store
        .commit_batch(&b, &[settle("s0", h0.tx_id, None), void("v0", h0.tx_id)])
        .await
        .expect("batch");
    let Outcome::Committed(s0) = &out[0] else {
        panic!("{out:?}");
    };
    assert_eq!(
        out[1],
        Outcome::Rejected(Rejection::HoldNotPending {
            status: TxStatus::Posted,
            ended_by: Some(s0.tx_id),
        })
    );

    // Settles and voids of each hold sent at once: one wins per hold.
    for round in 0..5 {
        let h = committed(&store, &b, hold(&format!("h{round}-x"), "alice", 10, None)).await;
        let attempts = (0..6).map(|i| {
            let store = store.clone();
            let b = b.clone();
            let draft = if i % 2 == 0 {
                settle(&format!("s{round}-{i}"), h.tx_id, None)
            } else {
                void(&format!("v{round}-{i}"), h.tx_id)
            };
            tokio::spawn(async move { store.commit_batch(&b, &[draft]).await })
        });
        let outcomes: Vec<Outcome> = futures::future::join_all(attempts)
            .await
            .into_iter()
            .flat_map(|r| r.expect("join").expect("commit"))
            .collect();
        let winners: Vec<&Commit> = outcomes
            .iter()
            .filter_map(|o| match o {
                Outcome::Committed(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(winners.len(), 1, "{outcomes:?}");
        for o in &outcomes {
            if let Outcome::Rejected(r) = o {
                assert_eq!(
                    *r,
                    Rejection::HoldNotPending {
                        status: winners[0].status,
                        ended_by: Some(winners[0].tx_id),
                    }
                );
            }
        }
        let (_, held_debits, _) = btc_of(&store, &b, "alice", None).await.expect("row");
        assert_eq!(held_debits, 0);
    }
}

/// Everything a reader sees of a book, held amounts included.
async fn snapshot(store: &LogStore, b: &BookName) -> String {
    let events = store.events(b, 0, 1000).await.expect("events");
    let txs = store.transactions(b, 0, 1000).await.expect("transactions");
    let mut out = format!("{events:?}\n{txs:?}\n");
    for name in ["alice", "hot", "carol"] {
        let balances = store.balances(b, &acct(name), None).await.expect("b");
        let postings = store
            .account_postings(b, &acct(name), 0, 1000)
            .await
            .expect("postings");
        out.push_str(&format!("{balances:?}\n{postings:?}\n"));
        for e in &events {
            let at = store
                .balances(b, &acct(name), Some(e.committed_at))
                .await
                .expect("as of");
            out.push_str(&format!("{at:?}\n"));
        }
    }
    for e in &events {
        let trial = store
            .trial_balance(b, Some(e.committed_at))
            .await
            .expect("trial");
        out.push_str(&format!("{trial:?}\n"));
    }
    out
}

#[tokio::test]
async fn holds_replay_after_reopening() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = book("replay");
    let (before, pending, settled, voided, expired) = {
        let store = seeded(dir.path(), &b).await;
        open(&store, &b, "carol", None).await;
        commit_all(&store, &b, &[deposit("d", 100)]).await;
        let soon = Timestamp::from_micros(now().micros() + 600_000);
        let expired = committed(&store, &b, hold("e", "alice", 7, Some(soon))).await;
        let settled = committed(&store, &b, hold("s", "alice", 10, None)).await;
        let voided = committed(&store, &b, hold("v", "alice", 20, None)).await;
        let later = Timestamp::from_micros(now().micros() + 3_600_000_000);
        let pending = committed(&store, &b, hold("p", "alice", 30, Some(later))).await;
        committed(
            &store,
            &b,
            settle("s-1", settled.tx_id, Some(legs("alice", 4))),
        )
        .await;
        committed(&store, &b, void("v-1", voided.tx_id)).await;
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(store.expire_holds(&b).await.expect("expire").len(), 1);
        let incoming = talea_testkit::domain::transfer("in", "carol", "hot", 5).into_hold(None);
        committed(&store, &b, incoming).await;
        assert_eq!(btc_of(&store, &b, "alice", None).await, Some((-96, 30, 0)));
        (
            snapshot(&store, &b).await,
            pending,
            settled,
            voided,
            expired,
        )
    };
    let store = LogStore::open(dir.path()).expect("reopen");
    assert!(store.verify().expect("verify") > 0);
    assert_eq!(snapshot(&store, &b).await, before);
    assert_eq!(status_of(&store, expired.tx_id).await, TxStatus::Expired);
    assert_eq!(status_of(&store, voided.tx_id).await, TxStatus::Voided);
    assert_eq!(status_of(&store, settled.tx_id).await, TxStatus::Posted);
    assert_eq!(
        rejected(&store, &b, void("v-2", settled.tx_id)).await,
        Rejection::HoldNotPending {
            status: TxStatus::Posted,
            ended_by: store
                .transactions(&b, 0, 100)
                .await
                .expect("txs")
                .iter()
                .find(|c| c.pending_tx_id == Some(settled.tx_id))
                .map(|c| c.tx_id),
        }
    );
    assert_eq!(
        store
            .due_holds(Timestamp::from_micros(i64::MAX), 10)
            .await
            .expect("due")
            .len(),
        1
    );
    committed(&store, &b, settle("p-1", pending.tx_id, None)).await;
    assert_eq!(btc_of(&store, &b, "alice", None).await, Some((-66, 0, 0)));
    assert!(
        store
            .due_holds(Timestamp::from_micros(i64::MAX), 10)
            .await
            .expect("due")
            .is_empty()
    );
}

#[tokio::test]
async fn settles_racing_the_expiry_end_each_hold_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = book("expiry-race");
    let store = seeded(dir.path(), &b).await;
    commit_all(&store, &b, &[deposit("d", 1000)]).await;
    let mut holds = Vec::new();
    for i in 0..8 {
        // Expiries spread around the moment the racers start.
        let at = Timestamp::from_micros(now().micros() + 400_000 + i * 10_000);
        holds.push(committed(&store, &b, hold(&format!("h{i}"), "alice", 10, Some(at))).await);
    }
    tokio::time::sleep(Duration::from_millis(420)).await;
    let settles = holds.iter().enumerate().map(|(i, h)| {
        let (store, b, draft) = (
            store.clone(),
            b.clone(),
            settle(&format!("s{i}"), h.tx_id, None),
        );
        tokio::spawn(async move { store.commit_batch(&b, &[draft]).await })
    });
    let expirer = {
        let (store, b) = (store.clone(), b.clone());
        tokio::spawn(async move {
            let mut all = Vec::new();
            for _ in 0..30 {
                all.extend(store.expire_holds(&b).await.expect("expire"));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            all
        })
    };
    let settled: Vec<Outcome> = futures::future::join_all(settles)
        .await
        .into_iter()
        .flat_map(|r| r.expect("join").expect("commit"))
        .collect();
    let expired = expirer.await.expect("join");
    for (h, outcome) in holds.iter().zip(&settled) {
        let by_expiry = expired.iter().filter(|e| e.hold.tx_id == h.tx_id).count();
        match outcome {
            Outcome::Committed(_) => assert_eq!(by_expiry, 0, "settled and expired"),
            Outcome::Rejected(Rejection::HoldNotPending {
                status: TxStatus::Expired,
                ended_by: None,
            }) => assert!(by_expiry <= 1),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Every hold ends: the expirer ends what no settle did, exactly once.
    let ended: usize = settled
        .iter()
        .filter(|o| matches!(o, Outcome::Committed(_)))
        .count()
        + expired.len();
    let remaining = store.expire_holds(&b).await.expect("expire").len();
    assert_eq!(ended + remaining, holds.len());
    assert_eq!(
        btc_of(&store, &b, "alice", None).await.map(|r| r.1),
        Some(0)
    );
    let before = snapshot(&store, &b).await;
    drop(store);
    let store = LogStore::open(dir.path()).expect("reopen");
    assert_eq!(snapshot(&store, &b).await, before);
}
