//! Spawning `talea-scope` with a clean environment, and waiting on processes with a deadline.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_talea-scope");

pub const SERVICE_TOKEN: &str = "svc-token-for-tests";

/// A `talea-scope` command in `dir` with no inherited `TALEA_*` variable.
pub fn scope_command(dir: &Path) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("TALEA_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// Runs a command expected to exit by itself, killing it after `deadline`.
pub fn run_to_exit(mut cmd: Command, deadline: Duration) -> Output {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawns");
    let started = Instant::now();
    loop {
        if child.try_wait().expect("waits").is_some() {
            return child.wait_with_output().expect("output");
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "still running after {deadline:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A running `talea-scope`, killed when dropped.
pub struct Scope {
    pub child: Child,
    /// `http://127.0.0.1:port`
    pub url: String,
    /// The metrics URL, when a metrics listener was asked for.
    pub metrics: Option<String>,
}

impl Scope {
    /// Starts the service with `envs` (plus the service token) and waits for its address.
    pub fn start(dir: &Path, envs: &[(&str, &str)]) -> Self {
        let mut cmd = scope_command(dir);
        cmd.env("TALEA_SCOPE_SERVICE_TOKEN", SERVICE_TOKEN)
            .envs(envs.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let mut child = cmd.spawn().expect("spawns");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let (mut url, mut metrics) = (String::new(), None);
        while url.is_empty() {
            let line = lines
                .next()
                .expect("talea-scope printed its address before exiting")
                .expect("line");
            if let Some(m) = line.strip_prefix("talea-scope metrics on ") {
                metrics = Some(m.to_owned());
            } else if let Some(u) = line.strip_prefix("talea-scope listening on ") {
                url = u.to_owned();
            }
        }
        Self {
            child,
            url,
            metrics,
        }
    }

    /// `host:port`, to start a successor on the same address.
    pub fn addr(&self) -> &str {
        self.url.trim_start_matches("http://")
    }

    /// SIGKILL: no graceful anything, as when a node dies.
    pub fn kill(&mut self) {
        self.child.kill().expect("kills");
        self.child.wait().expect("reaped");
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
