//! `talea-scope` for a test: the command that runs it on a tokens file.

use std::path::Path;
use std::process::Command;

use super::talea_command;

/// What `talea-scope` prints before its URL once it is ready
/// (the prefix for [`super::Service::spawn`]).
pub const SCOPE_LISTENING: &str = "talea-scope listening on ";

/// What `talea-scope` prints before its metrics URL, when it has a metrics
/// listener (for [`super::Service::printed_url`]).
pub const SCOPE_METRICS: &str = "talea-scope metrics on ";

/// `talea-scope` at `bin` in `dir` on a free loopback port, deciding from
/// the tokens file `tokens` and answering callers that present
/// `service_token`. Later `env` calls override any of these (a fixed
/// `TALEA_BIND` for a successor on the same address).
///
/// The binary is the caller's to name: `env!("CARGO_BIN_EXE_talea-scope")`
/// in talea-scope's own tests, [`super::workspace_bin`] elsewhere.
pub fn scope_command(bin: &Path, dir: &Path, tokens: &Path, service_token: &str) -> Command {
    let mut cmd = talea_command(bin, dir);
    cmd.env("TALEA_BIND", "127.0.0.1:0")
        .env("TALEA_TOKENS_FILE", tokens)
        .env("TALEA_SCOPE_SERVICE_TOKEN", service_token);
    cmd
}
