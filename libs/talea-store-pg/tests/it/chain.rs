//! The chain of a book written before it, on Postgres (`chain_cases.rs`).

use std::sync::Arc;

use crate::chain_cases;

#[tokio::test]
async fn a_book_without_its_chain_is_caught_up() {
    let (store, db) = crate::migrated_store().await;
    let store = Arc::new(store);
    let url = db.url.clone();
    let run_sql = |statements: &'static [&'static str]| {
        let url = url.clone();
        async move {
            let pool = sqlx::PgPool::connect(&url).await.expect("connects");
            for sql in statements {
                sqlx::query(sql).execute(&pool).await.expect("runs");
            }
            pool.close().await;
        }
    };
    let upgrading = Arc::clone(&store);
    let upgrade = move || {
        let store = Arc::clone(&upgrading);
        async move { store.upgrade_chain().await.expect("upgrade") }
    };
    chain_cases::a_book_without_its_chain_is_caught_up(store, run_sql, upgrade).await;
    db.drop_database().await.expect("drops");
}
