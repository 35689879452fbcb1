//! Request decoding: a write route's JSON body decoded into its talea-api DTO
//! with `talea_http::parse_json` (as the handlers do), and a post then turned
//! into a `Draft` by `talea_ledger::draft_from_request` (as `post_transaction`
//! does, with a fixed asset registry).
//!
//! Every refusal must survive the trip through its wire body: the SDK
//! rebuilds the variant the server produced (`ApiError::from_body`).

#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use talea_api::{ApiError, AssetRequest, OpenAccountRequest, PostTransactionRequest};
use talea_core::{AssetCode, Scale, limits};

/// The registry the posts are checked against: scales 0, 2, 8 and 30.
fn registry() -> BTreeMap<AssetCode, Scale> {
    [("JPY", 0), ("USD", 2), ("BTC", 8), ("WEI", 30)]
        .into_iter()
        .filter_map(|(code, digits)| Some((AssetCode::parse(code).ok()?, Scale::new(digits)?)))
        .collect()
}

/// The refusal as the client sees it must be the refusal the server made.
fn check_refusal(e: &ApiError) {
    let body = e.to_body();
    let text = serde_json::to_string(&body).expect("an error body serializes");
    let back: talea_api::ErrorBody = serde_json::from_str(&text).expect("and parses back");
    let rebuilt = ApiError::from_body(e.status(), None, &back);
    assert_eq!(rebuilt.code(), e.code(), "{text}");
    assert_eq!(rebuilt.status(), e.status(), "{text}");
}

fuzz_target!(|data: &[u8]| {
    if let Err(e) = talea_http::parse_json::<AssetRequest>(data) {
        check_refusal(&e);
    }
    if let Err(e) = talea_http::parse_json::<OpenAccountRequest>(data) {
        check_refusal(&e);
    }
    match talea_http::parse_json::<PostTransactionRequest>(data) {
        Ok(request) => match talea_ledger::draft_from_request(request, &registry()) {
            Ok(draft) => assert!(
                (limits::POSTINGS_MIN..=limits::POSTINGS_MAX).contains(&draft.postings.len())
            ),
            Err(e) => check_refusal(&e),
        },
        Err(e) => check_refusal(&e),
    }
});
