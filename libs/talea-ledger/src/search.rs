//! Transaction search and the pending holds list: the query checked and
//! parsed at the edge (every limit named in `talea_core::limits`), then the
//! store's `search_transactions` / `pending_holds`, answered in wire DTOs.

use talea_api::{ApiError, HoldList, TransactionList, TransactionSearch};
use talea_core::{BookName, Commit, TxStatus, limits};
use talea_store::{MetadataMatch, TxFilter};

use crate::LedgerService;
use crate::convert::{self, check_limit, codes, store_error};

/// The store's filter for a search, every field checked.
fn filter(query: &TransactionSearch) -> Result<TxFilter, ApiError> {
    let account = query
        .account
        .as_deref()
        .map(convert::account_path)
        .transpose()?;
    let (from, to) = convert::time_range(query.from.as_deref(), query.to.as_deref())?;
    let status = query
        .status
        .as_deref()
        .map(|s| {
            TxStatus::parse(s).ok_or_else(|| {
                ApiError::invalid(
                    "status",
                    "status must be one of posted, pending, voided, expired",
                )
            })
        })
        .transpose()?;
    let metadata = match query.metadata.len() {
        0 => None,
        1 => query
            .metadata
            .iter()
            .next()
            .map(|(k, v)| metadata(k, v))
            .transpose()?,
        _ => {
            return Err(ApiError::invalid(
                "metadata",
                "at most one metadata.<key>= filter per search",
            ));
        }
    };
    Ok(TxFilter {
        account,
        from,
        to,
        status,
        metadata,
    })
}

fn metadata(key: &str, value: &str) -> Result<MetadataMatch, ApiError> {
    if key.is_empty() || key.len() > limits::SEARCH_METADATA_KEY_BYTES_MAX {
        return Err(ApiError::invalid(
            "metadata",
            format!(
                "a metadata key must be 1..={} bytes",
                limits::SEARCH_METADATA_KEY_BYTES_MAX
            ),
        ));
    }
    if value.len() > limits::SEARCH_METADATA_VALUE_BYTES_MAX {
        return Err(ApiError::invalid(
            format!("metadata.{key}"),
            format!(
                "a metadata value must be at most {} bytes",
                limits::SEARCH_METADATA_VALUE_BYTES_MAX
            ),
        ));
    }
    Ok(MetadataMatch {
        key: key.to_owned(),
        value: value.to_owned(),
    })
}

impl LedgerService {
    pub(crate) async fn search(
        &self,
        book: &str,
        query: TransactionSearch,
    ) -> Result<TransactionList, ApiError> {
        let book = convert::book(book)?;
        let limit = check_limit(query.limit)?;
        let filter = filter(&query)?;
        self.require_book(&book).await?;
        if let Some(account) = &filter.account {
            self.require_account(&book, account).await?;
        }
        let mut page = self
            .inner
            .store
            .search_transactions(&book, &filter, query.after_seq.unwrap_or(0), limit + 1)
            .await
            .map_err(|e| store_error(&e))?;
        let next_after_seq = if page.transactions.len() > limit as usize {
            page.transactions.truncate(limit as usize);
            page.transactions.last().map(|c| c.seq)
        } else {
            page.scanned_to
        };
        Ok(TransactionList {
            transactions: self.dtos(&page.transactions).await?,
            next_after_seq,
        })
    }

    pub(crate) async fn holds(&self, book: &str, limit: Option<u32>) -> Result<HoldList, ApiError> {
        let book: BookName = convert::book(book)?;
        let limit = check_limit(limit)?;
        self.require_book(&book).await?;
        let holds = self
            .inner
            .store
            .pending_holds(&book, limit)
            .await
            .map_err(|e| store_error(&e))?;
        Ok(HoldList {
            holds: self.dtos(&holds).await?,
        })
    }

    /// Commits as the wire answers them, with their assets' scales.
    pub(crate) async fn dtos(
        &self,
        commits: &[Commit],
    ) -> Result<Vec<talea_api::TransactionDto>, ApiError> {
        let scales = self
            .scales(codes(
                commits
                    .iter()
                    .flat_map(|c| c.postings.iter().map(|p| &p.asset)),
            ))
            .await?;
        Ok(commits
            .iter()
            .map(|c| convert::transaction_dto(c, &scales))
            .collect())
    }
}
