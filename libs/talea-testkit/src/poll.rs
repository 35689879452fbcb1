//! Polling with a deadline: how a test waits for a condition, never by sleeping a guess.

use std::future::Future;
use std::time::Duration;

use anyhow::anyhow;

/// Polls `check` until it yields a value or `deadline` passes.
///
/// The pause between polls starts at 5 ms and doubles up to 100 ms: short
/// enough that a test waits little longer than the condition takes, and it
/// is a poll interval, never a guess at how long something takes.
pub async fn wait_for<T, F, Fut>(deadline: Duration, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(5);
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if start.elapsed() >= deadline {
            return Err(anyhow!("condition not met within {deadline:?}"));
        }
        tokio::time::sleep(pause.min(deadline.saturating_sub(start.elapsed()))).await;
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Polls `check` until it returns true or `deadline` passes.
pub async fn wait_until<F, Fut>(deadline: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    wait_for(deadline, || {
        let fut = check();
        async move { fut.await.then_some(()) }
    })
    .await
}

/// Polls `GET url` until it answers a success status, or fails once
/// `deadline` passes: how a test waits for a spawned service that does not
/// print its readiness.
pub async fn wait_http_ok(url: &str, deadline: Duration) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    wait_until(deadline, || {
        let request = client.get(url).send();
        async move { request.await.is_ok_and(|r| r.status().is_success()) }
    })
    .await
    .map_err(|e| anyhow!("{url} never answered a success: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn polling_returns_early_and_times_out() {
        let mut calls = 0;
        let value = wait_for(Duration::from_secs(5), || {
            calls += 1;
            let done = calls >= 3;
            async move { done.then_some(calls) }
        })
        .await
        .expect("condition is met on the third call");
        assert_eq!(value, 3);
        let err = wait_until(Duration::from_millis(20), || async { false }).await;
        assert!(err.is_err());
    }
}
