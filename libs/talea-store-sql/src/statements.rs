//! Every statement the SQL core issues, by name: what the Postgres store's
//! routing test parses (`libs/talea-store-pg/tests/it/routing.rs`), so that
//! a statement a distributed Postgres could not route to one node fails a
//! test instead of a deployment. The dialect's own statements come from
//! [`Dialect::statements`].

use crate::backend::Dialect;
use crate::{chain, liabilities, read, search, write};

/// A statement and where it lives (`module::NAME`).
pub type Named = (&'static str, &'static str);

/// The statements written once in the core, for every SQL backend.
pub fn core() -> Vec<Named> {
    vec![
        ("read::ASSET", read::ASSET),
        ("read::ASSETS", read::ASSETS),
        ("read::BOOKS", read::BOOKS),
        ("read::HEAD", read::HEAD),
        ("read::ACCOUNT", read::ACCOUNT),
        ("read::ACCOUNTS", read::ACCOUNTS),
        ("read::HELD_AS_OF", read::HELD_AS_OF),
        ("read::TRIAL_HELD_AS_OF", read::TRIAL_HELD_AS_OF),
        ("read::CUT_HELD", read::CUT_HELD),
        ("read::TRANSACTIONS", read::TRANSACTIONS),
        ("read::EVENTS", read::EVENTS),
        ("read::EXPIRED_HOLDS", read::EXPIRED_HOLDS),
        ("chain::SET_EVENT_HASH", chain::SET_EVENT_HASH),
        ("chain::SET_BOOK_CHAIN", chain::SET_BOOK_CHAIN),
        ("chain::BEHIND", chain::BEHIND),
        ("chain::EVENT_HASHES", chain::EVENT_HASHES),
        ("chain::SAVE_CHECKPOINT", chain::SAVE_CHECKPOINT),
        ("chain::LATEST_CHECKPOINT", chain::LATEST_CHECKPOINT),
        (
            "liabilities::SAVE_LIABILITY_SNAPSHOT",
            liabilities::SAVE_LIABILITY_SNAPSHOT,
        ),
        (
            "liabilities::LIABILITY_SNAPSHOT",
            liabilities::LIABILITY_SNAPSHOT,
        ),
        ("write::INSERT_ACCOUNT_EVENT", write::INSERT_ACCOUNT_EVENT),
        (
            "write::INSERT_TRANSACTION_EVENT",
            write::INSERT_TRANSACTION_EVENT,
        ),
        ("write::END_HOLD", write::END_HOLD),
        ("write::DUE_IN_BOOK", write::DUE_IN_BOOK),
        ("write::DUE_HOLDS", write::DUE_HOLDS),
        ("search::FIRST_AT", search::FIRST_AT),
        ("search::LAST_BEFORE", search::LAST_BEFORE),
        ("search::BY_RANGE", search::BY_RANGE),
        ("search::BY_POSTING", search::BY_POSTING),
        ("search::BY_HOLD_POSTING", search::BY_HOLD_POSTING),
        ("search::BY_HOLD_STATUS", search::BY_HOLD_STATUS),
        ("search::BY_METADATA", search::BY_METADATA),
        ("search::BY_VOID", search::BY_VOID),
        ("search::PENDING_HOLDS", search::PENDING_HOLDS),
    ]
}

impl Dialect {
    /// The dialect's statements, each named by its field.
    pub fn statements(&self) -> Vec<Named> {
        vec![
            ("balances_as_of", self.balances_as_of),
            ("balance_cut", self.balance_cut),
            ("prefix_balances", self.prefix_balances),
            ("trial_balance_as_of", self.trial_balance_as_of),
            ("account_postings", self.account_postings),
            ("postings_of", self.postings_of),
            ("transaction", self.transaction),
            ("transactions_by_keys", self.transactions_by_keys),
            ("batch_accounts", self.batch_accounts),
            ("scales", self.scales),
            ("register_asset", self.register_asset),
            ("insert_account", self.insert_account),
            ("keys_and_holds", self.keys_and_holds),
            ("hold_postings_of", self.hold_postings_of),
            ("accounts_and_held", self.accounts_and_held),
            ("balances_now", self.balances_now),
            ("trial_balance_now", self.trial_balance_now),
            ("transactions_at", self.transactions_at),
            ("history.0", self.history.0),
            ("history.1", self.history.1),
        ]
    }
}
