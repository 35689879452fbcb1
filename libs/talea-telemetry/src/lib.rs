//! Logs and metrics: the tracing subscriber and the Prometheus metric families.
//!
//! Metric names start with `talea_`, use base units and never carry unbounded
//! label values (no book, account or token names).

mod bus;

pub use bus::{FanoutMetrics, RelayMetrics, StreamMetrics};

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
};

/// How log lines are written: `TALEA_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// Whether text log lines carry colour (ANSI escape codes): `TALEA_LOG_COLOR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogColor {
    /// Only when stderr is a terminal and `NO_COLOR` is unset or empty.
    #[default]
    Auto,
    /// Always, even into a file or a pipe.
    Always,
    /// Never.
    Never,
}

impl LogColor {
    /// Whether lines get colour, given where stderr goes and `NO_COLOR`
    /// (<https://no-color.org>: any non-empty value turns `auto` off).
    pub fn ansi(self, stderr_is_terminal: bool, no_color: Option<&str>) -> bool {
        match self {
            LogColor::Always => true,
            LogColor::Never => false,
            LogColor::Auto => stderr_is_terminal && no_color.is_none_or(str::is_empty),
        }
    }
}

/// The logging settings every service flattens into its parser; global,
/// so they may follow a subcommand (`talead serve --log-format json`).
#[derive(Debug, Clone, clap::Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log lines as `text` or `json` (one object per line).
    #[arg(long, global = true, env = "TALEA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Colour in text log lines: `auto` (only on a terminal, and not when
    /// `NO_COLOR` is set), `always` or `never`. JSON lines never have any.
    #[arg(long, global = true, env = "TALEA_LOG_COLOR", value_enum, default_value_t = LogColor::Auto)]
    pub log_color: LogColor,
    /// `NO_COLOR`, read with the other settings (no flag of its own).
    #[arg(long = "no-color-env", hide = true, global = true, env = "NO_COLOR")]
    pub no_color: Option<String>,
    /// Which log lines are written: `tracing` directives such as `info` or
    /// `talea_http=debug,info`; one that does not parse falls back to `info`.
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    pub log_filter: String,
}

impl LogArgs {
    /// Installs the global tracing subscriber with these settings.
    pub fn init(&self) {
        use std::io::IsTerminal as _;
        let ansi = self
            .log_color
            .ansi(std::io::stderr().is_terminal(), self.no_color.as_deref());
        init_tracing(self.log_format, &self.log_filter, ansi);
    }
}

/// Installs the global tracing subscriber: JSON lines or human-readable
/// text (with ANSI colour when `ansi`), filtered by `filter` (`info` when
/// it does not parse).
pub fn init_tracing(format: LogFormat, filter: &str, ansi: bool) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second initialisation (tests) is harmless, so its error is ignored.
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_ansi(false)
            .try_init(),
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
    };
}

/// Every metric family of a talea process, registered in its own registry
/// (not the global one, so two instances in one test process stay apart).
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// Drafts committed.
    pub commits_total: IntCounter,
    /// Posts answered with an earlier commit.
    pub deduplicated_total: IntCounter,
    /// Drafts refused by the store, by error code.
    pub rejected_total: IntCounterVec,
    /// Drafts per book batch (one book's share of a storage transaction).
    pub batch_size: Histogram,
    /// Books whose batches shared one storage transaction.
    pub books_per_commit: Histogram,
    /// Time to commit one batch.
    pub commit_duration_seconds: Histogram,
    /// Drafts waiting in committer queues, all books together.
    pub write_queue_depth: IntGauge,
    /// Live per-book committer tasks.
    pub committers: IntGauge,
    /// Requests shed, by reason (`inflight`, `queue_full`, `timeout`, `rate_limited`).
    pub shed_total: IntCounterVec,
    /// HTTP requests, by method, route template and status.
    pub http_requests_total: IntCounterVec,
    /// HTTP latency, by method and route template.
    pub http_request_duration_seconds: HistogramVec,
    /// Requests inside the admission limit now.
    pub http_inflight_requests: IntGauge,
    /// Database pool connections, by state (`idle`, `busy`, `max`).
    pub db_pool_connections: IntGaugeVec,
    /// Authentication: decisions, the introspection cache and the breaker.
    pub auth: AuthMetrics,
    /// talead's own SSE streams (`talea_stream_*`).
    pub stream: StreamMetrics,
    /// Background audits of books, by result (`clean`, `mismatch`, `error`).
    pub audits_total: IntCounterVec,
    /// Books whose last background audit found a mismatch.
    pub audit_mismatched_books: IntGauge,
    /// Per book, how many seqs a read instance's replica is behind the primary.
    pub replica_lag_seq: IntGaugeVec,
    /// Reads with a `min_seq`, by how they ended.
    pub replica_waits_total: IntCounterVec,
}

/// Authentication of API requests: decisions by outcome, and the token-scope
/// client's cache, calls and circuit breaker. Every label value is a constant
/// listed here, so series stay bounded whatever tokens are presented.
#[derive(Debug, Clone)]
pub struct AuthMetrics {
    /// Authentication decisions, by outcome (`authenticated`, `unauthorized`, `unavailable`).
    pub decisions_total: IntCounterVec,
    /// Introspection cache lookups that found a live answer.
    pub cache_hits_total: IntCounter,
    /// Introspection cache lookups that found nothing live.
    pub cache_misses_total: IntCounter,
    /// Answers held in the introspection cache now.
    pub cache_entries: IntGauge,
    /// Calls to the token-scope service, by result (`active`, `inactive`, `error`).
    pub introspections_total: IntCounterVec,
    /// Latency of calls to the token-scope service.
    pub introspection_duration_seconds: Histogram,
    /// The circuit breaker in front of the token-scope service:
    /// 0 closed, 1 half-open (one probe allowed), 2 open.
    pub breaker_state: IntGauge,
}

impl AuthMetrics {
    /// The `outcome` values of `decisions_total`.
    pub const OUTCOMES: [&'static str; 3] = ["authenticated", "unauthorized", "unavailable"];
    /// The `result` values of `introspections_total`.
    pub const RESULTS: [&'static str; 3] = ["active", "inactive", "error"];

    fn register(registry: &Registry, latency_buckets: &[f64]) -> Self {
        let decisions_total = counter_vec(
            registry,
            "talea_auth_decisions_total",
            "Authentication decisions on API requests, by outcome.",
            &["outcome"],
        );
        for outcome in Self::OUTCOMES {
            decisions_total.with_label_values(&[outcome]);
        }
        let introspections_total = counter_vec(
            registry,
            "talea_auth_introspections_total",
            "Calls to the token-scope service, by result.",
            &["result"],
        );
        for result in Self::RESULTS {
            introspections_total.with_label_values(&[result]);
        }
        Self {
            decisions_total,
            cache_hits_total: counter(
                registry,
                "talea_auth_cache_hits_total",
                "Token lookups answered from the introspection cache.",
            ),
            cache_misses_total: counter(
                registry,
                "talea_auth_cache_misses_total",
                "Token lookups the introspection cache could not answer.",
            ),
            cache_entries: gauge(
                registry,
                "talea_auth_cache_entries",
                "Introspection answers held in the cache.",
            ),
            introspections_total,
            introspection_duration_seconds: histogram(
                registry,
                "talea_auth_introspection_duration_seconds",
                "Latency of calls to the token-scope service.",
                latency_buckets.to_vec(),
            ),
            breaker_state: gauge(
                registry,
                "talea_auth_breaker_state",
                "Circuit breaker in front of the token-scope service: 0 closed, 1 half-open, 2 open.",
            ),
        }
    }
}

/// The metric families of `talea-scope`, in their own registry.
#[derive(Debug, Clone)]
pub struct ScopeMetrics {
    registry: Registry,
    /// Introspection requests answered, by outcome
    /// (`active`, `inactive`, `unauthorized`, `invalid_request`).
    pub introspect_requests_total: IntCounterVec,
    /// Time to answer one introspection request.
    pub introspect_duration_seconds: Histogram,
    /// Tokens loaded at start-up.
    pub tokens: IntGauge,
}

impl ScopeMetrics {
    /// The `outcome` values of `introspect_requests_total`.
    pub const OUTCOMES: [&'static str; 4] =
        ["active", "inactive", "unauthorized", "invalid_request"];

    /// Creates and registers every family.
    pub fn new() -> Self {
        let registry = Registry::new();
        let introspect_requests_total = counter_vec(
            &registry,
            "talea_introspect_requests_total",
            "Introspection requests answered, by outcome.",
            &["outcome"],
        );
        for outcome in Self::OUTCOMES {
            introspect_requests_total.with_label_values(&[outcome]);
        }
        Self {
            introspect_requests_total,
            introspect_duration_seconds: histogram(
                &registry,
                "talea_introspect_duration_seconds",
                "Time to answer one introspection request.",
                vec![
                    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1,
                ],
            ),
            tokens: gauge(
                &registry,
                "talea_scope_tokens",
                "Tokens loaded at start-up.",
            ),
            registry,
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

impl Default for ScopeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every family.
    pub fn new() -> Self {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| counter(&registry, name, help);
        let counter_vec =
            |name: &str, help: &str, labels: &[&str]| counter_vec(&registry, name, help, labels);
        let gauge = |name: &str, help: &str| gauge(&registry, name, help);
        let histogram =
            |name: &str, help: &str, buckets: Vec<f64>| histogram(&registry, name, help, buckets);
        let latency_buckets = vec![
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
        ];
        let http_request_duration_seconds = HistogramVec::new(
            HistogramOpts::new(
                "talea_http_request_duration_seconds",
                "HTTP request latency by method and route template.",
            )
            .buckets(latency_buckets.clone()),
            &["method", "route"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        register(&registry, http_request_duration_seconds.clone());
        let db_pool_connections = IntGaugeVec::new(
            Opts::new(
                "talea_db_pool_connections",
                "Database pool connections by state.",
            ),
            &["state"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        register(&registry, db_pool_connections.clone());
        let replica_lag_seq = IntGaugeVec::new(
            Opts::new(
                "talea_replica_lag_seq",
                "Per book, seqs committed on the primary and not yet applied by this read \
                 instance's replica (TALEA_REPLICA_URL), sampled at scrape time.",
            ),
            &["book"],
        )
        .unwrap_or_else(|e| unreachable_metric(&e));
        register(&registry, replica_lag_seq.clone());
        Self {
            commits_total: counter("talea_commits_total", "Transactions committed."),
            deduplicated_total: counter(
                "talea_deduplicated_total",
                "Posts answered with an earlier commit of the same idempotency key.",
            ),
            rejected_total: counter_vec(
                "talea_rejected_total",
                "Posts refused by the ledger, by error code.",
                &["error"],
            ),
            batch_size: histogram(
                "talea_batch_size",
                "Drafts per book batch (one book's share of a storage transaction).",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0],
            ),
            books_per_commit: histogram(
                "talea_books_per_commit",
                "Books whose batches shared one storage transaction.",
                vec![1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
            ),
            commit_duration_seconds: histogram(
                "talea_commit_duration_seconds",
                "Time to commit one batch to storage.",
                latency_buckets.clone(),
            ),
            write_queue_depth: gauge(
                "talea_write_queue_depth",
                "Drafts waiting in per-book committer queues.",
            ),
            committers: gauge("talea_committers", "Live per-book committer tasks."),
            shed_total: counter_vec(
                "talea_requests_shed_total",
                "Requests refused by admission control, by reason.",
                &["reason"],
            ),
            http_requests_total: counter_vec(
                "talea_http_requests_total",
                "HTTP requests by method, route template and status.",
                &["method", "route", "status"],
            ),
            http_request_duration_seconds,
            http_inflight_requests: gauge(
                "talea_http_inflight_requests",
                "Requests currently inside the admission limit.",
            ),
            db_pool_connections,
            auth: AuthMetrics::register(&registry, &latency_buckets),
            stream: StreamMetrics::register(&registry, "talea_stream"),
            audits_total: counter_vec(
                "talea_audits_total",
                "Background audits of a book's log, chain and projections, by result.",
                &["result"],
            ),
            audit_mismatched_books: gauge(
                "talea_audit_mismatched_books",
                "Books whose last background audit found a mismatch.",
            ),
            replica_lag_seq,
            replica_waits_total: counter_vec(
                "talea_replica_waits_total",
                "Reads with a min_seq, by result: fresh (answered at once), waited \
                 (answered after waiting), behind (503 replica_behind), ahead (409 min_seq_ahead).",
                &["result"],
            ),
            registry,
        }
    }

    /// The Prometheus text exposition of every family.
    pub fn render(&self) -> String {
        render(&self.registry)
    }
}

fn render(registry: &Registry) -> String {
    let mut out = Vec::new();
    // Encoding into a Vec cannot fail for well-formed families.
    let _ = TextEncoder::new().encode(&registry.gather(), &mut out);
    String::from_utf8(out).unwrap_or_default()
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).unwrap_or_else(|e| unreachable_metric(&e));
    register(registry, c.clone());
    c
}

fn counter_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let c = IntCounterVec::new(Opts::new(name, help), labels)
        .unwrap_or_else(|e| unreachable_metric(&e));
    register(registry, c.clone());
    c
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).unwrap_or_else(|e| unreachable_metric(&e));
    register(registry, g.clone());
    g
}

fn histogram(registry: &Registry, name: &str, help: &str, buckets: Vec<f64>) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))
        .unwrap_or_else(|e| unreachable_metric(&e));
    register(registry, h.clone());
    h
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn register<C: prometheus::core::Collector + 'static>(registry: &Registry, c: C) {
    // Names are constants of this file and registered once per registry, so
    // registration cannot collide; a failure would be a programming error.
    if let Err(e) = registry.register(Box::new(c)) {
        unreachable_metric(&e);
    }
}

fn unreachable_metric(e: &prometheus::Error) -> ! {
    panic!("metric definitions are constants and must be valid: {e}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_only_on_a_terminal_unless_asked() {
        let auto = LogColor::Auto;
        assert!(auto.ansi(true, None));
        assert!(auto.ansi(true, Some("")));
        assert!(!auto.ansi(true, Some("1")));
        assert!(!auto.ansi(false, None));
        assert!(LogColor::Always.ansi(false, Some("1")));
        assert!(!LogColor::Never.ansi(true, None));
    }

    #[test]
    fn renders_every_family_with_talea_prefix() {
        let m = Metrics::new();
        m.commits_total.inc();
        m.rejected_total.with_label_values(&["unbalanced"]).inc();
        m.http_requests_total
            .with_label_values(&["GET", "/health", "200"])
            .inc();
        m.http_request_duration_seconds
            .with_label_values(&["GET", "/health"])
            .observe(0.01);
        m.db_pool_connections.with_label_values(&["idle"]).set(1);
        let text = m.render();
        assert!(text.contains("talea_commits_total 1"));
        assert!(text.contains("talea_auth_decisions_total{outcome=\"unavailable\"} 0"));
        assert!(text.contains("talea_auth_breaker_state 0"));
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            assert!(line.starts_with("talea_"), "{line}");
        }
    }

    #[test]
    fn scope_metrics_render_apart() {
        let m = ScopeMetrics::new();
        m.tokens.set(3);
        let text = m.render();
        assert!(text.contains("talea_scope_tokens 3"));
        assert!(text.contains("talea_introspect_requests_total{outcome=\"active\"} 0"));
        assert!(!text.contains("talea_commits_total"));
    }
}
