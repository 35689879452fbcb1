//! The token-scope service's client: introspection over HTTP, a TTL cache,
//! single-flight calls and a circuit breaker, behind the [`Authenticator`] seam.
//!
//! Decisions, in order, for a presented token:
//!
//! 1. a live cached answer (keyed by the token's SHA-256) decides at once,
//!    whatever the service's health: established sessions keep working
//!    through an outage until their TTL runs out, and no longer;
//! 2. a call already in flight for the same token is joined (single-flight),
//!    so a burst of requests with a new token costs one introspection;
//! 3. otherwise a call goes out if the breaker allows it; if it does not, or
//!    the call fails, the request cannot be decided (503 `unavailable`).
//!
//! Positive answers are cached for the service's `ttl_seconds` (capped at
//! [`POSITIVE_TTL_MAX_S`]), negative ones for [`NEGATIVE_TTL_S`].

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use talea_telemetry::AuthMetrics;
use tokio::time::Instant;

use crate::breaker::{Breaker, Transition};
use crate::cache::{AnswerCache, TokenDigest};
use crate::introspect::{Answer, INTROSPECT_PATH, IntrospectRequest, IntrospectResponse};
use crate::{Authenticator, Principal, Secret, Undecided, digest};

/// How long one introspection call may take, connect included, before it
/// counts as a failure. Well under the request deadline, so a dead service
/// answers 503 rather than 408.
pub const INTROSPECT_TIMEOUT_MS: u64 = 1_000;
/// How long an inactive answer is cached, in seconds: long enough to absorb
/// a client retrying a bad token in a loop, short enough that a token just
/// added (and the scope service restarted) works within seconds.
pub const NEGATIVE_TTL_S: u64 = 5;
/// The longest a positive answer is cached, whatever the service says, in
/// seconds: the upper bound of fail-open during an outage.
pub const POSITIVE_TTL_MAX_S: u64 = 3_600;
/// The most answers held in the cache. At ~200 bytes each, about 2 MiB.
pub const CACHE_ENTRIES_MAX: usize = 10_000;
/// Consecutive failed calls that open the breaker.
pub const BREAKER_FAILURES_TO_OPEN: u32 = 3;
/// How long the breaker stays open before one probe call, in milliseconds.
pub const BREAKER_OPEN_MS: u64 = 2_000;
/// The largest introspection answer read, in bytes; real ones are ~100.
const ANSWER_BYTES_MAX: usize = 64 * 1024;

/// Where the scope service is and how to treat it.
#[derive(Debug, Clone)]
pub struct ScopeClientConfig {
    /// The service's base URL (`http://talea-scope:8081`); the client posts
    /// to `<url>/v1/introspect`.
    pub url: String,
    /// The bearer token the service expects from its callers.
    pub service_token: Secret,
    /// [`INTROSPECT_TIMEOUT_MS`].
    pub introspect_timeout_ms: u64,
    /// [`NEGATIVE_TTL_S`], in milliseconds.
    pub negative_ttl_ms: u64,
    /// [`POSITIVE_TTL_MAX_S`].
    pub positive_ttl_max_s: u64,
    /// [`CACHE_ENTRIES_MAX`].
    pub cache_entries_max: usize,
    /// [`BREAKER_FAILURES_TO_OPEN`].
    pub breaker_failures_to_open: u32,
    /// [`BREAKER_OPEN_MS`].
    pub breaker_open_ms: u64,
}

impl ScopeClientConfig {
    /// Checks the URL and the service token without building anything, so
    /// a service can refuse bad configuration before it connects elsewhere.
    pub fn check(&self) -> Result<(), ScopeClientError> {
        self.endpoint().map(|_| ())
    }

    /// `<url>/v1/introspect`, keeping any path prefix (a proxy may mount
    /// the service under one).
    fn endpoint(&self) -> Result<reqwest::Url, ScopeClientError> {
        let invalid = |reason: &str| ScopeClientError::InvalidUrl {
            url: self.url.clone(),
            reason: reason.to_owned(),
        };
        let mut url = reqwest::Url::parse(&self.url).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(invalid("a base URL has no query or fragment"));
        }
        if self.service_token.expose().is_empty() {
            return Err(ScopeClientError::EmptyServiceToken);
        }
        let path = format!("{}{INTROSPECT_PATH}", url.path().trim_end_matches('/'));
        url.set_path(&path);
        Ok(url)
    }

    /// The defaults above, for the service at `url`.
    pub fn new(url: impl Into<String>, service_token: Secret) -> Self {
        Self {
            url: url.into(),
            service_token,
            introspect_timeout_ms: INTROSPECT_TIMEOUT_MS,
            negative_ttl_ms: NEGATIVE_TTL_S * 1_000,
            positive_ttl_max_s: POSITIVE_TTL_MAX_S,
            cache_entries_max: CACHE_ENTRIES_MAX,
            breaker_failures_to_open: BREAKER_FAILURES_TO_OPEN,
            breaker_open_ms: BREAKER_OPEN_MS,
        }
    }
}

/// The client could not be built; startup must stop.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeClientError {
    /// The URL is not an absolute `http` or `https` URL.
    #[error("the token-scope service URL {url:?} is invalid: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What is wrong.
        reason: String,
    },
    /// The HTTP client could not be built (TLS setup).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// The service token is empty.
    #[error("the token-scope service token is empty")]
    EmptyServiceToken,
}

/// Why one call failed. Never carries a token.
#[derive(Debug, thiserror::Error)]
enum CallError {
    #[error("transport: {0}")]
    Transport(reqwest::Error),
    #[error("status {0}")]
    Status(u16),
    #[error("malformed answer: {0}")]
    Malformed(String),
    #[error("the call's task ended without an answer")]
    Lost,
}

/// A call's result as shared among its waiters: `None` when it failed.
type Flight = Shared<BoxFuture<'static, Option<Option<Principal>>>>;

struct State {
    cache: AnswerCache,
    /// Calls in flight, each with an id so that only its own call removes it.
    inflight: HashMap<TokenDigest, (u64, Flight)>,
    next_flight: u64,
    breaker: Breaker,
}

struct Inner {
    http: reqwest::Client,
    endpoint: reqwest::Url,
    service_token: Secret,
    negative_ttl: Duration,
    positive_ttl_max_s: u64,
    metrics: AuthMetrics,
    state: Mutex<State>,
}

/// Authenticates bearer tokens by asking `talea-scope`, with a cache and a
/// circuit breaker. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct ScopeClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for ScopeClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The origin only: a URL may carry credentials in its userinfo.
        f.debug_struct("ScopeClient")
            .field(
                "service",
                &self.inner.endpoint.origin().ascii_serialization(),
            )
            .finish_non_exhaustive()
    }
}

impl ScopeClient {
    /// A client for the service described by `config`, recording into `metrics`.
    pub fn new(config: ScopeClientConfig, metrics: AuthMetrics) -> Result<Self, ScopeClientError> {
        let base = config.endpoint()?;
        let timeout = Duration::from_millis(config.introspect_timeout_ms.max(1));
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            // A redirect would resend the token somewhere else: never follow one.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| ScopeClientError::Client(e.to_string()))?;
        let breaker = Breaker::new(
            config.breaker_failures_to_open,
            Duration::from_millis(config.breaker_open_ms),
            timeout,
        );
        metrics.breaker_state.set(breaker.gauge());
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                endpoint: base,
                service_token: config.service_token,
                negative_ttl: Duration::from_millis(config.negative_ttl_ms),
                positive_ttl_max_s: config.positive_ttl_max_s,
                metrics,
                state: Mutex::new(State {
                    cache: AnswerCache::new(config.cache_entries_max),
                    inflight: HashMap::new(),
                    next_flight: 0,
                    breaker,
                }),
            }),
        })
    }
}

#[async_trait]
impl Authenticator for ScopeClient {
    async fn authenticate(&self, token: &str) -> Result<Option<Principal>, Undecided> {
        let key = digest(token);
        let flight = {
            let mut state = self.inner.lock();
            let now = Instant::now();
            let cached = state.cache.get(&key, now);
            self.inner
                .metrics
                .cache_entries
                .set(gauge_len(state.cache.len()));
            if let Some(answer) = cached {
                self.inner.metrics.cache_hits_total.inc();
                return Ok(answer);
            }
            self.inner.metrics.cache_misses_total.inc();
            if let Some((_, flight)) = state.inflight.get(&key) {
                flight.clone()
            } else {
                let allowed = state.breaker.try_acquire(now);
                self.inner.metrics.breaker_state.set(state.breaker.gauge());
                if !allowed {
                    return Err(Undecided);
                }
                let id = state.next_flight;
                state.next_flight = state.next_flight.wrapping_add(1);
                let flight = Inner::start(&self.inner, key, id, token.to_owned());
                state.inflight.insert(key, (id, flight.clone()));
                flight
            }
        };
        flight.await.ok_or(Undecided)
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement made under the lock,
        // so a panic elsewhere while holding it leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts the call in its own task, so that a caller going away (a
    /// client disconnecting) neither cancels it for the other waiters nor
    /// leaves the breaker waiting on a probe that never reports.
    fn start(this: &Arc<Self>, key: TokenDigest, id: u64, token: String) -> Flight {
        let inner = Arc::clone(this);
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let result = inner.call(&token).await;
            drop(token);
            inner.settle(key, id, started, result)
        });
        let inner = Arc::clone(this);
        async move {
            match task.await {
                Ok(answer) => answer,
                Err(_) => {
                    // The task panicked or the runtime is stopping: forget the
                    // flight so the next request starts a fresh one.
                    inner.settle(key, id, Instant::now(), Err(CallError::Lost))
                }
            }
        }
        .boxed()
        .shared()
    }

    async fn call(&self, token: &str) -> Result<Answer, CallError> {
        let request = IntrospectRequest {
            token: Secret::new(token),
            token_type_hint: None,
        };
        let mut response = self
            .http
            .post(self.endpoint.clone())
            .bearer_auth(self.service_token.expose())
            .json(&request)
            .send()
            .await
            .map_err(CallError::Transport)?;
        if !response.status().is_success() {
            return Err(CallError::Status(response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(CallError::Transport)? {
            if body.len() + chunk.len() > ANSWER_BYTES_MAX {
                return Err(CallError::Malformed("answer too large".to_owned()));
            }
            body.extend_from_slice(&chunk);
        }
        let answer: IntrospectResponse =
            serde_json::from_slice(&body).map_err(|e| CallError::Malformed(e.to_string()))?;
        answer.decode().map_err(CallError::Malformed)
    }

    /// Records a call's result: cache, breaker, metrics; and ends its flight.
    fn settle(
        &self,
        key: TokenDigest,
        id: u64,
        started: Instant,
        result: Result<Answer, CallError>,
    ) -> Option<Option<Principal>> {
        let now = Instant::now();
        let mut state = self.lock();
        if state.inflight.get(&key).is_some_and(|(i, _)| *i == id) {
            state.inflight.remove(&key);
        }
        let (outcome, transition) = match result {
            Ok(answer) => {
                self.metrics
                    .introspection_duration_seconds
                    .observe(now.saturating_duration_since(started).as_secs_f64());
                let ttl = if answer.principal.is_some() {
                    Duration::from_secs(answer.ttl_seconds.min(self.positive_ttl_max_s))
                } else {
                    self.negative_ttl
                };
                let result = if answer.principal.is_some() {
                    "active"
                } else {
                    "inactive"
                };
                self.metrics
                    .introspections_total
                    .with_label_values(&[result])
                    .inc();
                // The TTL runs from when the question was asked: the answer
                // was true then, not necessarily when it arrived.
                state
                    .cache
                    .insert(key, answer.principal.clone(), started + ttl, now);
                (Some(answer.principal), state.breaker.on_success())
            }
            Err(e) => {
                self.metrics
                    .introspections_total
                    .with_label_values(&["error"])
                    .inc();
                tracing::debug!(error = %e, "token introspection failed");
                let transition = state.breaker.on_failure(now);
                if transition == Transition::Opened {
                    tracing::warn!(
                        error = %e,
                        service = %self.endpoint.origin().ascii_serialization(),
                        "token-scope service failing: circuit breaker open; cached tokens \
                         keep working until their TTL, new tokens get 503"
                    );
                }
                (None, transition)
            }
        };
        if transition == Transition::Closed {
            tracing::info!("token-scope service answering again: circuit breaker closed");
        }
        self.metrics.breaker_state.set(state.breaker.gauge());
        self.metrics.cache_entries.set(gauge_len(state.cache.len()));
        outcome
    }
}

fn gauge_len(len: usize) -> i64 {
    i64::try_from(len).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client(url: &str) -> Result<ScopeClient, ScopeClientError> {
        ScopeClient::new(
            ScopeClientConfig::new(url, Secret::new("svc")),
            talea_telemetry::Metrics::new().auth,
        )
    }

    #[test]
    fn urls_are_checked_and_joined() {
        let c = client("http://scope:8081").expect("valid");
        assert_eq!(c.inner.endpoint.as_str(), "http://scope:8081/v1/introspect");
        let c = client("https://gw/scope/").expect("valid");
        assert_eq!(c.inner.endpoint.as_str(), "https://gw/scope/v1/introspect");
        for bad in [
            "scope:8081",
            "ftp://scope",
            "http://scope/?a=1",
            "not a url",
        ] {
            assert!(client(bad).is_err(), "{bad}");
        }
        assert!(
            ScopeClient::new(
                ScopeClientConfig::new("http://scope", Secret::new("")),
                talea_telemetry::Metrics::new().auth,
            )
            .is_err()
        );
    }

    #[test]
    fn debug_shows_only_the_origin() {
        let c = client("http://user:pw@scope:8081/x").expect("valid");
        let text = format!("{c:?}");
        assert!(text.contains("http://scope:8081"), "{text}");
        assert!(!text.contains("pw") && !text.contains("svc"), "{text}");
    }
}
