//! Statistics for a young ledger: the store analyzes its tables itself the
//! first times one of its books grows through a size Postgres plans by.
//!
//! Postgres has no statistics for a table until autovacuum first analyzes
//! it, which happens at the earliest a minute (`autovacuum_naptime`) after
//! the writes start. Until then the planner assumes that `book = $1`
//! selects 0.5% of a table, so on a ledger of one busy book it reads the
//! whole book through an index on `book` alone instead of probing the
//! primary key (measured on the hold-then-settle benchmark: a settle
//! batch's lookup of its holds' legs took 2-6 ms under the book's lock
//! instead of 0.3 ms, for the first minute of a fresh database). So when
//! one book's seq first passes each of [`THRESHOLDS`] in this process, the
//! store runs `ANALYZE` on the ledger's tables in the background, outside
//! any lock. Afterwards autovacuum keeps the statistics, as for any table.
//! A failure (a role that does not own the tables) is logged and changes
//! nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use sqlx::postgres::PgPool;
use talea_store_sql::rows::Advance;

/// The seqs of one book at which this process analyzes the tables, once each.
pub const THRESHOLDS: [u64; 3] = [1_000, 10_000, 100_000];

/// The tables whose plans depend on a book's size.
pub(crate) const ANALYZE: &str = "ANALYZE events, transactions, postings, balances, accounts, holds, \
                       hold_postings";

/// How many of [`THRESHOLDS`] this process has analyzed for (shared by
/// the clones of a store).
#[derive(Debug, Clone, Default)]
pub(crate) struct Young {
    passed: Arc<AtomicUsize>,
}

impl Young {
    /// After a commit: analyzes in the background if a book of `advance`
    /// passed a threshold not yet passed in this process. Passing several
    /// at once (a process started on a grown ledger) analyzes once.
    pub(crate) fn committed(&self, pool: &PgPool, advance: &Advance) {
        let Some(highest) = advance.moves.iter().map(|m| m.last_seq).max() else {
            return;
        };
        let reached = THRESHOLDS.iter().filter(|&&t| highest >= t).count();
        if reached <= self.passed.load(Ordering::Relaxed)
            || self.passed.fetch_max(reached, Ordering::Relaxed) >= reached
        {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let pool = pool.clone();
        runtime.spawn(async move {
            match sqlx::query(ANALYZE).execute(&pool).await {
                Ok(_) => tracing::debug!(seq = highest, "analyzed the young ledger's tables"),
                Err(error) => tracing::warn!(
                    %error,
                    "could not analyze the ledger's tables; plans may be poor until \
                     autovacuum does"
                ),
            }
        });
    }
}
