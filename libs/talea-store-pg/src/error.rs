//! Maps sqlx and Postgres failures onto `StoreError`, by SQLSTATE and constraint name.

use sqlx::error::DatabaseError;
use talea_store::StoreError;

/// What a failure means to the store, decided once here so that every caller
/// reacts to the same error the same way.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// The database is unreachable, shutting down, overloaded or read-only:
    /// retrying later may work, and nothing is to be blamed on the data.
    Unavailable,
    /// The schema is missing or older than this binary.
    NotMigrated,
    /// A stored value could not be decoded.
    Corrupt,
    /// The database refused the data of this statement (bad bytes, a
    /// constraint, a size limit): isolating the offending draft may help.
    Refused,
    /// Anything else: a bug or an unexpected condition.
    Other,
}

/// The name of the constraint a database error reports, if any.
pub(crate) fn constraint(error: &sqlx::Error) -> Option<&str> {
    match error {
        sqlx::Error::Database(db) => db.constraint(),
        _ => None,
    }
}

/// Classifies a database error by its SQLSTATE (never by its message).
fn classify_database(db: &dyn DatabaseError) -> Class {
    let Some(code) = db.code() else {
        return Class::Other;
    };
    match code.as_ref() {
        // undefined_table, invalid_schema_name: the schema is not there.
        "42P01" | "3F000" => Class::NotMigrated,
        // read_only_sql_transaction: we reached a standby (e.g. mid-failover).
        // lock_not_available: a lock timeout, transient by definition.
        // invalid_catalog_name: the database itself does not exist (yet).
        "25006" | "55P03" | "3D000" => Class::Unavailable,
        code => match code.get(..2) {
            // connection_exception, invalid_authorization_specification,
            // transaction_rollback (serialization, deadlock),
            // insufficient_resources, operator_intervention (shutdown,
            // statement timeout, cancel), system_error.
            Some("08" | "28" | "40" | "53" | "57" | "58") => Class::Unavailable,
            // data_exception (e.g. a NUL byte in text), integrity_constraint_violation,
            // program_limit_exceeded: the data of this statement was refused.
            Some("22" | "23" | "54") => Class::Refused,
            _ => Class::Other,
        },
    }
}

/// Classifies any sqlx error.
pub(crate) fn classify(error: &sqlx::Error) -> Class {
    match error {
        sqlx::Error::Database(db) => classify_database(db.as_ref()),
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

/// A short description of a database error for messages: its SQLSTATE,
/// constraint (when there is one) and text.
pub(crate) fn describe(error: &sqlx::Error) -> String {
    match error {
        sqlx::Error::Database(db) => {
            let code = db.code().unwrap_or_default();
            match db.constraint() {
                Some(name) => format!("{} (SQLSTATE {code}, constraint {name})", db.message()),
                None => format!("{} (SQLSTATE {code})", db.message()),
            }
        }
        other => other.to_string(),
    }
}

/// The hint every "schema missing or behind" error carries.
pub(crate) const MIGRATE_HINT: &str =
    "run `talead init` (or `talead bootstrap`) against this database to apply the migrations";

/// Converts a sqlx error into the store's error.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    let text = describe(&error);
    match classify(&error) {
        Class::Unavailable => StoreError::Unavailable(text),
        Class::NotMigrated => StoreError::NotMigrated(format!("{text}; {MIGRATE_HINT}")),
        Class::Corrupt => StoreError::Corrupt(text),
        Class::Refused | Class::Other => StoreError::Other(text),
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
        other => StoreError::Other(format!("migration failed: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transport_failures_are_unavailable() {
        assert_eq!(classify(&sqlx::Error::PoolTimedOut), Class::Unavailable);
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert_eq!(classify(&sqlx::Error::Io(io)), Class::Unavailable);
        assert_eq!(
            classify(&sqlx::Error::ColumnNotFound("x".into())),
            Class::Corrupt
        );
        assert_eq!(classify(&sqlx::Error::RowNotFound), Class::Other);
    }
}
