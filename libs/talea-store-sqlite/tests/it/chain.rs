//! The chain of a book written before it, on a SQLite file (`chain_cases.rs`).

use std::sync::Arc;

use sqlx::ConnectOptions as _;

use crate::chain_cases;

#[tokio::test]
async fn a_book_without_its_chain_is_caught_up() {
    let (store, dir) = crate::temp_store().await;
    let store = Arc::new(store);
    let path = dir.path().join("talea.db");
    let run_sql = |statements: &'static [&'static str]| {
        let path = path.clone();
        async move {
            let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
                .filename(&path)
                .connect()
                .await
                .expect("opens the file");
            for sql in statements {
                sqlx::query(sql).execute(&mut conn).await.expect("runs");
            }
        }
    };
    let upgrading = Arc::clone(&store);
    let upgrade = move || {
        let store = Arc::clone(&upgrading);
        async move { store.upgrade_chain().await.expect("upgrade") }
    };
    chain_cases::a_book_without_its_chain_is_caught_up(store, run_sql, upgrade).await;
}
