//! Browsers: `POST /v1/stream-tickets`, the `?ticket=` stand-in for the
//! bearer token on the stream route, and CORS for exactly those routes.
//!
//! A ticket ([`talea_auth::Tickets`]) is the caller's token narrowed to one
//! book for at most 60 s, so a page never has to put a long-lived token in
//! a URL. CORS is off unless `TALEA_CORS_ORIGINS` names origins; then only
//! the ticket and stream routes answer cross-origin requests from them.

use axum::extract::State;
use axum::http::request::Parts;
use std::time::Duration;

use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use talea_api::{ApiError, StreamTicketDto, StreamTicketRequest};
use talea_auth::{TicketError, TicketGrant, Tickets};
use talea_stream::Recheck;
use tower_http::cors::{AllowOrigin, CorsLayer};

use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Auth, Body, parse_json};
use crate::openapi::TicketErrors;
use crate::{AppState, HttpError, json_response};

/// The ticket route.
pub(crate) const TICKET_PATH: &str = "/v1/stream-tickets";

/// How long a browser may cache a preflight answer, in seconds.
pub const CORS_MAX_AGE_S: u64 = 600;

/// The most origins `TALEA_CORS_ORIGINS` may list.
pub const CORS_ORIGINS_MAX: usize = 64;

/// The ticket route, for the `/v1` router (inside authentication).
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default().routes(routes!(issue))
}

/// Microseconds since the epoch, now.
fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// `POST /v1/stream-tickets`: the body names the book (400), the token
/// must read it (403), and it must exist (404), as for any read.
#[utoipa::path(post, path = "/v1/stream-tickets", tag = "streams", operation_id = "issueStreamTicket",
    summary = "A short-lived ticket for one book's stream (`?ticket=` stands in for the bearer token, for EventSource); served by every role.",
    request_body(content = StreamTicketRequest, example = json!({"book": "payments"})),
    responses((status = 200, description = "OK.", body = StreamTicketDto), TicketErrors))]
async fn issue(
    State(state): State<AppState>,
    Auth(p): Auth,
    body: Body,
) -> Result<Response, HttpError> {
    let request: StreamTicketRequest = parse_json(&body.0)?;
    let book = talea_core::BookName::parse(&request.book)
        .map_err(|_| HttpError(ApiError::invalid("/book", "not a valid book name")))?;
    p.check_read(&request.book)?;
    match state.ledger.store().last_seq(&book).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return Err(ApiError::not_found(format!("book {} not found", request.book)).into());
        }
        Err(e) => return Err(ApiError::unavailable(e.to_string()).into()),
    }
    let ticket = state
        .tickets
        .issue(&p, &request.book, now_micros())
        .map_err(|e| match e {
            TicketError::OutOfScope => HttpError(ApiError::Forbidden {
                book: request.book.clone(),
            }),
            // A token name too long to fit a ticket: the only other refusal.
            other => HttpError(ApiError::invalid("", other.to_string())),
        })?;
    Ok(json_response(
        StatusCode::OK,
        &StreamTicketDto {
            ticket: ticket.ticket.expose().to_owned(),
            expires_at: talea_api::format_timestamp(talea_core::Timestamp::from_micros(
                ticket.expires_at_micros,
            )),
        },
    ))
}

/// Checks a `?ticket=` for `book` now; every failure is the same 401.
pub(crate) fn verify(
    tickets: &Tickets,
    ticket: &str,
    book: &str,
) -> Result<TicketGrant, HttpError> {
    tickets
        .verify(ticket, book, now_micros())
        .map_err(|_| HttpError(ApiError::Unauthorized))
}

#[derive(Deserialize)]
struct TicketParam {
    ticket: Option<String>,
}

/// The `ticket` query parameter of `uri`, read apart from the stream's
/// other parameters so that a malformed one of those is still a 400 after
/// authentication, as with a bearer token. A repeated `ticket` is no ticket.
pub(crate) fn ticket_param(uri: &Uri) -> Option<String> {
    axum::extract::Query::<TicketParam>::try_from_uri(uri)
        .ok()
        .and_then(|q| q.0.ticket)
}

/// The re-check of a ticket session: a ticket cannot be re-asked about (it
/// carries no token), so the session lasts until the ticket expires and then
/// ends with `event: error` `{"error":"unauthorized",…}`. The browser's
/// automatic reconnect with the same, now expired, ticket is refused 401;
/// the page gets a new ticket and resumes with `after_seq`.
pub(crate) fn until_expiry(expires_at_micros: i64) -> Recheck {
    let remaining_micros = expires_at_micros.saturating_sub(now_micros()).max(0);
    Recheck {
        every: Duration::from_micros(u64::try_from(remaining_micros).unwrap_or(0)),
        // The timer is the expiry itself: the first tick ends the session.
        check: Box::new(|| {
            Box::pin(async {
                Err(json!({
                    "error": "unauthorized",
                    "message": "the stream ticket expired: get a new ticket and resume with after_seq"
                }))
            })
        }),
    }
}

/// Whether `path` is one of the routes browsers may call cross-origin.
fn is_browser_route(path: &str) -> bool {
    if path == TICKET_PATH {
        return true;
    }
    // `/v1/books/{book}/stream`, one segment for the book.
    path.strip_prefix("/v1/books/")
        .and_then(|rest| rest.strip_suffix("/stream"))
        .is_some_and(|book| !book.is_empty() && !book.contains('/'))
}

/// Parses `TALEA_CORS_ORIGINS`: comma-separated exact origins
/// (`https://app.example.com`), at most [`CORS_ORIGINS_MAX`]; blank means none.
pub fn parse_cors_origins(text: &str) -> Result<Vec<HeaderValue>, String> {
    let mut origins = Vec::new();
    for origin in text.split(',').map(str::trim).filter(|o| !o.is_empty()) {
        if origin == "*" {
            return Err("\"*\" is not allowed: list exact origins".to_owned());
        }
        let valid = (origin.starts_with("https://") || origin.starts_with("http://"))
            && !origin.ends_with('/')
            && origin
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:/[]".contains(&b));
        let after_scheme = origin.split_once("://").map_or("", |(_, rest)| rest);
        if !valid || after_scheme.is_empty() || after_scheme.contains('/') {
            return Err(format!(
                "{origin:?} is not an origin (scheme://host[:port], no path)"
            ));
        }
        let value =
            HeaderValue::from_str(origin).map_err(|_| format!("{origin:?} is not an origin"))?;
        if !origins.contains(&value) {
            origins.push(value);
        }
    }
    if origins.len() > CORS_ORIGINS_MAX {
        return Err(format!("at most {CORS_ORIGINS_MAX} origins"));
    }
    Ok(origins)
}

/// The CORS layer for `origins` (none: no layer, no CORS headers at all).
/// Only the ticket and stream routes allow the origins; the preflight of a
/// ticket request may ask for `Authorization` and `Content-Type`, and a
/// stream's reconnect for `Last-Event-ID`.
pub(crate) fn cors(origins: &[HeaderValue]) -> Option<CorsLayer> {
    if origins.is_empty() {
        return None;
    }
    let origins = origins.to_vec();
    let allow = AllowOrigin::predicate(move |origin: &HeaderValue, parts: &Parts| {
        is_browser_route(parts.uri.path()) && origins.contains(origin)
    });
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::HeaderName::from_static("last-event-id"),
            ])
            .max_age(Duration::from_secs(CORS_MAX_AGE_S)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browser_routes_are_the_ticket_and_stream_routes_only() {
        assert!(is_browser_route("/v1/stream-tickets"));
        assert!(is_browser_route("/v1/books/payments/stream"));
        for other in [
            "/v1/books/payments/transactions",
            "/v1/books//stream",
            "/v1/books/a/b/stream",
            "/v1/books/payments/stream/x",
            "/v1/stream-tickets/x",
            "/health",
        ] {
            assert!(!is_browser_route(other), "{other}");
        }
    }

    #[test]
    fn cors_origins_are_exact_origins() {
        assert_eq!(parse_cors_origins(""), Ok(vec![]));
        assert_eq!(parse_cors_origins(" , "), Ok(vec![]));
        assert_eq!(
            parse_cors_origins(
                "https://app.example.com, http://127.0.0.1:8000,https://app.example.com"
            ),
            Ok(vec![
                HeaderValue::from_static("https://app.example.com"),
                HeaderValue::from_static("http://127.0.0.1:8000"),
            ])
        );
        for bad in [
            "*",
            "app.example.com",
            "https://",
            "https://app.example.com/",
            "https://app.example.com/path",
            "ftp://x",
            "https://a b",
            "https://é.example",
        ] {
            assert!(parse_cors_origins(bad).is_err(), "{bad}");
        }
        let many: Vec<String> = (0..=CORS_ORIGINS_MAX)
            .map(|i| format!("https://o{i}.example"))
            .collect();
        assert!(parse_cors_origins(&many.join(",")).is_err());
    }
}
