//! The balance history of one account in one asset: what a store reads
//! (`Store::balance_history`), and the shared downsampling of the changes
//! into equal time buckets.

use talea_core::{Amount, Timestamp};

/// The account's storage balance in one asset right after one committed
/// event that changed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BalanceChange {
    /// The event's seq.
    pub seq: u64,
    /// Its commit time.
    pub committed_at: Timestamp,
    /// Storage balance (debits minus credits) right after the event.
    pub balance: Amount,
}

/// Which part of the history to read: changes committed in `[from, to)`
/// (unbounded where `None`) with seq above `after_seq`, at most `limit`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HistoryRange {
    /// The first instant included.
    pub from: Option<Timestamp>,
    /// The first instant excluded.
    pub to: Option<Timestamp>,
    /// Only changes with a seq above this one (a page's cursor).
    pub after_seq: u64,
    /// At most this many changes.
    pub limit: u32,
}

/// What [`Store::balance_history`] reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BalanceHistory {
    /// Storage balance before the first change returned: after the last
    /// change before `from` (or at or before `after_seq`), zero if none.
    pub opening: Amount,
    /// The changes in `[from, to)` with seq above `after_seq`, in seq
    /// order, at most `limit`.
    pub changes: Vec<BalanceChange>,
    /// Whether further changes in the range follow the last one returned.
    pub more: bool,
}

/// One equal time bucket of a downsampled history.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// The bucket's first instant (it ends where the next one starts).
    pub start: Timestamp,
    /// The balance at the start of the bucket's changes, or carried forward.
    pub first: Amount,
    /// The balance after its last change, or carried forward.
    pub last: Amount,
    /// The least balance over its changes (and the one it opened with).
    pub min: Amount,
    /// The greatest.
    pub max: Amount,
}

/// Splits `[from, to)` into `points` equal buckets (the last takes the
/// remainder) and folds `(time, balance)` changes, in time order, into
/// them. A bucket without a change carries the balance forward, so every
/// bucket is present. Each bucket opens with the balance it inherits, so
/// `first` is that balance, `min`/`max` include it. `None` when `points`
/// is zero or the range is empty.
pub fn downsample(
    opening: Amount,
    changes: &[(Timestamp, Amount)],
    from: Timestamp,
    to: Timestamp,
    points: u32,
) -> Option<Vec<Bucket>> {
    let mut d = Downsampler::new(opening, from, to, points)?;
    for &(at, value) in changes {
        d.push(at, value);
    }
    Some(d.finish())
}

/// [`downsample`] one change at a time, so a long history is folded as it
/// is read, in O(`points`) memory.
#[derive(Debug, Clone)]
pub struct Downsampler {
    from: i64,
    to: i64,
    width: i64,
    /// Buckets in all: those of `points` that start before `to`.
    count: i64,
    balance: Amount,
    buckets: Vec<Bucket>,
}

impl Downsampler {
    /// See [`downsample`]; `None` when `points` is zero or the range empty.
    pub fn new(opening: Amount, from: Timestamp, to: Timestamp, points: u32) -> Option<Self> {
        let span = to.micros().checked_sub(from.micros())?;
        if points == 0 || span <= 0 {
            return None;
        }
        let width = (span / i64::from(points)).max(1);
        let count = i64::from(points).min((span + width - 1) / width);
        Some(Self {
            from: from.micros(),
            to: to.micros(),
            width,
            count,
            balance: opening,
            buckets: Vec::with_capacity(usize::try_from(count).ok()?),
        })
    }

    /// Opens buckets up to index `i`, each with the balance carried in.
    fn open_until(&mut self, i: i64) {
        while (self.buckets.len() as i64) <= i {
            let start = self.from + self.buckets.len() as i64 * self.width;
            let b = self.balance;
            self.buckets.push(Bucket {
                start: Timestamp::from_micros(start),
                first: b,
                last: b,
                min: b,
                max: b,
            });
        }
    }

    /// The balance became `value` at `at` (changes come in time order;
    /// those outside `[from, to)` are ignored).
    pub fn push(&mut self, at: Timestamp, value: Amount) {
        let at = at.micros();
        if at < self.from || at >= self.to {
            return;
        }
        let i = ((at - self.from) / self.width).min(self.count - 1);
        self.open_until(i);
        self.balance = value;
        if let Some(bucket) = self.buckets.last_mut() {
            bucket.last = value;
            bucket.min = bucket.min.min(value);
            bucket.max = bucket.max.max(value);
        }
    }

    /// Every bucket, those after the last change carrying it forward.
    pub fn finish(mut self) -> Vec<Bucket> {
        self.open_until(self.count - 1);
        self.buckets
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(m: i64) -> Timestamp {
        Timestamp::from_micros(m)
    }

    fn a(n: i128) -> Amount {
        Amount::from_minor(n)
    }

    #[test]
    fn downsample_carries_forward_and_tracks_min_max() {
        let changes = [(t(1), a(5)), (t(2), a(-3)), (t(7), a(9))];
        let b = downsample(a(1), &changes, t(0), t(10), 2).expect("buckets");
        assert_eq!(b.len(), 2);
        assert_eq!(
            (b[0].first, b[0].last, b[0].min, b[0].max),
            (a(1), a(-3), a(-3), a(5))
        );
        assert_eq!(
            (b[1].first, b[1].last, b[1].min, b[1].max),
            (a(-3), a(9), a(-3), a(9))
        );
        let quiet = downsample(a(4), &[], t(0), t(10), 3).expect("buckets");
        assert!(quiet.iter().all(|b| b.first == a(4) && b.max == a(4)));
        assert!(downsample(a(0), &[], t(5), t(5), 3).is_none());
    }
}
