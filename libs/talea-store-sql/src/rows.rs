//! The rows a batch of passing drafts adds, in the neutral form every backend writes.

use talea_core::{BookName, Timestamp};
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
    /// One per draft (each also makes an `events` row).
    pub transactions: Vec<TransactionRow<'a>>,
    /// One per leg.
    pub postings: Vec<PostingRow<'a>>,
    /// One per (account, asset) touched, at its final value.
    pub balances: Vec<BalanceRow<'a>>,
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
    ) -> Result<(), StoreError> {
        let book_name = book.as_str();
        for planned in plans {
            let commit = &planned.commit;
            let seq = new_seq_param(commit.seq)?;
            self.transactions.push(TransactionRow {
                book: book_name,
                seq,
                committed_at,
                tx_id: commit.tx_id.0,
                key: commit.idempotency_key.as_str(),
                hash: &planned.request_hash,
                occurred_at: commit.occurred_at,
                memo: commit.memo.as_deref(),
                metadata: commit.metadata.as_deref(),
            });
            for (leg, (posting, stored)) in
                planned.postings.iter().zip(&commit.postings).enumerate()
            {
                self.postings.push(PostingRow {
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
    /// Its new last seq.
    pub last_seq: u64,
    /// The commit time of the events appended.
    pub committed_at: Timestamp,
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
    /// Adds `book`'s move to `last_seq`, unless it wrote nothing.
    pub fn push(&mut self, book: &BookName, last_seq: u64, head: Head) {
        if last_seq > head.last_seq {
            self.moves.push(BookMove {
                book: book.clone(),
                last_seq,
                committed_at: head.committed_at,
            });
        }
    }

    /// Whether no book moves.
    pub fn is_empty(&self) -> bool {
        self.moves.is_empty()
    }
}
