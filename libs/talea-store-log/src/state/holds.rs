//! Holds in the in-memory state: each book's hold records ([`HoldEntry`]),
//! its holds in seq order and its expiry index, the held sums they leave on
//! each pair (`PairState::held`), and the replay checks of hold records: a
//! hold moves no posted balance, and each ending (settle, void, expiry)
//! finds its hold pending and due (or not) as the ending says.

use talea_core::{AccountName, Amount, AssetCode, Commit, Side, Timestamp, TxId, TxStatus};
use talea_store::{Held, StoreError};

use super::{Book, EXPIRY_BIT, State, corrupt};
use crate::codec::{ExpiryRecord, TxRecord};

/// A hold of a book: where it is, and how it stands.
#[derive(Debug, Clone)]
pub struct HoldEntry {
    /// Its seq.
    pub seq: u64,
    /// Its record's offset in the file.
    pub offset: u64,
    /// Its expiry, if any.
    pub expires_at: Option<Timestamp>,
    /// `Pending`, or how it ended.
    pub status: TxStatus,
    /// The settle or void that ended it.
    pub ended_by: Option<TxId>,
    /// The seq of the event that ended it (settle, void or expiry).
    pub ended_seq: Option<u64>,
    /// The hold as committed, with its legs, while it is pending (dropped
    /// once it ends: its record has it).
    pub live: Option<Box<Commit>>,
}

impl HoldEntry {
    /// Whether the hold reserved its legs at the instant `at`, whose last
    /// seq is `cut`: committed by then, not ended by then, not expired at it.
    pub fn held_at(&self, cut: u64, at: Timestamp) -> bool {
        self.seq <= cut
            && self.ended_seq.is_none_or(|ended| ended > cut)
            && self.expires_at.is_none_or(|expiry| expiry > at)
    }
}

/// A pair with its held amounts.
pub(super) type HeldPair = (AccountName, AssetCode, Held);

/// Whether held amounts grow or shrink.
#[derive(Debug, Clone, Copy)]
pub(super) enum Change {
    /// A hold is committed.
    Add,
    /// A hold ends.
    Release,
}

/// The held amounts of each pair `hold`'s legs touch, after adding or
/// releasing them.
pub(super) fn hold_change(
    book: &Book,
    hold: &Commit,
    how: Change,
    at: &dyn Fn(String) -> StoreError,
) -> Result<Vec<HeldPair>, StoreError> {
    let mut out: Vec<HeldPair> = Vec::new();
    for p in &hold.postings {
        let index = match out
            .iter()
            .position(|(a, s, _)| *a == p.account && *s == p.asset)
        {
            Some(i) => i,
            None => {
                let now = book
                    .accounts
                    .get(&p.account)
                    .ok_or_else(|| at(format!("hold on unopened account {}", p.account)))?
                    .assets
                    .get(&p.asset)
                    .map(|pair| pair.held)
                    .unwrap_or_default();
                out.push((p.account.clone(), p.asset.clone(), now));
                out.len() - 1
            }
        };
        let held = &mut out[index].2;
        let total = match p.side {
            Side::Debit => &mut held.debits,
            Side::Credit => &mut held.credits,
        };
        *total = match how {
            Change::Add => total.checked_add(p.amount),
            Change::Release => total.checked_sub(p.amount).filter(|a| *a >= Amount::ZERO),
        }
        .ok_or_else(|| at(format!("held amounts of {} do not add up", p.account)))?;
    }
    Ok(out)
}

/// Checks that the hold `hold` of `book` can end at `when` (by expiry:
/// due by then; else: not yet due) and returns the held amounts its
/// release leaves.
pub(super) fn release(
    book: &Book,
    hold: TxId,
    when: Timestamp,
    by_expiry: bool,
    at: &dyn Fn(String) -> StoreError,
) -> Result<Vec<HeldPair>, StoreError> {
    let Some(entry) = book.holds.get(&hold) else {
        return Err(at(format!("ends {}, which is no hold of the book", hold.0)));
    };
    let Some(live) = entry.live.as_deref() else {
        return Err(at(format!(
            "ends hold {}, which ended before ({})",
            hold.0,
            entry.status.as_str()
        )));
    };
    let due = entry.expires_at.is_some_and(|expiry| expiry <= when);
    if due != by_expiry {
        return Err(at(format!(
            "ends hold {} {} its expiry",
            hold.0,
            if by_expiry { "before" } else { "after" }
        )));
    }
    hold_change(book, live, Change::Release, at)
}

impl Book {
    /// Records the pending hold `c`, at `offset` (its held amounts were
    /// applied by `set_held`).
    pub(super) fn begin_hold(&mut self, c: &Commit, offset: u64) {
        self.holds.insert(
            c.tx_id,
            HoldEntry {
                seq: c.seq,
                offset,
                expires_at: c.expires_at,
                status: TxStatus::Pending,
                ended_by: None,
                ended_seq: None,
                live: Some(Box::new(c.clone())),
            },
        );
        self.hold_order.push((c.seq, c.tx_id));
        if let Some(expiry) = c.expires_at {
            self.expiring.insert((expiry, c.seq), c.tx_id);
        }
    }

    /// Sets the held amounts of pairs (creating a pair a hold first
    /// touches, at the hold's `seq`).
    pub(super) fn set_held(
        &mut self,
        held: Vec<HeldPair>,
        seq: u64,
        at: &dyn Fn(String) -> StoreError,
    ) -> Result<(), StoreError> {
        for (account, asset, held) in held {
            let Some(state) = self.accounts.get_mut(&account) else {
                return Err(at(format!("account {account} vanished")));
            };
            let pair = state.assets.entry(asset).or_default();
            pair.held = held;
            pair.first_hold.get_or_insert(seq);
        }
        Ok(())
    }

    /// Marks a hold ended (its release was applied by `set_held`).
    pub(super) fn end_hold(
        &mut self,
        hold: TxId,
        status: TxStatus,
        ended_by: Option<TxId>,
        seq: u64,
    ) {
        if let Some(entry) = self.holds.get_mut(&hold) {
            if let Some(expiry) = entry.expires_at {
                self.expiring.remove(&(expiry, entry.seq));
            }
            entry.status = status;
            entry.ended_by = ended_by;
            entry.ended_seq = Some(seq);
            entry.live = None;
        }
    }

    /// One hold of the book, pending or ended.
    pub fn hold(&self, tx_id: &TxId) -> Option<&HoldEntry> {
        self.holds.get(tx_id)
    }

    /// The book's holds in seq order.
    pub fn holds_in_order(&self) -> impl Iterator<Item = (u64, &HoldEntry)> + '_ {
        self.hold_order
            .iter()
            .filter_map(|(seq, id)| self.holds.get(id).map(|h| (*seq, h)))
    }

    /// The book's holds with seq above `after`, in seq order.
    pub fn holds_after(&self, after: u64) -> impl Iterator<Item = (u64, &HoldEntry)> + '_ {
        let start = self.hold_order.partition_point(|(seq, _)| *seq <= after);
        self.hold_order[start..]
            .iter()
            .filter_map(|(seq, id)| self.holds.get(id).map(|h| (*seq, h)))
    }

    /// Pending holds whose `expires_at` is at or before `until`, earliest
    /// first (by expiry, then seq).
    pub fn due(&self, until: Timestamp) -> impl Iterator<Item = (Timestamp, &HoldEntry)> + '_ {
        self.expiring
            .range(..=(until, u64::MAX))
            .filter_map(|((expiry, _), id)| self.holds.get(id).map(|h| (*expiry, h)))
    }
}

impl State {
    /// Applies a `hold_expired` record: the hold is pending in its book
    /// and due at the event's time; it ends, releasing what it held.
    pub(super) fn apply_expiry(&mut self, e: &ExpiryRecord, offset: u64) -> Result<(), StoreError> {
        let at = |what: String| corrupt(format!("book {}, seq {}: {what}", e.book, e.seq));
        let Some(book) = self.books.get(&e.book) else {
            return Err(at("a hold expired in a book with no accounts".to_owned()));
        };
        Self::check_next(Some(book), &e.book, e.seq, e.committed_at, offset)?;
        let held = release(book, e.hold, e.committed_at, true, &at)?;
        let book = self
            .books
            .get_mut(&e.book)
            .ok_or_else(|| at("book vanished".to_owned()))?;
        book.set_held(held, e.seq, &at)?;
        book.end_hold(e.hold, TxStatus::Expired, None, e.seq);
        book.push(e.seq, offset | EXPIRY_BIT, e.committed_at);
        self.events += 1;
        Ok(())
    }

    /// A hold's legs must leave each pair's totals as they are: its
    /// `balance_after` and running debits are the pair's current ones.
    pub(super) fn check_unmoved(
        &self,
        book: &Book,
        tx: &TxRecord,
        at: &dyn Fn(String) -> StoreError,
    ) -> Result<(), StoreError> {
        for (p, &debits_after) in tx.commit.postings.iter().zip(&tx.debits_after) {
            let Some(account) = book.accounts.get(&p.account) else {
                return Err(at(format!("hold on unopened account {}", p.account)));
            };
            if !self.assets.contains_key(&p.asset) {
                return Err(at(format!("hold in unregistered asset {}", p.asset)));
            }
            let now = account
                .assets
                .get(&p.asset)
                .map(|pair| pair.totals)
                .unwrap_or_default();
            if now.balance != p.balance_after.minor() || now.debits != debits_after {
                return Err(at(format!(
                    "a hold's leg on {} in {} records balance {} and debits {}, but the pair stands at {} and {}",
                    p.account,
                    p.asset,
                    p.balance_after.minor(),
                    debits_after,
                    now.balance,
                    now.debits
                )));
            }
        }
        Ok(())
    }
}
