//! The PostgreSQL store: the distributed production backend of `talea_store::Store`.
//!
//! Postgres is the arbiter between every talead instance: each write to a
//! book locks the book's counter row, so seqs are dense and commit times are
//! monotonic across processes and machines, and idempotency keys are
//! answered from a lookup made under that lock (with a unique constraint as a
//! backstop). Each commit ends with one `pg_notify('talea_events',
//! '<book>:<last seq>')` for the relay. See `migrations/0001_ledger.sql` for
//! the schema and `write.rs` for the group-commit protocol.
//!
//! Only runtime-checked queries are used (no `query!` macros), so building
//! needs no database.

mod codec;
mod error;
mod listen;
mod plan;
mod read;
mod relay;
mod write;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::migrate::Migrator;
use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{PgConnection, Postgres};
use talea_core::{
    Account, AccountName, Asset, AssetCode, BookName, Commit, Draft, Event, NewAccount, Scale,
    Timestamp, TxId,
};
pub use talea_store::PoolStats;
use talea_store::{
    AccountPosting, Backend, Balance, BalanceCut, BookBatch, BookInfo, Notice, Opened, Outcome,
    Registered, Store, StoreError, TrialRow,
};

use crate::error::{Class, MIGRATE_HINT, classify, store_error};
pub use crate::relay::{Backlog, CommitListener, PROBE_TIMEOUT_MS, RELAY_LOCK_KEY, RelayLease};
pub use crate::write::NOTIFY_CHANNEL;

/// The schema migrations, embedded at build time (see `build.rs`).
static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// How long a caller waits for a pooled connection (and for the first
/// connection in `connect`) before the store reports itself unavailable.
pub const ACQUIRE_TIMEOUT_MS: u64 = 5_000;

/// The PostgreSQL store. Cheap to clone: clones share the pool and caches.
#[derive(Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Asset scales by code. An asset's scale never changes and assets are
    /// never deleted, so a cached entry never goes stale; caching saves a
    /// round trip per batch. Only registered assets are cached, so the map
    /// is bounded by the (small) registry.
    scales: Arc<RwLock<HashMap<AssetCode, Scale>>>,
    /// The one LISTEN connection of this store (and its clones), while watched.
    listener: listen::Listener,
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
            scales: Arc::new(RwLock::new(HashMap::new())),
            listener: listen::Listener::default(),
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
        MIGRATOR.run(&self.pool).await.map_err(error::migrate_error)
    }

    /// Fails with `StoreError::NotMigrated` unless every migration this binary
    /// embeds has been applied successfully. A newer schema is accepted, so
    /// an older binary keeps running during a rolling upgrade.
    pub async fn check_migrated(&self) -> Result<(), StoreError> {
        let applied: Vec<(i64, bool, Vec<u8>)> =
            match sqlx::query_as("SELECT version, success, checksum FROM _sqlx_migrations")
                .fetch_all(&self.pool)
                .await
            {
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

    /// A pooled connection.
    async fn connection(&self) -> Result<PoolConnection<Postgres>, StoreError> {
        self.pool.acquire().await.map_err(store_error)
    }

    /// Scales of the given assets that are registered (absent: unknown),
    /// from the cache, reading the misses in one statement.
    async fn scales(
        &self,
        conn: &mut PgConnection,
        codes: &[&AssetCode],
    ) -> Result<HashMap<AssetCode, Scale>, StoreError> {
        let mut found = HashMap::with_capacity(codes.len());
        let mut missing: Vec<&str> = Vec::new();
        {
            // A poisoned lock only means a panic elsewhere while inserting a
            // correct value; the map itself is still valid.
            let cache = self.scales.read().unwrap_or_else(PoisonError::into_inner);
            for &code in codes {
                match cache.get(code) {
                    Some(&scale) => {
                        found.insert(code.clone(), scale);
                    }
                    None => missing.push(code.as_str()),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        let rows: Vec<(String, i16)> =
            sqlx::query_as("SELECT code, scale FROM assets WHERE code = ANY($1)")
                .bind(&missing)
                .fetch_all(&mut *conn)
                .await
                .map_err(store_error)?;
        let mut cache = self.scales.write().unwrap_or_else(PoisonError::into_inner);
        for (code, scale) in rows {
            let code = codec::asset_code(&code)?;
            let scale = codec::scale(scale)?;
            cache.insert(code.clone(), scale);
            found.insert(code, scale);
        }
        Ok(found)
    }
}

#[async_trait]
impl Store for PgStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    fn pool_stats(&self) -> Option<PoolStats> {
        Some(PgStore::pool_stats(self))
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(store_error)
    }

    async fn register_asset(&self, asset: &Asset) -> Result<Registered<Asset>, StoreError> {
        write::register_asset(&mut *self.connection().await?, asset).await
    }

    async fn asset(&self, code: &AssetCode) -> Result<Option<Asset>, StoreError> {
        read::asset(&mut *self.connection().await?, code).await
    }

    async fn assets(&self) -> Result<Vec<Asset>, StoreError> {
        read::assets(&mut *self.connection().await?).await
    }

    async fn open_account(
        &self,
        book: &BookName,
        account: &NewAccount,
    ) -> Result<Opened, StoreError> {
        write::open_account(self, book, account).await
    }

    async fn commit_batch(
        &self,
        book: &BookName,
        drafts: &[Draft],
    ) -> Result<Vec<Outcome>, StoreError> {
        write::commit_batch(self, book, drafts).await
    }

    async fn commit_books(
        &self,
        batches: &[BookBatch<'_>],
    ) -> Vec<Result<Vec<Outcome>, StoreError>> {
        talea_store::shared_fate(write::commit_books(self, batches).await, batches.len())
    }

    async fn books(&self) -> Result<Vec<BookInfo>, StoreError> {
        read::books(&mut *self.connection().await?).await
    }

    async fn last_seq(&self, book: &BookName) -> Result<Option<u64>, StoreError> {
        read::last_seq(&mut *self.connection().await?, book).await
    }

    async fn account(
        &self,
        book: &BookName,
        name: &AccountName,
    ) -> Result<Option<Account>, StoreError> {
        read::account(&mut *self.connection().await?, book, name).await
    }

    async fn accounts(
        &self,
        book: &BookName,
        after: Option<&AccountName>,
        limit: u32,
    ) -> Result<Vec<Account>, StoreError> {
        read::accounts(&mut *self.connection().await?, book, after, limit).await
    }

    async fn balances(
        &self,
        book: &BookName,
        account: &AccountName,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<Balance>, StoreError> {
        read::balances(&mut *self.connection().await?, book, account, as_of).await
    }

    async fn balance_cut(
        &self,
        book: &BookName,
        accounts: Option<&[AccountName]>,
        limit: u32,
    ) -> Result<Option<BalanceCut>, StoreError> {
        read::balance_cut(&mut *self.connection().await?, book, accounts, limit).await
    }

    async fn account_postings(
        &self,
        book: &BookName,
        account: &AccountName,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<AccountPosting>, StoreError> {
        read::account_postings(
            &mut *self.connection().await?,
            book,
            account,
            after_seq,
            limit,
        )
        .await
    }

    async fn trial_balance(
        &self,
        book: &BookName,
        as_of: Option<Timestamp>,
    ) -> Result<Vec<TrialRow>, StoreError> {
        read::trial_balance(&mut *self.connection().await?, book, as_of).await
    }

    async fn transactions(
        &self,
        book: &BookName,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Commit>, StoreError> {
        read::transactions(&mut *self.connection().await?, book, after_seq, limit).await
    }

    async fn transaction(&self, tx_id: TxId) -> Result<Option<Commit>, StoreError> {
        read::transaction(&mut *self.connection().await?, tx_id, None).await
    }

    async fn transaction_in(
        &self,
        tx_id: TxId,
        books: &[&str],
    ) -> Result<Option<Commit>, StoreError> {
        read::transaction(&mut *self.connection().await?, tx_id, Some(books)).await
    }

    async fn watch(&self) -> Result<tokio::sync::broadcast::Receiver<Notice>, StoreError> {
        self.listener.watch(&self.pool).await
    }

    async fn events(
        &self,
        book: &BookName,
        after_seq: u64,
        limit: u32,
    ) -> Result<Vec<Event>, StoreError> {
        read::events(&mut *self.connection().await?, book, after_seq, limit).await
    }
}
