//! Proof of liabilities: a Merkle-sum tree over the balances of one asset's
//! accounts at one seq, so each customer can check that their balance is
//! counted in the published total.
//!
//! - Leaf: `hash = SHA-256(0x00 || salt || len(account) as u32 BE || account
//!   || balance as u128 BE)`, `sum = balance`. The 32-byte salt is drawn at
//!   random per snapshot, so leaves cannot be linked across snapshots.
//! - Node: `hash = SHA-256(0x01 || left.hash || left.sum as u128 BE ||
//!   right.hash || right.sum as u128 BE)`, `sum = left.sum + right.sum`
//!   (checked: an overflow refuses the tree or the proof).
//! - Shape: leaves sorted by account (byte order of the UTF-8 name), each
//!   account at most once; the tree splits like RFC 9162's (the left subtree
//!   holds the largest power of two smaller than the count).
//! - The empty tree's root is `SHA-256("")` with sum 0.
//!
//! The paper "Broken Proofs of Solvency in Blockchain Custodial Wallets and
//! Exchanges" (Chalkias et al.) lists how such trees go wrong; each is
//! closed here and tested (`tests/it/pitfalls.rs`):
//! - *Truncated hashes* let a prover find collisions: every hash here is a
//!   full SHA-256, and proofs with shorter hashes are refused when parsed.
//! - *Sums not bound in the nodes* let a prover show each customer a
//!   different sibling sum: both children's sums are inside each node hash.
//! - *Negative balances* let a prover cancel real debts with fake negative
//!   accounts: balances are unsigned; negative ones are refused from the
//!   tree and reported in [`SumTree::refused`], never netted.
//! - *Reused leaf ids* let two customers with equal balances be shown the
//!   same leaf: each leaf binds its account name, and an account appears
//!   once.

use crate::hash::{Hash, sha256};
use crate::merkle::PROOF_HASHES_MAX;

/// The longest account name a leaf binds, in bytes.
pub const ACCOUNT_BYTES_MAX: usize = 1024;

/// The most decimal digits of a balance: u128 holds 39.
pub const BALANCE_DIGITS_MAX: usize = 39;

/// A hash with the sum of the balances under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SumNode {
    /// The node's hash.
    pub hash: Hash,
    /// The sum of the balances of the leaves under it (minor units).
    pub sum: u128,
}

/// Why a tree or proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LiabilityError {
    /// The account name is empty or longer than [`ACCOUNT_BYTES_MAX`].
    #[error("an account name must be 1 to {ACCOUNT_BYTES_MAX} bytes")]
    AccountLength,
    /// The same account appears twice in a snapshot.
    #[error("account {0:?} appears more than once")]
    DuplicateAccount(String),
    /// Sums overflow u128.
    #[error("the sums overflow")]
    Overflow,
    /// A balance's text is not a non-negative integer of minor units.
    #[error("{0:?} is not a non-negative integer amount of minor units")]
    BadAmount(String),
    /// The account is not in the tree.
    #[error("account {0:?} is not in the snapshot")]
    UnknownAccount(String),
    /// A proof's path is longer than any tree's.
    #[error("the path holds {0} steps, more than any tree has")]
    PathTooLong(usize),
    /// The recomputed root hash is not the published one.
    #[error("the proof does not lead to the published root hash")]
    RootMismatch,
    /// The recomputed total is not the published one.
    #[error("the proof leads to the root, but its total {found} is not the published {published}")]
    TotalMismatch {
        /// The total the path gives.
        found: u128,
        /// The published total.
        published: u128,
    },
}

/// Parses a balance: decimal digits only, no sign, no leading zero (but
/// "0"), as talea writes amounts in minor units.
pub fn parse_balance(text: &str) -> Result<u128, LiabilityError> {
    let bad = || LiabilityError::BadAmount(text.chars().take(48).collect());
    let digits_only = !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit());
    if !digits_only || text.len() > BALANCE_DIGITS_MAX || (text.len() > 1 && text.starts_with('0'))
    {
        return Err(bad());
    }
    text.parse().map_err(|_| bad())
}

/// The leaf of `account` with `balance` under `salt`.
pub fn leaf(salt: &[u8; 32], account: &str, balance: u128) -> Result<SumNode, LiabilityError> {
    if account.is_empty() || account.len() > ACCOUNT_BYTES_MAX {
        return Err(LiabilityError::AccountLength);
    }
    let len = (account.len() as u32).to_be_bytes();
    let hash = sha256(&[
        &[0x00],
        salt,
        &len,
        account.as_bytes(),
        &balance.to_be_bytes(),
    ]);
    Ok(SumNode { hash, sum: balance })
}

/// The parent of `left` and `right`.
pub fn node(left: &SumNode, right: &SumNode) -> Result<SumNode, LiabilityError> {
    let sum = left
        .sum
        .checked_add(right.sum)
        .ok_or(LiabilityError::Overflow)?;
    let hash = sha256(&[
        &[0x01],
        &left.hash,
        &left.sum.to_be_bytes(),
        &right.hash,
        &right.sum.to_be_bytes(),
    ]);
    Ok(SumNode { hash, sum })
}

/// An account left out of the tree because its balance is negative.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The account.
    pub account: String,
    /// Its (negative) balance in minor units.
    pub balance: i128,
}

/// Which side of the path's running node a sibling sits on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The sibling is the left child.
    Left,
    /// The sibling is the right child.
    Right,
}

/// One step of a liability proof: a sibling and its side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The sibling's hash and sum.
    pub sibling: SumNode,
    /// Its side.
    pub side: Side,
}

/// A Merkle-sum tree over one snapshot's balances.
#[derive(Debug, Clone)]
pub struct SumTree {
    salt: [u8; 32],
    /// Accounts in leaf order (sorted).
    accounts: Vec<String>,
    /// `levels[l][i]`: the perfect subtree of 2^l leaves starting at i·2^l.
    levels: Vec<Vec<SumNode>>,
    root: SumNode,
    refused: Vec<Refused>,
}

impl SumTree {
    /// Builds the tree of `balances` (account, minor units) under `salt`,
    /// a fresh 32-byte random value per snapshot. Negative balances go to
    /// [`Self::refused`]; a repeated account, a bad name or an overflowing
    /// total refuses the whole snapshot.
    pub fn build<I>(salt: [u8; 32], balances: I) -> Result<Self, LiabilityError>
    where
        I: IntoIterator<Item = (String, i128)>,
    {
        let mut rows: Vec<(String, i128)> = balances.into_iter().collect();
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        if let Some(pair) = rows.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(LiabilityError::DuplicateAccount(pair[0].0.clone()));
        }
        let (kept, refused): (Vec<_>, Vec<_>) = rows.into_iter().partition(|(_, b)| *b >= 0);
        let mut leaves = Vec::with_capacity(kept.len());
        let mut accounts = Vec::with_capacity(kept.len());
        for (account, balance) in kept {
            leaves.push(leaf(&salt, &account, balance.unsigned_abs())?);
            accounts.push(account);
        }
        let mut tree = Self {
            salt,
            accounts,
            levels: perfect_levels(leaves)?,
            root: SumNode {
                hash: sha256(&[]),
                sum: 0,
            },
            refused: refused
                .into_iter()
                .map(|(account, balance)| Refused { account, balance })
                .collect(),
        };
        if !tree.accounts.is_empty() {
            // Computing the root here refuses a total that overflows.
            tree.root = tree.range_root(0, tree.accounts.len())?;
        }
        Ok(tree)
    }

    /// The snapshot's salt (published only inside each customer's proof).
    pub fn salt(&self) -> &[u8; 32] {
        &self.salt
    }

    /// How many accounts the tree holds.
    pub fn len(&self) -> usize {
        self.accounts.len()
    }

    /// Whether the tree holds no account.
    pub fn is_empty(&self) -> bool {
        self.accounts.is_empty()
    }

    /// The accounts refused for a negative balance, sorted by account.
    pub fn refused(&self) -> &[Refused] {
        &self.refused
    }

    /// The root: its hash and the total of the balances in the tree.
    pub fn root(&self) -> SumNode {
        self.root
    }

    /// The path from `account`'s leaf to the root, nearest sibling first,
    /// with the account's balance.
    pub fn proof(&self, account: &str) -> Result<(u128, Vec<Step>), LiabilityError> {
        let index = self
            .accounts
            .binary_search_by(|a| a.as_str().cmp(account))
            .map_err(|_| LiabilityError::UnknownAccount(account.to_owned()))?;
        let (mut start, mut end) = (0, self.accounts.len());
        let mut top_down = Vec::new();
        while end - start > 1 {
            let k = split(end - start);
            let step = if index < start + k {
                let right = self.range_root(start + k, end)?;
                end = start + k;
                Step {
                    sibling: right,
                    side: Side::Right,
                }
            } else {
                let left = self.range_root(start, start + k)?;
                start += k;
                Step {
                    sibling: left,
                    side: Side::Left,
                }
            };
            top_down.push(step);
        }
        top_down.reverse();
        Ok((self.levels[0][index].sum, top_down))
    }

    fn range_root(&self, start: usize, end: usize) -> Result<SumNode, LiabilityError> {
        let n = end - start;
        if n.is_power_of_two() && start.is_multiple_of(n) {
            let level = n.trailing_zeros() as usize;
            return Ok(self.levels[level][start >> level]);
        }
        let k = split(n);
        node(
            &self.range_root(start, start + k)?,
            &self.range_root(start + k, end)?,
        )
    }
}

/// The largest power of two strictly smaller than `n >= 2`.
fn split(n: usize) -> usize {
    1usize << (usize::BITS - 1 - (n - 1).leading_zeros())
}

/// Every perfect subtree, level by level, from the leaves up.
fn perfect_levels(leaves: Vec<SumNode>) -> Result<Vec<Vec<SumNode>>, LiabilityError> {
    let mut levels = vec![leaves];
    while let Some(below) = levels.last().filter(|l| l.len() >= 2) {
        let above = below
            .chunks_exact(2)
            .map(|pair| node(&pair[0], &pair[1]))
            .collect::<Result<Vec<_>, _>>()?;
        levels.push(above);
    }
    Ok(levels)
}

/// Verifies that `account` with `balance` under `salt` is a leaf of the tree
/// whose root is `root` and whose total is `total`.
pub fn verify(
    salt: &[u8; 32],
    account: &str,
    balance: u128,
    path: &[Step],
    root: &Hash,
    total: u128,
) -> Result<(), LiabilityError> {
    if path.len() > PROOF_HASHES_MAX {
        return Err(LiabilityError::PathTooLong(path.len()));
    }
    let mut running = leaf(salt, account, balance)?;
    for step in path {
        running = match step.side {
            Side::Left => node(&step.sibling, &running)?,
            Side::Right => node(&running, &step.sibling)?,
        };
    }
    if &running.hash != root {
        return Err(LiabilityError::RootMismatch);
    }
    if running.sum != total {
        return Err(LiabilityError::TotalMismatch {
            found: running.sum,
            published: total,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests;
