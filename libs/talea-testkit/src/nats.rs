//! NATS for a test: the server's URL, a subject prefix of its own, a
//! connection, and waits for what the server delivers.

use std::time::Duration;

use anyhow::anyhow;
use futures::StreamExt;

/// The NATS URL used when `TALEA_TEST_NATS_URL` is unset.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// The NATS URL for tests: `TALEA_TEST_NATS_URL`, or [`DEFAULT_NATS_URL`].
pub fn nats_url() -> String {
    std::env::var("TALEA_TEST_NATS_URL").unwrap_or_else(|_| DEFAULT_NATS_URL.to_owned())
}

/// A prefix unique to this call, safe as a NATS subject token (letters,
/// digits and `_` only), so concurrent tests on one server never see each
/// other's messages.
pub fn unique_prefix() -> String {
    format!("test_{}", uuid::Uuid::new_v4().simple())
}

/// A connection to [`nats_url`], with an error that says what to do.
pub async fn connect() -> anyhow::Result<async_nats::Client> {
    let url = nats_url();
    async_nats::connect(&url).await.map_err(|e| {
        anyhow!(
            "NATS is unreachable at {url} ({e}); run `scripts/test`, which starts one, \
             or install the Debian `nats-server` package (or set TALEA_TEST_NATS_URL)"
        )
    })
}

/// Subscribes `client` to `subject` and returns once the server has the
/// subscription (a flush round trip), so that nothing published after
/// this returns is missed.
pub async fn subscribe_ready(
    client: &async_nats::Client,
    subject: String,
) -> anyhow::Result<async_nats::Subscriber> {
    let subscriber = client
        .subscribe(subject.clone())
        .await
        .map_err(|e| anyhow!("subscribing to {subject}: {e}"))?;
    client
        .flush()
        .await
        .map_err(|e| anyhow!("flushing the subscription to {subject}: {e}"))?;
    Ok(subscriber)
}

/// The `Talea-Seq` header of a message the relay published, if any.
pub fn talea_seq(message: &async_nats::Message) -> Option<u64> {
    message
        .headers
        .as_ref()
        .and_then(|h| h.get("Talea-Seq"))
        .and_then(|v| v.as_str().parse().ok())
}

/// Whether a message with `Talea-Seq: last` arrives on `subscriber` within
/// `deadline` (earlier messages are read and dropped).
pub async fn wait_for_seq(
    subscriber: &mut async_nats::Subscriber,
    last: u64,
    deadline: Duration,
) -> bool {
    let reached = tokio::time::timeout(deadline, async {
        while let Some(message) = subscriber.next().await {
            if talea_seq(&message) == Some(last) {
                return true;
            }
        }
        false
    })
    .await;
    reached == Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_unique_subject_tokens() {
        let (a, b) = (unique_prefix(), unique_prefix());
        assert_ne!(a, b);
        assert!(a.bytes().all(|c| c.is_ascii_alphanumeric() || c == b'_'));
    }
}
