//! Conformance cases. Transaction search: every filter and their
//! combinations answer exactly what the shared predicate keeps of the
//! book's transactions, pages join up, and the pending holds come soonest
//! expiry first.

use std::sync::Arc;

use talea_core::{BookName, Commit, Draft, Timestamp, TxId, TxStatus};

use crate::{MetadataMatch, Store, TxFilter};

use super::support::*;

fn with_metadata(mut d: Draft, json: &str) -> Draft {
    d.metadata = Some(json.to_owned());
    d
}

fn meta(key: &str, value: &str) -> Option<MetadataMatch> {
    Some(MetadataMatch {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

fn seqs(commits: &[Commit]) -> Vec<u64> {
    commits.iter().map(|c| c.seq).collect()
}

async fn search(store: &Arc<dyn Store>, b: &BookName, f: &TxFilter) -> Vec<u64> {
    let page = store
        .search_transactions(b, f, 0, 1000)
        .await
        .expect("search_transactions");
    assert_eq!(
        page.scanned_to, None,
        "{f:?}: a small book is searched whole"
    );
    seqs(&page.transactions)
}

/// Every search, one page at a time of `limit`, joined.
async fn search_paged(store: &Arc<dyn Store>, b: &BookName, f: &TxFilter, limit: u32) -> Vec<u64> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .search_transactions(b, f, after, limit)
            .await
            .expect("search page");
        assert!(page.transactions.len() <= limit as usize);
        out.extend(seqs(&page.transactions));
        match (page.transactions.last(), page.scanned_to) {
            (_, Some(to)) => after = to,
            (Some(last), None) if page.transactions.len() == limit as usize => after = last.seq,
            _ => return out,
        }
    }
}

fn hold(k: &str, customer: &str, n: i128, expires_at: Option<Timestamp>) -> Draft {
    withdraw(k, customer, "BTC", n).into_hold(expires_at)
}

fn settle(k: &str, hold: TxId) -> Draft {
    Draft::settle(key(k), hold, None).expect("settle")
}

pub async fn search_filters_match_the_predicate(store: Arc<dyn Store>) {
    let b = book("search");
    customers(&store, &b).await;
    let one = |d: Draft| {
        let store = store.clone();
        let b = b.clone();
        async move { committed(&commit_one(&store, &b, d).await) }
    };
    let t1 = one(with_metadata(
        deposit("s1", "alice", "BTC", 10),
        r#"{"order_id":"A-1","attempt":3}"#,
    ))
    .await;
    let t2 = one(with_metadata(
        deposit("s2", "bob", "BTC", 5),
        r#"{"order_id":"A-2","urgent":true,"rate":1.5}"#,
    ))
    .await;
    let t3 = one(with_metadata(
        hold("s3", "alice", 2, None),
        r#"{"order_id":"A-1"}"#,
    ))
    .await;
    let soon = Timestamp::from_micros(t1.committed_at.micros() + 1_800_000_000);
    let later = Timestamp::from_micros(t1.committed_at.micros() + 3_600_000_000);
    let t4 = one(hold("s4", "bob", 1, Some(later))).await;
    let t5 = one(hold("s5", "bob", 1, Some(soon))).await;
    let t6 = one(settle("s6", t3.tx_id)).await;
    let t7 = one(Draft::void(key("s7"), t4.tx_id)).await;
    let t8 = one(with_metadata(
        deposit("s8", "alice", "USD", 3),
        r#"{"order_id":"A-1","attempt":"3"}"#,
    ))
    .await;
    let t9 = one(hold("s9", "bob", 1, None)).await;
    let t10 = one(hold("s10", "bob", 1, Some(later))).await;

    // The predicate itself, on what a read reports now.
    let all = store.transactions(&b, 0, 1000).await.expect("transactions");
    assert_eq!(all.len(), 10);
    let keep = |f: &TxFilter| {
        all.iter()
            .filter(|c| f.matches(c))
            .map(|c| c.seq)
            .collect::<Vec<_>>()
    };
    let alice = TxFilter {
        account: Some(acct("alice")),
        ..TxFilter::default()
    };
    assert_eq!(keep(&alice), vec![t1.seq, t3.seq, t6.seq, t8.seq]);
    let status = |s| TxFilter {
        status: Some(s),
        ..TxFilter::default()
    };
    assert_eq!(keep(&status(TxStatus::Voided)), vec![t4.seq, t7.seq]);
    assert_eq!(
        keep(&status(TxStatus::Pending)),
        vec![t5.seq, t9.seq, t10.seq]
    );
    assert_eq!(
        keep(&status(TxStatus::Posted)),
        vec![t1.seq, t2.seq, t3.seq, t6.seq, t8.seq]
    );
    let by_meta = |k: &str, v: &str| TxFilter {
        metadata: meta(k, v),
        ..TxFilter::default()
    };
    assert_eq!(
        keep(&by_meta("order_id", "A-1")),
        vec![t1.seq, t3.seq, t8.seq]
    );
    assert_eq!(keep(&by_meta("attempt", "3")), vec![t1.seq, t8.seq]);
    assert_eq!(keep(&by_meta("urgent", "true")), vec![t2.seq]);
    assert!(keep(&by_meta("rate", "1.5")).is_empty());

    // Every filter, alone and combined, answers what the predicate keeps,
    // whole and page by page.
    let mut filters = vec![
        TxFilter::default(),
        alice.clone(),
        TxFilter {
            account: Some(acct("hot")),
            ..TxFilter::default()
        },
        TxFilter {
            account: Some(acct("nobody")),
            ..TxFilter::default()
        },
        by_meta("order_id", "A-1"),
        by_meta("order_id", "A-3"),
        by_meta("attempt", "3"),
        by_meta("urgent", "true"),
        by_meta("rate", "1.5"),
        TxFilter {
            from: Some(t3.committed_at),
            to: Some(t8.committed_at),
            ..TxFilter::default()
        },
        TxFilter {
            from: Some(micros_before(t1.committed_at)),
            ..TxFilter::default()
        },
        TxFilter {
            to: Some(t1.committed_at),
            ..TxFilter::default()
        },
        TxFilter {
            account: Some(acct("alice")),
            metadata: meta("order_id", "A-1"),
            status: Some(TxStatus::Posted),
            ..TxFilter::default()
        },
        TxFilter {
            account: Some(acct("bob")),
            from: Some(t5.committed_at),
            ..TxFilter::default()
        },
    ];
    filters.extend(
        [
            TxStatus::Posted,
            TxStatus::Pending,
            TxStatus::Voided,
            TxStatus::Expired,
        ]
        .map(status),
    );
    for f in &filters {
        let expected = keep(f);
        assert_eq!(search(&store, &b, f).await, expected, "{f:?}");
        assert_eq!(search_paged(&store, &b, f, 1).await, expected, "{f:?} by 1");
        assert_eq!(search_paged(&store, &b, f, 2).await, expected, "{f:?} by 2");
    }
    // A search's transactions are whole: legs, metadata, current status.
    let page = store
        .search_transactions(&b, &by_meta("order_id", "A-1"), 0, 10)
        .await
        .expect("search");
    let by_seq = |seq: u64| all.iter().find(|c| c.seq == seq).cloned();
    for c in &page.transactions {
        assert_eq!(Some(c.clone()), by_seq(c.seq));
    }
    assert_eq!(
        search(&store, &book("nosuchbook"), &alice).await,
        Vec::<u64>::new()
    );

    // Pending holds: soonest expiry first, then those without one by seq.
    let pending = store.pending_holds(&b, 10).await.expect("pending_holds");
    assert_eq!(seqs(&pending), vec![t5.seq, t10.seq, t9.seq]);
    assert!(pending.iter().all(|c| c.status == TxStatus::Pending));
    assert_eq!(Some(pending[0].clone()), by_seq(t5.seq));
    let two = store.pending_holds(&b, 2).await.expect("pending_holds");
    assert_eq!(seqs(&two), vec![t5.seq, t10.seq]);
    assert!(
        store
            .pending_holds(&book("nosuchbook"), 10)
            .await
            .expect("pending_holds")
            .is_empty()
    );
    let _ = (t2, t6, t7);
}
