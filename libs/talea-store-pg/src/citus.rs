//! Citus: a migrated database distributed by book (`talead bootstrap` and
//! `talead init` call [`PgStore::distribute`] after migrating).
//!
//! Where the `citus` extension is created in the database, every table with
//! a `book` column is distributed on it, colocated with `books` (so one
//! book's rows of every table live on one node and a statement pinned to
//! one book runs there whole), and every table without one (`assets`)
//! becomes a reference table, copied to every node. Idempotent: tables
//! already distributed that way are left alone, so running the command
//! after a later migration distributes only the new tables. Everything
//! happens in one transaction: a database missing workers, or a table
//! distributed some other way, is refused with a message and nothing is
//! changed. Without the extension nothing happens at all.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row as _;
use sqlx::postgres::PgRow;
use talea_store::StoreError;

use crate::PgStore;
use crate::error::store_error;

/// The extension's version, when it is created in this database.
pub(crate) const EXTENSION: &str = "SELECT extversion FROM pg_extension WHERE extname = 'citus'";

/// The coordinator's active workers.
pub(crate) const WORKERS: &str = "SELECT count(*) AS workers FROM citus_get_active_worker_nodes()";

/// The schema's tables, whether each has a `book` column, and how Citus
/// already holds each: its partition method (`h` hash-distributed, `n`
/// reference), distribution column and colocation group.
pub(crate) const TABLES: &str = "SELECT c.relname AS name, \
       EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
               AND a.attname = 'book' AND NOT a.attisdropped) AS has_book, \
       p.partmethod::text AS method, \
       CASE WHEN p.partmethod = 'h' THEN column_to_column_name(p.logicalrelid, p.partkey) END \
         AS column_name, \
       p.colocationid::bigint AS colocation \
     FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
     LEFT JOIN pg_dist_partition p ON p.logicalrelid = c.oid \
     WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
       AND c.relname NOT LIKE '\\_sqlx%' \
     ORDER BY c.relname";

/// Foreign keys between the schema's tables: (child, parent).
pub(crate) const FOREIGN_KEYS: &str = "SELECT src.relname AS child, dst.relname AS parent \
     FROM pg_constraint con JOIN pg_class src ON src.oid = con.conrelid \
     JOIN pg_class dst ON dst.oid = con.confrelid \
     JOIN pg_namespace n ON n.oid = src.relnamespace \
     WHERE con.contype = 'f' AND n.nspname = current_schema()";

/// Makes a table a reference table.
pub(crate) const REFERENCE: &str = "SELECT create_reference_table($1::regclass)";

/// Distributes the anchor by book, in a colocation group of its own.
pub(crate) const DISTRIBUTE_ANCHOR: &str =
    "SELECT create_distributed_table($1::regclass, 'book', colocate_with => 'none')";

/// Distributes a book table by book, colocated with the anchor.
pub(crate) const DISTRIBUTE: &str =
    "SELECT create_distributed_table($1::regclass, 'book', colocate_with => 'books')";

/// The table every book table is colocated with.
pub const ANCHOR: &str = "books";

/// What [`PgStore::distribute`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Distribution {
    /// The database has no `citus` extension: nothing was changed.
    NotCitus,
    /// The database is distributed by book.
    Distributed {
        /// The extension's version.
        version: String,
        /// Active workers.
        workers: i64,
        /// Tables distributed by this call, in the order it did so.
        distributed: Vec<String>,
        /// Tables made reference tables by this call.
        referenced: Vec<String>,
        /// Tables that were already as they should be.
        unchanged: Vec<String>,
    },
}

/// One table as the catalog describes it.
struct Table {
    has_book: bool,
    method: Option<String>,
    column: Option<String>,
    colocation: Option<i64>,
}

impl PgStore {
    /// Distributes every book table by `book` (colocated with `books`) and
    /// makes every other table a reference table, when the database has
    /// the `citus` extension; see the module documentation.
    pub async fn distribute(&self) -> Result<Distribution, StoreError> {
        let mut tx = self.pool().begin().await.map_err(store_error)?;
        let version: Option<String> = sqlx::query_scalar(EXTENSION)
            .fetch_optional(&mut *tx)
            .await
            .map_err(store_error)?;
        let Some(version) = version else {
            return Ok(Distribution::NotCitus);
        };
        let workers: i64 = sqlx::query_scalar(WORKERS)
            .fetch_one(&mut *tx)
            .await
            .map_err(store_error)?;
        if workers == 0 {
            return Err(StoreError::Other(
                "Citus is installed but the coordinator has no active worker: add them \
                 first (SELECT citus_add_node('worker-host', 5432) for each worker, on the \
                 coordinator), then run this command again; nothing was distributed"
                    .to_owned(),
            ));
        }
        let tables = catalog(&mut tx).await?;
        let order = dependency_order(&tables, &foreign_keys(&mut tx).await?);
        let anchor_group = tables.get(ANCHOR).and_then(|t| t.colocation);
        // Several DDL commands on tables that reference each other in one
        // transaction: Citus asks for one connection per worker.
        for setting in [
            "SET LOCAL citus.multi_shard_modify_mode TO 'sequential'",
            // `transactions` carries the trigger that fills
            // `transaction_metadata` (same book, same node).
            "SET LOCAL citus.enable_unsafe_triggers TO on",
        ] {
            sqlx::Executor::execute(&mut *tx, setting)
                .await
                .map_err(store_error)?;
        }
        let (mut distributed, mut referenced, mut unchanged) = (Vec::new(), Vec::new(), Vec::new());
        for name in order {
            let table = &tables[&name];
            match (table.has_book, table.method.as_deref()) {
                (false, None) => {
                    sqlx::query(REFERENCE)
                        .bind(&name)
                        .execute(&mut *tx)
                        .await
                        .map_err(store_error)?;
                    referenced.push(name);
                }
                (false, Some("n")) => unchanged.push(name),
                (true, None) => {
                    let query = sqlx::query(if name == ANCHOR {
                        DISTRIBUTE_ANCHOR
                    } else {
                        DISTRIBUTE
                    });
                    query
                        .bind(&name)
                        .execute(&mut *tx)
                        .await
                        .map_err(store_error)?;
                    distributed.push(name);
                }
                (true, Some("h"))
                    if table.column.as_deref() == Some("book")
                        && (name == ANCHOR || table.colocation == anchor_group) =>
                {
                    unchanged.push(name);
                }
                (has_book, method) => {
                    return Err(StoreError::Other(format!(
                        "table {name} is already held by Citus in another way (method {}, \
                         column {}, colocation {}; expected {}): undistribute it \
                         (SELECT undistribute_table('{name}')) and run this command again; \
                         nothing was changed",
                        method.unwrap_or("none"),
                        table.column.as_deref().unwrap_or("none"),
                        table
                            .colocation
                            .map_or_else(|| "none".to_owned(), |c| c.to_string()),
                        if has_book {
                            "distributed by book, colocated with books"
                        } else {
                            "a reference table"
                        },
                    )));
                }
            }
        }
        tx.commit().await.map_err(store_error)?;
        Ok(Distribution::Distributed {
            version,
            workers,
            distributed,
            referenced,
            unchanged,
        })
    }
}

/// The rows of `sql`, each read by `read`.
async fn read_all<T, C: FromIterator<T>>(
    conn: &mut sqlx::PgConnection,
    sql: &'static str,
    read: impl Fn(&PgRow) -> Result<T, sqlx::Error>,
) -> Result<C, StoreError> {
    let rows = sqlx::query(sql)
        .fetch_all(conn)
        .await
        .map_err(store_error)?;
    rows.iter()
        .map(|row| read(row).map_err(store_error))
        .collect()
}

async fn catalog(conn: &mut sqlx::PgConnection) -> Result<BTreeMap<String, Table>, StoreError> {
    read_all(conn, TABLES, |row| {
        Ok((
            row.try_get("name")?,
            Table {
                has_book: row.try_get("has_book")?,
                method: row.try_get("method")?,
                column: row.try_get("column_name")?,
                colocation: row.try_get("colocation")?,
            },
        ))
    })
    .await
}

async fn foreign_keys(conn: &mut sqlx::PgConnection) -> Result<Vec<(String, String)>, StoreError> {
    read_all(conn, FOREIGN_KEYS, |row| {
        Ok((row.try_get("child")?, row.try_get("parent")?))
    })
    .await
}

/// Every table after the tables it references (Citus distributes a
/// referencing table only once its parent is distributed or a reference
/// table): reference tables, then the anchor, then the rest, each group
/// by name, then by foreign keys. A cycle (none exists) keeps name order.
fn dependency_order(tables: &BTreeMap<String, Table>, fks: &[(String, String)]) -> Vec<String> {
    let rank = |name: &String| match (tables[name].has_book, name.as_str() == ANCHOR) {
        (false, _) => 0,
        (true, true) => 1,
        (true, false) => 2,
    };
    let mut pending: Vec<String> = tables.keys().cloned().collect();
    pending.sort_by_key(|name| (rank(name), name.clone()));
    let mut placed: BTreeSet<String> = BTreeSet::new();
    let mut order = Vec::with_capacity(pending.len());
    while !pending.is_empty() {
        let ready = pending.iter().position(|name| {
            fks.iter()
                .filter(|(child, parent)| child == name && parent != name)
                .all(|(_, parent)| placed.contains(parent) || !tables.contains_key(parent))
        });
        let name = pending.remove(ready.unwrap_or(0));
        placed.insert(name.clone());
        order.push(name);
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(has_book: bool) -> Table {
        Table {
            has_book,
            method: None,
            column: None,
            colocation: None,
        }
    }

    #[test]
    fn parents_come_first() {
        let tables: BTreeMap<String, Table> = [
            ("assets", false),
            ("accounts", true),
            ("balances", true),
            ("books", true),
            ("postings", true),
            ("transactions", true),
        ]
        .into_iter()
        .map(|(n, b)| (n.to_owned(), table(b)))
        .collect();
        let fks = [
            ("accounts", "books"),
            ("balances", "accounts"),
            ("balances", "assets"),
            ("postings", "transactions"),
            ("postings", "accounts"),
            ("transactions", "books"),
        ]
        .map(|(c, p)| (c.to_owned(), p.to_owned()));
        let order = dependency_order(&tables, &fks);
        let at = |n: &str| order.iter().position(|o| o == n).expect("placed");
        assert_eq!(at("assets"), 0);
        assert_eq!(at("books"), 1);
        for (child, parent) in &fks {
            assert!(at(parent) < at(child), "{parent} before {child}: {order:?}");
        }
    }
}
