//! `talead serve` for a test, on a given store.

use std::path::Path;
use std::process::Command;

use super::talea_command;

/// What `talead serve` prints before its URL once it is ready
/// (the prefix for [`super::Service::spawn`]).
pub const TALEAD_LISTENING: &str = "talead listening on ";

/// What `talead serve` prints before its metrics URL, when it has a metrics
/// listener (for [`super::Service::printed_url`]).
pub const TALEAD_METRICS: &str = "talead metrics on ";

/// `talead serve` at `bin` in `dir` on the store `db_url` names (a Postgres
/// URL, or `sqlite://…` for the embedded store; the database is the
/// caller's to create and migrate), on a free loopback port. Tokens,
/// limits and the scope service are the caller's to add with `env`; later
/// `env` calls override these (a fixed `TALEA_BIND` for a successor).
///
/// The binary is the caller's to name: `env!("CARGO_BIN_EXE_talead")` in
/// talead's own tests, [`super::workspace_bin`] elsewhere.
pub fn talead_serve(bin: &Path, dir: &Path, db_url: &str) -> Command {
    let mut cmd = talea_command(bin, dir);
    cmd.arg("serve")
        .env("TALEA_DB_URL", db_url)
        .env("TALEA_BIND", "127.0.0.1:0");
    cmd
}
