//! Metric families of the live-stream side: the relay (Postgres → NATS) and the SSE fan-out.

use prometheus::{Histogram, IntCounter, IntCounterVec, IntGauge, Registry};

use super::{counter, counter_vec, gauge, histogram, render};

/// The relay's metric families, in their own registry.
#[derive(Debug, Clone)]
pub struct RelayMetrics {
    registry: Registry,
    /// Events published to NATS (a repeat after a restart counts again).
    pub published_total: IntCounter,
    /// Events committed but not yet published, all books together, at the
    /// last check.
    pub lag_events: IntGauge,
    /// 1 while this relay holds leadership, else 0.
    pub leader: IntGauge,
    /// Failures, by stage (`database`, `nats`).
    pub errors_total: IntCounterVec,
}

impl RelayMetrics {
    /// The `stage` values of `errors_total`.
    pub const STAGES: [&'static str; 2] = ["database", "nats"];

    /// Creates and registers every family.
    pub fn new() -> Self {
        let registry = Registry::new();
        let errors_total = counter_vec(
            &registry,
            "talea_relay_errors_total",
            "Relay failures, by stage.",
            &["stage"],
        );
        for stage in Self::STAGES {
            errors_total.with_label_values(&[stage]);
        }
        Self {
            published_total: counter(
                &registry,
                "talea_relay_published_total",
                "Events published to NATS.",
            ),
            lag_events: gauge(
                &registry,
                "talea_relay_lag_events",
                "Events committed but not yet published, all books together.",
            ),
            leader: gauge(
                &registry,
                "talea_relay_leader",
                "1 while this relay is the publishing leader.",
            ),
            errors_total,
            registry,
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

impl Default for RelayMetrics {
    fn default() -> Self {
        Self::new()
    }
}

/// Stream metric families (the fan-out's, and talead's own streams).
#[derive(Debug, Clone)]
pub struct StreamMetrics {
    /// Open SSE streams.
    pub subscribers: IntGauge,
    /// Time from commit to the event being queued for a subscriber.
    pub delivery_latency_seconds: Histogram,
    /// Events queued for subscribers.
    pub delivered_total: IntCounter,
    /// Pages read from the log for resumes, catch-ups and repairs.
    pub backfill_reads_total: IntCounter,
    /// Gaps on the live feed filled from the log.
    pub gap_repairs_total: IntCounter,
    /// Streams cut off because their buffer overflowed.
    pub slow_consumer_disconnects_total: IntCounter,
    /// Streams ended, by reason.
    pub ended_total: IntCounterVec,
    /// Streams refused before they started, by the limit that refused them.
    pub refused_total: IntCounterVec,
}

impl StreamMetrics {
    /// The `reason` values of `ended_total`.
    pub const END_REASONS: [&'static str; 5] = [
        "client_gone",
        "slow_consumer",
        "shutdown",
        "forbidden",
        "failed",
    ];

    /// The `reason` values of `refused_total`: a token at
    /// `TALEA_SSE_MAX_PER_TOKEN` (429), the process at
    /// `TALEA_SSE_MAX_CONNECTIONS` (503).
    pub const REFUSE_REASONS: [&'static str; 2] = ["token_cap", "connections"];

    /// Registers every family in `registry` with names starting `prefix`
    /// (`talea_fanout` in the fan-out, `talea_stream` in talead).
    pub fn register(registry: &Registry, prefix: &str) -> Self {
        let ended_total = counter_vec(
            registry,
            &format!("{prefix}_streams_ended_total"),
            "Streams ended, by reason.",
            &["reason"],
        );
        for reason in Self::END_REASONS {
            ended_total.with_label_values(&[reason]);
        }
        let refused_total = counter_vec(
            registry,
            &format!("{prefix}_streams_refused_total"),
            "Streams refused before they started, by the limit that refused them.",
            &["reason"],
        );
        for reason in Self::REFUSE_REASONS {
            refused_total.with_label_values(&[reason]);
        }
        Self {
            subscribers: gauge(
                registry,
                &format!("{prefix}_subscribers"),
                "Open SSE streams.",
            ),
            delivery_latency_seconds: histogram(
                registry,
                &format!("{prefix}_delivery_latency_seconds"),
                "Time from commit to the event being queued for a subscriber.",
                vec![
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
                ],
            ),
            delivered_total: counter(
                registry,
                &format!("{prefix}_delivered_total"),
                "Events queued for subscribers.",
            ),
            backfill_reads_total: counter(
                registry,
                &format!("{prefix}_backfill_reads_total"),
                "Pages read from the log for resumes, catch-ups and repairs.",
            ),
            gap_repairs_total: counter(
                registry,
                &format!("{prefix}_gap_repairs_total"),
                "Gaps on the live feed filled from the log.",
            ),
            slow_consumer_disconnects_total: counter(
                registry,
                &format!("{prefix}_slow_consumer_disconnects_total"),
                "Streams cut off because their buffer overflowed.",
            ),
            ended_total,
            refused_total,
        }
    }
}

/// The fan-out's metric families, in their own registry.
#[derive(Debug, Clone)]
pub struct FanoutMetrics {
    registry: Registry,
    /// The stream families, named `talea_fanout_*`.
    pub stream: StreamMetrics,
    /// NATS messages received.
    pub nats_messages_total: IntCounter,
}

impl FanoutMetrics {
    /// Creates and registers every family.
    pub fn new() -> Self {
        let registry = Registry::new();
        Self {
            stream: StreamMetrics::register(&registry, "talea_fanout"),
            nats_messages_total: counter(
                &registry,
                "talea_fanout_nats_messages_total",
                "NATS messages received.",
            ),
            registry,
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

impl Default for FanoutMetrics {
    fn default() -> Self {
        Self::new()
    }
}
