//! `talea-fanout`: streams a book's events from NATS to SSE subscribers, resuming exactly from the log.
//!
//! Thin main: configuration and wiring. Live events come from NATS
//! (`talea_bus::NatsSource`), resumes and gap repairs read the store
//! (a read-only use of `TALEA_DB_URL`), and the stream itself is
//! `talea_stream` behind `talea_http::stream_router`.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use talea_auth::Secret;
use talea_bus::NatsSource;
use talea_http::settings::{AuthArgs, BrowserArgs, ListenArgs, MetricsArgs, SseArgs};
use talea_http::{AppState, HttpConfig, MetricsObserver, Role, service};
use talea_ledger::{LedgerConfig, LedgerService};
use talea_store_pg::PgStore;
use talea_stream::{Hub, LedgerBackfill};
use talea_telemetry::{FanoutMetrics, LogArgs, Metrics};

/// The SSE fan-out.
#[derive(Debug, Parser)]
#[command(name = "talea-fanout", version, about, long_about = None)]
struct Config {
    #[command(flatten)]
    listen: ListenArgs<8092>,
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
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    auth: AuthArgs,
    #[command(flatten)]
    sse: SseArgs,
    #[command(flatten)]
    browser: BrowserArgs,
    #[command(flatten)]
    log: LogArgs,
}

fn main() -> ExitCode {
    if let Err(code) = service::load_dotenv("talea-fanout") {
        return code;
    }
    let config = Config::parse();
    config.log.init();
    service::run("talea-fanout", run(config))
}

/// Checks every setting, connects to the store and NATS, then serves until a signal.
async fn run(config: Config) -> anyhow::Result<()> {
    let tokens = config.auth.token_source()?;
    if tokens.is_empty() {
        bail!("no token configured: set TALEA_SCOPE_URL, TALEA_API_TOKEN or TALEA_TOKENS_FILE");
    }
    let stream_config = config.sse.stream_config().map_err(anyhow::Error::msg)?;
    // The fan-out issues no tickets, so their lifetime is talead's business.
    let browser = config
        .browser
        .settings(talea_auth::TICKET_TTL_S_DEFAULT)
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
        stream_config,
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
    serve(&config, ledger, fanout_metrics, state, hub).await
}

/// Starts the metrics listener, then serves the stream route until a signal.
async fn serve(
    config: &Config,
    ledger: LedgerService,
    fanout_metrics: FanoutMetrics,
    state: AppState,
    hub: Hub,
) -> anyhow::Result<()> {
    let (m, h) = (fanout_metrics, hub.clone());
    config
        .metrics
        .serve("talea-fanout", move || {
            m.stream
                .subscribers
                .set(i64::try_from(h.open_streams()).unwrap_or(i64::MAX));
            ledger.refresh_gauges();
            format!("{}{}", m.render(), ledger.metrics().render())
        })
        .await?;

    let listener = config.listen.listen().await?;
    println!(
        "talea-fanout listening on http://{} (events from {}.<book>)",
        listener.local_addr().context("listener address")?,
        config.subject_prefix
    );
    service::serve(
        listener,
        talea_http::stream_router(state),
        config.listen.header_read_timeout(),
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
