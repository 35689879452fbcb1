//! Dev-only test helpers: a fresh Postgres database per test, NATS settings,
//! deadline polling, and real processes for fault tests (`process`).
//!
//! This crate deliberately knows nothing of talea's own crates (callers
//! migrate with `PgStore::migrate`), so any crate can use it as a
//! dev-dependency without a dependency cycle.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use sqlx::{Connection, Executor, PgConnection};

pub mod process;

/// The admin database URL used when `TALEA_TEST_PG_URL` is unset.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// The NATS URL used when `TALEA_TEST_NATS_URL` is unset.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// A database created for one test. It is left unmigrated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDb {
    /// A URL to the new database (the admin URL with its database replaced).
    pub url: String,
    /// The database's name, `talea_test_<uuid>`.
    pub name: String,
}

impl TestDb {
    /// Drops the database, disconnecting whoever is still connected. Tests
    /// call it when they pass; a failed test's database is left for
    /// inspection.
    pub async fn drop_database(&self) -> anyhow::Result<()> {
        let mut admin = admin_connection().await?;
        admin
            .execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name).as_str())
            .await
            .with_context(|| format!("dropping test database {}", self.name))?;
        admin.close().await.ok();
        Ok(())
    }
}

/// The admin URL: `TALEA_TEST_PG_URL`, or [`DEFAULT_PG_URL`].
pub fn admin_url() -> String {
    std::env::var("TALEA_TEST_PG_URL").unwrap_or_else(|_| DEFAULT_PG_URL.to_owned())
}

/// A connection to the admin database, with an error that says what to do.
async fn admin_connection() -> anyhow::Result<PgConnection> {
    let url = admin_url();
    PgConnection::connect(&url).await.map_err(|e| {
        anyhow!(
            "Postgres is unreachable at {} ({e}); run `scripts/test`, which starts one, \
             or install the Debian `postgresql` package (or set TALEA_TEST_PG_URL)",
            redact(&url)
        )
    })
}

/// The prefix of every test database's name.
const DB_PREFIX: &str = "talea_test_";

/// Test databases older than this are dropped by the next test process: a
/// test that panics (or whose harness drops no database) leaves one behind,
/// and each costs megabytes of disk.
const STALE_DB_AGE: Duration = Duration::from_secs(3600);

/// Creates an empty, uniquely named database and returns its URL.
///
/// The name is `talea_test_<uuid>` with a v7 (time-ordered) uuid, so the
/// first call in a process can recognise databases that earlier runs left
/// behind more than an hour ago and drop them.
pub async fn fresh_database() -> anyhow::Result<TestDb> {
    let mut admin = admin_connection().await?;
    static RECLAIMED: AtomicBool = AtomicBool::new(false);
    if !RECLAIMED.swap(true, Ordering::SeqCst) {
        reclaim_stale(&mut admin).await;
    }
    let name = format!("{DB_PREFIX}{}", uuid::Uuid::now_v7().simple());
    // The name is generated here from hex digits, so quoting it is enough.
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .with_context(|| format!("creating test database {name}"))?;
    admin.close().await.ok();
    Ok(TestDb {
        url: with_database(&admin_url(), &name),
        name,
    })
}

/// Drops test databases created more than [`STALE_DB_AGE`] ago. Best effort:
/// a failure here must not fail the test that happened to run first.
async fn reclaim_stale(admin: &mut PgConnection) {
    let Ok(names) = sqlx::query_scalar::<_, String>(
        "SELECT datname FROM pg_database WHERE starts_with(datname, 'talea_test_')",
    )
    .fetch_all(&mut *admin)
    .await
    else {
        return;
    };
    let now_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    for name in names {
        let Some(created_ms) = created_ms(&name) else {
            continue;
        };
        if now_ms.saturating_sub(u128::from(created_ms)) > STALE_DB_AGE.as_millis() {
            let _ = admin
                .execute(format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)").as_str())
                .await;
        }
    }
}

/// The creation time (Unix ms) encoded in a test database's v7-uuid name.
fn created_ms(name: &str) -> Option<u64> {
    let hex = name.strip_prefix(DB_PREFIX)?;
    // A v7 uuid in simple form: 48 bits of Unix milliseconds, then version 7.
    if hex.len() != 32 || hex.as_bytes()[12] != b'7' {
        return None;
    }
    u64::from_str_radix(&hex[..12], 16).ok()
}

/// `url` with its database (the path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let path_start = base[authority_start..]
        .find('/')
        .map_or(base.len(), |i| authority_start + i);
    let mut out = format!("{}/{name}", &base[..path_start]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// `url` with any password replaced, for error messages.
fn redact(url: &str) -> String {
    let Some(scheme_end) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[scheme_end..];
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let Some(at) = rest[..authority_end].rfind('@') else {
        return url.to_owned();
    };
    match rest[..at].split_once(':') {
        Some((user, _password)) => format!("{}{user}:***{}", &url[..scheme_end], &rest[at..]),
        None => url.to_owned(),
    }
}

/// The NATS URL for tests: `TALEA_TEST_NATS_URL`, or [`DEFAULT_NATS_URL`].
pub fn nats_url() -> String {
    std::env::var("TALEA_TEST_NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_owned())
}

/// A prefix unique to this call, safe as a NATS subject token (letters,
/// digits and `_` only), so concurrent tests on one server never see each
/// other's messages.
pub fn unique_prefix() -> String {
    format!("test_{}", uuid::Uuid::new_v4().simple())
}

/// Polls `check` until it yields a value or `deadline` passes.
///
/// The pause between polls starts at 5 ms and doubles up to 100 ms: short
/// enough that a test waits little longer than the condition takes, and it
/// is a poll interval, never a guess at how long something takes.
pub async fn wait_for<T, F, Fut>(deadline: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if start.elapsed() >= deadline {
            return Err(anyhow!("condition not met within {deadline:?}"));
        }
        tokio::time::sleep(pause.min(deadline.saturating_sub(start.elapsed()))).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Polls `check` until it returns true or `deadline` passes.
pub async fn wait_until<F, Fut>(deadline: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(deadline, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "t1"),
            "postgres://h:5432/t1"
        );
        assert_eq!(
            with_database("postgres://h?x=1", "t1"),
            "postgres://h/t1?x=1"
        );
    }

    #[test]
    fn creation_time_is_read_from_v7_names() {
        let id = uuid::Uuid::now_v7();
        let ms = created_ms(&format!("{DB_PREFIX}{}", id.simple())).expect("v7 name");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis();
        assert!(now.abs_diff(u128::from(ms)) < 60_000);
        assert_eq!(
            created_ms(&format!("{DB_PREFIX}{}", uuid::Uuid::new_v4().simple())),
            None
        );
        assert_eq!(created_ms("postgres"), None);
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }

    #[test]
    fn prefixes_are_unique_subject_tokens() {
        let (a, b) = (unique_prefix(), unique_prefix());
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'));
    }

    #[tokio::test]
    async fn polling_returns_early_and_times_out() {
        let mut calls = 0;
        let value = wait_for(Duration::from_secs(5), || {
            calls += 1;
            let done = calls >= 3;
            async move { done.then_some(calls) }
        })
        .await
        .expect("condition is met on the third call");
        assert_eq!(value, 3);
        let err = wait_until(Duration::from_millis(20), || async { false }).await;
        assert!(err.is_err());
    }
}
