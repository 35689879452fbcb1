//! `GET /v1/openapi.json`: public, outside the rate limit, and every route it
//! documents is one the router serves.

use std::num::NonZeroU32;

use serde_json::json;
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
