//! docs/proofs.md cannot drift: each block marked `<!-- example: NAME -->`
//! must equal what the code computes, every computed block must be in the
//! document, and the documents in it must verify.

use std::collections::BTreeMap;

use talea_verify::chain::verify_chain;
use talea_verify::files::{
    ConsistencyProof, InclusionProof, LiabilityProof, parse_checkpoint, parse_events, parse_keys,
};

use crate::example;

const MARKER: &str = "<!-- example: ";

/// The marked blocks of docs/proofs.md: the fenced block after each marker.
fn document_blocks() -> BTreeMap<String, String> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/proofs.md");
    let text = std::fs::read_to_string(path).expect("docs/proofs.md");
    let mut blocks = BTreeMap::new();
    for chunk in text.split(MARKER).skip(1) {
        let (name, rest) = chunk.split_once(" -->").expect("a closed marker");
        let body = rest
            .split_once("```")
            .and_then(|(_, fence)| fence.split_once('\n'))
            .and_then(|(_, body)| body.split_once("\n```"))
            .map(|(body, _)| body)
            .expect("a fenced block after the marker");
        let previous = blocks.insert(name.to_owned(), body.to_owned());
        assert!(previous.is_none(), "block {name} appears twice");
    }
    blocks
}

#[test]
fn the_worked_example_matches_the_code() {
    let document = document_blocks();
    let computed: BTreeMap<String, String> = example::blocks().into_iter().collect();
    for (name, body) in &computed {
        // The checkpoint message's lines end in \n; its block shows them
        // without the final one.
        let want = body.strip_suffix('\n').unwrap_or(body);
        assert_eq!(
            document.get(name).map(String::as_str),
            Some(want),
            "block {name}"
        );
    }
    let extra: Vec<&String> = document
        .keys()
        .filter(|k| !computed.contains_key(*k))
        .collect();
    assert!(
        extra.is_empty(),
        "blocks the code does not compute: {extra:?}"
    );
}

#[test]
fn the_worked_example_verifies() {
    let doc = document_blocks();
    let block = |name: &str| doc.get(name).map(String::as_str).expect(name);
    let events = parse_events(block("events")).expect("events");
    let summary = verify_chain(example::BOOK, events).expect("chain");
    let keys = parse_keys(block("key-list")).expect("keys");
    let checkpoint = parse_checkpoint(block("checkpoint")).expect("checkpoint");
    checkpoint.verify(&keys).expect("signature");
    assert_eq!(summary.last_seq, checkpoint.tree_size);
    assert_eq!(summary.root, Some(checkpoint.root().expect("root")));
    let checkpoint2 = parse_checkpoint(block("checkpoint-2")).expect("checkpoint");
    checkpoint2.verify(&keys).expect("signature");
    InclusionProof::parse(block("inclusion-proof"))
        .expect("inclusion")
        .verify_against(&checkpoint)
        .expect("included");
    ConsistencyProof::parse(block("consistency-proof"))
        .expect("consistency")
        .verify_against(&checkpoint2, &checkpoint)
        .expect("consistent");
    let liability = LiabilityProof::parse(block("liability-proof")).expect("liability");
    liability.verify().expect("liability proof");
}

/// Prints the blocks, to write the document from:
/// `cargo test -p talea-verify --test it -- print_example --nocapture`
/// (it prints only when TALEA_VERIFY_PRINT_EXAMPLE is set).
#[test]
fn print_example() {
    if std::env::var_os("TALEA_VERIFY_PRINT_EXAMPLE").is_none() {
        return;
    }
    for (name, body) in example::blocks() {
        println!(
            "{MARKER}{name} -->\n```\n{}\n```\n",
            body.trim_end_matches('\n')
        );
    }
}
