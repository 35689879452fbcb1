//! Merkle-sum trees against a naive recursive reference.

use super::*;
use proptest::prelude::*;

fn reference(leaves: &[SumNode]) -> SumNode {
    match leaves.len() {
        1 => leaves[0],
        n => {
            let k = split(n);
            node(&reference(&leaves[..k]), &reference(&leaves[k..])).expect("no overflow")
        }
    }
}

fn tree(n: usize) -> SumTree {
    SumTree::build(
        [3; 32],
        (0..n).map(|i| (format!("customers:{i:04}"), i as i128 * 10)),
    )
    .expect("tree")
}

#[test]
fn every_account_of_small_trees_proves_its_balance() {
    for n in 1..=40 {
        let t = tree(n);
        let root = t.root();
        let leaves: Vec<SumNode> = (0..n)
            .map(|i| leaf(&[3; 32], &format!("customers:{i:04}"), i as u128 * 10).expect("leaf"))
            .collect();
        assert_eq!(root, reference(&leaves));
        assert_eq!(root.sum, (0..n as u128).map(|i| i * 10).sum::<u128>());
        for i in 0..n {
            let account = format!("customers:{i:04}");
            let (balance, path) = t.proof(&account).expect("proof");
            assert_eq!(balance, i as u128 * 10);
            assert_eq!(
                verify(&[3; 32], &account, balance, &path, &root.hash, root.sum),
                Ok(())
            );
        }
    }
}

#[test]
fn negatives_are_reported_not_netted_and_input_order_does_not_matter() {
    let t = SumTree::build(
        [0; 32],
        [
            ("c".to_owned(), 5),
            ("a".to_owned(), -7),
            ("b".to_owned(), 0),
        ],
    )
    .expect("tree");
    assert_eq!(t.len(), 2);
    assert_eq!(t.root().sum, 5);
    assert_eq!(
        t.refused(),
        [Refused {
            account: "a".into(),
            balance: -7
        }]
    );
    assert!(matches!(
        t.proof("a"),
        Err(LiabilityError::UnknownAccount(_))
    ));
    let reordered =
        SumTree::build([0; 32], [("b".to_owned(), 0), ("c".to_owned(), 5)]).expect("tree");
    assert_eq!(reordered.root(), t.root());
}

#[test]
fn bad_snapshots_are_refused() {
    let dup = SumTree::build([0; 32], [("a".to_owned(), 1), ("a".to_owned(), 2)]);
    assert_eq!(
        dup.map(|t| t.len()),
        Err(LiabilityError::DuplicateAccount("a".into()))
    );
    let overflow = SumTree::build(
        [0; 32],
        [
            ("a".to_owned(), i128::MAX),
            ("b".to_owned(), i128::MAX),
            ("c".to_owned(), i128::MAX),
        ],
    );
    assert_eq!(overflow.map(|t| t.len()), Err(LiabilityError::Overflow));
    let empty_name = SumTree::build([0; 32], [(String::new(), 1)]);
    assert_eq!(
        empty_name.map(|t| t.len()),
        Err(LiabilityError::AccountLength)
    );
    let empty = SumTree::build([0; 32], Vec::new()).expect("empty");
    assert_eq!(empty.root().sum, 0);
}

#[test]
fn balances_parse_strictly() {
    assert_eq!(parse_balance("0"), Ok(0));
    assert_eq!(parse_balance("12345"), Ok(12345));
    assert_eq!(parse_balance(&u128::MAX.to_string()), Ok(u128::MAX));
    for bad in [
        "",
        "-1",
        "+1",
        "01",
        "1.5",
        "1e3",
        " 1",
        "340282366920938463463374607431768211456",
    ] {
        assert!(parse_balance(bad).is_err(), "{bad}");
    }
}

proptest! {
    #[test]
    fn proofs_verify_and_tampering_fails(
        balances in proptest::collection::btree_map("[a-z]{1,6}", 0i128..1_000_000, 1..60),
        pick in any::<prop::sample::Index>(),
        salt in any::<[u8; 32]>(),
    ) {
        let t = SumTree::build(salt, balances.clone()).expect("tree");
        let root = t.root();
        prop_assert_eq!(root.sum, balances.values().map(|b| *b as u128).sum::<u128>());
        let (account, _) = balances.iter().nth(pick.index(balances.len())).expect("pick");
        let (balance, path) = t.proof(account).expect("proof");
        prop_assert_eq!(verify(&salt, account, balance, &path, &root.hash, root.sum), Ok(()));
        prop_assert!(verify(&salt, account, balance + 1, &path, &root.hash, root.sum + 1).is_err());
        let mut other_salt = salt;
        other_salt[0] ^= 1;
        prop_assert!(verify(&other_salt, account, balance, &path, &root.hash, root.sum).is_err());
        if let Some(first) = path.first() {
            let mut bad = path.clone();
            bad[0].sibling.sum = first.sibling.sum.saturating_sub(1);
            prop_assert!(verify(&salt, account, balance, &bad, &root.hash, root.sum).is_err());
        }
    }
}
