//! Tokens files for a test: the TOML a talead or talea-scope decides from.

use std::path::{Path, PathBuf};

use anyhow::Context;

/// Writes `toml` (a tokens file, `[tokens.<name>]` tables) to
/// `dir/tokens.toml` and returns its path, for `TALEA_TOKENS_FILE`.
pub fn tokens_file(dir: &Path, toml: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join("tokens.toml");
    std::fs::write(&path, toml).with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}
