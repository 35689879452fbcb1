//! Set-wise inserts for SQLite: many rows per `INSERT ... VALUES` statement.
//!
//! SQLite has no array parameters (no `UNNEST`), so a batch's rows are
//! written with multi-row `VALUES` lists instead. Chunk sizes are powers of
//! two up to [`ROWS_PER_STATEMENT_MAX`], so a batch of any size costs a few
//! statements per table, and only a handful of distinct statement texts
//! exist per table for the connection's prepared-statement cache to keep.

use sqlx::query::Query;
use sqlx::sqlite::SqliteArguments;
use sqlx::{Sqlite, SqliteConnection};

/// The most rows one statement inserts. With the widest table (9 columns)
/// this binds 576 parameters, far below SQLite's limit of 32766.
pub(crate) const ROWS_PER_STATEMENT_MAX: usize = 64;

/// A query being built, its parameters borrowed for `'q`.
pub(crate) type Bound<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

/// One row of a table, as the parameters of its `VALUES` tuple.
pub(crate) trait Row {
    /// How many parameters `bind` adds.
    const COLUMNS: usize;

    /// Binds this row's values, in column order.
    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q>;
}

/// The size of the next chunk of `remaining` rows: the largest power of two
/// that fits, capped at [`ROWS_PER_STATEMENT_MAX`].
fn chunk_len(remaining: usize) -> usize {
    if remaining >= ROWS_PER_STATEMENT_MAX {
        ROWS_PER_STATEMENT_MAX
    } else {
        // `remaining` is at least 1 here, so its highest bit exists.
        1 << remaining.ilog2()
    }
}

/// `head` + `rows` tuples of `columns` placeholders + `tail`.
fn statement(head: &str, tail: &str, columns: usize, rows: usize) -> String {
    let tuple = format!("({})", vec!["?"; columns].join(","));
    format!("{head} VALUES {}{tail}", vec![tuple; rows].join(","))
}

/// Inserts `rows` with `head VALUES (...),(...) tail` statements, chunked.
/// `head` names the table and columns; `tail` may hold an `ON CONFLICT` clause.
pub(crate) async fn insert<R: Row>(
    conn: &mut SqliteConnection,
    head: &str,
    tail: &str,
    rows: &[R],
) -> Result<(), sqlx::Error> {
    apply(conn, head, tail, rows).await.map(drop)
}

/// Runs `head VALUES (...),(...) tail` statements over `rows`, chunked (an
/// `INSERT`, or an `UPDATE … FROM (VALUES …) AS u …`), and answers how
/// many rows they changed in all.
pub(crate) async fn apply<R: Row>(
    conn: &mut SqliteConnection,
    head: &str,
    tail: &str,
    rows: &[R],
) -> Result<u64, sqlx::Error> {
    let mut changed = 0;
    let mut rest = rows;
    while !rest.is_empty() {
        let (chunk, after) = rest.split_at(chunk_len(rest.len()));
        let sql = statement(head, tail, R::COLUMNS, chunk.len());
        let mut query = sqlx::query(&sql);
        for row in chunk {
            query = row.bind(query);
        }
        changed += query.execute(&mut *conn).await?.rows_affected();
        rest = after;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_powers_of_two() {
        let mut sizes = Vec::new();
        let mut n = 203;
        while n > 0 {
            let c = chunk_len(n);
            sizes.push(c);
            n -= c;
        }
        assert_eq!(sizes, vec![64, 64, 64, 8, 2, 1]);
        assert_eq!(chunk_len(1), 1);
    }

    #[test]
    fn statements_have_one_placeholder_per_value() {
        assert_eq!(
            statement("INSERT INTO t (a, b)", " ON CONFLICT DO NOTHING", 2, 3),
            "INSERT INTO t (a, b) VALUES (?,?),(?,?),(?,?) ON CONFLICT DO NOTHING"
        );
    }
}
