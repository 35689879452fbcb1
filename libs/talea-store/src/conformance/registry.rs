//! Conformance cases. Asset registration and account opening, alone and racing.

use std::sync::Arc;

use talea_core::{Account, AccountKind, Asset, EventKind, NewAccount, Scale};

use crate::{Opened, Registered, Store};

use super::support::*;

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
