//! Root, inclusion and consistency proofs (RFC 9162 §2.1.1, §2.1.3.1,
//! §2.1.4.1) computed from stored perfect-subtree hashes, so a log of a
//! million leaves answers without rehashing leaves.
//!
//! A perfect subtree is named `(level, index)`: it covers leaves
//! `[index * 2^level, (index + 1) * 2^level)`; level 0 holds the leaf hashes.
//! Every subtree the RFC's recursion meets is either perfect (one stored
//! node) or on the right edge of a tree whose size is not a power of two;
//! such an edge is composed from its perfect pieces, at most one per level.
//! A root therefore costs at most 64 node reads, and a proof at most 64
//! roots of subtrees: O(log² n) reads in the worst case, O(log n) hashes
//! in the answer.

use super::{empty_root, node_hash, split};
use crate::hash::Hash;

/// Read access to a log's stored perfect-subtree hashes.
pub trait Nodes {
    /// Why a node could not be read (a store's IO error, a missing node).
    type Error: std::error::Error + 'static;

    /// The hash of the perfect subtree covering leaves
    /// `[index * 2^level, (index + 1) * 2^level)`. Only nodes inside the tree
    /// size a caller asks about are read.
    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error>;
}

impl<T: Nodes + ?Sized> Nodes for &T {
    type Error = T::Error;

    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        (**self).node(level, index)
    }
}

/// Why a proof could not be produced.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProveError<E: std::error::Error + 'static> {
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
    /// The node store failed.
    #[error("reading a tree node: {0}")]
    Nodes(#[source] E),
}

/// The Merkle Tree Hash of the first `size` leaves (the empty tree's root
/// for 0).
pub fn root<N: Nodes>(nodes: &N, size: u64) -> Result<Hash, ProveError<N::Error>> {
    match size {
        0 => Ok(empty_root()),
        _ => range_root(nodes, 0, size).map_err(ProveError::Nodes),
    }
}

/// The audit path of the leaf at zero-based `index` in the tree of `size`
/// leaves, nearest sibling first (RFC 9162 §2.1.3.1).
pub fn inclusion_proof<N: Nodes>(
    nodes: &N,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, ProveError<N::Error>> {
    if index >= size {
        return Err(ProveError::IndexOutOfRange { index, size });
    }
    let (mut start, mut end) = (0, size);
    let mut top_down = Vec::new();
    while end - start > 1 {
        let k = split(end - start);
        let sibling = if index < start + k {
            let right = range_root(nodes, start + k, end);
            end = start + k;
            right
        } else {
            let left = range_root(nodes, start, start + k);
            start += k;
            left
        };
        top_down.push(sibling.map_err(ProveError::Nodes)?);
    }
    top_down.reverse();
    Ok(top_down)
}

/// The consistency proof between the trees of `first` and `second` leaves
/// (RFC 9162 §2.1.4.1); empty when the sizes are equal.
pub fn consistency_proof<N: Nodes>(
    nodes: &N,
    first: u64,
    second: u64,
) -> Result<Vec<Hash>, ProveError<N::Error>> {
    if first == 0 || first > second {
        return Err(ProveError::BadSizes { first, second });
    }
    if first == second {
        return Ok(Vec::new());
    }
    // SUBPROOF(m, D[start:end], b), unrolled: each step appends one sibling
    // after the recursion's result, so siblings are gathered top-down and
    // reversed behind the base case's hash.
    let (mut m, mut start, mut end, mut whole) = (first, 0, second, true);
    let mut top_down = Vec::new();
    while m != end - start {
        let k = split(end - start);
        let sibling = if m <= k {
            let right = range_root(nodes, start + k, end);
            end = start + k;
            right
        } else {
            let left = range_root(nodes, start, start + k);
            m -= k;
            start += k;
            whole = false;
            left
        };
        top_down.push(sibling.map_err(ProveError::Nodes)?);
    }
    let mut proof = Vec::with_capacity(top_down.len() + 1);
    if !whole {
        proof.push(range_root(nodes, start, end).map_err(ProveError::Nodes)?);
    }
    proof.extend(top_down.into_iter().rev());
    Ok(proof)
}

/// MTH of leaves `[start, end)` (`start < end`): one stored node when the
/// range is a perfect subtree, else the RFC's split, whose left half is
/// always perfect.
fn range_root<N: Nodes>(nodes: &N, start: u64, end: u64) -> Result<Hash, N::Error> {
    let n = end - start;
    if n.is_power_of_two() && start.is_multiple_of(n) {
        let level = n.trailing_zeros();
        return nodes.node(level, start >> level);
    }
    let k = split(n);
    let left = range_root(nodes, start, start + k)?;
    let right = range_root(nodes, start + k, end)?;
    Ok(node_hash(&left, &right))
}
