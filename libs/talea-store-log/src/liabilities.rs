//! Signed liability snapshots, kept beside the log in `DIR/liabilities`
//! (FORMAT.md, "Liability snapshots"), like the checkpoints: a snapshot is
//! not an event, so the log's format and seqs stay as they are.
//!
//! One line per snapshot, appended and fsynced before `save` returns:
//! `<book> <id> <asset> <prefix> <seq> <salt hex> <root hex> <total>
//! <timestamp µs> <key_id> <signature hex> <balances>`, the balances as
//! `talea_store::liabilities::balances_text` writes them (`name=minor`
//! pairs joined by `,`). Only an index (book, id) → where its line is stays
//! in memory; a snapshot is read from the file when asked for. A line torn
//! by a crash (the last one, unterminated) is ignored on open and cut off by
//! the next append; any other bad line refuses the open.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use talea_core::{AssetCode, BookName, Timestamp};
use talea_store::liabilities::{balances_text, parse_balances_text};
use talea_store::{LiabilitySnapshot, StoreError};

use crate::file::io_error;
use crate::sidecar::{append_line, hex_array};

/// The file's name in the store directory.
pub const FILE_NAME: &str = "liabilities";

/// The kept snapshots: where each one's line is.
#[derive(Debug)]
pub struct Liabilities {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// (book, id) → (offset, length) of its line, newline excluded.
    index: HashMap<(BookName, String), (u64, usize)>,
    /// Bytes of whole lines: where the next append goes.
    len: u64,
}

impl Liabilities {
    /// Indexes `dir`'s liabilities file (none yet: empty).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(FILE_NAME);
        let mut state = State::default();
        match File::open(&path) {
            Ok(file) => {
                let mut reader = BufReader::new(file);
                let mut line = Vec::new();
                let mut n = 0;
                loop {
                    line.clear();
                    let read = reader
                        .read_until(b'\n', &mut line)
                        .map_err(|e| io_error(&path, "cannot read", e))?;
                    if read == 0 || line.last() != Some(&b'\n') {
                        break; // the end, or a torn last line
                    }
                    n += 1;
                    let text = std::str::from_utf8(&line[..line.len() - 1]).ok();
                    let snapshot = text.and_then(parse).ok_or_else(|| {
                        StoreError::Other(format!(
                            "{}: line {n} is not a liability snapshot",
                            path.display()
                        ))
                    })?;
                    state
                        .index
                        .insert((snapshot.book, snapshot.id), (state.len, line.len() - 1));
                    state.len += line.len() as u64;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path, "cannot open", e)),
        }
        Ok(Self {
            path,
            state: Mutex::new(state),
        })
    }

    /// Keeps `snapshot`; an id kept before is an error.
    pub fn save(&self, snapshot: &LiabilitySnapshot) -> Result<(), StoreError> {
        let spaced = |t: &str| t.is_empty() || t.bytes().any(|b| b == b' ' || b.is_ascii_control());
        if spaced(&snapshot.id) || spaced(&snapshot.prefix) || spaced(&snapshot.key_id) {
            return Err(StoreError::Other(
                "a liability snapshot's id, prefix and key id must be non-empty words".into(),
            ));
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let key = (snapshot.book.clone(), snapshot.id.clone());
        if state.index.contains_key(&key) {
            return Err(StoreError::Other(format!(
                "book {}: liability snapshot {} is kept already",
                snapshot.book, snapshot.id
            )));
        }
        let line = format!(
            "{} {} {} {} {} {} {} {} {} {} {} {}\n",
            snapshot.book,
            snapshot.id,
            snapshot.asset,
            snapshot.prefix,
            snapshot.seq,
            hex::encode(snapshot.salt),
            hex::encode(snapshot.root),
            snapshot.total,
            snapshot.timestamp.micros(),
            snapshot.key_id,
            hex::encode(snapshot.signature),
            balances_text(&snapshot.balances),
        );
        // Cut a torn line a crash left, then append.
        append_line(&self.path, state.len, &line)?;
        let at = state.len;
        state.index.insert(key, (at, line.len() - 1));
        state.len += line.len() as u64;
        Ok(())
    }

    /// The kept snapshot `id` of `book`, read from its line.
    pub fn get(&self, book: &BookName, id: &str) -> Result<Option<LiabilitySnapshot>, StoreError> {
        let at = {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.index.get(&(book.clone(), id.to_owned())).copied()
        };
        let Some((offset, len)) = at else {
            return Ok(None);
        };
        let mut file =
            File::open(&self.path).map_err(|e| io_error(&self.path, "cannot open", e))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(|e| io_error(&self.path, "cannot seek", e))?;
        let mut line = vec![0; len];
        file.read_exact(&mut line)
            .map_err(|e| io_error(&self.path, "cannot read", e))?;
        let snapshot = std::str::from_utf8(&line)
            .ok()
            .and_then(parse)
            .filter(|s| &s.book == book && s.id == id)
            .ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "{}: the line at byte {offset} is not snapshot {id} of {book}",
                    self.path.display()
                ))
            })?;
        Ok(Some(snapshot))
    }
}

/// One line (without its newline) back into a snapshot.
fn parse(line: &str) -> Option<LiabilitySnapshot> {
    let mut fields = line.split(' ');
    let mut next = || fields.next();
    let book = BookName::parse(next()?).ok()?;
    let id = next()?.to_owned();
    let asset = AssetCode::parse(next()?).ok()?;
    let prefix = next()?.to_owned();
    let seq = next()?.parse().ok()?;
    let salt = hex_array::<32>(next()?)?;
    let root = hex_array::<32>(next()?)?;
    let total = next()?.parse().ok()?;
    let timestamp = Timestamp::from_micros(next()?.parse().ok()?);
    let key_id = next()?.to_owned();
    let signature = hex_array::<64>(next()?)?;
    let balances = parse_balances_text(next()?).ok()?;
    if next().is_some() || id.is_empty() || key_id.is_empty() {
        return None;
    }
    Some(LiabilitySnapshot {
        book,
        id,
        asset,
        prefix,
        seq,
        salt,
        root,
        total,
        timestamp,
        key_id,
        signature,
        balances,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use talea_core::AccountName;

    fn snapshot(id: &str, accounts: usize) -> LiabilitySnapshot {
        LiabilitySnapshot {
            book: BookName::parse("b").expect("book"),
            id: id.to_owned(),
            asset: AssetCode::parse("BTC").expect("asset"),
            prefix: "customers:".to_owned(),
            seq: 9,
            salt: [1; 32],
            root: [2; 32],
            total: u128::MAX,
            timestamp: Timestamp::from_micros(1_765_000_000_000_001),
            key_id: "0123456789abcdef".to_owned(),
            signature: [3; 64],
            balances: (0..accounts)
                .map(|i| {
                    let name = AccountName::parse(&format!("customers:{i}")).expect("name");
                    (name, i as i128 - 1)
                })
                .collect(),
        }
    }

    #[test]
    fn kept_across_reopens_once_per_id_and_a_torn_line_is_cut() {
        let dir = tempfile::tempdir().expect("dir");
        let kept = Liabilities::open(dir.path()).expect("open");
        kept.save(&snapshot("s1", 3)).expect("save");
        assert!(kept.save(&snapshot("s1", 3)).is_err(), "an id is kept once");
        kept.save(&snapshot("s2", 0)).expect("save empty");
        drop(kept);
        let path = dir.path().join(FILE_NAME);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        use std::io::Write as _;
        file.write_all(b"b s3 BTC cus").expect("tear");
        let kept = Liabilities::open(dir.path()).expect("reopen");
        let book = BookName::parse("b").expect("book");
        assert_eq!(kept.get(&book, "s1").expect("get"), Some(snapshot("s1", 3)));
        assert_eq!(kept.get(&book, "s2").expect("get"), Some(snapshot("s2", 0)));
        assert_eq!(kept.get(&book, "s3").expect("get"), None);
        kept.save(&snapshot("s3", 2)).expect("save after a tear");
        let kept = Liabilities::open(dir.path()).expect("reopen");
        assert_eq!(kept.get(&book, "s3").expect("get"), Some(snapshot("s3", 2)));
        assert_eq!(kept.get(&book, "s1").expect("get"), Some(snapshot("s1", 3)));
    }

    #[test]
    fn a_bad_whole_line_refuses_the_open() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join(FILE_NAME), "not a snapshot\n").expect("write");
        assert!(Liabilities::open(dir.path()).is_err());
    }
}
