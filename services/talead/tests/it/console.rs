//! The console (`/console`) in a real browser: headless Chromium driven over
//! WebDriver (Debian's `chromium-driver`) against a talead on its own
//! Postgres database and port, each test with its own Chromium profile and
//! chromedriver, whose process group is killed at the end.
//!
//! Each test saves screenshots under `$TALEA_CONSOLE_SCREENSHOTS` (default
//! `<target dir>/console-screenshots/`); with `TALEA_UPDATE_SCREENSHOTS=1`
//! the main pages' screenshots (1280x800) are also written to
//! `docs/console/`, which `docs/console.md` shows.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use talea_testkit::process::{Service, TALEAD_LISTENING, free_port};
use talea_testkit::tokens::{Token, tokens_toml};

use super::{Initialised, Server, get_json, initialised, start_with};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show what a test waits for.
const WAIT: Duration = Duration::from_secs(20);
/// A token that sees only the book `other`.
const SCOPED_TOKEN: &str = "console-test-scoped-token-0123456789";

/// A chromedriver (in a process group of its own, with the Chromium it
/// starts) and its WebDriver session on a fresh profile.
struct Browser {
    /// Taken (and its group killed) when the browser is dropped, so a
    /// failing test leaves no chromedriver or Chromium behind either.
    driver: Option<Child>,
    client: Client,
    _profile: tempfile::TempDir,
    /// The test's name, prefixing its screenshots.
    test: &'static str,
}

impl Browser {
    async fn start(test: &'static str) -> Self {
        for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(path).exists(),
                "{path} is missing: install the Debian package `{package}` \
                 (apt-get install -y {package}); the console's tests need it"
            );
        }
        let port = free_port().expect("a free port");
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start {CHROMEDRIVER} ({e}): install the Debian package `chromium-driver`")
            });
        let url = format!("http://127.0.0.1:{port}");
        talea_testkit::wait_http_ok(&format!("{url}/status"), WAIT)
            .await
            .expect("chromedriver answers");
        let profile = tempfile::tempdir().expect("profile dir");
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--hide-scrollbars",
                    "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            }),
        );
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&url)
            .await
            .expect("a WebDriver session in headless Chromium");
        let browser = Self {
            driver: Some(driver),
            client,
            _profile: profile,
            test,
        };
        browser.viewport(1280, 800).await;
        browser
    }

    /// Sizes the window so that the page itself (what a screenshot shows)
    /// is `width` x `height`: the window's frame is added, measured and
    /// corrected until the page has the size (Chromium may keep a window
    /// wider than asked); returns the page's size.
    async fn viewport(&self, width: u32, height: u32) -> (i64, i64) {
        let (mut outer_w, mut outer_h) = (i64::from(width), i64::from(height));
        let mut inner = (0, 0);
        for _ in 0..4 {
            let w = u32::try_from(outer_w.max(1)).unwrap_or(width);
            let h = u32::try_from(outer_h.max(1)).unwrap_or(height);
            self.client.set_window_size(w, h).await.expect("resizes");
            let size = self
                .client
                .execute("return [window.innerWidth, window.innerHeight];", vec![])
                .await
                .expect("measures");
            inner = (
                size[0].as_i64().unwrap_or_default(),
                size[1].as_i64().unwrap_or_default(),
            );
            if inner == (i64::from(width), i64::from(height)) {
                break;
            }
            outer_w += i64::from(width) - inner.0;
            outer_h += i64::from(height) - inner.1;
        }
        inner
    }

    async fn go(&self, url: &str) {
        self.client.goto(url).await.expect("navigates");
    }

    /// Changes the console's route in the page (what clicking a link
    /// does), and waits until the console has started drawing the new page
    /// (`body[data-nav]` counts navigations), so nothing of the old one is
    /// taken for the new.
    async fn route(&self, hash: &str) {
        let before = self
            .client
            .execute(
                "const n = document.body.dataset.nav; location.hash = arguments[0]; return n;",
                vec![json!(hash)],
            )
            .await
            .expect("sets the hash");
        let before = before.as_str().unwrap_or_default();
        self.wait_for(&format!("body[data-nav]:not([data-nav='{before}'])"))
            .await;
    }

    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(WAIT)
            .every(Duration::from_millis(20))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => {
                let shown = self.text("main").await;
                self.shot("failure").await;
                panic!("{css} never appeared ({e}); the page shows:\n{shown}")
            }
        }
    }

    /// Waits for the console's page `page` to finish loading in `state`
    /// (`ready` or `error`).
    async fn page(&self, page: &str, state: &str) {
        self.wait_for(&format!("main[data-page='{page}'][data-state='{state}']"))
            .await;
    }

    async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    async fn all_attrs(&self, css: &str, attr: &str) -> Vec<String> {
        let mut values = Vec::new();
        for element in self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("finds")
        {
            values.push(element.attr(attr).await.ok().flatten().unwrap_or_default());
        }
        values
    }

    /// Signs in on the console's start page with `token`.
    async fn sign_in(&self, api: &str, token: &str) {
        self.go(&format!("{api}/console/")).await;
        let input = self.wait_for("#token").await;
        input.send_keys(token).await.expect("types");
        self.client
            .find(Locator::Css("#sign-in button[type='submit']"))
            .await
            .expect("button")
            .click()
            .await
            .expect("clicks");
    }

    /// Saves a screenshot as an artifact; with `TALEA_UPDATE_SCREENSHOTS=1`
    /// one of the docs' pages also goes to `docs/console/<name>.png`.
    async fn shot(&self, name: &str) {
        let Ok(png) = self.client.screenshot().await else {
            return;
        };
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("screenshot dir");
        std::fs::write(dir.join(format!("{}-{name}.png", self.test)), &png).expect("screenshot");
        let docs = [
            "sign-in",
            "books",
            "trial-balance",
            "accounts",
            "account",
            "transaction",
            "tail",
            "holds",
            "checkpoint",
            "forbidden",
        ];
        if std::env::var("TALEA_UPDATE_SCREENSHOTS").as_deref() == Ok("1") && docs.contains(&name) {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/console");
            std::fs::create_dir_all(&docs).expect("docs/console");
            std::fs::write(docs.join(format!("{name}.png")), &png).expect("docs screenshot");
        }
    }

    /// Ends the session (Chromium quits), then chromedriver's process group
    /// (on drop).
    async fn close(self) {
        let session = self.client.clone().close();
        let _ = tokio::time::timeout(Duration::from_secs(10), session).await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(driver) = self.driver.take() {
            kill_group(driver);
        }
    }
}

/// SIGTERM to the process group, SIGKILL after 5 s, then reaps the leader.
fn kill_group(mut child: Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = child.wait();
}

/// `$TALEA_CONSOLE_SCREENSHOTS`, else `<target dir>/console-screenshots`
/// (the test binary is `<target dir>/<profile>/deps/it-…`).
fn screenshot_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("TALEA_CONSOLE_SCREENSHOTS") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            let exe = std::env::current_exe().ok()?;
            exe.ancestors().nth(3).map(Path::to_path_buf)
        })
        .unwrap_or_else(std::env::temp_dir);
    target.join("console-screenshots")
}

/// The seeded ledger (book `demo`: `hot-wallet`, `customers:alice`, BTC)
/// behind a talead serving the console, with a scoped token for `other`.
struct Fixture {
    init: Initialised,
    server: Server,
    http: reqwest::Client,
}

impl Fixture {
    async fn new(extra: &[(&str, &str)]) -> Self {
        let init = initialised(true).await;
        let tokens = tokens_toml(&[Token::ro("scoped", SCOPED_TOKEN, &["other"])]);
        let file = talea_testkit::tokens_file(init.dir.path(), &tokens).expect("tokens file");
        let file = file.display().to_string();
        let mut envs = vec![
            ("TALEA_CONSOLE", "on"),
            ("TALEA_TOKENS_FILE", file.as_str()),
        ];
        envs.extend_from_slice(extra);
        let server = start_with(init.dir.path(), &envs);
        Self {
            init,
            server,
            http: reqwest::Client::new(),
        }
    }

    fn api(&self) -> &str {
        &self.server.api
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.server.api)
    }

    async fn get(&self, path: &str) -> Value {
        get_json(&self.http, &self.url(path), &self.init.token).await
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let r = self
            .http
            .post(self.url(path))
            .bearer_auth(&self.init.token)
            .json(&body)
            .send()
            .await
            .expect("answered");
        let status = r.status();
        let body: Value = r.json().await.expect("json");
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    /// Moves `amount` BTC from `hot-wallet` to `customers:alice`; returns the transaction.
    async fn deposit(&self, key: &str, amount: &str) -> Value {
        self.post(
            "/v1/books/demo/transactions",
            json!({"idempotency_key": key, "postings": [
                {"account": "hot-wallet", "asset": "BTC", "debit": amount},
                {"account": "customers:alice", "asset": "BTC", "credit": amount}]}),
        )
        .await
    }

    /// A hold of `amount` BTC, expiring at `expires_at` (none when `None`).
    async fn hold(&self, key: &str, amount: &str, expires_at: Option<String>) -> Value {
        let mut body = json!({"idempotency_key": key, "pending": true, "postings": [
            {"account": "hot-wallet", "asset": "BTC", "debit": amount},
            {"account": "customers:alice", "asset": "BTC", "credit": amount}]});
        if let Some(at) = expires_at {
            body["expires_at"] = json!(at);
        }
        self.post("/v1/books/demo/transactions", body).await
    }

    async fn finish(self) {
        let Fixture { init, server, .. } = self;
        drop(server);
        init.db.drop_database().await.expect("drops");
    }
}

/// The trial balance shown equals the API's, accounts under a prefix, an
/// account's balances, chart and postings, a transaction, and bad input
/// answered with the API's own message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_what_the_api_answers() {
    let f = Fixture::new(&[]).await;
    // Paced, so that the chart has steps to show.
    let mut times = Vec::new();
    for (i, amount) in ["1", "0.5", "2.25"].iter().enumerate() {
        times.push(f.deposit(&format!("d{i}"), amount).await["committed_at"].clone());
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let tx = f.deposit("d3", "0.125").await;
    // The chart's range, fixed so that the page and the test ask the same.
    let from = times[0].as_str().expect("committed_at").to_owned();
    let to = chrono::DateTime::parse_from_rfc3339(tx["committed_at"].as_str().expect("time"))
        .expect("RFC 3339")
        + chrono::Duration::milliseconds(100);
    let to = to
        .with_timezone(&chrono::Utc)
        .to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let b = Browser::start("show").await;

    // Signed out: the sign-in form, and the token is nowhere in the URL.
    b.go(&format!("{}/console/#/books/demo/trial-balance", f.api()))
        .await;
    b.page("sign-in", "ready").await;
    b.shot("sign-in").await;
    b.sign_in(f.api(), &f.init.token).await;
    b.page("books", "ready").await;
    assert_eq!(b.all_attrs("#books tbody tr", "data-book").await, ["demo"]);
    let url = b.client.current_url().await.expect("url").to_string();
    assert!(!url.contains(&f.init.token), "{url}");
    b.shot("books").await;

    // The trial balance: status and per-asset totals exactly as the API's.
    b.route("#/books/demo/trial-balance").await;
    b.page("trial-balance", "ready").await;
    let api = f.get("/v1/books/demo/trial-balance").await;
    let shown = b
        .wait_for("#tb-status")
        .await
        .attr("data-balanced")
        .await
        .expect("attr");
    assert_eq!(shown.as_deref(), Some("true"));
    assert_eq!(api["balanced"], true);
    let totals = api["totals"].as_object().expect("totals");
    assert_eq!(
        b.all_attrs("#tb-totals tbody tr", "data-asset").await,
        totals.keys().cloned().collect::<Vec<_>>()
    );
    for (asset, t) in totals {
        let row = b
            .text(&format!("#tb-totals tr[data-asset='{asset}']"))
            .await;
        for field in ["debits", "credits"] {
            let value = t[field].as_str().expect("amount");
            assert!(
                row.contains(value),
                "{asset} {field} {value} not in {row:?}"
            );
        }
    }
    let rows = b.all_attrs("#tb-rows tbody tr", "class").await.len();
    assert_eq!(Some(rows), api["rows"].as_array().map(Vec::len));
    b.shot("trial-balance").await;
    // On a phone-sized screen (an artifact to look at, not in the docs).
    b.viewport(390, 844).await;
    b.shot("phone-trial-balance").await;
    assert_eq!(b.viewport(1280, 800).await, (1280, 800));

    // Accounts under a prefix, with totals over every match.
    b.route("#/books/demo/accounts?prefix=customers%3A").await;
    b.page("accounts", "ready").await;
    let api = f.get("/v1/books/demo/balances?prefix=customers:").await;
    let count = b.text("#accounts-count").await;
    assert!(
        count.starts_with(&format!("{} account", api["count"])),
        "{count}"
    );
    let total = api["totals"]["balances"]["BTC"].as_str().expect("total");
    assert!(b.text("#accounts-totals").await.contains(total));
    b.shot("accounts").await;

    // The account: balances, a chart of exactly the points asked for, postings.
    b.route(&format!(
        "#/books/demo/accounts/customers%3Aalice?asset=BTC&points=7&from={from}&to={to}"
    ))
    .await;
    b.page("account", "ready").await;
    let chart = b.wait_for("svg.chart").await;
    assert_eq!(
        chart.attr("data-points").await.expect("attr").as_deref(),
        Some("7")
    );
    assert_eq!(b.all_attrs("svg.chart circle.point", "cy").await.len(), 7);
    let api = f
        .get(&format!(
            "/v1/books/demo/accounts/customers:alice/balances/history\
             ?asset=BTC&points=7&from={from}&to={to}"
        ))
        .await;
    let lasts = b.all_attrs("svg.chart circle.point", "data-last").await;
    let expected: Vec<String> = api["buckets"]
        .as_array()
        .expect("buckets")
        .iter()
        .map(|bucket| bucket["last"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(lasts, expected);
    assert!(b.text("#balances").await.contains("3.875"));
    assert_eq!(b.all_attrs("#postings tbody tr", "class").await.len(), 4);
    b.shot("account").await;

    // A transaction.
    let tx_id = tx["tx_id"].as_str().expect("tx_id");
    b.route(&format!("#/transactions/{tx_id}")).await;
    b.page("transaction", "ready").await;
    let shown = b.text("main").await;
    assert_eq!(b.text("#tx-id").await, tx_id, "{shown}");
    assert_eq!(b.text("#tx-status").await, "posted");
    assert!(b.text("#tx-postings").await.contains("0.125"));
    b.shot("transaction").await;

    // Bad input: the API's message on the page, never a blank one.
    let long = "a".repeat(129);
    for (route, path, context) in [
        (
            format!("#/books/demo/accounts?prefix={long}"),
            format!("/v1/books/demo/balances?prefix={long}"),
            "main",
        ),
        (
            "#/books/nosuch/trial-balance".to_owned(),
            "/v1/books/nosuch/trial-balance".to_owned(),
            "main",
        ),
        (
            "#/books/demo/accounts/customers%3Aalice?asset=BTC&points=0".to_owned(),
            "/v1/books/demo/accounts/customers:alice/balances/history?asset=BTC&points=0"
                .to_owned(),
            "#history",
        ),
        (
            "#/books/demo/accounts/customers%3Aalice?asset=BTC&points=5\
             &from=2026-12-02T00%3A00%3A00Z&to=2026-12-01T00%3A00%3A00Z"
                .to_owned(),
            "/v1/books/demo/accounts/customers:alice/balances/history?asset=BTC&points=5\
             &from=2026-12-02T00:00:00Z&to=2026-12-01T00:00:00Z"
                .to_owned(),
            "#history",
        ),
        (
            "#/books/demo/accounts/nobody".to_owned(),
            "/v1/books/demo/accounts/nobody".to_owned(),
            "main",
        ),
    ] {
        let refusal = f.get(&path).await;
        let message = refusal["message"].as_str().expect("an error message");
        b.route(&route).await;
        let error = b.wait_for(&format!("{context} .error .message")).await;
        let shown = error.text().await.expect("text");
        assert_eq!(shown, message, "{route}");
        let code = refusal["error"].as_str().expect("code");
        assert!(
            b.text(&format!("{context} .error")).await.contains(code),
            "{route}: {code}"
        );
    }
    // Nothing the console did was refused by its Content-Security-Policy.
    let body = b.wait_for("body").await;
    let violations = body.attr("data-csp-violations").await.expect("attr");
    assert_eq!(violations, None, "CSP violations");
    // And the policy is in force: an inline script is refused, not run.
    b.client
        .execute(
            "const s = document.createElement('script'); \
             s.textContent = 'document.body.dataset.inlineRan = 1'; \
             document.head.append(s);",
            vec![],
        )
        .await
        .expect("runs");
    b.wait_for("body[data-csp-violations='1']").await;
    let ran = body.attr("data-inline-ran").await.expect("attr");
    assert_eq!(ran, None, "an inline script ran");
    b.close().await;
    f.finish().await;
}

/// A commit made through the API shows in the live tail within a second
/// (once the tail is following: a first commit warms the book's feed up),
/// and the book's latest checkpoint verifies in the browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_tail_shows_a_commit_within_a_second_and_the_checkpoint_verifies() {
    let f = Fixture::new(&[]).await;
    f.deposit("first", "1").await;
    let b = Browser::start("tail").await;
    b.sign_in(f.api(), &f.init.token).await;
    b.page("books", "ready").await;
    b.route("#/books/demo/tail").await;
    b.wait_for("#tail-status[data-state='open']").await;
    let warm = f.deposit("warm", "0.25").await["seq"]
        .as_u64()
        .expect("seq");
    b.wait_for(&format!("#tail li[data-seq='{warm}']")).await;

    let tx = f.deposit("live", "0.5").await;
    let committed = Instant::now();
    let seq = tx["seq"].as_u64().expect("seq");
    b.wait_for(&format!("#tail li[data-seq='{seq}']")).await;
    let took = committed.elapsed();
    assert!(took < Duration::from_secs(1), "shown after {took:?}");
    b.shot("tail").await;

    // The checkpoint, verified with WebCrypto against GET /v1/keys.
    b.route("#/books/demo/checkpoint").await;
    b.page("checkpoint", "ready").await;
    b.wait_for("#verify").await.click().await.expect("clicks");
    let verdict = b.wait_for("#verify-result[data-verdict]").await;
    let text = verdict.text().await.expect("text");
    assert_eq!(
        verdict.attr("data-verdict").await.expect("attr").as_deref(),
        Some("verified"),
        "{text}"
    );
    assert!(text.contains("signature is valid"), "{text}");
    b.shot("checkpoint").await;

    // A checkpoint whose signature was changed on its way is NOT verified,
    // and the page says which check failed.
    b.client
        .execute(
            "const real = window.fetch; \
             window.fetch = async (url, init) => { \
               const r = await real(url, init); \
               if (!String(url).endsWith('/checkpoint')) return r; \
               const cp = await r.json(); \
               cp.signature = (cp.signature[0] === '0' ? '1' : '0') + cp.signature.slice(1); \
               return new Response(JSON.stringify(cp), {status: 200}); };",
            vec![],
        )
        .await
        .expect("runs");
    b.route("#/books/demo/trial-balance").await;
    b.route("#/books/demo/checkpoint").await;
    b.page("checkpoint", "ready").await;
    b.wait_for("#verify").await.click().await.expect("clicks");
    let verdict = b.wait_for("#verify-result[data-verdict]").await;
    let text = verdict.text().await.expect("text");
    assert_eq!(
        verdict.attr("data-verdict").await.expect("attr").as_deref(),
        Some("failed"),
        "{text}"
    );
    assert!(text.contains("Checkpoint NOT verified"), "{text}");
    assert!(text.contains("signature is NOT valid"), "{text}");
    b.shot("checkpoint-tampered").await;
    b.close().await;
    f.finish().await;
}

/// The tail goes on without a gap or a repeat while its 2-second tickets
/// expire under it: the page renews the ticket and resumes with
/// `after_seq` from the last seq it showed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_tail_resumes_across_ticket_expiries_without_a_gap() {
    let f = Fixture::new(&[("TALEA_STREAM_TICKET_TTL_S", "2")]).await;
    let first = f.deposit("first", "1").await["seq"].as_u64().expect("seq");
    let b = Browser::start("resume").await;
    b.sign_in(f.api(), &f.init.token).await;
    b.page("books", "ready").await;
    b.route("#/books/demo/tail").await;
    b.wait_for("#tail-status[data-state='open']").await;

    // Writers paced over three tickets' lives.
    let mut last = first;
    let started = Instant::now();
    let mut i = 0;
    while started.elapsed() < Duration::from_secs(7) {
        last = f.deposit(&format!("paced-{i}"), "0.01").await["seq"]
            .as_u64()
            .expect("seq");
        i += 1;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    b.wait_for(&format!("#tail li[data-seq='{last}']")).await;
    let shown: Vec<u64> = b
        .all_attrs("#tail li", "data-seq")
        .await
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let expected: Vec<u64> = (first + 1..=last).rev().collect();
    assert_eq!(shown, expected, "newest first, each once, no gap");
    b.close().await;
    f.finish().await;
}

/// The tail goes on without a gap or a repeat across a talead killed and
/// restarted on the same port: the browser reconnects by itself with
/// `Last-Event-ID` (same ticket key) while a second talead takes commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_tail_resumes_after_a_talead_restart_without_a_gap() {
    const KEY: &str = "console-test-ticket-key-0123456789abcdef";
    let f = Fixture::new(&[]).await;
    let port = free_port().expect("a free port");
    let spawn = || {
        let mut cmd = super::talead(f.init.dir.path());
        cmd.arg("serve")
            .env("TALEA_BIND", format!("127.0.0.1:{port}"))
            .env("TALEA_CONSOLE", "on")
            .env("TALEA_STREAM_TICKET_KEY", KEY);
        Service::spawn(cmd, TALEAD_LISTENING).expect("talead printed its address")
    };
    let followed = spawn();
    let first = f.deposit("first", "1").await["seq"].as_u64().expect("seq");
    let b = Browser::start("restart").await;
    b.sign_in(&followed.url, &f.init.token).await;
    b.page("books", "ready").await;
    b.route("#/books/demo/tail").await;
    b.wait_for("#tail-status[data-state='open']").await;
    let seen = f.deposit("before", "0.1").await["seq"]
        .as_u64()
        .expect("seq");
    b.wait_for(&format!("#tail li[data-seq='{seen}']")).await;

    // The talead the page follows dies; the other one takes commits.
    drop(followed);
    for i in 0..5 {
        f.deposit(&format!("down-{i}"), "0.01").await;
    }
    let followed = spawn();
    let mut last = 0;
    for i in 0..3 {
        last = f.deposit(&format!("up-{i}"), "0.01").await["seq"]
            .as_u64()
            .expect("seq");
    }
    b.wait_for(&format!("#tail li[data-seq='{last}']")).await;
    let shown: Vec<u64> = b
        .all_attrs("#tail li", "data-seq")
        .await
        .iter()
        .filter_map(|s| s.parse().ok())
        .collect();
    let expected: Vec<u64> = (first + 1..=last).rev().collect();
    assert_eq!(shown, expected, "newest first, each once, no gap");
    b.close().await;
    drop(followed);
    f.finish().await;
}

/// A token scoped to `other` lists only `other`, and a page of `demo`
/// shows the API's 403 as a message; the console is off by default on
/// Postgres and on for the embedded default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scoped_token_sees_only_its_books() {
    let f = Fixture::new(&[]).await;
    f.post(
        "/v1/books/other/accounts",
        json!({"name": "cash", "kind": "asset"}),
    )
    .await;
    let b = Browser::start("scoped").await;
    b.sign_in(f.api(), SCOPED_TOKEN).await;
    b.page("books", "ready").await;
    assert_eq!(b.all_attrs("#books tbody tr", "data-book").await, ["other"]);

    b.route("#/books/demo/trial-balance").await;
    b.page("trial-balance", "error").await;
    let error = b.text("main .error").await;
    assert!(error.contains("403 forbidden"), "{error}");
    b.shot("forbidden").await;
    b.close().await;

    // Without TALEA_CONSOLE, a talead on Postgres serves no console.
    let plain = start_with(f.init.dir.path(), &[]);
    let r = reqwest::get(format!("{}/console/", plain.api))
        .await
        .expect("answered");
    assert_eq!(r.status(), 404);
    drop(plain);
    f.finish().await;

    // With no store URL (the embedded default), it is on by default.
    let dir = tempfile::tempdir().expect("tempdir");
    let embedded = start_with(dir.path(), &[("TALEA_API_TOKEN", "embedded-token")]);
    let r = reqwest::get(format!("{}/console/", embedded.api))
        .await
        .expect("answered");
    assert_eq!(r.status(), 200);
    let csp = r
        .headers()
        .get("content-security-policy")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(csp.contains("script-src 'self'"), "{csp}");
    assert!(r.text().await.expect("body").contains("app.js"));
}

/// The pending holds page lists holds soonest expiry first, those without
/// an expiry last, as `GET /v1/books/{book}/holds` answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_holds_are_listed_soonest_expiry_first() {
    let f = Fixture::new(&[]).await;
    f.deposit("funds", "10").await;
    let in_hours = |h: i64| Some((chrono::Utc::now() + chrono::Duration::hours(h)).to_rfc3339());
    let later = f.hold("later", "1", in_hours(3)).await;
    let never = f.hold("never", "1", None).await;
    let soon = f.hold("soon", "1", in_hours(1)).await;
    let middle = f.hold("middle", "1", in_hours(2)).await;
    let settled = f.hold("settled", "1", in_hours(1)).await;
    let settled_id = settled["tx_id"].as_str().expect("tx_id");
    let settle = f
        .post(
            &format!("/v1/books/demo/transactions/{settled_id}/post"),
            json!({"idempotency_key": "settle"}),
        )
        .await;
    let voided = f.hold("voided", "1", None).await;
    let voided_id = voided["tx_id"].as_str().expect("tx_id");
    f.post(
        &format!("/v1/books/demo/transactions/{voided_id}/void"),
        json!({"idempotency_key": "void"}),
    )
    .await;
    let id = |tx: &Value| tx["tx_id"].as_str().unwrap_or_default().to_owned();
    let expected = vec![id(&soon), id(&middle), id(&later), id(&never)];
    let api = f.get("/v1/books/demo/holds").await;
    let from_api: Vec<String> = api["holds"]
        .as_array()
        .map(|holds| holds.iter().map(id).collect())
        .unwrap_or_default();
    assert_eq!(from_api, expected, "{api}");

    let b = Browser::start("holds").await;
    b.sign_in(f.api(), &f.init.token).await;
    b.page("books", "ready").await;
    b.route("#/books/demo/holds").await;
    b.page("holds", "ready").await;
    assert_eq!(b.all_attrs("#holds tbody tr", "data-tx-id").await, expected);
    b.shot("holds").await;

    // A settled hold's page links to its settle, found by the page.
    b.route(&format!("#/transactions/{settled_id}")).await;
    b.page("transaction", "ready").await;
    let settle_id = settle["tx_id"].as_str().expect("tx_id");
    b.wait_for(&format!("#tx-ending a[href='#/transactions/{settle_id}']"))
        .await;
    let ending = b.text("#tx-ending").await;
    assert!(ending.contains("Settled by"), "{ending}");
    // The settle links back to the hold it ends; a voided hold to its void.
    b.route(&format!("#/transactions/{settle_id}")).await;
    b.page("transaction", "ready").await;
    b.wait_for(&format!("#tx-ends a[href='#/transactions/{settled_id}']"))
        .await;
    b.route(&format!("#/transactions/{voided_id}")).await;
    b.page("transaction", "ready").await;
    let ending = b.text("#tx-ending").await;
    assert!(ending.contains("Voided by"), "{ending}");
    b.close().await;
    f.finish().await;
}
