//! The per-book hash chain: `hash_n = SHA-256(hash_{n-1} || canonical(event_n))`
//! with `hash_0` = 32 zero bytes.
//!
//! An event's canonical bytes are the RFC 8785 ([`crate::jcs`]) text of the
//! JSON object with exactly five members, built from the event as the events
//! resource serves it (`GET /v1/books/{book}/events`):
//!
//! ```text
//! {"book":<book>,"committed_at":<committed_at>,"data":<data>,"seq":<seq>,"type":<type>}
//! ```
//!
//! Other members of a served event (its own `hash` among them) are not bound,
//! so adding a field to the resource never changes the chain; the `book` is
//! bound so that one book's events cannot be spliced into another's. The
//! Merkle leaf data of event `seq` is its 32-byte chain hash, at leaf index
//! `seq - 1`.

use serde_json::{Map, Value, json};

use crate::hash::{Hash, HexError, parse_hash, sha256, to_hex};
use crate::jcs::{JcsError, canonical};
use crate::merkle::{Frontier, leaf_hash};

/// The chain's starting value, `hash_0`: 32 zero bytes.
pub const GENESIS: Hash = [0; 32];

/// One event as the chain binds it: the neutral form of an events-resource
/// entry, a stream frame or a log record.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainEvent {
    /// The book whose log holds the event.
    pub book: String,
    /// Its sequence number in the book, dense from 1.
    pub seq: u64,
    /// Its type (`account_opened`, `transaction`, `hold_expired`, …).
    pub kind: String,
    /// Its commit time, exactly as served (RFC 3339, UTC, microseconds).
    pub committed_at: String,
    /// Its data, the resource JSON as served.
    pub data: Value,
}

/// Why an event's JSON is not a chain event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EventError {
    /// The event is not a JSON object.
    #[error("an event must be a JSON object")]
    NotAnObject,
    /// A member is missing or has the wrong JSON type.
    #[error("the event's `{0}` is missing or of the wrong type")]
    Member(&'static str),
    /// The sequence number is 0.
    #[error("sequence numbers start at 1")]
    SeqZero,
    /// The event names a book other than the one being verified.
    #[error("the event belongs to book {found:?}, not {expected:?}")]
    OtherBook {
        /// The book being verified.
        expected: String,
        /// The book the event names.
        found: String,
    },
    /// The event's `hash` member is not 64 lowercase hex digits.
    #[error("the event's hash: {0}")]
    Hash(#[from] HexError),
    /// The data holds JSON that has no canonical form (a float, say).
    #[error("the event has no canonical form: {0}")]
    Canonical(#[from] JcsError),
}

impl ChainEvent {
    /// Reads an event of `book` from its served JSON (`seq`, `type`,
    /// `committed_at`, `data`; a `book` member, if any, must be `book`).
    pub fn from_json(book: &str, event: &Value) -> Result<Self, EventError> {
        let object = event.as_object().ok_or(EventError::NotAnObject)?;
        if let Some(found) = object.get("book") {
            let found = found.as_str().ok_or(EventError::Member("book"))?;
            if found != book {
                return Err(EventError::OtherBook {
                    expected: book.to_owned(),
                    found: found.to_owned(),
                });
            }
        }
        let seq = member(object, "seq")?
            .as_u64()
            .ok_or(EventError::Member("seq"))?;
        if seq == 0 {
            return Err(EventError::SeqZero);
        }
        Ok(Self {
            book: book.to_owned(),
            seq,
            kind: text_member(object, "type")?,
            committed_at: text_member(object, "committed_at")?,
            data: member(object, "data")?.clone(),
        })
    }

    /// The canonical bytes the chain hashes (see the module's documentation).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, JcsError> {
        canonical(&json!({
            "book": self.book,
            "committed_at": self.committed_at,
            "data": self.data,
            "seq": self.seq,
            "type": self.kind,
        }))
    }

    /// `SHA-256(prev || canonical_bytes)`: this event's chain hash.
    pub fn chain_hash(&self, prev: &Hash) -> Result<Hash, JcsError> {
        Ok(sha256(&[prev, &self.canonical_bytes()?]))
    }
}

fn member<'a>(object: &'a Map<String, Value>, name: &'static str) -> Result<&'a Value, EventError> {
    object.get(name).ok_or(EventError::Member(name))
}

fn text_member(object: &Map<String, Value>, name: &'static str) -> Result<String, EventError> {
    member(object, name)?
        .as_str()
        .map(str::to_owned)
        .ok_or(EventError::Member(name))
}

/// The chain hash of `event` (served JSON of `book`) after `prev`.
pub fn event_hash(prev: &Hash, book: &str, event: &Value) -> Result<Hash, EventError> {
    Ok(ChainEvent::from_json(book, event)?.chain_hash(prev)?)
}

/// The first bad event of a chain, and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the chain breaks at seq {seq}: {kind}")]
pub struct ChainError {
    /// The seq of the first bad event: the one expected at that position
    /// when the event's own seq is wrong or unreadable.
    pub seq: u64,
    /// What is wrong.
    pub kind: ChainErrorKind,
}

/// What is wrong with the first bad event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChainErrorKind {
    /// The event cannot be read as a chain event.
    #[error("{0}")]
    Event(#[from] EventError),
    /// The event's seq is not the next one (a gap, a repeat, a reordering).
    #[error("expected seq {expected}, found {found}")]
    Gap {
        /// The seq that should come next.
        expected: u64,
        /// The seq found.
        found: u64,
    },
    /// The event carries no `hash`.
    #[error("the event carries no hash")]
    MissingHash,
    /// The event's `hash` is not the hash of the chain up to it.
    #[error("the event's hash is {found}, the chain gives {expected}")]
    HashMismatch {
        /// The hash recomputed from the previous hash and the event.
        expected: String,
        /// The hash the event carries.
        found: String,
    },
    /// The chain went past `u64::MAX` events.
    #[error("the sequence numbers overflow")]
    SeqOverflow,
    /// A verifier was asked to check an empty range.
    #[error("no events")]
    Empty,
}

/// Where a verification starts: after `after_seq` whose chain hash was
/// `prev` (`0` and [`GENESIS`] for a whole book).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainStart {
    /// The book.
    pub book: String,
    /// The last seq already trusted (0: none).
    pub after_seq: u64,
    /// Its chain hash ([`GENESIS`] when `after_seq` is 0).
    pub prev: Hash,
}

impl ChainStart {
    /// The start of a whole book.
    pub fn genesis(book: &str) -> Self {
        Self {
            book: book.to_owned(),
            after_seq: 0,
            prev: GENESIS,
        }
    }
}

/// What a verified range of the chain comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The first seq verified.
    pub first_seq: u64,
    /// The last seq verified.
    pub last_seq: u64,
    /// The last event's chain hash (the chain's head).
    pub head: Hash,
    /// The Merkle root over events 1..=last_seq, when the range began at
    /// seq 1 (only then are all the leaves at hand); compare it with a
    /// checkpoint of tree size `last_seq`.
    pub root: Option<Hash>,
}

/// Checks events one at a time, as they stream past (an export, or a live
/// stream across resumes): each seq follows the last and each `hash` is the
/// chain's. Once an event fails, the verifier stays where it was.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    book: String,
    last_seq: u64,
    head: Hash,
    first_seq: Option<u64>,
    /// The Merkle tree of leaves so far, kept only from genesis.
    tree: Option<Frontier>,
}

impl ChainVerifier {
    /// A verifier starting at `start`.
    pub fn new(start: ChainStart) -> Self {
        let tree = (start.after_seq == 0).then(Frontier::new);
        Self {
            book: start.book,
            last_seq: start.after_seq,
            head: start.prev,
            first_seq: None,
            tree,
        }
    }

    /// The last seq accepted and its hash: where a resumed stream continues.
    pub fn position(&self) -> (u64, Hash) {
        (self.last_seq, self.head)
    }

    /// Checks the next event and returns its chain hash.
    pub fn push(&mut self, event: &Value) -> Result<Hash, ChainError> {
        let expected = self.last_seq.checked_add(1).ok_or(ChainError {
            seq: self.last_seq,
            kind: ChainErrorKind::SeqOverflow,
        })?;
        let fail = |kind: ChainErrorKind| ChainError {
            seq: expected,
            kind,
        };
        let parsed = ChainEvent::from_json(&self.book, event).map_err(|e| fail(e.into()))?;
        if parsed.seq != expected {
            return Err(fail(ChainErrorKind::Gap {
                expected,
                found: parsed.seq,
            }));
        }
        let claimed = match event.get("hash") {
            None => return Err(fail(ChainErrorKind::MissingHash)),
            Some(h) => h.as_str().ok_or(fail(EventError::Member("hash").into()))?,
        };
        let claimed = parse_hash(claimed).map_err(|e| fail(EventError::from(e).into()))?;
        let hash = parsed
            .chain_hash(&self.head)
            .map_err(|e| fail(EventError::from(e).into()))?;
        if hash != claimed {
            return Err(fail(ChainErrorKind::HashMismatch {
                expected: to_hex(&hash),
                found: to_hex(&claimed),
            }));
        }
        self.accept(expected, hash);
        Ok(hash)
    }

    fn accept(&mut self, seq: u64, hash: Hash) {
        self.last_seq = seq;
        self.head = hash;
        self.first_seq.get_or_insert(seq);
        if let Some(tree) = &mut self.tree {
            tree.append(leaf_hash(&hash));
        }
    }

    /// The summary of what was accepted, `None` before the first event.
    pub fn summary(&self) -> Option<Summary> {
        Some(Summary {
            first_seq: self.first_seq?,
            last_seq: self.last_seq,
            head: self.head,
            root: self.tree.as_ref().map(Frontier::root),
        })
    }
}

/// Verifies a whole book's chain from seq 1; the error names the first bad
/// seq.
pub fn verify_chain<I>(book: &str, events: I) -> Result<Summary, ChainError>
where
    I: IntoIterator<Item = Value>,
{
    verify_chain_from(ChainStart::genesis(book), events)
}

/// Verifies a range of a book's chain that starts after `start`.
pub fn verify_chain_from<I>(start: ChainStart, events: I) -> Result<Summary, ChainError>
where
    I: IntoIterator<Item = Value>,
{
    let first = start.after_seq.saturating_add(1);
    let mut verifier = ChainVerifier::new(start);
    for event in events {
        verifier.push(&event)?;
    }
    verifier.summary().ok_or(ChainError {
        seq: first,
        kind: ChainErrorKind::Empty,
    })
}

#[cfg(test)]
mod tests;
