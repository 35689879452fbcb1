//! `talea import`: the transactions of an NDJSON file posted in bulk.
//!
//! The file is read and checked one line at a time, never whole: a line is
//! checked (JSON, shape of a post body, idempotency key, a key reused with
//! another body) before the request that would carry it is sent. Every line
//! carries its own idempotency key, so a rerun after a crash is exact: the
//! lines that had committed come back deduplicated, the others commit now.
//!
//! Stopping rule: without `--keep-going`, nothing past a refused line is
//! sent. A line refused here ends the reading; the valid lines read before
//! it are sent (a rerun resumes either way). A line the server refuses ends
//! the import after the request that carried it, whose other items were
//! answered on their own and are counted.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::{Map, Value};
use talea_api::{ApiError, LedgerApi as _, PostTransactionRequest};
use talea_client::TaleaClient;
use talea_core::BookName;
use talea_core::limits::BATCH_BODY_BYTES_MAX;
use talea_verify::hash::Hash;

use crate::cli::ImportArgs;
use crate::ndjson::{Input, LINE_BYTES_MAX, Line, check_line};
use crate::progress::{Counts, Progress};
use crate::render::{Col, table};
use crate::{EXIT_REJECTED, EXIT_UNAVAILABLE, EXIT_USAGE, Failure, Rendered};

/// Transactions per request when `--batch` is not given.
pub(crate) const BATCH_DEFAULT: usize = 100;
/// Room kept for a bulk post's envelope (`{"transactions":[`, `]}`) within
/// the route's body limit, `BATCH_BODY_BYTES_MAX`.
const ENVELOPE_BYTES: usize = 64;
/// Distinct keys remembered for the file-wide duplicate check (some 150
/// bytes each, so about 750 MB at most). Past it the server alone catches a
/// key reused with another body (`idempotency_key_reused`), and a note says so.
const KEYS_TRACKED_MAX: usize = 5_000_000;
/// Refusals kept for the summary, in line order; past it they are counted only.
const REFUSALS_KEPT_MAX: usize = 10_000;
/// Refusals listed in the table; `--json` lists every one kept.
const REFUSALS_SHOWN_MAX: usize = 50;
/// Rounds of resending the items a bulk post answered with a retryable
/// error (same keys), after which the import stops as unavailable.
const ITEM_RETRY_ROUNDS_MAX: u32 = 5;
/// Longest wait before such a round.
const ITEM_RETRY_DELAY_MAX: Duration = Duration::from_secs(5);

/// `talea import --dry-run`: every line checked, nothing sent, no server.
pub(crate) fn dry_run(args: &ImportArgs) -> Result<Rendered, Failure> {
    let mut import = Import::open(args)?;
    loop {
        // Valid lines are counted as they are read; the batch goes nowhere.
        let (_, end) = import.read_batch();
        import.show_progress();
        if end {
            break;
        }
    }
    import.finish()
}

/// `talea import`: reads, checks and posts the file in bulk requests.
pub(crate) async fn post(client: &TaleaClient, args: &ImportArgs) -> Result<Rendered, Failure> {
    let mut import = Import::open(args)?;
    loop {
        let (batch, end) = import.read_batch();
        if !batch.is_empty() {
            import.send(client, batch).await;
        }
        import.show_progress();
        if end || import.summary.stopped.is_some() {
            break;
        }
    }
    import.finish()
}

/// A line that passed the local checks, ready to send.
struct Item {
    line: u64,
    request: PostTransactionRequest,
    /// Its size as sent (compact JSON), for the bulk body limit.
    bytes: usize,
}

/// A line that was not committed: refused here, before sending, or by the server.
#[derive(Debug, Serialize)]
struct Refusal {
    line: u64,
    /// `local` (by this command: nothing of it was sent) or `server`.
    source: &'static str,
    /// The server's status for the item.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    /// The error code: the server's (`docs/api.md`), or one of the local
    /// ones (`invalid_json`, `invalid_request`, `missing_idempotency_key`,
    /// `duplicate_idempotency_key`, `line_too_long`).
    error: String,
    message: String,
    /// The server's details (`account`, `imbalances`, `tx_id`, …).
    #[serde(skip_serializing_if = "Map::is_empty")]
    details: Map<String, Value>,
}

impl Refusal {
    fn local(line: u64, error: &str, message: String) -> Self {
        Self {
            line,
            source: "local",
            status: None,
            error: error.to_owned(),
            message,
            details: Map::new(),
        }
    }

    fn server(line: u64, e: &ApiError) -> Self {
        let body = e.to_body();
        Self {
            line,
            source: "server",
            status: Some(e.status()),
            error: body.error,
            message: body.message,
            details: body.details,
        }
    }
}

/// Why the import ended before the end of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
enum StopReason {
    /// The input could not be read on (exit 1).
    ReadError,
    /// A line was refused, here or by the server, without `--keep-going`.
    Refused,
    /// The server refused a request as a whole (a token, a scope; exit 2).
    RequestRefused,
    /// No answer, or only retryable ones, until the retries ran out (exit 3).
    Unavailable,
}

/// Where and why the import stopped.
#[derive(Debug, Serialize)]
struct Stopped {
    reason: StopReason,
    /// The last line read: nothing after it was read or sent.
    after_line: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    message: String,
    /// The lines of a request that failed as a whole: for `unavailable`
    /// they may or may not have committed (a rerun settles them), for
    /// `request_refused` none did.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    lines: Vec<u64>,
}

/// What `talea import` prints at the end (`--json`: this object).
#[derive(Debug, Serialize)]
struct Summary {
    book: String,
    file: String,
    dry_run: bool,
    /// Lines read, blank ones included.
    lines: u64,
    /// Blank lines, skipped.
    blank: u64,
    /// Lines that passed the local checks (sent, or with `--dry-run` sendable).
    valid: u64,
    /// Newly committed (201).
    committed: u64,
    /// Already committed before, by an earlier run or an earlier line (200).
    deduplicated: u64,
    /// Lines refused, here or by the server.
    refused: u64,
    /// The refusals, in line order (the first `REFUSALS_KEPT_MAX`).
    refusals: Vec<Refusal>,
    /// Absent when the whole input was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    stopped: Option<Stopped>,
    /// Set when the file had more distinct keys than the duplicate check keeps.
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate_check_ended_at_line: Option<u64>,
    elapsed_ms: u64,
}

/// The keys seen so far, with the line and body digest of their first use.
#[derive(Default)]
struct Keys {
    seen: HashMap<String, (u64, Hash)>,
}

/// One import: the input, the checks' memory, the tally and the progress.
struct Import {
    input: Input,
    book: String,
    batch: usize,
    keep_going: bool,
    keys: Keys,
    /// A valid line read past the last batch's byte budget, first in the next.
    carry: Option<Item>,
    summary: Summary,
    progress: Progress,
    started: Instant,
}

impl Import {
    /// Checks the book's name and opens the input; nothing is read yet.
    fn open(args: &ImportArgs) -> Result<Self, Failure> {
        BookName::parse(&args.book)
            .map_err(|e| Failure::Usage(format!("--book: book name {e}")))?;
        let (input, size, file) = Input::open(&args.file)?;
        Ok(Self {
            input,
            book: args.book.clone(),
            batch: args.batch,
            // A dry run checks every line, refused ones or not.
            keep_going: args.keep_going || args.dry_run,
            keys: Keys::default(),
            carry: None,
            summary: Summary {
                book: args.book.clone(),
                file,
                dry_run: args.dry_run,
                lines: 0,
                blank: 0,
                valid: 0,
                committed: 0,
                deduplicated: 0,
                refused: 0,
                refusals: Vec::new(),
                stopped: None,
                duplicate_check_ended_at_line: None,
                elapsed_ms: 0,
            },
            progress: Progress::new(args.progress, size, args.dry_run),
            started: Instant::now(),
        })
    }

    /// Reads up to `--batch` valid lines, within the bulk route's body
    /// limit; `true` when nothing more is to be read (the end, a read
    /// error, or a refused line without `--keep-going`).
    fn read_batch(&mut self) -> (Vec<Item>, bool) {
        let budget = BATCH_BODY_BYTES_MAX - ENVELOPE_BYTES;
        let mut batch = Vec::with_capacity(self.batch);
        let mut bytes = 0;
        if let Some(item) = self.carry.take() {
            bytes += item.bytes + 1;
            batch.push(item);
        }
        while batch.len() < self.batch {
            let line = match self.input.next() {
                Ok(Some(line)) => line,
                Ok(None) => return (batch, true),
                Err(e) => {
                    let after = self.input.line;
                    self.stop(Stopped {
                        reason: StopReason::ReadError,
                        after_line: after,
                        error: None,
                        message: format!(
                            "cannot read {} after line {after}: {e}",
                            self.summary.file
                        ),
                        lines: Vec::new(),
                    });
                    return (batch, true);
                }
            };
            let number = self.input.line;
            self.summary.lines = number;
            match self.check(number, line) {
                Ok(None) => self.summary.blank += 1,
                Ok(Some(item)) => {
                    self.summary.valid += 1;
                    if !batch.is_empty() && bytes + item.bytes + 1 > budget {
                        self.carry = Some(item);
                        return (batch, false);
                    }
                    bytes += item.bytes + 1;
                    batch.push(item);
                }
                Err((error, message)) => {
                    self.refuse(Refusal::local(number, error, message));
                    if !self.keep_going {
                        self.stop_at_refusal(number);
                        return (batch, true);
                    }
                }
            }
        }
        (batch, false)
    }

    /// The local checks of line `number`: `Ok(None)` for a blank line, or
    /// a local refusal's code and message.
    fn check(&mut self, number: u64, line: Line) -> Result<Option<Item>, (&'static str, String)> {
        let text = match line {
            Line::Text(text) => text,
            Line::TooLong => {
                return Err((
                    "line_too_long",
                    format!(
                        "the line is longer than {LINE_BYTES_MAX} bytes, the server's limit \
                         for one post's body"
                    ),
                ));
            }
        };
        let Some(checked) = check_line(&text)? else {
            return Ok(None);
        };
        let key = &checked.request.idempotency_key;
        match self.keys.seen.get(key) {
            Some((first, digest)) if *digest != checked.digest => {
                return Err((
                    "duplicate_idempotency_key",
                    format!(
                        "idempotency_key {key:?} is used on line {first} with another body; \
                         one of the two is a mistake"
                    ),
                ));
            }
            // The same body again: a replay, which the server deduplicates.
            Some(_) => {}
            None if self.keys.seen.len() < KEYS_TRACKED_MAX => {
                self.keys.seen.insert(key.clone(), (number, checked.digest));
            }
            None => {
                self.summary
                    .duplicate_check_ended_at_line
                    .get_or_insert(number);
            }
        }
        Ok(Some(Item {
            line: number,
            request: checked.request,
            bytes: checked.bytes,
        }))
    }

    /// Sends `batch` as one bulk post and tallies each item's answer.
    /// Items answered with a retryable error are sent again (same keys)
    /// for up to `ITEM_RETRY_ROUNDS_MAX` rounds; the SDK already retries a
    /// request that got no answer or a retryable one as a whole.
    async fn send(&mut self, client: &TaleaClient, batch: Vec<Item>) {
        let mut pending = batch;
        let mut refused_here = None;
        let mut round = 0;
        loop {
            let requests = pending.iter().map(|i| i.request.clone()).collect();
            let answers = match client.post_many(&self.book, requests).await {
                Ok(answers) => answers,
                Err(e) => {
                    let lines = pending.iter().map(|i| i.line).collect();
                    self.stop_request(&e, lines);
                    return;
                }
            };
            let mut again = Vec::new();
            let mut last_retryable = None;
            for (item, answer) in pending.into_iter().zip(answers) {
                match answer {
                    Ok(tx) if tx.deduplicated == Some(true) => self.summary.deduplicated += 1,
                    Ok(_) => self.summary.committed += 1,
                    Err(e) if e.is_retryable() => {
                        again.push(item);
                        last_retryable = Some(e);
                    }
                    Err(e) => {
                        refused_here.get_or_insert(item.line);
                        self.refuse(Refusal::server(item.line, &e));
                    }
                }
            }
            let Some(error) = last_retryable else { break };
            round += 1;
            if round > ITEM_RETRY_ROUNDS_MAX {
                let lines = again.iter().map(|i| i.line).collect();
                self.stop_request(&error, lines);
                return;
            }
            let wait = Duration::from_secs(error.retry_after_s().unwrap_or(1));
            tokio::time::sleep(wait.min(ITEM_RETRY_DELAY_MAX)).await;
            pending = again;
        }
        if let Some(line) = refused_here
            && !self.keep_going
        {
            self.stop_at_refusal(line);
        }
    }

    fn refuse(&mut self, refusal: Refusal) {
        self.summary.refused += 1;
        if self.summary.refusals.len() < REFUSALS_KEPT_MAX {
            // Server refusals of one request come after local ones read
            // later than them; keep the list in line order.
            let at = self
                .summary
                .refusals
                .partition_point(|r| r.line <= refusal.line);
            self.summary.refusals.insert(at, refusal);
        }
    }

    /// Stops after a refused line (first refused: `line`), without `--keep-going`.
    fn stop_at_refusal(&mut self, line: u64) {
        let after = self.input.line;
        self.stop(Stopped {
            reason: StopReason::Refused,
            after_line: after,
            error: None,
            message: format!(
                "line {line} was refused, so nothing after line {after} was sent \
                 (--keep-going goes on past refused lines)"
            ),
            lines: Vec::new(),
        });
    }

    /// Stops on a request that failed as a whole, carrying `lines`.
    fn stop_request(&mut self, e: &ApiError, lines: Vec<u64>) {
        let (reason, message) = if e.is_retryable() {
            (
                StopReason::Unavailable,
                format!("unavailable after retries: {e}; run the same command again to resume"),
            )
        } else {
            (
                StopReason::RequestRefused,
                format!("the server refused the request as a whole: {e}"),
            )
        };
        let after = self.input.line;
        self.stop(Stopped {
            reason,
            after_line: after,
            error: Some(e.code().to_owned()),
            message,
            lines,
        });
    }

    /// Records why the import stops; a graver reason replaces a lesser one
    /// (a line refused, then its request unavailable: exit 3, rerun).
    fn stop(&mut self, stopped: Stopped) {
        match &self.summary.stopped {
            Some(now) if now.reason >= stopped.reason => {}
            _ => self.summary.stopped = Some(stopped),
        }
    }

    fn show_progress(&mut self) {
        let counts = Counts {
            line: self.input.line,
            bytes: self.input.bytes,
            committed: self.summary.committed,
            deduplicated: self.summary.deduplicated,
            refused: self.summary.refused,
            valid: self.summary.valid,
        };
        self.progress.update(&counts);
    }

    /// The summary, and the exit code it calls for.
    fn finish(mut self) -> Result<Rendered, Failure> {
        self.progress.finish();
        self.summary.elapsed_ms =
            u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let summary = self.summary;
        let code = exit_code(&summary);
        let mut out = Rendered::new(&summary, human(&summary));
        if let Some(line) = summary.duplicate_check_ended_at_line {
            out = out.note(format!(
                "more than {KEYS_TRACKED_MAX} distinct keys: from line {line} on, a key reused \
                 with another body is caught by the server (idempotency_key_reused), not here"
            ));
        }
        if let Some(stopped) = &summary.stopped {
            out = out.json_note(format!(
                "import stopped after line {}: {}",
                stopped.after_line, stopped.message
            ));
        }
        match code {
            0 => Ok(out),
            code => Err(Failure::Report(out, code)),
        }
    }
}

/// The exit code of `docs/cli.md`: 3 unavailable (rerun later), 2 a request
/// or a line refused by the server, 1 a line refused here or the input
/// unreadable, 0 every line committed or deduplicated.
fn exit_code(summary: &Summary) -> u8 {
    match summary.stopped.as_ref().map(|s| s.reason) {
        Some(StopReason::Unavailable) => return EXIT_UNAVAILABLE,
        Some(StopReason::RequestRefused) => return EXIT_REJECTED,
        _ => {}
    }
    if summary.refusals.iter().any(|r| r.source == "server") {
        return EXIT_REJECTED;
    }
    let read_error = summary
        .stopped
        .as_ref()
        .is_some_and(|s| s.reason == StopReason::ReadError);
    if summary.refused > 0 || read_error {
        return EXIT_USAGE;
    }
    0
}

/// The table: counts, the refused lines, and why it stopped.
fn human(s: &Summary) -> String {
    let secs = s.elapsed_ms as f64 / 1000.0;
    let mut out = if s.dry_run {
        format!(
            "dry run of {} for book {}: {} lines checked in {secs:.1} s, nothing sent\n\n",
            s.file, s.book, s.lines
        )
    } else {
        format!(
            "import of {} into book {}: {} lines read in {secs:.1} s\n\n",
            s.file, s.book, s.lines
        )
    };
    let mut counts = Vec::new();
    if s.dry_run {
        counts.push(("valid", s.valid));
    } else {
        counts.push(("committed", s.committed));
        counts.push(("deduplicated", s.deduplicated));
    }
    counts.push(("refused", s.refused));
    counts.push(("blank", s.blank));
    let rows: Vec<Vec<String>> = counts
        .into_iter()
        .map(|(what, n)| vec![what.to_owned(), n.to_string()])
        .collect();
    out.push_str(&table(&[Col("LINES", false), Col("COUNT", true)], &rows));
    if !s.refusals.is_empty() {
        let rows: Vec<Vec<String>> = s
            .refusals
            .iter()
            .take(REFUSALS_SHOWN_MAX)
            .map(|r| {
                vec![
                    r.line.to_string(),
                    r.source.to_owned(),
                    r.error.clone(),
                    r.message.clone(),
                ]
            })
            .collect();
        out.push('\n');
        out.push_str(&table(
            &[
                Col("LINE", true),
                Col("BY", false),
                Col("ERROR", false),
                Col("MESSAGE", false),
            ],
            &rows,
        ));
        let unlisted = s.refused.saturating_sub(rows.len() as u64);
        if unlisted > 0 {
            out.push_str(&format!(
                "… and {unlisted} more refused lines (--json lists {})\n",
                s.refusals.len()
            ));
        }
    }
    if let Some(stopped) = &s.stopped {
        out.push_str(&format!(
            "\nstopped after line {}: {}\n",
            stopped.after_line, stopped.message
        ));
        let what = match stopped.reason {
            StopReason::Unavailable => "may or may not have committed",
            _ => "were not committed",
        };
        match stopped.lines.as_slice() {
            [] => {}
            [line] => out.push_str(&format!("line {line}, sent in that request, {what}\n")),
            [first, .., last] => out.push_str(&format!(
                "the {} lines of that request, {first} to {last}, {what}\n",
                stopped.lines.len()
            )),
        }
    }
    out
}
