//! The fan-out honours field scopes (`hide`) and starts `?snapshot=balances`
//! streams with one consistent cut, over the real relay, NATS and binary.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use talea_api::{LedgerApi, PostTransactionRequest, PostingDto};
use talea_testkit::sse::{self, SseReader};
use talea_testkit::tokens::{Token, tokens_toml};

use crate::{Fixture, TOKEN, kill};

const BROWSER: &str = "fanout-browser-token";
fn tokens() -> String {
    tokens_toml(&[Token::ro("browser", BROWSER, &["pay"]).hide(&["metadata", "memo"])])
}

/// Frames (id, event, data) read from a stream until id `last`.
async fn frames_until(url: &str, token: &str, last: u64) -> Vec<(Option<u64>, String, Value)> {
    let r = reqwest::Client::new()
        .get(url)
        .bearer_auth(token)
        .send()
        .await
        .expect("answer");
    assert_eq!(r.status(), 200, "{url}");
    let frames = SseReader::new(r)
        .until_id(Duration::from_secs(30), last)
        .await;
    frames
        .iter()
        .filter(|f| f.id.is_some())
        .map(|f| {
            let event = f.event.clone().unwrap_or_default();
            (sse::seq(f), event, sse::json(f))
        })
        .collect()
}

async fn post_secret(f: &Fixture, key: &str) -> u64 {
    let leg = |account: &str, debit: bool| PostingDto {
        account: account.to_owned(),
        asset: "BTC".to_owned(),
        debit: debit.then(|| "1".to_owned()),
        credit: (!debit).then(|| "1".to_owned()),
    };
    f.ledger
        .post_transaction(
            "pay",
            PostTransactionRequest {
                idempotency_key: key.to_owned(),
                postings: vec![leg("hot", true), leg("alice", false)],
                occurred_at: None,
                memo: Some("SECRET-MEMO".to_owned()),
                metadata: serde_json::from_value(json!({"k": "SECRET-META"})).ok(),
                pending: false,
                expires_at: None,
            },
        )
        .await
        .expect("post")
        .seq
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hidden_fields_never_leave_the_fanout_and_snapshots_are_consistent() {
    let f = Fixture::new().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = talea_testkit::tokens_file(dir.path(), &tokens()).expect("tokens file");
    let (stop, relay) = f.relay().await;
    let (fanout, port) = f
        .fanout_with(
            0,
            &[("TALEA_TOKENS_FILE", tokens.display().to_string())],
            Stdio::inherit(),
        )
        .await;
    let url = format!("http://127.0.0.1:{port}/v1/books/pay/stream");

    // Field scopes: backfilled and live events alike.
    let first = post_secret(&f, "secret-0").await;
    let hidden_live = {
        let url = url.clone();
        tokio::spawn(async move { frames_until(&url, BROWSER, first + 1).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let last = post_secret(&f, "secret-1").await;
    for frames in [
        frames_until(&format!("{url}?after_seq=0"), BROWSER, last).await,
        hidden_live.await.expect("task"),
    ] {
        let text = format!("{frames:?}");
        assert!(!text.contains("SECRET"), "{text}");
        assert!(frames.iter().all(|(_, _, d)| d.get("memo").is_none()));
    }
    let plain = frames_until(&format!("{url}?after_seq=0"), TOKEN, last).await;
    let text = format!("{plain:?}");
    assert!(
        text.contains("SECRET-MEMO") && text.contains("SECRET-META"),
        "{text}"
    );

    // Snapshots taken while deposits commit: snapshot + later postings = final.
    let writer = {
        let ledger = f.ledger.clone();
        tokio::spawn(async move {
            let mut last = 0;
            for i in 0..60 {
                let leg = |account: &str, debit: bool| PostingDto {
                    account: account.to_owned(),
                    asset: "BTC".to_owned(),
                    debit: debit.then(|| "1".to_owned()),
                    credit: (!debit).then(|| "1".to_owned()),
                };
                let tx = ledger
                    .post_transaction(
                        "pay",
                        PostTransactionRequest {
                            idempotency_key: format!("d{i}"),
                            postings: vec![leg("hot", true), leg("alice", false)],
                            occurred_at: None,
                            memo: None,
                            metadata: None,
                            pending: false,
                            expires_at: None,
                        },
                    )
                    .await
                    .expect("post");
                last = tx.seq;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            last
        })
    };
    // Open the streams while the writer runs, then read them to the end.
    let mut opened = Vec::new();
    for _ in 0..4 {
        let r = reqwest::Client::new()
            .get(format!("{url}?snapshot=balances&accounts=hot"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("answer");
        assert_eq!(r.status(), 200);
        opened.push(r);
        tokio::time::sleep(Duration::from_millis(40)).await;
    }
    let last = writer.await.expect("writer");
    let final_hot: f64 = f
        .ledger
        .account("pay", "hot")
        .await
        .expect("account")
        .balances
        .and_then(|b| b.get("BTC").and_then(|v| v.parse().ok()))
        .expect("a balance");
    let mut cuts = Vec::new();
    for r in opened {
        let mut ids = Vec::new();
        let mut hot = None;
        let frames = SseReader::new(r)
            .until_id(Duration::from_secs(30), last)
            .await;
        for frame in &frames {
            let (Some(data), Some(id)) = (&frame.data, sse::seq(frame)) else {
                continue;
            };
            let data: Value = serde_json::from_str(data).expect("json");
            if frame.event.as_deref() == Some("snapshot") {
                assert!(ids.is_empty(), "the snapshot comes first");
                assert_eq!(data["seq"], json!(id));
                let rows = data["balances"].as_array().expect("rows");
                assert_eq!(rows.len(), 1, "{data}");
                hot = Some(
                    rows[0]["balances"]
                        .get("BTC")
                        .and_then(|v| v.as_str())
                        .map_or(0.0, |v| v.parse::<f64>().expect("amount")),
                );
                cuts.push(id);
            } else if let Some(hot) = hot.as_mut() {
                // Each deposit debits `hot` (an asset account) by 1.
                *hot += 1.0;
            }
            ids.push(id);
        }
        let n = ids[0];
        assert_eq!(ids, (n..=last).collect::<Vec<_>>(), "no gap, no repeat");
        assert_eq!(
            hot,
            Some(final_hot),
            "the snapshot at {n} plus what followed"
        );
    }
    assert!(
        cuts.iter().any(|n| *n < last),
        "a snapshot raced the writer: {cuts:?}"
    );

    kill(fanout);
    let _ = stop.send(true);
    relay.abort();
    f.finish().await;
}
