//! `audit_book` over a real Postgres database and a real SQLite file: a
//! small ledger with every kind of event audits clean, and each kind of
//! tampering with the rows behind the store's back is found at its seq.

use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
use sqlx::{Executor, PgPool};
use talea_api::{LedgerApi, SettleRequest, VoidRequest};
use talea_core::{BookName, Timestamp};
use talea_ledger::{AuditReport, FindingKind, LedgerConfig, LedgerService, audit_book};
use talea_store::Store;
use talea_store_pg::PgStore;
use talea_store_sqlite::SqliteStore;
use talea_testkit::TestDb;
use talea_testkit::ledger::{open_accounts, register_asset, transfer};

const BOOK: &str = "audited";

// The seqs `write_ledger` gives its events (it checks them).
/// `hot` → `alice` 1, with a memo.
const SEQ_DEPOSIT: u64 = 4;
/// `hot` → `bob` 2.
const SEQ_TO_BOB: u64 = 5;
/// A hold `alice` → `bob` 0.5, settled whole at [`SEQ_SETTLE`].
const SEQ_SETTLED_HOLD: u64 = 6;
/// The last seq that touches `bob`.
const SEQ_SETTLE: u64 = 7;
/// The hold `alice` → `hot` that expires, and its `hold_expired` event.
const SEQ_EXPIRED: u64 = 11;
/// The last event: `hot` → `alice` 3.
const SEQ_LAST: u64 = 13;

/// Where the tests write SQL behind the store's back.
enum Sql {
    Pg(PgPool, TestDb),
    Sqlite(SqlitePool, tempfile::TempDir),
}

struct Fixture {
    store: Arc<dyn Store>,
    ledger: LedgerService,
    sql: Sql,
}

impl Fixture {
    async fn postgres() -> Self {
        let db = talea_testkit::fresh_database()
            .await
            .expect("test database");
        let store = PgStore::connect(&db.url, 4).await.expect("connect");
        store.migrate().await.expect("migrate");
        let pool = PgPool::connect(&db.url).await.expect("sql pool");
        Self::new(Arc::new(store), Sql::Pg(pool, db))
    }

    async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("talea.db");
        let store = SqliteStore::open(&path).await.expect("open");
        let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
            .expect("sqlite url")
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePool::connect_with(options).await.expect("sql pool");
        Self::new(Arc::new(store), Sql::Sqlite(pool, dir))
    }

    fn new(store: Arc<dyn Store>, sql: Sql) -> Self {
        let ledger = LedgerService::new(
            store.clone(),
            LedgerConfig::default(),
            talea_telemetry::Metrics::new(),
        );
        Self { store, ledger, sql }
    }

    /// Runs one statement on the same database the store uses.
    async fn execute(&self, statement: &str) {
        let done = match &self.sql {
            Sql::Pg(pool, _) => pool.execute(statement).await.map(|r| r.rows_affected()),
            Sql::Sqlite(pool, _) => pool.execute(statement).await.map(|r| r.rows_affected()),
        };
        assert!(done.expect(statement) > 0, "{statement} changed no row");
    }

    async fn audit(&self) -> AuditReport {
        audit_book(self.store.as_ref(), &book())
            .await
            .expect("audit")
    }

    async fn finish(self) {
        match self.sql {
            Sql::Pg(pool, db) => {
                pool.close().await;
                db.drop_database().await.expect("drop");
            }
            Sql::Sqlite(pool, _dir) => pool.close().await,
        }
    }
}

fn book() -> BookName {
    BookName::parse(BOOK).expect("book")
}

fn now() -> Timestamp {
    let micros = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_micros();
    Timestamp::from_micros(i64::try_from(micros).expect("micros fit"))
}

/// Posts a hold of `amount` from `debit` to `credit`; returns its id.
async fn hold(
    ledger: &LedgerService,
    key: &str,
    debit: &str,
    credit: &str,
    amount: &str,
    expires_at: Option<Timestamp>,
) -> String {
    let mut request = transfer(key, debit, credit, amount);
    request.pending = true;
    request.expires_at = expires_at.map(talea_api::format_timestamp);
    ledger
        .post_transaction(BOOK, request)
        .await
        .expect("hold")
        .tx_id
}

/// Writes the ledger every test audits: accounts, posts, a hold settled,
/// a hold voided, a hold expired, a hold still live, and a post after them.
async fn write_ledger(fx: &Fixture) {
    let ledger = &fx.ledger;
    register_asset(ledger).await.expect("asset");
    open_accounts(
        ledger,
        BOOK,
        &[
            ("hot", "asset"),
            ("alice", "liability"),
            ("bob", "liability"),
        ],
    )
    .await
    .expect("accounts");
    let mut deposit = transfer("k-deposit", "hot", "alice", "1");
    deposit.memo = Some("first deposit".to_owned());
    let seq = |tx: talea_api::TransactionDto| tx.seq;
    assert_eq!(
        seq(ledger.post_transaction(BOOK, deposit).await.expect("post")),
        SEQ_DEPOSIT
    );
    let to_bob = transfer("k-bob", "hot", "bob", "2");
    assert_eq!(
        seq(ledger.post_transaction(BOOK, to_bob).await.expect("post")),
        SEQ_TO_BOB
    );
    let settled = hold(ledger, "k-h1", "alice", "bob", "0.5", None).await;
    let settle = SettleRequest {
        idempotency_key: "k-settle".to_owned(),
        postings: None,
    };
    let settle = ledger.settle(BOOK, &settled, settle).await.expect("settle");
    assert_eq!(settle.seq, SEQ_SETTLE);
    let voided = hold(ledger, "k-h2", "alice", "hot", "0.25", None).await;
    let void = VoidRequest {
        idempotency_key: "k-void".to_owned(),
    };
    assert_eq!(ledger.void(BOOK, &voided, void).await.expect("void").seq, 9);
    let soon = Timestamp::from_micros(now().micros() + 500_000);
    hold(ledger, "k-h3", "alice", "hot", "0.125", Some(soon)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let expired = fx.store.expire_holds(&book()).await.expect("expire");
        if let Some(expiry) = expired.first() {
            assert_eq!(expiry.seq, SEQ_EXPIRED);
            break;
        }
        assert!(Instant::now() < deadline, "the hold never expired");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    hold(ledger, "k-h4", "alice", "hot", "0.1", None).await;
    let last = transfer("k-last", "hot", "alice", "3");
    assert_eq!(
        seq(ledger.post_transaction(BOOK, last).await.expect("post")),
        SEQ_LAST
    );
}

/// Writes the ledger, checks it audits clean, runs `tamper` and checks the
/// audit finds `kind` and names `first_bad_seq`.
async fn tamper_is_found(fx: Fixture, tamper: &str, kind: FindingKind, first_bad_seq: u64) {
    write_ledger(&fx).await;
    let clean = fx.audit().await;
    assert!(clean.is_clean(), "{clean:#?}");
    assert_eq!(
        (clean.events_checked, clean.last_seq, clean.first_bad_seq),
        (SEQ_LAST, SEQ_LAST, None)
    );
    let head = fx
        .store
        .events(&book(), SEQ_LAST - 1, 1)
        .await
        .expect("events");
    let stored = head
        .first()
        .and_then(|e| e.hash)
        .expect("last event chained");
    assert_eq!(clean.chain_head, hex::encode(stored));

    fx.execute(tamper).await;
    let report = fx.audit().await;
    assert!(!report.is_clean());
    assert!(
        report.findings.iter().any(|f| f.kind == kind),
        "{tamper}: no {kind:?} in {report:#?}"
    );
    assert_eq!(report.first_bad_seq, Some(first_bad_seq), "{report:#?}");
    // The report is what `talead audit` prints.
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(json["first_bad_seq"], first_bad_seq);
    fx.finish().await;
}

fn memo_changed() -> String {
    format!("UPDATE transactions SET memo = 'x' WHERE book = '{BOOK}' AND seq = {SEQ_DEPOSIT}")
}

fn posting_changed() -> String {
    // Leg 0 is `hot`'s debit of 2 BTC; it becomes 3.
    format!(
        "UPDATE postings SET amount = '300000000' \
         WHERE book = '{BOOK}' AND seq = {SEQ_TO_BOB} AND leg = 0"
    )
}

fn balance_changed() -> String {
    format!(
        "UPDATE balances SET balance = '-999', debits = '0', credits = '999' \
         WHERE book = '{BOOK}' AND account = 'bob'"
    )
}

fn event_deleted() -> String {
    format!("DELETE FROM events WHERE book = '{BOOK}' AND seq = {SEQ_TO_BOB}")
}

fn hold_status_changed() -> String {
    format!("UPDATE holds SET status = 'voided' WHERE book = '{BOOK}' AND seq = {SEQ_SETTLED_HOLD}")
}

#[tokio::test]
async fn pg_an_event_changed_breaks_the_chain_at_its_seq() {
    let fx = Fixture::postgres().await;
    tamper_is_found(fx, &memo_changed(), FindingKind::HashMismatch, SEQ_DEPOSIT).await;
}

#[tokio::test]
async fn sqlite_an_event_changed_breaks_the_chain_at_its_seq() {
    let fx = Fixture::sqlite().await;
    tamper_is_found(fx, &memo_changed(), FindingKind::HashMismatch, SEQ_DEPOSIT).await;
}

#[tokio::test]
async fn pg_a_posting_changed_is_found_at_its_seq() {
    let fx = Fixture::postgres().await;
    tamper_is_found(
        fx,
        &posting_changed(),
        FindingKind::HashMismatch,
        SEQ_TO_BOB,
    )
    .await;
}

#[tokio::test]
async fn sqlite_a_posting_changed_is_found_at_its_seq() {
    let fx = Fixture::sqlite().await;
    tamper_is_found(
        fx,
        &posting_changed(),
        FindingKind::HashMismatch,
        SEQ_TO_BOB,
    )
    .await;
}

#[tokio::test]
async fn pg_a_balance_row_changed_is_found_at_the_last_seq_touching_it() {
    let fx = Fixture::postgres().await;
    tamper_is_found(fx, &balance_changed(), FindingKind::Balance, SEQ_SETTLE).await;
}

#[tokio::test]
async fn sqlite_a_balance_row_changed_is_found_at_the_last_seq_touching_it() {
    let fx = Fixture::sqlite().await;
    tamper_is_found(fx, &balance_changed(), FindingKind::Balance, SEQ_SETTLE).await;
}

#[tokio::test]
async fn pg_a_deleted_event_is_a_gap_at_its_seq() {
    let fx = Fixture::postgres().await;
    tamper_is_found(fx, &event_deleted(), FindingKind::Gap, SEQ_TO_BOB).await;
}

#[tokio::test]
async fn sqlite_a_deleted_event_is_a_gap_at_its_seq() {
    let fx = Fixture::sqlite().await;
    tamper_is_found(fx, &event_deleted(), FindingKind::Gap, SEQ_TO_BOB).await;
}

#[tokio::test]
async fn pg_a_hold_status_changed_is_found_at_the_seq_that_ended_it() {
    let fx = Fixture::postgres().await;
    tamper_is_found(
        fx,
        &hold_status_changed(),
        FindingKind::HoldStatus,
        SEQ_SETTLE,
    )
    .await;
}

#[tokio::test]
async fn sqlite_a_hold_status_changed_is_found_at_the_seq_that_ended_it() {
    let fx = Fixture::sqlite().await;
    tamper_is_found(
        fx,
        &hold_status_changed(),
        FindingKind::HoldStatus,
        SEQ_SETTLE,
    )
    .await;
}

#[tokio::test]
async fn pg_a_missing_last_event_is_a_gap_at_its_seq() {
    let fx = Fixture::postgres().await;
    let deleted = format!("DELETE FROM events WHERE book = '{BOOK}' AND seq = {SEQ_LAST}");
    tamper_is_found(fx, &deleted, FindingKind::Gap, SEQ_LAST).await;
}

#[tokio::test]
async fn an_unknown_book_audits_clean_and_empty() {
    let fx = Fixture::sqlite().await;
    let report = fx.audit().await;
    assert!(report.is_clean(), "{report:#?}");
    assert_eq!((report.events_checked, report.last_seq), (0, 0));
    assert_eq!(report.chain_head, "0".repeat(64));
    assert_eq!(report.first_bad_seq, None);
    fx.finish().await;
}

/// The log store: a clean log audits clean; a transaction changed in the
/// file (its record's checksum fixed, as a forger would) is found at its
/// seq, by the chain.
#[tokio::test]
async fn log_a_record_changed_in_the_file_is_found_at_its_seq() {
    use talea_testkit::domain;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("log");
    let b = book();
    {
        let store = talea_store_log::LogStore::open(&path).expect("open");
        store.register_asset(&domain::asset()).await.expect("asset");
        for name in ["hot", "alice"] {
            let new = talea_core::NewAccount {
                name: domain::acct(name),
                kind: talea_core::AccountKind::Asset,
                min_balance: None,
                metadata: "{}".to_owned(),
            };
            store.open_account(&b, &new).await.expect("account");
        }
        let drafts = [
            domain::transfer("k-1", "hot", "alice", 100),
            domain::transfer("k-2", "alice", "hot", 40),
        ];
        store.commit_batch(&b, &drafts).await.expect("commit");
        let report = audit_book(&store, &b).await.expect("audit");
        assert!(report.is_clean(), "{report:#?}");
        assert_eq!(report.last_seq, 4);
    }
    assert!(
        talea_store_log::testing::set_memo(&path, &b, 3, "rewritten").expect("tamper"),
        "the transaction at seq 3 is in the file"
    );
    let store = talea_store_log::LogStore::open(&path).expect("reopen");
    let report = audit_book(&store, &b).await.expect("audit");
    assert_eq!(report.first_bad_seq, Some(3), "{report:#?}");
    assert_eq!(report.findings[0].kind, FindingKind::HashMismatch);
}
