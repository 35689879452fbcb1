//! Extractors that turn every malformed input into the contract's JSON errors.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;
use talea_api::ApiError;
use talea_auth::Principal;

use crate::{AppState, HttpError};

/// What authentication decided for a request. The `authenticate`
/// middleware decides once and leaves this in the request's extensions, for
/// the rate limiter (its key) and the [`Auth`] extractor (its answer).
#[derive(Debug, Clone)]
pub(crate) enum Authn {
    /// A known token.
    Authenticated(Principal),
    /// No token, or an unknown one: 401.
    Unauthorized,
    /// The authenticator could not decide (scope service unreachable): 503.
    Unavailable,
}

impl Authn {
    /// Decides for `token` (the bearer token, if any) and counts the decision.
    pub(crate) async fn decide(state: &AppState, token: Option<&str>) -> Self {
        let outcome = match token {
            None => Self::Unauthorized,
            Some(token) => match state.auth.authenticate(token).await {
                Ok(Some(principal)) => Self::Authenticated(principal),
                Ok(None) => Self::Unauthorized,
                Err(_) => Self::Unavailable,
            },
        };
        let label = match outcome {
            Self::Authenticated(_) => "authenticated",
            Self::Unauthorized => "unauthorized",
            Self::Unavailable => "unavailable",
        };
        state
            .ledger
            .metrics()
            .auth
            .decisions_total
            .with_label_values(&[label])
            .inc();
        outcome
    }
}

/// The bearer token of a request, if it carries a non-empty one.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        })
        .filter(|t| !t.is_empty())
}

/// The authenticated principal of a request (401 when the token is missing or
/// unknown, 503 when the authenticator cannot decide).
#[derive(Debug, Clone)]
pub struct Auth(pub Principal);

impl FromRequestParts<AppState> for Auth {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, HttpError> {
        let outcome = match parts.extensions.get::<Authn>() {
            Some(outcome) => outcome.clone(),
            // A route outside the `authenticate` middleware decides here.
            None => Authn::decide(state, bearer(&parts.headers)).await,
        };
        match outcome {
            Authn::Authenticated(principal) => Ok(Self(principal)),
            Authn::Unauthorized => Err(ApiError::Unauthorized.into()),
            Authn::Unavailable => {
                Err(ApiError::unavailable("the token scope service is unavailable").into())
            }
        }
    }
}

/// A request body of at most 1 MiB, read whole; parsed later with [`parse_json`]
/// so that authorization is decided before the body is looked at.
#[derive(Debug)]
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = HttpError;

    async fn from_request(req: Request, state: &S) -> Result<Self, HttpError> {
        match Bytes::from_request(req, state).await {
            Ok(bytes) => Ok(Self(bytes)),
            Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
                Err(ApiError::PayloadTooLarge.into())
            }
            Err(e) => Err(ApiError::invalid("", format!("cannot read the body: {e}")).into()),
        }
    }
}

/// Query parameters; a malformed one is a 400 naming the query.
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Query<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| Self(q.0))
            .map_err(|e| ApiError::invalid("query", e.body_text()).into())
    }
}

/// Path parameters; undecodable ones are a 400.
#[derive(Debug)]
pub struct Path<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for Path<T> {
    type Rejection = HttpError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, HttpError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|p| Self(p.0))
            .map_err(|e| ApiError::invalid("path", e.body_text()).into())
    }
}

/// Parses a JSON body, naming the offending field as a JSON pointer.
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    // Every request body is an object; serde would also read a struct from
    // an array of its fields in order (`["key"]` as a void), so refuse it.
    if body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
        return Err(ApiError::invalid("", "the body must be a JSON object"));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let mut pointer = pointer(e.path());
        let inner = e.into_inner();
        let mut message = inner.to_string();
        // A value of the wrong type or form is named by its field; where in
        // the body's text it stood adds nothing (a syntax error keeps it).
        if inner.is_data() {
            let at = format!(" at line {} column {}", inner.line(), inner.column());
            if let Some(bare) = message.strip_suffix(&at) {
                message = bare.to_owned();
            }
        }
        // serde reports a missing field at its parent; name the field itself.
        if message.starts_with("missing field")
            && let Some(name) = message.split('`').nth(1)
        {
            pointer.push('/');
            pointer.push_str(&escape(name));
        }
        ApiError::invalid(pointer, message)
    })?;
    de.end().map_err(|e| {
        ApiError::invalid("", format!("trailing characters after the JSON value: {e}"))
    })?;
    Ok(value)
}

fn escape(segment: &str) -> String {
    segment.replace('~', "~0").replace('/', "~1")
}

fn pointer(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => {
                out.push('/');
                out.push_str(&index.to_string());
            }
            Segment::Map { key } => {
                out.push('/');
                out.push_str(&escape(key));
            }
            Segment::Enum { variant } => {
                out.push('/');
                out.push_str(&escape(variant));
            }
            Segment::Unknown => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use talea_api::PostTransactionRequest;

    fn field(body: &str) -> Option<String> {
        match parse_json::<PostTransactionRequest>(body.as_bytes()) {
            Err(ApiError::InvalidRequest { field, .. }) => field,
            other => panic!("expected invalid_request, got {other:?}"),
        }
    }

    #[test]
    fn pointers_name_the_culprit() {
        assert_eq!(
            field(r#"{"postings":[]}"#).as_deref(),
            Some("/idempotency_key")
        );
        assert_eq!(
            field(r#"{"idempotency_key":"k","postings":[{"account":"a","asset":"B","debit":1}]}"#)
                .as_deref(),
            Some("/postings/0/debit")
        );
        assert_eq!(
            field(r#"{"idempotency_key":"k","postings":[],"extra":1}"#).as_deref(),
            Some("/extra")
        );
        assert_eq!(field("{").as_deref(), Some(""));
        assert_eq!(
            field(r#"{"idempotency_key":"k","postings":[]} x"#).as_deref(),
            Some("")
        );
    }
}
