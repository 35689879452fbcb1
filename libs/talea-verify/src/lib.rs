//! Offline verification of a talea book: its hash chain, its RFC 9162 Merkle
//! tree (inclusion and consistency proofs), signed checkpoints and proofs of
//! liabilities.
//!
//! The crate is pure: hashing (`sha2`), signatures (`ed25519-dalek`), hex and
//! JSON (`serde_json`), and nothing else, so a third party can embed it. No
//! function panics on input: everything the world hands in is checked and
//! refused with a typed error. The encodings are specified in `docs/proofs.md`,
//! whose worked example is checked against this code by a test.
//!
//! - [`merkle`]: the RFC 9162 tree, proofs generated from stored perfect
//!   subtrees ([`merkle::Nodes`], [`merkle::MemoryLog`]) and their verification.
//! - [`jcs`]: the RFC 8785 canonical JSON subset that events use.
//! - [`chain`]: the per-book hash chain over canonical event bytes.
//! - [`checkpoint`]: signed tree heads, signing keys and the key list.
//! - [`liabilities`]: Merkle-sum trees for proofs of liabilities.
//! - [`snapshot`]: signed liability snapshots.
//! - [`files`]: the JSON documents `talea verify` reads.

pub mod chain;
pub mod checkpoint;
pub mod files;
pub mod hash;
pub mod jcs;
pub mod liabilities;
pub mod merkle;
pub mod snapshot;

pub use hash::Hash;
