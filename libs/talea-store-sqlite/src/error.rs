//! Maps sqlx and SQLite failures onto `StoreError`, by SQLite's extended result code.
//!
//! SQLite's result codes play the part of Postgres's SQLSTATEs. It names a
//! CHECK constraint only inside its message and never names a PRIMARY KEY or
//! UNIQUE constraint, so violations are told apart by their extended code
//! (check, not null, primary key, unique), never by parsing the message; the
//! message, which carries the CHECK constraint's name, is only shown.

use sqlx::error::DatabaseError;
use talea_store::StoreError;

/// What a failure means to the store, decided once here so that every caller
/// reacts to the same error the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// The file is locked by another process beyond the busy timeout, the
    /// disk is full or failing, or the file cannot be opened: retrying later
    /// may work, and nothing is to be blamed on the data.
    Unavailable,
    /// A stored value could not be decoded, or the file is damaged.
    Corrupt,
    /// The database refused the data of this statement (a CHECK or NOT NULL
    /// constraint, a size limit): isolating the offending draft may help.
    Refused,
    /// A PRIMARY KEY or UNIQUE violation. The write protocol makes these
    /// impossible (every seq and key is decided under the write lock), so one
    /// means the lock was bypassed: no draft is to blame.
    Duplicate,
    /// Anything else: a bug or an unexpected condition.
    Other,
}

// Result codes (https://www.sqlite.org/rescode.html). The primary code is
// the low byte of the extended one.
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
const SQLITE_CONSTRAINT_PRIMARYKEY: i64 = 1555;
const SQLITE_CONSTRAINT_UNIQUE: i64 = 2067;

/// The extended result code of a database error, if it reports one.
fn extended_code(db: &dyn DatabaseError) -> Option<i64> {
    db.code()?.parse().ok()
}

/// Classifies a database error by its result code.
fn classify_database(db: &dyn DatabaseError) -> Class {
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

/// Classifies any sqlx error.
pub(crate) fn classify(error: &sqlx::Error) -> Class {
    match error {
        sqlx::Error::Database(db) => classify_database(db.as_ref()),
        sqlx::Error::Io(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::BeginFailed => Class::Unavailable,
        sqlx::Error::Decode(_)
        | sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => Class::Corrupt,
        _ => Class::Other,
    }
}

/// A short description of an error for messages: SQLite's message (which
/// names a failed CHECK constraint) and its extended result code.
pub(crate) fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            format!("{} (SQLite result code {code})", db.message())
        }
        other => other.to_string(),
    }
}

/// Converts a sqlx error into the store's error.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    let text = describe(&error);
    match classify(&error) {
        Class::Unavailable => StoreError::Unavailable(text),
        Class::Corrupt => StoreError::Corrupt(text),
        Class::Refused | Class::Duplicate | Class::Other => StoreError::Other(text),
    }
}

/// A decoding failure of a stored value.
pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// Converts a migration failure into the store's error.
pub(crate) fn migrate_error(error: sqlx::migrate::MigrateError) -> StoreError {
    use sqlx::migrate::MigrateError;
    match error {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => store_error(e),
        MigrateError::VersionMissing(version) => StoreError::Other(format!(
            "the database file was migrated by a newer talea (migration {version} is unknown \
             to this binary); run a talea at least as new as the one that wrote it"
        )),
        other => StoreError::Other(format!("migration failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_unavailable() {
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), Class::Unavailable);
        assert_eq!(
            classify(&sqlx::Error::ColumnNotFound("x".into())),
            Class::Corrupt
        );
        assert_eq!(classify(&sqlx::Error::RowNotFound), Class::Other);
    }
}
