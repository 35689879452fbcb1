//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz); not part of the API.
//!
//! The codec stays private: these functions run arbitrary bytes through the
//! same checks recovery applies to what it reads, and panic only when the
//! codec breaks one of its own promises (which is what a fuzzer reports).

use crate::codec::{self, FRAME_HEADER_BYTES, Record};

/// Decodes `bytes` as one record payload (what follows a record's header);
/// a payload that decodes must encode back to a record that decodes to the
/// same value, or this panics.
pub fn record_payload(bytes: &[u8]) {
    let Ok(record) = codec::decode_payload(bytes) else {
        return;
    };
    round_trip(&record);
}

/// Checks `bytes` as one frame (header, then exactly its records, each with
/// a good checksum) and decodes every record, as recovery does; every record
/// that decodes must round-trip, or this panics.
pub fn frame(bytes: &[u8]) {
    let Ok(header) = codec::check_frame_header(bytes) else {
        return;
    };
    let Some(body) = bytes
        .get(FRAME_HEADER_BYTES..)
        .and_then(|rest| rest.get(..header.body_bytes))
    else {
        return;
    };
    let Ok(records) = codec::check_frame_body(body, header.records) else {
        return;
    };
    for (_, payload) in records {
        record_payload(payload);
    }
}

fn round_trip(record: &Record) {
    let mut buf = Vec::new();
    // A decoded payload was at most RECORD_BYTES_MAX long and re-encodes to
    // at most as many bytes (varints come out minimal), so this succeeds.
    if let Err(e) = codec::append_record(&mut buf, record) {
        panic!("a decoded record does not re-encode: {e}");
    }
    let again = codec::check_record(&buf).and_then(|(payload, _)| codec::decode_payload(payload));
    assert_eq!(
        again.as_ref(),
        Ok(record),
        "a record changed on a round trip"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_empty_inputs_are_refused_quietly() {
        record_payload(&[]);
        record_payload(&[0xff; 64]);
        frame(&[]);
        frame(b"TLFR\x00\x00\x00\x00");
    }

    /// Every committed seed of the `log_record` target (records written
    /// before holds, and holds, voids and expiries) runs as the target runs it.
    #[test]
    fn the_committed_seeds_pass() {
        let dir =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/log_record");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        let mut seen = 0;
        for entry in entries.flatten() {
            let Ok(data) = std::fs::read(entry.path()) else {
                continue;
            };
            match data.split_first() {
                Some((0, rest)) => frame(rest),
                Some((_, rest)) => {
                    assert!(
                        codec::decode_payload(rest).is_ok(),
                        "seed {} decodes",
                        entry.path().display()
                    );
                    record_payload(rest);
                }
                None => {}
            }
            seen += 1;
        }
        assert!(seen >= 11, "{seen} seeds in {}", dir.display());
    }
}
