//! Proof of liabilities, server side (`docs/proofs.md`, "Proof of
//! liabilities"): a signed snapshot of one asset's normal-side balances of
//! the accounts under a prefix at one seq, as a Merkle-sum tree
//! (`talea_verify::liabilities`), kept by the store with the balances it was
//! built from, and each account's proof served from it.
//!
//! Units: the tree, the signed `total` and every number of a proof are
//! minor units (integers); `total_amount` and the refused balances of the
//! snapshot document are decimals at the asset's scale, for people.
//!
//! A proof rebuilds the snapshot's tree from its kept balances (O(n) hashes,
//! about a second for a million accounts) and checks that the root is the
//! signed one before answering.

use talea_api::{
    ApiError, LiabilityProof, LiabilityRequest, LiabilitySnapshot, LiabilityStep, RefusedAccount,
    format_timestamp,
};
use talea_core::{AccountName, Asset, BookName};
use talea_store::BalanceCut;
use talea_verify::hash::to_hex;
use talea_verify::liabilities::{LiabilityError, SumTree};

use crate::LedgerService;
use crate::convert::{self, store_error};

/// Most characters of a snapshot's account prefix (an account name's most).
pub const LIABILITY_PREFIX_CHARS_MAX: usize = 128;

/// Most accounts a snapshot reads from its book. The balances are read in
/// one consistent cut, which cannot be paged, so a book with more accounts
/// (under the prefix or not) is refused with 400.
pub const LIABILITY_BOOK_ACCOUNTS_MAX: u32 = 1_000_000;

/// Longest snapshot id looked up (a UUID has 36 characters); a longer one
/// is unknown.
const SNAPSHOT_ID_CHARS_MAX: usize = 64;

/// Checks a prefix: 1..=128 characters an account name may hold.
pub(crate) fn parse_prefix(prefix: &str) -> Result<(), ApiError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, ':' | '.' | '_' | '-');
    if prefix.is_empty() || prefix.len() > LIABILITY_PREFIX_CHARS_MAX {
        return Err(ApiError::invalid(
            "/prefix",
            format!("prefix must be 1 to {LIABILITY_PREFIX_CHARS_MAX} characters"),
        ));
    }
    if !prefix.chars().all(allowed) {
        return Err(ApiError::invalid(
            "/prefix",
            "prefix may hold only A-Z a-z 0-9 : . _ -",
        ));
    }
    Ok(())
}

/// The normal-side posted balances in `asset` of the cut's accounts whose
/// names start with `prefix` and that ever held it, by name; 400 when the
/// cut holds more than `max` accounts.
pub(crate) fn take(
    cut: &BalanceCut,
    asset: &Asset,
    prefix: &str,
    max: usize,
) -> Result<Vec<(AccountName, i128)>, ApiError> {
    if cut.accounts.len() > max {
        return Err(ApiError::invalid(
            "/prefix",
            format!(
                "a liability snapshot reads at most {max} accounts of a book; this book has more"
            ),
        ));
    }
    let mut taken: Vec<(AccountName, i128)> = cut
        .accounts
        .iter()
        .filter(|a| a.account.as_str().starts_with(prefix))
        .filter_map(|a| {
            let b = a.balances.iter().find(|b| b.asset == asset.code)?;
            Some((
                a.account.clone(),
                convert::normal(a.kind, b.balance).minor(),
            ))
        })
        .collect();
    taken.sort_by(|x, y| x.0.as_str().cmp(y.0.as_str()));
    Ok(taken)
}

/// Formats a u128 of minor units at `scale`, trailing fractional zeros
/// trimmed (as amounts are written everywhere).
fn format_total(total: u128, scale: u8) -> String {
    let digits = total.to_string();
    let scale = usize::from(scale);
    let padded = match digits.len() <= scale {
        true => format!("{}{digits}", "0".repeat(scale + 1 - digits.len())),
        false => digits,
    };
    let (int, frac) = padded.split_at(padded.len() - scale);
    match frac.trim_end_matches('0') {
        "" => int.to_owned(),
        frac => format!("{int}.{frac}"),
    }
}

/// The snapshot document of a kept snapshot.
fn document(kept: &talea_store::LiabilitySnapshot, asset: &Asset) -> LiabilitySnapshot {
    let scale = asset.scale;
    let refused = kept
        .balances
        .iter()
        .filter(|(_, b)| *b < 0)
        .map(|(account, balance)| RefusedAccount {
            account: account.to_string(),
            balance: talea_core::Amount::from_minor(*balance).format(scale),
        })
        .collect();
    LiabilitySnapshot {
        snapshot: kept.id.clone(),
        book: kept.book.to_string(),
        asset: kept.asset.to_string(),
        scale: u32::from(scale.digits()),
        prefix: kept.prefix.clone(),
        seq: kept.seq,
        root: to_hex(&kept.root),
        total: kept.total.to_string(),
        total_amount: format_total(kept.total, scale.digits()),
        accounts: kept.balances.iter().filter(|(_, b)| *b >= 0).count() as u64,
        refused,
        timestamp: format_timestamp(kept.timestamp),
        key_id: kept.key_id.clone(),
        signature: to_hex(&kept.signature),
    }
}

fn tree_error(e: LiabilityError) -> ApiError {
    match e {
        LiabilityError::Overflow => ApiError::AmountOutOfRange {
            field: Some("/asset".to_owned()),
            message: "the balances' total does not fit 128 bits".to_owned(),
        },
        other => {
            tracing::error!(error = %other, "liabilities: cannot build the tree");
            ApiError::Internal
        }
    }
}

impl LedgerService {
    /// The registered asset `code` (422 `unknown_asset` when it is not).
    pub(crate) async fn registered_asset(
        &self,
        code: &str,
        field: &str,
    ) -> Result<Asset, ApiError> {
        let code = convert::asset_code(code, field)?;
        self.asset(&code)
            .await?
            .ok_or_else(|| ApiError::UnknownAsset {
                asset: code.to_string(),
            })
    }

    /// Takes, signs and keeps a snapshot; see `LedgerApi::create_liability_snapshot`.
    pub(crate) async fn take_liability_snapshot(
        &self,
        book: &str,
        request: LiabilityRequest,
    ) -> Result<LiabilitySnapshot, ApiError> {
        let name = convert::book(book)?;
        parse_prefix(&request.prefix)?;
        let asset = self.registered_asset(&request.asset, "/asset").await?;
        let cut = self
            .inner
            .store
            .balance_cut(&name, None, LIABILITY_BOOK_ACCOUNTS_MAX + 1)
            .await
            .map_err(|e| store_error(&e))?
            .ok_or_else(|| ApiError::not_found(format!("book {book} not found")))?;
        let balances = take(
            &cut,
            &asset,
            &request.prefix,
            LIABILITY_BOOK_ACCOUNTS_MAX as usize,
        )?;
        let mut salt = [0u8; 32];
        rand::RngCore::fill_bytes(&mut rand::rng(), &mut salt);
        let tree = SumTree::build(salt, balances.iter().map(|(a, b)| (a.to_string(), *b)))
            .map_err(tree_error)?;
        let root = tree.root();
        let mut kept = talea_store::LiabilitySnapshot {
            book: name,
            id: uuid::Uuid::now_v7().to_string(),
            asset: asset.code.clone(),
            prefix: request.prefix,
            seq: cut.last_seq,
            salt,
            root: root.hash,
            total: root.sum,
            timestamp: crate::api::now(),
            key_id: String::new(),
            signature: [0; 64],
            balances,
        };
        let signed = document(&kept, &asset)
            .sign(self.inner.notary.signing_key())
            .map_err(|e| {
                tracing::error!(error = %e, "liabilities: cannot sign");
                ApiError::Internal
            })?;
        kept.key_id = signed.key_id.clone();
        kept.signature = talea_verify::hash::parse_hex::<64>(&signed.signature)
            .map_err(|_| ApiError::Internal)?;
        self.inner
            .store
            .save_liability_snapshot(&kept)
            .await
            .map_err(|e| store_error(&e))?;
        tracing::info!(book = %kept.book, snapshot = %kept.id, seq = kept.seq,
            accounts = signed.accounts, refused = signed.refused.len(), "liability snapshot signed");
        Ok(signed)
    }

    /// The kept snapshot and its asset; 404 for an unknown one.
    async fn kept_snapshot(
        &self,
        book: &str,
        id: &str,
    ) -> Result<(talea_store::LiabilitySnapshot, Asset), ApiError> {
        let name: BookName = convert::book(book)?;
        let unknown = || ApiError::not_found(format!("liability snapshot {id:?} not found"));
        if id.is_empty() || id.len() > SNAPSHOT_ID_CHARS_MAX {
            return Err(unknown());
        }
        let kept = self
            .inner
            .store
            .liability_snapshot(&name, id)
            .await
            .map_err(|e| store_error(&e))?
            .ok_or_else(unknown)?;
        let asset = self
            .asset(&kept.asset)
            .await?
            .ok_or_else(|| ApiError::unavailable("the snapshot's asset cannot be read"))?;
        Ok((kept, asset))
    }

    /// A kept snapshot's document.
    pub(crate) async fn liability_document(
        &self,
        book: &str,
        id: &str,
    ) -> Result<LiabilitySnapshot, ApiError> {
        let (kept, asset) = self.kept_snapshot(book, id).await?;
        Ok(document(&kept, &asset))
    }

    /// One account's proof in a kept snapshot: 404 for an account not in
    /// it, saying so when it was refused for a negative balance.
    pub(crate) async fn prove_liability(
        &self,
        book: &str,
        id: &str,
        account: &str,
    ) -> Result<LiabilityProof, ApiError> {
        let account = convert::account_path(account)?;
        let (kept, _) = self.kept_snapshot(book, id).await?;
        let held = kept.balances.iter().find(|(a, _)| *a == account);
        match held {
            None => {
                return Err(ApiError::not_found(format!(
                    "account {account} is not in liability snapshot {id}"
                )));
            }
            Some((_, balance)) if *balance < 0 => {
                return Err(ApiError::not_found(format!(
                    "account {account} was refused from liability snapshot {id}: its balance \
                     is negative (listed in the snapshot's `refused`)"
                )));
            }
            Some(_) => {}
        }
        let tree = SumTree::build(
            kept.salt,
            kept.balances.iter().map(|(a, b)| (a.to_string(), *b)),
        )
        .map_err(tree_error)?;
        if tree.root().hash != kept.root || tree.root().sum != kept.total {
            tracing::error!(book = %kept.book, snapshot = %kept.id,
                "liabilities: the kept balances do not rebuild the signed root");
            return Err(ApiError::Internal);
        }
        let (balance, path) = tree.proof(account.as_str()).map_err(tree_error)?;
        Ok(LiabilityProof {
            snapshot: kept.id.clone(),
            asset: kept.asset.to_string(),
            account: account.to_string(),
            balance: balance.to_string(),
            salt: to_hex(&kept.salt),
            path: path.iter().map(LiabilityStep::from_step).collect(),
            root: to_hex(&kept.root),
            total: kept.total.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use talea_core::{AccountKind, Amount, AssetCode, Scale, Timestamp};
    use talea_store::{Balance, Held};

    fn asset() -> Asset {
        Asset {
            code: AssetCode::parse("BTC").expect("code"),
            scale: Scale::new(8).expect("scale"),
            name: None,
        }
    }

    fn cut(n: usize) -> BalanceCut {
        let mut cut = BalanceCut::new(7, Timestamp::from_micros(1));
        for i in 0..n {
            let balance = Balance {
                asset: asset().code,
                balance: Amount::from_minor(-(i as i128)),
                held: Held::default(),
            };
            let name = AccountName::parse(&format!("customers:{i}")).expect("name");
            cut.push(name, AccountKind::Liability, Some(balance));
        }
        let hot = AccountName::parse("hot-wallet").expect("name");
        cut.push(hot, AccountKind::Asset, None);
        cut
    }

    #[test]
    fn takes_normal_side_balances_under_the_prefix_within_the_cap() {
        let taken = take(&cut(3), &asset(), "customers:", 10).expect("take");
        let balances: Vec<i128> = taken.iter().map(|(_, b)| *b).collect();
        assert_eq!(balances, vec![0, 1, 2], "a liability's credit is positive");
        let err = take(&cut(3), &asset(), "customers:", 3).expect_err("over the cap");
        assert_eq!(err.code(), "invalid_request");
        assert!(err.to_string().contains("at most 3 accounts"), "{err}");
    }

    #[test]
    fn prefixes_are_bounded() {
        parse_prefix("customers:").expect("ok");
        parse_prefix(&"a".repeat(LIABILITY_PREFIX_CHARS_MAX)).expect("longest");
        for bad in ["", "a b", "customers/", "ü"] {
            assert!(parse_prefix(bad).is_err(), "{bad:?}");
        }
        assert!(parse_prefix(&"a".repeat(LIABILITY_PREFIX_CHARS_MAX + 1)).is_err());
    }

    #[test]
    fn totals_format_at_the_scale() {
        assert_eq!(format_total(1_750_000, 8), "0.0175");
        assert_eq!(format_total(0, 8), "0");
        assert_eq!(format_total(u128::MAX, 0), u128::MAX.to_string());
        assert_eq!(format_total(100, 2), "1");
    }
}
