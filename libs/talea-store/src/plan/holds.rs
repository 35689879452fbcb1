//! The planner's half for holds: a hold reserves its legs, a settle posts
//! (all or part of) them and releases the rest, a void releases them; the
//! available balance that `min_balance` binds; the expiries that
//! `Store::expire_holds` appends. Every store decides holds here.

use std::collections::HashMap;

use talea_core::{
    AccountKind, AccountName, Amount, AssetCode, Commit, Draft, DraftPosting, NormalSide, Side,
    StoredPosting, Timestamp, TxId, TxStatus,
};

use super::{Pair, Planned, PlannedPosting, Planner, Totals, Touched};
use crate::{Held, Rejection};

/// A transaction that a settle or void names, as it stands before the batch.
#[derive(Debug, Clone)]
pub struct HoldState {
    /// The transaction as committed, with its postings; a hold's status is
    /// `Pending` here whatever became of it.
    pub commit: Commit,
    /// For a hold: `Pending` while it stands, else how it ended.
    pub status: TxStatus,
    /// The settle or void that ended it.
    pub ended_by: Option<TxId>,
}

impl HoldState {
    /// Whether the transaction is a hold (committed as pending).
    pub fn is_hold(&self) -> bool {
        self.commit.status == TxStatus::Pending
    }
}

impl Planner<'_> {
    /// A hold: its postings are checked like a post's and reserved, moving
    /// no posted balance; `min_balance` binds the available balance it
    /// lowers.
    pub(super) fn plan_hold(
        &self,
        draft: &Draft,
        expires_at: Option<Timestamp>,
    ) -> Result<Planned, Rejection> {
        self.check_known(draft)?;
        if expires_at.is_some_and(|at| at <= self.committed_at) {
            return Err(Rejection::ExpiresInPast);
        }
        let (touched, postings) = self.apply_postings(&draft.postings)?;
        // Nothing posted: every pair keeps its totals, and each leg's
        // `balance_after` is the posted balance it leaves unchanged.
        let unchanged: Vec<Touched> = touched
            .iter()
            .map(|(pair, before, _)| (pair.clone(), *before, *before))
            .collect();
        let postings = postings
            .into_iter()
            .zip(&draft.postings)
            .map(|(planned, p)| {
                let before = self.totals(&(p.account.clone(), p.asset.clone()));
                PlannedPosting {
                    amount: planned.amount,
                    balance_after: before.balance,
                    debits_after: before.debits,
                }
            })
            .collect::<Vec<_>>();
        let held = self.change_held(&draft.postings, Reserve::Add)?;
        self.check_min_balance(&unchanged, &held)?;
        let mut commit = self.commit(draft, &draft.postings, &postings, TxStatus::Pending);
        commit.expires_at = expires_at;
        Ok(Planned::new(commit, draft, postings, Vec::new(), held))
    }

    /// A settle: posts the draft's postings (the whole hold's without
    /// them), each at most what the hold holds on its (account, asset,
    /// side), and releases the whole hold. Never refused for funds: they
    /// were reserved.
    pub(super) fn plan_settle(&self, draft: &Draft, hold: TxId) -> Result<Planned, Rejection> {
        let state = self.live_hold(hold)?;
        let released = hold_legs(&state.commit);
        let legs: &[DraftPosting] = &draft.postings;
        let posted = if legs.is_empty() {
            &released[..]
        } else {
            check_within_hold(legs, &state.commit.postings)?;
            legs
        };
        let (touched, postings) = self.apply_postings(posted)?;
        let held = self.change_held(&released, Reserve::Release)?;
        let mut commit = self.commit(draft, posted, &postings, TxStatus::Posted);
        commit.pending_tx_id = Some(hold);
        let mut planned = Planned::new(commit, draft, postings, touched, held);
        planned.pending_seq = Some(state.commit.seq);
        Ok(planned)
    }

    /// A void: releases the whole hold, posting nothing.
    pub(super) fn plan_void(&self, draft: &Draft, hold: TxId) -> Result<Planned, Rejection> {
        let state = self.live_hold(hold)?;
        let held = self.change_held(&hold_legs(&state.commit), Reserve::Release)?;
        let mut commit = self.commit(draft, &[], &[], TxStatus::Voided);
        commit.pending_tx_id = Some(hold);
        let mut planned = Planned::new(commit, draft, Vec::new(), Vec::new(), held);
        planned.pending_seq = Some(state.commit.seq);
        Ok(planned)
    }

    /// The hold `tx_id` if it can still be settled or voided: in the book,
    /// a hold, pending, and not expired at the batch's commit time.
    fn live_hold(&self, tx_id: TxId) -> Result<&HoldState, Rejection> {
        let state = self
            .hold(&tx_id)
            .ok_or(Rejection::UnknownTransaction(tx_id))?;
        if !state.is_hold() {
            return Err(Rejection::NotAHold(tx_id));
        }
        if state.status != TxStatus::Pending {
            return Err(Rejection::HoldNotPending {
                status: state.status,
                ended_by: state.ended_by,
            });
        }
        if state
            .commit
            .expires_at
            .is_some_and(|at| at <= self.committed_at)
        {
            // Expired, though its `hold_expired` event may not be appended yet.
            return Err(Rejection::HoldNotPending {
                status: TxStatus::Expired,
                ended_by: None,
            });
        }
        Ok(state)
    }

    /// The held amounts after adding or releasing `legs`: (pair, before, after) per pair.
    ///
    /// Only pairs of accounts with a `min_balance` are tracked: held
    /// amounts decide nothing else, and the SQL stores load them only for
    /// those accounts (`Dialect::accounts_and_held`).
    fn change_held(
        &self,
        legs: &[DraftPosting],
        how: Reserve,
    ) -> Result<Vec<(Pair, Held, Held)>, Rejection> {
        let mut changed: Vec<(Pair, Held, Held)> = Vec::new();
        for p in legs {
            let floored = self
                .loaded
                .accounts
                .get(&p.account)
                .is_some_and(|rule| rule.min_balance.is_some());
            if !floored {
                continue;
            }
            let index = match changed
                .iter()
                .position(|(pair, _, _)| pair.0 == p.account && pair.1 == p.asset)
            {
                Some(i) => i,
                None => {
                    let pair = (p.account.clone(), p.asset.clone());
                    let before = self.held(&pair);
                    changed.push((pair, before, before));
                    changed.len() - 1
                }
            };
            let after = &mut changed[index].2;
            let total = match p.side {
                Side::Debit => &mut after.debits,
                Side::Credit => &mut after.credits,
            };
            let moved = match how {
                Reserve::Add => total.checked_add(p.amount),
                // Releasing never goes below zero unless the state is corrupt.
                Reserve::Release => total.checked_sub(p.amount).filter(|a| a.minor() >= 0),
            };
            *total = moved.ok_or(Rejection::AmountOutOfRange)?;
        }
        Ok(changed)
    }
}

/// The expiries of `due` (holds of one book still pending, each with an
/// `expires_at` at or before `committed_at`), in order, taking the seqs
/// after `last_seq`: what `Store::expire_holds` appends.
pub fn expiries(due: Vec<Commit>, last_seq: u64, committed_at: Timestamp) -> Vec<crate::Expiry> {
    due.into_iter()
        .zip(last_seq + 1..)
        .map(|(mut hold, seq)| {
            hold.status = TxStatus::Expired;
            crate::Expiry {
                seq,
                committed_at,
                hold,
            }
        })
        .collect()
}

/// Whether a held-amount change adds legs or releases them.
#[derive(Debug, Clone, Copy)]
enum Reserve {
    Add,
    Release,
}

/// An account's available balance in one asset: its normal-side posted
/// balance minus the held amounts that would lower it (held credits on a
/// debit-normal account, held debits on a credit-normal one). Held amounts
/// that would raise it count only once posted. `None` outside 128 bits.
pub fn available(kind: AccountKind, totals: Totals, held: Held) -> Option<Amount> {
    let normal = kind.to_normal(Amount::from_minor(totals.balance))?;
    let lowering = match kind.normal_side() {
        NormalSide::Debit => held.credits,
        NormalSide::Credit => held.debits,
    };
    normal.checked_sub(lowering)
}

/// A hold's postings as the legs a settle or void releases.
fn hold_legs(hold: &Commit) -> Vec<DraftPosting> {
    hold.postings
        .iter()
        .map(|p| DraftPosting {
            account: p.account.clone(),
            asset: p.asset.clone(),
            side: p.side,
            amount: p.amount,
        })
        .collect()
}

/// Refuses a partial settle that posts more than the hold holds on any
/// (account, asset, side) (a leg the hold lacks holds zero).
fn check_within_hold(legs: &[DraftPosting], hold: &[StoredPosting]) -> Result<(), Rejection> {
    type Leg<'p> = (&'p AccountName, &'p AssetCode, bool);
    fn sums<'p>(
        items: impl Iterator<Item = (Leg<'p>, Amount)>,
    ) -> Result<HashMap<Leg<'p>, Amount>, Rejection> {
        let mut out: HashMap<Leg<'p>, Amount> = HashMap::new();
        for (leg, amount) in items {
            let sum = out.entry(leg).or_default();
            *sum = sum.checked_add(amount).ok_or(Rejection::AmountOutOfRange)?;
        }
        Ok(out)
    }
    let held = sums(
        hold.iter()
            .map(|p| ((&p.account, &p.asset, p.side == Side::Debit), p.amount)),
    )?;
    let asked = sums(
        legs.iter()
            .map(|p| ((&p.account, &p.asset, p.side == Side::Debit), p.amount)),
    )?;
    // In the draft's own order, so the error names its first excess.
    for p in legs {
        let leg = (&p.account, &p.asset, p.side == Side::Debit);
        let requested = asked.get(&leg).copied().unwrap_or_default();
        let have = held.get(&leg).copied().unwrap_or_default();
        if requested > have {
            return Err(Rejection::ExceedsHold {
                account: p.account.clone(),
                asset: p.asset.clone(),
                held: have,
                requested,
            });
        }
    }
    Ok(())
}
