//! Conformance cases. Balance history of one account in one asset: the
//! changes listed, the range bounds, paging, downsampling, empty ranges.

use std::sync::Arc;

use talea_core::{Side, Timestamp};

use crate::history::downsample;
use crate::{BalanceHistory, HistoryRange, Store};

use super::support::*;

fn range(
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    after_seq: u64,
    limit: u32,
) -> HistoryRange {
    HistoryRange {
        from,
        to,
        after_seq,
        limit,
    }
}

fn view(h: &BalanceHistory) -> (i128, Vec<(u64, i128)>, bool) {
    (
        h.opening.minor(),
        h.changes
            .iter()
            .map(|c| (c.seq, c.balance.minor()))
            .collect(),
        h.more,
    )
}

pub async fn balance_history_changes_and_pages(store: Arc<dyn Store>) {
    let b = book("history");
    customers(&store, &b).await;
    let alice = acct("alice");
    let btc = code("BTC");
    let t1 = committed(&commit_one(&store, &b, deposit("h1", "alice", "BTC", 10)).await);
    let _usd = committed(&commit_one(&store, &b, deposit("h2", "alice", "USD", 7)).await);
    let t3 = committed(&commit_one(&store, &b, withdraw("h3", "alice", "BTC", 4)).await);
    let t4 = committed(
        &commit_one(
            &store,
            &b,
            draft(
                "h4",
                &[
                    ("alice", "BTC", Side::Debit, 1),
                    ("hot", "BTC", Side::Credit, 3),
                    ("alice", "BTC", Side::Debit, 2),
                ],
            ),
        )
        .await,
    );
    let _other = committed(&commit_one(&store, &b, deposit("h5", "bob", "BTC", 9)).await);
    let t6 = committed(&commit_one(&store, &b, deposit("h6", "alice", "BTC", 5)).await);
    let all = [
        (t1.seq, t1.committed_at, -10),
        (t3.seq, t3.committed_at, -6),
        (t4.seq, t4.committed_at, -3),
        (t6.seq, t6.committed_at, -8),
    ];
    let read = |r: HistoryRange| {
        let store = store.clone();
        let (b, alice, btc) = (b.clone(), alice.clone(), btc.clone());
        async move {
            store
                .balance_history(&b, &alice, &btc, r)
                .await
                .expect("balance_history")
        }
    };

    // Every change, one per event (the two legs of h4 make one change).
    let every = read(range(None, None, 0, 100)).await;
    let expected: Vec<(u64, i128)> = all.iter().map(|&(s, _, v)| (s, v)).collect();
    assert_eq!(view(&every), (0, expected.clone(), false));
    let times: Vec<Timestamp> = every.changes.iter().map(|c| c.committed_at).collect();
    assert_eq!(times, all.iter().map(|&(_, t, _)| t).collect::<Vec<_>>());

    // [from, to): from included, to excluded, the balance before from opens.
    let (from, to) = (t3.committed_at, t6.committed_at);
    let inside: Vec<(u64, i128)> = all
        .iter()
        .filter(|&&(_, t, _)| t >= from && t < to)
        .map(|&(s, _, v)| (s, v))
        .collect();
    let opening = all
        .iter()
        .filter(|&&(_, t, _)| t < from)
        .map(|&(_, _, v)| v)
        .next_back()
        .unwrap_or(0);
    assert_eq!(
        view(&read(range(Some(from), Some(to), 0, 100)).await),
        (opening, inside, false)
    );

    // Pages: after_seq is the cursor, more says whether a page follows.
    let first = read(range(None, None, 0, 2)).await;
    assert_eq!(view(&first), (0, expected[..2].to_vec(), true));
    let rest = read(range(None, None, t3.seq, 2)).await;
    assert_eq!(view(&rest), (-6, expected[2..].to_vec(), false));

    // Empty ranges: nothing changed, or from == to, or an unknown account.
    let after = Timestamp::from_micros(t6.committed_at.micros() + 1);
    assert_eq!(
        view(&read(range(Some(after), None, 0, 100)).await),
        (-8, vec![], false)
    );
    assert_eq!(
        view(&read(range(Some(from), Some(from), 0, 100)).await).1,
        Vec::<(u64, i128)>::new()
    );
    let nobody = store
        .balance_history(&b, &acct("nobody"), &btc, range(None, None, 0, 100))
        .await
        .expect("balance_history of an unknown account");
    assert_eq!(view(&nobody), (0, vec![], false));

    // Downsampled into one bucket over the whole history: known min and max.
    let start = micros_before(t1.committed_at);
    let end = after;
    let changes: Vec<(Timestamp, talea_core::Amount)> = every
        .changes
        .iter()
        .map(|c| (c.committed_at, c.balance))
        .collect();
    let buckets = downsample(every.opening, &changes, start, end, 1).expect("one bucket");
    assert_eq!(buckets.len(), 1);
    let one = buckets[0];
    assert_eq!(
        (
            one.start,
            one.first.minor(),
            one.last.minor(),
            one.min.minor(),
            one.max.minor()
        ),
        (start, 0, -8, -10, 0)
    );
    let many = downsample(every.opening, &changes, start, end, 4).expect("four buckets");
    assert_eq!(many.len(), 4);
    assert_eq!(many[3].last.minor(), -8);
}
