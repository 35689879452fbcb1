//! A bounded map of introspection answers, keyed by the SHA-256 of the token.
//!
//! The token itself is never stored: a heap dump of a talead shows digests
//! only. Each answer carries its expiry; an expired answer is never served
//! (that is what bounds fail-open during a scope outage).

use std::collections::HashMap;

use tokio::time::Instant;

use crate::Principal;

/// The SHA-256 of a token.
pub(crate) type TokenDigest = [u8; 32];

#[derive(Debug)]
struct Cached {
    principal: Option<Principal>,
    expires_at: Instant,
}

#[derive(Debug)]
pub(crate) struct AnswerCache {
    entries: HashMap<TokenDigest, Cached>,
    entries_max: usize,
}

impl AnswerCache {
    pub(crate) fn new(entries_max: usize) -> Self {
        Self {
            entries: HashMap::new(),
            entries_max: entries_max.max(1),
        }
    }

    /// The live answer for `key` (`Some(None)`: known to be inactive), or
    /// `None` when there is none; an expired entry is dropped here.
    pub(crate) fn get(&mut self, key: &TokenDigest, now: Instant) -> Option<Option<Principal>> {
        match self.entries.get(key) {
            Some(c) if now < c.expires_at => Some(c.principal.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    /// Stores an answer until `expires_at` (not at all if that has passed).
    /// At capacity, expired entries go first, then the ones expiring soonest
    /// (negative answers, with their short TTL, before established sessions).
    pub(crate) fn insert(
        &mut self,
        key: TokenDigest,
        principal: Option<Principal>,
        expires_at: Instant,
        now: Instant,
    ) {
        if expires_at <= now {
            self.entries.remove(&key);
            return;
        }
        if self.entries.len() >= self.entries_max && !self.entries.contains_key(&key) {
            self.entries.retain(|_, c| now < c.expires_at);
            while self.entries.len() >= self.entries_max {
                let soonest = self
                    .entries
                    .iter()
                    .min_by_key(|(_, c)| c.expires_at)
                    .map(|(k, _)| *k);
                match soonest {
                    Some(k) => {
                        self.entries.remove(&k);
                    }
                    None => break,
                }
            }
        }
        self.entries.insert(
            key,
            Cached {
                principal,
                expires_at,
            },
        );
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn key(n: u8) -> TokenDigest {
        [n; 32]
    }

    #[test]
    fn answers_expire() {
        let now = Instant::now();
        let mut c = AnswerCache::new(4);
        c.insert(
            key(1),
            Some(Principal::root()),
            now + Duration::from_secs(1),
            now,
        );
        c.insert(key(2), None, now + Duration::from_secs(1), now);
        assert_eq!(c.get(&key(1), now), Some(Some(Principal::root())));
        assert_eq!(c.get(&key(2), now), Some(None));
        assert_eq!(c.get(&key(3), now), None);
        let later = now + Duration::from_secs(1);
        assert_eq!(c.get(&key(1), later), None);
        assert_eq!(c.len(), 1, "the expired entry was dropped on lookup");
        c.insert(key(4), None, now, now);
        assert_eq!(c.get(&key(4), now), None, "already expired: not stored");
    }

    #[test]
    fn capacity_evicts_expired_then_soonest() {
        let now = Instant::now();
        let s = Duration::from_secs;
        let mut c = AnswerCache::new(3);
        c.insert(key(1), Some(Principal::root()), now + s(60), now);
        c.insert(key(2), None, now + s(5), now);
        c.insert(key(3), Some(Principal::root()), now + s(30), now);
        c.insert(key(4), Some(Principal::root()), now + s(60), now);
        assert_eq!(c.len(), 3);
        assert_eq!(c.get(&key(2), now), None, "the soonest to expire went");
        // Past key(3)'s expiry, it is purged before anything live is evicted.
        let later = now + s(31);
        c.insert(key(5), None, later + s(5), later);
        assert_eq!(c.len(), 3);
        assert!(c.get(&key(1), later).is_some());
        assert!(c.get(&key(4), later).is_some());
        assert!(c.get(&key(5), later).is_some());
        // Replacing an existing key never evicts another.
        c.insert(key(1), None, later + s(1), later);
        assert_eq!(c.len(), 3);
    }
}
