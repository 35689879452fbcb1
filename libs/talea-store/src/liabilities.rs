//! Liability snapshots as a store keeps them (`docs/proofs.md`, "Proof of
//! liabilities"): the signed summary and the balances the tree was built
//! from, enough to rebuild it exactly and serve any account's proof.

use talea_core::{AccountName, AssetCode, BookName, Timestamp};

use crate::StoreError;

/// One kept liability snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiabilitySnapshot {
    /// The book.
    pub book: BookName,
    /// The snapshot's id (unique per book; the ledger draws a UUID).
    pub id: String,
    /// The asset.
    pub asset: AssetCode,
    /// The prefix of the accounts taken.
    pub prefix: String,
    /// The book's last seq at the cut.
    pub seq: u64,
    /// The per-snapshot random salt of the leaves.
    pub salt: [u8; 32],
    /// The Merkle-sum root hash.
    pub root: [u8; 32],
    /// The root's sum: the total of the non-negative balances, minor units.
    pub total: u128,
    /// When it was signed (µs, the signed text's precision).
    pub timestamp: Timestamp,
    /// The signing key's id.
    pub key_id: String,
    /// The Ed25519 signature of the snapshot message.
    pub signature: [u8; 64],
    /// Every account under the prefix holding the asset at the cut, by
    /// name, with its normal-side balance in minor units; the negative ones
    /// are those the tree refused.
    pub balances: Vec<(AccountName, i128)>,
}

/// The balances as one text: `name=balance` pairs joined by `,` (neither
/// character can appear in an account name), as the SQL stores and the
/// log store's sidecar keep them.
pub fn balances_text(balances: &[(AccountName, i128)]) -> String {
    let mut text = String::with_capacity(balances.len() * 32);
    for (i, (account, balance)) in balances.iter().enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(account.as_str());
        text.push('=');
        text.push_str(&balance.to_string());
    }
    text
}

/// Reads [`balances_text`] back.
pub fn parse_balances_text(text: &str) -> Result<Vec<(AccountName, i128)>, StoreError> {
    if text.is_empty() {
        return Ok(Vec::new());
    }
    text.split(',')
        .map(|pair| {
            let bad = || StoreError::Corrupt(format!("a snapshot balance {pair:?} is malformed"));
            let (name, balance) = pair.rsplit_once('=').ok_or_else(bad)?;
            Ok((
                AccountName::parse(name).map_err(|_| bad())?,
                balance.parse().map_err(|_| bad())?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balances_text_round_trips() {
        let balances = vec![
            (AccountName::parse("customers:a.b_c-d").expect("name"), -5),
            (AccountName::parse("customers:z").expect("name"), i128::MAX),
        ];
        let text = balances_text(&balances);
        assert_eq!(parse_balances_text(&text).expect("parse"), balances);
        assert_eq!(parse_balances_text("").expect("empty"), vec![]);
        assert!(parse_balances_text("a=1,").is_err());
        assert!(parse_balances_text("a=x").is_err());
    }
}
