//! SQLite's own SQL: the dialect statements (`json_each` lists, planner hints), the write lock, and the multi-row write.

use std::collections::HashMap;

use sqlx::{Row as _, SqliteConnection, SqlitePool};
use talea_core::Timestamp;
use talea_store::StoreError;
use talea_store_sql::rows::{
    Advance, BalanceRow, HoldEnd, HoldRow, PostingRow, Rows, TransactionRow,
};
use talea_store_sql::{Dialect, Head, Tx, account_columns, transaction_columns};

use crate::error::store_error;
use crate::rows::{self, Bound, Row};

/// The last seq committed at or before `as_of` (commit time is monotonic
/// with seq), as a subquery over `?1` (book) and the given time parameter.
macro_rules! cut_seq {
    ($at:literal) => {
        concat!(
            "(SELECT seq FROM events WHERE book = ?1 AND committed_at <= ",
            $at,
            " ORDER BY committed_at DESC, seq DESC LIMIT 1)"
        )
    };
}

/// Balances of account `?2` in book `?1` as of time `?3`: the cut seq, then
/// per asset ever held the last posting at or before it, whose
/// `balance_after` is the answer. Two index probes per asset, never a scan;
/// an asset first touched after the cut has no such posting and is left out.
///
/// `INDEXED BY` pins the probe: for a correlated subquery SQLite's planner
/// (without statistics) prefers a backward range scan of the primary key,
/// which reads every posting of the book before the cut. With the clause a
/// plan without the index is an error, never a silent slowdown.
const BALANCES_AS_OF: &str = concat!(
    "SELECT asset, balance FROM ( \
       SELECT b.asset, ( \
         SELECT p.balance_after FROM postings p INDEXED BY postings_account_asset_idx \
         WHERE p.book = b.book AND p.account = b.account AND p.asset = b.asset \
           AND p.seq <= cut.seq \
         ORDER BY p.seq DESC, p.leg DESC LIMIT 1 \
       ) AS balance \
       FROM (SELECT ",
    cut_seq!("?3"),
    " AS seq) cut, balances b \
       WHERE cut.seq IS NOT NULL AND b.book = ?1 AND b.account = ?2 \
     ) WHERE balance IS NOT NULL ORDER BY asset"
);

/// The trial balance of book `?1` as of time `?2`: as in [`BALANCES_AS_OF`],
/// each pair's last posting at or before the cut, whose `debits_after` and
/// `balance_after` give both totals (one index probe each: SQLite has no
/// LATERAL join to fetch both columns with one).
const TRIAL_BALANCE_AS_OF: &str = concat!(
    "SELECT account, kind, asset, debits, balance FROM ( \
       SELECT b.account, a.kind, b.asset, \
         (SELECT p.debits_after FROM postings p INDEXED BY postings_account_asset_idx \
          WHERE p.book = b.book AND p.account = b.account AND p.asset = b.asset \
            AND p.seq <= cut.seq \
          ORDER BY p.seq DESC, p.leg DESC LIMIT 1) AS debits, \
         (SELECT p.balance_after FROM postings p INDEXED BY postings_account_asset_idx \
          WHERE p.book = b.book AND p.account = b.account AND p.asset = b.asset \
            AND p.seq <= cut.seq \
          ORDER BY p.seq DESC, p.leg DESC LIMIT 1) AS balance \
       FROM (SELECT ",
    cut_seq!("?2"),
    " AS seq) cut, balances b \
       JOIN accounts a ON a.book = b.book AND a.name = b.account \
       WHERE cut.seq IS NOT NULL AND b.book = ?1 \
     ) WHERE debits IS NOT NULL ORDER BY account, asset"
);

/// Postings of account `?2` in book `?1` after seq `?3`, at least `?4` of
/// them: `page` is the first `?4` postings, and the outer query takes every
/// posting up to the last seq of that page, which adds the remaining legs of
/// the page's last transaction on this account (if any). `INDEXED BY` for
/// the reason given at [`BALANCES_AS_OF`]: left alone, SQLite walks the
/// primary key over every posting of the book in the page's seq range.
const ACCOUNT_POSTINGS: &str = "WITH page AS ( \
       SELECT seq FROM postings INDEXED BY postings_account_idx \
       WHERE book = ?1 AND account = ?2 AND seq > ?3 \
       ORDER BY seq, leg LIMIT ?4 \
     ) \
     SELECT p.seq, t.tx_id, t.committed_at, p.asset, p.amount, p.balance_after \
     FROM postings p INDEXED BY postings_account_idx \
     JOIN transactions t ON t.book = p.book AND t.seq = p.seq \
     WHERE p.book = ?1 AND p.account = ?2 AND p.seq > ?3 \
       AND p.seq <= (SELECT max(seq) FROM page) \
     ORDER BY p.seq, p.leg";

/// The stored commits of the batches' keys: `?1` books and `?2` keys,
/// parallel lists. The second list is materialized (SQLite gives it an
/// automatic index on its position) and the joins are `CROSS JOIN`s, which
/// SQLite never reorders: so each (book, key) pair probes the unique index
/// on both columns. Left to itself the planner probed by book alone, a scan
/// of the book's every transaction per key (a batch took longer the longer
/// the book: the hot-book benchmark fell from about 12,000 to 240 tx/s).
const TRANSACTIONS_BY_KEYS: &str = concat!(
    "WITH wk AS MATERIALIZED (SELECT key, value FROM json_each(?2)) \
     SELECT t.book, ",
    transaction_columns!(),
    ", t.request_hash, h.status AS hold_status \
     FROM json_each(?1) AS wb CROSS JOIN wk CROSS JOIN transactions t \
     LEFT JOIN holds h ON h.book = t.book AND h.seq = t.seq \
     WHERE wk.key = wb.key AND t.book = wb.value AND t.idempotency_key = wk.value"
);

/// The batches' accounts and their balance rows: `?1` books and `?2` names,
/// parallel lists, `?3` assets; joined as in [`TRANSACTIONS_BY_KEYS`] so
/// each (book, name) probes the accounts' primary key.
const BATCH_ACCOUNTS: &str = concat!(
    "WITH wn AS MATERIALIZED (SELECT key, value FROM json_each(?2)) \
     SELECT a.book, ",
    account_columns!(),
    ", b.asset, b.balance, b.debits, b.credits \
     FROM json_each(?1) AS wb CROSS JOIN wn CROSS JOIN accounts a \
     LEFT JOIN balances b ON b.book = a.book AND b.account = a.name \
       AND b.asset IN (SELECT value FROM json_each(?3)) \
     WHERE wn.key = wb.key AND a.book = wb.value AND a.name = wn.value"
);

/// The batch's stored keys (`found_by` 'key', as [`TRANSACTIONS_BY_KEYS`])
/// and the transactions its settles and voids name (`found_by` 'id'): `?3`
/// books and `?4` tx ids (hex texts), parallel lists, joined the same way;
/// each id probes `transactions_tx_id_idx`, and each hold found its legs by
/// `hold_postings`' primary key.
const KEYS_AND_HOLDS: &str = concat!(
    "WITH wk AS MATERIALIZED (SELECT key, value FROM json_each(?2)), \
          wi AS MATERIALIZED (SELECT key, value FROM json_each(?4)) \
     SELECT 'key' AS found_by, t.book AS book, ",
    transaction_columns!(),
    ", t.request_hash, h.status AS hold_status, NULL AS ended_tx_id, NULL AS account, \
       NULL AS asset, NULL AS amount, NULL AS balance_after, NULL AS leg \
     FROM json_each(?1) AS wb CROSS JOIN wk CROSS JOIN transactions t \
     LEFT JOIN holds h ON h.book = t.book AND h.seq = t.seq \
     WHERE wk.key = wb.key AND t.book = wb.value AND t.idempotency_key = wk.value \
     UNION ALL \
     SELECT 'id', t.book, ",
    transaction_columns!(),
    ", NULL, h.status, h.ended_tx_id, hp.account, hp.asset, hp.amount, hp.balance_after, hp.leg \
     FROM json_each(?3) AS wb CROSS JOIN wi CROSS JOIN transactions t \
     LEFT JOIN holds h ON h.book = t.book AND h.seq = t.seq \
     LEFT JOIN hold_postings hp ON hp.book = h.book AND hp.seq = h.seq \
     WHERE wi.key = wb.key AND t.tx_id = unhex(wi.value) AND t.book = wb.value \
     ORDER BY found_by, book, tx_seq, leg"
);

/// The batch's accounts (`row_kind` 'account', as [`BATCH_ACCOUNTS`]), then
/// the legs of the live holds on those of them that have a floor
/// (`row_kind` 'held'; held amounts decide nothing else): `?4` books and
/// `?5` names, parallel lists, `?3` assets, `?6` time. From the books'
/// pending holds (`holds_pending_idx`: as many as `open_holds`), never the
/// pairs' whole history of holds: `INDEXED BY` and the `CROSS JOIN` pin
/// that order (left alone, SQLite walked every hold leg of the book).
const ACCOUNTS_AND_HELD: &str = concat!(
    "WITH wn AS MATERIALIZED (SELECT key, value FROM json_each(?2)), \
          floors AS MATERIALIZED ( \
            SELECT a.book, a.name FROM json_each(?4) AS hb \
            CROSS JOIN json_each(?5) AS hn CROSS JOIN accounts a \
            WHERE hn.key = hb.key AND a.book = hb.value AND a.name = hn.value \
              AND a.min_balance_mantissa IS NOT NULL) \
     SELECT 'account' AS row_kind, a.book, ",
    account_columns!(),
    ", b.asset, b.balance, b.debits, b.credits, NULL AS amount, NULL AS expires_at \
     FROM json_each(?1) AS wb CROSS JOIN wn CROSS JOIN accounts a \
     LEFT JOIN balances b ON b.book = a.book AND b.account = a.name \
       AND b.asset IN (SELECT value FROM json_each(?3)) \
     WHERE wn.key = wb.key AND a.book = wb.value AND a.name = wn.value \
     UNION ALL \
     SELECT 'held', h.book, hp.account, NULL, NULL, NULL, NULL, NULL, NULL, hp.asset, \
       NULL, NULL, NULL, hp.amount, h.expires_at \
     FROM holds h INDEXED BY holds_pending_idx \
     CROSS JOIN hold_postings hp ON hp.book = h.book AND hp.seq = h.seq \
     WHERE EXISTS (SELECT 1 FROM floors) \
       AND h.book IN (SELECT value FROM json_each(?4)) AND h.status = 'pending' \
       AND (h.expires_at IS NULL OR h.expires_at > ?6) \
       AND hp.asset IN (SELECT value FROM json_each(?3)) \
       AND EXISTS (SELECT 1 FROM floors f WHERE f.book = hp.book AND f.name = hp.account)"
);

/// The database's clock in microseconds, for reads of live holds now.
macro_rules! now_micros {
    () => {
        "CAST(unixepoch('subsec') * 1000000 AS INTEGER)"
    };
}

/// The statements whose text is SQLite's own (see `talea_store_sql::Dialect`).
/// Lists travel as JSON arrays, read with `json_each`; parallel lists are
/// joined on their index (`key`).
pub(crate) const SQL: Dialect = Dialect {
    balances_as_of: BALANCES_AS_OF,
    balance_cut: "SELECT bk.last_seq, bk.last_committed_at, a.name, a.kind, b.asset, b.balance \
         FROM books bk \
         LEFT JOIN ( \
           SELECT name, kind FROM accounts \
           WHERE book = ?1 AND (?2 IS NULL OR name IN (SELECT value FROM json_each(?2))) \
           ORDER BY name LIMIT ?3 \
         ) a ON 1 \
         LEFT JOIN balances b ON b.book = bk.book AND b.account = a.name \
         WHERE bk.book = ?1 AND bk.last_seq > 0 \
         ORDER BY a.name, b.asset",
    // `+hp.account`: without it SQLite walks the prefix's range of
    // `hold_postings_account_asset_idx` once per pending hold (5 s on a
    // book of 1,000,000 events with 10,000 pending holds); with it, each
    // hold's legs by primary key.
    prefix_balances: concat!(
        "SELECT a.name, a.kind, b.asset, b.balance, NULL AS amount \
         FROM accounts a LEFT JOIN balances b ON b.book = a.book AND b.account = a.name \
         WHERE a.book = ?1 AND a.name >= ?2 AND a.name < ?3 \
         UNION ALL \
         SELECT hp.account, a.kind, hp.asset, NULL, hp.amount \
         FROM holds h INDEXED BY holds_pending_idx \
         CROSS JOIN hold_postings hp ON hp.book = h.book AND hp.seq = h.seq \
         JOIN accounts a ON a.book = hp.book AND a.name = hp.account \
         WHERE h.book = ?1 AND h.status = 'pending' \
           AND (h.expires_at IS NULL OR h.expires_at > ",
        now_micros!(),
        ") AND +hp.account >= ?2 AND +hp.account < ?3 \
         ORDER BY 1"
    ),
    trial_balance_as_of: TRIAL_BALANCE_AS_OF,
    account_postings: ACCOUNT_POSTINGS,
    postings_of: "SELECT seq, account, asset, amount, balance_after FROM postings \
         WHERE book = ?1 AND seq IN (SELECT value FROM json_each(?2)) ORDER BY seq, leg",
    transaction: concat!(
        "SELECT t.book, ",
        transaction_columns!(),
        ", h.status AS hold_status FROM transactions t \
           LEFT JOIN holds h ON h.book = t.book AND h.seq = t.seq \
           WHERE t.tx_id = ?1 \
           AND (?2 IS NULL OR t.book IN (SELECT value FROM json_each(?2))) LIMIT 1"
    ),
    transactions_by_keys: TRANSACTIONS_BY_KEYS,
    batch_accounts: BATCH_ACCOUNTS,
    scales: "SELECT code, scale FROM assets WHERE code IN (SELECT value FROM json_each(?1))",
    register_asset: "INSERT INTO assets (code, scale, name, created_at) \
         VALUES (?1, ?2, ?3, CAST(unixepoch('subsec') * 1000000 AS INTEGER)) \
         ON CONFLICT (code) DO NOTHING RETURNING code",
    insert_account: "INSERT INTO accounts \
           (book, name, kind, min_balance_mantissa, min_balance_scale, metadata, seq, opened_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    keys_and_holds: KEYS_AND_HOLDS,
    hold_postings_of: "SELECT seq, account, asset, amount, balance_after FROM hold_postings \
         WHERE book = ?1 AND seq IN (SELECT value FROM json_each(?2)) ORDER BY seq, leg",
    accounts_and_held: ACCOUNTS_AND_HELD,
    // The account's hold legs first (`hold_postings_account_seq_idx`), then
    // each one's hold by primary key: O(the account's holds), not O(the
    // book's pending holds) as when walking `holds_pending_idx` (41 ms a read
    // with 10,000 pending holds).
    balances_now: concat!(
        "SELECT asset, balance, NULL AS amount FROM balances WHERE book = ?1 AND account = ?2 \
         UNION ALL \
         SELECT hp.asset, NULL, hp.amount \
         FROM hold_postings hp INDEXED BY hold_postings_account_seq_idx \
         CROSS JOIN holds h ON h.book = hp.book AND h.seq = hp.seq \
         WHERE hp.book = ?1 AND h.status = 'pending' \
           AND (h.expires_at IS NULL OR h.expires_at > ",
        now_micros!(),
        ") AND hp.account = ?2"
    ),
    trial_balance_now: concat!(
        "SELECT b.account, a.kind, b.asset, b.debits, b.credits, NULL AS amount \
         FROM balances b JOIN accounts a ON a.book = b.book AND a.name = b.account \
         WHERE b.book = ?1 \
         UNION ALL \
         SELECT hp.account, a.kind, hp.asset, NULL, NULL, hp.amount \
         FROM holds h INDEXED BY holds_pending_idx \
         CROSS JOIN hold_postings hp ON hp.book = h.book AND hp.seq = h.seq \
         JOIN accounts a ON a.book = hp.book AND a.name = hp.account \
         WHERE h.book = ?1 AND h.status = 'pending' \
           AND (h.expires_at IS NULL OR h.expires_at > ",
        now_micros!(),
        ")"
    ),
    transactions_at: concat!(
        "SELECT ",
        transaction_columns!(),
        ", h.status AS hold_status FROM transactions t \
           LEFT JOIN holds h ON h.book = t.book AND h.seq = t.seq \
           WHERE t.book = ?1 AND t.seq IN (SELECT value FROM json_each(?2)) ORDER BY t.seq"
    ),
    history: talea_store_sql::history::SQLITE,
};

/// How every write transaction starts: with SQLite's write lock taken at
/// once. A deferred `BEGIN` would read under a snapshot and could then fail
/// to upgrade to a writer (`SQLITE_BUSY_SNAPSHOT`, which no timeout cures).
const BEGIN_WRITE: &str = "BEGIN IMMEDIATE";

/// The system clock, in microseconds since the epoch.
pub(crate) fn now() -> Timestamp {
    use std::time::{SystemTime, UNIX_EPOCH};
    let micros = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
        Err(before) => i64::try_from(before.duration().as_micros()).map_or(i64::MIN, |m| -m),
    };
    Timestamp::from_micros(micros)
}

/// `SqlBackend::begin_locked`: a `BEGIN IMMEDIATE` transaction on the
/// writer, and each book's counter row read under the write lock. The
/// commit time is the system clock, raised to the book's previous commit
/// time so that it never goes backwards with seq, whatever the clock does
/// (or another process's clock did).
pub(crate) async fn begin_immediate(
    writer: &SqlitePool,
    books: &[&str],
) -> Result<(Tx<crate::SqliteStore>, HashMap<String, Head>), StoreError> {
    let mut tx = writer.begin_with(BEGIN_WRITE).await.map_err(store_error)?;
    let list = serde_json::to_string(books)
        .map_err(|e| StoreError::Other(format!("cannot encode a book list: {e}")))?;
    let rows = sqlx::query(
        "SELECT book, last_seq, last_committed_at, open_holds, chain_seq, chain_hash FROM books \
         WHERE book IN (SELECT value FROM json_each(?1))",
    )
    .bind(list)
    .fetch_all(&mut *tx)
    .await
    .map_err(store_error)?;
    let now = now();
    let mut heads: HashMap<String, Head> = books
        .iter()
        .map(|&book| {
            let head = Head {
                last_seq: 0,
                committed_at: now,
                open_holds: 0,
                chain_seq: 0,
                chain: talea_store_sql::chain::GENESIS,
            };
            (book.to_owned(), head)
        })
        .collect();
    for row in &rows {
        let book: String = row.try_get("book").map_err(store_error)?;
        let last_seq = talea_store::stored::seq(row.try_get("last_seq").map_err(store_error)?)?;
        let previous: Option<i64> = row.try_get("last_committed_at").map_err(store_error)?;
        let committed_at = previous.map_or(now, |p| Timestamp::from_micros(p).max(now));
        let open_holds = talea_store::stored::seq(row.try_get("open_holds").map_err(store_error)?)?;
        let chain_seq = talea_store::stored::seq(row.try_get("chain_seq").map_err(store_error)?)?;
        let chain_hash: Option<Vec<u8>> = row.try_get("chain_hash").map_err(store_error)?;
        heads.insert(
            book,
            Head {
                last_seq,
                committed_at,
                open_holds,
                chain_seq,
                chain: talea_store_sql::chain::stored_head(chain_seq, chain_hash)?,
            },
        );
    }
    Ok((tx, heads))
}

/// `SqlBackend::advance`: each book's counter row moved (created with the
/// book's first event), its count of pending holds by the move's delta
/// (the inserted row is checked before the conflict is found, so it takes
/// the delta only when that is not negative: a new book ends no hold).
pub(crate) async fn upsert_counters(
    conn: &mut SqliteConnection,
    advance: &Advance,
) -> Result<(), sqlx::Error> {
    for m in &advance.moves {
        sqlx::query(
            "INSERT INTO books (book, last_seq, last_committed_at, open_holds, chain_seq, chain_hash) \
             VALUES (?1, ?2, ?3, max(?4, 0), ?2, ?5) \
             ON CONFLICT (book) DO UPDATE \
               SET last_seq = excluded.last_seq, last_committed_at = excluded.last_committed_at, \
                   open_holds = books.open_holds + ?4, chain_seq = excluded.chain_seq, \
                   chain_hash = excluded.chain_hash",
        )
        .bind(m.book.as_str())
        .bind(talea_store::stored::seq_param(m.last_seq))
        .bind(m.committed_at.micros())
        .bind(m.open_holds)
        .bind(m.chain_hash.as_slice())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The `events` row of a transaction.
#[derive(Debug)]
struct EventOf<'a>(&'a TransactionRow<'a>);

impl Row for EventOf<'_> {
    const COLUMNS: usize = 5;

    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        query
            .bind(self.0.book)
            .bind(self.0.seq)
            .bind("transaction")
            .bind(self.0.committed_at.micros())
            .bind(self.0.event_hash)
    }
}

impl Row for TransactionRow<'_> {
    const COLUMNS: usize = 9;

    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        query
            .bind(self.book)
            .bind(self.seq)
            .bind(self.tx_id)
            .bind(self.key)
            .bind(self.hash)
            .bind(self.committed_at.micros())
            .bind(self.occurred_at.map(Timestamp::micros))
            .bind(self.memo)
            .bind(self.metadata)
    }
}

impl Row for PostingRow<'_> {
    const COLUMNS: usize = 8;

    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        bind_leg(self, query).bind(self.debits_after.as_str())
    }
}

impl Row for BalanceRow<'_> {
    const COLUMNS: usize = 6;

    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        query
            .bind(self.book)
            .bind(self.account)
            .bind(self.asset)
            .bind(self.balance.as_str())
            .bind(self.debits.as_str())
            .bind(self.credits.as_str())
    }
}

/// A hold's, settle's or void's `transactions` row, with the columns only
/// they set.
struct SpecialOf<'a>(&'a TransactionRow<'a>);

impl Row for SpecialOf<'_> {
    const COLUMNS: usize = 12;

    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        self.0
            .bind(query)
            .bind(self.0.status.as_str())
            .bind(self.0.expires_at.map(Timestamp::micros))
            .bind(self.0.pending_tx_id)
    }
}

/// A hold's leg (`hold_postings` has no `debits_after`).
struct HoldLegOf<'a>(&'a PostingRow<'a>);

impl Row for HoldLegOf<'_> {
    const COLUMNS: usize = 7;

    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        bind_leg(self.0, query)
    }
}

/// The seven columns a posting and a hold's leg share: book, seq, leg,
/// account, asset, amount, balance after.
fn bind_leg<'q>(p: &'q PostingRow<'_>, query: Bound<'q>) -> Bound<'q> {
    query
        .bind(p.book)
        .bind(p.seq)
        .bind(i64::from(p.leg))
        .bind(p.account)
        .bind(p.asset)
        .bind(p.amount.as_str())
        .bind(p.balance_after.as_str())
}

impl Row for HoldRow<'_> {
    const COLUMNS: usize = 7;

    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        query
            .bind(self.book)
            .bind(self.seq)
            .bind(self.tx_id)
            .bind(self.expires_at.map(Timestamp::micros))
            .bind(self.status.as_str())
            .bind(self.ended_seq)
            .bind(self.ended_tx_id)
    }
}

impl Row for HoldEnd<'_> {
    const COLUMNS: usize = 5;

    fn bind<'q>(&'q self, query: Bound<'q>) -> Bound<'q> {
        query
            .bind(self.book)
            .bind(self.hold_seq)
            .bind(self.status.as_str())
            .bind(self.ended_seq)
            .bind(self.ended_tx_id)
    }
}

/// The `events` rows of transactions.
async fn insert_events(
    conn: &mut SqliteConnection,
    txs: &[TransactionRow<'_>],
) -> Result<(), sqlx::Error> {
    let events: Vec<EventOf<'_>> = txs.iter().map(EventOf).collect();
    rows::insert(
        conn,
        "INSERT INTO events (book, seq, type, committed_at, hash)",
        "",
        &events,
    )
    .await
}

/// The rows only holds, settles and voids have, a few multi-row statements
/// per table, and the ends of the holds they end (`UPDATE … FROM (VALUES
/// …)`), failing unless each was pending.
async fn insert_hold_rows(conn: &mut SqliteConnection, rows: &Rows<'_>) -> Result<(), sqlx::Error> {
    insert_events(conn, &rows.special).await?;
    let special: Vec<SpecialOf<'_>> = rows.special.iter().map(SpecialOf).collect();
    rows::insert(
        conn,
        "INSERT INTO transactions (book, seq, tx_id, idempotency_key, request_hash, \
         committed_at, occurred_at, memo, metadata, status, expires_at, pending_tx_id)",
        "",
        &special,
    )
    .await?;
    let legs: Vec<HoldLegOf<'_>> = rows.hold_postings.iter().map(HoldLegOf).collect();
    rows::insert(
        conn,
        "INSERT INTO hold_postings (book, seq, leg, account, asset, amount, balance_after)",
        "",
        &legs,
    )
    .await?;
    rows::insert(
        conn,
        "INSERT INTO holds (book, seq, tx_id, expires_at, status, ended_seq, ended_tx_id)",
        "",
        &rows.holds,
    )
    .await?;
    // The holds made before that settles and voids end, each only if pending.
    let ended = rows::apply(
        conn,
        "UPDATE holds SET status = u.column3, ended_seq = u.column4, ended_tx_id = u.column5 \
         FROM (",
        ") AS u WHERE holds.book = u.column1 AND holds.seq = u.column2 \
           AND holds.status = 'pending'",
        &rows.hold_ends,
    )
    .await?;
    if usize::try_from(ended).ok() != Some(rows.hold_ends.len()) {
        // Which one is not known from the count: name the first.
        let (book, hold) = rows
            .hold_ends
            .first()
            .map_or(("?", uuid::Uuid::nil()), |e| (e.book, e.hold));
        return Err(talea_store_sql::write::not_pending(book, hold));
    }
    Ok(())
}

/// `SqlBackend::write_rows`: a few multi-row statements per table (those
/// of holds, settles and voids only when there are some), then the
/// counters.
pub(crate) async fn insert_rows(
    conn: &mut SqliteConnection,
    rows: &Rows<'_>,
    moves: Option<&Advance>,
) -> Result<(), sqlx::Error> {
    insert_events(conn, &rows.transactions).await?;
    rows::insert(
        conn,
        "INSERT INTO transactions (book, seq, tx_id, idempotency_key, request_hash, \
         committed_at, occurred_at, memo, metadata)",
        "",
        &rows.transactions,
    )
    .await?;
    rows::insert(
        conn,
        "INSERT INTO postings (book, seq, leg, account, asset, amount, balance_after, \
         debits_after)",
        "",
        &rows.postings,
    )
    .await?;
    rows::insert(
        conn,
        "INSERT INTO balances (book, account, asset, balance, debits, credits)",
        " ON CONFLICT (book, account, asset) DO UPDATE \
           SET balance = excluded.balance, debits = excluded.debits, \
               credits = excluded.credits",
        &rows.balances,
    )
    .await?;
    if !rows.special.is_empty() {
        insert_hold_rows(conn, rows).await?;
    }
    match moves {
        Some(moves) => upsert_counters(conn, moves).await,
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The query plan of `sql`, one line per step.
    async fn plan(conn: &mut SqliteConnection, sql: &str, binds: usize) -> Vec<String> {
        let explain = format!("EXPLAIN QUERY PLAN {sql}");
        let mut query = sqlx::query(&explain);
        for _ in 0..binds {
            query = query.bind("x");
        }
        let rows = query.fetch_all(&mut *conn).await.expect("explain");
        rows.iter()
            .map(|row| row.try_get::<String, _>("detail").expect("detail"))
            .collect()
    }

    /// `as_of` reads, account histories and a batch's key and account
    /// lookups probe indexes by their whole key; a scan of the log, of the
    /// book's postings or of the book's transactions would make them linear
    /// in the book's size.
    #[tokio::test]
    async fn book_wide_reads_never_scan_the_log() {
        use talea_store_sql::{history, search};
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = crate::SqliteStore::open(&dir.path().join("plans.db"))
            .await
            .expect("open");
        let mut conn = talea_store_sql::SqlBackend::reader(&store)
            .await
            .expect("reader");
        for (sql, binds, postings_index) in [
            (BALANCES_AS_OF, 3, "postings_account_asset_idx"),
            (TRIAL_BALANCE_AS_OF, 2, "postings_account_asset_idx"),
            (ACCOUNT_POSTINGS, 4, "postings_account_idx"),
            (TRANSACTIONS_BY_KEYS, 2, "-"),
            (BATCH_ACCOUNTS, 3, "-"),
            (KEYS_AND_HOLDS, 4, "-"),
            (ACCOUNTS_AND_HELD, 6, "-"),
            (SQL.balances_now, 2, "-"),
            (SQL.trial_balance_now, 1, "-"),
            (SQL.prefix_balances, 3, "-"),
            (SQL.hold_postings_of, 2, "-"),
            (
                talea_store_sql::read::HELD_AS_OF,
                3,
                "hold_postings_account_asset_idx",
            ),
            (talea_store_sql::read::TRIAL_HELD_AS_OF, 2, "-"),
            (search::FIRST_AT, 2, "-"),
            (search::LAST_BEFORE, 2, "-"),
            (search::BY_RANGE, 4, "-"),
            (search::BY_POSTING, 5, "postings_account_idx"),
            (search::BY_HOLD_POSTING, 5, "hold_postings_account_seq_idx"),
            (search::BY_HOLD_STATUS, 5, "-"),
            (search::BY_VOID, 4, "-"),
            (search::BY_METADATA, 6, "-"),
            (SQL.transactions_at, 2, "-"),
            (search::PENDING_HOLDS, 2, "-"),
            (history::SQLITE.0, 4, "postings_account_asset_idx"),
            (history::SQLITE.1, 6, "postings_account_asset_idx"),
        ] {
            let steps = plan(&mut conn, sql, binds).await;
            for step in &steps {
                let slow = match step.split_whitespace().collect::<Vec<_>>().as_slice() {
                    // One row: the cut, or a constant; the batch's
                    // accounts with a floor, as long as the batch.
                    ["SCAN", "cut" | "CONSTANT" | "floors" | "f", ..] => false,
                    // A parameter list (`json_each`), as long as the batch.
                    ["SCAN", _, "VIRTUAL", "TABLE", ..] => false,
                    ["SCAN", ..] => true,
                    // A transaction or account probed by book alone walks
                    // the whole book (a trial balance reads every balance
                    // row of it by design).
                    ["SEARCH", "t" | "a", ..] => step.ends_with("(book=?)"),
                    ["SEARCH", "p" | "postings", ..] => !step.contains(postings_index),
                    // Hold legs by book alone walk the book's whole
                    // history of holds; live holds come from the
                    // pending index.
                    ["SEARCH", "hp" | "hold_postings", ..] => {
                        step.ends_with("(book=?)")
                            // A range of accounts, walked once per hold.
                            || step.contains("account>?")
                            || (postings_index.starts_with("hold_")
                                && !step.contains(postings_index))
                    }
                    ["SEARCH", "h", ..] => step.ends_with("(book=?)") && !step.contains("pending"),
                    ["SEARCH", "events", ..] => !step.contains("events_book_committed_at_idx"),
                    _ => false,
                };
                assert!(!slow, "{step} in {steps:#?}");
            }
        }
    }

    /// Lists travel as JSON arrays: every text comes back from `json_each`
    /// as it was, quotes and backslashes included, and integers likewise.
    #[tokio::test]
    async fn lists_bind_as_json_arrays() {
        use talea_store_sql::{Param, SqlBackend};
        let dir = tempfile::tempdir().expect("temporary directory");
        let store = crate::SqliteStore::open(&dir.path().join("lists.db"))
            .await
            .expect("open");
        let mut conn = store.reader().await.expect("reader");
        let texts = ["a", "q\"uote", "back\\slash"];
        let rows = crate::SqliteStore::fetch(
            &mut conn,
            "SELECT value FROM json_each(?1) ORDER BY key",
            &[Param::Texts(Some(&texts))],
        )
        .await
        .expect("texts");
        let back: Vec<String> = rows
            .iter()
            .map(|row| row.try_get("value").expect("value"))
            .collect();
        assert_eq!(back, texts);
        for ints in [&[1, -2, 3][..], &[]] {
            let rows = crate::SqliteStore::fetch(
                &mut conn,
                "SELECT value FROM json_each(?1) ORDER BY key",
                &[Param::Ints(ints)],
            )
            .await
            .expect("ints");
            let back: Vec<i64> = rows
                .iter()
                .map(|row| row.try_get("value").expect("value"))
                .collect();
            assert_eq!(back, ints);
        }
    }
}
