//! `impl LedgerApi for LedgerService`: each operation parses its input,
//! asks the store or the book's committer, and answers in wire DTOs.

use std::collections::BTreeMap;

use async_trait::async_trait;
use talea_api::{
    AccountDto, AccountList, ApiError, AssetDto, AssetList, AssetRequest, BalanceBucketDto,
    BalanceChangeDto, BalanceHistoryDto, BalanceHistoryQuery, BalancesDto, BookBalancesDto,
    BookBalancesQuery, BookDto, BookList, Checkpoint, ConsistencyProof, Created, EventList,
    HoldList, InclusionProof, KeyList, LedgerApi, NamePage, OpenAccountRequest,
    PostTransactionRequest, PostingList, SeqPage, SettleRequest, TotalsDto, TransactionDto,
    TransactionList, TransactionSearch, TrialBalanceDto, TrialRowDto, VoidRequest,
    format_timestamp,
};
use talea_core::{
    AccountKind, AccountName, Amount, Asset, AssetCode, Draft, EventKind, NewAccount, Scale,
    Timestamp, limits,
};
use talea_store::{HistoryRange, Opened, Registered};

use crate::LedgerService;
use crate::convert::{
    self, asset_dto, balance_map, balances_dto, check_limit, codes, event_dto, store_error,
};

/// Changes read per store call while folding a history into buckets.
const POINTS_PAGE: u32 = 10_000;

pub(crate) fn now() -> Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    Timestamp::from_micros(micros)
}
#[async_trait]
impl LedgerApi for LedgerService {
    async fn register_asset(&self, request: AssetRequest) -> Result<Created<AssetDto>, ApiError> {
        let code = convert::asset_code(&request.code, "/code")?;
        let scale = Scale::new(request.scale).ok_or_else(|| {
            ApiError::invalid(
                "/scale",
                format!("scale must be 0..={}", talea_core::SCALE_MAX),
            )
        })?;
        if let Some(name) = &request.name
            && (name.len() > limits::ASSET_NAME_BYTES_MAX || name.contains('\0'))
        {
            return Err(ApiError::invalid(
                "/name",
                format!(
                    "name must be at most {} bytes without NUL",
                    limits::ASSET_NAME_BYTES_MAX
                ),
            ));
        }
        let asset = Asset {
            code,
            scale,
            name: request.name,
        };
        let registered = self
            .inner
            .store
            .register_asset(&asset)
            .await
            .map_err(|e| store_error(&e))?;
        let (stored, created) = match registered {
            Registered::Created(a) => (a, true),
            Registered::Existing(a) => (a, false),
        };
        if stored != asset {
            return Err(ApiError::Conflict {
                message: format!(
                    "asset {} is already registered with another definition (scale {})",
                    stored.code,
                    stored.scale.digits()
                ),
            });
        }
        self.write_cache()
            .insert(stored.code.clone(), stored.clone());
        Ok(Created {
            value: asset_dto(&stored),
            created,
        })
    }

    async fn assets(&self) -> Result<AssetList, ApiError> {
        let assets = self
            .inner
            .store
            .assets()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(AssetList {
            assets: assets.iter().map(asset_dto).collect(),
        })
    }

    async fn open_account(
        &self,
        book: &str,
        request: OpenAccountRequest,
    ) -> Result<Created<AccountDto>, ApiError> {
        let book = convert::book(book)?;
        let name = convert::name(AccountName::parse, &request.name, "/name", "account name")?;
        let kind = AccountKind::parse(&request.kind).ok_or_else(|| {
            ApiError::invalid(
                "/kind",
                "kind must be one of asset, expense, liability, equity, revenue",
            )
        })?;
        let min_balance = request
            .min_balance
            .as_deref()
            .map(|t| convert::decimal(t, "/min_balance"))
            .transpose()?;
        let (metadata, canonical) = convert::metadata(&request.metadata.unwrap_or_default())?;
        let new = NewAccount {
            name,
            kind,
            min_balance,
            metadata,
        };
        let opened = self
            .inner
            .store
            .open_account(&book, &new)
            .await
            .map_err(|e| store_error(&e))?;
        match opened {
            Opened::Created(account) => Ok(Created {
                value: convert::account_dto(&account),
                created: true,
            }),
            Opened::Existing(account) => {
                let stored_canonical = talea_api::canonical_json(&serde_json::Value::Object(
                    convert::metadata_value(&account.metadata),
                ));
                if account.kind == new.kind
                    && account.min_balance == new.min_balance
                    && stored_canonical == canonical
                {
                    Ok(Created {
                        value: convert::account_dto(&account),
                        created: false,
                    })
                } else {
                    Err(ApiError::Conflict {
                        message: format!(
                            "account {} is already open in book {book} with another definition",
                            account.name
                        ),
                    })
                }
            }
        }
    }

    async fn accounts(&self, book: &str, page: NamePage) -> Result<AccountList, ApiError> {
        let book = convert::book(book)?;
        let limit = check_limit(page.limit)?;
        let after = page
            .after
            .as_deref()
            .map(|a| convert::name(AccountName::parse, a, "after", "account name"))
            .transpose()?;
        let mut accounts = self
            .inner
            .store
            .accounts(&book, after.as_ref(), limit + 1)
            .await
            .map_err(|e| store_error(&e))?;
        if accounts.is_empty() {
            self.require_book(&book).await?;
        }
        let next = if accounts.len() > limit as usize {
            accounts.truncate(limit as usize);
            accounts.last().map(|a| a.name.to_string())
        } else {
            None
        };
        Ok(AccountList {
            accounts: accounts.iter().map(convert::account_dto).collect(),
            next,
        })
    }

    async fn account(&self, book: &str, account: &str) -> Result<AccountDto, ApiError> {
        let book = convert::book(book)?;
        let name = convert::account_path(account)?;
        let account = self.require_account(&book, &name).await?;
        let balances = self
            .inner
            .store
            .balances(&book, &name, None)
            .await
            .map_err(|e| store_error(&e))?;
        let scales = self
            .scales(codes(balances.iter().map(|b| &b.asset)))
            .await?;
        let mut dto = convert::account_dto(&account);
        dto.balances = Some(balance_map(account.kind, &balances, &scales));
        Ok(dto)
    }

    async fn post_transaction(
        &self,
        book: &str,
        request: PostTransactionRequest,
    ) -> Result<TransactionDto, ApiError> {
        let book = convert::book(book)?;
        let draft = self.counted(self.draft(request).await)?;
        self.submit(&book, draft).await
    }

    async fn post_many(
        &self,
        book: &str,
        requests: Vec<PostTransactionRequest>,
    ) -> Result<Vec<Result<TransactionDto, ApiError>>, ApiError> {
        let book = convert::book(book)?;
        talea_api::check_batch_len(requests.len())?;
        let mut items = Vec::with_capacity(requests.len());
        for request in requests {
            items.push(self.counted(self.draft(request).await));
        }
        self.submit_all(&book, items).await
    }

    async fn settle(
        &self,
        book: &str,
        tx_id: &str,
        request: SettleRequest,
    ) -> Result<TransactionDto, ApiError> {
        let book = convert::book(book)?;
        let draft = async {
            let settle = convert::ParsedSettle::parse(tx_id, request)?;
            let scales = self.scales(settle.asset_codes()).await?;
            settle.into_draft(&scales)
        }
        .await;
        let draft = self.counted(draft)?;
        self.submit(&book, draft).await
    }

    async fn void(
        &self,
        book: &str,
        tx_id: &str,
        request: VoidRequest,
    ) -> Result<TransactionDto, ApiError> {
        let book = convert::book(book)?;
        let draft = self.counted(
            convert::tx_id(tx_id)
                .and_then(|hold| Ok(Draft::void(convert::key(&request.idempotency_key)?, hold))),
        )?;
        self.submit(&book, draft).await
    }

    async fn transactions(&self, book: &str, page: SeqPage) -> Result<TransactionList, ApiError> {
        let book = convert::book(book)?;
        let limit = check_limit(page.limit)?;
        let mut commits = self
            .inner
            .store
            .transactions(&book, page.after_seq.unwrap_or(0), limit + 1)
            .await
            .map_err(|e| store_error(&e))?;
        if commits.is_empty() {
            self.require_book(&book).await?;
        }
        let next_after_seq = if commits.len() > limit as usize {
            commits.truncate(limit as usize);
            commits.last().map(|c| c.seq)
        } else {
            None
        };
        Ok(TransactionList {
            transactions: self.dtos(&commits).await?,
            next_after_seq,
        })
    }

    async fn transaction(&self, tx_id: &str) -> Result<TransactionDto, ApiError> {
        self.find_transaction(tx_id, None).await
    }

    async fn search_transactions(
        &self,
        book: &str,
        query: TransactionSearch,
    ) -> Result<TransactionList, ApiError> {
        if query.is_unfiltered() {
            let page = SeqPage {
                after_seq: query.after_seq,
                limit: query.limit,
            };
            return self.transactions(book, page).await;
        }
        self.search(book, query).await
    }

    async fn pending_holds(&self, book: &str, limit: Option<u32>) -> Result<HoldList, ApiError> {
        self.holds(book, limit).await
    }

    async fn balances(
        &self,
        book: &str,
        account: &str,
        as_of: Option<&str>,
    ) -> Result<BalancesDto, ApiError> {
        let book = convert::book(book)?;
        let name = convert::account_path(account)?;
        let as_of = Self::parse_as_of(as_of)?;
        let account = self.require_account(&book, &name).await?;
        let balances = self
            .inner
            .store
            .balances(&book, &name, as_of)
            .await
            .map_err(|e| store_error(&e))?;
        let scales = self
            .scales(codes(balances.iter().map(|b| &b.asset)))
            .await?;
        Ok(balances_dto(
            &name,
            account.kind,
            format_timestamp(as_of.unwrap_or_else(now)),
            &balances,
            &scales,
        ))
    }

    async fn book_balances(
        &self,
        book: &str,
        query: BookBalancesQuery,
    ) -> Result<BookBalancesDto, ApiError> {
        let book = convert::book(book)?;
        let prefix = convert::prefix(query.prefix.as_deref())?;
        let limit = check_limit(query.limit)?;
        let after = query
            .after
            .as_deref()
            .map(|a| convert::name(AccountName::parse, a, "after", "account name"))
            .transpose()?;
        let asset = match query.asset.as_deref() {
            None => None,
            Some(code) => Some(self.registered_asset(code, "asset").await?.code),
        };
        let as_of = format_timestamp(now());
        let mut found = self
            .inner
            .store
            .prefix_balances(
                &book,
                prefix.as_ref(),
                asset.as_ref(),
                after.as_ref(),
                limit + 1,
            )
            .await
            .map_err(|e| store_error(&e))?;
        if found.count == 0 {
            self.require_book(&book).await?;
        }
        let next = if found.page.len() > limit as usize {
            found.page.truncate(limit as usize);
            found.page.last().map(|a| a.account.to_string())
        } else {
            None
        };
        let scales = self
            .scales(codes(found.totals.iter().map(|t| &t.total.asset)))
            .await?;
        Ok(BookBalancesDto {
            book: book.to_string(),
            prefix: prefix
                .as_ref()
                .map_or_else(String::new, ToString::to_string),
            asset: asset.map(|a| a.to_string()),
            totals: convert::balance_totals(&found.totals, &scales)?,
            accounts: found
                .page
                .iter()
                .map(|a| balances_dto(&a.account, a.kind, as_of.clone(), &a.balances, &scales))
                .collect(),
            as_of,
            count: found.count,
            next,
        })
    }

    async fn balance_history(
        &self,
        book: &str,
        account: &str,
        query: BalanceHistoryQuery,
    ) -> Result<BalanceHistoryDto, ApiError> {
        let book = convert::book(book)?;
        let name = convert::account_path(account)?;
        let (from, to) = convert::time_range(query.from.as_deref(), query.to.as_deref())?;
        let points = match query.points {
            None => None,
            Some(n) if (1..=limits::HISTORY_POINTS_MAX).contains(&n) => Some(n),
            Some(_) => {
                return Err(ApiError::invalid(
                    "points",
                    format!("points must be 1..={}", limits::HISTORY_POINTS_MAX),
                ));
            }
        };
        let limit = check_limit(query.limit)?;
        let Some(code) = query.asset.as_deref() else {
            return Err(ApiError::invalid("asset", "asset is required"));
        };
        let asset = self.registered_asset(code, "asset").await?;
        let account = self.require_account(&book, &name).await?;
        let scale = asset.scale;
        let fmt = |a: Amount| convert::normal(account.kind, a).format(scale);
        if let Some(points) = points {
            // Buckets need both ends: `to` defaults to now, `from` to the
            // first change (or `to` itself when there is none).
            let end = to.unwrap_or_else(now);
            let read = |after_seq: u64| {
                self.inner.store.balance_history(
                    &book,
                    &name,
                    &asset.code,
                    HistoryRange {
                        from,
                        to: Some(end),
                        after_seq,
                        limit: POINTS_PAGE,
                    },
                )
            };
            let mut page = read(0).await.map_err(|e| store_error(&e))?;
            let opening = page.opening;
            let start =
                from.unwrap_or_else(|| page.changes.first().map_or(end, |c| c.committed_at));
            let mut folded = talea_store::history::Downsampler::new(
                convert::normal(account.kind, opening),
                start,
                end,
                points,
            );
            loop {
                if let Some(d) = folded.as_mut() {
                    for c in &page.changes {
                        d.push(c.committed_at, convert::normal(account.kind, c.balance));
                    }
                }
                match page.changes.last() {
                    Some(last) if page.more => {
                        page = read(last.seq).await.map_err(|e| store_error(&e))?;
                    }
                    _ => break,
                }
            }
            let buckets = folded.map(|d| d.finish()).unwrap_or_default();
            return Ok(BalanceHistoryDto {
                book: book.to_string(),
                account: name.to_string(),
                asset: asset.code.to_string(),
                from: from.map(format_timestamp),
                to: Some(format_timestamp(end)),
                opening: fmt(opening),
                changes: Vec::new(),
                buckets: buckets
                    .iter()
                    .map(|b| BalanceBucketDto {
                        start: format_timestamp(b.start),
                        first: b.first.format(scale),
                        last: b.last.format(scale),
                        min: b.min.format(scale),
                        max: b.max.format(scale),
                    })
                    .collect(),
                next_after_seq: None,
            });
        }
        let found = self
            .inner
            .store
            .balance_history(
                &book,
                &name,
                &asset.code,
                HistoryRange {
                    from,
                    to,
                    after_seq: query.after_seq.unwrap_or(0),
                    limit,
                },
            )
            .await
            .map_err(|e| store_error(&e))?;
        let next_after_seq = if found.more {
            found.changes.last().map(|c| c.seq)
        } else {
            None
        };
        Ok(BalanceHistoryDto {
            book: book.to_string(),
            account: name.to_string(),
            asset: asset.code.to_string(),
            from: from.map(format_timestamp),
            to: to.map(format_timestamp),
            opening: fmt(found.opening),
            changes: found
                .changes
                .iter()
                .map(|c| BalanceChangeDto {
                    seq: c.seq,
                    committed_at: format_timestamp(c.committed_at),
                    balance: fmt(c.balance),
                })
                .collect(),
            buckets: Vec::new(),
            next_after_seq,
        })
    }

    async fn account_postings(
        &self,
        book: &str,
        account: &str,
        page: SeqPage,
    ) -> Result<PostingList, ApiError> {
        let book = convert::book(book)?;
        let name = convert::account_path(account)?;
        let limit = check_limit(page.limit)?;
        let account = self.require_account(&book, &name).await?;
        let mut postings = self
            .inner
            .store
            .account_postings(&book, &name, page.after_seq.unwrap_or(0), limit + 1)
            .await
            .map_err(|e| store_error(&e))?;
        // Cut after the transaction holding the limit-th posting, never inside
        // one. When every posting fetched past the limit belongs to that same
        // transaction, more may or may not follow: the cursor is given and the
        // next page (possibly empty) tells.
        let next_after_seq = match postings.get(limit as usize - 1).map(|p| p.seq) {
            Some(cut) if postings.len() > limit as usize => {
                postings.retain(|p| p.seq <= cut);
                Some(cut)
            }
            _ => None,
        };
        let scales = self
            .scales(codes(postings.iter().map(|p| &p.asset)))
            .await?;
        Ok(PostingList {
            postings: postings
                .iter()
                .map(|p| {
                    convert::account_posting_dto(
                        p,
                        account.kind,
                        convert::scale_of(&scales, &p.asset),
                    )
                })
                .collect(),
            next_after_seq,
        })
    }

    async fn trial_balance(
        &self,
        book: &str,
        as_of: Option<&str>,
    ) -> Result<TrialBalanceDto, ApiError> {
        let book = convert::book(book)?;
        let as_of = Self::parse_as_of(as_of)?;
        self.require_book(&book).await?;
        let rows = self
            .inner
            .store
            .trial_balance(&book, as_of)
            .await
            .map_err(|e| store_error(&e))?;
        let scales = self.scales(codes(rows.iter().map(|r| &r.asset))).await?;
        // Per asset: posted debits, posted credits, held (debits; a hold
        // is balanced, so its credits are the same).
        let mut totals: BTreeMap<AssetCode, (Amount, Amount, Amount)> = BTreeMap::new();
        let mut out = Vec::with_capacity(rows.len());
        let overflow = || ApiError::AmountOutOfRange {
            field: None,
            message: "a total does not fit 128 bits of minor units".to_owned(),
        };
        for row in &rows {
            let scale = convert::scale_of(&scales, &row.asset);
            let storage = row.debits.checked_sub(row.credits).ok_or_else(overflow)?;
            let entry = totals.entry(row.asset.clone()).or_default();
            entry.0 = entry.0.checked_add(row.debits).ok_or_else(overflow)?;
            entry.1 = entry.1.checked_add(row.credits).ok_or_else(overflow)?;
            entry.2 = entry.2.checked_add(row.held.debits).ok_or_else(overflow)?;
            if row.debits == Amount::ZERO && row.credits == Amount::ZERO {
                // Only held, never posted: the rows stay posted-only.
                continue;
            }
            out.push(TrialRowDto {
                account: row.account.to_string(),
                kind: row.kind.as_str().to_owned(),
                asset: row.asset.to_string(),
                debits: row.debits.format(scale),
                credits: row.credits.format(scale),
                balance: convert::normal(row.kind, storage).format(scale),
            });
        }
        let balanced = totals.values().all(|(d, c, _)| d == c);
        Ok(TrialBalanceDto {
            book: book.to_string(),
            as_of: format_timestamp(as_of.unwrap_or_else(now)),
            rows: out,
            totals: totals
                .iter()
                .map(|(asset, (d, c, _))| {
                    let scale = convert::scale_of(&scales, asset);
                    (
                        asset.to_string(),
                        TotalsDto {
                            debits: d.format(scale),
                            credits: c.format(scale),
                        },
                    )
                })
                .collect(),
            balanced,
            pending: totals
                .iter()
                .map(|(asset, (_, _, held))| {
                    (
                        asset.to_string(),
                        held.format(convert::scale_of(&scales, asset)),
                    )
                })
                .collect(),
        })
    }

    async fn events(&self, book: &str, page: SeqPage) -> Result<EventList, ApiError> {
        let book = convert::book(book)?;
        let limit = check_limit(page.limit)?;
        let mut events = self
            .inner
            .store
            .events(&book, page.after_seq.unwrap_or(0), limit + 1)
            .await
            .map_err(|e| store_error(&e))?;
        if events.is_empty() {
            self.require_book(&book).await?;
        }
        let next_after_seq = if events.len() > limit as usize {
            events.truncate(limit as usize);
            events.last().map(|e| e.seq)
        } else {
            None
        };
        let scales = self
            .scales(codes(events.iter().flat_map(|e| match &e.kind {
                EventKind::Transaction(c) | EventKind::HoldExpired(c) => {
                    c.postings.iter().map(|p| &p.asset).collect()
                }
                EventKind::AccountOpened(_) => Vec::new(),
            })))
            .await?;
        Ok(EventList {
            events: events.iter().map(|e| event_dto(e, &scales)).collect(),
            next_after_seq,
        })
    }

    async fn books(&self) -> Result<BookList, ApiError> {
        let books = self
            .inner
            .store
            .books()
            .await
            .map_err(|e| store_error(&e))?;
        Ok(BookList {
            books: books
                .into_iter()
                .map(|b| BookDto {
                    book: b.book.to_string(),
                    last_seq: b.last_seq,
                })
                .collect(),
        })
    }

    async fn keys(&self) -> Result<KeyList, ApiError> {
        Ok(self.key_list())
    }

    async fn checkpoint(&self, book: &str) -> Result<Checkpoint, ApiError> {
        self.latest_checkpoint(&convert::book(book)?).await
    }

    async fn inclusion_proof(
        &self,
        book: &str,
        seq: u64,
        tree_size: Option<u64>,
    ) -> Result<InclusionProof, ApiError> {
        self.prove_inclusion(&convert::book(book)?, seq, tree_size)
            .await
    }

    async fn consistency_proof(
        &self,
        book: &str,
        from: u64,
        to: u64,
    ) -> Result<ConsistencyProof, ApiError> {
        self.prove_consistency(&convert::book(book)?, from, to)
            .await
    }

    async fn create_liability_snapshot(
        &self,
        book: &str,
        request: talea_api::LiabilityRequest,
    ) -> Result<talea_api::LiabilitySnapshot, ApiError> {
        self.take_liability_snapshot(book, request).await
    }

    async fn liability_snapshot(
        &self,
        book: &str,
        snapshot: &str,
    ) -> Result<talea_api::LiabilitySnapshot, ApiError> {
        self.liability_document(book, snapshot).await
    }

    async fn liability_proof(
        &self,
        book: &str,
        snapshot: &str,
        account: &str,
    ) -> Result<talea_api::LiabilityProof, ApiError> {
        self.prove_liability(book, snapshot, account).await
    }
}
