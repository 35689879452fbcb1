//! `talea-sse-load`: holds many SSE subscribers in one process while posting at a fixed rate,
//! and reports commit-to-receive latency percentiles, gaps and duplicates.
//!
//! Subscribers are tasks on one tokio runtime (not a thread each), spread
//! over `--books` books; each checks that the ids it receives are exactly
//! 1, 2, 3, … after its start (a gap or a repeat is counted, never hidden)
//! and measures receive time minus the event's `committed_at` (the
//! database clock; this machine's clock is the same one). Writes are an
//! open model: `--rate` posts per second through the SDK, round-robin
//! over the books, whatever the latency. `--nats-floor` instead measures
//! raw NATS publish-to-subscriber latency at the same rate and fan-out,
//! the floor the streaming stack is compared against.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Parser;
use futures::StreamExt;
use talea_api::{AssetRequest, LedgerApi, OpenAccountRequest, PostTransactionRequest, PostingDto};
use talea_client::TaleaClient;
use tokio::sync::Mutex;

#[derive(Debug, Parser)]
#[command(name = "talea-sse-load", about)]
struct Args {
    /// Where subscribers connect (a fan-out, or a talead).
    #[arg(long, default_value = "http://127.0.0.1:8092")]
    stream_url: String,
    /// Where posts go (a talead).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    write_url: String,
    /// Bearer token for both.
    #[arg(long, env = "TALEA_TOKEN")]
    token: String,
    /// Books (`sse-0` … `sse-N-1`).
    #[arg(long, default_value_t = 100)]
    books: usize,
    /// Subscribers in all, spread evenly over the books.
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    /// Posts per second, all books together.
    #[arg(long, default_value_t = 1_000)]
    rate: u64,
    /// Seconds of posting.
    #[arg(long, default_value_t = 30)]
    seconds: u64,
    /// New subscriber connections opened per second (a ramp, not a storm).
    #[arg(long, default_value_t = 2_000)]
    connect_rate: u64,
    /// Measure raw NATS publish-to-subscriber latency instead.
    #[arg(long)]
    nats_floor: bool,
    /// NATS server for `--nats-floor`.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats_url: String,
    /// Write the summary as JSON here too.
    #[arg(long)]
    json: Option<String>,
    /// A process whose resident memory to report (the fan-out's pid).
    #[arg(long)]
    rss_pid: Option<u32>,
    /// `name=pid` of a process whose CPU time during the posting phase to
    /// report (repeatable); this tool's own, the machine's, Postgres's and
    /// `nats-server`'s are always reported.
    #[arg(long = "cpu-pid", value_parser = parse_named_pid)]
    cpu_pids: Vec<(String, u32)>,
    /// The database whose Postgres backends' CPU time to report.
    #[arg(long)]
    pg_database: Option<String>,
}

fn parse_named_pid(text: &str) -> Result<(String, u32), String> {
    let (name, pid) = text.split_once('=').ok_or("expected name=pid")?;
    let pid = pid.parse().map_err(|e| format!("pid: {e}"))?;
    Ok((name.to_owned(), pid))
}

/// What the subscribers saw, all together.
#[derive(Debug, Default)]
struct Tally {
    latencies_us: Vec<u64>,
    received: u64,
    gaps: u64,
    duplicates: u64,
    errors: u64,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("runtime")?;
    runtime.block_on(async move {
        if args.nats_floor {
            nats_floor(&args).await
        } else {
            sse(&args).await
        }
    })
}

fn book(i: usize) -> String {
    format!("sse-{i}")
}

/// The load: books with accounts, every subscriber connected, then posts at
/// `rate` for `seconds`; prints (and with `--json` writes) the summary.
async fn sse(args: &Args) -> anyhow::Result<()> {
    let writer = TaleaClient::new(&args.write_url, &args.token)?;
    setup_books(&writer, args.books).await?;
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .context("http client")?;
    let tally = Arc::new(Mutex::new(Tally::default()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let subscribers = connect_subscribers(args, &http, &tally, stopped).await?;
    eprintln!(
        "all subscribers connected; posting {} tx/s for {} s",
        args.rate, args.seconds
    );
    let posted = post_load(args, &writer).await;
    // Let the last events arrive, then have every subscriber report.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.send_replace(true);
    for s in subscribers {
        let _ = s.await;
    }
    let summary = summarize(args, &posted, &mut *tally.lock().await);
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)?;
    }
    Ok(())
}

/// Registers BTC and opens `hot` and `user` in every book.
async fn setup_books(writer: &TaleaClient, books: usize) -> anyhow::Result<()> {
    writer
        .register_asset(AssetRequest {
            code: "BTC".into(),
            scale: 8,
            name: None,
        })
        .await
        .map_err(|e| anyhow::anyhow!("register BTC: {e}"))?;
    for b in 0..books {
        for (name, kind) in [("hot", "asset"), ("user", "liability")] {
            writer
                .open_account(
                    &book(b),
                    OpenAccountRequest {
                        name: name.into(),
                        kind: kind.into(),
                        min_balance: None,
                        metadata: None,
                    },
                )
                .await
                .map_err(|e| anyhow::anyhow!("open account: {e}"))?;
        }
    }
    Ok(())
}

/// Opens every subscriber at `connect_rate` and waits (at most 60 s) until
/// all are connected.
async fn connect_subscribers(
    args: &Args,
    http: &reqwest::Client,
    tally: &Arc<Mutex<Tally>>,
    stopped: tokio::sync::watch::Receiver<bool>,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let connected = Arc::new(AtomicU64::new(0));
    let mut subscribers = Vec::with_capacity(args.subscribers);
    let pause = Duration::from_micros(1_000_000 / args.connect_rate.max(1));
    eprintln!(
        "opening {} subscribers over {} books",
        args.subscribers, args.books
    );
    for s in 0..args.subscribers {
        let b = s % args.books;
        let url = format!("{}/v1/books/{}/stream", args.stream_url, book(b));
        subscribers.push(tokio::spawn(subscriber(
            http.clone(),
            url,
            args.token.clone(),
            tally.clone(),
            connected.clone(),
            stopped.clone(),
        )));
        tokio::time::sleep(pause).await;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while connected.load(Ordering::Relaxed) < args.subscribers as u64 {
        if Instant::now() > deadline {
            bail!(
                "only {} of {} subscribers connected within 60 s",
                connected.load(Ordering::Relaxed),
                args.subscribers
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(subscribers)
}

/// What the posting phase did: commits per book, failed posts, how long it
/// took, and the CPU counters around it.
struct Posted {
    committed: BTreeMap<usize, u64>,
    errors: u64,
    secs: f64,
    cpu_before: BTreeMap<String, u64>,
    cpu_after: BTreeMap<String, u64>,
}

/// Posts at `rate` for `seconds` (open model).
async fn post_load(args: &Args, writer: &TaleaClient) -> Posted {
    // Open model: one post every 1/rate s, each in its own task.
    let committed: Arc<Mutex<BTreeMap<usize, u64>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let post_errors = Arc::new(AtomicU64::new(0));
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / args.rate.max(1)));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = args.rate * args.seconds;
    let mut posts = Vec::with_capacity(total as usize);
    let started = Instant::now();
    let cpu_before = cpu_ticks(&args.cpu_pids, args.pg_database.as_deref());
    for i in 0..total {
        ticker.tick().await;
        let b = (i as usize) % args.books;
        let writer = writer.clone();
        let committed = committed.clone();
        let errors = post_errors.clone();
        posts.push(tokio::spawn(async move {
            let leg = |account: &str, debit: bool| PostingDto {
                account: account.into(),
                asset: "BTC".into(),
                debit: debit.then(|| "0.00000001".into()),
                credit: (!debit).then(|| "0.00000001".into()),
            };
            let request = PostTransactionRequest {
                idempotency_key: format!("load-{i}"),
                postings: vec![leg("hot", true), leg("user", false)],
                occurred_at: None,
                memo: None,
                metadata: None,
                pending: false,
                expires_at: None,
            };
            match writer.post_transaction(&book(b), request).await {
                Ok(_) => *committed.lock().await.entry(b).or_default() += 1,
                Err(_) => {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for p in posts {
        let _ = p.await;
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu_after = cpu_ticks(&args.cpu_pids, args.pg_database.as_deref());
    let committed = committed.lock().await.clone();
    Posted {
        committed,
        errors: post_errors.load(Ordering::Relaxed),
        secs,
        cpu_before,
        cpu_after,
    }
}

/// The run's summary: deliveries expected against received, latency
/// percentiles, memory and CPU.
fn summarize(args: &Args, posted: &Posted, tally: &mut Tally) -> serde_json::Value {
    let committed = &posted.committed;
    let expected: u64 = (0..args.subscribers)
        .map(|s| committed.get(&(s % args.books)).copied().unwrap_or(0))
        .sum();
    tally.latencies_us.sort_unstable();
    let pct = |q: f64| -> f64 {
        let l = &tally.latencies_us;
        if l.is_empty() {
            return 0.0;
        }
        l[((l.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
    };
    let rss_kib = args.rss_pid.and_then(rss_kib);
    serde_json::json!({
        "subscribers": args.subscribers, "books": args.books, "rate": args.rate,
        "seconds": args.seconds, "posted": committed.values().sum::<u64>(),
        "post_errors": posted.errors,
        "achieved_rate": committed.values().sum::<u64>() as f64 / posted.secs,
        "expected_deliveries": expected, "received": tally.received,
        "missing": expected.saturating_sub(tally.received), "gaps": tally.gaps,
        "duplicates": tally.duplicates, "subscriber_errors": tally.errors,
        "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "p999": pct(0.999), "max": pct(1.0)},
        "fanout_rss_kib": rss_kib,
        "fanout_rss_bytes_per_subscriber": rss_kib.map(|k| k * 1024 / args.subscribers.max(1) as u64),
        "cpu_cores_while_posting": cpu_cores(&posted.cpu_before, &posted.cpu_after, posted.secs),
    })
}

/// One subscriber: live from now, checking ids and measuring latency.
async fn subscriber(
    http: reqwest::Client,
    url: String,
    token: String,
    tally: Arc<Mutex<Tally>>,
    connected: Arc<AtomicU64>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let response = match http.get(&url).bearer_auth(&token).send().await {
        Ok(r) if r.status().is_success() => r,
        _ => {
            tally.lock().await.errors += 1;
            return;
        }
    };
    connected.fetch_add(1, Ordering::Relaxed);
    let mut body = response.bytes_stream();
    // Frames are cut and read as bytes, without a copy or an allocation
    // per frame: at 100k events/s the load tool must not be what is slow.
    let mut buffer: Vec<u8> = Vec::new();
    let mut last: Option<u64> = None;
    let mut local = Tally::default();
    let mut flush_at = Instant::now() + Duration::from_secs(1);
    loop {
        let chunk = tokio::select! {
            chunk = body.next() => chunk,
            _ = stopped.changed() => break,
        };
        let Some(Ok(chunk)) = chunk else {
            local.errors += 1;
            break;
        };
        let now = chrono::Utc::now().timestamp_micros();
        buffer.extend_from_slice(&chunk);
        let mut consumed = 0;
        while let Some(len) = frame_len(&buffer[consumed..]) {
            let frame = &buffer[consumed..consumed + len];
            consumed += len;
            let Some(event) = Frame::read(frame) else {
                continue; // A comment or the `retry:` line.
            };
            match last {
                Some(l) if event.id <= l => local.duplicates += 1,
                Some(l) if event.id > l + 1 => local.gaps += event.id - l - 1,
                _ => {}
            }
            last = Some(last.map_or(event.id, |l| l.max(event.id)));
            local.received += 1;
            if let Some(committed) = event.committed_micros {
                local
                    .latencies_us
                    .push(now.saturating_sub(committed).max(0) as u64);
            }
        }
        buffer.drain(..consumed);
        if Instant::now() >= flush_at {
            merge(&tally, &mut local).await;
            flush_at = Instant::now() + Duration::from_secs(1);
        }
    }
    merge(&tally, &mut local).await;
}

/// The length of the first whole frame in `buffer` (through its blank line).
fn frame_len(buffer: &[u8]) -> Option<usize> {
    buffer.windows(2).position(|w| w == b"\n\n").map(|i| i + 2)
}

/// What a subscriber reads of an event frame.
#[derive(Debug, PartialEq, Eq)]
struct Frame {
    id: u64,
    /// The transaction's `committed_at` (`opened_at` events have none).
    committed_micros: Option<i64>,
}

impl Frame {
    /// The frame's id and commit time; `None` for a frame with no id.
    /// Not the shared decoder (`sse-stream`): this runs for every delivery
    /// and allocates nothing (loadtest/README.md, "SSE delivery").
    fn read(frame: &[u8]) -> Option<Frame> {
        let mut id = None;
        let mut committed_micros = None;
        for line in frame.split(|b| *b == b'\n') {
            if let Some(v) = line.strip_prefix(b"id: ") {
                id = std::str::from_utf8(v).ok()?.parse::<u64>().ok();
            } else if let Some(v) = line.strip_prefix(b"data: ") {
                // A plain search rather than a JSON parse.
                committed_micros = committed_at(v)
                    .and_then(talea_api::parse_timestamp)
                    .map(|t| t.micros());
            }
        }
        Some(Frame {
            id: id?,
            committed_micros,
        })
    }
}

/// The `committed_at` value of a transaction's JSON.
fn committed_at(data: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"committed_at\":\"";
    let start = data.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = data[start..].iter().position(|b| *b == b'"')?;
    std::str::from_utf8(&data[start..start + len]).ok()
}

async fn merge(tally: &Mutex<Tally>, local: &mut Tally) {
    let mut t = tally.lock().await;
    t.latencies_us.append(&mut local.latencies_us);
    t.received += std::mem::take(&mut local.received);
    t.gaps += std::mem::take(&mut local.gaps);
    t.duplicates += std::mem::take(&mut local.duplicates);
    t.errors += std::mem::take(&mut local.errors);
}

/// Clock ticks a second in `/proc/<pid>/stat` (`getconf CLK_TCK`, 100 on Linux).
const CLOCK_TICKS_PER_S: f64 = 100.0;

/// CPU ticks (user + system) so far, by component: the named pids, this
/// process, the `postgres` backends of `pg_database` (others' are left
/// out), Postgres's shared processes, and `nats-server`.
fn cpu_ticks(named: &[(String, u32)], pg_database: Option<&str>) -> BTreeMap<String, u64> {
    let mut ticks = BTreeMap::new();
    for (name, pid) in named {
        if let Some(t) = proc_ticks(&format!("/proc/{pid}/stat")) {
            *ticks.entry(name.clone()).or_default() += t;
        }
    }
    if let Some(t) = proc_ticks("/proc/self/stat") {
        ticks.insert("load-generator".to_owned(), t);
    }
    if let Some(t) = machine_busy_ticks() {
        ticks.insert("machine (everything)".to_owned(), t);
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return ticks;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(comm) = std::fs::read_to_string(path.join("comm")) else {
            continue;
        };
        let comm = comm.trim();
        let component = match comm {
            "nats-server" => comm.to_owned(),
            // Backends show their database in their title; the others
            // (WAL writer, checkpointer, …) serve every database.
            "postgres" => {
                let title = std::fs::read(path.join("cmdline")).unwrap_or_default();
                let title = String::from_utf8_lossy(&title);
                match pg_database {
                    Some(db) if title.contains(&format!(" {db} ")) => {
                        format!("postgres (backends of {db})")
                    }
                    _ if title.contains(": postgres ") => continue, // other databases' backends
                    _ => "postgres (shared processes)".to_owned(),
                }
            }
            _ => continue,
        };
        if let Some(t) = proc_ticks(&path.join("stat").to_string_lossy()) {
            *ticks.entry(component).or_default() += t;
        }
    }
    ticks
}

/// Non-idle ticks of every CPU together, from `/proc/stat`.
fn machine_busy_ticks() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let cpu = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = cpu
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …: idle and iowait are not busy.
    let idle = fields.get(3)? + fields.get(4)?;
    Some(fields.iter().take(8).sum::<u64>() - idle)
}

/// utime + stime of one process (all its threads), in clock ticks.
fn proc_ticks(stat_path: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(stat_path).ok()?;
    // The command name may hold spaces: fields are counted after its `)`.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// Cores used on average by each component between two readings (a
/// process that ended or started in between reads as what it used while seen).
fn cpu_cores(
    before: &BTreeMap<String, u64>,
    after: &BTreeMap<String, u64>,
    seconds: f64,
) -> BTreeMap<String, f64> {
    after
        .iter()
        .map(|(name, t)| {
            let used = t.saturating_sub(before.get(name).copied().unwrap_or(0)) as f64;
            let cores = used / CLOCK_TICKS_PER_S / seconds.max(f64::EPSILON);
            (name.clone(), (cores * 100.0).round() / 100.0)
        })
        .collect()
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// Raw NATS: `rate` messages/s over `books` subjects, `subscribers` core
/// subscriptions spread over them, latency from publish to receive.
async fn nats_floor(args: &Args) -> anyhow::Result<()> {
    let publisher = async_nats::connect(&args.nats_url).await?;
    let subscriber = async_nats::connect(&args.nats_url).await?;
    let prefix = format!("floor{}", std::process::id());
    let tally = Arc::new(Mutex::new(Tally::default()));
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for s in 0..args.subscribers {
        let mut sub = subscriber
            .subscribe(format!("{prefix}.{}", s % args.books))
            .await?;
        let tally = tally.clone();
        let mut stopped = stopped.clone();
        tasks.push(tokio::spawn(async move {
            let mut local = Tally::default();
            let mut flush_at = Instant::now() + Duration::from_secs(1);
            loop {
                let msg = tokio::select! {
                    msg = sub.next() => msg,
                    _ = stopped.changed() => break,
                };
                let Some(msg) = msg else { break };
                let now = chrono::Utc::now().timestamp_micros();
                if let Some(sent) = std::str::from_utf8(&msg.payload)
                    .ok()
                    .and_then(|t| t.parse::<i64>().ok())
                {
                    local
                        .latencies_us
                        .push(now.saturating_sub(sent).max(0) as u64);
                    local.received += 1;
                }
                if Instant::now() >= flush_at {
                    merge(&tally, &mut local).await;
                    flush_at = Instant::now() + Duration::from_secs(1);
                }
            }
            merge(&tally, &mut local).await;
        }));
    }
    subscriber.flush().await?;
    let mut ticker = tokio::time::interval(Duration::from_micros(1_000_000 / args.rate.max(1)));
    for i in 0..args.rate * args.seconds {
        ticker.tick().await;
        let stamp = chrono::Utc::now().timestamp_micros().to_string();
        publisher
            .publish(
                format!("{prefix}.{}", i as usize % args.books),
                stamp.into(),
            )
            .await?;
    }
    publisher.flush().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.send_replace(true);
    for t in tasks {
        let _ = t.await;
    }
    drop(subscriber);
    let mut tally = tally.lock().await;
    tally.latencies_us.sort_unstable();
    let l = &tally.latencies_us;
    let pct = |q: f64| {
        if l.is_empty() {
            0.0
        } else {
            l[((l.len() - 1) as f64 * q).round() as usize] as f64 / 1000.0
        }
    };
    let summary = serde_json::json!({
        "mode": "nats-floor", "subscribers": args.subscribers, "subjects": args.books,
        "rate": args.rate, "seconds": args.seconds, "received": tally.received,
        "expected": args.rate * args.seconds * (args.subscribers / args.books.max(1)) as u64,
        "latency_ms": {"p50": pct(0.5), "p99": pct(0.99), "p999": pct(0.999), "max": pct(1.0)},
    });
    println!("{}", serde_json::to_string_pretty(&summary)?);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_cut_at_blank_lines_and_read() {
        let stream = b"retry: 2000\n\nid: 7\nevent: transaction\ndata: {\"seq\":7,\"committed_at\":\"2026-11-24T12:00:00.000001Z\"}\n\n: keep";
        let first = frame_len(stream).expect("a frame");
        assert_eq!(Frame::read(&stream[..first]), None);
        let rest = &stream[first..];
        let second = frame_len(rest).expect("a second frame");
        let frame = Frame::read(&rest[..second]).expect("an event");
        assert_eq!(frame.id, 7);
        assert_eq!(frame.committed_micros, Some(1_795_521_600_000_001));
        assert_eq!(frame_len(&rest[second..]), None, "a partial comment waits");
    }
}
