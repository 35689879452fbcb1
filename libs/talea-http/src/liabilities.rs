//! Proof of liabilities routes (`docs/proofs.md`, "Proof of liabilities"):
//! take a signed snapshot (a write of the book), read it, and serve one
//! account's proof with the scope of the account's reads.

use axum::extract::State;
use axum::http::StatusCode;
use talea_api::{LedgerApi, LiabilityProof, LiabilityRequest, LiabilitySnapshot};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Auth, Body, Path, parse_json};
use crate::openapi::{LiabilityErrors, ReadErrors};
use crate::routes::{BookParam, Result, ok, refused_on_reads};
use crate::{AppState, json_response};

/// The routes. The POST is refused on a read instance by the handler
/// (`refused_on_reads`), as settle and void are: the path has a GET beside
/// it only for the snapshot's own path.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::default()
        .routes(routes!(create_snapshot))
        .routes(routes!(get_snapshot))
        .routes(routes!(get_proof))
}

/// The book and a snapshot's id, in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Documentation only: handlers take the segments as `Path<String>`.
struct SnapshotParam {
    /// The book.
    #[param(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$", example = "exchange")]
    book: String,
    /// The snapshot's id (a UUID).
    #[param(example = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")]
    snapshot: String,
}

/// The book, a snapshot's id and an account, in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Documentation only: handlers take the segments as `Path<String>`.
struct SnapshotAccountParam {
    /// The book.
    #[param(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$", example = "exchange")]
    book: String,
    /// The snapshot's id (a UUID).
    #[param(example = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b")]
    snapshot: String,
    /// The account.
    #[param(
        pattern = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$",
        example = "customers:alice"
    )]
    account: String,
}

#[utoipa::path(post, path = "/v1/books/{book}/liabilities", tag = "proofs", operation_id = "createLiabilitySnapshot",
    summary = "Takes a signed liability snapshot: a Merkle-sum tree over the normal-side balances in `asset` of the accounts whose names start with `prefix`, at the book's last seq; negative balances are refused and listed. Needs a read-write token of the book.",
    params(BookParam),
    request_body(content = LiabilityRequest, example = json!({"asset": "BTC", "prefix": "customers:"})),
    responses(
        (status = 201, description = "The signed snapshot, kept.", body = LiabilitySnapshot),
        LiabilityErrors))]
async fn create_snapshot(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(book): Path<String>,
    body: Body,
) -> Result {
    if let Some(refused) = refused_on_reads(state.role) {
        return Ok(refused);
    }
    p.check_write(&book)?;
    let request: LiabilityRequest = parse_json(&body.0)?;
    let snapshot = state
        .ledger
        .create_liability_snapshot(&book, request)
        .await?;
    Ok(json_response(StatusCode::CREATED, &snapshot))
}

#[utoipa::path(get, path = "/v1/books/{book}/liabilities/{snapshot}", tag = "proofs", operation_id = "getLiabilitySnapshot",
    summary = "A kept liability snapshot: root, total, refused accounts, signature.",
    params(SnapshotParam),
    responses((status = 200, description = "OK.", body = LiabilitySnapshot), ReadErrors))]
async fn get_snapshot(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((book, snapshot)): Path<(String, String)>,
) -> Result {
    p.check_read(&book)?;
    ok(&state.ledger.liability_snapshot(&book, &snapshot).await?)
}

#[utoipa::path(get, path = "/v1/books/{book}/liabilities/{snapshot}/accounts/{account}", tag = "proofs", operation_id = "getLiabilityProof",
    summary = "One account's proof in a liability snapshot, for `talea verify liability`; 404 for an account not in it (the message says when it was refused for a negative balance).",
    params(SnapshotAccountParam),
    responses((status = 200, description = "OK.", body = LiabilityProof), ReadErrors))]
async fn get_proof(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((book, snapshot, account)): Path<(String, String, String)>,
) -> Result {
    // The scope of the account's own reads (`GET …/accounts/{account}`).
    p.check_read(&book)?;
    ok(&state
        .ledger
        .liability_proof(&book, &snapshot, &account)
        .await?)
}
