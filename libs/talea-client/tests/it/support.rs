//! Test fixtures: fresh databases, a real talead router on a socket, clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use talea_auth::{Secret, TokenSet};
use talea_client::{RetryPolicy, TaleaClient};
use talea_http::{AppState, HttpConfig};
use talea_ledger::{LedgerConfig, LedgerService};
use talea_store_pg::PgStore;
use talea_testkit::TestDb;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The all-books read-write token every test server accepts.
pub const ROOT: &str = "root-token";

/// A fresh, migrated database.
pub async fn fresh_db() -> TestDb {
    let db = talea_testkit::fresh_database()
        .await
        .expect("a fresh test database");
    let store = PgStore::connect(&db.url, 2).await.expect("connects");
    store.migrate().await.expect("migrates");
    store.pool().close().await;
    db
}

/// The in-process ledger over `db`.
pub async fn ledger(db: &TestDb) -> LedgerService {
    let store = PgStore::connect(&db.url, 5).await.expect("connects");
    store.check_migrated().await.expect("migrated");
    LedgerService::new(
        Arc::new(store),
        LedgerConfig::default(),
        talea_telemetry::Metrics::new(),
    )
}

/// A talead router serving on a real socket until stopped.
pub struct Server {
    pub addr: SocketAddr,
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Server {
    /// Serves `db` on `addr` (`127.0.0.1:0` for any free port).
    pub async fn start(db_url: &str, addr: SocketAddr) -> Self {
        Self::start_with(db_url, addr, HttpConfig::default()).await
    }

    pub async fn start_with(db_url: &str, addr: SocketAddr, http: HttpConfig) -> Self {
        let store = PgStore::connect(db_url, 5).await.expect("connects");
        store.check_migrated().await.expect("migrated");
        let ledger = LedgerService::new(
            Arc::new(store),
            LedgerConfig::default(),
            talea_telemetry::Metrics::new(),
        );
        // As talead with TALEA_CHECKPOINT_EVERY=1: a checkpoint per new event.
        let checkpointer = ledger.spawn_checkpointer(talea_ledger::CheckpointEvery::Events(1));
        let tokens = TokenSet::load(Some(&Secret::new(ROOT)), None).expect("root token");
        let hub = talea_stream::Hub::new(
            Arc::new(talea_stream::NoticeSource::new(ledger.clone())),
            Arc::new(talea_stream::LedgerBackfill::new(ledger.clone())),
            Arc::new(talea_stream::NoObserver),
            talea_stream::StreamConfig::default(),
        );
        let state = AppState::new(ledger, Arc::new(tokens), &http).with_stream(hub.clone());
        let listener = TcpListener::bind(addr).await.expect("binds");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, talea_http::router(state))
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                    // As talead does: streams say `shutdown` and end.
                    hub.shut_down();
                })
                .await
                .expect("serves");
            checkpointer.abort();
        });
        Self {
            addr,
            base: format!("http://{addr}"),
            stop: Some(stop),
            task,
        }
    }

    /// Stops accepting, closes every connection, and waits until the port is free.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the server stops within 10 s")
            .expect("the server task ends cleanly");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Retries quick enough for tests, generous enough for a loaded machine.
pub fn quick_policy() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        deadline: Duration::from_secs(20),
        base_delay: Duration::from_millis(20),
        max_delay: Duration::from_millis(200),
        attempt_timeout: Duration::from_secs(15),
    }
}

/// A client of `base` with the root token and the quick policy.
pub fn client(base: &str) -> TaleaClient {
    TaleaClient::builder(base)
        .token(ROOT)
        .retry_policy(quick_policy())
        .build()
        .expect("client builds")
}

/// The `talea` binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_talea");

/// What a run of the binary left behind.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    #[track_caller]
    pub fn ok(self) -> Self {
        self.exits(0)
    }

    #[track_caller]
    pub fn exits(self, code: i32) -> Self {
        assert_eq!(self.code, code, "{self:#?}");
        self
    }

    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:#?}"))
    }
}

/// Runs `cmd` (the binary with its arguments and environment set) to the
/// end, with `stdin` piped in if given. Blocks.
pub fn run(mut cmd: std::process::Command, stdin: Option<&str>) -> Run {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("talea starts");
    if let Some(mut pipe) = child.stdin.take()
        && let Some(text) = stdin
    {
        // A command that ends before it reads its input (an argument
        // refused first) closes the pipe: that is its answer, not a failure.
        if let Err(e) = pipe.write_all(text.as_bytes()) {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe,
                "writes stdin: {e}"
            );
        }
    }
    let out = child.wait_with_output().expect("talea runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}
