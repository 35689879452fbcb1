//! The append log's record decoder (`talea-store-log`), as recovery runs it.
//!
//! Input: the first byte picks what the rest is read as: a record payload
//! (the decoder proper, past the checksums) or a whole frame (header,
//! record headers and checksums, then each payload). A record that decodes
//! must re-encode to one that decodes to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use talea_store_log::fuzzing;

fuzz_target!(|data: &[u8]| {
    match data.split_first() {
        Some((0, rest)) => fuzzing::frame(rest),
        Some((_, rest)) => fuzzing::record_payload(rest),
        None => {}
    }
});
