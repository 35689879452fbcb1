//! Signed liability snapshots: the ledger's statement "at seq S of book B,
//! the accounts under prefix P holding asset A sum to T, with Merkle-sum
//! root R; these accounts were refused for a negative balance", signed with
//! the same Ed25519 key as checkpoints (`docs/proofs.md`, "Proof of
//! liabilities").
//!
//! The signed message is UTF-8 text, twelve lines each ending in `\n`:
//!
//! ```text
//! talea-liabilities v1
//! <book>
//! <snapshot id>
//! <asset>
//! <scale, decimal>
//! <prefix>
//! <seq, decimal>
//! <root, 64 lowercase hex digits>
//! <total, minor units, decimal>
//! <accounts in the tree, decimal>
//! <refused digest, 64 lowercase hex digits>
//! <timestamp, YYYY-MM-DDTHH:MM:SS.ffffffZ>
//! ```
//!
//! The refused digest is SHA-256 of the refused list, each entry written
//! `<account> <balance>\n` exactly as the snapshot document shows it (the
//! balance a decimal at the asset's scale), in the document's order; the
//! empty list's digest is SHA-256 of nothing. So the signature binds the
//! negative balances the ledger reported as well as the total.

use serde::{Deserialize, Serialize};

use crate::checkpoint::{
    BOOK_BYTES_MAX, CheckpointError, KeyList, PublicKey, SigningKey, check_timestamp,
};
use crate::hash::{Hash, parse_hash, sha256, to_hex};
use crate::liabilities::parse_balance;

/// The first line of every snapshot message: the format and its version.
pub const LIABILITIES_HEADER: &str = "talea-liabilities v1";

/// An account refused from the tree for its negative balance.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefusedAccount {
    /// The account.
    pub account: String,
    /// Its normal-side balance, a negative decimal at the asset's scale.
    pub balance: String,
}

/// A signed liability snapshot, as `POST /v1/books/{book}/liabilities`
/// answers and `GET /v1/books/{book}/liabilities/{snapshot}` serves it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiabilitySnapshot {
    /// The snapshot's id.
    pub snapshot: String,
    /// The book.
    pub book: String,
    /// The asset.
    pub asset: String,
    /// The asset's scale: minor units per unit are 10^scale.
    pub scale: u32,
    /// The prefix of the accounts taken.
    pub prefix: String,
    /// The book's last seq at the cut: balances after events 1..=seq.
    pub seq: u64,
    /// The Merkle-sum root hash, lowercase hex.
    pub root: String,
    /// The sum of the balances in the tree, minor units as a decimal string
    /// (what proofs carry and `talea verify liability --total` takes).
    pub total: String,
    /// The same total as a decimal at the asset's scale, for people.
    pub total_amount: String,
    /// How many accounts the tree holds.
    pub accounts: u64,
    /// The accounts left out for a negative balance, by name.
    pub refused: Vec<RefusedAccount>,
    /// When the snapshot was signed, `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
    pub timestamp: String,
    /// The signing key's id.
    pub key_id: String,
    /// The Ed25519 signature of [`LiabilitySnapshot::message`], lowercase hex.
    pub signature: String,
}

fn check_field(field: &'static str, text: &str) -> Result<(), CheckpointError> {
    let bad = text.is_empty() || text.len() > BOOK_BYTES_MAX || text.chars().any(char::is_control);
    match bad {
        true => Err(CheckpointError::BadField(field)),
        false => Ok(()),
    }
}

/// The digest of a refused list (see the module's documentation).
pub fn refused_digest(refused: &[RefusedAccount]) -> Hash {
    let text: String = refused
        .iter()
        .map(|r| format!("{} {}\n", r.account, r.balance))
        .collect();
    sha256(&[text.as_bytes()])
}

impl LiabilitySnapshot {
    /// The root hash as bytes.
    pub fn root_hash(&self) -> Result<Hash, CheckpointError> {
        parse_hash(&self.root).map_err(|source| CheckpointError::Hex {
            field: "root",
            source,
        })
    }

    /// The total in minor units.
    pub fn total_minor(&self) -> Result<u128, CheckpointError> {
        parse_balance(&self.total).map_err(|_| CheckpointError::BadField("total"))
    }

    /// The message the signature covers, after checking every field it holds.
    pub fn message(&self) -> Result<String, CheckpointError> {
        check_field("book", &self.book)?;
        check_field("snapshot", &self.snapshot)?;
        check_field("asset", &self.asset)?;
        check_field("prefix", &self.prefix)?;
        check_timestamp(&self.timestamp)?;
        for r in &self.refused {
            check_field("refused account", &r.account)?;
            check_field("refused balance", &r.balance)?;
        }
        let root = to_hex(&self.root_hash()?);
        let total = self.total_minor()?;
        Ok(format!(
            "{LIABILITIES_HEADER}\n{}\n{}\n{}\n{}\n{}\n{}\n{root}\n{total}\n{}\n{}\n{}\n",
            self.book,
            self.snapshot,
            self.asset,
            self.scale,
            self.prefix,
            self.seq,
            self.accounts,
            to_hex(&refused_digest(&self.refused)),
            self.timestamp,
        ))
    }

    /// Signs the snapshot with `key`: sets `key_id` and `signature`.
    pub fn sign(mut self, key: &SigningKey) -> Result<Self, CheckpointError> {
        self.key_id = key.key_id();
        self.signature = key.sign_text(&self.message()?);
        Ok(self)
    }

    /// Verifies the signature with the key of the list named by `key_id`.
    pub fn verify(&self, keys: &KeyList) -> Result<(), CheckpointError> {
        self.verify_with(keys.find(&self.key_id)?)
    }

    /// Verifies the signature with `key` (whose id must be the snapshot's).
    pub fn verify_with(&self, key: &PublicKey) -> Result<(), CheckpointError> {
        key.verify_signed(&self.key_id, &self.message()?, &self.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unsigned() -> LiabilitySnapshot {
        LiabilitySnapshot {
            snapshot: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
            book: "exchange".into(),
            asset: "BTC".into(),
            scale: 8,
            prefix: "customers:".into(),
            seq: 3,
            root: "efc0420b7ff5d14ccc263682d991b927c728cb04fe81713470779020b3871293".into(),
            total: "1750000".into(),
            total_amount: "0.0175".into(),
            accounts: 3,
            refused: vec![RefusedAccount {
                account: "customers:mallory".into(),
                balance: "-0.0009".into(),
            }],
            timestamp: "2026-12-07T12:00:00.000000Z".into(),
            key_id: String::new(),
            signature: String::new(),
        }
    }

    #[test]
    fn the_message_has_twelve_lines_and_binds_the_refused_list() {
        let message = unsigned().message().expect("message");
        let lines: Vec<&str> = message.split_terminator('\n').collect();
        assert_eq!(lines.len(), 12);
        assert_eq!(lines[0], LIABILITIES_HEADER);
        assert_eq!(lines[8], "1750000");
        let digest = sha256(&[b"customers:mallory -0.0009\n"]);
        assert_eq!(lines[10], to_hex(&digest));
        assert!(message.ends_with("2026-12-07T12:00:00.000000Z\n"));
    }

    #[test]
    fn a_signed_snapshot_verifies_and_any_change_fails() {
        let key = SigningKey::from_seed(&[1; 32]);
        let keys = KeyList {
            keys: vec![key.public_key()],
        };
        let signed = unsigned().sign(&key).expect("sign");
        signed.verify(&keys).expect("verifies");
        let changes: [fn(&mut LiabilitySnapshot); 6] = [
            |s| s.total = "1750001".into(),
            |s| s.refused.clear(),
            |s| s.prefix = "customers:a".into(),
            |s| s.seq = 4,
            |s| s.scale = 2,
            |s| s.snapshot = "other".into(),
        ];
        for change in changes {
            let mut forged = signed.clone();
            change(&mut forged);
            assert_eq!(forged.verify(&keys), Err(CheckpointError::BadSignature));
        }
        let mut line = signed.clone();
        line.prefix = "customers:\nx".into();
        assert_eq!(line.verify(&keys), Err(CheckpointError::BadField("prefix")));
        let other = KeyList {
            keys: vec![SigningKey::from_seed(&[2; 32]).public_key()],
        };
        assert!(matches!(
            signed.verify(&other),
            Err(CheckpointError::UnknownKey(_))
        ));
    }
}
