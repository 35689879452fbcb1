//! [`workspace_bin`]: another package's binary, built by cargo for a test.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, anyhow, bail};

use super::run_checked;

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
