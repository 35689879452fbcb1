//! Holds on the NATS path: a hold's `transaction` event (status `pending`)
//! and its `hold_expired` event travel relay → NATS → fan-out, resume
//! exactly, and pass an `accounts=` filter naming the hold's accounts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use talea_api::{LedgerApi, format_timestamp};
use talea_core::Timestamp;
use talea_testkit::sse::{self, SseReader};

use crate::{Fixture, TOKEN, kill};

/// Frames (id, event, data) of `url` until one is a `hold_expired` event.
async fn until_expired(url: &str, last_event_id: Option<u64>) -> Vec<(u64, String, Value)> {
    let mut request = reqwest::Client::new().get(url).bearer_auth(TOKEN);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id.to_string());
    }
    let r = request.send().await.expect("answer");
    assert_eq!(r.status(), 200, "{url}");
    let frames = SseReader::new(r)
        .until(Duration::from_secs(30), |frames| {
            frames
                .iter()
                .any(|f| f.event.as_deref() == Some("hold_expired"))
        })
        .await;
    frames
        .iter()
        .filter_map(|f| {
            let seq = sse::seq(f)?;
            Some((seq, f.event.clone().unwrap_or_default(), sse::json(f)))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hold_and_its_expiry_reach_fanout_subscribers_and_resume_exactly() {
    let f = Fixture::new().await;
    f.ledger.spawn_expirer();
    let (stop_relay, relay) = f.relay().await;
    let (fanout, port) = f.fanout(0).await;
    let stream = format!("http://127.0.0.1:{port}/v1/books/pay/stream");
    let funded = f.deposit("fund").await;

    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_micros();
    let expires_at = format_timestamp(Timestamp::from_micros(
        i64::try_from(now).expect("fits") + 1_500_000,
    ));
    let mut request = talea_testkit::ledger::transfer("hold", "alice", "hot", "0.5");
    request.pending = true;
    request.expires_at = Some(expires_at.clone());
    let hold = f
        .ledger
        .post_transaction("pay", request)
        .await
        .expect("holds");
    assert_eq!(hold.seq, funded + 1);

    // From the start: every event once, in order, the hold pending, then its expiry.
    let all = until_expired(&format!("{stream}?after_seq=0"), None).await;
    let seqs: Vec<u64> = all.iter().map(|e| e.0).collect();
    assert_eq!(seqs, (1..=hold.seq + 1).collect::<Vec<_>>(), "{all:?}");
    let (_, kind, data) = &all[all.len() - 2];
    assert_eq!(kind, "transaction");
    assert_eq!(data["status"], "pending");
    assert_eq!(data["tx_id"], json!(hold.tx_id));
    assert_eq!(data["expires_at"], json!(expires_at));
    let (_, kind, data) = &all[all.len() - 1];
    assert_eq!(kind, "hold_expired");
    assert_eq!(data["tx_id"], json!(hold.tx_id));

    // Resuming after the hold gives exactly its expiry; a filter on one of
    // its accounts passes both of its events.
    let resumed = until_expired(&stream, Some(hold.seq)).await;
    assert_eq!(
        resumed
            .iter()
            .map(|e| (e.0, e.1.as_str()))
            .collect::<Vec<_>>(),
        [(hold.seq + 1, "hold_expired")]
    );
    let filtered =
        until_expired(&format!("{stream}?after_seq={funded}&accounts=alice"), None).await;
    assert_eq!(
        filtered
            .iter()
            .map(|e| (e.0, e.1.as_str()))
            .collect::<Vec<_>>(),
        [(hold.seq, "transaction"), (hold.seq + 1, "hold_expired")]
    );

    kill(fanout);
    let _ = stop_relay.send(true);
    relay.abort();
    f.finish().await;
}
