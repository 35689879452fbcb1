//! The SQLite store: the embedded backend of `talea_store::Store`, one database file per ledger.
//!
//! The file is opened in WAL mode with `synchronous=FULL`, so a commit is
//! acknowledged only once it is durable (one fsync of the WAL per batch),
//! and readers never block the writer. The store keeps two pools on the
//! file: one writer connection, through which every write of this process
//! passes in turn, and a small pool of `query_only` readers. Every write
//! transaction is `BEGIN IMMEDIATE`, so SQLite's write lock plays the part
//! of Postgres's per-book counter row lock, for the whole file, and also
//! serializes other processes that open the same file (they wait up to
//! [`BUSY_TIMEOUT_MS`]). Every read, the group-commit protocol and the
//! decoding of rows are the shared SQL core's (`talea_store_sql`), the same
//! as Postgres's; this crate owns what only SQLite has: the file, its two
//! pools and the per-process registry, binding values as SQLite types
//! (lists as JSON arrays), the statements written in its dialect
//! (`dialect.rs`: `json_each`, `INDEXED BY`), the write lock, the
//! multi-row inserts (`rows.rs`), result-code classification and the
//! in-process notices. `migrations/sqlite/` at the repository root holds
//! the schema.
//!
//! Commit notices go to an in-process [`NoticeBus`]: commits made through
//! this process are announced at once; commits by another process on the
//! same file reach subscribers only through their polling of the log.
//!
//! Only runtime-checked queries are used (no `query!` macros).

mod dialect;
mod error;
mod rows;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::query::Query;
use sqlx::sqlite::{
    SqliteArguments, SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteRow, SqliteSynchronous,
};
use sqlx::{Row as _, Sqlite, SqliteConnection};
use talea_core::Timestamp;
pub use talea_store::PoolStats;
use talea_store::{Backend, Notice, NoticeBus, StoreError};
use talea_store_sql::rows::{Advance, Rows};
use talea_store_sql::{Class, Dialect, Head, Param, ScaleCache, SqlBackend, Tx};

use crate::error::store_error;

/// The SQLite schema migrations, embedded at build time (see `build.rs`).
/// They live apart from the Postgres ones (`migrations/`), whose embedding
/// skips subfolders.
static MIGRATOR: Migrator = sqlx::migrate!("../../migrations/sqlite");

/// The URL scheme [`SqliteStore::connect`] accepts.
pub const URL_SCHEME: &str = "sqlite://";

/// How long a write waits for SQLite's write lock while another process
/// holds it, before the store reports itself unavailable.
pub const BUSY_TIMEOUT_MS: u64 = 5_000;

/// How long a caller waits for a pooled connection (the writer, when other
/// writes of this process are queued ahead; or a reader) before the store
/// reports itself unavailable.
pub const ACQUIRE_TIMEOUT_MS: u64 = 5_000;

/// Read connections per store. Readers run concurrently with each other and
/// with the writer (WAL), so a few cover a small machine.
pub const READ_POOL_MAX: u32 = 4;

/// The SQLite store. Cheap to clone: clones share the pools and the notice bus.
///
/// Opening a file that this process already has open (through another
/// `open` or `connect`, by the same canonical path) returns a handle on the
/// same store: same writer, same readers, same notices. So there is one
/// writer per file per process however the file is opened, and every
/// handle's subscribers hear every commit made in the process.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

/// What the handles of one file share.
struct Inner {
    /// The canonical path of the database file (the registry key).
    path: PathBuf,
    /// One connection: every write of this process queues here.
    writer: SqlitePool,
    /// `query_only` connections for every read.
    reader: SqlitePool,
    /// Where commits are announced once durable.
    bus: NoticeBus,
    /// Asset scales, shared by the handles.
    scales: ScaleCache,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.inner.path)
            .field("pool", &self.pool_stats())
            .finish_non_exhaustive()
    }
}

/// The stores this process has open, by canonical path. Entries die with
/// their last handle and are pruned on the next open.
fn registry() -> &'static tokio::sync::Mutex<HashMap<PathBuf, Weak<Inner>>> {
    static OPEN: OnceLock<tokio::sync::Mutex<HashMap<PathBuf, Weak<Inner>>>> = OnceLock::new();
    OPEN.get_or_init(Default::default)
}

/// The parsed path of a `sqlite://PATH` URL.
///
/// Everything after `sqlite://` is the path, taken literally (no
/// percent-decoding, no host): `sqlite://talea-data/talea.db` is relative to
/// the working directory, `sqlite:///var/lib/talea/talea.db` (three
/// slashes) is absolute. Query strings and fragments are refused rather
/// than taken as part of a file name, and so is `:memory:` (the store
/// exists to be durable).
pub fn path_from_url(url: &str) -> Result<PathBuf, StoreError> {
    let invalid = |why: &str| StoreError::Other(format!("invalid SQLite URL {url:?}: {why}"));
    let path = url
        .strip_prefix(URL_SCHEME)
        .ok_or_else(|| invalid("expected sqlite://PATH"))?;
    if path.is_empty() {
        return Err(invalid("the path is empty"));
    }
    if path.contains(['?', '#']) {
        return Err(invalid("query parameters and fragments are not supported"));
    }
    if path == ":memory:" {
        return Err(invalid("in-memory databases are not supported"));
    }
    Ok(PathBuf::from(path))
}

/// The canonical path of the database file at `path`, creating its parent
/// directory. The file itself need not exist yet.
fn canonical_path(path: &Path) -> Result<PathBuf, StoreError> {
    let unavailable = |what: &str, e: std::io::Error| {
        StoreError::Unavailable(format!("{what} {}: {e}", path.display()))
    };
    let name = path.file_name().ok_or_else(|| {
        StoreError::Other(format!(
            "the SQLite path {} does not name a file",
            path.display()
        ))
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent)
        .map_err(|e| unavailable("cannot create the directory of", e))?;
    let parent = parent
        .canonicalize()
        .map_err(|e| unavailable("cannot resolve the directory of", e))?;
    Ok(parent.join(name))
}

impl SqliteStore {
    /// Computes the hash chain of every book written before it existed
    /// (under the write lock); how many books.
    pub async fn upgrade_chain(&self) -> Result<usize, StoreError> {
        talea_store_sql::chain::upgrade(self).await
    }

    /// Opens (creating it and its directory if needed) the database file at
    /// `path` and applies the embedded migrations. If this process already
    /// has the file open, returns a handle on that store.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let path = canonical_path(path)?;
        // Held across the (rare) open, so two concurrent opens of one file
        // cannot make two writers.
        let mut open = registry().lock().await;
        open.retain(|_, store| store.strong_count() > 0);
        if let Some(inner) = open.get(&path).and_then(Weak::upgrade) {
            return Ok(SqliteStore { inner });
        }
        let inner = Arc::new(Inner::open(path.clone()).await?);
        open.insert(path, Arc::downgrade(&inner));
        Ok(SqliteStore { inner })
    }

    /// Opens the store a `sqlite://PATH` URL names; see [`path_from_url`]
    /// for the URL's form and [`SqliteStore::open`] for the rest.
    pub async fn connect(url: &str) -> Result<SqliteStore, StoreError> {
        Self::open(&path_from_url(url)?).await
    }

    /// The canonical path of the database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Pool figures for metrics: the writer and the readers together.
    pub fn pool_stats(&self) -> PoolStats {
        let (w, r) = (&self.inner.writer, &self.inner.reader);
        let idle = |pool: &SqlitePool| u32::try_from(pool.num_idle()).unwrap_or(u32::MAX);
        PoolStats {
            size: w.size().saturating_add(r.size()),
            idle: idle(w).saturating_add(idle(r)),
            max: w
                .options()
                .get_max_connections()
                .saturating_add(r.options().get_max_connections()),
        }
    }

    /// Closes the file for every handle of it in this process: waits for
    /// connections in use, then closes them all, which checkpoints the WAL
    /// into the database file. Calls on any handle fail afterwards; opening
    /// the path again gives a new store.
    pub async fn close(&self) {
        {
            let mut open = registry().lock().await;
            if open
                .get(&self.inner.path)
                .is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(&self.inner)))
            {
                open.remove(&self.inner.path);
            }
        }
        self.inner.writer.close().await;
        self.inner.reader.close().await;
    }
}

impl Inner {
    /// Opens the pools on `path` (canonical) and migrates.
    async fn open(path: PathBuf) -> Result<Inner, StoreError> {
        let opening = |e: sqlx::Error| match store_error(e) {
            StoreError::Unavailable(m) => {
                StoreError::Unavailable(format!("cannot open {}: {m}", path.display()))
            }
            StoreError::Corrupt(m) => {
                StoreError::Corrupt(format!("cannot open {}: {m}", path.display()))
            }
            other => other,
        };
        let base = SqliteConnectOptions::new()
            .filename(&path)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_millis(BUSY_TIMEOUT_MS))
            .foreign_keys(true);
        // The writer opens first: it creates the file and switches it to WAL,
        // a setting the file keeps, so readers need not (and, changing it
        // needing an exclusive lock, should not) set it again.
        // No ping before each acquire (on either pool): a connection to a
        // local file does not go stale the way a socket does, and the ping
        // would cost a round trip to the connection's thread per call.
        let writer = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(1)
            // Kept open for the store's life: its prepared statements stay
            // cached, and the file's WAL stays in place between writes.
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .acquire_timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS))
            .connect_with(
                base.clone()
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal),
            )
            .await
            .map_err(opening)?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(talea_store_sql::error::migrate_error::<SqliteStore>)?;
        // `query_only` makes any write through a reader fail loudly, so the
        // one-writer rule cannot be broken by accident.
        let reader = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(READ_POOL_MAX)
            .acquire_timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS))
            .connect_with(base.create_if_missing(false).pragma("query_only", "ON"))
            .await
            .map_err(opening)?;
        Ok(Inner {
            path,
            writer,
            reader,
            bus: NoticeBus::new(),
            scales: ScaleCache::default(),
        })
    }
}

/// Binds one neutral parameter as its SQLite type (lists as JSON arrays).
fn bind<'q>(
    query: Query<'q, Sqlite, SqliteArguments<'q>>,
    param: Param<'q>,
) -> Result<Query<'q, Sqlite, SqliteArguments<'q>>, sqlx::Error> {
    let encode = |e: serde_json::Error| sqlx::Error::Encode(Box::new(e));
    Ok(match param {
        Param::Text(value) => query.bind(value),
        Param::Int(value) => query.bind(value),
        Param::OptInt(value) => query.bind(value),
        Param::Uuid(value) => query.bind(value),
        Param::Time(value) => query.bind(value.micros()),
        Param::Texts(value) => query.bind(
            value
                .map(serde_json::to_string)
                .transpose()
                .map_err(encode)?,
        ),
        Param::Ints(value) => query.bind(serde_json::to_string(value).map_err(encode)?),
        Param::Uuids(value) => {
            let hex: Vec<String> = value.iter().map(|u| u.simple().to_string()).collect();
            query.bind(serde_json::to_string(&hex).map_err(encode)?)
        }
        Param::OptUuid(value) => query.bind(value),
        Param::OptTime(value) => query.bind(value.map(Timestamp::micros)),
        Param::Bytes(value) => query.bind(value),
    })
}

impl SqlBackend for SqliteStore {
    type Db = Sqlite;
    const BACKEND: Backend = Backend::Sqlite;
    const SQL: Dialect = dialect::SQL;

    async fn reader(&self) -> Result<PoolConnection<Sqlite>, StoreError> {
        self.inner.reader.acquire().await.map_err(store_error)
    }

    /// The writer connection, once the writes queued before this one are done.
    async fn writer(&self) -> Result<PoolConnection<Sqlite>, StoreError> {
        self.inner.writer.acquire().await.map_err(store_error)
    }

    fn pool_stats(&self) -> PoolStats {
        SqliteStore::pool_stats(self)
    }

    fn scale_cache(&self) -> &ScaleCache {
        &self.inner.scales
    }

    async fn fetch(
        conn: &mut SqliteConnection,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<SqliteRow>, sqlx::Error> {
        let mut query = sqlx::query(sql);
        for param in params {
            query = bind(query, *param)?;
        }
        query.fetch_all(conn).await
    }

    async fn control(conn: &mut SqliteConnection, sql: &'static str) -> Result<(), sqlx::Error> {
        sqlx::Executor::execute(conn, sql).await.map(drop)
    }

    fn time(row: &SqliteRow, column: &str) -> Result<Option<Timestamp>, sqlx::Error> {
        let micros: Option<i64> = row.try_get(column)?;
        Ok(micros.map(Timestamp::from_micros))
    }

    fn classify_database(error: &dyn DatabaseError) -> Class {
        error::by_result_code(error)
    }

    fn describe_database(error: &dyn DatabaseError) -> String {
        error::with_result_code(error)
    }

    async fn begin_locked(
        &self,
        books: &[&str],
    ) -> Result<(Tx<Self>, HashMap<String, Head>), StoreError> {
        dialect::begin_immediate(&self.inner.writer, books).await
    }

    async fn write_rows(
        conn: &mut SqliteConnection,
        rows: &Rows<'_>,
        advance: Option<&Advance>,
    ) -> Result<(), sqlx::Error> {
        dialect::insert_rows(conn, rows, advance).await
    }

    async fn advance(conn: &mut SqliteConnection, advance: &Advance) -> Result<(), sqlx::Error> {
        dialect::upsert_counters(conn, advance).await
    }

    /// Commits made through this process are announced on its bus once
    /// durable; other processes' commits reach subscribers by their polling.
    fn committed(&self, advance: &Advance) {
        for m in &advance.moves {
            self.inner.bus.publish(&m.book, m.last_seq);
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.inner.reader)
            .await
            .map(drop)
            .map_err(store_error)
    }

    async fn watch(&self) -> Result<tokio::sync::broadcast::Receiver<Notice>, StoreError> {
        // The bus is in process: nothing to connect, so this cannot fail.
        Ok(self.inner.bus.receiver())
    }
}

talea_store_sql::impl_store!(SqliteStore);
