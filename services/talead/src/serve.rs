//! `talead serve`: wire the store, the ledger, authentication and the HTTP listeners.

use std::sync::Arc;

use anyhow::{Context, bail};
use talea_auth::Secret;
use talea_auth::{TokenSet, TokenSource};
use talea_http::{AppState, HttpConfig, RateLimit};
use talea_http::{MetricsObserver, service};
use talea_ledger::{LedgerConfig, LedgerService};
use talea_stream::{Hub, LedgerBackfill, NoticeSource};

use crate::ServeArgs;
use crate::store::{Schema, StoreUrl};

/// Checks every setting, opens the store, then serves until a signal.
pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let url = StoreUrl::parse(args.db_url.as_ref().map(Secret::expose))?;
    // Checked before the database, so a bad token setup is reported first.
    let tokens = token_source(&args, &url)?;
    let rate_limit = rate_limit(&args)?;
    let ledger_config = LedgerConfig {
        write_queue_depth: args.write_queue_depth,
        write_batch_max: args.write_batch_max,
        commit_books_max: args.commit_books_max,
        commits_in_flight: args.commits_in_flight,
        ..LedgerConfig::default()
    };
    ledger_config.check().map_err(anyhow::Error::msg)?;
    let stream_config = args.sse.stream_config().map_err(anyhow::Error::msg)?;
    let browser = args
        .browser
        .settings(args.stream_ticket_ttl_s)
        .map_err(anyhow::Error::msg)?;
    if browser.random_key {
        tracing::info!(
            "TALEA_STREAM_TICKET_KEY is unset: stream tickets are signed with a random key \
             and are accepted by this process only"
        );
    }
    // On by default only for the embedded default: `talead serve` with no URL.
    let console = args.console.enabled(
        args.db_url
            .as_ref()
            .is_none_or(|url| url.expose().trim().is_empty()),
    );
    let replica_wait_ms = replica_wait_ms(&args);
    let notary = args.keys.notary()?;
    tracing::info!(store = %url.describe(), "opening the store");
    let (store, primary) = match &args.replica_url {
        None => (
            crate::store::open(&url, args.db_pool, Schema::RequireMigrated).await?,
            None,
        ),
        Some(replica) => {
            let stores = crate::replica::open(&args, &url, replica.expose()).await?;
            (stores.replica, Some(stores.primary))
        }
    };

    let ledger = LedgerService::with_notary(
        store,
        ledger_config,
        talea_telemetry::Metrics::new(),
        notary,
    );
    if args.role.serves_writes() {
        // Holds past their `expires_at` end by themselves (exactly once,
        // however many instances run it); books are signed every
        // TALEA_CHECKPOINT_EVERY (the first checkpoint of a size is kept).
        ledger.spawn_expirer();
        ledger.spawn_checkpointer(args.checkpoint_every);
    }
    if let Some(primary) = &primary {
        talea_http::spawn_lag_sampler(
            Arc::clone(primary),
            Arc::clone(ledger.store()),
            ledger.metrics().clone(),
        );
    }
    if args.audit_every_s > 0 {
        ledger.spawn_auditor(std::time::Duration::from_secs(args.audit_every_s));
    }
    let auth = tokens.into_authenticator(ledger.metrics().auth.clone())?;
    tracing::info!(role = %args.role, rate_limit = ?rate_limit, "serving");
    let hub = Hub::new(
        Arc::new(NoticeSource::new(ledger.clone())),
        Arc::new(LedgerBackfill::new(ledger.clone())),
        Arc::new(MetricsObserver(ledger.metrics().stream.clone())),
        stream_config,
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
            replica_wait_ms,
        },
    )
    .with_stream(hub.clone())
    .with_console(console);
    let state = match primary {
        Some(primary) => state.with_primary(primary),
        None if args.role == talea_http::Role::Read && crate::replica::is_standby(&url).await => {
            tracing::warn!(
                "TALEA_DB_URL names a standby: reads with min_seq cannot tell a lag from a seq \
                 never written, so they wait for it; set TALEA_DB_URL to the primary and \
                 TALEA_REPLICA_URL to this standby to answer 409 min_seq_ahead at once"
            );
            state.with_unknown_primary()
        }
        None => state,
    };
    if console {
        tracing::info!("serving the read-only console at /console");
    }
    serve(&args, ledger, state, hub).await
}

/// The tokens to serve with: the configured ones, or on an embedded
/// store's first run a generated one.
fn token_source(args: &ServeArgs, url: &StoreUrl) -> anyhow::Result<TokenSource> {
    let tokens = args.auth.token_source()?;
    if !tokens.is_empty() {
        return Ok(tokens);
    }
    if !url.is_embedded() {
        bail!(
            "no API token configured: set TALEA_API_TOKEN or TALEA_TOKENS_FILE \
             (`talead init` writes a token to .env), or TALEA_SCOPE_URL"
        );
    }
    // The embedded default's first run: make a token once, say where.
    let token = first_run_token(&args.env_file)?;
    Ok(TokenSource::Local(
        TokenSet::load(Some(&token), None).context("loading tokens")?,
    ))
}

/// Starts the metrics listener, then serves the API until a signal.
async fn serve(
    args: &ServeArgs,
    ledger: LedgerService,
    state: AppState,
    hub: Hub,
) -> anyhow::Result<()> {
    let metered = ledger.clone();
    args.metrics
        .serve("talead", move || {
            metered.refresh_gauges();
            metered.metrics().render()
        })
        .await?;

    let listener = args.listen.listen().await?;
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
        args.listen.header_read_timeout(),
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

/// `TALEA_REPLICA_WAIT_MS`, kept below the request deadline: a wait as
/// long as `TALEA_REQUEST_TIMEOUT_MS` would be cut off by a 408 before its
/// 503 `replica_behind`, so it is shortened to four fifths of the deadline
/// (with a warning) rather than refusing a short deadline set alone.
fn replica_wait_ms(args: &ServeArgs) -> u64 {
    if args.replica_wait_ms < args.request_timeout_ms {
        return args.replica_wait_ms;
    }
    let wait = (args.request_timeout_ms.saturating_mul(4) / 5).max(1);
    tracing::warn!(
        replica_wait_ms = args.replica_wait_ms,
        request_timeout_ms = args.request_timeout_ms,
        effective_ms = wait,
        "TALEA_REPLICA_WAIT_MS is not below TALEA_REQUEST_TIMEOUT_MS: reads wait for their \
         min_seq {wait} ms at most"
    );
    wait
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
