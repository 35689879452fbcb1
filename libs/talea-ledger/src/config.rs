//! `LedgerConfig`: the write path's limits, their defaults and bounds.

/// Default of [`LedgerConfig::commit_books_max`].
pub const COMMIT_BOOKS_MAX_DEFAULT: usize = 32;
/// Largest [`LedgerConfig::commit_books_max`] accepted.
pub const COMMIT_BOOKS_MAX_LIMIT: usize = 256;
/// Default of [`LedgerConfig::commits_in_flight`].
pub const COMMITS_IN_FLIGHT_DEFAULT: usize = 4;
/// Largest [`LedgerConfig::commits_in_flight`] accepted.
pub const COMMITS_IN_FLIGHT_LIMIT: usize = 64;

/// Limits of the write path, with the contract's defaults.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Drafts a book's queue holds before posts get 429 (`TALEA_WRITE_QUEUE_DEPTH`).
    pub write_queue_depth: usize,
    /// Most drafts per book batch (`TALEA_WRITE_BATCH_MAX`).
    pub write_batch_max: usize,
    /// Most books' batches sharing one storage transaction
    /// (`TALEA_COMMIT_BOOKS_MAX`; 1 commits each book alone).
    pub commit_books_max: usize,
    /// Most storage transactions of combined batches running at once
    /// (`TALEA_COMMITS_IN_FLIGHT`).
    pub commits_in_flight: usize,
    /// How long an idle committer waits before ending.
    pub committer_idle_ms: u64,
}

/// Largest [`LedgerConfig::write_batch_max`] accepted.
pub const WRITE_BATCH_MAX_LIMIT: usize = 1_024;
/// Largest [`LedgerConfig::write_queue_depth`] accepted.
pub const WRITE_QUEUE_DEPTH_LIMIT: usize = 1_000_000;

impl LedgerConfig {
    /// Checks every setting against its bounds; the error names the
    /// variable, its bounds and the value given.
    pub fn check(&self) -> Result<(), String> {
        let bounded = [
            (
                "TALEA_WRITE_QUEUE_DEPTH",
                self.write_queue_depth,
                WRITE_QUEUE_DEPTH_LIMIT,
            ),
            (
                "TALEA_WRITE_BATCH_MAX",
                self.write_batch_max,
                WRITE_BATCH_MAX_LIMIT,
            ),
            (
                "TALEA_COMMIT_BOOKS_MAX",
                self.commit_books_max,
                COMMIT_BOOKS_MAX_LIMIT,
            ),
            (
                "TALEA_COMMITS_IN_FLIGHT",
                self.commits_in_flight,
                COMMITS_IN_FLIGHT_LIMIT,
            ),
        ];
        for (name, value, max) in bounded {
            if !(1..=max).contains(&value) {
                return Err(format!("{name} must be 1..={max}, not {value}"));
            }
        }
        Ok(())
    }
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            write_queue_depth: 256,
            write_batch_max: 64,
            commit_books_max: COMMIT_BOOKS_MAX_DEFAULT,
            commits_in_flight: COMMITS_IN_FLIGHT_DEFAULT,
            committer_idle_ms: 30_000,
        }
    }
}
