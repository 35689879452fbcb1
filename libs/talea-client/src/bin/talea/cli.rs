//! The `talea` command line: every command, flag and environment variable.

use std::path::PathBuf;

use clap::{ArgGroup, Args, Parser, Subcommand};

use crate::import;

/// Command-line client for the talea ledger.
///
/// Exit codes: 0 success (a deduplicated replay included), 1 usage or input
/// error, 2 refused by the server (its error code and message are printed),
/// 3 the server could not be reached or stayed busy until the retries ran out,
/// 4 verification failed (`talea verify`: a chain break, a bad signature, a
/// proof that does not verify).
#[derive(Debug, Parser)]
#[command(name = "talea", version, about, long_about)]
pub(crate) struct Cli {
    /// Base URL of a talead instance.
    #[arg(
        long,
        global = true,
        env = "TALEA_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// Bearer token (falls back to TALEA_API_TOKEN, which `talead init` writes to .env).
    #[arg(long, global = true, env = "TALEA_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the server's JSON response (or `verify`'s report) instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// Give up retrying after this many milliseconds in all.
    #[arg(
        long,
        global = true,
        env = "TALEA_RETRY_DEADLINE_MS",
        default_value_t = 60_000,
        value_name = "MS"
    )]
    pub retry_deadline_ms: u64,
    /// Most attempts per request, the first included.
    #[arg(
        long,
        global = true,
        env = "TALEA_MAX_ATTEMPTS",
        default_value_t = 8,
        value_parser = clap::value_parser!(u32).range(1..),
        value_name = "N"
    )]
    pub max_attempts: u32,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Post a transaction (retry-safe: the same --idem never posts twice).
    Post(PostArgs),
    /// Place a hold: a pending transaction that reserves its postings until
    /// settled, voided or expired (same legs and flags as `post`).
    Hold(HoldArgs),
    /// Settle a hold: post all of it, or the legs given (at most what it holds).
    Settle(SettleArgs),
    /// Void a hold: release it, posting nothing.
    Void(VoidArgs),
    /// Post the transactions of an NDJSON file in bulk, one post body per
    /// line; rerunning the same file resumes (committed lines come back
    /// deduplicated).
    Import(ImportArgs),
    /// An account's balances (posted, pending, available), now or as of a commit time.
    Balance(BalanceArgs),
    /// Balances of a book's accounts under a name prefix: totals over all of
    /// them and one page of rows (posted, pending, available).
    Balances(BalancesArgs),
    /// An account's posted balance in one asset over time: every change
    /// (paged) or, with --points, equal time buckets (first, last, min, max).
    History(HistoryArgs),
    /// Debits, credits and balances of every account in a book.
    TrialBalance(TrialBalanceArgs),
    /// One transaction by id.
    Tx(TxArgs),
    /// Search a book's transactions by account, time range, status and a
    /// metadata key (every filter given must hold); a page in seq order.
    Txs(TxsArgs),
    /// A book's pending holds, soonest expiry first.
    Holds(HoldsArgs),
    /// A page of a book's event log.
    Log(LogArgs),
    /// List assets, or register one with `assets add`.
    Assets(AssetsArgs),
    /// List a book's accounts, or open one with `accounts open`.
    Accounts(AccountsArgs),
    /// Books with at least one event.
    Books,
    /// Follow a book's live stream, resuming by itself after any break.
    Tail(TailArgs),
    /// Proof of liabilities: take a signed snapshot of a prefix's balances
    /// in one asset, or fetch one account's proof (check it with
    /// `talea verify liability`).
    #[command(subcommand)]
    Liabilities(LiabilitiesCommand),
    /// Check files offline: a book's hash chain, a signed checkpoint, an
    /// inclusion, consistency or liability proof (exit 4 when a check fails).
    #[command(subcommand)]
    Verify(VerifyCommand),
}

/// `talea verify`: each reads JSON files (`-`: stdin, for one of them).
#[derive(Debug, Subcommand)]
pub(crate) enum VerifyCommand {
    /// An events export's hash chain from seq 1; with --checkpoint, also the
    /// checkpoint's signature and its Merkle root over the export.
    Chain(ChainArgs),
    /// A checkpoint's signature against the key list.
    Checkpoint(CheckpointArgs),
    /// An inclusion proof against a checkpoint: the event is in its tree.
    Inclusion(InclusionArgs),
    /// A consistency proof between two checkpoints: the older tree is a
    /// prefix of the newer one.
    Consistency(ConsistencyArgs),
    /// One account's liability proof, against the published root and total
    /// when given.
    Liability(LiabilityArgs),
    /// A book on a server: its latest checkpoint's signature, the chain of
    /// every event it covers and their root; with --seq an inclusion proof,
    /// with --since a consistency proof from a checkpoint saved before.
    Server(ServerArgs),
}

/// `talea verify server`.
#[derive(Debug, Args)]
pub(crate) struct ServerArgs {
    /// The book.
    #[arg(long)]
    pub book: String,
    /// The key list to trust (saved from `GET /v1/keys`); without it, the
    /// server's own list is used, which proves nothing against a server
    /// that swapped its key.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
    /// Also prove that event SEQ is in the checkpoint's tree.
    #[arg(long, value_name = "SEQ")]
    pub seq: Option<u64>,
    /// A checkpoint saved before: prove the server's history still extends it.
    #[arg(long, value_name = "FILE")]
    pub since: Option<PathBuf>,
    /// Write the verified checkpoint here (to pass as --since next time).
    #[arg(long, value_name = "FILE")]
    pub save: Option<PathBuf>,
}

/// `talea verify chain`.
#[derive(Debug, Args)]
pub(crate) struct ChainArgs {
    /// The book the export is of.
    #[arg(long)]
    pub book: String,
    /// The events export: a JSON array, an events page or NDJSON.
    #[arg(value_name = "FILE")]
    pub events: PathBuf,
    /// A checkpoint (`GET /v1/books/{book}/checkpoint`) whose signature and
    /// root the export is checked against.
    #[arg(long, value_name = "FILE", requires = "keys")]
    pub checkpoint: Option<PathBuf>,
    /// The key list (`GET /v1/keys`) or one key.
    #[arg(long, value_name = "FILE", requires = "checkpoint")]
    pub keys: Option<PathBuf>,
    /// Resume after this seq, already verified: the export starts at the
    /// next one (with --after-hash).
    #[arg(
        long,
        value_name = "SEQ",
        requires = "after_hash",
        conflicts_with = "checkpoint"
    )]
    pub after_seq: Option<u64>,
    /// The chain hash of the event at --after-seq, as verified before.
    #[arg(long, value_name = "HEX", requires = "after_seq")]
    pub after_hash: Option<String>,
}

/// `talea verify checkpoint`.
#[derive(Debug, Args)]
pub(crate) struct CheckpointArgs {
    /// The checkpoint.
    #[arg(value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// The key list (`GET /v1/keys`) or one key.
    #[arg(long, value_name = "FILE")]
    pub keys: PathBuf,
}

/// `talea verify inclusion`.
#[derive(Debug, Args)]
pub(crate) struct InclusionArgs {
    /// The inclusion proof (`GET /v1/books/{book}/proofs/inclusion`).
    #[arg(value_name = "FILE")]
    pub proof: PathBuf,
    /// The checkpoint of the proof's tree size.
    #[arg(long, value_name = "FILE")]
    pub checkpoint: PathBuf,
    /// The key list, to check the checkpoint's signature too.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
}

/// `talea verify consistency`.
#[derive(Debug, Args)]
pub(crate) struct ConsistencyArgs {
    /// The consistency proof (`GET /v1/books/{book}/proofs/consistency`).
    #[arg(value_name = "FILE")]
    pub proof: PathBuf,
    /// The older checkpoint (tree size `from`).
    #[arg(long, value_name = "FILE")]
    pub from: PathBuf,
    /// The newer checkpoint (tree size `to`).
    #[arg(long, value_name = "FILE")]
    pub to: PathBuf,
    /// The key list, to check both checkpoints' signatures too.
    #[arg(long, value_name = "FILE")]
    pub keys: Option<PathBuf>,
}

/// `talea verify liability`.
#[derive(Debug, Args)]
pub(crate) struct LiabilityArgs {
    /// The account's liability proof.
    #[arg(value_name = "FILE")]
    pub proof: PathBuf,
    /// The snapshot's published root hash (64 lowercase hex digits).
    #[arg(long, value_name = "HEX", requires = "total")]
    pub root: Option<String>,
    /// The snapshot's published total, in minor units.
    #[arg(long, value_name = "N", requires = "root")]
    pub total: Option<String>,
}

/// `talea tail`.
#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// The book.
    #[arg(long)]
    pub book: String,
    /// Start after this seq (0: the whole log); without it, from now.
    #[arg(long, value_name = "N")]
    pub after_seq: Option<u64>,
    /// Exit 0 after this many events (for scripts); without it, follow forever.
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
    /// Check each event's chain hash as it arrives, across resumes; stop
    /// (exit 4) at the first break. The chain starts at genesis for
    /// --after-seq 0, at --after-hash when given, else at the hash the
    /// server serves for the event before the first one received.
    #[arg(long)]
    pub verify: bool,
    /// The chain hash of event --after-seq, verified before (with --verify).
    #[arg(long, value_name = "HEX", requires_all = ["after_seq", "verify"])]
    pub after_hash: Option<String>,
}

/// `talea post`.
#[derive(Debug, Args)]
#[command(group(
    ArgGroup::new("legs").required(true).multiple(true).args(["debits", "credits", "file"])
))]
pub(crate) struct PostArgs {
    /// The book to post to.
    #[arg(long)]
    pub book: String,
    /// Idempotency key: required and never generated, because a generated key
    /// would make every retry a new transaction.
    #[arg(long, value_name = "KEY")]
    pub idem: String,
    /// A debit leg; the account may contain colons (split from the right).
    #[arg(long = "debit", value_name = "ACCOUNT:ASSET:AMOUNT", value_parser = parse_leg)]
    pub debits: Vec<Leg>,
    /// A credit leg.
    #[arg(long = "credit", value_name = "ACCOUNT:ASSET:AMOUNT", value_parser = parse_leg)]
    pub credits: Vec<Leg>,
    /// A JSON request body from a file, or `-` for stdin. Its
    /// idempotency_key, if present, must equal --idem.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["debits", "credits", "memo", "occurred_at", "metadata"])]
    pub file: Option<PathBuf>,
    /// Free text kept with the transaction (at most 1 KiB).
    #[arg(long)]
    pub memo: Option<String>,
    /// Business time, RFC 3339 (for example 2026-11-22T09:59:58Z).
    #[arg(long, value_name = "TIME")]
    pub occurred_at: Option<String>,
    /// A JSON object kept with the transaction.
    #[arg(long, value_name = "JSON")]
    pub metadata: Option<String>,
}

/// `talea import`.
#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The book to post to.
    #[arg(long)]
    pub book: String,
    /// The NDJSON file: one `POST …/transactions` body per line, each with
    /// its own idempotency_key (`-`: stdin).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Transactions per request (1..=1000, the server's bulk limit).
    #[arg(long, value_name = "N", default_value_t = import::BATCH_DEFAULT, value_parser = parse_batch)]
    pub batch: usize,
    /// Report refused lines and go on with the rest (without it, nothing
    /// past the first refused line is sent).
    #[arg(long)]
    pub keep_going: bool,
    /// Check every line (JSON, shape, keys) and send nothing; needs no server.
    #[arg(long)]
    pub dry_run: bool,
    /// Progress on stderr: a bar on a terminal and plain lines otherwise
    /// (auto), plain lines always, or none.
    #[arg(long, value_enum, default_value_t = ProgressMode::Auto)]
    pub progress: ProgressMode,
}

/// `talea import --progress`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum ProgressMode {
    /// A bar with rate and ETA when stderr is a terminal, plain lines otherwise.
    Auto,
    /// A plain line after the first request, then every few seconds.
    Plain,
    /// Nothing but the summary.
    None,
}

/// `--batch`: a count the server's bulk route takes (1..=`BATCH_ITEMS_MAX`).
fn parse_batch(text: &str) -> Result<usize, String> {
    let max = talea_core::limits::BATCH_ITEMS_MAX;
    match text.parse::<usize>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(format!(
            "expected 1 to {max} transactions per request (the server's bulk limit), got {text:?}"
        )),
    }
}

/// `talea hold`.
#[derive(Debug, Args)]
pub(crate) struct HoldArgs {
    /// The legs and flags, as for `post`.
    #[command(flatten)]
    pub post: PostArgs,
    /// When the hold expires unsettled, RFC 3339 (at most 90 days ahead);
    /// without it, it is held until settled or voided.
    #[arg(long, value_name = "TIME")]
    pub expires_at: Option<String>,
}

/// `talea settle`.
#[derive(Debug, Args)]
pub(crate) struct SettleArgs {
    /// The hold's book.
    #[arg(long)]
    pub book: String,
    /// The hold's tx_id.
    #[arg(long, value_name = "TX_ID")]
    pub tx: String,
    /// Idempotency key of the settle (never generated, as for `post`).
    #[arg(long, value_name = "KEY")]
    pub idem: String,
    /// A debit leg of a partial settle; without legs the whole hold posts.
    #[arg(long = "debit", value_name = "ACCOUNT:ASSET:AMOUNT", value_parser = parse_leg)]
    pub debits: Vec<Leg>,
    /// A credit leg of a partial settle.
    #[arg(long = "credit", value_name = "ACCOUNT:ASSET:AMOUNT", value_parser = parse_leg)]
    pub credits: Vec<Leg>,
}

/// `talea void`.
#[derive(Debug, Args)]
pub(crate) struct VoidArgs {
    /// The hold's book.
    #[arg(long)]
    pub book: String,
    /// The hold's tx_id.
    #[arg(long, value_name = "TX_ID")]
    pub tx: String,
    /// Idempotency key of the void (never generated, as for `post`).
    #[arg(long, value_name = "KEY")]
    pub idem: String,
}

/// One `--debit`/`--credit` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Leg {
    pub account: String,
    pub asset: String,
    pub amount: String,
}

/// Splits `ACCOUNT:ASSET:AMOUNT` from the right: account names may hold
/// colons (`customers:alice`), asset codes and amounts never do.
pub(crate) fn parse_leg(text: &str) -> Result<Leg, String> {
    let mut parts = text.rsplitn(3, ':');
    let amount = parts.next().unwrap_or_default();
    let asset = parts.next().unwrap_or_default();
    let account = parts.next().unwrap_or_default();
    if account.is_empty() || asset.is_empty() || amount.is_empty() {
        return Err(format!(
            "expected ACCOUNT:ASSET:AMOUNT (for example customers:alice:BTC:0.015), got {text:?}"
        ));
    }
    Ok(Leg {
        account: account.to_owned(),
        asset: asset.to_owned(),
        amount: amount.to_owned(),
    })
}

/// `talea balance`.
#[derive(Debug, Args)]
pub(crate) struct BalanceArgs {
    /// The book.
    #[arg(long)]
    pub book: String,
    /// The account.
    #[arg(long)]
    pub account: String,
    /// Balances as of this commit time (RFC 3339), inclusive.
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,
}

/// `talea balances`.
#[derive(Debug, Args)]
pub(crate) struct BalancesArgs {
    /// The book.
    #[arg(long)]
    pub book: String,
    /// Only accounts whose name starts with this (default: every account).
    #[arg(long, default_value = "")]
    pub prefix: String,
    /// Only this asset's balances and totals.
    #[arg(long)]
    pub asset: Option<String>,
    /// Accounts strictly after this name (the previous page's last).
    #[arg(long)]
    pub after: Option<String>,
    /// Page size (1..=1000, default 100).
    #[arg(long)]
    pub limit: Option<u32>,
}

/// `talea history`.
#[derive(Debug, Args)]
pub(crate) struct HistoryArgs {
    /// The book.
    #[arg(long)]
    pub book: String,
    /// The account.
    #[arg(long)]
    pub account: String,
    /// The asset.
    #[arg(long)]
    pub asset: String,
    /// RFC 3339: changes committed at or after it.
    #[arg(long)]
    pub from: Option<String>,
    /// RFC 3339: changes committed before it.
    #[arg(long)]
    pub to: Option<String>,
    /// Downsample into this many equal time buckets (1..=1000).
    #[arg(long)]
    pub points: Option<u32>,
    /// Changes strictly after this seq (the previous page's last).
    #[arg(long)]
    pub after_seq: Option<u64>,
    /// Page size of the changes (1..=1000, default 100).
    #[arg(long)]
    pub limit: Option<u32>,
}

/// `talea txs`.
#[derive(Debug, Args)]
pub(crate) struct TxsArgs {
    /// The book.
    #[arg(long)]
    pub book: String,
    /// Only transactions with a leg (posted or held) on this account.
    #[arg(long)]
    pub account: Option<String>,
    /// RFC 3339: only transactions committed at or after it.
    #[arg(long)]
    pub from: Option<String>,
    /// RFC 3339: only transactions committed before it.
    #[arg(long)]
    pub to: Option<String>,
    /// Only this status: posted, pending, voided or expired.
    #[arg(long)]
    pub status: Option<String>,
    /// Exact match on a top-level metadata key, as KEY=VALUE (once).
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_meta)]
    pub meta: Option<(String, String)>,
    /// Transactions strictly after this seq (the previous page's cursor).
    #[arg(long)]
    pub after_seq: Option<u64>,
    /// Page size (1..=1000, default 100).
    #[arg(long)]
    pub limit: Option<u32>,
}

/// `KEY=VALUE` of `--meta`.
fn parse_meta(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!(
            "expected KEY=VALUE (for example order_id=A-17), got {text:?}"
        )),
    }
}

/// `talea holds`.
#[derive(Debug, Args)]
pub(crate) struct HoldsArgs {
    /// The book.
    #[arg(long)]
    pub book: String,
    /// How many (1..=1000, default 100).
    #[arg(long)]
    pub limit: Option<u32>,
}

/// `talea trial-balance`.
#[derive(Debug, Args)]
pub(crate) struct TrialBalanceArgs {
    /// The book.
    #[arg(long)]
    pub book: String,
    /// As of this commit time (RFC 3339), inclusive.
    #[arg(long, value_name = "TIME")]
    pub as_of: Option<String>,
}

/// `talea tx`.
#[derive(Debug, Args)]
pub(crate) struct TxArgs {
    /// The transaction id.
    pub tx_id: String,
}

/// `talea log`.
#[derive(Debug, Args)]
pub(crate) struct LogArgs {
    /// The book.
    #[arg(long)]
    pub book: String,
    /// Only events after this seq.
    #[arg(long, value_name = "N")]
    pub after_seq: Option<u64>,
    /// Most events (1..=1000, default 100).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
}

/// `talea assets`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub(crate) struct AssetsArgs {
    #[command(subcommand)]
    pub action: Option<AssetsAction>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AssetsAction {
    /// Register an asset (the identical definition again is a no-op).
    Add {
        /// Asset code (BTC, USDC, …).
        #[arg(long)]
        code: String,
        /// Fractional digits, 0..=30; never changes.
        #[arg(long)]
        scale: i64,
        /// Display name.
        #[arg(long)]
        name: Option<String>,
    },
}

/// `talea accounts`.
#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct AccountsArgs {
    #[command(subcommand)]
    pub action: Option<AccountsAction>,
    /// The book to list.
    #[arg(long, required = true)]
    pub book: Option<String>,
    /// List accounts after this name.
    #[arg(long, value_name = "NAME")]
    pub after: Option<String>,
    /// Most accounts (1..=1000, default 100).
    #[arg(long, value_name = "N")]
    pub limit: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum AccountsAction {
    /// Open an account (the identical definition again is a no-op).
    Open {
        /// The book.
        #[arg(long)]
        book: String,
        /// Account name (colons make a hierarchy: customers:alice).
        #[arg(long)]
        name: String,
        /// asset, expense, liability, equity or revenue.
        #[arg(long)]
        kind: String,
        /// Lowest normal-side balance per asset ("0": never overdrawn).
        #[arg(long, value_name = "AMOUNT", allow_hyphen_values = true)]
        min_balance: Option<String>,
        /// A JSON object kept with the account.
        #[arg(long, value_name = "JSON")]
        metadata: Option<String>,
    },
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn legs_split_from_the_right() {
        assert_eq!(
            parse_leg("customers:alice:BTC:0.015"),
            Ok(Leg {
                account: "customers:alice".to_owned(),
                asset: "BTC".to_owned(),
                amount: "0.015".to_owned(),
            })
        );
        assert_eq!(
            parse_leg("hot-wallet:BTC:1").map(|l| l.account),
            Ok("hot-wallet".to_owned())
        );
        assert!(parse_leg("BTC:1").is_err());
        assert!(parse_leg("a::1").is_err());
        assert!(parse_leg("a:BTC:").is_err());
    }

    #[test]
    fn batch_sizes_are_the_servers_bulk_range() {
        assert_eq!(parse_batch("1"), Ok(1));
        assert_eq!(parse_batch("1000"), Ok(1000));
        for bad in ["0", "1001", "-1", "ten", ""] {
            assert!(parse_batch(bad).is_err(), "{bad}");
        }
    }
}

/// `talea liabilities`.
#[derive(Debug, Subcommand)]
pub(crate) enum LiabilitiesCommand {
    /// Take, sign and keep a snapshot (needs a read-write token of the
    /// book); prints its id, seq, root and total (minor units).
    Create {
        /// The book.
        #[arg(long)]
        book: String,
        /// The asset (a registered code).
        #[arg(long)]
        asset: String,
        /// The accounts whose names start with it, such as `customers:`.
        #[arg(long)]
        prefix: String,
    },
    /// Fetch one account's proof in a snapshot, to check with
    /// `talea verify liability FILE --root R --total T`.
    Proof {
        /// The book.
        #[arg(long)]
        book: String,
        /// The snapshot's id.
        #[arg(long)]
        snapshot: String,
        /// The account.
        #[arg(long)]
        account: String,
        /// Write the proof's JSON to this file (else to stdout).
        #[arg(long, value_name = "FILE")]
        out: Option<PathBuf>,
    },
}
