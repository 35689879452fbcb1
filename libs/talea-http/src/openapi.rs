//! The OpenAPI 3.1 document of the HTTP API: served at `GET /v1/openapi.json`
//! and checked in as `docs/openapi.json` (a test fails when they differ).
//!
//! The paths come from the router itself: each handler carries its
//! operation in `#[utoipa::path(...)]` and is registered through
//! `utoipa_axum`'s `OpenApiRouter::routes(routes!(...))`, so the one route
//! list (see `crate::Routes`) makes both the router and the paths. Body
//! schemas are derived from the talea-api wire types (`ToSchema`, behind
//! talea-api's `openapi` feature). What is not per route is kept here: the
//! error responses built from the catalogue (referenced by handlers through
//! the error sets below), the headers every response carries, security
//! schemes, tags and info. Regenerate the checked-in copy with
//! `TALEA_UPDATE_OPENAPI=1 cargo test -p talea-http --lib openapi`.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use talea_api::CATALOGUE;
use utoipa::openapi::{Ref, RefOr, response::Response as OaResponse};

/// The error responses (`components/responses`): status, name and
/// description; the codes each carries come from the catalogue.
#[rustfmt::skip] // A table: one row a line.
const ERRORS: &[(u16, &str, &str)] = &[
    (400, "BadRequest", "A malformed body, path or query parameter (`field` names it), or an amount that does not fit 128 bits of minor units."),
    (401, "Unauthorized", "No bearer token, or an unknown one."),
    (403, "Forbidden", "The token does not cover the book (`book`; `*` for the asset registry) or is read-only."),
    (404, "NotFound", "Unknown book, account or transaction (a transaction outside the token's scope answers the same)."),
    (405, "MethodNotAllowed", "The route exists but not for this method (a read instance answers the POST routes 405, with `Allow`)."),
    (408, "Timeout", "The request outlived `TALEA_REQUEST_TIMEOUT_MS`; a post may have committed: retry with the same idempotency key."),
    (409, "Conflict", "Another definition under the same name, or an idempotency key used for another request (`tx_id` of the original)."),
    (413, "PayloadTooLarge", "The body is over 1 MiB."),
    (422, "Unprocessable", "The transaction is well formed but cannot be applied."),
    (429, "TooManyRequests", "The book's write queue is full (`overloaded`), or the token's rate limit or stream cap is spent (`rate_limited`); retry after `Retry-After`."),
    (500, "Internal", "A bug or corrupt data; the body carries no internals."),
    (503, "Unavailable", "The in-flight (or stream) limit is reached (`overloaded`), or storage or the token-scope service cannot be reached (`unavailable`); retry after `Retry-After`."),
];

/// The catalogue's codes answered with `status`, in catalogue order.
fn codes_of(status: u16) -> Vec<&'static str> {
    CATALOGUE
        .iter()
        .filter(|i| i.statuses.contains(&status))
        .map(|i| i.code)
        .collect()
}

/// Sets of error responses for `#[utoipa::path(responses(...))]`: each is
/// `$ref`s to `components/responses` for its statuses.
macro_rules! error_sets {
    ($($(#[$doc:meta])* $name:ident = [$($status:literal),*];)*) => {$(
        $(#[$doc])*
        pub(crate) struct $name;
        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<OaResponse>> {
                error_refs(&[$($status),*])
            }
        }
    )*};
}

error_sets! {
    /// Any authenticated `/v1` route, whatever it does: authentication,
    /// deadline, rate limit, admission, bugs.
    V1Errors = [401, 408, 429, 500, 503];
    /// A read of a book's resources.
    ReadErrors = [400, 401, 403, 404, 408, 429, 500, 503];
    /// A read filtered by a registered asset (422: unknown asset).
    AssetReadErrors = [400, 401, 403, 404, 408, 422, 429, 500, 503];
    /// A write that defines something (an asset, an account).
    WriteErrors = [400, 401, 403, 408, 409, 413, 429, 500, 503];
    /// Posting a transaction.
    PostErrors = [400, 401, 403, 408, 409, 413, 422, 429, 500, 503];
    /// Settling or voiding a hold: a post that names a transaction.
    HoldErrors = [400, 401, 403, 404, 408, 409, 413, 422, 429, 500, 503];
    /// Taking a liability snapshot: a write of the book (422: unknown asset).
    LiabilityErrors = [400, 401, 403, 404, 408, 413, 422, 429, 500, 503];
    /// Issuing a stream ticket: a read of the book named in the body.
    TicketErrors = [400, 401, 403, 404, 408, 413, 429, 500, 503];
    /// Reading a transaction by id (no book in the path, so no 403).
    TxErrors = [400, 401, 404, 408, 429, 500, 503];
    /// The stream: outside admission, the deadline and the rate limit; 429
    /// is the token's stream cap (`TALEA_SSE_MAX_PER_TOKEN`).
    StreamErrors = [400, 401, 403, 404, 429, 500, 503];
    /// `/health`: public, inside admission and the deadline.
    HealthErrors = [408, 500, 503];
    /// `/v1/openapi.json`: public, inside admission and the deadline.
    DocumentErrors = [408, 503];
}

fn error_refs(statuses: &[u16]) -> BTreeMap<String, RefOr<OaResponse>> {
    statuses
        .iter()
        .filter_map(|s| ERRORS.iter().find(|e| e.0 == *s))
        .map(|(status, name, _)| {
            let path = format!("#/components/responses/{name}");
            (status.to_string(), RefOr::Ref(Ref::new(path)))
        })
        .collect()
}

/// The headers of every response.
fn common_headers() -> Map<String, Value> {
    ["X-Request-Id", "X-Talea-Backend"]
        .into_iter()
        .map(|h| {
            (
                h.to_owned(),
                json!({"$ref": format!("#/components/headers/{h}")}),
            )
        })
        .collect()
}

/// The paths as utoipa writes them, finished with what its annotations
/// cannot say: the common headers on every (non-`$ref`) response, and
/// `security: []` (no security) where a handler says `security(())`, which
/// utoipa writes `[{}]` (anonymous allowed).
fn paths() -> (Value, Value) {
    let api = crate::Routes::new(crate::Role::All).openapi();
    let mut api = serde_json::to_value(api).unwrap_or(Value::Null);
    let schemas = api["components"]["schemas"].take();
    let mut paths = api["paths"].take();
    for (path, item) in paths.as_object_mut().into_iter().flatten() {
        if path.starts_with("/v1/books/{book}/")
            && !path.ends_with("/stream")
            && let Some(get) = item.get_mut("get").and_then(Value::as_object_mut)
        {
            book_read(get);
        }
    }
    let items = paths
        .as_object_mut()
        .into_iter()
        .flat_map(|p| p.values_mut());
    let ops = items
        .flat_map(Value::as_object_mut)
        .flat_map(|i| i.values_mut());
    for op in ops.flat_map(Value::as_object_mut) {
        if op.get("security") == Some(&json!([{}])) {
            op.insert("security".to_owned(), json!([]));
        }
        let responses = op.get_mut("responses").and_then(Value::as_object_mut);
        for response in responses.into_iter().flat_map(|r| r.values_mut()) {
            if let Some(response) = response.as_object_mut().filter(|r| !r.contains_key("$ref")) {
                response.insert("headers".to_owned(), Value::Object(common_headers()));
            }
        }
    }
    (paths, schemas)
}

/// What every book read takes and answers beside its own parameters
/// (`crate::freshness`): `min_seq` and `Talea-Min-Seq`, `409
/// min_seq_ahead`, and `Talea-Seq` on its success.
fn book_read(get: &mut Map<String, Value>) {
    let parameters = get.entry("parameters").or_insert_with(|| json!([]));
    if let Some(list) = parameters.as_array_mut() {
        list.push(json!({"$ref": "#/components/parameters/min_seq"}));
        list.push(json!({"$ref": "#/components/parameters/Talea-Min-Seq"}));
    }
    let Some(responses) = get.get_mut("responses").and_then(Value::as_object_mut) else {
        return;
    };
    responses
        .entry("409")
        .or_insert_with(|| json!({"$ref": "#/components/responses/Conflict"}));
    for (status, response) in responses.iter_mut() {
        if !status.starts_with('2') {
            continue;
        }
        if let Some(response) = response.as_object_mut() {
            let headers = response.entry("headers").or_insert_with(|| json!({}));
            if let Some(headers) = headers.as_object_mut() {
                headers.insert(
                    "Talea-Seq".to_owned(),
                    json!({"$ref": "#/components/headers/Talea-Seq"}),
                );
            }
        }
    }
}

/// `components`: the wire types' schemas, the error body, headers, error
/// responses and the security schemes.
fn components(mut schemas: Value) -> Value {
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
                        {"$ref": "#/components/schemas/Error"},
                        {"properties": {"error": {"enum": codes_of(*status)}}},
                    ],
                }}},
            }),
        );
    }
    json!({
        "schemas": schemas,
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
            "Talea-Seq": {
                "description": "The book's head when the read began: the answer reflects every event up to this seq (perhaps later ones too, never fewer).",
                "required": true,
                "schema": {"type": "integer", "minimum": 0},
            },
        },
        "parameters": {
            "min_seq": {
                "name": "min_seq",
                "in": "query",
                "required": false,
                "description": "Answer only once the store serving the read has applied this seq of the book (read your writes): at once if it has, `409 min_seq_ahead` if the primary has not committed it, else after waiting up to `TALEA_REPLICA_WAIT_MS`, then `503 replica_behind`.",
                "schema": {"type": "integer", "minimum": 1, "maximum": i64::MAX},
            },
            "Talea-Min-Seq": {
                "name": "Talea-Min-Seq",
                "in": "header",
                "required": false,
                "description": "`min_seq` as a header (the SDK sends it); with both, the larger applies.",
                "schema": {"type": "integer", "minimum": 1, "maximum": i64::MAX},
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
            "status": {"type": "string", "enum": ["posted", "voided", "expired"], "description": "How the hold ended (`hold_not_pending`; `tx_id` is then the settle or void that ended it, absent for an expiry)."},
            "held": {"type": "string", "description": "What the hold holds on the account, asset and side (`exceeds_hold`)."},
            "requested": {"type": "string", "description": "What the settle asked to post there (`exceeds_hold`)."},
            "min_seq": {"type": "integer", "minimum": 1, "description": "The read's `min_seq` (`min_seq_ahead`, `replica_behind`)."},
            "head": {"type": "integer", "minimum": 0, "description": "The book's head on the primary (`min_seq_ahead`)."},
            "seq": {"type": "integer", "minimum": 0, "description": "What the replica had applied when the wait ran out (`replica_behind`)."},
        },
    })
}

/// The whole document.
pub fn document() -> Value {
    let (paths, schemas) = paths();
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
            {"name": "proofs", "description": "The verifiable log: signing keys, signed checkpoints, inclusion and consistency proofs (docs/proofs.md)."},
            {"name": "operations", "description": "Health, liveness and this document."},
        ],
        "paths": paths,
        "components": components(schemas),
    })
}

/// The document as served and checked in: pretty JSON, a trailing newline.
pub fn document_json() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

/// `GET /v1/openapi.json`: public, outside authentication and rate limits.
#[utoipa::path(get, path = "/v1/openapi.json", tag = "operations", operation_id = "openapi", security(()),
    summary = "This document (public: no token, no rate limit).",
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object), DocumentErrors))]
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

    /// Every detail a code's body carries (the catalogue's fields, less
    /// those never serialized) is a property of the `Error` schema.
    #[test]
    fn every_error_detail_is_documented() {
        let doc = document();
        let properties = &doc["components"]["schemas"]["Error"]["properties"];
        // Serde-skipped: they travel in headers or the status line.
        let unserialized = ["allow", "retry_after_s"];
        for info in CATALOGUE {
            for field in info.fields {
                let documented = properties.get(*field).is_some();
                assert!(
                    documented || unserialized.contains(field),
                    "{}: detail {field} is not in the Error schema",
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

    /// The document is the same whatever the role: a read instance routes
    /// only the GETs of the `/v1` routes but documents the POSTs too (and
    /// answers them 405, as `info.description` says).
    #[test]
    fn every_role_documents_the_same_paths() {
        let all = serde_json::to_value(crate::Routes::new(crate::Role::All).openapi());
        for role in [crate::Role::Write, crate::Role::Read] {
            let paths = serde_json::to_value(crate::Routes::new(role).openapi());
            assert_eq!(paths.ok(), all.as_ref().ok().cloned(), "{role:?}");
        }
    }

    /// Files allowed to route without `OpenApiRouter::routes(routes!(...))`,
    /// with the reason.
    const UNDOCUMENTED_ROUTING: &[(&str, &str)] = &[
        (
            "service.rs",
            "the metrics listener: `GET /metrics` on its own address, not the API",
        ),
        (
            "console.rs",
            "the operator console's static files under `/console` (HTML, script, \
             style for people; docs/console.md), not the JSON API",
        ),
    ];

    /// The document lists every routed path: `routes!` registers a handler
    /// only together with its `#[utoipa::path]` operation, so a route that
    /// enters the router another way is the one way to route a path (or a
    /// method) undocumented. This fails on any plain axum routing call
    /// (`.route(`, `.route_service(`, `.nest(`, `axum::routing::…`) in the
    /// crate's non-test source outside [`UNDOCUMENTED_ROUTING`]. The other
    /// direction, every documented operation routed and no undocumented
    /// method answering, is probed against a live app in
    /// `tests/it/openapi.rs`.
    #[test]
    fn every_route_enters_through_routes_macro() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let entries = std::fs::read_dir(&dir).expect("read src");
        let mut checked = 0;
        for entry in entries {
            let path = entry.expect("src entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
            if UNDOCUMENTED_ROUTING.iter().any(|(f, _)| *f == name) {
                continue;
            }
            let text = std::fs::read_to_string(&path).expect("read source");
            // Only the code: a file's unit tests come last.
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for plain in [
                ".route(",
                ".route_service(",
                ".nest(",
                ".nest_service(",
                "routing::",
            ] {
                assert!(!code.contains(plain), "{name} routes with `{plain}`");
            }
            checked += 1;
        }
        assert!(checked >= 10, "{checked} files checked");
    }
}
