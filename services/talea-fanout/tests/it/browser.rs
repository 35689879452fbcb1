//! A real browser: headless Chromium opens a native `EventSource` on the
//! fan-out with `?ticket=`, from a page on another origin (so CORS is real),
//! and keeps receiving through a fan-out restart by its own `Last-Event-ID`
//! reconnect. The page reports the ids it received to the test's server;
//! they must be exactly the commits since it connected, in order, once.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::extract::State;
use axum::response::Html;
use axum::routing::{get, post};
use serde_json::Value;
use talea_auth::{Principal, Secret, Tickets};

use super::{Fixture, kill};

const CHROMIUM: &str = "/usr/bin/chromium";
const KEY: &str = "browser-test-ticket-key-0123456789abcdef";

/// The page: one `EventSource`, ids kept in order, reported every 100 ms
/// (each report carries the whole list and a counter, so a late report
/// never replaces a newer one).
const PAGE: &str = r#"<!doctype html>
<html><body><script>
const params = new URLSearchParams(location.search);
const ids = [];
let opens = 0, errors = 0, report = 0;
const es = new EventSource(params.get("stream") + "?ticket=" + encodeURIComponent(params.get("ticket")));
es.onopen = () => { opens += 1; };
es.onerror = () => { errors += 1; };
for (const type of ["transaction", "account_opened"]) {
  es.addEventListener(type, (e) => { ids.push(Number(e.lastEventId)); });
}
setInterval(() => {
  report += 1;
  fetch("/report", {
    method: "POST",
    headers: {"content-type": "application/json"},
    body: JSON.stringify({report, opens, errors, state: es.readyState, ids}),
  }).catch(() => {});
}, 100);
</script></body></html>
"#;

#[derive(Default)]
struct Seen {
    /// The newest report of the page.
    latest: Option<Value>,
}

async fn page() -> Html<&'static str> {
    Html(PAGE)
}

async fn report(State(seen): State<Arc<Mutex<Seen>>>, body: String) {
    let Ok(value) = serde_json::from_str::<Value>(&body) else {
        return;
    };
    let mut seen = seen.lock().unwrap_or_else(|e| e.into_inner());
    let newer = seen
        .latest
        .as_ref()
        .is_none_or(|old| old["report"].as_u64() < value["report"].as_u64());
    if newer {
        seen.latest = Some(value);
    }
}

/// Serves the page and collects its reports; returns the page's port.
async fn page_server(seen: Arc<Mutex<Seen>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("binds");
    let port = listener.local_addr().expect("address").port();
    let app = Router::new()
        .route("/", get(page))
        .route("/report", post(report))
        .with_state(seen);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    port
}

/// Headless Chromium on `url`, in a process group of its own (so that its
/// helper processes end with it) and a fresh profile.
fn chromium(url: &str, profile: &std::path::Path) -> Child {
    use std::os::unix::process::CommandExt;
    Command::new(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot start {CHROMIUM} ({e}): install the Debian package `chromium`")
        })
}

/// Ends Chromium's process group (SIGTERM, then SIGKILL) and reaps it.
fn stop_chromium(mut child: Child) {
    let group = format!("-{}", child.id());
    let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
    let _ = child.wait();
}

/// The newest report, once `done` holds for it (30 s at most).
async fn report_when(seen: &Arc<Mutex<Seen>>, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let latest = seen
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .latest
            .clone();
        if let Some(report) = &latest
            && done(report)
        {
            return report.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the page never got to {what}: {latest:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids(report: &Value) -> Vec<u64> {
    report["ids"]
        .as_array()
        .map(|ids| ids.iter().filter_map(Value::as_u64).collect())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn chromium_event_source_with_a_ticket_survives_a_fanout_restart() {
    let f = Fixture::new().await;
    let (stop_relay, relay) = f.relay().await;
    let seen = Arc::new(Mutex::new(Seen::default()));
    let page_port = page_server(seen.clone()).await;
    let page_origin = format!("http://127.0.0.1:{page_port}");
    let logs = tempfile::tempdir().expect("temp dir");
    let env = [
        ("TALEA_STREAM_TICKET_KEY", KEY.to_owned()),
        ("TALEA_CORS_ORIGINS", page_origin.clone()),
        // Everything the fan-out logs, to prove the ticket is not in it.
        ("RUST_LOG", "debug".to_owned()),
    ];
    let log =
        |name: &str| Stdio::from(std::fs::File::create(logs.path().join(name)).expect("log file"));
    let (fanout, port) = f.fanout_with(0, &env, log("first.log")).await;

    // The ticket talead would issue, signed here with the shared key: any
    // holder of the key verifies it, nothing else is shared.
    let (tickets, _) = Tickets::configure(Some(&Secret::new(KEY)), 60).expect("tickets");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_micros();
    let ticket = tickets
        .issue(
            &Principal::root(),
            "pay",
            i64::try_from(now).expect("micros"),
        )
        .expect("ticket")
        .ticket;
    let stream = format!("http://127.0.0.1:{port}/v1/books/pay/stream");
    let url = format!("{page_origin}/?stream={stream}&ticket={}", ticket.expose());
    let profile = tempfile::tempdir().expect("profile dir");
    let browser = chromium(&url, profile.path());

    // Live from the moment the stream opened: the two account opens came before.
    report_when(&seen, "an open stream", |r| r["opens"].as_u64() >= Some(1)).await;
    let mut last = 0;
    for i in 0..10 {
        last = f.deposit(&format!("a{i}")).await;
    }
    report_when(&seen, "the first commits", |r| ids(r).last() == Some(&last)).await;

    // The fan-out dies; commits go on; it comes back on the same port and
    // the browser reconnects by itself, with Last-Event-ID and the same ticket.
    kill(fanout);
    for i in 0..10 {
        last = f.deposit(&format!("b{i}")).await;
    }
    let (fanout, _) = f.fanout_with(port, &env, log("second.log")).await;
    for i in 0..10 {
        last = f.deposit(&format!("c{i}")).await;
    }
    let report = report_when(&seen, "every commit", |r| ids(r).last() == Some(&last)).await;
    assert_eq!(
        ids(&report),
        (3..=last).collect::<Vec<_>>(),
        "every event since the page connected exactly once, in order: {report}"
    );
    assert!(
        report["opens"].as_u64() >= Some(2),
        "the browser reconnected by itself: {report}"
    );
    assert_eq!(report["state"], 1, "the stream is open: {report}");

    stop_chromium(browser);
    kill(fanout);
    stop_relay.send_replace(true);
    let _ = relay.await;

    // Tickets never reach the logs, however verbose.
    let secret = ticket.expose();
    let (_, tag) = secret.split_once('.').expect("two parts");
    for name in ["first.log", "second.log"] {
        let text = std::fs::read_to_string(logs.path().join(name)).expect("log");
        assert!(
            !text.contains(secret) && !text.contains(tag),
            "{name} shows the ticket:\n{text}"
        );
    }
    f.finish().await;
}
