//! `talea-fanout`: streams a book's events from NATS to SSE subscribers, resuming exactly from the log.
//!
//! Thin main: configuration and wiring. Live events come from NATS
//! (`talea_bus::NatsSource`), resumes and gap repairs read the store
//! (a read-only use of `TALEA_DB_URL`), and the stream itself is
//! `talea_stream` behind `talea_http::stream_router`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use talea_auth::{Secret, TokenSource};
use talea_bus::NatsSource;
use talea_http::{AppState, HttpConfig, MetricsObserver, Role, service};
use talea_ledger::{LedgerConfig, LedgerService};
use talea_store_pg::PgStore;
use talea_stream::{Hub, LedgerBackfill, StreamConfig};
use talea_telemetry::{FanoutMetrics, Metrics};
use tokio::net::TcpListener;

/// The SSE fan-out.
#[derive(Debug, Parser)]
#[command(name = "talea-fanout", version, about, long_about = None)]
struct Config {
    /// Address to listen on.
    #[arg(long, env = "TALEA_BIND", default_value = "127.0.0.1:8092")]
    bind: SocketAddr,
    /// PostgreSQL URL for backfill reads (a pooler is fine: no LISTEN here).
    #[arg(long, env = "TALEA_DB_URL", hide_env_values = true)]
    db_url: Secret,
    /// Database connections.
    #[arg(long, env = "TALEA_DB_POOL", default_value_t = 5)]
    db_pool: u32,
    /// NATS server URL.
    #[arg(long, env = "TALEA_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Subject prefix; a book's events arrive on `<prefix>.<book>`.
    #[arg(
        long,
        env = "TALEA_NATS_SUBJECT_PREFIX",
        default_value = "talea.v1.events"
    )]
    subject_prefix: String,
    /// Address of the Prometheus metrics listener (none when unset).
    #[arg(long, env = "TALEA_METRICS_BIND")]
    metrics_bind: Option<SocketAddr>,
    /// talea-scope's base URL: when set, it decides every token.
    #[arg(long, env = "TALEA_SCOPE_URL")]
    scope_url: Option<String>,
    /// The bearer token presented to talea-scope.
    #[arg(long, env = "TALEA_SCOPE_SERVICE_TOKEN", hide_env_values = true)]
    scope_service_token: Option<Secret>,
    /// The all-books token (without TALEA_SCOPE_URL).
    #[arg(long, env = "TALEA_API_TOKEN", hide_env_values = true)]
    api_token: Option<Secret>,
    /// TOML tokens file (without TALEA_SCOPE_URL).
    #[arg(long, env = "TALEA_TOKENS_FILE")]
    tokens_file: Option<PathBuf>,
    /// Seconds between heartbeat comments.
    #[arg(long, env = "TALEA_SSE_HEARTBEAT_S", default_value_t = talea_stream::HEARTBEAT_S_DEFAULT)]
    sse_heartbeat_s: u64,
    /// Events buffered per subscriber before it is cut off as a slow consumer.
    #[arg(long, env = "TALEA_SSE_BUFFER", default_value_t = talea_stream::BUFFER_EVENTS_DEFAULT)]
    sse_buffer: usize,
    /// Open streams before new ones get 503.
    #[arg(long, env = "TALEA_SSE_MAX_CONNECTIONS", default_value_t = talea_stream::MAX_CONNECTIONS_DEFAULT)]
    sse_max_connections: usize,
    /// Open SSE streams one token (by name, across every book; a ticket's
    /// stream counts for its token) may hold before new ones get 429:
    /// 1..=TALEA_SSE_MAX_CONNECTIONS [default: 1000, or
    /// TALEA_SSE_MAX_CONNECTIONS where lower].
    #[arg(long, env = "TALEA_SSE_MAX_PER_TOKEN")]
    sse_max_per_token: Option<usize>,
    /// Key verifying stream tickets: talead's `TALEA_STREAM_TICKET_KEY`
    /// (at least 32 bytes). Unset, tickets from talead are refused.
    #[arg(long, env = "TALEA_STREAM_TICKET_KEY", hide_env_values = true)]
    stream_ticket_key: Option<Secret>,
    /// Comma-separated browser origins allowed on the stream route; empty,
    /// no CORS headers.
    #[arg(long, env = "TALEA_CORS_ORIGINS", default_value = "")]
    cors_origins: String,
    /// `json` for JSON log lines.
    #[arg(long, env = "TALEA_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

fn main() -> ExitCode {
    if let Err(code) = service::load_dotenv("talea-fanout") {
        return code;
    }
    let config = Config::parse();
    talea_telemetry::init_tracing(config.log_format == "json");
    service::run("talea-fanout", run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let tokens = TokenSource::configure(
        config.scope_url.as_deref(),
        config.scope_service_token.as_ref(),
        config.api_token.as_ref(),
        config.tokens_file.as_deref(),
    )?;
    if tokens.is_empty() {
        bail!("no token configured: set TALEA_SCOPE_URL, TALEA_API_TOKEN or TALEA_TOKENS_FILE");
    }
    let sse_max_per_token =
        talea_stream::max_per_token(config.sse_max_per_token, config.sse_max_connections)
            .map_err(anyhow::Error::msg)?;
    // The fan-out issues no tickets, so their lifetime is talead's business.
    let browser = service::browser_settings(
        config.stream_ticket_key.as_ref(),
        talea_auth::TICKET_TTL_S_DEFAULT,
        &config.cors_origins,
    )
    .map_err(anyhow::Error::msg)?;
    if browser.random_key {
        tracing::warn!(
            "TALEA_STREAM_TICKET_KEY is unset: stream tickets from talead are refused \
             (set the same key as talead's)"
        );
    }
    let store = PgStore::connect(config.db_url.expose(), config.db_pool)
        .await
        .context("cannot connect to PostgreSQL")?;
    store.check_migrated().await.map_err(anyhow::Error::msg)?;
    let nats = async_nats::ConnectOptions::new()
        .name("talea-fanout")
        .connect(&config.nats_url)
        .await
        .with_context(|| format!("cannot connect to NATS at {}", config.nats_url))?;

    // The ledger is only read here (backfill); its families are exported
    // beside the fan-out's own for the auth and pool figures.
    let ledger = LedgerService::new(Arc::new(store), LedgerConfig::default(), Metrics::new());
    let fanout_metrics = FanoutMetrics::new();
    let auth = tokens.into_authenticator(ledger.metrics().auth.clone())?;
    let hub = Hub::new(
        Arc::new(NatsSource::new(
            nats,
            config.subject_prefix.clone(),
            fanout_metrics.clone(),
        )),
        Arc::new(LedgerBackfill::new(ledger.clone())),
        Arc::new(MetricsObserver(fanout_metrics.stream.clone())),
        StreamConfig {
            heartbeat_s: config.sse_heartbeat_s,
            buffer_events_max: config.sse_buffer,
            max_connections: config.sse_max_connections,
            max_per_token: sse_max_per_token,
        },
    );
    let state = AppState::new(
        ledger.clone(),
        auth,
        &HttpConfig {
            role: Role::Read,
            stream_tickets: browser.tickets,
            cors_origins: browser.cors_origins,
            ..HttpConfig::default()
        },
    )
    .with_stream(hub.clone());

    if let Some(addr) = config.metrics_bind {
        let (m, h, l) = (fanout_metrics.clone(), hub.clone(), ledger.clone());
        service::serve_metrics("talea-fanout", addr, move || {
            m.stream
                .subscribers
                .set(i64::try_from(h.open_streams()).unwrap_or(i64::MAX));
            l.refresh_gauges();
            format!("{}{}", m.render(), l.metrics().render())
        })
        .await
        .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    }

    let header_read_timeout = service::header_read_timeout().map_err(anyhow::Error::msg)?;
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    println!(
        "talea-fanout listening on http://{} (events from {}.<book>)",
        listener.local_addr().context("listener address")?,
        config.subject_prefix
    );
    service::serve(
        listener,
        talea_http::stream_router(state),
        header_read_timeout,
        async move {
            service::shutdown_signal().await;
            // Every stream ends with `event: shutdown`; clients resume elsewhere.
            hub.shut_down();
        },
    )
    .await;
    tracing::info!("talea-fanout stopped");
    Ok(())
}
