//! The tree against a naive recursive reference (RFC 9162's definitions as
//! written), the CT test vectors, exhaustive small sizes and proptests.

use super::*;
use crate::hash::to_hex;
use proptest::prelude::*;

/// MTH(D[n]) exactly as RFC 9162 §2.1.1 defines it.
fn reference_root(leaves: &[Hash]) -> Hash {
    match leaves.len() {
        0 => empty_root(),
        1 => leaves[0],
        n => {
            let k = split(n as u64) as usize;
            node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
        }
    }
}

/// PATH(m, D[n]) as RFC 9162 §2.1.3.1 defines it.
fn reference_path(m: usize, leaves: &[Hash]) -> Vec<Hash> {
    let n = leaves.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = split(n as u64) as usize;
    let mut path;
    if m < k {
        path = reference_path(m, &leaves[..k]);
        path.push(reference_root(&leaves[k..]));
    } else {
        path = reference_path(m - k, &leaves[k..]);
        path.push(reference_root(&leaves[..k]));
    }
    path
}

/// SUBPROOF(m, D[n], b) as RFC 9162 §2.1.4.1 defines it.
fn reference_subproof(m: usize, leaves: &[Hash], whole: bool) -> Vec<Hash> {
    let n = leaves.len();
    if m == n {
        return match whole {
            true => Vec::new(),
            false => vec![reference_root(leaves)],
        };
    }
    let k = split(n as u64) as usize;
    let mut proof;
    if m <= k {
        proof = reference_subproof(m, &leaves[..k], whole);
        proof.push(reference_root(&leaves[k..]));
    } else {
        proof = reference_subproof(m - k, &leaves[k..], false);
        proof.push(reference_root(&leaves[..k]));
    }
    proof
}

fn log_of(n: usize) -> (MemoryLog, Vec<Hash>) {
    let mut log = MemoryLog::new();
    let leaves: Vec<Hash> = (0..n as u64).map(|i| leaf_hash(&i.to_be_bytes())).collect();
    for leaf in &leaves {
        log.append(*leaf);
    }
    (log, leaves)
}

fn flip(hash: &mut Hash) {
    hash[0] ^= 1;
}

#[test]
fn ct_test_vectors() {
    // The leaves and roots of certificate-transparency-go's merkle tests.
    let data: [&[u8]; 8] = [
        b"",
        &[0x00],
        &[0x10],
        &[0x20, 0x21],
        &[0x30, 0x31],
        &[0x40, 0x41, 0x42, 0x43],
        &[0x50, 0x51, 0x52, 0x53, 0x54, 0x55, 0x56, 0x57],
        &[
            0x60, 0x61, 0x62, 0x63, 0x64, 0x65, 0x66, 0x67, 0x68, 0x69, 0x6a, 0x6b, 0x6c, 0x6d,
            0x6e, 0x6f,
        ],
    ];
    let roots = [
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    ];
    let mut log = MemoryLog::new();
    assert_eq!(
        to_hex(&log.root()),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    for (d, expected) in data.iter().zip(roots) {
        log.append_data(d);
        assert_eq!(to_hex(&log.root()), expected, "size {}", log.len());
    }
}

#[test]
fn appends_report_the_nodes_they_complete() {
    let mut log = MemoryLog::new();
    let counts: Vec<usize> = (0..8u8).map(|i| log.append_data(&[i]).len()).collect();
    assert_eq!(counts, [1, 2, 1, 3, 1, 2, 1, 4]);
    let last = log.append_data(&[8]);
    assert_eq!((last[0].level, last[0].index), (0, 8));
    assert_eq!(log.node(3, 0), Ok(log.root_of(8)));
    assert_eq!(log.node(1, 5), Err(MissingNode { level: 1, index: 5 }));
}

impl MemoryLog {
    fn root_of(&self, size: u64) -> Hash {
        root(self, size).expect("root")
    }
}

#[test]
fn sizes_1_to_64_exhaustively() {
    let (log, leaves) = log_of(64);
    for n in 1..=64usize {
        let r = reference_root(&leaves[..n]);
        assert_eq!(log.root_of(n as u64), r, "root of {n}");
        for m in 0..n {
            let path = inclusion_proof(&log, m as u64, n as u64).expect("path");
            assert_eq!(path, reference_path(m, &leaves[..n]), "path {m} of {n}");
            assert_eq!(
                verify_inclusion(m as u64, n as u64, &leaves[m], &path, &r),
                Ok(())
            );
            assert_tampered_inclusion_fails(m as u64, n as u64, &leaves[m], &path, &r);
        }
        for m in 1..=n {
            let first = reference_root(&leaves[..m]);
            let proof = consistency_proof(&log, m as u64, n as u64).expect("proof");
            assert_eq!(proof, reference_subproof(m, &leaves[..n], true), "{m}..{n}");
            assert_eq!(
                verify_consistency(m as u64, n as u64, &first, &r, &proof),
                Ok(())
            );
            assert_tampered_consistency_fails(m as u64, n as u64, &first, &r, &proof);
        }
    }
}

fn assert_tampered_inclusion_fails(m: u64, n: u64, leaf: &Hash, path: &[Hash], r: &Hash) {
    for i in 0..path.len() {
        let mut bad = path.to_vec();
        flip(&mut bad[i]);
        assert!(verify_inclusion(m, n, leaf, &bad, r).is_err());
        let mut short = path.to_vec();
        short.remove(i);
        assert!(verify_inclusion(m, n, leaf, &short, r).is_err());
    }
    let mut long = path.to_vec();
    long.push(*r);
    assert!(verify_inclusion(m, n, leaf, &long, r).is_err());
    let mut bad_leaf = *leaf;
    flip(&mut bad_leaf);
    assert!(verify_inclusion(m, n, &bad_leaf, path, r).is_err());
    if n > 1 {
        assert!(verify_inclusion((m + 1) % n, n, leaf, path, r).is_err());
    }
    assert!(verify_inclusion(n, n, leaf, path, r).is_err());
}

fn assert_tampered_consistency_fails(m: u64, n: u64, first: &Hash, second: &Hash, p: &[Hash]) {
    for i in 0..p.len() {
        let mut bad = p.to_vec();
        flip(&mut bad[i]);
        assert!(verify_consistency(m, n, first, second, &bad).is_err());
    }
    if !p.is_empty() {
        assert!(verify_consistency(m, n, first, second, &p[1..]).is_err());
        assert!(verify_consistency(m, n, first, second, &p[..p.len() - 1]).is_err());
    }
    let mut long = p.to_vec();
    long.push(*second);
    assert!(verify_consistency(m, n, first, second, &long).is_err());
    let (mut f, mut s) = (*first, *second);
    flip(&mut f);
    flip(&mut s);
    assert!(verify_consistency(m, n, &f, second, p).is_err());
    assert!(verify_consistency(m, n, first, &s, p).is_err());
}

#[test]
fn bad_sizes_are_refused_without_panicking() {
    let (log, leaves) = log_of(5);
    let r = log.root();
    assert!(matches!(
        inclusion_proof(&log, 5, 5),
        Err(ProveError::IndexOutOfRange { index: 5, size: 5 })
    ));
    assert!(matches!(
        consistency_proof(&log, 0, 5),
        Err(ProveError::BadSizes { .. })
    ));
    assert!(matches!(
        consistency_proof(&log, 6, 5),
        Err(ProveError::BadSizes { .. })
    ));
    // Beyond the log: the store says which node is missing.
    assert!(matches!(
        inclusion_proof(&log, 0, 9),
        Err(ProveError::Nodes(MissingNode { .. }))
    ));
    assert_eq!(
        verify_inclusion(u64::MAX, u64::MAX, &leaves[0], &[], &r),
        Err(VerifyError::IndexOutOfRange {
            index: u64::MAX,
            size: u64::MAX
        })
    );
    assert!(verify_inclusion(0, u64::MAX, &leaves[0], &[r; 64], &r).is_err());
    assert!(verify_inclusion(0, 1, &leaves[0], &[r; 70], &r).is_err());
    assert_eq!(
        verify_consistency(0, 0, &r, &r, &[]),
        Err(VerifyError::BadSizes {
            first: 0,
            second: 0
        })
    );
    assert!(verify_consistency(3, u64::MAX, &r, &r, &[r; 65]).is_err());
    assert!(verify_consistency(u64::MAX - 1, u64::MAX, &r, &r, &[r; 3]).is_err());
    assert_eq!(verify_consistency(5, 5, &r, &r, &[]), Ok(()));
    assert!(verify_consistency(5, 5, &r, &r, &[r]).is_err());
}

/// A store that makes up its nodes and counts the reads: proofs at a
/// million leaves read O(log n) nodes.
#[derive(Debug, Default)]
struct Counting {
    reads: std::cell::Cell<u64>,
}

impl Nodes for Counting {
    type Error = MissingNode;
    fn node(&self, level: u32, index: u64) -> Result<Hash, MissingNode> {
        self.reads.set(self.reads.get() + 1);
        Ok(sha256(&[&level.to_be_bytes(), &index.to_be_bytes()]))
    }
}

use crate::hash::sha256;

#[test]
fn a_million_leaves_take_few_node_reads() {
    let store = Counting::default();
    let n = 1_000_000u64;
    let path = inclusion_proof(&store, 765_432, n).expect("path");
    assert!(path.len() <= 20);
    let proof = consistency_proof(&store, 654_321, n).expect("proof");
    assert!(proof.len() <= 40);
    assert!(
        store.reads.get() < 20 * 20 * 2,
        "{} reads",
        store.reads.get()
    );
}

proptest! {
    #[test]
    fn proofs_match_the_reference_and_verify(
        n in 1usize..600,
        picks in proptest::collection::vec(any::<prop::sample::Index>(), 1..4),
    ) {
        let (log, leaves) = log_of(n);
        let r = reference_root(&leaves);
        prop_assert_eq!(log.root(), r);
        for pick in picks {
            let m = pick.index(n);
            let path = inclusion_proof(&log, m as u64, n as u64).expect("path");
            prop_assert_eq!(&path, &reference_path(m, &leaves));
            prop_assert_eq!(verify_inclusion(m as u64, n as u64, &leaves[m], &path, &r), Ok(()));
            let first_size = m + 1;
            let first = reference_root(&leaves[..first_size]);
            let proof = consistency_proof(&log, first_size as u64, n as u64).expect("proof");
            prop_assert_eq!(&proof, &reference_subproof(first_size, &leaves, true));
            prop_assert_eq!(
                verify_consistency(first_size as u64, n as u64, &first, &r, &proof),
                Ok(())
            );
            if let Some(h) = proof.first() {
                let mut bad = proof.clone();
                bad[0] = node_hash(h, h);
                prop_assert!(verify_consistency(first_size as u64, n as u64, &first, &r, &bad).is_err());
            }
        }
    }

    #[test]
    fn arbitrary_proofs_never_panic(
        index in any::<u64>(),
        first in any::<u64>(),
        size in any::<u64>(),
        hashes in proptest::collection::vec(any::<[u8; 32]>(), 0..70),
        leaf in any::<[u8; 32]>(),
        root in any::<[u8; 32]>(),
    ) {
        let _ = verify_inclusion(index, size, &leaf, &hashes, &root);
        let _ = verify_consistency(first, size, &leaf, &root, &hashes);
        let _ = verify_inclusion(index % 100, size % 100, &leaf, &hashes, &root);
        let _ = verify_consistency(first % 100, size % 100, &leaf, &root, &hashes);
    }
}

#[test]
fn the_frontier_agrees_with_the_log() {
    let (log, leaves) = log_of(200);
    let mut frontier = Frontier::new();
    assert_eq!(frontier.root(), empty_root());
    for (i, leaf) in leaves.iter().enumerate() {
        frontier.append(*leaf);
        assert_eq!(frontier.size(), i as u64 + 1);
        assert_eq!(frontier.root(), log.root_of(i as u64 + 1));
    }
}
