//! Read your writes: `min_seq` (query) and `Talea-Min-Seq` (header) on book
//! reads, the wait for a replica to apply them, and the `Talea-Seq` answer.
//!
//! One middleware serves every book-scoped GET route of `/v1`
//! (`/v1/books/{book}/…`), whatever the store: a store whose head for the
//! book is at `min_seq` or beyond answers at once; a `min_seq` beyond the
//! book's head on the primary is `409 min_seq_ahead` at once (no write has
//! committed it: waiting could not help); otherwise the request waits, polling
//! the store, up to `TALEA_REPLICA_WAIT_MS`, then `503 replica_behind` with
//! `Retry-After`. `docs/scaling.md` ("Read replicas") is the user's account.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use talea_api::ApiError;
use talea_core::BookName;
use talea_store::Store;
use tokio::time::Instant;

use crate::extract::Authn;
use crate::{AppState, HttpError};

/// The request header carrying a read's `min_seq` (the SDK sends it).
pub const MIN_SEQ_HEADER: HeaderName = HeaderName::from_static(talea_api::MIN_SEQ_HEADER);
/// The answer header: every event of the book up to this seq is reflected
/// in the answer (it may reflect later ones too, never fewer).
pub const SEQ_HEADER: HeaderName = HeaderName::from_static(talea_api::SEQ_HEADER);
/// The query parameter carrying a read's `min_seq`.
const MIN_SEQ_PARAM: &str = "min_seq";
/// `TALEA_REPLICA_WAIT_MS`'s default: how long a read waits for its `min_seq`.
pub const REPLICA_WAIT_MS_DEFAULT: u64 = 2_000;
/// `TALEA_REPLICA_WAIT_MS`'s upper bound.
pub const REPLICA_WAIT_MS_MAX: u64 = 60_000;
/// The first pause between two looks at the replica's head while waiting;
/// each pause doubles up to [`WAIT_POLL_MS_MAX`].
const WAIT_POLL_MS_MIN: u64 = 2;
/// The longest pause between two looks at the replica's head while waiting.
const WAIT_POLL_MS_MAX: u64 = 50;
/// The most books whose replica lag is reported (`talea_replica_lag_seq`):
/// the label stays bounded whatever the number of books.
pub const REPLICA_LAG_BOOKS_MAX: usize = 1_000;
/// How often a read instance samples its replica's lag.
pub const REPLICA_LAG_POLL_MS: u64 = 1_000;

/// Where reads wait for their `min_seq`, and how long.
#[derive(Clone)]
pub(crate) struct Freshness {
    /// Who knows a book's head, asked when the store read from has not
    /// reached `min_seq`.
    pub(crate) primary: Primary,
    /// `TALEA_REPLICA_WAIT_MS`.
    pub(crate) wait: Duration,
}

/// Where a book's head on the primary is read.
#[derive(Clone, Default)]
pub(crate) enum Primary {
    /// The ledger's own store is the primary (or an embedded store).
    #[default]
    Own,
    /// A replica's primary (`TALEA_DB_URL` beside `TALEA_REPLICA_URL`).
    Store(Arc<dyn Store>),
    /// Unknown: the store is a standby and no primary is configured. A
    /// `min_seq` beyond the standby's head is waited for, never refused
    /// (a lag cannot be told from a seq never written).
    Unknown,
}

impl std::fmt::Debug for Freshness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let primary = match self.primary {
            Primary::Own => "own",
            Primary::Store(_) => "store",
            Primary::Unknown => "unknown",
        };
        f.debug_struct("Freshness")
            .field("primary", &primary)
            .field("wait", &self.wait)
            .finish()
    }
}

/// The middleware: on a book read, parses `min_seq`, waits for it, and adds
/// `Talea-Seq` to a successful answer. Anything else passes through.
///
/// It runs after authentication and leaves refusals the handler would make
/// first (401, an undecodable book, 403) to the handler, so the order of
/// checks in `docs/api.md` holds: 401, then parameters (a bad `min_seq` is
/// `400 invalid_request` with `field: "min_seq"`), then 403, then the wait.
pub(crate) async fn freshness(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        return next.run(req).await;
    }
    let Some(book) = book_of(req.uri().path()) else {
        return next.run(req).await;
    };
    let Some(Authn::Authenticated(principal)) = req.extensions().get::<Authn>() else {
        return next.run(req).await;
    };
    let covered = principal.covers(book.as_str());
    let min_seq = match min_seq_of(&req) {
        Ok(min_seq) => min_seq,
        Err(e) => return HttpError(e).into_response(),
    };
    let req = without_min_seq(req);
    if !covered {
        return next.run(req).await;
    }
    let head = match wait_for(&state, &book, min_seq).await {
        Ok(head) => head,
        Err(e) => return HttpError(e).into_response(),
    };
    let mut response = next.run(req).await;
    if response.status().is_success() {
        response
            .headers_mut()
            .insert(SEQ_HEADER, HeaderValue::from(head));
    }
    response
}

/// The book of a `/v1/books/{book}/…` path, if it is a valid name (an
/// invalid one is the handler's 400; `/v1/books` itself is no book's read).
fn book_of(path: &str) -> Option<BookName> {
    let rest = path.strip_prefix("/v1/books/")?;
    let name = rest.split('/').next()?;
    BookName::parse(name).ok()
}

/// The read's `min_seq`: from the query, the header, or the larger of the two.
fn min_seq_of(req: &Request) -> Result<Option<u64>, ApiError> {
    let mut from_query = None;
    for pair in req.uri().query().unwrap_or_default().split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if key != MIN_SEQ_PARAM {
            continue;
        }
        if from_query.is_some() {
            return Err(ApiError::invalid(MIN_SEQ_PARAM, "min_seq is given twice"));
        }
        from_query = Some(parse_min_seq(value)?);
    }
    let mut headers = req.headers().get_all(MIN_SEQ_HEADER).iter();
    let from_header = match (headers.next(), headers.next()) {
        (None, _) => None,
        (Some(value), None) => Some(parse_min_seq(value.to_str().map_err(|_| bad_min_seq())?)?),
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                MIN_SEQ_PARAM,
                "the Talea-Min-Seq header is given twice",
            ));
        }
    };
    Ok(from_query.max(from_header))
}

/// A `min_seq`: a positive integer of ASCII digits, at most `i64::MAX`.
fn parse_min_seq(text: &str) -> Result<u64, ApiError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad_min_seq());
    }
    match text.parse::<u64>() {
        Ok(n) if n >= 1 && n <= i64::MAX as u64 => Ok(n),
        _ => Err(bad_min_seq()),
    }
}

fn bad_min_seq() -> ApiError {
    ApiError::invalid(
        MIN_SEQ_PARAM,
        format!(
            "min_seq (query) and Talea-Min-Seq (header) must be a positive integer of at most {}",
            i64::MAX
        ),
    )
}

/// The request with `min_seq` taken out of its query: the handlers' query
/// types refuse unknown parameters, and this one is the middleware's.
fn without_min_seq(mut req: Request) -> Request {
    let Some(query) = req.uri().query() else {
        return req;
    };
    if !query
        .split('&')
        .any(|p| p.split('=').next() == Some(MIN_SEQ_PARAM))
    {
        return req;
    }
    let kept: Vec<&str> = query
        .split('&')
        .filter(|p| p.split('=').next() != Some(MIN_SEQ_PARAM))
        .collect();
    let path = req.uri().path();
    let text = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    let mut parts = req.uri().clone().into_parts();
    if let Ok(pq) = text.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }
    }
    req
}

/// Waits until the ledger's store has applied `min_seq` of `book` (at once
/// without one) and returns the head it then had: what `Talea-Seq` says.
///
/// The head is read before the handler reads, and a store's view of a book
/// only grows, so the answer reflects at least that head: `Talea-Seq` is
/// never newer than the data served.
async fn wait_for(
    state: &AppState,
    book: &BookName,
    min_seq: Option<u64>,
) -> Result<u64, ApiError> {
    let head = state.ledger.head(book).await?;
    let Some(min_seq) = min_seq else {
        return Ok(head);
    };
    let waits = &state.ledger.metrics().replica_waits_total;
    if head >= min_seq {
        waits.with_label_values(&["fresh"]).inc();
        return Ok(head);
    }
    // Has any write committed `min_seq`? If not, waiting cannot help.
    let primary_head = match &state.freshness.primary {
        Primary::Store(primary) => match primary.last_seq(book).await {
            Ok(seq) => seq.unwrap_or(0),
            Err(_) => {
                return Err(ApiError::unavailable(
                    "the primary cannot be reached to check min_seq against the book's head",
                ));
            }
        },
        Primary::Own => head,
        Primary::Unknown => min_seq,
    };
    if primary_head < min_seq {
        waits.with_label_values(&["ahead"]).inc();
        return Err(ApiError::MinSeqAhead {
            min_seq,
            head: primary_head,
        });
    }
    let deadline = Instant::now() + state.freshness.wait;
    let mut pause = Duration::from_millis(WAIT_POLL_MS_MIN);
    loop {
        let head = state.ledger.head(book).await?;
        if head >= min_seq {
            waits.with_label_values(&["waited"]).inc();
            return Ok(head);
        }
        let now = Instant::now();
        if now >= deadline {
            waits.with_label_values(&["behind"]).inc();
            return Err(ApiError::ReplicaBehind { min_seq, seq: head });
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(Duration::from_millis(WAIT_POLL_MS_MAX));
    }
}

/// Samples, every [`REPLICA_LAG_POLL_MS`], each book's lag between the
/// primary and the replica a read instance reads (`talea_replica_lag_seq`,
/// at most [`REPLICA_LAG_BOOKS_MAX`] books). A failed sample is logged and
/// leaves the gauges as they were.
pub fn spawn_lag_sampler(
    primary: Arc<dyn Store>,
    replica: Arc<dyn Store>,
    metrics: talea_telemetry::Metrics,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(REPLICA_LAG_POLL_MS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            // The replica first: read the other way round, a commit between
            // the two reads could show a lag that never was (a negative one).
            let replica_books = match replica.books().await {
                Ok(books) => books,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the replica's heads");
                    continue;
                }
            };
            let primary_books = match primary.books().await {
                Ok(books) => books,
                Err(error) => {
                    tracing::warn!(%error, "cannot read the primary's heads");
                    continue;
                }
            };
            let applied: std::collections::HashMap<_, _> = replica_books
                .iter()
                .map(|b| (b.book.as_str(), b.last_seq))
                .collect();
            for info in primary_books.iter().take(REPLICA_LAG_BOOKS_MAX) {
                let have = applied.get(info.book.as_str()).copied().unwrap_or(0);
                let lag = info.last_seq.saturating_sub(have);
                metrics
                    .replica_lag_seq
                    .with_label_values(&[info.book.as_str()])
                    .set(i64::try_from(lag).unwrap_or(i64::MAX));
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, header: Option<&str>) -> Request {
        let mut builder = axum::http::Request::get(uri);
        if let Some(value) = header {
            builder = builder.header(MIN_SEQ_HEADER, value);
        }
        builder.body(axum::body::Body::empty()).expect("a request")
    }

    #[test]
    fn min_seq_is_a_positive_integer_up_to_i64_max() {
        for good in ["1", "42", "9223372036854775807"] {
            assert!(parse_min_seq(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "0",
            "-1",
            "+1",
            "abc",
            "1.0",
            " 1",
            "9223372036854775808",
            "99999999999999999999999",
        ] {
            let e = parse_min_seq(bad).expect_err(bad);
            assert_eq!(e.code(), "invalid_request");
            assert!(
                matches!(e, ApiError::InvalidRequest { field: Some(ref f), .. } if f == "min_seq")
            );
        }
    }

    #[test]
    fn query_and_header_give_the_larger() {
        let got = |uri, header| min_seq_of(&request(uri, header));
        assert_eq!(got("/v1/books/b/events", None), Ok(None));
        assert_eq!(got("/v1/books/b/events?min_seq=3", None), Ok(Some(3)));
        assert_eq!(got("/v1/books/b/events", Some("4")), Ok(Some(4)));
        assert_eq!(got("/v1/books/b/events?min_seq=5", Some("4")), Ok(Some(5)));
        assert!(got("/v1/books/b/events?min_seq=1&min_seq=2", None).is_err());
        assert!(got("/v1/books/b/events?min_seq=", None).is_err());
        assert!(got("/v1/books/b/events", Some("0")).is_err());
    }

    #[test]
    fn min_seq_leaves_the_query() {
        let uri = |u| without_min_seq(request(u, None)).uri().to_string();
        assert_eq!(uri("/v1/books/b/events?min_seq=3"), "/v1/books/b/events");
        assert_eq!(
            uri("/v1/books/b/events?after_seq=1&min_seq=3&limit=2"),
            "/v1/books/b/events?after_seq=1&limit=2"
        );
        assert_eq!(
            uri("/v1/books/b/events?limit=2"),
            "/v1/books/b/events?limit=2"
        );
    }

    #[test]
    fn only_book_paths_name_a_book() {
        assert_eq!(
            book_of("/v1/books/payments/events").map(|b| b.as_str().to_owned()),
            Some("payments".to_owned())
        );
        assert!(book_of("/v1/books").is_none());
        assert!(book_of("/v1/books/BAD/events").is_none());
        assert!(book_of("/v1/transactions/x").is_none());
    }
}
