//! The OpenAPI 3.1 document of the HTTP API: served at `GET /v1/openapi.json`
//! and checked in as `docs/openapi.json` (a test fails when they differ).
//!
//! Body schemas are derived from the talea-api wire types (`ToSchema`, behind
//! talea-api's `openapi` feature), so a changed DTO changes the document.
//! Routes, parameters and responses are assembled here, next to the router
//! they describe: every status a route can answer, and the headers every
//! response carries. Regenerate the checked-in copy with
//! `TALEA_UPDATE_OPENAPI=1 cargo test -p talea-http --lib openapi`.

use std::sync::OnceLock;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use talea_api::{
    AccountDto, AccountList, AccountPostingDto, AssetDto, AssetList, AssetRequest, BalancesDto,
    BookDto, BookList, CATALOGUE, EventDto, EventList, HealthDto, OpenAccountRequest,
    PostTransactionRequest, PostingDto, PostingList, StreamTicketDto, StreamTicketRequest,
    TotalsDto, TransactionDto, TransactionList, TrialBalanceDto, TrialRowDto,
};
use utoipa::OpenApi;

/// The wire types whose schemas the document carries.
#[derive(OpenApi)]
#[openapi(components(schemas(
    AssetRequest,
    AssetDto,
    AssetList,
    OpenAccountRequest,
    AccountDto,
    AccountList,
    PostingDto,
    PostTransactionRequest,
    TransactionDto,
    TransactionList,
    BalancesDto,
    AccountPostingDto,
    PostingList,
    TrialRowDto,
    TotalsDto,
    TrialBalanceDto,
    EventDto,
    EventList,
    BookDto,
    BookList,
    HealthDto,
    StreamTicketRequest,
    StreamTicketDto,
)))]
struct WireTypes;

/// The error responses (`components/responses`): status, name and
/// description; the codes each carries come from the catalogue.
const ERRORS: &[(u16, &str, &str)] = &[
    (
        400,
        "BadRequest",
        "A malformed body, path or query parameter (`field` names it), or an amount that does not fit 128 bits of minor units.",
    ),
    (401, "Unauthorized", "No bearer token, or an unknown one."),
    (
        403,
        "Forbidden",
        "The token does not cover the book (`book`; `*` for the asset registry) or is read-only.",
    ),
    (
        404,
        "NotFound",
        "Unknown book, account or transaction (a transaction outside the token's scope answers the same).",
    ),
    (
        405,
        "MethodNotAllowed",
        "The route exists but not for this method (a read instance answers the POST routes 405, with `Allow`).",
    ),
    (
        408,
        "Timeout",
        "The request outlived `TALEA_REQUEST_TIMEOUT_MS`; a post may have committed: retry with the same idempotency key.",
    ),
    (
        409,
        "Conflict",
        "Another definition under the same name, or an idempotency key used for another request (`tx_id` of the original).",
    ),
    (413, "PayloadTooLarge", "The body is over 1 MiB."),
    (
        422,
        "Unprocessable",
        "The transaction is well formed but cannot be applied.",
    ),
    (
        429,
        "TooManyRequests",
        "The book's write queue is full (`overloaded`), or the token's rate limit or stream cap is spent (`rate_limited`); retry after `Retry-After`.",
    ),
    (
        500,
        "Internal",
        "A bug or corrupt data; the body carries no internals.",
    ),
    (
        503,
        "Unavailable",
        "The in-flight (or stream) limit is reached (`overloaded`), or storage or the token-scope service cannot be reached (`unavailable`); retry after `Retry-After`.",
    ),
];

/// The catalogue's codes answered with `status`, in catalogue order.
fn codes_of(status: u16) -> Vec<&'static str> {
    CATALOGUE
        .iter()
        .filter(|i| i.statuses.contains(&status))
        .map(|i| i.code)
        .collect()
}

/// Statuses every authenticated `/v1` route may answer, whatever it does:
/// authentication, deadline, rate limit, admission, bugs.
const V1_COMMON: &[u16] = &[401, 408, 429, 500, 503];

/// Path and query parameters (`components/parameters`).
fn parameters() -> Value {
    let book = r"^[a-z0-9][a-z0-9_-]{0,63}$";
    let account = r"^[A-Za-z0-9][A-Za-z0-9:._-]{0,127}$";
    json!({
        "book": {
            "name": "book", "in": "path", "required": true,
            "description": "The book.",
            "schema": {"type": "string", "pattern": book},
            "example": "payments",
        },
        "account": {
            "name": "account", "in": "path", "required": true,
            "description": "The account.",
            "schema": {"type": "string", "pattern": account},
            "example": "customers:alice",
        },
        "tx_id": {
            "name": "tx_id", "in": "path", "required": true,
            "description": "The transaction id (a UUID; anything else is not found).",
            "schema": {"type": "string"},
        },
        "after": {
            "name": "after", "in": "query", "required": false,
            "description": "Accounts strictly after this name (the previous page's `next`).",
            "schema": {"type": "string", "pattern": account},
        },
        "after_seq": {
            "name": "after_seq", "in": "query", "required": false,
            "description": "Entries strictly after this seq (the previous page's `next_after_seq`); default 0.",
            "schema": {"type": "integer", "minimum": 0, "maximum": u64::MAX},
        },
        "limit": {
            "name": "limit", "in": "query", "required": false,
            "description": "Page size.",
            "schema": {"type": "integer", "format": "int32", "minimum": 1, "maximum": 1000, "default": 100},
        },
        "as_of": {
            "name": "as_of", "in": "query", "required": false,
            "description": "Commit-time instant (RFC 3339, inclusive); absent or in the future means now.",
            "schema": {"type": "string", "format": "date-time"},
        },
    })
}

fn param(name: &str) -> Value {
    json!({"$ref": format!("#/components/parameters/{name}")})
}

/// The headers of every response.
fn common_headers() -> Map<String, Value> {
    let mut h = Map::new();
    h.insert(
        "X-Request-Id".to_owned(),
        json!({"$ref": "#/components/headers/X-Request-Id"}),
    );
    h.insert(
        "X-Talea-Backend".to_owned(),
        json!({"$ref": "#/components/headers/X-Talea-Backend"}),
    );
    h
}

/// A successful JSON response of `schema`.
fn json_ok(description: &str, schema: Value) -> Value {
    json!({
        "description": description,
        "headers": common_headers(),
        "content": {"application/json": {"schema": schema}},
    })
}

fn schema(name: &str) -> Value {
    json!({"$ref": format!("#/components/schemas/{name}")})
}

/// An operation: its documented successes, then the error responses of `errors`.
struct Op<'a> {
    id: &'a str,
    tag: &'a str,
    summary: &'a str,
    params: &'a [&'a str],
    body: Option<(&'a str, Value)>,
    ok: Vec<(u16, Value)>,
    errors: &'a [u16],
    public: bool,
}

impl Op<'_> {
    fn build(self) -> Value {
        let mut responses = Map::new();
        let mut statuses: Vec<(u16, Value)> = self.ok;
        for status in self.errors {
            if let Some((_, name, _)) = ERRORS.iter().find(|e| e.0 == *status) {
                statuses.push((
                    *status,
                    json!({"$ref": format!("#/components/responses/{name}")}),
                ));
            }
        }
        statuses.sort_by_key(|s| s.0);
        statuses.dedup_by_key(|s| s.0);
        for (status, response) in statuses {
            responses.insert(status.to_string(), response);
        }
        let mut op = Map::new();
        op.insert("operationId".to_owned(), json!(self.id));
        op.insert("tags".to_owned(), json!([self.tag]));
        op.insert("summary".to_owned(), json!(self.summary));
        if self.public {
            op.insert("security".to_owned(), json!([]));
        }
        if !self.params.is_empty() {
            op.insert(
                "parameters".to_owned(),
                Value::Array(self.params.iter().map(|p| param(p)).collect()),
            );
        }
        if let Some((name, example)) = self.body {
            op.insert(
                "requestBody".to_owned(),
                json!({
                    "required": true,
                    "content": {"application/json": {
                        "schema": schema(name),
                        "example": example,
                    }},
                }),
            );
        }
        op.insert("responses".to_owned(), Value::Object(responses));
        Value::Object(op)
    }
}

/// Statuses of a route: `extra` beside those every `/v1` route may answer.
fn v1(extra: &[u16]) -> Vec<u16> {
    let mut all: Vec<u16> = V1_COMMON.iter().chain(extra).copied().collect();
    all.sort_unstable();
    all.dedup();
    all
}

fn paths() -> Value {
    let read = v1(&[400, 403, 404]);
    let write = v1(&[400, 403, 409, 413]);
    let post_tx = v1(&[400, 403, 409, 413, 422]);
    let asset_example = json!({"code": "BTC", "scale": 8, "name": "Bitcoin"});
    let account_example = json!({
        "name": "customers:alice", "kind": "liability", "min_balance": "0", "metadata": {}
    });
    let tx_example = json!({
        "idempotency_key": "withdrawal-7f3a",
        "postings": [
            {"account": "customers:alice", "asset": "BTC", "debit": "0.015"},
            {"account": "hot-wallet", "asset": "BTC", "credit": "0.015"}
        ],
        "occurred_at": "2026-11-22T09:59:58Z",
        "memo": "withdrawal",
        "metadata": {"chain_tx": "ab12"}
    });
    let created = |what: &str, name: &str| {
        vec![
            (201, json_ok(&format!("{what}: created."), schema(name))),
            (
                200,
                json_ok(
                    &format!("{what}: the identical request was applied before; the original."),
                    schema(name),
                ),
            ),
        ]
    };
    let ok = |name: &str| vec![(200, json_ok("OK.", schema(name)))];
    let stream_ok = json!({
        "description": "The book's events as Server-Sent Events: `id:` the seq, `event:` `transaction` or `account_opened`, `data:` the resource JSON; `: keepalive` comments; it ends with `event: error` (`slow_consumer`, `forbidden`, `unavailable`) or `event: shutdown`.",
        "headers": common_headers(),
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    });
    json!({
        "/health": {"get": Op {
            id: "health", tag: "operations",
            summary: "Readiness: the store answers (inside the in-flight limit).",
            params: &[], body: None, ok: ok("HealthDto"), errors: &[408, 500, 503], public: true,
        }.build()},
        "/livez": {"get": Op {
            id: "livez", tag: "operations",
            summary: "Liveness: 200 while the process runs (outside the in-flight limit).",
            params: &[], body: None,
            ok: vec![(200, json_ok("Alive.", json!({
                "type": "object",
                "required": ["status"],
                "properties": {"status": {"type": "string", "enum": ["alive"]}},
            })))],
            errors: &[], public: true,
        }.build()},
        "/v1/openapi.json": {"get": Op {
            id: "openapi", tag: "operations",
            summary: "This document (public: no token, no rate limit).",
            params: &[], body: None,
            ok: vec![(200, json_ok("The OpenAPI 3.1 document.", json!({"type": "object"})))],
            errors: &[408, 503], public: true,
        }.build()},
        "/v1/assets": {
            "get": Op {
                id: "listAssets", tag: "assets", summary: "Every registered asset, by code.",
                params: &[], body: None, ok: ok("AssetList"), errors: &v1(&[]), public: false,
            }.build(),
            "post": Op {
                id: "registerAsset", tag: "assets",
                summary: "Registers an asset (needs `rw` on `*`); scale never changes.",
                params: &[], body: Some(("AssetRequest", asset_example)),
                ok: created("The asset", "AssetDto"), errors: &write, public: false,
            }.build(),
        },
        "/v1/books": {"get": Op {
            id: "listBooks", tag: "books",
            summary: "Books in the token's scope with at least one event.",
            params: &[], body: None, ok: ok("BookList"), errors: &v1(&[]), public: false,
        }.build()},
        "/v1/books/{book}/accounts": {
            "get": Op {
                id: "listAccounts", tag: "accounts", summary: "A page of the book's accounts, by name.",
                params: &["book", "after", "limit"], body: None, ok: ok("AccountList"),
                errors: &read, public: false,
            }.build(),
            "post": Op {
                id: "openAccount", tag: "accounts",
                summary: "Opens an account (an `account_opened` event; the book comes into being with its first).",
                params: &["book"], body: Some(("OpenAccountRequest", account_example)),
                ok: created("The account", "AccountDto"), errors: &write, public: false,
            }.build(),
        },
        "/v1/books/{book}/accounts/{account}": {"get": Op {
            id: "getAccount", tag: "accounts",
            summary: "One account with its current normal-side `balances`.",
            params: &["book", "account"], body: None, ok: ok("AccountDto"), errors: &read, public: false,
        }.build()},
        "/v1/books/{book}/accounts/{account}/balances": {"get": Op {
            id: "getBalances", tag: "accounts",
            summary: "An account's normal-side balances, now or as of a commit time.",
            params: &["book", "account", "as_of"], body: None, ok: ok("BalancesDto"),
            errors: &read, public: false,
        }.build()},
        "/v1/books/{book}/accounts/{account}/postings": {"get": Op {
            id: "listAccountPostings", tag: "accounts",
            summary: "A page of an account's postings with running balances, in seq order (never splitting a transaction).",
            params: &["book", "account", "after_seq", "limit"], body: None, ok: ok("PostingList"),
            errors: &read, public: false,
        }.build()},
        "/v1/books/{book}/transactions": {
            "get": Op {
                id: "listTransactions", tag: "transactions",
                summary: "A page of the book's transactions in seq order.",
                params: &["book", "after_seq", "limit"], body: None, ok: ok("TransactionList"),
                errors: &read, public: false,
            }.build(),
            "post": Op {
                id: "postTransaction", tag: "transactions",
                summary: "Posts a balanced transaction; a replay of the same key and body answers 200 with the original and `deduplicated: true`.",
                params: &["book"], body: Some(("PostTransactionRequest", tx_example)),
                ok: created("The commit", "TransactionDto"), errors: &post_tx, public: false,
            }.build(),
        },
        "/v1/books/{book}/trial-balance": {"get": Op {
            id: "getTrialBalance", tag: "books",
            summary: "Totals per account and asset, now or as of a commit time.",
            params: &["book", "as_of"], body: None, ok: ok("TrialBalanceDto"), errors: &read, public: false,
        }.build()},
        "/v1/books/{book}/events": {"get": Op {
            id: "listEvents", tag: "books", summary: "A page of the book's event log (dense seqs from 1).",
            params: &["book", "after_seq", "limit"], body: None, ok: ok("EventList"),
            errors: &read, public: false,
        }.build()},
        "/v1/books/{book}/stream": {"get": stream_operation(stream_ok)},
        "/v1/stream-tickets": {"post": Op {
            id: "issueStreamTicket", tag: "streams",
            summary: "A short-lived ticket for one book's stream (`?ticket=` stands in for the bearer token, for EventSource); served by every role.",
            params: &[], body: Some(("StreamTicketRequest", json!({"book": "payments"}))),
            ok: ok("StreamTicketDto"), errors: &v1(&[400, 403, 404, 413]), public: false,
        }.build()},
        "/v1/transactions/{tx_id}": {"get": Op {
            id: "getTransaction", tag: "transactions",
            summary: "One transaction by id (out of scope answers exactly as unknown).",
            params: &["tx_id"], body: None, ok: ok("TransactionDto"),
            errors: &v1(&[400, 404]), public: false,
        }.build()},
    })
}

/// The stream route sits outside admission, the deadline and the rate limit,
/// and takes its own parameters.
fn stream_operation(ok: Value) -> Value {
    let mut op = Op {
        id: "streamBook",
        tag: "streams",
        summary: "The book's events live (Server-Sent Events), resumable by seq.",
        params: &["book"],
        body: None,
        ok: vec![(200, ok)],
        // 429: the token has `TALEA_SSE_MAX_PER_TOKEN` streams open.
        errors: &[400, 401, 403, 404, 429, 500, 503],
        public: false,
    }
    .build();
    // A ticket stands in for the bearer token on this route only.
    if let Some(map) = op.as_object_mut() {
        map.insert(
            "security".to_owned(),
            json!([{"bearer": []}, {"ticket": []}]),
        );
    }
    if let Some(params) = op.get_mut("parameters").and_then(Value::as_array_mut) {
        params.push(json!({
            "name": "after_seq", "in": "query", "required": false,
            "description": "Resume after this seq: every event above it from the log, then live (wins over `Last-Event-ID`). Absent: live from now.",
            "schema": {"type": "integer", "minimum": 0, "maximum": u64::MAX},
        }));
        params.push(json!({
            "name": "accounts", "in": "query", "required": false,
            "description": "Comma-separated account names (at most 100): only events touching them.",
            "schema": {"type": "string"},
        }));
        params.push(json!({
            "name": "snapshot", "in": "query", "required": false,
            "description": "`balances`: first an `event: snapshot` with `id: N` and the (filtered) accounts' balances as of seq N, then every event from N+1.",
            "schema": {"type": "string", "enum": ["balances"]},
        }));
        params.push(json!({
            "name": "Last-Event-ID", "in": "header", "required": false,
            "description": "Resume after this seq (what a browser's EventSource sends on reconnect).",
            "schema": {"type": "integer", "minimum": 0, "maximum": u64::MAX},
        }));
    }
    op
}

/// `components`: the wire types' schemas, the error body, parameters,
/// headers, error responses and the bearer scheme.
fn components() -> Value {
    let mut schemas = match WireTypes::openapi().components {
        Some(c) => serde_json::to_value(c.schemas).unwrap_or(Value::Null),
        None => Value::Null,
    };
    if let Some(map) = schemas.as_object_mut() {
        map.insert("Error".to_owned(), error_schema());
    }
    let mut responses = Map::new();
    for (status, name, description) in ERRORS {
        let mut headers = common_headers();
        if matches!(status, 429 | 503) {
            headers.insert(
                "Retry-After".to_owned(),
                json!({"$ref": "#/components/headers/Retry-After"}),
            );
        }
        responses.insert(
            (*name).to_owned(),
            json!({
                "description": description,
                "headers": headers,
                "content": {"application/json": {"schema": {
                    "allOf": [
                        schema("Error"),
                        {"properties": {"error": {"enum": codes_of(*status)}}},
                    ],
                }}},
            }),
        );
    }
    json!({
        "schemas": schemas,
        "parameters": parameters(),
        "headers": {
            "X-Request-Id": {
                "description": "The request's id: echoed from the request, else a new UUID.",
                "required": true,
                "schema": {"type": "string"},
            },
            "X-Talea-Backend": {
                "description": "The store serving the request.",
                "required": true,
                "schema": {"type": "string", "enum": ["postgres", "sqlite", "log"]},
            },
            "Retry-After": {
                "description": "Seconds to wait before sending the same request again.",
                "required": true,
                "schema": {"type": "integer", "minimum": 1},
            },
        },
        "responses": responses,
        "securitySchemes": {
            "bearer": {
                "type": "http",
                "scheme": "bearer",
                "description": "`TALEA_API_TOKEN` or a token of the tokens file.",
            },
            "ticket": {
                "type": "apiKey",
                "in": "query",
                "name": "ticket",
                "description": "A stream ticket (`POST /v1/stream-tickets`), on the stream route only.",
            },
        },
    })
}

/// Every error body: a stable `error` code, a human `message`, and the
/// code's details.
fn error_schema() -> Value {
    let text = json!({"type": "string"});
    json!({
        "type": "object",
        "description": "An error. `error` is API (never renamed or reused); `message` is not.",
        "required": ["error", "message"],
        "properties": {
            "error": {"type": "string", "enum": CATALOGUE.iter().map(|i| i.code).collect::<Vec<_>>()},
            "message": text,
            "field": {"type": "string", "description": "JSON pointer into the body, or the parameter's name (`invalid_request`, `amount_out_of_range`)."},
            "book": {"type": "string", "description": "The book refused (`forbidden`; `*` for the asset registry)."},
            "tx_id": {"type": "string", "description": "The original transaction (`idempotency_key_reused`)."},
            "imbalances": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "description": "Debits minus credits per asset (`unbalanced`).",
            },
            "account": text,
            "asset": text,
            "balance": {"type": "string", "description": "Normal-side balance before the transaction (`insufficient_balance`)."},
            "min_balance": text,
        },
    })
}

/// The whole document.
pub fn document() -> Value {
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "talea",
            "description": "A double-entry ledger. The contract in prose: docs/api.md. A read instance (`--role read`) answers the POST routes 405.",
            "version": env!("CARGO_PKG_VERSION"),
            "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
        },
        "security": [{"bearer": []}],
        "tags": [
            {"name": "assets", "description": "The global asset registry."},
            {"name": "accounts", "description": "Accounts, balances and postings of a book."},
            {"name": "transactions", "description": "Posting and reading transactions."},
            {"name": "books", "description": "Books, their logs and trial balances."},
            {"name": "streams", "description": "Live events (Server-Sent Events)."},
            {"name": "operations", "description": "Health, liveness and this document."},
        ],
        "paths": paths(),
        "components": components(),
    })
}

/// The document as served and checked in: pretty JSON, a trailing newline.
pub fn document_json() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// `GET /v1/openapi.json`: public, outside authentication and rate limits.
pub(crate) async fn serve() -> Response {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    let body = DOCUMENT.get_or_init(document_json).clone();
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn checked_in_path() -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/openapi.json")
    }

    /// Fails when `docs/openapi.json` is not what the code generates;
    /// `TALEA_UPDATE_OPENAPI=1` rewrites it instead.
    #[test]
    fn checked_in_document_is_current() {
        let generated = document_json();
        let path = checked_in_path();
        if std::env::var_os("TALEA_UPDATE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).expect("write docs/openapi.json");
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "docs/openapi.json differs from the generated document: regenerate it with \
             `TALEA_UPDATE_OPENAPI=1 cargo test -p talea-http --lib openapi`"
        );
    }

    /// Every code of the catalogue, at each of its statuses, has an error
    /// response listing it, and the error schema lists every code.
    #[test]
    fn every_error_code_and_status_is_documented() {
        let doc = document();
        let all = &doc["components"]["schemas"]["Error"]["properties"]["error"]["enum"];
        for info in CATALOGUE {
            assert!(
                all.as_array()
                    .is_some_and(|a| a.contains(&json!(info.code))),
                "{} missing",
                info.code
            );
            for status in info.statuses {
                let response = ERRORS.iter().find(|r| r.0 == *status);
                let name = response.map(|r| r.1).unwrap_or_default();
                let listed = &doc["components"]["responses"][name]["content"]["application/json"]["schema"]
                    ["allOf"][1]["properties"]["error"]["enum"];
                assert!(
                    listed
                        .as_array()
                        .is_some_and(|a| a.contains(&json!(info.code))),
                    "{status} {} has no error response",
                    info.code
                );
            }
        }
    }

    #[test]
    fn every_reference_resolves() {
        fn walk(doc: &Value, v: &Value) {
            match v {
                Value::Object(map) => {
                    if let Some(Value::String(r)) = map.get("$ref") {
                        let pointer = r.trim_start_matches('#');
                        assert!(doc.pointer(pointer).is_some(), "dangling {r}");
                    }
                    map.values().for_each(|v| walk(doc, v));
                }
                Value::Array(items) => items.iter().for_each(|v| walk(doc, v)),
                _ => {}
            }
        }
        let doc = document();
        walk(&doc, &doc);
    }
}
