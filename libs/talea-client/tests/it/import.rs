//! `talea import` against a real talead: bulk posts from NDJSON, resume by
//! key, refused lines by number, `--keep-going`, `--dry-run`, limits.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::cli::{finish, seeded, talea, talea_with};
use crate::support::Run;

/// One line: `amount` BTC from `from` to `to`, under `key`.
fn transfer(key: &str, from: &str, to: &str, amount: &str) -> String {
    json!({
        "idempotency_key": key,
        "postings": [
            {"account": from, "asset": "BTC", "debit": amount},
            {"account": to, "asset": "BTC", "credit": amount},
        ],
    })
    .to_string()
}

/// A deposit of `amount` BTC to `customer` (the hot wallet's side debited).
fn deposit(key: &str, customer: &str, amount: &str) -> String {
    transfer(key, "hot-wallet", customer, amount)
}

/// Writes `lines` (joined by newlines) to a file in `dir`.
fn ndjson(dir: &Path, name: &str, lines: &[String]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, lines.join("\n") + "\n").expect("writes the file");
    path
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}

/// `talea --json import --book demo …` with plain progress (the default off a terminal).
async fn import(base: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut all = vec!["--json", "import", "--book", "demo"];
    all.extend_from_slice(args);
    talea_with(base, &all, stdin).await
}

/// A customer's posted BTC balance ("0" when it never moved).
async fn btc(base: &str, account: &str) -> String {
    let run = talea(
        base,
        &["--json", "balance", "--book", "demo", "--account", account],
    )
    .await
    .ok();
    match &run.json()["balances"]["BTC"] {
        Value::String(s) => s.clone(),
        _ => "0".to_owned(),
    }
}

/// The summary's refusals as (line, source, error).
fn refusals(summary: &Value) -> Vec<(u64, String, String)> {
    summary["refusals"]
        .as_array()
        .expect("refusals")
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().expect("line"),
                r["source"].as_str().expect("source").to_owned(),
                r["error"].as_str().expect("error").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_imports_across_batches_and_a_rerun_is_all_deduplicated() {
    let (server, db) = seeded().await;
    let base = server.base.as_str();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut lines: Vec<String> = (1..=2000)
        .map(|i| deposit(&format!("dep-{i}"), "customers:alice", "0.001"))
        .collect();
    lines.insert(1000, "   ".to_owned());
    let file = ndjson(dir.path(), "deposits.ndjson", &lines);

    let first = import(base, &[path(&file), "--batch", "300"], None)
        .await
        .ok();
    let summary = first.json();
    assert_eq!(summary["lines"], 2001, "{first:#?}");
    assert_eq!(summary["blank"], 1);
    assert_eq!(summary["committed"], 2000);
    assert_eq!(summary["deduplicated"], 0);
    assert_eq!(summary["refused"], 0);
    assert!(summary.get("stopped").is_none(), "{first:#?}");
    // Not a terminal: plain progress lines on stderr, not a bar.
    assert!(
        first.stderr.contains("talea: import: line ") && first.stderr.contains("% of "),
        "{first:#?}"
    );
    assert_eq!(btc(base, "customers:alice").await, "2");

    // As after a crash: the rerun resumes, and nothing posts twice.
    let again = talea(
        base,
        &[
            "import",
            "--book",
            "demo",
            path(&file),
            "--progress",
            "none",
        ],
    )
    .await
    .ok();
    assert!(again.stderr.is_empty(), "{again:#?}");
    let row = |name: &str| {
        again
            .stdout
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
    };
    assert_eq!(row("deduplicated"), Some(vec!["deduplicated", "2000"]));
    assert_eq!(row("committed"), Some(vec!["committed", "0"]));
    assert_eq!(btc(base, "customers:alice").await, "2");
    finish(server, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_refusal_names_its_line_and_stops_after_its_request() {
    let (server, db) = seeded().await;
    let base = server.base.as_str();
    let lines = [
        deposit("s-1", "customers:alice", "1"),
        // Alice has 1 BTC and a min_balance of 0.
        transfer("s-2", "customers:alice", "customers:bob", "5"),
        deposit("s-3", "customers:bob", "1"),
    ]
    .join("\n");

    // From stdin, two lines per request: the second request is never sent.
    let stopped = import(base, &["-", "--batch", "2"], Some(&lines))
        .await
        .exits(2);
    let summary = stopped.json();
    assert_eq!(summary["file"], "stdin");
    assert_eq!(summary["committed"], 1, "{stopped:#?}");
    assert_eq!(
        refusals(&summary),
        [(2, "server".to_owned(), "insufficient_balance".to_owned())]
    );
    assert_eq!(summary["refusals"][0]["status"], 422);
    assert_eq!(
        summary["refusals"][0]["details"]["account"],
        "customers:alice"
    );
    assert_eq!(summary["stopped"]["reason"], "refused");
    assert_eq!(summary["stopped"]["after_line"], 2);
    assert!(
        stopped.stderr.contains("line 2 was refused"),
        "{stopped:#?}"
    );
    assert_eq!(btc(base, "customers:bob").await, "0");

    // --keep-going reports the line and goes on; line 1 is a replay now.
    let going = import(base, &["-", "--batch", "2", "--keep-going"], Some(&lines))
        .await
        .exits(2);
    let summary = going.json();
    assert_eq!(summary["committed"], 1, "{going:#?}");
    assert_eq!(summary["deduplicated"], 1);
    assert_eq!(summary["refused"], 1);
    assert!(summary.get("stopped").is_none(), "{going:#?}");
    assert_eq!(btc(base, "customers:bob").await, "1");
    assert_eq!(btc(base, "customers:alice").await, "1");
    finish(server, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_are_refused_by_number_before_they_are_sent() {
    let (server, db) = seeded().await;
    let base = server.base.as_str();
    let dir = tempfile::tempdir().expect("temp dir");

    // A line without a key is refused before anything is sent.
    let keyless = ndjson(
        dir.path(),
        "keyless.ndjson",
        &[
            r#"{"postings":[{"account":"hot-wallet","asset":"BTC","debit":"1"},{"account":"customers:alice","asset":"BTC","credit":"1"}]}"#.to_owned(),
            deposit("k-2", "customers:alice", "1"),
        ],
    );
    let run = import(base, &[path(&keyless)], None).await.exits(1);
    let summary = run.json();
    assert_eq!(
        refusals(&summary),
        [(1, "local".to_owned(), "missing_idempotency_key".to_owned())]
    );
    assert_eq!(summary["lines"], 1, "nothing past line 1 is read: {run:#?}");
    assert_eq!(btc(base, "customers:alice").await, "0");

    // Broken JSON on line 3 (a blank line counts): lines before it go, none after.
    let broken = ndjson(
        dir.path(),
        "broken.ndjson",
        &[
            deposit("b-1", "customers:alice", "1"),
            String::new(),
            r#"{"idempotency_key":"b-3","postings":["#.to_owned(),
            deposit("b-4", "customers:alice", "1"),
        ],
    );
    let run = talea(
        base,
        &[
            "import",
            "--book",
            "demo",
            path(&broken),
            "--progress",
            "none",
        ],
    )
    .await
    .exits(1);
    let refused_row = run
        .stdout
        .lines()
        .find(|l| l.contains("invalid_json"))
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>());
    assert_eq!(refused_row, Some(vec!["3", "local"]), "{run:#?}");
    assert!(
        run.stdout
            .contains("stopped after line 3: line 3 was refused"),
        "{run:#?}"
    );
    assert_eq!(btc(base, "customers:alice").await, "1");

    // A key used twice with different bodies: the second use is refused
    // here; the same body again is a replay. --keep-going reads on.
    let twice = ndjson(
        dir.path(),
        "twice.ndjson",
        &[
            deposit("t-1", "customers:bob", "1"),
            deposit("t-1", "customers:bob", "2"),
            deposit("t-1", "customers:bob", "1"),
            "[]".to_owned(),
            deposit("t-5", "customers:bob", "1"),
        ],
    );
    let run = import(base, &[path(&twice), "--keep-going"], None)
        .await
        .exits(1);
    let summary = run.json();
    assert_eq!(
        refusals(&summary),
        [
            (
                2,
                "local".to_owned(),
                "duplicate_idempotency_key".to_owned()
            ),
            (4, "local".to_owned(), "invalid_request".to_owned()),
        ]
    );
    assert!(
        summary["refusals"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("line 1")),
        "{run:#?}"
    );
    assert_eq!(summary["committed"], 2);
    assert_eq!(summary["deduplicated"], 1);
    assert_eq!(btc(base, "customers:bob").await, "2");
    finish(server, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_checks_every_line_and_sends_nothing() {
    let (server, db) = seeded().await;
    let base = server.base.as_str();
    let dir = tempfile::tempdir().expect("temp dir");
    let good = ndjson(
        dir.path(),
        "good.ndjson",
        &[
            deposit("d-1", "customers:alice", "1"),
            deposit("d-2", "customers:alice", "1"),
        ],
    );
    let run = import(base, &[path(&good), "--dry-run"], None).await.ok();
    let summary = run.json();
    assert_eq!(summary["dry_run"], true);
    assert_eq!(summary["valid"], 2);
    assert_eq!(summary["committed"], 0);

    // Every bad line is named, past the first, with no server at all.
    let too_long = json!({"idempotency_key": "d-5", "memo": "m".repeat(1024 * 1024)}).to_string();
    let bad = ndjson(
        dir.path(),
        "bad.ndjson",
        &[
            deposit("d-1", "customers:alice", "1"),
            "{oops".to_owned(),
            deposit("d-1", "customers:alice", "3"),
            r#"{"idempotency_key":"d-4","postings":[],"colour":"red"}"#.to_owned(),
            too_long,
            deposit("d-6", "customers:alice", "1"),
        ],
    );
    let run = talea_with(
        "http://127.0.0.1:9",
        &[
            "--json",
            "import",
            "--book",
            "demo",
            path(&bad),
            "--dry-run",
        ],
        None,
    )
    .await
    .exits(1);
    let summary = run.json();
    assert_eq!(
        refusals(&summary),
        [
            (2, "local".to_owned(), "invalid_json".to_owned()),
            (
                3,
                "local".to_owned(),
                "duplicate_idempotency_key".to_owned()
            ),
            (4, "local".to_owned(), "invalid_request".to_owned()),
            (5, "local".to_owned(), "line_too_long".to_owned()),
        ]
    );
    assert_eq!(summary["valid"], 2, "{run:#?}");
    assert_eq!(btc(base, "customers:alice").await, "0");
    finish(server, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_and_whole_request_failures_have_their_exit_codes() {
    let (server, db) = seeded().await;
    let base = server.base.as_str();
    let one = deposit("w-1", "customers:alice", "1");
    for batch in ["0", "1001"] {
        let run = import(base, &["-", "--batch", batch], Some(&one))
            .await
            .exits(1);
        assert!(run.stderr.contains("1 to 1000"), "{run:#?}");
    }
    let run = talea_with(base, &["import", "--book", "No Such Book", "-"], Some(&one))
        .await
        .exits(1);
    assert!(run.stderr.contains("--book"), "{run:#?}");
    let run = import(base, &["/nonexistent/file.ndjson"], None)
        .await
        .exits(1);
    assert!(run.stderr.contains("cannot read"), "{run:#?}");

    // Refused as a whole (the token): exit 2, the request's lines named.
    let run = import(base, &["-", "--token", "wrong"], Some(&one))
        .await
        .exits(2);
    let summary = run.json();
    assert_eq!(summary["stopped"]["reason"], "request_refused");
    assert_eq!(summary["stopped"]["error"], "unauthorized");
    assert_eq!(summary["stopped"]["lines"], json!([1]));

    // No server: exit 3, rerun later.
    let run = talea_with(
        "http://127.0.0.1:9",
        &[
            "--json",
            "--retry-deadline-ms",
            "300",
            "import",
            "--book",
            "demo",
            "-",
        ],
        Some(&one),
    )
    .await
    .exits(3);
    assert_eq!(run.json()["stopped"]["reason"], "unavailable");
    assert_eq!(btc(base, "customers:alice").await, "0");
    finish(server, db).await;
}
