//! The rows a batch of passing drafts adds, in the neutral form every backend writes.

use talea_core::{BookName, Timestamp, TxStatus};
use talea_store::StoreError;
use talea_store::plan::{Planned, final_balances};
use talea_store::stored::amount_text;

use crate::backend::Head;

/// A seq that the store assigns, checked against the 64-bit signed columns.
pub fn new_seq_param(value: u64) -> Result<i64, StoreError> {
    i64::try_from(value)
        .map_err(|_| StoreError::Other(format!("seq {value} exceeds the 64-bit integer range")))
}

/// A `transactions` row (and its `events` row: book, seq, commit time).
#[derive(Debug)]
pub struct TransactionRow<'a> {
    /// The book.
    pub book: &'a str,
    /// Its seq.
    pub seq: i64,
    /// The commit time.
    pub committed_at: Timestamp,
    /// The transaction id.
    pub tx_id: uuid::Uuid,
    /// The idempotency key.
    pub key: &'a str,
    /// The request fingerprint.
    pub hash: &'a [u8],
    /// The client's time, if given.
    pub occurred_at: Option<Timestamp>,
    /// The memo.
    pub memo: Option<&'a str>,
    /// The metadata, as canonical JSON text.
    pub metadata: Option<&'a str>,
    /// What it was when committed: `posted`, `pending` (a hold) or
    /// `voided` (a void).
    pub status: TxStatus,
    /// A hold's expiry.
    pub expires_at: Option<Timestamp>,
    /// The hold a settle or void ends.
    pub pending_tx_id: Option<uuid::Uuid>,
    /// Its event's chain hash (`crate::chain`).
    pub event_hash: &'a [u8],
}

/// A `holds` row of a new hold: `pending`, or already ended when a later
/// draft of the same rows settled or voided it (a statement cannot update
/// a row that it inserts).
#[derive(Debug)]
pub struct HoldRow<'a> {
    /// The book.
    pub book: &'a str,
    /// The hold's seq.
    pub seq: i64,
    /// The hold's transaction id.
    pub tx_id: uuid::Uuid,
    /// Its expiry, if any.
    pub expires_at: Option<Timestamp>,
    /// `pending`, or how a later draft of these rows ended it.
    pub status: TxStatus,
    /// The seq of the settle or void that ended it.
    pub ended_seq: Option<i64>,
    /// The settle or void that ended it.
    pub ended_tx_id: Option<uuid::Uuid>,
}

/// A hold ended by a settle or void of the batch.
#[derive(Debug)]
pub struct HoldEnd<'a> {
    /// The book.
    pub book: &'a str,
    /// The hold's transaction id.
    pub hold: uuid::Uuid,
    /// The hold's seq (its `holds` row's key).
    pub hold_seq: i64,
    /// Its new status: `posted` or `voided`.
    pub status: TxStatus,
    /// The seq of the settle or void.
    pub ended_seq: i64,
    /// The settle or void.
    pub ended_tx_id: uuid::Uuid,
}

/// A `postings` row.
#[derive(Debug)]
pub struct PostingRow<'a> {
    /// The book.
    pub book: &'a str,
    /// The transaction's seq.
    pub seq: i64,
    /// The leg's index in the transaction.
    pub leg: i16,
    /// The account.
    pub account: &'a str,
    /// The asset.
    pub asset: &'a str,
    /// Signed storage amount, as decimal text of minor units.
    pub amount: String,
    /// The account's balance in the asset right after, as text.
    pub balance_after: String,
    /// The account's debit total in the asset right after, as text.
    pub debits_after: String,
}

/// A `balances` row at its new totals.
#[derive(Debug)]
pub struct BalanceRow<'a> {
    /// The book.
    pub book: &'a str,
    /// The account.
    pub account: &'a str,
    /// The asset.
    pub asset: &'a str,
    /// Debits minus credits, as text.
    pub balance: String,
    /// Sum of debits, as text.
    pub debits: String,
    /// Sum of credits, as text.
    pub credits: String,
}

/// The rows that some passing drafts add to each table.
#[derive(Debug, Default)]
pub struct Rows<'a> {
    /// One per plain post (each also makes an `events` row); their
    /// `status`, `expires_at` and `pending_tx_id` are the columns' defaults.
    pub transactions: Vec<TransactionRow<'a>>,
    /// One per leg of a post or a settle.
    pub postings: Vec<PostingRow<'a>>,
    /// One per (account, asset) touched, at its final value.
    pub balances: Vec<BalanceRow<'a>>,
    /// One per hold, settle or void (each also makes an `events` row):
    /// kept apart from the plain posts, whose columns they extend, so that
    /// a batch of plain posts runs the statement it always did
    /// (`SqlBackend::write_rows` adds theirs only when there are some).
    pub special: Vec<TransactionRow<'a>>,
    /// One per leg of a hold (`debits_after` unused).
    pub hold_postings: Vec<PostingRow<'a>>,
    /// One per new hold.
    pub holds: Vec<HoldRow<'a>>,
    /// One per settle or void of a hold made before these rows.
    pub hold_ends: Vec<HoldEnd<'a>>,
}

impl<'a> Rows<'a> {
    /// Adds the rows of `book`'s `plans`, committed at `committed_at`, with
    /// each touched balance row once, at its final value (an upsert may
    /// touch a row only once per statement).
    pub fn push(
        &mut self,
        book: &'a BookName,
        committed_at: Timestamp,
        plans: &[&'a Planned],
        hashes: &'a [[u8; 32]],
    ) -> Result<(), StoreError> {
        let book_name = book.as_str();
        if hashes.len() != plans.len() {
            return Err(StoreError::Other(format!(
                "book {book}: {} chain hashes for {} events",
                hashes.len(),
                plans.len()
            )));
        }
        for (planned, event_hash) in plans.iter().zip(hashes) {
            let commit = &planned.commit;
            let seq = new_seq_param(commit.seq)?;
            let row = TransactionRow {
                book: book_name,
                seq,
                committed_at,
                tx_id: commit.tx_id.0,
                key: commit.idempotency_key.as_str(),
                hash: &planned.request_hash,
                occurred_at: commit.occurred_at,
                memo: commit.memo.as_deref(),
                metadata: commit.metadata.as_deref(),
                status: commit.status,
                expires_at: commit.expires_at,
                pending_tx_id: commit.pending_tx_id.map(|t| t.0),
                event_hash,
            };
            let is_hold = commit.status == TxStatus::Pending;
            if let Some(hold) = commit.pending_tx_id {
                match self
                    .holds
                    .iter_mut()
                    .find(|h| h.book == book_name && h.tx_id == hold.0)
                {
                    Some(made) => {
                        made.status = commit.status;
                        made.ended_seq = Some(seq);
                        made.ended_tx_id = Some(commit.tx_id.0);
                    }
                    None => self.hold_ends.push(HoldEnd {
                        book: book_name,
                        hold: hold.0,
                        hold_seq: new_seq_param(planned.pending_seq.ok_or_else(|| {
                            StoreError::Other(format!("the end of hold {} has no seq", hold.0))
                        })?)?,
                        status: commit.status,
                        ended_seq: seq,
                        ended_tx_id: commit.tx_id.0,
                    }),
                }
            }
            if is_hold {
                self.holds.push(HoldRow {
                    book: book_name,
                    seq,
                    tx_id: commit.tx_id.0,
                    expires_at: commit.expires_at,
                    status: TxStatus::Pending,
                    ended_seq: None,
                    ended_tx_id: None,
                });
            }
            if is_hold || commit.pending_tx_id.is_some() || commit.status != TxStatus::Posted {
                self.special.push(row);
            } else {
                self.transactions.push(row);
            }
            let legs = if is_hold {
                &mut self.hold_postings
            } else {
                &mut self.postings
            };
            for (leg, (posting, stored)) in
                planned.postings.iter().zip(&commit.postings).enumerate()
            {
                legs.push(PostingRow {
                    book: book_name,
                    seq,
                    leg: i16::try_from(leg)
                        .map_err(|_| StoreError::Other(format!("leg {leg} exceeds smallint")))?,
                    account: stored.account.as_str(),
                    asset: stored.asset.as_str(),
                    amount: amount_text(posting.amount),
                    balance_after: amount_text(posting.balance_after),
                    debits_after: amount_text(posting.debits_after),
                });
            }
        }
        for (pair, totals) in final_balances(plans) {
            self.balances.push(BalanceRow {
                book: book_name,
                account: pair.0.as_str(),
                asset: pair.1.as_str(),
                balance: amount_text(totals.balance),
                debits: amount_text(totals.debits),
                credits: amount_text(totals.credits),
            });
        }
        Ok(())
    }
}

/// One book's counter move: its new last seq and commit time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookMove {
    /// The book.
    pub book: BookName,
    /// How its count of pending holds moves (holds made minus holds ended).
    pub open_holds: i64,
    /// Its new last seq.
    pub last_seq: u64,
    /// The commit time of the events appended.
    pub committed_at: Timestamp,
    /// The chain hash of its new last event (`books.chain_hash`; the
    /// book's `chain_seq` moves to `last_seq`).
    pub chain_hash: [u8; 32],
}

impl BookMove {
    /// The notification payload, `<book>:<last seq>`.
    pub fn payload(&self) -> String {
        format!("{}:{}", self.book, self.last_seq)
    }
}

/// The counter moves (and notifications) that close a commit: one per book
/// that wrote something.
#[derive(Debug, Default)]
pub struct Advance {
    /// The moves, in the order the books were decided.
    pub moves: Vec<BookMove>,
}

impl Advance {
    /// Adds `book`'s move to `last_seq`, whose event has chain hash
    /// `chain_hash`, unless it wrote nothing.
    pub fn push(&mut self, book: &BookName, last_seq: u64, head: Head, chain_hash: [u8; 32]) {
        self.push_holds(book, last_seq, head, 0, chain_hash);
    }

    /// Adds `book`'s move to `last_seq` (whose event has chain hash
    /// `chain_hash`), its count of pending holds moving by `open_holds`,
    /// unless it wrote nothing.
    pub fn push_holds(
        &mut self,
        book: &BookName,
        last_seq: u64,
        head: Head,
        open_holds: i64,
        chain_hash: [u8; 32],
    ) {
        if last_seq > head.last_seq {
            self.moves.push(BookMove {
                book: book.clone(),
                open_holds,
                last_seq,
                committed_at: head.committed_at,
                chain_hash,
            });
        }
    }

    /// How written `plans` move a book's count of pending holds: +1 per
    /// hold, -1 per settle or void.
    pub fn open_holds_delta<'p>(plans: impl IntoIterator<Item = &'p Planned>) -> i64 {
        plans
            .into_iter()
            .map(|p| match (p.commit.status, p.commit.pending_tx_id) {
                (TxStatus::Pending, _) => 1,
                (_, Some(_)) => -1,
                _ => 0,
            })
            .sum()
    }

    /// Whether no book moves.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }
}
