//! Commit and business timestamps, held as whole microseconds since the Unix epoch.

/// An instant with microsecond precision, in UTC.
///
/// The contract fixes timestamps at microseconds: a commit time is truncated
/// to microseconds when it is taken, so what is read back is exactly what was
/// committed. Keeping the value as an integer makes that truncation the only
/// rounding there ever is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `micros` microseconds after 1970-01-01T00:00:00Z.
    pub const fn from_micros(micros: i64) -> Self {
        Self(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }
}
