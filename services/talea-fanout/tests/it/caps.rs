//! Per-token stream caps in the real fan-out binary: `TALEA_SSE_MAX_PER_TOKEN`
//! refuses a token's extra stream 429 `rate_limited` with `Retry-After`
//! while other tokens stream, counts the refusal, gives the slot back when
//! a stream closes; and an out-of-range value stops start-up.

use std::process::Stdio;
use std::time::Duration;

use talea_testkit::process::{run_to_exit, talea_command};
use talea_testkit::tokens::{Token, tokens_toml};

use crate::{BIN, Fixture, TOKEN, free_port, kill};

const OTHER: &str = "fanout-caps-other-token";
fn tokens() -> String {
    tokens_toml(&[Token::ro("other", OTHER, &["pay"])])
}

async fn stream(port: u16, token: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v1/books/pay/stream"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answer")
}

async fn metrics(port: u16) -> String {
    reqwest::get(format!("http://127.0.0.1:{port}/metrics"))
        .await
        .expect("metrics answer")
        .text()
        .await
        .expect("metrics text")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_token_at_its_stream_cap_gets_429_while_other_tokens_stream() {
    let f = Fixture::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = talea_testkit::tokens_file(dir.path(), &tokens()).expect("tokens file");
    let metrics_port = free_port();
    let (fanout, port) = f
        .fanout_with(
            0,
            &[
                ("TALEA_TOKENS_FILE", tokens.display().to_string()),
                ("TALEA_SSE_MAX_PER_TOKEN", "2".to_owned()),
                ("TALEA_METRICS_BIND", format!("127.0.0.1:{metrics_port}")),
            ],
            Stdio::inherit(),
        )
        .await;

    let first = stream(port, TOKEN).await;
    let second = stream(port, TOKEN).await;
    assert_eq!(
        [first.status(), second.status()].map(|s| s.as_u16()),
        [200; 2]
    );
    let third = stream(port, TOKEN).await;
    assert_eq!(third.status(), 429);
    assert_eq!(
        third
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1"),
        "one heartbeat (TALEA_SSE_HEARTBEAT_S is 1 here)"
    );
    let body: serde_json::Value = third.json().await.expect("json");
    assert_eq!(body["error"], "rate_limited", "{body}");
    // Another token is not held back by the first one's streams.
    let other = stream(port, OTHER).await;
    assert_eq!(other.status(), 200);
    let text = metrics(metrics_port).await;
    assert!(
        text.contains("talea_fanout_streams_refused_total{reason=\"token_cap\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("talea_fanout_streams_refused_total{reason=\"connections\"} 0"),
        "{text}"
    );

    // A closed stream gives its slot back: poll until a new one opens.
    drop(first);
    let reopened = talea_testkit::wait_for(Duration::from_secs(20), || async move {
        let r = stream(port, TOKEN).await;
        match r.status().as_u16() {
            200 => Some(r),
            429 => None,
            other => panic!("only 200 or 429 while the slot comes back, got {other}"),
        }
    })
    .await
    .expect("the closed stream's slot comes back");
    assert_eq!(reopened.status(), 200);

    drop((second, other, reopened));
    kill(fanout);
    f.finish().await;
}

/// Runs the fan-out with `env` and returns its exit status and stderr; it
/// must exit on its own (within 20 s).
fn start_and_exit(env: &[(&str, &str)]) -> (std::process::ExitStatus, String) {
    let mut cmd = talea_command(BIN, &std::env::temp_dir());
    // Settings are checked before anything connects: nothing listens here.
    cmd.env("TALEA_DB_URL", "postgres://nobody@127.0.0.1:1/none")
        .env("TALEA_NATS_URL", "nats://127.0.0.1:1")
        .env("TALEA_API_TOKEN", TOKEN)
        .env("TALEA_BIND", format!("127.0.0.1:{}", free_port()))
        .envs(env.iter().copied());
    let out = run_to_exit(cmd, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("the fan-out did not exit with {env:?}: {e:#}"));
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn an_out_of_range_per_token_cap_stops_start_up() {
    for (env, says) in [
        (
            &[("TALEA_SSE_MAX_PER_TOKEN", "0")][..],
            "TALEA_SSE_MAX_PER_TOKEN must be 1..=TALEA_SSE_MAX_CONNECTIONS (10000) streams (it is 0)",
        ),
        (
            &[
                ("TALEA_SSE_MAX_CONNECTIONS", "10"),
                ("TALEA_SSE_MAX_PER_TOKEN", "11"),
            ][..],
            "TALEA_SSE_MAX_PER_TOKEN must be 1..=TALEA_SSE_MAX_CONNECTIONS (10) streams (it is 11)",
        ),
        (
            &[("TALEA_SSE_MAX_PER_TOKEN", "many")][..],
            "invalid value 'many' for '--sse-max-per-token",
        ),
    ] {
        let (status, stderr) = start_and_exit(env);
        assert!(!status.success(), "{env:?}: {status}");
        assert!(stderr.contains(says), "{env:?}: {stderr}");
    }
}
