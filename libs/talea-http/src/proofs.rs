//! The verifiable log's routes (`docs/proofs.md`): the public keys, a
//! book's latest signed checkpoint, and inclusion and consistency proofs.
//! Each book route has the scope of the book's reads.

use axum::extract::State;
use serde::Deserialize;
use talea_api::{Checkpoint, ConsistencyProof, InclusionProof, KeyList, LedgerApi};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::extract::{Auth, Path, Query};
use crate::openapi::{ReadErrors, V1Errors};
use crate::routes::{BookParam, Result, Seq, ok};

/// The routes, all reads.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(get_keys))
        .routes(routes!(get_checkpoint))
        .routes(routes!(inclusion_proof))
        .routes(routes!(consistency_proof))
}

#[utoipa::path(get, path = "/v1/keys", tag = "proofs", operation_id = "listKeys",
    summary = "The Ed25519 public keys that sign checkpoints: the current one first, then retired ones.",
    responses((status = 200, description = "OK.", body = KeyList), V1Errors))]
async fn get_keys(State(state): State<AppState>, Auth(_): Auth) -> Result {
    ok(&state.ledger.keys().await?)
}

#[utoipa::path(get, path = "/v1/books/{book}/checkpoint", tag = "proofs", operation_id = "getCheckpoint",
    summary = "The book's latest signed checkpoint: its Merkle tree's size and root, signed.",
    params(BookParam),
    responses((status = 200, description = "OK.", body = Checkpoint), ReadErrors))]
async fn get_checkpoint(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(book): Path<String>,
) -> Result {
    p.check_read(&book)?;
    ok(&state.ledger.checkpoint(&book).await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct InclusionQuery {
    /// The event's seq, 1..=tree_size.
    #[param(value_type = Seq, inline)]
    seq: u64,
    /// The tree's size, 1..=the book's last seq; default: the latest
    /// checkpoint's.
    #[param(value_type = Option<Seq>, inline)]
    tree_size: Option<u64>,
}

#[utoipa::path(get, path = "/v1/books/{book}/proofs/inclusion", tag = "proofs", operation_id = "getInclusionProof",
    summary = "The audit path of one event in the book's tree of `tree_size` events (RFC 9162 §2.1.3).",
    params(BookParam, InclusionQuery),
    responses((status = 200, description = "OK.", body = InclusionProof), ReadErrors))]
async fn inclusion_proof(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(book): Path<String>,
    Query(q): Query<InclusionQuery>,
) -> Result {
    p.check_read(&book)?;
    ok(&state
        .ledger
        .inclusion_proof(&book, q.seq, q.tree_size)
        .await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ConsistencyQuery {
    /// The older tree's size, 1..=to.
    #[param(value_type = Seq, inline)]
    from: u64,
    /// The newer tree's size, up to the book's last seq.
    #[param(value_type = Seq, inline)]
    to: u64,
}

#[utoipa::path(get, path = "/v1/books/{book}/proofs/consistency", tag = "proofs", operation_id = "getConsistencyProof",
    summary = "The proof that the book's tree of `from` events is a prefix of its tree of `to` (RFC 9162 §2.1.4), with both roots.",
    params(BookParam, ConsistencyQuery),
    responses((status = 200, description = "OK.", body = ConsistencyProof), ReadErrors))]
async fn consistency_proof(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(book): Path<String>,
    Query(q): Query<ConsistencyQuery>,
) -> Result {
    p.check_read(&book)?;
    ok(&state.ledger.consistency_proof(&book, q.from, q.to).await?)
}
