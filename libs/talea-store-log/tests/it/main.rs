//! Integration tests of `LogStore`: every conformance case, plus what only the
//! append log has (reopening, torn tails, corruption, the directory lock, and
//! a process killed mid-load).

mod chain;
mod conformance;
mod crash;
mod durability;
mod holds;

use std::path::Path;

use talea_core::{AccountKind, BookName, Draft, NewAccount};
use talea_store::{Opened, Outcome, Registered, Store};
use talea_store_log::LogStore;

pub use talea_testkit::domain::{acct, book};

/// Moves `n` BTC minor units from `hot` to `alice`.
pub fn deposit(key: &str, n: i128) -> Draft {
    talea_testkit::domain::transfer(key, "alice", "hot", n)
}

/// Opens a store in `dir` with BTC registered and `hot`/`alice` opened in `b`.
pub async fn seeded(dir: &Path, b: &BookName) -> LogStore {
    let store = LogStore::open(dir).expect("open the store");
    let btc = talea_testkit::domain::asset();
    assert!(matches!(
        store.register_asset(&btc).await.expect("register"),
        Registered::Created(_) | Registered::Existing(_)
    ));
    for (name, kind) in [
        ("hot", AccountKind::Asset),
        ("alice", AccountKind::Liability),
    ] {
        let new = NewAccount {
            name: acct(name),
            kind,
            min_balance: None,
            metadata: "{}".to_owned(),
        };
        assert!(matches!(
            store.open_account(b, &new).await.expect("open account"),
            Opened::Created(_) | Opened::Existing(_)
        ));
    }
    store
}

/// Commits `drafts` and expects every one to commit.
pub async fn commit_all(
    store: &LogStore,
    b: &BookName,
    drafts: &[Draft],
) -> Vec<talea_core::Commit> {
    store
        .commit_batch(b, drafts)
        .await
        .expect("commit_batch")
        .into_iter()
        .map(|o| match o {
            Outcome::Committed(c) => c,
            other => panic!("expected Committed, got {other:?}"),
        })
        .collect()
}
