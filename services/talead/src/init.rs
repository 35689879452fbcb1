//! `talead init`: migrate, make sure a token exists, write `.env`, apply the seed file.

use std::sync::Arc;

use anyhow::{Context, bail};
use rand::RngCore;
use talea_ledger::{LedgerConfig, LedgerService};
use talea_store_pg::PgStore;

use crate::{InitArgs, envfile, seed};

/// A new API token: 32 random bytes, hex, with a recognisable prefix.
pub(crate) fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("talea_{}", hex::encode(bytes))
}

pub(crate) async fn run(args: InitArgs) -> anyhow::Result<()> {
    let Some(db_url) = args.db_url else {
        bail!("no database: pass --db-url postgres://… or set TALEA_DB_URL");
    };
    let store = PgStore::connect(db_url.expose(), 2)
        .await
        .context("cannot connect to the database")?;
    store.migrate().await.context("migrating the database")?;
    println!("database migrated");

    let existing = envfile::read(&args.env_file)
        .with_context(|| format!("cannot read {}", args.env_file.display()))?;
    let token = match envfile::get(&existing, "TALEA_API_TOKEN") {
        Some(token) if !token.is_empty() && !args.force => {
            println!("keeping the API token in {}", args.env_file.display());
            token
        }
        _ => {
            println!("generated a new API token in {}", args.env_file.display());
            generate_token()
        }
    };
    let mut text = envfile::set(&existing, "TALEA_DB_URL", db_url.expose());
    text = envfile::set(&text, "TALEA_API_TOKEN", &token);
    text = envfile::set(&text, "TALEA_BIND", &args.bind.to_string());
    write_private(&args.env_file, &text)
        .with_context(|| format!("cannot write {}", args.env_file.display()))?;

    if args.seed.exists() {
        let ledger = LedgerService::new(
            Arc::new(store),
            LedgerConfig::default(),
            talea_telemetry::Metrics::new(),
        );
        let applied = seed::apply(&ledger, &args.seed).await?;
        println!(
            "seed {}: {} assets created ({} already there), {} accounts opened ({} already there)",
            args.seed.display(),
            applied.assets_created,
            applied.assets_existing,
            applied.accounts_created,
            applied.accounts_existing
        );
    } else {
        println!("no seed file at {} (skipped)", args.seed.display());
    }
    println!("ready: run `talead serve`");
    Ok(())
}

/// Writes a file readable by its owner only: it holds a token and a database URL.
fn write_private(path: &std::path::Path, text: &str) -> std::io::Result<()> {
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
