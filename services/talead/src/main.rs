//! `talead`: the ledger daemon. `init` prepares a database, `serve` runs the API.

/// mimalloc rather than glibc malloc: a post, a delivery and a relayed
/// event each make many small, short-lived allocations (see
/// loadtest/README.md, "Where a post's CPU goes").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod audit;
mod bootstrap;
mod envfile;
mod init;
mod keys;
mod replica;
mod seed;
mod serve;
mod store;

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use talea_auth::Secret;
use talea_http::service;
use talea_http::settings::{AuthArgs, BrowserArgs, ConsoleArgs, ListenArgs, MetricsArgs, SseArgs};
use talea_telemetry::LogArgs;

/// The talea ledger daemon.
#[derive(Debug, Parser)]
#[command(name = "talead", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    // Logging, for every command: the bootstrap job logs JSON like the daemons.
    #[command(flatten)]
    log: LogArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Migrate the database, generate an API token, write `.env`, apply the seed file.
    Init(InitArgs),
    /// Serve the HTTP API.
    Serve(Box<ServeArgs>),
    /// Create the role and database, migrate, and seed an empty database (the deployment's job).
    Bootstrap(bootstrap::BootstrapArgs),
    /// Wait until the schema is at this binary's version (an init container).
    WaitBootstrap(bootstrap::WaitArgs),
    /// Check books' logs against their hash chains and projections (exit 4 on a finding).
    Audit(audit::AuditArgs),
}

/// Options of `talead init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Store URL: `postgres://…`, `sqlite://PATH` or `log://DIR`; unset, the
    /// embedded default (`sqlite://talea-data/talea.db`).
    #[arg(long, env = "TALEA_DB_URL", hide_env_values = true)]
    pub db_url: Option<Secret>,
    /// Generate a new API token even if `.env` already has one.
    #[arg(long)]
    pub force: bool,
    /// Seed file with assets and accounts to create (skipped when absent).
    #[arg(long, default_value = "talea.seed.toml")]
    pub seed: PathBuf,
    /// Where to write the environment file.
    #[arg(long, default_value = ".env")]
    pub env_file: PathBuf,
    /// Address `serve` will listen on, written to `.env`.
    #[arg(long, env = "TALEA_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    #[command(flatten)]
    pub keys: keys::KeyArgs,
}

/// Options of `talead serve`; each has its `TALEA_*` variable.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    pub listen: ListenArgs<8080>,
    /// Store URL: `postgres://…`, `sqlite://PATH` or `log://DIR`; unset, the
    /// embedded default (`sqlite://talea-data/talea.db`).
    #[arg(long, env = "TALEA_DB_URL", hide_env_values = true)]
    pub db_url: Option<Secret>,
    /// Most database connections.
    #[arg(long, env = "TALEA_DB_POOL", default_value_t = 10)]
    pub db_pool: u32,
    /// A streaming standby of `TALEA_DB_URL` to serve reads from (`--role
    /// read` only): reads go to it, with `TALEA_DB_POOL` connections; the
    /// primary is asked only for a book's head (`docs/scaling.md`).
    #[arg(long, env = "TALEA_REPLICA_URL", hide_env_values = true)]
    pub replica_url: Option<Secret>,
    /// How long a read waits for its `min_seq` before 503 `replica_behind`,
    /// in milliseconds (1..=60000; shortened to 4/5 of
    /// `TALEA_REQUEST_TIMEOUT_MS` when not below it).
    #[arg(long, env = "TALEA_REPLICA_WAIT_MS", default_value_t = talea_http::REPLICA_WAIT_MS_DEFAULT,
          value_parser = clap::value_parser!(u64).range(1..=talea_http::REPLICA_WAIT_MS_MAX))]
    pub replica_wait_ms: u64,
    /// Requests in flight at once before 503 `overloaded`.
    #[arg(long, env = "TALEA_MAX_INFLIGHT", default_value_t = 256)]
    pub max_inflight: usize,
    /// Drafts queued per book before 429 `overloaded`.
    #[arg(long, env = "TALEA_WRITE_QUEUE_DEPTH", default_value_t = 256)]
    pub write_queue_depth: usize,
    /// Most drafts per storage transaction.
    #[arg(long, env = "TALEA_WRITE_BATCH_MAX", default_value_t = 64)]
    pub write_batch_max: usize,
    /// Most books' batches sharing one storage transaction (1: each book alone).
    #[arg(long, env = "TALEA_COMMIT_BOOKS_MAX", default_value_t = talea_ledger::COMMIT_BOOKS_MAX_DEFAULT)]
    pub commit_books_max: usize,
    /// Most storage transactions of combined batches running at once.
    #[arg(long, env = "TALEA_COMMITS_IN_FLIGHT", default_value_t = talea_ledger::COMMITS_IN_FLIGHT_DEFAULT)]
    pub commits_in_flight: usize,
    /// Deadline per request before 408 `timeout`, in milliseconds.
    #[arg(long, env = "TALEA_REQUEST_TIMEOUT_MS", default_value_t = 10_000)]
    pub request_timeout_ms: u64,
    #[command(flatten)]
    pub metrics: MetricsArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    /// Per-token requests per second before 429 `rate_limited` (no limit when unset).
    #[arg(long, env = "TALEA_RATE_LIMIT_PER_S")]
    pub rate_limit_per_s: Option<NonZeroU32>,
    /// Per-token burst above the rate (default: the rate itself).
    #[arg(long, env = "TALEA_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<NonZeroU32>,
    /// What this instance serves: `write`, `read` (GET routes only) or `all`.
    #[arg(long, env = "TALEA_ROLE", default_value = "all")]
    pub role: talea_http::Role,
    #[command(flatten)]
    pub sse: SseArgs,
    /// Where `serve` writes a generated API token (embedded stores only).
    #[arg(long, default_value = ".env")]
    pub env_file: PathBuf,
    #[command(flatten)]
    pub browser: BrowserArgs,
    #[command(flatten)]
    pub console: ConsoleArgs,
    /// Life of a stream ticket, in seconds (1..=60).
    #[arg(long, env = "TALEA_STREAM_TICKET_TTL_S", default_value_t = talea_auth::TICKET_TTL_S_DEFAULT)]
    pub stream_ticket_ttl_s: u64,
    #[command(flatten)]
    pub keys: keys::KeyArgs,
    /// Sign a checkpoint of each book every N events (`1000`) or every N
    /// seconds (`10s`), whichever is written: 1 to 10^9 events, 1s to 86400s.
    #[arg(long, env = "TALEA_CHECKPOINT_EVERY", default_value = talea_ledger::CHECKPOINT_EVERY_DEFAULT)]
    pub checkpoint_every: talea_ledger::CheckpointEvery,
    /// Audit every book (chain and projections) every N seconds in the
    /// background, logging and counting mismatches; 0 turns it off.
    #[arg(long, env = "TALEA_AUDIT_EVERY_S", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(0..=604_800))]
    pub audit_every_s: u64,
}

fn main() -> ExitCode {
    // `.env` in the working directory fills in variables; real ones win.
    if let Err(code) = service::load_dotenv("talead") {
        return code;
    }
    let cli = Cli::parse();
    cli.log.init();
    let mismatch = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let found = mismatch.clone();
    let code = service::run("talead", async {
        match cli.command {
            Command::Init(args) => init::run(args).await,
            Command::Serve(args) => serve::run(*args).await,
            Command::Bootstrap(args) => bootstrap::run(args).await,
            Command::WaitBootstrap(args) => bootstrap::wait(args).await,
            Command::Audit(args) => audit::run(args, found).await,
        }
    });
    match mismatch.load(std::sync::atomic::Ordering::Relaxed) {
        true if code == ExitCode::SUCCESS => ExitCode::from(audit::EXIT_MISMATCH),
        _ => code,
    }
}
