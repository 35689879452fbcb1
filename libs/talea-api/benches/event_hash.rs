//! What the hash chain costs per event under the book's lock: the chain
//! hash of a typical two-leg transaction event, written straight from the
//! domain values (`event_hash`, what the stores run), beside the same bytes
//! built through the served JSON tree (`event_dto`, `serde_json::Value`,
//! JCS: what a verifier does). `cargo bench -p talea-api --bench event_hash`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Instant;

use talea_api::event::{event_dto, event_hash};
use talea_core::{
    AccountName, Amount, AssetCode, BookName, Commit, Event, EventKind, IdempotencyKey, Scale,
    Side, StoredPosting, Timestamp, TxId, TxStatus,
};

const ROUNDS: usize = 200_000;

fn main() {
    let book = BookName::parse("exchange").expect("book");
    let btc = AssetCode::parse("BTC").expect("asset");
    let scales: BTreeMap<AssetCode, Scale> = [(btc.clone(), Scale::new(8).expect("scale"))].into();
    let leg = |account: &str, side| StoredPosting {
        account: AccountName::parse(account).expect("account"),
        asset: btc.clone(),
        side,
        amount: Amount::from_minor(1_500_000),
        balance_after: Amount::from_minor(0),
    };
    let event = Event {
        seq: 1_234_567,
        committed_at: Timestamp::from_micros(1_765_108_799_250_000),
        kind: EventKind::Transaction(Commit {
            tx_id: TxId(uuid::Uuid::from_u128(
                0x0193_a1b2_c3d4_7e5f_8a9b_0c1d_2e3f_4a5b,
            )),
            book: book.clone(),
            seq: 1_234_567,
            committed_at: Timestamp::from_micros(1_765_108_799_250_000),
            idempotency_key: IdempotencyKey::parse("deposit-7f3a-0001").expect("key"),
            postings: vec![
                leg("hot-wallet", Side::Debit),
                leg("customers:alice", Side::Credit),
            ],
            occurred_at: None,
            memo: Some("deposit".to_owned()),
            metadata: Some(r#"{"chain":"btc","txid":"ab12cd34"}"#.to_owned()),
            status: TxStatus::Posted,
            expires_at: None,
            pending_tx_id: None,
        }),
        hash: None,
    };
    let prev = [7u8; 32];
    for _ in 0..3 {
        let started = Instant::now();
        for _ in 0..ROUNDS {
            black_box(event_hash(&prev, "exchange", black_box(&event), &scales).expect("hash"));
        }
        let direct = started.elapsed().as_nanos() as f64 / ROUNDS as f64;
        let started = Instant::now();
        for _ in 0..ROUNDS {
            let value = serde_json::to_value(event_dto(black_box(&event), &scales)).expect("json");
            black_box(talea_verify::chain::event_hash(&prev, "exchange", &value).expect("hash"));
        }
        let served = started.elapsed().as_nanos() as f64 / ROUNDS as f64;
        println!(
            "event_hash: {:.2} µs/event direct, {:.2} µs/event through the served JSON ({:.1}x)",
            direct / 1000.0,
            served / 1000.0,
            served / direct
        );
    }
}
