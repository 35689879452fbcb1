//! A seeded ledger through [`LedgerApi`], whatever serves it (a
//! `LedgerService` in process, or a talead through the SDK): the asset and
//! accounts tests start from, and the requests they post.

use talea_api::{
    ApiError, AssetRequest, LedgerApi, OpenAccountRequest, PostTransactionRequest, PostingDto,
};

/// The asset every seeded ledger registers.
pub const ASSET: &str = "BTC";

/// Its scale: amounts like `"1"` are whole units of 10^8 minor units.
pub const ASSET_SCALE: i64 = 8;

/// One whole unit of [`ASSET`] in minor units.
pub const UNIT: i128 = 100_000_000;

/// The two accounts most tests move money between, in the order they open.
pub const HOT_ALICE: [(&str, &str); 2] = [("hot", "asset"), ("alice", "liability")];

/// Registers [`ASSET`] at [`ASSET_SCALE`], with no display name.
pub async fn register_asset(api: &dyn LedgerApi) -> Result<(), ApiError> {
    api.register_asset(AssetRequest {
        code: ASSET.to_owned(),
        scale: ASSET_SCALE,
        name: None,
    })
    .await
    .map(drop)
}

/// Opens each `(name, kind)` of `accounts` in `book`, unbounded, with no
/// metadata, in order (so an empty book's seqs are 1, 2, …).
pub async fn open_accounts(
    api: &dyn LedgerApi,
    book: &str,
    accounts: &[(&str, &str)],
) -> Result<(), ApiError> {
    for (name, kind) in accounts {
        api.open_account(book, account(name, kind)).await?;
    }
    Ok(())
}

/// [`register_asset`], then [`open_accounts`] in each of `books`.
pub async fn seed(
    api: &dyn LedgerApi,
    books: &[&str],
    accounts: &[(&str, &str)],
) -> Result<(), ApiError> {
    register_asset(api).await?;
    for book in books {
        open_accounts(api, book, accounts).await?;
    }
    Ok(())
}

/// The request that opens `name` of `kind`, unbounded, with no metadata.
pub fn account(name: &str, kind: &str) -> OpenAccountRequest {
    OpenAccountRequest {
        name: name.to_owned(),
        kind: kind.to_owned(),
        min_balance: None,
        metadata: None,
    }
}

/// A posting of `amount` [`ASSET`] on `account`, a debit or a credit.
pub fn posting(account: &str, debit: bool, amount: &str) -> PostingDto {
    PostingDto {
        account: account.to_owned(),
        asset: ASSET.to_owned(),
        debit: debit.then(|| amount.to_owned()),
        credit: (!debit).then(|| amount.to_owned()),
    }
}

/// `amount` [`ASSET`] debited to `debit` and credited to `credit`, under
/// `key`, with no time, memo or metadata.
pub fn transfer(key: &str, debit: &str, credit: &str, amount: &str) -> PostTransactionRequest {
    PostTransactionRequest {
        idempotency_key: key.to_owned(),
        postings: vec![posting(debit, true, amount), posting(credit, false, amount)],
        occurred_at: None,
        memo: None,
        metadata: None,
        pending: false,
        expires_at: None,
    }
}

/// One [`ASSET`] from `hot` to `alice` (debit `hot`, credit `alice`), under `key`.
pub fn deposit(key: &str) -> PostTransactionRequest {
    transfer(key, "hot", "alice", "1")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_deposit_debits_hot_and_credits_alice_one_unit() {
        let request = deposit("k");
        assert_eq!(request.idempotency_key, "k");
        assert_eq!(
            request.postings,
            vec![
                PostingDto {
                    account: "hot".to_owned(),
                    asset: "BTC".to_owned(),
                    debit: Some("1".to_owned()),
                    credit: None,
                },
                PostingDto {
                    account: "alice".to_owned(),
                    asset: "BTC".to_owned(),
                    debit: None,
                    credit: Some("1".to_owned()),
                },
            ]
        );
    }
}
