//! Start-up refusals and the introspection contract, over a real socket.

use std::time::Duration;

use serde_json::{Value, json};

use talea_testkit::tokens::{Token, tokens_toml};

use crate::support::*;

const ROOT: &str = "root-secret-3";

fn tokens_file(dir: &std::path::Path) -> std::path::PathBuf {
    // The digest is computed here so the file holds no plain auditor token.
    let toml = tokens_toml(&[
        Token::rw("payments", "pay-secret-1", &["payments"]),
        Token::ro("auditor", "", &["*"]).sha256(&sha256_hex("audit-secret-2")),
        Token::ro("browser", "browser-secret-5", &["payments"]).hide(&["metadata"]),
    ]);
    talea_testkit::tokens_file(dir, &toml).expect("writes")
}

fn sha256_hex(s: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(s.as_bytes()))
}

#[test]
fn startup_refuses_bad_configuration_without_printing_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(dir.path().join("empty.toml"), "").expect("writes");
    std::fs::write(dir.path().join("broken.toml"), "not toml [").expect("writes");
    std::fs::write(
        dir.path().join("hide.toml"),
        "[tokens.b]\ntoken = \"leak-me-4\"\nbooks = [\"b\"]\naccess = \"ro\"\nhide = [\"postings\"]\n",
    )
    .expect("writes");
    std::fs::write(
        dir.path().join("odd.toml"),
        "[tokens.a]\ntoken = \"leak-me-4\"\nbooks = [\"b\"]\naccess = \"rw\"\nextra = 1\n",
    )
    .expect("writes");
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (
            vec![("TALEA_API_TOKEN", "leak-me-4".to_owned())],
            "TALEA_SCOPE_SERVICE_TOKEN",
        ),
        (
            vec![("TALEA_SCOPE_SERVICE_TOKEN", "leak-me-4".to_owned())],
            "no token configured",
        ),
        (
            vec![
                ("TALEA_SCOPE_SERVICE_TOKEN", "leak-me-4".to_owned()),
                ("TALEA_TOKENS_FILE", path("empty.toml")),
            ],
            "defines no [tokens.<name>]",
        ),
        (
            vec![
                ("TALEA_SCOPE_SERVICE_TOKEN", "leak-me-4".to_owned()),
                ("TALEA_TOKENS_FILE", path("broken.toml")),
                ("TALEA_API_TOKEN", "leak-me-4".to_owned()),
            ],
            "is invalid",
        ),
        (
            vec![
                ("TALEA_SCOPE_SERVICE_TOKEN", "leak-me-4".to_owned()),
                ("TALEA_TOKENS_FILE", path("odd.toml")),
            ],
            "unknown field",
        ),
        (
            vec![
                ("TALEA_SCOPE_SERVICE_TOKEN", "leak-me-4".to_owned()),
                ("TALEA_TOKENS_FILE", path("hide.toml")),
            ],
            "tokens.b.hide: cannot hide \"postings\"",
        ),
        (
            vec![
                ("TALEA_SCOPE_SERVICE_TOKEN", "leak-me-4".to_owned()),
                ("TALEA_TOKENS_FILE", path("missing.toml")),
            ],
            "cannot read tokens file",
        ),
        (
            vec![
                ("TALEA_SCOPE_SERVICE_TOKEN", "leak-me-4".to_owned()),
                ("TALEA_API_TOKEN", "t".to_owned()),
                ("TALEA_SCOPE_TTL_S", "86401".to_owned()),
            ],
            "86401 is not in 0..=3600",
        ),
    ];
    for (envs, expected) in cases {
        let mut cmd = scope_command(dir.path());
        cmd.env("TALEA_BIND", "127.0.0.1:0");
        cmd.envs(envs.iter().map(|(k, v)| (*k, v.as_str())));
        let out = run_to_exit(cmd, Duration::from_secs(20));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{envs:?} started");
        assert!(stderr.contains(expected), "{expected:?} not in {stderr}");
        assert!(!stderr.contains("leak-me-4"), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

struct Resp {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

async fn introspect(scope: &Scope, service_token: Option<&str>, body: &str) -> Resp {
    let mut req = reqwest::Client::new()
        .post(format!("{}/v1/introspect", scope.url))
        .header("content-type", "application/json")
        .body(body.to_owned());
    if let Some(t) = service_token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("answered");
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    Resp {
        status,
        headers,
        body,
    }
}

fn ask(token: &str) -> String {
    json!({ "token": token }).to_string()
}

#[tokio::test]
async fn introspection_answers_the_contract() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = tokens_file(dir.path());
    let mut scope = Scope::start(
        dir.path(),
        &[
            ("TALEA_BIND", "127.0.0.1:0"),
            ("TALEA_METRICS_BIND", "127.0.0.1:0"),
            ("TALEA_TOKENS_FILE", &file.display().to_string()),
            ("TALEA_API_TOKEN", ROOT),
            ("TALEA_SCOPE_TTL_S", "30"),
        ],
    );

    // Callers authenticate first.
    for token in [None, Some("wrong"), Some("")] {
        let r = introspect(&scope, token, &ask("pay-secret-1")).await;
        assert_eq!((r.status, &r.body["error"]), (401, &json!("unauthorized")));
        assert_eq!(
            r.headers
                .get("www-authenticate")
                .and_then(|v| v.to_str().ok()),
            Some("Bearer")
        );
        assert!(!r.body.to_string().contains("pay-secret-1"));
    }

    let s = Some(SERVICE_TOKEN);
    let r = introspect(&scope, s, &ask("pay-secret-1")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"active":true,"name":"payments","books":["payments"],"access":"rw","ttl_seconds":30})
    );
    assert_eq!(
        r.headers.get("cache-control").and_then(|v| v.to_str().ok()),
        Some("no-store")
    );
    let r = introspect(&scope, s, &ask("audit-secret-2")).await;
    assert_eq!(
        r.body,
        json!({"active":true,"name":"auditor","books":["*"],"access":"ro","ttl_seconds":30})
    );
    let r = introspect(&scope, s, &ask("browser-secret-5")).await;
    assert_eq!(
        r.body,
        json!({"active":true,"name":"browser","books":["payments"],"access":"ro","ttl_seconds":30,"hide":["metadata"]})
    );
    let r = introspect(&scope, s, &ask(ROOT)).await;
    assert_eq!(
        r.body,
        json!({"active":true,"books":["*"],"access":"rw","ttl_seconds":30})
    );
    for unknown in ["nope", "", "pay-secret-1 ", "PAY-SECRET-1"] {
        let r = introspect(&scope, s, &ask(unknown)).await;
        assert_eq!(
            (r.status, &r.body),
            (200, &json!({"active": false})),
            "{unknown:?}"
        );
    }
    let r = introspect(
        &scope,
        s,
        r#"{"token":"pay-secret-1","token_type_hint":"access_token"}"#,
    )
    .await;
    assert_eq!(r.body["active"], true);

    // Malformed and oversized bodies.
    for bad in [
        "",
        "{",
        r#"{"tok":"x"}"#,
        r#"{"token":5}"#,
        r#"{"token":"x","y":1}"#,
    ] {
        let r = introspect(&scope, s, bad).await;
        assert_eq!(
            (r.status, &r.body["error"]),
            (400, &json!("invalid_request")),
            "{bad}"
        );
    }
    let big = ask(&"x".repeat(64 * 1024));
    let r = introspect(&scope, s, &big).await;
    assert_eq!(
        (r.status, &r.body["error"]),
        (413, &json!("payload_too_large"))
    );

    // The other routes.
    let client = reqwest::Client::new();
    for (path, status) in [
        ("/health", 200),
        ("/livez", 200),
        ("/nope", 404),
        ("/v1/introspect", 405),
    ] {
        let r = client
            .get(format!("{}{path}", scope.url))
            .send()
            .await
            .expect("answered");
        assert_eq!(r.status().as_u16(), status, "{path}");
    }
    let metrics = scope.metrics.clone().expect("metrics listener");
    let text = talea_testkit::scrape_metrics(&scope.url, &metrics).await;
    for line in [
        "talea_introspect_requests_total{outcome=\"active\"} 5",
        "talea_introspect_requests_total{outcome=\"inactive\"} 4",
        "talea_introspect_requests_total{outcome=\"unauthorized\"} 3",
        "talea_introspect_requests_total{outcome=\"invalid_request\"} 6",
        "talea_scope_tokens 4",
        "talea_introspect_duration_seconds_bucket",
    ] {
        assert!(text.contains(line), "{line} missing from\n{text}");
    }
    for secret in [
        "pay-secret-1",
        "audit-secret-2",
        "browser-secret-5",
        ROOT,
        SERVICE_TOKEN,
    ] {
        assert!(!text.contains(secret));
    }
    talea_testkit::promtool_check(&text);

    // SIGTERM: a graceful stop with exit code 0.
    let status = scope
        .service
        .terminate(Duration::from_secs(10))
        .expect("talea-scope stops on SIGTERM");
    assert!(status.success(), "{status}");
}
