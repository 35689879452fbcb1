//! `talea.seed.toml`: assets and accounts created by `talead init`, idempotently.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use serde::Deserialize;
use talea_api::{AssetRequest, LedgerApi, OpenAccountRequest};
use talea_ledger::{LedgerConfig, LedgerService};
use talea_store::Store;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedFile {
    #[serde(default)]
    assets: Vec<AssetRequest>,
    #[serde(default)]
    accounts: Vec<SeedAccount>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeedAccount {
    book: String,
    name: String,
    kind: String,
    #[serde(default)]
    min_balance: Option<String>,
}

/// What applying a seed file did.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Applied {
    pub assets_created: usize,
    pub assets_existing: usize,
    pub accounts_created: usize,
    pub accounts_existing: usize,
}

impl Applied {
    /// One line saying what was done.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} assets created ({} already there), {} accounts opened ({} already there)",
            self.assets_created,
            self.assets_existing,
            self.accounts_created,
            self.accounts_existing
        )
    }
}

/// Applies the seed file at `path` through a ledger over `store`.
pub(crate) async fn apply_to_store(store: Arc<dyn Store>, path: &Path) -> anyhow::Result<Applied> {
    let ledger = LedgerService::new(
        store,
        LedgerConfig::default(),
        talea_telemetry::Metrics::new(),
    );
    apply(&ledger, path).await
}

/// Applies the seed file at `path` through the ledger. Re-running it changes
/// nothing; a definition that conflicts with what exists is an error.
pub(crate) async fn apply(ledger: &dyn LedgerApi, path: &Path) -> anyhow::Result<Applied> {
    let seed = load(path)?;
    let mut applied = Applied::default();
    for asset in seed.assets {
        let code = asset.code.clone();
        let created = ledger
            .register_asset(asset)
            .await
            .with_context(|| format!("seeding asset {code}"))?;
        if created.created {
            applied.assets_created += 1;
        } else {
            applied.assets_existing += 1;
        }
    }
    for account in seed.accounts {
        let label = format!("{}/{}", account.book, account.name);
        let created = ledger
            .open_account(
                &account.book,
                OpenAccountRequest {
                    name: account.name,
                    kind: account.kind,
                    min_balance: account.min_balance,
                    metadata: None,
                },
            )
            .await
            .with_context(|| format!("seeding account {label}"))?;
        if created.created {
            applied.accounts_created += 1;
        } else {
            applied.accounts_existing += 1;
        }
    }
    Ok(applied)
}

fn load(path: &Path) -> anyhow::Result<SeedFile> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read seed file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("seed file {} is invalid", path.display()))
}

/// The names a seed file defines: what `talead bootstrap` counts as seed
/// data rather than application data.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct SeedNames {
    /// Asset codes.
    pub assets: Vec<String>,
    /// `(book, account)` pairs.
    pub accounts: Vec<(String, String)>,
}

/// Reads the names the seed file at `path` defines, without applying it.
pub(crate) fn names(path: &Path) -> anyhow::Result<SeedNames> {
    let seed = load(path)?;
    Ok(SeedNames {
        assets: seed.assets.into_iter().map(|a| a.code).collect(),
        accounts: seed
            .accounts
            .into_iter()
            .map(|a| (a.book, a.name))
            .collect(),
    })
}
