//! `GET /v1/openapi.json`: public, outside the rate limit; every route it
//! documents is one the router serves, no undocumented method is served on a
//! documented path, and the document keeps the meaning of its baseline.

use std::num::NonZeroU32;

use serde_json::{Value, json};
use talea_http::{HttpConfig, RateLimit};

use crate::harness::*;

#[tokio::test]
async fn the_document_is_public_and_never_rate_limited() {
    let app = spawn_app_with(Options {
        http: HttpConfig {
            rate_limit: Some(RateLimit {
                per_s: NonZeroU32::MIN,
                burst: NonZeroU32::MIN,
            }),
            ..HttpConfig::default()
        },
        ..Options::default()
    })
    .await;
    for _ in 0..5 {
        let r = app.get("/v1/openapi.json", "").await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body, talea_http::openapi::document());
        assert_eq!(
            r.header("content-type"),
            Some("application/json; charset=utf-8")
        );
        assert_eq!(r.header("x-talea-backend"), Some("postgres"));
        assert!(r.header("x-request-id").is_some());
    }
    // The /v1 routes beside it are limited as before.
    let statuses = [
        app.get("/v1/assets", ROOT).await.status,
        app.get("/v1/assets", ROOT).await.status,
    ];
    assert!(statuses.contains(&429), "{statuses:?}");
}

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = spawn_app().await;
    let doc = talea_http::openapi::document();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(paths.len() >= 15, "{} paths", paths.len());
    for (template, item) in paths {
        // A book without events, so that the stream route answers 404 at
        // once instead of streaming.
        let path = template
            .replace("{book}", "no-such-book")
            .replace("{account}", "nobody")
            .replace("{tx_id}", "0193a6f0-0000-7000-8000-000000000000");
        for method in item.as_object().expect("operations").keys() {
            let url = format!("{}{path}", app.base);
            let req = match method.as_str() {
                "get" => app.client.get(url),
                "post" => app.client.post(url).json(&json!({})),
                other => panic!("undocumented method kind {other}"),
            };
            let r = app
                .send(req.header("authorization", format!("Bearer {ROOT}")))
                .await;
            assert_ne!(r.status, 405, "{method} {template}");
            assert_ne!(
                r.body["message"].as_str(),
                Some("no such route"),
                "{method} {template}"
            );
            let documented = &item[method]["responses"][r.status.to_string()];
            assert!(
                !documented.is_null(),
                "{method} {template} answered {} which is not documented",
                r.status
            );
        }
    }
}

/// No hidden method: on every documented path, each method the path does
/// not document answers 405 (with `Allow`), so the router serves nothing
/// there the document does not list. (HEAD rides on GET, as in HTTP.)
/// With `every_documented_operation_is_routed` above and the source test
/// `every_route_enters_through_routes_macro` (no route enters the router
/// except with its operation), router and document agree both ways.
#[tokio::test]
async fn no_undocumented_method_is_routed() {
    let app = spawn_app().await;
    let doc = talea_http::openapi::document();
    let paths = doc["paths"].as_object().expect("paths");
    for (template, item) in paths {
        let path = template
            .replace("{book}", "no-such-book")
            .replace("{account}", "nobody")
            .replace("{tx_id}", "0193a6f0-0000-7000-8000-000000000000");
        for method in ["get", "post", "put", "patch", "delete", "options", "trace"] {
            if item.get(method).is_some() {
                continue;
            }
            let verb = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).expect("verb");
            let req = app
                .client
                .request(verb, format!("{}{path}", app.base))
                .header("authorization", format!("Bearer {ROOT}"));
            let r = app.send(req).await;
            assert_eq!(r.status, 405, "{method} {template}");
            assert!(r.header("allow").is_some(), "{method} {template}: no Allow");
        }
    }
}

/// Resolves `$ref`s (local ones) all the way down.
fn resolved(doc: &Value, v: &Value) -> Value {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                let target = doc
                    .pointer(r.trim_start_matches('#'))
                    .expect("ref resolves");
                return resolved(doc, target);
            }
            Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), resolved(doc, v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.iter().map(|v| resolved(doc, v)).collect()),
        other => other.clone(),
    }
}

/// Whether `new` holds everything of `old`: every key of an object, every
/// item of a list (enums and lists of fields may grow), equal scalars. In a
/// request (`request` true) the `required` lists must stay equal: a client
/// built on the old document must still send a valid body.
fn grows(old: &Value, new: &Value, request: bool) -> bool {
    match (old, new) {
        (Value::Object(a), Value::Object(b)) => a.iter().all(|(k, v)| {
            b.get(k).is_some_and(|w| {
                if request && k == "required" {
                    v == w
                } else {
                    grows(v, w, request)
                }
            })
        }),
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            a.iter().zip(b).all(|(v, w)| grows(v, w, request))
        }
        (Value::Array(a), Value::Array(b)) => a.iter().all(|v| b.contains(v)),
        (a, b) => a == b,
    }
}

/// The document's meaning only grows, so generated clients keep working:
/// everything of the baseline (`openapi-baseline.json`, the document as it
/// was before the paths were generated from the routes) is in the current
/// document, equal once `$ref`s are resolved: each operation (path and
/// method, `operationId`, tags, summary, security), each parameter (by name
/// and place: every field), each response status (whole), each request
/// body, and the top-level fields and components other than the
/// parameters (now inlined where used). Refresh the baseline only for a
/// deliberate, versioned break.
#[test]
fn the_document_only_grows_from_the_baseline() {
    let old: Value =
        serde_json::from_str(include_str!("openapi-baseline.json")).expect("baseline parses");
    let new = talea_http::openapi::document();
    let same = |what: String, a: &Value, b: &Value| {
        let (a, b) = (resolved(&old, a), resolved(&new, b));
        let request = what.ends_with("requestBody");
        assert!(grows(&a, &b, request), "{what}: {a} is not within {b}");
    };
    for (path, item) in old["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("operations") {
            let now = &new["paths"][path][method];
            assert!(now.is_object(), "{method} {path} is gone");
            for key in ["operationId", "tags", "summary", "security", "requestBody"] {
                same(format!("{method} {path} {key}"), &op[key], &now[key]);
            }
            let params = now["parameters"].as_array().cloned().unwrap_or_default();
            for p in op["parameters"].as_array().into_iter().flatten() {
                let p = resolved(&old, p);
                let found = params
                    .iter()
                    .map(|q| resolved(&new, q))
                    .find(|q| q["name"] == p["name"] && q["in"] == p["in"]);
                assert_eq!(found.as_ref(), Some(&p), "{method} {path} parameter");
            }
            for (status, response) in op["responses"].as_object().expect("responses") {
                let what = format!("{method} {path} {status}");
                same(what, response, &now["responses"][status]);
            }
        }
    }
    for (key, value) in old.as_object().expect("document") {
        if key == "components" {
            for (kind, items) in value.as_object().expect("components") {
                for (name, item) in items.as_object().expect("component kind") {
                    if kind != "parameters" {
                        let what = format!("components/{kind}/{name}");
                        same(what, item, &new["components"][kind][name]);
                    }
                }
            }
        } else if key != "paths" {
            same(key.clone(), value, &new[key]);
        }
    }
}
