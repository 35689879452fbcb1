//! Transaction search: what a search asks for ([`TxFilter`]), the one
//! predicate every store answers it by ([`TxFilter::matches`]), and the
//! shared loop ([`Collector`]) that walks a backend's candidates (seqs from
//! the index of the filter that narrows most, see [`Driver`]), reads them
//! and keeps those the predicate accepts, examining at most
//! [`SEARCH_SCAN_MAX`](talea_core::limits::SEARCH_SCAN_MAX) candidates per
//! call.

use talea_core::limits::SEARCH_SCAN_MAX;
use talea_core::{AccountName, Commit, Timestamp, TxStatus};

/// An exact match on one top-level metadata key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataMatch {
    /// The top-level key.
    pub key: String,
    /// The value: a string equal to it, or an integer (within 64 bits) or
    /// boolean whose JSON text equals it.
    pub value: String,
}

impl MetadataMatch {
    /// Whether the metadata (compact JSON text of an object) has the key
    /// with a value this match accepts.
    pub fn matches(&self, metadata: Option<&str>) -> bool {
        let Some(text) = metadata else {
            return false;
        };
        let Ok(serde_json::Value::Object(object)) = serde_json::from_str(text) else {
            return false;
        };
        object.get(&self.key).is_some_and(|v| self.accepts(v))
    }

    fn accepts(&self, value: &serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(s) => *s == self.value,
            serde_json::Value::Number(n) => n.as_i64().is_some_and(|i| i.to_string() == self.value),
            serde_json::Value::Bool(b) => b.to_string() == self.value,
            _ => false,
        }
    }

    /// The one-key JSON objects whose containment (`@>`) finds every
    /// metadata this match accepts: the string, and the integer or boolean
    /// the value spells when it spells one.
    pub fn containments(&self) -> Vec<String> {
        let mut values = vec![serde_json::Value::String(self.value.clone())];
        if let Ok(i) = self.value.parse::<i64>()
            && i.to_string() == self.value
        {
            values.push(serde_json::Value::from(i));
        }
        if let Ok(b) = self.value.parse::<bool>() {
            values.push(serde_json::Value::Bool(b));
        }
        values
            .into_iter()
            .map(|v| {
                let mut object = serde_json::Map::new();
                object.insert(self.key.clone(), v);
                serde_json::Value::Object(object).to_string()
            })
            .collect()
    }
}

/// What a transaction search keeps: every filter given must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxFilter {
    /// A leg (posted or held) on this account.
    pub account: Option<AccountName>,
    /// Committed at or after this instant.
    pub from: Option<Timestamp>,
    /// Committed before this instant.
    pub to: Option<Timestamp>,
    /// This status, as a read of the transaction reports it now (a hold's
    /// is how it ended; a void is `Voided`).
    pub status: Option<TxStatus>,
    /// An exact match on one top-level metadata key.
    pub metadata: Option<MetadataMatch>,
}

/// Which index drives a search: the filter expected to narrow most, whose
/// index yields candidate seqs in order; the others are checked on each
/// candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// Transactions with a metadata key and value.
    Metadata,
    /// Transactions with a leg on an account.
    Account,
    /// Holds (or voids) with a status other than `Posted`.
    Status(TxStatus),
    /// Every transaction in the seq range of the time range.
    Range,
}

impl TxFilter {
    /// Whether no filter is given.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Whether `commit` (with its current status) passes every filter.
    pub fn matches(&self, commit: &Commit) -> bool {
        self.account
            .as_ref()
            .is_none_or(|a| commit.postings.iter().any(|p| p.account == *a))
            && self.from.is_none_or(|from| commit.committed_at >= from)
            && self.to.is_none_or(|to| commit.committed_at < to)
            && self.status.is_none_or(|s| commit.status == s)
            && self
                .metadata
                .as_ref()
                .is_none_or(|m| m.matches(commit.metadata.as_deref()))
    }

    /// The index that drives the search.
    pub fn driver(&self) -> Driver {
        if self.metadata.is_some() {
            Driver::Metadata
        } else if self.account.is_some() {
            Driver::Account
        } else {
            match self.status {
                Some(s) if s != TxStatus::Posted => Driver::Status(s),
                _ => Driver::Range,
            }
        }
    }
}

/// A page of a search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxSearchPage {
    /// The matches, in seq order.
    pub transactions: Vec<Commit>,
    /// Set when the search stopped after examining
    /// [`SEARCH_SCAN_MAX`] candidates, before `limit` matches: the seq it
    /// reached. More matches may follow it; none lie before it.
    pub scanned_to: Option<u64>,
}

/// Merges ascending seq lists, each at most `max` long, into one ascending
/// list without repeats, complete up to where every list is: a list that
/// came back full (`max` long) may have more after its last seq, so
/// nothing past the lowest such last seq is kept.
pub fn merge_candidates(lists: Vec<Vec<u64>>, max: u32) -> Vec<u64> {
    let cap = max as usize;
    let bound = lists
        .iter()
        .filter(|l| l.len() >= cap)
        .filter_map(|l| l.last().copied())
        .min();
    let mut seqs: Vec<u64> = lists
        .into_iter()
        .flatten()
        .filter(|s| bound.is_none_or(|b| *s <= b))
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    seqs.truncate(cap);
    seqs
}

/// The shared search loop, driven by a backend:
///
/// ```text
/// let mut c = Collector::new(&filter, after_seq, limit);
/// while let Some((after, max)) = c.next_read() {
///     // the driving index's candidate seqs above `after`, ascending, at
///     // most `max` (fewer only when it has no more), and the
///     // transactions among them with their current status
///     c.feed(&seqs, commits);
/// }
/// let page = c.finish();
/// ```
///
/// It keeps what the filter accepts until `limit` matched or
/// [`SEARCH_SCAN_MAX`] candidates were examined.
#[derive(Debug)]
pub struct Collector<'f> {
    filter: &'f TxFilter,
    limit: u32,
    page: TxSearchPage,
    after: u64,
    examined: u32,
    asked: u32,
    done: bool,
}

impl<'f> Collector<'f> {
    /// A search of `filter` above `after_seq`, for `limit` matches.
    pub fn new(filter: &'f TxFilter, after_seq: u64, limit: u32) -> Self {
        Self {
            filter,
            limit,
            page: TxSearchPage::default(),
            after: after_seq,
            examined: 0,
            asked: 0,
            done: limit == 0,
        }
    }

    /// The next read: candidates above this seq, at most this many; `None`
    /// once the search is over.
    pub fn next_read(&mut self) -> Option<(u64, u32)> {
        if self.done {
            return None;
        }
        let missing = self
            .limit
            .saturating_sub(self.page.transactions.len() as u32);
        // Read a little past what is missing: the other filters may drop some.
        self.asked = missing
            .saturating_mul(2)
            .clamp(64, 1000)
            .min(SEARCH_SCAN_MAX - self.examined);
        Some((self.after, self.asked))
    }

    /// What the read answered: the candidates, and the transactions among
    /// them (in seq order, with their current status).
    pub fn feed(&mut self, seqs: &[u64], commits: Vec<Commit>) {
        let Some(&last) = seqs.last() else {
            self.done = true;
            return;
        };
        self.examined += seqs.len() as u32;
        for commit in commits {
            if self.filter.matches(&commit) {
                self.page.transactions.push(commit);
                if self.page.transactions.len() as u32 >= self.limit {
                    self.done = true;
                    return;
                }
            }
        }
        if (seqs.len() as u32) < self.asked {
            self.done = true;
            return;
        }
        self.after = last;
        if self.examined >= SEARCH_SCAN_MAX {
            self.page.scanned_to = Some(last);
            self.done = true;
        }
    }

    /// The page.
    pub fn finish(self) -> TxSearchPage {
        self.page
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(key: &str, value: &str) -> MetadataMatch {
        MetadataMatch {
            key: key.to_owned(),
            value: value.to_owned(),
        }
    }

    #[test]
    fn metadata_matches_strings_integers_and_booleans_by_their_text() {
        let meta = r#"{"order_id":"A-1","attempt":3,"urgent":true,"rate":1.5,"nested":{"a":1}}"#;
        assert!(m("order_id", "A-1").matches(Some(meta)));
        assert!(!m("order_id", "A-2").matches(Some(meta)));
        assert!(m("attempt", "3").matches(Some(meta)));
        assert!(!m("attempt", "03").matches(Some(meta)));
        assert!(m("urgent", "true").matches(Some(meta)));
        assert!(!m("rate", "1.5").matches(Some(meta)));
        assert!(!m("nested", "{\"a\":1}").matches(Some(meta)));
        assert!(!m("missing", "x").matches(Some(meta)));
        assert!(!m("order_id", "A-1").matches(None));
        assert!(!m("order_id", "A-1").matches(Some("not json")));
    }

    #[test]
    fn containments_cover_every_accepted_spelling() {
        assert_eq!(m("k", "x").containments(), vec![r#"{"k":"x"}"#]);
        assert_eq!(
            m("k", "7").containments(),
            vec![r#"{"k":"7"}"#, r#"{"k":7}"#]
        );
        assert_eq!(m("k", "07").containments(), vec![r#"{"k":"07"}"#]);
        assert_eq!(
            m("k", "false").containments(),
            vec![r#"{"k":"false"}"#, r#"{"k":false}"#]
        );
    }

    /// A commit at `seq` (only its seq and metadata matter here).
    fn commit(seq: u64, metadata: Option<&str>) -> Commit {
        Commit {
            tx_id: talea_core::TxId(Default::default()),
            book: talea_core::BookName::parse("b").expect("book"),
            seq,
            committed_at: Timestamp::from_micros(0),
            idempotency_key: talea_core::IdempotencyKey::parse("k").expect("key"),
            postings: Vec::new(),
            occurred_at: None,
            memo: None,
            metadata: metadata.map(str::to_owned),
            status: TxStatus::Posted,
            expires_at: None,
            pending_tx_id: None,
        }
    }

    /// `collect` over candidates 1..=n where only `hit` seqs match.
    fn run(
        n: u64,
        hit: impl Fn(u64) -> bool,
        after: u64,
        limit: u32,
    ) -> (Vec<u64>, Option<u64>, u64) {
        let filter = TxFilter {
            metadata: Some(m("k", "v")),
            ..TxFilter::default()
        };
        let mut read = 0;
        let mut c = Collector::new(&filter, after, limit);
        while let Some((from, max)) = c.next_read() {
            let seqs: Vec<u64> = (from + 1..=n).take(max as usize).collect();
            read += seqs.len() as u64;
            let commits = seqs
                .iter()
                .map(|&s| commit(s, hit(s).then_some(r#"{"k":"v"}"#)))
                .collect();
            c.feed(&seqs, commits);
        }
        let page = c.finish();
        let seqs = page.transactions.iter().map(|c| c.seq).collect();
        (seqs, page.scanned_to, read)
    }

    #[test]
    fn collect_fills_the_page_and_stops_at_the_scan_limit() {
        // Every candidate matches: one read of a little more than the page.
        let (seqs, scanned, read) = run(100_000, |_| true, 0, 10);
        assert_eq!(seqs, (1..=10).collect::<Vec<_>>());
        assert_eq!(scanned, None);
        assert!(read <= 64, "{read}");
        // Rare matches: pages join up through the cursor.
        let (seqs, scanned, _) = run(100, |s| s % 30 == 0, 0, 2);
        assert_eq!((seqs, scanned), (vec![30, 60], None));
        let (seqs, scanned, _) = run(100, |s| s % 30 == 0, 60, 2);
        assert_eq!((seqs, scanned), (vec![90], None));
        // No match among more than the limit: it stops there and says so.
        let (seqs, scanned, read) = run(50_000, |s| s == 40_000, 0, 5);
        assert!(seqs.is_empty());
        assert_eq!(scanned, Some(u64::from(SEARCH_SCAN_MAX)));
        assert_eq!(read, u64::from(SEARCH_SCAN_MAX));
        // The end of the candidates is not a stop.
        let (seqs, scanned, _) = run(500, |_| false, 0, 5);
        assert_eq!((seqs, scanned), (Vec::new(), None));
    }

    #[test]
    fn merged_candidates_stop_where_a_full_list_stops() {
        assert_eq!(
            merge_candidates(vec![vec![1, 4, 9], vec![2, 4]], 5),
            vec![1, 2, 4, 9]
        );
        // The first list is full at 5: the second's 7 may have company
        // from the first beyond 5, so the merge stops at 5.
        assert_eq!(
            merge_candidates(vec![vec![1, 3, 5], vec![2, 7]], 3),
            vec![1, 2, 3]
        );
        assert_eq!(merge_candidates(vec![vec![], vec![]], 3), Vec::<u64>::new());
    }
}
