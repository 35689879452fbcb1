//! talea-scope's own binary and service token for its tests; spawning,
//! readiness and deadlines are talea-testkit's.

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use talea_testkit::process::{SCOPE_LISTENING, SCOPE_METRICS, Service, talea_command};

const BIN: &str = env!("CARGO_BIN_EXE_talea-scope");

pub const SERVICE_TOKEN: &str = "svc-token-for-tests";

/// A `talea-scope` command in `dir` with no inherited `TALEA_*` variable.
pub fn scope_command(dir: &Path) -> Command {
    talea_command(BIN, dir)
}

/// Runs a command expected to exit by itself, killing it after `deadline`.
pub fn run_to_exit(cmd: Command, deadline: Duration) -> Output {
    talea_testkit::process::run_to_exit(cmd, deadline).unwrap_or_else(|e| panic!("{e:#}"))
}

/// A running `talea-scope`, killed when dropped.
pub struct Scope {
    pub service: Service,
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
            .envs(envs.iter().copied());
        let service = Service::spawn(cmd, SCOPE_LISTENING)
            .expect("talea-scope printed its address before exiting");
        Self {
            url: service.url.clone(),
            metrics: service.printed_url(SCOPE_METRICS).map(str::to_owned),
            service,
        }
    }

    /// `host:port`, to start a successor on the same address.
    pub fn addr(&self) -> &str {
        self.service.addr()
    }

    /// SIGKILL: no graceful anything, as when a node dies.
    pub fn kill(&mut self) {
        self.service.kill();
    }
}
