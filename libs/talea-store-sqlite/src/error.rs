//! What a SQLite failure means to the store: extended result codes.

use sqlx::error::DatabaseError;
use talea_store::StoreError;
use talea_store_sql::Class;

use crate::SqliteStore;

/// SQLite's primary result codes (the low byte of an extended code) that
/// matter here; see <https://sqlite.org/rescode.html>.
const SQLITE_BUSY: i64 = 5;
const SQLITE_LOCKED: i64 = 6;
const SQLITE_NOMEM: i64 = 7;
const SQLITE_READONLY: i64 = 8;
const SQLITE_IOERR: i64 = 10;
const SQLITE_CORRUPT: i64 = 11;
const SQLITE_FULL: i64 = 13;
const SQLITE_CANTOPEN: i64 = 14;
const SQLITE_PROTOCOL: i64 = 15;
const SQLITE_TOOBIG: i64 = 18;
const SQLITE_CONSTRAINT: i64 = 19;
const SQLITE_MISMATCH: i64 = 20;
const SQLITE_RANGE: i64 = 25;
const SQLITE_NOTADB: i64 = 26;
/// A primary key or unique constraint: under the write lock this only
/// happens if a seq or key was taken twice, which means the lock was
/// bypassed: no draft is to blame.
const SQLITE_CONSTRAINT_PRIMARYKEY: i64 = 1555;
const SQLITE_CONSTRAINT_UNIQUE: i64 = 2067;

/// The extended result code of a database error (sqlx reports it as text).
fn extended_code(db: &dyn DatabaseError) -> Option<i64> {
    db.code()?.parse().ok()
}

/// Classifies a database error by its extended result code.
pub(crate) fn by_result_code(db: &dyn DatabaseError) -> Class {
    let Some(code) = extended_code(db) else {
        return Class::Other;
    };
    match code {
        SQLITE_CONSTRAINT_PRIMARYKEY | SQLITE_CONSTRAINT_UNIQUE => Class::Duplicate,
        _ => match code & 0xff {
            SQLITE_BUSY | SQLITE_LOCKED | SQLITE_NOMEM | SQLITE_READONLY | SQLITE_IOERR
            | SQLITE_FULL | SQLITE_CANTOPEN | SQLITE_PROTOCOL => Class::Unavailable,
            SQLITE_CORRUPT | SQLITE_NOTADB => Class::Corrupt,
            SQLITE_CONSTRAINT | SQLITE_TOOBIG | SQLITE_MISMATCH | SQLITE_RANGE => Class::Refused,
            _ => Class::Other,
        },
    }
}

/// A database error's text with its result code.
pub(crate) fn with_result_code(db: &dyn DatabaseError) -> String {
    let code = db.code().unwrap_or_default();
    format!("{} (SQLite result code {code})", db.message())
}

/// Converts a sqlx error into the store's error.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    talea_store_sql::error::store_error::<SqliteStore>(error)
}
