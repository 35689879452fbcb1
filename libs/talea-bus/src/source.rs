//! The fan-out's live feed: a book's NATS subject, decoded into stream events.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use talea_api::{EventDto, bus};
use talea_stream::{LiveEvent, LiveSource};
use talea_telemetry::FanoutMetrics;
use tokio::sync::broadcast;

/// The pause before subscribing again after NATS refused a subscription.
const RESUBSCRIBE_PAUSE_MS: u64 = 500;

/// Follows `<prefix>.<book>` on NATS. Messages lost while NATS reconnects
/// are found by the hub's tail check and the sessions' gap repair.
#[derive(Debug, Clone)]
pub struct NatsSource {
    nats: async_nats::Client,
    subject_prefix: String,
    metrics: FanoutMetrics,
}

impl NatsSource {
    /// A source on `nats` under `subject_prefix` (`talea.v1.events`).
    pub fn new(nats: async_nats::Client, subject_prefix: String, metrics: FanoutMetrics) -> Self {
        Self {
            nats,
            subject_prefix,
            metrics,
        }
    }
}

#[async_trait]
impl LiveSource for NatsSource {
    async fn follow(&self, book: String, tx: broadcast::Sender<Arc<LiveEvent>>) {
        let subject = bus::events_subject(&self.subject_prefix, &book);
        loop {
            let mut subscriber = match self.nats.subscribe(subject.clone()).await {
                Ok(s) => s,
                Err(error) => {
                    tracing::warn!(%error, subject, "cannot subscribe; retrying");
                    tokio::time::sleep(Duration::from_millis(RESUBSCRIBE_PAUSE_MS)).await;
                    continue;
                }
            };
            while let Some(message) = subscriber.next().await {
                self.metrics.nats_messages_total.inc();
                match serde_json::from_slice::<EventDto>(&message.payload) {
                    Ok(dto) => {
                        let _ = tx.send(LiveEvent::from_dto(&dto));
                    }
                    Err(error) => tracing::warn!(%error, subject, "ignoring an undecodable event"),
                }
            }
            // The subscription ended (the client closed): subscribe again.
            tokio::time::sleep(Duration::from_millis(RESUBSCRIBE_PAUSE_MS)).await;
        }
    }
}
