//! A writer process killed with SIGKILL mid-load loses no acknowledged commit.
//!
//! The child is this crate's `talea-store-log-load` with `--print-acks`: it
//! prints a line per commit only after `commit_batch` returned it, so every
//! line the parent reads names a commit the store acknowledged.

use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use talea_core::{EventKind, TxId};
use talea_store::{Store, StoreError};
use talea_store_log::LogStore;

use crate::book;

/// Acknowledged commits to wait for before the kill.
const ACKS_BEFORE_KILL: usize = 20_000;
/// How long the child may take to get there.
const DEADLINE: Duration = Duration::from_secs(60);

/// One `ack BOOK SEQ TX_ID KEY` line.
#[derive(Debug)]
struct Ack {
    book: String,
    seq: u64,
    tx_id: TxId,
    key: String,
}

/// Kills the child if the test fails before it does (the child would also
/// stop by itself at its next write to the closed pipe).
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn parse_ack(line: &str) -> Option<Ack> {
    let mut parts = line.splitn(5, ' ');
    if parts.next()? != "ack" {
        return None;
    }
    Some(Ack {
        book: parts.next()?.to_owned(),
        seq: parts.next()?.parse().ok()?,
        tx_id: TxId(parts.next()?.parse().ok()?),
        key: parts.next()?.to_owned(),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_killed_mid_load_loses_no_acknowledged_commit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let child = Command::new(env!("CARGO_BIN_EXE_talea-store-log-load"))
        .args(["--dir"])
        .arg(dir.path())
        .args(["--books", "2", "--writers", "3", "--batch", "16"])
        .args(["--seconds", "600", "--print-acks"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn the load generator");
    let mut child = KillOnDrop(child);
    let stdout = child.0.stdout.take().expect("child stdout");
    let (lines, received) = mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    let started = Instant::now();
    let mut acks = Vec::new();
    let mut ready = false;
    while acks.len() < ACKS_BEFORE_KILL {
        let left = DEADLINE.saturating_sub(started.elapsed());
        let line = match received.recv_timeout(left) {
            Ok(line) => line,
            Err(e) => panic!("only {} acks within {DEADLINE:?}: {e}", acks.len()),
        };
        if line == "ready" {
            ready = true;
            // While the child holds the store, this process cannot open it.
            let err = LogStore::open(dir.path()).expect_err("the child holds the lock");
            assert!(
                matches!(&err, StoreError::Unavailable(m) if m.contains(&format!("process {}", child.0.id()))),
                "the error names the holding process: {err:?}"
            );
            continue;
        }
        acks.push(parse_ack(&line).unwrap_or_else(|| panic!("unexpected line {line:?}")));
    }
    assert!(ready);

    // SIGKILL, mid-load: batches are in flight and frames being written.
    child.0.kill().expect("kill -9 the writer");
    child.0.wait().expect("reap the writer");
    reader.join().expect("reader thread");
    // Lines already in the pipe were acknowledged before the kill too.
    acks.extend(received.try_iter().filter_map(|l| parse_ack(&l)));

    let store = LogStore::open(dir.path()).expect("reopen after the crash");
    let records = store.verify().expect("every checksum verifies");
    assert!(records as usize >= acks.len());

    // Every book's log is dense and its times never go back.
    let mut tx_ids: HashSet<TxId> = HashSet::new();
    let mut last_seqs: BTreeMap<String, u64> = BTreeMap::new();
    for info in store.books().await.expect("books") {
        let mut after = 0;
        let mut last_time = None;
        loop {
            let events = store.events(&info.book, after, 1000).await.expect("events");
            let Some(last) = events.last() else { break };
            for e in &events {
                assert_eq!(e.seq, after + 1, "book {} is dense", info.book);
                assert!(last_time <= Some(e.committed_at));
                last_time = Some(e.committed_at);
                after = e.seq;
                if let EventKind::Transaction(c) = &e.kind {
                    tx_ids.insert(c.tx_id);
                }
            }
            assert_eq!(after, last.seq);
        }
        assert_eq!(after, info.last_seq);
        last_seqs.insert(info.book.to_string(), info.last_seq);
    }

    // Every acknowledged commit is there, as acknowledged.
    for ack in &acks {
        assert!(
            tx_ids.contains(&ack.tx_id),
            "acknowledged {ack:?} is in the log"
        );
        let commit = store
            .transaction(ack.tx_id, None)
            .await
            .expect("transaction")
            .unwrap_or_else(|| panic!("acknowledged {ack:?} survives the crash"));
        assert_eq!(
            (
                commit.book.as_str(),
                commit.seq,
                commit.idempotency_key.as_str()
            ),
            (ack.book.as_str(), ack.seq, ack.key.as_str())
        );
        assert!(ack.seq <= last_seqs[&ack.book]);
    }

    // The store takes writes again where the log left off.
    let b = book("load-0");
    let next = crate::commit_all(&store, &b, &[crate::deposit("after-crash", 1)]).await;
    assert_eq!(next[0].seq, last_seqs["load-0"] + 1);
}
