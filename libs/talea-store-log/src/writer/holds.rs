//! The writer's hold bookkeeping within a frame: ending due holds
//! (`expire_holds`), the held amounts the frame's holds leave on each pair,
//! the holds due at a commit time, and how a hold stands for a settle or
//! void, all as the frame's overlay left them over the durable indexes.

use talea_core::{BookName, Commit, Event, EventKind, Side, Timestamp, TxId, TxStatus};
use talea_store::plan::{HoldState, Pair};
use talea_store::{Expiry, Held, StoreError};

use super::{BookOverlay, Frame, Scales, book_head, commit_time, too_large};
use crate::codec::{ExpiryRecord, Record};
use crate::file::LogFile;
use crate::state::State;

/// Most holds one `expire_holds` call ends (their records take about
/// 40 bytes each, and their chain records about 50 more, plus the book's
/// name twice: at most about 21 MB for a call, below `FRAME_BYTES_MAX`);
/// the rest stay due, and the next call ends them.
const EXPIRIES_PER_CALL_MAX: usize = 100_000;

/// Ends every pending hold of `book` due at the commit time taken now (up
/// to [`EXPIRIES_PER_CALL_MAX`]): one `hold_expired` record each, earliest
/// expiry first.
pub(super) fn expire(
    state: &State,
    frame: &mut Frame,
    book: &BookName,
) -> Result<Vec<Expiry>, StoreError> {
    let head = book_head(&mut frame.overlay.books, state, book);
    let committed_at = commit_time(head.last_time);
    let mut due = due_holds(state, head, book, committed_at);
    due.truncate(EXPIRIES_PER_CALL_MAX);
    if due.is_empty() {
        return Ok(Vec::new());
    }
    let expiries = talea_store::plan::expiries(due, head.last_seq, committed_at);
    let mark = frame.sink.mark();
    let scales = Scales {
        frame: &frame.overlay.assets,
        state,
    };
    let chain = head.chain(state, book);
    let chain_before = *chain;
    for e in &expiries {
        let record = Record::HoldExpired(ExpiryRecord {
            book: book.clone(),
            seq: e.seq,
            committed_at,
            hold: e.hold.tx_id,
        });
        // The event as the read path rebuilds it: the hold's record with
        // status expired, at the expiry's seq and time.
        let event = Event {
            seq: e.seq,
            committed_at,
            kind: EventKind::HoldExpired(e.hold.clone()),
            hash: None,
        };
        let pushed = frame
            .sink
            .push_event(chain, (book, record, &event), &scales)
            .and_then(|pushed| pushed.map_err(too_large));
        if let Err(error) = pushed {
            frame.sink.rollback(mark);
            *chain = chain_before;
            return Err(error);
        }
    }
    for e in &expiries {
        let mut commit = e.hold.clone();
        commit.status = TxStatus::Pending;
        change_raw_held(state, head, book, &commit, false);
        head.holds.insert(
            commit.tx_id,
            HoldState {
                commit,
                status: TxStatus::Expired,
                ended_by: None,
            },
        );
        head.last_seq = e.seq;
    }
    head.last_time = Some(committed_at);
    Ok(expiries)
}

/// What every pending hold (due or not) reserves on a pair, as the frame
/// left it.
pub(super) fn raw_held(state: &State, head: &BookOverlay, book: &BookName, pair: &Pair) -> Held {
    head.held
        .get(pair)
        .copied()
        .or_else(|| {
            state
                .book(book)
                .and_then(|b| b.account(&pair.0))
                .and_then(|a| a.assets.get(&pair.1))
                .map(|p| p.held)
        })
        .unwrap_or_default()
}

/// Adds (`add`) or releases a hold's legs in the frame's raw held amounts.
pub(super) fn change_raw_held(
    state: &State,
    head: &mut BookOverlay,
    book: &BookName,
    hold: &Commit,
    add: bool,
) {
    for p in &hold.postings {
        let pair = (p.account.clone(), p.asset.clone());
        let mut held = raw_held(state, head, book, &pair);
        let total = match p.side {
            Side::Debit => &mut held.debits,
            Side::Credit => &mut held.credits,
        };
        // The planner checked these sums; replay checks them again.
        let moved = if add {
            total.checked_add(p.amount)
        } else {
            total.checked_sub(p.amount)
        };
        if let Some(moved) = moved {
            *total = moved;
        }
        head.held.insert(pair, held);
    }
}

/// The pending holds of `book` (as the frame left them) whose
/// `expires_at` is at or before `until`, earliest expiry first, then by seq.
pub(super) fn due_holds(
    state: &State,
    head: &BookOverlay,
    book: &BookName,
    until: Timestamp,
) -> Vec<Commit> {
    let mut due: Vec<(Timestamp, u64, Commit)> = Vec::new();
    if let Some(b) = state.book(book) {
        for (expiry, entry) in b.due(until) {
            // A durable hold in the overlay is one the frame ended.
            if let Some(live) = entry.live.as_deref()
                && !head.holds.contains_key(&live.tx_id)
            {
                due.push((expiry, entry.seq, live.clone()));
            }
        }
    }
    for hold in head.holds.values() {
        if hold.status == TxStatus::Pending
            && let Some(expiry) = hold.commit.expires_at
            && expiry <= until
        {
            due.push((expiry, hold.commit.seq, hold.commit.clone()));
        }
    }
    due.sort_by_key(|(expiry, seq, _)| (*expiry, *seq));
    due.into_iter().map(|(_, _, commit)| commit).collect()
}

/// The transaction `tx_id` of `book` as a settle or void finds it: a hold
/// with how it stands, or any other transaction (from the frame's
/// overlay and records first, then the indexes and the log).
pub(super) fn hold_state(
    state: &State,
    file: &LogFile,
    records: &[(Record, usize)],
    head: &BookOverlay,
    book: &BookName,
    tx_id: TxId,
) -> Result<Option<HoldState>, StoreError> {
    if let Some(found) = head.holds.get(&tx_id) {
        return Ok(Some(found.clone()));
    }
    if let Some(entry) = state.book(book).and_then(|b| b.hold(&tx_id)) {
        let commit = match entry.live.as_deref() {
            Some(live) => live.clone(),
            None => match file.read_record(entry.offset)? {
                Record::Transaction(t) if t.commit.tx_id == tx_id => t.commit,
                other => {
                    return Err(StoreError::Corrupt(format!(
                        "book {book}: hold {} is indexed at offset {}, which holds {other:?}",
                        tx_id.0, entry.offset
                    )));
                }
            },
        };
        return Ok(Some(HoldState {
            commit,
            status: entry.status,
            ended_by: entry.ended_by,
        }));
    }
    // Not a hold: any other transaction of the book, in this frame or durable.
    let as_found = |commit: Commit| HoldState {
        status: commit.status,
        commit,
        ended_by: None,
    };
    for (record, _) in records {
        if let Record::Transaction(t) = record
            && t.commit.tx_id == tx_id
            && t.commit.book == *book
        {
            return Ok(Some(as_found(t.commit.clone())));
        }
    }
    for offset in state.tx_candidates(tx_id) {
        if let Record::Transaction(t) = file.read_record(offset)?
            && t.commit.tx_id == tx_id
            && t.commit.book == *book
        {
            return Ok(Some(as_found(t.commit)));
        }
    }
    Ok(None)
}
