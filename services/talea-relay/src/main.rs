//! `talea-relay`: publishes every committed event from Postgres to NATS, one leader at a time.
//!
//! Thin main: configuration, wiring, health and metrics listeners. The
//! relay itself is `talea_bus::Relay`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::routing::get;
use clap::Parser;
use talea_bus::{Relay, RelayConfig};
use talea_http::service;
use talea_http::settings::MetricsArgs;
use talea_store_pg::PgStore;
use talea_telemetry::{LogArgs, RelayMetrics};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The change relay.
#[derive(Debug, Parser)]
#[command(name = "talea-relay", version, about, long_about = None)]
struct Config {
    /// PostgreSQL URL: a direct connection (LISTEN does not work through a
    /// transaction-mode pooler; the relay checks at start-up).
    #[arg(long, env = "TALEA_DB_URL", hide_env_values = true)]
    db_url: String,
    /// Database connections (one LISTEN, one lease, the rest for reads).
    #[arg(long, env = "TALEA_DB_POOL", default_value_t = 4)]
    db_pool: u32,
    /// NATS server URL.
    #[arg(long, env = "TALEA_NATS_URL", default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Subject prefix; a book's events go to `<prefix>.<book>`.
    #[arg(long, env = "TALEA_NATS_SUBJECT_PREFIX", default_value = talea_api_prefix())]
    subject_prefix: String,
    /// Address of `/health` and `/livez`.
    #[arg(long, env = "TALEA_BIND", default_value = "127.0.0.1:8091")]
    bind: SocketAddr,
    #[command(flatten)]
    metrics: MetricsArgs,
    /// How often the leader scans every book even without a notification, in ms.
    #[arg(long, env = "TALEA_RELAY_POLL_MS", default_value_t = 1_000)]
    poll_ms: u64,
    /// How often a standby tries to take over, in ms.
    #[arg(long, env = "TALEA_RELAY_STANDBY_RETRY_MS", default_value_t = 1_000)]
    standby_retry_ms: u64,
    #[command(flatten)]
    log: LogArgs,
}

const fn talea_api_prefix() -> &'static str {
    "talea.v1.events"
}

fn main() -> ExitCode {
    if let Err(code) = service::load_dotenv("talea-relay") {
        return code;
    }
    let config = Config::parse();
    config.log.init();
    service::run("talea-relay", run(config))
}

async fn run(config: Config) -> anyhow::Result<()> {
    let store = PgStore::connect(&config.db_url, config.db_pool.max(3))
        .await
        .context("cannot connect to PostgreSQL")?;
    store.check_migrated().await.map_err(anyhow::Error::msg)?;
    let nats = async_nats::ConnectOptions::new()
        .name("talea-relay")
        .connect(&config.nats_url)
        .await
        .with_context(|| format!("cannot connect to NATS at {}", config.nats_url))?;
    let metrics = RelayMetrics::new();
    let relay = Relay::new(
        store,
        nats,
        RelayConfig {
            subject_prefix: config.subject_prefix.clone(),
            poll_ms: config.poll_ms,
            standby_retry_ms: config.standby_retry_ms,
            ..RelayConfig::default()
        },
        metrics.clone(),
    );
    // Fails fast behind a transaction-mode pooler, where LISTEN hears nothing.
    relay
        .check_listen()
        .await
        .map_err(anyhow::Error::msg)
        .context("LISTEN/NOTIFY check")?;

    let m = metrics.clone();
    config
        .metrics
        .serve("talea-relay", move || m.render())
        .await?;

    let (stop, stopped) = watch::channel(false);
    let health = metrics.clone();
    let app = Router::new()
        .route(
            "/livez",
            get(|| async { axum::Json(serde_json::json!({"status": "ok"})) }),
        )
        .route(
            "/health",
            get(move || {
                let role = if health.leader.get() == 1 {
                    "leader"
                } else {
                    "standby"
                };
                async move { axum::Json(serde_json::json!({"status": "ok", "role": role})) }
            }),
        );
    let listener = TcpListener::bind(config.bind)
        .await
        .with_context(|| format!("cannot listen on {}", config.bind))?;
    println!(
        "talea-relay on http://{} publishing to {}.<book>",
        listener.local_addr().context("listener address")?,
        config.subject_prefix
    );
    let mut server_stop = stopped.clone();
    let server = tokio::spawn(async move {
        let shutdown = async move {
            let _ = server_stop.changed().await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "health listener failed");
        }
    });
    let relay_task = tokio::spawn(async move { relay.run(stopped).await });
    service::shutdown_signal().await;
    tracing::info!("talea-relay stopping");
    stop.send_replace(true);
    // Leadership is released on the way out, so a standby takes over at once.
    let _ = tokio::time::timeout(Duration::from_secs(10), relay_task).await;
    let _ = server.await;
    Ok(())
}
