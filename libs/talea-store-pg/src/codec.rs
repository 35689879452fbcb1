//! Postgres's own conversions: commit times between `Timestamp` and `timestamptz`, and the session set-up.

use chrono::{DateTime, Utc};
use talea_core::Timestamp;

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

/// An instant clamped into what both chrono and Postgres represent.
/// Clamping keeps an `as_of` bound's meaning (nothing is committed before
/// Postgres's first instant, and every commit is before chrono's last) and
/// never changes a commit time, which comes from the database's clock.
pub(crate) fn instant(value: Timestamp) -> DateTime<Utc> {
    let max = DateTime::<Utc>::MAX_UTC.timestamp_micros();
    let micros = value.micros().clamp(PG_MIN_MICROS, max);
    // Within [PG_MIN_MICROS, MAX_UTC] chrono always has a value; the fallback
    // only exists so this cannot panic.
    DateTime::from_timestamp_micros(micros).unwrap_or(DateTime::<Utc>::MAX_UTC)
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
/// Index probes are costed as reads from memory (`random_page_cost = 1.1`,
/// the usual setting for SSDs): the write path's lookups under the lock
/// (idempotency keys, holds by id) probe rows written moments ago, which
/// are in shared buffers. With the default of 4 the planner hash-joins a
/// batch's 64 keys against a seq scan of the whole book while the table is
/// between a few thousand and some tens of thousands of rows and not yet
/// analyzed (measured: 4-10 ms per batch, under the book's lock, against
/// 0.3 ms for the probes).
///
/// One statement, so that a connection's setup is one round trip. Behind
/// PgBouncer in transaction mode a session setting may land on another
/// server connection: `talead bootstrap` also sets both on the application
/// role (docs/operations.md).
pub(crate) const SESSION_SETUP: &str = "SELECT set_config('plan_cache_mode', \
     'force_custom_plan', false), set_config('random_page_cost', '1.1', false)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_clamp_instead_of_failing() {
        assert_eq!(
            instant(Timestamp::from_micros(i64::MAX)).timestamp_micros(),
            DateTime::<Utc>::MAX_UTC.timestamp_micros()
        );
        assert_eq!(
            instant(Timestamp::from_micros(i64::MIN)).timestamp_micros(),
            PG_MIN_MICROS
        );
        assert_eq!(
            instant(Timestamp::from_micros(1_234_567)).timestamp_micros(),
            1_234_567
        );
    }
}
