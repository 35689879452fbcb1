//! The chain: sealing, verifying, and finding the first bad seq.

use super::*;
use crate::merkle::MemoryLog;
use proptest::prelude::*;

/// Served events of `book` with seqs 1..=n, their hashes attached.
fn sealed(book: &str, n: u64) -> Vec<Value> {
    let mut prev = GENESIS;
    (1..=n)
        .map(|seq| {
            let mut event = json!({
                "seq": seq,
                "type": "transaction",
                "committed_at": format!("2026-12-07T01:00:{:02}.000000Z", seq % 60),
                "data": {"tx_id": format!("tx-{seq}"), "postings": [{"amount": "100", "asset": "EUR"}]},
            });
            prev = event_hash(&prev, book, &event).expect("hash");
            event["hash"] = json!(to_hex(&prev));
            event
        })
        .collect()
}

#[test]
fn a_sealed_chain_verifies_and_gives_the_merkle_root() {
    let events = sealed("main", 10);
    let summary = verify_chain("main", events.clone()).expect("valid");
    assert_eq!((summary.first_seq, summary.last_seq), (1, 10));
    let mut log = MemoryLog::new();
    for e in &events {
        let hash = parse_hash(e["hash"].as_str().expect("hash")).expect("hex");
        log.append_data(&hash);
    }
    assert_eq!(summary.root, Some(log.root()));
    assert_eq!(
        to_hex(&summary.head),
        events[9]["hash"].as_str().expect("hash")
    );
}

#[test]
fn key_order_and_whitespace_of_the_served_json_do_not_matter() {
    let event = &sealed("main", 1)[0];
    let text = serde_json::to_string_pretty(event).expect("json");
    let reordered: Value = serde_json::from_str(&text.replace("\"seq\": 1,", "").replacen(
        '{',
        "{\"seq\": 1, ",
        1,
    ))
    .expect("json");
    assert_eq!(verify_chain("main", [reordered]).map(|s| s.last_seq), Ok(1));
}

#[test]
fn each_break_names_the_first_bad_seq() {
    let events = sealed("main", 6);
    let first_bad = |events: Vec<Value>| verify_chain("main", events).map_err(|e| e.seq);

    let mut data = events.clone();
    data[3]["data"]["postings"][0]["amount"] = json!("101");
    assert_eq!(first_bad(data), Err(4));

    let mut hash = events.clone();
    hash[2]["hash"] = json!(to_hex(&[7; 32]));
    assert_eq!(first_bad(hash), Err(3));

    let mut deleted = events.clone();
    deleted.remove(4);
    let err = verify_chain("main", deleted).expect_err("gap");
    assert_eq!(err.seq, 5);
    assert_eq!(
        err.kind,
        ChainErrorKind::Gap {
            expected: 5,
            found: 6
        }
    );

    let mut swapped = events.clone();
    swapped.swap(0, 1);
    assert_eq!(first_bad(swapped), Err(1));

    let mut time = events.clone();
    time[5]["committed_at"] = json!("2026-12-07T01:00:06.000001Z");
    assert_eq!(first_bad(time), Err(6));

    let mut missing = events.clone();
    if let Some(o) = missing[1].as_object_mut() {
        o.remove("hash");
    }
    assert_eq!(first_bad(missing), Err(2));

    // A number added to the data (metadata may hold any) is bound too.
    let mut float = events.clone();
    float[0]["data"]["rate"] = json!(0.5);
    assert_eq!(first_bad(float), Err(1));

    let mut uppercase = events;
    let upper = uppercase[0]["hash"].as_str().expect("hash").to_uppercase();
    uppercase[0]["hash"] = json!(upper);
    assert_eq!(first_bad(uppercase), Err(1));
}

#[test]
fn the_book_is_bound() {
    let events = sealed("main", 2);
    assert!(matches!(
        verify_chain("other", events.clone()),
        Err(ChainError {
            seq: 1,
            kind: ChainErrorKind::HashMismatch { .. }
        })
    ));
    let mut named = events;
    named[0]["book"] = json!("other");
    assert!(matches!(
        verify_chain("main", named),
        Err(ChainError {
            seq: 1,
            kind: ChainErrorKind::Event(EventError::OtherBook { .. })
        })
    ));
}

#[test]
fn a_range_resumes_from_a_trusted_position() {
    let events = sealed("main", 8);
    let prev = parse_hash(events[4]["hash"].as_str().expect("hash")).expect("hex");
    let start = ChainStart {
        book: "main".into(),
        after_seq: 5,
        prev,
    };
    let summary = verify_chain_from(start.clone(), events[5..].to_vec()).expect("valid");
    assert_eq!(
        (summary.first_seq, summary.last_seq, summary.root),
        (6, 8, None)
    );
    assert_eq!(
        verify_chain_from(start.clone(), events[4..].to_vec()).map_err(|e| e.seq),
        Err(6)
    );
    assert_eq!(
        verify_chain_from(start, Vec::new()).map_err(|e| e.kind),
        Err(ChainErrorKind::Empty)
    );
    let wrong = ChainStart {
        book: "main".into(),
        after_seq: 5,
        prev: GENESIS,
    };
    assert_eq!(
        verify_chain_from(wrong, events[5..].to_vec()).map_err(|e| e.seq),
        Err(6)
    );
}

#[test]
fn malformed_events_are_refused() {
    for bad in [
        json!(null),
        json!([]),
        json!({"seq": "1", "type": "t", "committed_at": "x", "data": {}, "hash": ""}),
        json!({"seq": 0, "type": "t", "committed_at": "x", "data": {}}),
        json!({"seq": 1, "type": 5, "committed_at": "x", "data": {}}),
        json!({"seq": 1, "type": "t", "committed_at": "x"}),
        json!({"seq": -1, "type": "t", "committed_at": "x", "data": {}}),
        json!({"seq": 1, "type": "t", "committed_at": "x", "data": {}, "hash": 5}),
        json!({"seq": 1, "type": "t", "committed_at": "x", "data": {}, "hash": "ab"}),
    ] {
        let err = verify_chain("main", [bad]).expect_err("refused");
        assert_eq!(err.seq, 1);
    }
    let mut v = ChainVerifier::new(ChainStart {
        book: "b".into(),
        after_seq: u64::MAX,
        prev: GENESIS,
    });
    assert_eq!(
        v.push(&json!({})).map_err(|e| e.kind),
        Err(ChainErrorKind::SeqOverflow)
    );
}

proptest! {
    #[test]
    fn tampering_any_event_is_found_at_its_seq(n in 1u64..40, pick in any::<prop::sample::Index>(), what in 0u8..3) {
        let mut events = sealed("main", n);
        let i = pick.index(n as usize);
        match what {
            0 => events[i]["data"]["tx_id"] = json!("forged"),
            1 => events[i]["type"] = json!("hold_expired"),
            _ => events[i]["hash"] = json!(to_hex(&[0; 32])),
        }
        prop_assert_eq!(verify_chain("main", events).map_err(|e| e.seq), Err(i as u64 + 1));
    }
}
