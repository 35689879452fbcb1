//! The stable error codes of the contract, one variant each, with status and body.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Every refusal the ledger can give. `code()` strings are API: never renamed or reused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// Malformed JSON, a missing or unknown field, a bad name, bad amount syntax.
    #[error("{message}")]
    InvalidRequest {
        /// JSON pointer (body) or parameter name (path, query) of the culprit.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// An amount that does not fit i128 minor units.
    #[error("{message}")]
    AmountOutOfRange {
        /// Where the amount was.
        field: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// No or unknown bearer token.
    #[error("missing or unknown bearer token")]
    Unauthorized,
    /// The token does not cover this book or this kind of access.
    #[error("the token does not allow this on book {book:?}")]
    Forbidden {
        /// The book (`*` for global routes).
        book: String,
    },
    /// Unknown book, account or transaction.
    #[error("{message}")]
    NotFound {
        /// What was not found.
        message: String,
    },
    /// The route exists but not for this method (or not on this instance's role).
    #[error("method not allowed")]
    MethodNotAllowed {
        /// Methods that are allowed, for the `Allow` header.
        allow: String,
    },
    /// The request outlived its deadline; it may have committed.
    #[error("the request timed out; it may have committed, retry with the same idempotency key")]
    Timeout,
    /// The idempotency key was used before with a different request.
    #[error("idempotency key already used for a different request")]
    IdempotencyKeyReused {
        /// The original transaction.
        tx_id: String,
    },
    /// Re-registering an asset or re-opening an account with another definition.
    #[error("{message}")]
    Conflict {
        /// What differs.
        message: String,
    },
    /// The body is over 1 MiB.
    #[error("request body is larger than 1 MiB")]
    PayloadTooLarge,
    /// Per asset, debits differ from credits (debits minus credits, per asset).
    #[error("debits and credits differ")]
    Unbalanced {
        /// Debits minus credits, per asset code.
        imbalances: BTreeMap<String, String>,
    },
    /// A posting names an account not opened in this book.
    #[error("account {account:?} is not open in this book")]
    UnknownAccount {
        /// The account.
        account: String,
    },
    /// A posting names an unregistered asset.
    #[error("asset {asset:?} is not registered")]
    UnknownAsset {
        /// The asset.
        asset: String,
    },
    /// A posting would take an account below its `min_balance`.
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
    },
    /// The book's write queue (429) or the global in-flight limit (503) is full.
    #[error("overloaded, retry later")]
    Overloaded {
        /// 429 for a full book queue, 503 for the global limit.
        status: u16,
        /// Seconds for `Retry-After`.
        retry_after_s: u64,
    },
    /// The token's rate limit is exceeded.
    #[error("rate limit exceeded, retry later")]
    RateLimited {
        /// Seconds for `Retry-After`.
        retry_after_s: u64,
    },
    /// Storage or the scope service cannot be reached.
    #[error("{message}")]
    Unavailable {
        /// What is unavailable (never internals).
        message: String,
    },
    /// A bug or corrupt data; the body never carries internals.
    #[error("internal error")]
    Internal,
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
        match self {
            Self::InvalidRequest { .. } => "invalid_request",
            Self::AmountOutOfRange { .. } => "amount_out_of_range",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden { .. } => "forbidden",
            Self::NotFound { .. } => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::Timeout => "timeout",
            Self::IdempotencyKeyReused { .. } => "idempotency_key_reused",
            Self::Conflict { .. } => "conflict",
            Self::PayloadTooLarge => "payload_too_large",
            Self::Unbalanced { .. } => "unbalanced",
            Self::UnknownAccount { .. } => "unknown_account",
            Self::UnknownAsset { .. } => "unknown_asset",
            Self::InsufficientBalance { .. } => "insufficient_balance",
            Self::Overloaded { .. } => "overloaded",
            Self::RateLimited { .. } => "rate_limited",
            Self::Unavailable { .. } => "unavailable",
            Self::Internal => "internal",
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidRequest { .. } | Self::AmountOutOfRange { .. } => 400,
            Self::Unauthorized => 401,
            Self::Forbidden { .. } => 403,
            Self::NotFound { .. } => 404,
            Self::MethodNotAllowed { .. } => 405,
            Self::Timeout => 408,
            Self::IdempotencyKeyReused { .. } | Self::Conflict { .. } => 409,
            Self::PayloadTooLarge => 413,
            Self::Unbalanced { .. }
            | Self::UnknownAccount { .. }
            | Self::UnknownAsset { .. }
            | Self::InsufficientBalance { .. } => 422,
            Self::Overloaded { status, .. } => *status,
            Self::RateLimited { .. } => 429,
            Self::Unavailable { .. } => 503,
            Self::Internal => 500,
        }
    }

    /// Seconds for a `Retry-After` header, where the code has one.
    pub fn retry_after_s(&self) -> Option<u64> {
        match self {
            Self::Overloaded { retry_after_s, .. } | Self::RateLimited { retry_after_s } => {
                Some(*retry_after_s)
            }
            Self::Unavailable { .. } => Some(1),
            _ => None,
        }
    }

    /// Whether the same request may be sent again (with the same idempotency key).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::Timeout
                | Self::Overloaded { .. }
                | Self::RateLimited { .. }
                | Self::Unavailable { .. }
        )
    }

    /// The response body.
    pub fn to_body(&self) -> ErrorBody {
        let mut details = Map::new();
        let mut put = |k: &str, v: Value| {
            details.insert(k.to_owned(), v);
        };
        match self {
            Self::InvalidRequest { field, .. } | Self::AmountOutOfRange { field, .. } => {
                if let Some(field) = field {
                    put("field", Value::from(field.as_str()));
                }
            }
            Self::Forbidden { book } => put("book", Value::from(book.as_str())),
            Self::IdempotencyKeyReused { tx_id } => put("tx_id", Value::from(tx_id.as_str())),
            Self::Unbalanced { imbalances } => put(
                "imbalances",
                Value::Object(
                    imbalances
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                        .collect(),
                ),
            ),
            Self::UnknownAccount { account } => put("account", Value::from(account.as_str())),
            Self::UnknownAsset { asset } => put("asset", Value::from(asset.as_str())),
            Self::InsufficientBalance {
                account,
                asset,
                balance,
                min_balance,
            } => {
                put("account", Value::from(account.as_str()));
                put("asset", Value::from(asset.as_str()));
                put("balance", Value::from(balance.as_str()));
                put("min_balance", Value::from(min_balance.as_str()));
            }
            _ => {}
        }
        ErrorBody {
            error: self.code().to_owned(),
            message: self.to_string(),
            details,
        }
    }

    /// Rebuilds the error from a response, as the SDK does; unknown codes map by status.
    pub fn from_body(status: u16, retry_after_s: Option<u64>, body: &ErrorBody) -> Self {
        let text = |k: &str| {
            body.details
                .get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let field = body
            .details
            .get("field")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let message = body.message.clone();
        match body.error.as_str() {
            "invalid_request" => Self::InvalidRequest { field, message },
            "amount_out_of_range" => Self::AmountOutOfRange { field, message },
            "unauthorized" => Self::Unauthorized,
            "forbidden" => Self::Forbidden { book: text("book") },
            "not_found" => Self::NotFound { message },
            "method_not_allowed" => Self::MethodNotAllowed {
                allow: String::new(),
            },
            "timeout" => Self::Timeout,
            "idempotency_key_reused" => Self::IdempotencyKeyReused {
                tx_id: text("tx_id"),
            },
            "conflict" => Self::Conflict { message },
            "payload_too_large" => Self::PayloadTooLarge,
            "unbalanced" => Self::Unbalanced {
                imbalances: body
                    .details
                    .get("imbalances")
                    .and_then(Value::as_object)
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            "unknown_account" => Self::UnknownAccount {
                account: text("account"),
            },
            "unknown_asset" => Self::UnknownAsset {
                asset: text("asset"),
            },
            "insufficient_balance" => Self::InsufficientBalance {
                account: text("account"),
                asset: text("asset"),
                balance: text("balance"),
                min_balance: text("min_balance"),
            },
            "overloaded" => Self::Overloaded {
                status,
                retry_after_s: retry_after_s.unwrap_or(1),
            },
            "rate_limited" => Self::RateLimited {
                retry_after_s: retry_after_s.unwrap_or(1),
            },
            "unavailable" => Self::Unavailable { message },
            _ => match status {
                408 => Self::Timeout,
                503 => Self::Unavailable { message },
                _ => Self::Internal,
            },
        }
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
        }
    }
}
