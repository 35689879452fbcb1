//! Balance snapshots for streams: a book's balances exactly as of one seq.

use std::collections::BTreeSet;

use talea_api::{ApiError, SnapshotDto, format_timestamp};

use crate::LedgerService;
use crate::convert::{self, balances_dto, codes, store_error};

/// Most accounts one snapshot holds. An unfiltered snapshot of a larger
/// book is refused (400): it would be one frame of unbounded size, and a
/// consistent cut cannot be paged. Filter with `accounts=` instead.
pub const SNAPSHOT_ACCOUNTS_MAX: u32 = 10_000;

impl LedgerService {
    /// The current normal-side balances of `book`'s accounts (only those in
    /// `accounts` when given; unknown names are left out), with the seq they
    /// are exactly as of, read in one consistent cut of the store. 404 for a
    /// book without events; 400 past [`SNAPSHOT_ACCOUNTS_MAX`] accounts.
    pub async fn balance_snapshot(
        &self,
        book: &str,
        accounts: Option<&BTreeSet<String>>,
    ) -> Result<SnapshotDto, ApiError> {
        let name = convert::book(book)?;
        let filter = accounts
            .map(|names| {
                names
                    .iter()
                    .map(|n| convert::account_path(n))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()
            .map_err(|_| ApiError::invalid("/accounts", "not a valid account name"))?;
        let cut = self
            .inner
            .store
            .balance_cut(&name, filter.as_deref(), SNAPSHOT_ACCOUNTS_MAX + 1)
            .await
            .map_err(|e| store_error(&e))?
            .ok_or_else(|| ApiError::not_found(format!("book {book} not found")))?;
        if cut.accounts.len() > SNAPSHOT_ACCOUNTS_MAX as usize {
            return Err(ApiError::invalid(
                "/snapshot",
                format!(
                    "the book has more than {SNAPSHOT_ACCOUNTS_MAX} accounts: \
                     name the ones wanted with accounts="
                ),
            ));
        }
        let scales = self
            .scales(codes(
                cut.accounts
                    .iter()
                    .flat_map(|a| a.balances.iter().map(|b| &b.asset)),
            ))
            .await?;
        let as_of = format_timestamp(cut.committed_at);
        Ok(SnapshotDto {
            book: name.to_string(),
            seq: cut.last_seq,
            balances: cut
                .accounts
                .iter()
                .map(|a| balances_dto(&a.account, a.kind, as_of.clone(), &a.balances, &scales))
                .collect(),
        })
    }
}
