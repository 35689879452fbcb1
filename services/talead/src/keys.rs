//! The checkpoint signing key (`docs/proofs.md`, "Checkpoints"): read from
//! `TALEA_SIGNING_KEY_FILE`, created there (readable by its owner only) when
//! the file does not exist yet, and never replaced.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use rand::RngCore;
use talea_ledger::Notary;
use talea_verify::checkpoint::{SigningKey, read_key_file};

/// Default of `TALEA_SIGNING_KEY_FILE`, beside the embedded default's data.
pub(crate) const SIGNING_KEY_FILE_DEFAULT: &str = "talea-data/signing-key.json";

/// Where the signing key and the retired public keys are.
#[derive(Debug, Clone, Args)]
pub(crate) struct KeyArgs {
    /// The Ed25519 key that signs checkpoints: `{"algorithm":"ed25519","seed":"<hex>"}`,
    /// created when missing. Every instance of one deployment must share it.
    #[arg(long, env = "TALEA_SIGNING_KEY_FILE", default_value = SIGNING_KEY_FILE_DEFAULT)]
    pub signing_key_file: PathBuf,
    /// Public keys of retired signing keys (a `GET /v1/keys` document), served
    /// beside the current one so that old checkpoints still verify.
    #[arg(long, env = "TALEA_RETIRED_KEYS_FILE")]
    pub retired_keys_file: Option<PathBuf>,
}

impl KeyArgs {
    /// The notary: the key (created if missing) and the retired keys.
    pub(crate) fn notary(&self) -> anyhow::Result<Notary> {
        let (key, created) = ensure(&self.signing_key_file)?;
        if created {
            println!(
                "generated a checkpoint signing key in {} (key id {}): keep it, and give every \
                 instance the same file",
                self.signing_key_file.display(),
                key.key_id()
            );
        }
        let retired = match &self.retired_keys_file {
            None => Vec::new(),
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                talea_verify::files::parse_keys(&text)
                    .with_context(|| format!("{} is not a key list", path.display()))?
                    .keys
            }
        };
        tracing::info!(key_id = %key.key_id(), retired = retired.len(), "checkpoint signing key");
        Ok(Notary::new(key, retired))
    }
}

/// The key in `path`, created (with its directory) if the file is missing;
/// true when it was created. Created with `create_new`: of two processes
/// starting at once, one writes the key and the other reads it, so a key in
/// use is never overwritten.
pub(crate) fn ensure(path: &Path) -> anyhow::Result<(SigningKey, bool)> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let mut seed = [0u8; 32];
    rand::rng().fill_bytes(&mut seed);
    let key = SigningKey::generate(seed);
    match create_private(path, &key.key_file_text()) {
        Ok(()) => Ok((key, true)),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let kept = read_key_file(path)
                .with_context(|| format!("cannot read the signing key {}", path.display()))?;
            Ok((kept, false))
        }
        Err(e) => {
            Err(e).with_context(|| format!("cannot write the signing key {}", path.display()))
        }
    }
}

/// Writes a new file readable by its owner only; fails if it exists.
fn create_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}
