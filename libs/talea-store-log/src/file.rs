//! The log file and its directory: the lock, creation, recovery, reads by offset, appends.
//!
//! Layout of a store directory:
//!
//! ```text
//! DIR/LOCK        flock(2)ed by the one process that has the store open;
//!                 holds that process's id, for the error a second opener gets
//! DIR/talea.log   the file header, then frames (see FORMAT.md)
//! ```

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use talea_store::StoreError;

use crate::codec::{
    self, FILE_HEADER_BYTES, FRAME_BYTES_MAX, FRAME_HEADER_BYTES, Malformed, Record,
};
use crate::state::{Lookup, State};

/// The log file's name in the store directory.
pub const LOG_FILE: &str = "talea.log";
/// The lock file's name in the store directory.
pub const LOCK_FILE: &str = "LOCK";
/// Bytes read at once when a record's size is not known yet; most records
/// fit, so a read by offset is usually one `pread`.
const READ_AHEAD_BYTES: usize = 512;
/// Bytes read at a time while recovery scans the log.
const SCAN_BUFFER_BYTES: usize = 1 << 20;

/// An IO failure, as a store error naming the file and what was being done.
pub fn io_error(path: &Path, doing: &str, error: std::io::Error) -> StoreError {
    StoreError::Unavailable(format!("{doing} {}: {error}", path.display()))
}

/// The exclusive lock on a store directory, held for as long as this value lives.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Locks `dir` or fails at once, naming the directory and its holder.
    pub fn acquire(dir: &Path) -> Result<DirLock, StoreError> {
        let path = dir.join(LOCK_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| io_error(&path, "cannot open the lock file", e))?;
        // Called through the trait: `File::try_lock` in std is newer than the
        // workspace's minimum Rust version.
        match fs4::FileExt::try_lock(&file) {
            Ok(()) => {}
            Err(fs4::TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                let holder = if holder.is_empty() {
                    "holder unknown".to_owned()
                } else {
                    holder.replace('\n', ", ")
                };
                return Err(StoreError::Unavailable(format!(
                    "the log store directory {} is already open ({holder}); \
                     only one process, and one LogStore in it, may open it at a time",
                    dir.display()
                )));
            }
            Err(fs4::TryLockError::Error(e)) => {
                return Err(io_error(&path, "cannot lock", e));
            }
        }
        // Who holds it, for the next opener's error message. Best effort: the
        // lock, not this text, is what excludes.
        let _ = file.set_len(0);
        let _ = writeln!(file, "held by process {}", std::process::id());
        Ok(DirLock { _file: file })
    }
}

/// A cached frame: its offset in the file and its bytes (header included).
#[derive(Debug)]
struct CachedFrame {
    offset: u64,
    bytes: Arc<Vec<u8>>,
}

/// The most recent frames, kept in memory: tailing subscribers, retries
/// and reads right after a commit find their records here without a syscall.
#[derive(Debug, Default)]
struct TailCache {
    frames: VecDeque<CachedFrame>,
    bytes: usize,
}

/// The log file: reads by offset from any thread, appends from the writer.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    file: File,
    tail: Mutex<TailCache>,
    tail_bytes_max: usize,
}

/// What recovery found.
#[derive(Debug)]
pub struct Recovered {
    /// The indexes, rebuilt.
    pub state: State,
    /// Bytes of a torn tail that were cut off (0: the log ended cleanly).
    pub truncated_bytes: u64,
}

impl LogFile {
    /// Opens the log in `dir` (creating it if absent), recovers its
    /// indexes and cuts a torn tail. Refuses (`Corrupt`) a log damaged
    /// anywhere but its tail.
    pub fn open(dir: &Path, tail_bytes_max: usize) -> Result<(LogFile, Recovered), StoreError> {
        let path = dir.join(LOG_FILE);
        if !path.exists() {
            create(dir, &path)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_error(&path, "cannot open", e))?;
        let log = LogFile {
            path,
            file,
            tail: Mutex::new(TailCache::default()),
            tail_bytes_max,
        };
        let recovered = log.recover()?;
        Ok((log, recovered))
    }

    fn len(&self) -> Result<u64, StoreError> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| io_error(&self.path, "cannot stat", e))
    }

    fn corrupt(&self, offset: u64, what: impl std::fmt::Display) -> StoreError {
        StoreError::Corrupt(format!(
            "{} at offset {offset}: {what}; the store refuses to start on a damaged log \
             (restore it from a backup, or move the file aside)",
            self.path.display()
        ))
    }

    /// Replays the whole log into fresh indexes, verifying every checksum.
    fn recover(&self) -> Result<Recovered, StoreError> {
        let len = self.len()?;
        let mut header = [0; FILE_HEADER_BYTES];
        let got = read_up_to(&self.file, 0, &mut header)
            .map_err(|e| io_error(&self.path, "cannot read", e))?;
        codec::check_file_header(&header[..got]).map_err(|e| self.corrupt(0, e))?;

        let mut state = State::new(FILE_HEADER_BYTES as u64);
        let mut scan = Scanner::new(&self.file, FILE_HEADER_BYTES as u64, len);
        loop {
            let at = scan.position();
            if at == len {
                return Ok(Recovered {
                    state,
                    truncated_bytes: 0,
                });
            }
            match scan.next_frame() {
                Ok(Ok(frame)) => {
                    for (offset, payload) in frame.records {
                        let record = codec::decode_payload(payload).map_err(|e| {
                            self.corrupt(offset, format!("undecodable record: {e}"))
                        })?;
                        state.apply(&record, offset, self)?;
                    }
                    state.end = scan.position();
                }
                Ok(Err(damage)) => {
                    // A damaged frame is a torn tail only if nothing intact
                    // follows it: the writer starts a frame only after the
                    // previous one is durable, so an intact frame after a
                    // damaged one means the damage is not a crash's.
                    if let Some(next) = self.find_frame(at + 1, len)? {
                        return Err(self.corrupt(
                            at,
                            format!("{damage}, yet an intact frame follows at offset {next}"),
                        ));
                    }
                    tracing::warn!(
                        path = %self.path.display(),
                        offset = at,
                        bytes = len - at,
                        reason = %damage,
                        "cutting a torn tail off the log (an unacknowledged write)"
                    );
                    self.file
                        .set_len(at)
                        .and_then(|()| self.file.sync_all())
                        .map_err(|e| io_error(&self.path, "cannot truncate", e))?;
                    return Ok(Recovered {
                        state,
                        truncated_bytes: len - at,
                    });
                }
                Err(e) => return Err(io_error(&self.path, "cannot read", e)),
            }
        }
    }

    /// The offset of the first intact frame starting in `from..len`, if any.
    fn find_frame(&self, from: u64, len: u64) -> Result<Option<u64>, StoreError> {
        let mut at = from;
        let mut buf = vec![0; SCAN_BUFFER_BYTES];
        while at + FRAME_HEADER_BYTES as u64 <= len {
            let got = read_up_to(&self.file, at, &mut buf)
                .map_err(|e| io_error(&self.path, "cannot read", e))?;
            let window = &buf[..got];
            if window.len() < FRAME_HEADER_BYTES {
                break;
            }
            let mut i = 0;
            while i + FRAME_HEADER_BYTES <= window.len() {
                if window[i..i + 4] == codec::FRAME_MAGIC
                    && self.frame_intact_at(at + i as u64, len)?
                {
                    return Ok(Some(at + i as u64));
                }
                i += 1;
            }
            // Step so that a header straddling the window's end is seen next time.
            at += (window.len() - FRAME_HEADER_BYTES + 1) as u64;
        }
        Ok(None)
    }

    fn frame_intact_at(&self, at: u64, len: u64) -> Result<bool, StoreError> {
        let mut scan = Scanner::new(&self.file, at, len);
        match scan.next_frame() {
            Ok(Ok(_)) => Ok(true),
            Ok(Err(_)) => Ok(false),
            Err(e) => Err(io_error(&self.path, "cannot read", e)),
        }
    }

    /// Re-reads every durable frame below `end` and checks every checksum
    /// and every record's encoding. Returns the number of records.
    pub fn verify(&self, end: u64) -> Result<u64, StoreError> {
        let mut header = [0; FILE_HEADER_BYTES];
        let got = read_up_to(&self.file, 0, &mut header)
            .map_err(|e| io_error(&self.path, "cannot read", e))?;
        codec::check_file_header(&header[..got]).map_err(|e| self.corrupt(0, e))?;
        let mut scan = Scanner::new(&self.file, FILE_HEADER_BYTES as u64, end);
        let mut records = 0;
        while scan.position() < end {
            let at = scan.position();
            match scan.next_frame() {
                Ok(Ok(frame)) => {
                    for (offset, payload) in frame.records {
                        codec::decode_payload(payload).map_err(|e| self.corrupt(offset, e))?;
                        records += 1;
                    }
                }
                Ok(Err(damage)) => return Err(self.corrupt(at, damage)),
                Err(e) => return Err(io_error(&self.path, "cannot read", e)),
            }
        }
        Ok(records)
    }

    /// Reads and decodes the record at `offset`, checking its checksum.
    pub fn read_record(&self, offset: u64) -> Result<Record, StoreError> {
        if let Some((base, bytes)) = self.cached(offset) {
            // In the cache: the frame was checked before it was written.
            let start = usize::try_from(offset - base).unwrap_or(usize::MAX);
            let slice = bytes.get(start..).unwrap_or_default();
            return self.decode_at(offset, slice);
        }
        let mut buf = vec![0; READ_AHEAD_BYTES];
        let got = read_up_to(&self.file, offset, &mut buf)
            .map_err(|e| io_error(&self.path, "cannot read", e))?;
        buf.truncate(got);
        let size = codec::record_size(&buf)
            .ok_or_else(|| self.corrupt(offset, "no plausible record header"))?;
        if size > buf.len() {
            buf.resize(size, 0);
            self.file
                .read_exact_at(&mut buf[got..], offset + got as u64)
                .map_err(|e| io_error(&self.path, "cannot read", e))?;
        }
        self.decode_at(offset, &buf)
    }

    fn decode_at(&self, offset: u64, bytes: &[u8]) -> Result<Record, StoreError> {
        let (payload, _) = codec::check_record(bytes).map_err(|e| self.corrupt(offset, e))?;
        codec::decode_payload(payload).map_err(|e| self.corrupt(offset, e))
    }

    fn cached(&self, offset: u64) -> Option<(u64, Arc<Vec<u8>>)> {
        let tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        let first = tail.frames.front()?;
        if offset < first.offset {
            return None;
        }
        let i = tail.frames.partition_point(|f| f.offset <= offset);
        let frame = tail.frames.get(i.checked_sub(1)?)?;
        (offset < frame.offset + frame.bytes.len() as u64)
            .then(|| (frame.offset, Arc::clone(&frame.bytes)))
    }

    /// Writes a sealed frame at `offset` (the end of the log) and makes it
    /// durable. On `Err` the caller must stop writing: after a failed
    /// `fsync` the kernel may have dropped the dirty pages, so nothing about
    /// the file's state can be trusted until recovery reads it again.
    pub fn append(&self, offset: u64, frame: Arc<Vec<u8>>) -> Result<(), StoreError> {
        let written = self
            .file
            .write_all_at(&frame, offset)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Best effort: do not leave a partial frame for the next write to
            // follow (recovery would cut it anyway, as nothing intact follows).
            let _ = self.file.set_len(offset);
            return Err(io_error(&self.path, "cannot append to", e));
        }
        let mut tail = self.tail.lock().unwrap_or_else(PoisonError::into_inner);
        tail.bytes += frame.len();
        tail.frames.push_back(CachedFrame {
            offset,
            bytes: frame,
        });
        while tail.bytes > self.tail_bytes_max && tail.frames.len() > 1 {
            if let Some(old) = tail.frames.pop_front() {
                tail.bytes -= old.bytes.len();
            }
        }
        Ok(())
    }
}

impl Lookup for LogFile {
    fn record_at(&self, offset: u64) -> Result<Record, StoreError> {
        self.read_record(offset)
    }
}

/// Creates an empty log atomically: a complete header under a temporary
/// name, made durable, then renamed into place and the directory synced, so
/// the log file either does not exist or starts with a whole header.
fn create(dir: &Path, path: &Path) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{LOG_FILE}.new"));
    let mut file = File::create(&tmp).map_err(|e| io_error(&tmp, "cannot create", e))?;
    file.write_all(&codec::file_header())
        .and_then(|()| file.sync_all())
        .map_err(|e| io_error(&tmp, "cannot write", e))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|e| io_error(path, "cannot create", e))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error(dir, "cannot sync the directory", e))
}

/// Reads from `offset` until `buf` is full or the file ends; returns the count.
fn read_up_to(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], offset + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// A frame read and checked by a [`Scanner`].
struct Frame<'a> {
    /// Each record's file offset and payload.
    records: Vec<(u64, &'a [u8])>,
}

/// Reads frames in order from a start offset up to a limit.
struct Scanner<'f> {
    file: &'f File,
    at: u64,
    limit: u64,
    body: Vec<u8>,
}

impl<'f> Scanner<'f> {
    fn new(file: &'f File, at: u64, limit: u64) -> Self {
        Self {
            file,
            at,
            limit,
            body: Vec::new(),
        }
    }

    fn position(&self) -> u64 {
        self.at
    }

    /// The next frame, checked (outer `Err`: IO failed; inner `Err`: the
    /// frame is damaged or incomplete, and the position stays on it).
    fn next_frame(&mut self) -> std::io::Result<Result<Frame<'_>, Malformed>> {
        let room = self.limit.saturating_sub(self.at);
        let mut header = [0; FRAME_HEADER_BYTES];
        if room < FRAME_HEADER_BYTES as u64 {
            return Ok(Err(Malformed(format!(
                "{room} bytes are left, too few for a frame header"
            ))));
        }
        self.file.read_exact_at(&mut header, self.at)?;
        let header = match codec::check_frame_header(&header) {
            Ok(h) => h,
            Err(e) => return Ok(Err(e)),
        };
        let size = (FRAME_HEADER_BYTES + header.body_bytes) as u64;
        if size > room {
            return Ok(Err(Malformed(format!(
                "the frame needs {size} bytes, {room} are left"
            ))));
        }
        debug_assert!(header.body_bytes <= FRAME_BYTES_MAX);
        self.body.resize(header.body_bytes, 0);
        self.file
            .read_exact_at(&mut self.body, self.at + FRAME_HEADER_BYTES as u64)?;
        let base = self.at + FRAME_HEADER_BYTES as u64;
        let records = match codec::check_frame_body(&self.body, header.records) {
            Ok(r) => r,
            Err(e) => return Ok(Err(e)),
        };
        self.at += size;
        Ok(Ok(Frame {
            records: records
                .into_iter()
                .map(|(offset, payload)| (base + offset as u64, payload))
                .collect(),
        }))
    }
}
