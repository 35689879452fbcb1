//! [`Service`]: a spawned service process, found ready by the address it prints.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use super::START_DEADLINE;

/// A running service process, killed (SIGKILL) when dropped.
#[derive(Debug)]
pub struct Service {
    child: Child,
    /// The first word after the listening prefix: `http://127.0.0.1:port`.
    pub url: String,
    /// What it printed up to and including its listening line.
    pub printed: Vec<String>,
}

impl Service {
    /// Spawns `cmd` and waits (at most [`START_DEADLINE`]) for a stdout line
    /// starting with `listening_prefix`; the next word is the service's URL.
    /// Stdout is drained afterwards so the service never blocks on it;
    /// stderr is inherited, so its logs land in the test's output.
    pub fn spawn(mut cmd: Command, listening_prefix: &str) -> anyhow::Result<Service> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("spawning {:?}", cmd.get_program()))?;
        let stdout = child.stdout.take().context("piped stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // After the listening line nobody receives: keep reading
                // (and dropping) so the pipe never fills up.
                let _ = tx.send(line);
            }
        });
        let started = Instant::now();
        let mut printed = Vec::new();
        loop {
            let left = START_DEADLINE.saturating_sub(started.elapsed());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let url = line
                        .strip_prefix(listening_prefix)
                        .and_then(|rest| rest.split_whitespace().next())
                        .map(str::to_owned);
                    printed.push(line);
                    if let Some(url) = url {
                        return Ok(Service {
                            child,
                            url,
                            printed,
                        });
                    }
                }
                Err(e) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    bail!(
                        "{:?} did not print {listening_prefix:?} ({e}; exit status {status:?}); \
                         it printed {printed:?}",
                        cmd.get_program()
                    );
                }
            }
        }
    }

    /// Async [`Service::spawn`], on the blocking pool.
    pub async fn spawn_async(cmd: Command, listening_prefix: &str) -> anyhow::Result<Service> {
        let prefix = listening_prefix.to_owned();
        tokio::task::spawn_blocking(move || Service::spawn(cmd, &prefix))
            .await
            .context("the spawn task")?
    }

    /// The first word after `prefix` on a line the service printed up to
    /// its listening line: e.g. the URL of a metrics listener announced
    /// before it.
    pub fn printed_url(&self, prefix: &str) -> Option<&str> {
        self.printed
            .iter()
            .find_map(|line| line.strip_prefix(prefix)?.split_whitespace().next())
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port` of the URL, to start a successor on the same address.
    pub fn addr(&self) -> &str {
        self.url
            .strip_prefix("http://")
            .unwrap_or(&self.url)
            .trim_end_matches('/')
    }

    /// SIGKILL and reap: no graceful anything, as when a node dies.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `deadline` for the exit status (SIGKILL
    /// and an error past it).
    pub fn terminate(&mut self, deadline: Duration) -> anyhow::Result<ExitStatus> {
        let pid = self.child.id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status()?;
        if !status.success() {
            bail!("kill -TERM {pid} failed: {status}");
        }
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if started.elapsed() > deadline {
                self.kill();
                bail!("pid {pid} still running {deadline:?} after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_that_never_prints_its_address_is_an_error() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "echo starting; exit 3"]);
        let err = Service::spawn(cmd, "listening on ").expect_err("no address");
        let text = format!("{err:#}");
        assert!(text.contains("starting"), "{text}");
    }

    #[test]
    fn a_service_url_is_the_word_after_the_prefix() {
        let mut cmd = Command::new("sh");
        cmd.args([
            "-c",
            "echo hello; echo 'x listening on http://127.0.0.1:9 (backend y)'; exec sleep 30",
        ]);
        let mut service = Service::spawn(cmd, "x listening on ").expect("address");
        assert_eq!(service.url, "http://127.0.0.1:9");
        assert_eq!(service.addr(), "127.0.0.1:9");
        assert_eq!(service.printed.len(), 2);
        assert_eq!(service.printed_url("hello"), None);
        assert_eq!(
            service.printed_url("x listening on "),
            Some("http://127.0.0.1:9")
        );
        let status = service
            .terminate(Duration::from_secs(10))
            .expect("stops on SIGTERM");
        assert!(!status.success());
    }
}
