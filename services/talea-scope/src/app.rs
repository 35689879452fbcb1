//! The scope service's routes: `POST /v1/introspect`, `/health`, `/livez`, and `/metrics`.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, FailedToBufferBody};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use talea_api::ApiError;
use talea_auth::introspect::{INTROSPECT_PATH, IntrospectRequest, IntrospectResponse};
use talea_auth::{Secret, TokenSet};
use talea_telemetry::ScopeMetrics;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

/// The largest introspection request read, in bytes: a token and a hint.
pub(crate) const INTROSPECT_BODY_BYTES_MAX: usize = 16 * 1024;

/// What the handlers share; read-only after start-up.
#[derive(Debug, Clone)]
pub(crate) struct ScopeState {
    pub(crate) tokens: Arc<TokenSet>,
    pub(crate) service_token: Arc<Secret>,
    pub(crate) ttl_s: u64,
    pub(crate) metrics: ScopeMetrics,
}

/// The API router.
pub(crate) fn router(state: ScopeState) -> Router {
    Router::new()
        .route(INTROSPECT_PATH, post(introspect))
        .route("/health", get(health))
        .route("/livez", get(livez))
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(INTROSPECT_BODY_BYTES_MAX))
        .with_state(state)
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

fn json(status: StatusCode, body: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [
                (header::CONTENT_TYPE, "application/json; charset=utf-8"),
                // Answers about tokens must not sit in any intermediary's cache.
                (header::CACHE_CONTROL, "no-store"),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

fn error(e: &ApiError) -> Response {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = json(status, &e.to_body());
    if matches!(e, ApiError::Unauthorized) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

/// The caller's bearer token, if any.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Caller authentication first (401), then the body (413/400), then the answer.
async fn introspect(
    State(state): State<ScopeState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let (outcome, response) = answer(&state, &headers, body);
    state
        .metrics
        .introspect_requests_total
        .with_label_values(&[outcome])
        .inc();
    state
        .metrics
        .introspect_duration_seconds
        .observe(started.elapsed().as_secs_f64());
    // The outcome only: never the token, nor the name it maps to.
    tracing::debug!(outcome, "introspection answered");
    response
}

fn answer(
    state: &ScopeState,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> (&'static str, Response) {
    if !bearer(headers).is_some_and(|t| state.service_token.verify(t)) {
        return ("unauthorized", error(&ApiError::Unauthorized));
    }
    let body = match body {
        Ok(body) => body,
        Err(BytesRejection::FailedToBufferBody(FailedToBufferBody::LengthLimitError(_))) => {
            return ("invalid_request", error(&ApiError::PayloadTooLarge));
        }
        Err(e) => {
            return (
                "invalid_request",
                error(&ApiError::invalid("", format!("cannot read the body: {e}"))),
            );
        }
    };
    let request: IntrospectRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            // serde's message names the field, never the value.
            let message = format!("expected {{\"token\":\"…\"}}: {e}");
            return ("invalid_request", error(&ApiError::invalid("", message)));
        }
    };
    let token = request.token.expose();
    let principal = if token.is_empty() {
        None
    } else {
        state.tokens.authenticate(token)
    };
    match principal {
        Some(p) => (
            "active",
            json(StatusCode::OK, &IntrospectResponse::active(&p, state.ttl_s)),
        ),
        None => (
            "inactive",
            json(StatusCode::OK, &IntrospectResponse::inactive()),
        ),
    }
}

async fn health() -> Response {
    json(StatusCode::OK, &serde_json::json!({"status": "ok"}))
}

async fn livez() -> Response {
    json(StatusCode::OK, &serde_json::json!({"status": "alive"}))
}

async fn not_found() -> Response {
    error(&ApiError::not_found("no such route"))
}
