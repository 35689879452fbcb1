//! The schema stays ready to be distributed by book (Citus: every table but
//! the asset registry distributed on `book`, issue 19 item 5): read from the
//! live catalog of a migrated database, every primary key and unique
//! constraint of a table with a `book` column includes it, and every foreign
//! key between such tables maps `book` to `book`, so no constraint spans
//! books. `assets` is the one table without `book` (a reference table,
//! replicated to every node).

use sqlx::Row as _;

/// Tables without a `book` column, each a reference table by design.
const REFERENCE_TABLES: &[&str] = &["assets"];

#[tokio::test]
async fn every_key_and_reference_stays_within_one_book() {
    let (store, db) = crate::migrated_store().await;
    drop(store);
    let pool = sqlx::PgPool::connect(&db.url).await.expect("connects");
    let tables: Vec<(String, bool)> = sqlx::query(
        "SELECT c.relname AS name, \
           EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid \
                   AND a.attname = 'book' AND NOT a.attisdropped) AS has_book \
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = 'public' AND c.relkind = 'r' AND c.relname NOT LIKE '\\_sqlx%' \
         ORDER BY c.relname",
    )
    .fetch_all(&pool)
    .await
    .expect("tables")
    .iter()
    .map(|r| (r.get("name"), r.get("has_book")))
    .collect();
    assert!(tables.iter().any(|(t, _)| t == "events"), "{tables:?}");
    let book_tables: Vec<&str> = tables
        .iter()
        .filter(|(_, has_book)| *has_book)
        .map(|(t, _)| t.as_str())
        .collect();
    assert_eq!(
        book_tables,
        crate::routing::BOOK_TABLES,
        "the routing test's book tables are the catalog's"
    );
    for (table, has_book) in &tables {
        assert!(
            *has_book || REFERENCE_TABLES.contains(&table.as_str()),
            "table {table} has no `book` column: it cannot be distributed by book \
             (or list it as a reference table here and in docs/scaling.md)"
        );
    }
    // Primary keys and unique constraints (and unique indexes) of book tables.
    let keys = sqlx::query(
        "SELECT t.relname AS tab, i.relname AS idx, \
           array_agg(a.attname::text ORDER BY a.attnum) AS cols \
         FROM pg_index x \
         JOIN pg_class t ON t.oid = x.indrelid JOIN pg_class i ON i.oid = x.indexrelid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = ANY (x.indkey) \
         WHERE n.nspname = 'public' AND x.indisunique AND t.relname NOT LIKE '\\_sqlx%' \
         GROUP BY t.relname, i.relname ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await
    .expect("unique indexes");
    for row in &keys {
        let (table, index, cols): (String, String, Vec<String>) =
            (row.get("tab"), row.get("idx"), row.get("cols"));
        if REFERENCE_TABLES.contains(&table.as_str()) {
            continue;
        }
        assert!(
            cols.iter().any(|c| c == "book"),
            "{table}.{index} is unique on {cols:?} without `book`: a distributed table's \
             uniqueness must include the distribution column"
        );
    }
    assert!(!keys.is_empty());
    // Foreign keys: between book tables, `book` references `book`.
    let fks = sqlx::query(
        "SELECT con.conname AS name, src.relname AS src, dst.relname AS dst, \
           (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(con.conkey) WITH ORDINALITY k(att, n) \
              JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.att) AS src_cols, \
           (SELECT array_agg(a.attname::text ORDER BY k.n) FROM unnest(con.confkey) WITH ORDINALITY k(att, n) \
              JOIN pg_attribute a ON a.attrelid = con.confrelid AND a.attnum = k.att) AS dst_cols \
         FROM pg_constraint con JOIN pg_class src ON src.oid = con.conrelid \
         JOIN pg_class dst ON dst.oid = con.confrelid \
         JOIN pg_namespace n ON n.oid = src.relnamespace \
         WHERE con.contype = 'f' AND n.nspname = 'public' ORDER BY 1",
    )
    .fetch_all(&pool)
    .await
    .expect("foreign keys");
    for row in &fks {
        let (name, src, dst): (String, String, String) =
            (row.get("name"), row.get("src"), row.get("dst"));
        let (src_cols, dst_cols): (Vec<String>, Vec<String>) =
            (row.get("src_cols"), row.get("dst_cols"));
        if REFERENCE_TABLES.contains(&dst.as_str()) {
            continue;
        }
        let pairs: Vec<(&String, &String)> = src_cols.iter().zip(&dst_cols).collect();
        assert!(
            pairs.iter().any(|(s, d)| *s == "book" && *d == "book"),
            "foreign key {name} from {src} {src_cols:?} to {dst} {dst_cols:?} does not map \
             book to book: it could cross books"
        );
    }
    pool.close().await;
    db.drop_database().await.expect("drops");
}

/// On plain Postgres (no `citus` extension), `distribute` (which `talead
/// bootstrap` and `talead init` call after migrating) changes nothing and
/// says so; the schema it would distribute stays as the test above reads it.
#[tokio::test]
async fn distribute_is_a_no_op_without_citus() {
    let (store, db) = crate::migrated_store().await;
    let before = schema_objects(&store).await;
    assert_eq!(
        store.distribute().await.expect("distribute"),
        talea_store_pg::Distribution::NotCitus
    );
    assert_eq!(
        store.distribute().await.expect("distribute again"),
        talea_store_pg::Distribution::NotCitus
    );
    assert_eq!(schema_objects(&store).await, before);
    store.pool().close().await;
    db.drop_database().await.expect("drops");
}

/// Every relation, trigger and function of the schema, by name and kind.
async fn schema_objects(store: &talea_store_pg::PgStore) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT kind || ' ' || name FROM ( \
           SELECT c.relkind::text AS kind, c.relname::text AS name FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' \
           UNION ALL SELECT 'trigger', tgname::text FROM pg_trigger WHERE NOT tgisinternal \
           UNION ALL SELECT 'function', p.proname::text FROM pg_proc p \
             JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'public' \
         ) o ORDER BY 1",
    )
    .fetch_all(store.pool())
    .await
    .expect("schema objects")
}
