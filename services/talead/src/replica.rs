//! `talead serve --role read --replica-url …`: the replica reads are served
//! from and the primary a book's head is checked against, both checked at start.

use std::sync::Arc;

use anyhow::{Context, bail};
use talea_store::Store;
use talea_store_pg::PgStore;

use crate::ServeArgs;
use crate::store::{Schema, StoreUrl};

/// Connections to the primary: it is asked only for a book's head, when a
/// read's `min_seq` is beyond the replica's, and for the lag metric.
const PRIMARY_POOL_MAX: u32 = 2;

/// The two stores of a read instance on a replica.
pub(crate) struct ReplicaStores {
    /// Where reads are served from (a hot standby of the primary).
    pub(crate) replica: Arc<dyn Store>,
    /// `TALEA_DB_URL`: the primary.
    pub(crate) primary: Arc<dyn Store>,
}

/// Checks the settings and both servers, then opens both stores. Refuses a
/// replica URL on a role other than `read`, on a store other than Postgres,
/// and a "replica" that is not in recovery (a primary): reading from
/// another primary would serve another ledger's data.
pub(crate) async fn open(
    args: &ServeArgs,
    primary_url: &StoreUrl,
    replica_url: &str,
) -> anyhow::Result<ReplicaStores> {
    if args.role != talea_http::Role::Read {
        bail!(
            "TALEA_REPLICA_URL is set but the role is {}: a replica serves reads only, \
             set TALEA_ROLE=read (or --role read)",
            args.role
        );
    }
    let StoreUrl::Postgres(_) = primary_url else {
        bail!("TALEA_REPLICA_URL needs TALEA_DB_URL to name the Postgres primary (postgres://…)");
    };
    let replica_url = replica_url.trim();
    if !(replica_url.starts_with("postgres://") || replica_url.starts_with("postgresql://")) {
        bail!("TALEA_REPLICA_URL must be a postgres://… URL of a streaming standby");
    }
    let replica = PgStore::connect(replica_url, args.db_pool)
        .await
        .context("cannot connect to the replica (TALEA_REPLICA_URL)")?;
    let in_recovery = in_recovery(replica.pool())
        .await
        .context("cannot ask the replica (TALEA_REPLICA_URL) whether it is a standby")?;
    if !in_recovery {
        bail!(
            "TALEA_REPLICA_URL names a primary (pg_is_in_recovery() is false), not a streaming \
             standby: a read instance reads from a standby of TALEA_DB_URL. Point it at the \
             standby, or unset it to read from TALEA_DB_URL itself"
        );
    }
    replica
        .check_migrated()
        .await
        .map_err(anyhow::Error::msg)
        .context("the replica (TALEA_REPLICA_URL)")?;
    let primary = crate::store::open(primary_url, PRIMARY_POOL_MAX, Schema::RequireMigrated)
        .await
        .context("the primary (TALEA_DB_URL)")?;
    tracing::info!("reading from a streaming standby (TALEA_REPLICA_URL)");
    Ok(ReplicaStores {
        replica: Arc::new(replica),
        primary,
    })
}

/// Whether `url` names a Postgres standby (in recovery); false for any
/// other store or when the server cannot say.
pub(crate) async fn is_standby(url: &StoreUrl) -> bool {
    use sqlx::Connection as _;
    let StoreUrl::Postgres(url) = url else {
        return false;
    };
    let Ok(mut conn) = sqlx::PgConnection::connect(url).await else {
        return false;
    };
    let answer = in_recovery(&mut conn).await;
    let _ = conn.close().await;
    answer.unwrap_or(false)
}

/// Whether the server is in recovery (a standby).
async fn in_recovery<'c>(conn: impl sqlx::PgExecutor<'c>) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_is_in_recovery()")
        .fetch_one(conn)
        .await
}
