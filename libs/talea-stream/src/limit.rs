//! Stream admission: the per-token cap and the process-wide connection limit, held for a stream's life.
//!
//! A stream takes two slots before it starts: one of its token's
//! (`TALEA_SSE_MAX_PER_TOKEN`, counted by token name across every book) and
//! one of the process's (`TALEA_SSE_MAX_CONNECTIONS`, a semaphore). Both come
//! back when the [`StreamPermit`] is dropped, which the session does when it
//! ends. The per-token counts hold an entry only for a token with a stream
//! open (or being admitted), so their memory is bounded by the open streams,
//! not by the tokens ever seen.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::OwnedSemaphorePermit;

/// Why a stream was refused before it started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The token already has `max_per_token` streams open (429 `rate_limited`).
    TokenCap,
    /// The process already has `max_connections` streams open (503 `overloaded`).
    Connections,
}

impl Refusal {
    /// The `reason` label of the refusal metric.
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::TokenCap => "token_cap",
            Refusal::Connections => "connections",
        }
    }
}

/// Which token a count belongs to: the principal's name, `None` for
/// `TALEA_API_TOKEN` (which has no name). Never the secret itself.
type TokenKey = Option<String>;

/// Open streams per token, each at most `max_per_token`.
#[derive(Debug)]
pub(crate) struct TokenCounts {
    max_per_token: usize,
    counts: Mutex<HashMap<TokenKey, usize>>,
}

impl TokenCounts {
    pub(crate) fn new(max_per_token: usize) -> Arc<TokenCounts> {
        Arc::new(TokenCounts {
            max_per_token,
            counts: Mutex::new(HashMap::new()),
        })
    }

    fn counts(&self) -> MutexGuard<'_, HashMap<TokenKey, usize>> {
        // A poisoned lock only means a panic elsewhere: every critical
        // section below leaves the map consistent.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One slot of `token`'s, or `None` when it has `max_per_token` already.
    pub(crate) fn try_take(self: &Arc<Self>, token: Option<&str>) -> Option<TokenSlot> {
        let key: TokenKey = token.map(str::to_owned);
        let mut counts = self.counts();
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= self.max_per_token {
            // A cap of 0 would leave a zero entry behind; remove it so that
            // nothing but open streams holds memory.
            if *count == 0 {
                counts.remove(&key);
            }
            return None;
        }
        *count += 1;
        Some(TokenSlot {
            counts: self.clone(),
            key,
        })
    }

    /// Streams `token` has open now.
    pub(crate) fn open(&self, token: Option<&str>) -> usize {
        let key: TokenKey = token.map(str::to_owned);
        self.counts().get(&key).copied().unwrap_or(0)
    }

    /// Tokens with at least one stream open now.
    pub(crate) fn tokens(&self) -> usize {
        self.counts().len()
    }

    fn give_back(&self, key: &TokenKey) {
        let mut counts = self.counts();
        if let Some(count) = counts.get_mut(key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(key);
            }
        }
    }
}

/// One of a token's stream slots; dropping it gives the slot back.
pub(crate) struct TokenSlot {
    counts: Arc<TokenCounts>,
    key: TokenKey,
}

impl std::fmt::Debug for TokenSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The name is no secret, but it says nothing useful in a debug dump
        // either, and keeps token names out of logs by habit.
        f.debug_struct("TokenSlot").finish_non_exhaustive()
    }
}

impl Drop for TokenSlot {
    fn drop(&mut self) {
        self.counts.give_back(&self.key);
    }
}

/// A stream's admission: its token's slot and its process slot. The
/// session holds it until it ends; dropping it frees both.
#[derive(Debug)]
pub struct StreamPermit {
    _token: TokenSlot,
    _connection: OwnedSemaphorePermit,
}

impl StreamPermit {
    pub(crate) fn new(token: TokenSlot, connection: OwnedSemaphorePermit) -> StreamPermit {
        StreamPermit {
            _token: token,
            _connection: connection,
        }
    }
}

/// `TALEA_SSE_MAX_PER_TOKEN` checked against `TALEA_SSE_MAX_CONNECTIONS`:
/// a set value must be `1..=max_connections` (a cap above the process's
/// limit would cap nothing); unset, [`crate::MAX_PER_TOKEN_DEFAULT`], or
/// `max_connections` where that is lower (so that lowering the process
/// limit alone never stops a start).
pub fn max_per_token(set: Option<usize>, max_connections: usize) -> Result<usize, String> {
    // A process serving no streams (`max_connections` 0) still needs a cap of at least 1.
    let bound = max_connections.max(1);
    match set {
        None => Ok(crate::MAX_PER_TOKEN_DEFAULT.min(bound)),
        Some(n) if (1..=bound).contains(&n) => Ok(n),
        Some(n) => Err(format!(
            "TALEA_SSE_MAX_PER_TOKEN must be 1..=TALEA_SSE_MAX_CONNECTIONS ({bound}) \
             streams (it is {n})"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_gets_at_most_its_cap_and_dropping_a_slot_frees_it() {
        let counts = TokenCounts::new(2);
        let a1 = counts.try_take(Some("a")).expect("first");
        let a2 = counts.try_take(Some("a")).expect("second");
        assert!(
            counts.try_take(Some("a")).is_none(),
            "the third is over the cap"
        );
        assert_eq!(counts.open(Some("a")), 2);
        // Other tokens, and the unnamed API token, count apart.
        let b = counts.try_take(Some("b")).expect("another token");
        let root = counts.try_take(None).expect("the API token");
        assert_eq!(counts.tokens(), 3);
        drop(a1);
        assert_eq!(counts.open(Some("a")), 1);
        let a3 = counts.try_take(Some("a")).expect("the freed slot");
        drop((a2, a3, b, root));
        assert_eq!(counts.tokens(), 0, "zero entries are removed");
        assert_eq!(counts.open(Some("a")), 0);
    }

    #[test]
    fn refusals_and_reads_leave_no_entry_behind() {
        let counts = TokenCounts::new(1);
        let held = counts.try_take(Some("a")).expect("first");
        assert!(counts.try_take(Some("a")).is_none());
        assert_eq!(counts.open(Some("never")), 0);
        assert_eq!(counts.tokens(), 1, "reads and refusals add nothing");
        drop(held);
        assert_eq!(counts.tokens(), 0);
        let none = TokenCounts::new(0);
        assert!(none.try_take(Some("a")).is_none());
        assert_eq!(none.tokens(), 0);
    }

    #[test]
    fn slots_dropped_on_many_threads_all_come_back() {
        let counts = TokenCounts::new(1_000);
        let slots: Vec<_> = (0..800)
            .map(|i| {
                counts
                    .try_take(Some(&format!("t{}", i % 8)))
                    .expect("under the cap")
            })
            .collect();
        assert_eq!(counts.tokens(), 8);
        let mut slots = slots.into_iter();
        std::thread::scope(|scope| {
            for _ in 0..8 {
                let batch: Vec<_> = slots.by_ref().take(100).collect();
                scope.spawn(move || drop(batch));
            }
        });
        assert_eq!(counts.tokens(), 0);
    }

    #[test]
    fn the_setting_is_checked_against_the_process_limit() {
        assert_eq!(
            max_per_token(None, 10_000),
            Ok(crate::MAX_PER_TOKEN_DEFAULT)
        );
        assert_eq!(
            max_per_token(None, 50),
            Ok(50),
            "never above the process limit"
        );
        assert_eq!(max_per_token(None, 0), Ok(1));
        assert_eq!(max_per_token(Some(1), 10), Ok(1));
        assert_eq!(max_per_token(Some(10), 10), Ok(10));
        for bad in [0, 11, usize::MAX] {
            let e = max_per_token(Some(bad), 10).expect_err("out of range");
            assert!(
                e.contains("TALEA_SSE_MAX_PER_TOKEN") && e.contains("1..="),
                "{e}"
            );
        }
    }
}
