//! `talea-post-load`: a light load generator for talea's write routes.
//!
//! `--connections` clients, each on its own HTTP/1.1 keep-alive connection
//! (hyper's connection-level client: no pool, no TLS, no JSON tree on the
//! way out), post back to back (closed model) to one book: single posts
//! (`--batch 1`, `POST …/transactions`) or bulk requests of `--batch`
//! items (`POST …/transactions/batch`). Every transaction is the k6 write
//! scripts' transfer (hot:a to hot:b, one satoshi of BTC) with a unique
//! idempotency key. Nothing is retried: a retry would hide the rate the
//! server sustains.
//!
//! After `--warmup` seconds (not counted) it measures for `--seconds` and
//! prints one JSON summary: committed transactions per second (201s, or
//! items answered 201 in bulk), requests per second, request latency
//! percentiles, failures by status, and this process's own CPU over the
//! measured window, so a report can say how much of the machine the load
//! generator itself used.
//!
//! With `--read PATH` the clients read instead (`GET PATH`, `committed`
//! then counts 200 answers), spread over `--read-url` (comma separated;
//! default `--url`) by client number. With `--after-write` too, each read
//! follows a single post on `--url` and only the read is timed; with
//! `--min-seq` that read carries `Talea-Min-Seq: <the post's seq>` (read
//! your writes through a replica: `loadtest/run-replicas.sh`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Parser;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::Deserialize;
use serde::de::IgnoredAny;
use tokio::net::TcpStream;

/// Clients at most (connections to the server).
const CONNECTIONS_MAX: usize = 4_096;
/// Items per bulk request at most: the server's `BATCH_ITEMS_MAX`.
const BATCH_MAX: usize = 1_000;
/// Measured seconds at most.
const SECONDS_MAX: u64 = 3_600;
/// Runtime worker threads at most.
const THREADS_MAX: usize = 64;
/// Transport errors in a row after which a client stops.
const TRANSPORT_ERRORS_IN_A_ROW_MAX: u32 = 20;
/// Linux reports process CPU in clock ticks of 1/100 s (USER_HZ) on every
/// architecture this runs on.
const USER_HZ: f64 = 100.0;

#[derive(Debug, Parser)]
#[command(name = "talea-post-load", about)]
struct Args {
    /// The talead to load, `http://host:port`.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Bearer token (write scope on the book).
    #[arg(long, env = "TALEA_TOKEN", hide_env_values = true)]
    token: String,
    /// The book every post goes to.
    #[arg(long, default_value = "hot")]
    book: String,
    /// Clients, each with one connection and one request in flight.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Transactions per request: 1 posts singly, more uses the bulk route.
    #[arg(long, default_value_t = 1)]
    batch: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Seconds of load before measuring (not counted).
    #[arg(long, default_value_t = 3)]
    warmup: u64,
    /// Runtime worker threads of the generator.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Prefix of the idempotency keys (unique per run).
    #[arg(long)]
    run_id: Option<String>,
    /// Write the summary here too.
    #[arg(long)]
    summary: Option<std::path::PathBuf>,
    /// Read `GET PATH` instead of posting (`/v1/books/hot/accounts/hot:a`).
    #[arg(long)]
    read: Option<String>,
    /// Where reads go, comma separated, spread by client (default `--url`).
    #[arg(long, value_delimiter = ',')]
    read_url: Vec<String>,
    /// Each read follows a single post on `--url` (only the read is timed).
    #[arg(long, requires = "read")]
    after_write: bool,
    /// Reads after a write carry `Talea-Min-Seq` with the post's seq.
    #[arg(long, requires = "after_write")]
    min_seq: bool,
}

/// Refuses a setting outside its limit, by name, before anything is sent.
fn check(args: &Args) -> anyhow::Result<()> {
    if !(1..=CONNECTIONS_MAX).contains(&args.connections) {
        bail!("--connections must be in 1..={CONNECTIONS_MAX}");
    }
    if !(1..=BATCH_MAX).contains(&args.batch) {
        bail!("--batch must be in 1..={BATCH_MAX}");
    }
    if !(1..=SECONDS_MAX).contains(&args.seconds) || args.warmup > SECONDS_MAX {
        bail!("--seconds must be in 1..={SECONDS_MAX}, --warmup at most {SECONDS_MAX}");
    }
    if !(1..=THREADS_MAX).contains(&args.threads) {
        bail!("--threads must be in 1..={THREADS_MAX}");
    }
    Target::new(args).map(drop)
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    check(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let summary = runtime.block_on(run(&args))?;
    let text = serde_json::to_string_pretty(&summary)?;
    println!("{text}");
    if let Some(path) = &args.summary {
        std::fs::write(path, format!("{text}\n"))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Where requests go and what they carry, shared by every client.
struct Target {
    authority: String,
    addr: String,
    /// `(authority, address)` of each read URL.
    read_addrs: Vec<String>,
    read: Option<String>,
    after_write: bool,
    min_seq: bool,
    token: String,
    single_path: String,
    batch_path: String,
    batch: usize,
    run_id: String,
}

impl Target {
    fn new(args: &Args) -> anyhow::Result<Self> {
        let authority = args
            .url
            .strip_prefix("http://")
            .context("--url must start with http:// (no TLS here)")?
            .trim_end_matches('/')
            .to_owned();
        let book = &args.book;
        if book.is_empty()
            || !book
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        {
            bail!("--book must be a plain book name");
        }
        let run_id = args.run_id.clone().unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            format!("pl{nanos}")
        });
        let mut read_addrs = Vec::new();
        for url in &args.read_url {
            read_addrs.push(
                url.strip_prefix("http://")
                    .context("--read-url must start with http:// (no TLS here)")?
                    .trim_end_matches('/')
                    .to_owned(),
            );
        }
        if read_addrs.is_empty() {
            read_addrs.push(authority.clone());
        }
        if let Some(path) = &args.read
            && !path.starts_with('/')
        {
            bail!("--read must be a path starting with /");
        }
        Ok(Self {
            addr: authority.clone(),
            read_addrs,
            read: args.read.clone(),
            after_write: args.after_write,
            min_seq: args.min_seq,
            authority,
            token: format!("Bearer {}", args.token),
            single_path: format!("/v1/books/{book}/transactions"),
            batch_path: format!("/v1/books/{book}/transactions/batch"),
            batch: args.batch,
            run_id,
        })
    }

    fn request(
        &self,
        method: Method,
        path: &str,
        body: String,
    ) -> anyhow::Result<Request<Full<Bytes>>> {
        Ok(Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority)
            .header(hyper::header::AUTHORIZATION, &self.token)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))?)
    }

    /// The body of one transaction with key `w-<run>-<client>-<n>`.
    fn push_transfer(&self, out: &mut String, client: usize, n: u64) {
        use std::fmt::Write as _;
        let _ = write!(
            out,
            r#"{{"idempotency_key":"w-{}-{client}-{n}","postings":[{{"account":"hot:a","asset":"BTC","debit":"0.00000001"}},{{"account":"hot:b","asset":"BTC","credit":"0.00000001"}}]}}"#,
            self.run_id
        );
    }

    /// The next request of a client: one post, or a bulk request of
    /// `batch` posts; `n` counts the client's transactions.
    fn next(&self, client: usize, n: &mut u64) -> anyhow::Result<Request<Full<Bytes>>> {
        let mut body = String::with_capacity(200 * self.batch + 32);
        if self.batch == 1 {
            self.push_transfer(&mut body, client, *n);
            *n += 1;
            return self.request(Method::POST, &self.single_path, body);
        }
        body.push_str(r#"{"transactions":["#);
        for i in 0..self.batch {
            if i > 0 {
                body.push(',');
            }
            self.push_transfer(&mut body, client, *n);
            *n += 1;
        }
        body.push_str("]}");
        self.request(Method::POST, &self.batch_path, body)
    }
}

async fn connect(addr: &str) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole answer.
async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    req: Request<Full<Bytes>>,
) -> anyhow::Result<(StatusCode, Bytes)> {
    sender.ready().await?;
    let res = sender.send_request(req).await?;
    let status = res.status();
    let body = res.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<ItemAnswer>,
}

#[derive(Deserialize)]
struct ItemAnswer {
    status: u16,
    #[allow(dead_code)]
    body: IgnoredAny,
}

/// What one client saw in the measured window.
#[derive(Default)]
struct Tally {
    committed: u64,
    requests: u64,
    /// Failed requests (or bulk items) by status; 0 is a transport error.
    failures: BTreeMap<u16, u64>,
    latencies_us: Vec<u32>,
}

impl Tally {
    /// Counts a request that finished in the measured window, its latency
    /// from `started` to `done`, and whether it got `expected`.
    fn record(
        &mut self,
        started: Instant,
        done: Instant,
        status: StatusCode,
        expected: StatusCode,
    ) {
        self.requests += 1;
        self.latencies_us
            .push(u32::try_from(done.duration_since(started).as_micros()).unwrap_or(u32::MAX));
        if status == expected {
            self.committed += 1;
        } else {
            *self.failures.entry(status.as_u16()).or_default() += 1;
        }
    }

    fn merge(&mut self, other: Tally) {
        self.committed += other.committed;
        self.requests += other.requests;
        for (status, count) in other.failures {
            *self.failures.entry(status).or_default() += count;
        }
        self.latencies_us.extend(other.latencies_us);
    }
}

#[derive(Deserialize)]
struct Committed {
    seq: u64,
}

/// One reading client: reads back to back until `end` (each after a post
/// with `--after-write`), counting the reads that finish between `from`
/// and `end`.
async fn reader(
    target: std::sync::Arc<Target>,
    id: usize,
    path: String,
    from: Instant,
    end: Instant,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let read_addr = &target.read_addrs[id % target.read_addrs.len()];
    let mut reads = connect(read_addr).await?;
    let mut writes = match target.after_write {
        true => Some(connect(&target.addr).await?),
        false => None,
    };
    let mut n = 0;
    while Instant::now() < end {
        let mut min_seq = None;
        if let Some(writes) = &mut writes {
            let req = target.next(id, &mut n)?;
            let (status, body) = send(writes, req).await?;
            if status != StatusCode::CREATED {
                bail!("client {id}: a post answered {status}");
            }
            let committed: Committed =
                serde_json::from_slice(&body).context("a post answer without seq")?;
            min_seq = target.min_seq.then_some(committed.seq);
        }
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(&path)
            .header(hyper::header::HOST, read_addr)
            .header(hyper::header::AUTHORIZATION, &target.token);
        if let Some(seq) = min_seq {
            req = req.header("talea-min-seq", seq);
        }
        let req = req.body(Full::new(Bytes::new()))?;
        let started = Instant::now();
        let answer = send(&mut reads, req).await;
        let done = Instant::now();
        let counted = started >= from && done <= end;
        let status = match answer {
            Ok((status, _)) => status,
            Err(e) => bail!("client {id}: a read failed: {e:#}"),
        };
        if counted {
            tally.record(started, done, status, StatusCode::OK);
        }
    }
    Ok(tally)
}

/// One client: posts back to back until `end`, counting what finishes
/// between `from` and `end`.
async fn client(
    target: std::sync::Arc<Target>,
    id: usize,
    from: Instant,
    end: Instant,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    let mut sender = connect(&target.addr).await?;
    let mut n = 0;
    let mut errors_in_a_row = 0;
    while Instant::now() < end {
        let req = target.next(id, &mut n)?;
        let started = Instant::now();
        let answer = send(&mut sender, req).await;
        let done = Instant::now();
        let counted = started >= from && done <= end;
        let (status, body) = match answer {
            Ok(answer) => {
                errors_in_a_row = 0;
                answer
            }
            Err(e) => {
                errors_in_a_row += 1;
                if counted {
                    *tally.failures.entry(0).or_default() += 1;
                }
                if errors_in_a_row >= TRANSPORT_ERRORS_IN_A_ROW_MAX {
                    bail!(
                        "client {id}: {errors_in_a_row} transport errors in a row, the last: {e:#}"
                    );
                }
                sender = connect(&target.addr).await?;
                continue;
            }
        };
        if !counted {
            continue;
        }
        if target.batch == 1 {
            tally.record(started, done, status, StatusCode::CREATED);
            continue;
        }
        tally.requests += 1;
        tally
            .latencies_us
            .push(u32::try_from(done.duration_since(started).as_micros()).unwrap_or(u32::MAX));
        if status != StatusCode::OK {
            *tally.failures.entry(status.as_u16()).or_default() += target.batch as u64;
            continue;
        }
        let answer: BatchAnswer =
            serde_json::from_slice(&body).context("a bulk answer that is not JSON")?;
        for item in answer.results {
            if item.status == 201 {
                tally.committed += 1;
            } else {
                *tally.failures.entry(item.status).or_default() += 1;
            }
        }
    }
    Ok(tally)
}

/// Registers BTC and opens hot:a and hot:b in the book (already there is fine).
async fn setup(target: &Target, book: &str) -> anyhow::Result<()> {
    let mut sender = connect(&target.addr).await?;
    let asset = target.request(
        Method::POST,
        "/v1/assets",
        r#"{"code":"BTC","scale":8,"name":"Bitcoin"}"#.to_owned(),
    )?;
    let steps = [
        ("POST /v1/assets BTC", asset),
        (
            "opening hot:a",
            target.request(
                Method::POST,
                &format!("/v1/books/{book}/accounts"),
                r#"{"name":"hot:a","kind":"asset"}"#.to_owned(),
            )?,
        ),
        (
            "opening hot:b",
            target.request(
                Method::POST,
                &format!("/v1/books/{book}/accounts"),
                r#"{"name":"hot:b","kind":"liability"}"#.to_owned(),
            )?,
        ),
    ];
    for (what, req) in steps {
        let (status, body) = send(&mut sender, req).await?;
        if status != StatusCode::OK && status != StatusCode::CREATED {
            bail!("{what}: {status} {}", String::from_utf8_lossy(&body));
        }
    }
    Ok(())
}

/// This process's user + system CPU seconds so far.
fn cpu_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").context("reading /proc/self/stat")?;
    // Fields after the command name (which may hold spaces) start at state.
    let rest = stat
        .rsplit_once(") ")
        .map(|(_, r)| r)
        .context("unexpected /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> anyhow::Result<f64> {
        Ok(fields
            .get(i)
            .context("short /proc/self/stat")?
            .parse::<f64>()?)
    };
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 here.
    Ok((ticks(11)? + ticks(12)?) / USER_HZ)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1_000.0
}

async fn run(args: &Args) -> anyhow::Result<serde_json::Value> {
    let target = std::sync::Arc::new(Target::new(args)?);
    setup(&target, &args.book).await?;
    let start = Instant::now();
    let from = start + Duration::from_secs(args.warmup);
    let end = from + Duration::from_secs(args.seconds);
    let clients: Vec<_> = (0..args.connections)
        .map(|id| match &target.read {
            Some(path) => tokio::spawn(reader(target.clone(), id, path.clone(), from, end)),
            None => tokio::spawn(client(target.clone(), id, from, end)),
        })
        .collect();
    tokio::time::sleep_until(from.into()).await;
    let cpu_from = cpu_seconds()?;
    tokio::time::sleep_until(end.into()).await;
    let cpu_to = cpu_seconds()?;
    let mut tally = Tally::default();
    for handle in clients {
        tally.merge(handle.await.context("a client panicked")??);
    }
    tally.latencies_us.sort_unstable();
    let secs = args.seconds as f64;
    let cpu = cpu_to - cpu_from;
    Ok(serde_json::json!({
        "book": args.book,
        "mode": match (&args.read, args.after_write, args.min_seq) {
            (None, _, _) => "write",
            (Some(_), false, _) => "read",
            (Some(_), true, false) => "read_after_write",
            (Some(_), true, true) => "read_after_write_min_seq",
        },
        "read_urls": args.read_url,
        "connections": args.connections,
        "batch": args.batch,
        "seconds": args.seconds,
        "committed": tally.committed,
        "tx_per_s": tally.committed as f64 / secs,
        "requests": tally.requests,
        "requests_per_s": tally.requests as f64 / secs,
        "failures": tally.failures.iter().map(|(k, v)| (k.to_string(), *v)).collect::<BTreeMap<_, _>>(),
        "latency_ms": {
            "p50": percentile(&tally.latencies_us, 50.0),
            "p99": percentile(&tally.latencies_us, 99.0),
            "p999": percentile(&tally.latencies_us, 99.9),
        },
        "generator_cpu_s": cpu,
        "generator_cores": cpu / secs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut argv = vec!["talea-post-load", "--token", "t"];
        argv.extend_from_slice(extra);
        Args::parse_from(argv)
    }

    #[test]
    fn settings_inside_their_limits_pass() {
        assert!(check(&args(&[])).is_ok());
        assert!(check(&args(&["--batch", "1000", "--connections", "4096"])).is_ok());
    }

    #[test]
    fn settings_outside_their_limits_are_refused_by_name() {
        for (extra, name) in [
            (&["--connections", "0"][..], "--connections"),
            (&["--connections", "4097"], "--connections"),
            (&["--batch", "0"], "--batch"),
            (&["--batch", "1001"], "--batch"),
            (&["--seconds", "0"], "--seconds"),
            (&["--warmup", "3601"], "--warmup"),
            (&["--threads", "65"], "--threads"),
            (&["--url", "https://x"], "--url"),
            (&["--book", "a/b"], "--book"),
        ] {
            let error = check(&args(extra)).err().map(|e| e.to_string());
            assert!(
                error.as_deref().is_some_and(|e| e.contains(name)),
                "{extra:?}: {error:?}"
            );
        }
    }
}
