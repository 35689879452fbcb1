//! Arbitrary bytes and JSON into every parser and verifier: errors, never
//! panics.

use proptest::prelude::*;
use serde_json::{Value, json};
use talea_verify::chain::verify_chain;
use talea_verify::checkpoint::{KeyList, SigningKey};
use talea_verify::files::{
    ConsistencyProof, InclusionProof, LiabilityProof, parse_checkpoint, parse_events, parse_keys,
};
use talea_verify::jcs::canonical;

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| json!(f)),
        "[0-9a-f]{0,70}".prop_map(Value::from),
        any::<String>().prop_map(Value::from),
        Just(json!("left")),
        Just(json!("right")),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("seq".to_owned()),
                    Just("book".to_owned()),
                    Just("hash".to_owned()),
                    Just("type".to_owned()),
                    Just("data".to_owned()),
                    Just("committed_at".to_owned()),
                    Just("tree_size".to_owned()),
                    Just("leaf_hash".to_owned()),
                    Just("audit_path".to_owned()),
                    Just("proof".to_owned()),
                    Just("from".to_owned()),
                    Just("to".to_owned()),
                    Just("path".to_owned()),
                    Just("sum".to_owned()),
                    Just("side".to_owned()),
                    Just("events".to_owned()),
                    "[a-z_]{1,12}",
                ],
                inner,
                0..8,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

const TIME: &str = "2026-12-07T00:00:00.000000Z";

fn every_parser_and_verifier(text: &str) {
    let keys = KeyList {
        keys: vec![SigningKey::from_seed(&[2; 32]).public_key()],
    };
    if let Ok(events) = parse_events(text) {
        let _ = verify_chain("main", events.clone());
        if let Ok(checkpoint) = SigningKey::from_seed(&[2; 32]).sign("main", 2, &[0; 32], TIME) {
            let _ = talea_verify::files::verify_export_against(&checkpoint, events);
        }
    }
    if let Ok(checkpoint) = parse_checkpoint(text) {
        let _ = checkpoint.verify(&keys);
        if let Ok(p) = InclusionProof::parse(text) {
            let _ = p.verify_against(&checkpoint);
        }
    }
    let _ = parse_keys(text);
    if let Ok(p) = InclusionProof::parse(text) {
        let _ = p.verify(&[0; 32]);
    }
    if let Ok(p) = ConsistencyProof::parse(text) {
        let _ = p.verify(&[0; 32], &[1; 32]);
    }
    if let Ok(p) = LiabilityProof::parse(text) {
        let _ = p.verify();
        let _ = p.verify_published(&[0; 32], 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        every_parser_and_verifier(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn arbitrary_json_never_panics(value in arbitrary_json()) {
        let _ = canonical(&value);
        let _ = verify_chain("main", [value.clone()]);
        every_parser_and_verifier(&value.to_string());
        if let Value::Array(items) = &value {
            let _ = verify_chain("main", items.clone());
        }
    }

    #[test]
    fn near_valid_documents_never_panic(
        name in prop_oneof![
            Just("inclusion-proof"), Just("consistency-proof"),
            Just("liability-proof"), Just("checkpoint"), Just("events"),
        ],
        replacement in arbitrary_json(),
        pick in any::<prop::sample::Index>(),
    ) {
        let text = crate::example::blocks()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, b)| b)
            .expect("block");
        let mut doc: Value = serde_json::from_str(&text).expect("json");
        if let Value::Object(map) = &mut doc {
            let keys: Vec<String> = map.keys().cloned().collect();
            let key = &keys[pick.index(keys.len())];
            map.insert(key.clone(), replacement);
        }
        every_parser_and_verifier(&doc.to_string());
    }
}
