//! Schemas of the wire values that a `ToSchema` derive cannot infer from a
//! Rust type (string enums kept as `String` on the wire types, the event
//! payload held as a `Value`). Used through `#[schema(schema_with = …)]`.

use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Ref, Schema, Type};

fn string_enum(values: &[&str]) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .enum_values(Some(values.iter().copied()))
        .into()
}

/// An account's kind: its normal side is debit for `asset` and `expense`.
pub(crate) fn account_kind() -> RefOr<Schema> {
    string_enum(&["asset", "expense", "liability", "equity", "revenue"])
}

/// What an event records.
pub(crate) fn event_type() -> RefOr<Schema> {
    string_enum(&["account_opened", "transaction", "hold_expired"])
}

/// A transaction's status.
pub(crate) fn tx_status() -> RefOr<Schema> {
    string_enum(&["posted", "pending", "voided", "expired"])
}

/// The storage backend serving the request.
pub(crate) fn backend() -> RefOr<Schema> {
    string_enum(&["postgres", "sqlite", "log"])
}

/// An event's `data`: the account (for `account_opened`) or the
/// transaction (for `transaction`; the hold, for `hold_expired`).
pub(crate) fn event_data() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(Ref::from_schema_name("AccountDto"))
        .item(Ref::from_schema_name("TransactionDto"))
        .into()
}
