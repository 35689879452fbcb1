//! What a Postgres failure means to the store: SQLSTATEs and constraint names.

use sqlx::error::DatabaseError;
use talea_store::StoreError;
use talea_store_sql::Class;

use crate::PgStore;

pub(crate) use talea_store_sql::error::MIGRATE_HINT;

/// Constraints whose violation means a seq was taken twice: some writer
/// bypassed the counter lock. No draft is to blame, so the batch fails whole.
const SEQ_CONSTRAINTS: &[&str] = &[
    "events_pkey",
    "transactions_pkey",
    "postings_pkey",
    "accounts_seq_key",
];

/// Classifies a database error by its SQLSTATE and constraint name (never
/// by its message).
pub(crate) fn by_sqlstate(db: &dyn DatabaseError) -> Class {
    if db
        .constraint()
        .is_some_and(|c| SEQ_CONSTRAINTS.contains(&c))
    {
        return Class::Duplicate;
    }
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

/// What any sqlx error means to this store.
pub(crate) fn classify(error: &sqlx::Error) -> Class {
    talea_store_sql::error::classify::<PgStore>(error)
}

/// A short description of an error for messages.
pub(crate) fn describe(error: &sqlx::Error) -> String {
    talea_store_sql::error::describe::<PgStore>(error)
}

/// A database error's text with its SQLSTATE and constraint (when there is one).
pub(crate) fn with_sqlstate(db: &dyn DatabaseError) -> String {
    let code = db.code().unwrap_or_default();
    match db.constraint() {
        Some(name) => format!("{} (SQLSTATE {code}, constraint {name})", db.message()),
        None => format!("{} (SQLSTATE {code})", db.message()),
    }
}

/// Converts a sqlx error into the store's error.
pub(crate) fn store_error(error: sqlx::Error) -> StoreError {
    talea_store_sql::error::store_error::<PgStore>(error)
}
