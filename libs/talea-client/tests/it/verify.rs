//! `talea verify` against files built with `talea_verify` itself: a chain of
//! events, checkpoints signed by a seeded key, Merkle proofs from a
//! `MemoryLog` and a liability tree. Each check passes (exit 0), fails once
//! tampered with (exit 4, naming what failed), and a malformed file is an
//! input error (exit 1). No server: the command is offline.

use std::process::Command;

use serde_json::{Value, json};
use talea_verify::chain::{GENESIS, event_hash};
use talea_verify::checkpoint::{KeyList, SigningKey};
use talea_verify::files::{ConsistencyProof, InclusionProof, LiabilityProof, LiabilityStep};
use talea_verify::hash::{Hash, to_hex};
use talea_verify::liabilities::SumTree;
use talea_verify::merkle::{self, MemoryLog};

use crate::support::{self, BIN, Run};

const BOOK: &str = "exchange";
const TIME: &str = "2026-12-07T12:00:00.000000Z";

/// Runs `talea args…`, with `stdin` piped in if given.
fn talea(args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.env("TALEA_URL", "http://127.0.0.1:9").args(args);
    support::run(cmd, stdin)
}

/// The documents, written to a temporary directory.
struct Fixture {
    dir: tempfile::TempDir,
    /// The served events, hashes included.
    events: Vec<Value>,
    /// The chain hash of each event, seq 1 first.
    hashes: Vec<Hash>,
    /// The liability snapshot's root hash and total.
    liability_root: String,
    liability_total: String,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (events, hashes) = chain();
        let mut log = MemoryLog::new();
        for hash in &hashes {
            log.append_data(hash);
        }
        let key = SigningKey::from_seed(&[7; 32]);
        let root2 = merkle::root(&log, 2).expect("root");
        let root4 = log.root();
        let (liability, liability_root, liability_total) = liability();
        let fixture = Self {
            dir,
            events,
            hashes,
            liability_root,
            liability_total,
        };
        let keys = KeyList {
            keys: vec![key.public_key()],
        };
        fixture.write_json("keys.json", &keys);
        fixture.write_json("cp2.json", &key.sign(BOOK, 2, &root2, TIME).expect("sign"));
        fixture.write_json("cp4.json", &key.sign(BOOK, 4, &root4, TIME).expect("sign"));
        fixture.write_json("inclusion.json", &inclusion(&log, &fixture.hashes));
        fixture.write_json("consistency.json", &consistency(&log));
        fixture.write_json("liability.json", &liability);
        fixture.write_json("events.json", &fixture.events);
        fixture
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.path(name);
        std::fs::write(&path, text).expect("writes");
        path
    }

    fn write_json(&self, name: &str, value: &(impl serde::Serialize + ?Sized)) -> String {
        self.write(name, &serde_json::to_string_pretty(value).expect("json"))
    }

    /// A copy of document `name` changed by `edit`, written as `tampered-<name>`.
    fn tamper(&self, name: &str, edit: impl FnOnce(&mut Value)) -> String {
        let text = std::fs::read_to_string(self.path(name)).expect("reads");
        let mut value: Value = serde_json::from_str(&text).expect("json");
        edit(&mut value);
        self.write_json(&format!("tampered-{name}"), &value)
    }
}

/// Four served events of `BOOK` and their chain hashes.
fn chain() -> (Vec<Value>, Vec<Hash>) {
    let mut prev = GENESIS;
    let mut events = Vec::new();
    let mut hashes = Vec::new();
    for seq in 1..=4u64 {
        let mut event = json!({
            "seq": seq,
            "type": "transaction",
            "committed_at": format!("2026-12-07T11:59:5{seq}.000000Z"),
            "data": {"book": BOOK, "seq": seq, "memo": format!("deposit {seq}"),
                     "postings": [{"account": "hot-wallet", "asset": "BTC", "debit": "1"},
                                  {"account": "customers:alice", "asset": "BTC", "credit": "1"}]},
        });
        prev = event_hash(&prev, BOOK, &event).expect("hash");
        event["hash"] = json!(to_hex(&prev));
        events.push(event);
        hashes.push(prev);
    }
    (events, hashes)
}

/// Event 2 is in the tree of 4.
fn inclusion(log: &MemoryLog, hashes: &[Hash]) -> InclusionProof {
    InclusionProof {
        book: BOOK.into(),
        seq: 2,
        tree_size: 4,
        leaf_hash: to_hex(&merkle::leaf_hash(&hashes[1])),
        audit_path: hex_list(&merkle::inclusion_proof(log, 1, 4).expect("path")),
    }
}

/// The tree of 2 is a prefix of the tree of 4.
fn consistency(log: &MemoryLog) -> ConsistencyProof {
    ConsistencyProof {
        book: BOOK.into(),
        from: 2,
        to: 4,
        first_root: None,
        second_root: None,
        proof: hex_list(&merkle::consistency_proof(log, 2, 4).expect("proof")),
    }
}

fn hex_list(hashes: &[Hash]) -> Vec<String> {
    hashes.iter().map(|h| to_hex(h)).collect()
}

/// Bob's proof in a snapshot of three accounts, with its root and total.
fn liability() -> (LiabilityProof, String, String) {
    let salt: [u8; 32] = std::array::from_fn(|i| i as u8);
    let balances = [
        ("customers:alice".to_owned(), 1_500_000i128),
        ("customers:bob".to_owned(), 250_000),
        ("customers:carol".to_owned(), 4_000),
    ];
    let tree = SumTree::build(salt, balances).expect("tree");
    let root = tree.root();
    let (balance, path) = tree.proof("customers:bob").expect("proof");
    let proof = LiabilityProof {
        snapshot: "snap-1".into(),
        asset: "BTC".into(),
        account: "customers:bob".into(),
        balance: balance.to_string(),
        salt: to_hex(&salt),
        path: path.iter().map(LiabilityStep::from_step).collect(),
        root: to_hex(&root.hash),
        total: root.sum.to_string(),
    };
    (proof, to_hex(&root.hash), root.sum.to_string())
}

/// `hex` with its first digit changed.
fn flip(hex: &str) -> String {
    let first = if hex.starts_with('0') { "1" } else { "0" };
    format!("{first}{}", &hex[1..])
}

fn flip_at(value: &mut Value, pointer: &str) {
    let slot = value.pointer_mut(pointer).expect("pointer");
    *slot = json!(flip(slot.as_str().expect("hex")));
}

#[test]
fn a_chain_verifies_from_an_array_a_page_or_ndjson_on_stdin() {
    let f = Fixture::new();
    let head = to_hex(&f.hashes[3]);
    let run = talea(
        &["verify", "chain", "--book", BOOK, &f.path("events.json")],
        None,
    )
    .exits(0);
    assert_eq!(
        run.stdout,
        format!("ok: chain of book {BOOK}: 4 events checked, seq 1 to 4, last hash {head}\n")
    );
    let page = f.write_json(
        "page.json",
        &json!({"events": f.events, "next_after_seq": null}),
    );
    talea(&["verify", "chain", "--book", BOOK, &page], None).exits(0);
    let ndjson: String = f.events.iter().map(|e| format!("{e}\n")).collect();
    let run = talea(
        &["--json", "verify", "chain", "--book", BOOK, "-"],
        Some(&ndjson),
    )
    .exits(0);
    let out = run.json();
    assert_eq!(out["ok"], true, "{run:#?}");
    assert_eq!(out["chain"]["events"], 4);
    assert_eq!(out["chain"]["last_seq"], 4);
    assert_eq!(out["chain"]["last_hash"], head.as_str());
    assert_eq!(out["checks"][0]["check"], "chain");
}

#[test]
fn a_chain_resumes_after_a_verified_seq_and_hash() {
    let f = Fixture::new();
    let rest = f.write_json("rest.json", &f.events[2..]);
    let after = to_hex(&f.hashes[1]);
    let run = talea(
        &[
            "verify",
            "chain",
            "--book",
            BOOK,
            "--after-seq",
            "2",
            "--after-hash",
            &after,
            &rest,
        ],
        None,
    )
    .exits(0);
    assert!(
        run.stdout.contains("2 events checked, seq 3 to 4"),
        "{run:#?}"
    );
    // Another hash for seq 2: the chain breaks at the export's first event.
    let wrong = to_hex(&f.hashes[0]);
    let run = talea(
        &[
            "verify",
            "chain",
            "--book",
            BOOK,
            "--after-seq",
            "2",
            "--after-hash",
            &wrong,
            &rest,
        ],
        None,
    )
    .exits(4);
    assert!(run.stderr.contains("seq 3"), "{run:#?}");
    // Resuming needs both flags, a hash of 64 hex digits, and no checkpoint.
    talea(
        &["verify", "chain", "--book", BOOK, "--after-seq", "2", &rest],
        None,
    )
    .exits(1);
    talea(
        &[
            "verify",
            "chain",
            "--book",
            BOOK,
            "--after-seq",
            "2",
            "--after-hash",
            "abc",
            &rest,
        ],
        None,
    )
    .exits(1);
}

#[test]
fn a_chain_checks_against_a_signed_checkpoint() {
    let f = Fixture::new();
    let (events, keys) = (f.path("events.json"), f.path("keys.json"));
    let args = |cp: &str| {
        talea(
            &[
                "verify",
                "chain",
                "--book",
                BOOK,
                &events,
                "--checkpoint",
                cp,
                "--keys",
                &keys,
            ],
            None,
        )
    };
    let run = args(&f.path("cp2.json")).exits(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 4, "{run:#?}");
    assert!(
        lines[0].starts_with("ok: checkpoint of book exchange at tree size 2 is signed by key ")
    );
    assert!(lines[2].starts_with("ok: chain of book exchange: 4 events checked"));
    assert!(lines[3].starts_with("ok: the first 2 events have the checkpoint's root "));

    // Signed by the right key, but over another root.
    let key = SigningKey::from_seed(&[7; 32]);
    let wrong = key.sign(BOOK, 2, &f.hashes[0], TIME).expect("sign");
    let run = args(&f.write_json("wrong-root.json", &wrong)).exits(4);
    assert!(
        run.stderr.contains("do not have the checkpoint's root"),
        "{run:#?}"
    );
    // An export that ends before the checkpoint's tree size proves nothing about it.
    let short = f.write_json("short.json", &f.events[..1]);
    let run = talea(
        &[
            "verify",
            "chain",
            "--book",
            BOOK,
            &short,
            "--checkpoint",
            &f.path("cp2.json"),
            "--keys",
            &keys,
        ],
        None,
    )
    .exits(4);
    assert!(
        run.stderr
            .contains("ends at seq 1, before the checkpoint's tree size 2"),
        "{run:#?}"
    );
    let other = key.sign("other", 2, &f.hashes[0], TIME).expect("sign");
    let run = args(&f.write_json("other-book.json", &other)).exits(4);
    assert!(run.stderr.contains("not \"exchange\""), "{run:#?}");
}

#[test]
fn a_tampered_event_names_the_first_bad_seq() {
    let f = Fixture::new();
    let events = f.tamper("events.json", |v| {
        v[2]["data"]["memo"] = json!("deposit 300")
    });
    let run = talea(&["verify", "chain", "--book", BOOK, &events], None).exits(4);
    assert!(run.stdout.is_empty(), "{run:#?}");
    assert!(
        run.stderr
            .contains("verification failed: chain: the chain breaks at seq 3: the event's hash is"),
        "{run:#?}"
    );
    let run = talea(
        &[
            "--json",
            "verify",
            "chain",
            "--book",
            BOOK,
            &events,
            "--checkpoint",
        ]
        .into_iter()
        .chain([f.path("cp4.json").as_str(), "--keys", &f.path("keys.json")])
        .collect::<Vec<_>>(),
        None,
    )
    .exits(4);
    let out = run.json();
    assert_eq!(out["ok"], false);
    assert_eq!(out["checks"][0]["ok"], true, "the signature held: {run:#?}");
    assert_eq!(out["checks"][2]["check"], "chain");
    assert!(
        out["checks"][2]["message"]
            .as_str()
            .is_some_and(|m| m.contains("seq 3")),
        "{run:#?}"
    );
    let gap = f.write_json("gap.json", &[&f.events[0], &f.events[2]]);
    let run = talea(&["verify", "chain", "--book", BOOK, &gap], None).exits(4);
    assert!(
        run.stderr.contains("at seq 2: expected seq 2, found 3"),
        "{run:#?}"
    );
    let run = talea(
        &["verify", "chain", "--book", "other", &f.path("events.json")],
        None,
    )
    .exits(4);
    assert!(run.stderr.contains("at seq 1"), "{run:#?}");
}

#[test]
fn a_checkpoint_signature_verifies_and_a_flipped_byte_fails() {
    let f = Fixture::new();
    let keys = f.path("keys.json");
    let run = talea(
        &["verify", "checkpoint", &f.path("cp4.json"), "--keys", &keys],
        None,
    )
    .exits(0);
    assert!(
        run.stdout
            .starts_with("ok: checkpoint of book exchange at tree size 4 is signed by key")
    );
    let run = talea(
        &[
            "--json",
            "verify",
            "checkpoint",
            &f.path("cp4.json"),
            "--keys",
            &keys,
        ],
        None,
    )
    .exits(0);
    assert_eq!(run.json()["checkpoint"]["tree_size"], 4);

    let bad = f.tamper("cp4.json", |v| flip_at(v, "/signature"));
    let run = talea(&["verify", "checkpoint", &bad, "--keys", &keys], None).exits(4);
    assert!(
        run.stderr
            .contains("verification failed: signature: the signature does not verify"),
        "{run:#?}"
    );
    let stranger = KeyList {
        keys: vec![SigningKey::from_seed(&[8; 32]).public_key()],
    };
    let stranger = f.write_json("stranger.json", &stranger);
    let run = talea(
        &[
            "verify",
            "checkpoint",
            &f.path("cp4.json"),
            "--keys",
            &stranger,
        ],
        None,
    )
    .exits(4);
    assert!(run.stderr.contains("no known key has id"), "{run:#?}");
}

#[test]
fn an_inclusion_proof_verifies_and_a_changed_hash_fails() {
    let f = Fixture::new();
    let (proof, cp) = (f.path("inclusion.json"), f.path("cp4.json"));
    let run = talea(&["verify", "inclusion", &proof, "--checkpoint", &cp], None).exits(0);
    assert!(
        run.stdout.starts_with(
            "ok: event seq 2 of book exchange is in the checkpoint's tree of 4 events"
        ),
        "{run:#?}"
    );
    assert!(
        run.stderr.contains("signatures were not checked"),
        "{run:#?}"
    );
    let keys = f.path("keys.json");
    let run = talea(
        &[
            "verify",
            "inclusion",
            &proof,
            "--checkpoint",
            &cp,
            "--keys",
            &keys,
        ],
        None,
    )
    .exits(0);
    assert_eq!(run.stdout.lines().count(), 2, "{run:#?}");
    assert!(run.stderr.is_empty(), "{run:#?}");

    let bad = f.tamper("inclusion.json", |v| flip_at(v, "/audit_path/1"));
    let run = talea(
        &[
            "verify",
            "inclusion",
            &bad,
            "--checkpoint",
            &cp,
            "--keys",
            &keys,
        ],
        None,
    )
    .exits(4);
    assert!(run.stdout.starts_with("ok: checkpoint"), "{run:#?}");
    assert!(
        run.stderr
            .contains("verification failed: inclusion: the proof does not lead to the root"),
        "{run:#?}"
    );
    let run = talea(
        &[
            "verify",
            "inclusion",
            &proof,
            "--checkpoint",
            &f.path("cp2.json"),
        ],
        None,
    )
    .exits(4);
    assert!(
        run.stderr.contains("tree size 4, the checkpoint is of 2"),
        "{run:#?}"
    );
}

#[test]
fn a_consistency_proof_verifies_and_a_changed_hash_fails() {
    let f = Fixture::new();
    let (from, to, keys) = (f.path("cp2.json"), f.path("cp4.json"), f.path("keys.json"));
    let args = |proof: &str| {
        talea(
            &[
                "verify",
                "consistency",
                proof,
                "--from",
                &from,
                "--to",
                &to,
                "--keys",
                &keys,
            ],
            None,
        )
    };
    let run = args(&f.path("consistency.json")).exits(0);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 3, "{run:#?}");
    assert!(
        lines[2].starts_with("ok: book exchange's tree of 2 events"),
        "{run:#?}"
    );

    let bad = f.tamper("consistency.json", |v| flip_at(v, "/proof/0"));
    let run = args(&bad).exits(4);
    assert!(
        run.stderr.contains("verification failed: consistency:"),
        "{run:#?}"
    );
    let swapped = talea(
        &[
            "verify",
            "consistency",
            &f.path("consistency.json"),
            "--from",
            &to,
            "--to",
            &from,
        ],
        None,
    )
    .exits(4);
    assert!(
        swapped.stderr.contains("the proof is from 2 to 4"),
        "{swapped:#?}"
    );
}

#[test]
fn a_liability_proof_verifies_against_the_published_root_and_total() {
    let f = Fixture::new();
    let proof = f.path("liability.json");
    let (root, total) = (f.liability_root.as_str(), f.liability_total.as_str());
    assert_eq!(total, "1754000");
    let run = talea(
        &[
            "verify",
            "liability",
            &proof,
            "--root",
            root,
            "--total",
            total,
        ],
        None,
    )
    .exits(0);
    assert_eq!(
        run.stdout,
        format!(
            "ok: account customers:bob with balance 250000 BTC is counted in snapshot snap-1's \
             total 1754000 (root {root})\n"
        )
    );
    let run = talea(&["verify", "liability", &proof], None).exits(0);
    assert!(run.stderr.contains("no --root and --total"), "{run:#?}");

    let run = talea(
        &[
            "verify",
            "liability",
            &proof,
            "--root",
            root,
            "--total",
            "1753999",
        ],
        None,
    )
    .exits(4);
    assert!(run.stderr.contains("not the published one"), "{run:#?}");
    let bad = f.tamper("liability.json", |v| v["path"][0]["sum"] = json!("0"));
    let run = talea(
        &[
            "verify",
            "liability",
            &bad,
            "--root",
            root,
            "--total",
            total,
        ],
        None,
    )
    .exits(4);
    assert!(
        run.stderr.contains(
            "verification failed: liability: the proof does not lead to the published root"
        ),
        "{run:#?}"
    );
}

#[test]
fn malformed_or_missing_files_are_input_errors() {
    let f = Fixture::new();
    let keys = f.path("keys.json");
    let garbage = f.write("garbage.json", "{\"tree_size\": ");
    let run = talea(&["verify", "checkpoint", &garbage, "--keys", &keys], None).exits(1);
    assert!(
        run.stderr
            .contains(&format!("talea: {garbage}: checkpoint:")),
        "{run:#?}"
    );
    let run = talea(
        &["verify", "inclusion", &garbage, "--checkpoint", &keys],
        None,
    )
    .exits(1);
    assert!(run.stderr.contains("inclusion proof"), "{run:#?}");
    let run = talea(
        &["verify", "chain", "--book", BOOK, "-"],
        Some("{\"seq\": 1}\nnope\n"),
    )
    .exits(1);
    assert!(run.stderr.contains("line 2"), "{run:#?}");
    let run = talea(&["verify", "chain", "--book", BOOK, "-"], Some("")).exits(1);
    assert!(run.stderr.contains("stdin holds no events"), "{run:#?}");
    let missing = f.path("missing.json");
    let run = talea(&["verify", "liability", &missing], None).exits(1);
    assert!(
        run.stderr.contains(&format!("cannot read {missing}")),
        "{run:#?}"
    );
    let short = f.tamper("inclusion.json", |v| v["leaf_hash"] = json!("abc"));
    let run = talea(
        &[
            "verify",
            "inclusion",
            &short,
            "--checkpoint",
            &f.path("cp4.json"),
        ],
        None,
    )
    .exits(1);
    assert!(run.stderr.contains("leaf_hash"), "{run:#?}");
    let run = talea(
        &[
            "verify",
            "liability",
            &f.path("liability.json"),
            "--root",
            "xyz",
            "--total",
            "1",
        ],
        None,
    )
    .exits(1);
    assert!(run.stderr.contains("--root"), "{run:#?}");
    let checkpoint = std::fs::read_to_string(f.path("cp4.json")).expect("reads");
    let run = talea(
        &["verify", "checkpoint", "-", "--keys", "-"],
        Some(&checkpoint),
    )
    .exits(1);
    assert!(run.stderr.contains("one file only"), "{run:#?}");
    // --checkpoint without --keys is a usage error (clap's, mapped to 1).
    talea(
        &[
            "verify",
            "chain",
            "--book",
            BOOK,
            &f.path("events.json"),
            "--checkpoint",
            &keys,
        ],
        None,
    )
    .exits(1);
}

/// The fenced block after `<!-- example: NAME -->` in docs/proofs.md.
fn example_block(doc: &str, name: &str) -> String {
    doc.split(&format!("<!-- example: {name} -->"))
        .nth(1)
        .and_then(|rest| rest.split_once("```"))
        .and_then(|(_, fence)| fence.split_once('\n'))
        .and_then(|(_, body)| body.split_once("\n```"))
        .map(|(body, _)| body.to_owned())
        .unwrap_or_else(|| panic!("docs/proofs.md has no block {name}"))
}

/// The walk-through of docs/proofs.md: its commands pass on its worked
/// example's documents.
#[test]
fn the_walk_through_passes_on_the_worked_example() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/proofs.md"))
        .expect("docs/proofs.md");
    let f = Fixture::new();
    for (block, file) in [
        ("events", "events.json"),
        ("key-list", "keys.json"),
        ("checkpoint", "checkpoint.json"),
        ("checkpoint-2", "checkpoint-2.json"),
        ("inclusion-proof", "inclusion.json"),
        ("consistency-proof", "consistency.json"),
        ("liability-proof", "liability.json"),
    ] {
        f.write(file, &example_block(&doc, block));
    }
    let liability: Value =
        serde_json::from_str(&example_block(&doc, "liability-proof")).expect("json");
    let (root, total) = (
        liability["root"].as_str().expect("root"),
        liability["total"].as_str().expect("total"),
    );
    let [events, keys, cp, cp2, inclusion, consistency, proof] = [
        "events.json",
        "keys.json",
        "checkpoint.json",
        "checkpoint-2.json",
        "inclusion.json",
        "consistency.json",
        "liability.json",
    ]
    .map(|name| f.path(name));
    let commands: [Vec<&str>; 5] = [
        vec!["checkpoint", &cp, "--keys", &keys],
        vec![
            "chain",
            "--book",
            "exchange",
            &events,
            "--checkpoint",
            &cp,
            "--keys",
            &keys,
        ],
        vec![
            "inclusion",
            &inclusion,
            "--checkpoint",
            &cp,
            "--keys",
            &keys,
        ],
        vec![
            "consistency",
            &consistency,
            "--from",
            &cp2,
            "--to",
            &cp,
            "--keys",
            &keys,
        ],
        vec!["liability", &proof, "--root", root, "--total", total],
    ];
    for command in commands {
        let args: Vec<&str> = ["verify"].into_iter().chain(command).collect();
        let run = talea(&args, None).exits(0);
        assert!(run.stdout.starts_with("ok: "), "{run:#?}");
    }
}
