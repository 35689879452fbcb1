//! The chain's canonical bytes, written straight from domain values
//! (`talea_api::event::canonical_bytes`), are exactly the RFC 8785 form of
//! the event as served (`event_dto`, then `talea_verify`'s JCS), for every
//! kind of event and whatever strings, metadata and numbers it holds.

use std::collections::BTreeMap;

use proptest::prelude::*;
use talea_api::event::{canonical_bytes, event_dto};
use talea_core::{
    Account, AccountKind, AccountName, Amount, AssetCode, BookName, Commit, Decimal, Event,
    EventKind, IdempotencyKey, Scale, Side, StoredPosting, Timestamp, TxId, TxStatus,
};
use talea_verify::chain::ChainEvent;

fn served(book: &str, event: &Event, scales: &BTreeMap<AssetCode, Scale>) -> Vec<u8> {
    let value = serde_json::to_value(event_dto(event, scales)).expect("json");
    ChainEvent::from_json(book, &value)
        .expect("a chain event")
        .canonical_bytes()
        .expect("canonical")
}

fn scales() -> BTreeMap<AssetCode, Scale> {
    [("BTC", 8), ("USD", 2), ("PTS", 0)]
        .into_iter()
        .map(|(c, s)| {
            (
                AssetCode::parse(c).expect("code"),
                Scale::new(s).expect("scale"),
            )
        })
        .collect()
}

fn posting(account: &str, asset: &str, side: Side, minor: i128) -> StoredPosting {
    StoredPosting {
        account: AccountName::parse(account).expect("account"),
        asset: AssetCode::parse(asset).expect("asset"),
        side,
        amount: Amount::from_minor(minor),
        balance_after: Amount::from_minor(0),
    }
}

/// JSON objects as a client might send as metadata: nested, with numbers
/// of every shape, escapes and non-ASCII text.
fn metadata() -> impl Strategy<Value = Option<String>> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<u64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
        any::<String>().prop_map(serde_json::Value::String),
    ];
    let value = leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
            proptest::collection::btree_map(any::<String>(), inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    });
    proptest::option::of(
        proptest::collection::btree_map(any::<String>(), value, 0..5)
            .prop_map(|m| serde_json::Value::Object(m.into_iter().collect()).to_string()),
    )
}

fn status() -> impl Strategy<Value = TxStatus> {
    prop_oneof![
        Just(TxStatus::Posted),
        Just(TxStatus::Pending),
        Just(TxStatus::Voided),
        Just(TxStatus::Expired),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn canonical_bytes_agree_with_the_served_json(
        seq in 1u64..u64::from(u32::MAX),
        at in 0i64..4_102_444_800_000_000,
        memo in proptest::option::of(any::<String>()),
        metadata in metadata(),
        occurred in proptest::option::of(-62_135_596_800_000_000i64..4_102_444_800_000_000),
        expires in proptest::option::of(0i64..4_102_444_800_000_000),
        pending in any::<bool>(),
        status in status(),
        minor in 1i128..i128::MAX,
        asset in prop_oneof![Just("BTC"), Just("USD"), Just("PTS"), Just("UNKNOWN")],
        key in "[ -~]{1,128}",
        expired in any::<bool>(),
        min in proptest::option::of(any::<i64>()),
        kind in prop_oneof![Just(AccountKind::Asset), Just(AccountKind::Liability), Just(AccountKind::Revenue)],
    ) {
        let book = BookName::parse("exchange").expect("book");
        let commit = Commit {
            tx_id: TxId(uuid::Uuid::from_u128(minor as u128)),
            book: book.clone(),
            seq,
            committed_at: Timestamp::from_micros(at),
            idempotency_key: IdempotencyKey::parse(&key).expect("key"),
            postings: vec![
                posting("hot-wallet", asset, Side::Debit, minor),
                posting("customers:alice", asset, Side::Credit, minor),
            ],
            occurred_at: occurred.map(Timestamp::from_micros),
            memo,
            metadata: metadata.clone(),
            status,
            expires_at: expires.map(Timestamp::from_micros),
            pending_tx_id: pending.then(|| TxId(uuid::Uuid::from_u128(7))),
        };
        let kind_of = if expired { EventKind::HoldExpired(commit) } else { EventKind::Transaction(commit) };
        let scales = scales();
        for event_kind in [
            kind_of,
            EventKind::AccountOpened(Account {
                book: book.clone(),
                name: AccountName::parse("customers:alice").expect("name"),
                kind,
                min_balance: min.map(|m| Decimal::from_parts(i128::from(m), 2).expect("decimal")),
                metadata: metadata.unwrap_or_else(|| "{}".to_owned()),
                seq,
                opened_at: Timestamp::from_micros(at),
            }),
        ] {
            let event = Event { seq, committed_at: Timestamp::from_micros(at), kind: event_kind, hash: None };
            let direct = canonical_bytes("exchange", &event, &scales).expect("canonical");
            let served = served("exchange", &event, &scales);
            prop_assert_eq!(String::from_utf8_lossy(&direct), String::from_utf8_lossy(&served));
        }
    }
}
