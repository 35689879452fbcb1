//! `talead bootstrap` and `wait-bootstrap` against a real Postgres, in every mode and database state.
//!
//! Each test creates its own role and database names (random, prefixed
//! `talea_test_`) and drops them when it passes.

use std::path::Path;
use std::process::{Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;
use serde_json::json;
use sqlx::{Connection, Executor, PgConnection};
use talea_api::LedgerApi;

use crate::{SEED, talead};

/// A role and a database name of one test, dropped by [`Names::drop_all`].
struct Names {
    role: String,
    db: String,
}

impl Names {
    fn new() -> Names {
        let mut bytes = [0u8; 8];
        rand::rng().fill_bytes(&mut bytes);
        let id = hex::encode(bytes);
        Names {
            role: format!("talea_test_role_{id}"),
            db: format!("talea_test_boot_{id}"),
        }
    }

    /// The application URL: the admin server, this role, password and database.
    fn app_url(&self, password: Option<&str>) -> String {
        let password = password.map(|p| format!(":{}", encode(p)));
        server_url(
            &format!("{}{}", self.role, password.unwrap_or_default()),
            &self.db,
        )
    }

    async fn drop_all(&self) {
        let mut admin = admin().await;
        admin
            .execute(format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.db).as_str())
            .await
            .expect("drop database");
        admin
            .execute(format!("DROP ROLE IF EXISTS \"{}\"", self.role).as_str())
            .await
            .expect("drop role");
    }
}

/// The admin URL's scheme and host with `userinfo` and `db` instead of its own.
fn server_url(userinfo: &str, db: &str) -> String {
    let admin = talea_testkit::admin_url();
    let rest = admin.split_once("://").map_or(admin.as_str(), |(_, r)| r);
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let query = if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    };
    format!("postgres://{userinfo}@{host}/{db}{query}")
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

async fn admin() -> PgConnection {
    PgConnection::connect(&talea_testkit::admin_url())
        .await
        .expect("admin connection (scripts/test provides Postgres)")
}

/// An admin connection to database `db`.
async fn admin_in(db: &str) -> PgConnection {
    let admin = talea_testkit::admin_url();
    let rest = admin.split_once("://").map_or(admin.as_str(), |(_, r)| r);
    let rest = rest.split_once('?').map_or(rest, |(r, _)| r);
    let authority = rest.split_once('/').map_or(rest, |(a, _)| a);
    PgConnection::connect(&format!("postgres://{authority}/{db}"))
        .await
        .expect("admin connection to the test database")
}

fn bootstrap(dir: &Path, mode: &str, admin_url: &str, app_url: &str) -> Output {
    talead(dir)
        .args(["bootstrap", "--mode", mode, "--wait-timeout-s", "30"])
        .env("TALEA_ADMIN_DB_URL", admin_url)
        .env("TALEA_DB_URL", app_url)
        .output()
        .expect("talead runs")
}

fn text(out: &Output) -> String {
    format!(
        "status {}\n--- stdout\n{}--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[track_caller]
fn assert_ok(out: &Output) -> String {
    assert!(out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[track_caller]
fn assert_failed(out: &Output) -> String {
    assert!(!out.status.success(), "{}", text(out));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The role as the catalog sees it: (can log in, stored password).
async fn role(names: &Names) -> Option<(bool, Option<String>)> {
    sqlx::query_as("SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = $1")
        .bind(&names.role)
        .fetch_optional(&mut admin().await)
        .await
        .expect("pg_authid (the test admin is a superuser)")
}

async fn asset_codes(names: &Names) -> Vec<String> {
    sqlx::query_scalar("SELECT code FROM assets ORDER BY code")
        .fetch_all(&mut admin_in(&names.db).await)
        .await
        .expect("assets")
}

async fn table_owner(names: &Names) -> String {
    sqlx::query_scalar("SELECT tableowner::text FROM pg_tables WHERE tablename = 'events'")
        .fetch_one(&mut admin_in(&names.db).await)
        .await
        .expect("events table")
}

fn seeded_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("talea.seed.toml"), SEED).expect("seed");
    dir
}

/// Adds an asset to the seed file, to see whether a bootstrap seeds.
fn add_seed_asset(dir: &Path, code: &str) {
    let path = dir.join("talea.seed.toml");
    let mut seed = std::fs::read_to_string(&path).expect("seed");
    seed.push_str(&format!("\n[[assets]]\ncode = \"{code}\"\nscale = 2\n"));
    std::fs::write(path, seed).expect("seed");
}

#[tokio::test]
async fn fresh_creates_everything_reruns_on_seed_data_and_refuses_application_data() {
    let names = Names::new();
    let dir = seeded_dir();
    // Not ASCII, so the server hashes it; quotes and a backslash on top.
    let password = "pässwörd'\"\\; DROP ROLE postgres; --";
    let app_url = names.app_url(Some(password));
    let admin_url = talea_testkit::admin_url();

    // Nothing exists: fresh creates the role, the database, the schema, the seed.
    let stdout = assert_ok(&bootstrap(dir.path(), "fresh", &admin_url, &app_url));
    for needle in [
        "created role",
        "created database",
        "migrated",
        "1 assets created",
        "2 accounts opened",
        "bootstrap complete",
    ] {
        assert!(stdout.contains(needle), "{needle}: {stdout}");
    }
    assert!(!stdout.contains("pässwörd"), "{stdout}");
    let (can_login, stored) = role(&names).await.expect("role created");
    assert!(can_login);
    let stored = stored.expect("a password");
    assert!(
        stored.starts_with("SCRAM-SHA-256$"),
        "hashed, never cleartext"
    );
    assert_eq!(
        table_owner(&names).await,
        names.role,
        "migrated as the app role"
    );
    let owner: String = sqlx::query_scalar(
        "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
    )
    .bind(&names.db)
    .fetch_one(&mut admin().await)
    .await
    .expect("database");
    assert_eq!(owner, names.role);
    let out = talead(dir.path())
        .args(["wait-bootstrap", "--timeout-s", "30"])
        .env("TALEA_DB_URL", &app_url)
        .output()
        .expect("runs");
    assert_ok(&out);

    // Only seed data: fresh is still a new installation (a bootstrap that
    // died part-way through seeding simply runs again), and so is recover.
    add_seed_asset(dir.path(), "ETH");
    let stdout = assert_ok(&bootstrap(dir.path(), "fresh", &admin_url, &app_url));
    assert!(
        stdout.contains("1 assets created (1 already there)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 accounts opened (2 already there)"),
        "{stdout}"
    );
    let stdout = assert_ok(&bootstrap(dir.path(), "recover", &admin_url, &app_url));
    assert!(stdout.contains("2 already there"), "{stdout}");

    // Application data: a transaction posted through the ledger.
    let store = talea_store_pg::PgStore::connect(&app_url, 2)
        .await
        .expect("connect as the app role");
    let ledger = talea_ledger::LedgerService::new(
        Arc::new(store),
        talea_ledger::LedgerConfig::default(),
        talea_telemetry::Metrics::new(),
    );
    let request = serde_json::from_value(json!({
        "idempotency_key": "k1",
        "postings": [
            {"account": "hot-wallet", "asset": "BTC", "debit": "1"},
            {"account": "customers:alice", "asset": "BTC", "credit": "1"}]
    }))
    .expect("request");
    ledger
        .post_transaction("demo", request)
        .await
        .expect("posted");
    drop(ledger);

    // fresh refuses, says what it found and what to do, and changes nothing:
    // not even the role's password, though this run brings a new one (as a
    // new install with regenerated credentials would).
    add_seed_asset(dir.path(), "DOGE");
    let before = role(&names).await;
    let stderr = assert_failed(&bootstrap(
        dir.path(),
        "fresh",
        &admin_url,
        &names.app_url(Some("regenerated")),
    ));
    for needle in [
        "application data",
        "transaction in book demo",
        "nothing was changed",
        "wipe",
        "--mode recover",
    ] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    assert!(!stderr.contains("regenerated"), "{stderr}");
    assert_eq!(role(&names).await, before, "the role was not touched");
    // recover adopts the data, converges, and does not seed.
    let stdout = assert_ok(&bootstrap(dir.path(), "recover", &admin_url, &app_url));
    assert!(stdout.contains("seed skipped"), "{stdout}");
    assert!(stdout.contains("login and password converged"), "{stdout}");
    assert_eq!(
        asset_codes(&names).await,
        ["BTC", "ETH"],
        "DOGE was not seeded"
    );

    names.drop_all().await;
}

#[tokio::test]
async fn recover_creates_everything_when_nothing_exists() {
    let names = Names::new();
    let dir = seeded_dir();
    let app_url = names.app_url(Some("s3cret"));
    let stdout = assert_ok(&bootstrap(
        dir.path(),
        "recover",
        &talea_testkit::admin_url(),
        &app_url,
    ));
    for needle in ["created role", "created database", "1 assets created"] {
        assert!(stdout.contains(needle), "{needle}: {stdout}");
    }
    assert_eq!(table_owner(&names).await, names.role);
    assert_eq!(asset_codes(&names).await, ["BTC"]);
    names.drop_all().await;
}

#[tokio::test]
async fn recover_and_fresh_adopt_an_existing_empty_database_and_role() {
    let names = Names::new();
    let dir = seeded_dir();
    let admin_url = talea_testkit::admin_url();
    // The state a Postgres image leaves: a database owned by the admin, and
    // here also a role that cannot log in yet.
    let mut admin = admin().await;
    admin
        .execute(format!("CREATE DATABASE \"{}\"", names.db).as_str())
        .await
        .expect("create database");
    admin
        .execute(format!("CREATE ROLE \"{}\" NOLOGIN", names.role).as_str())
        .await
        .expect("create role");
    let password = "it's \"quoted\" %41 \\ $1 ; --";
    let app_url = names.app_url(Some(password));

    let stdout = assert_ok(&bootstrap(dir.path(), "recover", &admin_url, &app_url));
    assert!(stdout.contains("database talea_test_boot_"), "{stdout}");
    assert!(stdout.contains("1 assets created"), "{stdout}");
    let (can_login, stored) = role(&names).await.expect("role");
    assert!(can_login, "recover converges the role");
    assert!(stored.is_some_and(|p| p.starts_with("SCRAM-SHA-256$4096:")));
    assert_eq!(table_owner(&names).await, names.role);

    // A seeded database is still new: fresh passes, both modes repeat.
    assert_ok(&bootstrap(dir.path(), "fresh", &admin_url, &app_url));
    assert_ok(&bootstrap(dir.path(), "recover", &admin_url, &app_url));

    // An asset the seed file does not define is application data.
    admin_in(&names.db)
        .await
        .execute("INSERT INTO assets (code, scale) VALUES ('USDC', 6)")
        .await
        .expect("insert");
    let stderr = assert_failed(&bootstrap(dir.path(), "fresh", &admin_url, &app_url));
    assert!(stderr.contains("asset USDC"), "{stderr}");
    assert!(stderr.contains("--mode recover"), "{stderr}");
    assert_ok(&bootstrap(dir.path(), "recover", &admin_url, &app_url));

    names.drop_all().await;
}

#[tokio::test]
async fn an_empty_existing_database_is_fresh_without_a_seed_file() {
    let db = talea_testkit::fresh_database().await.expect("database");
    let dir = tempfile::tempdir().expect("tempdir");
    // TALEA_DB_URL names the admin role itself: nothing to create.
    let stdout = assert_ok(&bootstrap(
        dir.path(),
        "fresh",
        &talea_testkit::admin_url(),
        &db.url,
    ));
    assert!(stdout.contains("administrator role"), "{stdout}");
    assert!(stdout.contains("no seed file"), "{stdout}");
    // An account the (absent) seed file does not define is application data.
    sqlx::raw_sql(
        "INSERT INTO events (book, seq, type, committed_at) VALUES ('b', 1, 'account_opened', now()); \
         INSERT INTO accounts (book, name, kind, metadata, seq, opened_at) \
         VALUES ('b', 'cash', 'asset', '{}', 1, now())",
    )
    .execute(&mut admin_in(&db.name).await)
    .await
    .expect("insert");
    let stderr = assert_failed(&bootstrap(
        dir.path(),
        "fresh",
        &talea_testkit::admin_url(),
        &db.url,
    ));
    assert!(stderr.contains("account b/cash"), "{stderr}");
    let stdout = assert_ok(&bootstrap(
        dir.path(),
        "recover",
        &talea_testkit::admin_url(),
        &db.url,
    ));
    assert!(stdout.contains("seed skipped"), "{stdout}");
    db.drop_database().await.expect("drop");
}

#[tokio::test]
async fn wait_bootstrap_passes_only_once_the_schema_is_migrated() {
    let db = talea_testkit::fresh_database().await.expect("database");
    let dir = tempfile::tempdir().expect("tempdir");

    let out = talead(dir.path())
        .args(["wait-bootstrap", "--timeout-s", "1"])
        .env("TALEA_DB_URL", &db.url)
        .output()
        .expect("runs");
    let stderr = assert_failed(&out);
    assert!(stderr.contains("did not reach"), "{stderr}");
    assert!(stderr.contains("bootstrap"), "{stderr}");

    let mut waiter = talead(dir.path())
        .args(["wait-bootstrap", "--timeout-s", "120"])
        .env("TALEA_DB_URL", &db.url)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawns");
    assert!(waiter.try_wait().expect("wait").is_none());
    assert_ok(&bootstrap(
        dir.path(),
        "recover",
        &talea_testkit::admin_url(),
        &db.url,
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = waiter.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "wait-bootstrap did not return");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    db.drop_database().await.expect("drop");
}

#[tokio::test]
async fn bootstrap_gives_up_on_unreachable_postgres_and_fails_fast_on_refusals() {
    let names = Names::new();
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let unreachable = format!("postgres://postgres:hunter2@127.0.0.1:{port}/postgres");
    for mode in ["fresh", "recover"] {
        let start = Instant::now();
        let out = talead(dir.path())
            .args(["bootstrap", "--mode", mode, "--wait-timeout-s", "1"])
            .env("TALEA_ADMIN_DB_URL", &unreachable)
            .env("TALEA_DB_URL", names.app_url(Some("p")))
            .output()
            .expect("runs");
        let stderr = assert_failed(&out);
        assert!(stderr.contains("did not accept a connection"), "{stderr}");
        assert!(!stderr.contains("hunter2"), "{stderr}");
        assert!(start.elapsed() < Duration::from_secs(20), "bounded wait");
    }

    // A database that does not exist will not appear by waiting: fail at once.
    let start = Instant::now();
    let missing = server_url("postgres", &format!("{}_missing", names.db));
    let out = talead(dir.path())
        .args(["bootstrap", "--mode", "fresh", "--wait-timeout-s", "120"])
        .env("TALEA_ADMIN_DB_URL", &missing)
        .env("TALEA_DB_URL", names.app_url(Some("p")))
        .output()
        .expect("runs");
    let stderr = assert_failed(&out);
    assert!(stderr.contains("cannot connect"), "{stderr}");
    assert!(start.elapsed() < Duration::from_secs(60), "no waiting");

    // Without the URLs, it says which variable to set.
    let out = talead(dir.path())
        .args(["bootstrap", "--mode", "fresh"])
        .output()
        .expect("runs");
    assert!(assert_failed(&out).contains("TALEA_ADMIN_DB_URL"));
    let out = talead(dir.path())
        .args(["bootstrap", "--mode", "sideways"])
        .output()
        .expect("runs");
    assert!(assert_failed(&out).contains("fresh"));
}

#[tokio::test]
async fn names_that_need_more_than_quoting_are_refused_before_anything_is_created() {
    let names = Names::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let bad_role = format!("{}%22%3B", names.role);
    let out = bootstrap(
        dir.path(),
        "fresh",
        &talea_testkit::admin_url(),
        &server_url(&format!("{bad_role}:p"), &names.db),
    );
    let stderr = assert_failed(&out);
    assert!(stderr.contains("role name"), "{stderr}");
    let bad_db = format!("{}%20x", names.db);
    let out = bootstrap(
        dir.path(),
        "fresh",
        &talea_testkit::admin_url(),
        &server_url(&format!("{}:p", names.role), &bad_db),
    );
    let stderr = assert_failed(&out);
    assert!(stderr.contains("database name"), "{stderr}");
    assert!(role(&names).await.is_none(), "nothing was created");
    let exists: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname LIKE $1 || '%')",
    )
    .bind(&names.db)
    .fetch_one(&mut admin().await)
    .await
    .expect("query");
    assert!(!exists);
}
