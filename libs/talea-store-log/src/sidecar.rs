//! What the store's line-per-record side files (`checkpoints`, `liabilities`)
//! share: the durable append that cuts a torn last line first, and hex fields.

use std::fs::OpenOptions;
use std::io::{Seek, SeekFrom, Write};
use std::path::Path;

use talea_store::StoreError;

use crate::file::io_error;

/// Appends `line` (ending in LF) to the file at `path` at offset `at` (the
/// length of its whole lines: a torn last line a crash left is cut first),
/// and fsyncs it before returning.
pub fn append_line(path: &Path, at: u64, line: &str) -> Result<(), StoreError> {
    let file = OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(false)
        .open(path)
        .map_err(|e| io_error(path, "cannot open", e))?;
    file.set_len(at)
        .map_err(|e| io_error(path, "cannot cut", e))?;
    let mut file = std::io::BufWriter::new(file);
    file.seek(SeekFrom::Start(at))
        .map_err(|e| io_error(path, "cannot seek", e))?;
    file.write_all(line.as_bytes())
        .map_err(|e| io_error(path, "cannot append to", e))?;
    let file = file
        .into_inner()
        .map_err(|e| io_error(path, "cannot append to", e.into_error()))?;
    file.sync_data()
        .map_err(|e| io_error(path, "cannot sync", e))
}

/// Exactly `N` bytes from hex, or `None`.
pub fn hex_array<const N: usize>(text: &str) -> Option<[u8; N]> {
    <[u8; N]>::try_from(hex::decode(text).ok()?.as_slice()).ok()
}
