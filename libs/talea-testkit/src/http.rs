//! HTTP for a test: a JSON client of a service under test, and a service's
//! metrics, read where they are served and checked by promtool.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;

use serde_json::{Value, json};

use crate::ledger::{ASSET, ASSET_SCALE};

/// A JSON client of one service: every call answers its status and body
/// (`Null` when the body is not JSON). A call that gets no answer at all
/// fails the test: these helpers are for tests only.
#[derive(Debug, Clone)]
pub struct JsonClient {
    /// `http://host:port`, with no trailing slash.
    pub base: String,
    /// The connection pool, for requests the helpers do not cover.
    pub http: reqwest::Client,
}

impl JsonClient {
    /// A client of `base` with a pool of its own.
    pub fn new(base: impl Into<String>) -> JsonClient {
        JsonClient {
            base: base.into(),
            http: reqwest::Client::new(),
        }
    }

    /// `method` (`"POST"`, else `GET`) on `path` with `token` as bearer
    /// (none when empty) and `body` as JSON.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let url = format!("{}{path}", self.base);
        let mut req = match method {
            "POST" => self.http.post(&url),
            _ => self.http.get(&url),
        };
        if !token.is_empty() {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {url} got no answer: {e}"));
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// `GET path` with `token`.
    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.call("GET", path, token, None).await
    }

    /// `POST path` with `token` and `body`.
    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.call("POST", path, token, Some(body)).await
    }

    /// Registers the seeded asset ([`crate::ledger::ASSET`]) and opens each
    /// `(name, kind)` of `accounts` in each of `books`, through the HTTP API
    /// with `token`; fails unless every request answered 201 Created (that
    /// is, on a fresh ledger).
    pub async fn create_ledger(
        &self,
        token: &str,
        books: &[&str],
        accounts: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let asset = json!({"code": ASSET, "scale": ASSET_SCALE});
        self.created("/v1/assets", token, asset).await?;
        for book in books {
            for (name, kind) in accounts {
                let account = json!({"name": name, "kind": kind});
                self.created(&format!("/v1/books/{book}/accounts"), token, account)
                    .await?;
            }
        }
        Ok(())
    }

    /// `POST path`, failing unless it answered 201 Created.
    async fn created(&self, path: &str, token: &str, body: Value) -> anyhow::Result<()> {
        let (status, answer) = self.post(path, token, body).await;
        if status != 201 {
            anyhow::bail!("POST {path} answered {status}, not 201: {answer}");
        }
        Ok(())
    }

    /// Polls `GET path` with `token` until it answers `status`; fails after
    /// `deadline`.
    pub async fn wait_status(
        &self,
        path: &str,
        token: &str,
        status: u16,
        deadline: Duration,
    ) -> anyhow::Result<()> {
        crate::wait_until(deadline, || async {
            self.get(path, token).await.0 == status
        })
        .await
        .map_err(|e| anyhow::anyhow!("{path} with {token:?} never answered {status}: {e}"))
    }
}

/// Serves `router` on a free loopback port until the test's runtime ends,
/// with each peer's address available to it (as talead serves: requests
/// without a token are rate limited by peer address); returns
/// `http://127.0.0.1:port`.
pub async fn serve_router(router: axum::Router) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .context("binding 127.0.0.1:0")?;
    let addr = listener.local_addr().context("the local address")?;
    tokio::spawn(async move {
        let service = router.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, service).await {
            eprintln!("the test server on {addr} stopped: {e}");
        }
    });
    Ok(format!("http://{addr}"))
}

/// The Prometheus text a service serves at `metrics_url`, after checking
/// that its API listener at `api_base` does not serve `/metrics` (404):
/// metrics live on their own listener only. Fails the test otherwise.
pub async fn scrape_metrics(api_base: &str, metrics_url: &str) -> String {
    let client = reqwest::Client::new();
    let r = client
        .get(format!("{api_base}/metrics"))
        .send()
        .await
        .expect("the API listener answers");
    assert_eq!(
        r.status(),
        404,
        "metrics only on their own listener, never on the API's"
    );
    client
        .get(metrics_url)
        .send()
        .await
        .expect("the metrics listener answers")
        .text()
        .await
        .expect("metrics text")
}

/// Fails the test unless `promtool check metrics` accepts `text` (the
/// Prometheus exposition of a `/metrics` answer). `scripts/test` installs
/// promtool (Debian package `prometheus`).
pub fn promtool_check(text: &str) {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool is installed (Debian package `prometheus`; scripts/test installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("writes");
    let out = child.wait_with_output().expect("promtool ran");
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
