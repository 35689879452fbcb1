//! The in-memory half of `commit_batch`, shared by every backend: decides each
//! draft's fate against the state read under the book's write lock.
//!
//! A backend reads the inputs ([`Loaded`]: the accounts, balance rows, asset
//! scales and stored idempotency keys the batch names), runs a [`Planner`]
//! over the drafts in order, and writes the [`Planned`] ones. The rules
//! (idempotency by key and request hash, unknown accounts, checked
//! arithmetic, `min_balance` on the normal side, dense seqs, running
//! `balance_after`) live here once, so the stores cannot drift apart on
//! them, and they are unit-tested without any database.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::{Held, Outcome, Rejection};

mod holds;

pub use holds::{HoldState, available, expiries};
use talea_core::{
    AccountKind, AccountName, Amount, AssetCode, BookName, Commit, Decimal, Draft, DraftPosting,
    IdempotencyKey, Intent, Scale, Side, StoredPosting, Timestamp, TxId, TxStatus,
};

/// An account and asset pair, the unit of balances.
pub type Pair = (AccountName, AssetCode);

/// A pair a draft touches, with its totals before and after the draft.
type Touched = (Pair, Totals, Totals);

/// What the planner needs of an account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountRule {
    /// Decides the normal side.
    pub kind: AccountKind,
    /// The lowest normal-side balance allowed, per asset.
    pub min_balance: Option<Decimal>,
}

/// An account's totals in one asset. Each is checked against 128 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Totals {
    /// Debits minus credits.
    pub balance: i128,
    /// Cumulative debits.
    pub debits: i128,
    /// Cumulative credits.
    pub credits: i128,
}

impl Totals {
    /// The totals after one posting, or `None` if any of them leaves 128 bits.
    fn apply(self, side: Side, amount: Amount) -> Option<Self> {
        let amount = amount.minor();
        Some(match side {
            Side::Debit => Self {
                balance: self.balance.checked_add(amount)?,
                debits: self.debits.checked_add(amount)?,
                credits: self.credits,
            },
            Side::Credit => Self {
                balance: self.balance.checked_sub(amount)?,
                debits: self.debits,
                credits: self.credits.checked_add(amount)?,
            },
        })
    }
}

/// Everything read from the database under the book's lock, before the batch.
#[derive(Debug, Default)]
pub struct Loaded {
    /// Accounts of the book that the batch names (absent: not opened).
    pub accounts: HashMap<AccountName, AccountRule>,
    /// Existing balance rows among the pairs the batch touches (absent: zero).
    pub balances: HashMap<Pair, Totals>,
    /// Scales of the registered assets among those the batch moves.
    pub scales: HashMap<AssetCode, Scale>,
    /// Commits made before the batch under keys that the batch uses.
    pub stored: HashMap<IdempotencyKey, StoredKey>,
    /// What the book's live holds (pending, `expires_at` after the batch's
    /// commit time) reserve on the pairs the batch touches (absent: nothing).
    pub held: HashMap<Pair, Held>,
    /// The transactions of the book that the batch's settles and voids
    /// name (absent: not in the book).
    pub holds: HashMap<TxId, HoldState>,
}

/// What a batch needs read under the lock: its distinct accounts, assets
/// and idempotency keys, in no particular order.
#[derive(Debug, Clone, Default)]
pub struct Wanted<'a> {
    /// Names of the accounts its postings name.
    pub accounts: Vec<&'a str>,
    /// The assets its postings move.
    pub assets: Vec<&'a AssetCode>,
    /// Its drafts' idempotency keys.
    pub keys: Vec<&'a str>,
    /// The holds its settles and voids name; load them first, then add
    /// their accounts and assets with [`Wanted::add_holds`].
    pub holds: Vec<TxId>,
}

impl<'a> Wanted<'a> {
    /// What `drafts` need.
    pub fn of(drafts: &'a [Draft]) -> Self {
        let mut accounts = std::collections::HashSet::new();
        let mut assets = std::collections::HashSet::new();
        let mut keys = std::collections::HashSet::new();
        let mut holds = std::collections::HashSet::new();
        for draft in drafts {
            keys.insert(draft.idempotency_key.as_str());
            holds.extend(draft.intent.ends());
            for p in &draft.postings {
                accounts.insert(p.account.as_str());
                assets.insert(&p.asset);
            }
        }
        Wanted {
            accounts: accounts.into_iter().collect(),
            assets: assets.into_iter().collect(),
            keys: keys.into_iter().collect(),
            holds: holds.into_iter().collect(),
        }
    }

    /// Adds the accounts and assets of the loaded holds' postings (a
    /// settle of a whole hold posts them).
    pub fn add_holds(&mut self, holds: &'a HashMap<TxId, HoldState>) {
        for state in holds.values() {
            for p in &state.commit.postings {
                if !self.accounts.contains(&p.account.as_str()) {
                    self.accounts.push(p.account.as_str());
                }
                if !self.assets.contains(&&p.asset) {
                    self.assets.push(&p.asset);
                }
            }
        }
    }
}

/// A commit found under an idempotency key.
#[derive(Debug, Clone)]
pub struct StoredKey {
    /// The request hash it was committed with.
    pub request_hash: [u8; 32],
    /// The commit itself, for `Deduplicated`.
    pub commit: Commit,
}

impl StoredKey {
    /// What a backend read under the lock (commits with their request
    /// hashes), keyed as `Loaded::stored` wants it.
    pub fn by_key(found: Vec<(Commit, [u8; 32])>) -> HashMap<IdempotencyKey, StoredKey> {
        found
            .into_iter()
            .map(|(commit, request_hash)| {
                (
                    commit.idempotency_key.clone(),
                    StoredKey {
                        request_hash,
                        commit,
                    },
                )
            })
            .collect()
    }
}

/// A posting as it will be written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedPosting {
    /// Signed storage amount.
    pub amount: i128,
    /// The account's storage balance in the asset after this posting.
    pub balance_after: i128,
    /// The account's cumulative debits in the asset after this posting.
    pub debits_after: i128,
}

/// A draft that passed, with everything needed to write it.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The commit to report (seq, tx id and time assigned).
    pub commit: Commit,
    /// The request hash to record beside the key.
    pub request_hash: [u8; 32],
    /// Per posting, in leg order: the values stored beside it.
    pub postings: Vec<PlannedPosting>,
    /// Final totals of every pair the draft touched, in first-touch order.
    pub touched: Vec<(Pair, Totals)>,
    /// Held amounts the draft changed (a hold adds, a settle or void
    /// releases), at their values after it. Not stored: the holds are.
    pub held: Vec<(Pair, Held)>,
    /// The seq of the hold a settle or void ends (the stores end its
    /// `holds` row by the primary key).
    pub pending_seq: Option<u64>,
}

impl Planned {
    fn new(
        commit: Commit,
        draft: &Draft,
        postings: Vec<PlannedPosting>,
        touched: Vec<Touched>,
        held: Vec<(Pair, Held, Held)>,
    ) -> Self {
        Self {
            commit,
            request_hash: draft.request_hash(),
            postings,
            touched: touched
                .into_iter()
                .map(|(pair, _, after)| (pair, after))
                .collect(),
            held: held
                .into_iter()
                .map(|(pair, _, after)| (pair, after))
                .collect(),
            pending_seq: None,
        }
    }
}

/// The planner's decision on one draft.
// A verdict lives only while its batch is planned; boxing the outcome
// would allocate for every refusal and deduplication instead.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Verdict {
    /// It passes: write it.
    Write(Box<Planned>),
    /// Same request as the draft at this index of the batch, which passed.
    SameAsInBatch(usize),
    /// Settled without writing: deduplicated against an earlier commit, or rejected.
    Settled(Outcome),
}

/// A key used by a draft of this batch that passed.
#[derive(Debug, Clone, Copy)]
struct BatchKey {
    request_hash: [u8; 32],
    tx_id: TxId,
    index: usize,
}

/// Applies a batch's drafts in order against the loaded state.
#[derive(Debug)]
pub struct Planner<'a> {
    book: &'a BookName,
    loaded: &'a Loaded,
    committed_at: Timestamp,
    next_seq: u64,
    /// Totals changed by the drafts accepted so far (over `loaded.balances`).
    balances: HashMap<Pair, Totals>,
    /// Held amounts changed by the drafts accepted so far (over `loaded.held`).
    held: HashMap<Pair, Held>,
    /// Holds made or ended by the drafts accepted so far (over `loaded.holds`).
    holds: HashMap<TxId, HoldState>,
    /// Keys of the drafts accepted so far.
    batch_keys: HashMap<IdempotencyKey, BatchKey>,
    /// The backend's own refusals, checked once a draft's accounts and assets are known.
    draft_check: DraftCheck,
}

/// A backend's extra check of a draft whose key is free and whose accounts
/// and assets exist, run before its arithmetic: `Err` rejects the draft.
/// It is for what one backend cannot store (Postgres: an `occurred_at`
/// outside chrono's range), so the other backends are not bound by it.
pub type DraftCheck = fn(&Draft) -> Result<(), Rejection>;

/// The check of a backend that stores every valid draft.
fn accept_all(_: &Draft) -> Result<(), Rejection> {
    Ok(())
}

impl<'a> Planner<'a> {
    /// A planner whose first passing draft takes `last_seq + 1`.
    pub fn new(
        book: &'a BookName,
        loaded: &'a Loaded,
        last_seq: u64,
        committed_at: Timestamp,
    ) -> Self {
        Self {
            book,
            loaded,
            committed_at,
            next_seq: last_seq + 1,
            balances: HashMap::new(),
            held: HashMap::new(),
            holds: HashMap::new(),
            batch_keys: HashMap::new(),
            draft_check: accept_all,
        }
    }

    /// Adds the backend's own check of each draft (see [`DraftCheck`]).
    pub fn with_draft_check(mut self, check: DraftCheck) -> Self {
        self.draft_check = check;
        self
    }

    /// Decides every draft of a batch in order, accepting each that passes
    /// so that later drafts see it: the verdicts, one per draft.
    pub fn decide_all(&mut self, drafts: &[Draft]) -> Vec<Verdict> {
        drafts
            .iter()
            .enumerate()
            .map(|(i, draft)| {
                let verdict = self.evaluate(draft);
                if let Verdict::Write(planned) = &verdict {
                    self.accept(i, planned);
                }
                verdict
            })
            .collect()
    }

    /// The seq of the last accepted draft (or the starting `last_seq`).
    pub fn last_seq(&self) -> u64 {
        self.next_seq - 1
    }

    /// Current totals of a pair: as left by accepted drafts, else as loaded.
    fn totals(&self, pair: &Pair) -> Totals {
        self.balances
            .get(pair)
            .or_else(|| self.loaded.balances.get(pair))
            .copied()
            .unwrap_or_default()
    }

    /// Current held amounts of a pair: as left by accepted drafts, else as loaded.
    fn held(&self, pair: &Pair) -> Held {
        self.held
            .get(pair)
            .or_else(|| self.loaded.held.get(pair))
            .copied()
            .unwrap_or_default()
    }

    /// A transaction that a settle or void names, as accepted drafts left it.
    fn hold(&self, tx_id: &TxId) -> Option<&HoldState> {
        self.holds
            .get(tx_id)
            .or_else(|| self.loaded.holds.get(tx_id))
    }

    /// Decides one draft without changing any state; `accept` a `Write` to make
    /// later drafts see it.
    pub fn evaluate(&self, draft: &Draft) -> Verdict {
        let key = &draft.idempotency_key;
        let hash = draft.request_hash();
        if let Some(earlier) = self.batch_keys.get(key) {
            return if earlier.request_hash == hash {
                Verdict::SameAsInBatch(earlier.index)
            } else {
                Verdict::Settled(Outcome::Rejected(Rejection::IdempotencyKeyReused(
                    earlier.tx_id,
                )))
            };
        }
        if let Some(stored) = self.loaded.stored.get(key) {
            return Verdict::Settled(if stored.request_hash == hash {
                Outcome::Deduplicated(stored.commit.clone())
            } else {
                Outcome::Rejected(Rejection::IdempotencyKeyReused(stored.commit.tx_id))
            });
        }
        match self.plan(draft) {
            Ok(planned) => Verdict::Write(Box::new(planned)),
            Err(rejection) => Verdict::Settled(Outcome::Rejected(rejection)),
        }
    }

    /// Decides a draft whose key is free, by what it does.
    fn plan(&self, draft: &Draft) -> Result<Planned, Rejection> {
        match draft.intent {
            Intent::Post => self.plan_post(draft),
            Intent::Hold { expires_at } => self.plan_hold(draft, expires_at),
            Intent::Settle { hold } => self.plan_settle(draft, hold),
            Intent::Void { hold } => self.plan_void(draft, hold),
        }
    }

    /// A posted transaction, in phases: what the draft names exists, the
    /// postings applied in order, `min_balance` on the net effect against
    /// the available balance, then the commit.
    fn plan_post(&self, draft: &Draft) -> Result<Planned, Rejection> {
        self.check_known(draft)?;
        let (touched, postings) = self.apply_postings(&draft.postings)?;
        let held: Vec<(Pair, Held, Held)> = touched
            .iter()
            .map(|(pair, _, _)| {
                let held = self.held(pair);
                (pair.clone(), held, held)
            })
            .collect();
        self.check_min_balance(&touched, &held)?;
        let commit = self.commit(draft, &draft.postings, &postings, TxStatus::Posted);
        Ok(Planned::new(commit, draft, postings, touched, Vec::new()))
    }

    /// The commit a passing draft makes.
    fn commit(
        &self,
        draft: &Draft,
        legs: &[DraftPosting],
        planned: &[PlannedPosting],
        status: TxStatus,
    ) -> Commit {
        Commit {
            tx_id: TxId::generate(),
            book: self.book.clone(),
            seq: self.next_seq,
            committed_at: self.committed_at,
            idempotency_key: draft.idempotency_key.clone(),
            postings: legs
                .iter()
                .zip(planned)
                .map(|(p, planned)| StoredPosting {
                    account: p.account.clone(),
                    asset: p.asset.clone(),
                    side: p.side,
                    amount: p.amount,
                    balance_after: Amount::from_minor(planned.balance_after),
                })
                .collect(),
            occurred_at: draft.occurred_at,
            memo: draft.memo.clone(),
            metadata: draft.metadata.clone(),
            status,
            expires_at: None,
            pending_tx_id: None,
        }
    }

    /// Every account and asset the draft names is known, and the backend can
    /// store it.
    fn check_known(&self, draft: &Draft) -> Result<(), Rejection> {
        if let Some(p) = draft
            .postings
            .iter()
            .find(|p| !self.loaded.accounts.contains_key(&p.account))
        {
            return Err(Rejection::UnknownAccount(p.account.clone()));
        }
        // The ledger checks assets before drafting (it needs their scales to
        // parse amounts), so this only guards the store's own integrity; the
        // trait has no dedicated rejection for it.
        if let Some(p) = draft
            .postings
            .iter()
            .find(|p| !self.loaded.scales.contains_key(&p.asset))
        {
            return Err(Rejection::Failed(format!(
                "asset {} is not registered",
                p.asset
            )));
        }
        // What only this backend cannot store (a time outside its range, say).
        (self.draft_check)(draft)
    }

    /// Applies each posting in order to its pair's running totals: the
    /// touched pairs (before and after the draft, in first-touch order) and
    /// each posting's balance after it.
    fn apply_postings(
        &self,
        legs: &[DraftPosting],
    ) -> Result<(Vec<Touched>, Vec<PlannedPosting>), Rejection> {
        // (pair, totals before the draft, totals after it), in first-touch order.
        let mut touched: Vec<Touched> = Vec::new();
        let mut postings = Vec::with_capacity(legs.len());
        for p in legs {
            let index = match touched
                .iter()
                .position(|(pair, _, _)| pair.0 == p.account && pair.1 == p.asset)
            {
                Some(i) => i,
                None => {
                    let pair = (p.account.clone(), p.asset.clone());
                    let before = self.totals(&pair);
                    touched.push((pair, before, before));
                    touched.len() - 1
                }
            };
            let entry = &mut touched[index];
            entry.2 = entry
                .2
                .apply(p.side, p.amount)
                .ok_or(Rejection::AmountOutOfRange)?;
            postings.push(PlannedPosting {
                amount: p.signed().minor(),
                balance_after: entry.2.balance,
                debits_after: entry.2.debits,
            });
        }
        Ok((touched, postings))
    }

    /// Refuses a draft that takes an account's available balance below its
    /// `min_balance`. `touched` gives each pair's posted totals and `held`
    /// its held amounts, before and after the draft; a pair missing from
    /// one list keeps its current value there.
    fn check_min_balance(
        &self,
        touched: &[Touched],
        held: &[(Pair, Held, Held)],
    ) -> Result<(), Rejection> {
        // `min_balance` binds only where the draft lowers the available
        // balance: a deposit into an account already below its minimum is
        // allowed, and only the draft's net effect per pair counts.
        let pairs = touched
            .iter()
            .map(|(pair, _, _)| pair)
            .chain(held.iter().map(|(pair, _, _)| pair));
        let mut seen: Vec<&Pair> = Vec::new();
        for pair in pairs {
            if seen.contains(&pair) {
                continue;
            }
            seen.push(pair);
            let (before, after) = touched
                .iter()
                .find(|(p, _, _)| p == pair)
                .map_or_else(|| (self.totals(pair), self.totals(pair)), |t| (t.1, t.2));
            let (held_before, held_after) = held
                .iter()
                .find(|(p, _, _)| p == pair)
                .map_or_else(|| (self.held(pair), self.held(pair)), |h| (h.1, h.2));
            self.check_pair(pair, (before, held_before), (after, held_after))?;
        }
        Ok(())
    }

    /// The `min_balance` rule on one pair, given its posted totals and held
    /// amounts before and after the draft.
    fn check_pair(
        &self,
        (account, asset): &Pair,
        before: (Totals, Held),
        after: (Totals, Held),
    ) -> Result<(), Rejection> {
        let Some(rule) = self.loaded.accounts.get(account) else {
            return Ok(());
        };
        let Some(min) = rule.min_balance else {
            return Ok(());
        };
        let Some(&scale) = self.loaded.scales.get(asset) else {
            return Ok(());
        };
        let available_before = available(rule.kind, before.0, before.1);
        let available_after =
            available(rule.kind, after.0, after.1).ok_or(Rejection::AmountOutOfRange)?;
        if available_before.is_some_and(|b| available_after >= b) {
            return Ok(());
        }
        if min.cmp_amount(available_after, scale) == Ordering::Less {
            return Err(Rejection::InsufficientBalance {
                account: account.clone(),
                asset: asset.clone(),
                balance: Amount::from_minor(before.0.balance),
            });
        }
        Ok(())
    }

    /// Makes a passing draft (at `index` in the batch) visible to later drafts.
    pub fn accept(&mut self, index: usize, planned: &Planned) {
        debug_assert_eq!(
            planned.commit.seq, self.next_seq,
            "plans are accepted in order"
        );
        for (pair, totals) in &planned.touched {
            self.balances.insert(pair.clone(), *totals);
        }
        for (pair, held) in &planned.held {
            self.held.insert(pair.clone(), *held);
        }
        let commit = &planned.commit;
        match (commit.status, commit.pending_tx_id) {
            (TxStatus::Pending, _) => {
                self.holds.insert(
                    commit.tx_id,
                    HoldState {
                        commit: commit.clone(),
                        status: TxStatus::Pending,
                        ended_by: None,
                    },
                );
            }
            (status, Some(hold)) => {
                if let Some(mut state) = self.hold(&hold).cloned() {
                    state.status = status;
                    state.ended_by = Some(commit.tx_id);
                    self.holds.insert(hold, state);
                }
            }
            _ => {}
        }
        self.batch_keys.insert(
            planned.commit.idempotency_key.clone(),
            BatchKey {
                request_hash: planned.request_hash,
                tx_id: planned.commit.tx_id,
                index,
            },
        );
        self.next_seq += 1;
    }
}

/// Turns the verdicts into outcomes, answering in-batch retries with the
/// commit of the draft they repeat.
pub fn outcomes(verdicts: Vec<Verdict>) -> Vec<Outcome> {
    let mut out: Vec<Outcome> = Vec::with_capacity(verdicts.len());
    for verdict in verdicts {
        let outcome = match verdict {
            Verdict::Write(planned) => Outcome::Committed(planned.commit),
            Verdict::Settled(outcome) => outcome,
            Verdict::SameAsInBatch(index) => match out.get(index) {
                Some(Outcome::Committed(commit)) => Outcome::Deduplicated(commit.clone()),
                // The planner only points at earlier drafts that it accepted.
                _ => Outcome::Rejected(Rejection::Failed(format!(
                    "internal error: retry of draft {index} which did not commit"
                ))),
            },
        };
        out.push(outcome);
    }
    out
}

/// The balance rows that writing `plans` (in order) leaves: each pair once,
/// in first-touch order, at its final totals. An upsert may touch a row
/// only once per statement, and writing a row once is cheaper anyway.
pub fn final_balances<'p>(plans: &[&'p Planned]) -> Vec<(&'p Pair, Totals)> {
    let mut rows: Vec<(&'p Pair, Totals)> = Vec::new();
    let mut index: HashMap<&'p Pair, usize> = HashMap::new();
    for planned in plans {
        for (pair, totals) in &planned.touched {
            match index.get(pair) {
                Some(&i) => rows[i].1 = *totals,
                None => {
                    index.insert(pair, rows.len());
                    rows.push((pair, *totals));
                }
            }
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use talea_core::DraftPosting;

    fn name(s: &str) -> AccountName {
        AccountName::parse(s).expect("account name")
    }

    fn code(s: &str) -> AssetCode {
        AssetCode::parse(s).expect("asset code")
    }

    fn draft(key: &str, legs: &[(&str, Side, i128)]) -> Draft {
        let postings = legs
            .iter()
            .map(|(account, side, minor)| DraftPosting {
                account: name(account),
                asset: code("BTC"),
                side: *side,
                amount: Amount::from_minor(*minor),
            })
            .collect();
        Draft::new(
            IdempotencyKey::parse(key).expect("key"),
            postings,
            None,
            None,
            None,
        )
        .expect("draft")
    }

    fn loaded() -> Loaded {
        let mut loaded = Loaded::default();
        loaded.accounts.insert(
            name("alice"),
            AccountRule {
                kind: AccountKind::Liability,
                min_balance: Some(Decimal::ZERO),
            },
        );
        loaded.accounts.insert(
            name("hot"),
            AccountRule {
                kind: AccountKind::Asset,
                min_balance: None,
            },
        );
        loaded
            .scales
            .insert(code("BTC"), Scale::new(8).expect("scale"));
        // alice holds 10 (credit-normal: storage -10), hot holds 10.
        loaded.balances.insert(
            (name("alice"), code("BTC")),
            Totals {
                balance: -10,
                debits: 0,
                credits: 10,
            },
        );
        loaded.balances.insert(
            (name("hot"), code("BTC")),
            Totals {
                balance: 10,
                debits: 10,
                credits: 0,
            },
        );
        loaded
    }

    fn run(planner: &mut Planner<'_>, drafts: &[Draft]) -> Vec<Verdict> {
        planner.decide_all(drafts)
    }

    #[test]
    fn later_drafts_see_earlier_ones_and_seqs_stay_dense() {
        let book = BookName::parse("b").expect("book");
        let loaded = loaded();
        let mut planner = Planner::new(&book, &loaded, 7, Timestamp::from_micros(1));
        let withdraw =
            |key: &str, n| draft(key, &[("alice", Side::Debit, n), ("hot", Side::Credit, n)]);
        let verdicts = run(
            &mut planner,
            &[withdraw("a", 6), withdraw("b", 6), withdraw("c", 4)],
        );
        let Verdict::Write(first) = &verdicts[0] else {
            panic!("first draft should pass: {verdicts:?}");
        };
        assert_eq!(first.commit.seq, 8);
        assert_eq!(first.postings[0].balance_after, -4);
        assert!(matches!(
            &verdicts[1],
            Verdict::Settled(Outcome::Rejected(Rejection::InsufficientBalance { balance, .. }))
                if *balance == Amount::from_minor(-4)
        ));
        let Verdict::Write(third) = &verdicts[2] else {
            panic!("third draft should pass: {verdicts:?}");
        };
        assert_eq!(third.commit.seq, 9);
        assert_eq!(third.postings[0].balance_after, 0);
        assert_eq!(third.postings[0].debits_after, 10);
        assert_eq!(planner.last_seq(), 9);
    }

    #[test]
    fn keys_repeat_within_a_batch() {
        let book = BookName::parse("b").expect("book");
        let loaded = loaded();
        let mut planner = Planner::new(&book, &loaded, 0, Timestamp::from_micros(1));
        let one = draft("k", &[("hot", Side::Debit, 1), ("alice", Side::Credit, 1)]);
        let other = draft("k", &[("hot", Side::Debit, 2), ("alice", Side::Credit, 2)]);
        let verdicts = run(&mut planner, &[one.clone(), one, other]);
        assert!(matches!(verdicts[0], Verdict::Write(_)));
        assert!(matches!(verdicts[1], Verdict::SameAsInBatch(0)));
        assert!(matches!(
            verdicts[2],
            Verdict::Settled(Outcome::Rejected(Rejection::IdempotencyKeyReused(_)))
        ));
    }

    #[test]
    fn net_effect_and_normal_side_decide_min_balance() {
        let book = BookName::parse("b").expect("book");
        let mut loaded = loaded();
        // alice's minimum is above what she holds: deposits still pass.
        loaded.accounts.insert(
            name("alice"),
            AccountRule {
                kind: AccountKind::Liability,
                min_balance: Decimal::parse("0.000001").ok(),
            },
        );
        let mut planner = Planner::new(&book, &loaded, 0, Timestamp::from_micros(1));
        let deposit = draft("d", &[("hot", Side::Debit, 5), ("alice", Side::Credit, 5)]);
        // Out and back in within one draft: net zero, not lowered.
        let round = draft(
            "r",
            &[
                ("alice", Side::Debit, 15),
                ("alice", Side::Credit, 15),
                ("hot", Side::Debit, 1),
                ("hot", Side::Credit, 1),
            ],
        );
        let overdraw = draft(
            "o",
            &[("alice", Side::Debit, 15), ("hot", Side::Credit, 15)],
        );
        let verdicts = run(&mut planner, &[deposit, round, overdraw]);
        assert!(matches!(verdicts[0], Verdict::Write(_)));
        assert!(matches!(verdicts[1], Verdict::Write(_)));
        assert!(matches!(
            &verdicts[2],
            Verdict::Settled(Outcome::Rejected(Rejection::InsufficientBalance { account, .. }))
                if account.as_str() == "alice"
        ));
    }

    #[test]
    fn unknown_accounts_and_overflow_are_rejected() {
        let book = BookName::parse("b").expect("book");
        let loaded = loaded();
        let planner = Planner::new(&book, &loaded, 0, Timestamp::from_micros(1));
        let unknown = draft("u", &[("hot", Side::Debit, 1), ("nobody", Side::Credit, 1)]);
        assert!(matches!(
            planner.evaluate(&unknown),
            Verdict::Settled(Outcome::Rejected(Rejection::UnknownAccount(a))) if a.as_str() == "nobody"
        ));
        let huge = draft(
            "h",
            &[
                ("hot", Side::Debit, i128::MAX),
                ("alice", Side::Credit, i128::MAX),
            ],
        );
        assert!(matches!(
            planner.evaluate(&huge),
            Verdict::Settled(Outcome::Rejected(Rejection::AmountOutOfRange))
        ));
    }
    #[test]
    fn a_backend_check_rejects_only_the_drafts_it_refuses() {
        fn no_memo(draft: &Draft) -> Result<(), Rejection> {
            match draft.memo {
                Some(_) => Err(Rejection::Failed("memo refused".to_owned())),
                None => Ok(()),
            }
        }
        let book = BookName::parse("b").expect("book");
        let loaded = loaded();
        let mut planner =
            Planner::new(&book, &loaded, 0, Timestamp::from_micros(1)).with_draft_check(no_memo);
        let plain = draft("p", &[("hot", Side::Debit, 1), ("alice", Side::Credit, 1)]);
        let noted = Draft::new(
            IdempotencyKey::parse("n").expect("key"),
            plain.postings.clone(),
            None,
            Some("note".to_owned()),
            None,
        )
        .expect("draft");
        let verdicts = run(&mut planner, &[noted, plain]);
        assert!(matches!(
            &verdicts[0],
            Verdict::Settled(Outcome::Rejected(Rejection::Failed(m))) if m == "memo refused"
        ));
        let Verdict::Write(planned) = &verdicts[1] else {
            panic!("the plain draft should pass: {verdicts:?}");
        };
        assert_eq!(planned.commit.seq, 1, "the refused draft took no seq");
    }

    #[test]
    fn outcomes_and_final_balances_follow_the_batch() {
        let book = BookName::parse("b").expect("book");
        let loaded = loaded();
        let mut planner = Planner::new(&book, &loaded, 0, Timestamp::from_micros(1));
        let one = draft("1", &[("hot", Side::Debit, 1), ("alice", Side::Credit, 1)]);
        let two = draft("2", &[("hot", Side::Debit, 2), ("alice", Side::Credit, 2)]);
        let verdicts = run(&mut planner, &[one.clone(), two, one]);
        let plans: Vec<&Planned> = verdicts
            .iter()
            .filter_map(|v| match v {
                Verdict::Write(p) => Some(p.as_ref()),
                _ => None,
            })
            .collect();
        let rows: Vec<(&str, i128)> = final_balances(&plans)
            .into_iter()
            .map(|(pair, totals)| (pair.0.as_str(), totals.balance))
            .collect();
        assert_eq!(rows, vec![("hot", 13), ("alice", -13)]);
        let outcomes = outcomes(verdicts);
        let Outcome::Committed(first) = &outcomes[0] else {
            panic!("first draft commits: {outcomes:?}");
        };
        assert_eq!(outcomes[2], Outcome::Deduplicated(first.clone()));
    }
}
