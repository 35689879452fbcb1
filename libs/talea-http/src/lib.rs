//! The HTTP face of talea: axum routes, authentication and scope, admission,
//! timeouts, request ids and the metrics listener.
//!
//! Handlers stay thin: they decide scope, parse the body and call
//! `LedgerApi`; every refusal is an `ApiError` mapped in `error.rs`.

mod error;
mod extract;
mod middleware;
mod routes;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Serialize;
use talea_auth::Authenticator;
use talea_ledger::LedgerService;
use tokio::sync::Semaphore;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};

pub use error::{ErrorCode, HttpError};
pub use extract::parse_json;

/// Limits of the HTTP layer, with the contract's defaults.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Requests inside the service at once before new ones get 503 (`TALEA_MAX_INFLIGHT`).
    pub max_inflight: usize,
    /// How long a request may take before it is answered 408 (`TALEA_REQUEST_TIMEOUT_MS`).
    pub request_timeout_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_inflight: 256,
            request_timeout_ms: 10_000,
        }
    }
}

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The ledger.
    pub ledger: LedgerService,
    /// Decides who a bearer token is.
    pub auth: Arc<dyn Authenticator>,
    inflight: Arc<Semaphore>,
    request_timeout: Duration,
    backend: HeaderValue,
}

impl AppState {
    /// State for a router over `ledger`, authenticating with `auth`.
    pub fn new(ledger: LedgerService, auth: Arc<dyn Authenticator>, config: &HttpConfig) -> Self {
        let backend = HeaderValue::from_static(ledger.backend().as_str());
        Self {
            ledger,
            auth,
            inflight: Arc::new(Semaphore::new(config.max_inflight.max(1))),
            request_timeout: Duration::from_millis(config.request_timeout_ms.max(1)),
            backend,
        }
    }
}

/// The public API router.
pub fn router(state: AppState) -> Router {
    let api = routes::api()
        .layer(axum::extract::DefaultBodyLimit::max(
            talea_core::limits::BODY_BYTES_MAX,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::timeout,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::admission,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::observe,
        ))
        .with_state(state.clone());
    Router::new()
        // Liveness sits outside admission: a saturated process is busy, not dead.
        .route("/livez", get(routes::livez))
        .merge(api)
        .layer(axum::middleware::from_fn_with_state(
            state,
            middleware::backend_header,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
}

/// The metrics listener's router: `GET /metrics` only.
pub fn metrics_router(ledger: LedgerService) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let ledger = ledger.clone();
            async move {
                ledger.refresh_gauges();
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    ledger.metrics().render(),
                )
            }
        }),
    )
}

/// A JSON response with the contract's content type.
pub(crate) fn json_response<T: Serialize>(status: StatusCode, body: &T) -> Response {
    match serde_json::to_vec(body) {
        Ok(bytes) => (
            status,
            [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}
