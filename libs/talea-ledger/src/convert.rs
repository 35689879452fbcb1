//! Conversions between wire DTOs and domain values, done once at the edge.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value};
pub use talea_api::event::{account_dto, event_dto, metadata_value, scale_of, transaction_dto};
use talea_api::{
    AccountPostingDto, ApiError, AssetDto, BalanceTotalsDto, BalancesDto, HeldDto,
    PostTransactionRequest, PostingDto, SettleRequest, canonical_json, format_timestamp,
    parse_timestamp,
};
use talea_core::{
    AccountKind, AccountName, Amount, AmountError, Asset, AssetCode, BookName, Decimal, Draft,
    DraftError, DraftPosting, IdempotencyKey, NameError, Scale, Side, Timestamp, TxId, limits,
};
use talea_store::{AccountPosting, Rejection, StoreError};

use crate::LedgerService;

/// The scales of the assets a response mentions.
pub(crate) type Scales = BTreeMap<AssetCode, Scale>;

/// Parses a path or body name, reporting `field` on failure.
pub(crate) fn name<T>(
    parse: impl Fn(&str) -> Result<T, NameError>,
    text: &str,
    field: &str,
    what: &str,
) -> Result<T, ApiError> {
    parse(text).map_err(|e| ApiError::invalid(field, format!("{what} {e}")))
}

pub(crate) fn book(text: &str) -> Result<BookName, ApiError> {
    name(BookName::parse, text, "book", "book name")
}

/// A balances prefix: absent or empty is every account (`None`); otherwise
/// the start of an account name, so it parses as one (a prefix of a valid
/// name is a valid name: same first byte, same later bytes, shorter).
pub(crate) fn prefix(text: Option<&str>) -> Result<Option<AccountName>, ApiError> {
    match text {
        None | Some("") => Ok(None),
        Some(text) => AccountName::parse(text).map(Some).map_err(|e| {
            ApiError::invalid(
                "prefix",
                format!(
                    "prefix must be the start of an account name, at most {} bytes: {e}",
                    AccountName::MAX
                ),
            )
        }),
    }
}

pub(crate) fn account_path(text: &str) -> Result<AccountName, ApiError> {
    name(AccountName::parse, text, "account", "account name")
}

pub(crate) fn key(text: &str) -> Result<IdempotencyKey, ApiError> {
    name(
        IdempotencyKey::parse,
        text,
        "/idempotency_key",
        "idempotency_key",
    )
}

pub(crate) fn asset_code(text: &str, field: &str) -> Result<AssetCode, ApiError> {
    name(AssetCode::parse, text, field, "asset code")
}

/// Maps an amount parse failure to the contract's codes.
pub(crate) fn amount_error(e: AmountError, field: &str) -> ApiError {
    match e {
        AmountError::OutOfRange => ApiError::AmountOutOfRange {
            field: Some(field.to_owned()),
            message: format!("{field} {e}"),
        },
        _ => ApiError::invalid(field, format!("amount {e}")),
    }
}

pub(crate) fn decimal(text: &str, field: &str) -> Result<Decimal, ApiError> {
    Decimal::parse(text).map_err(|e| amount_error(e, field))
}

/// Parses an optional RFC 3339 timestamp.
pub(crate) fn timestamp(text: &str, field: &str) -> Result<Timestamp, ApiError> {
    parse_timestamp(text).ok_or_else(|| ApiError::invalid(field, "must be an RFC 3339 timestamp"))
}

/// Checks a memo: at most 1 KiB, and no NUL (which no store can hold as text).
pub(crate) fn memo(memo: Option<String>) -> Result<Option<String>, ApiError> {
    match memo {
        Some(m) if m.len() > limits::MEMO_BYTES_MAX => Err(ApiError::invalid(
            "/memo",
            format!("memo must be at most {} bytes", limits::MEMO_BYTES_MAX),
        )),
        Some(m) if m.contains('\0') => Err(ApiError::invalid("/memo", "memo must not contain NUL")),
        other => Ok(other),
    }
}

/// Serializes a metadata object compactly (as given) and canonically (for
/// fingerprints), enforcing the 16 KiB limit on the compact form.
pub(crate) fn metadata(map: &Map<String, Value>) -> Result<(String, String), ApiError> {
    let value = Value::Object(map.clone());
    let given = value.to_string();
    if given.len() > limits::METADATA_BYTES_MAX {
        return Err(ApiError::invalid(
            "/metadata",
            format!(
                "metadata must be at most {} bytes serialized",
                limits::METADATA_BYTES_MAX
            ),
        ));
    }
    Ok((given, canonical_json(&value)))
}

/// A transaction id from a path: `not_found` for anything but a UUID, as
/// for an unknown id.
pub(crate) fn tx_id(text: &str) -> Result<TxId, ApiError> {
    uuid::Uuid::parse_str(text)
        .map(TxId)
        .map_err(|_| ApiError::not_found("transaction not found"))
}

pub(crate) fn account_posting_dto(
    p: &AccountPosting,
    kind: talea_core::AccountKind,
    scale: Scale,
) -> AccountPostingDto {
    let (debit, credit) = if p.amount.minor() >= 0 {
        (Some(p.amount.format(scale)), None)
    } else {
        let magnitude = p.amount.checked_neg().unwrap_or(p.amount);
        (None, Some(magnitude.format(scale)))
    };
    AccountPostingDto {
        seq: p.seq,
        tx_id: p.tx_id.0.to_string(),
        committed_at: format_timestamp(p.committed_at),
        asset: p.asset.to_string(),
        debit,
        credit,
        balance_after: normal(kind, p.balance_after).format(scale),
    }
}

/// A storage balance on the account's normal side. The one value without a
/// negation (`i128::MIN`) cannot arise: balances are bounded by checked sums.
pub(crate) fn normal(
    kind: talea_core::AccountKind,
    storage: talea_core::Amount,
) -> talea_core::Amount {
    kind.to_normal(storage).unwrap_or(storage)
}

/// A leg whose syntax was checked: account, asset, side, amount text, and
/// the amount's field (for errors).
type ParsedLeg = (AccountName, AssetCode, Side, String, String);

/// Checks the count and syntax of a request's postings.
fn parse_legs(postings: Vec<PostingDto>) -> Result<Vec<ParsedLeg>, ApiError> {
    let count = postings.len();
    if !(limits::POSTINGS_MIN..=limits::POSTINGS_MAX).contains(&count) {
        return Err(ApiError::invalid(
            "/postings",
            format!(
                "postings must hold {} to {} items",
                limits::POSTINGS_MIN,
                limits::POSTINGS_MAX
            ),
        ));
    }
    let mut legs = Vec::with_capacity(count);
    for (i, p) in postings.into_iter().enumerate() {
        let account = name(
            AccountName::parse,
            &p.account,
            &format!("/postings/{i}/account"),
            "account name",
        )?;
        let asset = asset_code(&p.asset, &format!("/postings/{i}/asset"))?;
        let (side, text, field) = match (p.debit, p.credit) {
            (Some(d), None) => (Side::Debit, d, format!("/postings/{i}/debit")),
            (None, Some(c)) => (Side::Credit, c, format!("/postings/{i}/credit")),
            _ => {
                return Err(ApiError::invalid(
                    format!("/postings/{i}"),
                    "each posting needs exactly one of debit or credit",
                ));
            }
        };
        legs.push((account, asset, side, text, field));
    }
    Ok(legs)
}

/// Parses the legs' amounts at their assets' scales (`scales` holds every
/// registered asset they name).
fn draft_postings(legs: Vec<ParsedLeg>, scales: &Scales) -> Result<Vec<DraftPosting>, ApiError> {
    let mut postings = Vec::with_capacity(legs.len());
    for (account, asset, side, text, field) in legs {
        let Some(scale) = scales.get(&asset).copied() else {
            return Err(ApiError::UnknownAsset {
                asset: asset.to_string(),
            });
        };
        let amount = Amount::parse(&text, scale).map_err(|e| amount_error(e, &field))?;
        if !amount.is_positive() {
            return Err(ApiError::invalid(field, "amount must be greater than zero"));
        }
        postings.push(DraftPosting {
            account,
            asset,
            side,
            amount,
        });
    }
    Ok(postings)
}

/// The contract's error for a draft that breaks the structural rules.
fn draft_error(e: DraftError, scales: &Scales) -> ApiError {
    match e {
        DraftError::Unbalanced(sums) => ApiError::Unbalanced {
            imbalances: sums
                .iter()
                .map(|(asset, sum)| (asset.to_string(), sum.format(scale_of(scales, asset))))
                .collect(),
        },
        DraftError::OutOfRange => ApiError::AmountOutOfRange {
            field: Some("/postings".to_owned()),
            message: "a per-asset total does not fit 128 bits of minor units".to_owned(),
        },
        DraftError::PostingCount => ApiError::invalid("/postings", "wrong number of postings"),
        DraftError::NotPositive(i) => {
            ApiError::invalid(format!("/postings/{i}"), "amount must be greater than zero")
        }
        _ => ApiError::invalid("/postings", "invalid postings"),
    }
}

/// Checks a hold's `expires_at`: only on a pending post, and at most
/// [`limits::HOLD_EXPIRY_SECS_MAX`] ahead of `now`.
fn expires_at(
    text: Option<&str>,
    pending: bool,
    now: Timestamp,
) -> Result<Option<Timestamp>, ApiError> {
    let Some(text) = text else {
        return Ok(None);
    };
    let field = "/expires_at";
    if !pending {
        return Err(ApiError::invalid(
            field,
            "expires_at needs \"pending\": true",
        ));
    }
    let at = timestamp(text, field)?;
    // An `expires_at` already past is refused by the store, after the
    // idempotency key: a retry of a hold whose expiry has come since is
    // answered with the original hold.
    let furthest = now
        .micros()
        .saturating_add(limits::HOLD_EXPIRY_SECS_MAX.saturating_mul(1_000_000));
    if at.micros() > furthest {
        return Err(ApiError::invalid(
            field,
            "expires_at must be at most 90 days ahead",
        ));
    }
    Ok(Some(at))
}

/// A post whose syntax was checked (names, sides, times, memo, metadata),
/// waiting for the scales of its assets to parse its amounts.
#[derive(Debug)]
pub(crate) struct ParsedPost {
    key: IdempotencyKey,
    legs: Vec<ParsedLeg>,
    occurred_at: Option<Timestamp>,
    memo: Option<String>,
    metadata: Option<(String, String)>,
    /// `Some` for a hold, with its expiry.
    hold: Option<Option<Timestamp>>,
}

impl ParsedPost {
    /// Checks everything a post can be refused for before the asset registry
    /// is consulted: syntax first, for every posting, then the other fields.
    /// `now` bounds a hold's `expires_at`.
    pub(crate) fn parse(request: PostTransactionRequest, now: Timestamp) -> Result<Self, ApiError> {
        let key = key(&request.idempotency_key)?;
        let legs = parse_legs(request.postings)?;
        let occurred_at = request
            .occurred_at
            .as_deref()
            .map(|t| timestamp(t, "/occurred_at"))
            .transpose()?;
        let memo = memo(request.memo)?;
        let metadata = request.metadata.as_ref().map(metadata).transpose()?;
        let expires_at = expires_at(request.expires_at.as_deref(), request.pending, now)?;
        Ok(Self {
            key,
            legs,
            occurred_at,
            memo,
            metadata,
            hold: request.pending.then_some(expires_at),
        })
    }

    /// The assets the post names.
    pub(crate) fn asset_codes(&self) -> BTreeSet<AssetCode> {
        self.legs.iter().map(|p| p.1.clone()).collect()
    }

    /// Parses the amounts at their assets' scales (`scales` holds every
    /// registered asset the post names) and builds the balanced draft.
    pub(crate) fn into_draft(self, scales: &Scales) -> Result<Draft, ApiError> {
        let postings = draft_postings(self.legs, scales)?;
        let draft = Draft::new(
            self.key,
            postings,
            self.occurred_at,
            self.memo,
            self.metadata,
        )
        .map_err(|e| draft_error(e, scales))?;
        Ok(match self.hold {
            Some(expires_at) => draft.into_hold(expires_at),
            None => draft,
        })
    }
}

/// A settle whose syntax was checked, waiting for its assets' scales.
#[derive(Debug)]
pub(crate) struct ParsedSettle {
    key: IdempotencyKey,
    hold: TxId,
    legs: Option<Vec<ParsedLeg>>,
}

impl ParsedSettle {
    /// Checks the key, the hold's id and the postings' syntax.
    pub(crate) fn parse(hold: &str, request: SettleRequest) -> Result<Self, ApiError> {
        let hold = tx_id(hold)?;
        let key = key(&request.idempotency_key)?;
        let legs = request.postings.map(parse_legs).transpose()?;
        Ok(Self { key, hold, legs })
    }

    /// The assets the partial settle names.
    pub(crate) fn asset_codes(&self) -> BTreeSet<AssetCode> {
        self.legs.iter().flatten().map(|p| p.1.clone()).collect()
    }

    /// The settle draft, amounts parsed at `scales`.
    pub(crate) fn into_draft(self, scales: &Scales) -> Result<Draft, ApiError> {
        let postings = self
            .legs
            .map(|legs| draft_postings(legs, scales))
            .transpose()?;
        Draft::settle(self.key, self.hold, postings).map_err(|e| draft_error(e, scales))
    }
}

/// Turns a decoded post into a `Draft` exactly as `post_transaction` does,
/// with `scales` standing in for the asset registry. For the fuzz targets in
/// `fuzz/`; not part of the API.
#[doc(hidden)]
pub fn draft_from_request(
    request: PostTransactionRequest,
    scales: &BTreeMap<AssetCode, Scale>,
) -> Result<Draft, ApiError> {
    ParsedPost::parse(request, Timestamp::from_micros(0))?.into_draft(scales)
}
pub(crate) fn store_error(e: &StoreError) -> ApiError {
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
pub(crate) fn codes<'a>(it: impl IntoIterator<Item = &'a AssetCode>) -> BTreeSet<AssetCode> {
    it.into_iter().cloned().collect()
}

/// A `[from, to)` range of RFC 3339 instants, either end open; 400 naming
/// the field for a bad instant, and `from` for a range backwards.
pub(crate) fn time_range(
    from: Option<&str>,
    to: Option<&str>,
) -> Result<(Option<Timestamp>, Option<Timestamp>), ApiError> {
    let from = from.map(|t| timestamp(t, "from")).transpose()?;
    let to = to.map(|t| timestamp(t, "to")).transpose()?;
    if let (Some(f), Some(t)) = (from, to)
        && f > t
    {
        return Err(ApiError::invalid(
            "from",
            "from must not be after to (time range backwards)",
        ));
    }
    Ok((from, to))
}

pub(crate) fn check_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    match limit {
        None => Ok(limits::PAGE_LIMIT_DEFAULT),
        Some(n) if (1..=limits::PAGE_LIMIT_MAX).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid(
            "limit",
            format!("limit must be 1..={}", limits::PAGE_LIMIT_MAX),
        )),
    }
}

impl LedgerService {
    pub(crate) async fn rejection(&self, book: &BookName, rejection: Rejection) -> ApiError {
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
                        normal(a.kind, balance).format(scale),
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
            Rejection::ExpiresInPast => {
                ApiError::invalid("/expires_at", "expires_at must be in the future")
            }
            Rejection::UnknownTransaction(_) => ApiError::not_found("transaction not found"),
            Rejection::NotAHold(tx_id) => ApiError::NotAHold {
                tx_id: tx_id.0.to_string(),
            },
            Rejection::HoldNotPending { status, ended_by } => ApiError::HoldNotPending {
                status: status.as_str().to_owned(),
                tx_id: ended_by.map(|id| id.0.to_string()),
            },
            Rejection::ExceedsHold {
                account,
                asset,
                held,
                requested,
            } => {
                let scale = match self.asset(&asset).await {
                    Ok(Some(a)) => a.scale,
                    _ => Scale::ZERO,
                };
                ApiError::ExceedsHold {
                    account: account.to_string(),
                    asset: asset.to_string(),
                    held: held.format(scale),
                    requested: requested.format(scale),
                }
            }
            Rejection::Failed(reason) => {
                tracing::error!(book = %book, reason = %reason, "storage refused a draft");
                ApiError::Internal
            }
            _ => ApiError::Internal,
        }
    }
}

pub(crate) fn rejection_code(r: &Rejection) -> &'static str {
    let code = match r {
        Rejection::IdempotencyKeyReused(_) => talea_api::ErrorCode::IdempotencyKeyReused,
        Rejection::UnknownAccount(_) => talea_api::ErrorCode::UnknownAccount,
        Rejection::InsufficientBalance { .. } => talea_api::ErrorCode::InsufficientBalance,
        Rejection::AmountOutOfRange => talea_api::ErrorCode::AmountOutOfRange,
        Rejection::ExpiresInPast => talea_api::ErrorCode::InvalidRequest,
        Rejection::UnknownTransaction(_) => talea_api::ErrorCode::NotFound,
        Rejection::NotAHold(_) => talea_api::ErrorCode::NotAHold,
        Rejection::HoldNotPending { .. } => talea_api::ErrorCode::HoldNotPending,
        Rejection::ExceedsHold { .. } => talea_api::ErrorCode::ExceedsHold,
        // A database refusal answers `internal`; its label stays `failed`, as
        // dashboards know it, to tell it from other internal errors.
        _ => return "failed",
    };
    code.as_str()
}

pub(crate) fn asset_dto(asset: &Asset) -> AssetDto {
    AssetDto {
        code: asset.code.to_string(),
        scale: asset.scale.digits(),
        name: asset.name.clone(),
    }
}

/// An account's balances as `GET …/balances` and the stream's snapshot
/// show them, in one pass over its rows: per asset, the normal-side posted
/// balance, what live holds reserve, and the available balance (posted
/// minus the held amounts that would lower it).
pub(crate) fn balances_dto(
    account: &AccountName,
    kind: AccountKind,
    as_of: String,
    balances: &[talea_store::Balance],
    scales: &Scales,
) -> BalancesDto {
    let mut dto = BalancesDto {
        account: account.to_string(),
        as_of,
        balances: BTreeMap::new(),
        pending: BTreeMap::new(),
        available: BTreeMap::new(),
    };
    for b in balances {
        let scale = scale_of(scales, &b.asset);
        let posted = normal(kind, b.balance);
        let totals = talea_store::plan::Totals {
            balance: b.balance.minor(),
            ..Default::default()
        };
        // Balances are bounded by checked sums; the fallback is the posted
        // balance, never a wrong figure silently widened.
        let available = talea_store::plan::available(kind, totals, b.held).unwrap_or(posted);
        let asset = b.asset.to_string();
        dto.balances.insert(asset.clone(), posted.format(scale));
        dto.pending.insert(
            asset.clone(),
            HeldDto {
                debits: b.held.debits.format(scale),
                credits: b.held.credits.format(scale),
            },
        );
        dto.available.insert(asset, available.format(scale));
    }
    dto
}

/// Per asset, the sums over a prefix's accounts: each (kind, asset) total
/// of the store turned normal-side and available exactly as one account's
/// (both are linear in the balance and held amounts, so summing per kind
/// first loses nothing), then added across kinds.
pub(crate) fn balance_totals(
    totals: &[talea_store::KindTotal],
    scales: &Scales,
) -> Result<BalanceTotalsDto, ApiError> {
    let overflow = |asset: &AssetCode| {
        store_error(&StoreError::Corrupt(format!(
            "totals of {asset} beyond 128 bits"
        )))
    };
    let mut sums: BTreeMap<AssetCode, [Amount; 4]> = BTreeMap::new();
    for t in totals {
        let b = &t.total;
        let posted = t
            .kind
            .to_normal(b.balance)
            .ok_or_else(|| overflow(&b.asset))?;
        let available = talea_store::plan::available(
            t.kind,
            talea_store::plan::Totals {
                balance: b.balance.minor(),
                ..Default::default()
            },
            b.held,
        )
        .ok_or_else(|| overflow(&b.asset))?;
        let sum = sums.entry(b.asset.clone()).or_insert([Amount::ZERO; 4]);
        for (slot, add) in sum
            .iter_mut()
            .zip([posted, b.held.debits, b.held.credits, available])
        {
            *slot = slot.checked_add(add).ok_or_else(|| overflow(&b.asset))?;
        }
    }
    let mut dto = BalanceTotalsDto::default();
    for (asset, [posted, debits, credits, available]) in sums {
        let scale = scale_of(scales, &asset);
        let code = asset.to_string();
        dto.balances.insert(code.clone(), posted.format(scale));
        dto.pending.insert(
            code.clone(),
            HeldDto {
                debits: debits.format(scale),
                credits: credits.format(scale),
            },
        );
        dto.available.insert(code, available.format(scale));
    }
    Ok(dto)
}

/// Normal-side balances by asset code, formatted at each asset's scale.
pub(crate) fn balance_map(
    kind: AccountKind,
    balances: &[talea_store::Balance],
    scales: &Scales,
) -> BTreeMap<String, String> {
    balances
        .iter()
        .map(|b| {
            (
                b.asset.to_string(),
                normal(kind, b.balance).format(scale_of(scales, &b.asset)),
            )
        })
        .collect()
}
