//! `LedgerService`: the ledger in process, over any `Store`, with group commit.
//!
//! It implements `talea_api::LedgerApi`: every raw input is parsed here into
//! domain values (so the HTTP layer and the SDK see the same refusals), posts
//! are queued on per-book committers (see `committer`), and reads are turned
//! back into wire DTOs with amounts on each account's normal side.

mod committer;
mod convert;
mod snapshot;

pub use snapshot::SNAPSHOT_ACCOUNTS_MAX;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use talea_api::{
    AccountDto, AccountList, ApiError, AssetDto, AssetList, AssetRequest, BalancesDto, BookDto,
    BookList, Created, EventDto, EventList, LedgerApi, NamePage, OpenAccountRequest,
    PostTransactionRequest, PostingList, SeqPage, TotalsDto, TransactionDto, TransactionList,
    TrialBalanceDto, TrialRowDto, format_timestamp,
};
use talea_core::{
    AccountKind, AccountName, Amount, Asset, AssetCode, BookName, Commit, Draft, EventKind,
    NewAccount, Scale, Timestamp, TxId, limits,
};
use talea_store::{Backend, Opened, Outcome, Registered, Rejection, Store, StoreError};
use talea_telemetry::Metrics;

use crate::committer::{Committers, EnqueueError};
use crate::convert::Scales;

/// Turns a decoded post into a `Draft` exactly as `post_transaction` does,
/// with `scales` standing in for the asset registry. For the fuzz targets in
/// `fuzz/`; not part of the API.
#[doc(hidden)]
pub fn draft_from_request(
    request: PostTransactionRequest,
    scales: &BTreeMap<AssetCode, Scale>,
) -> Result<Draft, ApiError> {
    convert::ParsedPost::parse(request)?.into_draft(scales)
}

/// Default of [`LedgerConfig::commit_books_max`].
pub const COMMIT_BOOKS_MAX_DEFAULT: usize = 32;
/// Largest [`LedgerConfig::commit_books_max`] accepted.
pub const COMMIT_BOOKS_MAX_LIMIT: usize = 256;
/// Default of [`LedgerConfig::commits_in_flight`].
pub const COMMITS_IN_FLIGHT_DEFAULT: usize = 4;
/// Largest [`LedgerConfig::commits_in_flight`] accepted.
pub const COMMITS_IN_FLIGHT_LIMIT: usize = 64;

/// Limits of the write path, with the contract's defaults.
#[derive(Debug, Clone)]
pub struct LedgerConfig {
    /// Drafts a book's queue holds before posts get 429 (`TALEA_WRITE_QUEUE_DEPTH`).
    pub write_queue_depth: usize,
    /// Most drafts per book batch (`TALEA_WRITE_BATCH_MAX`).
    pub write_batch_max: usize,
    /// Most books' batches sharing one storage transaction
    /// (`TALEA_COMMIT_BOOKS_MAX`; 1 commits each book alone).
    pub commit_books_max: usize,
    /// Most storage transactions of combined batches running at once
    /// (`TALEA_COMMITS_IN_FLIGHT`).
    pub commits_in_flight: usize,
    /// How long an idle committer waits before ending.
    pub committer_idle_ms: u64,
}

/// Largest [`LedgerConfig::write_batch_max`] accepted.
pub const WRITE_BATCH_MAX_LIMIT: usize = 1_024;
/// Largest [`LedgerConfig::write_queue_depth`] accepted.
pub const WRITE_QUEUE_DEPTH_LIMIT: usize = 1_000_000;

impl LedgerConfig {
    /// Checks every setting against its bounds; the error names the
    /// variable, its bounds and the value given.
    pub fn check(&self) -> Result<(), String> {
        let bounded = [
            (
                "TALEA_WRITE_QUEUE_DEPTH",
                self.write_queue_depth,
                WRITE_QUEUE_DEPTH_LIMIT,
            ),
            (
                "TALEA_WRITE_BATCH_MAX",
                self.write_batch_max,
                WRITE_BATCH_MAX_LIMIT,
            ),
            (
                "TALEA_COMMIT_BOOKS_MAX",
                self.commit_books_max,
                COMMIT_BOOKS_MAX_LIMIT,
            ),
            (
                "TALEA_COMMITS_IN_FLIGHT",
                self.commits_in_flight,
                COMMITS_IN_FLIGHT_LIMIT,
            ),
        ];
        for (name, value, max) in bounded {
            if !(1..=max).contains(&value) {
                return Err(format!("{name} must be 1..={max}, not {value}"));
            }
        }
        Ok(())
    }
}

impl Default for LedgerConfig {
    fn default() -> Self {
        Self {
            write_queue_depth: 256,
            write_batch_max: 64,
            commit_books_max: COMMIT_BOOKS_MAX_DEFAULT,
            commits_in_flight: COMMITS_IN_FLIGHT_DEFAULT,
            committer_idle_ms: 30_000,
        }
    }
}

/// The ledger over a store. Cheap to clone; clones share committers and caches.
#[derive(Debug, Clone)]
pub struct LedgerService {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn Store>,
    committers: Arc<Committers>,
    metrics: Metrics,
    // Asset definitions never change once registered, so a positive cache
    // never goes stale; misses fall through to the store.
    assets: RwLock<HashMap<AssetCode, Asset>>,
}

fn store_error(e: &StoreError) -> ApiError {
    match e {
        StoreError::Unavailable(_) => ApiError::unavailable("storage is unavailable, retry"),
        StoreError::NotMigrated(_) => ApiError::unavailable("storage is not migrated"),
        _ => {
            tracing::error!(error = %e, "storage failure");
            ApiError::Internal
        }
    }
}

/// Collects asset codes (synchronously, so no borrow is held across an await).
fn codes<'a>(it: impl IntoIterator<Item = &'a AssetCode>) -> BTreeSet<AssetCode> {
    it.into_iter().cloned().collect()
}

fn check_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(limits::PAGE_LIMIT_DEFAULT),
        Some(n) if (1..=limits::PAGE_LIMIT_MAX).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid(
            "limit",
            format!("limit must be 1..={}", limits::PAGE_LIMIT_MAX),
        )),
    }
}

fn now() -> Timestamp {
    let micros = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX));
    Timestamp::from_micros(micros)
}

impl LedgerService {
    /// A ledger over `store`.
    pub fn new(store: Arc<dyn Store>, config: LedgerConfig, metrics: Metrics) -> Self {
        let committers = Committers::new(
            Arc::clone(&store),
            metrics.clone(),
            config.write_queue_depth,
            config.write_batch_max,
            Duration::from_millis(config.committer_idle_ms),
            committer::Combine {
                books_max: config.commit_books_max,
                in_flight: config.commits_in_flight,
            },
        );
        Self {
            inner: Arc::new(Inner {
                store,
                committers,
                metrics,
                assets: RwLock::new(HashMap::new()),
            }),
        }
    }

    /// One transaction by id, answered only if it is in one of `books` (a
    /// scoped token's books): otherwise `not_found`, exactly as for an
    /// unknown id, after the same work (one lookup that finds nothing), so
    /// ids of other books cannot be probed by body or by time.
    pub async fn transaction_in<'a>(
        &self,
        tx_id: &str,
        books: impl IntoIterator<Item = &'a str>,
    ) -> Result<TransactionDto, ApiError> {
        let books: Vec<&str> = books.into_iter().collect();
        self.find_transaction(tx_id, Some(&books)).await
    }

    /// One transaction by id, in any book or (with `books`) only in those;
    /// `not_found` for a malformed id, an unknown one and one elsewhere alike.
    async fn find_transaction(
        &self,
        tx_id: &str,
        books: Option<&[&str]>,
    ) -> Result<TransactionDto, ApiError> {
        let not_found = || ApiError::not_found("transaction not found");
        let id = TxId(uuid::Uuid::parse_str(tx_id).map_err(|_| not_found())?);
        let commit = self
            .inner
            .store
            .transaction(id, books)
            .await
            .map_err(|e| store_error(&e))?
            .ok_or_else(not_found)?;
        self.commit_dto(&commit).await
    }

    /// The store's backend, for `X-Talea-Backend`.
    pub fn backend(&self) -> Backend {
        self.inner.store.backend()
    }

    /// The store underneath.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The metrics this ledger updates.
    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Readiness: the store answers.
    pub async fn ping(&self) -> Result<(), ApiError> {
        self.inner.store.ping().await.map_err(|e| store_error(&e))
    }

    /// Refreshes gauges sampled at scrape time (pool usage).
    pub fn refresh_gauges(&self) {
        if let Some(stats) = self.inner.store.pool_stats() {
            let g = &self.inner.metrics.db_pool_connections;
            g.with_label_values(&["idle"]).set(i64::from(stats.idle));
            g.with_label_values(&["busy"])
                .set(i64::from(stats.size.saturating_sub(stats.idle)));
            g.with_label_values(&["max"]).set(i64::from(stats.max));
        }
    }

    async fn asset(&self, code: &AssetCode) -> Result<Option<Asset>, ApiError> {
        if let Some(asset) = self.read_cache().get(code) {
            return Ok(Some(asset.clone()));
        }
        let found = self
            .inner
            .store
            .asset(code)
            .await
            .map_err(|e| store_error(&e))?;
        if let Some(asset) = &found {
            self.write_cache().insert(code.clone(), asset.clone());
        }
        Ok(found)
    }

    fn read_cache(&self) -> std::sync::RwLockReadGuard<'_, HashMap<AssetCode, Asset>> {
        // The cache holds immutable definitions; a poisoned lock leaves it intact.
        self.inner.assets.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_cache(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<AssetCode, Asset>> {
        self.inner.assets.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Scales of every asset in `codes`.
    async fn scales(&self, codes: BTreeSet<AssetCode>) -> Result<Scales, ApiError> {
        let mut scales = Scales::new();
        for code in codes {
            if let Some(asset) = self.asset(&code).await? {
                scales.insert(code, asset.scale);
            }
        }
        Ok(scales)
    }

    /// 404 unless the book has at least one event.
    async fn require_book(&self, book: &BookName) -> Result<u64, ApiError> {
        match self.inner.store.last_seq(book).await {
            Ok(Some(seq)) => Ok(seq),
            Ok(None) => Err(ApiError::not_found(format!("book {book} not found"))),
            Err(e) => Err(store_error(&e)),
        }
    }

    async fn require_account(
        &self,
        book: &BookName,
        name: &AccountName,
    ) -> Result<talea_core::Account, ApiError> {
        match self.inner.store.account(book, name).await {
            Ok(Some(a)) => Ok(a),
            Ok(None) => Err(ApiError::not_found(format!(
                "account {name} not found in book {book}"
            ))),
            Err(e) => Err(store_error(&e)),
        }
    }

    /// Parses and checks a post, resolving asset scales.
    async fn draft(&self, request: PostTransactionRequest) -> Result<Draft, ApiError> {
        let post = convert::ParsedPost::parse(request)?;
        let scales = self.scales(post.asset_codes()).await?;
        post.into_draft(&scales)
    }

    async fn rejection(&self, book: &BookName, rejection: Rejection) -> ApiError {
        self.inner
            .metrics
            .rejected_total
            .with_label_values(&[rejection_code(&rejection)])
            .inc();
        match rejection {
            Rejection::IdempotencyKeyReused(tx_id) => ApiError::IdempotencyKeyReused {
                tx_id: tx_id.0.to_string(),
            },
            Rejection::UnknownAccount(account) => ApiError::UnknownAccount {
                account: account.to_string(),
            },
            Rejection::InsufficientBalance {
                account,
                asset,
                balance,
            } => {
                // Rare path: fetch the account's kind and floor for the details.
                let found = self
                    .inner
                    .store
                    .account(book, &account)
                    .await
                    .ok()
                    .flatten();
                let scale = match self.asset(&asset).await {
                    Ok(Some(a)) => a.scale,
                    _ => Scale::ZERO,
                };
                let (balance, min_balance) = match found {
                    Some(a) => (
                        convert::normal(a.kind, balance).format(scale),
                        a.min_balance.map(|d| d.to_string()).unwrap_or_default(),
                    ),
                    None => (balance.format(scale), String::new()),
                };
                ApiError::InsufficientBalance {
                    account: account.to_string(),
                    asset: asset.to_string(),
                    balance,
                    min_balance,
                }
            }
            Rejection::AmountOutOfRange => ApiError::AmountOutOfRange {
                field: Some("/postings".to_owned()),
                message: "a resulting balance would not fit 128 bits of minor units".to_owned(),
            },
            Rejection::Failed(reason) => {
                tracing::error!(book = %book, reason = %reason, "storage refused a draft");
                ApiError::Internal
            }
            _ => ApiError::Internal,
        }
    }

    async fn commit_dto(&self, commit: &Commit) -> Result<TransactionDto, ApiError> {
        let scales = self
            .scales(codes(commit.postings.iter().map(|p| &p.asset)))
            .await?;
        Ok(convert::transaction_dto(commit, &scales))
    }

    fn parse_as_of(as_of: Option<&str>) -> Result<Option<Timestamp>, ApiError> {
        as_of.map(|t| convert::timestamp(t, "as_of")).transpose()
    }
}

fn rejection_code(r: &Rejection) -> &'static str {
    let code = match r {
        Rejection::IdempotencyKeyReused(_) => talea_api::ErrorCode::IdempotencyKeyReused,
        Rejection::UnknownAccount(_) => talea_api::ErrorCode::UnknownAccount,
        Rejection::InsufficientBalance { .. } => talea_api::ErrorCode::InsufficientBalance,
        Rejection::AmountOutOfRange => talea_api::ErrorCode::AmountOutOfRange,
        // A database refusal answers `internal`; its label stays `failed`, as
        // dashboards know it, to tell it from other internal errors.
        _ => return "failed",
    };
    code.as_str()
}

fn asset_dto(asset: &Asset) -> AssetDto {
    AssetDto {
        code: asset.code.to_string(),
        scale: asset.scale.digits(),
        name: asset.name.clone(),
    }
}

/// Normal-side balances by asset code, formatted at each asset's scale.
fn balance_map(
    kind: AccountKind,
    balances: &[talea_store::Balance],
    scales: &Scales,
) -> BTreeMap<String, String> {
    balances
        .iter()
        .map(|b| {
            (
                b.asset.to_string(),
                convert::normal(kind, b.balance).format(convert::scale_of(scales, &b.asset)),
            )
        })
        .collect()
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
        if let Some(name) = &request.name {
            if name.len() > limits::ASSET_NAME_BYTES_MAX || name.contains('\0') {
                return Err(ApiError::invalid(
                    "/name",
                    format!(
                        "name must be at most {} bytes without NUL",
                        limits::ASSET_NAME_BYTES_MAX
                    ),
                ));
            }
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
        let draft = match self.draft(request).await {
            Ok(d) => d,
            Err(e) => {
                self.inner
                    .metrics
                    .rejected_total
                    .with_label_values(&[e.code()])
                    .inc();
                return Err(e);
            }
        };
        let receiver = match self.inner.committers.enqueue(&book, draft) {
            Ok(r) => r,
            Err(EnqueueError::QueueFull) => {
                self.inner
                    .metrics
                    .shed_total
                    .with_label_values(&["queue_full"])
                    .inc();
                return Err(ApiError::Overloaded {
                    status: 429,
                    retry_after_s: 1,
                });
            }
        };
        let outcome = match receiver.await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(e)) => return Err(store_error(&e)),
            // The committer ended without answering: it cannot know whether
            // the draft committed, so the caller must retry with the same key.
            Err(_) => return Err(ApiError::unavailable("the commit was interrupted, retry")),
        };
        match outcome {
            Outcome::Committed(commit) => {
                let mut dto = self.commit_dto(&commit).await?;
                dto.deduplicated = Some(false);
                Ok(dto)
            }
            Outcome::Deduplicated(commit) => {
                self.inner.metrics.deduplicated_total.inc();
                let mut dto = self.commit_dto(&commit).await?;
                dto.deduplicated = Some(true);
                Ok(dto)
            }
            Outcome::Rejected(rejection) => Err(self.rejection(&book, rejection).await),
        }
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
        let scales = self
            .scales(codes(
                commits
                    .iter()
                    .flat_map(|c| c.postings.iter().map(|p| &p.asset)),
            ))
            .await?;
        Ok(TransactionList {
            transactions: commits
                .iter()
                .map(|c| convert::transaction_dto(c, &scales))
                .collect(),
            next_after_seq,
        })
    }

    async fn transaction(&self, tx_id: &str) -> Result<TransactionDto, ApiError> {
        self.find_transaction(tx_id, None).await
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
        Ok(BalancesDto {
            account: name.to_string(),
            as_of: format_timestamp(as_of.unwrap_or_else(now)),
            balances: balance_map(account.kind, &balances, &scales),
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
        let mut totals: BTreeMap<AssetCode, (Amount, Amount)> = BTreeMap::new();
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
            out.push(TrialRowDto {
                account: row.account.to_string(),
                kind: row.kind.as_str().to_owned(),
                asset: row.asset.to_string(),
                debits: row.debits.format(scale),
                credits: row.credits.format(scale),
                balance: convert::normal(row.kind, storage).format(scale),
            });
        }
        let balanced = totals.values().all(|(d, c)| d == c);
        Ok(TrialBalanceDto {
            book: book.to_string(),
            as_of: format_timestamp(as_of.unwrap_or_else(now)),
            rows: out,
            totals: totals
                .iter()
                .map(|(asset, (d, c))| {
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
                EventKind::Transaction(c) => c.postings.iter().map(|p| &p.asset).collect(),
                _ => Vec::new(),
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
}

/// The log entry as it appears on the wire, in the events page and the stream.
pub fn event_dto(event: &talea_core::Event, scales: &BTreeMap<AssetCode, Scale>) -> EventDto {
    let (kind, data) = match &event.kind {
        EventKind::AccountOpened(a) => (
            "account_opened",
            serde_json::to_value(convert::account_dto(a)),
        ),
        EventKind::Transaction(c) => (
            "transaction",
            serde_json::to_value(convert::transaction_dto(c, scales)),
        ),
    };
    EventDto {
        seq: event.seq,
        kind: kind.to_owned(),
        committed_at: format_timestamp(event.committed_at),
        // Serializing these plain structs cannot fail.
        data: data.unwrap_or(serde_json::Value::Null),
    }
}
