//! The stable error codes of the contract: one catalogue entry each (code,
//! statuses, retry, meaning) that generates `ApiError`, its codes and statuses,
//! and the table every other list (OpenAPI, metrics, docs/api.md) reads.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// One error code of the contract, as clients and documents see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorInfo {
    /// The stable `error` string: never renamed or reused.
    pub code: &'static str,
    /// Every status it is answered with; the first is `ApiError::status`'s
    /// default (only `overloaded` has two: a full book queue or the global limit).
    pub statuses: &'static [u16],
    /// Whether a client sends the same request again (same idempotency key).
    pub retryable: bool,
    /// What it means, in one line.
    pub meaning: &'static str,
    /// The names of its details in the body (beside `error` and `message`).
    pub fields: &'static [&'static str],
}

/// Declares the catalogue once: each entry becomes an `ApiError` variant
/// (documented with its meaning, its serde tag the code), an `ErrorCode`
/// variant and a `CATALOGUE` row, so adding a code is one entry.
macro_rules! catalogue {
    ($(
        $(#[$attr:meta])*
        $variant:ident $({ $($(#[$fattr:meta])* $field:ident: $ty:ty),* $(,)? })?
            => $code:literal, [$($status:literal),+], retry: $retry:literal, $meaning:literal;
    )+) => {
        /// Every refusal the ledger can give. Codes are API: never renamed or reused.
        ///
        /// The serde form is the body's `error` tag plus the code's details;
        /// `to_body` and `from_body` are the wire conversions.
        #[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
        #[serde(tag = "error")]
        #[non_exhaustive]
        pub enum ApiError {$(
            #[doc = $meaning]
            $(#[$attr])*
            #[serde(rename = $code)]
            $variant $({ $($(#[$fattr])* #[serde(default)] $field: $ty),* })?,
        )+}

        /// The code of an error without its details (metrics labels, matching).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ErrorCode {$(
            #[doc = $meaning]
            $variant,
        )+}

        /// Every error code, in the order of `docs/api.md`'s table.
        pub const CATALOGUE: &[ErrorInfo] = &[$(ErrorInfo {
            code: $code,
            statuses: &[$($status),+],
            retryable: $retry,
            meaning: $meaning,
            fields: &[$($(stringify!($field)),*)?],
        }),+];

        impl ErrorCode {
            /// Every code, in catalogue order.
            pub const ALL: &[ErrorCode] = &[$(Self::$variant),+];

            /// The code's catalogue entry.
            pub fn info(self) -> &'static ErrorInfo {
                // `ALL` and `CATALOGUE` come from the same list, in the same order.
                &CATALOGUE[self as usize]
            }

            /// The stable code string.
            pub fn as_str(self) -> &'static str {
                self.info().code
            }

            /// The code named by `code`, if it is one.
            pub fn parse(code: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|c| c.as_str() == code)
            }
        }

        impl ApiError {
            /// The code, without the details.
            pub fn kind(&self) -> ErrorCode {
                match self {$(Self::$variant { .. } => ErrorCode::$variant,)+}
            }
        }
    };
}

catalogue! {
    #[error("{message}")]
    InvalidRequest {
        /// JSON pointer (body) or parameter name (path, query) of the culprit.
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        /// What is wrong.
        message: String,
    } => "invalid_request", [400], retry: false,
        "Malformed JSON, a missing or unknown field, a bad name, bad amount syntax.";
    #[error("{message}")]
    AmountOutOfRange {
        /// Where the amount was.
        #[serde(skip_serializing_if = "Option::is_none")]
        field: Option<String>,
        /// What is wrong.
        message: String,
    } => "amount_out_of_range", [400], retry: false,
        "An amount that does not fit i128 minor units.";
    #[error("missing or unknown bearer token")]
    Unauthorized => "unauthorized", [401], retry: false, "No or unknown bearer token.";
    #[error("the token does not allow this on book {book:?}")]
    Forbidden {
        /// The book (`*` for global routes).
        book: String,
    } => "forbidden", [403], retry: false,
        "The token does not cover this book or this kind of access.";
    #[error("{message}")]
    NotFound {
        /// What was not found.
        message: String,
    } => "not_found", [404], retry: false, "Unknown book, account or transaction.";
    #[error("method not allowed")]
    MethodNotAllowed {
        /// Methods that are allowed, for the `Allow` header (not in the body).
        #[serde(skip)]
        allow: String,
    } => "method_not_allowed", [405], retry: false,
        "The route exists but not for this method (or not on this instance's role).";
    #[error("the request timed out; it may have committed, retry with the same idempotency key")]
    Timeout => "timeout", [408], retry: true,
        "The request outlived its deadline; it may have committed.";
    #[error("idempotency key already used for a different request")]
    IdempotencyKeyReused {
        /// The original transaction.
        tx_id: String,
    } => "idempotency_key_reused", [409], retry: false,
        "The idempotency key was used before with a different request.";
    #[error("{message}")]
    Conflict {
        /// What differs.
        message: String,
    } => "conflict", [409], retry: false,
        "Re-registering an asset or re-opening an account with another definition.";
    #[error("min_seq {min_seq} is beyond the book's head ({head}): no write has committed it")]
    MinSeqAhead {
        /// The `min_seq` asked for.
        min_seq: u64,
        /// The book's head on the primary (0 for a book with no event).
        head: u64,
    } => "min_seq_ahead", [409], retry: false,
        "A read's `min_seq` is beyond the book's head on the primary (`head`): it names no committed write.";
    #[error("request body is larger than 1 MiB")]
    PayloadTooLarge => "payload_too_large", [413], retry: false, "The body is over 1 MiB.";
    #[error("debits and credits differ")]
    Unbalanced {
        /// Debits minus credits, per asset code.
        imbalances: BTreeMap<String, String>,
    } => "unbalanced", [422], retry: false,
        "Per asset, debits differ from credits (debits minus credits, per asset).";
    #[error("account {account:?} is not open in this book")]
    UnknownAccount {
        /// The account.
        account: String,
    } => "unknown_account", [422], retry: false,
        "A posting names an account not opened in this book.";
    #[error("asset {asset:?} is not registered")]
    UnknownAsset {
        /// The asset.
        asset: String,
    } => "unknown_asset", [422], retry: false, "A posting names an unregistered asset.";
    #[error("account {account:?} would fall below its min_balance in {asset}")]
    InsufficientBalance {
        /// The account.
        account: String,
        /// The asset.
        asset: String,
        /// Normal-side balance before the transaction.
        balance: String,
        /// The floor.
        min_balance: String,
    } => "insufficient_balance", [422], retry: false,
        "A posting or hold would take an account's available balance below its `min_balance`.";
    #[error("the hold is {status}, no longer pending")]
    HoldNotPending {
        /// How the hold ended: `posted`, `voided` or `expired`.
        status: String,
        /// The settle or void that ended it (absent for an expiry).
        #[serde(skip_serializing_if = "Option::is_none")]
        tx_id: Option<String>,
    } => "hold_not_pending", [409], retry: false,
        "The hold was settled, voided or expired before (`status`; `tx_id` of the settle or void).";
    #[error("account {account:?} holds {held} {asset}, less than the {requested} asked")]
    ExceedsHold {
        /// The account.
        account: String,
        /// The asset.
        asset: String,
        /// What the hold holds on that account, asset and side.
        held: String,
        /// What the settle asked to post there.
        requested: String,
    } => "exceeds_hold", [422], retry: false,
        "A settle posts more than the hold holds on an account, asset and side.";
    #[error("transaction {tx_id} is not a hold")]
    NotAHold {
        /// The transaction named.
        tx_id: String,
    } => "not_a_hold", [422], retry: false,
        "A settle or void names a transaction that is not a hold.";
    #[error("overloaded, retry later")]
    Overloaded {
        /// 429 for a full book queue, 503 for the global limit (from the status line).
        #[serde(skip)]
        status: u16,
        /// Seconds for `Retry-After` (from the header).
        #[serde(skip)]
        retry_after_s: u64,
    } => "overloaded", [429, 503], retry: true,
        "The book's write queue (429) or the global in-flight limit (503) is full.";
    #[error("rate limit exceeded, retry later")]
    RateLimited {
        /// Seconds for `Retry-After` (from the header).
        #[serde(skip)]
        retry_after_s: u64,
    } => "rate_limited", [429], retry: true, "The token's rate limit is exceeded.";
    #[error("{message}")]
    Unavailable {
        /// What is unavailable (never internals).
        message: String,
    } => "unavailable", [503], retry: true, "Storage or the scope service cannot be reached.";
    #[error("the replica has applied seq {seq} of the book, not yet min_seq {min_seq}; retry later")]
    ReplicaBehind {
        /// The `min_seq` asked for.
        min_seq: u64,
        /// The book's head on the replica when the wait ended.
        seq: u64,
    } => "replica_behind", [503], retry: true,
        "The replica did not apply the read's `min_seq` within `TALEA_REPLICA_WAIT_MS` (`seq`: what it had).";
    #[error("internal error")]
    Internal => "internal", [500], retry: false,
        "A bug or corrupt data; the body never carries internals.";
}

impl ErrorCode {
    /// The code a bare HTTP status stands for, when an answer carries no
    /// talea error body (a proxy's page, a load balancer's empty 503): the
    /// first code in catalogue order whose default status (its first) is
    /// `status`. So 400 is `invalid_request`, 429 `overloaded` (not
    /// `rate_limited`), 503 `unavailable` (503 is only `overloaded`'s second
    /// status); `None` for a status no code defaults to.
    pub fn for_status(status: u16) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|c| c.info().statuses[0] == status)
    }
}

/// The JSON shape of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The stable code.
    pub error: String,
    /// Human text; not API.
    pub message: String,
    /// Code-specific details (`field`, `tx_id`, `imbalances`, …).
    #[serde(flatten)]
    pub details: Map<String, Value>,
}

impl ApiError {
    /// A 400 `invalid_request` about `field`.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::InvalidRequest {
            field: Some(field.into()),
            message: message.into(),
        }
    }

    /// A 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound {
            message: message.into(),
        }
    }

    /// A 503 `unavailable`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable {
            message: message.into(),
        }
    }

    /// The stable code.
    pub fn code(&self) -> &'static str {
        self.kind().as_str()
    }

    /// The HTTP status: the catalogue's, or the one an `overloaded` carries.
    pub fn status(&self) -> u16 {
        match self {
            Self::Overloaded { status, .. } => *status,
            _ => self.kind().info().statuses[0],
        }
    }

    /// Seconds for a `Retry-After` header, where the code has one.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            Self::Overloaded { retry_after_s, .. } | Self::RateLimited { retry_after_s } => {
                Some(*retry_after_s)
            }
            Self::Unavailable { .. } | Self::ReplicaBehind { .. } => Some(1),
            _ => None,
        }
    }

    /// Whether the same request may be sent again (with the same idempotency key).
    pub fn is_retryable(&self) -> bool {
        self.kind().info().retryable
    }

    /// The response body: the code, the message, and the variant's body fields.
    pub fn to_body(&self) -> ErrorBody {
        let mut details = match serde_json::to_value(self) {
            Ok(Value::Object(map)) => map,
            // Every variant serializes to an object of strings and string maps.
            _ => Map::new(),
        };
        details.shift_remove("error");
        details.shift_remove("message");
        ErrorBody {
            error: self.code().to_owned(),
            message: self.to_string(),
            details,
        }
    }

    /// Rebuilds the error from a response, as the SDK does; unknown codes map by status.
    ///
    /// A known code whose details do not parse (a wrong type) keeps its code
    /// with empty details, as a client would rather see the code than lose it.
    pub fn from_body(status: u16, retry_after_s: Option<u64>, body: &ErrorBody) -> Self {
        let message = body.message.clone();
        if ErrorCode::parse(&body.error).is_none() {
            return match status {
                408 => Self::Timeout,
                503 => Self::Unavailable { message },
                _ => Self::Internal,
            };
        }
        let bare = || {
            let mut map = Map::new();
            map.insert("error".to_owned(), Value::from(body.error.as_str()));
            map.insert("message".to_owned(), Value::from(message.as_str()));
            map
        };
        let mut full = body.details.clone();
        full.extend(bare());
        let mut error = serde_json::from_value(Value::Object(full))
            .or_else(|_| serde_json::from_value(Value::Object(bare())))
            .unwrap_or(Self::Internal);
        // What the status line and `Retry-After` header carry, not the body.
        match &mut error {
            Self::Overloaded {
                status: s,
                retry_after_s: r,
            } => (*s, *r) = (status, retry_after_s.unwrap_or(1)),
            Self::RateLimited { retry_after_s: r } => *r = retry_after_s.unwrap_or(1),
            _ => {}
        }
        error
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_round_trip() {
        let errors = [
            ApiError::invalid("/postings/0/debit", "bad"),
            ApiError::Forbidden { book: "b".into() },
            ApiError::IdempotencyKeyReused { tx_id: "t".into() },
            ApiError::Unbalanced {
                imbalances: [("BTC".to_owned(), "0.001".to_owned())]
                    .into_iter()
                    .collect(),
            },
            ApiError::InsufficientBalance {
                account: "a".into(),
                asset: "BTC".into(),
                balance: "1".into(),
                min_balance: "0".into(),
            },
            ApiError::Overloaded {
                status: 429,
                retry_after_s: 1,
            },
        ];
        for e in errors {
            let body = e.to_body();
            let json = serde_json::to_string(&body).expect("serializes");
            let back: ErrorBody = serde_json::from_str(&json).expect("parses");
            assert_eq!(ApiError::from_body(e.status(), e.retry_after_s(), &back), e);
            // The OpenAPI document says `Retry-After` is always set on 429 and 503.
            assert_eq!(e.retry_after_s().is_some(), matches!(e.status(), 429 | 503));
        }
    }

    /// Codes are unique, `ErrorCode` and `CATALOGUE` agree, and a code is
    /// retried exactly when its statuses are the retried ones (408, 429, 503).
    #[test]
    fn the_catalogue_is_consistent() {
        assert_eq!(ErrorCode::ALL.len(), CATALOGUE.len());
        for (i, info) in CATALOGUE.iter().enumerate() {
            assert_eq!(ErrorCode::ALL[i].as_str(), info.code);
            assert_eq!(ErrorCode::parse(info.code), Some(ErrorCode::ALL[i]));
            assert_eq!(
                CATALOGUE.iter().filter(|o| o.code == info.code).count(),
                1,
                "{} twice",
                info.code
            );
            for status in info.statuses {
                assert_eq!(
                    info.retryable,
                    matches!(status, 408 | 429 | 503),
                    "{} {status}",
                    info.code
                );
            }
        }
    }

    /// Every default status names a code, the first of the catalogue with
    /// that default; statuses no code defaults to name none.
    #[test]
    fn a_bare_status_names_the_first_code_defaulting_to_it() {
        for info in CATALOGUE {
            let code = ErrorCode::for_status(info.statuses[0]).expect("a default status");
            assert_eq!(code.info().statuses[0], info.statuses[0]);
            let first = CATALOGUE
                .iter()
                .position(|i| i.statuses[0] == info.statuses[0]);
            assert_eq!(Some(code as usize), first, "{}", info.code);
        }
        assert_eq!(ErrorCode::for_status(429), Some(ErrorCode::Overloaded));
        assert_eq!(ErrorCode::for_status(503), Some(ErrorCode::Unavailable));
        assert_eq!(ErrorCode::for_status(400), Some(ErrorCode::InvalidRequest));
        assert_eq!(ErrorCode::for_status(502), None);
        assert_eq!(ErrorCode::for_status(200), None);
    }

    /// Every code survives `to_body`/`from_body` with its details, status
    /// and `Retry-After`.
    #[test]
    fn every_code_round_trips() {
        let samples = [
            ApiError::AmountOutOfRange {
                field: None,
                message: "m".into(),
            },
            ApiError::Unauthorized,
            ApiError::not_found("m"),
            ApiError::MethodNotAllowed {
                allow: String::new(),
            },
            ApiError::Timeout,
            ApiError::Conflict {
                message: "m".into(),
            },
            ApiError::PayloadTooLarge,
            ApiError::UnknownAccount {
                account: "a".into(),
            },
            ApiError::UnknownAsset { asset: "A".into() },
            ApiError::HoldNotPending {
                status: "voided".into(),
                tx_id: Some("t".into()),
            },
            ApiError::HoldNotPending {
                status: "expired".into(),
                tx_id: None,
            },
            ApiError::ExceedsHold {
                account: "a".into(),
                asset: "A".into(),
                held: "1".into(),
                requested: "2".into(),
            },
            ApiError::NotAHold { tx_id: "t".into() },
            ApiError::Overloaded {
                status: 503,
                retry_after_s: 2,
            },
            ApiError::RateLimited { retry_after_s: 3 },
            ApiError::unavailable("m"),
            ApiError::MinSeqAhead {
                min_seq: 9,
                head: 7,
            },
            ApiError::ReplicaBehind { min_seq: 9, seq: 7 },
            ApiError::Internal,
        ];
        let mut seen: Vec<ErrorCode> = vec![ErrorCode::InvalidRequest, ErrorCode::Forbidden];
        seen.extend([ErrorCode::IdempotencyKeyReused, ErrorCode::Unbalanced]);
        seen.push(ErrorCode::InsufficientBalance);
        for e in samples {
            let back = ApiError::from_body(e.status(), e.retry_after_s(), &e.to_body());
            assert_eq!(back, e);
            assert!(e.kind().info().statuses.contains(&e.status()));
            assert_eq!(e.retry_after_s().is_some(), matches!(e.status(), 429 | 503));
            seen.push(e.kind());
        }
        for code in ErrorCode::ALL {
            assert!(seen.contains(code), "{code:?} has no sample");
        }
    }

    #[test]
    fn bodies_carry_exactly_their_details() {
        let body = ApiError::InsufficientBalance {
            account: "a".into(),
            asset: "BTC".into(),
            balance: "1".into(),
            min_balance: "0".into(),
        }
        .to_body();
        let keys: Vec<&str> = body.details.keys().map(String::as_str).collect();
        assert_eq!(keys, ["account", "asset", "balance", "min_balance"]);
        assert!(
            ApiError::invalid("/x", "m")
                .to_body()
                .details
                .contains_key("field")
        );
        let none = ApiError::AmountOutOfRange {
            field: None,
            message: "m".into(),
        };
        assert!(none.to_body().details.is_empty());
        let overloaded = ApiError::Overloaded {
            status: 429,
            retry_after_s: 1,
        };
        assert!(overloaded.to_body().details.is_empty());
        assert_eq!(overloaded.to_body().message, "overloaded, retry later");
    }

    /// A known code keeps its code when its details are malformed or
    /// missing; an unknown one maps by status.
    #[test]
    fn foreign_bodies_decode_leniently() {
        let body = |error: &str, details: Value| ErrorBody {
            error: error.to_owned(),
            message: "m".to_owned(),
            details: details.as_object().cloned().unwrap_or_default(),
        };
        let e = ApiError::from_body(
            403,
            None,
            &body("forbidden", serde_json::json!({"book": 7})),
        );
        assert_eq!(
            e,
            ApiError::Forbidden {
                book: String::new()
            }
        );
        let e = ApiError::from_body(422, None, &body("unbalanced", serde_json::json!({})));
        assert_eq!(
            e,
            ApiError::Unbalanced {
                imbalances: BTreeMap::new()
            }
        );
        let e = ApiError::from_body(429, None, &body("overloaded", serde_json::json!({})));
        assert_eq!(e.retry_after_s(), Some(1));
        assert_eq!(e.status(), 429);
        let e = ApiError::from_body(503, None, &body("teapot", serde_json::json!({})));
        assert_eq!(e, ApiError::unavailable("m"));
        let e = ApiError::from_body(408, None, &body("teapot", serde_json::json!({})));
        assert_eq!(e, ApiError::Timeout);
        let e = ApiError::from_body(502, None, &body("teapot", serde_json::json!({})));
        assert_eq!(e, ApiError::Internal);
    }

    /// `docs/api.md`'s error table lists exactly the catalogue's codes and
    /// statuses, and says "yes" to a retry exactly for the retried codes.
    #[test]
    fn the_docs_table_matches_the_catalogue() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/api.md");
        let text = std::fs::read_to_string(path).expect("docs/api.md");
        let mut rows: Vec<(String, u16, bool)> = text
            .lines()
            .skip_while(|l| !l.starts_with("| status | `error` |"))
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let status = cells[1].parse().expect("a status");
                let retry = cells[cells.len() - 2].starts_with("yes");
                (cells[2].trim_matches('`').to_owned(), status, retry)
            })
            .collect();
        let mut expected: Vec<(String, u16, bool)> = CATALOGUE
            .iter()
            .flat_map(|i| {
                i.statuses
                    .iter()
                    .map(|s| (i.code.to_owned(), *s, i.retryable))
            })
            .collect();
        rows.sort();
        expected.sort();
        assert_eq!(
            rows, expected,
            "docs/api.md's error table and CATALOGUE differ"
        );
    }
}
