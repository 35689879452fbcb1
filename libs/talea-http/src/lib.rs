//! The HTTP face of talea: axum routes, authentication and scope, rate
//! limits, roles, admission, timeouts, request ids and the metrics listener.
//!
//! Handlers stay thin: they decide scope, parse the body and call
//! `LedgerApi`; every refusal is an `ApiError` mapped in `error.rs`.

mod console;
mod error;
mod extract;
mod freshness;
mod hide;
mod liabilities;
mod middleware;
pub mod openapi;
mod proofs;
mod ratelimit;
mod role;
mod routes;
pub mod service;
pub mod settings;
mod stream;
mod ticket;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use talea_auth::{Authenticator, Tickets};
use talea_ledger::LedgerService;
use tokio::sync::Semaphore;
use tower_http::request_id::{PropagateRequestIdLayer, SetRequestIdLayer};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ErrorCode, HttpError};
pub use extract::parse_json;
pub use freshness::{
    MIN_SEQ_HEADER, REPLICA_LAG_BOOKS_MAX, REPLICA_WAIT_MS_DEFAULT, REPLICA_WAIT_MS_MAX,
    SEQ_HEADER, spawn_lag_sampler,
};
pub use ratelimit::RateLimit;
pub use role::Role;
pub use stream::{FULL_RETRY_AFTER_S, MetricsObserver, RECHECK_DEFAULT_S, token_cap_retry_after_s};
pub use ticket::{CORS_MAX_AGE_S, CORS_ORIGINS_MAX, parse_cors_origins};

/// Limits of the HTTP layer, with the contract's defaults.
#[derive(Debug, Clone)]
pub struct HttpConfig {
    /// Requests inside the service at once before new ones get 503 (`TALEA_MAX_INFLIGHT`).
    pub max_inflight: usize,
    /// How long a request may take before it is answered 408 (`TALEA_REQUEST_TIMEOUT_MS`).
    pub request_timeout_ms: u64,
    /// What this instance serves (`TALEA_ROLE`).
    pub role: Role,
    /// Per-token rate limit (`TALEA_RATE_LIMIT_PER_S`, `TALEA_RATE_LIMIT_BURST`); none when unset.
    pub rate_limit: Option<RateLimit>,
    /// Issues and verifies stream tickets (`TALEA_STREAM_TICKET_KEY`,
    /// `TALEA_STREAM_TICKET_TTL_S`); the default has a random per-process key.
    pub stream_tickets: Tickets,
    /// Origins allowed to call the ticket and stream routes from a browser
    /// (`TALEA_CORS_ORIGINS`); empty: no CORS headers at all.
    pub cors_origins: Vec<HeaderValue>,
    /// How long a read waits for its `min_seq` before 503 `replica_behind`
    /// (`TALEA_REPLICA_WAIT_MS`).
    pub replica_wait_ms: u64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            max_inflight: 256,
            request_timeout_ms: 10_000,
            role: Role::All,
            rate_limit: None,
            stream_tickets: Tickets::process_local(),
            cors_origins: Vec::new(),
            replica_wait_ms: REPLICA_WAIT_MS_DEFAULT,
        }
    }
}

/// What every handler can reach. Cheap to clone (one reference count): every
/// middleware layer and handler takes its own copy per request.
#[derive(Debug, Clone)]
pub struct AppState {
    inner: Arc<StateFields>,
}

/// The fields of [`AppState`], reached through it.
#[derive(Debug, Clone)]
pub struct StateFields {
    /// The ledger.
    pub ledger: LedgerService,
    /// Decides who a bearer token is.
    pub auth: Arc<dyn Authenticator>,
    inflight: Arc<Semaphore>,
    request_timeout: Duration,
    backend: HeaderValue,
    role: Role,
    rate_limit: Option<RateLimit>,
    stream: Option<talea_stream::Hub>,
    tickets: Arc<Tickets>,
    cors_origins: Arc<[HeaderValue]>,
    console: bool,
    freshness: freshness::Freshness,
}

impl std::ops::Deref for AppState {
    type Target = StateFields;

    fn deref(&self) -> &StateFields {
        &self.inner
    }
}

impl AppState {
    /// State for a router over `ledger`, authenticating with `auth`.
    pub fn new(ledger: LedgerService, auth: Arc<dyn Authenticator>, config: &HttpConfig) -> Self {
        let backend = HeaderValue::from_static(ledger.backend().as_str());
        let state = StateFields {
            ledger,
            auth,
            inflight: Arc::new(Semaphore::new(config.max_inflight.max(1))),
            request_timeout: Duration::from_millis(config.request_timeout_ms.max(1)),
            backend,
            role: config.role,
            rate_limit: config.rate_limit,
            stream: None,
            tickets: Arc::new(config.stream_tickets.clone()),
            cors_origins: config.cors_origins.clone().into(),
            console: false,
            freshness: freshness::Freshness {
                primary: freshness::Primary::Own,
                wait: Duration::from_millis(config.replica_wait_ms),
            },
        };
        Self {
            inner: Arc::new(state),
        }
    }

    /// Serves `GET /v1/books/{book}/stream` from `hub` too.
    pub fn with_stream(mut self, hub: talea_stream::Hub) -> Self {
        Arc::make_mut(&mut self.inner).stream = Some(hub);
        self
    }

    /// Serves the read-only operator console at `/console` too
    /// (`TALEA_CONSOLE`, `docs/console.md`).
    pub fn with_console(mut self, on: bool) -> Self {
        Arc::make_mut(&mut self.inner).console = on;
        self
    }

    /// Reads come from a replica of `primary` (`TALEA_REPLICA_URL`): a read
    /// whose `min_seq` the replica has not applied asks `primary` for the
    /// book's head (`409 min_seq_ahead` beyond it) before it waits.
    pub fn with_primary(mut self, primary: Arc<dyn talea_store::Store>) -> Self {
        Arc::make_mut(&mut self.inner).freshness.primary = freshness::Primary::Store(primary);
        self
    }

    /// The ledger's store is a standby whose primary is not configured: a
    /// read whose `min_seq` is beyond the standby's head waits for it (up to
    /// `TALEA_REPLICA_WAIT_MS`), as no `409 min_seq_ahead` can be decided.
    pub fn with_unknown_primary(mut self) -> Self {
        Arc::make_mut(&mut self.inner).freshness.primary = freshness::Primary::Unknown;
        self
    }

    /// What this instance serves.
    pub fn role(&self) -> Role {
        self.role
    }
}

/// Every route of the API, in the groups that take different layers. Each
/// group is an `OpenApiRouter` filled only through `routes(routes!(...))`,
/// so the list that routes a request is the list that documents it
/// ([`openapi::document`] draws its paths from `Routes::new(Role::All)`).
pub(crate) struct Routes {
    /// `/livez`: outside admission.
    livez: OpenApiRouter<AppState>,
    /// `/health` and `/v1/openapi.json`: public, inside admission.
    public: OpenApiRouter<AppState>,
    /// The authenticated `/v1` routes (a read instance routes only their
    /// GETs, but documents them all).
    v1: OpenApiRouter<AppState>,
    /// The stream route, on its own state.
    stream: OpenApiRouter<stream::StreamState>,
}

impl Routes {
    pub(crate) fn new(role: Role) -> Self {
        Self {
            livez: OpenApiRouter::default().routes(routes!(routes::livez)),
            public: OpenApiRouter::default()
                .routes(routes!(routes::health))
                // Public: the contract is no secret, and outside the rate limit.
                .routes(routes!(openapi::serve)),
            // The ticket route takes a POST but writes nothing: every role serves it.
            v1: routes::v1(role).merge(ticket::routes()),
            stream: stream::stream_routes(),
        }
    }

    /// The paths (and the schemas they name) of every route.
    pub(crate) fn openapi(self) -> utoipa::openapi::OpenApi {
        let mut api = self.livez.into_openapi();
        api.merge(self.public.into_openapi());
        api.merge(self.v1.into_openapi());
        api.merge(self.stream.into_openapi());
        api
    }
}

/// The public API router.
///
/// Layers, outermost first: request id, backend header; then on `/health`
/// and the `/v1` routes: the gate (observe, admission, timeout), body limit; then on
/// the `/v1` routes only: authenticate, rate limit. `/health` is never
/// rate limited (a balancer's probes must not be refused as a client's
/// would), and a 405 is answered before authentication.
///
/// With [`AppState::with_console`], `/console` serves the operator
/// console's static files beside `/livez`, outside admission and
/// authentication.
///
/// Serve it with `into_make_service_with_connect_info::<SocketAddr>()` so
/// that requests without a usable token are rate limited by peer address.
pub fn router(state: AppState) -> Router {
    let routes = Routes::new(state.role);
    let mut v1 = Router::from(routes.v1);
    if let Some(limit) = state.rate_limit {
        v1 = ratelimit::apply(v1, limit, state.ledger.metrics().clone());
    }
    // Inside authentication: a read waits for its `min_seq` only once its
    // token is known.
    let v1 = v1
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            freshness::freshness,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::authenticate,
        ));
    let api = Router::from(routes.public)
        .merge(v1)
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(
            talea_core::limits::BODY_BYTES_MAX,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            middleware::gate,
        ))
        .with_state(state.clone());
    // Liveness sits outside admission: a saturated process is busy, not dead.
    let mut outer = Router::from(routes.livez).with_state(state.clone());
    if let Some(hub) = state.stream.clone() {
        // Streams outlive any request deadline and are capped by their own
        // connection limit, so they sit outside admission and the timeout.
        outer = outer.merge(Router::from(routes.stream).with_state(stream::StreamState {
            app: state.clone(),
            hub,
        }));
    }
    if state.console {
        // Static files holding no secret: outside admission and
        // authentication, like `/livez` (the API calls they make are not).
        outer = outer.merge(console::routes());
    }
    let cors = ticket::cors(&state.cors_origins);
    let app = outer
        .merge(api)
        .layer(axum::middleware::from_fn_with_state(
            state,
            middleware::backend_header,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(middleware::MakeRequestId));
    // Outermost, so refusals (401, 429, 503) carry the headers too and a
    // browser can read them.
    match cors {
        Some(cors) => app.layer(cors),
        None => app,
    }
}

/// The fan-out's router: `/livez`, `/health` and the stream route only
/// (`state` must carry a hub, see [`AppState::with_stream`]), with the same
/// request id and backend headers as [`router`].
pub fn stream_router(state: AppState) -> Router {
    let probes = OpenApiRouter::default()
        .routes(routes!(routes::livez))
        .routes(routes!(routes::health));
    let mut app = Router::from(probes)
        .fallback(routes::not_found)
        .with_state(state.clone());
    if let Some(hub) = state.stream.clone() {
        app = app.merge(
            Router::from(stream::stream_routes()).with_state(stream::StreamState {
                app: state.clone(),
                hub,
            }),
        );
    }
    let cors = ticket::cors(&state.cors_origins);
    let app = app
        .layer(axum::middleware::from_fn_with_state(
            state,
            middleware::backend_header,
        ))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(middleware::MakeRequestId));
    match cors {
        Some(cors) => app.layer(cors),
        None => app,
    }
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
