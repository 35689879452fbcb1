//! The PostgreSQL store: the distributed production backend of `talea_store::Store`.
//!
//! Postgres is the arbiter between every talead instance: each write to a
//! book locks the book's counter row, so seqs are dense and commit times are
//! monotonic across processes and machines, and idempotency keys are
//! answered from a lookup made under that lock (with a unique constraint as a
//! backstop). Each commit ends with one `pg_notify('talea_events',
//! '<book>:<last seq>')` for the relay. See `migrations/0001_ledger.sql` for
//! the schema. Every read, the group-commit protocol and the decoding of
//! rows are the shared SQL core's (`talea_store_sql`); this crate owns what
//! only Postgres has: the connection pool and its session set-up, binding
//! values as Postgres types (arrays for lists), the statements written in
//! its dialect (`dialect.rs`: `UNNEST`, `LATERAL`, `= ANY`), the per-book
//! counter-row locks, the one-statement set-based write with `pg_notify`,
//! SQLSTATE classification, the LISTEN connection, and what the relay needs.
//!
//! Only runtime-checked queries are used (no `query!` macros), so building
//! needs no database.

mod citus;
mod codec;
mod dialect;
mod error;
mod listen;
mod relay;
pub mod statements;
mod young;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::error::DatabaseError;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgConnection, PgPool, PgPoolOptions, PgRow};
use sqlx::query::Query;
use sqlx::{Postgres, Row as _};
use talea_core::{Draft, Timestamp};
pub use talea_store::PoolStats;
use talea_store::{Backend, Notice, Rejection, StoreError};
use talea_store_sql::rows::{Advance, Rows};
use talea_store_sql::{Class, Dialect, Head, Param, ScaleCache, SqlBackend, Tx};

pub use crate::citus::{ANCHOR, Distribution};
use crate::error::{MIGRATE_HINT, classify, store_error};
pub use crate::relay::{Backlog, CommitListener, PROBE_TIMEOUT_MS, RELAY_LOCK_KEY, RelayLease};

/// The channel commit notifications go to; the payload is `<book>:<last seq>`.
pub const NOTIFY_CHANNEL: &str = "talea_events";

/// The applied migrations, as `check_migrated` reads them.
pub(crate) const MIGRATIONS: &str = "SELECT version, success, checksum FROM _sqlx_migrations";

/// A round trip that touches no table (`ping`).
pub(crate) const PING: &str = "SELECT 1";

/// The schema migrations, embedded at build time (see `build.rs`).
static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// How long a caller waits for a pooled connection (and for the first
/// connection in `connect`) before the store reports itself unavailable.
pub const ACQUIRE_TIMEOUT_MS: u64 = 5_000;

/// The PostgreSQL store. Cheap to clone: clones share the pool and caches.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Asset scales, shared by the clones.
    scales: Arc<ScaleCache>,
    /// The one LISTEN connection of this store (and its clones), while watched.
    listener: listen::Listener,
    /// Which sizes of a young ledger this process analyzed for.
    young: young::Young,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore")
            .field("pool", &self.pool_stats())
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects a pool of at most `pool_max` connections to `url`, opening one
    /// connection now so that a wrong URL or an unreachable server fails here.
    pub async fn connect(url: &str, pool_max: u32) -> Result<PgStore, StoreError> {
        let options = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("invalid database URL: {e}")))?
            .application_name("talea");
        let pool = PgPoolOptions::new()
            .max_connections(pool_max.max(1))
            .acquire_timeout(Duration::from_millis(ACQUIRE_TIMEOUT_MS))
            .after_connect(|conn, _| {
                Box::pin(async move {
                    sqlx::Executor::execute(&mut *conn, codec::SESSION_SETUP)
                        .await
                        .map(drop)
                })
            })
            .connect_with(options)
            .await
            .map_err(|e| match classify(&e) {
                Class::Unavailable | Class::NotMigrated => StoreError::Unavailable(format!(
                    "cannot connect to PostgreSQL: {}",
                    error::describe(&e)
                )),
                _ => store_error(e),
            })?;
        Ok(Self::from_pool(pool))
    }

    /// Wraps an existing pool.
    pub fn from_pool(pool: PgPool) -> PgStore {
        PgStore {
            pool,
            scales: Arc::new(ScaleCache::default()),
            listener: listen::Listener::default(),
            young: young::Young::default(),
        }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Pool figures for metrics.
    pub fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }

    /// Applies the embedded migrations that are not applied yet. Safe to run
    /// from several processes at once (sqlx takes an advisory lock).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        MIGRATOR
            .run(&self.pool)
            .await
            .map_err(talea_store_sql::error::migrate_error::<Self>)
    }

    /// Computes the hash chain of every book written before it existed (or
    /// by an older talead), each under its book's lock; how many books.
    pub async fn upgrade_chain(&self) -> Result<usize, StoreError> {
        talea_store_sql::chain::upgrade(self).await
    }

    /// Fails with `StoreError::NotMigrated` unless every migration this binary
    /// embeds has been applied successfully. A newer schema is accepted, so
    /// an older binary keeps running during a rolling upgrade.
    pub async fn check_migrated(&self) -> Result<(), StoreError> {
        let applied: Vec<(i64, bool, Vec<u8>)> =
            match sqlx::query_as(MIGRATIONS).fetch_all(&self.pool).await {
                Ok(rows) => rows,
                Err(e) if classify(&e) == Class::NotMigrated => {
                    return Err(StoreError::NotMigrated(format!(
                        "the database has no talea schema; {MIGRATE_HINT}"
                    )));
                }
                Err(e) => return Err(store_error(e)),
            };
        let applied: HashMap<i64, (bool, Vec<u8>)> = applied
            .into_iter()
            .map(|(v, ok, sum)| (v, (ok, sum)))
            .collect();
        for migration in MIGRATOR
            .iter()
            .filter(|m| !m.migration_type.is_down_migration())
        {
            match applied.get(&migration.version) {
                None => {
                    return Err(StoreError::NotMigrated(format!(
                        "migration {} ({}) is not applied; {MIGRATE_HINT}",
                        migration.version, migration.description
                    )));
                }
                Some((false, _)) => {
                    return Err(StoreError::NotMigrated(format!(
                        "migration {} ({}) failed part-way; repair it, then {MIGRATE_HINT}",
                        migration.version, migration.description
                    )));
                }
                Some((true, checksum)) if checksum.as_slice() != &*migration.checksum => {
                    return Err(StoreError::Other(format!(
                        "migration {} ({}) was applied with contents other than this binary's",
                        migration.version, migration.description
                    )));
                }
                Some(_) => {}
            }
        }
        Ok(())
    }
}

/// Binds one neutral parameter as its Postgres type (lists as arrays).
fn bind<'q>(
    query: Query<'q, Postgres, PgArguments>,
    param: Param<'q>,
) -> Query<'q, Postgres, PgArguments> {
    match param {
        Param::Text(value) => query.bind(value),
        Param::Int(value) => query.bind(value),
        Param::OptInt(value) => query.bind(value),
        Param::Uuid(value) => query.bind(value),
        Param::Time(value) => query.bind(codec::instant(value)),
        Param::Texts(value) => query.bind(value),
        Param::Ints(value) => query.bind(value),
        Param::Uuids(value) => query.bind(value),
        Param::OptUuid(value) => query.bind(value),
        Param::OptTime(value) => query.bind(value.map(codec::instant)),
        Param::Bytes(value) => query.bind(value),
    }
}

impl SqlBackend for PgStore {
    type Db = Postgres;
    const BACKEND: Backend = Backend::Postgres;
    const SQL: Dialect = dialect::SQL;

    async fn reader(&self) -> Result<PoolConnection<Postgres>, StoreError> {
        self.pool.acquire().await.map_err(store_error)
    }

    async fn writer(&self) -> Result<PoolConnection<Postgres>, StoreError> {
        self.pool.acquire().await.map_err(store_error)
    }

    fn pool_stats(&self) -> PoolStats {
        PgStore::pool_stats(self)
    }

    fn scale_cache(&self) -> &ScaleCache {
        &self.scales
    }

    async fn fetch(
        conn: &mut PgConnection,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<Vec<PgRow>, sqlx::Error> {
        let mut query = sqlx::query(sql);
        for param in params {
            query = bind(query, *param);
        }
        query.fetch_all(conn).await
    }

    async fn control(conn: &mut PgConnection, sql: &'static str) -> Result<(), sqlx::Error> {
        // The simple protocol: no statement to prepare, and several
        // statements may share one round trip.
        sqlx::Executor::execute(conn, sql).await.map(drop)
    }

    fn time(row: &PgRow, column: &str) -> Result<Option<Timestamp>, sqlx::Error> {
        let value: Option<DateTime<Utc>> = row.try_get(column)?;
        Ok(value.map(codec::timestamp))
    }

    fn classify_database(error: &dyn DatabaseError) -> Class {
        error::by_sqlstate(error)
    }

    fn describe_database(error: &dyn DatabaseError) -> String {
        error::with_sqlstate(error)
    }

    async fn begin_locked(
        &self,
        books: &[&str],
    ) -> Result<(Tx<Self>, HashMap<String, Head>), StoreError> {
        dialect::begin_with_book_locks(&self.pool, books).await
    }

    async fn write_rows(
        conn: &mut PgConnection,
        rows: &Rows<'_>,
        advance: Option<&Advance>,
    ) -> Result<(), sqlx::Error> {
        dialect::unnest_write(conn, rows, advance).await
    }

    async fn advance(conn: &mut PgConnection, advance: &Advance) -> Result<(), sqlx::Error> {
        dialect::bump_and_notify(conn, advance).await
    }

    /// Analyzes a young ledger's tables as a book first grows (`young.rs`).
    fn committed(&self, advance: &Advance) {
        self.young.committed(&self.pool, advance);
    }

    /// Refuses an `occurred_at` that chrono (and so sqlx) cannot represent.
    fn check_draft(draft: &Draft) -> Result<(), Rejection> {
        if draft
            .occurred_at
            .is_some_and(|at| codec::datetime(at).is_none())
        {
            return Err(Rejection::Failed(
                "occurred_at is outside the storable range".to_owned(),
            ));
        }
        Ok(())
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(PING)
            .execute(&self.pool)
            .await
            .map(drop)
            .map_err(store_error)
    }

    async fn watch(&self) -> Result<tokio::sync::broadcast::Receiver<Notice>, StoreError> {
        self.listener.watch(&self.pool).await
    }
}

talea_store_sql::impl_store!(PgStore);

#[cfg(test)]
mod tests {
    use talea_core::{
        AccountKind, AccountName, Amount, AssetCode, BookName, DraftPosting, IdempotencyKey, Scale,
        Side,
    };
    use talea_store::plan::{AccountRule, Loaded, Planner, Verdict};

    use super::*;

    #[test]
    fn times_chrono_cannot_hold_are_refused() {
        let book = BookName::parse("b").expect("book");
        let mut loaded = Loaded::default();
        for name in ["x", "y"] {
            loaded.accounts.insert(
                AccountName::parse(name).expect("name"),
                AccountRule {
                    kind: AccountKind::Asset,
                    min_balance: None,
                },
            );
        }
        let btc = AssetCode::parse("BTC").expect("code");
        loaded
            .scales
            .insert(btc.clone(), Scale::new(8).expect("scale"));
        let leg = |account: &str, side| DraftPosting {
            account: AccountName::parse(account).expect("name"),
            asset: btc.clone(),
            side,
            amount: Amount::from_minor(1),
        };
        let far = Draft::new(
            IdempotencyKey::parse("far").expect("key"),
            vec![leg("x", Side::Debit), leg("y", Side::Credit)],
            Some(Timestamp::from_micros(i64::MAX)),
            None,
            None,
        )
        .expect("draft");
        let planner = Planner::new(&book, &loaded, 0, Timestamp::from_micros(1))
            .with_draft_check(PgStore::check_draft);
        assert!(matches!(
            planner.evaluate(&far),
            Verdict::Settled(talea_store::Outcome::Rejected(Rejection::Failed(_)))
        ));
    }
}
