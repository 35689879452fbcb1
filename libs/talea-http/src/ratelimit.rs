//! Per-token rate limits (tower_governor): keyed by the token's name once
//! authenticated, by the peer address before (missing or unknown tokens).
//!
//! The layer sits inside the `authenticate` middleware, which has already
//! put the request's [`Authn`] in its extensions; the key extractor only
//! reads it, so keying by name costs no second token lookup. A token's
//! budget is shared by every request carrying it on this instance; with N
//! instances behind a balancer a token gets up to N times the rate.

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::IntoResponse;
use talea_api::ApiError;
use tower_governor::GovernorError;
use tower_governor::GovernorLayer;
use tower_governor::governor::GovernorConfigBuilder;
use tower_governor::key_extractor::KeyExtractor;

use crate::extract::Authn;
use crate::{AppState, HttpError};

/// How often idle keys are dropped from the limiter's table, so that peers
/// seen once do not accumulate.
const RETAIN_INTERVAL: Duration = Duration::from_secs(60);

/// A token-bucket limit per key (`TALEA_RATE_LIMIT_PER_S`, `TALEA_RATE_LIMIT_BURST`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Sustained requests per second.
    pub per_s: NonZeroU32,
    /// Requests allowed at once after a quiet period.
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// One token of budget comes back every `1 / per_s` seconds.
    fn period(self) -> Duration {
        Duration::from_nanos((1_000_000_000 / u64::from(self.per_s.get())).max(1))
    }
}

/// Who a request's budget belongs to. Token names come from the tokens
/// file (bounded); peers are dropped when idle ([`RETAIN_INTERVAL`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum RateKey {
    /// An authenticated token, by name (`None`: `TALEA_API_TOKEN`).
    Token(Option<String>),
    /// A request without a usable token, by TCP peer address.
    Peer(IpAddr),
    /// No token and no peer address (served without connect info).
    UnknownPeer,
}

#[derive(Debug, Clone, Copy)]
struct TokenOrPeer;

impl KeyExtractor for TokenOrPeer {
    type Key = RateKey;

    fn extract<T>(&self, req: &Request<T>) -> Result<RateKey, GovernorError> {
        if let Some(Authn::Authenticated(p)) = req.extensions().get::<Authn>() {
            return Ok(RateKey::Token(p.name.clone()));
        }
        Ok(req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(RateKey::UnknownPeer, |c| RateKey::Peer(c.0.ip())))
    }
}

/// Wraps the routes of `router` with the limit; 429 `rate_limited` with
/// `Retry-After` when a key's budget is spent.
pub(crate) fn apply(
    router: Router<AppState>,
    limit: RateLimit,
    metrics: talea_telemetry::Metrics,
) -> Router<AppState> {
    let Some(config) = GovernorConfigBuilder::default()
        .period(limit.period())
        .burst_size(limit.burst.get())
        .key_extractor(TokenOrPeer)
        .finish()
    else {
        // Unreachable: the period and the burst are both at least 1.
        tracing::error!("rate limit configuration refused; serving without a limit");
        return router;
    };
    let limiter = Arc::downgrade(config.limiter());
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(RETAIN_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                // The router is gone: so is the limiter, and this task ends.
                let Some(limiter) = limiter.upgrade() else {
                    break;
                };
                limiter.retain_recent();
                limiter.shrink_to_fit();
            }
        });
    }
    let shed = metrics.shed_total.with_label_values(&["rate_limited"]);
    let layer = GovernorLayer::new(Arc::new(config)).error_handler(move |e| match e {
        GovernorError::TooManyRequests { wait_time, .. } => {
            shed.inc();
            // governor rounds the wait down to whole seconds; never say 0.
            HttpError(ApiError::RateLimited {
                retry_after_s: wait_time.max(1),
            })
            .into_response()
        }
        GovernorError::UnableToExtractKey | GovernorError::Other { .. } => {
            HttpError(ApiError::Internal).into_response()
        }
    });
    router.route_layer(layer)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_s: u32) -> RateLimit {
        RateLimit {
            per_s: NonZeroU32::new(per_s).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::MIN,
        }
    }

    #[test]
    fn periods_follow_the_rate() {
        assert_eq!(limit(1).period(), Duration::from_secs(1));
        assert_eq!(limit(100).period(), Duration::from_millis(10));
        assert_eq!(limit(u32::MAX).period(), Duration::from_nanos(1));
    }
}
