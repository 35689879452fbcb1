//! One test per pitfall of "Broken Proofs of Solvency in Blockchain
//! Custodial Wallets and Exchanges": each attack is caught.

use talea_verify::files::{FileError, LiabilityProof, ProofError};
use talea_verify::liabilities::{self, LiabilityError, Refused, Side, Step, SumNode, SumTree};

use crate::example;

fn proof() -> LiabilityProof {
    let text = example::blocks()
        .into_iter()
        .find(|(n, _)| n == "liability-proof")
        .map(|(_, b)| b)
        .expect("block");
    LiabilityProof::parse(&text).expect("proof")
}

/// Truncated hashes: a path (or root) with a 16-byte hash is refused before
/// any hashing.
#[test]
fn truncated_hashes_are_refused() {
    let mut short_step = proof();
    short_step.path[0].hash.truncate(32);
    assert!(matches!(
        short_step.verify(),
        Err(ProofError::File(FileError::Hex { .. }))
    ));
    let mut short_root = proof();
    short_root.root.truncate(32);
    assert!(matches!(
        short_root.verify(),
        Err(ProofError::File(FileError::Hex { .. }))
    ));
}

/// Sums not bound: a prover who lowers a sibling's sum (to publish a smaller
/// total, or show each customer a different one) changes the root.
#[test]
fn sums_are_bound_in_every_node() {
    let honest = proof();
    let mut lowered = honest.clone();
    // Alice's leaf, Bob's sibling: halve her sum and the total with it.
    let sum: u128 = lowered.path[0].sum.parse().expect("sum");
    assert!(sum > 0);
    lowered.path[0].sum = (sum / 2).to_string();
    let total: u128 = honest.total.parse().expect("total");
    lowered.total = (total - (sum - sum / 2)).to_string();
    assert!(matches!(
        lowered.verify(),
        Err(ProofError::Liability(LiabilityError::RootMismatch))
    ));
    // The hash alone, with the honest sums, does not let the total change.
    let mut total_only = honest;
    total_only.total = (total - 1).to_string();
    assert!(matches!(
        total_only.verify(),
        Err(ProofError::Liability(LiabilityError::TotalMismatch { .. }))
    ));
}

/// Negative balances: they are refused from the tree and reported, never
/// netted; a proof cannot carry one.
#[test]
fn negative_balances_are_reported_never_netted() {
    let tree = SumTree::build(
        [9; 32],
        [
            ("customers:a".to_owned(), 100),
            ("customers:fake".to_owned(), -100),
        ],
    )
    .expect("tree");
    assert_eq!(tree.root().sum, 100);
    assert_eq!(
        tree.refused(),
        [Refused {
            account: "customers:fake".into(),
            balance: -100
        }]
    );
    let mut negative = proof();
    negative.balance = "-250000".into();
    assert!(matches!(
        negative.verify(),
        Err(ProofError::File(FileError::Field { .. }))
    ));
    let mut negative_sum = proof();
    negative_sum.path[0].sum = format!("-{}", negative_sum.path[0].sum);
    assert!(matches!(
        negative_sum.verify(),
        Err(ProofError::File(FileError::Field { .. }))
    ));
}

/// Reused leaf ids: two customers with equal balances cannot be shown one
/// leaf, since each leaf binds its account; and an account appears once.
#[test]
fn a_leaf_belongs_to_one_account() {
    let salt = [4; 32];
    let tree = SumTree::build(
        salt,
        [
            ("customers:x".to_owned(), 700),
            ("customers:y".to_owned(), 700),
        ],
    )
    .expect("tree");
    let root = tree.root();
    let (balance, path) = tree.proof("customers:x").expect("proof");
    assert_eq!(
        liabilities::verify(&salt, "customers:x", balance, &path, &root.hash, root.sum),
        Ok(())
    );
    assert_eq!(
        liabilities::verify(&salt, "customers:y", balance, &path, &root.hash, root.sum),
        Err(LiabilityError::RootMismatch)
    );
    let twice = SumTree::build(
        salt,
        [
            ("customers:x".to_owned(), 700),
            ("customers:x".to_owned(), 700),
        ],
    );
    assert!(matches!(twice, Err(LiabilityError::DuplicateAccount(_))));
}

/// Overflow: sums that wrap would let a huge fake balance hide a real one.
#[test]
fn sums_never_wrap() {
    let salt = [0; 32];
    let leaf = liabilities::leaf(&salt, "customers:a", 5).expect("leaf");
    let huge = Step {
        sibling: SumNode {
            hash: leaf.hash,
            sum: u128::MAX,
        },
        side: Side::Right,
    };
    assert_eq!(
        liabilities::verify(&salt, "customers:a", 5, &[huge], &leaf.hash, 4),
        Err(LiabilityError::Overflow)
    );
}
