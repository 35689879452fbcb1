//! Stored values back into domain values, for every backend: a value that cannot be one is `Corrupt`.
//!
//! Backends keep amounts as decimal text of minor units, seqs as signed
//! 64-bit integers and names as text; whatever comes back is parsed into
//! its domain type again, so an impossible row surfaces as
//! `StoreError::Corrupt` instead of travelling further.

use talea_core::{AccountKind, AccountName, Amount, AssetCode, BookName, Decimal, IdempotencyKey};

use crate::StoreError;

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

/// Parses an i128 count of minor units stored as decimal text.
pub fn amount(text: &str) -> Result<Amount, StoreError> {
    text.parse::<i128>().map(Amount::from_minor).map_err(|_| {
        corrupt(format!(
            "amount {text:?} is not an integer of minor units within 128 bits"
        ))
    })
}

/// The canonical text an amount is stored as (`i128::to_string`: no
/// leading zeros, a '-' only below zero).
pub fn amount_text(minor: i128) -> String {
    minor.to_string()
}

/// A seq read from a signed 64-bit column.
pub fn seq(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| corrupt(format!("negative seq {value}")))
}

/// A seq to bind. Seqs above `i64::MAX` cannot be stored, so saturating
/// keeps "after this seq" meaning exactly that.
pub fn seq_param(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Parses a stored book name.
pub fn book(text: &str) -> Result<BookName, StoreError> {
    BookName::parse(text).map_err(|e| corrupt(format!("book name {text:?}: {e}")))
}

/// Parses a stored account name.
pub fn account_name(text: &str) -> Result<AccountName, StoreError> {
    AccountName::parse(text).map_err(|e| corrupt(format!("account name {text:?}: {e}")))
}

/// Parses a stored asset code.
pub fn asset_code(text: &str) -> Result<AssetCode, StoreError> {
    AssetCode::parse(text).map_err(|e| corrupt(format!("asset code {text:?}: {e}")))
}

/// Parses a stored idempotency key.
pub fn idempotency_key(text: &str) -> Result<IdempotencyKey, StoreError> {
    IdempotencyKey::parse(text).map_err(|e| corrupt(format!("idempotency key {text:?}: {e}")))
}

/// Parses a stored account kind.
pub fn account_kind(text: &str) -> Result<AccountKind, StoreError> {
    AccountKind::parse(text).ok_or_else(|| corrupt(format!("account kind {text:?}")))
}

/// Rebuilds a `min_balance` from its stored parts (both absent: unbounded).
pub fn min_balance(
    mantissa: Option<String>,
    scale: Option<i64>,
) -> Result<Option<Decimal>, StoreError> {
    match (mantissa, scale) {
        (None, None) => Ok(None),
        (Some(mantissa), Some(scale)) => {
            let m = amount(&mantissa)?.minor();
            u8::try_from(scale)
                .ok()
                .and_then(|s| Decimal::from_parts(m, s))
                .map(Some)
                .ok_or_else(|| corrupt(format!("min_balance scale {scale}")))
        }
        _ => Err(corrupt(
            "min_balance has only one of its two parts".to_owned(),
        )),
    }
}

/// The stored parts of a `min_balance`: mantissa as text and scale.
pub fn min_balance_parts(value: Option<Decimal>) -> (Option<String>, Option<i64>) {
    match value {
        Some(d) => (Some(amount_text(d.mantissa())), Some(i64::from(d.scale()))),
        None => (None, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refusals() {
        assert_eq!(
            amount("-170141183460469231731687303715884105728")
                .map(|a| a.minor())
                .ok(),
            Some(i128::MIN)
        );
        assert!(matches!(amount("1e3"), Err(StoreError::Corrupt(_))));
        assert_eq!(seq(5).ok(), Some(5));
        assert!(seq(-1).is_err());
        assert_eq!(seq_param(u64::MAX), i64::MAX);
        assert!(book("Bad").is_err());
        let d = Decimal::parse("-1.50").ok();
        let (m, s) = min_balance_parts(d);
        assert_eq!(min_balance(m, s).ok().flatten(), d);
        assert!(min_balance(Some("1".into()), None).is_err());
        assert!(min_balance(Some("1".into()), Some(300)).is_err());
        assert_eq!(min_balance(None, None).ok(), Some(None));
    }

    #[test]
    fn amounts_round_trip_through_text() {
        for minor in [0, 1, -1, i128::MAX, i128::MIN] {
            assert_eq!(
                amount(&amount_text(minor)).map(Amount::minor).ok(),
                Some(minor)
            );
        }
        assert!(amount("1.5").is_err());
        assert!(amount("170141183460469231731687303715884105728").is_err());
    }

    #[test]
    fn min_balance_parts_round_trip() {
        let d = Decimal::parse("-10.25").ok();
        let (m, s) = min_balance_parts(d);
        assert_eq!(min_balance(m, s).ok(), Some(d));
        assert_eq!(min_balance(None, None).ok(), Some(None));
        assert!(min_balance(Some("1".into()), None).is_err());
        assert!(min_balance(Some("1".into()), Some(31)).is_err());
    }

    #[test]
    fn seq_params_saturate() {
        assert_eq!(seq_param(u64::MAX), i64::MAX);
        assert_eq!(seq_param(7), 7);
        assert!(seq(-1).is_err());
    }
}
