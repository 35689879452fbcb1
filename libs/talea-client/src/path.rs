//! Building request URLs: percent-encoded path segments and form-encoded queries.
//!
//! Names travel in paths (`/v1/books/{book}/accounts/{account}`), so each
//! segment is percent-encoded on its own: a `/` inside a value must never
//! become a path separator. Three values cannot be sent as a segment at all:
//! the empty string, `.` and `..` (URL parsers collapse dot segments, even
//! percent-encoded ones). None of them is a valid name, so the client refuses
//! them itself, with exactly the error the ledger gives for them.

use reqwest::Url;
use talea_api::ApiError;
use talea_core::{AccountName, BookName, NameError};

/// Percent-encodes one path segment. Unreserved characters and `:` stay
/// readable (`customers:alice` is common and legal in a segment); every other
/// byte of the UTF-8 text is escaped, `%` included, so the server decodes
/// exactly the text that was given.
pub(crate) fn encode_segment(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b':') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// True for the values a URL cannot carry as a path segment.
pub(crate) fn unsendable(segment: &str) -> bool {
    matches!(segment, "" | "." | "..")
}

/// The ledger's refusal of a book name, word for word (`talea-ledger`'s
/// `convert::book`); the scenario suite checks that the two stay identical.
pub(crate) fn book_error(book: &str) -> Option<ApiError> {
    BookName::parse(book)
        .err()
        .map(|e| name_error("book", "book name", &e))
}

/// The ledger's refusal of an account name given in a path.
pub(crate) fn account_error(account: &str) -> Option<ApiError> {
    AccountName::parse(account)
        .err()
        .map(|e| name_error("account", "account name", &e))
}

fn name_error(field: &str, what: &str, e: &NameError) -> ApiError {
    ApiError::invalid(field, format!("{what} {e}"))
}

/// Refuses locally what cannot be sent, checking in the ledger's order
/// (book first, then account) so the error is the one the server would give.
pub(crate) fn check_book_account(book: &str, account: Option<&str>) -> Result<(), ApiError> {
    let account_unsendable = account.is_some_and(unsendable);
    if !unsendable(book) && !account_unsendable {
        return Ok(());
    }
    if let Some(e) = book_error(book) {
        return Err(e);
    }
    match account.and_then(account_error) {
        Some(e) => Err(e),
        // Unreachable in practice: every unsendable value is an invalid name.
        None => Err(ApiError::invalid("path", "a path segment cannot be empty")),
    }
}

/// The URL of `segments` under `base` (whose own path, if any, is kept as a
/// prefix), with `query` form-encoded (`+` and `:` in `as_of` arrive intact).
pub(crate) fn url(base: &Url, segments: &[&str], query: &[(&str, String)]) -> Url {
    let mut path = base.path().trim_end_matches('/').to_owned();
    for segment in segments {
        path.push('/');
        path.push_str(&encode_segment(segment));
    }
    let mut url = base.clone();
    url.set_path(&path);
    url.set_query(None);
    if !query.is_empty() {
        let mut pairs = url.query_pairs_mut();
        for (key, value) in query {
            pairs.append_pair(key, value);
        }
    }
    url
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_escaped_but_names_stay_readable() {
        assert_eq!(encode_segment("customers:alice.v2"), "customers:alice.v2");
        assert_eq!(encode_segment("a/b c%"), "a%2Fb%20c%25");
        assert_eq!(encode_segment("é?#"), "%C3%A9%3F%23");
    }

    #[test]
    fn urls_keep_a_base_prefix_and_encode_queries() {
        let base = Url::parse("https://ledger.example/talea/").expect("url");
        let url = url(
            &base,
            &["v1", "books", "b", "accounts", "x/y", "balances"],
            &[("as_of", "2026-11-22T11:00:00+01:00".to_owned())],
        );
        assert_eq!(
            url.as_str(),
            "https://ledger.example/talea/v1/books/b/accounts/x%2Fy/balances\
             ?as_of=2026-11-22T11%3A00%3A00%2B01%3A00"
        );
        let plain = Url::parse("http://127.0.0.1:8080").expect("url");
        assert_eq!(
            super::url(&plain, &["v1", "assets"], &[]).as_str(),
            "http://127.0.0.1:8080/v1/assets"
        );
    }

    #[test]
    fn unsendable_segments_are_refused_in_the_ledgers_order() {
        assert_eq!(check_book_account("b", Some("a:b")), Ok(()));
        let e = check_book_account("", Some("a")).expect_err("empty book");
        assert_eq!(e.code(), "invalid_request");
        assert_eq!(e, ApiError::invalid("book", "book name must not be empty"));
        // An invalid book wins over an unsendable account, as in the ledger.
        let e = check_book_account("Bad", Some("..")).expect_err("bad book");
        assert!(matches!(&e, ApiError::InvalidRequest { field: Some(f), .. } if f == "book"));
        let e = check_book_account("b", Some(".")).expect_err("dot account");
        assert!(matches!(&e, ApiError::InvalidRequest { field: Some(f), .. } if f == "account"));
    }
}
