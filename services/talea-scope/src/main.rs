//! `talea-scope`: the token-scope service. Owns the tokens; answers introspection.
//!
//! It reads the tokens file and `TALEA_API_TOKEN` once at start-up (rotation
//! is: edit the file, restart), and answers `POST /v1/introspect` for callers
//! holding `TALEA_SCOPE_SERVICE_TOKEN`. Unlike `talead` it does not read
//! `.env`: the one `talead init` writes sets `TALEA_BIND` to talead's own
//! address, which this service would then try to take.

mod app;

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use clap::Parser;
use talea_auth::{POSITIVE_TTL_MAX_S, Secret, TokenSet};
use talea_http::service;
use talea_http::settings::{ListenArgs, MetricsArgs, TokenArgs};
use talea_telemetry::LogArgs;

/// The token-scope service.
#[derive(Debug, Parser)]
#[command(name = "talea-scope", version, about, long_about = None)]
struct Config {
    #[command(flatten)]
    listen: ListenArgs<8081>,
    #[command(flatten)]
    metrics: MetricsArgs,
    #[command(flatten)]
    tokens: TokenArgs,
    /// The bearer token callers (talead) present; required.
    #[arg(long, env = "TALEA_SCOPE_SERVICE_TOKEN", hide_env_values = true)]
    service_token: Option<Secret>,
    /// How long callers may cache an active answer, in seconds.
    #[arg(long, env = "TALEA_SCOPE_TTL_S", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(0..=POSITIVE_TTL_MAX_S))]
    ttl_s: u64,
    #[command(flatten)]
    log: LogArgs,
}

fn main() -> ExitCode {
    let config = Config::parse();
    config.log.init();
    service::run("talea-scope", run(config))
}

/// Loads the tokens, then answers introspection until a signal.
async fn run(config: Config) -> anyhow::Result<()> {
    let Some(service_token) = config.service_token.filter(|t| !t.expose().is_empty()) else {
        bail!("TALEA_SCOPE_SERVICE_TOKEN is not set: callers could not authenticate");
    };
    let tokens = TokenSet::load(
        config.tokens.api_token.as_ref(),
        config.tokens.tokens_file.as_deref(),
    )
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
    config
        .metrics
        .serve("talea-scope", move || metrics.render())
        .await?;

    let listener = config.listen.listen().await?;
    let addr = listener.local_addr().context("listener address")?;
    tracing::info!(%addr, tokens = state.tokens.len(), ttl_s = state.ttl_s, "talea-scope listening");
    println!("talea-scope listening on http://{addr}");
    service::serve(
        listener,
        app::router(state),
        config.listen.header_read_timeout(),
        service::shutdown_signal(),
    )
    .await;
    tracing::info!("talea-scope stopped");
    Ok(())
}
