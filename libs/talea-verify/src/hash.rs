//! The 32-byte SHA-256 digest every structure here is built from, and its
//! lowercase-hex text form.

use sha2::{Digest, Sha256};

/// A full SHA-256 digest. Never truncated anywhere in talea's proofs.
pub type Hash = [u8; 32];

/// Length in hex characters of a [`Hash`](type@Hash) as text.
pub const HASH_HEX_LEN: usize = 64;

/// A hash's text was not 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected {HASH_HEX_LEN} lowercase hex digits (a full SHA-256), got {got:?}")]
pub struct HexError {
    /// The offending text, cut to a readable length.
    pub got: String,
}

/// SHA-256 over the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> Hash {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part);
    }
    hasher.finalize().into()
}

/// Lowercase hex of `bytes`.
pub fn to_hex(bytes: &[u8]) -> String {
    hex::encode(bytes)
}

/// Parses exactly `N` bytes from lowercase hex: uppercase, odd lengths,
/// other lengths (a truncated hash among them) are refused.
pub fn parse_hex<const N: usize>(text: &str) -> Result<[u8; N], HexError> {
    let refuse = || HexError {
        got: text.chars().take(80).collect(),
    };
    if text.len() != 2 * N || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(refuse());
    }
    let mut out = [0u8; N];
    hex::decode_to_slice(text, &mut out).map_err(|_| refuse())?;
    Ok(out)
}

/// Parses a [`Hash`](type@Hash) from 64 lowercase hex digits.
pub fn parse_hash(text: &str) -> Result<Hash, HexError> {
    parse_hex::<32>(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_refuses_bad_text() {
        let h = sha256(&[b"abc"]);
        assert_eq!(
            to_hex(&h),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_hash(&to_hex(&h)), Ok(h));
        assert!(parse_hash(&to_hex(&h).to_uppercase()).is_err());
        assert!(parse_hash(&to_hex(&h[..16])).is_err());
        assert!(parse_hash("zz").is_err());
        assert!(parse_hash(&"g".repeat(64)).is_err());
    }
}
