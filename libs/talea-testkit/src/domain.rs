//! Domain values for store tests, which work below the API: names parsed
//! from test literals, the seeded asset, and balanced drafts.

use talea_core::{
    AccountName, Amount, Asset, AssetCode, BookName, Draft, DraftPosting, IdempotencyKey, Scale,
    Side,
};

use crate::ledger::{ASSET, ASSET_SCALE};

/// `s` as a book name; a test's literal, so an invalid one is a bug in the test.
pub fn book(s: &str) -> BookName {
    BookName::parse(s).expect("a valid book name")
}

/// `s` as an account name; a test's literal.
pub fn acct(s: &str) -> AccountName {
    AccountName::parse(s).expect("a valid account name")
}

/// The seeded asset's code, [`ASSET`].
pub fn asset_code() -> AssetCode {
    AssetCode::parse(ASSET).expect("a valid asset code")
}

/// The seeded asset, [`ASSET`] at [`ASSET_SCALE`], with no display name.
pub fn asset() -> Asset {
    Asset {
        code: asset_code(),
        scale: Scale::new(ASSET_SCALE).expect("a valid scale"),
        name: None,
    }
}

/// Debits `to` and credits `from` with `n` minor units of [`ASSET`], under `key`.
pub fn transfer(key: &str, from: &str, to: &str, n: i128) -> Draft {
    let leg = |account: &str, side| DraftPosting {
        account: acct(account),
        asset: asset_code(),
        side,
        amount: Amount::from_minor(n),
    };
    Draft::new(
        IdempotencyKey::parse(key).expect("a valid key"),
        vec![leg(to, Side::Debit), leg(from, Side::Credit)],
        None,
        None,
        None,
    )
    .expect("a balanced draft")
}
