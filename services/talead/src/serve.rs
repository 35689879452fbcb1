//! `talead serve`: wire the store, the ledger, authentication and the HTTP listeners.

use std::sync::Arc;

use anyhow::{Context, bail};
use talea_auth::Secret;
use talea_auth::{TokenSet, TokenSource};
use talea_http::{AppState, HttpConfig, RateLimit};
use talea_http::{MetricsObserver, service};
use talea_ledger::{LedgerConfig, LedgerService};
use talea_stream::{Hub, LedgerBackfill, NoticeSource, StreamConfig};
use tokio::net::TcpListener;

use crate::ServeArgs;
use crate::store::{Schema, StoreUrl};

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let url = StoreUrl::parse(args.db_url.as_ref().map(Secret::expose))?;
    // Checked before the database, so a bad token setup is reported first.
    let mut tokens = TokenSource::configure(
        args.scope_url.as_deref(),
        args.scope_service_token.as_ref(),
        args.api_token.as_ref(),
        args.tokens_file.as_deref(),
    )?;
    if tokens.is_empty() {
        if !url.is_embedded() {
            bail!(
                "no API token configured: set TALEA_API_TOKEN or TALEA_TOKENS_FILE \
                 (`talead init` writes a token to .env), or TALEA_SCOPE_URL"
            );
        }
        // The embedded default's first run: make a token once, say where.
        let token = first_run_token(&args.env_file)?;
        tokens = TokenSource::Local(TokenSet::load(Some(&token), None).context("loading tokens")?);
    }
    let rate_limit = rate_limit(&args)?;
    let ledger_config = LedgerConfig {
        write_queue_depth: args.write_queue_depth,
        write_batch_max: args.write_batch_max,
        commit_books_max: args.commit_books_max,
        commits_in_flight: args.commits_in_flight,
        ..LedgerConfig::default()
    };
    ledger_config.check().map_err(anyhow::Error::msg)?;
    let sse_max_per_token =
        talea_stream::max_per_token(args.sse_max_per_token, args.sse_max_connections)
            .map_err(anyhow::Error::msg)?;
    let browser = service::browser_settings(
        args.stream_ticket_key.as_ref(),
        args.stream_ticket_ttl_s,
        &args.cors_origins,
    )
    .map_err(anyhow::Error::msg)?;
    if browser.random_key {
        tracing::info!(
            "TALEA_STREAM_TICKET_KEY is unset: stream tickets are signed with a random key \
             and are accepted by this process only"
        );
    }
    tracing::info!(store = %url.describe(), "opening the store");
    let store = crate::store::open(&url, args.db_pool, Schema::RequireMigrated).await?;

    let metrics = talea_telemetry::Metrics::new();
    let ledger = LedgerService::new(store, ledger_config, metrics);
    let auth = tokens.into_authenticator(ledger.metrics().auth.clone())?;
    tracing::info!(role = %args.role, rate_limit = ?rate_limit, "serving");
    let hub = Hub::new(
        Arc::new(NoticeSource::new(ledger.clone())),
        Arc::new(LedgerBackfill::new(ledger.clone())),
        Arc::new(MetricsObserver(ledger.metrics().stream.clone())),
        StreamConfig {
            heartbeat_s: args.sse_heartbeat_s,
            buffer_events_max: args.sse_buffer,
            max_connections: args.sse_max_connections,
            max_per_token: sse_max_per_token,
        },
    );
    let state = AppState::new(
        ledger.clone(),
        auth,
        &HttpConfig {
            max_inflight: args.max_inflight,
            request_timeout_ms: args.request_timeout_ms,
            role: args.role,
            rate_limit,
            stream_tickets: browser.tickets,
            cors_origins: browser.cors_origins,
        },
    )
    .with_stream(hub.clone());

    if let Some(addr) = args.metrics_bind {
        let ledger = ledger.clone();
        service::serve_metrics("talead", addr, move || {
            ledger.refresh_gauges();
            ledger.metrics().render()
        })
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    }

    let header_read_timeout = service::header_read_timeout().map_err(anyhow::Error::msg)?;
    let listener = TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let addr = listener.local_addr().context("listener address")?;
    tracing::info!(%addr, backend = ledger.backend().as_str(), "talead listening");
    println!(
        "talead listening on http://{addr} (backend {})",
        ledger.backend().as_str()
    );
    // Every request carries its peer's address: requests without a usable
    // token are rate limited by peer.
    service::serve(
        listener,
        talea_http::router(state),
        header_read_timeout,
        async move {
            service::shutdown_signal().await;
            // Streams end with `event: shutdown`, so the server can drain.
            hub.shut_down();
        },
    )
    .await;
    tracing::info!("talead stopped");
    Ok(())
}

/// Generates an API token for a first `serve` on an embedded store, writes
/// it to the env file (kept there for the next start, which reads it as
/// `TALEA_API_TOKEN`) and says where it is, once.
fn first_run_token(env_file: &std::path::Path) -> anyhow::Result<Secret> {
    let existing = crate::envfile::read(env_file)
        .with_context(|| format!("cannot read {}", env_file.display()))?;
    let token = crate::init::generate_token();
    let text = crate::envfile::set(&existing, "TALEA_API_TOKEN", &token);
    crate::init::write_private(env_file, &text)
        .with_context(|| format!("cannot write {}", env_file.display()))?;
    println!(
        "no API token was configured: generated one and wrote it to {} as TALEA_API_TOKEN \
         (`source {}` to use it with curl or the talea CLI)",
        env_file.display(),
        env_file.display()
    );
    Ok(Secret::new(token))
}

fn rate_limit(args: &ServeArgs) -> anyhow::Result<Option<RateLimit>> {
    match (args.rate_limit_per_s, args.rate_limit_burst) {
        (None, None) => Ok(None),
        (None, Some(_)) => bail!("TALEA_RATE_LIMIT_BURST needs TALEA_RATE_LIMIT_PER_S"),
        (Some(per_s), burst) => Ok(Some(RateLimit {
            per_s,
            burst: burst.unwrap_or(per_s),
        })),
    }
}
