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
/// A bulk post's items: 1 to 1,000 JSON values, each read on its own as a
/// `PostTransactionRequest` (a bad one fails alone, in its result), so the
/// envelope does not constrain them.
pub(crate) fn batch_items() -> RefOr<Schema> {
    utoipa::openapi::schema::ArrayBuilder::new()
        .items(RefOr::T(Schema::Object(
            ObjectBuilder::new()
                .schema_type(utoipa::openapi::schema::SchemaType::AnyValue)
                .build(),
        )))
        .min_items(Some(1))
        .max_items(Some(1000))
        .description(Some(
            "Each item the body of a single post (PostTransactionRequest); a bad one fails alone.",
        ))
        .into()
}

pub(crate) fn event_data() -> RefOr<Schema> {
    OneOfBuilder::new()
        .item(Ref::from_schema_name("AccountDto"))
        .item(Ref::from_schema_name("TransactionDto"))
        .into()
}
