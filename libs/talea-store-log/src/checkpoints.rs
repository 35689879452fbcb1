//! Signed checkpoints of the books' logs, kept beside the log in
//! `DIR/checkpoints` (FORMAT.md, "Checkpoints").
//!
//! A checkpoint is a signature over a tree head, not an event: it is kept
//! outside the log so the log's format and seqs stay as they are. One line
//! per checkpoint, appended and fsynced before `save` returns:
//! `<book> <tree_size> <root hex> <timestamp µs> <key_id> <signature hex>`.
//! A line torn by a crash (the last one, unterminated) is ignored on open
//! and cut off by the next append; any other bad line refuses the open.

use std::collections::HashMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};

use talea_core::{BookName, Timestamp};
use talea_store::{Checkpoint, StoreError};

use crate::file::io_error;
use crate::sidecar::{append_line, hex_array};

/// The file's name in the store directory.
pub const FILE_NAME: &str = "checkpoints";

/// The kept checkpoints: the latest of each book in memory, every one on disk.
#[derive(Debug)]
pub struct Checkpoints {
    path: PathBuf,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    latest: HashMap<BookName, Checkpoint>,
    /// Every kept (book, tree size), so a size is kept once.
    kept: std::collections::HashSet<(BookName, u64)>,
    /// Bytes of whole lines: where the next append goes.
    len: u64,
}

impl Checkpoints {
    /// Reads `dir`'s checkpoints file (none yet: empty).
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        let path = dir.join(FILE_NAME);
        let mut text = String::new();
        match File::open(&path) {
            Ok(mut file) => {
                file.read_to_string(&mut text)
                    .map_err(|e| io_error(&path, "cannot read", e))?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&path, "cannot open", e)),
        }
        let mut state = State::default();
        let whole = text.rfind('\n').map_or(0, |i| i + 1);
        for (n, line) in text[..whole].lines().enumerate() {
            let checkpoint = parse(line).ok_or_else(|| {
                StoreError::Other(format!(
                    "{}: line {} is not a checkpoint",
                    path.display(),
                    n + 1
                ))
            })?;
            state.remember(checkpoint);
        }
        state.len = whole as u64;
        Ok(Self {
            path,
            state: Mutex::new(state),
        })
    }

    /// Keeps `checkpoint` unless one of its book and size is kept.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<bool, StoreError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if state
            .kept
            .contains(&(checkpoint.book.clone(), checkpoint.tree_size))
        {
            return Ok(false);
        }
        let line = format!(
            "{} {} {} {} {} {}\n",
            checkpoint.book,
            checkpoint.tree_size,
            hex::encode(checkpoint.root_hash),
            checkpoint.timestamp.micros(),
            checkpoint.key_id,
            hex::encode(checkpoint.signature)
        );
        // Cut a torn line a crash left, then append.
        append_line(&self.path, state.len, &line)?;
        state.len += line.len() as u64;
        state.remember(checkpoint.clone());
        Ok(true)
    }

    /// The kept checkpoint of `book` with the largest tree size.
    pub fn latest(&self, book: &BookName) -> Option<Checkpoint> {
        let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.latest.get(book).cloned()
    }
}

impl State {
    fn remember(&mut self, checkpoint: Checkpoint) {
        self.kept
            .insert((checkpoint.book.clone(), checkpoint.tree_size));
        let newer = self
            .latest
            .get(&checkpoint.book)
            .is_none_or(|latest| latest.tree_size < checkpoint.tree_size);
        if newer {
            self.latest.insert(checkpoint.book.clone(), checkpoint);
        }
    }
}

/// One line back into a checkpoint.
fn parse(line: &str) -> Option<Checkpoint> {
    let mut fields = line.split(' ');
    let book = BookName::parse(fields.next()?).ok()?;
    let tree_size = fields.next()?.parse().ok()?;
    let root_hash = hex_array::<32>(fields.next()?)?;
    let timestamp = Timestamp::from_micros(fields.next()?.parse().ok()?);
    let key_id = fields.next()?.to_owned();
    let signature = hex_array::<64>(fields.next()?)?;
    if fields.next().is_some() || key_id.is_empty() {
        return None;
    }
    Some(Checkpoint {
        book,
        tree_size,
        root_hash,
        timestamp,
        key_id,
        signature,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checkpoint(size: u64) -> Checkpoint {
        Checkpoint {
            book: BookName::parse("b").expect("book"),
            tree_size: size,
            root_hash: [7; 32],
            timestamp: Timestamp::from_micros(1_765_000_000_000_001),
            key_id: "0123456789abcdef".to_owned(),
            signature: [9; 64],
        }
    }

    #[test]
    fn kept_across_reopens_once_per_size_and_a_torn_line_is_cut() {
        let dir = tempfile::tempdir().expect("dir");
        let kept = Checkpoints::open(dir.path()).expect("open");
        assert!(kept.save(&checkpoint(3)).expect("save"));
        assert!(!kept.save(&checkpoint(3)).expect("again"));
        assert!(kept.save(&checkpoint(5)).expect("save"));
        drop(kept);
        // A crash mid-append leaves a torn line.
        let path = dir.path().join(FILE_NAME);
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .expect("open");
        use std::io::Write as _;
        file.write_all(b"b 9 ab").expect("tear");
        let kept = Checkpoints::open(dir.path()).expect("reopen");
        let book = BookName::parse("b").expect("book");
        assert_eq!(kept.latest(&book), Some(checkpoint(5)));
        assert!(kept.save(&checkpoint(9)).expect("save"));
        let kept = Checkpoints::open(dir.path()).expect("reopen");
        assert_eq!(kept.latest(&book), Some(checkpoint(9)));
        let other = BookName::parse("other").expect("book");
        assert_eq!(kept.latest(&other), None);
    }

    #[test]
    fn a_bad_whole_line_refuses_the_open() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join(FILE_NAME), "not a checkpoint\n").expect("write");
        assert!(Checkpoints::open(dir.path()).is_err());
    }
}
