//! Backend-agnostic conformance tests: free functions every store backend's tests call.
//!
//! Each case is `pub async fn case(store: Arc<dyn Store>)`, takes a fresh,
//! empty store, and panics on failure. A backend wires all of them at once
//! with [`conformance_tests!`](crate::conformance_tests), which expands to
//! one `#[tokio::test]` per case, so a case added here runs everywhere
//! without anyone remembering to call it; [`ALL`] and [`run_all`] serve
//! other harnesses.
//!
//! Expectations are computed from what the store returned (commit times,
//! ids) rather than assumed, so the cases hold for any correct backend:
//! "the stores behave identically" is what this module checks.
//!
//! The cases live by topic in this folder's modules (`registry`,
//! `idempotency`, `concurrency`, `holds`, `chain`, `rules`, `reads`, `balances`, `prefix`, `history`, `search`, `multi_book`,
//! `streams`), their shared helpers in `support`; this file holds the one
//! list of cases and the macro that runs each on every backend.

mod balances;
mod chain;
mod concurrency;
mod history;
mod holds;
mod idempotency;
mod liabilities;
mod multi_book;
mod prefix;
mod reads;
mod registry;
mod rules;
mod search;
mod streams;
mod support;

pub use balances::*;
pub use chain::*;
pub use concurrency::*;
pub use history::*;
pub use holds::*;
pub use idempotency::*;
pub use liabilities::*;
pub use multi_book::*;
pub use prefix::*;
pub use reads::*;
pub use registry::*;
pub use rules::*;
pub use search::*;
pub use streams::*;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::Store;

/// A conformance case, boxed so cases can sit in one list.
pub type Case = fn(Arc<dyn Store>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Declares the list of cases once: [`ALL`] and `conformance_tests!` both
/// expand from it, so they cannot drift apart.
macro_rules! cases {
    ($d:tt $($name:ident),* $(,)?) => {
        /// Every case with its name, in a stable order.
        pub const ALL: &[(&str, Case)] = &[$((stringify!($name), |store| Box::pin($name(store)))),*];

        /// Expands to one `#[tokio::test]` per conformance case (named after
        /// the case). The calling crate needs `tokio` (with the `macros` and
        /// `rt-multi-thread` features) as a dev-dependency.
        ///
        /// With one argument, `$make_store().await` yields a fresh, empty
        /// `Arc<dyn Store>`. With two, it yields `(store, fixture)`, and
        /// `$teardown(fixture).await` runs after the case passes (to drop a
        /// test database, say; a failed case leaves it for inspection).
        ///
        /// ```text
        /// mod conformance {
        ///     talea_store::conformance_tests!(super::fresh_store);
        ///     // or: talea_store::conformance_tests!(super::fresh_store, super::teardown);
        /// }
        /// ```
        #[macro_export]
        macro_rules! conformance_tests {
            ($d make_store:expr) => {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        let store: ::std::sync::Arc<dyn $d crate::Store> = ($d make_store)().await;
                        $d crate::conformance::$name(store).await;
                    }
                )*
            };
            ($d make_store:expr, $d teardown:expr) => {
                $(
                    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                    async fn $name() {
                        let (store, fixture): (::std::sync::Arc<dyn $d crate::Store>, _) =
                            ($d make_store)().await;
                        $d crate::conformance::$name(store).await;
                        ($d teardown)(fixture).await;
                    }
                )*
            };
        }
    };
}

cases!($
    asset_registration,
    account_open,
    concurrent_account_opens,
    idempotent_replay,
    idempotency_key_reused,
    duplicate_keys_within_batch,
    concurrent_same_key,
    dense_sequences_under_concurrency,
    min_balance_under_racing_overdraws,
    min_balance_rules,
    bad_drafts_in_batch,
    rejected_key_stays_free,
    amount_extremes,
    accounts_pagination,
    transactions_and_events_pagination,
    balances_as_of,
    trial_balance_as_of,
    account_postings_pages,
    transaction_by_id,
    books_and_last_seq,
    unknown_book_reads_empty,
    commit_details,
    database_refusal_is_isolated,
    subscribe_catch_up,
    watch_announces_commits,
    balance_cut_is_consistent,
    books_share_a_commit,
    crossed_multi_book_commits,
    hold_lifecycle,
    partial_settles,
    holds_reserve_available_balance,
    voids_and_replays,
    rejected_hold_cannot_be_settled,
    racing_outcomes_end_a_hold_once,
    holds_expire,
    holds_as_of,
    event_hashes_are_the_leaves,
    checkpoints_are_kept,
    liability_snapshots_are_kept,
    prefix_balances_match_total_and_page,
    prefix_balances_filter_and_edges,
    balance_history_changes_and_pages,
    search_filters_match_the_predicate,
);

/// Runs every case in order, each on a store from `make_store`.
pub async fn run_all<F, Fut>(mut make_store: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    for (name, case) in ALL {
        eprintln!("conformance: {name}");
        case(make_store().await).await;
    }
}
