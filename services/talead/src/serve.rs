//! `talead serve`: wire the store, the ledger, authentication and the HTTP listeners.

use std::sync::Arc;

use anyhow::{Context, bail};
use talea_auth::TokenSet;
use talea_http::{AppState, HttpConfig};
use talea_ledger::{LedgerConfig, LedgerService};
use talea_store_pg::PgStore;
use tokio::net::TcpListener;

use crate::ServeArgs;

pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    if args.scope_url.is_some() {
        bail!("TALEA_SCOPE_URL is set, but this build decides tokens in process only; unset it");
    }
    let Some(db_url) = &args.db_url else {
        bail!(
            "TALEA_DB_URL is not set: run `talead init --db-url postgres://…` first, \
             or set TALEA_DB_URL"
        );
    };
    let tokens = TokenSet::load(args.api_token.as_ref(), args.tokens_file.as_deref())
        .context("loading tokens")?;
    if tokens.is_empty() {
        bail!(
            "no API token configured: set TALEA_API_TOKEN or TALEA_TOKENS_FILE \
             (`talead init` writes a token to .env)"
        );
    }
    let store = PgStore::connect(db_url.expose(), args.db_pool)
        .await
        .context("cannot connect to the database")?;
    store.check_migrated().await.map_err(anyhow::Error::msg)?;

    let metrics = talea_telemetry::Metrics::new();
    let ledger = LedgerService::new(
        Arc::new(store),
        LedgerConfig {
            write_queue_depth: args.write_queue_depth,
            write_batch_max: args.write_batch_max,
            ..LedgerConfig::default()
        },
        metrics,
    );
    let state = AppState::new(
        ledger.clone(),
        Arc::new(tokens),
        &HttpConfig {
            max_inflight: args.max_inflight,
            request_timeout_ms: args.request_timeout_ms,
        },
    );

    if let Some(addr) = args.metrics_bind {
        let listener = TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} for metrics"))?;
        let app = talea_http::metrics_router(ledger.clone());
        let addr = listener.local_addr().context("metrics listener address")?;
        tracing::info!(%addr, "metrics listening");
        println!("talead metrics on http://{addr}/metrics");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app).await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        });
    }

    let listener = TcpListener::bind(args.bind)
        .await
        .with_context(|| format!("cannot listen on {}", args.bind))?;
    let addr = listener.local_addr().context("listener address")?;
    tracing::info!(%addr, backend = ledger.backend().as_str(), "talead listening");
    println!(
        "talead listening on http://{addr} (backend {})",
        ledger.backend().as_str()
    );
    axum::serve(listener, talea_http::router(state))
        .with_graceful_shutdown(shutdown_signal())
        .await
        .context("server failed")?;
    tracing::info!("talead stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}
