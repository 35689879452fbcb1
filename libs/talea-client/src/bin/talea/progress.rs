//! `talea import`'s progress on stderr: an indicatif bar with rate and ETA
//! on a terminal, plain lines every few seconds otherwise (a log, a pipe).

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use indicatif::{BinaryBytes, HumanDuration, ProgressBar, ProgressStyle};

use crate::cli::ProgressMode;

/// Time between two plain progress lines (the first comes after the first
/// request, so a log shows at once that the import is under way).
const PLAIN_EVERY: Duration = Duration::from_secs(5);
/// How often the bar redraws on its own (its spinner and elapsed time move
/// even while a request is waiting for its answer).
const BAR_TICK: Duration = Duration::from_millis(200);
/// The bar over a file: bytes read of its size, hence a percentage and an
/// ETA; the message (rate first) is cut to the terminal's width.
const FILE_TEMPLATE: &str = "{spinner} [{bar:24}] {percent:>3}% ETA {eta:>4}  {wide_msg}";
/// The spinner over stdin, whose size is unknown: no percentage, no ETA.
const STREAM_TEMPLATE: &str = "{spinner} {elapsed:>4}  {wide_msg}";

/// Where the import stands, as progress shows it.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Counts {
    /// The last line read (1-based).
    pub line: u64,
    /// Bytes read.
    pub bytes: u64,
    pub committed: u64,
    pub deduplicated: u64,
    pub refused: u64,
    /// Lines that passed the local checks (what `--dry-run` counts).
    pub valid: u64,
}

#[derive(Debug)]
enum Kind {
    Bar(ProgressBar),
    Plain { last: Option<Instant> },
    Off,
}

/// The progress display of one import.
#[derive(Debug)]
pub(crate) struct Progress {
    kind: Kind,
    started: Instant,
    /// The input's size in bytes, when it is a file.
    total: Option<u64>,
    dry_run: bool,
}

impl Progress {
    /// A bar when `mode` is auto and stderr is a terminal, plain lines for
    /// auto elsewhere and for plain, nothing for none.
    pub(crate) fn new(mode: ProgressMode, total: Option<u64>, dry_run: bool) -> Self {
        let kind = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => Kind::Bar(bar(total)),
            ProgressMode::Auto | ProgressMode::Plain => Kind::Plain { last: None },
            ProgressMode::None => Kind::Off,
        };
        Self {
            kind,
            started: Instant::now(),
            total,
            dry_run,
        }
    }

    /// Shows `counts`: the bar at once, a plain line when one is due.
    pub(crate) fn update(&mut self, counts: &Counts) {
        let elapsed = self.started.elapsed();
        match &mut self.kind {
            Kind::Bar(bar) => {
                bar.set_position(counts.bytes);
                let rate = lines_per_sec(counts, elapsed);
                bar.set_message(format!(
                    "{rate} lines/s, {}",
                    counts_text(counts, self.dry_run)
                ));
            }
            Kind::Plain { last } => {
                let now = Instant::now();
                if last.is_some_and(|at| now.duration_since(at) < PLAIN_EVERY) {
                    return;
                }
                *last = Some(now);
                eprintln!("{}", plain_line(counts, self.total, self.dry_run, elapsed));
            }
            Kind::Off => {}
        }
    }

    /// Clears the bar, so the summary is not printed over it.
    pub(crate) fn finish(&self) {
        if let Kind::Bar(bar) = &self.kind {
            bar.finish_and_clear();
        }
    }
}

/// The bar (over a file's bytes) or spinner (over stdin), ticking on its own.
fn bar(total: Option<u64>) -> ProgressBar {
    let (bar, template) = match total {
        Some(len) => (ProgressBar::new(len), FILE_TEMPLATE),
        None => (ProgressBar::new_spinner(), STREAM_TEMPLATE),
    };
    // The templates are constants; a bad one would be a bug, shown as the
    // default style rather than a panic.
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.enable_steady_tick(BAR_TICK);
    bar
}

/// Lines read per second since the start.
fn lines_per_sec(counts: &Counts, elapsed: Duration) -> u64 {
    let secs = elapsed.as_secs_f64();
    if secs <= 0.0 {
        return 0;
    }
    // Rounded to whole lines; the cast saturates on absurd values.
    (counts.line as f64 / secs).round() as u64
}

/// The counts in a few words.
fn counts_text(counts: &Counts, dry_run: bool) -> String {
    if dry_run {
        format!(
            "line {}: {} valid, {} refused",
            counts.line, counts.valid, counts.refused
        )
    } else {
        format!(
            "line {}: {} committed, {} deduplicated, {} refused",
            counts.line, counts.committed, counts.deduplicated, counts.refused
        )
    }
}

/// One plain progress line: the tally, and for a file how far through it
/// the import is and about how long the rest will take at the rate so far.
fn plain_line(counts: &Counts, total: Option<u64>, dry_run: bool, elapsed: Duration) -> String {
    let mut line = format!(
        "talea: import: {}; {} lines/s",
        counts_text(counts, dry_run),
        lines_per_sec(counts, elapsed)
    );
    if let Some(total) = total.filter(|t| *t > 0) {
        let done = counts.bytes.min(total);
        let percent = done.saturating_mul(100) / total;
        line.push_str(&format!("; {percent}% of {}", BinaryBytes(total)));
        if done > 0 && done < total {
            let left = elapsed.as_secs_f64() * (total - done) as f64 / done as f64;
            if left.is_finite() {
                let left = Duration::from_secs_f64(left.clamp(0.0, 1e9));
                line.push_str(&format!(", about {} left", HumanDuration(left)));
            }
        }
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_lines_give_the_rate_share_and_time_left() {
        let counts = Counts {
            line: 100,
            bytes: 250,
            committed: 90,
            deduplicated: 8,
            refused: 2,
            valid: 100,
        };
        let line = plain_line(&counts, Some(1000), false, Duration::from_secs(10));
        assert_eq!(
            line,
            "talea: import: line 100: 90 committed, 8 deduplicated, 2 refused; 10 lines/s; \
             25% of 1000 B, about 30 seconds left"
        );
        let stdin = plain_line(&counts, None, true, Duration::ZERO);
        assert_eq!(
            stdin,
            "talea: import: line 100: 100 valid, 2 refused; 0 lines/s"
        );
    }

    #[test]
    fn the_templates_parse() {
        assert!(ProgressStyle::with_template(FILE_TEMPLATE).is_ok());
        assert!(ProgressStyle::with_template(STREAM_TEMPLATE).is_ok());
    }
}
