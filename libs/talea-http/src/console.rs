//! The read-only operator console at `/console`: three hand-written files
//! embedded in the binary, served with their content types, a cache policy
//! and a strict Content-Security-Policy (`docs/console.md`).
//!
//! The console is static: it holds no secret and talks to the API from the
//! browser with the token the operator pastes, so its routes need no
//! authentication and sit outside admission, like `/livez`. Everything it
//! shows comes from the `/v1` routes, which decide scope as for any client.

use axum::Router;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The page: markup only, no inline script or style.
const INDEX_HTML: &str = include_str!("../console/index.html");
/// The whole application: routing, API calls, rendering, the chart, the
/// live tail and checkpoint verification.
const APP_JS: &str = include_str!("../console/app.js");
/// Layout for a 1280x800 screen down to a phone.
const APP_CSS: &str = include_str!("../console/app.css");

/// Only the console's own files run or style the page; it may call this
/// origin's API (fetch and `EventSource`) and nothing else; no frames, no
/// forms posting anywhere, no `<base>` rewriting. `img-src data:` is for
/// nothing today but keeps a future inline icon from needing a change here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Every file is revalidated on each load: they are not fingerprinted, and
/// a page from a newer talead must never run an older script.
const CACHE_CONTROL: &str = "no-cache";

/// The console's routes, merged into the API router when the console is on
/// (`TALEA_CONSOLE`).
pub(crate) fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/console",
            get(|| async { Redirect::permanent("console/") }),
        )
        .route("/console/", get(index))
        .route("/console/index.html", get(index))
        .route("/console/app.js", get(app_js))
        .route("/console/app.css", get(app_css))
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// One embedded file with the console's headers.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    let headers = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        ),
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        // A token never leaves in a URL, but no console URL should leak
        // either (book and account names) to another origin.
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
        (
            HeaderName::from_static("cross-origin-opener-policy"),
            HeaderValue::from_static("same-origin"),
        ),
    ];
    (StatusCode::OK, headers, body).into_response()
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    use super::*;

    async fn get(path: &str) -> Response {
        routes::<()>()
            .oneshot(Request::get(path).body(Body::empty()).expect("request"))
            .await
            .expect("answered")
    }

    #[tokio::test]
    async fn files_are_served_with_their_types_and_a_strict_policy() {
        for (path, kind) in [
            ("/console/", "text/html"),
            ("/console/app.js", "text/javascript"),
            ("/console/app.css", "text/css"),
        ] {
            let r = get(path).await;
            assert_eq!(r.status(), StatusCode::OK, "{path}");
            let value = |name: HeaderName| {
                r.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            assert!(value(header::CONTENT_TYPE).starts_with(kind), "{path}");
            assert_eq!(value(header::CACHE_CONTROL), "no-cache", "{path}");
            let csp = value(header::CONTENT_SECURITY_POLICY);
            assert!(csp.contains("script-src 'self';"), "{csp}");
            assert!(!csp.contains("unsafe"), "{csp}");
        }
        let r = get("/console").await;
        assert_eq!(r.status(), StatusCode::PERMANENT_REDIRECT);
    }

    #[test]
    fn the_page_has_no_inline_script_or_style_and_no_remote_asset() {
        assert!(!INDEX_HTML.contains("<script>"));
        assert!(!INDEX_HTML.contains("style="));
        assert!(!INDEX_HTML.contains("<style"));
        // The one absolute URL is the SVG namespace, which is a name, not
        // a place the browser fetches.
        let js = APP_JS.replace("\"http://www.w3.org/2000/svg\"", "");
        for text in [INDEX_HTML, &js, APP_CSS] {
            assert!(!text.contains("http:") && !text.contains("https:"));
        }
    }
}
