//! Route table and handlers: scope first, then the body, then the ledger.
//!
//! Each handler carries its OpenAPI operation (`#[utoipa::path]`) and is
//! registered with `OpenApiRouter::routes(routes!(...))`, so the route list
//! below is also the document's list of paths (see `crate::openapi`).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::{Deserialize, Serialize};
use talea_api::{
    AccountDto, AccountList, ApiError, AssetDto, AssetList, AssetRequest, BalanceHistoryDto,
    BalanceHistoryQuery, BalancesDto, BatchItemResult, BatchRequest, BatchResponse,
    BookBalancesDto, BookBalancesQuery, BookList, EventList, HealthDto, HoldList, LedgerApi,
    NamePage, OpenAccountRequest, PostTransactionRequest, PostingList, SeqPage, SettleRequest,
    TransactionDto, TransactionList, TransactionSearch, TrialBalanceDto, VoidRequest,
};
use talea_auth::{Books, Principal};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::extract::{Auth, Body, Path, Query, parse_json};
use crate::hide::{Carrier, respond};
use crate::openapi::{
    AssetReadErrors, HealthErrors, HoldErrors, PostErrors, ReadErrors, TxErrors, V1Errors,
    WriteErrors,
};
use crate::{AppState, HttpError, Role, json_response};

/// The book, in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Documentation only: handlers take the segments as `Path<String>`.
pub(crate) struct BookParam {
    /// The book.
    #[param(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$", example = "payments")]
    book: String,
}

/// The book and account, in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Documentation only: handlers take the segments as `Path<String>`.
struct AccountParam {
    /// The book.
    #[param(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$", example = "payments")]
    book: String,
    /// The account.
    #[param(
        pattern = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$",
        example = "customers:alice"
    )]
    account: String,
}

/// The book and a hold's transaction id, in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Documentation only: handlers take the segments as `Path<String>`.
struct HoldParam {
    /// The book.
    #[param(pattern = r"^[a-z0-9][a-z0-9_-]{0,63}$", example = "payments")]
    book: String,
    /// The hold's transaction id (a UUID; anything else is not found).
    tx_id: String,
}

/// The transaction id, in the path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)] // Documentation only: handlers take the segments as `Path<String>`.
struct TxParam {
    /// The transaction id (a UUID; anything else is not found).
    tx_id: String,
}

/// A seq parameter: 0..=u64::MAX, with no `format` (`int64` is signed).
pub(crate) struct Seq;

impl utoipa::PartialSchema for Seq {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::Schema> {
        let max = utoipa::Number::UInt(u64::MAX as usize);
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::Type::Integer)
            .minimum(Some(0))
            .maximum(Some(max))
            .into()
    }
}

impl utoipa::ToSchema for Seq {}

/// The `/v1` routes. A read instance registers only their GET handlers, so
/// axum's method routing answers a write with 405 and the route's `Allow`;
/// the writes are documented all the same (the document is the same for
/// every role).
pub(crate) fn v1(role: Role) -> OpenApiRouter<AppState> {
    let reads = OpenApiRouter::default()
        .routes(routes!(list_assets))
        .routes(routes!(list_books))
        .routes(routes!(list_accounts))
        .routes(routes!(get_account))
        .routes(routes!(get_balances))
        .routes(routes!(book_balances))
        .routes(routes!(balance_history))
        .routes(routes!(list_postings))
        .routes(routes!(list_transactions))
        .routes(routes!(pending_holds))
        .routes(routes!(trial_balance))
        .routes(routes!(list_events))
        .routes(routes!(get_transaction))
        .merge(crate::proofs::routes())
        .merge(crate::liabilities::routes());
    // Settle and void have no GET beside them for axum to answer 405 with:
    // every role routes them, and a read instance refuses them itself
    // (`refused_on_reads`).
    let reads = reads
        .routes(routes!(settle_hold))
        .routes(routes!(void_hold));
    // Bulk posts have a body limit of their own (`BATCH_BODY_BYTES_MAX`):
    // the innermost limit wins over the router's 1 MiB.
    let batch = OpenApiRouter::default().routes(routes!(post_batch)).layer(
        axum::extract::DefaultBodyLimit::max(talea_core::limits::BATCH_BODY_BYTES_MAX),
    );
    let writes = OpenApiRouter::default()
        .routes(routes!(register_asset))
        .routes(routes!(open_account))
        .routes(routes!(post_transaction))
        .merge(batch);
    if role.serves_writes() {
        reads.merge(writes)
    } else {
        let mut reads = reads;
        reads.get_openapi_mut().merge(writes.into_openapi());
        reads
    }
}

pub(crate) type Result<T = Response> = std::result::Result<T, HttpError>;

pub(crate) fn ok<T: serde::Serialize>(body: &T) -> Result {
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

// The body of `/livez` (no doc comment: it would become the schema's
// description).
#[derive(Serialize, ToSchema)]
struct Alive {
    #[schema(inline)]
    status: AliveStatus,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
enum AliveStatus {
    Alive,
}

#[utoipa::path(get, path = "/livez", tag = "operations", operation_id = "livez", security(()),
    summary = "Liveness: 200 while the process runs (outside the in-flight limit).",
    responses((status = 200, description = "Alive.", body = inline(Alive))))]
pub(crate) async fn livez() -> Response {
    json_response(
        StatusCode::OK,
        &Alive {
            status: AliveStatus::Alive,
        },
    )
}

#[utoipa::path(get, path = "/health", tag = "operations", operation_id = "health", security(()),
    summary = "Readiness: the store answers (inside the in-flight limit).",
    responses((status = 200, description = "OK.", body = HealthDto), HealthErrors))]
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

#[utoipa::path(post, path = "/v1/assets", tag = "assets", operation_id = "registerAsset",
    summary = "Registers an asset (needs `rw` on `*`); scale never changes.",
    request_body(content = AssetRequest, example = json!({"code": "BTC", "scale": 8, "name": "Bitcoin"})),
    responses(
        (status = 201, description = "The asset: created.", body = AssetDto),
        (status = 200, description = "The asset: the identical request was applied before; the original.", body = AssetDto),
        WriteErrors))]
async fn register_asset(State(state): State<AppState>, Auth(p): Auth, body: Body) -> Result {
    p.check_global_write()?;
    let request: AssetRequest = parse_json(&body.0)?;
    let created = state.ledger.register_asset(request).await?;
    created_or_ok(created.created, &created.value)
}

#[utoipa::path(get, path = "/v1/assets", tag = "assets", operation_id = "listAssets",
    summary = "Every registered asset, by code.",
    responses((status = 200, description = "OK.", body = AssetList), V1Errors))]
async fn list_assets(State(state): State<AppState>, Auth(_): Auth) -> Result {
    ok(&state.ledger.assets().await?)
}

#[utoipa::path(get, path = "/v1/books", tag = "books", operation_id = "listBooks",
    summary = "Books in the token's scope with at least one event.",
    responses((status = 200, description = "OK.", body = BookList), V1Errors))]
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

#[utoipa::path(post, path = "/v1/books/{book}/accounts", tag = "accounts", operation_id = "openAccount",
    summary = "Opens an account (an `account_opened` event; the book comes into being with its first).",
    params(BookParam),
    request_body(content = OpenAccountRequest, example = json!({
        "name": "customers:alice", "kind": "liability", "min_balance": "0", "metadata": {}
    })),
    responses(
        (status = 201, description = "The account: created.", body = AccountDto),
        (status = 200, description = "The account: the identical request was applied before; the original.", body = AccountDto),
        WriteErrors))]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AccountsQuery {
    /// Accounts strictly after this name (the previous page's `next`).
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$")]
    after: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/books/{book}/accounts", tag = "accounts", operation_id = "listAccounts",
    summary = "A page of the book's accounts, by name.",
    params(BookParam, AccountsQuery),
    responses((status = 200, description = "OK.", body = AccountList), ReadErrors))]
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

#[utoipa::path(get, path = "/v1/books/{book}/accounts/{account}", tag = "accounts", operation_id = "getAccount",
    summary = "One account with its current normal-side `balances`.",
    params(AccountParam),
    responses((status = 200, description = "OK.", body = AccountDto), ReadErrors))]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct AsOfQuery {
    /// Commit-time instant (RFC 3339, inclusive); absent or in the future means now.
    #[param(format = DateTime)]
    as_of: Option<String>,
}

#[utoipa::path(get, path = "/v1/books/{book}/accounts/{account}/balances", tag = "accounts", operation_id = "getBalances",
    summary = "An account's normal-side balances, now or as of a commit time.",
    params(AccountParam, AsOfQuery),
    responses((status = 200, description = "OK.", body = BalancesDto), ReadErrors))]
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

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct BookBalancesParams {
    /// Only accounts whose name starts with it (bytewise); empty or absent: every account.
    #[param(pattern = r"^([A-Za-z0-9][A-Za-z0-9:._-]{0,127})?$")]
    prefix: Option<String>,
    /// Only this registered asset's balances and totals (422 `unknown_asset` if it is not registered).
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
    asset: Option<String>,
    /// Accounts strictly after this name (the previous page's `next`).
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$")]
    after: Option<String>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/books/{book}/balances", tag = "accounts", operation_id = "listBookBalances",
    summary = "Balances of the accounts under a name prefix: the count and per-asset totals over all of them, and a page of rows by name.",
    params(BookParam, BookBalancesParams),
    responses((status = 200, description = "OK.", body = BookBalancesDto), AssetReadErrors))]
async fn book_balances(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(book): Path<String>,
    Query(q): Query<BookBalancesParams>,
) -> Result {
    p.check_read(&book)?;
    let query = BookBalancesQuery {
        prefix: q.prefix,
        asset: q.asset,
        after: q.after,
        limit: q.limit,
    };
    ok(&state.ledger.book_balances(&book, query).await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryParams {
    /// The registered asset (required; 422 `unknown_asset` if it is not registered).
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")]
    asset: Option<String>,
    /// RFC 3339: changes committed at or after it.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339: changes committed before it (with `points`, default now).
    #[param(format = DateTime)]
    to: Option<String>,
    /// Changes strictly after this seq (the previous page's `next_after_seq`).
    after_seq: Option<u64>,
    /// Page size of the changes.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<u32>,
    /// Downsample into this many equal time buckets instead of listing changes.
    #[param(minimum = 1, maximum = 1000)]
    points: Option<u32>,
}

#[utoipa::path(get, path = "/v1/books/{book}/accounts/{account}/balances/history", tag = "accounts", operation_id = "getBalanceHistory",
    summary = "An account's posted balance in one asset over a time range: every change (paged) or downsampled into equal buckets.",
    params(AccountParam, HistoryParams),
    responses((status = 200, description = "OK.", body = BalanceHistoryDto), AssetReadErrors))]
async fn balance_history(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((book, account)): Path<(String, String)>,
    Query(q): Query<HistoryParams>,
) -> Result {
    p.check_read(&book)?;
    let query = BalanceHistoryQuery {
        asset: q.asset,
        from: q.from,
        to: q.to,
        after_seq: q.after_seq,
        limit: q.limit,
        points: q.points,
    };
    ok(&state.ledger.balance_history(&book, &account, query).await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SeqQuery {
    /// Entries strictly after this seq (the previous page's `next_after_seq`); default 0.
    #[param(value_type = Option<Seq>, inline)]
    after_seq: Option<u64>,
    /// Page size.
    #[param(minimum = 1, maximum = 1000, default = 100)]
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

#[utoipa::path(get, path = "/v1/books/{book}/accounts/{account}/postings", tag = "accounts", operation_id = "listAccountPostings",
    summary = "A page of an account's postings with running balances, in seq order (never splitting a transaction).",
    params(AccountParam, SeqQuery),
    responses((status = 200, description = "OK.", body = PostingList), ReadErrors))]
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

#[utoipa::path(post, path = "/v1/books/{book}/transactions", tag = "transactions", operation_id = "postTransaction",
    summary = "Posts a balanced transaction; a replay of the same key and body answers 200 with the original and `deduplicated: true`.",
    params(BookParam),
    request_body(content = PostTransactionRequest, example = json!({
        "idempotency_key": "withdrawal-7f3a",
        "postings": [
            {"account": "customers:alice", "asset": "BTC", "debit": "0.015"},
            {"account": "hot-wallet", "asset": "BTC", "credit": "0.015"}
        ],
        "occurred_at": "2026-11-22T09:59:58Z",
        "memo": "withdrawal",
        "metadata": {"chain_tx": "ab12"}
    })),
    responses(
        (status = 201, description = "The commit: created.", body = TransactionDto),
        (status = 200, description = "The commit: the identical request was applied before; the original.", body = TransactionDto),
        PostErrors))]
async fn post_transaction(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(book): Path<String>,
    body: Body,
) -> Result {
    p.check_write(&book)?;
    let request: PostTransactionRequest = parse_json(&body.0)?;
    commit_answer(&p, &state.ledger.post_transaction(&book, request).await?)
}

#[utoipa::path(post, path = "/v1/books/{book}/transactions/batch", tag = "transactions", operation_id = "postTransactions",
    summary = "Posts 1 to 1,000 transactions at once, each answered as its own post would be, in order.",
    description = "Each item is exactly the body of `POST /v1/books/{book}/transactions` and is read on its own: \
        a bad item fails alone (its result carries the single route's error). The items that pass enter the \
        book's committer as one unit: one storage transaction wherever it fits, seqs in item order. Auth, scope, \
        admission, the body limit of this route (16 MiB), JSON syntax and the envelope's shape fail the whole request.",
    params(BookParam),
    request_body(content = BatchRequest),
    responses(
        (status = 200, description = "One result per item: `status` 201 (committed), 200 (deduplicated) or the error's, `body` the transaction or the error.", body = BatchResponse),
        PostErrors))]
async fn post_batch(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(book): Path<String>,
    body: Body,
) -> Result {
    p.check_write(&book)?;
    let request: BatchRequest = parse_json(&body.0)?;
    let count = request.transactions.len();
    talea_api::check_batch_len(count)?;
    // The book is the whole request's (the ledger checks it again).
    talea_core::BookName::parse(&book)
        .map_err(|e| ApiError::invalid("book", format!("book name {e}")))?;
    // Each item as the single route reads its body.
    let parsed: Vec<std::result::Result<PostTransactionRequest, ApiError>> = request
        .transactions
        .iter()
        .map(|item| {
            serde_json::to_vec(item)
                .map_err(|_| ApiError::Internal)
                .and_then(|bytes| parse_json(&bytes))
        })
        .collect();
    let (valid, refused) = talea_api::split_batch(parsed);
    let mut answers = match valid.is_empty() {
        true => Vec::new(),
        false => state.ledger.post_many(&book, valid).await?,
    }
    .into_iter();
    let mut results = Vec::with_capacity(count);
    for refusal in refused {
        let answer = match refusal {
            Some(e) => Err(e),
            None => answers.next().unwrap_or(Err(ApiError::Internal)),
        };
        results.push(match answer {
            Ok(tx) => {
                let status = created_status(tx.deduplicated != Some(true)).as_u16();
                let mut value = serde_json::to_value(&tx).map_err(|_| ApiError::Internal)?;
                Carrier::Resource.strip(p.hide, &mut value);
                BatchItemResult {
                    status,
                    body: value,
                }
            }
            Err(e) => BatchItemResult {
                status: e.status(),
                body: serde_json::to_value(e.to_body()).map_err(|_| ApiError::Internal)?,
            },
        });
    }
    ok(&BatchResponse { results })
}

/// A commit's answer: 201 when new, 200 for a replay (`deduplicated`),
/// with the fields `p` may see.
fn commit_answer(p: &Principal, tx: &TransactionDto) -> Result {
    Ok(respond(
        created_status(tx.deduplicated != Some(true)),
        tx,
        p.hide,
        Carrier::Resource,
    ))
}

/// A write route on a read instance: 405 with an empty `Allow` (no method
/// of the path is served here), as axum answers the other write routes.
pub(crate) fn refused_on_reads(role: Role) -> Option<Response> {
    if role.serves_writes() {
        return None;
    }
    let mut response =
        axum::response::IntoResponse::into_response(HttpError(ApiError::MethodNotAllowed {
            allow: String::new(),
        }));
    response.headers_mut().insert(
        axum::http::header::ALLOW,
        axum::http::HeaderValue::from_static(""),
    );
    Some(response)
}

#[utoipa::path(post, path = "/v1/books/{book}/transactions/{tx_id}/post", tag = "transactions", operation_id = "settleHold",
    summary = "Settles a hold: posts all of it, or the `postings` given (each at most what it holds there, balanced per asset) and releases the rest; a new transaction with `pending_tx_id`.",
    params(HoldParam),
    request_body(content = SettleRequest, example = json!({"idempotency_key": "withdrawal-7f3a-confirmed"})),
    responses(
        (status = 201, description = "The settle: created.", body = TransactionDto),
        (status = 200, description = "The settle: the identical request was applied before; the original.", body = TransactionDto),
        HoldErrors))]
async fn settle_hold(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((book, tx_id)): Path<(String, String)>,
    body: Body,
) -> Result {
    if let Some(refused) = refused_on_reads(state.role) {
        return Ok(refused);
    }
    p.check_write(&book)?;
    let request: SettleRequest = parse_json(&body.0)?;
    commit_answer(&p, &state.ledger.settle(&book, &tx_id, request).await?)
}

#[utoipa::path(post, path = "/v1/books/{book}/transactions/{tx_id}/void", tag = "transactions", operation_id = "voidHold",
    summary = "Voids a hold: releases it, posting nothing; a new transaction with status `voided` and `pending_tx_id`.",
    params(HoldParam),
    request_body(content = VoidRequest, example = json!({"idempotency_key": "withdrawal-7f3a-failed"})),
    responses(
        (status = 201, description = "The void: created.", body = TransactionDto),
        (status = 200, description = "The void: the identical request was applied before; the original.", body = TransactionDto),
        HoldErrors))]
async fn void_hold(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path((book, tx_id)): Path<(String, String)>,
    body: Body,
) -> Result {
    if let Some(refused) = refused_on_reads(state.role) {
        return Ok(refused);
    }
    p.check_write(&book)?;
    let request: VoidRequest = parse_json(&body.0)?;
    commit_answer(&p, &state.ledger.void(&book, &tx_id, request).await?)
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct SearchParams {
    /// Only transactions with a leg (posted or held) on this account (404 if it does not exist).
    #[param(pattern = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$")]
    account: Option<String>,
    /// RFC 3339: only transactions committed at or after it.
    #[param(format = DateTime)]
    from: Option<String>,
    /// RFC 3339: only transactions committed before it.
    #[param(format = DateTime)]
    to: Option<String>,
    /// Only transactions whose status (as a read of them reports it now) is this one.
    #[param(pattern = "^(posted|pending|voided|expired)$")]
    status: Option<String>,
}

/// The prefix of a metadata filter's query parameter (`metadata.<key>=<value>`).
const METADATA_PARAM: &str = "metadata.";

#[utoipa::path(get, path = "/v1/books/{book}/transactions", tag = "transactions", operation_id = "listTransactions",
    summary = "A page of the book's transactions in seq order.",
    description = "With any of `account`, `from`, `to`, `status` or one `metadata.<key>=<value>` \
(exact match on a top-level metadata key: a string equal to the value, or an integer or boolean \
whose JSON text equals it; key at most 128 bytes, value at most 256), only the transactions that \
pass every filter. A search examines at most 10,000 candidates per request: `next_after_seq` is \
then set even when the page holds fewer than `limit` (even none); continue from it.",
    params(BookParam, SeqQuery, SearchParams),
    responses((status = 200, description = "OK.", body = TransactionList), ReadErrors))]
async fn list_transactions(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(book): Path<String>,
    Query(q): Query<SeqQuery>,
    Query(search): Query<SearchParams>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result {
    p.check_read(&book)?;
    let query = TransactionSearch {
        account: search.account,
        from: search.from,
        to: search.to,
        status: search.status,
        metadata: pairs
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix(METADATA_PARAM).map(|k| (k.to_owned(), v)))
            .collect(),
        after_seq: q.after_seq,
        limit: q.limit,
    };
    ok_for(
        &p,
        Carrier::List("transactions"),
        &state.ledger.search_transactions(&book, query).await?,
    )
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct HoldsQuery {
    /// How many holds.
    #[param(minimum = 1, maximum = 1000, default = 100)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/books/{book}/holds", tag = "transactions", operation_id = "listPendingHolds",
    summary = "The book's pending holds, soonest expires_at first, those without an expiry last (by seq).",
    params(BookParam, HoldsQuery),
    responses((status = 200, description = "OK.", body = HoldList), ReadErrors))]
async fn pending_holds(
    State(state): State<AppState>,
    Auth(p): Auth,
    Path(book): Path<String>,
    Query(q): Query<HoldsQuery>,
) -> Result {
    p.check_read(&book)?;
    ok_for(
        &p,
        Carrier::List("holds"),
        &state.ledger.pending_holds(&book, q.limit).await?,
    )
}

#[utoipa::path(get, path = "/v1/transactions/{tx_id}", tag = "transactions", operation_id = "getTransaction",
    summary = "One transaction by id (out of scope answers exactly as unknown).",
    params(TxParam),
    responses((status = 200, description = "OK.", body = TransactionDto), TxErrors))]
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

#[utoipa::path(get, path = "/v1/books/{book}/trial-balance", tag = "books", operation_id = "getTrialBalance",
    summary = "Totals per account and asset, now or as of a commit time.",
    params(BookParam, AsOfQuery),
    responses((status = 200, description = "OK.", body = TrialBalanceDto), ReadErrors))]
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

#[utoipa::path(get, path = "/v1/books/{book}/events", tag = "books", operation_id = "listEvents",
    summary = "A page of the book's event log (dense seqs from 1).",
    params(BookParam, SeqQuery),
    responses((status = 200, description = "OK.", body = EventList), ReadErrors))]
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
