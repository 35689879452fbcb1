//! What every talea service's `main` shares: the runtime, the exit code, signals, the metrics listener.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::routing::get;
use talea_auth::{Secret, Tickets};
use tokio::net::TcpListener;

/// Loads `.env` from the working directory (real variables win). A missing
/// file is fine; an unreadable one is reported and ends the service.
pub fn load_dotenv(service: &str) -> Result<(), ExitCode> {
    match dotenvy::dotenv() {
        Ok(_) => Ok(()),
        Err(e) if e.not_found() => Ok(()),
        Err(e) => {
            eprintln!("{service}: cannot read .env: {e}");
            Err(ExitCode::FAILURE)
        }
    }
}

/// Runs `service` on a multi-threaded runtime; an error is printed with
/// its causes (`{:#}`) and exits 1.
pub fn run<E: Display>(name: &str, service: impl Future<Output = Result<(), E>>) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{name}: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(service) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
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

/// Serves `GET /metrics` on `addr` in the background, answering `render()`;
/// returns the bound address.
pub async fn serve_metrics<R>(
    name: &str,
    addr: SocketAddr,
    render: R,
) -> std::io::Result<SocketAddr>
where
    R: Fn() -> String + Clone + Send + Sync + 'static,
{
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let render = render.clone();
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    render(),
                )
            }
        }),
    );
    tracing::info!(%addr, "metrics listening");
    println!("{name} metrics on http://{addr}/metrics");
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics listener failed");
        }
    });
    Ok(addr)
}

/// What a service needs to serve browsers: stream tickets and CORS origins.
#[derive(Debug)]
pub struct BrowserSettings {
    /// Issues and verifies stream tickets.
    pub tickets: Tickets,
    /// Whether the ticket key is random (unset `TALEA_STREAM_TICKET_KEY`):
    /// tickets then verify in this process only.
    pub random_key: bool,
    /// `TALEA_CORS_ORIGINS`, parsed.
    pub cors_origins: Vec<HeaderValue>,
}

/// Checks `TALEA_STREAM_TICKET_KEY`, `TALEA_STREAM_TICKET_TTL_S` and
/// `TALEA_CORS_ORIGINS` once, at startup: a short key, a lifetime outside
/// 1..=60 s or a malformed origin stops the service with a clear error.
pub fn browser_settings(
    key: Option<&Secret>,
    ticket_ttl_s: u64,
    cors_origins: &str,
) -> Result<BrowserSettings, String> {
    let (tickets, random_key) = Tickets::configure(key, ticket_ttl_s).map_err(|e| e.to_string())?;
    let cors_origins =
        crate::parse_cors_origins(cors_origins).map_err(|e| format!("TALEA_CORS_ORIGINS: {e}"))?;
    Ok(BrowserSettings {
        tickets,
        random_key,
        cors_origins,
    })
}
