//! Signed checkpoints (tree heads): a book's Merkle tree size and root,
//! signed with Ed25519 by the server's key, and the key list that verifies
//! them.
//!
//! The signed message is UTF-8 text, five lines each ending in `\n`:
//!
//! ```text
//! talea-checkpoint v1
//! <book>
//! <tree_size, decimal, no leading zeros>
//! <root_hash, 64 lowercase hex digits>
//! <timestamp, YYYY-MM-DDTHH:MM:SS.ffffffZ>
//! ```
//!
//! `signature` is the 64-byte Ed25519 signature of that message in
//! lowercase hex (128 digits), verified strictly (`verify_strict`: no small-
//! order keys, no malleable signatures). `key_id` is the first 8 bytes of
//! SHA-256 of the 32-byte public key, in lowercase hex (16 digits).

use ed25519_dalek::Signer as _;
use serde::{Deserialize, Serialize};

use crate::hash::{Hash, HexError, parse_hash, parse_hex, sha256, to_hex};

/// The first line of every signed message: names the format and its version.
pub const CHECKPOINT_HEADER: &str = "talea-checkpoint v1";

/// The only signature algorithm, as named in key lists and key files.
pub const ALGORITHM: &str = "ed25519";

/// The longest book name a checkpoint accepts, in bytes.
pub const BOOK_BYTES_MAX: usize = 256;

/// Why a checkpoint, key or key file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointError {
    /// The book name is empty, too long or holds a control character.
    #[error(
        "the book name is empty, longer than {BOOK_BYTES_MAX} bytes or holds a control character"
    )]
    BadBook,
    /// The timestamp is not `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    #[error(
        "the timestamp {0:?} is not RFC 3339 UTC with microseconds (YYYY-MM-DDTHH:MM:SS.ffffffZ)"
    )]
    BadTimestamp(String),
    /// A text field of a signed message is empty, too long or holds a
    /// control character (which could forge a line of the message).
    #[error("{0} is empty, longer than {BOOK_BYTES_MAX} bytes or holds a control character")]
    BadField(&'static str),
    /// A hash, key, seed or signature is not the hex it should be.
    #[error("{field}: {source}")]
    Hex {
        /// Which field.
        field: &'static str,
        /// What is wrong with it.
        source: HexError,
    },
    /// The algorithm is not `ed25519`.
    #[error("unsupported algorithm {0:?}: only \"ed25519\"")]
    Algorithm(String),
    /// The bytes are not a valid Ed25519 public key.
    #[error("not a valid Ed25519 public key")]
    BadPublicKey,
    /// A key's `key_id` is not the one its public key gives.
    #[error("key id {found} does not match its public key (which gives {expected})")]
    KeyIdMismatch {
        /// The id the public key gives.
        expected: String,
        /// The id claimed.
        found: String,
    },
    /// No key in the list has the checkpoint's `key_id`.
    #[error("no known key has id {0}")]
    UnknownKey(String),
    /// The signature does not verify.
    #[error("the signature does not verify")]
    BadSignature,
    /// A key file is not the JSON it should be.
    #[error("the key file is malformed: {0}")]
    KeyFile(String),
}

fn hex_field<const N: usize>(field: &'static str, text: &str) -> Result<[u8; N], CheckpointError> {
    parse_hex::<N>(text).map_err(|source| CheckpointError::Hex { field, source })
}

/// The message a checkpoint's signature covers (see the module's
/// documentation), after checking the book and the timestamp.
pub fn signed_message(
    book: &str,
    tree_size: u64,
    root: &Hash,
    timestamp: &str,
) -> Result<String, CheckpointError> {
    check_book(book)?;
    check_timestamp(timestamp)?;
    Ok(format!(
        "{CHECKPOINT_HEADER}\n{book}\n{tree_size}\n{}\n{timestamp}\n",
        to_hex(root)
    ))
}

fn check_book(book: &str) -> Result<(), CheckpointError> {
    let bad = book.is_empty() || book.len() > BOOK_BYTES_MAX || book.chars().any(char::is_control);
    match bad {
        true => Err(CheckpointError::BadBook),
        false => Ok(()),
    }
}

/// Checks the shape talea writes times in: `2026-12-07T01:02:03.456789Z`.
pub fn check_timestamp(text: &str) -> Result<(), CheckpointError> {
    const SHAPE: &[u8; 27] = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
    let bytes = text.as_bytes();
    let shaped = bytes.len() == SHAPE.len()
        && bytes.iter().zip(SHAPE).all(|(b, s)| match s {
            b'd' => b.is_ascii_digit(),
            _ => b == s,
        });
    let number = |from: usize, to: usize| text.get(from..to).and_then(|t| t.parse::<u32>().ok());
    let in_range = shaped
        && matches!(number(5, 7), Some(1..=12))
        && matches!(number(8, 10), Some(1..=31))
        && matches!(number(11, 13), Some(0..=23))
        && matches!(number(14, 16), Some(0..=59))
        && matches!(number(17, 19), Some(0..=60));
    match in_range {
        true => Ok(()),
        false => Err(CheckpointError::BadTimestamp(
            text.chars().take(40).collect(),
        )),
    }
}

/// `key_id` of a public key: the first 8 bytes of its SHA-256, in hex.
pub fn key_id(public_key: &[u8; 32]) -> String {
    to_hex(&sha256(&[public_key])[..8])
}

/// A signed tree head, as `GET /v1/books/{book}/checkpoint` serves it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// The book.
    pub book: String,
    /// How many events (leaves) the tree holds: events 1..=tree_size.
    pub tree_size: u64,
    /// The Merkle root, lowercase hex.
    pub root_hash: String,
    /// When the checkpoint was taken, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub timestamp: String,
    /// The signing key's id.
    pub key_id: String,
    /// The Ed25519 signature of [`signed_message`], lowercase hex.
    pub signature: String,
}

impl Checkpoint {
    /// The root hash as bytes.
    pub fn root(&self) -> Result<Hash, CheckpointError> {
        parse_hash(&self.root_hash).map_err(|source| CheckpointError::Hex {
            field: "root_hash",
            source,
        })
    }

    /// The message the signature covers.
    pub fn message(&self) -> Result<String, CheckpointError> {
        signed_message(&self.book, self.tree_size, &self.root()?, &self.timestamp)
    }

    /// Verifies the signature with the key of the list named by `key_id`.
    pub fn verify(&self, keys: &KeyList) -> Result<(), CheckpointError> {
        self.verify_with(keys.find(&self.key_id)?)
    }

    /// Verifies the signature with `key` (whose id must be the checkpoint's).
    pub fn verify_with(&self, key: &PublicKey) -> Result<(), CheckpointError> {
        key.verify_signed(&self.key_id, &self.message()?, &self.signature)
    }
}

/// One entry of the public key list (`GET /v1/keys`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicKey {
    /// First 8 bytes of SHA-256 of the public key, lowercase hex.
    pub key_id: String,
    /// Always `ed25519`.
    pub algorithm: String,
    /// The 32-byte public key, lowercase hex.
    pub public_key: String,
}

impl PublicKey {
    /// The key, after checking its algorithm, encoding and id.
    pub fn verifying_key(&self) -> Result<ed25519_dalek::VerifyingKey, CheckpointError> {
        if self.algorithm != ALGORITHM {
            return Err(CheckpointError::Algorithm(self.algorithm.clone()));
        }
        let bytes = hex_field::<32>("public_key", &self.public_key)?;
        let expected = key_id(&bytes);
        if expected != self.key_id {
            return Err(CheckpointError::KeyIdMismatch {
                expected,
                found: self.key_id.clone(),
            });
        }
        ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| CheckpointError::BadPublicKey)
    }

    /// Verifies strictly that `signature` (hex) is this key's signature of
    /// `message`, claimed by the key `key_id`.
    pub(crate) fn verify_signed(
        &self,
        key_id: &str,
        message: &str,
        signature: &str,
    ) -> Result<(), CheckpointError> {
        let verifying = self.verifying_key()?;
        if self.key_id != key_id {
            return Err(CheckpointError::UnknownKey(key_id.to_owned()));
        }
        let signature =
            ed25519_dalek::Signature::from_bytes(&hex_field::<64>("signature", signature)?);
        verifying
            .verify_strict(message.as_bytes(), &signature)
            .map_err(|_| CheckpointError::BadSignature)
    }
}

/// The public key list (`GET /v1/keys`): current and retired keys, so old
/// checkpoints still verify after a rotation.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyList {
    /// The keys.
    pub keys: Vec<PublicKey>,
}

impl KeyList {
    /// The key named `key_id`, or `UnknownKey`.
    pub fn find(&self, key_id: &str) -> Result<&PublicKey, CheckpointError> {
        self.keys
            .iter()
            .find(|k| k.key_id == key_id)
            .ok_or_else(|| CheckpointError::UnknownKey(key_id.to_owned()))
    }
}

/// A server's checkpoint signing key. Its `Debug` shows only the key id.
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key whose Ed25519 seed (RFC 8032 private key) is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        Self {
            inner: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// A new key from 32 bytes of the caller's operating-system randomness
    /// (this crate draws none itself); the same as [`Self::from_seed`], named
    /// for the caller's intent.
    pub fn generate(random: [u8; 32]) -> Self {
        Self::from_seed(&random)
    }

    /// The public key's bytes.
    pub fn public_key_bytes(&self) -> [u8; 32] {
        self.inner.verifying_key().to_bytes()
    }

    /// The key's id.
    pub fn key_id(&self) -> String {
        key_id(&self.public_key_bytes())
    }

    /// The key's entry in the public key list.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            key_id: self.key_id(),
            algorithm: ALGORITHM.to_owned(),
            public_key: to_hex(&self.public_key_bytes()),
        }
    }

    /// Signs the checkpoint of `book` at `tree_size` with root `root`.
    pub fn sign(
        &self,
        book: &str,
        tree_size: u64,
        root: &Hash,
        timestamp: &str,
    ) -> Result<Checkpoint, CheckpointError> {
        let message = signed_message(book, tree_size, root, timestamp)?;
        let signature = self.inner.sign(message.as_bytes());
        Ok(Checkpoint {
            book: book.to_owned(),
            tree_size,
            root_hash: to_hex(root),
            timestamp: timestamp.to_owned(),
            key_id: self.key_id(),
            signature: to_hex(&signature.to_bytes()),
        })
    }

    /// The Ed25519 signature of `message`, lowercase hex.
    pub(crate) fn sign_text(&self, message: &str) -> String {
        to_hex(&self.inner.sign(message.as_bytes()).to_bytes())
    }

    /// The key file's text: `{"algorithm":"ed25519","seed":"<64 hex>"}` and a
    /// newline. It holds the secret: the server writes it readable by its
    /// owner only.
    pub fn key_file_text(&self) -> String {
        let file = KeyFile {
            algorithm: ALGORITHM.to_owned(),
            seed: to_hex(self.inner.as_bytes()),
        };
        match serde_json::to_string(&file) {
            Ok(text) => text + "\n",
            // Two strings always serialize.
            Err(_) => unreachable!("a key file of two strings serializes"),
        }
    }

    /// Reads a key file's text (see [`Self::key_file_text`]).
    pub fn from_key_file_text(text: &str) -> Result<Self, CheckpointError> {
        let file: KeyFile =
            serde_json::from_str(text).map_err(|e| CheckpointError::KeyFile(e.to_string()))?;
        if file.algorithm != ALGORITHM {
            return Err(CheckpointError::Algorithm(file.algorithm));
        }
        Ok(Self::from_seed(&hex_field::<32>("seed", &file.seed)?))
    }
}

/// The key file: a JSON object with the algorithm and the hex seed.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    algorithm: String,
    seed: String,
}

/// Why a key file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file could not be read.
    #[error("reading the key file: {0}")]
    Io(#[from] std::io::Error),
    /// Its contents are not a key file.
    #[error(transparent)]
    Malformed(#[from] CheckpointError),
}

/// Reads the key file at `path`: this crate's only file IO.
pub fn read_key_file(path: &std::path::Path) -> Result<SigningKey, KeyFileError> {
    let text = std::fs::read_to_string(path)?;
    Ok(SigningKey::from_key_file_text(&text)?)
}

#[cfg(test)]
mod tests;
