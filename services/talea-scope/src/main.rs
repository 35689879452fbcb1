//! `talea-scope`: the token-scope service. Owns the tokens; answers introspection.
//!
//! It reads the tokens file and `TALEA_API_TOKEN` once at start-up (rotation
//! is: edit the file, restart), and answers `POST /v1/introspect` for callers
//! holding `TALEA_SCOPE_SERVICE_TOKEN`. Unlike `talead` it does not read
//! `.env`: the one `talead init` writes sets `TALEA_BIND` to talead's own
//! address, which this service would then try to take.

mod app;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use talea_auth::{POSITIVE_TTL_MAX_S, Secret, TokenSet};
use talea_http::service;
use tokio::net::TcpListener;

/// The token-scope service.
#[derive(Debug, Parser)]
#[command(name = "talea-scope", version, about, long_about = None)]
struct Config {
    /// Address to listen on.
    #[arg(long, env = "TALEA_BIND", default_value = "127.0.0.1:8081")]
    bind: SocketAddr,
    /// Address of the Prometheus metrics listener (none when unset).
    #[arg(long, env = "TALEA_METRICS_BIND")]
    metrics_bind: Option<SocketAddr>,
    /// TOML tokens file; read once, at start-up.
    #[arg(long, env = "TALEA_TOKENS_FILE")]
    tokens_file: Option<PathBuf>,
    /// An all-books read-write token, beside the file.
    #[arg(long, env = "TALEA_API_TOKEN", hide_env_values = true)]
    api_token: Option<Secret>,
    /// The bearer token callers (talead) present; required.
    #[arg(long, env = "TALEA_SCOPE_SERVICE_TOKEN", hide_env_values = true)]
    service_token: Option<Secret>,
    /// How long callers may cache an active answer, in seconds.
    #[arg(long, env = "TALEA_SCOPE_TTL_S", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=POSITIVE_TTL_MAX_S))]
    ttl_s: u64,
    /// `json` for JSON log lines, anything else for text.
    #[arg(long, env = "TALEA_LOG_FORMAT", default_value = "text")]
    log_format: String,
}

fn main() -> ExitCode {
    let config = Config::parse();
    talea_telemetry::init_tracing(config.log_format == "json");
    service::run("talea-scope", run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let Some(service_token) = config.service_token.filter(|t| !t.expose().is_empty()) else {
        bail!("TALEA_SCOPE_SERVICE_TOKEN is not set: callers could not authenticate");
    };
    let tokens = TokenSet::load(config.api_token.as_ref(), config.tokens_file.as_deref())
        .context("loading tokens")?;
    if tokens.is_empty() {
        bail!("no token configured: set TALEA_TOKENS_FILE or TALEA_API_TOKEN");
    }
    let metrics = talea_telemetry::ScopeMetrics::new();
    metrics
        .tokens
        .set(i64::try_from(tokens.len()).unwrap_or(i64::MAX));
    let state = app::ScopeState {
        tokens: Arc::new(tokens),
        service_token: Arc::new(service_token),
        ttl_s: config.ttl_s,
        metrics: metrics.clone(),
    };

    if let Some(addr) = config.metrics_bind {
        service::serve_metrics("talea-scope", addr, move || metrics.render())
            .await
            .with_context(|| format!("cannot listen on {addr} for metrics"))?;
    }

    let header_read_timeout = service::header_read_timeout().map_err(anyhow::Error::msg)?;
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    let addr = listener.local_addr().context("listener address")?;
    tracing::info!(%addr, tokens = state.tokens.len(), ttl_s = state.ttl_s, "talea-scope listening");
    println!("talea-scope listening on http://{addr}");
    service::serve(
        listener,
        app::router(state),
        header_read_timeout,
        service::shutdown_signal(),
    )
    .await;
    tracing::info!("talea-scope stopped");
    Ok(())
}
