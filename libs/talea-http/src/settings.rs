//! The settings talea services share, each declared once as a `clap::Args` group that every service flattens.
//!
//! A service's parser reads the `TALEA_*` variables through the `env`
//! attributes here, so a variable has one name, one default and one help
//! text everywhere, and no library calls `std::env::var`. Each group also
//! turns its values into the checked types the service wires in.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use axum::http::HeaderValue;
use clap::Args;
use talea_auth::{Secret, SourceError, Tickets, TokenSource};
use talea_stream::StreamConfig;
use tokio::net::TcpListener;

/// Default of `TALEA_HEADER_READ_TIMEOUT_MS`: how long a client may take to
/// send a request's headers before its connection is closed.
pub const HEADER_READ_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// Largest `TALEA_HEADER_READ_TIMEOUT_MS` accepted (10 minutes).
pub const HEADER_READ_TIMEOUT_MS_MAX: u64 = 600_000;

/// Where a service serves HTTP and how long a client may take over its
/// headers. `PORT` is the service's default port on 127.0.0.1, so each
/// service keeps its own default (and `--help` shows it).
#[derive(Debug, Clone, Args)]
pub struct ListenArgs<const PORT: u16> {
    /// Address to listen on.
    #[arg(long, env = "TALEA_BIND", default_value_t = SocketAddr::from(([127, 0, 0, 1], PORT)))]
    pub bind: SocketAddr,
    /// A client must send a request's headers within this many milliseconds
    /// (1..=600000), or its connection is closed (slow-loris).
    #[arg(
        long,
        env = "TALEA_HEADER_READ_TIMEOUT_MS",
        default_value_t = HEADER_READ_TIMEOUT_MS_DEFAULT,
        value_parser = parse_header_read_timeout_ms,
    )]
    pub header_read_timeout_ms: u64,
}

impl<const PORT: u16> ListenArgs<PORT> {
    /// The header-read deadline [`crate::service::serve`] takes.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }

    /// Binds the listener; the error names the address.
    pub async fn listen(&self) -> std::io::Result<TcpListener> {
        TcpListener::bind(self.bind).await.map_err(|e| {
            std::io::Error::new(e.kind(), format!("cannot listen on {}: {e}", self.bind))
        })
    }
}

/// `TALEA_HEADER_READ_TIMEOUT_MS`, checked: 1..=[`HEADER_READ_TIMEOUT_MS_MAX`].
/// The message names the variable, which clap's own range error would not.
fn parse_header_read_timeout_ms(text: &str) -> Result<u64, String> {
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|ms| (1..=HEADER_READ_TIMEOUT_MS_MAX).contains(ms))
        .ok_or_else(|| {
            format!(
                "TALEA_HEADER_READ_TIMEOUT_MS must be a whole number of ms in \
                 1..={HEADER_READ_TIMEOUT_MS_MAX}"
            )
        })
}

/// The Prometheus listener.
#[derive(Debug, Clone, Args)]
pub struct MetricsArgs {
    /// Address of the Prometheus metrics listener (none when unset).
    #[arg(long, env = "TALEA_METRICS_BIND")]
    pub metrics_bind: Option<SocketAddr>,
}

impl MetricsArgs {
    /// Serves `GET /metrics` answering `render()` in the background when an
    /// address is set (see [`crate::service::serve_metrics`]); the error
    /// names the address.
    pub async fn serve<R>(&self, name: &str, render: R) -> std::io::Result<Option<SocketAddr>>
    where
        R: Fn() -> String + Clone + Send + Sync + 'static,
    {
        let Some(addr) = self.metrics_bind else {
            return Ok(None);
        };
        crate::service::serve_metrics(name, addr, render)
            .await
            .map(Some)
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on {addr} for metrics: {e}"),
                )
            })
    }
}

/// The tokens a service holds itself: talea-scope's, or talead's and the
/// fan-out's without `TALEA_SCOPE_URL`.
#[derive(Debug, Clone, Args)]
pub struct TokenArgs {
    /// An all-books read-write API token, beside the tokens file.
    #[arg(long, env = "TALEA_API_TOKEN", hide_env_values = true)]
    pub api_token: Option<Secret>,
    /// TOML file of scoped tokens (see docs/auth.md); read once, at start-up.
    #[arg(long, env = "TALEA_TOKENS_FILE")]
    pub tokens_file: Option<PathBuf>,
}

/// How a service that answers API requests authenticates them: its own
/// tokens, or talea-scope.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    #[command(flatten)]
    pub tokens: TokenArgs,
    /// talea-scope's base URL: when set, talea-scope decides every token
    /// and TALEA_API_TOKEN/TALEA_TOKENS_FILE are ignored.
    #[arg(long, env = "TALEA_SCOPE_URL")]
    pub scope_url: Option<String>,
    /// The bearer token presented to talea-scope.
    #[arg(long, env = "TALEA_SCOPE_SERVICE_TOKEN", hide_env_values = true)]
    pub scope_service_token: Option<Secret>,
}

impl AuthArgs {
    /// The configured token source, checked (see [`TokenSource::configure`]).
    pub fn token_source(&self) -> Result<TokenSource, SourceError> {
        TokenSource::configure(
            self.scope_url.as_deref(),
            self.scope_service_token.as_ref(),
            self.tokens.api_token.as_ref(),
            self.tokens.tokens_file.as_deref(),
        )
    }
}

/// Limits of the SSE streams a service serves.
#[derive(Debug, Clone, Args)]
pub struct SseArgs {
    /// Seconds between heartbeat comments on SSE streams.
    #[arg(long, env = "TALEA_SSE_HEARTBEAT_S", default_value_t = talea_stream::HEARTBEAT_S_DEFAULT)]
    pub sse_heartbeat_s: u64,
    /// Events buffered per SSE subscriber before it is cut off as a slow consumer.
    #[arg(long, env = "TALEA_SSE_BUFFER", default_value_t = talea_stream::BUFFER_EVENTS_DEFAULT)]
    pub sse_buffer: usize,
    /// Open SSE streams before new ones get 503.
    #[arg(long, env = "TALEA_SSE_MAX_CONNECTIONS", default_value_t = talea_stream::MAX_CONNECTIONS_DEFAULT)]
    pub sse_max_connections: usize,
    /// Open SSE streams one token (by name, across every book; a ticket's
    /// stream counts for its token) may hold before new ones get 429:
    /// 1..=TALEA_SSE_MAX_CONNECTIONS [default: 1000, or
    /// TALEA_SSE_MAX_CONNECTIONS where lower].
    #[arg(long, env = "TALEA_SSE_MAX_PER_TOKEN")]
    pub sse_max_per_token: Option<usize>,
}

impl SseArgs {
    /// The stream limits, with the per-token cap checked against the
    /// process's (see [`talea_stream::max_per_token`]).
    pub fn stream_config(&self) -> Result<StreamConfig, String> {
        Ok(StreamConfig {
            heartbeat_s: self.sse_heartbeat_s,
            buffer_events_max: self.sse_buffer,
            max_connections: self.sse_max_connections,
            max_per_token: talea_stream::max_per_token(
                self.sse_max_per_token,
                self.sse_max_connections,
            )?,
        })
    }
}

/// What browsers need: stream tickets and the origins allowed to call.
#[derive(Debug, Clone, Args)]
pub struct BrowserArgs {
    /// Key signing and verifying stream tickets (at least 32 bytes), the
    /// same on every talead and fan-out replica. Unset, talead signs with a
    /// random key valid in its own process only, and the fan-out refuses
    /// tickets.
    #[arg(long, env = "TALEA_STREAM_TICKET_KEY", hide_env_values = true)]
    pub stream_ticket_key: Option<Secret>,
    /// Comma-separated browser origins allowed on the ticket and stream
    /// routes (`https://app.example.com`); empty, no CORS headers.
    #[arg(long, env = "TALEA_CORS_ORIGINS", default_value = "")]
    pub cors_origins: String,
}

/// [`BrowserArgs`], checked.
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

impl BrowserArgs {
    /// Checks the ticket key, `ticket_ttl_s` and the origins once, at
    /// startup: a short key, a lifetime outside 1..=60 s or a malformed
    /// origin stops the service with a clear error.
    pub fn settings(&self, ticket_ttl_s: u64) -> Result<BrowserSettings, String> {
        let (tickets, random_key) =
            Tickets::configure(self.stream_ticket_key.as_ref(), ticket_ttl_s)
                .map_err(|e| e.to_string())?;
        let cors_origins = crate::parse_cors_origins(&self.cors_origins)
            .map_err(|e| format!("TALEA_CORS_ORIGINS: {e}"))?;
        Ok(BrowserSettings {
            tickets,
            random_key,
            cors_origins,
        })
    }
}

/// `on` or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    /// Turned on.
    On,
    /// Turned off.
    Off,
}

/// The read-only operator console (`docs/console.md`).
#[derive(Debug, Clone, Args)]
pub struct ConsoleArgs {
    /// Serve the read-only operator console at /console: `on` or `off`
    /// [default: on for the embedded default store (no TALEA_DB_URL), off
    /// otherwise].
    #[arg(long, env = "TALEA_CONSOLE", value_enum)]
    pub console: Option<Switch>,
}

impl ConsoleArgs {
    /// Whether to serve the console; unset, only for the embedded default
    /// (`embedded_default`: `talead serve` with no store URL), the one-machine
    /// trial where an operator has nothing else to look with.
    pub fn enabled(&self, embedded_default: bool) -> bool {
        match self.console {
            Some(switch) => switch == Switch::On,
            None => embedded_default,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        listen: ListenArgs<8080>,
        #[command(flatten)]
        console: ConsoleArgs,
    }

    #[test]
    fn the_console_is_on_by_default_only_for_the_embedded_default() {
        let cli = Cli::try_parse_from(["t"]).expect("defaults");
        assert!(cli.console.enabled(true));
        assert!(!cli.console.enabled(false));
        let cli = Cli::try_parse_from(["t", "--console", "on"]).expect("on");
        assert!(cli.console.enabled(false));
        let cli = Cli::try_parse_from(["t", "--console", "off"]).expect("off");
        assert!(!cli.console.enabled(true));
        assert!(Cli::try_parse_from(["t", "--console", "yes"]).is_err());
    }

    #[test]
    fn the_header_read_timeout_is_checked_and_the_port_default_is_the_services() {
        let cli = Cli::try_parse_from(["t"]).expect("defaults");
        assert_eq!(cli.listen.bind, SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(cli.listen.header_read_timeout(), Duration::from_secs(10));
        for bad in ["0", "600001", "soon"] {
            let error = Cli::try_parse_from(["t", "--header-read-timeout-ms", bad])
                .expect_err(bad)
                .to_string();
            assert!(error.contains("TALEA_HEADER_READ_TIMEOUT_MS"), "{error}");
        }
    }
}
