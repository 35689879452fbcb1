//! `MemoryLog`: an in-memory append-only tree that keeps every perfect
//! subtree as it completes, the reference for a store that persists them.

use super::{Nodes, leaf_hash, node_hash, root};
use crate::hash::Hash;

/// One perfect-subtree hash that an append completed: what a store persists
/// so that later proofs need no leaf rehashing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedNode {
    /// The subtree's height (0: a leaf hash).
    pub level: u32,
    /// Its position among the subtrees of its level.
    pub index: u64,
    /// Its hash.
    pub hash: Hash,
}

/// An append-only Merkle log held in memory: `levels[l][i]` is the perfect
/// subtree `(l, i)`. Appending leaf `n` completes the leaf and one node per
/// trailing one bit of `n`, so the log holds fewer than `2n` hashes.
#[derive(Debug, Clone, Default)]
pub struct MemoryLog {
    levels: Vec<Vec<Hash>>,
}

/// A node was asked for that the log has not completed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no perfect subtree at level {level}, index {index}")]
pub struct MissingNode {
    /// The subtree's height.
    pub level: u32,
    /// Its position among the subtrees of its level.
    pub index: u64,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many leaves the log holds.
    pub fn len(&self) -> u64 {
        self.levels.first().map_or(0, |leaves| leaves.len() as u64)
    }

    /// Whether the log holds no leaf.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends the leaf for `data` (hashed with [`leaf_hash`]).
    pub fn append_data(&mut self, data: &[u8]) -> Vec<CompletedNode> {
        self.append(leaf_hash(data))
    }

    /// Appends a leaf hash and returns the nodes it completed, the leaf
    /// first, then upwards.
    pub fn append(&mut self, leaf: Hash) -> Vec<CompletedNode> {
        let mut completed = Vec::new();
        let (mut level, mut hash) = (0usize, leaf);
        loop {
            if self.levels.len() == level {
                self.levels.push(Vec::new());
            }
            let row = &mut self.levels[level];
            row.push(hash);
            let index = row.len() - 1;
            completed.push(CompletedNode {
                level: level as u32,
                index: index as u64,
                hash,
            });
            if index.is_multiple_of(2) {
                return completed;
            }
            hash = node_hash(&row[index - 1], &row[index]);
            level += 1;
        }
    }

    /// The root of the whole log.
    pub fn root(&self) -> Hash {
        match root(self, self.len()) {
            Ok(hash) => hash,
            // Every node under the log's own size exists.
            Err(_) => unreachable!("a MemoryLog holds every node below its size"),
        }
    }
}

impl Nodes for MemoryLog {
    type Error = MissingNode;

    fn node(&self, level: u32, index: u64) -> Result<Hash, MissingNode> {
        let missing = MissingNode { level, index };
        let row = self.levels.get(level as usize).ok_or(missing.clone())?;
        usize::try_from(index)
            .ok()
            .and_then(|i| row.get(i))
            .copied()
            .ok_or(missing)
    }
}

/// The right edge of an append-only tree: one perfect subtree per set bit of
/// its size, enough to compute the root as leaves stream past in O(log n)
/// memory (how `talea verify` checks a whole export against a checkpoint).
#[derive(Debug, Clone, Default)]
pub struct Frontier {
    size: u64,
    /// Perfect subtrees, largest (leftmost) first.
    peaks: Vec<Hash>,
}

impl Frontier {
    /// An empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many leaves were appended.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends a leaf hash, merging the perfect subtrees it completes.
    pub fn append(&mut self, leaf: Hash) {
        let mut hash = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            if let Some(left) = self.peaks.pop() {
                hash = node_hash(&left, &hash);
            }
            size >>= 1;
        }
        self.peaks.push(hash);
        self.size += 1;
    }

    /// The Merkle Tree Hash of the leaves so far.
    pub fn root(&self) -> Hash {
        let mut peaks = self.peaks.iter().rev();
        let Some(last) = peaks.next() else {
            return super::empty_root();
        };
        peaks.fold(*last, |right, left| node_hash(left, &right))
    }
}
