//! A Postgres database per test: created empty, dropped when the test
//! passes, and reclaimed by a later run when a failed test left it behind.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, anyhow};
use sqlx::{Connection, Executor, PgConnection};
use url::Url;

/// The admin database URL used when `TALEA_TEST_PG_URL` is unset.
pub const DEFAULT_PG_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A database created for one test. It is left unmigrated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestDb {
    /// A URL to the new database (the admin URL with its database replaced).
    pub url: String,
    /// The database's name, `talea_test_<uuid>[_<run mark>]`.
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
/// The name is `talea_test_<uuid>[_<run mark>]` with a v7 (time-ordered) uuid, so the
/// first call in a process can recognise databases that earlier runs left
/// behind more than an hour ago and drop them.
pub async fn fresh_database() -> anyhow::Result<TestDb> {
    let mut admin = admin_connection().await?;
    static RECLAIMED: AtomicBool = AtomicBool::new(false);
    if !RECLAIMED.swap(true, Ordering::SeqCst) {
        reclaim_stale(&mut admin).await;
    }
    let mut name = format!("{DB_PREFIX}{}", uuid::Uuid::now_v7().simple());
    if let Some(run) = run_mark() {
        name = format!("{name}_{run}");
    }
    let url = with_database(&admin_url(), &name)?;
    // The name is generated here from hex digits, so quoting it is enough.
    admin
        .execute(format!("CREATE DATABASE \"{name}\"").as_str())
        .await
        .with_context(|| format!("creating test database {name}"))?;
    admin.close().await.ok();
    Ok(TestDb { url, name })
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

/// The mark of this test run, `TALEA_TEST_RUN` (set by `scripts/test`),
/// when it is a short run of lowercase letters and digits: appended to each
/// database's name so that the end of the run drops exactly its own.
fn run_mark() -> Option<String> {
    let run = std::env::var("TALEA_TEST_RUN").ok()?;
    let valid = (1..=24).contains(&run.len())
        && run
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    valid.then_some(run)
}

/// The creation time (Unix ms) encoded in a test database's v7-uuid name
/// (`talea_test_<uuid>`, with or without a run mark after it).
fn created_ms(name: &str) -> Option<u64> {
    let rest = name.strip_prefix(DB_PREFIX)?;
    let hex = rest.split('_').next()?;
    // A v7 uuid in simple form: 48 bits of Unix milliseconds, then version 7.
    if hex.len() != 32 || hex.as_bytes()[12] != b'7' {
        return None;
    }
    u64::from_str_radix(&hex[..12], 16).ok()
}

/// `url` with its database (the path) replaced by `name`, query kept.
fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let mut url = Url::parse(url).context("TALEA_TEST_PG_URL is not a URL")?;
    url.set_path(name);
    Ok(url.into())
}

/// `url` with any password replaced, for error messages.
fn redact(url: &str) -> String {
    let Ok(mut url) = Url::parse(url) else {
        return "(not a URL)".to_owned();
    };
    if url.password().is_some() {
        // Only a URL without a host refuses a password, and this one has one.
        url.set_password(Some("***")).ok();
    }
    url.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_replaced_in_urls() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/postgres", "t1").expect("a URL"),
            "postgres://postgres@127.0.0.1:5432/t1"
        );
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t1").expect("a URL"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "t1").expect("a URL"),
            "postgres://h:5432/t1"
        );
        assert_eq!(
            with_database("postgres://h?x=1", "t1").expect("a URL"),
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
        assert_eq!(
            created_ms(&format!("{DB_PREFIX}{}_r1234", id.simple())),
            Some(ms),
            "a run mark after the uuid"
        );
    }

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("postgres://h/db"), "postgres://h/db");
    }
}
