//! A consecutive-failure circuit breaker in front of the token-scope service.
//!
//! Closed: every call goes through. After `failures_to_open` failures in a
//! row it opens: no call goes out for `open_for`, so a dead service costs
//! new tokens an immediate 503 instead of a timeout each. Then it lets one
//! probe through (half-open); the probe's success closes it, its failure
//! opens it again. Cached answers are served whatever the state: the breaker
//! only guards calls.

use std::time::Duration;

use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One probe is out; if it has not reported by `retry_at` (it was lost),
    /// another may go.
    HalfOpen {
        retry_at: Instant,
    },
}

/// What a state change means, for the one log line per transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transition {
    /// Nothing changed that an operator needs to see.
    None,
    /// The breaker opened: the service is failing.
    Opened,
    /// The breaker closed after being open or half-open: the service answers again.
    Closed,
}

#[derive(Debug)]
pub(crate) struct Breaker {
    state: State,
    failures_to_open: u32,
    open_for: Duration,
    probe_timeout: Duration,
}

impl Breaker {
    /// `probe_timeout` bounds how long one half-open probe may stay unreported.
    pub(crate) fn new(failures_to_open: u32, open_for: Duration, probe_timeout: Duration) -> Self {
        Self {
            state: State::Closed { failures: 0 },
            failures_to_open: failures_to_open.max(1),
            open_for,
            probe_timeout,
        }
    }

    /// Whether a call may start now. When the open period is over, the call
    /// allowed here is the half-open probe.
    pub(crate) fn try_acquire(&mut self, now: Instant) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } | State::HalfOpen { retry_at: until } if now >= until => {
                self.state = State::HalfOpen {
                    retry_at: now + self.probe_timeout.max(self.open_for),
                };
                true
            }
            State::Open { .. } | State::HalfOpen { .. } => false,
        }
    }

    /// A call got an answer (active or inactive).
    pub(crate) fn on_success(&mut self) -> Transition {
        let was_closed = matches!(self.state, State::Closed { .. });
        self.state = State::Closed { failures: 0 };
        if was_closed {
            Transition::None
        } else {
            Transition::Closed
        }
    }

    /// A call failed (transport error, timeout, non-2xx, malformed answer).
    pub(crate) fn on_failure(&mut self, now: Instant) -> Transition {
        match self.state {
            State::Closed { failures } if failures + 1 < self.failures_to_open => {
                self.state = State::Closed {
                    failures: failures + 1,
                };
                Transition::None
            }
            State::Closed { .. } => {
                self.state = State::Open {
                    until: now + self.open_for,
                };
                Transition::Opened
            }
            State::HalfOpen { .. } => {
                self.state = State::Open {
                    until: now + self.open_for,
                };
                Transition::None
            }
            // A call that started before the breaker opened failed late: it
            // must not extend the open period.
            State::Open { .. } => Transition::None,
        }
    }

    /// The gauge value: 0 closed, 1 half-open, 2 open.
    pub(crate) fn gauge(&self) -> i64 {
        match self.state {
            State::Closed { .. } => 0,
            State::HalfOpen { .. } => 1,
            State::Open { .. } => 2,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: Duration = Duration::from_secs(2);
    const PROBE: Duration = Duration::from_secs(1);

    #[test]
    fn opens_after_consecutive_failures_only() {
        let now = Instant::now();
        let mut b = Breaker::new(3, OPEN, PROBE);
        assert_eq!(b.on_failure(now), Transition::None);
        assert_eq!(b.on_failure(now), Transition::None);
        // A success in between resets the count.
        assert_eq!(b.on_success(), Transition::None);
        assert_eq!(b.on_failure(now), Transition::None);
        assert_eq!(b.on_failure(now), Transition::None);
        assert!(b.try_acquire(now));
        assert_eq!(b.on_failure(now), Transition::Opened);
        assert_eq!(b.gauge(), 2);
        assert!(!b.try_acquire(now));
        assert!(!b.try_acquire(now + OPEN - Duration::from_millis(1)));
    }

    #[test]
    fn half_open_lets_one_probe_through() {
        let now = Instant::now();
        let mut b = Breaker::new(1, OPEN, PROBE);
        assert_eq!(b.on_failure(now), Transition::Opened);
        let later = now + OPEN;
        assert!(b.try_acquire(later), "the probe");
        assert_eq!(b.gauge(), 1);
        assert!(!b.try_acquire(later), "only one probe");
        // The probe fails: open again for a full period.
        assert_eq!(b.on_failure(later), Transition::None);
        assert!(!b.try_acquire(later + OPEN - Duration::from_millis(1)));
        assert!(b.try_acquire(later + OPEN));
        assert_eq!(b.on_success(), Transition::Closed);
        assert_eq!(b.gauge(), 0);
        assert!(b.try_acquire(later + OPEN));
    }

    #[test]
    fn a_lost_probe_is_replaced() {
        let now = Instant::now();
        let mut b = Breaker::new(1, OPEN, PROBE);
        b.on_failure(now);
        assert!(b.try_acquire(now + OPEN));
        assert!(!b.try_acquire(now + OPEN + Duration::from_millis(1)));
        // The probe never reported (max(probe timeout, open period) later).
        assert!(b.try_acquire(now + OPEN + OPEN));
    }

    #[test]
    fn late_failures_do_not_extend_the_open_period() {
        let now = Instant::now();
        let mut b = Breaker::new(1, OPEN, PROBE);
        b.on_failure(now);
        b.on_failure(now + Duration::from_secs(1));
        assert!(b.try_acquire(now + OPEN));
    }
}
