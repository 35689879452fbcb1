//! Proofs of a 1,000,000-event book, generated from stored perfect-subtree
//! nodes and verified (issue 18, item 8: the proof side of "proofs for a
//! book of 1,000,000 events come back in under 10 ms at the 99th
//! percentile").
//!
//! `cargo bench -p talea-verify --bench proofs` appends `BENCH_LEAVES`
//! (1,000,000) leaves to a `MemoryLog`, then times `BENCH_PROOFS` (10,000)
//! inclusion proofs and as many consistency proofs at pseudo-random sizes,
//! each generated and then verified, and prints p50, p99 and max per kind in
//! microseconds, with the node reads per proof. This is the cost of the
//! algorithm over nodes already in memory: a server adds one read of
//! O(log n) stored nodes per proof.

use std::time::{Duration, Instant};

use talea_verify::Hash;
use talea_verify::merkle::{
    MemoryLog, Nodes, consistency_proof, inclusion_proof, leaf_hash, root, verify_consistency,
    verify_inclusion,
};

fn env_or(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A small xorshift generator: the same positions on every run.
struct Positions(u64);

impl Positions {
    /// A number in `1..=max`.
    fn next(&mut self, max: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % max + 1
    }
}

/// `MemoryLog`'s nodes, counting reads.
struct Counted<'a> {
    log: &'a MemoryLog,
    reads: std::cell::Cell<u64>,
}

impl Nodes for Counted<'_> {
    type Error = <MemoryLog as Nodes>::Error;

    fn node(&self, level: u32, index: u64) -> Result<Hash, Self::Error> {
        self.reads.set(self.reads.get() + 1);
        self.log.node(level, index)
    }
}

/// p50, p99 and max of `times`, in microseconds.
fn summary(times: &mut [Duration]) -> (f64, f64, f64) {
    times.sort();
    let at = |q: f64| {
        let i = ((times.len() as f64 - 1.0) * q).round() as usize;
        times[i].as_secs_f64() * 1e6
    };
    (at(0.5), at(0.99), at(1.0))
}

fn main() {
    let leaves = env_or("BENCH_LEAVES", 1_000_000);
    let proofs = env_or("BENCH_PROOFS", 10_000) as usize;
    let started = Instant::now();
    let mut log = MemoryLog::new();
    let mut leaf_hashes = Vec::with_capacity(leaves as usize);
    for i in 0..leaves {
        let leaf = leaf_hash(&i.to_be_bytes());
        leaf_hashes.push(leaf);
        log.append(leaf);
    }
    println!(
        "{leaves} leaves appended in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    let nodes = Counted {
        log: &log,
        reads: std::cell::Cell::new(0),
    };
    let mut positions = Positions(0x9E37_79B9_7F4A_7C15);

    let mut times = Vec::with_capacity(proofs);
    let mut hashes = 0;
    nodes.reads.set(0);
    for _ in 0..proofs {
        let size = positions.next(leaves);
        let index = positions.next(size) - 1;
        let t = Instant::now();
        let top = root(&nodes, size).expect("root");
        let path = inclusion_proof(&nodes, index, size).expect("inclusion proof");
        verify_inclusion(index, size, &leaf_hashes[index as usize], &path, &top)
            .expect("inclusion verifies");
        times.push(t.elapsed());
        hashes += path.len();
    }
    let reads = nodes.reads.get() as f64 / proofs as f64;
    let (p50, p99, max) = summary(&mut times);
    println!(
        "inclusion   (root + proof + verify): p50 {p50:.1} us, p99 {p99:.1} us, max {max:.1} us; \
         {:.1} hashes and {reads:.1} node reads per proof",
        hashes as f64 / proofs as f64
    );

    let mut times = Vec::with_capacity(proofs);
    let mut hashes = 0;
    nodes.reads.set(0);
    for _ in 0..proofs {
        let second = positions.next(leaves);
        let first = positions.next(second);
        let t = Instant::now();
        let first_root = root(&nodes, first).expect("first root");
        let second_root = root(&nodes, second).expect("second root");
        let proof = consistency_proof(&nodes, first, second).expect("consistency proof");
        verify_consistency(first, second, &first_root, &second_root, &proof)
            .expect("consistency verifies");
        times.push(t.elapsed());
        hashes += proof.len();
    }
    let reads = nodes.reads.get() as f64 / proofs as f64;
    let (p50, p99, max) = summary(&mut times);
    println!(
        "consistency (2 roots + proof + verify): p50 {p50:.1} us, p99 {p99:.1} us, max {max:.1} us; \
         {:.1} hashes and {reads:.1} node reads per proof",
        hashes as f64 / proofs as f64
    );
}
