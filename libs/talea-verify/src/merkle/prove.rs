//! Root, inclusion and consistency proofs (RFC 9162 §2.1.1, §2.1.3.1,
//! §2.1.4.1) computed from stored perfect-subtree hashes, so a log of a
//! million leaves answers without rehashing leaves.
//!
//! A perfect subtree is named `(level, index)`: it covers leaves
//! `[index * 2^level, (index + 1) * 2^level)`; level 0 holds the leaf hashes.
//! Every subtree the RFC's recursion meets is either perfect (one stored
//! node) or a suffix `[start, size)` of the tree, which is a run of the
//! tree's *peaks*: the perfect subtrees, one per set bit of `size`, that
//! tile it from the left. The peaks are read once per proof and their
//! suffix roots folded once, so a root, an inclusion proof or a consistency
//! proof costs O(log n) node reads (at most 64 peaks and one read per
//! proof hash) and O(log n) hashes.

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
        _ => Edge::read(nodes, size)
            .and_then(|edge| edge.range_root(0, size))
            .map_err(ProveError::Nodes),
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
    let edge = Edge::read(nodes, size).map_err(ProveError::Nodes)?;
    let (mut start, mut end) = (0, size);
    let mut top_down = Vec::new();
    while end - start > 1 {
        let k = split(end - start);
        let sibling = if index < start + k {
            let right = edge.range_root(start + k, end);
            end = start + k;
            right
        } else {
            let left = edge.range_root(start, start + k);
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
    let edge = Edge::read(nodes, second).map_err(ProveError::Nodes)?;
    let (mut m, mut start, mut end, mut whole) = (first, 0, second, true);
    let mut top_down = Vec::new();
    while m != end - start {
        let k = split(end - start);
        let sibling = if m <= k {
            let right = edge.range_root(start + k, end);
            end = start + k;
            right
        } else {
            let left = edge.range_root(start, start + k);
            m -= k;
            start += k;
            whole = false;
            left
        };
        top_down.push(sibling.map_err(ProveError::Nodes)?);
    }
    let mut proof = Vec::with_capacity(top_down.len() + 1);
    if !whole {
        proof.push(edge.range_root(start, end).map_err(ProveError::Nodes)?);
    }
    proof.extend(top_down.into_iter().rev());
    Ok(proof)
}

/// A tree of `size` leaves with the roots of its peak suffixes at hand.
struct Edge<'a, N> {
    nodes: &'a N,
    size: u64,
    /// `(start, MTH([start, size)))` for the start of every peak, leftmost
    /// first.
    suffixes: Vec<(u64, Hash)>,
}

impl<'a, N: Nodes> Edge<'a, N> {
    /// Reads the peaks of a tree of `size >= 1` leaves and folds their
    /// suffix roots from the right: MTH of a run of peaks is the node of
    /// its first peak and the run after it.
    fn read(nodes: &'a N, size: u64) -> Result<Self, N::Error> {
        let mut peaks = Vec::new();
        let mut start = 0u64;
        for level in (0..u64::BITS).rev() {
            if size >> level & 1 == 1 {
                peaks.push((start, nodes.node(level, start >> level)?));
                start += 1 << level;
            }
        }
        let mut suffixes = Vec::with_capacity(peaks.len());
        let mut right: Option<Hash> = None;
        for (start, peak) in peaks.into_iter().rev() {
            let root = match right {
                Some(r) => node_hash(&peak, &r),
                None => peak,
            };
            suffixes.push((start, root));
            right = Some(root);
        }
        suffixes.reverse();
        Ok(Self {
            nodes,
            size,
            suffixes,
        })
    }

    /// MTH of leaves `[start, end)` (`start < end <= size`) as the RFC's
    /// recursion meets them: a perfect subtree (one stored node) or a
    /// suffix of the tree (folded already). Any other range is split as
    /// the RFC splits it, which the proofs here never need.
    fn range_root(&self, start: u64, end: u64) -> Result<Hash, N::Error> {
        let n = end - start;
        if n.is_power_of_two() && start.is_multiple_of(n) {
            let level = n.trailing_zeros();
            return self.nodes.node(level, start >> level);
        }
        if end == self.size
            && let Ok(i) = self.suffixes.binary_search_by_key(&start, |(s, _)| *s)
        {
            return Ok(self.suffixes[i].1);
        }
        let k = split(n);
        let left = self.range_root(start, start + k)?;
        let right = self.range_root(start + k, end)?;
        Ok(node_hash(&left, &right))
    }
}
