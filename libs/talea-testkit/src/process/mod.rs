//! Real processes for fault and end-to-end tests: one module per component
//! (talea's binaries, [`workspace_bin`], a throwaway Postgres cluster, a
//! throwaway NATS server, talea-scope and talead), each owned by one test
//! and stopped when dropped.
//!
//! Everything here is blocking (`std::process`); async tests call the slow
//! parts (starting and restarting servers) through the `async` wrappers,
//! which run them on tokio's blocking pool.

mod build;
mod nats;
mod postgres;
mod scope;
mod service;
mod talead;

use std::ffi::OsStr;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

pub use build::{workspace_bin, workspace_bin_async};
pub use nats::{NatsServer, find_nats_server};
pub use postgres::{PgCluster, PgStopMode, find_pg_bin};
pub use scope::{SCOPE_LISTENING, SCOPE_METRICS, scope_command};
pub use service::Service;
pub use talead::{TALEAD_LISTENING, TALEAD_METRICS, talead_serve};

/// How long a spawned service may take to print its address, and a
/// throwaway server to answer.
pub const START_DEADLINE: Duration = Duration::from_secs(30);

/// A loopback TCP port nothing listened on a moment ago. A race with
/// another process stays possible; servers started on it fail loudly.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr().context("local address")?.port())
}

/// A command for one of talea's binaries in `dir`, with no inherited
/// `TALEA_*` variable (the test sets exactly what it means) and
/// `RUST_LOG=warn`.
pub fn talea_command(bin: impl AsRef<OsStr>, dir: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.current_dir(dir);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("TALEA_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("RUST_LOG", "warn");
    cmd
}

/// Runs `cmd`, expected to exit by itself, with its output captured; kills
/// it and fails (with what it printed) if it is still running after
/// `deadline`. The exit status is the caller's to judge.
pub fn run_to_exit(mut cmd: Command, deadline: Duration) -> anyhow::Result<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {:?}", cmd.get_program()))?;
    let started = Instant::now();
    loop {
        if child.try_wait().context("waiting")?.is_some() {
            return child.wait_with_output().context("reading the output");
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().context("reading the output")?;
            bail!(
                "{:?} still running after {deadline:?}: {}",
                cmd.get_program(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Runs `cmd` to completion with its output captured, failing (with the
/// output) on a non-zero exit.
pub(crate) fn run_checked(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: spawning {:?}", cmd.get_program()))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}):\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_environment_is_cleaned_of_talea_variables() {
        let cmd = talea_command("true", Path::new("/"));
        let removed = cmd
            .get_envs()
            .filter(|(k, v)| v.is_none() && k.to_string_lossy().starts_with("TALEA_"))
            .count();
        let set = std::env::vars_os()
            .filter(|(k, _)| k.to_string_lossy().starts_with("TALEA_"))
            .count();
        assert_eq!(removed, set);
    }

    #[test]
    fn a_command_that_does_not_exit_in_time_is_an_error() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo bye >&2; exit 4"]);
        let out = run_to_exit(cmd, Duration::from_secs(10)).expect("exits");
        assert_eq!(out.status.code(), Some(4));
        assert_eq!(String::from_utf8_lossy(&out.stderr), "bye\n");
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "exec sleep 30"]);
        assert!(run_to_exit(cmd, Duration::from_millis(100)).is_err());
    }
}
