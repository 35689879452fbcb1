//! Balances under an account-name prefix: the key range a prefix covers, and
//! the one fold every backend runs over the matching accounts to count them,
//! total them and cut out the page.

use talea_core::{AccountKind, AccountName, Amount, AssetCode};

use crate::{AccountBalances, Balance, Held, StoreError};

/// The upper bound of the names that start with `prefix`, exclusive, in
/// byte order: `prefix` with its last byte incremented, or a bound above
/// every account name for the empty prefix. Account names (hence prefixes,
/// which parse as names) are bytes of `[A-Za-z0-9:._-]`, all below `~`
/// (0x7e), so the increment never carries and the result is ASCII.
pub fn upper_bound(prefix: Option<&AccountName>) -> String {
    let Some(prefix) = prefix else {
        return "~".to_owned();
    };
    let mut bytes = prefix.as_str().as_bytes().to_vec();
    if let Some(last) = bytes.last_mut() {
        *last += 1;
    }
    bytes.into_iter().map(char::from).collect()
}

/// Per asset and account kind, the sums over every matching account: the
/// storage balance and what live holds reserve. Kinds are kept apart so the
/// caller can turn each into normal-side and available figures exactly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindTotal {
    /// The accounts' kind.
    pub kind: AccountKind,
    /// The asset, the summed storage balance and summed held amounts.
    pub total: Balance,
}

/// The answer of [`Store::prefix_balances`](crate::Store::prefix_balances).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrefixBalances {
    /// How many accounts match the prefix (not only the page).
    pub count: u64,
    /// Totals over every matching account, by kind then asset.
    pub totals: Vec<KindTotal>,
    /// The page: matching accounts strictly after `after`, by name, at most
    /// `limit`, each with its balances (only of the asset asked for, if one was).
    pub page: Vec<AccountBalances>,
}

impl PrefixBalances {
    /// Folds every matching account, in name order, into the count, the
    /// totals and the page, keeping only `asset`'s balances when one is
    /// given (the accounts still count, with no balance). Sums beyond 128 bits are `Corrupt`: every
    /// balance is bounded by checked sums, so only damaged data gets there.
    pub fn fold(
        accounts: impl IntoIterator<Item = AccountBalances>,
        asset: Option<&AssetCode>,
        after: Option<&AccountName>,
        limit: u32,
    ) -> Result<Self, StoreError> {
        let mut out = Self::default();
        for mut account in accounts {
            out.count += 1;
            if let Some(asset) = asset {
                account.balances.retain(|b| b.asset == *asset);
            }
            for b in &account.balances {
                out.add(account.kind, b)?;
            }
            let in_page = after.is_none_or(|a| account.account > *a);
            if in_page && out.page.len() < limit as usize {
                out.page.push(account);
            }
        }
        out.totals.sort_by(|a, b| {
            (a.kind.as_str(), &a.total.asset).cmp(&(b.kind.as_str(), &b.total.asset))
        });
        Ok(out)
    }

    fn add(&mut self, kind: AccountKind, b: &Balance) -> Result<(), StoreError> {
        let at = match self
            .totals
            .iter()
            .position(|t| t.kind == kind && t.total.asset == b.asset)
        {
            Some(at) => at,
            None => {
                self.totals.push(KindTotal {
                    kind,
                    total: Balance {
                        asset: b.asset.clone(),
                        balance: Amount::ZERO,
                        held: Held::default(),
                    },
                });
                self.totals.len() - 1
            }
        };
        let t = &mut self.totals[at].total;
        let sum = |x: Amount, y: Amount| {
            x.checked_add(y).ok_or_else(|| {
                StoreError::Corrupt(format!("totals of {} beyond 128 bits", b.asset))
            })
        };
        t.balance = sum(t.balance, b.balance)?;
        t.held.debits = sum(t.held.debits, b.held.debits)?;
        t.held.credits = sum(t.held.credits, b.held.credits)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upper_bound_increments_the_last_byte() {
        let name = AccountName::parse("customers:").ok();
        assert_eq!(upper_bound(name.as_ref()), "customers;");
        let name = AccountName::parse("abz").ok();
        assert_eq!(upper_bound(name.as_ref()), "ab{");
        assert_eq!(upper_bound(None), "~");
    }
}
