//! The SDK's retry policy: which failures are retried, how long to wait, when to give up.
//!
//! Every talea write carries an idempotency key, so sending the exact same
//! request again is always safe: a post that had in fact committed comes back
//! as the original commit (`deduplicated: true`). That is what lets the SDK
//! retry 408, 429, 503 and transport failures blindly. Every other status is
//! the server's final word and is returned at once.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use talea_api::ApiError;
use tokio::time::Instant;

/// How the SDK retries. The defaults suit an interactive caller: up to 8
/// attempts within 60 s, waits growing from 100 ms to 5 s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Most attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Total time budget from the first attempt: no attempt starts, and no
    /// wait is begun, that would end past it.
    pub deadline: Duration,
    /// The wait before the first retry, before jitter; it doubles per retry.
    pub base_delay: Duration,
    /// The longest computed wait (a server's `Retry-After` may ask for more,
    /// and is honoured).
    pub max_delay: Duration,
    /// The longest a single attempt may take (connect, send, read the answer).
    /// Longer than the server's own request deadline (10 s by default), so a
    /// slow post is normally answered 408 by the server rather than cut off here.
    pub attempt_timeout: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            deadline: Duration::from_secs(60),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(15),
        }
    }
}

impl RetryPolicy {
    /// One attempt, no retries (the other limits keep their defaults).
    pub fn no_retries() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The wait before retry number `retry` (1 for the first retry).
    ///
    /// The exponential part uses "equal jitter": half of the capped
    /// `base_delay * 2^(retry-1)` plus a random share of the other half, so
    /// waits keep growing while clients that failed together spread out.
    /// A `Retry-After` is a floor, never shortened; up to a tenth of it is
    /// added at random so that every client told "1 second" does not come
    /// back in the same millisecond.
    pub fn delay(&self, retry: u32, retry_after: Option<Duration>) -> Duration {
        self.delay_with(retry, retry_after, &mut rand::rng())
    }

    pub(crate) fn delay_with(
        &self,
        retry: u32,
        retry_after: Option<Duration>,
        rng: &mut impl Rng,
    ) -> Duration {
        let exponent = retry.saturating_sub(1).min(31);
        let cap = self
            .base_delay
            .saturating_mul(1u32 << exponent)
            .min(self.max_delay);
        let half = cap / 2;
        let backoff = half + random_up_to(half, rng);
        match retry_after {
            Some(after) => after.max(backoff) + random_up_to(after / 10, rng),
            None => backoff,
        }
    }
}

fn random_up_to(max: Duration, rng: &mut impl Rng) -> Duration {
    let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
    if nanos == 0 {
        Duration::ZERO
    } else {
        Duration::from_nanos(rng.random_range(0..=nanos))
    }
}

/// Why an attempt is being retried.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryReason {
    /// The server answered a retryable status (408, 429 or 503).
    Status {
        /// The HTTP status.
        status: u16,
        /// The error code from the body (`timeout`, `overloaded`, …).
        code: String,
    },
    /// No answer: the connection was refused or reset, or the attempt timed out.
    Transport(String),
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Status { status, code } => write!(f, "{status} {code}"),
            Self::Transport(message) => f.write_str(message),
        }
    }
}

/// What the observer set with `TaleaClientBuilder::on_retry` hears, once
/// before each wait.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryNotice {
    /// The attempt that failed, from 1.
    pub attempt: u32,
    /// The most attempts the policy allows.
    pub max_attempts: u32,
    /// Why it failed.
    pub reason: RetryReason,
    /// How long the SDK waits before the next attempt.
    pub delay: Duration,
    /// Time since the first attempt started.
    pub elapsed: Duration,
}

/// A callback told about every retry (for logs, metrics, or a CLI's stderr).
pub(crate) type Observer = Arc<dyn Fn(&RetryNotice) + Send + Sync>;

/// The result of one attempt, as the retry loop sees it.
#[derive(Debug)]
pub(crate) enum Attempt<T> {
    /// A final answer: success.
    Done(T),
    /// A final answer: refused, never retried.
    Fatal(ApiError),
    /// The server answered a retryable status.
    Retry {
        /// The server's error, returned as is if no attempt is left.
        error: ApiError,
        /// Its `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// No answer at all.
    Transport(String),
}

/// Runs `attempt` until it gives a final answer or the policy is exhausted.
///
/// When retries run out on a retryable status, the server's last error is
/// returned unchanged (so it equals what the in-process ledger would give).
/// When they run out on transport failures, the result is `unavailable`
/// with a message saying what happened and how long the SDK tried.
pub(crate) async fn run<T, F, Fut>(
    policy: &RetryPolicy,
    observer: Option<&Observer>,
    write: bool,
    mut attempt: F,
) -> Result<T, ApiError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Attempt<T>>,
{
    let start = Instant::now();
    let max_attempts = policy.max_attempts.max(1);
    let mut number = 0u32;
    loop {
        number += 1;
        // Even an exhausted deadline gives the first attempt a moment, so a
        // zero deadline means "one quick try", not "fail without trying".
        let remaining = policy
            .deadline
            .saturating_sub(start.elapsed())
            .max(Duration::from_millis(1));
        let budget = policy.attempt_timeout.min(remaining);
        let outcome = match tokio::time::timeout(budget, attempt()).await {
            Ok(outcome) => outcome,
            Err(_) => Attempt::Transport(format!("no answer within {}", Millis(budget))),
        };
        let (reason, retry_after, last) = match outcome {
            Attempt::Done(value) => return Ok(value),
            Attempt::Fatal(error) => return Err(error),
            Attempt::Retry { error, retry_after } => (
                RetryReason::Status {
                    status: error.status(),
                    code: error.code().to_owned(),
                },
                retry_after,
                Err(error),
            ),
            Attempt::Transport(message) => {
                (RetryReason::Transport(message.clone()), None, Ok(message))
            }
        };
        let give_up = |last: Result<String, ApiError>| match last {
            Err(error) => error,
            Ok(message) => ApiError::unavailable(format!(
                "{message} (gave up after {number} attempt{} in {}){}",
                if number == 1 { "" } else { "s" },
                Millis(start.elapsed()),
                if write {
                    "; the write may or may not have been applied: \
                     retrying it with the same idempotency key is safe"
                } else {
                    ""
                },
            )),
        };
        if number >= max_attempts {
            return Err(give_up(last));
        }
        let delay = policy.delay(number, retry_after);
        // A wait that would end past the deadline is not begun: the caller
        // learns now rather than after sleeping for nothing.
        if start.elapsed() + delay >= policy.deadline {
            return Err(give_up(last));
        }
        if let Some(observer) = observer {
            observer(&RetryNotice {
                attempt: number,
                max_attempts,
                reason,
                delay,
                elapsed: start.elapsed(),
            });
        }
        tokio::time::sleep(delay).await;
    }
}

/// A duration printed in whole milliseconds (or seconds with one decimal).
pub(crate) struct Millis(pub Duration);

impl fmt::Display for Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms >= 10_000 {
            write!(f, "{:.1}s", self.0.as_secs_f64())
        } else {
            write!(f, "{ms}ms")
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            deadline: Duration::from_secs(60),
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
            attempt_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn delays_grow_with_equal_jitter_and_are_capped() {
        let p = policy();
        let mut rng = rand::rng();
        for _ in 0..200 {
            let d1 = p.delay_with(1, None, &mut rng);
            assert!((50..=100).contains(&d1.as_millis()), "{d1:?}");
            let d3 = p.delay_with(3, None, &mut rng);
            assert!((200..=400).contains(&d3.as_millis()), "{d3:?}");
            // Capped at max_delay, whatever the retry number.
            let d40 = p.delay_with(40, None, &mut rng);
            assert!((500..=1000).contains(&d40.as_millis()), "{d40:?}");
        }
    }

    #[test]
    fn retry_after_is_a_floor_with_a_little_spread() {
        let p = policy();
        let mut rng = rand::rng();
        for _ in 0..200 {
            let d = p.delay_with(1, Some(Duration::from_secs(2)), &mut rng);
            assert!((2000..=2200).contains(&d.as_millis()), "{d:?}");
            // A Retry-After of 0 still leaves the exponential backoff.
            let d = p.delay_with(4, Some(Duration::ZERO), &mut rng);
            assert!((400..=800).contains(&d.as_millis()), "{d:?}");
        }
    }

    fn overloaded() -> ApiError {
        ApiError::Overloaded {
            status: 503,
            retry_after_s: 1,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn retries_until_done_waiting_as_told() {
        let calls = AtomicU32::new(0);
        let notices = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&notices);
        let observer: Observer = Arc::new(move |n: &RetryNotice| {
            seen.lock().expect("not poisoned").push(n.clone());
        });
        let start = Instant::now();
        let result = run(&policy(), Some(&observer), true, || {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                match n {
                    1 => Attempt::Transport("connection refused".to_owned()),
                    2 => Attempt::Retry {
                        error: overloaded(),
                        retry_after: Some(Duration::from_secs(3)),
                    },
                    _ => Attempt::Done(n),
                }
            }
        })
        .await;
        assert_eq!(result, Ok(3));
        let notices = notices.lock().expect("not poisoned");
        assert_eq!(notices.len(), 2);
        assert_eq!(
            notices[0].reason,
            RetryReason::Transport("connection refused".to_owned())
        );
        assert_eq!(
            notices[1].reason,
            RetryReason::Status {
                status: 503,
                code: "overloaded".to_owned()
            }
        );
        // The paused clock advanced by the waits (timers round up to the
        // millisecond): Retry-After honoured, nothing slept beyond the waits.
        assert!(notices[1].delay >= Duration::from_secs(3));
        let waits = notices[0].delay + notices[1].delay;
        let elapsed = start.elapsed();
        assert!(
            elapsed >= waits && elapsed <= waits + Duration::from_millis(2),
            "{elapsed:?} for waits of {waits:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn fatal_errors_are_returned_at_once() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = run(&policy(), None, true, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Attempt::Fatal(ApiError::Unauthorized) }
        })
        .await;
        assert_eq!(result, Err(ApiError::Unauthorized));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn attempts_are_capped_and_the_last_server_error_returned() {
        let calls = AtomicU32::new(0);
        let result: Result<(), _> = run(&policy(), None, true, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async {
                Attempt::Retry {
                    error: overloaded(),
                    retry_after: None,
                }
            }
        })
        .await;
        assert_eq!(result, Err(overloaded()));
        assert_eq!(calls.load(Ordering::SeqCst), 5);
    }

    #[tokio::test(start_paused = true)]
    async fn the_deadline_bounds_waits_and_attempts() {
        let p = RetryPolicy {
            max_attempts: 1000,
            deadline: Duration::from_secs(10),
            ..policy()
        };
        let calls = AtomicU32::new(0);
        let start = Instant::now();
        let result: Result<(), _> = run(&p, None, true, || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Attempt::Transport("connection reset".to_owned()) }
        })
        .await;
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
        let calls = calls.load(Ordering::SeqCst);
        assert!((5..1000).contains(&calls), "{calls} attempts");
        match result {
            Err(ApiError::Unavailable { message }) => {
                assert!(message.contains("connection reset"), "{message}");
                assert!(message.contains(&format!("{calls} attempts")), "{message}");
            }
            other => panic!("expected unavailable, got {other:?}"),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_retry_after_past_the_deadline_gives_up_without_waiting() {
        let p = RetryPolicy {
            deadline: Duration::from_secs(5),
            ..policy()
        };
        let start = Instant::now();
        let result: Result<(), _> = run(&p, None, true, || async {
            Attempt::Retry {
                error: ApiError::RateLimited { retry_after_s: 30 },
                retry_after: Some(Duration::from_secs(30)),
            }
        })
        .await;
        assert_eq!(result, Err(ApiError::RateLimited { retry_after_s: 30 }));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_attempt_times_out_and_is_retried() {
        let p = RetryPolicy {
            attempt_timeout: Duration::from_secs(2),
            ..policy()
        };
        let calls = AtomicU32::new(0);
        let result = run(&p, None, true, || {
            let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
            async move {
                if n == 1 {
                    std::future::pending::<()>().await;
                }
                Attempt::Done(n)
            }
        })
        .await;
        assert_eq!(result, Ok(2));
    }
}
