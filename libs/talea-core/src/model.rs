//! Assets, accounts, drafts, commits and events: the values the ledger moves around.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

use crate::amount::{Amount, Decimal, Scale};
use crate::names::{AccountName, AssetCode, BookName, IdempotencyKey};
use crate::time::Timestamp;

/// A registered asset. Its scale never changes once registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asset {
    /// The asset's code, such as `BTC`.
    pub code: AssetCode,
    /// Its number of fractional digits.
    pub scale: Scale,
    /// A display name, if one was given.
    pub name: Option<String>,
}

/// Which side of an account a posting lands on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Increases the storage balance (debits minus credits).
    Debit,
    /// Decreases the storage balance.
    Credit,
}

/// The side on which an account's balance is reported as positive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NormalSide {
    /// Assets and expenses: balance is debits minus credits.
    Debit,
    /// Liabilities, equity and revenue: balance is credits minus debits.
    Credit,
}

/// The five classic account kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccountKind {
    /// Normal side debit.
    Asset,
    /// Normal side debit.
    Expense,
    /// Normal side credit.
    Liability,
    /// Normal side credit.
    Equity,
    /// Normal side credit.
    Revenue,
}

impl AccountKind {
    /// Every kind, in the contract's order.
    pub const ALL: [Self; 5] = [
        Self::Asset,
        Self::Expense,
        Self::Liability,
        Self::Equity,
        Self::Revenue,
    ];

    /// The kind's wire name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Asset => "asset",
            Self::Expense => "expense",
            Self::Liability => "liability",
            Self::Equity => "equity",
            Self::Revenue => "revenue",
        }
    }

    /// Parses a wire name.
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The side on which balances of this kind are reported.
    pub const fn normal_side(self) -> NormalSide {
        match self {
            Self::Asset | Self::Expense => NormalSide::Debit,
            Self::Liability | Self::Equity | Self::Revenue => NormalSide::Credit,
        }
    }

    /// Converts a storage balance (debits minus credits) to this kind's normal side.
    /// `None` only for `i128::MIN` on a credit-normal account, which has no negation.
    pub fn to_normal(self, storage: Amount) -> Option<Amount> {
        match self.normal_side() {
            NormalSide::Debit => Some(storage),
            NormalSide::Credit => storage.checked_neg(),
        }
    }
}

/// The request to open an account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccount {
    /// Its name, unique in the book.
    pub name: AccountName,
    /// Its kind.
    pub kind: AccountKind,
    /// The lowest normal-side balance allowed in each asset; `None` is unbounded.
    pub min_balance: Option<Decimal>,
    /// Compact JSON text of the metadata object, as given (`{}` when absent).
    pub metadata: String,
}

/// An opened account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// The book it lives in.
    pub book: BookName,
    /// Its name.
    pub name: AccountName,
    /// Its kind.
    pub kind: AccountKind,
    /// The lowest normal-side balance allowed in each asset; `None` is unbounded.
    pub min_balance: Option<Decimal>,
    /// Compact JSON text of the metadata object.
    pub metadata: String,
    /// The sequence number of its `account_opened` event.
    pub seq: u64,
    /// The commit time of that event.
    pub opened_at: Timestamp,
}

/// A transaction's identifier (a UUIDv7, so ids sort roughly by time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TxId(pub uuid::Uuid);

impl TxId {
    /// A new time-ordered id.
    pub fn generate() -> Self {
        Self(uuid::Uuid::now_v7())
    }
}

/// One leg of a draft: a positive amount on one side of one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DraftPosting {
    /// The account it lands on.
    pub account: AccountName,
    /// The asset it moves.
    pub asset: AssetCode,
    /// Debit or credit.
    pub side: Side,
    /// Always above zero.
    pub amount: Amount,
}

impl DraftPosting {
    /// The posting's effect on the storage balance: `+amount` for a debit, `-amount` for a credit.
    pub fn signed(&self) -> Amount {
        match self.side {
            Side::Debit => self.amount,
            // A positive i128 always has a negation.
            Side::Credit => Amount::from_minor(-self.amount.minor()),
        }
    }
}

/// Why a draft was refused before it reached any store.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DraftError {
    /// Fewer than 2 or more than 256 postings.
    PostingCount,
    /// A posting amount is zero or negative (index of the posting).
    NotPositive(usize),
    /// Per asset, debits minus credits is not zero.
    Unbalanced(BTreeMap<AssetCode, Amount>),
    /// A per-asset total does not fit 128 bits.
    OutOfRange,
}

/// A transaction's status: what a posted or pending transaction is, and how
/// a hold ended. A hold is `Pending` until exactly one of settle (`Posted`),
/// void (`Voided`) or expiry (`Expired`) ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxStatus {
    /// Final: its postings moved the balances.
    Posted,
    /// A hold: its postings are reserved, not posted.
    Pending,
    /// A void of a hold, or a hold that a void ended.
    Voided,
    /// A hold that reached its `expires_at` unsettled.
    Expired,
}

impl TxStatus {
    /// The wire and storage name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Posted => "posted",
            Self::Pending => "pending",
            Self::Voided => "voided",
            Self::Expired => "expired",
        }
    }

    /// Parses a wire or storage name.
    pub fn parse(text: &str) -> Option<Self> {
        [Self::Posted, Self::Pending, Self::Voided, Self::Expired]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// What a draft does when it commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Intent {
    /// Posts its postings (the classic transaction).
    Post,
    /// Reserves its postings as a hold, until `expires_at` if given.
    Hold {
        /// From this instant on the hold reserves nothing and cannot be posted.
        expires_at: Option<Timestamp>,
    },
    /// Settles the hold `hold`: posts the draft's postings (all of the
    /// hold's when the draft has none) and releases the rest.
    Settle {
        /// The hold's id.
        hold: TxId,
    },
    /// Releases the hold `hold` without posting anything.
    Void {
        /// The hold's id.
        hold: TxId,
    },
}

impl Intent {
    /// The hold a settle or void ends.
    pub const fn ends(self) -> Option<TxId> {
        match self {
            Self::Settle { hold } | Self::Void { hold } => Some(hold),
            Self::Post | Self::Hold { .. } => None,
        }
    }
}

/// A transaction as posted, validated and balanced, not yet committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The caller's retry key, unique per book.
    pub idempotency_key: IdempotencyKey,
    /// Two to 256 legs, balanced per asset. Empty for a void, and for a
    /// settle of the whole hold.
    pub postings: Vec<DraftPosting>,
    /// Business time, if given.
    pub occurred_at: Option<Timestamp>,
    /// A note, if given.
    pub memo: Option<String>,
    /// Compact JSON text of the metadata object as given, if any.
    pub metadata: Option<String>,
    /// Post, hold, settle or void.
    pub intent: Intent,
    request_hash: [u8; 32],
}

impl Draft {
    /// Checks the structural rules (posting count, positive amounts, balance per asset)
    /// and fingerprints the request.
    ///
    /// `metadata_canonical` is the metadata in a canonical form (sorted keys, no
    /// whitespace), so that two bodies that differ only in key order or
    /// whitespace fingerprint alike; amounts and times are fingerprinted by
    /// value, so `"1.50"` and `"1.5"` are the same request.
    pub fn new(
        idempotency_key: IdempotencyKey,
        postings: Vec<DraftPosting>,
        occurred_at: Option<Timestamp>,
        memo: Option<String>,
        metadata: Option<(String, String)>,
    ) -> Result<Self, DraftError> {
        check_postings(&postings)?;
        let (metadata, canonical) = match metadata {
            Some((given, canonical)) => (Some(given), Some(canonical)),
            None => (None, None),
        };
        let request_hash = fingerprint(
            &idempotency_key,
            &postings,
            occurred_at,
            memo.as_deref(),
            canonical.as_deref(),
        );
        Ok(Self {
            idempotency_key,
            postings,
            occurred_at,
            memo,
            metadata,
            intent: Intent::Post,
            request_hash,
        })
    }

    /// The draft as a hold (`"pending": true`) until `expires_at`: the same
    /// rules, and a fingerprint that tells it from the same posted request.
    pub fn into_hold(mut self, expires_at: Option<Timestamp>) -> Self {
        self.intent = Intent::Hold { expires_at };
        self.request_hash = extend_fingerprint(self.request_hash, self.intent);
        self
    }

    /// A settle of `hold`: `postings` (checked like a transaction's) for a
    /// partial settlement, `None` for the whole hold.
    pub fn settle(
        idempotency_key: IdempotencyKey,
        hold: TxId,
        postings: Option<Vec<DraftPosting>>,
    ) -> Result<Self, DraftError> {
        let postings = match postings {
            Some(postings) => {
                check_postings(&postings)?;
                postings
            }
            None => Vec::new(),
        };
        Ok(Self::ending(
            idempotency_key,
            postings,
            Intent::Settle { hold },
        ))
    }

    /// A void of `hold`.
    pub fn void(idempotency_key: IdempotencyKey, hold: TxId) -> Self {
        Self::ending(idempotency_key, Vec::new(), Intent::Void { hold })
    }

    fn ending(
        idempotency_key: IdempotencyKey,
        postings: Vec<DraftPosting>,
        intent: Intent,
    ) -> Self {
        let base = fingerprint(&idempotency_key, &postings, None, None, None);
        Self {
            idempotency_key,
            postings,
            occurred_at: None,
            memo: None,
            metadata: None,
            intent,
            request_hash: extend_fingerprint(base, intent),
        }
    }

    /// SHA-256 of the canonical request: equal for retries of the same request.
    pub fn request_hash(&self) -> [u8; 32] {
        self.request_hash
    }
}

/// The structural rules of a transaction's postings: 2 to 256 legs,
/// positive amounts, balanced per asset without leaving 128 bits.
fn check_postings(postings: &[DraftPosting]) -> Result<(), DraftError> {
    if !(crate::limits::POSTINGS_MIN..=crate::limits::POSTINGS_MAX).contains(&postings.len()) {
        return Err(DraftError::PostingCount);
    }
    if let Some(i) = postings.iter().position(|p| !p.amount.is_positive()) {
        return Err(DraftError::NotPositive(i));
    }
    let mut sums: BTreeMap<AssetCode, Amount> = BTreeMap::new();
    for posting in postings {
        let sum = sums.entry(posting.asset.clone()).or_default();
        *sum = sum
            .checked_add(posting.signed())
            .ok_or(DraftError::OutOfRange)?;
    }
    sums.retain(|_, sum| *sum != Amount::ZERO);
    if sums.is_empty() {
        Ok(())
    } else {
        Err(DraftError::Unbalanced(sums))
    }
}

/// A posted request's fingerprint extended by what else the request says:
/// posted requests keep the fingerprint they always had (retries across an
/// upgrade still match), the others can never equal a posted one.
fn extend_fingerprint(base: [u8; 32], intent: Intent) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"talea-intent-v1");
    h.update(base);
    match intent {
        Intent::Post => return base,
        Intent::Hold { expires_at } => {
            h.update([1]);
            h.update(expires_at.map_or(i64::MIN, Timestamp::micros).to_be_bytes());
        }
        Intent::Settle { hold } => {
            h.update([2]);
            h.update(hold.0.as_bytes());
        }
        Intent::Void { hold } => {
            h.update([3]);
            h.update(hold.0.as_bytes());
        }
    }
    h.finalize().into()
}

/// Hashes every field of a request in an unambiguous, length-prefixed encoding.
fn fingerprint(
    key: &IdempotencyKey,
    postings: &[DraftPosting],
    occurred_at: Option<Timestamp>,
    memo: Option<&str>,
    metadata: Option<&str>,
) -> [u8; 32] {
    fn field(h: &mut Sha256, bytes: &[u8]) {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    }
    fn optional(h: &mut Sha256, value: Option<&[u8]>) {
        match value {
            Some(bytes) => {
                h.update([1]);
                field(h, bytes);
            }
            None => h.update([0]),
        }
    }
    let mut h = Sha256::new();
    h.update(b"talea-draft-v1");
    field(&mut h, key.as_str().as_bytes());
    h.update((postings.len() as u64).to_be_bytes());
    for p in postings {
        field(&mut h, p.account.as_str().as_bytes());
        field(&mut h, p.asset.as_str().as_bytes());
        h.update(p.signed().minor().to_be_bytes());
    }
    optional(
        &mut h,
        occurred_at
            .map(|t| t.micros().to_be_bytes())
            .as_ref()
            .map(|b| &b[..]),
    );
    optional(&mut h, memo.map(str::as_bytes));
    optional(&mut h, metadata.map(str::as_bytes));
    h.finalize().into()
}

/// A committed posting, with the account's storage balance in that asset right after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPosting {
    /// The account it landed on.
    pub account: AccountName,
    /// The asset it moved.
    pub asset: AssetCode,
    /// Debit or credit.
    pub side: Side,
    /// Above zero.
    pub amount: Amount,
    /// The account's storage balance (debits minus credits) in this asset after this posting.
    pub balance_after: Amount,
}

/// A committed transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    /// Its id.
    pub tx_id: TxId,
    /// Its book.
    pub book: BookName,
    /// Its place in the book's log.
    pub seq: u64,
    /// The database clock at commit, in microseconds.
    pub committed_at: Timestamp,
    /// The caller's retry key.
    pub idempotency_key: IdempotencyKey,
    /// The legs, in the order posted.
    pub postings: Vec<StoredPosting>,
    /// Business time, if given.
    pub occurred_at: Option<Timestamp>,
    /// The note, if given.
    pub memo: Option<String>,
    /// Compact JSON text of the metadata, if given.
    pub metadata: Option<String>,
    /// `Posted` or `Pending` as committed; a hold read later reports how it
    /// ended (`Posted`, `Voided`, `Expired`); a void record is `Voided`.
    pub status: TxStatus,
    /// A hold's expiry, if it has one.
    pub expires_at: Option<Timestamp>,
    /// The hold that a settle or void ended.
    pub pending_tx_id: Option<TxId>,
}

/// What an entry of a book's log records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// An account was opened.
    AccountOpened(Account),
    /// A transaction was committed: posted, a hold, a settle or a void
    /// (the commit's status as it was committed).
    Transaction(Commit),
    /// A hold reached its `expires_at` unsettled and reserves nothing any
    /// more: the hold, with status `Expired`.
    HoldExpired(Commit),
}

/// One entry of a book's append-only log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Dense, starting at 1.
    pub seq: u64,
    /// Database clock at commit.
    pub committed_at: Timestamp,
    /// What happened.
    pub kind: EventKind,
    /// Its chain hash (`docs/proofs.md`): SHA-256 of the previous event's
    /// hash and this event's canonical bytes, computed by the store under
    /// the book's lock; `None` only for an event of a book whose chain has
    /// not been computed yet (written before the chain existed).
    pub hash: Option<[u8; 32]>,
}

impl Event {
    /// The accounts this event touches (for stream filters).
    pub fn accounts(&self) -> Vec<&AccountName> {
        match &self.kind {
            EventKind::AccountOpened(a) => vec![&a.name],
            EventKind::Transaction(c) | EventKind::HoldExpired(c) => {
                c.postings.iter().map(|p| &p.account).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn posting(account: &str, asset: &str, side: Side, minor: i128) -> DraftPosting {
        DraftPosting {
            account: AccountName::parse(account).expect("account"),
            asset: AssetCode::parse(asset).expect("asset"),
            side,
            amount: Amount::from_minor(minor),
        }
    }

    fn key() -> IdempotencyKey {
        IdempotencyKey::parse("k").expect("key")
    }

    #[test]
    fn balanced_drafts_pass_and_fingerprint_by_value() {
        let legs = vec![
            posting("a", "BTC", Side::Debit, 5),
            posting("b", "BTC", Side::Credit, 5),
        ];
        let meta = Some((
            "{\"b\":1,\"a\":2}".to_owned(),
            "{\"a\":2,\"b\":1}".to_owned(),
        ));
        let meta2 = Some((
            "{\"a\":2,\"b\":1}".to_owned(),
            "{\"a\":2,\"b\":1}".to_owned(),
        ));
        let one = Draft::new(key(), legs.clone(), None, None, meta).expect("draft");
        let two = Draft::new(key(), legs.clone(), None, None, meta2).expect("draft");
        assert_eq!(one.request_hash(), two.request_hash());
        let three = Draft::new(key(), legs, None, Some("x".into()), None).expect("draft");
        assert_ne!(one.request_hash(), three.request_hash());
    }

    #[test]
    fn unbalanced_and_malformed_drafts_fail() {
        let err = Draft::new(
            key(),
            vec![
                posting("a", "BTC", Side::Debit, 5),
                posting("b", "BTC", Side::Credit, 4),
                posting("a", "ETH", Side::Debit, 1),
                posting("b", "ETH", Side::Credit, 1),
            ],
            None,
            None,
            None,
        );
        let mut expected = BTreeMap::new();
        expected.insert(
            AssetCode::parse("BTC").expect("asset"),
            Amount::from_minor(1),
        );
        assert_eq!(err, Err(DraftError::Unbalanced(expected)));
        assert_eq!(
            Draft::new(
                key(),
                vec![posting("a", "BTC", Side::Debit, 5)],
                None,
                None,
                None
            ),
            Err(DraftError::PostingCount)
        );
        assert_eq!(
            Draft::new(
                key(),
                vec![
                    posting("a", "B", Side::Debit, 0),
                    posting("b", "B", Side::Credit, 0)
                ],
                None,
                None,
                None
            ),
            Err(DraftError::NotPositive(0))
        );
        assert_eq!(
            Draft::new(
                key(),
                vec![
                    posting("a", "B", Side::Debit, i128::MAX),
                    posting("a", "B", Side::Debit, i128::MAX),
                    posting("b", "B", Side::Credit, 1)
                ],
                None,
                None,
                None
            ),
            Err(DraftError::OutOfRange)
        );
    }

    #[test]
    fn kinds_report_on_their_normal_side() {
        assert_eq!(
            AccountKind::Liability.to_normal(Amount::from_minor(-100)),
            Some(Amount::from_minor(100))
        );
        assert_eq!(
            AccountKind::Asset.to_normal(Amount::from_minor(-100)),
            Some(Amount::from_minor(-100))
        );
        assert_eq!(AccountKind::parse("equity"), Some(AccountKind::Equity));
        assert_eq!(AccountKind::parse("Equity"), None);
    }
}
