//! Conformance cases. Balances under an account-name prefix: which accounts
//! match, totals over all of them, paging, the asset filter, held amounts.

use std::sync::Arc;

use talea_core::{AccountKind, BookName};

use crate::{AccountBalances, Balance, Held, KindTotal, PrefixBalances, Store};

use super::support::*;

async fn read(
    store: &Arc<dyn Store>,
    b: &BookName,
    prefix: &str,
    asset: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> PrefixBalances {
    let prefix = (!prefix.is_empty()).then(|| acct(prefix));
    let asset = asset.map(code);
    let after = after.map(acct);
    store
        .prefix_balances(b, prefix.as_ref(), asset.as_ref(), after.as_ref(), limit)
        .await
        .expect("prefix_balances")
}

fn names(page: &[AccountBalances]) -> Vec<&str> {
    page.iter().map(|a| a.account.as_str()).collect()
}

fn total(kind: AccountKind, asset: &str, balance: i128, held: (i128, i128)) -> KindTotal {
    KindTotal {
        kind,
        total: Balance {
            asset: code(asset),
            balance: minor(balance),
            held: Held {
                debits: minor(held.0),
                credits: minor(held.1),
            },
        },
    }
}

/// `customers:a`, `customers:b` (with a live hold), `customers:c` (never
/// touched), `customersx` and `other`, funded from `hot`.
async fn prefixed_book(store: &Arc<dyn Store>, b: &BookName) {
    asset(store, "BTC", 8).await;
    asset(store, "USD", 2).await;
    open(store, b, "hot", AccountKind::Asset, None).await;
    for name in [
        "customers:a",
        "customers:b",
        "customers:c",
        "customersx",
        "other",
    ] {
        open(store, b, name, AccountKind::Liability, None).await;
    }
    for d in [
        deposit("a", "customers:a", "BTC", 10),
        deposit("b", "customers:b", "BTC", 20),
        deposit("b-usd", "customers:b", "USD", 5),
        deposit("x", "customersx", "BTC", 100),
        deposit("o", "other", "BTC", 1000),
        withdraw("hold", "customers:b", "BTC", 7).into_hold(None),
    ] {
        committed(&commit_one(store, b, d).await);
    }
}

/// A prefix matches by bytes (`customers:` takes neither `customersx` nor
/// `other`); the count and the totals cover every match while the page
/// holds `limit`; `after` pages on; each row is what `balances` reads.
pub async fn prefix_balances_match_total_and_page(store: Arc<dyn Store>) {
    let b = book("prefixes");
    prefixed_book(&store, &b).await;
    let first = read(&store, &b, "customers:", None, None, 2).await;
    assert_eq!(first.count, 3);
    assert_eq!(names(&first.page), ["customers:a", "customers:b"]);
    assert_eq!(
        first.totals,
        [
            total(AccountKind::Liability, "BTC", -30, (7, 0)),
            total(AccountKind::Liability, "USD", -5, (0, 0)),
        ]
    );
    for row in &first.page {
        let single = store
            .balances(&b, &row.account, None)
            .await
            .expect("balances");
        assert_eq!(row.balances, single, "{} as balances reads it", row.account);
        assert_eq!(row.kind, AccountKind::Liability);
    }
    let held = &first.page[1].balances[0];
    assert_eq!(held.held.debits, minor(7), "the live hold is pending");
    let next = read(&store, &b, "customers:", None, Some("customers:b"), 2).await;
    assert_eq!(next.count, 3);
    assert_eq!(
        next.totals, first.totals,
        "totals do not depend on the page"
    );
    assert_eq!(names(&next.page), ["customers:c"]);
    assert!(
        next.page[0].balances.is_empty(),
        "never touched: no balance"
    );
    let x = read(&store, &b, "customersx", None, None, 10).await;
    assert_eq!(
        (x.count, names(&x.page)),
        (1, vec!["customersx"]),
        "a prefix is also a whole name"
    );
}

/// The asset filter keeps every matching account but only that asset's
/// balances and totals; the empty prefix is the whole book; a prefix or a
/// book matching nothing counts 0 with no totals.
pub async fn prefix_balances_filter_and_edges(store: Arc<dyn Store>) {
    let b = book("prefix-edges");
    prefixed_book(&store, &b).await;
    let usd = read(&store, &b, "customers:", Some("USD"), None, 100).await;
    assert_eq!(usd.count, 3);
    assert_eq!(
        usd.totals,
        [total(AccountKind::Liability, "USD", -5, (0, 0))]
    );
    let rows: Vec<(&str, usize)> = usd
        .page
        .iter()
        .map(|a| (a.account.as_str(), a.balances.len()))
        .collect();
    assert_eq!(
        rows,
        [("customers:a", 0), ("customers:b", 1), ("customers:c", 0)]
    );
    let all = read(&store, &b, "", None, None, 100).await;
    assert_eq!(
        names(&all.page),
        [
            "customers:a",
            "customers:b",
            "customers:c",
            "customersx",
            "hot",
            "other"
        ],
        "byte order"
    );
    assert_eq!(all.count, 6);
    assert_eq!(
        all.totals,
        [
            total(AccountKind::Asset, "BTC", 1130, (0, 7)),
            total(AccountKind::Asset, "USD", 5, (0, 0)),
            total(AccountKind::Liability, "BTC", -1130, (7, 0)),
            total(AccountKind::Liability, "USD", -5, (0, 0)),
        ]
    );
    for (prefix, asset) in [
        ("customersy", None),
        ("zz", None),
        ("customers:", Some("EUR")),
    ] {
        let none = read(&store, &b, prefix, asset, None, 100).await;
        if asset.is_none() {
            assert_eq!(none, PrefixBalances::default(), "{prefix} matches nothing");
        } else {
            assert_eq!(none.count, 3, "an asset filter keeps the accounts");
            assert!(none.totals.is_empty());
        }
    }
    let unknown = read(&store, &book("no-such-book"), "", None, None, 100).await;
    assert_eq!(unknown, PrefixBalances::default());
}
