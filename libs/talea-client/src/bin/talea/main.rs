//! `talea`: the command-line client of the talea ledger, built on the SDK.
//!
//! Exit codes are API for scripts: 0 success (a deduplicated replay is a
//! success and says so), 1 usage or input error, 2 refused by the server,
//! 3 unavailable after retries (no answer, or 408/429/503 until the retry
//! policy ran out), 4 verification failed (`talea verify`). Output is a table by default and the server's JSON with
//! `--json`. `talea import` prints its summary either way and exits with the
//! code of the gravest outcome among its lines.

mod cli;
mod import;
mod ndjson;
mod online;
mod progress;
mod render;
mod verify;

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser as _;
use serde::Serialize;
use serde_json::{Map, Value};
use talea_api::{
    ApiError, AssetRequest, BalanceHistoryQuery, BookBalancesQuery, LedgerApi, NamePage,
    OpenAccountRequest, PostTransactionRequest, PostingDto, SeqPage, SettleRequest,
    TransactionSearch, VoidRequest,
};
use talea_client::{RetryNotice, RetryPolicy, StreamItem, TaleaClient};

use crate::cli::{
    AccountsAction, AccountsArgs, AssetsAction, AssetsArgs, Cli, Command, LiabilitiesCommand,
    PostArgs, TailArgs,
};

/// Exit code for usage and input errors (clap's own included).
const EXIT_USAGE: u8 = 1;
/// Exit code when the server refused the request.
const EXIT_REJECTED: u8 = 2;
/// Exit code when no final answer came before the retries ran out.
const EXIT_UNAVAILABLE: u8 = 3;
/// Exit code when a `talea verify` check failed.
const EXIT_VERIFY: u8 = 4;

/// Why a command did not succeed.
#[derive(Debug)]
enum Failure {
    /// Bad flags or input, found before anything was sent.
    Usage(String),
    /// The server's answer (or the SDK's, when it could not reach one).
    Api(ApiError),
    /// A `talea verify` check failed: the checks run, the failed one last.
    Verify(Vec<verify::Check>),
    /// The command printed its report but did not wholly succeed (`talea
    /// import` with refused lines): the report, and the exit code.
    Report(Rendered, u8),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

/// What a command prints: the JSON for `--json`, the table otherwise, and
/// notes for stderr (some only with `--json`, where stdout cannot say them).
#[derive(Debug)]
struct Rendered {
    json: String,
    human: String,
    notes: Vec<String>,
    json_notes: Vec<String>,
}

impl Rendered {
    fn new<T: Serialize>(value: &T, human: String) -> Self {
        Self {
            // Serializing the wire DTOs cannot fail; `null` would show a bug.
            json: serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned()),
            human,
            notes: Vec::new(),
            json_notes: Vec::new(),
        }
    }

    /// Nothing more to print (the command printed as it went).
    fn empty() -> Self {
        Self {
            json: String::new(),
            human: String::new(),
            notes: Vec::new(),
            json_notes: Vec::new(),
        }
    }

    fn note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }

    fn json_note(mut self, note: impl Into<String>) -> Self {
        self.json_notes.push(note.into());
        self
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap exits 2 on usage errors by default; 2 means "refused by
            // the server" here, so usage errors are mapped to 1.
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_USAGE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let json = cli.json;
    match run(cli) {
        Ok(out) => {
            print_out(out, json);
            ExitCode::SUCCESS
        }
        Err(Failure::Report(out, code)) => {
            print_out(out, json);
            ExitCode::from(code)
        }
        Err(Failure::Usage(message)) => {
            eprintln!("talea: {message}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Api(e)) => report(&e, json),
        Err(Failure::Verify(checks)) => verify::report_failure(&checks, json),
    }
}

/// Prints a command's output: the JSON or the table on stdout, notes on stderr.
fn print_out(out: Rendered, json: bool) {
    if json {
        if !out.json.is_empty() {
            println!("{}", out.json);
        }
    } else {
        print!("{}", out.human);
    }
    let json_notes = if json { out.json_notes } else { Vec::new() };
    for note in out.notes.into_iter().chain(json_notes) {
        eprintln!("talea: {note}");
    }
}

/// Prints a refusal (code, message, details) and picks its exit code.
fn report(e: &ApiError, json: bool) -> ExitCode {
    let body = e.to_body();
    if json {
        println!(
            "{}",
            serde_json::to_string(&body).unwrap_or_else(|_| "null".to_owned())
        );
    }
    let (what, code) = if e.is_retryable() {
        ("unavailable after retries", EXIT_UNAVAILABLE)
    } else {
        ("refused by the server", EXIT_REJECTED)
    };
    eprintln!("talea: {what}: {} ({})", body.error, body.message);
    for (key, value) in &body.details {
        match value {
            Value::String(s) => eprintln!("  {key}: {s}"),
            other => eprintln!("  {key}: {other}"),
        }
    }
    if matches!(e, ApiError::Unauthorized) {
        eprintln!("  hint: set TALEA_TOKEN or pass --token");
    }
    ExitCode::from(code)
}

fn run(cli: Cli) -> Result<Rendered, Failure> {
    // Offline: files only, no client and no runtime.
    if let Command::Verify(check) = &cli.command
        && !matches!(check, cli::VerifyCommand::Server(_))
    {
        return verify::run(check);
    }
    if let Command::Import(args) = &cli.command
        && args.dry_run
    {
        return import::dry_run(args);
    }
    // Input is read and checked before any request, so a bad file never
    // reaches the server and never costs a retry budget.
    let post_body = match &cli.command {
        Command::Post(args) => Some(post_request(args)?),
        Command::Hold(args) => {
            let mut body = post_request(&args.post)?;
            body.pending = true;
            body.expires_at = args.expires_at.clone().or(body.expires_at);
            Some(body)
        }
        _ => None,
    };
    let client = client(&cli)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Usage(format!("cannot start the runtime: {e}")))?;
    runtime.block_on(execute(&client, cli.command, post_body, cli.json))
}

/// The SDK client for the flags: URL, token, retry limits, and retry notes on stderr.
fn client(cli: &Cli) -> Result<TaleaClient, Failure> {
    let token = cli
        .token
        .clone()
        .filter(|t| !t.is_empty())
        // `talead init` writes TALEA_API_TOKEN to .env; accepting it means
        // `set -a; . ./.env` is enough to use the CLI next to a fresh server.
        .or_else(|| {
            std::env::var("TALEA_API_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
        });
    let policy = RetryPolicy {
        max_attempts: cli.max_attempts,
        deadline: Duration::from_millis(cli.retry_deadline_ms),
        ..RetryPolicy::default()
    };
    let mut builder = TaleaClient::builder(cli.url.clone())
        .retry_policy(policy)
        .on_retry(|n: &RetryNotice| {
            eprintln!(
                "talea: attempt {} of {} failed ({}); retrying in {} ms",
                n.attempt,
                n.max_attempts,
                n.reason,
                n.delay.as_millis()
            );
        });
    if let Some(token) = token {
        builder = builder.token(token);
    }
    builder.build().map_err(|e| Failure::Usage(e.to_string()))
}

/// Builds the post's body from legs and flags, or from `--file`.
fn post_request(args: &PostArgs) -> Result<PostTransactionRequest, Failure> {
    if let Some(path) = &args.file {
        return file_request(path, &args.idem);
    }
    Ok(PostTransactionRequest {
        idempotency_key: args.idem.clone(),
        postings: legs(&args.debits, &args.credits),
        occurred_at: args.occurred_at.clone(),
        memo: args.memo.clone(),
        metadata: args.metadata.as_deref().map(metadata).transpose()?,
        pending: false,
        expires_at: None,
    })
}

/// The postings of `--debit` and `--credit` legs: debits first, then
/// credits, each in the order given, so the same command line always builds
/// the same body and re-running it is a clean replay.
fn legs(debits: &[cli::Leg], credits: &[cli::Leg]) -> Vec<PostingDto> {
    let leg = |l: &cli::Leg, debit: bool| PostingDto {
        account: l.account.clone(),
        asset: l.asset.clone(),
        debit: debit.then(|| l.amount.clone()),
        credit: (!debit).then(|| l.amount.clone()),
    };
    debits
        .iter()
        .map(|l| leg(l, true))
        .chain(credits.iter().map(|l| leg(l, false)))
        .collect()
}

/// Reads a JSON body from `path` (`-`: stdin). `--idem` fills in a missing
/// `idempotency_key`; a different one is refused rather than overridden,
/// since two keys for one request means one of them is a mistake.
fn file_request(path: &Path, idem: &str) -> Result<PostTransactionRequest, Failure> {
    let text = if path == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::Usage(format!("cannot read stdin: {e}")))?;
        text
    } else {
        std::fs::read_to_string(path)
            .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))?
    };
    let what = if path == Path::new("-") {
        "stdin".to_owned()
    } else {
        path.display().to_string()
    };
    let mut body: Value = serde_json::from_str(&text)
        .map_err(|e| Failure::Usage(format!("{what} is not valid JSON: {e}")))?;
    let Some(object) = body.as_object_mut() else {
        return Err(Failure::Usage(format!("{what} must hold a JSON object")));
    };
    match object.get("idempotency_key") {
        None | Some(Value::Null) => {
            object.insert("idempotency_key".to_owned(), Value::from(idem));
        }
        Some(Value::String(key)) if key == idem => {}
        Some(other) => {
            return Err(Failure::Usage(format!(
                "the body's idempotency_key {other} differs from --idem {idem:?}; \
                 make them equal or drop it from the body"
            )));
        }
    }
    serde_json::from_value(body)
        .map_err(|e| Failure::Usage(format!("{what} is not a transaction request: {e}")))
}

fn metadata(text: &str) -> Result<Map<String, Value>, Failure> {
    serde_json::from_str(text)
        .map_err(|e| Failure::Usage(format!("--metadata must be a JSON object: {e}")))
}

async fn execute(
    client: &TaleaClient,
    command: Command,
    post_body: Option<PostTransactionRequest>,
    json: bool,
) -> Result<Rendered, Failure> {
    Ok(match command {
        Command::Post(args) => post(client, &args.book, post_body).await?,
        Command::Hold(args) => post(client, &args.post.book, post_body).await?,
        Command::Settle(args) => {
            let partial = !(args.debits.is_empty() && args.credits.is_empty());
            let request = SettleRequest {
                idempotency_key: args.idem,
                postings: partial.then(|| legs(&args.debits, &args.credits)),
            };
            let tx = client.settle(&args.book, &args.tx, request).await?;
            Rendered::new(&tx, render::posted(&tx))
        }
        Command::Void(args) => {
            let request = VoidRequest {
                idempotency_key: args.idem,
            };
            let tx = client.void(&args.book, &args.tx, request).await?;
            Rendered::new(&tx, render::posted(&tx))
        }
        Command::Balance(args) => {
            let b = client
                .balances(&args.book, &args.account, args.as_of.as_deref())
                .await?;
            Rendered::new(&b, render::balances(&b, &args.book))
        }
        Command::Balances(args) => {
            let query = BookBalancesQuery {
                prefix: Some(args.prefix),
                asset: args.asset,
                after: args.after,
                limit: args.limit,
            };
            let b = client.book_balances(&args.book, query).await?;
            let out = Rendered::new(&b, render::book_balances(&b));
            match &b.next {
                Some(next) => out.note(format!("more accounts: --after {next}")),
                None => out,
            }
        }
        Command::History(args) => {
            let query = BalanceHistoryQuery {
                asset: Some(args.asset),
                from: args.from,
                to: args.to,
                after_seq: args.after_seq,
                limit: args.limit,
                points: args.points,
            };
            let h = client
                .balance_history(&args.book, &args.account, query)
                .await?;
            let out = Rendered::new(&h, render::history(&h));
            match h.next_after_seq {
                Some(next) => out.note(format!("more changes: --after-seq {next}")),
                None => out,
            }
        }
        Command::TrialBalance(args) => {
            let tb = client
                .trial_balance(&args.book, args.as_of.as_deref())
                .await?;
            Rendered::new(&tb, render::trial_balance(&tb))
        }
        Command::Tx(args) => {
            let tx = client.transaction(&args.tx_id).await?;
            Rendered::new(&tx, render::transaction(&tx))
        }
        Command::Txs(args) => {
            let query = TransactionSearch {
                account: args.account,
                from: args.from,
                to: args.to,
                status: args.status,
                metadata: args.meta.into_iter().collect(),
                after_seq: args.after_seq,
                limit: args.limit,
            };
            let list = client.search_transactions(&args.book, query).await?;
            let out = Rendered::new(&list, render::transactions(&list.transactions));
            match list.next_after_seq {
                Some(next) => out.note(format!("more may follow: --after-seq {next}")),
                None => out,
            }
        }
        Command::Holds(args) => {
            let list = client.pending_holds(&args.book, args.limit).await?;
            Rendered::new(&list, render::holds(&list.holds))
        }
        Command::Log(args) => {
            let page = SeqPage {
                after_seq: args.after_seq,
                limit: args.limit,
            };
            let list = client.events(&args.book, page).await?;
            let out = Rendered::new(&list, render::events(&list));
            match list.next_after_seq {
                Some(next) => out.note(format!("more events: --after-seq {next}")),
                None => out,
            }
        }
        Command::Assets(args) => assets(client, args).await?,
        Command::Accounts(args) => accounts(client, args).await?,
        Command::Books => {
            let list = client.books().await?;
            Rendered::new(&list, render::books(&list))
        }
        Command::Import(args) => import::post(client, &args).await?,
        Command::Tail(args) => tail(client, args, json).await?,
        Command::Verify(cli::VerifyCommand::Server(args)) => {
            online::verify_server(client, &args).await?
        }
        Command::Liabilities(command) => liabilities(client, command).await?,
        Command::Verify(check) => verify::run(&check)?,
    })
}

/// `talea liabilities create | proof`.
async fn liabilities(
    client: &TaleaClient,
    command: LiabilitiesCommand,
) -> Result<Rendered, Failure> {
    Ok(match command {
        LiabilitiesCommand::Create {
            book,
            asset,
            prefix,
        } => {
            let s = client
                .create_liability_snapshot(&book, talea_api::LiabilityRequest { asset, prefix })
                .await?;
            let refused: String = s
                .refused
                .iter()
                .map(|r| format!("refused  {} {}\n", r.account, r.balance))
                .collect();
            let text = format!(
                "snapshot {}\nbook     {} at seq {}\nasset    {} (scale {}), prefix {}\n\
                 root     {}\ntotal    {} minor units ({} {})\naccounts {}\n{refused}",
                s.snapshot,
                s.book,
                s.seq,
                s.asset,
                s.scale,
                s.prefix,
                s.root,
                s.total,
                s.total_amount,
                s.asset,
                s.accounts
            );
            Rendered::new(&s, text)
        }
        LiabilitiesCommand::Proof {
            book,
            snapshot,
            account,
            out,
        } => {
            let proof = client.liability_proof(&book, &snapshot, &account).await?;
            let text = serde_json::to_string_pretty(&proof)
                .map_err(|e| Failure::Usage(format!("cannot write the proof: {e}")))?;
            match out {
                None => Rendered::new(&proof, text + "\n"),
                Some(path) => {
                    std::fs::write(&path, text + "\n").map_err(|e| {
                        Failure::Usage(format!("cannot write {}: {e}", path.display()))
                    })?;
                    let line = format!(
                        "wrote the proof of {account} in snapshot {snapshot} to {}\n",
                        path.display()
                    );
                    Rendered::new(&proof, line)
                }
            }
        }
    })
}

/// `talea post`: the table says a replay was deduplicated itself; with
/// `--json`, stderr does, so a script reading stdout still gets the
/// server's JSON untouched.
async fn post(
    client: &TaleaClient,
    book: &str,
    post_body: Option<PostTransactionRequest>,
) -> Result<Rendered, Failure> {
    let Some(body) = post_body else {
        return Err(Failure::Usage("no transaction to post".to_owned()));
    };
    let tx = client.post_transaction(book, body).await?;
    let out = Rendered::new(&tx, render::posted(&tx));
    Ok(if tx.deduplicated == Some(true) {
        out.json_note(format!(
            "deduplicated: key {:?} was already committed as tx {}; nothing new was posted",
            tx.idempotency_key, tx.tx_id
        ))
    } else {
        out
    })
}

/// `talea assets`: the list, or `add`.
async fn assets(client: &TaleaClient, args: AssetsArgs) -> Result<Rendered, Failure> {
    Ok(match args.action {
        None => {
            let list = client.assets().await?;
            Rendered::new(&list, render::assets(&list))
        }
        Some(AssetsAction::Add { code, scale, name }) => {
            let created = client
                .register_asset(AssetRequest { code, scale, name })
                .await?;
            let a = &created.value;
            let line = format!(
                "{} asset {} (scale {})\n",
                if created.created {
                    "registered"
                } else {
                    "already registered, unchanged:"
                },
                a.code,
                a.scale
            );
            Rendered::new(a, line)
        }
    })
}

/// `talea accounts`: a page of a book's accounts, or `open`.
async fn accounts(client: &TaleaClient, args: AccountsArgs) -> Result<Rendered, Failure> {
    Ok(match args.action {
        None => {
            let Some(book) = args.book else {
                return Err(Failure::Usage("--book is required".to_owned()));
            };
            let page = NamePage {
                after: args.after,
                limit: args.limit,
            };
            let list = client.accounts(&book, page).await?;
            let out = Rendered::new(&list, render::accounts(&list));
            match &list.next {
                Some(next) => out.note(format!("more accounts: --after {next}")),
                None => out,
            }
        }
        Some(AccountsAction::Open {
            book,
            name,
            kind,
            min_balance,
            metadata: meta,
        }) => {
            let request = OpenAccountRequest {
                name,
                kind,
                min_balance,
                metadata: meta.as_deref().map(metadata).transpose()?,
            };
            let created = client.open_account(&book, request).await?;
            let a = &created.value;
            let line = format!(
                "{} account {} ({}) in book {} at seq {}\n",
                if created.created {
                    "opened"
                } else {
                    "already open, unchanged:"
                },
                a.name,
                a.kind,
                a.book,
                a.seq
            );
            Rendered::new(a, line)
        }
    })
}

/// Prints the book's events as they come (one JSON object per line with
/// `--json`), and reconnection notes on stderr. Ends only on a refusal, or
/// after `--count` events.
async fn tail(client: &TaleaClient, args: TailArgs, json: bool) -> Result<Rendered, Failure> {
    use futures::StreamExt as _;
    use std::io::Write as _;
    let stream = client.follow(&args.book, args.after_seq);
    futures::pin_mut!(stream);
    let mut seen = 0u64;
    let stdout = std::io::stdout();
    let mut chain = args
        .verify
        .then(|| online::TailChain::new(&args.book, args.after_hash.clone()));
    while let Some(item) = stream.next().await {
        match item? {
            StreamItem::Event(event) => {
                if let Some(chain) = chain.as_mut() {
                    chain.check(client, &event).await?;
                }
                let line = if json {
                    let mut line = serde_json::json!({
                        "seq": event.seq, "type": event.kind, "data": event.data
                    });
                    if args.verify {
                        line["committed_at"] = serde_json::json!(event.committed_at);
                        line["hash"] = serde_json::json!(event.hash);
                    }
                    line.to_string()
                } else {
                    render::stream_event(&event)
                };
                let mut out = stdout.lock();
                // A closed stdout (`talea tail | head`) ends the command.
                if writeln!(out, "{line}").and_then(|()| out.flush()).is_err() {
                    break;
                }
                seen += 1;
                if args.count.is_some_and(|n| seen >= n) {
                    break;
                }
            }
            StreamItem::Reconnecting { after_seq, reason } => {
                eprintln!("talea: stream interrupted ({reason}); resuming after seq {after_seq}");
            }
        }
    }
    if let Some((seq, hash)) = chain.as_ref().and_then(online::TailChain::position) {
        eprintln!(
            "talea: chain verified through seq {seq} (hash {hash}); resume with \
             --after-seq {seq} --after-hash {hash}"
        );
    }
    Ok(Rendered::empty())
}
