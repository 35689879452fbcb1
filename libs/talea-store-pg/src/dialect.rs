//! Postgres's own SQL: the dialect statements (arrays, lateral joins), the book locks, and the set-based write.

use std::collections::HashMap;
use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use sqlx::postgres::PgPool;
use sqlx::{PgConnection, Row as _};
use talea_store::StoreError;
use talea_store_sql::rows::{Advance, PostingRow, Rows, TransactionRow, new_seq_param};
use talea_store_sql::{Dialect, Head, Tx, account_columns, transaction_columns};

use crate::codec;
use crate::error::store_error;

/// The statements whose text is Postgres's own (see `talea_store_sql::Dialect`).
pub(crate) const SQL: Dialect = Dialect {
    // The last seq committed at or before `$3` (commit time is monotonic
    // with seq), then per asset ever held the last posting at or before that
    // seq: two index probes per asset, never a scan.
    balances_as_of: "WITH cut AS ( \
           SELECT seq FROM events WHERE book = $1 AND committed_at <= $3 \
           ORDER BY committed_at DESC, seq DESC LIMIT 1 \
         ) \
         SELECT b.asset, p.balance_after::text AS balance \
         FROM cut, balances b \
         CROSS JOIN LATERAL ( \
           SELECT balance_after FROM postings \
           WHERE book = $1 AND account = b.account AND asset = b.asset AND seq <= cut.seq \
           ORDER BY seq DESC, leg DESC LIMIT 1 \
         ) p \
         WHERE b.book = $1 AND b.account = $2 ORDER BY b.asset",
    balance_cut: "SELECT bk.last_seq, bk.last_committed_at, a.name, a.kind, b.asset, \
           b.balance::text AS balance \
         FROM books bk \
         LEFT JOIN LATERAL ( \
           SELECT name, kind FROM accounts \
           WHERE book = $1 AND ($2::text[] IS NULL OR name = ANY($2::text[])) \
           ORDER BY name LIMIT $3 \
         ) a ON true \
         LEFT JOIN balances b ON b.book = $1 AND b.account = a.name \
         WHERE bk.book = $1 AND bk.last_seq > 0 \
         ORDER BY a.name, b.asset",
    prefix_balances: "SELECT a.name, a.kind, b.asset, b.balance::text AS balance, \
           NULL::text AS amount \
         FROM accounts a LEFT JOIN balances b ON b.book = $1 AND b.account = a.name \
         WHERE a.book = $1 AND a.name >= $2 AND a.name < $3 \
         UNION ALL \
         SELECT hp.account, a.kind, hp.asset, NULL, hp.amount::text \
         FROM holds h JOIN hold_postings hp ON hp.book = $1 AND hp.seq = h.seq \
         JOIN accounts a ON a.book = $1 AND a.name = hp.account \
         WHERE h.book = $1 AND h.status = 'pending' \
           AND (h.expires_at IS NULL OR h.expires_at > now()) \
           AND hp.account >= $2 AND hp.account < $3 \
         ORDER BY 1",
    // As in `balances_as_of`: the cut seq, then each pair's last posting at
    // or before it, whose `debits_after` and `balance_after` give both totals.
    trial_balance_as_of: "WITH cut AS ( \
           SELECT seq FROM events WHERE book = $1 AND committed_at <= $2 \
           ORDER BY committed_at DESC, seq DESC LIMIT 1 \
         ) \
         SELECT b.account, a.kind, b.asset, p.debits_after::text AS debits, \
                p.balance_after::text AS balance \
         FROM cut, balances b \
         JOIN accounts a ON a.book = $1 AND a.name = b.account \
         CROSS JOIN LATERAL ( \
           SELECT debits_after, balance_after FROM postings \
           WHERE book = $1 AND account = b.account AND asset = b.asset AND seq <= cut.seq \
           ORDER BY seq DESC, leg DESC LIMIT 1 \
         ) p \
         WHERE b.book = $1 ORDER BY b.account, b.asset",
    // `page` is the first `$4` postings; the outer query then takes every
    // posting up to the last seq of that page, which adds the remaining legs
    // of the page's last transaction on this account (if any).
    account_postings: "WITH page AS ( \
           SELECT seq FROM postings WHERE book = $1 AND account = $2 AND seq > $3 \
           ORDER BY seq, leg LIMIT $4 \
         ) \
         SELECT p.seq, t.tx_id, t.committed_at, p.asset, p.amount::text AS amount, \
                p.balance_after::text AS balance_after \
         FROM postings p JOIN transactions t ON t.book = $1 AND t.seq = p.seq \
         WHERE p.book = $1 AND p.account = $2 AND p.seq > $3 \
           AND p.seq <= (SELECT max(seq) FROM page) \
         ORDER BY p.seq, p.leg",
    postings_of: "SELECT seq, account, asset, amount::text AS amount, \
           balance_after::text AS balance_after \
         FROM postings WHERE book = $1 AND seq = ANY($2) ORDER BY seq, leg",
    transaction: concat!(
        "SELECT t.book, ",
        transaction_columns!(),
        ", h.status AS hold_status FROM transactions t \
         LEFT JOIN holds h ON h.book = t.book AND h.seq = t.seq \
         WHERE t.tx_id = $1 AND ($2::text[] IS NULL OR t.book = ANY($2)) LIMIT 1"
    ),
    transactions_by_keys: concat!(
        "SELECT t.book, ",
        transaction_columns!(),
        ", t.request_hash, h.status AS hold_status \
         FROM unnest($1::text[], $2::text[]) AS w (book, key) \
         JOIN transactions t ON t.book = w.book AND t.idempotency_key = w.key \
         LEFT JOIN holds h ON h.book = t.book AND h.seq = t.seq"
    ),
    // No `FOR UPDATE` on the balance rows: every writer of a book holds its
    // counter lock, which already excludes concurrent changes, and row
    // locks would cost a WAL record per row for nothing.
    batch_accounts: concat!(
        "SELECT a.book, ",
        account_columns!(),
        ", b.asset, b.balance::text AS balance, b.debits::text AS debits, \
           b.credits::text AS credits \
         FROM unnest($1::text[], $2::text[]) AS w (book, name) \
         JOIN accounts a ON a.book = w.book AND a.name = w.name \
         LEFT JOIN balances b ON b.book = a.book AND b.account = a.name AND b.asset = ANY($3)"
    ),
    scales: "SELECT code, scale::bigint AS scale FROM assets WHERE code = ANY($1)",
    register_asset: "INSERT INTO assets (code, scale, name) VALUES ($1, $2, $3) \
         ON CONFLICT ON CONSTRAINT assets_pkey DO NOTHING RETURNING code",
    insert_account: "INSERT INTO accounts \
           (book, name, kind, min_balance_mantissa, min_balance_scale, metadata, seq, opened_at) \
         VALUES ($1, $2, $3, $4::text::numeric, $5, $6, $7, $8)",
    // The batch's stored keys (`found_by` 'key', as `transactions_by_keys`)
    // and the transactions its settles and voids name (`found_by` 'id'),
    // with a hold's legs, in one round trip.
    keys_and_holds: concat!(
        "SELECT 'key' AS found_by, t.book, ",
        transaction_columns!(),
        ", t.request_hash, h.status AS hold_status, NULL::uuid AS ended_tx_id, \
           NULL::text AS account, NULL::text AS asset, NULL::text AS amount, \
           NULL::text AS balance_after, NULL::smallint AS leg \
         FROM unnest($1::text[], $2::text[]) AS w (book, key) \
         JOIN transactions t ON t.book = w.book AND t.idempotency_key = w.key \
         LEFT JOIN holds h ON h.book = t.book AND h.seq = t.seq \
         UNION ALL \
         SELECT 'id', t.book, ",
        transaction_columns!(),
        ", NULL, h.status, h.ended_tx_id, hp.account, hp.asset, hp.amount::text, \
           hp.balance_after::text, hp.leg \
         FROM unnest($3::text[], $4::uuid[]) AS w (book, tx_id) \
         JOIN transactions t ON t.tx_id = w.tx_id AND t.book = w.book \
         LEFT JOIN holds h ON h.book = t.book AND h.seq = t.seq \
         LEFT JOIN hold_postings hp ON hp.book = h.book AND hp.seq = h.seq \
         ORDER BY found_by, book, tx_seq, leg"
    ),
    hold_postings_of: "SELECT seq, account, asset, amount::text AS amount, \
           balance_after::text AS balance_after \
         FROM hold_postings WHERE book = $1 AND seq = ANY($2) ORDER BY seq, leg",
    // The batch's accounts (`row_kind` 'account', as `batch_accounts`), then
    // the legs of the pending holds on those of them that have a floor
    // (`row_kind` 'held'), read from the books' pending holds
    // (`holds_pending_idx`: as many as `open_holds`), never the pairs' whole
    // history of holds. Without such an account the second part does not
    // run at all (its `EXISTS` is a one-time filter).
    accounts_and_held: concat!(
        "WITH floors AS MATERIALIZED ( \
           SELECT a.book, a.name FROM unnest($4::text[], $5::text[]) AS w (book, name) \
           JOIN accounts a ON a.book = w.book AND a.name = w.name \
           WHERE a.min_balance_mantissa IS NOT NULL \
         ) \
         SELECT 'account' AS row_kind, a.book, ",
        account_columns!(),
        ", b.asset, b.balance::text AS balance, b.debits::text AS debits, \
           b.credits::text AS credits, NULL::text AS amount, NULL::timestamptz AS expires_at \
         FROM unnest($1::text[], $2::text[]) AS w (book, name) \
         JOIN accounts a ON a.book = w.book AND a.name = w.name \
         LEFT JOIN balances b ON b.book = a.book AND b.account = a.name AND b.asset = ANY($3) \
         UNION ALL \
         SELECT 'held', h.book, hp.account, NULL, NULL, NULL, NULL, NULL, NULL, hp.asset, \
           NULL, NULL, NULL, hp.amount::text, h.expires_at \
         FROM holds h JOIN hold_postings hp ON hp.book = h.book AND hp.seq = h.seq \
         WHERE EXISTS (SELECT 1 FROM floors) AND h.book = ANY($4) AND h.status = 'pending' \
           AND (h.expires_at IS NULL OR h.expires_at > $6) AND hp.asset = ANY($3) \
           AND (hp.book, hp.account) IN (SELECT book, name FROM floors)"
    ),
    balances_now: "SELECT asset, balance::text AS balance, NULL::text AS amount FROM balances \
         WHERE book = $1 AND account = $2 \
         UNION ALL \
         SELECT hp.asset, NULL, hp.amount::text \
         FROM holds h JOIN hold_postings hp ON hp.book = $1 AND hp.seq = h.seq \
         WHERE h.book = $1 AND h.status = 'pending' \
           AND (h.expires_at IS NULL OR h.expires_at > now()) AND hp.account = $2",
    trial_balance_now: "SELECT b.account, a.kind, b.asset, b.debits::text AS debits, \
           b.credits::text AS credits, NULL::text AS amount \
         FROM balances b JOIN accounts a ON a.book = $1 AND a.name = b.account \
         WHERE b.book = $1 \
         UNION ALL \
         SELECT hp.account, a.kind, hp.asset, NULL, NULL, hp.amount::text \
         FROM holds h JOIN hold_postings hp ON hp.book = $1 AND hp.seq = h.seq \
         JOIN accounts a ON a.book = $1 AND a.name = hp.account \
         WHERE h.book = $1 AND h.status = 'pending' \
           AND (h.expires_at IS NULL OR h.expires_at > now())",
    transactions_at: concat!(
        "SELECT ",
        transaction_columns!(),
        ", h.status AS hold_status FROM transactions t \
           LEFT JOIN holds h ON h.book = $1 AND h.seq = t.seq \
           WHERE t.book = $1 AND t.seq = ANY($2::bigint[]) ORDER BY t.seq"
    ),
    history: talea_store_sql::history::PG,
};

/// The counter rows of books, locked in name order, with the clock (see [`lock_books`]).
pub(crate) const LOCK_BOOKS: &str = "SELECT book, last_seq, open_holds, chain_seq, chain_hash, \
       greatest(date_trunc('microseconds', clock_timestamp()), last_committed_at) AS now \
     FROM books WHERE book = ANY($1) ORDER BY book FOR UPDATE";

/// Creates the counter rows of new books, in name order.
pub(crate) const CREATE_BOOKS: &str = "INSERT INTO books (book) \
     SELECT b FROM unnest($1::text[]) AS b ORDER BY b COLLATE \"C\" \
     ON CONFLICT ON CONSTRAINT books_pkey DO NOTHING";

/// Locks the counter rows of `books` in one statement, in the database's
/// order of book names, and reads the clock for each.
///
/// Every caller locks its books in the same order (a statement's `ORDER BY
/// … FOR UPDATE` locks rows in the order it returns them), so two commits
/// sharing books wait for each other and never deadlock. The commit time is
/// the database clock truncated to microseconds (the contract's unit),
/// raised to the previous commit time of the book so it never goes
/// backwards with seq, whatever the clock does; if another writer held the
/// row, Postgres re-evaluates it once that writer is done. Books whose row
/// is missing are absent from the answer.
async fn lock_books(
    conn: &mut PgConnection,
    books: &[&str],
) -> Result<HashMap<String, Head>, StoreError> {
    let rows = sqlx::query(LOCK_BOOKS)
        .bind(books)
        .fetch_all(&mut *conn)
        .await
        .map_err(store_error)?;
    let mut heads = HashMap::with_capacity(rows.len());
    for row in &rows {
        let last_seq: i64 = row.try_get("last_seq").map_err(store_error)?;
        let open_holds: i64 = row.try_get("open_holds").map_err(store_error)?;
        let chain_seq: i64 = row.try_get("chain_seq").map_err(store_error)?;
        heads.insert(
            row.try_get::<String, _>("book").map_err(store_error)?,
            Head {
                last_seq: talea_store::stored::seq(last_seq)?,
                committed_at: codec::timestamp(row.try_get("now").map_err(store_error)?),
                open_holds: talea_store::stored::seq(open_holds)?,
                chain_seq: talea_store::stored::seq(chain_seq)?,
                chain: talea_store_sql::chain::stored_head(
                    talea_store::stored::seq(chain_seq)?,
                    row.try_get("chain_hash").map_err(store_error)?,
                )?,
            },
        );
    }
    Ok(heads)
}

/// `SqlBackend::begin_locked`: a transaction holding the books' counter
/// row locks. The lock serializes every writer of a book, on every
/// instance: after it is granted, each READ COMMITTED statement of the
/// transaction sees every commit made to the book before, so key and
/// balance lookups are authoritative.
pub(crate) async fn begin_with_book_locks(
    pool: &PgPool,
    books: &[&str],
) -> Result<(Tx<crate::PgStore>, HashMap<String, Head>), StoreError> {
    let mut tx = pool.begin().await.map_err(store_error)?;
    let mut heads = lock_books(&mut tx, books).await?;
    if heads.len() < books.len() {
        // New books: start over, creating their rows first, in name order,
        // then locking every row in order. A creation waits only for other
        // creations of the same rows, which go in the same order, so this
        // cannot deadlock either; and if nothing passes, the rollback
        // leaves no empty book behind.
        tx.rollback().await.map_err(store_error)?;
        tx = pool.begin().await.map_err(store_error)?;
        sqlx::query(CREATE_BOOKS)
            .bind(books)
            .execute(&mut *tx)
            .await
            .map_err(store_error)?;
        heads = lock_books(&mut tx, books).await?;
    }
    Ok((tx, heads))
}

/// The counter moves of a commit as the parallel arrays `UNNEST` takes,
/// with one `pg_notify` payload per book.
#[derive(Debug, Default)]
struct Moves {
    books: Vec<String>,
    last_seqs: Vec<i64>,
    committed_at: Vec<DateTime<Utc>>,
    open_holds: Vec<i64>,
    chain_hashes: Vec<Vec<u8>>,
    payloads: Vec<String>,
}

impl Moves {
    fn of(advance: &Advance) -> Result<Self, sqlx::Error> {
        let mut moves = Moves::default();
        for m in &advance.moves {
            moves.books.push(m.book.as_str().to_owned());
            moves
                .last_seqs
                .push(new_seq_param(m.last_seq).map_err(encode_error)?);
            moves.committed_at.push(codec::instant(m.committed_at));
            moves.open_holds.push(m.open_holds);
            moves.chain_hashes.push(m.chain_hash.to_vec());
            moves.payloads.push(m.payload());
        }
        Ok(moves)
    }
}

/// A value this backend cannot encode, as the statement error it becomes.
fn encode_error(error: StoreError) -> sqlx::Error {
    sqlx::Error::Encode(Box::new(std::io::Error::other(error.to_string())))
}

/// Moves the counters and notifies once per book (the careful path, and
/// account opening).
pub(crate) const ADVANCE_BOOKS: &str = "WITH bump AS ( \
       UPDATE books SET last_seq = u.last_seq, last_committed_at = u.at, \
         open_holds = books.open_holds + u.open_holds, chain_seq = u.last_seq, \
         chain_hash = u.chain_hash \
       FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::bigint[], $5::bytea[]) \
         AS u (book, last_seq, at, open_holds, chain_hash) \
       WHERE books.book = u.book \
     ) SELECT pg_notify('talea_events', p) FROM unnest($6::text[]) AS p";

/// `SqlBackend::advance`.
pub(crate) async fn bump_and_notify(
    conn: &mut PgConnection,
    advance: &Advance,
) -> Result<(), sqlx::Error> {
    let moves = Moves::of(advance)?;
    sqlx::query(ADVANCE_BOOKS)
        .bind(&moves.books)
        .bind(&moves.last_seqs)
        .bind(&moves.committed_at)
        .bind(&moves.open_holds)
        .bind(&moves.chain_hashes)
        .bind(&moves.payloads)
        .execute(conn)
        .await
        .map(drop)
}

/// The set-based write of drafts of any number of books: events,
/// transactions, postings and the balance upsert in one statement, so a
/// commit costs one round trip to write and a draft's rows can never be half
/// written (every data-modifying CTE runs, atomically with the rest of the
/// statement).
macro_rules! write_drafts {
    () => {
        "WITH event AS ( \
           INSERT INTO events (book, seq, type, committed_at, hash) \
           SELECT u.book, u.seq, 'transaction', u.at, u.hash \
           FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $10::bytea[]) \
             AS u (book, seq, at, hash) \
         ), tx AS ( \
           INSERT INTO transactions \
             (book, seq, tx_id, idempotency_key, request_hash, committed_at, occurred_at, memo, metadata) \
           SELECT u.book, u.seq, u.tx_id, u.key, u.hash, u.at, u.occurred_at, u.memo, u.metadata \
           FROM unnest($1::text[], $2::bigint[], $3::timestamptz[], $4::uuid[], $5::text[], $6::bytea[], \
                       $7::timestamptz[], $8::text[], $9::text[]) \
             AS u (book, seq, at, tx_id, key, hash, occurred_at, memo, metadata) \
         ), posting AS ( \
           INSERT INTO postings (book, seq, leg, account, asset, amount, balance_after, debits_after) \
           SELECT u.book, u.seq, u.leg, u.account, u.asset, u.amount::numeric, u.balance_after::numeric, \
                  u.debits_after::numeric \
           FROM unnest($11::text[], $12::bigint[], $13::smallint[], $14::text[], $15::text[], $16::text[], \
                       $17::text[], $18::text[]) \
             AS u (book, seq, leg, account, asset, amount, balance_after, debits_after) \
         ), balance AS ( \
           INSERT INTO balances (book, account, asset, balance, debits, credits) \
           SELECT u.book, u.account, u.asset, u.balance::numeric, u.debits::numeric, u.credits::numeric \
           FROM unnest($19::text[], $20::text[], $21::text[], $22::text[], $23::text[], $24::text[]) \
             AS u (book, account, asset, balance, debits, credits) \
           ON CONFLICT ON CONSTRAINT balances_pkey DO UPDATE \
             SET balance = excluded.balance, debits = excluded.debits, credits = excluded.credits \
         )"
    };
}

/// The counter moves of a commit (`$25`-`$29`; `$30`, the notification
/// payloads, is read by the statement's last part).
macro_rules! bump_books {
    () => {
        ", bump AS ( \
           UPDATE books SET last_seq = u.last_seq, last_committed_at = u.at, \
             open_holds = books.open_holds + u.open_holds, chain_seq = u.last_seq, \
             chain_hash = u.chain_hash \
           FROM unnest($25::text[], $26::bigint[], $27::timestamptz[], $28::bigint[], \
                       $29::bytea[]) \
             AS u (book, last_seq, at, open_holds, chain_hash) \
           WHERE books.book = u.book \
         )"
    };
}

/// Writes drafts and closes the commit: each book's counter, commit time
/// and one notification.
pub(crate) const WRITE_BATCH: &str = concat!(
    write_drafts!(),
    bump_books!(),
    " SELECT pg_notify('talea_events', p) FROM unnest($30::text[]) AS p"
);

/// Writes drafts only (the careful path closes the commit with `ADVANCE_BOOKS`).
pub(crate) const WRITE_DRAFTS: &str = concat!(write_drafts!(), " SELECT 1");

/// The CTEs of the rows only holds, settles and voids have, their
/// parameters numbered from `$n`: their events and transactions, the
/// holds' legs and `holds` rows, and the ends of holds made before (a hold
/// made and ended in the same rows is inserted ended: a statement cannot
/// update a row it inserts). `ended` returns a row per hold it ended.
fn holds_ctes(n: usize) -> String {
    // `@i` is the i-th parameter of these CTEs; the highest first, so that
    // `@1` never replaces the start of `@10`.
    (0..=HOLDS_PARAMS)
        .rev()
        .fold(HOLDS_CTES.to_owned(), |sql, i| {
            sql.replace(&format!("@{i}"), &format!("${}", n + i))
        })
}

/// The highest parameter index of [`HOLDS_CTES`].
const HOLDS_PARAMS: usize = 31;

/// The text of [`holds_ctes`], its parameters written `@0` to `@31`.
const HOLDS_CTES: &str = ", hold_event AS ( \
           INSERT INTO events (book, seq, type, committed_at, hash) \
           SELECT u.book, u.seq, 'transaction', u.at, u.hash \
           FROM unnest(@0::text[], @1::bigint[], @2::timestamptz[], @9::bytea[]) \
             AS u (book, seq, at, hash) \
         ), hold_tx AS ( \
           INSERT INTO transactions \
             (book, seq, tx_id, idempotency_key, request_hash, committed_at, occurred_at, memo, \
              metadata, status, expires_at, pending_tx_id) \
           SELECT u.book, u.seq, u.tx_id, u.key, u.hash, u.at, u.occurred_at, u.memo, u.metadata, \
                  u.status, u.expires_at, u.pending_tx_id \
           FROM unnest(@0::text[], @1::bigint[], @2::timestamptz[], @3::uuid[], @4::text[], \
                       @5::bytea[], @6::timestamptz[], @7::text[], @8::text[], @10::text[], \
                       @11::timestamptz[], @12::uuid[]) \
             AS u (book, seq, at, tx_id, key, hash, occurred_at, memo, metadata, status, \
                   expires_at, pending_tx_id) \
         ), hold_leg AS ( \
           INSERT INTO hold_postings (book, seq, leg, account, asset, amount, balance_after) \
           SELECT u.book, u.seq, u.leg, u.account, u.asset, u.amount::numeric, \
                  u.balance_after::numeric \
           FROM unnest(@13::text[], @14::bigint[], @15::smallint[], @16::text[], @17::text[], \
                       @18::text[], @19::text[]) \
             AS u (book, seq, leg, account, asset, amount, balance_after) \
         ), hold AS ( \
           INSERT INTO holds (book, seq, tx_id, expires_at, status, ended_seq, ended_tx_id) \
           SELECT u.book, u.seq, u.tx_id, u.expires_at, u.status, u.ended_seq, u.ended_tx_id \
           FROM unnest(@20::text[], @21::bigint[], @22::uuid[], @23::timestamptz[], \
                       @24::text[], @25::bigint[], @26::uuid[]) \
             AS u (book, seq, tx_id, expires_at, status, ended_seq, ended_tx_id) \
         ), ended AS ( \
           UPDATE holds SET status = u.status, ended_seq = u.ended_seq, \
             ended_tx_id = u.ended_tx_id \
           FROM unnest(@27::text[], @28::bigint[], @29::text[], @30::bigint[], @31::uuid[]) \
             AS u (book, hold_seq, status, ended_seq, ended_tx_id) \
           WHERE holds.book = u.book AND holds.seq = u.hold_seq AND holds.status = 'pending' \
           RETURNING 1 \
         )";

/// [`WRITE_DRAFTS`] and [`WRITE_BATCH`] with the rows of holds, settles
/// and voids too, in the same statement; each answers how many holds it
/// ended, which must be all it was asked to.
pub(crate) struct WithHolds {
    pub(crate) drafts: String,
    pub(crate) batch: String,
}

pub(crate) static WITH_HOLDS: LazyLock<WithHolds> = LazyLock::new(|| WithHolds {
    drafts: format!(
        "{}{} SELECT count(*) AS ended FROM ended",
        write_drafts!(),
        holds_ctes(25)
    ),
    batch: format!(
        "{}{}{}, notified AS (SELECT pg_notify('talea_events', p) FROM unnest($30::text[]) AS p) \
         SELECT (SELECT count(*) FROM ended) AS ended, (SELECT count(*) FROM notified) AS notified",
        write_drafts!(),
        bump_books!(),
        holds_ctes(31)
    ),
});

/// A time as Postgres stores it, or the encode error of one it cannot.
fn storable(at: Option<talea_core::Timestamp>) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    at.map(|at| {
        codec::datetime(at).ok_or_else(|| {
            encode_error(StoreError::Other(format!(
                "time {} is out of range",
                at.micros()
            )))
        })
    })
    .transpose()
}

/// `SqlBackend::write_rows`: every row as parallel arrays, in one
/// statement: the plain rows, with `advance` the counters and
/// notifications, and the rows of holds, settles and voids when there are
/// any (a batch of plain posts runs the statement it always did).
pub(crate) async fn unnest_write(
    conn: &mut PgConnection,
    rows: &Rows<'_>,
    advance: Option<&Advance>,
) -> Result<(), sqlx::Error> {
    let txs = &rows.transactions;
    let holds = !rows.special.is_empty();
    let sql = match (advance.is_some(), holds) {
        (false, false) => WRITE_DRAFTS,
        (true, false) => WRITE_BATCH,
        (false, true) => WITH_HOLDS.drafts.as_str(),
        (true, true) => WITH_HOLDS.batch.as_str(),
    };
    let (ps, bs) = (&rows.postings, &rows.balances);
    let query = bind_transactions(sqlx::query(sql), txs)?;
    let query = bind_legs(query, ps).bind(
        ps.iter()
            .map(|p| p.debits_after.as_str())
            .collect::<Vec<_>>(),
    );
    let query = query
        .bind(bs.iter().map(|b| b.book).collect::<Vec<_>>())
        .bind(bs.iter().map(|b| b.account).collect::<Vec<_>>())
        .bind(bs.iter().map(|b| b.asset).collect::<Vec<_>>())
        .bind(bs.iter().map(|b| b.balance.as_str()).collect::<Vec<_>>())
        .bind(bs.iter().map(|b| b.debits.as_str()).collect::<Vec<_>>())
        .bind(bs.iter().map(|b| b.credits.as_str()).collect::<Vec<_>>());
    let query = match advance {
        Some(advance) => {
            let moves = Moves::of(advance)?;
            query
                .bind(moves.books)
                .bind(moves.last_seqs)
                .bind(moves.committed_at)
                .bind(moves.open_holds)
                .bind(moves.chain_hashes)
                .bind(moves.payloads)
        }
        None => query,
    };
    if !holds {
        return query.execute(conn).await.map(drop);
    }
    let row = bind_holds(query, rows)?.fetch_one(conn).await?;
    let ended: i64 = row.try_get("ended")?;
    let es = &rows.hold_ends;
    if usize::try_from(ended).ok() != Some(es.len()) {
        // Which one is not known from the count: name the first.
        let (book, hold) = es
            .first()
            .map_or(("?", uuid::Uuid::nil()), |e| (e.book, e.hold));
        return Err(talea_store_sql::write::not_pending(book, hold));
    }
    Ok(())
}

/// A statement being built, its parameters borrowed for `'q`.
type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds the ten columns every `transactions` row has (and its `events`
/// row's), as parallel arrays: book, seq, commit time, tx id, key, request
/// hash, `occurred_at`, memo, metadata, and the event's chain hash.
fn bind_transactions<'q>(
    query: PgQuery<'q>,
    txs: &'q [TransactionRow<'_>],
) -> Result<PgQuery<'q>, sqlx::Error> {
    let at: Vec<DateTime<Utc>> = txs.iter().map(|t| codec::instant(t.committed_at)).collect();
    // The planner refused every `occurred_at` chrono cannot hold
    // (`PgStore::check_draft`); one that reached here anyway fails the write
    // rather than being stored as NULL.
    let occurred_at = txs
        .iter()
        .map(|t| storable(t.occurred_at))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(query
        .bind(txs.iter().map(|t| t.book).collect::<Vec<_>>())
        .bind(txs.iter().map(|t| t.seq).collect::<Vec<_>>())
        .bind(at)
        .bind(txs.iter().map(|t| t.tx_id).collect::<Vec<_>>())
        .bind(txs.iter().map(|t| t.key).collect::<Vec<_>>())
        .bind(txs.iter().map(|t| t.hash).collect::<Vec<_>>())
        .bind(occurred_at)
        .bind(txs.iter().map(|t| t.memo).collect::<Vec<_>>())
        .bind(txs.iter().map(|t| t.metadata).collect::<Vec<_>>())
        .bind(txs.iter().map(|t| t.event_hash).collect::<Vec<_>>()))
}

/// Binds the seven columns a posting and a hold's leg share, as parallel
/// arrays: book, seq, leg, account, asset, amount, balance after.
fn bind_legs<'q>(query: PgQuery<'q>, ps: &'q [PostingRow<'_>]) -> PgQuery<'q> {
    query
        .bind(ps.iter().map(|p| p.book).collect::<Vec<_>>())
        .bind(ps.iter().map(|p| p.seq).collect::<Vec<_>>())
        .bind(ps.iter().map(|p| p.leg).collect::<Vec<_>>())
        .bind(ps.iter().map(|p| p.account).collect::<Vec<_>>())
        .bind(ps.iter().map(|p| p.asset).collect::<Vec<_>>())
        .bind(ps.iter().map(|p| p.amount.as_str()).collect::<Vec<_>>())
        .bind(
            ps.iter()
                .map(|p| p.balance_after.as_str())
                .collect::<Vec<_>>(),
        )
}

/// Binds the parameters of [`holds_ctes`], in order.
fn bind_holds<'q>(query: PgQuery<'q>, rows: &'q Rows<'_>) -> Result<PgQuery<'q>, sqlx::Error> {
    let txs = &rows.special;
    let expires_at = txs
        .iter()
        .map(|t| storable(t.expires_at))
        .collect::<Result<Vec<_>, _>>()?;
    let hold_expires_at = rows
        .holds
        .iter()
        .map(|h| storable(h.expires_at))
        .collect::<Result<Vec<_>, _>>()?;
    let (ps, hs, es) = (&rows.hold_postings, &rows.holds, &rows.hold_ends);
    let query = bind_transactions(query, txs)?
        .bind(txs.iter().map(|t| t.status.as_str()).collect::<Vec<_>>())
        .bind(expires_at)
        .bind(txs.iter().map(|t| t.pending_tx_id).collect::<Vec<_>>());
    Ok(bind_legs(query, ps)
        .bind(hs.iter().map(|h| h.book).collect::<Vec<_>>())
        .bind(hs.iter().map(|h| h.seq).collect::<Vec<_>>())
        .bind(hs.iter().map(|h| h.tx_id).collect::<Vec<_>>())
        .bind(hold_expires_at)
        .bind(hs.iter().map(|h| h.status.as_str()).collect::<Vec<_>>())
        .bind(hs.iter().map(|h| h.ended_seq).collect::<Vec<_>>())
        .bind(hs.iter().map(|h| h.ended_tx_id).collect::<Vec<_>>())
        .bind(es.iter().map(|e| e.book).collect::<Vec<_>>())
        .bind(es.iter().map(|e| e.hold_seq).collect::<Vec<_>>())
        .bind(es.iter().map(|e| e.status.as_str()).collect::<Vec<_>>())
        .bind(es.iter().map(|e| e.ended_seq).collect::<Vec<_>>())
        .bind(es.iter().map(|e| e.ended_tx_id).collect::<Vec<_>>()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_parameters_follow_the_plain_ones() {
        for (sql, last) in [(&WITH_HOLDS.drafts, 56), (&WITH_HOLDS.batch, 62)] {
            assert!(!sql.contains('@'), "a parameter left unnumbered: {sql}");
            assert!(sql.contains(&format!("${last}::uuid[]")), "{sql}");
            assert!(
                !sql.contains("holds.tx_id"),
                "holds end by their key: {sql}"
            );
            assert!(!sql.contains(&format!("${}", last + 1)), "{sql}");
        }
    }
}
