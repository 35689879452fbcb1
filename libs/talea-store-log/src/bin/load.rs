//! `talea-store-log-load`: drives `LogStore::commit_batch` and reports the commit rate.
//!
//! ```text
//! talea-store-log-load --dir DIR [--books 1] [--writers 1] [--batch 64]
//!                      [--seconds 10] [--print-acks] [--reopen] [--holds]
//! ```
//!
//! Each of `--writers` tasks per book commits batches of `--batch` two-leg
//! transactions, waiting for each batch before sending the next (as
//! talea-ledger's committer does). `--print-acks` prints one line per
//! acknowledged commit (`ack BOOK SEQ TX_ID KEY`) as soon as its batch
//! returns: the crash test kills this process mid-load and checks that every
//! printed commit survived. `--reopen` reopens the store afterwards and
//! reports start-up time and memory per event, verifies every checksum and
//! audits every book's hash chain. `--holds` makes each round
//! a batch of holds and then a batch settling each of them whole, and
//! counts hold-then-settle pairs instead of transactions.

use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use talea_core::{
    AccountKind, AccountName, Amount, Asset, AssetCode, BookName, Draft, DraftPosting,
    IdempotencyKey, NewAccount, Scale, Side, TxId,
};
use talea_store::{Outcome, Store};
use talea_store_log::LogStore;

/// Parsed command line.
#[derive(Debug)]
struct Args {
    dir: PathBuf,
    books: usize,
    writers: usize,
    batch: usize,
    seconds: f64,
    print_acks: bool,
    reopen: bool,
    holds: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dir: PathBuf::new(),
        books: 1,
        writers: 1,
        batch: 64,
        seconds: 10.0,
        print_acks: false,
        reopen: false,
        holds: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number = |text: String, name: &str| {
            text.parse::<f64>()
                .ok()
                .filter(|n| *n > 0.0)
                .ok_or(format!("{name} must be a positive number"))
        };
        match flag.as_str() {
            "--dir" => args.dir = PathBuf::from(value("--dir")?),
            "--books" => args.books = number(value("--books")?, "--books")? as usize,
            "--writers" => args.writers = number(value("--writers")?, "--writers")? as usize,
            "--batch" => args.batch = number(value("--batch")?, "--batch")? as usize,
            "--seconds" => args.seconds = number(value("--seconds")?, "--seconds")?,
            "--print-acks" => args.print_acks = true,
            "--reopen" => args.reopen = true,
            "--holds" => args.holds = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if args.dir.as_os_str().is_empty() {
        return Err("--dir is required".to_owned());
    }
    Ok(args)
}

fn name<T, E: std::fmt::Debug>(parse: fn(&str) -> Result<T, E>, text: &str) -> T {
    match parse(text) {
        Ok(v) => v,
        Err(e) => fail(&format!("invalid name {text:?}: {e:?}")),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("talea-store-log-load: {message}");
    std::process::exit(2)
}

/// A deposit of `n` from `hot` to `alice`.
fn deposit(key: &str, n: i128) -> Draft {
    let leg = |account: &str, side| DraftPosting {
        account: name(AccountName::parse, account),
        asset: name(AssetCode::parse, "BTC"),
        side,
        amount: Amount::from_minor(n),
    };
    match Draft::new(
        name(IdempotencyKey::parse, key),
        vec![leg("hot", Side::Debit), leg("alice", Side::Credit)],
        None,
        None,
        None,
    ) {
        Ok(d) => d,
        Err(e) => fail(&format!("draft: {e:?}")),
    }
}

/// Resident memory of this process, in bytes (Linux), if known.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

async fn setup(store: &LogStore, books: &[BookName]) -> Result<(), String> {
    let btc = Asset {
        code: name(AssetCode::parse, "BTC"),
        scale: Scale::new(8).ok_or("scale")?,
        name: None,
    };
    store
        .register_asset(&btc)
        .await
        .map_err(|e| e.to_string())?;
    for book in books {
        for (account, kind) in [
            ("hot", AccountKind::Asset),
            ("alice", AccountKind::Liability),
        ] {
            let new = NewAccount {
                name: name(AccountName::parse, account),
                kind,
                min_balance: None,
                metadata: "{}".to_owned(),
            };
            store
                .open_account(book, &new)
                .await
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

#[tokio::main]
async fn main() {
    let args = parse_args().unwrap_or_else(|e| fail(&e));
    let store = LogStore::open(&args.dir).unwrap_or_else(|e| fail(&e.to_string()));
    let books: Vec<BookName> = (0..args.books)
        .map(|i| name(BookName::parse, &format!("load-{i}")))
        .collect();
    setup(&store, &books).await.unwrap_or_else(|e| fail(&e));
    if args.print_acks {
        println!("ready");
    }

    let counters = Counters::default();
    let started = Instant::now();
    let mut tasks = Vec::new();
    // Keys differ per run, so a store directory can be loaded again.
    let run = uuid::Uuid::now_v7().simple().to_string();
    for book in &books {
        for writer in 0..args.writers {
            let key_prefix = format!("{run}-{writer}");
            tasks.push(tokio::spawn(write_batches(
                store.clone(),
                book.clone(),
                key_prefix,
                (args.batch, args.print_acks, args.holds),
                counters.clone(),
            )));
        }
    }
    tokio::time::sleep(Duration::from_secs_f64(args.seconds)).await;
    counters.stop.store(true, Ordering::Relaxed);
    let mut latencies: Vec<Duration> = Vec::new();
    for task in tasks {
        latencies.extend(task.await.unwrap_or_default());
    }
    report(
        &args,
        &store,
        latencies,
        started.elapsed().as_secs_f64(),
        &counters,
    );
    if args.reopen {
        drop(store);
        reopen(&args.dir);
    }
}

/// What the writer tasks share: when to stop, and what they have done.
#[derive(Debug, Clone, Default)]
struct Counters {
    stop: Arc<AtomicBool>,
    committed: Arc<AtomicU64>,
    batches: Arc<AtomicU64>,
}

/// One writer: commits batches of `batch` drafts (keys `KEY_PREFIX-n`) to
/// `book`, each after the last returned, until told to stop; returns each
/// batch's latency.
async fn write_batches(
    store: LogStore,
    book: BookName,
    key_prefix: String,
    (batch, print, holds): (usize, bool, bool),
    counters: Counters,
) -> Vec<Duration> {
    let mut latencies = Vec::new();
    let mut n: u64 = 0;
    while !counters.stop.load(Ordering::Relaxed) {
        let drafts: Vec<Draft> = (0..batch)
            .map(|i| {
                n += 1;
                let draft = deposit(&format!("{key_prefix}-{n}"), 1 + (i as i128));
                if holds { draft.into_hold(None) } else { draft }
            })
            .collect();
        let sent = Instant::now();
        let mut outcomes = match store.commit_batch(&book, &drafts).await {
            Ok(o) => o,
            Err(e) => fail(&format!("commit_batch: {e}")),
        };
        if holds {
            // Settle each hold whole; a pair counts once its settle commits.
            let settles: Vec<Draft> = outcomes
                .iter()
                .filter_map(|o| match o {
                    Outcome::Committed(c) => Some(c.tx_id),
                    _ => None,
                })
                .map(|hold: TxId| {
                    n += 1;
                    Draft::settle(
                        name(IdempotencyKey::parse, &format!("{key_prefix}-{n}")),
                        hold,
                        None,
                    )
                    .unwrap_or_else(|e| fail(&format!("settle: {e:?}")))
                })
                .collect();
            outcomes = match store.commit_batch(&book, &settles).await {
                Ok(o) => o,
                Err(e) => fail(&format!("commit_batch: {e}")),
            };
        }
        latencies.push(sent.elapsed());
        let ok = acknowledge(&outcomes, print);
        counters.committed.fetch_add(ok, Ordering::Relaxed);
        counters.batches.fetch_add(1, Ordering::Relaxed);
    }
    latencies
}

/// Counts the batch's commits and, with `--print-acks`, prints one line per
/// commit at once.
fn acknowledge(outcomes: &[Outcome], print: bool) -> u64 {
    let mut ok = 0;
    let mut lines = String::new();
    for outcome in outcomes {
        if let Outcome::Committed(c) = outcome {
            ok += 1;
            if print {
                lines.push_str(&format!(
                    "ack {} {} {} {}\n",
                    c.book,
                    c.seq,
                    c.tx_id.0,
                    c.idempotency_key.as_str()
                ));
            }
        }
    }
    if print {
        let mut out = std::io::stdout().lock();
        if out
            .write_all(lines.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            // The reader is gone (the crash test stopped reading).
            std::process::exit(0);
        }
    }
    ok
}

/// Prints the commit rate, batch latencies and the log's size.
fn report(
    args: &Args,
    store: &LogStore,
    mut latencies: Vec<Duration>,
    elapsed: f64,
    counters: &Counters,
) {
    latencies.sort_unstable();
    let pick = |q: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * q) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    let committed = counters.committed.load(Ordering::Relaxed);
    let stats = store.stats();
    let (what, rate) = if args.holds {
        ("hold-then-settle pairs", "pairs/s")
    } else {
        ("transactions", "tx/s")
    };
    eprintln!(
        "committed {committed} {what} in {elapsed:.2} s: {:.0} {rate} \
         ({} books x {} writers, {} drafts per batch, {} batches; \
         batch latency p50 {:.3} ms, p99 {:.3} ms)",
        committed as f64 / elapsed,
        args.books,
        args.writers,
        args.batch,
        counters.batches.load(Ordering::Relaxed),
        pick(0.5),
        pick(0.99),
    );
    eprintln!(
        "log: {} events, {} bytes ({:.0} bytes per event); index estimate {} bytes ({:.0} per event)",
        stats.events,
        stats.log_bytes,
        stats.log_bytes as f64 / stats.events.max(1) as f64,
        stats.index_bytes,
        stats.index_bytes as f64 / stats.events.max(1) as f64,
    );
}

/// Reopens the store: start-up time, memory per event, and a full verify.
fn reopen(dir: &std::path::Path) {
    let before = rss_bytes().unwrap_or(0);
    let reopened = LogStore::open(dir).unwrap_or_else(|e| fail(&e.to_string()));
    let after = rss_bytes().unwrap_or(0);
    let stats = reopened.stats();
    let per_million = |d: Duration| d.as_secs_f64() * 1e6 / stats.events.max(1) as f64;
    eprintln!(
        "reopen: {} events in {:.3} s ({:.2} s per million events); resident memory grew \
         by {} bytes ({:.0} per event); index estimate {:.0} bytes per event",
        stats.events,
        stats.open_duration.as_secs_f64(),
        per_million(stats.open_duration),
        after.saturating_sub(before),
        after.saturating_sub(before) as f64 / stats.events.max(1) as f64,
        stats.index_bytes as f64 / stats.events.max(1) as f64,
    );
    match reopened.verify() {
        Ok(records) => eprintln!("verify: {records} records, every checksum good"),
        Err(e) => fail(&format!("verify: {e}")),
    }
    if stats.chain_caught_up_at_open > 0 {
        eprintln!(
            "chain: computed and stored for {} events written before it existed",
            stats.chain_caught_up_at_open
        );
    }
    let started = Instant::now();
    match reopened.audit_chains() {
        Ok(breaks) if breaks.is_empty() => eprintln!(
            "audit: every event's stored chain hash recomputes ({:.3} s)",
            started.elapsed().as_secs_f64()
        ),
        Ok(breaks) => fail(&format!("audit: chains break at {breaks:?}")),
        Err(e) => fail(&format!("audit: {e}")),
    }
}
