//! Conversions between SQL values and domain values: amounts as text, times, seqs, names.
//!
//! Every value read back is parsed into its domain type again, so a row that
//! somehow holds an impossible value surfaces as `StoreError::Corrupt` instead
//! of travelling further.

use chrono::{DateTime, Utc};
use sqlx::Row;
use sqlx::postgres::PgRow;
use talea_core::{Amount, Decimal, Scale, Timestamp};
use talea_store::StoreError;

pub(crate) use talea_store::stored::{
    account_kind, account_name, amount, amount_text, asset_code, book, idempotency_key, seq,
    seq_param,
};

use crate::error::{corrupt, store_error};

/// Reads a column, mapping failures to the store's error.
pub(crate) fn get<'r, T>(row: &'r PgRow, column: &str) -> Result<T, StoreError>
where
    T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>,
{
    row.try_get(column).map_err(store_error)
}

/// Reads an amount column that the query cast to text.
pub(crate) fn get_amount(row: &PgRow, column: &str) -> Result<Amount, StoreError> {
    amount(&get::<String>(row, column)?)
}

/// Reads a seq column.
pub(crate) fn get_seq(row: &PgRow, column: &str) -> Result<u64, StoreError> {
    seq(get::<i64>(row, column)?)
}

/// A seq that this store assigns, checked against the column type.
pub(crate) fn new_seq_param(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Other(format!("seq {value} exceeds the bigint range")))
}

/// A commit time read from the database (whose precision is already microseconds).
pub(crate) fn timestamp(value: DateTime<Utc>) -> Timestamp {
    Timestamp::from_micros(value.timestamp_micros())
}

/// A timestamp to store, or `None` if chrono (and so sqlx) cannot represent it.
pub(crate) fn datetime(value: Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(value.micros())
}

/// The earliest instant Postgres can hold (4714-11-24 00:00:00 BC, UTC), in µs.
const PG_MIN_MICROS: i64 = -210_866_803_200_000_000;

/// An `as_of` bound, clamped into what both chrono and Postgres represent.
/// Clamping keeps the meaning: nothing is committed before Postgres's first
/// instant, and every commit is before chrono's last.
pub(crate) fn as_of_bound(value: Timestamp) -> DateTime<Utc> {
    let max = DateTime::<Utc>::MAX_UTC.timestamp_micros();
    let micros = value.micros().clamp(PG_MIN_MICROS, max);
    // Within [PG_MIN_MICROS, MAX_UTC] chrono always has a value; the fallback
    // only exists so this cannot panic.
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Parses a stored asset scale.
pub(crate) fn scale(value: i16) -> Result<Scale, StoreError> {
    Scale::new(i64::from(value)).ok_or_else(|| corrupt(format!("asset scale {value}")))
}

/// Rebuilds a `min_balance` from its stored parts (both null: unbounded).
pub(crate) fn min_balance(
    mantissa: Option<String>,
    scale: Option<i16>,
) -> Result<Option<Decimal>, StoreError> {
    talea_store::stored::min_balance(mantissa, scale.map(i64::from))
}

/// The stored parts of a `min_balance`: mantissa as text and `smallint` scale.
pub(crate) fn min_balance_parts(value: Option<Decimal>) -> (Option<String>, Option<i16>) {
    let (mantissa, scale) = talea_store::stored::min_balance_parts(value);
    // Scales are 0..=30, so they always fit a smallint.
    (mantissa, scale.and_then(|s| i16::try_from(s).ok()))
}

/// What every connection of a store's pool runs first.
///
/// Statements are prepared once per connection (named, cached by sqlx: one
/// round trip per execution, no parse), but **planned on every execution**
/// with its parameters (`force_custom_plan`). A generic plan is chosen after
/// five executions with the statistics of that moment and kept for the
/// connection's life: on a young database the tables are tiny, the generic
/// plan is a scan of the book, and it stays one as the book grows to millions
/// of rows (the batch's idempotency-key lookup was measured at 15 ms per
/// batch after 30 s of load that way). Planning each time costs tens of
/// microseconds and always picks the index the table size calls for.
///
/// Behind PgBouncer in transaction mode a session setting may land on
/// another server connection: `talead bootstrap` also sets it on the
/// application role (docs/operations.md).
pub(crate) const SESSION_SETUP: &str = "SET plan_cache_mode = force_custom_plan";

/// A statement of this store: prepared once per connection, planned per
/// execution (see [`SESSION_SETUP`]).
pub(crate) fn query(
    sql: &str,
) -> sqlx::query::Query<'_, sqlx::Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql)
}

/// [`query`] for a single-column result.
pub(crate) fn query_scalar<'q, O>(
    sql: &'q str,
) -> sqlx::query::QueryScalar<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>
where
    (O,): for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>,
{
    sqlx::query_scalar(sql)
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
    fn as_of_bounds_clamp_instead_of_failing() {
        assert_eq!(
            as_of_bound(Timestamp::from_micros(i64::MAX)).timestamp_micros(),
            DateTime::<Utc>::MAX_UTC.timestamp_micros()
        );
        assert_eq!(
            as_of_bound(Timestamp::from_micros(i64::MIN)).timestamp_micros(),
            PG_MIN_MICROS
        );
        assert_eq!(
            as_of_bound(Timestamp::from_micros(1_234_567)).timestamp_micros(),
            1_234_567
        );
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
