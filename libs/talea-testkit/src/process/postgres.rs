//! [`PgCluster`]: a throwaway PostgreSQL cluster a test can stop and restart.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, anyhow};

use super::{START_DEADLINE, free_port, run_checked};

/// The path of a PostgreSQL server binary: from `PATH`, else the newest
/// `/usr/lib/postgresql/*/bin` (where Debian puts them), as
/// `scripts/lib/services.sh` finds them.
pub fn find_pg_bin(name: &str) -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = entry.path().join("bin").join(name);
            bin.is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).ok_or_else(|| {
        anyhow!("{name} not found on PATH or under /usr/lib/postgresql/*/bin: install the Debian package `postgresql`")
    })
}

/// How `pg_ctl` stops the server (`-m`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PgStopMode {
    /// Disconnects every client, then a clean shutdown checkpoint.
    Fast,
    /// Aborts every process: crash recovery at the next start.
    Immediate,
}

impl PgStopMode {
    fn as_arg(self) -> &'static str {
        match self {
            Self::Fast => "fast",
            Self::Immediate => "immediate",
        }
    }
}

/// A throwaway PostgreSQL cluster (initdb + pg_ctl) in a temporary
/// directory, on a free loopback port, with trust authentication for
/// `postgres`. Stopped (immediately) and deleted when dropped.
///
/// As root it runs as the `postgres` user (initdb refuses root), which the
/// Debian package creates.
#[derive(Debug)]
pub struct PgCluster {
    dir: tempfile::TempDir,
    pg_ctl: PathBuf,
    user: Option<String>,
    port: u16,
}

impl PgCluster {
    /// initdb, then start on a free port (three tries, in case another
    /// process takes the port meanwhile).
    pub fn start() -> anyhow::Result<PgCluster> {
        let initdb = find_pg_bin("initdb")?;
        let pg_ctl = find_pg_bin("pg_ctl")?;
        let is_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
        let user = is_root.then(|| "postgres".to_owned());
        let dir = tempfile::Builder::new()
            .prefix("talea-pg.")
            .tempdir_in("/tmp")
            .context("temporary directory")?;
        std::fs::create_dir(dir.path().join("sock")).context("socket directory")?;
        if let Some(user) = &user {
            run_checked(
                Command::new("chown").arg("-R").arg(user).arg(dir.path()),
                "chown of the cluster directory",
            )?;
        }
        let mut cluster = PgCluster {
            dir,
            pg_ctl,
            user,
            port: 0,
        };
        let mut init = cluster.as_user(&initdb);
        init.arg("-D").arg(cluster.data()).args([
            "-U",
            "postgres",
            "--auth=trust",
            "--no-locale",
            "-E",
            "UTF8",
        ]);
        run_checked(&mut init, "initdb")?;
        let mut last_error = None;
        for _ in 0..3 {
            cluster.port = free_port()?;
            match cluster.pg_ctl_start() {
                Ok(()) => return Ok(cluster),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("PostgreSQL did not start")))
    }

    /// A streaming standby of this cluster: `pg_basebackup -R -X stream`
    /// into a new directory (which writes `standby.signal` and the
    /// `primary_conninfo`), started on a free port as a hot standby.
    /// initdb's defaults suffice on the primary: `wal_level=replica`,
    /// `max_wal_senders=10`, and a `host replication all 127.0.0.1/32 trust`
    /// line in `pg_hba.conf` from `--auth=trust`.
    pub fn standby(&self) -> anyhow::Result<PgCluster> {
        let basebackup = find_pg_bin("pg_basebackup")?;
        let dir = tempfile::Builder::new()
            .prefix("talea-pg-standby.")
            .tempdir_in("/tmp")
            .context("temporary directory")?;
        std::fs::create_dir(dir.path().join("sock")).context("socket directory")?;
        if let Some(user) = &self.user {
            run_checked(
                Command::new("chown").arg("-R").arg(user).arg(dir.path()),
                "chown of the standby directory",
            )?;
        }
        let mut standby = PgCluster {
            dir,
            pg_ctl: self.pg_ctl.clone(),
            user: self.user.clone(),
            port: 0,
        };
        let mut backup = standby.as_user(&basebackup);
        backup
            .args(["-h", "127.0.0.1", "-p"])
            .arg(self.port.to_string())
            .args(["-U", "postgres", "-D"])
            .arg(standby.data())
            .args(["-R", "-X", "stream", "-c", "fast"]);
        run_checked(&mut backup, "pg_basebackup")?;
        let mut last_error = None;
        for _ in 0..3 {
            standby.port = free_port()?;
            match standby.pg_ctl_start() {
                Ok(()) => return Ok(standby),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("the standby did not start")))
    }

    /// Async [`PgCluster::standby`], on the blocking pool.
    pub async fn standby_async(self: &std::sync::Arc<Self>) -> anyhow::Result<PgCluster> {
        let primary = std::sync::Arc::clone(self);
        tokio::task::spawn_blocking(move || primary.standby())
            .await
            .context("the standby task")?
    }

    /// `pg_ctl promote -w`: a standby becomes a primary (it applies the WAL
    /// it has, ends recovery and accepts writes).
    pub fn promote(&self) -> anyhow::Result<()> {
        let mut cmd = self.pg_ctl();
        cmd.args(["-w", "-t", "60", "promote"]);
        run_checked(&mut cmd, "pg_ctl promote").map_err(|e| e.context(self.log_tail()))
    }

    /// Async [`PgCluster::promote`], on the blocking pool.
    pub async fn promote_async(self: &std::sync::Arc<Self>) -> anyhow::Result<()> {
        let cluster = std::sync::Arc::clone(self);
        tokio::task::spawn_blocking(move || cluster.promote())
            .await
            .context("the promote task")?
    }

    /// Async [`PgCluster::start`], on the blocking pool.
    pub async fn start_async() -> anyhow::Result<PgCluster> {
        tokio::task::spawn_blocking(PgCluster::start)
            .await
            .context("the start task")?
    }

    /// The URL of `database` as `postgres`.
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// The port the server listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn as_user(&self, program: &Path) -> Command {
        match &self.user {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    fn pg_ctl(&self) -> Command {
        let mut cmd = self.as_user(&self.pg_ctl);
        cmd.arg("-D").arg(self.data());
        cmd
    }

    fn pg_ctl_start(&self) -> anyhow::Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c max_connections=200",
            self.port,
            self.dir.path().join("sock").display()
        );
        let mut cmd = self.pg_ctl();
        cmd.arg("-l")
            .arg(self.dir.path().join("server.log"))
            .args(["-w", "-t"])
            .arg(START_DEADLINE.as_secs().to_string())
            .args(["-o", &options, "start"]);
        run_checked(&mut cmd, "pg_ctl start").map_err(|e| e.context(self.log_tail()))
    }

    /// Stops the server with `mode` (waiting until it is down).
    pub fn stop(&self, mode: PgStopMode) -> anyhow::Result<()> {
        let mut cmd = self.pg_ctl();
        cmd.args(["-m", mode.as_arg(), "-w", "-t", "30", "stop"]);
        run_checked(&mut cmd, "pg_ctl stop")
    }

    /// Starts the stopped server again on the same port.
    pub fn start_again(&self) -> anyhow::Result<()> {
        self.pg_ctl_start()
    }

    /// `pg_ctl restart -m <mode>`: stop, then start on the same port.
    pub fn restart(&self, mode: PgStopMode) -> anyhow::Result<()> {
        self.stop(mode)?;
        self.start_again()
    }

    /// Async [`PgCluster::restart`], on the blocking pool.
    pub async fn restart_async(
        self: &std::sync::Arc<Self>,
        mode: PgStopMode,
    ) -> anyhow::Result<()> {
        let cluster = std::sync::Arc::clone(self);
        tokio::task::spawn_blocking(move || cluster.restart(mode))
            .await
            .context("the restart task")?
    }

    /// The last lines of the server log, for error messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        format!(
            "server log:\n{}",
            lines[lines.len().saturating_sub(20)..].join("\n")
        )
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let _ = self.stop(PgStopMode::Immediate);
    }
}
