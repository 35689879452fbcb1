//! The JSON documents `talea verify` reads: an events export, a checkpoint,
//! a key list, an inclusion proof, a consistency proof and a liability
//! proof. Every parser refuses malformed input with a [`FileError`] that
//! says what and where; every `verify` says why a proof fails.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chain::{ChainError, ChainStart, ChainVerifier, Summary};
use crate::checkpoint::{Checkpoint, CheckpointError, KeyList, PublicKey};
use crate::hash::{Hash, HexError, parse_hash};
use crate::liabilities::{self, LiabilityError, Side, Step, SumNode, parse_balance};
use crate::merkle::{self, PROOF_HASHES_MAX, VerifyError};

/// The largest proof, checkpoint or key-list document accepted, in bytes.
pub const PROOF_FILE_BYTES_MAX: usize = 1 << 20;

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The text is not the JSON the document needs.
    #[error("{what}: {message}")]
    Json {
        /// Which document (and line, for NDJSON).
        what: String,
        /// serde_json's account of the problem (it names line and column).
        message: String,
    },
    /// The document is larger than [`PROOF_FILE_BYTES_MAX`].
    #[error("the document is {0} bytes, more than {PROOF_FILE_BYTES_MAX}")]
    TooLarge(usize),
    /// A hash field is not 64 lowercase hex digits.
    #[error("{field}: {source}")]
    Hex {
        /// Which field.
        field: String,
        /// What is wrong with it.
        source: HexError,
    },
    /// A list of hashes is longer than any proof.
    #[error("{field} holds {len} hashes, more than {PROOF_HASHES_MAX}")]
    TooManyHashes {
        /// Which field.
        field: &'static str,
        /// How many it holds.
        len: usize,
    },
    /// A field holds a value outside its domain (an amount, a side).
    #[error("{field}: {message}")]
    Field {
        /// Which field.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

/// Why a proof document does not prove what it claims.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// The document itself is malformed.
    #[error(transparent)]
    File(#[from] FileError),
    /// The Merkle proof fails.
    #[error(transparent)]
    Merkle(#[from] VerifyError),
    /// The liability proof fails.
    #[error(transparent)]
    Liability(#[from] LiabilityError),
    /// A checkpoint is malformed or its signature fails.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// The events' chain breaks.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The proof and the checkpoints or published values it is checked
    /// against disagree (book, sizes, roots).
    #[error("{0}")]
    Mismatch(String),
}

fn json<T: serde::de::DeserializeOwned>(what: &str, text: &str) -> Result<T, FileError> {
    if text.len() > PROOF_FILE_BYTES_MAX {
        return Err(FileError::TooLarge(text.len()));
    }
    serde_json::from_str(text).map_err(|e| FileError::Json {
        what: what.to_owned(),
        message: e.to_string(),
    })
}

fn hash(field: &str, text: &str) -> Result<Hash, FileError> {
    parse_hash(text).map_err(|source| FileError::Hex {
        field: field.to_owned(),
        source,
    })
}

fn hashes(field: &'static str, texts: &[String]) -> Result<Vec<Hash>, FileError> {
    if texts.len() > PROOF_HASHES_MAX {
        return Err(FileError::TooManyHashes {
            field,
            len: texts.len(),
        });
    }
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| hash(&format!("{field}[{i}]"), t))
        .collect()
}

/// Reads an events export: a JSON array of events, an events page
/// (`{"events": [...]}`, as `GET /v1/books/{book}/events` serves it), or
/// NDJSON (one event object per line; blank lines skipped). No size limit:
/// an export is as large as its book, and the caller chose to read it.
pub fn parse_events(text: &str) -> Result<Vec<Value>, FileError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Array(events)) => Ok(events),
        Ok(Value::Object(mut page)) if page.contains_key("events") => match page.remove("events") {
            Some(Value::Array(events)) => Ok(events),
            _ => Err(FileError::Field {
                field: "events".into(),
                message: "must be an array".into(),
            }),
        },
        Ok(event @ Value::Object(_)) => Ok(vec![event]),
        Ok(_) => Err(FileError::Json {
            what: "events export".into(),
            message: "expected an array, an events page or NDJSON objects".into(),
        }),
        Err(_) => parse_ndjson(text),
    }
}

fn parse_ndjson(text: &str) -> Result<Vec<Value>, FileError> {
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let event: Value = serde_json::from_str(line).map_err(|e| FileError::Json {
            what: format!("events export, line {}", i + 1),
            message: e.to_string(),
        })?;
        events.push(event);
    }
    Ok(events)
}

/// Verifies a whole book's export from seq 1 and that its first
/// `checkpoint.tree_size` events have the checkpoint's Merkle root (the
/// checkpoint's signature the caller checks with [`Checkpoint::verify`]).
/// Events past the checkpoint are chain-checked too.
pub fn verify_export_against<I>(checkpoint: &Checkpoint, events: I) -> Result<Summary, ProofError>
where
    I: IntoIterator<Item = Value>,
{
    let root = checkpoint.root()?;
    let mut verifier = ChainVerifier::new(ChainStart::genesis(&checkpoint.book));
    let mut checked = checkpoint.tree_size == 0;
    if checked && root != merkle::empty_root() {
        return Err(ProofError::Mismatch(
            "an empty tree has another root".into(),
        ));
    }
    for event in events {
        verifier.push(&event)?;
        if verifier.position().0 == checkpoint.tree_size {
            let summary = verifier.summary();
            if summary.and_then(|s| s.root) != Some(root) {
                return Err(ProofError::Mismatch(format!(
                    "the export's first {} events do not have the checkpoint's root",
                    checkpoint.tree_size
                )));
            }
            checked = true;
        }
    }
    match (checked, verifier.summary()) {
        (true, Some(summary)) => Ok(summary),
        _ => Err(ProofError::Mismatch(format!(
            "the export ends at seq {}, before the checkpoint's tree size {}",
            verifier.position().0,
            checkpoint.tree_size
        ))),
    }
}

/// Reads a checkpoint (`GET /v1/books/{book}/checkpoint`).
pub fn parse_checkpoint(text: &str) -> Result<Checkpoint, FileError> {
    json("checkpoint", text)
}

/// Reads a key list (`GET /v1/keys`: `{"keys": [...]}`) or a single key.
pub fn parse_keys(text: &str) -> Result<KeyList, FileError> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Keys {
        List(KeyList),
        One(PublicKey),
    }
    match json::<Keys>("key list", text)? {
        Keys::List(list) => Ok(list),
        Keys::One(key) => Ok(KeyList { keys: vec![key] }),
    }
}

/// An inclusion proof: event `seq` is leaf `seq - 1` of the book's tree of
/// `tree_size` leaves. `leaf_hash` is the Merkle leaf hash of the event,
/// `SHA-256(0x00 || chain hash)`; `audit_path` is nearest sibling first.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InclusionProof {
    /// The book.
    pub book: String,
    /// The event's seq (from 1).
    pub seq: u64,
    /// The tree size the proof is for.
    pub tree_size: u64,
    /// The event's Merkle leaf hash, lowercase hex.
    pub leaf_hash: String,
    /// The audit path, lowercase hex, nearest sibling first.
    pub audit_path: Vec<String>,
}

impl InclusionProof {
    /// Reads the document.
    pub fn parse(text: &str) -> Result<Self, FileError> {
        json("inclusion proof", text)
    }

    /// Verifies the proof against `root`, the root of the tree of
    /// `tree_size` leaves.
    pub fn verify(&self, root: &Hash) -> Result<(), ProofError> {
        let leaf = hash("leaf_hash", &self.leaf_hash)?;
        let path = hashes("audit_path", &self.audit_path)?;
        let index = self.seq.checked_sub(1).ok_or_else(|| FileError::Field {
            field: "seq".into(),
            message: "sequence numbers start at 1".into(),
        })?;
        Ok(merkle::verify_inclusion(
            index,
            self.tree_size,
            &leaf,
            &path,
            root,
        )?)
    }

    /// Verifies the proof against a checkpoint of the same book and size
    /// (whose signature the caller checks with [`Checkpoint::verify`]).
    pub fn verify_against(&self, checkpoint: &Checkpoint) -> Result<(), ProofError> {
        same_book(&self.book, checkpoint)?;
        if checkpoint.tree_size != self.tree_size {
            return Err(ProofError::Mismatch(format!(
                "the proof is for tree size {}, the checkpoint is of {}",
                self.tree_size, checkpoint.tree_size
            )));
        }
        self.verify(&checkpoint.root()?)
    }
}

fn same_book(book: &str, checkpoint: &Checkpoint) -> Result<(), ProofError> {
    match checkpoint.book == book {
        true => Ok(()),
        false => Err(ProofError::Mismatch(format!(
            "the proof is of book {book:?}, the checkpoint of {:?}",
            checkpoint.book
        ))),
    }
}

/// A consistency proof: the tree of `from` leaves is a prefix of the tree of
/// `to` leaves. The roots, when present, must match the checkpoints.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsistencyProof {
    /// The book.
    pub book: String,
    /// The older tree size.
    pub from: u64,
    /// The newer tree size.
    pub to: u64,
    /// The older root, lowercase hex, if the server included it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_root: Option<String>,
    /// The newer root, lowercase hex, if the server included it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub second_root: Option<String>,
    /// The proof's hashes, lowercase hex, in RFC 9162 order.
    pub proof: Vec<String>,
}

impl ConsistencyProof {
    /// Reads the document.
    pub fn parse(text: &str) -> Result<Self, FileError> {
        json("consistency proof", text)
    }

    /// Verifies the proof between two roots.
    pub fn verify(&self, first_root: &Hash, second_root: &Hash) -> Result<(), ProofError> {
        for (field, claimed, given) in [
            ("first_root", &self.first_root, first_root),
            ("second_root", &self.second_root, second_root),
        ] {
            if let Some(claimed) = claimed
                && &hash(field, claimed)? != given
            {
                return Err(ProofError::Mismatch(format!(
                    "the proof's {field} is not the checkpoint's root"
                )));
            }
        }
        let proof = hashes("proof", &self.proof)?;
        Ok(merkle::verify_consistency(
            self.from,
            self.to,
            first_root,
            second_root,
            &proof,
        )?)
    }

    /// Verifies the proof between two checkpoints of its book whose sizes
    /// are `from` and `to` (their signatures the caller checks).
    pub fn verify_against(
        &self,
        first: &Checkpoint,
        second: &Checkpoint,
    ) -> Result<(), ProofError> {
        same_book(&self.book, first)?;
        same_book(&self.book, second)?;
        if (first.tree_size, second.tree_size) != (self.from, self.to) {
            return Err(ProofError::Mismatch(format!(
                "the proof is from {} to {}, the checkpoints are of {} and {}",
                self.from, self.to, first.tree_size, second.tree_size
            )));
        }
        self.verify(&first.root()?, &second.root()?)
    }
}

/// One step of a liability proof's path as served.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiabilityStep {
    /// The sibling's hash, lowercase hex.
    pub hash: String,
    /// The sibling's sum, minor units as a decimal string.
    pub sum: String,
    /// `left` or `right`: where the sibling sits.
    pub side: String,
}

/// One account's liability proof: its leaf and the path to the snapshot's
/// root, with the root and total the snapshot published.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiabilityProof {
    /// The snapshot's id.
    pub snapshot: String,
    /// The asset.
    pub asset: String,
    /// The account.
    pub account: String,
    /// Its balance, minor units as a decimal string.
    pub balance: String,
    /// The snapshot's salt, lowercase hex (32 bytes).
    pub salt: String,
    /// The path, nearest sibling first.
    pub path: Vec<LiabilityStep>,
    /// The snapshot's root hash, lowercase hex.
    pub root: String,
    /// The snapshot's total, minor units as a decimal string.
    pub total: String,
}

impl LiabilityProof {
    /// Reads the document.
    pub fn parse(text: &str) -> Result<Self, FileError> {
        json("liability proof", text)
    }

    /// Verifies that the account's leaf leads to the document's root and
    /// total. Compare those with the published snapshot with
    /// [`Self::verify_published`].
    pub fn verify(&self) -> Result<(), ProofError> {
        let salt = hash("salt", &self.salt)?;
        let balance = amount("balance", &self.balance)?;
        let root = hash("root", &self.root)?;
        let total = amount("total", &self.total)?;
        if self.path.len() > PROOF_HASHES_MAX {
            return Err(FileError::TooManyHashes {
                field: "path",
                len: self.path.len(),
            }
            .into());
        }
        let path = self
            .path
            .iter()
            .enumerate()
            .map(|(i, step)| parse_step(i, step))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(liabilities::verify(
            &salt,
            &self.account,
            balance,
            &path,
            &root,
            total,
        )?)
    }

    /// Verifies the proof and that its root and total are the published
    /// ones (from the signed snapshot the ledger announced).
    pub fn verify_published(&self, root: &Hash, total: u128) -> Result<(), ProofError> {
        self.verify()?;
        if &hash("root", &self.root)? != root || amount("total", &self.total)? != total {
            return Err(ProofError::Mismatch(
                "the proof's root or total is not the published one".into(),
            ));
        }
        Ok(())
    }
}

fn amount(field: &str, text: &str) -> Result<u128, FileError> {
    parse_balance(text).map_err(|e| FileError::Field {
        field: field.to_owned(),
        message: e.to_string(),
    })
}

fn parse_step(i: usize, step: &LiabilityStep) -> Result<Step, FileError> {
    let side = match step.side.as_str() {
        "left" => Side::Left,
        "right" => Side::Right,
        other => {
            return Err(FileError::Field {
                field: format!("path[{i}].side"),
                message: format!("{other:?} is neither \"left\" nor \"right\""),
            });
        }
    };
    Ok(Step {
        sibling: SumNode {
            hash: hash(&format!("path[{i}].hash"), &step.hash)?,
            sum: amount(&format!("path[{i}].sum"), &step.sum)?,
        },
        side,
    })
}

impl LiabilityStep {
    /// The served form of a typed step.
    pub fn from_step(step: &Step) -> Self {
        Self {
            hash: crate::hash::to_hex(&step.sibling.hash),
            sum: step.sibling.sum.to_string(),
            side: match step.side {
                Side::Left => "left",
                Side::Right => "right",
            }
            .to_owned(),
        }
    }
}
