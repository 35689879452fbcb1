//! Conversions between SQLite values and domain values: i128 amounts as text, seqs, names, lists.
//!
//! Every value read back is parsed into its domain type again, so a row that
//! somehow holds an impossible value surfaces as `StoreError::Corrupt` instead
//! of travelling further.

use std::time::{SystemTime, UNIX_EPOCH};

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use talea_core::{Amount, Scale, Timestamp};
use talea_store::StoreError;

pub(crate) use talea_store::stored::{
    account_kind, account_name, amount, amount_text, asset_code, book, idempotency_key,
    min_balance, min_balance_parts, seq, seq_param,
};

use crate::error::{corrupt, store_error};

/// Reads a column, mapping failures to the store's error.
pub(crate) fn get<'r, T>(row: &'r SqliteRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Sqlite> + sqlx::Type<sqlx::Sqlite>,
{
    row.try_get(column).map_err(store_error)
}

/// Reads an amount column (decimal text).
pub(crate) fn get_amount(row: &SqliteRow, column: &str) -> Result<Amount, StoreError> {
    amount(&get::<String>(row, column)?)
}

/// Reads a seq column.
pub(crate) fn get_seq(row: &SqliteRow, column: &str) -> Result<u64, StoreError> {
    seq(get::<i64>(row, column)?)
}

/// A seq that this store assigns, checked against the column type.
pub(crate) fn new_seq_param(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Other(format!("seq {value} exceeds SQLite's integer range")))
}

/// Reads a time column (INTEGER microseconds).
pub(crate) fn get_timestamp(row: &SqliteRow, column: &str) -> Result<Timestamp, StoreError> {
    get::<i64>(row, column).map(Timestamp::from_micros)
}

/// The system clock, truncated to microseconds (the contract's unit).
pub(crate) fn now() -> Timestamp {
    let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
        // A clock set before 1970: keep the sign rather than fail a commit.
        Err(before) => i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |m| -m),
    };
    Timestamp::from_micros(micros)
}

/// Parses a stored asset scale.
pub(crate) fn scale(value: i64) -> Result<Scale, StoreError> {
    Scale::new(value).ok_or_else(|| corrupt(format!("asset scale {value}")))
}

/// A JSON array of the given strings, bound as one parameter and unpacked
/// with `json_each`: SQLite has no array parameters, and one statement with
/// a list beats a statement per element.
pub(crate) fn text_list<'a>(
    items: impl IntoIterator<Item = &'a str>,
) -> Result<String, StoreError> {
    serde_json::to_string(&items.into_iter().collect::<Vec<_>>())
        .map_err(|e| StoreError::Other(format!("cannot encode a parameter list: {e}")))
}

/// A JSON array of integers, as [`text_list`].
pub(crate) fn int_list(items: impl IntoIterator<Item = i64>) -> String {
    let items: Vec<String> = items.into_iter().map(|i| i.to_string()).collect();
    format!("[{}]", items.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let d = talea_core::Decimal::parse("-10.25").ok();
        let (m, s) = min_balance_parts(d);
        assert_eq!(min_balance(m, s).ok(), Some(d));
        assert_eq!(min_balance(None, None).ok(), Some(None));
        assert!(min_balance(Some("1".into()), None).is_err());
        assert!(min_balance(Some("1".into()), Some(31)).is_err());
    }

    #[test]
    fn lists_are_json_arrays() {
        assert_eq!(
            text_list(["a", "q\"uote", "back\\slash"]).ok().as_deref(),
            Some(r#"["a","q\"uote","back\\slash"]"#)
        );
        assert_eq!(int_list([1, -2, 3]), "[1,-2,3]");
        assert_eq!(int_list([]), "[]");
    }

    #[test]
    fn seq_params_saturate() {
        assert_eq!(seq_param(u64::MAX), i64::MAX);
        assert_eq!(seq_param(7), 7);
        assert!(seq(-1).is_err());
    }
}
