//! Stream tickets and CORS over real sockets: issue, the read rules on the
//! ticket route, `?ticket=` on the stream route, replicas sharing a key,
//! expiry ending a session, and CORS only where browsers need it.

use std::time::Duration;

use serde_json::{Value, json};
use talea_auth::{Secret, Tickets};
use talea_http::{HttpConfig, Role};
use talea_testkit::sse::{self, Frame, SseReader};

use crate::harness::*;

const KEY: &str = "a-shared-ticket-key-of-at-least-32-bytes";
const PAGE: &str = "http://page.example:8000";

fn with_key(key: &str, ttl_s: u64) -> Options {
    let (tickets, random) = Tickets::configure(Some(&Secret::new(key)), ttl_s).expect("config");
    assert!(!random);
    Options {
        http: HttpConfig {
            stream_tickets: tickets,
            ..HttpConfig::default()
        },
        ..Options::default()
    }
}

async fn ticket(app: &TestApp, token: &str, book: &str) -> String {
    let r = app
        .post("/v1/stream-tickets", token, &json!({"book": book}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["ticket"].as_str().expect("ticket").to_owned()
}

/// The stream of `book` opened with `?ticket=` and no `Authorization`.
async fn stream_with(app: &TestApp, book: &str, query: &str) -> reqwest::Response {
    app.client
        .get(format!("{}/v1/books/{book}/stream?{query}", app.base))
        .send()
        .await
        .expect("answer")
}

/// Reads frames until `stop` holds for the last one (10 s at most).
async fn read_until(response: reqwest::Response, stop: impl Fn(&Frame) -> bool) -> Vec<Frame> {
    let frames = SseReader::new(response)
        .until(Duration::from_secs(10), |frames| {
            frames.last().is_some_and(&stop)
        })
        .await;
    assert!(
        frames.last().is_some_and(&stop),
        "the stream ended first: {frames:?}"
    );
    frames
}

/// Whether `frame` has id `id`.
fn id_is(id: u64) -> impl Fn(&Frame) -> bool {
    move |frame| sse::seq(frame) == Some(id)
}

async fn json_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (status, response.json().await.expect("json body"))
}

#[tokio::test]
async fn a_ticket_opens_its_books_stream_without_a_header() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    app.setup_book("other").await;
    let before = chrono::Utc::now();
    let r = app
        .post("/v1/stream-tickets", PAY_RO, &json!({"book": "payments"}))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let expires_at = r.body["expires_at"].as_str().expect("expires_at");
    // RFC 3339 UTC with six fractional digits, like every timestamp.
    assert_eq!(expires_at.len(), 27, "{expires_at}");
    assert!(expires_at.ends_with('Z'), "{expires_at}");
    let expiry = chrono::DateTime::parse_from_rfc3339(expires_at).expect("RFC 3339");
    let life = expiry.signed_duration_since(before).num_milliseconds();
    assert!((59_000..=61_000).contains(&life), "{life} ms");
    let t = r.body["ticket"].as_str().expect("ticket").to_owned();

    let s = stream_with(&app, "payments", &format!("ticket={t}&after_seq=0")).await;
    assert_eq!(s.status(), 200);
    let frames = read_until(s, id_is(4)).await;
    assert!(
        frames
            .iter()
            .any(|f| id_is(1)(f) && f.event.as_deref() == Some("account_opened")),
        "{frames:?}"
    );

    // Another book, a tampered, a truncated, an empty, a repeated ticket:
    // all 401 with the normal body.
    let mut tampered = t.clone();
    let last = if tampered.ends_with('A') { "B" } else { "A" };
    tampered.replace_range(tampered.len() - 1.., last);
    for (book, query) in [
        ("other", format!("ticket={t}&after_seq=0")),
        ("payments", format!("ticket={tampered}")),
        ("payments", format!("ticket={}", &t[..t.len() / 2])),
        ("payments", "ticket=".to_owned()),
        ("payments", "ticket=%FF%FE".to_owned()),
        ("payments", format!("ticket={t}&ticket={t}")),
        ("payments", format!("ticket={}", "x".repeat(5000))),
        ("payments", "after_seq=0".to_owned()),
    ] {
        let (status, body) = json_of(stream_with(&app, book, &query).await).await;
        assert_eq!(status, 401, "{book} {query}");
        assert_eq!(body["error"], "unauthorized", "{query}");
    }

    // A bearer token still works, and wins over a ticket beside it.
    let r = app
        .client
        .get(format!(
            "{}/v1/books/other/stream?ticket={t}&after_seq=0",
            app.base
        ))
        .bearer_auth(ROOT)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    // The other parameters are checked as with a token.
    let (status, body) =
        json_of(stream_with(&app, "payments", &format!("ticket={t}&bogus=1")).await).await;
    assert_eq!(status, 400, "{body}");
    let (status, _) =
        json_of(stream_with(&app, "payments", &format!("ticket={t}&after_seq=x")).await).await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn the_ticket_route_follows_the_read_rules() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    let url = format!("{}/v1/stream-tickets", app.base);
    let r = app
        .send(app.client.post(&url).json(&json!({"book": "payments"})))
        .await;
    assert_eq!((r.status, r.error()), (401, "unauthorized"));
    let r = app
        .post("/v1/stream-tickets", OTHER_RW, &json!({"book": "payments"}))
        .await;
    assert_eq!(r.status, 403);
    assert_eq!(r.body["book"], "payments");
    let r = app
        .post("/v1/stream-tickets", ROOT, &json!({"book": "nobook"}))
        .await;
    assert_eq!((r.status, r.error()), (404, "not_found"));
    for (body, field) in [
        (json!({}), "/book"),
        (json!({"book": "Not A Book"}), "/book"),
        (json!({"book": 7}), "/book"),
        (json!({"book": "payments", "ttl": 600}), "/ttl"),
    ] {
        let r = app.post("/v1/stream-tickets", ROOT, &body).await;
        assert_eq!((r.status, r.error()), (400, "invalid_request"), "{body}");
        assert_eq!(r.body["field"], field, "{body}");
    }
    let r = app.post_raw("/v1/stream-tickets", ROOT, "{nope").await;
    assert_eq!((r.status, r.error()), (400, "invalid_request"));
    let r = app.get("/v1/stream-tickets", ROOT).await;
    assert_eq!(r.status, 405);
    // Read-only tokens and read instances get tickets: streams are reads.
    let reader = spawn_on(
        &app.db_url,
        Options {
            http: HttpConfig {
                role: Role::Read,
                ..HttpConfig::default()
            },
            ..Options::default()
        },
    )
    .await;
    ticket(&reader, PAY_RO, "payments").await;
}

#[tokio::test]
async fn replicas_sharing_the_key_accept_each_others_tickets() {
    let a = spawn_app_with(with_key(KEY, 60)).await;
    let b = spawn_on(&a.db_url, with_key(KEY, 60)).await;
    let stranger = spawn_on(&a.db_url, Options::default()).await;
    a.setup_book("payments").await;
    let t = ticket(&a, PAY_RW, "payments").await;
    let s = stream_with(&b, "payments", &format!("ticket={t}&after_seq=0")).await;
    assert_eq!(s.status(), 200);
    read_until(s, id_is(4)).await;
    // The same ticket again (a reconnect within its life) is accepted.
    let s = stream_with(&b, "payments", &format!("ticket={t}&after_seq=3")).await;
    assert_eq!(s.status(), 200);
    // A replica with its own random key refuses it.
    let (status, _) =
        json_of(stream_with(&stranger, "payments", &format!("ticket={t}")).await).await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_ticket_session_ends_when_its_ticket_expires() {
    let app = spawn_app_with(with_key(KEY, 1)).await;
    app.setup_book("payments").await;
    let t = ticket(&app, PAY_RO, "payments").await;
    let s = stream_with(&app, "payments", &format!("ticket={t}")).await;
    assert_eq!(s.status(), 200);
    let frames = read_until(s, |f| f.event.as_deref() == Some("error")).await;
    let last = frames.last().map(sse::json).unwrap_or_default();
    assert_eq!(
        last["error"], "unauthorized",
        "the session says why it ends: {frames:?}"
    );
    // The browser's reconnect with the same URL is refused.
    let (status, body) = json_of(stream_with(&app, "payments", &format!("ticket={t}")).await).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
}

#[tokio::test]
async fn cors_answers_only_listed_origins_on_the_browser_routes() {
    let app = spawn_app_with(Options {
        http: HttpConfig {
            cors_origins: talea_http::parse_cors_origins(PAGE).expect("origins"),
            ..HttpConfig::default()
        },
        ..Options::default()
    })
    .await;
    app.setup_book("payments").await;
    let preflight = |path: &str, origin: &str, method: &str| {
        app.client
            .request(reqwest::Method::OPTIONS, format!("{}{path}", app.base))
            .header("origin", origin)
            .header("access-control-request-method", method)
            .header(
                "access-control-request-headers",
                "authorization,content-type",
            )
    };
    let r = preflight("/v1/stream-tickets", PAGE, "POST")
        .send()
        .await
        .expect("answer");
    assert!(r.status().is_success(), "{}", r.status());
    let h = r.headers();
    assert_eq!(h["access-control-allow-origin"], PAGE);
    let allowed = h["access-control-allow-headers"].to_str().expect("text");
    assert!(allowed.contains("authorization") && allowed.contains("content-type"));
    assert!(
        h["access-control-allow-methods"]
            .to_str()
            .expect("text")
            .contains("POST")
    );

    // Another origin, or another route: no permission.
    for (path, origin) in [
        ("/v1/stream-tickets", "http://evil.example"),
        ("/v1/books/payments/transactions", PAGE),
    ] {
        let r = preflight(path, origin, "POST")
            .send()
            .await
            .expect("answer");
        assert!(
            r.headers().get("access-control-allow-origin").is_none(),
            "{path} {origin}"
        );
    }

    // The actual requests carry the header, refusals included.
    let r = app
        .client
        .post(format!("{}/v1/stream-tickets", app.base))
        .header("origin", PAGE)
        .bearer_auth(PAY_RO)
        .json(&json!({"book": "payments"}))
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], PAGE);
    let t = r.json::<Value>().await.expect("json")["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    for (query, status) in [(format!("ticket={t}"), 200), ("ticket=bad".to_owned(), 401)] {
        let r = app
            .client
            .get(format!("{}/v1/books/payments/stream?{query}", app.base))
            .header("origin", PAGE)
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), status);
        assert_eq!(r.headers()["access-control-allow-origin"], PAGE);
    }
    let r = app
        .client
        .get(format!("{}/v1/books/payments/accounts", app.base))
        .header("origin", PAGE)
        .bearer_auth(ROOT)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("access-control-allow-origin").is_none());

    // Unconfigured (the default): no CORS headers at all.
    let plain = spawn_on(&app.db_url, Options::default()).await;
    let r = plain
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/v1/stream-tickets", plain.base),
        )
        .header("origin", PAGE)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("answer");
    assert!(r.headers().get("access-control-allow-origin").is_none());
}
