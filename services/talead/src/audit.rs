//! `talead audit`: each book's log checked for gaps and against its hash
//! chain, and replayed into the projections it implies, compared with the
//! store (`talea_ledger::audit_book`). Prints one JSON report per book;
//! exits 4 when any book has a finding (as `talea verify` does on a failed
//! check), 1 when a book cannot be audited.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, bail};
use clap::Args;
use talea_auth::Secret;
use talea_core::BookName;

use crate::store::{Schema, StoreUrl};

/// Exit code of an audit that found something.
pub(crate) const EXIT_MISMATCH: u8 = 4;

/// Options of `talead audit`.
#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Store URL, as for `serve` (unset: the embedded default).
    #[arg(long, env = "TALEA_DB_URL", hide_env_values = true)]
    pub db_url: Option<Secret>,
    /// A book to audit (repeat for several).
    #[arg(long = "book", value_name = "BOOK")]
    pub books: Vec<String>,
    /// Audit every book.
    #[arg(long, conflicts_with = "books")]
    pub all: bool,
}

/// Audits; sets `mismatch` when a report has findings.
pub(crate) async fn run(args: AuditArgs, mismatch: Arc<AtomicBool>) -> anyhow::Result<()> {
    if args.books.is_empty() && !args.all {
        bail!("name the books to audit with --book BOOK (repeatable), or --all");
    }
    let mut books = Vec::new();
    for name in &args.books {
        books.push(BookName::parse(name).map_err(|e| anyhow::anyhow!("--book {name:?}: {e}"))?);
    }
    let url = StoreUrl::parse(args.db_url.as_ref().map(Secret::expose))?;
    let store = crate::store::open(&url, 2, Schema::RequireMigrated).await?;
    if args.all {
        books = store
            .books()
            .await
            .context("listing the books")?
            .into_iter()
            .map(|b| b.book)
            .collect();
    }
    for book in &books {
        let report = talea_ledger::audit_book(store.as_ref(), book)
            .await
            .with_context(|| format!("auditing book {book}"))?;
        if !report.is_clean() {
            mismatch.store(true, Ordering::Relaxed);
        }
        let text = serde_json::to_string_pretty(&report).context("printing the report")?;
        println!("{text}");
        match report.first_bad_seq {
            None if report.is_clean() => eprintln!(
                "book {book}: clean ({} events, chain head {})",
                report.events_checked, report.chain_head
            ),
            first => eprintln!(
                "book {book}: {} finding(s), first bad seq {}",
                report.findings.len(),
                first.map_or("-".to_owned(), |s| s.to_string())
            ),
        }
    }
    Ok(())
}
