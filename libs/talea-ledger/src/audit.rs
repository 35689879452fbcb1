//! The audit of a book (`talead audit`): its log checked for gaps and
//! against its hash chain, then replayed into the projections it implies
//! (posted balances, each posting's `balance_after`, held amounts, each
//! hold's status) and compared with what the store serves.
//!
//! It reads through the `Store` trait only, so it audits every backend. On
//! Postgres and SQLite an event is rebuilt from the projection rows, so a
//! row changed behind the store's back shows up twice: as a chain mismatch
//! at the event it belongs to, and as a projection that no longer matches
//! the replay. A current-state row (a balance, a held amount, a hold's
//! status) is reported at the last seq that touched it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::Serialize;
use talea_api::AssetScales;
use talea_core::{
    AccountName, Amount, AssetCode, BookName, Commit, Event, EventKind, Scale, Side, Timestamp,
    TxId, TxStatus,
};
use talea_store::{AccountPosting, Balance, Held, Store, StoreError};

/// Events, accounts and postings read per store call (the trait's paging maximum).
pub const AUDIT_PAGE_MAX: u32 = 1000;

/// Audit passes tried before giving up on a book that keeps changing: a
/// pass counts only when the book's last seq is the same before and after it.
pub const AUDIT_ATTEMPTS_MAX: u32 = 3;

/// The chain hash before a book's first event (`docs/proofs.md`).
const GENESIS: [u8; 32] = [0; 32];

/// What an audit found wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// A seq is missing from the log (or the log is out of order); `seq` is
    /// the first missing one.
    Gap,
    /// An event's stored hash is not the chain hash recomputed from the log
    /// as served (or it has none); only the first is reported.
    HashMismatch,
    /// An account's posted balance in an asset is not the sum of the
    /// posted legs in the log.
    Balance,
    /// An account's posting history in an asset (amounts and
    /// `balance_after`) is not the running balance the log implies.
    BalanceAfter,
    /// What the store says live holds reserve is not what the log's live
    /// holds reserve.
    Held,
    /// A hold's status as the store reports it is not how the log says it ended.
    HoldStatus,
}

/// One finding of an audit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// What is wrong.
    pub kind: FindingKind,
    /// The first seq at which the rebuilt value diverges (for a current-state
    /// row, the last seq that touched it).
    pub seq: u64,
    /// The account, for projection findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// The asset, for projection findings.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// The hold, for `hold_status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tx_id: Option<String>,
    /// What the log implies.
    pub expected: String,
    /// What the store serves.
    pub found: String,
}

/// The result of [`audit_book`], printed by `talead audit` as JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AuditReport {
    /// The book.
    pub book: String,
    /// Events read from the log.
    pub events_checked: u64,
    /// The book's last seq (the highest of the log's and the store's
    /// counter), 0 for a book without events.
    pub last_seq: u64,
    /// The chain hash of the last event as recomputed from the log (64 hex
    /// digits; the genesis hash, all zeros, for a book without events).
    pub chain_head: String,
    /// The smallest seq any finding names.
    pub first_bad_seq: Option<u64>,
    /// What is wrong, in the order found.
    pub findings: Vec<Finding>,
}

impl AuditReport {
    /// Whether the audit found nothing wrong.
    pub fn is_clean(&self) -> bool {
        self.findings.is_empty()
    }
}

/// Audits `book`: its log against its chain, and every projection against
/// a replay of its log (see the module documentation).
///
/// A book without events (an unknown book included) audits clean, with
/// `events_checked` and `last_seq` 0: whether that is an error is the
/// caller's call, as for every other read of an unknown book. A pass
/// during which the book moves (a commit or an expiry) is started again,
/// up to [`AUDIT_ATTEMPTS_MAX`] times, after which the audit fails with
/// `StoreError::Other` rather than report differences that are only writes
/// racing the reads.
pub async fn audit_book(store: &dyn Store, book: &BookName) -> Result<AuditReport, StoreError> {
    for _ in 0..AUDIT_ATTEMPTS_MAX {
        let before = store.last_seq(book).await?;
        let report = audit_pass(store, book, before.unwrap_or(0)).await?;
        if store.last_seq(book).await? == before {
            return Ok(report);
        }
    }
    Err(StoreError::Other(format!(
        "book {book} kept changing during {AUDIT_ATTEMPTS_MAX} audit passes"
    )))
}

/// One pass: reads and checks the log, then compares the projections.
async fn audit_pass(
    store: &dyn Store,
    book: &BookName,
    counter_seq: u64,
) -> Result<AuditReport, StoreError> {
    let scales: BTreeMap<AssetCode, Scale> = store
        .assets()
        .await?
        .into_iter()
        .map(|asset| (asset.code, asset.scale))
        .collect();
    let mut audit = Audit::new(book.clone());
    let mut after = 0;
    loop {
        let page = store.events(book, after, AUDIT_PAGE_MAX).await?;
        let Some(last) = page.last() else { break };
        after = after.max(last.seq);
        for event in &page {
            audit.check_chain(event, &scales);
            audit.replay(event);
        }
    }
    if counter_seq > audit.last_seq {
        // The tail of the log is gone: the counter still names it.
        let missing = audit.last_seq + 1;
        audit.find(
            FindingKind::Gap,
            missing,
            format!("events up to seq {counter_seq}"),
            format!("the log ends at seq {}", audit.last_seq),
        );
        audit.last_seq = counter_seq;
    }
    audit.compare_accounts(store, &scales).await?;
    audit.compare_holds(store).await?;
    Ok(audit.report())
}

/// An (account, asset) pair.
type Pair = (AccountName, AssetCode);

/// A posted leg as the audit compares it: seq, signed amount, balance after.
type Leg = (u64, i128, i128);

/// What the log says of one pair.
#[derive(Debug, Default)]
struct PairLog {
    /// Posted balance, debits minus credits, in minor units.
    balance: i128,
    /// The last seq that posted to the pair.
    posted_seq: Option<u64>,
    /// The last seq that reserved or released a hold leg on the pair.
    held_seq: Option<u64>,
    /// The posted legs in log order.
    postings: Vec<Leg>,
}

/// What the log says of one hold.
#[derive(Debug)]
struct HoldLog {
    /// Its own seq.
    seq: u64,
    /// Its legs: pair and signed amount.
    legs: Vec<(Pair, i128)>,
    expires_at: Option<Timestamp>,
    /// `Pending`, or how it ended.
    status: TxStatus,
    /// The seq of the event that ended it.
    ended_seq: Option<u64>,
}

/// The state of an audit pass.
#[derive(Debug)]
struct Audit {
    book: BookName,
    events: u64,
    last_seq: u64,
    /// The recomputed hash of the last event read.
    head: [u8; 32],
    /// Whether a hash mismatch was reported (only the first is).
    chain_broken: bool,
    accounts: BTreeSet<AccountName>,
    pairs: BTreeMap<Pair, PairLog>,
    holds: HashMap<TxId, HoldLog>,
    findings: Vec<Finding>,
}

impl Audit {
    fn new(book: BookName) -> Self {
        Self {
            book,
            events: 0,
            last_seq: 0,
            head: GENESIS,
            chain_broken: false,
            accounts: BTreeSet::new(),
            pairs: BTreeMap::new(),
            holds: HashMap::new(),
            findings: Vec::new(),
        }
    }

    fn find(&mut self, kind: FindingKind, seq: u64, expected: String, found: String) {
        self.findings.push(Finding {
            kind,
            seq,
            account: None,
            asset: None,
            tx_id: None,
            expected,
            found,
        });
    }

    fn find_pair(
        &mut self,
        kind: FindingKind,
        seq: u64,
        (account, asset): &Pair,
        expected: String,
        found: String,
    ) {
        self.findings.push(Finding {
            kind,
            seq,
            account: Some(account.to_string()),
            asset: Some(asset.to_string()),
            tx_id: None,
            expected,
            found,
        });
    }

    /// Checks the event's seq follows the last one and its stored hash.
    fn check_chain(&mut self, event: &Event, scales: &(impl AssetScales + ?Sized)) {
        self.events += 1;
        let next = self.last_seq + 1;
        if event.seq != next {
            self.find(
                FindingKind::Gap,
                next.min(event.seq),
                format!("seq {next}"),
                format!("seq {}", event.seq),
            );
        }
        self.last_seq = self.last_seq.max(event.seq);
        let computed = match talea_api::event_hash(&self.head, self.book.as_str(), event, scales) {
            Ok(hash) => hash,
            Err(err) => {
                if !std::mem::replace(&mut self.chain_broken, true) {
                    self.find(
                        FindingKind::HashMismatch,
                        event.seq,
                        "an event with a canonical form".to_owned(),
                        err.to_string(),
                    );
                }
                return;
            }
        };
        self.head = computed;
        if event.hash != Some(computed) && !std::mem::replace(&mut self.chain_broken, true) {
            let found = event
                .hash
                .map_or_else(|| "not chained".to_owned(), hex::encode);
            self.find(
                FindingKind::HashMismatch,
                event.seq,
                hex::encode(computed),
                found,
            );
        }
    }

    /// Applies one event to the rebuilt projections.
    fn replay(&mut self, event: &Event) {
        match &event.kind {
            EventKind::AccountOpened(account) => {
                self.accounts.insert(account.name.clone());
            }
            EventKind::Transaction(commit) => match commit.status {
                TxStatus::Pending => self.reserve(commit),
                TxStatus::Posted => {
                    self.post(commit);
                    if let Some(hold) = commit.pending_tx_id {
                        self.end_hold(hold, TxStatus::Posted, commit.seq);
                    }
                }
                TxStatus::Voided => {
                    if let Some(hold) = commit.pending_tx_id {
                        self.end_hold(hold, TxStatus::Voided, commit.seq);
                    }
                }
                // No store commits a record as expired; it posts nothing.
                TxStatus::Expired => {}
            },
            EventKind::HoldExpired(hold) => self.end_hold(hold.tx_id, TxStatus::Expired, event.seq),
        }
    }

    /// A settle or post: its legs move the posted balances.
    fn post(&mut self, commit: &Commit) {
        for p in &commit.postings {
            let amount = signed(p.side, p.amount);
            let pair = self
                .pairs
                .entry((p.account.clone(), p.asset.clone()))
                .or_default();
            pair.balance = pair.balance.saturating_add(amount);
            pair.posted_seq = Some(commit.seq);
            pair.postings.push((commit.seq, amount, pair.balance));
        }
    }

    /// A hold: its legs are reserved until it ends.
    fn reserve(&mut self, commit: &Commit) {
        let legs: Vec<(Pair, i128)> = commit
            .postings
            .iter()
            .map(|p| {
                (
                    (p.account.clone(), p.asset.clone()),
                    signed(p.side, p.amount),
                )
            })
            .collect();
        for (pair, _) in &legs {
            self.pairs.entry(pair.clone()).or_default().held_seq = Some(commit.seq);
        }
        self.holds.insert(
            commit.tx_id,
            HoldLog {
                seq: commit.seq,
                legs,
                expires_at: commit.expires_at,
                status: TxStatus::Pending,
                ended_seq: None,
            },
        );
    }

    /// Ends `tx_id` at `seq` as `status`; a log ending a hold it does not
    /// hold pending is itself a finding.
    fn end_hold(&mut self, tx_id: TxId, status: TxStatus, seq: u64) {
        let Some(hold) = self.holds.get_mut(&tx_id) else {
            self.findings.push(Finding {
                kind: FindingKind::HoldStatus,
                seq,
                account: None,
                asset: None,
                tx_id: Some(tx_id.0.to_string()),
                expected: "a hold earlier in the log".to_owned(),
                found: format!("{} of an unknown hold", status.as_str()),
            });
            return;
        };
        if hold.status != TxStatus::Pending {
            let before = hold.status;
            self.findings.push(Finding {
                kind: FindingKind::HoldStatus,
                seq,
                account: None,
                asset: None,
                tx_id: Some(tx_id.0.to_string()),
                expected: "pending".to_owned(),
                found: format!("{} again after {}", status.as_str(), before.as_str()),
            });
            return;
        }
        hold.status = status;
        hold.ended_seq = Some(seq);
        let pairs: Vec<Pair> = hold.legs.iter().map(|(pair, _)| pair.clone()).collect();
        for pair in pairs {
            self.pairs.entry(pair).or_default().held_seq = Some(seq);
        }
    }

    /// What the log's holds reserve on `pair` at `now`: pending and not
    /// expired at that instant.
    fn held_at(&self, pair: &Pair, now: Timestamp) -> Held {
        let (mut debits, mut credits) = (0i128, 0i128);
        let live = self
            .holds
            .values()
            .filter(|h| h.status == TxStatus::Pending && h.expires_at.is_none_or(|at| at > now));
        for (leg, amount) in live.flat_map(|h| h.legs.iter()) {
            if leg != pair {
                continue;
            }
            if *amount >= 0 {
                debits = debits.saturating_add(*amount);
            } else {
                credits = credits.saturating_add(amount.saturating_neg());
            }
        }
        Held {
            debits: Amount::from_minor(debits),
            credits: Amount::from_minor(credits),
        }
    }

    /// Compares each account's balances and posting history with the replay.
    async fn compare_accounts(
        &mut self,
        store: &dyn Store,
        scales: &(impl AssetScales + ?Sized),
    ) -> Result<(), StoreError> {
        let mut accounts = self.accounts.clone();
        accounts.extend(self.pairs.keys().map(|(account, _)| account.clone()));
        let mut after: Option<AccountName> = None;
        loop {
            let page = store
                .accounts(&self.book, after.as_ref(), AUDIT_PAGE_MAX)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.name.clone());
            accounts.extend(page.into_iter().map(|a| a.name));
        }
        for account in &accounts {
            let postings = account_postings(store, &self.book, account).await?;
            let before = now();
            let balances = store.balances(&self.book, account, None).await?;
            let after = now();
            self.compare_balances(account, &balances, &postings, (before, after), scales);
            self.compare_postings(account, &postings, scales);
        }
        Ok(())
    }

    /// One account's posted and held balances; `read` is when the store's
    /// read began and ended (a hold may expire in between). A wrong posted
    /// balance is reported at the last seq that posted to the pair in the
    /// log or in the store's history (`postings`), whichever is later: a
    /// posting whose event is gone still moved the row.
    fn compare_balances(
        &mut self,
        account: &AccountName,
        balances: &[Balance],
        postings: &[AccountPosting],
        read: (Timestamp, Timestamp),
        scales: &(impl AssetScales + ?Sized),
    ) {
        let served: BTreeMap<&AssetCode, &Balance> =
            balances.iter().map(|b| (&b.asset, b)).collect();
        let mut assets: BTreeSet<AssetCode> = served.keys().map(|&a| a.clone()).collect();
        assets.extend(
            self.pairs
                .keys()
                .filter(|(a, _)| a == account)
                .map(|(_, asset)| asset.clone()),
        );
        for asset in assets {
            let pair = (account.clone(), asset);
            let scale = talea_api::event::scale_of(scales, &pair.1);
            let (expected, posted_seq, held_seq) = self
                .pairs
                .get(&pair)
                .map_or((0, None, None), |l| (l.balance, l.posted_seq, l.held_seq));
            let found = served.get(&pair.1);
            let found_balance = found.map_or(0, |b| b.balance.minor());
            // A pair the log never touched is reported at the log's end.
            let seq = posted_seq.max(held_seq).unwrap_or(self.last_seq);
            if expected != found_balance {
                let served_seq = postings
                    .iter()
                    .filter(|p| p.asset == pair.1)
                    .map(|p| p.seq)
                    .max();
                let seq = posted_seq.max(served_seq).unwrap_or(seq);
                self.find_pair(
                    FindingKind::Balance,
                    seq,
                    &pair,
                    Amount::from_minor(expected).format(scale),
                    Amount::from_minor(found_balance).format(scale),
                );
            }
            let found_held = found.map_or_else(Held::default, |b| b.held);
            let (early, late) = (self.held_at(&pair, read.0), self.held_at(&pair, read.1));
            if found_held != early && found_held != late {
                let seq = held_seq.unwrap_or(seq);
                self.find_pair(
                    FindingKind::Held,
                    seq,
                    &pair,
                    held_text(late, scale),
                    held_text(found_held, scale),
                );
            }
        }
    }

    /// One account's posting history, per asset, against the replay's.
    fn compare_postings(
        &mut self,
        account: &AccountName,
        served: &[AccountPosting],
        scales: &(impl AssetScales + ?Sized),
    ) {
        let mut found: BTreeMap<AssetCode, Vec<Leg>> = BTreeMap::new();
        for p in served {
            found.entry(p.asset.clone()).or_default().push((
                p.seq,
                p.amount.minor(),
                p.balance_after.minor(),
            ));
        }
        let mut assets: BTreeSet<AssetCode> = found.keys().cloned().collect();
        assets.extend(
            self.pairs
                .keys()
                .filter(|(a, _)| a == account)
                .map(|(_, asset)| asset.clone()),
        );
        for asset in assets {
            let pair = (account.clone(), asset);
            let scale = talea_api::event::scale_of(scales, &pair.1);
            let expected = self
                .pairs
                .get(&pair)
                .map_or(&[][..], |l| l.postings.as_slice());
            let served = found.get(&pair.1).map_or(&[][..], Vec::as_slice);
            if let Some((seq, want, got)) = first_difference(expected, served) {
                let text = |leg: Option<Leg>| {
                    leg.map_or_else(
                        || "no posting".to_owned(),
                        |(seq, amount, after)| {
                            format!(
                                "seq {seq}: {} then {}",
                                Amount::from_minor(amount).format(scale),
                                Amount::from_minor(after).format(scale)
                            )
                        },
                    )
                };
                self.find_pair(FindingKind::BalanceAfter, seq, &pair, text(want), text(got));
            }
        }
    }

    /// Each hold's status as the store reports it against the log's.
    async fn compare_holds(&mut self, store: &dyn Store) -> Result<(), StoreError> {
        let mut holds: Vec<(TxId, u64, TxStatus, bool)> = Vec::with_capacity(self.holds.len());
        let now = now();
        for (tx_id, hold) in &self.holds {
            // A pending hold past its expiry may read as expired before its
            // `hold_expired` event is appended.
            let lapsed = hold.expires_at.is_some_and(|at| at <= now);
            let seq = hold.ended_seq.unwrap_or(hold.seq);
            holds.push((*tx_id, seq, hold.status, lapsed));
        }
        holds.sort_by_key(|&(_, seq, _, _)| seq);
        let books = [self.book.as_str()];
        for (tx_id, seq, expected, lapsed) in holds {
            let found = store.transaction(tx_id, Some(&books)).await?;
            let status = found.as_ref().map(|c| c.status);
            let fine = status == Some(expected)
                || (expected == TxStatus::Pending && lapsed && status == Some(TxStatus::Expired));
            if !fine {
                self.findings.push(Finding {
                    kind: FindingKind::HoldStatus,
                    seq,
                    account: None,
                    asset: None,
                    tx_id: Some(tx_id.0.to_string()),
                    expected: expected.as_str().to_owned(),
                    found: status
                        .map_or("no such transaction", TxStatus::as_str)
                        .to_owned(),
                });
            }
        }
        Ok(())
    }

    fn report(self) -> AuditReport {
        let first_bad_seq = self.findings.iter().map(|f| f.seq).min();
        AuditReport {
            book: self.book.to_string(),
            events_checked: self.events,
            last_seq: self.last_seq,
            chain_head: hex::encode(self.head),
            first_bad_seq,
            findings: self.findings,
        }
    }
}

/// Every posting of `account`, over all pages.
async fn account_postings(
    store: &dyn Store,
    book: &BookName,
    account: &AccountName,
) -> Result<Vec<AccountPosting>, StoreError> {
    let mut all = Vec::new();
    let mut after = 0;
    loop {
        let page = store
            .account_postings(book, account, after, AUDIT_PAGE_MAX)
            .await?;
        let Some(last) = page.last() else { break };
        if last.seq <= after {
            // A store that pages backwards would loop forever; what it
            // served so far is compared as is.
            break;
        }
        after = last.seq;
        all.extend(page);
    }
    Ok(all)
}

/// The first place two posting histories differ: the smaller seq of the
/// two legs there, and the legs (`None` past the end of a history).
fn first_difference(expected: &[Leg], found: &[Leg]) -> Option<(u64, Option<Leg>, Option<Leg>)> {
    let len = expected.len().max(found.len());
    (0..len).find_map(|i| {
        let (want, got) = (expected.get(i).copied(), found.get(i).copied());
        if want == got {
            return None;
        }
        let seq = match (want, got) {
            (Some(w), Some(g)) => w.0.min(g.0),
            (Some(leg), None) | (None, Some(leg)) => leg.0,
            (None, None) => return None,
        };
        Some((seq, want, got))
    })
}

/// A signed storage amount: above zero for a debit.
fn signed(side: Side, amount: Amount) -> i128 {
    match side {
        Side::Debit => amount.minor(),
        Side::Credit => amount.minor().saturating_neg(),
    }
}

fn held_text(held: Held, scale: Scale) -> String {
    format!(
        "held debits {}, credits {}",
        held.debits.format(scale),
        held.credits.format(scale)
    )
}

/// The wall clock, in microseconds (the store compares expiries with its own).
fn now() -> Timestamp {
    crate::api::now()
}

impl crate::LedgerService {
    /// Starts the background audit: every `every`, each book is audited
    /// ([`audit_book`]) in turn; a mismatch is logged (an error line naming
    /// the book and its first bad seq) and counted
    /// (`talea_audits_total{result}`, `talea_audit_mismatched_books`). The
    /// task ends with the runtime.
    pub fn spawn_auditor(&self, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let ledger = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            // The first tick is immediate: wait a whole interval first.
            tick.tick().await;
            loop {
                tick.tick().await;
                ledger.audit_all().await;
            }
        })
    }

    /// One round of the background audit over every book.
    async fn audit_all(&self) {
        let store = self.store();
        let metrics = self.metrics();
        let books = match store.books().await {
            Ok(books) => books,
            Err(e) => {
                tracing::warn!(error = %e, "audit: cannot list books");
                metrics.audits_total.with_label_values(&["error"]).inc();
                return;
            }
        };
        let mut mismatched = 0;
        for info in books {
            match audit_book(store.as_ref(), &info.book).await {
                Ok(report) if report.is_clean() => {
                    metrics.audits_total.with_label_values(&["clean"]).inc();
                    tracing::debug!(book = %info.book, events = report.events_checked, "audit clean");
                }
                Ok(report) => {
                    mismatched += 1;
                    metrics.audits_total.with_label_values(&["mismatch"]).inc();
                    tracing::error!(
                        book = %info.book,
                        first_bad_seq = ?report.first_bad_seq,
                        findings = report.findings.len(),
                        first = ?report.findings.first(),
                        "audit: the book's log, chain or projections disagree"
                    );
                }
                Err(e) => {
                    metrics.audits_total.with_label_values(&["error"]).inc();
                    tracing::warn!(book = %info.book, error = %e, "audit: cannot audit");
                }
            }
        }
        metrics.audit_mismatched_books.set(mismatched);
    }
}
