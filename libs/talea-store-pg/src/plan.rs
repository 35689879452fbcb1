//! Postgres's use of the shared planner (`talea_store::plan`): its one extra rule.
//!
//! The rules that decide a batch live in `talea_store::plan`, shared with
//! the other backends; what stays here is what only this backend refuses.

use talea_core::{BookName, Draft, Timestamp};
use talea_store::Rejection;
pub(crate) use talea_store::plan::{
    AccountRule, Loaded, Pair, Planned, Planner, StoredKey, Totals, Verdict, Wanted,
    final_balances, outcomes,
};

/// A planner for a batch of this backend: the shared rules plus `storable`.
pub(crate) fn planner<'a>(
    book: &'a BookName,
    loaded: &'a Loaded,
    last_seq: u64,
    committed_at: Timestamp,
) -> Planner<'a> {
    Planner::new(book, loaded, last_seq, committed_at).with_draft_check(storable)
}

/// Refuses an `occurred_at` that chrono (and so sqlx) cannot represent.
fn storable(draft: &Draft) -> Result<(), Rejection> {
    if draft
        .occurred_at
        .is_some_and(|at| crate::codec::datetime(at).is_none())
    {
        return Err(Rejection::Failed(
            "occurred_at is outside the storable range".to_owned(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use talea_core::{
        AccountKind, AccountName, Amount, AssetCode, DraftPosting, IdempotencyKey, Scale, Side,
    };

    #[test]
    fn times_chrono_cannot_hold_are_refused() {
        let book = BookName::parse("b").expect("book");
        let mut loaded = Loaded::default();
        for name in ["x", "y"] {
            loaded.accounts.insert(
                AccountName::parse(name).expect("name"),
                AccountRule {
                    kind: AccountKind::Asset,
                    min_balance: None,
                },
            );
        }
        let btc = AssetCode::parse("BTC").expect("code");
        loaded
            .scales
            .insert(btc.clone(), Scale::new(8).expect("scale"));
        let leg = |account: &str, side| DraftPosting {
            account: AccountName::parse(account).expect("name"),
            asset: btc.clone(),
            side,
            amount: Amount::from_minor(1),
        };
        let far = Draft::new(
            IdempotencyKey::parse("far").expect("key"),
            vec![leg("x", Side::Debit), leg("y", Side::Credit)],
            Some(Timestamp::from_micros(i64::MAX)),
            None,
            None,
        )
        .expect("draft");
        let planner = planner(&book, &loaded, 0, Timestamp::from_micros(1));
        assert!(matches!(
            planner.evaluate(&far),
            Verdict::Settled(talea_store::Outcome::Rejected(Rejection::Failed(_)))
        ));
    }
}
