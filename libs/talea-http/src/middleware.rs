//! Request middleware: the gate (observation by logs and metrics, admission,
//! timeout), authentication, backend header, request ids.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderName;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use talea_api::ApiError;

use crate::extract::{Authn, bearer};
use crate::{AppState, ErrorCode, HttpError};

/// The gate every `/health` and `/v1` request passes, in one layer (each
/// `from_fn` layer costs a boxed future and a clone of the inner service
/// per request): observation outermost (so the 503 and 408 below are
/// logged and counted too), then admission, then the deadline.
pub(crate) async fn gate(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    // A clone of the matched path shares its text (an `Arc`).
    let route = req.extensions().get::<MatchedPath>().cloned();
    let request_id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = admit(&state, req, next).await;
    let route = route.as_ref().map_or("unmatched", MatchedPath::as_str);
    observe(&state, &method, route, &request_id, started, &response);
    response
}

/// Logs a request once (errors with their code) and records metrics by
/// route template, so label values stay bounded.
fn observe(
    state: &AppState,
    method: &axum::http::Method,
    route: &str,
    request_id: &str,
    started: Instant,
    response: &Response,
) {
    let status = response.status();
    let elapsed = started.elapsed();
    let metrics = state.ledger.metrics();
    metrics
        .http_requests_total
        .with_label_values(&[method.as_str(), route, status.as_str()])
        .inc();
    metrics
        .http_request_duration_seconds
        .with_label_values(&[method.as_str(), route])
        .observe(elapsed.as_secs_f64());
    let code = response.extensions().get::<ErrorCode>().map(|c| c.0);
    let duration_ms = elapsed.as_millis() as u64;
    if status.is_server_error() {
        tracing::warn!(%method, %route, status = status.as_u16(), error = code, duration_ms, request_id, "request failed");
    } else if status.is_client_error() {
        tracing::info!(%method, %route, status = status.as_u16(), error = code, duration_ms, request_id, "request refused");
    } else {
        tracing::debug!(%method, %route, status = status.as_u16(), duration_ms, request_id, "request served");
    }
}

/// Sheds requests beyond the in-flight limit with 503 before they queue,
/// and answers 408 when an admitted request outlives its deadline. A post
/// cut off by the deadline may still commit; its caller retries with the
/// same key and gets the original.
async fn admit(state: &AppState, req: Request, next: Next) -> Response {
    let Ok(_permit) = state.inflight.clone().try_acquire_owned() else {
        state
            .ledger
            .metrics()
            .shed_total
            .with_label_values(&["inflight"])
            .inc();
        return HttpError(ApiError::Overloaded {
            status: 503,
            retry_after_s: 1,
        })
        .into_response();
    };
    let _inflight = InflightGauge::enter(state.ledger.metrics().http_inflight_requests.clone());
    match tokio::time::timeout(state.request_timeout, next.run(req)).await {
        Ok(response) => response,
        Err(_) => {
            state
                .ledger
                .metrics()
                .shed_total
                .with_label_values(&["timeout"])
                .inc();
            HttpError(ApiError::Timeout).into_response()
        }
    }
}

/// Counts a request in the in-flight gauge until dropped, even when the
/// client disconnects and the request future is dropped midway.
struct InflightGauge(prometheus::IntGauge);

impl InflightGauge {
    fn enter(gauge: prometheus::IntGauge) -> Self {
        gauge.inc();
        Self(gauge)
    }
}

impl Drop for InflightGauge {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// Decides who the request is on behalf of, once, before the rate limiter
/// (which keys on the answer) and the handler (which refuses with 401/503
/// through the `Auth` extractor). Refuses nothing itself.
pub(crate) async fn authenticate(
    State(state): State<AppState>,
    mut req: Request,
    next: Next,
) -> Response {
    // Copied out: the request body is not `Sync`, so the headers cannot be
    // borrowed across the await.
    let token = bearer(req.headers()).map(str::to_owned);
    let outcome = Authn::decide(&state, token.as_deref()).await;
    drop(token);
    req.extensions_mut().insert(outcome);
    next.run(req).await
}

/// Adds `X-Talea-Backend` to every response.
pub(crate) async fn backend_header(
    State(state): State<AppState>,
    req: Request,
    next: Next,
) -> Response {
    let mut response = next.run(req).await;
    response.headers_mut().insert(
        HeaderName::from_static("x-talea-backend"),
        state.backend.clone(),
    );
    response
}

/// Request ids for requests that bring none: UUID v4 text from the
/// thread-local generator, rather than a `getrandom` system call per
/// request as `tower_http`'s `MakeRequestUuid` makes.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct MakeRequestId;

impl tower_http::request_id::MakeRequestId for MakeRequestId {
    fn make_request_id<B>(
        &mut self,
        _request: &axum::http::Request<B>,
    ) -> Option<tower_http::request_id::RequestId> {
        let id = uuid::Builder::from_random_bytes(rand::random()).into_uuid();
        let mut text = uuid::Uuid::encode_buffer();
        let value =
            axum::http::HeaderValue::from_str(id.hyphenated().encode_lower(&mut text)).ok()?;
        Some(tower_http::request_id::RequestId::new(value))
    }
}
