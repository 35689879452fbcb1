//! Real processes for fault tests: talea's binaries (other packages' built
//! on demand, [`workspace_bin`]), a throwaway Postgres cluster and a
//! throwaway NATS server, each owned by one test and stopped when dropped.
//!
//! Everything here is blocking (`std::process`); async tests call the slow
//! parts (starting and restarting servers) through the `async` wrappers,
//! which run them on tokio's blocking pool.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};

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

/// The path of the binary `bin` of the workspace package `package`, built
/// first (once per test process) with `cargo build --workspace --tests`
/// into the running test's own target directory and profile: within a
/// workspace test run everything is fresh already and this costs a second.
///
/// `env!("CARGO_BIN_EXE_…")` names only the binaries of the test's own
/// package, and services never depend on each other (not even as
/// dev-dependencies), so a test that runs another service's binary beside
/// its own (the fan-out's tests run talead and the relay; talead's run
/// talea-scope) asks cargo for it. Cargo decides whether anything needs
/// rebuilding: a binary left by an earlier build is never run stale. The
/// first call may wait for cargo's lock on the target directory while
/// another build holds it.
pub fn workspace_bin(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    use std::collections::HashMap;
    use std::sync::{Mutex, PoisonError};

    static BUILT: Mutex<Option<HashMap<String, PathBuf>>> = Mutex::new(None);
    // Held across the build: two tests of one process asking for the same
    // binary build it once.
    let mut built = BUILT.lock().unwrap_or_else(PoisonError::into_inner);
    let built = built.get_or_insert_with(HashMap::new);
    let key = format!("{package}/{bin}");
    if let Some(path) = built.get(&key) {
        return Ok(path.clone());
    }
    let exe = std::env::current_exe().context("the test's own path")?;
    // A test binary lives in `<target>/<profile>/deps/`.
    let profile_dir = exe
        .parent()
        .filter(|deps| deps.file_name().is_some_and(|n| n == "deps"))
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("{} is not in a cargo `deps` directory", exe.display()))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| anyhow!("no target directory above {}", profile_dir.display()))?;
    let profile = profile_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    // What cargo (or nextest) set for running this test describes the
    // test's package, not the build: a build script that watches one of
    // these (ring watches `CARGO_MANIFEST_DIR`) would otherwise rebuild
    // here, and again in the next outer build, every time.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || matches!(
                key.as_ref(),
                "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
                    | "CARGO_RUSTC_CURRENT_DIR"
                    | "OUT_DIR"
            )
        {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd.arg("build")
        .arg("--quiet")
        .arg("--manifest-path")
        .arg(&manifest)
        // What `cargo nextest run --workspace` (scripts/test) has just
        // built, with the same feature unification, so there this is a
        // no-op. `-p <package> --bin <bin>` unifies features differently
        // and rebuilt much of the tree inside a running test (minutes).
        .args(["--workspace", "--tests"])
        .env("CARGO_TARGET_DIR", target_dir);
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    run_checked(
        &mut cmd,
        &format!("cargo build --workspace --tests (for {package}'s {bin})"),
    )?;
    let path = profile_dir.join(bin);
    if !path.is_file() {
        bail!("cargo built {bin}, but {} is missing", path.display());
    }
    built.insert(key, path.clone());
    Ok(path)
}

/// Async [`workspace_bin`], on the blocking pool (a build can take minutes).
pub async fn workspace_bin_async(package: &str, bin: &str) -> anyhow::Result<PathBuf> {
    let (package, bin) = (package.to_owned(), bin.to_owned());
    tokio::task::spawn_blocking(move || workspace_bin(&package, &bin))
        .await
        .context("the build task")?
}

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

/// Runs `cmd` to completion with its output captured, failing (with the
/// output) on a non-zero exit.
fn run_checked(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
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

/// The `nats-server` binary: from `PATH`, else where Debian and the
/// release archives put it.
pub fn find_nats_server() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"));
    let known = ["/usr/sbin", "/usr/local/bin", "/usr/bin"]
        .iter()
        .map(|dir| Path::new(dir).join("nats-server"));
    on_path
        .chain(known)
        .find(|p| p.is_file())
        .ok_or_else(|| anyhow!("nats-server not found: install the Debian package `nats-server`"))
}

/// A throwaway NATS server (core NATS, no JetStream) on a free loopback
/// port, killed when dropped. It can be killed and started again on the
/// same port.
#[derive(Debug)]
pub struct NatsServer {
    bin: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl NatsServer {
    /// Starts a server and waits until it greets a connection.
    pub fn start() -> anyhow::Result<NatsServer> {
        let mut server = NatsServer {
            bin: find_nats_server()?,
            port: 0,
            child: None,
        };
        let mut last_error = None;
        for _ in 0..3 {
            server.port = free_port()?;
            match server.start_again() {
                Ok(()) => return Ok(server),
                Err(e) => last_error = Some(e),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow!("nats-server did not start")))
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// SIGKILL and reap (a no-op when it is not running).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the (killed) server again on the same port and waits until
    /// it greets a connection.
    pub fn start_again(&mut self) -> anyhow::Result<()> {
        self.kill();
        let child = Command::new(&self.bin)
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .with_context(|| format!("spawning {}", self.bin.display()))?;
        self.child = Some(child);
        let started = Instant::now();
        while started.elapsed() < START_DEADLINE {
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    bail!(
                        "nats-server exited at start on port {}: {status}",
                        self.port
                    );
                }
            }
            if greets(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        bail!(
            "nats-server did not answer on port {} within {START_DEADLINE:?}",
            self.port
        )
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// True when a NATS server on `port` sends its `INFO` greeting.
fn greets(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let mut first = [0u8; 4];
    stream.read_exact(&mut first).is_ok() && &first == b"INFO"
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
        let status = service
            .terminate(Duration::from_secs(10))
            .expect("stops on SIGTERM");
        assert!(!status.success());
    }

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
}
