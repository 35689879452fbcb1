//! What every talea service's `main` shares: the runtime, the exit code, signals, the metrics listener.

use std::fmt::Display;
use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use tokio::net::TcpListener;

/// Serves `app` on `listener` until `shutdown` completes, then lets open
/// connections finish (streams end on their own at shutdown) and returns.
///
/// This replaces `axum::serve` for one reason: a client must send its
/// headers within `header_read_timeout` (`TALEA_HEADER_READ_TIMEOUT_MS`,
/// see [`crate::settings::ListenArgs`]) or lose its connection (a
/// slow-loris client otherwise holds a connection for ever: hyper's header
/// timeout needs a timer, which `axum::serve` does not give it). Every
/// request carries [`ConnectInfo`](axum::extract::ConnectInfo) with the
/// peer's address, as `into_make_service_with_connect_info` would.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    use tower::ServiceExt;

    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: pause, go on.
                    tracing::warn!(%error, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(ACCEPT_ERROR_PAUSE_MS)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let service = app.clone().map_request(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                request.map(axum::body::Body::new)
            },
        );
        let connection = http.serve_connection(
            TokioIo::new(stream),
            hyper_util::service::TowerToHyperService::new(service),
        );
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            // A client that goes away or is too slow ends its connection:
            // nothing to report.
            let _ = connection.await;
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// The pause after a failed `accept` before the next.
const ACCEPT_ERROR_PAUSE_MS: u64 = 50;

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
