//! `talea verify`: offline checks of files with `talea_verify` alone (no
//! server, no runtime): a book's hash chain from an export, a checkpoint's
//! signature, inclusion and consistency proofs, and a liability proof.
//!
//! A file that cannot be read or parsed is an input error (exit 1); a check
//! that fails (a chain break, a bad signature, a proof that does not lead
//! to its root) is a verification failure (exit 4), reported with the checks
//! that passed before it.

use std::io::Read as _;
use std::path::Path;
use std::process::ExitCode;

use serde::Serialize;
use serde_json::{Value, json};
use talea_verify::chain::{self, Summary};
use talea_verify::checkpoint::{Checkpoint, CheckpointError, KeyList};
use talea_verify::files::{self, ConsistencyProof, InclusionProof, LiabilityProof, ProofError};
use talea_verify::hash::{Hash, parse_hash, to_hex};
use talea_verify::liabilities::parse_balance;

use crate::cli::{
    ChainArgs, CheckpointArgs, ConsistencyArgs, InclusionArgs, LiabilityArgs, VerifyCommand,
};
use crate::{EXIT_VERIFY, Failure, Rendered};

/// One check and how it went.
#[derive(Debug, Serialize)]
pub(crate) struct Check {
    check: &'static str,
    ok: bool,
    message: String,
}

/// Runs one offline `talea verify` subcommand.
pub(crate) fn run(command: &VerifyCommand) -> Result<Rendered, Failure> {
    let mut input = Input::default();
    match command {
        VerifyCommand::Chain(args) => verify_chain(&mut input, args),
        VerifyCommand::Checkpoint(args) => verify_checkpoint(&mut input, args),
        VerifyCommand::Inclusion(args) => verify_inclusion(&mut input, args),
        VerifyCommand::Consistency(args) => verify_consistency(&mut input, args),
        VerifyCommand::Liability(args) => verify_liability(&mut input, args),
        // Needs a server: `online::verify_server`, run with the client.
        VerifyCommand::Server(_) => Err(Failure::Usage(
            "talea verify server needs a server (TALEA_URL)".to_owned(),
        )),
    }
}

/// Prints a failed verification (the checks that passed, then the one that
/// failed) and returns exit code 4.
pub(crate) fn report_failure(checks: &[Check], json: bool) -> ExitCode {
    if json {
        println!("{}", json!({"ok": false, "checks": checks}));
    } else {
        print!("{}", passed_lines(checks));
    }
    if let Some(failed) = checks.iter().find(|c| !c.ok) {
        eprintln!("talea: verification failed: {}", failed.message);
    }
    ExitCode::from(EXIT_VERIFY)
}

fn passed_lines(checks: &[Check]) -> String {
    checks
        .iter()
        .filter(|c| c.ok)
        .map(|c| format!("ok: {}\n", c.message))
        .collect()
}

/// Reads the files named on the command line; stdin (`-`) at most once.
#[derive(Default)]
struct Input {
    stdin_taken: bool,
}

impl Input {
    fn text(&mut self, path: &Path) -> Result<String, Failure> {
        if path != Path::new("-") {
            return std::fs::read_to_string(path)
                .map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())));
        }
        if std::mem::replace(&mut self.stdin_taken, true) {
            return Err(Failure::Usage(
                "stdin (`-`) can be given for one file only".to_owned(),
            ));
        }
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Failure::Usage(format!("cannot read stdin: {e}")))?;
        Ok(text)
    }

    /// Reads and parses one document; a parse error names the file.
    fn parse<T, E: std::fmt::Display>(
        &mut self,
        path: &Path,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, Failure> {
        let text = self.text(path)?;
        parse(&text).map_err(|e| Failure::Usage(format!("{}: {e}", name(path))))
    }

    fn checkpoint(&mut self, path: &Path) -> Result<Checkpoint, Failure> {
        self.parse(path, files::parse_checkpoint)
    }

    fn keys(&mut self, path: &Path) -> Result<KeyList, Failure> {
        self.parse(path, files::parse_keys)
    }
}

fn name(path: &Path) -> String {
    match path == Path::new("-") {
        true => "stdin".to_owned(),
        false => path.display().to_string(),
    }
}

/// A failed check that ends the command with exit 4.
pub(crate) fn failed(check: &'static str, message: String) -> Failure {
    Failure::Verify(vec![Check {
        check,
        ok: false,
        message,
    }])
}

/// Reads and parses the file at `path` (`-`: stdin).
pub(crate) fn read_file<T, E: std::fmt::Display>(
    path: &Path,
    parse: impl FnOnce(&str) -> Result<T, E>,
) -> Result<T, Failure> {
    Input::default().parse(path, parse)
}

/// The checks run so far: each passed one becomes an `ok:` line.
#[derive(Default)]
pub(crate) struct Checks {
    done: Vec<Check>,
}

impl Checks {
    /// Records `result` as `check`: passed with `ok`'s message, or ends the
    /// command (exit 4 for a failed check, 1 for a malformed document).
    pub(crate) fn record<T>(
        &mut self,
        check: &'static str,
        result: Result<T, ProofError>,
        ok: impl FnOnce(&T) -> String,
    ) -> Result<T, Failure> {
        match result {
            Ok(value) => {
                self.pass(check, ok(&value));
                Ok(value)
            }
            Err(e) if is_malformed(&e) => Err(Failure::Usage(format!("{check}: {e}"))),
            Err(e) => {
                self.done.push(Check {
                    check,
                    ok: false,
                    message: format!("{check}: {e}"),
                });
                Err(Failure::Verify(std::mem::take(&mut self.done)))
            }
        }
    }

    /// Records a check that passed.
    fn pass(&mut self, check: &'static str, message: String) {
        self.done.push(Check {
            check,
            ok: true,
            message,
        });
    }

    /// Verifies a checkpoint's signature with the key list.
    pub(crate) fn signature(
        &mut self,
        checkpoint: &Checkpoint,
        keys: &KeyList,
    ) -> Result<(), Failure> {
        let result = checkpoint.verify(keys).map_err(ProofError::from);
        self.record("signature", result, |()| {
            format!(
                "checkpoint of book {} at tree size {} is signed by key {}",
                checkpoint.book, checkpoint.tree_size, checkpoint.key_id
            )
        })
    }

    /// What the command prints when every check passed.
    pub(crate) fn finish(self, extra: Value) -> Rendered {
        let mut body = json!({"ok": true, "checks": self.done});
        if let (Some(body), Value::Object(extra)) = (body.as_object_mut(), extra) {
            body.extend(extra);
        }
        Rendered::new(&body, passed_lines(&self.done))
    }
}

/// A document that is not what it should be (exit 1), as opposed to one
/// that is well formed but does not verify (exit 4).
fn is_malformed(e: &ProofError) -> bool {
    match e {
        ProofError::File(_) => true,
        ProofError::Checkpoint(e) => matches!(
            e,
            CheckpointError::BadBook
                | CheckpointError::BadTimestamp(_)
                | CheckpointError::Hex { .. }
                | CheckpointError::Algorithm(_)
                | CheckpointError::BadPublicKey
                | CheckpointError::KeyFile(_)
        ),
        _ => false,
    }
}

/// `talea verify chain`.
fn verify_chain(input: &mut Input, args: &ChainArgs) -> Result<Rendered, Failure> {
    let events = input.parse(&args.events, files::parse_events)?;
    if events.is_empty() {
        return Err(Failure::Usage(format!(
            "{} holds no events",
            name(&args.events)
        )));
    }
    let count = events.len();
    let mut checks = Checks::default();
    let summary = match (&args.checkpoint, &args.keys) {
        (Some(checkpoint), Some(keys)) => {
            let checkpoint = input.checkpoint(checkpoint)?;
            let keys = input.keys(keys)?;
            chain_against(&mut checks, &args.book, &checkpoint, &keys, events)?
        }
        _ => {
            let start = chain_start(args)?;
            checks.record(
                "chain",
                chain::verify_chain_from(start, events).map_err(ProofError::from),
                |s| chain_line(&args.book, count, s),
            )?
        }
    };
    Ok(checks.finish(json!({"chain": chain_json(&args.book, count, &summary)})))
}

/// Where the export's chain starts: the book's first event, or just after
/// a seq and hash verified before (`--after-seq`, `--after-hash`).
fn chain_start(args: &ChainArgs) -> Result<chain::ChainStart, Failure> {
    let mut start = chain::ChainStart::genesis(&args.book);
    if let (Some(after_seq), Some(after_hash)) = (args.after_seq, &args.after_hash) {
        start.after_seq = after_seq;
        start.prev =
            parse_hash(after_hash).map_err(|e| Failure::Usage(format!("--after-hash: {e}")))?;
    }
    Ok(start)
}

/// The checkpoint's signature, then the chain and its root at the
/// checkpoint's tree size.
pub(crate) fn chain_against(
    checks: &mut Checks,
    book: &str,
    checkpoint: &Checkpoint,
    keys: &KeyList,
    events: Vec<Value>,
) -> Result<Summary, Failure> {
    checks.signature(checkpoint, keys)?;
    let same_book = match checkpoint.book == book {
        true => Ok(()),
        false => Err(ProofError::Mismatch(format!(
            "the checkpoint is of book {:?}, not {book:?}",
            checkpoint.book
        ))),
    };
    checks.record("book", same_book, |()| {
        format!("the checkpoint is of book {book}")
    })?;
    let count = events.len();
    let summary = checks.record(
        "chain",
        files::verify_export_against(checkpoint, events),
        |s| chain_line(book, count, s),
    )?;
    // `verify_export_against` checked the root along with the chain; the
    // root gets a line of its own so the output says both.
    checks.pass(
        "root",
        format!(
            "the first {} events have the checkpoint's root {}",
            checkpoint.tree_size, checkpoint.root_hash
        ),
    );
    Ok(summary)
}

fn chain_line(book: &str, count: usize, summary: &Summary) -> String {
    format!(
        "chain of book {book}: {count} events checked, seq {} to {}, last hash {}",
        summary.first_seq,
        summary.last_seq,
        to_hex(&summary.head)
    )
}

pub(crate) fn chain_json(book: &str, count: usize, summary: &Summary) -> Value {
    json!({
        "book": book,
        "events": count,
        "first_seq": summary.first_seq,
        "last_seq": summary.last_seq,
        "last_hash": to_hex(&summary.head),
        "root": summary.root.as_ref().map(|r| to_hex(r)),
    })
}

/// `talea verify checkpoint`.
fn verify_checkpoint(input: &mut Input, args: &CheckpointArgs) -> Result<Rendered, Failure> {
    let checkpoint = input.checkpoint(&args.checkpoint)?;
    let keys = input.keys(&args.keys)?;
    let mut checks = Checks::default();
    checks.signature(&checkpoint, &keys)?;
    Ok(checks.finish(json!({"checkpoint": checkpoint})))
}

/// Checks the signatures of `checkpoints` when a key list is given, or
/// returns the note that they were not checked.
fn signatures(
    input: &mut Input,
    checks: &mut Checks,
    keys: Option<&Path>,
    checkpoints: &[&Checkpoint],
) -> Result<Option<String>, Failure> {
    let Some(keys) = keys else {
        return Ok(Some(
            "no --keys: the checkpoints' signatures were not checked".to_owned(),
        ));
    };
    let keys = input.keys(keys)?;
    for checkpoint in checkpoints {
        checks.signature(checkpoint, &keys)?;
    }
    Ok(None)
}

fn with_note(out: Rendered, note: Option<String>) -> Rendered {
    match note {
        Some(note) => out.note(note),
        None => out,
    }
}

/// `talea verify inclusion`.
fn verify_inclusion(input: &mut Input, args: &InclusionArgs) -> Result<Rendered, Failure> {
    let proof = input.parse(&args.proof, InclusionProof::parse)?;
    let checkpoint = input.checkpoint(&args.checkpoint)?;
    let mut checks = Checks::default();
    let note = signatures(input, &mut checks, args.keys.as_deref(), &[&checkpoint])?;
    checks.record("inclusion", proof.verify_against(&checkpoint), |()| {
        format!(
            "event seq {} of book {} is in the checkpoint's tree of {} events (root {})",
            proof.seq, proof.book, checkpoint.tree_size, checkpoint.root_hash
        )
    })?;
    Ok(with_note(checks.finish(json!({})), note))
}

/// `talea verify consistency`.
fn verify_consistency(input: &mut Input, args: &ConsistencyArgs) -> Result<Rendered, Failure> {
    let proof = input.parse(&args.proof, ConsistencyProof::parse)?;
    let first = input.checkpoint(&args.from)?;
    let second = input.checkpoint(&args.to)?;
    let mut checks = Checks::default();
    let note = signatures(input, &mut checks, args.keys.as_deref(), &[&first, &second])?;
    checks.record("consistency", proof.verify_against(&first, &second), |()| {
        format!(
            "book {}'s tree of {} events (root {}) is a prefix of its tree of {} events (root {})",
            proof.book, first.tree_size, first.root_hash, second.tree_size, second.root_hash
        )
    })?;
    Ok(with_note(checks.finish(json!({})), note))
}

/// `talea verify liability`.
fn verify_liability(input: &mut Input, args: &LiabilityArgs) -> Result<Rendered, Failure> {
    let proof = input.parse(&args.proof, LiabilityProof::parse)?;
    let published = published(args)?;
    let mut checks = Checks::default();
    let result = match &published {
        Some((root, total)) => proof.verify_published(root, *total),
        None => proof.verify(),
    };
    checks.record("liability", result, |()| {
        format!(
            "account {} with balance {} {} is counted in snapshot {}'s total {} (root {})",
            proof.account, proof.balance, proof.asset, proof.snapshot, proof.total, proof.root
        )
    })?;
    let out = checks.finish(json!({}));
    Ok(match published {
        Some(_) => out,
        None => out.note(
            "no --root and --total: checked against the proof's own root and total; \
             compare them with the published snapshot",
        ),
    })
}

/// The published root and total, when given.
fn published(args: &LiabilityArgs) -> Result<Option<(Hash, u128)>, Failure> {
    let (Some(root), Some(total)) = (&args.root, &args.total) else {
        return Ok(None);
    };
    let root = parse_hash(root).map_err(|e| Failure::Usage(format!("--root: {e}")))?;
    let total = parse_balance(total).map_err(|e| Failure::Usage(format!("--total: {e}")))?;
    Ok(Some((root, total)))
}
