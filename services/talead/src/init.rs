//! `talead init`: migrate, make sure a token and a signing key exist, write `.env`, apply
//! the seed file.

use anyhow::Context;
use rand::RngCore;
use talea_auth::Secret;

use crate::store::{Schema, StoreUrl};
use crate::{InitArgs, envfile, seed};

/// A new API token: 32 random bytes, hex, with a recognisable prefix.
pub(crate) fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("talea_{}", hex::encode(bytes))
}

pub(crate) async fn run(args: InitArgs) -> anyhow::Result<()> {
    // No URL: prepare the embedded default (a SQLite file in ./talea-data).
    let url = StoreUrl::parse(args.db_url.as_ref().map(Secret::expose))?;
    let store = crate::store::open(&url, 2, Schema::Migrate).await?;
    println!("{} ready (migrated)", url.describe());

    let existing = envfile::read(&args.env_file)
        .with_context(|| format!("cannot read {}", args.env_file.display()))?;
    let kept = envfile::get(&existing, "TALEA_API_TOKEN")
        .with_context(|| format!("cannot read {}", args.env_file.display()))?;
    let token = match kept {
        Some(token) if !token.is_empty() && !args.force => {
            println!("keeping the API token in {}", args.env_file.display());
            token
        }
        _ => {
            println!("generated a new API token in {}", args.env_file.display());
            generate_token()
        }
    };
    let key_file = &args.keys.signing_key_file;
    let (key, created) = crate::keys::ensure(key_file)?;
    match created {
        true => println!(
            "generated a checkpoint signing key in {} (key id {})",
            key_file.display(),
            key.key_id()
        ),
        false => println!(
            "keeping the checkpoint signing key in {} (key id {})",
            key_file.display(),
            key.key_id()
        ),
    }
    let mut text = envfile::set(&existing, "TALEA_DB_URL", &url.to_url());
    text = envfile::set(
        &text,
        "TALEA_SIGNING_KEY_FILE",
        &key_file.display().to_string(),
    );
    text = envfile::set(&text, "TALEA_API_TOKEN", &token);
    text = envfile::set(&text, "TALEA_BIND", &args.bind.to_string());
    write_private(&args.env_file, &text)
        .with_context(|| format!("cannot write {}", args.env_file.display()))?;

    if args.seed.exists() {
        let applied = seed::apply_to_store(store, &args.seed).await?;
        println!("seed {}: {}", args.seed.display(), applied.summary());
    } else {
        println!("no seed file at {} (skipped)", args.seed.display());
    }
    println!("ready: run `talead serve`");
    Ok(())
}

/// Writes a file readable by its owner only: it holds a token and a database URL.
pub(crate) fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(0o600);
    let mut file = options.open(path)?;
    // `mode` applies only when the file is created; tighten an existing one too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(text.as_bytes())
}
