//! `GET /v1/books/{book}/stream`: the live SSE stream, served by talead and by the fan-out.
//!
//! Everything before the first byte is an ordinary JSON error (401, 403,
//! 400, 404, then 429 for a token at its stream cap and 503 for a full
//! process, in that order); after it, the stream itself reports its end (`event:
//! error`, `event: shutdown`). The route sits outside admission and the
//! request timeout: a stream is meant to outlive both.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::Response;
use serde::Deserialize;
use serde_json::json;
use talea_api::ApiError;
use talea_auth::Authenticator;
use talea_auth::Principal;
use talea_stream::{
    End, Hub, LiveEvent, Recheck, Refusal, StreamObserver, StreamPermit, Subscription,
};
use talea_telemetry::StreamMetrics;

use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::bearer;
use crate::openapi::StreamErrors;
use crate::routes::{BookParam, Seq};
use crate::ticket;
use crate::{AppState, HttpError};

/// How often a stream re-checks a token whose scope does not expire by
/// itself (tokens decided in process): the token-scope service's default TTL.
pub const RECHECK_DEFAULT_S: u64 = 60;

/// Seconds a client is told to wait when every stream slot is taken.
pub const FULL_RETRY_AFTER_S: u64 = 1;

/// Seconds a token at its stream cap (`TALEA_SSE_MAX_PER_TOKEN`) is told to
/// wait: one heartbeat period. A slot of the token's frees only when one of
/// its own streams ends, and a stream whose client left unannounced is
/// noticed at the latest when its next heartbeat is written; asking again
/// sooner mostly finds the same streams open.
pub fn token_cap_retry_after_s(config: &talea_stream::StreamConfig) -> u64 {
    config.heartbeat_s.max(1)
}

/// The stream route's state: the ledger state (auth, backend) and the hub.
#[derive(Debug, Clone)]
pub(crate) struct StreamState {
    /// Authentication and the ledger.
    pub(crate) app: AppState,
    /// Live feeds, backfill and limits.
    pub(crate) hub: Hub,
}

/// Counts what streams do in a [`StreamMetrics`] family set.
#[derive(Debug, Clone)]
pub struct MetricsObserver(pub StreamMetrics);

impl StreamObserver for MetricsObserver {
    fn delivered(&self, event: &LiveEvent) {
        self.0.delivered_total.inc();
        if let Some(committed) = event.committed_micros {
            let now = chrono::Utc::now().timestamp_micros();
            let micros = now.saturating_sub(committed).max(0);
            self.0
                .delivery_latency_seconds
                .observe(micros as f64 / 1_000_000.0);
        }
    }

    fn gap_repair(&self) {
        self.0.gap_repairs_total.inc();
    }

    fn backfill_read(&self) {
        self.0.backfill_reads_total.inc();
    }

    fn refused(&self, refusal: Refusal) {
        self.0
            .refused_total
            .with_label_values(&[refusal.reason()])
            .inc();
    }

    fn ended(&self, end: End) {
        let reason = match end {
            End::ClientGone => "client_gone",
            End::SlowConsumer => {
                self.0.slow_consumer_disconnects_total.inc();
                "slow_consumer"
            }
            End::Shutdown => "shutdown",
            End::Forbidden => "forbidden",
            End::Failed => "failed",
        };
        self.0.ended_total.with_label_values(&[reason]).inc();
    }
}

/// The query of the stream route.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Resume after this seq: every event above it from the log, then live (wins over `Last-Event-ID`). Absent: live from now.
    #[param(value_type = Option<Seq>, inline)]
    after_seq: Option<String>,
    /// Comma-separated account names (at most 100): only events touching them.
    accounts: Option<String>,
    /// `balances`: first an `event: snapshot` with `id: N` and the (filtered) accounts' balances as of seq N, then every event from N+1.
    #[param(value_type = Option<Snapshot>, inline)]
    snapshot: Option<String>,
    /// A stream ticket, read before this struct (`ticket::ticket_param`);
    /// documented as the `ticket` security scheme.
    #[serde(default, rename = "ticket")]
    #[param(ignore)]
    _ticket: Option<serde::de::IgnoredAny>,
}

// The one value of `snapshot` (no doc comment: it would become the
// schema's description).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code)]
enum Snapshot {
    Balances,
}

/// The `Last-Event-ID` header (read from the `HeaderMap`).
#[derive(IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
struct LastEventId {
    /// Resume after this seq (what a browser's EventSource sends on reconnect).
    #[param(rename = "Last-Event-ID", value_type = Seq, inline, required = false)]
    last_event_id: Option<String>,
}

/// The stream route alone, without its state (see [`crate::router`]).
pub(crate) fn stream_routes() -> OpenApiRouter<StreamState> {
    OpenApiRouter::default().routes(routes!(stream))
}

#[utoipa::path(get, path = "/v1/books/{book}/stream", tag = "streams", operation_id = "streamBook",
    summary = "The book's events live (Server-Sent Events), resumable by seq.",
    // A ticket stands in for the bearer token on this route only.
    security(("bearer" = []), ("ticket" = [])),
    params(BookParam, StreamQuery, LastEventId),
    responses((status = 200, content_type = "text/event-stream", body = String,
        description = "The book's events as Server-Sent Events: `id:` the seq, `event:` `transaction` or `account_opened`, `data:` the resource JSON; `: keepalive` comments; it ends with `event: error` (`slow_consumer`, `forbidden`, `unavailable`) or `event: shutdown`."),
        StreamErrors))]
async fn stream(
    State(state): State<StreamState>,
    Path(book): Path<String>,
    query: Result<Query<StreamQuery>, axum::extract::rejection::QueryRejection>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, HttpError> {
    let (principal, token, ticket_expiry) = authenticate(&state, &book, &headers, &uri).await?;
    principal.check_read(&book)?;
    let Query(query) =
        query.map_err(|e| HttpError(ApiError::invalid("", format!("bad query: {e}"))))?;
    if talea_core::BookName::parse(&book).is_err() {
        return Err(ApiError::invalid("/book", "not a valid book name").into());
    }
    let after_seq = match (&query.after_seq, headers.get("last-event-id")) {
        (Some(text), _) => Some(parse_seq(text, "/after_seq")?),
        (None, Some(value)) => {
            let text = value
                .to_str()
                .map_err(|_| HttpError(ApiError::invalid("/Last-Event-ID", "not text")))?;
            Some(parse_seq(text, "/Last-Event-ID")?)
        }
        (None, None) => None,
    };
    let accounts = talea_stream::parse_accounts(query.accounts.as_deref())
        .map_err(|e| HttpError(ApiError::invalid("/accounts", e)))?;
    let snapshot = match query.snapshot.as_deref() {
        None => false,
        Some("balances") => true,
        Some(_) => {
            return Err(ApiError::invalid("/snapshot", "the one snapshot is `balances`").into());
        }
    };
    match state.hub.backfill().last_seq(&book).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err(ApiError::not_found(format!("book {book} not found")).into()),
        Err(e) => return Err(e.into()),
    }
    // Counted by the token's name (a ticket's stream by the name it is
    // bound to), only once every other answer is decided: a stream that
    // would be refused anyway takes no slot.
    let permit = admit(&state, principal.name.as_deref())?;
    let recheck = token
        .map(|token| recheck(state.app.auth.clone(), token, book.clone()))
        .or_else(|| ticket_expiry.map(ticket::until_expiry));
    let frames = talea_stream::open(
        &state.hub,
        Subscription {
            book,
            after_seq,
            accounts,
            hide: principal.hide,
            // A resume (`after_seq` or `Last-Event-ID`) never re-sends one.
            snapshot,
        },
        recheck,
        permit,
    )
    .await?;
    Ok(event_stream(Body::from_stream(frames)))
}

/// Who is asking: the bearer token's principal or, without an
/// `Authorization` header, the `?ticket=`'s; with the token (for re-checks)
/// or the ticket's expiry (which ends the session).
async fn authenticate(
    state: &StreamState,
    book: &str,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<(Principal, Option<String>, Option<i64>), HttpError> {
    let token = bearer(headers).map(str::to_owned);
    // Without an `Authorization` header, `?ticket=` stands in for it.
    let mut ticket_expiry = None;
    let principal = match &token {
        None => match ticket::ticket_param(uri) {
            Some(t) => {
                let grant = ticket::verify(&state.app.tickets, &t, book)?;
                ticket_expiry = Some(grant.expires_at_micros);
                grant.principal
            }
            None => return Err(ApiError::Unauthorized.into()),
        },
        Some(token) => match state.app.auth.authenticate(token).await {
            Ok(Some(principal)) => principal,
            Ok(None) => return Err(ApiError::Unauthorized.into()),
            Err(_) => {
                return Err(ApiError::unavailable("the token-scope service is unreachable").into());
            }
        },
    };
    Ok((principal, token, ticket_expiry))
}

/// Takes a stream slot for the token, or answers why there is none.
fn admit(state: &StreamState, token: Option<&str>) -> Result<StreamPermit, HttpError> {
    match state.hub.try_admit(token) {
        Ok(permit) => Ok(permit),
        Err(Refusal::TokenCap) => Err(ApiError::RateLimited {
            retry_after_s: token_cap_retry_after_s(state.hub.config()),
        }
        .into()),
        Err(Refusal::Connections) => Err(ApiError::Overloaded {
            status: 503,
            retry_after_s: FULL_RETRY_AFTER_S,
        }
        .into()),
    }
}

/// The response of an admitted stream: its body and the headers that keep
/// it unbuffered.
fn event_stream(body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx-style proxies not to buffer the stream.
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

fn parse_seq(text: &str, field: &str) -> Result<u64, HttpError> {
    text.trim().parse::<u64>().map_err(|_| {
        HttpError(ApiError::invalid(
            field,
            "expected a seq (an unsigned integer)",
        ))
    })
}

/// Re-asks the authenticator about `token` every [`RECHECK_DEFAULT_S`] (the
/// introspection cache answers within its TTL, so the service is consulted
/// once per TTL): a token that lost the book, or no longer exists, ends the
/// stream with `forbidden`; an undecidable answer (the scope service down
/// past the cache's TTL) ends it with `unavailable`.
fn recheck(auth: Arc<dyn Authenticator>, token: String, book: String) -> Recheck {
    Recheck {
        every: Duration::from_secs(RECHECK_DEFAULT_S),
        check: Box::new(move || {
            let auth = auth.clone();
            let token = token.clone();
            let book = book.clone();
            Box::pin(async move {
                match auth.authenticate(&token).await {
                    Ok(Some(p)) if p.check_read(&book).is_ok() => Ok(()),
                    Ok(_) => Err(json!({"error": "forbidden", "book": book})),
                    Err(_) => Err(json!({"error": "unavailable"})),
                }
            })
        }),
    }
}
