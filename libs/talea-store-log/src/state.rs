//! The in-memory indexes over the log, and `apply`: the one function that grows them.
//!
//! Recovery replays every record through [`State::apply`], and the writer
//! applies each durable frame through it too, so the indexes a store serves
//! after a restart are built by exactly the code that built them before.
//! `apply` checks each record against what came before (dense seqs, commit
//! times that never go back, opened accounts, registered assets, unique keys
//! and ids, running balances that add up) and changes nothing when it fails.
//!
//! Payloads stay on disk: an event costs an 8-byte offset and its 32-byte
//! chain hash (as stored in its `chain` record) here, plus one
//! 24-byte history entry per (account, asset) pair it touches and two
//! fingerprint-map entries (its key and its id). See the crate docs for
//! measured figures.
//!
//! Holds: every hold of a book has a [`HoldEntry`] (its place, expiry and
//! status, and its legs while it is pending); each pair's [`PairState::held`]
//! sums what the pending holds reserve on it. Replay checks each ending
//! (settle, void, expiry) against the hold's status and expiry, so a log in
//! which a hold ends twice, or a settle follows its expiry, is `Corrupt`.
//! The hold records, held sums, expiry index and these replay checks live
//! in `state/holds.rs`.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, RandomState};

use talea_core::{
    Account, AccountName, Asset, AssetCode, BookName, Commit, Side, Timestamp, TxId, TxStatus,
};
use talea_store::plan::Totals;
use talea_store::{Held, StoreError};

use crate::codec::{ChainRecord, Record, TxRecord};
use crate::index::{Chunked, FpMap};

mod holds;

pub use holds::HoldEntry;
use holds::{Change, hold_change, release};

/// The high bit of an event's entry marks an `account_opened` event; the
/// rest is the record's offset in the log file (files stay below 2^63 bytes).
const ACCOUNT_BIT: u64 = 1 << 63;
/// The next bit marks a `hold_expired` event (files stay below 2^62 bytes).
const EXPIRY_BIT: u64 = 1 << 62;

/// Reads back a record that `apply` accepted earlier (to tell apart two keys
/// or ids that share a fingerprint).
pub trait Lookup {
    /// The record at `offset`.
    fn record_at(&self, offset: u64) -> Result<Record, StoreError>;
}

/// Everything the store knows without reading the file.
#[derive(Debug)]
pub struct State {
    /// Keys the fingerprints, fresh per process, so that nobody can choose
    /// idempotency keys that collide on purpose.
    hasher: RandomState,
    assets: BTreeMap<AssetCode, Asset>,
    books: BTreeMap<BookName, Book>,
    /// Transaction id fingerprint → record offset, across books.
    tx_ids: FpMap,
    /// Events across books.
    events: u64,
    /// The end of the last durable frame: where the next frame goes.
    pub end: u64,
}

/// One book's log and projections.
#[derive(Debug, Default)]
pub struct Book {
    /// Seq − 1 → record offset (with [`ACCOUNT_BIT`] for account opens).
    entries: Chunked<u64>,
    /// (first seq, commit time) runs: a new run starts where the commit
    /// time changes. Commit time never decreases with seq, so `as_of` is a
    /// binary search here, and a batch (one commit time) costs one run.
    times: Vec<(u64, Timestamp)>,
    accounts: BTreeMap<AccountName, AccountState>,
    /// Idempotency key fingerprint → seq.
    keys: FpMap,
    /// Every hold of the book, pending or ended, by id.
    holds: HashMap<TxId, HoldEntry>,
    /// The book's holds in seq order (for what was held at a past instant).
    hold_order: Vec<(u64, TxId)>,
    /// Pending holds with an expiry, by (expires_at, seq).
    expiring: BTreeMap<(Timestamp, u64), TxId>,
    /// Seq − 1 → the event's chain hash as stored (a `chain` record),
    /// 32 bytes per event. Shorter than `entries` only while a log written
    /// before the chain existed is being caught up at open.
    hashes: Chunked<[u8; 32]>,
}

/// An account and its balances per asset.
#[derive(Debug)]
pub struct AccountState {
    /// As opened.
    pub account: Account,
    /// By asset code.
    pub assets: BTreeMap<AssetCode, PairState>,
}

/// An account's totals in one asset, now and after each transaction that touched them.
#[derive(Debug, Default)]
pub struct PairState {
    /// Totals now.
    pub totals: Totals,
    /// What the pending holds reserve on the pair (an expired hold counts
    /// until its `hold_expired` event ends it; readers subtract those).
    pub held: Held,
    /// The seq of the first hold on the pair, if any: a pair only held
    /// exists (at balance zero) from then on.
    pub first_hold: Option<u64>,
    /// One entry per transaction that touched the pair, in seq order: the
    /// balance after the transaction's last posting on the pair.
    pub history: Chunked<HistoryEntry>,
}

/// A pair's balance after one transaction. The balance is split into two
/// words so the entry packs into 24 bytes (an `i128` would align it to 32).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryEntry {
    /// The transaction's seq.
    pub seq: u64,
    balance_lo: u64,
    balance_hi: i64,
}

impl HistoryEntry {
    fn new(seq: u64, balance: i128) -> Self {
        Self {
            seq,
            balance_lo: balance as u64,
            balance_hi: (balance >> 64) as i64,
        }
    }

    /// The pair's storage balance after the transaction.
    pub fn balance(&self) -> i128 {
        (i128::from(self.balance_hi) << 64) | i128::from(self.balance_lo)
    }
}

/// What kind of event an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    /// `account_opened`.
    Account,
    /// A transaction (posted, hold, settle or void).
    Transaction,
    /// `hold_expired`.
    Expiry,
}

/// Where an event's record is, and what kind it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryRef {
    /// Its seq.
    pub seq: u64,
    /// Its record's offset in the file.
    pub offset: u64,
    /// Its kind.
    pub kind: EntryKind,
}

impl EntryRef {
    fn of(seq: u64, raw: u64) -> Self {
        let kind = if raw & ACCOUNT_BIT != 0 {
            EntryKind::Account
        } else if raw & EXPIRY_BIT != 0 {
            EntryKind::Expiry
        } else {
            EntryKind::Transaction
        };
        Self {
            seq,
            offset: raw & !(ACCOUNT_BIT | EXPIRY_BIT),
            kind,
        }
    }
}

fn corrupt(what: String) -> StoreError {
    StoreError::Corrupt(what)
}

impl State {
    /// An empty state for a log whose first frame goes at `end`.
    pub fn new(end: u64) -> Self {
        Self {
            hasher: RandomState::new(),
            assets: BTreeMap::new(),
            books: BTreeMap::new(),
            tx_ids: FpMap::default(),
            events: 0,
            end,
        }
    }

    fn key_fp(&self, key: &str) -> u64 {
        self.hasher.hash_one(key)
    }

    fn tx_fp(&self, tx_id: TxId) -> u64 {
        self.hasher.hash_one(tx_id.0.as_u128())
    }

    /// One asset.
    pub fn asset(&self, code: &AssetCode) -> Option<&Asset> {
        self.assets.get(code)
    }

    /// Every asset, by code.
    pub fn assets(&self) -> impl Iterator<Item = &Asset> {
        self.assets.values()
    }

    /// One book.
    pub fn book(&self, book: &BookName) -> Option<&Book> {
        self.books.get(book)
    }

    /// Every book, by name.
    pub fn books(&self) -> impl Iterator<Item = (&BookName, &Book)> {
        self.books.iter()
    }

    /// Events across books.
    pub fn event_count(&self) -> u64 {
        self.events
    }

    /// Offsets of records that may be the transaction `tx_id` (confirm each).
    pub fn tx_candidates(&self, tx_id: TxId) -> impl Iterator<Item = u64> + '_ {
        self.tx_ids.candidates(self.tx_fp(tx_id))
    }

    /// Offsets of records in `book` that may carry `key` (confirm each).
    pub fn key_candidates<'s>(
        &'s self,
        book: &BookName,
        key: &str,
    ) -> impl Iterator<Item = u64> + 's {
        let fp = self.key_fp(key);
        self.books.get(book).into_iter().flat_map(move |b| {
            b.keys
                .candidates(fp)
                .filter_map(|seq| b.entry(seq).map(|e| e.offset))
        })
    }

    /// Estimated heap bytes of the indexes.
    pub fn heap_bytes(&self) -> usize {
        let books: usize = self
            .books
            .values()
            .map(|b| {
                b.entries.heap_bytes()
                    + b.hashes.heap_bytes()
                    + b.times.capacity() * 16
                    + b.keys.heap_bytes()
                    + b.holds.capacity() * 120
                    + b.hold_order.capacity() * 24
                    + b.expiring.len() * 64
                    + b.holds
                        .values()
                        .filter_map(|h| h.live.as_ref())
                        .map(|c| 200 + c.postings.len() * 120)
                        .sum::<usize>()
                    + b.accounts
                        .values()
                        .map(|a| {
                            a.account.metadata.capacity()
                                + 200
                                + a.assets
                                    .values()
                                    .map(|p| 120 + p.history.heap_bytes())
                                    .sum::<usize>()
                        })
                        .sum::<usize>()
            })
            .sum();
        books + self.tx_ids.heap_bytes()
    }

    /// Adds a durable record at `offset` to the indexes, after checking it
    /// against them. On `Err` nothing changed.
    pub fn apply(
        &mut self,
        record: &Record,
        offset: u64,
        lookup: &dyn Lookup,
    ) -> Result<(), StoreError> {
        if offset & (ACCOUNT_BIT | EXPIRY_BIT) != 0 {
            return Err(corrupt(format!("offset {offset} is beyond 2^62")));
        }
        match record {
            Record::Asset(asset) => {
                if self.assets.contains_key(&asset.code) {
                    return Err(corrupt(format!(
                        "asset {} is registered twice (again at offset {offset})",
                        asset.code
                    )));
                }
                self.assets.insert(asset.code.clone(), asset.clone());
            }
            Record::AccountOpened(account) => self.apply_account(account, offset)?,
            Record::Transaction(tx) => self.apply_transaction(tx, offset, lookup)?,
            Record::HoldExpired(e) => self.apply_expiry(e, offset)?,
            Record::Chain(c) => self.apply_chain(c, offset)?,
        }
        Ok(())
    }

    /// Stores an event's chain hash: the next one of its book, for an
    /// event already applied. The hash is kept as stored, not recomputed
    /// (an audit recomputes the chain from the events served and compares).
    fn apply_chain(&mut self, c: &ChainRecord, offset: u64) -> Result<(), StoreError> {
        let Some(book) = self.books.get_mut(&c.book) else {
            return Err(corrupt(format!(
                "book {}: a chain hash at offset {offset} for a book with no events",
                c.book
            )));
        };
        let next = book.chained_seq() + 1;
        if c.seq != next || c.seq > book.last_seq() {
            return Err(corrupt(format!(
                "book {}: the chain hash at offset {offset} is for seq {}, expected seq {next} \
                 (of {} events)",
                c.book,
                c.seq,
                book.last_seq()
            )));
        }
        book.hashes.push(c.hash);
        Ok(())
    }

    fn check_next(
        book: Option<&Book>,
        name: &BookName,
        seq: u64,
        at: Timestamp,
        offset: u64,
    ) -> Result<(), StoreError> {
        let (last_seq, last_time) = book.map_or((0, None), |b| (b.last_seq(), b.last_time()));
        if seq != last_seq + 1 {
            return Err(corrupt(format!(
                "book {name}: the record at offset {offset} has seq {seq} after seq {last_seq}"
            )));
        }
        if last_time.is_some_and(|t| at < t) {
            return Err(corrupt(format!(
                "book {name}: seq {seq} at offset {offset} was committed before seq {last_seq}"
            )));
        }
        Ok(())
    }

    fn apply_account(&mut self, account: &Account, offset: u64) -> Result<(), StoreError> {
        let existing = self.books.get(&account.book);
        Self::check_next(
            existing,
            &account.book,
            account.seq,
            account.opened_at,
            offset,
        )?;
        if existing.is_some_and(|b| b.accounts.contains_key(&account.name)) {
            return Err(corrupt(format!(
                "book {}: account {} is opened twice (again at seq {})",
                account.book, account.name, account.seq
            )));
        }
        let book = self.books.entry(account.book.clone()).or_default();
        book.push(account.seq, offset | ACCOUNT_BIT, account.opened_at);
        book.accounts.insert(
            account.name.clone(),
            AccountState {
                account: account.clone(),
                assets: BTreeMap::new(),
            },
        );
        self.events += 1;
        Ok(())
    }

    /// Applies a transaction record in phases: its place in the book, its
    /// running totals recomputed, its key and id unique, then the indexes.
    fn apply_transaction(
        &mut self,
        tx: &TxRecord,
        offset: u64,
        lookup: &dyn Lookup,
    ) -> Result<(), StoreError> {
        let c = &tx.commit;
        let at = |what: String| corrupt(format!("book {}, seq {}: {what}", c.book, c.seq));
        let key_fp = self.key_fp(c.idempotency_key.as_str());
        let tx_fp = self.tx_fp(c.tx_id);
        let Some(book) = self.books.get(&c.book) else {
            return Err(at("a transaction in a book with no accounts".to_owned()));
        };
        Self::check_next(Some(book), &c.book, c.seq, c.committed_at, offset)?;
        if c.postings.len() != tx.debits_after.len() {
            return Err(at("postings and running debits differ in number".to_owned()));
        }
        check_shape(c).map_err(|what| at(what.to_owned()))?;

        // A hold moves no posted balance: its legs record the totals they
        // leave as they were, and it adds to what the pairs hold.
        let is_hold = c.status == TxStatus::Pending;
        let (touched, held) = if is_hold {
            self.check_unmoved(book, tx, &at)?;
            (Vec::new(), hold_change(book, c, Change::Add, &at)?)
        } else {
            let touched = self.recompute_totals(book, tx, &at)?;
            let held = match c.pending_tx_id {
                Some(hold) => release(book, hold, c.committed_at, false, &at)?,
                None => Vec::new(),
            };
            (touched, held)
        };
        self.check_unique(book, c, (key_fp, tx_fp), lookup, &at)?;

        // Checked: now change things. (`touched` borrows from the record,
        // not from the indexes, and every account in it was found above.)
        let book = self
            .books
            .get_mut(&c.book)
            .ok_or_else(|| at("book vanished".to_owned()))?;
        for (account, asset, totals) in touched {
            let Some(state) = book.accounts.get_mut(account) else {
                return Err(at(format!("account {account} vanished")));
            };
            let pair = match state.assets.get_mut(asset) {
                Some(pair) => pair,
                None => state.assets.entry(asset.clone()).or_default(),
            };
            pair.totals = totals;
            pair.history.push(HistoryEntry::new(c.seq, totals.balance));
        }
        book.set_held(held, c.seq, &at)?;
        if is_hold {
            book.begin_hold(c, offset);
        } else if let Some(hold) = c.pending_tx_id {
            book.end_hold(hold, c.status, Some(c.tx_id), c.seq);
        }
        book.push(c.seq, offset, c.committed_at);
        book.keys.insert(key_fp, c.seq);
        self.tx_ids.insert(tx_fp, offset);
        self.events += 1;
        Ok(())
    }

    /// Recomputes every running total from the current ones; they must
    /// match what the record says, or the log and the indexes disagree.
    /// Returns each touched pair with its totals after the record.
    fn recompute_totals<'r>(
        &self,
        book: &Book,
        tx: &'r TxRecord,
        at: &dyn Fn(String) -> StoreError,
    ) -> Result<Vec<(&'r AccountName, &'r AssetCode, Totals)>, StoreError> {
        let c = &tx.commit;
        let mut touched: Vec<(&AccountName, &AssetCode, Totals)> = Vec::new();
        for (p, &debits_after) in c.postings.iter().zip(&tx.debits_after) {
            let Some(account) = book.accounts.get(&p.account) else {
                return Err(at(format!("posting to unopened account {}", p.account)));
            };
            if !self.assets.contains_key(&p.asset) {
                return Err(at(format!("posting in unregistered asset {}", p.asset)));
            }
            let index = match touched
                .iter()
                .position(|(a, s, _)| **a == p.account && **s == p.asset)
            {
                Some(i) => i,
                None => {
                    let now = account
                        .assets
                        .get(&p.asset)
                        .map(|pair| pair.totals)
                        .unwrap_or_default();
                    touched.push((&p.account, &p.asset, now));
                    touched.len() - 1
                }
            };
            let totals = &mut touched[index].2;
            let amount = p.amount.minor();
            let next = match p.side {
                Side::Debit => totals.balance.checked_add(amount).and_then(|balance| {
                    Some(Totals {
                        balance,
                        debits: totals.debits.checked_add(amount)?,
                        credits: totals.credits,
                    })
                }),
                Side::Credit => totals.balance.checked_sub(amount).and_then(|balance| {
                    Some(Totals {
                        balance,
                        debits: totals.debits,
                        credits: totals.credits.checked_add(amount)?,
                    })
                }),
            }
            .ok_or_else(|| at(format!("running totals of {} leave 128 bits", p.account)))?;
            if next.balance != p.balance_after.minor() || next.debits != debits_after {
                return Err(at(format!(
                    "posting to {} in {} records balance {} and debits {}, but the log adds up to {} and {}",
                    p.account,
                    p.asset,
                    p.balance_after.minor(),
                    debits_after,
                    next.balance,
                    next.debits
                )));
            }
            *totals = next;
        }
        Ok(touched)
    }

    /// The record's key is new in its book and its id new in the log.
    fn check_unique(
        &self,
        book: &Book,
        c: &Commit,
        (key_fp, tx_fp): (u64, u64),
        lookup: &dyn Lookup,
        at: &dyn Fn(String) -> StoreError,
    ) -> Result<(), StoreError> {
        // Keys are unique per book and ids across books; a shared
        // fingerprint is confirmed against the record it points at.
        for candidate in book.keys.candidates(key_fp) {
            let earlier = book
                .entry(candidate)
                .ok_or_else(|| at(format!("key index points at missing seq {candidate}")))?;
            if let Record::Transaction(t) = lookup.record_at(earlier.offset)?
                && t.commit.idempotency_key == c.idempotency_key
            {
                return Err(at(format!(
                    "idempotency key {:?} was already used at seq {}",
                    c.idempotency_key.as_str(),
                    t.commit.seq
                )));
            }
        }
        for candidate in self.tx_ids.candidates(tx_fp) {
            if let Record::Transaction(t) = lookup.record_at(candidate)?
                && t.commit.tx_id == c.tx_id
            {
                return Err(at(format!("transaction id {} is used twice", c.tx_id.0)));
            }
        }
        Ok(())
    }
}

/// What each status of a transaction record needs: a hold has legs, maybe
/// an expiry and no hold of its own; a settle has legs and names a hold; a
/// void has no legs and names one; a plain post has legs and nothing else.
fn check_shape(c: &Commit) -> Result<(), &'static str> {
    let legs = (talea_core::limits::POSTINGS_MIN..=talea_core::limits::POSTINGS_MAX)
        .contains(&c.postings.len());
    match c.status {
        TxStatus::Pending if legs && c.pending_tx_id.is_none() => {
            if c.expires_at.is_some_and(|at| at <= c.committed_at) {
                Err("a hold that expired before it was committed")
            } else {
                Ok(())
            }
        }
        TxStatus::Posted if legs && c.expires_at.is_none() => Ok(()),
        TxStatus::Voided
            if c.postings.is_empty() && c.pending_tx_id.is_some() && c.expires_at.is_none() =>
        {
            Ok(())
        }
        TxStatus::Expired => Err("a transaction recorded as expired"),
        _ => Err("a transaction whose status, legs, expiry and hold do not fit together"),
    }
}

impl Book {
    fn push(&mut self, seq: u64, entry: u64, at: Timestamp) {
        self.entries.push(entry);
        if self.times.last().is_none_or(|(_, t)| *t != at) {
            self.times.push((seq, at));
        }
    }

    /// The seq of its last event (0: none).
    pub fn last_seq(&self) -> u64 {
        self.entries.len() as u64
    }

    /// The seq of its last event with a stored chain hash (0: none).
    pub fn chained_seq(&self) -> u64 {
        self.hashes.len() as u64
    }

    /// The chain hash of its last chained event (genesis: none).
    pub fn chain_head(&self) -> [u8; 32] {
        self.hashes
            .len()
            .checked_sub(1)
            .and_then(|i| self.hashes.get(i))
            .unwrap_or(talea_verify::chain::GENESIS)
    }

    /// The stored chain hash of event `seq`, if it has one.
    pub fn hash(&self, seq: u64) -> Option<[u8; 32]> {
        let index = usize::try_from(seq.checked_sub(1)?).ok()?;
        self.hashes.get(index)
    }

    /// The commit time of its last event.
    pub fn last_time(&self) -> Option<Timestamp> {
        self.times.last().map(|(_, t)| *t)
    }

    /// The event at `seq`.
    pub fn entry(&self, seq: u64) -> Option<EntryRef> {
        let index = usize::try_from(seq.checked_sub(1)?).ok()?;
        let raw = self.entries.get(index)?;
        Some(EntryRef::of(seq, raw))
    }

    /// Events with seq above `after`, in order.
    pub fn entries_after(&self, after: u64) -> impl Iterator<Item = EntryRef> + '_ {
        let start = usize::try_from(after)
            .unwrap_or(usize::MAX)
            .min(self.entries.len());
        self.entries
            .iter_from(start)
            .enumerate()
            .map(move |(i, raw)| EntryRef::of((start + i) as u64 + 1, raw))
    }

    /// The commit time of event `seq`, if the book has it.
    pub fn time_of(&self, seq: u64) -> Option<Timestamp> {
        if seq == 0 || seq > self.last_seq() {
            return None;
        }
        let runs = self.times.partition_point(|(first, _)| *first <= seq);
        runs.checked_sub(1).map(|i| self.times[i].1)
    }

    /// The last seq committed at or before `at` (0: none).
    pub fn cut(&self, at: Timestamp) -> u64 {
        let runs = self.times.partition_point(|(_, t)| *t <= at);
        match (runs, self.times.get(runs)) {
            (0, _) => 0,
            (_, Some((next_first, _))) => next_first - 1,
            (_, None) => self.last_seq(),
        }
    }

    /// One account.
    pub fn account(&self, name: &AccountName) -> Option<&AccountState> {
        self.accounts.get(name)
    }

    /// Accounts by name, strictly after `after`.
    pub fn accounts_after<'a>(
        &'a self,
        after: Option<&AccountName>,
    ) -> impl Iterator<Item = &'a AccountState> + 'a {
        use std::ops::Bound;
        let lower = match after {
            Some(name) => Bound::Excluded(name.clone()),
            None => Bound::Unbounded,
        };
        self.accounts
            .range((lower, Bound::Unbounded))
            .map(|(_, a)| a)
    }

    /// The accounts whose name starts with `prefix` (every account for
    /// `None`), by name: a range of the ordered map from `prefix` on, cut
    /// at the first name past it, so it visits the matching accounts only.
    pub fn accounts_with_prefix<'a>(
        &'a self,
        prefix: Option<&'a AccountName>,
    ) -> impl Iterator<Item = &'a AccountState> + 'a {
        use std::ops::Bound;
        let lower = prefix.map_or(Bound::Unbounded, |p| Bound::Included(p.clone()));
        self.accounts
            .range((lower, Bound::Unbounded))
            .map(|(_, a)| a)
            .take_while(move |a| {
                prefix.is_none_or(|p| a.account.name.as_str().starts_with(p.as_str()))
            })
    }

    /// Every account, by name.
    pub fn accounts(&self) -> impl Iterator<Item = &AccountState> {
        self.accounts.values()
    }
}

impl PairState {
    /// The last history entry at or before `cut`.
    pub fn as_of(&self, cut: u64) -> Option<HistoryEntry> {
        let n = self.history.partition_point(|e| e.seq <= cut);
        n.checked_sub(1).and_then(|i| self.history.get(i))
    }

    /// The history entries after `after`, in seq order.
    pub fn entries_after(&self, after: u64) -> impl Iterator<Item = HistoryEntry> + '_ {
        let start = self.history.partition_point(|e| e.seq <= after);
        self.history.iter_from(start)
    }

    /// Seqs of the transactions that touched the pair after `after`, at most `limit`.
    pub fn seqs_after(&self, after: u64, limit: usize) -> impl Iterator<Item = u64> + '_ {
        let start = self.history.partition_point(|e| e.seq <= after);
        self.history.iter_from(start).take(limit).map(|e| e.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::HashMap;
    use talea_core::{AccountKind, Amount, IdempotencyKey, Scale, StoredPosting};

    use crate::codec::ExpiryRecord;

    /// The records applied so far, by offset.
    struct Records(HashMap<u64, Record>);

    impl Lookup for Records {
        fn record_at(&self, offset: u64) -> Result<Record, StoreError> {
            self.0
                .get(&offset)
                .cloned()
                .ok_or_else(|| corrupt(format!("no record at {offset}")))
        }
    }

    /// A state and its records, applied at offsets 100, 200, ...
    struct Log {
        state: State,
        records: Records,
        next: u64,
    }

    impl Log {
        fn apply(&mut self, record: Record) -> Result<(), StoreError> {
            self.next += 100;
            let result = self.state.apply(&record, self.next, &self.records);
            if result.is_ok() {
                self.records.0.insert(self.next, record);
            }
            result
        }
    }

    fn name(s: &str) -> AccountName {
        AccountName::parse(s).expect("account")
    }

    fn book_name() -> BookName {
        BookName::parse("b").expect("book")
    }

    fn btc() -> AssetCode {
        AssetCode::parse("BTC").expect("asset")
    }

    /// A transaction of `n` from `hot` to `alice`'s debit, with the given
    /// running totals per leg (balance, debits).
    fn tx(seq: u64, status: TxStatus, n: i128, after: [(i128, i128); 2]) -> TxRecord {
        let leg = |account: &str, side, balance| StoredPosting {
            account: name(account),
            asset: btc(),
            side,
            amount: Amount::from_minor(n),
            balance_after: Amount::from_minor(balance),
        };
        TxRecord {
            commit: Commit {
                tx_id: TxId(uuid::Uuid::from_u128(u128::from(seq))),
                book: book_name(),
                seq,
                committed_at: Timestamp::from_micros(seq as i64),
                idempotency_key: IdempotencyKey::parse(&format!("k{seq}")).expect("key"),
                postings: vec![
                    leg("alice", Side::Debit, after[0].0),
                    leg("hot", Side::Credit, after[1].0),
                ],
                occurred_at: None,
                memo: None,
                metadata: None,
                status,
                expires_at: None,
                pending_tx_id: None,
            },
            request_hash: [0; 32],
            debits_after: vec![after[0].1, after[1].1],
        }
    }

    /// A log with BTC, `alice` and `hot` (seqs 1 and 2), and a hold of 30
    /// (seq 3) on them, expiring at 10 µs.
    fn with_a_hold() -> Log {
        let mut log = Log {
            state: State::new(0),
            records: Records(HashMap::new()),
            next: 0,
        };
        log.apply(Record::Asset(Asset {
            code: btc(),
            scale: Scale::new(8).expect("scale"),
            name: None,
        }))
        .expect("asset");
        for (seq, account) in [(1, "alice"), (2, "hot")] {
            log.apply(Record::AccountOpened(Account {
                book: book_name(),
                name: name(account),
                kind: AccountKind::Asset,
                min_balance: None,
                metadata: "{}".to_owned(),
                seq,
                opened_at: Timestamp::from_micros(seq as i64),
            }))
            .expect("account");
        }
        let mut hold = tx(3, TxStatus::Pending, 30, [(0, 0), (0, 0)]);
        hold.commit.expires_at = Some(Timestamp::from_micros(10));
        log.apply(Record::Transaction(hold)).expect("hold");
        log
    }

    fn hold_id() -> TxId {
        TxId(uuid::Uuid::from_u128(3))
    }

    fn void(seq: u64) -> Record {
        let mut void = tx(seq, TxStatus::Voided, 1, [(0, 0), (0, 0)]);
        void.commit.postings.clear();
        void.debits_after.clear();
        void.commit.pending_tx_id = Some(hold_id());
        Record::Transaction(void)
    }

    fn expiry(seq: u64, at: i64) -> Record {
        Record::HoldExpired(ExpiryRecord {
            book: book_name(),
            seq,
            committed_at: Timestamp::from_micros(at),
            hold: hold_id(),
        })
    }

    fn held_of(log: &Log, account: &str) -> Held {
        log.state
            .book(&book_name())
            .and_then(|b| b.account(&name(account)))
            .and_then(|a| a.assets.get(&btc()))
            .map(|p| p.held)
            .unwrap_or_default()
    }

    #[test]
    fn replay_tracks_a_hold_and_refuses_a_second_ending() {
        let mut log = with_a_hold();
        assert_eq!(held_of(&log, "alice").debits, Amount::from_minor(30));
        assert_eq!(held_of(&log, "hot").credits, Amount::from_minor(30));
        log.apply(void(4)).expect("a void");
        assert!(held_of(&log, "alice").is_zero());
        let b = log.state.book(&book_name()).expect("book");
        let entry = b.hold(&hold_id()).expect("the hold");
        assert_eq!(entry.status, TxStatus::Voided);
        assert_eq!(entry.ended_seq, Some(4));
        assert!(entry.live.is_none());
        assert_eq!(b.due(Timestamp::from_micros(i64::MAX)).count(), 0);
        let err = log.apply(void(5)).expect_err("a second void");
        assert!(
            matches!(&err, StoreError::Corrupt(m) if m.contains("ended before")),
            "{err}"
        );
        let err = log
            .apply(expiry(5, 20))
            .expect_err("an expiry after a void");
        assert!(matches!(err, StoreError::Corrupt(_)));
        assert_eq!(log.state.event_count(), 4);
    }

    #[test]
    fn replay_holds_expiries_and_settles_to_the_hold_s_expiry() {
        let mut log = with_a_hold();
        // Not due yet at 9 µs: an expiry then is corrupt.
        assert!(log.apply(expiry(4, 9)).is_err());
        // A settle at or after the expiry is corrupt too.
        let mut late = tx(4, TxStatus::Posted, 30, [(30, 30), (-30, 0)]);
        late.commit.committed_at = Timestamp::from_micros(10);
        late.commit.pending_tx_id = Some(hold_id());
        assert!(log.apply(Record::Transaction(late)).is_err());
        log.apply(expiry(4, 10)).expect("due at 10");
        let b = log.state.book(&book_name()).expect("book");
        assert_eq!(
            b.hold(&hold_id()).map(|h| h.status),
            Some(TxStatus::Expired)
        );
        assert_eq!(b.entry(4).map(|e| e.kind), Some(EntryKind::Expiry));
        assert!(held_of(&log, "hot").is_zero());
    }

    #[test]
    fn replay_refuses_holds_that_move_balances_or_end_nothing() {
        let mut log = with_a_hold();
        // A hold's legs must leave the totals as they are.
        let moving = tx(4, TxStatus::Pending, 5, [(5, 5), (-5, 0)]);
        assert!(log.apply(Record::Transaction(moving)).is_err());
        // A void of no hold of the book.
        let mut stray = void(4);
        if let Record::Transaction(t) = &mut stray {
            t.commit.pending_tx_id = Some(TxId(uuid::Uuid::from_u128(99)));
        }
        assert!(log.apply(stray).is_err());
        // A settle with an expiry, a posted record with no legs.
        let mut odd = tx(4, TxStatus::Posted, 30, [(30, 30), (-30, 0)]);
        odd.commit.expires_at = Some(Timestamp::from_micros(50));
        assert!(log.apply(Record::Transaction(odd)).is_err());
        let mut empty = tx(4, TxStatus::Posted, 1, [(0, 0), (0, 0)]);
        empty.commit.postings.clear();
        empty.debits_after.clear();
        assert!(log.apply(Record::Transaction(empty)).is_err());
        // Nothing above changed the state: the hold still settles.
        let mut settle = tx(4, TxStatus::Posted, 30, [(30, 30), (-30, 0)]);
        settle.commit.pending_tx_id = Some(hold_id());
        log.apply(Record::Transaction(settle)).expect("the settle");
        assert!(held_of(&log, "alice").is_zero());
        let b = log.state.book(&book_name()).expect("book");
        let pair = b
            .account(&name("alice"))
            .and_then(|a| a.assets.get(&btc()))
            .expect("pair");
        assert_eq!(pair.totals.balance, 30);
        assert_eq!(pair.first_hold, Some(3));
        assert_eq!(pair.history.len(), 1, "the hold is not in the history");
    }

    fn link(seq: u64, byte: u8) -> Record {
        Record::Chain(ChainRecord {
            book: book_name(),
            seq,
            hash: [byte; 32],
        })
    }

    #[test]
    fn replay_takes_chain_hashes_in_seq_order_after_their_events() {
        let mut log = with_a_hold();
        let chain_of = |log: &Log| {
            let b = log.state.book(&book_name()).expect("book");
            (b.chained_seq(), b.chain_head(), b.hash(1), b.hash(2))
        };
        assert_eq!(chain_of(&log), (0, [0; 32], None, None));
        // Not the next seq, or a book with no events: corrupt, nothing changed.
        assert!(log.apply(link(2, 2)).is_err());
        let mut stray = link(1, 1);
        if let Record::Chain(c) = &mut stray {
            c.book = BookName::parse("other").expect("book");
        }
        assert!(log.apply(stray).is_err());
        assert_eq!(chain_of(&log).0, 0);
        // Seqs 1 to 3 exist; a log from before the chain catches up later.
        for seq in 1..=3 {
            log.apply(link(seq, seq as u8)).expect("the next hash");
        }
        assert_eq!(chain_of(&log), (3, [3; 32], Some([1; 32]), Some([2; 32])));
        // Not beyond the last event, and never twice.
        assert!(log.apply(link(4, 4)).is_err());
        assert!(log.apply(link(3, 3)).is_err());
        log.apply(void(4)).expect("a void");
        log.apply(link(4, 4)).expect("its hash");
        assert_eq!(log.state.event_count(), 4, "hashes are not events");
    }

    #[test]
    fn history_entries_pack_and_keep_every_balance() {
        assert_eq!(std::mem::size_of::<HistoryEntry>(), 24);
        for b in [0, 1, -1, i128::MAX, i128::MIN, 1 << 64, -(1 << 64) - 7] {
            assert_eq!(HistoryEntry::new(1, b).balance(), b);
        }
    }

    #[test]
    fn cut_finds_the_last_seq_at_or_before_a_time() {
        let mut book = Book::default();
        let t = Timestamp::from_micros;
        for (seq, at) in [(1, 10), (2, 10), (3, 20), (4, 30), (5, 30)] {
            book.push(seq, seq * 100, t(at));
        }
        assert_eq!(book.times.len(), 3);
        assert_eq!(book.cut(t(9)), 0);
        assert_eq!(book.cut(t(10)), 2);
        assert_eq!(book.cut(t(19)), 2);
        assert_eq!(book.cut(t(20)), 3);
        assert_eq!(book.cut(t(30)), 5);
        assert_eq!(book.cut(t(i64::MAX)), 5);
        assert_eq!(book.cut(t(i64::MIN)), 0);
        assert_eq!(
            [0, 1, 2, 3, 4, 5, 6].map(|seq| book.time_of(seq)),
            [
                None,
                Some(t(10)),
                Some(t(10)),
                Some(t(20)),
                Some(t(30)),
                Some(t(30)),
                None
            ]
        );
        assert_eq!(
            book.entries_after(3).map(|e| e.seq).collect::<Vec<_>>(),
            vec![4, 5]
        );
        assert_eq!(book.entries_after(u64::MAX).count(), 0);
        assert_eq!(book.entry(0), None);
        assert_eq!(book.entry(6), None);
    }
}
