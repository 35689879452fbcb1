//! Test helpers that rewrite a closed store's log file; not part of the API.
//!
//! Tests use them to build what other builds, or an attacker, would leave
//! on disk: a log written before the hash chain existed (no `chain`
//! records), or a record whose data was changed and its checksum fixed up.
//! Every record is decoded and re-encoded with the codec (whose encoding is
//! canonical, so an untouched record comes out byte for byte the same), and
//! each frame stays one frame. Never call them on an open store.

use std::path::Path;

use talea_core::BookName;

use crate::codec::{self, FILE_HEADER_BYTES, FRAME_HEADER_BYTES, Record};
use crate::file::LOG_FILE;

fn invalid(what: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string())
}

/// Rewrites the log in `dir`: each record goes through `change` (which
/// returns what to write instead: nothing, the same, or another record).
fn rewrite(dir: &Path, mut change: impl FnMut(Record) -> Option<Record>) -> std::io::Result<()> {
    let path = dir.join(LOG_FILE);
    let bytes = std::fs::read(&path)?;
    codec::check_file_header(&bytes).map_err(invalid)?;
    let mut out = bytes[..FILE_HEADER_BYTES].to_vec();
    let mut at = FILE_HEADER_BYTES;
    while at < bytes.len() {
        let header = codec::check_frame_header(&bytes[at..]).map_err(invalid)?;
        let body_at = at + FRAME_HEADER_BYTES;
        let body = bytes
            .get(body_at..body_at + header.body_bytes)
            .ok_or_else(|| invalid("a frame runs past the end of the log"))?;
        let start = out.len();
        out.extend_from_slice(&[0; FRAME_HEADER_BYTES]);
        let mut count = 0u32;
        for (_, payload) in codec::check_frame_body(body, header.records).map_err(invalid)? {
            let record = codec::decode_payload(payload).map_err(invalid)?;
            if let Some(record) = change(record) {
                codec::append_record(&mut out, &record).map_err(invalid)?;
                count += 1;
            }
        }
        if count == 0 {
            out.truncate(start);
        } else {
            codec::seal_frame(&mut out, start, count).map_err(invalid)?;
        }
        at = body_at + header.body_bytes;
    }
    std::fs::write(&path, out)
}

/// Drops every `chain` record from the log in `dir`, leaving what a build
/// from before the hash chain would have written; returns how many.
pub fn drop_chain_records(dir: &Path) -> std::io::Result<u64> {
    let mut dropped = 0;
    rewrite(dir, |record| match record {
        Record::Chain(_) => {
            dropped += 1;
            None
        }
        other => Some(other),
    })?;
    Ok(dropped)
}

/// Sets the memo of transaction `seq` of `book` in the log in `dir`, with
/// a record checksum that matches (tampering that only the hash chain
/// catches); returns whether the transaction was found.
pub fn set_memo(dir: &Path, book: &BookName, seq: u64, memo: &str) -> std::io::Result<bool> {
    let mut found = false;
    rewrite(dir, |record| match record {
        Record::Transaction(mut t) if t.commit.book == *book && t.commit.seq == seq => {
            t.commit.memo = Some(memo.to_owned());
            found = true;
            Some(Record::Transaction(t))
        }
        other => Some(other),
    })?;
    Ok(found)
}
