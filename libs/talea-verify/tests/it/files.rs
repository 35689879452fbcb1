//! The documents: each format parses, verifies, and says what is wrong.

use talea_verify::checkpoint::SigningKey;
use talea_verify::files::{
    ConsistencyProof, FileError, InclusionProof, LiabilityProof, PROOF_FILE_BYTES_MAX, ProofError,
    parse_checkpoint, parse_events, parse_keys,
};
use talea_verify::merkle::VerifyError;

use crate::example;

fn block(name: &str) -> String {
    example::blocks()
        .into_iter()
        .find(|(n, _)| n == name)
        .map(|(_, b)| b)
        .expect(name)
}

#[test]
fn an_export_reads_as_array_page_or_ndjson() {
    let page = block("events");
    let events = parse_events(&page).expect("page");
    assert_eq!(events.len(), 3);
    let array = serde_json::to_string(&events).expect("json");
    assert_eq!(parse_events(&array).expect("array"), events);
    let ndjson: String = events.iter().map(|e| format!("{e}\n\n")).collect();
    assert_eq!(parse_events(&ndjson).expect("ndjson"), events);
    let broken = format!("{}\n{{\"seq\": 2,\n", events[0]);
    let err = parse_events(&broken).expect_err("broken line");
    assert!(err.to_string().contains("line 2"), "{err}");
    assert!(parse_events("42").is_err());
    assert!(parse_events("{\"events\": 3}").is_err());
    assert_eq!(
        parse_events("").expect("empty"),
        Vec::<serde_json::Value>::new()
    );
}

#[test]
fn proofs_are_checked_against_their_checkpoints() {
    let checkpoint = parse_checkpoint(&block("checkpoint")).expect("checkpoint");
    let older = parse_checkpoint(&block("checkpoint-2")).expect("checkpoint");
    let inclusion = InclusionProof::parse(&block("inclusion-proof")).expect("inclusion");
    assert!(matches!(
        inclusion.verify_against(&older),
        Err(ProofError::Mismatch(_))
    ));
    let mut other_book = checkpoint.clone();
    other_book.book = "other".into();
    assert!(matches!(
        inclusion.verify_against(&other_book),
        Err(ProofError::Mismatch(_))
    ));
    let mut seq0 = inclusion.clone();
    seq0.seq = 0;
    assert!(matches!(
        seq0.verify_against(&checkpoint),
        Err(ProofError::File(FileError::Field { .. }))
    ));
    let mut seq4 = inclusion.clone();
    seq4.seq = 4;
    assert!(matches!(
        seq4.verify_against(&checkpoint),
        Err(ProofError::Merkle(VerifyError::IndexOutOfRange { .. }))
    ));
    let mut seq2 = inclusion.clone();
    seq2.seq = 2;
    assert!(seq2.verify_against(&checkpoint).is_err());

    let consistency = ConsistencyProof::parse(&block("consistency-proof")).expect("consistency");
    consistency
        .verify_against(&older, &checkpoint)
        .expect("consistent");
    assert!(consistency.verify_against(&checkpoint, &older).is_err());
    let mut lying = consistency.clone();
    lying.first_root = Some(checkpoint.root_hash.clone());
    assert!(matches!(
        lying.verify_against(&older, &checkpoint),
        Err(ProofError::Mismatch(_))
    ));
    let mut bare = consistency;
    bare.first_root = None;
    bare.second_root = None;
    bare.verify_against(&older, &checkpoint)
        .expect("roots are optional");
}

#[test]
fn unknown_fields_and_wrong_types_are_refused() {
    let checkpoint = block("checkpoint").replacen('{', "{\"extra\": 1,", 1);
    assert!(matches!(
        parse_checkpoint(&checkpoint),
        Err(FileError::Json { .. })
    ));
    assert!(
        InclusionProof::parse(
            "{\"book\":\"b\",\"seq\":-1,\"tree_size\":1,\"leaf_hash\":\"\",\"audit_path\":[]}"
        )
        .is_err()
    );
    assert!(ConsistencyProof::parse("{\"book\":\"b\",\"from\":1}").is_err());
    assert!(LiabilityProof::parse("[]").is_err());
    let huge = " ".repeat(PROOF_FILE_BYTES_MAX + 1);
    assert_eq!(
        parse_checkpoint(&huge),
        Err(FileError::TooLarge(PROOF_FILE_BYTES_MAX + 1))
    );
    let one = serde_json::to_string(&SigningKey::from_seed(&[5; 32]).public_key()).expect("json");
    assert_eq!(parse_keys(&one).expect("one key").keys.len(), 1);
}

#[test]
fn liability_fields_are_checked() {
    let proof = LiabilityProof::parse(&block("liability-proof")).expect("proof");
    proof.verify().expect("valid");
    let root = talea_verify::hash::parse_hash(&proof.root).expect("root");
    let total: u128 = proof.total.parse().expect("total");
    proof.verify_published(&root, total).expect("published");
    assert!(matches!(
        proof.verify_published(&root, total + 1),
        Err(ProofError::Mismatch(_))
    ));
    let mut side = proof.clone();
    side.path[0].side = "up".into();
    assert!(matches!(
        side.verify(),
        Err(ProofError::File(FileError::Field { .. }))
    ));
    let mut flipped = proof.clone();
    flipped.path[0].side = if proof.path[0].side == "left" {
        "right"
    } else {
        "left"
    }
    .into();
    assert!(flipped.verify().is_err());
    let mut salt = proof;
    salt.salt = salt.salt[..62].into();
    assert!(matches!(
        salt.verify(),
        Err(ProofError::File(FileError::Hex { .. }))
    ));
}

#[test]
fn an_export_is_checked_against_a_checkpoint() {
    use talea_verify::files::verify_export_against;
    let events = parse_events(&block("events")).expect("events");
    let checkpoint = parse_checkpoint(&block("checkpoint")).expect("checkpoint");
    let older = parse_checkpoint(&block("checkpoint-2")).expect("checkpoint");
    let summary = verify_export_against(&checkpoint, events.clone()).expect("matches");
    assert_eq!(summary.last_seq, 3);
    // A longer export still matches an older checkpoint at its size.
    assert_eq!(
        verify_export_against(&older, events.clone()).map(|s| s.last_seq),
        Ok(3)
    );
    assert!(matches!(
        verify_export_against(&checkpoint, events[..2].to_vec()),
        Err(ProofError::Mismatch(_))
    ));
    let mut wrong_root = older.clone();
    wrong_root.root_hash = checkpoint.root_hash.clone();
    assert!(matches!(
        verify_export_against(&wrong_root, events.clone()),
        Err(ProofError::Mismatch(_))
    ));
    let mut tampered = events;
    tampered[1]["data"]["kind"] = serde_json::json!("asset");
    assert!(matches!(
        verify_export_against(&checkpoint, tampered),
        Err(ProofError::Chain(e)) if e.seq == 2
    ));
}
