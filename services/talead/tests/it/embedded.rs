//! The embedded default: `talead serve` with no database, and the SQLite and log stores by URL.

use serde_json::{Value, json};

use crate::{env_value, start, start_with, talead};

async fn post_and_read(api: &str, token: &str) -> reqwest::Response {
    let client = reqwest::Client::new();
    for body in [json!({"code": "BTC", "scale": 8})] {
        let r = client
            .post(format!("{api}/v1/assets"))
            .bearer_auth(token)
            .json(&body)
            .send()
            .await
            .expect("answered");
        assert!(r.status().is_success(), "{}", r.status());
    }
    for (name, kind) in [("hot", "asset"), ("alice", "liability")] {
        let r = client
            .post(format!("{api}/v1/books/demo/accounts"))
            .bearer_auth(token)
            .json(&json!({"name": name, "kind": kind}))
            .send()
            .await
            .expect("answered");
        assert!(r.status().is_success(), "{}", r.status());
    }
    let r = client
        .post(format!("{api}/v1/books/demo/transactions"))
        .bearer_auth(token)
        .json(&json!({"idempotency_key": "k1", "postings": [
            {"account": "hot", "asset": "BTC", "debit": "0.5"},
            {"account": "alice", "asset": "BTC", "credit": "0.5"}]}))
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 201);
    client
        .get(format!("{api}/v1/books/demo/accounts/alice/balances"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answered")
}

#[tokio::test]
async fn serve_with_nothing_configured_runs_the_embedded_default_and_makes_a_token_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start(dir.path());
    let said = server.printed.join("\n");
    assert!(
        said.contains("generated one and wrote it to .env"),
        "{said}"
    );
    assert!(said.contains("backend sqlite"), "{said}");
    let token = env_value(dir.path(), "TALEA_API_TOKEN").expect("token written to .env");
    assert!(dir.path().join("talea-data/talea.db").exists());
    let r = post_and_read(&server.api, &token).await;
    assert_eq!(
        r.headers()
            .get("x-talea-backend")
            .and_then(|v| v.to_str().ok()),
        Some("sqlite")
    );
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["balances"]["BTC"], "0.5");
    drop(server);

    // The second start reads the token from .env and says nothing about it;
    // the data is still there.
    let server = start(dir.path());
    assert!(
        !server.printed.join("\n").contains("generated"),
        "{:?}",
        server.printed
    );
    assert_eq!(
        env_value(dir.path(), "TALEA_API_TOKEN").as_deref(),
        Some(token.as_str())
    );
    let r = reqwest::Client::new()
        .get(format!(
            "{}/v1/books/demo/accounts/alice/balances",
            server.api
        ))
        .bearer_auth(&token)
        .send()
        .await
        .expect("answered");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["balances"]["BTC"], "0.5");
}

#[tokio::test]
async fn the_log_store_is_chosen_by_url_and_locks_its_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("log://{}", dir.path().join("log").display());
    let server = start_with(
        dir.path(),
        &[("TALEA_DB_URL", &url), ("TALEA_API_TOKEN", "log-token")],
    );
    let r = post_and_read(&server.api, "log-token").await;
    assert_eq!(
        r.headers()
            .get("x-talea-backend")
            .and_then(|v| v.to_str().ok()),
        Some("log")
    );
    // A second process on the same directory fails at once, saying why.
    let out = talead(dir.path())
        .arg("serve")
        .env("TALEA_DB_URL", &url)
        .env("TALEA_API_TOKEN", "log-token")
        .env("TALEA_BIND", "127.0.0.1:0")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already open"), "{stderr}");
    drop(server);
}

#[tokio::test]
async fn init_without_a_url_prepares_the_embedded_default_and_bad_urls_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = talead(dir.path()).arg("init").output().expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("talea-data/talea.db").exists());
    assert_eq!(
        env_value(dir.path(), "TALEA_DB_URL").as_deref(),
        Some("sqlite://talea-data/talea.db")
    );
    assert!(env_value(dir.path(), "TALEA_API_TOKEN").is_some());

    let out = talead(dir.path())
        .arg("serve")
        .env("TALEA_DB_URL", "mysql://root:hunter2@localhost/db")
        .env("TALEA_API_TOKEN", "t")
        .output()
        .expect("runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("unsupported scheme `mysql`"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// An instant `secs` from now, as the wire writes it.
fn in_secs(secs: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("the clock is after 1970");
    let micros = i64::try_from(now.as_micros()).expect("fits") + secs * 1_000_000;
    talea_api::format_timestamp(talea_core::Timestamp::from_micros(micros))
}

#[tokio::test]
async fn the_embedded_default_expires_holds_in_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = start_with(dir.path(), &[("TALEA_API_TOKEN", "embedded-token")]);
    let api = &server.api;
    let token = "embedded-token";
    let r = post_and_read(api, token).await;
    assert_eq!(r.status(), 200);
    let client = reqwest::Client::new();
    // A subscriber from now on sees the hold and then its expiry.
    let stream = client
        .get(format!("{api}/v1/books/demo/stream"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answered");
    assert_eq!(stream.status(), 200);
    let at = in_secs(1);
    let r = client
        .post(format!("{api}/v1/books/demo/transactions"))
        .bearer_auth(token)
        .json(
            &json!({"idempotency_key": "hold-1", "pending": true, "expires_at": at,
            "postings": [
            {"account": "alice", "asset": "BTC", "debit": "0.2"},
            {"account": "hot", "asset": "BTC", "credit": "0.2"}]}),
        )
        .send()
        .await
        .expect("answered");
    assert_eq!(r.status(), 201);
    let hold: Value = r.json().await.expect("json");
    assert_eq!(hold["status"], "pending");
    let hold_id = hold["tx_id"].clone();

    let frames = talea_testkit::sse::SseReader::new(stream)
        .until(std::time::Duration::from_secs(15), |frames| {
            frames
                .iter()
                .any(|f| f.event.as_deref() == Some("hold_expired"))
        })
        .await;
    let events: Vec<(Option<&str>, Value)> = frames
        .iter()
        .filter(|f| f.id.is_some())
        .map(|f| (f.event.as_deref(), talea_testkit::sse::json(f)))
        .collect();
    assert_eq!(events.len(), 2, "{frames:?}");
    assert_eq!(events[0].0, Some("transaction"));
    assert_eq!(events[0].1["status"], "pending");
    assert_eq!(events[1].0, Some("hold_expired"));
    assert_eq!(events[1].1["tx_id"], hold_id);

    // The log has it once, and the hold reads as expired.
    let log: Value = client
        .get(format!("{api}/v1/books/demo/events"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    let expiries = log["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["type"] == "hold_expired")
        .count();
    assert_eq!(expiries, 1, "{log}");
    let r: Value = client
        .get(format!(
            "{api}/v1/transactions/{}",
            hold_id.as_str().expect("id")
        ))
        .bearer_auth(token)
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("json");
    assert_eq!(r["status"], "expired", "{r}");
}

/// Log lines into a pipe carry no colour (`auto`), unless asked for
/// (`TALEA_LOG_COLOR=always`); `NO_COLOR` turns `auto` off; JSON lines are
/// one object each.
#[test]
fn log_lines_have_colour_only_on_a_terminal_or_when_asked() {
    let run = |vars: &[(&str, &str)]| {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("log://{}", dir.path().join("log").display());
        let mut cmd = talead(dir.path());
        cmd.args(["init", "--db-url", &url])
            .env("RUST_LOG", "info")
            .env_remove("NO_COLOR")
            .env_remove("TALEA_LOG_COLOR")
            .env_remove("TALEA_LOG_FORMAT");
        for (name, value) in vars {
            cmd.env(name, value);
        }
        let out = cmd.output().expect("runs");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{stderr}");
        assert!(stderr.contains("log store opened"), "{stderr}");
        stderr
    };
    let plain = run(&[]);
    assert!(!plain.contains('\u{1b}'), "{plain:?}");
    assert!(run(&[("TALEA_LOG_COLOR", "always")]).contains('\u{1b}'));
    let no_color = run(&[("TALEA_LOG_COLOR", "auto"), ("NO_COLOR", "1")]);
    assert!(!no_color.contains('\u{1b}'));
    // JSON lines: no colour whatever is asked, one object a line (what
    // `init` prints for a person is not a log line).
    let json = run(&[("TALEA_LOG_FORMAT", "json"), ("TALEA_LOG_COLOR", "always")]);
    assert!(!json.contains('\u{1b}'), "{json:?}");
    let opened = json
        .lines()
        .find(|line| line.contains("log store opened"))
        .unwrap_or_default();
    let value: Value = serde_json::from_str(opened).unwrap_or_else(|e| panic!("{e}: {opened:?}"));
    assert_eq!(value["level"], "INFO", "{opened}");
}
