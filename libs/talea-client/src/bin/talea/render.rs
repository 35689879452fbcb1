//! Human-readable output: aligned tables, amounts right-aligned so digits line up.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;
use talea_api::{
    AccountList, AssetList, BalanceHistoryDto, BalancesDto, BookBalancesDto, BookList, EventList,
    HeldDto, PostingDto, TransactionDto, TrialBalanceDto,
};

/// A column: its heading and whether values align right (numbers).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Col(pub &'static str, pub bool);

/// Formats rows under headings, columns two spaces apart, no trailing spaces.
pub(crate) fn table(cols: &[Col], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = cols.iter().map(|c| c.0.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let mut text = String::new();
        for (i, (cell, col)) in cells.iter().zip(cols).enumerate() {
            if i > 0 {
                text.push_str("  ");
            }
            let pad = widths[i].saturating_sub(cell.chars().count());
            if col.1 {
                text.push_str(&" ".repeat(pad));
                text.push_str(cell);
            } else {
                text.push_str(cell);
                text.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(cols.iter().map(|c| c.0).collect());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

fn opt(value: Option<&str>) -> String {
    value.unwrap_or("-").to_owned()
}

fn postings(legs: &[PostingDto]) -> String {
    let rows: Vec<Vec<String>> = legs
        .iter()
        .map(|p| {
            vec![
                p.account.clone(),
                p.asset.clone(),
                p.debit.clone().unwrap_or_default(),
                p.credit.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            Col("ACCOUNT", false),
            Col("ASSET", false),
            Col("DEBIT", true),
            Col("CREDIT", true),
        ],
        &rows,
    )
}

/// A transaction: its identity, then its legs.
pub(crate) fn transaction(tx: &TransactionDto) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "tx_id            {}", tx.tx_id);
    let _ = writeln!(out, "book             {}", tx.book);
    let _ = writeln!(out, "seq              {}", tx.seq);
    let _ = writeln!(out, "committed_at     {}", tx.committed_at);
    let _ = writeln!(out, "idempotency_key  {}", tx.idempotency_key);
    let _ = writeln!(out, "status           {}", tx.status);
    if let Some(at) = &tx.expires_at {
        let _ = writeln!(out, "expires_at       {at}");
    }
    if let Some(hold) = &tx.pending_tx_id {
        let _ = writeln!(out, "pending_tx_id    {hold}");
    }
    let _ = writeln!(out, "occurred_at      {}", opt(tx.occurred_at.as_deref()));
    let _ = writeln!(out, "memo             {}", opt(tx.memo.as_deref()));
    if let Some(metadata) = &tx.metadata {
        let _ = writeln!(out, "metadata         {}", Value::Object(metadata.clone()));
    }
    out.push('\n');
    out.push_str(&postings(&tx.postings));
    out
}

/// The answer to a post: committed now, or the original of a replay.
pub(crate) fn posted(tx: &TransactionDto) -> String {
    let head = if tx.deduplicated == Some(true) {
        format!(
            "deduplicated: key {:?} was already committed as tx {} (seq {}); nothing new was posted\n\n",
            tx.idempotency_key, tx.tx_id, tx.seq
        )
    } else {
        format!("committed tx {} (seq {})\n\n", tx.tx_id, tx.seq)
    };
    head + &transaction(tx)
}

pub(crate) fn balances(b: &BalancesDto, book: &str) -> String {
    let rows: Vec<Vec<String>> = b
        .balances
        .iter()
        .map(|(asset, amount)| {
            let held = b.pending.get(asset);
            vec![
                asset.clone(),
                amount.clone(),
                held.map_or_else(|| "0".to_owned(), |h| h.debits.clone()),
                held.map_or_else(|| "0".to_owned(), |h| h.credits.clone()),
                b.available
                    .get(asset)
                    .cloned()
                    .unwrap_or_else(|| amount.clone()),
            ]
        })
        .collect();
    let mut out = format!("account {} in book {book} as of {}\n\n", b.account, b.as_of);
    if rows.is_empty() {
        out.push_str("(no balances)\n");
    } else {
        let cols = [
            Col("ASSET", false),
            Col("BALANCE", true),
            Col("HELD DEBITS", true),
            Col("HELD CREDITS", true),
            Col("AVAILABLE", true),
        ];
        out.push_str(&table(&cols, &rows));
    }
    out
}

/// Rows of `(account, asset, balance, held debits, held credits,
/// available)` from one set of balance maps.
fn balance_rows(
    account: &str,
    balances: &BTreeMap<String, String>,
    pending: &BTreeMap<String, HeldDto>,
    available: &BTreeMap<String, String>,
) -> Vec<Vec<String>> {
    balances
        .iter()
        .map(|(asset, amount)| {
            let held = pending.get(asset);
            vec![
                account.to_owned(),
                asset.clone(),
                amount.clone(),
                held.map_or_else(|| "0".to_owned(), |h| h.debits.clone()),
                held.map_or_else(|| "0".to_owned(), |h| h.credits.clone()),
                available
                    .get(asset)
                    .cloned()
                    .unwrap_or_else(|| amount.clone()),
            ]
        })
        .collect()
}

/// `talea balances`: the page's rows, then the totals over every match.
pub(crate) fn book_balances(b: &BookBalancesDto) -> String {
    let prefix = if b.prefix.is_empty() {
        "(all)"
    } else {
        b.prefix.as_str()
    };
    let mut out = format!(
        "{} accounts under prefix {prefix} in book {} as of {}\n\n",
        b.count, b.book, b.as_of
    );
    let cols = [
        Col("ACCOUNT", false),
        Col("ASSET", false),
        Col("BALANCE", true),
        Col("HELD DEBITS", true),
        Col("HELD CREDITS", true),
        Col("AVAILABLE", true),
    ];
    let rows: Vec<Vec<String>> = b
        .accounts
        .iter()
        .flat_map(|a| balance_rows(&a.account, &a.balances, &a.pending, &a.available))
        .collect();
    if rows.is_empty() {
        out.push_str("(no balances on this page)\n");
    } else {
        out.push_str(&table(&cols, &rows));
    }
    let t = &b.totals;
    let totals = balance_rows("TOTAL", &t.balances, &t.pending, &t.available);
    if !totals.is_empty() {
        out.push('\n');
        out.push_str(&table(&cols, &totals));
    }
    out
}

/// `talea history`: the changes, or the buckets with --points.
pub(crate) fn history(h: &BalanceHistoryDto) -> String {
    let mut out = format!(
        "{} {} in book {} from {} to {}, opening {}\n\n",
        h.account,
        h.asset,
        h.book,
        h.from.as_deref().unwrap_or("(start)"),
        h.to.as_deref().unwrap_or("(now)"),
        h.opening
    );
    if !h.buckets.is_empty() {
        let cols = [
            Col("START", false),
            Col("FIRST", true),
            Col("LAST", true),
            Col("MIN", true),
            Col("MAX", true),
        ];
        let rows: Vec<Vec<String>> = h
            .buckets
            .iter()
            .map(|b| {
                vec![
                    b.start.clone(),
                    b.first.clone(),
                    b.last.clone(),
                    b.min.clone(),
                    b.max.clone(),
                ]
            })
            .collect();
        out.push_str(&table(&cols, &rows));
    } else if h.changes.is_empty() {
        out.push_str("(no changes in this range)\n");
    } else {
        let cols = [
            Col("SEQ", true),
            Col("COMMITTED AT", false),
            Col("BALANCE", true),
        ];
        let rows: Vec<Vec<String>> = h
            .changes
            .iter()
            .map(|c| vec![c.seq.to_string(), c.committed_at.clone(), c.balance.clone()])
            .collect();
        out.push_str(&table(&cols, &rows));
    }
    out
}

pub(crate) fn trial_balance(tb: &TrialBalanceDto) -> String {
    let rows: Vec<Vec<String>> = tb
        .rows
        .iter()
        .map(|r| {
            vec![
                r.account.clone(),
                r.kind.clone(),
                r.asset.clone(),
                r.debits.clone(),
                r.credits.clone(),
                r.balance.clone(),
            ]
        })
        .collect();
    let mut out = format!("trial balance of book {} as of {}\n\n", tb.book, tb.as_of);
    if rows.is_empty() {
        out.push_str("(no postings yet)\n");
        return out;
    }
    out.push_str(&table(
        &[
            Col("ACCOUNT", false),
            Col("KIND", false),
            Col("ASSET", false),
            Col("DEBITS", true),
            Col("CREDITS", true),
            Col("BALANCE", true),
        ],
        &rows,
    ));
    let totals: Vec<Vec<String>> = tb
        .totals
        .iter()
        .map(|(asset, t)| {
            let held = tb
                .pending
                .get(asset)
                .cloned()
                .unwrap_or_else(|| "0".to_owned());
            vec![asset.clone(), t.debits.clone(), t.credits.clone(), held]
        })
        .collect();
    out.push('\n');
    out.push_str(&table(
        &[
            Col("TOTAL", false),
            Col("DEBITS", true),
            Col("CREDITS", true),
            Col("PENDING", true),
        ],
        &totals,
    ));
    out.push('\n');
    out.push_str(if tb.balanced {
        "balanced: debits equal credits in every asset\n"
    } else {
        "NOT BALANCED: debits differ from credits\n"
    });
    out
}

/// One line of a transaction event: its id, key, status when not plainly
/// posted (`pending`, `voided`, `expired`, a settle's hold) and legs.
pub(crate) fn transaction_line(data: &Value) -> String {
    let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
    let status = match (text("status").as_str(), text("pending_tx_id")) {
        ("posted" | "", hold) if hold.is_empty() => String::new(),
        ("posted", hold) => format!(" [settles {hold}]"),
        ("voided", hold) => format!(" [voids {hold}]"),
        (other, _) => format!(" [{other}]"),
    };
    format!(
        "tx {} key {:?}{status}: {}",
        text("tx_id"),
        text("idempotency_key"),
        legs(&data["postings"])
    )
}

/// Transactions, one row each: seq, commit time, status and legs.
pub(crate) fn transactions(list: &[TransactionDto]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|tx| {
            vec![
                tx.seq.to_string(),
                tx.committed_at.clone(),
                tx.status.clone(),
                tx.idempotency_key.clone(),
                tx_legs(tx),
            ]
        })
        .collect();
    table(
        &[
            Col("SEQ", true),
            Col("COMMITTED_AT", false),
            Col("STATUS", false),
            Col("KEY", false),
            Col("LEGS", false),
        ],
        &rows,
    )
}

/// Pending holds, one row each: expiry (or "never"), seq, id and legs.
pub(crate) fn holds(list: &[TransactionDto]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|tx| {
            vec![
                tx.expires_at.clone().unwrap_or_else(|| "never".to_owned()),
                tx.seq.to_string(),
                tx.tx_id.clone(),
                tx_legs(tx),
            ]
        })
        .collect();
    table(
        &[
            Col("EXPIRES_AT", false),
            Col("SEQ", true),
            Col("TX_ID", false),
            Col("LEGS", false),
        ],
        &rows,
    )
}

fn tx_legs(tx: &TransactionDto) -> String {
    serde_json::to_value(&tx.postings)
        .map(|v| legs(&v))
        .unwrap_or_default()
}

pub(crate) fn events(list: &EventList) -> String {
    let rows: Vec<Vec<String>> = list
        .events
        .iter()
        .map(|e| {
            let data = &e.data;
            let text = |k: &str| data.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
            let detail = match e.kind.as_str() {
                "account_opened" => format!("{} ({})", text("name"), text("kind")),
                "transaction" | "hold_expired" => transaction_line(data),
                _ => String::new(),
            };
            vec![
                e.seq.to_string(),
                e.kind.clone(),
                e.committed_at.clone(),
                detail,
            ]
        })
        .collect();
    table(
        &[
            Col("SEQ", true),
            Col("TYPE", false),
            Col("COMMITTED_AT", false),
            Col("DETAIL", false),
        ],
        &rows,
    )
}

pub(crate) fn assets(list: &AssetList) -> String {
    let rows: Vec<Vec<String>> = list
        .assets
        .iter()
        .map(|a| vec![a.code.clone(), a.scale.to_string(), opt(a.name.as_deref())])
        .collect();
    table(
        &[Col("CODE", false), Col("SCALE", true), Col("NAME", false)],
        &rows,
    )
}

pub(crate) fn accounts(list: &AccountList) -> String {
    let rows: Vec<Vec<String>> = list
        .accounts
        .iter()
        .map(|a| {
            vec![
                a.name.clone(),
                a.kind.clone(),
                opt(a.min_balance.as_deref()),
                a.seq.to_string(),
                a.opened_at.clone(),
            ]
        })
        .collect();
    table(
        &[
            Col("NAME", false),
            Col("KIND", false),
            Col("MIN_BALANCE", true),
            Col("SEQ", true),
            Col("OPENED_AT", false),
        ],
        &rows,
    )
}

pub(crate) fn books(list: &BookList) -> String {
    let rows: Vec<Vec<String>> = list
        .books
        .iter()
        .map(|b| vec![b.book.clone(), b.last_seq.to_string()])
        .collect();
    table(&[Col("BOOK", false), Col("LAST_SEQ", true)], &rows)
}

/// A transaction's legs on one line, each as a debit or a credit of a
/// positive amount, as `post` and `tx` show them in their DEBIT and CREDIT
/// columns (never the storage sign): `debit treasury 0.025 BTC, credit
/// customers:alice 0.025 BTC`.
fn legs(postings: &Value) -> String {
    let legs: Vec<String> = postings
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| {
                    let (side, amount) = match (p["debit"].as_str(), p["credit"].as_str()) {
                        (Some(a), _) => ("debit", a),
                        (_, Some(a)) => ("credit", a),
                        _ => ("leg", ""),
                    };
                    format!("{side} {} {amount} {}", s(&p["account"]), s(&p["asset"]))
                })
                .collect()
        })
        .unwrap_or_default();
    legs.join(", ")
}

/// One streamed event on one line: seq, type, and what it is about.
pub(crate) fn stream_event(event: &talea_client::StreamEvent) -> String {
    let d = &event.data;
    match event.kind.as_str() {
        "transaction" | "hold_expired" => format!(
            "{:>8}  {}  {} {}",
            event.seq,
            s(&d["committed_at"]),
            event.kind,
            transaction_line(d)
        ),
        "account_opened" => format!(
            "{:>8}  {}  account_opened {} ({})",
            event.seq,
            s(&d["opened_at"]),
            s(&d["name"]),
            s(&d["kind"])
        ),
        other => format!("{:>8}  {other}", event.seq),
    }
}

fn s(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or("-")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_text_left_and_numbers_right() {
        let out = table(
            &[Col("ASSET", false), Col("BALANCE", true)],
            &[
                vec!["BTC".to_owned(), "0.015".to_owned()],
                vec!["USDC".to_owned(), "1250".to_owned()],
            ],
        );
        assert_eq!(out, "ASSET  BALANCE\nBTC      0.015\nUSDC      1250\n");
    }

    /// `tail` and `log` show each leg as a debit or a credit of a positive
    /// amount, the words of `post`'s and `tx`'s columns, never a sign.
    #[test]
    fn legs_read_as_debits_and_credits() {
        let postings = serde_json::json!([
            {"account": "treasury", "asset": "BTC", "debit": "0.025"},
            {"account": "customers:alice", "asset": "BTC", "credit": "0.025"}
        ]);
        assert_eq!(
            legs(&postings),
            "debit treasury 0.025 BTC, credit customers:alice 0.025 BTC"
        );
    }
}
