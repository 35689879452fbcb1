//! `talead bootstrap` and `talead wait-bootstrap`: the deployment's database set-up, keyed to database state.
//!
//! `bootstrap` is what a Kubernetes Job (or the compose `bootstrap` service)
//! runs before any application pod: it waits, with a deadline, for a direct
//! connection to Postgres as an administrator (`TALEA_ADMIN_DB_URL`), creates
//! the application role and database that `TALEA_DB_URL` names when they are
//! missing, migrates as the application role, and applies the seed file only
//! when the database holds no application data. What "has application data"
//! means is read from the database, never from a flag or a Helm revision:
//! a transaction in any book, or an asset or account the seed file does not
//! define. Seed-only data does not count, so a bootstrap that died half-way
//! through seeding is simply run again.
//!
//! `--mode fresh` is for a new installation: it refuses a database with
//! application data (the operator pointed a new release at an old volume, or
//! lost the credentials Secret). `--mode recover` adopts whatever is there
//! and converges: role, grants, schema; it seeds only an empty database.
//!
//! The data gate runs first, as the administrator, so a `fresh` bootstrap
//! that refuses a database has changed nothing (not even the role's
//! password, which the running release may still use).
//!
//! `wait-bootstrap` is the init container of every application pod: it
//! exits 0 once the schema is at (or past) this binary's version.
//!
//! Names from `TALEA_DB_URL` are checked against a strict pattern and then
//! quoted by the server (`format('%I')`), passwords are hashed here into a
//! SCRAM-SHA-256 verifier, so no cleartext password reaches the server's
//! statement log, and every statement text is built by the server from bound
//! parameters: nothing from the URL is spliced into SQL by this process.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::{Args, ValueEnum};
use hmac::{Hmac, Mac};
use pbkdf2::pbkdf2_hmac_array;
use percent_encoding::percent_decode_str;
use rand::RngCore;
use sha2::{Digest, Sha256};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgConnection};
use talea_auth::Secret;
use talea_store_pg::{ANCHOR, Distribution, PgStore};
use tokio::time::Instant;
use url::{Position, Url};

use crate::seed;

/// How `bootstrap` treats a database that already holds application data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Mode {
    /// A new installation: fail if the database holds application data.
    Fresh,
    /// Adopt the existing database: tolerate its data and converge.
    Recover,
}

/// Options of `talead bootstrap`.
#[derive(Debug, Args)]
pub(crate) struct BootstrapArgs {
    /// `fresh` (new installation; refuses existing data) or `recover` (adopts it).
    #[arg(long, value_enum, env = "TALEA_BOOTSTRAP_MODE")]
    pub mode: Mode,
    /// Administrator URL, direct to Postgres (never through PgBouncer): a role
    /// that may create roles and databases and read the application's tables
    /// (a superuser, or a member of the application role).
    #[arg(long, env = "TALEA_ADMIN_DB_URL", hide_env_values = true)]
    pub admin_db_url: Option<Secret>,
    /// The application's URL, direct to Postgres: its user, password and
    /// database are the role and database to create.
    #[arg(long, env = "TALEA_DB_URL", hide_env_values = true)]
    pub db_url: Option<Secret>,
    /// Seed file with assets and accounts (skipped when absent).
    #[arg(long, env = "TALEA_SEED_FILE", default_value = "talea.seed.toml")]
    pub seed: PathBuf,
    /// How long to wait for Postgres to accept the administrator, in seconds.
    #[arg(long, env = "TALEA_BOOTSTRAP_WAIT_S", default_value_t = 300)]
    pub wait_timeout_s: u64,
}

/// Options of `talead wait-bootstrap`.
#[derive(Debug, Args)]
pub(crate) struct WaitArgs {
    /// The application's database URL (PgBouncer is fine here).
    #[arg(long, env = "TALEA_DB_URL", hide_env_values = true)]
    pub db_url: Option<Secret>,
    /// How long to wait for the schema, in seconds, before failing.
    #[arg(long, env = "TALEA_WAIT_BOOTSTRAP_S", default_value_t = 600)]
    pub timeout_s: u64,
}

/// The longest pause between two connection attempts.
const POLL_PAUSE_MAX: Duration = Duration::from_secs(2);

/// The longest a single connection attempt may take (a silently dropped
/// SYN would otherwise hang until the kernel gives up).
const CONNECT_ATTEMPT_MAX: Duration = Duration::from_secs(10);

/// Iterations of the SCRAM-SHA-256 verifiers made here (Postgres' default).
const SCRAM_ITERATIONS: u32 = 4096;

/// The variable naming the administrator's URL, for messages.
const ADMIN_VAR: &str = "TALEA_ADMIN_DB_URL";

pub(crate) async fn run(args: BootstrapArgs) -> anyhow::Result<()> {
    let Some(admin_url) = args.admin_db_url.as_ref() else {
        bail!(
            "no administrator URL: set TALEA_ADMIN_DB_URL to a direct (not PgBouncer) \
             postgres://… URL of a role that may create roles and databases"
        );
    };
    let Some(app_url) = args.db_url.as_ref() else {
        bail!("no application URL: set TALEA_DB_URL (postgres://ROLE:PASSWORD@HOST:PORT/DATABASE)");
    };
    let target = Target::parse(app_url.expose())?;
    let admin_url = Url::parse(admin_url.expose())
        .map_err(|e| anyhow!("{ADMIN_VAR} is not a valid PostgreSQL URL: {e}"))?;
    let deadline = Instant::now() + Duration::from_secs(args.wait_timeout_s);

    let mut admin = connect_until(&admin_url, deadline).await?;
    println!(
        "connected to PostgreSQL at {} as administrator",
        describe(&admin_url)
    );
    let admin_role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&mut admin)
        .await
        .context("reading the administrator's role")?;
    let found = gate(&mut admin, &admin_url, &target, &args, deadline).await?;
    if target.role == admin_role {
        println!(
            "TALEA_DB_URL uses the administrator role {} itself: no role to create",
            target.role
        );
    } else {
        converge_role(&mut admin, &target).await?;
    }
    let created = ensure_database(&mut admin, &target).await?;
    admin.close().await.ok();
    if !created && target.role != admin_role {
        // An existing database (e.g. one the Postgres image created) may be
        // owned by another role: let the application role create its schema.
        let mut conn =
            connect_until(&with_database(&admin_url, &target.database), deadline).await?;
        grant_schema(&mut conn, &target).await?;
        conn.close().await.ok();
    }
    migrate_and_seed(app_url.expose(), &target, &args.seed, found).await
}

/// The data gate, run first and as the administrator: what application data
/// the target database holds, if it exists. A `fresh` bootstrap pointed at a
/// database with data (say, with a regenerated password) fails here, before
/// anything is changed, so the role the running release uses is untouched.
async fn gate(
    admin: &mut PgConnection,
    admin_url: &Url,
    target: &Target,
    args: &BootstrapArgs,
    deadline: Instant,
) -> anyhow::Result<Option<String>> {
    let seed_names = if args.seed.exists() {
        seed::names(&args.seed)?
    } else {
        seed::SeedNames::default()
    };
    let db_exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&target.database)
            .fetch_one(&mut *admin)
            .await
            .context("looking up the database")?;
    let found = if db_exists {
        let mut conn = connect_until(&with_database(admin_url, &target.database), deadline).await?;
        let found = application_data(&mut conn, &seed_names).await?;
        conn.close().await.ok();
        found
    } else {
        None
    };
    if let (Mode::Fresh, Some(what)) = (args.mode, &found) {
        bail!(
            "--mode fresh refuses database {}: it already holds application data ({what}). \
             This is not a new installation, and nothing was changed. To start over, wipe the \
             database (its volume); to keep the data, rerun with --mode recover, which adopts \
             it and converges",
            target.database
        );
    }
    Ok(found)
}

/// Creates or converges the application role, and gives every session of it
/// custom plans, also through a transaction-mode PgBouncer (talea_store_pg
/// sets it per connection too; see its `SESSION_SETUP`).
async fn converge_role(admin: &mut PgConnection, target: &Target) -> anyhow::Result<()> {
    ensure_role(admin, target).await?;
    for (setting, value) in ROLE_SETTINGS {
        execute_formatted(
            admin,
            &format!("SELECT format('ALTER ROLE %I SET {setting} = {value}', $1::text)"),
            &[&target.role],
        )
        .await
        .with_context(|| format!("setting {setting} on role {}", target.role))?;
    }
    Ok(())
}

/// What every session of the application role runs with: the settings of
/// `talea_store_pg`'s `SESSION_SETUP`.
const ROLE_SETTINGS: [(&str, &str); 2] = [
    ("plan_cache_mode", "force_custom_plan"),
    ("random_page_cost", "1.1"),
];

/// Migrates as the application role, so the schema is its own, then seeds
/// the database when the gate `found` no application data in it.
/// Distributes a migrated database by book where it is a Citus coordinator
/// (`PgStore::distribute`; nothing on plain Postgres), saying what it did.
pub(crate) async fn distribute(store: &PgStore) -> anyhow::Result<()> {
    match store
        .distribute()
        .await
        .context("distributing the tables by book (Citus)")?
    {
        Distribution::NotCitus => {}
        Distribution::Distributed {
            version,
            workers,
            distributed,
            referenced,
            unchanged,
        } => {
            println!(
                "Citus {version}, {workers} workers: distributed by book (colocated with \
                 {ANCHOR}): {}; reference tables: {}; already in place: {}",
                list(&distributed),
                list(&referenced),
                list(&unchanged)
            );
        }
    }
    Ok(())
}

fn list(tables: &[String]) -> String {
    if tables.is_empty() {
        "none".to_owned()
    } else {
        tables.join(", ")
    }
}

async fn migrate_and_seed(
    app_url: &str,
    target: &Target,
    seed_file: &Path,
    found: Option<String>,
) -> anyhow::Result<()> {
    let store = PgStore::connect(app_url, 2)
        .await
        .context("cannot connect as the application role (TALEA_DB_URL)")?;
    store.migrate().await.context("migrating the database")?;
    println!("database {} migrated", target.database);
    distribute(&store).await?;
    match found {
        None if seed_file.exists() => {
            let applied = seed::apply_to_store(Arc::new(store), seed_file).await?;
            println!("seed {}: {}", seed_file.display(), applied.summary());
        }
        None => println!("no seed file at {} (skipped)", seed_file.display()),
        Some(what) => println!("application data present ({what}): seed skipped"),
    }
    println!("bootstrap complete");
    Ok(())
}

pub(crate) async fn wait(args: WaitArgs) -> anyhow::Result<()> {
    let Some(url) = args.db_url else {
        bail!("no database: set TALEA_DB_URL");
    };
    let deadline = Instant::now() + Duration::from_secs(args.timeout_s);
    let mut pause = Duration::from_millis(100);
    let mut last = String::new();
    loop {
        match schema_ready(url.expose()).await {
            Ok(()) => {
                println!("the database schema is at this binary's version");
                return Ok(());
            }
            Err(e) => {
                let message = e.to_string();
                if message != last {
                    println!("waiting for the bootstrap: {message}");
                    last = message;
                }
            }
        }
        let now = Instant::now();
        if now >= deadline {
            bail!(
                "the database schema did not reach this binary's version within {}s \
                 (last: {last}); is the bootstrap job running?",
                args.timeout_s
            );
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(POLL_PAUSE_MAX);
    }
}

async fn schema_ready(url: &str) -> Result<(), talea_store::StoreError> {
    let store = PgStore::connect(url, 1).await?;
    let result = store.check_migrated().await;
    store.pool().close().await;
    result
}

/// The role and database `TALEA_DB_URL` names, and the role's password.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    role: String,
    password: Option<Secret>,
    database: String,
}

impl Target {
    /// Reads `postgres://ROLE[:PASSWORD]@HOST[:PORT]/DATABASE[?…]`. Only
    /// the URL's own user and path are read: a `user=`, `password=` or
    /// `dbname=` parameter would make what is created differ from what the
    /// application connects as, so it is refused.
    fn parse(url: &str) -> anyhow::Result<Target> {
        let url = Url::parse(url)
            .ok()
            .filter(|u| matches!(u.scheme(), "postgres" | "postgresql"));
        let Some(url) = url else {
            bail!("TALEA_DB_URL must be a postgres://… URL");
        };
        let refused = ["user", "password", "dbname"];
        if let Some((key, _)) = url.query_pairs().find(|(k, _)| refused.contains(&&**k)) {
            bail!(
                "TALEA_DB_URL sets `{key}` as a parameter: name the role and database \
                 in the URL itself (postgres://ROLE:PASSWORD@HOST/DATABASE)"
            );
        }
        if url.username().is_empty() {
            bail!("TALEA_DB_URL names no role: use postgres://ROLE:PASSWORD@HOST/DATABASE");
        }
        let role = decode("role name", url.username())?;
        let password = url.password().map(|p| decode("password", p)).transpose()?;
        let path = url.path();
        let database = decode("database name", path.strip_prefix('/').unwrap_or(path))?;
        check_name("role", &role)?;
        check_name("database", &database)?;
        Ok(Target {
            role,
            password: password.filter(|p| !p.is_empty()).map(Secret::new),
            database,
        })
    }
}

/// Accepts the identifiers a deployment needs (letters, digits, `_`, `-`;
/// starting with a letter or `_`; at most 63 bytes, Postgres' limit) and
/// nothing else, so a name is never truncated or read as something else.
fn check_name(kind: &str, name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !first_ok || !rest_ok || name.len() > 63 {
        bail!(
            "TALEA_DB_URL: the {kind} name {name:?} is not accepted: use 1 to 63 letters, \
             digits, `_` or `-`, starting with a letter or `_`"
        );
    }
    if kind == "role" && name.starts_with("pg_") {
        bail!("TALEA_DB_URL: role names starting with `pg_` are reserved by PostgreSQL");
    }
    Ok(())
}

/// A URL component percent-decoded. `url` keeps a `%` that starts no escape
/// as it is, which libpq refuses, so it is refused here too (without echoing
/// the text, which may be the password).
fn decode(what: &str, text: &str) -> anyhow::Result<String> {
    let escapes_ok = text.split('%').skip(1).all(|rest| {
        rest.get(..2)
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()))
    });
    if !escapes_ok {
        bail!("TALEA_DB_URL: the {what} has an invalid percent-encoding");
    }
    let decoded = percent_decode_str(text).decode_utf8();
    let decoded = decoded.with_context(|| format!("TALEA_DB_URL: the {what} is not UTF-8"))?;
    Ok(decoded.into_owned())
}

/// `url` with its database (the path) replaced by `name`, query kept.
fn with_database(url: &Url, name: &str) -> Url {
    let mut url = url.clone();
    url.set_path(name);
    url
}

/// `host:port/database` of a URL, for messages: never the user or password.
fn describe(url: &Url) -> &str {
    &url[Position::BeforeHost..Position::AfterPath]
}

/// Connects to `url` (the administrator's), retrying what may pass (refused,
/// unresolvable, "the database system is starting up", too many
/// connections) until `deadline`. A refusal that will not pass (a wrong
/// password, a missing database) fails at once.
async fn connect_until(url: &Url, deadline: Instant) -> anyhow::Result<PgConnection> {
    let options = PgConnectOptions::from_url(url)
        .map_err(|e| anyhow!("{ADMIN_VAR} is not a valid PostgreSQL URL: {e}"))?
        .application_name("talea-bootstrap");
    let mut pause = Duration::from_millis(100);
    let mut last = String::new();
    loop {
        let budget = deadline
            .saturating_duration_since(Instant::now())
            .min(CONNECT_ATTEMPT_MAX);
        match tokio::time::timeout(budget, PgConnection::connect_with(&options)).await {
            Ok(Ok(conn)) => return Ok(conn),
            Ok(Err(e)) if !retryable(&e) => {
                bail!("cannot connect with {ADMIN_VAR} to {}: {e}", describe(url));
            }
            Ok(Err(e)) => {
                let message = e.to_string();
                if message != last {
                    println!("waiting for PostgreSQL at {}: {message}", describe(url));
                    last = message;
                }
            }
            Err(_) => last = format!("no answer within {}s", budget.as_secs()),
        }
        let now = Instant::now();
        if now >= deadline {
            bail!(
                "PostgreSQL at {} did not accept a connection with {ADMIN_VAR} in time \
                 (last: {last}); check that it runs and that the URL is direct, not PgBouncer",
                describe(url)
            );
        }
        tokio::time::sleep(pause.min(deadline - now)).await;
        pause = (pause * 2).min(POLL_PAUSE_MAX);
    }
}

fn retryable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
        // cannot_connect_now (starting up, shutting down, recovery),
        // too_many_connections, and the connection-exception class.
        sqlx::Error::Database(e) => e
            .code()
            .is_some_and(|c| c == "57P03" || c == "53300" || c.starts_with("08")),
        _ => false,
    }
}

/// Executes a statement the server built with `format()` from bound
/// parameters, so that names and passwords are quoted by Postgres itself.
async fn execute_formatted(
    conn: &mut PgConnection,
    template: &str,
    params: &[&str],
) -> Result<(), sqlx::Error> {
    let mut query = sqlx::query_scalar::<_, String>(template);
    for param in params {
        query = query.bind(*param);
    }
    let statement = query.fetch_one(&mut *conn).await?;
    sqlx::raw_sql(&statement).execute(&mut *conn).await?;
    Ok(())
}

fn is_duplicate(error: &sqlx::Error) -> bool {
    // duplicate_object (a role), duplicate_database, and unique_violation
    // (two concurrent CREATEs race on the catalog's unique index).
    matches!(error, sqlx::Error::Database(e)
        if e.code().is_some_and(|c| c == "42710" || c == "42P04" || c == "23505"))
}

/// The value for `PASSWORD`: a SCRAM-SHA-256 verifier computed here, so the
/// server stores it as is and no cleartext reaches a statement or a log.
/// Postgres prepares passwords with SASLprep, which leaves ASCII unchanged;
/// for anything else the server does the hashing (still quoted with %L).
fn password_value(password: &str) -> String {
    if !password.is_ascii() {
        return password.to_owned();
    }
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    scram_verifier(password, &salt, SCRAM_ITERATIONS)
}

/// Creates the application role, or makes an existing one able to log in
/// with the password from `TALEA_DB_URL`.
async fn ensure_role(conn: &mut PgConnection, target: &Target) -> anyhow::Result<()> {
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)")
            .bind(&target.role)
            .fetch_one(&mut *conn)
            .await
            .context("looking up the application role")?;
    let password = target.password.as_ref().map(|p| password_value(p.expose()));
    if !exists {
        match login_role(conn, "CREATE", &target.role, password.as_deref()).await {
            Ok(()) => {
                println!("created role {}", target.role);
                return Ok(());
            }
            // Another bootstrap created it meanwhile: converge below.
            Err(e) if is_duplicate(&e) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("creating role {}", target.role));
            }
        }
    }
    // The Secret is the truth: an existing role gets its password (and the
    // right to log in) from it, so `recover` converges after a restore.
    login_role(conn, "ALTER", &target.role, password.as_deref())
        .await
        .with_context(|| format!("updating role {}", target.role))?;
    println!("role {} exists: login and password converged", target.role);
    Ok(())
}

/// `CREATE` or `ALTER` (the `verb`, always one of those two literals) the
/// role `WITH LOGIN`, and the password when there is one.
async fn login_role(
    conn: &mut PgConnection,
    verb: &'static str,
    role: &str,
    password: Option<&str>,
) -> Result<(), sqlx::Error> {
    match password {
        Some(p) => {
            let template = format!(
                "SELECT format('{verb} ROLE %I WITH LOGIN PASSWORD %L', $1::text, $2::text)"
            );
            execute_formatted(conn, &template, &[role, p]).await
        }
        None => {
            let template = format!("SELECT format('{verb} ROLE %I WITH LOGIN', $1::text)");
            execute_formatted(conn, &template, &[role]).await
        }
    }
}

/// Creates the database, owned by the application role, unless it exists.
/// Returns whether it was created. An existing one gets the grants the
/// application role needs, whoever owns it.
async fn ensure_database(conn: &mut PgConnection, target: &Target) -> anyhow::Result<bool> {
    let owner: Option<String> = sqlx::query_scalar(
        "SELECT pg_get_userbyid(datdba)::text FROM pg_database WHERE datname = $1",
    )
    .bind(&target.database)
    .fetch_optional(&mut *conn)
    .await
    .context("looking up the database")?;
    if owner.is_none() {
        match execute_formatted(
            conn,
            "SELECT format('CREATE DATABASE %I OWNER %I', $1::text, $2::text)",
            &[&target.database, &target.role],
        )
        .await
        {
            Ok(()) => {
                println!(
                    "created database {} owned by {}",
                    target.database, target.role
                );
                return Ok(true);
            }
            Err(e) if is_duplicate(&e) => {}
            Err(e) => {
                return Err(e).with_context(|| format!("creating database {}", target.database));
            }
        }
    }
    if owner.as_deref() != Some(target.role.as_str()) {
        execute_formatted(
            conn,
            "SELECT format('GRANT CONNECT, CREATE, TEMPORARY ON DATABASE %I TO %I', \
             $1::text, $2::text)",
            &[&target.database, &target.role],
        )
        .await
        .with_context(|| format!("granting {} access to {}", target.role, target.database))?;
    }
    println!("database {} exists", target.database);
    Ok(false)
}

/// Lets the application role create its tables in `public` of an existing
/// database (Postgres 15 and later no longer let everyone do that).
async fn grant_schema(conn: &mut PgConnection, target: &Target) -> anyhow::Result<()> {
    execute_formatted(
        conn,
        "SELECT format('GRANT USAGE, CREATE ON SCHEMA public TO %I', $1::text)",
        &[&target.role],
    )
    .await
    .with_context(|| format!("granting {} the schema public", target.role))
}

/// What application data the database holds, if any: a transaction, or an
/// asset or account that the seed file does not define. `None` for an
/// empty database, one with no talea schema yet, and one holding only what
/// the seed file defines.
async fn application_data(
    conn: &mut PgConnection,
    seed: &seed::SeedNames,
) -> anyhow::Result<Option<String>> {
    let has_schema: bool = sqlx::query_scalar("SELECT to_regclass('events') IS NOT NULL")
        .fetch_one(&mut *conn)
        .await
        .context("looking for the talea schema")?;
    if !has_schema {
        return Ok(None);
    }
    let transaction: Option<String> = sqlx::query_scalar(
        "SELECT 'a transaction in book ' || book FROM events \
         WHERE type <> 'account_opened' LIMIT 1",
    )
    .fetch_optional(&mut *conn)
    .await
    .context("looking for transactions")?;
    if transaction.is_some() {
        return Ok(transaction);
    }
    let asset: Option<String> = sqlx::query_scalar(
        "SELECT 'asset ' || code || ', which the seed file does not define' FROM assets \
         WHERE NOT (code = ANY($1::text[])) LIMIT 1",
    )
    .bind(&seed.assets)
    .fetch_optional(&mut *conn)
    .await
    .context("looking for assets")?;
    if asset.is_some() {
        return Ok(asset);
    }
    let (books, names): (Vec<&str>, Vec<&str>) = seed
        .accounts
        .iter()
        .map(|(b, n)| (b.as_str(), n.as_str()))
        .unzip();
    let account: Option<String> = sqlx::query_scalar(
        "SELECT 'account ' || a.book || '/' || a.name || ', which the seed file does not define' \
         FROM accounts a WHERE NOT EXISTS ( \
           SELECT 1 FROM unnest($1::text[], $2::text[]) AS s(book, name) \
           WHERE s.book = a.book AND s.name = a.name) LIMIT 1",
    )
    .bind(&books)
    .bind(&names)
    .fetch_optional(&mut *conn)
    .await
    .context("looking for accounts")?;
    Ok(account)
}

/// A SCRAM-SHA-256 verifier in Postgres' `pg_authid` form
/// (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, RFC 5802/7677).
fn scram_verifier(password: &str, salt: &[u8], iterations: u32) -> String {
    // SCRAM's Hi() is PBKDF2-HMAC-SHA-256 with one output block.
    let salted = pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), salt, iterations);
    let stored_key = Sha256::digest(hmac_sha256(&salted, &[b"Client Key"]));
    let server_key = hmac_sha256(&salted, &[b"Server Key"]);
    format!(
        "SCRAM-SHA-256${iterations}:{}${}:{}",
        base64(salt),
        base64(&stored_key),
        base64(&server_key)
    )
}

/// HMAC-SHA-256 of the concatenated `parts`.
fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    // HMAC hashes a key longer than its block, so any length is accepted.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// Standard base64 with padding, as `pg_authid` holds it.
fn base64(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scram_verifier_matches_postgres() {
        // Made by PostgreSQL 15: `SET password_encryption = 'scram-sha-256';
        // CREATE ROLE r PASSWORD 'pencil'`, then `rolpassword` from pg_authid.
        let expected = "SCRAM-SHA-256$4096:xuhWk8rerJ2ReG7xQ0e4sg==$\
            TvUkPqTpfPVl0PzU78MYxIEREx4BiegOZv6Zl1q+/J8=:\
            kwT4ow91gRXbBuJl/xy5qddCd2DbYShLliKrAaooYSI=";
        let salt = [
            0xc6, 0xe8, 0x56, 0x93, 0xca, 0xde, 0xac, 0x9d, 0x91, 0x78, 0x6e, 0xf1, 0x43, 0x47,
            0xb8, 0xb2,
        ];
        assert_eq!(base64(&salt), "xuhWk8rerJ2ReG7xQ0e4sg==");
        assert_eq!(scram_verifier("pencil", &salt, 4096), expected);
    }

    #[test]
    fn base64_pads() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2 of RFC 4231.
        let mac = hmac_sha256(b"Jefe", &[b"what do ya want ", b"for nothing?"]);
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 6: a key longer than the block is hashed first.
        let mac = hmac_sha256(
            &[0xaa; 131],
            &[b"Test Using Larger Than Block-Size Key - Hash Key First"],
        );
        assert_eq!(
            hex::encode(mac),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn targets_are_read_from_the_url() {
        let t = Target::parse("postgres://talea_app:p%40ss%3Aw0rd@db:5432/talea?sslmode=require")
            .expect("valid");
        assert_eq!(t.role, "talea_app");
        assert_eq!(t.password.as_ref().map(Secret::expose), Some("p@ss:w0rd"));
        assert_eq!(t.database, "talea");
        assert!(!format!("{t:?}").contains("p@ss"), "Debug redacts");
        let t = Target::parse("postgresql://app@db/ledger-prod").expect("no password");
        assert_eq!(t.password, None);
        assert_eq!(t.database, "ledger-prod");

        for (url, needle) in [
            ("mysql://a:b@h/d", "postgres://"),
            ("postgres://h/d", "names no role"),
            ("postgres://a:b@h", "database name"),
            ("postgres://a:b@h/", "database name"),
            ("postgres://a%22b:p@h/d", "role name"),
            ("postgres://a:p@h/d%3Bdrop", "database name"),
            ("postgres://pg_app:p@h/d", "reserved"),
            ("postgres://a:p@h/d?user=other", "`user`"),
            ("postgres://a:p%zz@h/d", "password"),
        ] {
            let error = format!("{:#}", Target::parse(url).expect_err(url));
            assert!(error.contains(needle), "{url}: {error}");
            assert!(!error.contains("p%zz"), "{error}");
        }
        let long = format!("postgres://{}:p@h/d", "a".repeat(64));
        assert!(Target::parse(&long).is_err());
    }

    fn url(text: &str) -> Url {
        Url::parse(text).expect("a valid URL")
    }

    #[test]
    fn urls_are_described_without_credentials() {
        assert_eq!(
            describe(&url("postgres://u:secret@h:5432/db?x=1")),
            "h:5432/db"
        );
        assert_eq!(describe(&url("postgres://h/db")), "h/db");
        assert_eq!(
            with_database(
                &url("postgres://u:p@h:5432/postgres?sslmode=disable"),
                "talea"
            )
            .as_str(),
            "postgres://u:p@h:5432/talea?sslmode=disable"
        );
        assert_eq!(
            with_database(&url("postgres://h"), "t").as_str(),
            "postgres://h/t"
        );
    }
}
