//! Compact in-memory containers for the indexes: chunked vectors and fingerprint maps.
//!
//! Both exist to keep the write lock's worst case short as the log grows. A
//! plain `Vec` of ten million offsets doubles by copying 80 MB, and a plain
//! `HashMap` of ten million keys rehashes all of them at once, each under
//! the lock that every reader waits on. [`Chunked`] never copies more than
//! one chunk, and [`FpMap`] rehashes one shard of sixteen at a time.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// Entries per chunk of a [`Chunked`].
pub const CHUNK_ENTRIES: usize = 1 << 14;

/// A growable array stored in chunks of [`CHUNK_ENTRIES`]: indexing is two
/// loads, growth copies at most one chunk, and slack is at most one chunk
/// (or half of a short vector).
#[derive(Debug, Clone)]
pub struct Chunked<T> {
    chunks: Vec<Vec<T>>,
    len: usize,
}

impl<T> Default for Chunked<T> {
    fn default() -> Self {
        Self {
            chunks: Vec::new(),
            len: 0,
        }
    }
}

impl<T: Copy> Chunked<T> {
    /// Number of entries.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends an entry.
    pub fn push(&mut self, value: T) {
        match self.chunks.last_mut() {
            Some(last) if last.len() < CHUNK_ENTRIES => last.push(value),
            _ => self.chunks.push(vec![value]),
        }
        self.len += 1;
    }

    /// The entry at `index`, if any.
    pub fn get(&self, index: usize) -> Option<T> {
        self.chunks
            .get(index / CHUNK_ENTRIES)?
            .get(index % CHUNK_ENTRIES)
            .copied()
    }

    /// The index of the first entry for which `pred` is false, given that
    /// `pred` is true for a prefix of the entries and false after it.
    pub fn partition_point(&self, mut pred: impl FnMut(&T) -> bool) -> usize {
        // Whole chunks first (by their last entry), then within the chunk.
        let chunk = self
            .chunks
            .partition_point(|c| c.last().is_some_and(&mut pred));
        match self.chunks.get(chunk) {
            Some(c) => chunk * CHUNK_ENTRIES + c.partition_point(pred),
            None => self.len,
        }
    }

    /// Entries from `start` on, in order.
    pub fn iter_from(&self, start: usize) -> impl Iterator<Item = T> + '_ {
        let first = start / CHUNK_ENTRIES;
        let skip = start % CHUNK_ENTRIES;
        self.chunks
            .iter()
            .skip(first)
            .enumerate()
            .flat_map(move |(i, c)| c[if i == 0 { skip.min(c.len()) } else { 0 }..].iter())
            .copied()
    }

    /// Heap bytes held (capacity, not length).
    pub fn heap_bytes(&self) -> usize {
        self.chunks.capacity() * std::mem::size_of::<Vec<T>>()
            + self
                .chunks
                .iter()
                .map(|c| c.capacity() * std::mem::size_of::<T>())
                .sum::<usize>()
    }
}

/// A hasher for keys that are already uniformly random 64-bit fingerprints.
#[derive(Debug, Default, Clone, Copy)]
pub struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used; anything else still hashes deterministically.
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type Shard = HashMap<u64, u64, BuildHasherDefault<IdentityHasher>>;

/// Number of shards of an [`FpMap`].
const SHARDS: usize = 16;

/// A multimap from 64-bit fingerprints to values (seqs or offsets): a key
/// costs 16 bytes plus table slack instead of its text. Distinct keys may
/// share a fingerprint, so a lookup yields candidates that the caller
/// confirms against the record on disk.
#[derive(Debug, Clone)]
pub struct FpMap {
    shards: Vec<Shard>,
    /// Values beyond the first under a fingerprint (collisions: rare).
    overflow: HashMap<u64, Vec<u64>>,
}

impl Default for FpMap {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
            overflow: HashMap::new(),
        }
    }
}

impl FpMap {
    /// The shard of a fingerprint: middle bits, because the table uses the
    /// low bits for buckets and the top bits for its control tags.
    fn shard(fp: u64) -> usize {
        ((fp >> 32) as usize) % SHARDS
    }

    /// Adds a value under `fp`.
    pub fn insert(&mut self, fp: u64, value: u64) {
        let shard = &mut self.shards[Self::shard(fp)];
        if let std::collections::hash_map::Entry::Vacant(slot) = shard.entry(fp) {
            slot.insert(value);
        } else {
            self.overflow.entry(fp).or_default().push(value);
        }
    }

    /// Every value stored under `fp`, oldest first.
    pub fn candidates(&self, fp: u64) -> impl Iterator<Item = u64> + '_ {
        let first = self.shards[Self::shard(fp)].get(&fp).copied();
        // Overflow exists only under a fingerprint that has a first value.
        let more = first.and_then(|_| self.overflow.get(&fp));
        first.into_iter().chain(more.into_iter().flatten().copied())
    }

    /// Heap bytes held, estimated from capacities (16-byte entries and one
    /// control byte per bucket; a table of capacity c has about 8c/7 buckets).
    pub fn heap_bytes(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.capacity() * 8 / 7 * 17)
            .sum::<usize>()
            + self
                .overflow
                .values()
                .map(|v| 40 + v.capacity() * 8)
                .sum::<usize>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn chunked_behaves_like_a_vec(values in proptest::collection::vec(0..1000u64, 0..40_000)) {
            let mut sorted = values.clone();
            sorted.sort_unstable();
            let mut chunked = Chunked::default();
            for v in &sorted {
                chunked.push(*v);
            }
            prop_assert_eq!(chunked.len(), sorted.len());
            prop_assert_eq!(chunked.get(sorted.len().wrapping_sub(1)), sorted.last().copied());
            for probe in [0, 1, 499, 500, 999, 1000] {
                prop_assert_eq!(
                    chunked.partition_point(|v| *v <= probe),
                    sorted.partition_point(|v| *v <= probe)
                );
            }
            for start in [0, 1, CHUNK_ENTRIES - 1, CHUNK_ENTRIES, CHUNK_ENTRIES + 3, sorted.len()] {
                let got: Vec<u64> = chunked.iter_from(start).collect();
                let want: Vec<u64> = sorted.iter().skip(start).copied().collect();
                prop_assert_eq!(got, want);
            }
            for i in [0, sorted.len() / 2, sorted.len().saturating_sub(1), sorted.len()] {
                prop_assert_eq!(chunked.get(i), sorted.get(i).copied());
            }
        }
    }

    #[test]
    fn fingerprint_collisions_keep_every_value() {
        let mut map = FpMap::default();
        map.insert(7, 1);
        map.insert(7, 2);
        map.insert(7 << 32, 3);
        map.insert(7, 4);
        assert_eq!(map.candidates(7).collect::<Vec<_>>(), vec![1, 2, 4]);
        assert_eq!(map.candidates(7 << 32).collect::<Vec<_>>(), vec![3]);
        assert_eq!(map.candidates(8).count(), 0);
    }
}
