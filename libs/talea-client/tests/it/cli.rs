//! The real `talea` binary against a real talead: output, `--json`, exit codes.

use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::{self, BIN, ROOT, Run, Server};

/// Runs `talea args…` against `base` with a clean `TALEA_*` environment.
pub(crate) async fn talea(base: &str, args: &[&str]) -> Run {
    talea_with(base, args, None).await
}

pub(crate) async fn talea_with(base: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars() {
        if key.starts_with("TALEA_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("TALEA_URL", base)
        .env("TALEA_TOKEN", ROOT)
        .env("TALEA_RETRY_DEADLINE_MS", "5000")
        .args(args);
    let stdin = stdin.map(str::to_owned);
    // The server runs on this test's runtime: wait for the process elsewhere.
    tokio::task::spawn_blocking(move || support::run(cmd, stdin.as_deref()))
        .await
        .expect("the runner does not panic")
}

/// A server with the example seed applied through the CLI itself.
pub(crate) async fn seeded() -> (Server, talea_testkit::TestDb) {
    let db = support::fresh_db().await;
    let server = Server::start(&db.url, "127.0.0.1:0".parse().expect("addr")).await;
    let base = server.base.clone();
    talea(
        &base,
        &[
            "assets", "add", "--code", "BTC", "--scale", "8", "--name", "Bitcoin",
        ],
    )
    .await
    .ok();
    talea(&base, &["assets", "add", "--code", "USDC", "--scale", "6"])
        .await
        .ok();
    for (name, kind, min) in [
        ("treasury", "equity", None),
        ("hot-wallet", "asset", None),
        ("customers:alice", "liability", Some("0")),
        ("customers:bob", "liability", Some("0")),
    ] {
        let mut args = vec![
            "accounts", "open", "--book", "demo", "--name", name, "--kind", kind,
        ];
        if let Some(min) = min {
            args.extend(["--min-balance", min]);
        }
        let run = talea(&base, &args).await.ok();
        assert!(run.stdout.starts_with("opened account"), "{run:#?}");
    }
    (server, db)
}

pub(crate) async fn finish(server: Server, db: talea_testkit::TestDb) {
    server.stop().await;
    db.drop_database().await.expect("drops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_replays_and_reads_back() {
    let (server, db) = seeded().await;
    let base = server.base.as_str();
    let deposit = [
        "post",
        "--book",
        "demo",
        "--idem",
        "deposit-1",
        "--debit",
        "hot-wallet:BTC:0.015",
        "--credit",
        "customers:alice:BTC:0.0150",
        "--memo",
        "first deposit",
    ];
    let first = talea(base, &deposit).await.ok();
    assert!(first.stdout.starts_with("committed tx "), "{first:#?}");
    assert!(first.stdout.contains("customers:alice"), "{first:#?}");
    assert!(!first.stdout.contains("deduplicated"));

    let again = talea(base, &deposit).await.ok();
    assert!(again.stdout.starts_with("deduplicated"), "{again:#?}");

    let tb = talea(base, &["trial-balance", "--book", "demo"]).await.ok();
    assert!(tb.stdout.contains("customers:alice"), "{tb:#?}");
    assert!(tb.stdout.contains("0.015"), "{tb:#?}");
    assert!(
        tb.stdout.contains("balanced: debits equal credits"),
        "{tb:#?}"
    );

    let bal = talea(
        base,
        &["balance", "--book", "demo", "--account", "customers:alice"],
    )
    .await
    .ok();
    assert!(
        bal.stdout.contains("BTC") && bal.stdout.contains("0.015"),
        "{bal:#?}"
    );

    let log = talea(base, &["log", "--book", "demo", "--after-seq", "4"])
        .await
        .ok();
    assert!(log.stdout.contains("transaction"), "{log:#?}");
    assert!(log.stdout.contains("deposit-1"), "{log:#?}");

    let assets = talea(base, &["assets"]).await.ok();
    assert!(assets.stdout.contains("Bitcoin") && assets.stdout.contains("USDC"));
    let accounts = talea(base, &["accounts", "--book", "demo"]).await.ok();
    assert_eq!(accounts.stdout.lines().count(), 5, "{accounts:#?}");
    let books = talea(base, &["books"]).await.ok();
    assert!(books.stdout.contains("demo"), "{books:#?}");
    finish(server, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_output_is_the_servers_json() {
    let (server, db) = seeded().await;
    let base = server.base.as_str();
    let post = [
        "--json",
        "post",
        "--book",
        "demo",
        "--idem",
        "j-1",
        "--debit",
        "hot-wallet:BTC:2",
        "--credit",
        "customers:alice:BTC:2",
        "--occurred-at",
        "2026-11-22T11:00:00+01:00",
        "--metadata",
        r#"{"chain_tx":"ab12"}"#,
    ];
    let tx = talea(base, &post).await.ok().json();
    assert_eq!(tx["deduplicated"], false);
    assert_eq!(tx["occurred_at"], "2026-11-22T10:00:00.000000Z");
    assert_eq!(tx["metadata"]["chain_tx"], "ab12");
    let tx_id = tx["tx_id"].as_str().expect("tx_id").to_owned();

    let replay = talea(base, &post).await.ok();
    assert_eq!(replay.json()["deduplicated"], true);
    assert!(replay.stderr.contains("deduplicated"), "{replay:#?}");

    // `tx` reads the same resource, without `deduplicated`.
    let read = talea(base, &["tx", &tx_id, "--json"]).await.ok().json();
    let mut expected = tx.clone();
    expected
        .as_object_mut()
        .expect("object")
        .remove("deduplicated");
    assert_eq!(read, expected);
    let human = talea(base, &["tx", &tx_id]).await.ok();
    assert!(human.stdout.contains(&tx_id), "{human:#?}");

    let tb = talea(base, &["trial-balance", "--book", "demo", "--json"])
        .await
        .ok()
        .json();
    assert_eq!(tb["balanced"], true);
    assert_eq!(tb["totals"]["BTC"]["debits"], "2");
    let at = tx["committed_at"].as_str().expect("committed_at");
    let bal = talea(
        base,
        &[
            "balance",
            "--book",
            "demo",
            "--account",
            "customers:alice",
            "--as-of",
            at,
            "--json",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(bal["balances"]["BTC"], "2");
    assert_eq!(bal["as_of"], at);
    let log = talea(base, &["log", "--book", "demo", "--limit", "2", "--json"])
        .await
        .ok();
    assert_eq!(log.json()["next_after_seq"], 2);
    assert!(log.stderr.contains("--after-seq 2"), "{log:#?}");
    for args in [
        &["assets", "--json"][..],
        &["accounts", "--book", "demo", "--json"],
        &["books", "--json"],
    ] {
        talea(base, args).await.ok().json();
    }
    finish(server, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_exit_2_with_the_code() {
    let (server, db) = seeded().await;
    let base = server.base.as_str();
    let overdraw = talea(
        base,
        &[
            "post",
            "--book",
            "demo",
            "--idem",
            "r-1",
            "--debit",
            "customers:alice:BTC:1",
            "--credit",
            "customers:bob:BTC:1",
        ],
    )
    .await;
    assert_eq!(overdraw.code, 2, "{overdraw:#?}");
    assert!(
        overdraw.stderr.contains("insufficient_balance"),
        "{overdraw:#?}"
    );
    assert!(overdraw.stderr.contains("min_balance: 0"), "{overdraw:#?}");

    let unbalanced = talea(
        base,
        &[
            "--json",
            "post",
            "--book",
            "demo",
            "--idem",
            "r-2",
            "--debit",
            "hot-wallet:BTC:1",
            "--credit",
            "customers:bob:BTC:0.5",
        ],
    )
    .await;
    assert_eq!(unbalanced.code, 2, "{unbalanced:#?}");
    let body = unbalanced.json();
    assert_eq!(body["error"], "unbalanced");
    assert_eq!(body["imbalances"]["BTC"], "0.5");

    let missing = talea(base, &["tx", "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b"]).await;
    assert_eq!(missing.code, 2, "{missing:#?}");
    assert!(missing.stderr.contains("not_found"), "{missing:#?}");

    let conflict = talea(base, &["assets", "add", "--code", "BTC", "--scale", "2"]).await;
    assert_eq!(conflict.code, 2, "{conflict:#?}");
    assert!(conflict.stderr.contains("conflict"), "{conflict:#?}");

    let wrong_token = talea(base, &["--token", "wrong", "books"]).await;
    assert_eq!(wrong_token.code, 2, "{wrong_token:#?}");
    assert!(
        wrong_token.stderr.contains("unauthorized"),
        "{wrong_token:#?}"
    );
    finish(server, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_from_stdin_or_a_file_takes_the_key_from_idem() {
    let (server, db) = seeded().await;
    let base = server.base.as_str();
    let body = r#"{"postings":[
        {"account":"hot-wallet","asset":"USDC","debit":"10"},
        {"account":"customers:bob","asset":"USDC","credit":"10"}],
        "memo":"from stdin"}"#;
    let run = talea_with(
        base,
        &[
            "--json", "post", "--book", "demo", "--idem", "f-1", "--file", "-",
        ],
        Some(body),
    )
    .await
    .ok();
    let tx = run.json();
    assert_eq!(tx["idempotency_key"], "f-1");
    assert_eq!(tx["memo"], "from stdin");

    let dir = std::env::temp_dir().join(format!("talea-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("body.json");
    std::fs::write(
        &file,
        r#"{"idempotency_key":"f-1","postings":[
        {"account":"hot-wallet","asset":"USDC","debit":"10"},
        {"account":"customers:bob","asset":"USDC","credit":"10"}],
        "memo":"from stdin"}"#,
    )
    .expect("writes");
    let path = file.to_str().expect("utf-8 path");
    let replay = talea(
        base,
        &["post", "--book", "demo", "--idem", "f-1", "--file", path],
    )
    .await
    .ok();
    assert!(replay.stdout.starts_with("deduplicated"), "{replay:#?}");

    // A body whose key differs from --idem is refused before sending.
    let mismatch = talea(
        base,
        &["post", "--book", "demo", "--idem", "other", "--file", path],
    )
    .await;
    assert_eq!(mismatch.code, 1, "{mismatch:#?}");
    assert!(
        mismatch.stderr.contains("differs from --idem"),
        "{mismatch:#?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    finish(server, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_1() {
    let base = "http://127.0.0.1:9";
    for args in [
        &[
            "post", "--book", "demo", "--debit", "a:BTC:1", "--credit", "b:BTC:1",
        ][..],
        &["post", "--book", "demo", "--idem", "k"],
        &["post", "--book", "demo", "--idem", "k", "--debit", "BTC:1"],
        &[
            "post", "--book", "demo", "--idem", "k", "--file", "-", "--debit", "a:BTC:1",
        ],
        &[
            "post",
            "--book",
            "demo",
            "--idem",
            "k",
            "--debit",
            "a:B:1",
            "--metadata",
            "[1]",
        ],
        &["balance", "--book", "demo"],
        &["accounts"],
        &["no-such-command"],
        &["books", "--max-attempts", "0"],
        &[],
    ] {
        let run = talea(base, args).await;
        assert_eq!(run.code, 1, "{args:?}: {run:#?}");
        assert!(!run.stderr.is_empty(), "{args:?}");
    }
    let help = talea(base, &["post", "--help"]).await;
    assert_eq!(help.code, 0, "{help:#?}");
    assert!(help.stdout.contains("--idem"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_listening_exits_3_after_retries() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("binds");
        l.local_addr().expect("address").port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let run = talea(
        &base,
        &[
            "--retry-deadline-ms",
            "300",
            "post",
            "--book",
            "demo",
            "--idem",
            "down-1",
            "--debit",
            "hot-wallet:BTC:1",
            "--credit",
            "customers:alice:BTC:1",
        ],
    )
    .await;
    assert_eq!(run.code, 3, "{run:#?}");
    assert!(run.stderr.contains("retrying"), "{run:#?}");
    assert!(run.stderr.contains("unavailable"), "{run:#?}");
    let read = talea(&base, &["--max-attempts", "1", "books"]).await;
    assert_eq!(read.code, 3, "{read:#?}");
}

/// Starts `talea args…` in the background; its output arrives when it exits.
fn talea_background(base: &str, args: &[&str]) -> tokio::task::JoinHandle<Run> {
    let base = base.to_owned();
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::spawn(async move {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        talea(&base, &args).await
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_follows_and_resumes_across_a_server_restart() {
    let (server, db) = seeded().await;
    let base = server.base.clone();
    // 4 account opens, then 10 posts: 5 before and 5 after a restart.
    let tail = talea_background(
        &base,
        &[
            "tail",
            "--book",
            "demo",
            "--after-seq",
            "0",
            "--count",
            "14",
            "--json",
            "--verify",
        ],
    );
    let post = |i: usize| {
        let base = base.clone();
        async move {
            let key = format!("tail-{i}");
            let run = talea(
                &base,
                &[
                    "post",
                    "--book",
                    "demo",
                    "--idem",
                    &key,
                    "--debit",
                    "hot-wallet:BTC:1",
                    "--credit",
                    "customers:alice:BTC:1",
                ],
            )
            .await;
            assert_eq!(run.code, 0, "{run:#?}");
        }
    };
    for i in 0..5 {
        post(i).await;
    }
    let addr = server.addr;
    server.stop().await;
    let server = Server::start(&db.url, addr).await;
    for i in 5..10 {
        post(i).await;
    }
    let run = tokio::time::timeout(Duration::from_secs(60), tail)
        .await
        .expect("tail ends after --count events")
        .expect("runner");
    assert_eq!(run.code, 0, "{run:#?}");
    let seqs: Vec<u64> = run
        .stdout
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("one JSON object per line");
            v["seq"].as_u64().expect("seq")
        })
        .collect();
    assert_eq!(seqs, (1..=14).collect::<Vec<_>>(), "{run:#?}");
    // The chain was checked across the restart, every event carrying its hash.
    assert!(
        run.stderr.contains("chain verified through seq 14"),
        "{run:#?}"
    );
    let last: Value =
        serde_json::from_str(run.stdout.lines().last().expect("a line")).expect("json");
    assert_eq!(last["hash"].as_str().map(str::len), Some(64), "{last}");
    finish(server, db).await;
}

/// Changes the memo of `seq` in `book` behind talead's back.
async fn tamper(db: &talea_testkit::TestDb, book: &str, seq: i64) {
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connects");
    sqlx::query("UPDATE transactions SET memo = 'rewritten' WHERE book = $1 AND seq = $2")
        .bind(book)
        .bind(seq)
        .execute(&pool)
        .await
        .expect("tampers");
    pool.close().await;
}

async fn post_n(base: &str, from: usize, to: usize) {
    for i in from..to {
        let key = format!("chain-{i}");
        talea(
            base,
            &[
                "post",
                "--book",
                "demo",
                "--idem",
                &key,
                "--debit",
                "hot-wallet:BTC:1",
                "--credit",
                "customers:alice:BTC:1",
            ],
        )
        .await
        .ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_verify_stops_at_a_broken_chain_with_exit_4() {
    let (server, db) = seeded().await;
    let base = server.base.clone();
    post_n(&base, 0, 3).await;
    tamper(&db, "demo", 6).await;
    let run = talea(
        &base,
        &[
            "tail",
            "--book",
            "demo",
            "--after-seq",
            "0",
            "--verify",
            "--count",
            "7",
        ],
    )
    .await;
    assert_eq!(run.code, 4, "{run:#?}");
    assert!(run.stderr.contains("seq 6"), "{run:#?}");
    // Started later, from the served hash before: the break is found too.
    let run = talea(
        &base,
        &[
            "tail",
            "--book",
            "demo",
            "--after-seq",
            "4",
            "--verify",
            "--count",
            "3",
        ],
    )
    .await;
    assert_eq!(run.code, 4, "{run:#?}");
    assert!(run.stderr.contains("seq 6"), "{run:#?}");
    // A bad --after-hash is a usage error, not a break.
    let run = talea(
        &base,
        &[
            "tail",
            "--book",
            "demo",
            "--after-seq",
            "4",
            "--verify",
            "--after-hash",
            "xyz",
            "--count",
            "1",
        ],
    )
    .await;
    assert_eq!(run.code, 1, "{run:#?}");
    finish(server, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_server_checks_checkpoints_chain_and_proofs() {
    let (server, db) = seeded().await;
    let base = server.base.clone();
    post_n(&base, 0, 3).await;
    let dir = tempfile::tempdir().expect("dir");
    let keys = dir.path().join("keys.json");
    let saved = dir.path().join("checkpoint.json");
    let key_list = talea_api::LedgerApi::keys(&support::client(&base))
        .await
        .expect("keys");
    std::fs::write(&keys, serde_json::to_string(&key_list).expect("json")).expect("write");
    let run = talea(
        &base,
        &[
            "verify",
            "server",
            "--book",
            "demo",
            "--keys",
            path(&keys),
            "--save",
            path(&saved),
            "--json",
        ],
    )
    .await
    .ok();
    assert_eq!(run.json()["checkpoint"]["tree_size"], 7, "{run:#?}");
    // Later: the history still extends the saved checkpoint, and event 5 is in it.
    post_n(&base, 3, 5).await;
    let sdk = support::client(&base);
    for _ in 0..100 {
        let head = talea_api::LedgerApi::checkpoint(&sdk, "demo")
            .await
            .expect("head");
        if head.tree_size == 9 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run = talea(
        &base,
        &[
            "verify",
            "server",
            "--book",
            "demo",
            "--keys",
            path(&keys),
            "--since",
            path(&saved),
            "--seq",
            "5",
        ],
    )
    .await
    .ok();
    for line in [
        "is signed by key",
        "chain of book demo",
        "root",
        "event 5 is in",
        "extends the saved tree of 7",
    ] {
        assert!(run.stdout.contains(line), "{line}: {run:#?}");
    }
    // A row changed behind talead's back: the chain breaks at its seq.
    tamper(&db, "demo", 5).await;
    let run = talea(
        &base,
        &["verify", "server", "--book", "demo", "--keys", path(&keys)],
    )
    .await;
    assert_eq!(run.code, 4, "{run:#?}");
    assert!(run.stderr.contains("seq 5"), "{run:#?}");
    finish(server, db).await;
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_of_an_unknown_book_is_refused_with_exit_2() {
    let (server, db) = seeded().await;
    let run = talea(&server.base, &["tail", "--book", "nobook"]).await;
    assert_eq!(run.code, 2, "{run:#?}");
    assert!(run.stderr.contains("not_found"), "{run:#?}");
    finish(server, db).await;
}

/// The columns of `talea balance`'s row for `asset`.
fn balance_row<'a>(run: &'a Run, asset: &str) -> Vec<&'a str> {
    run.stdout
        .lines()
        .find(|l| l.split_whitespace().next() == Some(asset))
        .unwrap_or_else(|| panic!("a {asset} row: {run:#?}"))
        .split_whitespace()
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hold_settle_and_void_from_the_command_line() {
    let (server, db) = seeded().await;
    let base = server.base.as_str();
    let fund = [
        "post",
        "--book",
        "demo",
        "--idem",
        "fund",
        "--debit",
        "hot-wallet:BTC:1",
        "--credit",
        "customers:alice:BTC:1",
    ];
    talea(base, &fund).await.ok();
    let hold = |idem: &'static str, amount: &'static str| {
        let debit = format!("customers:alice:BTC:{amount}");
        let credit = format!("hot-wallet:BTC:{amount}");
        async move {
            talea(
                base,
                &[
                    "hold",
                    "--book",
                    "demo",
                    "--idem",
                    idem,
                    "--debit",
                    &debit,
                    "--credit",
                    &credit,
                    "--expires-at",
                    "2099-01-01T00:00:00Z",
                ],
            )
            .await
        }
    };
    // 2099 is more than 90 days ahead: refused, exit 2, nothing held.
    let far = hold("w-far", "0.1").await;
    assert_eq!(far.code, 2, "{far:#?}");
    assert!(far.stderr.contains("invalid_request"), "{far:#?}");

    let first = talea(
        base,
        &[
            "--json",
            "hold",
            "--book",
            "demo",
            "--idem",
            "w-1",
            "--debit",
            "customers:alice:BTC:0.4",
            "--credit",
            "hot-wallet:BTC:0.4",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(first["status"], "pending");
    let first_id = first["tx_id"].as_str().expect("tx_id").to_owned();
    let second = talea(
        base,
        &[
            "hold",
            "--book",
            "demo",
            "--idem",
            "w-2",
            "--debit",
            "customers:alice:BTC:0.25",
            "--credit",
            "hot-wallet:BTC:0.25",
        ],
    )
    .await
    .ok();
    assert!(
        second.stdout.contains("status           pending"),
        "{second:#?}"
    );
    let second_id = second
        .stdout
        .split_whitespace()
        .nth(2)
        .expect("committed tx <id>")
        .to_owned();

    // HELD and AVAILABLE beside the posted balance.
    let bal = talea(
        base,
        &["balance", "--book", "demo", "--account", "customers:alice"],
    )
    .await
    .ok();
    for col in ["BALANCE", "HELD DEBITS", "HELD CREDITS", "AVAILABLE"] {
        assert!(bal.stdout.contains(col), "{col}: {bal:#?}");
    }
    assert_eq!(
        balance_row(&bal, "BTC"),
        ["BTC", "1", "0.65", "0", "0.35"],
        "{bal:#?}"
    );
    let json = talea(
        base,
        &[
            "--json",
            "balance",
            "--book",
            "demo",
            "--account",
            "customers:alice",
        ],
    )
    .await
    .ok()
    .json();
    assert_eq!(json["available"]["BTC"], "0.35");

    // Settle part of the first, void the second; each replays.
    let settle = [
        "--json",
        "settle",
        "--book",
        "demo",
        "--tx",
        &first_id,
        "--idem",
        "w-1-confirmed",
        "--debit",
        "customers:alice:BTC:0.3",
        "--credit",
        "hot-wallet:BTC:0.3",
    ];
    let settled = talea(base, &settle).await.ok().json();
    assert_eq!(settled["status"], "posted");
    assert_eq!(settled["pending_tx_id"], first_id.as_str());
    assert_eq!(settled["deduplicated"], false);
    let replay = talea(base, &settle).await.ok();
    assert_eq!(replay.json()["tx_id"], settled["tx_id"]);
    assert_eq!(replay.json()["deduplicated"], true);
    let void = [
        "void",
        "--book",
        "demo",
        "--tx",
        &second_id,
        "--idem",
        "w-2-failed",
    ];
    let voided = talea(base, &void).await.ok();
    assert!(voided.stdout.starts_with("committed tx "), "{voided:#?}");
    assert!(
        voided.stdout.contains("status           voided"),
        "{voided:#?}"
    );
    assert!(voided.stdout.contains(&second_id), "{voided:#?}");
    let again = talea(base, &void).await.ok();
    assert!(again.stdout.starts_with("deduplicated"), "{again:#?}");

    // A second outcome is refused with exit 2 and the code.
    let late = talea(
        base,
        &[
            "--json", "settle", "--book", "demo", "--tx", &second_id, "--idem", "late",
        ],
    )
    .await;
    assert_eq!(late.code, 2, "{late:#?}");
    assert_eq!(late.json()["error"], "hold_not_pending");
    assert_eq!(late.json()["status"], "voided");

    let bal = talea(
        base,
        &["balance", "--book", "demo", "--account", "customers:alice"],
    )
    .await
    .ok();
    assert_eq!(
        balance_row(&bal, "BTC"),
        ["BTC", "0.7", "0", "0", "0.7"],
        "{bal:#?}"
    );
    finish(server, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn balances_under_a_prefix_page_with_totals() {
    let (server, db) = seeded().await;
    let base = server.base.as_str();
    for (idem, customer, amount) in [("a", "alice", "1"), ("b", "bob", "2")] {
        let debit = format!("hot-wallet:BTC:{amount}");
        let credit = format!("customers:{customer}:BTC:{amount}");
        let post = [
            "post", "--book", "demo", "--idem", idem, "--debit", &debit, "--credit", &credit,
        ];
        talea(base, &post).await.ok();
    }
    let args = [
        "balances",
        "--book",
        "demo",
        "--prefix",
        "customers:",
        "--limit",
        "1",
    ];
    let page = talea(base, &args).await.ok();
    assert!(
        page.stdout
            .starts_with("2 accounts under prefix customers: in book demo"),
        "{page:#?}"
    );
    let rows: Vec<Vec<&str>> = page
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.contains(&vec!["customers:alice", "BTC", "1", "0", "0", "1"]),
        "{page:#?}"
    );
    assert!(
        rows.contains(&vec!["TOTAL", "BTC", "3", "0", "0", "3"]),
        "totals over both accounts: {page:#?}"
    );
    assert!(!page.stdout.contains("customers:bob"), "{page:#?}");
    assert!(
        page.stderr
            .contains("more accounts: --after customers:alice"),
        "{page:#?}"
    );
    let mut json_args = args.to_vec();
    json_args.extend(["--after", "customers:alice", "--json"]);
    let next = talea(base, &json_args).await.ok().json();
    assert_eq!(next["count"], 2);
    assert_eq!(next["accounts"][0]["account"], "customers:bob");
    assert_eq!(next["accounts"][0]["available"]["BTC"], "2");
    assert_eq!(next["totals"]["balances"]["BTC"], "3");
    assert_eq!(next["next"], Value::Null);
    let refused = talea(
        base,
        &["balances", "--book", "demo", "--prefix", "bad prefix"],
    )
    .await;
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(refused.stderr.contains("invalid_request"), "{refused:#?}");
    finish(server, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_changes_and_buckets() {
    let (server, db) = seeded().await;
    let base = server.base.as_str();
    for (idem, amount) in [("a", "3"), ("b", "2")] {
        let debit = format!("hot-wallet:BTC:{amount}");
        let credit = format!("customers:alice:BTC:{amount}");
        let post = [
            "post", "--book", "demo", "--idem", idem, "--debit", &debit, "--credit", &credit,
        ];
        talea(base, &post).await.ok();
    }
    let args = [
        "history",
        "--book",
        "demo",
        "--account",
        "customers:alice",
        "--asset",
        "BTC",
    ];
    let out = talea(base, &args).await.ok();
    let balances: Vec<&str> = out
        .stdout
        .lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            match cells.as_slice() {
                [seq, _, balance] if seq.parse::<u64>().is_ok() => Some(*balance),
                _ => None,
            }
        })
        .collect();
    assert_eq!(balances, vec!["3", "5"], "{out:#?}");
    let mut json_args = args.to_vec();
    json_args.extend(["--limit", "1", "--json"]);
    let page = talea(base, &json_args).await.ok().json();
    assert_eq!(page["changes"][0]["balance"], "3");
    assert!(page["next_after_seq"].is_u64(), "{page}");
    let mut bucket_args = args.to_vec();
    bucket_args.extend([
        "--from",
        "2000-01-01T00:00:00Z",
        "--to",
        "2100-01-01T00:00:00Z",
        "--points",
        "1",
        "--json",
    ]);
    let buckets = talea(base, &bucket_args).await.ok().json();
    assert_eq!(buckets["buckets"][0]["min"], "0");
    assert_eq!(buckets["buckets"][0]["max"], "5");
    assert_eq!(buckets["buckets"][0]["last"], "5");
    let mut bad = args.to_vec();
    bad.extend(["--points", "0"]);
    let refused = talea(base, &bad).await;
    assert_eq!(refused.code, 2, "{refused:#?}");
    assert!(refused.stderr.contains("invalid_request"), "{refused:#?}");
    finish(server, db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txs_searches_and_holds_lists_soonest_first() {
    let (server, db) = seeded().await;
    let base = server.base.as_str();
    for (idem, order) in [("a", "A-17"), ("b", "B-2"), ("c", "A-17")] {
        let metadata = format!(r#"{{"order_id":"{order}"}}"#);
        let post = [
            "post",
            "--book",
            "demo",
            "--idem",
            idem,
            "--debit",
            "hot-wallet:BTC:1",
            "--credit",
            "customers:alice:BTC:1",
            "--metadata",
            &metadata,
        ];
        talea(base, &post).await.ok();
    }
    let hold = |idem: &'static str| {
        [
            "--json",
            "hold",
            "--book",
            "demo",
            "--idem",
            idem,
            "--debit",
            "customers:alice:BTC:0.1",
            "--credit",
            "hot-wallet:BTC:0.1",
        ]
    };
    let open_ended = talea(base, &hold("h-open")).await.ok().json();
    let soon = (chrono::Utc::now() + chrono::Duration::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut timed = hold("h-soon").to_vec();
    timed.extend(["--expires-at", soon.as_str()]);
    let timed = talea(base, &timed).await.ok().json();

    let found = talea(
        base,
        &["--json", "txs", "--book", "demo", "--meta", "order_id=A-17"],
    )
    .await
    .ok()
    .json();
    let keys: Vec<&str> = found["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .filter_map(|t| t["idempotency_key"].as_str())
        .collect();
    assert_eq!(keys, vec!["a", "c"], "{found}");
    let table = talea(
        base,
        &[
            "txs", "--book", "demo", "--status", "pending", "--limit", "1",
        ],
    )
    .await
    .ok();
    assert!(table.stdout.contains("pending"), "{table:#?}");
    assert!(table.stdout.contains("h-open"), "{table:#?}");
    assert!(
        table.stderr.contains("more may follow: --after-seq"),
        "{table:#?}"
    );

    let holds = talea(base, &["holds", "--book", "demo"]).await.ok();
    let rows: Vec<&str> = holds
        .stdout
        .lines()
        .filter(|l| l.contains("customers:alice"))
        .collect();
    assert_eq!(rows.len(), 2, "{holds:#?}");
    assert!(
        rows[0].contains(timed["tx_id"].as_str().expect("id")),
        "{holds:#?}"
    );
    assert!(rows[1].starts_with("never"), "{holds:#?}");
    assert!(
        rows[1].contains(open_ended["tx_id"].as_str().expect("id")),
        "{holds:#?}"
    );

    // A usage error (exit 1) and a refusal by the server (exit 2).
    for (bad, code) in [
        (&["txs", "--book", "demo", "--meta", "novalue"][..], 1),
        (&["txs", "--book", "demo", "--status", "settled"][..], 2),
    ] {
        let refused = talea(base, bad).await;
        assert_eq!(refused.code, code, "{refused:#?}");
    }
    finish(server, db).await;
}
