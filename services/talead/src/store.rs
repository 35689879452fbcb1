//! Choosing and opening the store from `TALEA_DB_URL`: Postgres, SQLite or the append log.
//!
//! `postgres://…` (or `postgresql://…`) is the distributed store; `sqlite://PATH`
//! and `log://DIR` are the embedded ones. No URL at all means the embedded
//! default, a SQLite file under `./talea-data/`, so that a first `talead
//! serve` needs nothing else installed.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use talea_store::Store;
use talea_store_log::LogStore;
use talea_store_pg::PgStore;
use talea_store_sqlite::SqliteStore;

/// The embedded default's URL (a SQLite file in [`EMBEDDED_DIR`]).
pub(crate) const EMBEDDED_DEFAULT_URL: &str = "sqlite://talea-data/talea.db";

/// A parsed `TALEA_DB_URL`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreUrl {
    /// A PostgreSQL connection URL, kept whole for sqlx.
    Postgres(String),
    /// A SQLite database file.
    Sqlite(PathBuf),
    /// An append-log store directory.
    Log(PathBuf),
}

impl StoreUrl {
    /// Parses a URL; `None` is the embedded default.
    pub(crate) fn parse(url: Option<&str>) -> anyhow::Result<StoreUrl> {
        let url = url.map(str::trim).filter(|u| !u.is_empty());
        let url = url.unwrap_or(EMBEDDED_DEFAULT_URL);
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(url.to_owned()));
        }
        // Each embedded store parses its own URLs, so there is one parser.
        if url.starts_with("sqlite://") {
            return Ok(StoreUrl::Sqlite(talea_store_sqlite::path_from_url(url)?));
        }
        if url.starts_with("log://") {
            return Ok(StoreUrl::Log(LogStore::dir_of_url(url)?));
        }
        // Only the scheme is shown: the rest may hold a password.
        let scheme = url.split_once("://").map_or("(none)", |(s, _)| s);
        bail!(
            "TALEA_DB_URL has an unsupported scheme `{scheme}`: use postgres://…, \
             sqlite://PATH or log://DIR (unset: the embedded default {EMBEDDED_DEFAULT_URL})"
        )
    }

    /// True for the stores that live in this process (SQLite, log).
    pub(crate) fn is_embedded(&self) -> bool {
        !matches!(self, StoreUrl::Postgres(_))
    }

    /// The URL as written to `.env`.
    pub(crate) fn to_url(&self) -> String {
        match self {
            StoreUrl::Postgres(url) => url.clone(),
            StoreUrl::Sqlite(path) => format!("sqlite://{}", path.display()),
            StoreUrl::Log(dir) => format!("log://{}", dir.display()),
        }
    }

    /// A description without secrets, for logs and messages.
    pub(crate) fn describe(&self) -> String {
        match self {
            StoreUrl::Postgres(_) => "PostgreSQL".to_owned(),
            StoreUrl::Sqlite(path) => format!("SQLite file {}", path.display()),
            StoreUrl::Log(dir) => format!("append log in {}", dir.display()),
        }
    }
}

/// What opening may do to the schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Schema {
    /// Apply missing migrations (`init`).
    Migrate,
    /// Refuse a database that is not migrated (`serve` on Postgres, which an
    /// operator migrates deliberately). Embedded stores always bring their
    /// own file up to date: they have no other owner.
    RequireMigrated,
}

/// Reports the books whose hash chain opening computed (written before the
/// chain existed; `docs/proofs.md`).
fn upgraded(result: Result<usize, talea_store::StoreError>) -> anyhow::Result<()> {
    let books = result.context("computing the hash chain of books written before it")?;
    if books > 0 {
        tracing::info!(books, "computed the hash chain of books written before it");
    }
    Ok(())
}

/// Opens the store `url` names (computing the hash chain of books written
/// before it existed).
pub(crate) async fn open(
    url: &StoreUrl,
    pool_max: u32,
    schema: Schema,
) -> anyhow::Result<Arc<dyn Store>> {
    Ok(match url {
        StoreUrl::Postgres(url) => {
            let store = PgStore::connect(url, pool_max)
                .await
                .context("cannot connect to the database")?;
            match schema {
                Schema::Migrate => {
                    store.migrate().await.context("migrating the database")?;
                    crate::bootstrap::distribute(&store).await?;
                }
                Schema::RequireMigrated => {
                    store.check_migrated().await.map_err(anyhow::Error::msg)?;
                }
            }
            upgraded(store.upgrade_chain().await)?;
            Arc::new(store)
        }
        StoreUrl::Sqlite(path) => {
            let store = SqliteStore::open(path)
                .await
                .with_context(|| format!("cannot open the SQLite store {}", path.display()))?;
            upgraded(store.upgrade_chain().await)?;
            Arc::new(store)
        }
        StoreUrl::Log(dir) => {
            let dir = dir.clone();
            // Opening replays the whole log: keep it off the async threads.
            let store = tokio::task::spawn_blocking(move || LogStore::open(&dir))
                .await
                .context("opening the log store")?;
            Arc::new(store.context("cannot open the log store")?)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert_eq!(
            StoreUrl::parse(None).expect("default"),
            StoreUrl::Sqlite(PathBuf::from("talea-data/talea.db"))
        );
        assert_eq!(
            StoreUrl::parse(Some("  ")).expect("blank is the default"),
            StoreUrl::parse(None).expect("default")
        );
        assert_eq!(
            StoreUrl::parse(Some("postgres://u:p@h/db")).expect("pg"),
            StoreUrl::Postgres("postgres://u:p@h/db".to_owned())
        );
        assert!(matches!(
            StoreUrl::parse(Some("postgresql://h/db")),
            Ok(StoreUrl::Postgres(_))
        ));
        assert_eq!(
            StoreUrl::parse(Some("sqlite:///var/lib/talea/t.db")).expect("abs"),
            StoreUrl::Sqlite(PathBuf::from("/var/lib/talea/t.db"))
        );
        assert_eq!(
            StoreUrl::parse(Some("log://data/log")).expect("log"),
            StoreUrl::Log(PathBuf::from("data/log"))
        );
        assert!(StoreUrl::parse(Some("log://")).is_err());
        let error = StoreUrl::parse(Some("mysql://root:hunter2@h/db"))
            .expect_err("unsupported")
            .to_string();
        assert!(error.contains("`mysql`"), "{error}");
        assert!(!error.contains("hunter2"), "{error}");
        assert!(StoreUrl::parse(None).expect("default").is_embedded());
        assert_eq!(
            StoreUrl::parse(Some("log://d")).expect("log").to_url(),
            "log://d"
        );
    }
}
