//! Log entries as the API serves them, built from domain values, and the
//! hash chain over them (`docs/proofs.md`).
//!
//! The chain binds each event's served JSON, so the stores hash events with
//! these same functions when they append them: what a client verifies is
//! exactly what the store chained.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};
use talea_core::{Account, AssetCode, Commit, Event, EventKind, Scale, Side};
use talea_verify::Hash;
use talea_verify::jcs::{JcsError, write_canonical, write_canonical_string};

use crate::{AccountDto, EventDto, PostingDto, TransactionDto, format_timestamp};

/// Reads stored metadata text back into an object (stored text is always an object).
pub fn metadata_value(text: &str) -> Map<String, Value> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => map,
        _ => {
            tracing::error!("stored metadata is not a JSON object");
            Map::new()
        }
    }
}

/// Where amounts find their asset's scale: the ledger's and the stores'
/// maps of registered assets.
pub trait AssetScales {
    /// The scale of `asset`, if it is registered.
    fn scale(&self, asset: &AssetCode) -> Option<Scale>;
}

impl AssetScales for BTreeMap<AssetCode, Scale> {
    fn scale(&self, asset: &AssetCode) -> Option<Scale> {
        self.get(asset).copied()
    }
}

impl<S: std::hash::BuildHasher> AssetScales for HashMap<AssetCode, Scale, S> {
    fn scale(&self, asset: &AssetCode) -> Option<Scale> {
        self.get(asset).copied()
    }
}

/// The scale of `asset` in `scales`.
pub fn scale_of(scales: &(impl AssetScales + ?Sized), asset: &AssetCode) -> Scale {
    // Every stored posting's asset was registered before it was accepted and
    // assets are never removed, so the lookup succeeds; scale 0 is a safe
    // fallback that still prints an exact integer of minor units.
    scales.scale(asset).unwrap_or(Scale::ZERO)
}

/// An account as the API serves it (without balances).
pub fn account_dto(account: &Account) -> AccountDto {
    AccountDto {
        book: account.book.to_string(),
        name: account.name.to_string(),
        kind: account.kind.as_str().to_owned(),
        min_balance: account.min_balance.map(|d| d.to_string()),
        metadata: metadata_value(&account.metadata),
        seq: account.seq,
        opened_at: format_timestamp(account.opened_at),
        balances: None,
    }
}

/// A transaction as the API serves it.
pub fn transaction_dto(commit: &Commit, scales: &(impl AssetScales + ?Sized)) -> TransactionDto {
    TransactionDto {
        tx_id: commit.tx_id.0.to_string(),
        book: commit.book.to_string(),
        seq: commit.seq,
        committed_at: format_timestamp(commit.committed_at),
        deduplicated: None,
        idempotency_key: commit.idempotency_key.to_string(),
        postings: commit
            .postings
            .iter()
            .map(|p| {
                let text = p.amount.format(scale_of(scales, &p.asset));
                let (debit, credit) = match p.side {
                    Side::Debit => (Some(text), None),
                    Side::Credit => (None, Some(text)),
                };
                PostingDto {
                    account: p.account.to_string(),
                    asset: p.asset.to_string(),
                    debit,
                    credit,
                }
            })
            .collect(),
        occurred_at: commit.occurred_at.map(format_timestamp),
        memo: commit.memo.clone(),
        metadata: commit.metadata.as_deref().map(metadata_value),
        status: commit.status.as_str().to_owned(),
        expires_at: commit.expires_at.map(format_timestamp),
        pending_tx_id: commit.pending_tx_id.map(|id| id.0.to_string()),
    }
}

/// The log entry as it appears on the wire, in the events page and the stream.
pub fn event_dto(event: &Event, scales: &(impl AssetScales + ?Sized)) -> EventDto {
    let (kind, data) = match &event.kind {
        EventKind::AccountOpened(a) => ("account_opened", serde_json::to_value(account_dto(a))),
        EventKind::Transaction(c) => (
            "transaction",
            serde_json::to_value(transaction_dto(c, scales)),
        ),
        EventKind::HoldExpired(c) => (
            "hold_expired",
            serde_json::to_value(transaction_dto(c, scales)),
        ),
    };
    EventDto {
        seq: event.seq,
        kind: kind.to_owned(),
        committed_at: format_timestamp(event.committed_at),
        // Serializing these plain structs cannot fail.
        data: data.unwrap_or(serde_json::Value::Null),
        hash: event.hash.as_ref().map(|h| talea_verify::hash::to_hex(h)),
    }
}

/// Why an event could not be chained: its JSON has no canonical form (a
/// number JSON cannot carry exactly; the ledger writes none).
#[derive(Debug, thiserror::Error)]
#[error("event {seq} of book {book} has no canonical form: {source}")]
pub struct ChainError {
    /// The book.
    pub book: String,
    /// The event's seq.
    pub seq: u64,
    /// What the canonical encoding refused.
    #[source]
    pub source: talea_verify::chain::EventError,
}

/// The chain hash of `event` of `book` after `prev` (the previous event's
/// hash, or [`talea_verify::chain::GENESIS`] before the first): SHA-256 of
/// `prev` and the canonical bytes of the event as [`event_dto`] serves it
/// ([`canonical_bytes`]).
pub fn event_hash(
    prev: &Hash,
    book: &str,
    event: &Event,
    scales: &(impl AssetScales + ?Sized),
) -> Result<Hash, ChainError> {
    let bytes = canonical_bytes(book, event, scales).map_err(|source| ChainError {
        book: book.to_owned(),
        seq: event.seq,
        source: talea_verify::chain::EventError::Canonical(source),
    })?;
    Ok(talea_verify::hash::sha256(&[prev, &bytes]))
}

/// The canonical bytes of `event` of `book` (`docs/proofs.md`): RFC 8785
/// JSON of `{book, committed_at, data, seq, type}` with `data` exactly as
/// [`event_dto`] serves it, written straight from the domain values (the
/// chain is computed under the book's lock, so it avoids building the
/// JSON tree first). `canonical_bytes_agree_with_the_served_json` checks it
/// against the JCS of the served event for every kind of event.
pub fn canonical_bytes(
    book: &str,
    event: &Event,
    scales: &(impl AssetScales + ?Sized),
) -> Result<Vec<u8>, JcsError> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"{\"book\":");
    write_canonical_string(book, &mut out);
    out.extend_from_slice(b",\"committed_at\":");
    write_canonical_string(&format_timestamp(event.committed_at), &mut out);
    out.extend_from_slice(b",\"data\":");
    let kind = match &event.kind {
        EventKind::AccountOpened(a) => {
            write_account(a, &mut out)?;
            "account_opened"
        }
        EventKind::Transaction(c) => {
            write_transaction(c, scales, &mut out)?;
            "transaction"
        }
        EventKind::HoldExpired(c) => {
            write_transaction(c, scales, &mut out)?;
            "hold_expired"
        }
    };
    out.extend_from_slice(b",\"seq\":");
    out.extend_from_slice(event.seq.to_string().as_bytes());
    out.extend_from_slice(b",\"type\":");
    write_canonical_string(kind, &mut out);
    out.push(b'}');
    Ok(out)
}

/// Appends `,"name":` (or `"name":` first) to `out`.
fn member(out: &mut Vec<u8>, first: bool, name: &str) {
    if !first {
        out.push(b',');
    }
    write_canonical_string(name, out);
    out.push(b':');
}

/// Appends a string member, or `null`.
fn text_or_null(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(text) => write_canonical_string(text, out),
        None => out.extend_from_slice(b"null"),
    }
}

/// Stored metadata text, canonical (as [`metadata_value`] serves it).
fn write_metadata(text: &str, out: &mut Vec<u8>) -> Result<(), JcsError> {
    write_canonical(&Value::Object(metadata_value(text)), out)
}

/// [`AccountDto`] of `account`, canonical: members in code-unit order.
fn write_account(account: &Account, out: &mut Vec<u8>) -> Result<(), JcsError> {
    out.push(b'{');
    member(out, true, "book");
    write_canonical_string(account.book.as_str(), out);
    member(out, false, "kind");
    write_canonical_string(account.kind.as_str(), out);
    member(out, false, "metadata");
    write_metadata(&account.metadata, out)?;
    member(out, false, "min_balance");
    text_or_null(out, account.min_balance.map(|d| d.to_string()).as_deref());
    member(out, false, "name");
    write_canonical_string(account.name.as_str(), out);
    member(out, false, "opened_at");
    write_canonical_string(&format_timestamp(account.opened_at), out);
    member(out, false, "seq");
    out.extend_from_slice(account.seq.to_string().as_bytes());
    out.push(b'}');
    Ok(())
}

/// [`TransactionDto`] of `commit` (no `deduplicated`), canonical.
fn write_transaction(
    commit: &Commit,
    scales: &(impl AssetScales + ?Sized),
    out: &mut Vec<u8>,
) -> Result<(), JcsError> {
    out.push(b'{');
    member(out, true, "book");
    write_canonical_string(commit.book.as_str(), out);
    member(out, false, "committed_at");
    write_canonical_string(&format_timestamp(commit.committed_at), out);
    member(out, false, "expires_at");
    text_or_null(out, commit.expires_at.map(format_timestamp).as_deref());
    member(out, false, "idempotency_key");
    write_canonical_string(commit.idempotency_key.as_str(), out);
    member(out, false, "memo");
    text_or_null(out, commit.memo.as_deref());
    member(out, false, "metadata");
    match &commit.metadata {
        Some(text) => write_metadata(text, out)?,
        None => out.extend_from_slice(b"null"),
    }
    member(out, false, "occurred_at");
    text_or_null(out, commit.occurred_at.map(format_timestamp).as_deref());
    if let Some(pending) = commit.pending_tx_id {
        member(out, false, "pending_tx_id");
        write_canonical_string(&pending.0.to_string(), out);
    }
    member(out, false, "postings");
    out.push(b'[');
    for (i, p) in commit.postings.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.push(b'{');
        member(out, true, "account");
        write_canonical_string(p.account.as_str(), out);
        member(out, false, "asset");
        write_canonical_string(p.asset.as_str(), out);
        let side = match p.side {
            Side::Debit => "debit",
            Side::Credit => "credit",
        };
        member(out, false, side);
        write_canonical_string(&p.amount.format(scale_of(scales, &p.asset)), out);
        out.push(b'}');
    }
    out.push(b']');
    member(out, false, "seq");
    out.extend_from_slice(commit.seq.to_string().as_bytes());
    member(out, false, "status");
    write_canonical_string(commit.status.as_str(), out);
    member(out, false, "tx_id");
    write_canonical_string(&commit.tx_id.0.to_string(), out);
    out.push(b'}');
    Ok(())
}
