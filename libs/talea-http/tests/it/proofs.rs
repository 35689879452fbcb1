//! The verifiable log over HTTP (`docs/proofs.md`): every served event is
//! chained (events page and stream frames), the checkpoint verifies against
//! `GET /v1/keys`, inclusion and consistency proofs verify against
//! checkpoints, and bad sizes are clear 400s and unknown books 404s.

use serde_json::{Value, json};
use talea_testkit::sse;
use talea_verify::checkpoint::{Checkpoint, KeyList};
use talea_verify::files::{ConsistencyProof, InclusionProof};

use crate::harness::*;

fn parse<T: serde::de::DeserializeOwned>(r: &Resp) -> T {
    assert_eq!(r.status, 200, "{}", r.body);
    serde_json::from_value(r.body.clone()).unwrap_or_else(|e| panic!("{e}: {}", r.body))
}

async fn checkpoint(app: &TestApp, book: &str, token: &str) -> Checkpoint {
    parse(
        &app.get(&format!("/v1/books/{book}/checkpoint"), token)
            .await,
    )
}

#[tokio::test]
async fn served_events_chain_and_checkpoints_and_proofs_verify() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    for i in 0..6 {
        let r = app
            .transfer(
                "payments",
                &format!("p{i}"),
                "hot-wallet",
                "customers:alice",
                "0.5",
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.body);
    }
    let events = all_events(&app, "payments").await;
    assert_eq!(events.len(), 10);
    let summary = talea_verify::chain::verify_chain("payments", events.iter().cloned())
        .expect("the chain verifies");
    assert_eq!(summary.last_seq, 10);

    let keys: KeyList = parse(&app.get("/v1/keys", PAY_RO).await);
    assert_eq!(keys.keys.len(), 1);
    let head = checkpoint(&app, "payments", PAY_RO).await;
    assert_eq!(head.tree_size, 10);
    head.verify(&keys)
        .expect("the checkpoint's signature verifies");
    talea_verify::files::verify_export_against(&head, events.iter().cloned())
        .expect("the events are the checkpoint's tree");
    // Kept: asked again, the same checkpoint.
    assert_eq!(checkpoint(&app, "payments", ROOT).await, head);

    for seq in [1, 5, 10] {
        let proof: InclusionProof = parse(
            &app.get(
                &format!("/v1/books/payments/proofs/inclusion?seq={seq}&tree_size=10"),
                PAY_RO,
            )
            .await,
        );
        proof.verify_against(&head).expect("inclusion verifies");
    }
    // Without tree_size: the latest checkpoint's.
    let proof: InclusionProof = parse(
        &app.get("/v1/books/payments/proofs/inclusion?seq=3", PAY_RO)
            .await,
    );
    assert_eq!(proof.tree_size, 10);

    // The log grows; a later checkpoint is consistent with the earlier one.
    for i in 6..9 {
        app.transfer(
            "payments",
            &format!("p{i}"),
            "hot-wallet",
            "customers:alice",
            "0.5",
        )
        .await;
    }
    let later = app.ledger.clone();
    later.spawn_checkpointer(talea_ledger::CheckpointEvery::Events(1));
    let mut newer = checkpoint(&app, "payments", PAY_RO).await;
    for _ in 0..100 {
        if newer.tree_size == 13 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        newer = checkpoint(&app, "payments", PAY_RO).await;
    }
    assert_eq!(newer.tree_size, 13, "the checkpointer signed the new size");
    newer.verify(&keys).expect("verifies");
    let consistency: ConsistencyProof = parse(
        &app.get(
            "/v1/books/payments/proofs/consistency?from=10&to=13",
            PAY_RO,
        )
        .await,
    );
    consistency
        .verify_against(&head, &newer)
        .expect("the later tree extends the earlier");
    let equal: ConsistencyProof = parse(
        &app.get(
            "/v1/books/payments/proofs/consistency?from=13&to=13",
            PAY_RO,
        )
        .await,
    );
    assert!(equal.proof.is_empty());
}

#[tokio::test]
async fn bad_sizes_are_clear_errors_and_scope_applies() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    app.setup_book("other").await;
    for (query, field) in [
        ("inclusion?seq=5&tree_size=9", "tree_size"),
        ("inclusion?seq=0&tree_size=4", "seq"),
        ("inclusion?seq=5&tree_size=4", "seq"),
        ("inclusion?seq=1&tree_size=0", "tree_size"),
        ("consistency?from=3&to=2", "from"),
        ("consistency?from=0&to=2", "from"),
        ("consistency?from=1&to=5", "to"),
    ] {
        let r = app
            .get(&format!("/v1/books/payments/proofs/{query}"), ROOT)
            .await;
        assert_eq!(r.status, 400, "{query}: {}", r.body);
        assert_eq!(r.error(), "invalid_request", "{query}");
        assert_eq!(r.body["field"], json!(field), "{query}: {}", r.body);
    }
    for query in [
        "inclusion?seq=x",
        "inclusion",
        "inclusion?seq=-1",
        "consistency?from=1",
        "consistency?from=1&to=99999999999999999999999",
    ] {
        let r = app
            .get(&format!("/v1/books/payments/proofs/{query}"), ROOT)
            .await;
        assert_eq!(r.status, 400, "{query}: {}", r.body);
    }
    for path in [
        "/v1/books/nothing/checkpoint",
        "/v1/books/nothing/proofs/inclusion?seq=1&tree_size=1",
        "/v1/books/nothing/proofs/consistency?from=1&to=1",
    ] {
        let r = app.get(path, ROOT).await;
        assert_eq!(r.status, 404, "{path}: {}", r.body);
    }
    // The book's read scope: another book's token is refused.
    let r = app.get("/v1/books/other/checkpoint", PAY_RO).await;
    assert_eq!(r.status, 403, "{}", r.body);
    let r = app
        .get("/v1/books/payments/checkpoint", "no-such-token")
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
}

#[tokio::test]
async fn stream_frames_carry_commit_time_and_hash() {
    let app = spawn_app().await;
    app.setup_book("payments").await;
    app.transfer("payments", "p1", "hot-wallet", "customers:alice", "1")
        .await;
    let events = all_events(&app, "payments").await;
    let mut response = app
        .client
        .get(format!("{}/v1/books/payments/stream?after_seq=0", app.base))
        .bearer_auth(ROOT)
        .send()
        .await
        .expect("answer");
    assert_eq!(response.status(), 200);
    // The raw frames: the chain's fields are lines SSE decoders skip.
    let mut text = String::new();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    while !text.contains(&format!("id: {}\n", events.len())) || !text.ends_with("\n\n") {
        let chunk = tokio::time::timeout_at(deadline, response.chunk())
            .await
            .expect("frames within 20 s")
            .expect("read")
            .expect("open");
        text.push_str(std::str::from_utf8(&chunk).expect("utf-8"));
    }
    let frames: Vec<&str> = text
        .split("\n\n")
        .filter(|f| f.contains("\nevent: "))
        .collect();
    assert_eq!(frames.len(), events.len(), "{text}");
    for (frame, event) in frames.iter().zip(&events) {
        let field = |name: &str| {
            frame
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .map(str::to_owned)
        };
        assert_eq!(field("id"), event["seq"].as_u64().map(|s| s.to_string()));
        assert_eq!(field("hash").as_deref(), event["hash"].as_str(), "{frame}");
        assert_eq!(
            field("committed_at").as_deref(),
            event["committed_at"].as_str(),
            "{frame}"
        );
        let data: Value = serde_json::from_str(&field("data").expect("data")).expect("json");
        assert_eq!(data, event["data"]);
    }
    // A standard decoder reads the frame as before, the extra lines skipped.
    let last = frames.last().expect("a frame");
    let decoded = sse::decode(format!("{last}\n\n").as_bytes());
    assert_eq!(decoded.len(), 1, "{last}");
    assert_eq!(sse::seq(&decoded[0]), Some(events.len() as u64));
    assert_eq!(
        Some(&sse::json(&decoded[0])),
        events.last().map(|e| &e["data"])
    );
}
