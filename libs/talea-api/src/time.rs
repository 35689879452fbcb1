//! The contract's timestamp format: RFC 3339, UTC, exactly six fractional digits.

use chrono::{DateTime, SecondsFormat, Utc};
use talea_core::Timestamp;

/// Formats as `2026-11-22T10:00:00.123456Z`.
pub fn format_timestamp(ts: Timestamp) -> String {
    match DateTime::<Utc>::from_timestamp_micros(ts.micros()) {
        Some(dt) => dt.to_rfc3339_opts(SecondsFormat::Micros, true),
        // Only reachable for instants beyond year 262143, which no clock produces.
        None => String::from("invalid-timestamp"),
    }
}

/// Parses any RFC 3339 timestamp (any offset), truncating below microseconds.
pub fn parse_timestamp(text: &str) -> Option<Timestamp> {
    let dt = DateTime::parse_from_rfc3339(text).ok()?;
    let utc = dt.with_timezone(&Utc);
    let micros = utc
        .timestamp()
        .checked_mul(1_000_000)?
        .checked_add(i64::from(utc.timestamp_subsec_micros()))?;
    Some(Timestamp::from_micros(micros))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_with_six_digits() {
        let ts = parse_timestamp("2026-11-22T09:59:58Z").expect("parses");
        assert_eq!(format_timestamp(ts), "2026-11-22T09:59:58.000000Z");
        let ts = parse_timestamp("2026-11-22T11:00:00.1234567+01:00").expect("parses");
        assert_eq!(format_timestamp(ts), "2026-11-22T10:00:00.123456Z");
        assert_eq!(parse_timestamp("2026-11-22"), None);
        assert_eq!(parse_timestamp("yesterday"), None);
    }
}
