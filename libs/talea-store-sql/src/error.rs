//! What a failure of the database means to the store, decided once for every SQL backend.

use talea_store::StoreError;

use crate::backend::SqlBackend;

/// What a failure means to the store, decided once so that every caller
/// reacts to the same error the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Class {
    /// The database is unreachable, busy, shutting down, overloaded or
    /// read-only: retrying later may work, and nothing is to be blamed on
    /// the data.
    Unavailable,
    /// The schema is missing or older than this binary.
    NotMigrated,
    /// A stored value could not be decoded, or the file is damaged.
    Corrupt,
    /// The database refused the data of this statement (bad bytes, a check,
    /// a size limit): isolating the offending draft may help.
    Refused,
    /// A seq or key was taken twice: a writer bypassed the book's lock. No
    /// draft is to blame, so the batch fails whole.
    Duplicate,
    /// Anything else: a bug or an unexpected condition.
    Other,
}

/// What a failure of backend `B` means to the store: a database error by
/// the backend's own codes, anything else alike for every driver.
pub fn classify<B: SqlBackend>(error: &sqlx::Error) -> Class {
    match error {
        sqlx::Error::Database(db) => B::classify_database(db.as_ref()),
        other => classify_driver(other),
    }
}

/// The class of a failure that is not the database's own error: the same
/// for every driver.
fn classify_driver(error: &sqlx::Error) -> Class {
    match error {
        sqlx::Error::Database(_) => Class::Other,
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
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

/// A short description of a failure of backend `B` for messages.
pub fn describe<B: SqlBackend>(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => B::describe_database(db.as_ref()),
        other => other.to_string(),
    }
}

/// The hint every "schema missing or behind" error carries.
pub const MIGRATE_HINT: &str =
    "run `talead init` (or `talead bootstrap`) against this database to apply the migrations";

/// Converts a sqlx error of backend `B` into the store's error.
pub fn store_error<B: SqlBackend>(error: sqlx::Error) -> StoreError {
    let text = describe::<B>(&error);
    match classify::<B>(&error) {
        Class::Unavailable => StoreError::Unavailable(text),
        Class::NotMigrated => StoreError::NotMigrated(format!("{text}; {MIGRATE_HINT}")),
        Class::Corrupt => StoreError::Corrupt(text),
        Class::Refused | Class::Duplicate | Class::Other => StoreError::Other(text),
    }
}

/// The store error for a write of `books` that cannot be blamed on one draft.
pub fn write_error<B: SqlBackend>(books: &str, error: sqlx::Error) -> StoreError {
    match classify::<B>(&error) {
        Class::Duplicate => StoreError::Other(format!(
            "book {books}: a seq or idempotency key was already taken ({}); \
             a writer bypassed the book's lock",
            describe::<B>(&error)
        )),
        _ => store_error::<B>(error),
    }
}

/// A decoding failure of a stored value.
pub fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

/// Converts a migration failure into the store's error.
pub fn migrate_error<B: SqlBackend>(error: sqlx::migrate::MigrateError) -> StoreError {
    use sqlx::migrate::MigrateError;
    match error {
        MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => store_error::<B>(e),
        MigrateError::VersionMissing(version) => StoreError::Other(format!(
            "the database was migrated by a newer talea (migration {version} is unknown \
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
        assert_eq!(
            classify_driver(&sqlx::Error::PoolTimedOut),
            Class::Unavailable
        );
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(classify_driver(&sqlx::Error::Io(io)), Class::Unavailable);
        assert_eq!(
            classify_driver(&sqlx::Error::ColumnNotFound("x".into())),
            Class::Corrupt
        );
        assert_eq!(classify_driver(&sqlx::Error::RowNotFound), Class::Other);
    }
}
