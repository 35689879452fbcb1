//! The worked example of docs/proofs.md, computed from the code: three events
//! of book `exchange`, their chain, the tree of three leaves, an inclusion
//! and a consistency proof, a checkpoint with its key, and a liability
//! snapshot of three accounts. Every block is named; the docs test checks
//! the document's blocks against these.

use serde_json::{Value, json};
use talea_verify::chain::{ChainEvent, GENESIS, event_hash};
use talea_verify::checkpoint::{KeyList, SigningKey};
use talea_verify::files::{ConsistencyProof, InclusionProof, LiabilityProof, LiabilityStep};
use talea_verify::hash::{Hash, to_hex};
use talea_verify::liabilities::SumTree;
use talea_verify::merkle::{self, MemoryLog};

/// The example's book.
pub const BOOK: &str = "exchange";
/// The example signing key's seed: 32 bytes of 0x01. An example only.
pub const SEED: [u8; 32] = [1; 32];
/// The example checkpoint's time.
pub const TIME: &str = "2026-12-07T12:00:00.000000Z";
/// The example liability snapshot's salt: bytes 0x00..=0x1f.
pub fn salt() -> [u8; 32] {
    std::array::from_fn(|i| i as u8)
}

/// The three served events, without their hashes.
pub fn events() -> Vec<Value> {
    vec![
        json!({"seq": 1, "type": "account_opened", "committed_at": "2026-12-07T11:59:58.000001Z",
               "data": {"book": BOOK, "name": "hot-wallet", "kind": "asset", "min_balance": null,
                        "metadata": null, "seq": 1, "opened_at": "2026-12-07T11:59:58.000001Z"}}),
        json!({"seq": 2, "type": "account_opened", "committed_at": "2026-12-07T11:59:58.500000Z",
               "data": {"book": BOOK, "name": "customers:alice", "kind": "liability", "min_balance": "0",
                        "metadata": {"tier": "gold"}, "seq": 2, "opened_at": "2026-12-07T11:59:58.500000Z"}}),
        json!({"seq": 3, "type": "transaction", "committed_at": "2026-12-07T11:59:59.250000Z",
               "data": {"tx_id": "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b", "book": BOOK, "seq": 3,
                        "committed_at": "2026-12-07T11:59:59.250000Z", "idempotency_key": "deposit-1",
                        "postings": [{"account": "hot-wallet", "asset": "BTC", "debit": "0.015"},
                                     {"account": "customers:alice", "asset": "BTC", "credit": "0.015"}],
                        "occurred_at": null, "memo": "Alice's first deposit ✓", "metadata": null,
                        "status": "posted"}}),
    ]
}

fn pretty(value: &impl serde::Serialize) -> String {
    serde_json::to_string_pretty(value).expect("json")
}

/// Every named block of the worked example, as the document shows it.
pub fn blocks() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut prev: Hash = GENESIS;
    let mut log = MemoryLog::new();
    let mut served = Vec::new();
    for mut event in events() {
        let parsed = ChainEvent::from_json(BOOK, &event).expect("event");
        let seq = parsed.seq;
        let canonical = String::from_utf8(parsed.canonical_bytes().expect("jcs")).expect("utf-8");
        out.push((format!("canonical-{seq}"), canonical));
        prev = event_hash(&prev, BOOK, &event).expect("hash");
        event["hash"] = json!(to_hex(&prev));
        out.push((format!("chain-hash-{seq}"), to_hex(&prev)));
        log.append_data(&prev);
        out.push((
            format!("leaf-hash-{seq}"),
            to_hex(&merkle::leaf_hash(&prev)),
        ));
        served.push(event);
    }
    out.push((
        "events".into(),
        pretty(&json!({"events": served, "next_after_seq": 3})),
    ));
    let root = log.root();
    let root2 = merkle::root(&log, 2).expect("root");
    out.push(("root-2".into(), to_hex(&root2)));
    out.push(("root-3".into(), to_hex(&root)));
    out.extend(proofs(&log));
    let key = SigningKey::from_seed(&SEED);
    out.push((
        "key-list".into(),
        pretty(&KeyList {
            keys: vec![key.public_key()],
        }),
    ));
    let checkpoint = key.sign(BOOK, 3, &root, TIME).expect("sign");
    out.push((
        "checkpoint-message".into(),
        checkpoint.message().expect("message"),
    ));
    out.push(("checkpoint".into(), pretty(&checkpoint)));
    let checkpoint2 = key.sign(BOOK, 2, &root2, TIME).expect("sign");
    out.push(("checkpoint-2".into(), pretty(&checkpoint2)));
    out.extend(liabilities());
    out
}

fn proofs(log: &MemoryLog) -> Vec<(String, String)> {
    let leaf = |seq: u64| log_leaf(log, seq);
    let inclusion = InclusionProof {
        book: BOOK.into(),
        seq: 1,
        tree_size: 3,
        leaf_hash: to_hex(&leaf(1)),
        audit_path: merkle::inclusion_proof(log, 0, 3)
            .expect("path")
            .iter()
            .map(|h| to_hex(h))
            .collect(),
    };
    let consistency = ConsistencyProof {
        book: BOOK.into(),
        from: 2,
        to: 3,
        first_root: Some(to_hex(&merkle::root(log, 2).expect("root"))),
        second_root: Some(to_hex(&log.root())),
        proof: merkle::consistency_proof(log, 2, 3)
            .expect("proof")
            .iter()
            .map(|h| to_hex(h))
            .collect(),
    };
    vec![
        ("inclusion-proof".into(), pretty(&inclusion)),
        ("consistency-proof".into(), pretty(&consistency)),
    ]
}

fn log_leaf(log: &MemoryLog, seq: u64) -> Hash {
    use talea_verify::merkle::Nodes;
    log.node(0, seq - 1).expect("leaf")
}

fn liabilities() -> Vec<(String, String)> {
    let balances = [
        ("customers:alice".to_owned(), 1_500_000i128),
        ("customers:bob".to_owned(), 250_000),
        ("customers:carol".to_owned(), 0),
        ("customers:mallory".to_owned(), -90_000),
    ];
    let tree = SumTree::build(salt(), balances).expect("tree");
    let root = tree.root();
    let (balance, path) = tree.proof("customers:bob").expect("proof");
    let proof = LiabilityProof {
        snapshot: "snap-1".into(),
        asset: "BTC".into(),
        account: "customers:bob".into(),
        balance: balance.to_string(),
        salt: to_hex(&salt()),
        path: path.iter().map(LiabilityStep::from_step).collect(),
        root: to_hex(&root.hash),
        total: root.sum.to_string(),
    };
    let leaf = talea_verify::liabilities::leaf(&salt(), "customers:bob", balance).expect("leaf");
    vec![
        ("liability-leaf-bob".into(), to_hex(&leaf.hash)),
        (
            "liability-root".into(),
            format!("{} {}", to_hex(&root.hash), root.sum),
        ),
        (
            "liability-refused".into(),
            tree.refused()
                .iter()
                .map(|r| format!("{} {}", r.account, r.balance))
                .collect::<Vec<_>>()
                .join("\n"),
        ),
        ("liability-proof".into(), pretty(&proof)),
    ]
}
