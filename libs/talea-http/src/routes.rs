//! Route table and handlers: scope first, then the body, then the ledger.

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{MethodRouter, get, post};
use serde::Deserialize;
use talea_api::{
    ApiError, AssetRequest, BookList, HealthDto, LedgerApi, NamePage, OpenAccountRequest,
    PostTransactionRequest, SeqPage,
};
use talea_auth::{Books, Principal};

use crate::extract::{Auth, Body, Path, Query, parse_json};
use crate::hide::{Carrier, respond};
use crate::{AppState, HttpError, Role, json_response};

type Result<T = Response> = std::result::Result<T, HttpError>;

/// The `/v1` routes. A read instance registers only their GET handlers, so
/// axum's method routing answers a write with 405 and the route's `Allow`.
pub(crate) fn v1(role: Role) -> Router<AppState> {
    // Adds the write handler only where writes are served.
    let writes = |reads: MethodRouter<AppState>, write: MethodRouter<AppState>| {
        if role.serves_writes() {
            reads.merge(write)
        } else {
            reads
        }
    };
    Router::new()
        .route("/v1/assets", writes(get(list_assets), post(register_asset)))
        .route("/v1/books", get(list_books))
        .route(
            "/v1/books/{book}/accounts",
            writes(get(list_accounts), post(open_account)),
        )
        .route("/v1/books/{book}/accounts/{account}", get(get_account))
        .route(
            "/v1/books/{book}/accounts/{account}/balances",
            get(get_balances),
        )
        .route(
            "/v1/books/{book}/accounts/{account}/postings",
            get(list_postings),
        )
        .route(
            "/v1/books/{book}/transactions",
            writes(get(list_transactions), post(post_transaction)),
        )
        .route("/v1/books/{book}/trial-balance", get(trial_balance))
        .route("/v1/books/{book}/events", get(list_events))
        .route("/v1/transactions/{tx_id}", get(get_transaction))
}

fn ok<T: serde::Serialize>(body: &T) -> Result {
    Ok(json_response(StatusCode::OK, body))
}

/// 200 with `body` as principal `p` may see it (its hidden fields removed).
fn ok_for<T: serde::Serialize>(p: &Principal, carrier: Carrier, body: &T) -> Result {
    Ok(respond(StatusCode::OK, body, p.hide, carrier))
}

fn created_or_ok<T: serde::Serialize>(created: bool, body: &T) -> Result {
    Ok(json_response(created_status(created), body))
}

fn created_status(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    }
}

pub(crate) async fn livez() -> Response {
    json_response(StatusCode::OK, &serde_json::json!({"status": "alive"}))
}

pub(crate) async fn health(State(state): State<AppState>) -> Result {
    state.ledger.ping().await?;
    ok(&HealthDto {
        status: "ok".to_owned(),
        backend: state.ledger.backend().as_str().to_owned(),
    })
}

pub(crate) async fn not_found() -> HttpError {
    HttpError(ApiError::not_found("no such route"))
}

/// The 405 answer. `allow` stays empty: axum's method router then adds the
/// route's own `Allow` header (on a read instance, `GET,HEAD` for routes
/// that take writes elsewhere).
pub(crate) async fn method_not_allowed() -> HttpError {
    HttpError(ApiError::MethodNotAllowed {
        allow: String::new(),
    })
}

async fn register_asset(State(state): State<AppState>, Auth(p): Auth, body: Body) -> Result {
    p.check_global_write()?;
    let request: AssetRequest = parse_json(&body.0)?;
    let created = state.ledger.register_asset(request).await?;
    created_or_ok(created.created, &created.value)
}

async fn list_assets(State(state): State<AppState>, Auth(_): Auth) -> Result {
    ok(&state.ledger.assets().await?)
}

async fn list_books(State(state): State<AppState>, Auth(p): Auth) -> Result {
    let all = state.ledger.books().await?;
    ok(&BookList {
        books: all
            .books
            .into_iter()
            .filter(|b| p.covers(&b.book))
            .collect(),
    })
}

async fn open_account(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(book): Path<String>,
    body: Body,
) -> Result {
    p.check_write(&book)?;
    let request: OpenAccountRequest = parse_json(&body.0)?;
    let created = state.ledger.open_account(&book, request).await?;
    Ok(respond(
        created_status(created.created),
        &created.value,
        p.hide,
        Carrier::Resource,
    ))
}

#[derive(Debug, Deserialize)]
struct AccountsQuery {
    after: Option<String>,
    limit: Option<u32>,
}

async fn list_accounts(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(book): Path<String>,
    Query(q): Query<AccountsQuery>,
) -> Result {
    p.check_read(&book)?;
    let page = NamePage {
        after: q.after,
        limit: q.limit,
    };
    ok_for(
        &p,
        Carrier::List("accounts"),
        &state.ledger.accounts(&book, page).await?,
    )
}

async fn get_account(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((book, account)): Path<(String, String)>,
) -> Result {
    p.check_read(&book)?;
    ok_for(
        &p,
        Carrier::Resource,
        &state.ledger.account(&book, &account).await?,
    )
}

#[derive(Debug, Deserialize)]
struct AsOfQuery {
    as_of: Option<String>,
}

async fn get_balances(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((book, account)): Path<(String, String)>,
    Query(q): Query<AsOfQuery>,
) -> Result {
    p.check_read(&book)?;
    ok(&state
        .ledger
        .balances(&book, &account, q.as_of.as_deref())
        .await?)
}

#[derive(Debug, Deserialize)]
struct SeqQuery {
    after_seq: Option<u64>,
    limit: Option<u32>,
}

impl From<SeqQuery> for SeqPage {
    fn from(q: SeqQuery) -> Self {
        Self {
            after_seq: q.after_seq,
            limit: q.limit,
        }
    }
}

async fn list_postings(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((book, account)): Path<(String, String)>,
    Query(q): Query<SeqQuery>,
) -> Result {
    p.check_read(&book)?;
    ok(&state
        .ledger
        .account_postings(&book, &account, q.into())
        .await?)
}

async fn post_transaction(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(book): Path<String>,
    body: Body,
) -> Result {
    p.check_write(&book)?;
    let request: PostTransactionRequest = parse_json(&body.0)?;
    let tx = state.ledger.post_transaction(&book, request).await?;
    Ok(respond(
        created_status(tx.deduplicated != Some(true)),
        &tx,
        p.hide,
        Carrier::Resource,
    ))
}

async fn list_transactions(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(book): Path<String>,
    Query(q): Query<SeqQuery>,
) -> Result {
    p.check_read(&book)?;
    ok_for(
        &p,
        Carrier::List("transactions"),
        &state.ledger.transactions(&book, q.into()).await?,
    )
}

async fn get_transaction(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(tx_id): Path<String>,
) -> Result {
    // Out of scope looks exactly like unknown, body and time (the store's
    // one lookup filters by the token's books), so ids cannot be probed.
    let tx = match &p.books {
        Books::All => state.ledger.transaction(&tx_id).await?,
        Books::Only(names) => {
            state
                .ledger
                .transaction_in(&tx_id, names.iter().map(String::as_str))
                .await?
        }
    };
    if !p.covers(&tx.book) {
        return Err(ApiError::not_found("transaction not found").into());
    }
    ok_for(&p, Carrier::Resource, &tx)
}

async fn trial_balance(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(book): Path<String>,
    Query(q): Query<AsOfQuery>,
) -> Result {
    p.check_read(&book)?;
    ok(&state
        .ledger
        .trial_balance(&book, q.as_of.as_deref())
        .await?)
}

async fn list_events(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(book): Path<String>,
    Query(q): Query<SeqQuery>,
) -> Result {
    p.check_read(&book)?;
    ok_for(
        &p,
        Carrier::Events,
        &state.ledger.events(&book, q.into()).await?,
    )
}
