//! The SQL core shared by the Postgres and SQLite stores: every read, the group-commit protocol, row decoding and error classes, written once.
//!
//! A backend implements [`SqlBackend`] (connections, binding and reading
//! values, the statements whose text is its dialect's own, locking, the
//! set-wise write, notification) and gets its `talea_store::Store`
//! implementation from [`impl_store!`]. What the two SQL stores share lives
//! here once; what truly differs between the databases lives in each
//! backend. `talea_store::conformance` judges that they behave alike.
//!
//! - [`backend`]: the trait a SQL backend implements, and [`Param`].
//! - [`read`]: every read.
//! - [`write`]: asset registration, account opening, group commit.
//! - [`rows`]: the rows a batch writes, in neutral form.
//! - [`error`]: what a database failure means ([`Class`]).
//! - `decode`: rows back into domain values.
//! - [`scales`]: the asset-scale cache.
//! - [`search`]: transaction search and the pending holds list.
//! - [`history`]: an account's balance history in one asset.

pub mod backend;
pub mod chain;
mod decode;
pub mod error;
pub mod history;
pub mod liabilities;
pub mod read;
pub mod rows;
pub mod scales;
pub mod search;
pub mod statements;
pub mod write;

pub use backend::{Columns, Conn, Dialect, Head, Param, Row, SqlBackend, Tx};
pub use error::Class;
pub use scales::ScaleCache;

#[doc(hidden)]
pub use async_trait::async_trait as __async_trait;

/// Implements `talea_store::Store` for a type that implements
/// [`SqlBackend`]: every method is the shared core's, so the backend's own
/// code is only its `SqlBackend` implementation.
///
/// (A blanket `impl<B: SqlBackend> Store for B` would be simpler, but the
/// orphan rule forbids it outside `talea-store`, which should not depend
/// on sqlx.)
#[macro_export]
macro_rules! impl_store {
    ($store:ty) => {
        #[$crate::__async_trait]
        impl ::talea_store::Store for $store {
            fn backend(&self) -> ::talea_store::Backend {
                <$store as $crate::SqlBackend>::BACKEND
            }

            async fn ping(&self) -> Result<(), ::talea_store::StoreError> {
                $crate::SqlBackend::ping(self).await
            }

            fn pool_stats(&self) -> Option<::talea_store::PoolStats> {
                Some($crate::SqlBackend::pool_stats(self))
            }

            async fn register_asset(
                &self,
                asset: &::talea_core::Asset,
            ) -> Result<::talea_store::Registered<::talea_core::Asset>, ::talea_store::StoreError>
            {
                $crate::write::register_asset(self, asset).await
            }

            async fn asset(
                &self,
                code: &::talea_core::AssetCode,
            ) -> Result<Option<::talea_core::Asset>, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::read::asset::<Self>(&mut conn, code).await
            }

            async fn assets(&self) -> Result<Vec<::talea_core::Asset>, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::read::assets::<Self>(&mut conn).await
            }

            async fn open_account(
                &self,
                book: &::talea_core::BookName,
                account: &::talea_core::NewAccount,
            ) -> Result<::talea_store::Opened, ::talea_store::StoreError> {
                $crate::write::open_account(self, book, account).await
            }

            async fn commit_books(
                &self,
                batches: &[::talea_store::BookBatch<'_>],
            ) -> Vec<Result<Vec<::talea_store::Outcome>, ::talea_store::StoreError>> {
                ::talea_store::shared_fate(
                    $crate::write::commit_books(self, batches).await,
                    batches.len(),
                )
            }

            async fn books(
                &self,
            ) -> Result<Vec<::talea_store::BookInfo>, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::read::books::<Self>(&mut conn).await
            }

            async fn last_seq(
                &self,
                book: &::talea_core::BookName,
            ) -> Result<Option<u64>, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::read::last_seq::<Self>(&mut conn, book).await
            }

            async fn account(
                &self,
                book: &::talea_core::BookName,
                name: &::talea_core::AccountName,
            ) -> Result<Option<::talea_core::Account>, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::read::account::<Self>(&mut conn, book, name).await
            }

            async fn accounts(
                &self,
                book: &::talea_core::BookName,
                after: Option<&::talea_core::AccountName>,
                limit: u32,
            ) -> Result<Vec<::talea_core::Account>, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::read::accounts::<Self>(&mut conn, book, after, limit).await
            }

            async fn balances(
                &self,
                book: &::talea_core::BookName,
                account: &::talea_core::AccountName,
                as_of: Option<::talea_core::Timestamp>,
            ) -> Result<Vec<::talea_store::Balance>, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::read::balances::<Self>(&mut conn, book, account, as_of).await
            }

            async fn balance_cut(
                &self,
                book: &::talea_core::BookName,
                accounts: Option<&[::talea_core::AccountName]>,
                limit: u32,
            ) -> Result<Option<::talea_store::BalanceCut>, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::read::balance_cut::<Self>(&mut conn, book, accounts, limit).await
            }

            async fn prefix_balances(
                &self,
                book: &::talea_core::BookName,
                prefix: Option<&::talea_core::AccountName>,
                asset: Option<&::talea_core::AssetCode>,
                after: Option<&::talea_core::AccountName>,
                limit: u32,
            ) -> Result<::talea_store::PrefixBalances, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::read::prefix_balances::<Self>(&mut conn, book, prefix, asset, after, limit)
                    .await
            }

            async fn account_postings(
                &self,
                book: &::talea_core::BookName,
                account: &::talea_core::AccountName,
                after_seq: u64,
                limit: u32,
            ) -> Result<Vec<::talea_store::AccountPosting>, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::read::account_postings::<Self>(&mut conn, book, account, after_seq, limit)
                    .await
            }

            async fn trial_balance(
                &self,
                book: &::talea_core::BookName,
                as_of: Option<::talea_core::Timestamp>,
            ) -> Result<Vec<::talea_store::TrialRow>, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::read::trial_balance::<Self>(&mut conn, book, as_of).await
            }

            async fn transactions(
                &self,
                book: &::talea_core::BookName,
                after_seq: u64,
                limit: u32,
            ) -> Result<Vec<::talea_core::Commit>, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::read::transactions::<Self>(&mut conn, book, after_seq, limit).await
            }

            async fn balance_history(
                &self,
                book: &::talea_core::BookName,
                account: &::talea_core::AccountName,
                asset: &::talea_core::AssetCode,
                range: ::talea_store::HistoryRange,
            ) -> Result<::talea_store::BalanceHistory, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::history::balance_history::<Self>(&mut conn, book, account, asset, range)
                    .await
            }

            async fn search_transactions(
                &self,
                book: &::talea_core::BookName,
                filter: &::talea_store::TxFilter,
                after_seq: u64,
                limit: u32,
            ) -> Result<::talea_store::TxSearchPage, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::search::search_transactions::<Self>(
                    &mut conn, book, filter, after_seq, limit,
                )
                .await
            }

            async fn pending_holds(
                &self,
                book: &::talea_core::BookName,
                limit: u32,
            ) -> Result<Vec<::talea_core::Commit>, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::search::pending_holds::<Self>(&mut conn, book, limit).await
            }

            async fn transaction(
                &self,
                tx_id: ::talea_core::TxId,
                books: Option<&[&str]>,
            ) -> Result<Option<::talea_core::Commit>, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::read::transaction::<Self>(&mut conn, tx_id, books).await
            }

            async fn events(
                &self,
                book: &::talea_core::BookName,
                after_seq: u64,
                limit: u32,
            ) -> Result<Vec<::talea_core::Event>, ::talea_store::StoreError> {
                let mut conn = $crate::SqlBackend::reader(self).await?;
                $crate::read::events::<Self>(&mut conn, book, after_seq, limit).await
            }

            async fn event_hashes(
                &self,
                book: &::talea_core::BookName,
                after_seq: u64,
                limit: u32,
            ) -> Result<Vec<Option<[u8; 32]>>, ::talea_store::StoreError> {
                $crate::chain::event_hashes(self, book, after_seq, limit).await
            }

            async fn save_checkpoint(
                &self,
                checkpoint: &::talea_store::Checkpoint,
            ) -> Result<bool, ::talea_store::StoreError> {
                $crate::chain::save_checkpoint(self, checkpoint).await
            }

            async fn latest_checkpoint(
                &self,
                book: &::talea_core::BookName,
            ) -> Result<Option<::talea_store::Checkpoint>, ::talea_store::StoreError> {
                $crate::chain::latest_checkpoint(self, book).await
            }

            async fn save_liability_snapshot(
                &self,
                snapshot: &::talea_store::LiabilitySnapshot,
            ) -> Result<(), ::talea_store::StoreError> {
                $crate::liabilities::save_liability_snapshot(self, snapshot).await
            }

            async fn liability_snapshot(
                &self,
                book: &::talea_core::BookName,
                id: &str,
            ) -> Result<Option<::talea_store::LiabilitySnapshot>, ::talea_store::StoreError> {
                $crate::liabilities::liability_snapshot(self, book, id).await
            }

            async fn expire_holds(
                &self,
                book: &::talea_core::BookName,
            ) -> Result<Vec<::talea_store::Expiry>, ::talea_store::StoreError> {
                $crate::write::expire_holds(self, book).await
            }

            async fn due_holds(
                &self,
                until: ::talea_core::Timestamp,
                limit: u32,
            ) -> Result<Vec<::talea_store::DueHold>, ::talea_store::StoreError> {
                $crate::write::due_holds(self, until, limit).await
            }

            async fn watch(
                &self,
            ) -> Result<
                ::tokio::sync::broadcast::Receiver<::talea_store::Notice>,
                ::talea_store::StoreError,
            > {
                $crate::SqlBackend::watch(self).await
            }
        }
    };
}
