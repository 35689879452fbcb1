//! The RFC 9162 (Certificate Transparency v2) §2.1 Merkle tree: leaf and node
//! hashes, the verification of inclusion (§2.1.3.2) and consistency
//! (§2.1.4.2) proofs, and (in the `prove` module) their generation from stored
//! perfect subtrees.
//!
//! In talea the leaf data of event `seq` is its 32-byte chain hash
//! ([`crate::chain`]), and its leaf index is `seq - 1`.

mod memory;
mod prove;

pub use memory::{CompletedNode, Frontier, MemoryLog, MissingNode};
pub use prove::{Nodes, ProveError, consistency_proof, inclusion_proof, root};

use crate::hash::{Hash, sha256};

/// The most hashes a proof may hold: a tree of at most 2^64 leaves has a
/// path of at most 64 hashes (consistency proofs: at most 64 plus one).
pub const PROOF_HASHES_MAX: usize = 65;

/// The root of the empty tree: SHA-256 of the empty string (RFC 9162 §2.1.1).
pub fn empty_root() -> Hash {
    sha256(&[])
}

/// Leaf hash: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    sha256(&[&[0x00], data])
}

/// Interior node hash: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    sha256(&[&[0x01], left, right])
}

/// The largest power of two strictly smaller than `n` (`n >= 2`): the size of
/// the left subtree of a tree of `n` leaves.
pub(crate) fn split(n: u64) -> u64 {
    debug_assert!(n >= 2, "split of a tree with fewer than two leaves");
    1u64 << (63 - (n - 1).leading_zeros())
}

/// Why a proof failed to verify. The proof is refused as a whole; nothing
/// here says which hash was wrong, because a proof cannot tell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The leaf index is not below the tree size.
    #[error("leaf index {index} is outside a tree of {size} leaves")]
    IndexOutOfRange {
        /// The zero-based leaf index.
        index: u64,
        /// The tree size.
        size: u64,
    },
    /// The sizes of a consistency proof are not `0 < first <= second`.
    #[error("consistency needs 0 < first <= second, got first {first}, second {second}")]
    BadSizes {
        /// The older tree's size.
        first: u64,
        /// The newer tree's size.
        second: u64,
    },
    /// The proof holds more or fewer hashes than its sizes allow.
    #[error("the proof has the wrong number of hashes ({len})")]
    WrongLength {
        /// How many hashes it holds.
        len: usize,
    },
    /// The hashes recomputed from the proof do not match the roots given.
    #[error("the proof does not lead to the root hash")]
    RootMismatch,
}

/// Verifies that `leaf` (a leaf hash) is the leaf at zero-based `index` of the
/// tree of `size` leaves whose root is `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(
    index: u64,
    size: u64,
    leaf: &Hash,
    path: &[Hash],
    root: &Hash,
) -> Result<(), VerifyError> {
    if index >= size {
        return Err(VerifyError::IndexOutOfRange { index, size });
    }
    if path.len() > PROOF_HASHES_MAX {
        return Err(VerifyError::WrongLength { len: path.len() });
    }
    let (mut f_n, mut s_n) = (index, size - 1);
    let mut r = *leaf;
    for p in path {
        if s_n == 0 {
            return Err(VerifyError::WrongLength { len: path.len() });
        }
        if f_n & 1 == 1 || f_n == s_n {
            r = node_hash(p, &r);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            r = node_hash(&r, p);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    if s_n != 0 {
        return Err(VerifyError::WrongLength { len: path.len() });
    }
    if &r != root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// Verifies that the tree of `first` leaves with root `first_root` is a prefix
/// of the tree of `second` leaves with root `second_root` (RFC 9162
/// §2.1.4.2). Equal sizes need an empty proof and equal roots.
pub fn verify_consistency(
    first: u64,
    second: u64,
    first_root: &Hash,
    second_root: &Hash,
    proof: &[Hash],
) -> Result<(), VerifyError> {
    if first == 0 || first > second {
        return Err(VerifyError::BadSizes { first, second });
    }
    if first == second {
        if !proof.is_empty() {
            return Err(VerifyError::WrongLength { len: proof.len() });
        }
        return match first_root == second_root {
            true => Ok(()),
            false => Err(VerifyError::RootMismatch),
        };
    }
    if proof.is_empty() || proof.len() > PROOF_HASHES_MAX {
        return Err(VerifyError::WrongLength { len: proof.len() });
    }
    let (fr, sr, s_n) = consistency_roots(first, second, first_root, proof)?;
    if s_n != 0 {
        return Err(VerifyError::WrongLength { len: proof.len() });
    }
    if &fr != first_root || &sr != second_root {
        return Err(VerifyError::RootMismatch);
    }
    Ok(())
}

/// Steps 2 to 6 of RFC 9162 §2.1.4.2 for `0 < first < second` and a
/// non-empty proof: the recomputed first and second roots and the final `sn`.
fn consistency_roots(
    first: u64,
    second: u64,
    first_root: &Hash,
    proof: &[Hash],
) -> Result<(Hash, Hash, u64), VerifyError> {
    let too_short = || VerifyError::WrongLength { len: proof.len() };
    // A power-of-two first tree is a complete subtree: its root is the seed.
    let (seed, rest) = match first.is_power_of_two() {
        true => (first_root, proof),
        false => proof.split_first().ok_or_else(too_short)?,
    };
    let (mut f_n, mut s_n) = (first - 1, second - 1);
    while f_n & 1 == 1 {
        f_n >>= 1;
        s_n >>= 1;
    }
    let (mut fr, mut sr) = (*seed, *seed);
    for c in rest {
        if s_n == 0 {
            return Err(too_short());
        }
        if f_n & 1 == 1 || f_n == s_n {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            while f_n & 1 == 0 && f_n != 0 {
                f_n >>= 1;
                s_n >>= 1;
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f_n >>= 1;
        s_n >>= 1;
    }
    Ok((fr, sr, s_n))
}

#[cfg(test)]
mod tests;
