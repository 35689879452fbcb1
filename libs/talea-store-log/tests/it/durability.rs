//! What only the append log has: reopening, torn tails, corruption, limits and the directory lock.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use talea_core::{Draft, IdempotencyKey, Timestamp};
use talea_store::{Outcome, Rejection, Store, StoreError};
use talea_store_log::{LOG_FILE, LogStore, RECORD_BYTES_MAX};

use crate::{book, commit_all, deposit, seeded};

fn log_path(dir: &Path) -> PathBuf {
    dir.join(LOG_FILE)
}

fn file_len(dir: &Path) -> u64 {
    std::fs::metadata(log_path(dir))
        .expect("stat the log")
        .len()
}

fn flip_byte(dir: &Path, offset: u64) {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(log_path(dir))
        .expect("open the log");
    let mut byte = [0];
    file.read_exact_at(&mut byte, offset).expect("read a byte");
    byte[0] ^= 0x5a;
    file.write_all_at(&byte, offset).expect("write a byte");
}

fn drafts(prefix: &str, n: usize) -> Vec<Draft> {
    (0..n)
        .map(|i| deposit(&format!("{prefix}-{i}"), 1 + i as i128))
        .collect()
}

/// Everything a reader can see of one book, for comparing before and after.
async fn snapshot(store: &LogStore, b: &talea_core::BookName) -> String {
    let events = store.events(b, 0, 1000).await.expect("events");
    let txs = store.transactions(b, 0, 1000).await.expect("transactions");
    let accounts = store.accounts(b, None, 100).await.expect("accounts");
    let mut out = format!("{events:?}\n{txs:?}\n{accounts:?}\n");
    for a in &accounts {
        let balances = store.balances(b, &a.name, None).await.expect("balances");
        let postings = store
            .account_postings(b, &a.name, 0, 1000)
            .await
            .expect("postings");
        out.push_str(&format!("{balances:?}\n{postings:?}\n"));
    }
    for e in &events {
        let at = Some(e.committed_at);
        out.push_str(&format!(
            "{:?}\n",
            store.trial_balance(b, at).await.expect("trial")
        ));
    }
    out.push_str(&format!("{:?}\n", store.books().await.expect("books")));
    out.push_str(&format!("{:?}\n", store.assets().await.expect("assets")));
    out
}

#[tokio::test]
async fn reopening_reads_back_everything_and_keeps_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = book("reopen");
    let store = seeded(dir.path(), &b).await;
    let first = commit_all(&store, &b, &drafts("a", 10)).await;
    let second = commit_all(&store, &b, &drafts("b", 3)).await;
    let before = snapshot(&store, &b).await;
    let stats = store.stats();
    drop(store);

    let store = LogStore::open(dir.path()).expect("reopen");
    assert_eq!(
        snapshot(&store, &b).await,
        before,
        "the same answers after a restart"
    );
    assert_eq!(store.stats().events, stats.events);
    assert_eq!(store.stats().log_bytes, stats.log_bytes);
    assert_eq!(store.stats().truncated_bytes_at_open, 0);
    // An asset, then each of 15 events with its chain record.
    assert_eq!(store.verify().expect("verify"), 1 + 2 * (2 + 13));

    // Keys survive: a replay is answered with the original commit.
    let replay = store
        .commit_batch(&b, &[deposit("a-3", 4), deposit("a-4", 999)])
        .await
        .expect("commit_batch");
    assert_eq!(replay[0], Outcome::Deduplicated(first[3].clone()));
    assert_eq!(
        replay[1],
        Outcome::Rejected(Rejection::IdempotencyKeyReused(first[4].tx_id))
    );
    assert_eq!(
        store
            .transaction(second[2].tx_id, None)
            .await
            .expect("by id"),
        Some(second[2].clone())
    );
    // Seqs and commit times carry on from the log.
    let third = commit_all(&store, &b, &drafts("c", 2)).await;
    assert_eq!(third[0].seq, second[2].seq + 1);
    assert!(third[0].committed_at >= second[2].committed_at);
}

#[tokio::test]
async fn garbage_after_the_last_frame_is_cut_off() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = book("garbage");
    let store = seeded(dir.path(), &b).await;
    commit_all(&store, &b, &drafts("a", 5)).await;
    let before = snapshot(&store, &b).await;
    drop(store);
    let clean = file_len(dir.path());
    let mut file = OpenOptions::new()
        .append(true)
        .open(log_path(dir.path()))
        .expect("open the log");
    let garbage = b"TLFR and then some bytes a crash left behind";
    file.write_all(garbage).expect("append garbage");
    drop(file);

    let store = LogStore::open(dir.path()).expect("a torn tail does not stop the store");
    assert_eq!(store.stats().truncated_bytes_at_open, garbage.len() as u64);
    assert_eq!(file_len(dir.path()), clean, "the tail was cut off");
    assert_eq!(snapshot(&store, &b).await, before);
    commit_all(&store, &b, &drafts("after", 2)).await;
    drop(store);
    let store = LogStore::open(dir.path()).expect("reopen");
    assert_eq!(store.stats().truncated_bytes_at_open, 0);
    assert_eq!(store.last_seq(&b).await.expect("last_seq"), Some(2 + 5 + 2));
}

/// Commits two batches (A, then B, each one frame) and returns the log's
/// length before A, after A and after B, with the commits of each.
async fn two_frames(
    dir: &Path,
    b: &talea_core::BookName,
) -> (
    u64,
    u64,
    u64,
    Vec<talea_core::Commit>,
    Vec<talea_core::Commit>,
) {
    let store = seeded(dir, b).await;
    let start = store.stats().log_bytes;
    let a = commit_all(&store, b, &drafts("a", 4)).await;
    let after_a = store.stats().log_bytes;
    let bb = commit_all(&store, b, &drafts("b", 4)).await;
    let after_b = store.stats().log_bytes;
    assert_eq!(
        file_len(dir),
        after_b,
        "every acknowledged byte is in the file"
    );
    drop(store);
    (start, after_a, after_b, a, bb)
}

#[tokio::test]
async fn a_frame_cut_short_is_a_torn_tail() {
    let b = book("cut");
    for cut in [CutAt::InHeader, CutAt::InBody, CutAt::LastByte] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (_, after_a, after_b, a, bb) = two_frames(dir.path(), &b).await;
        let len = match cut {
            CutAt::InHeader => after_a + 5,
            CutAt::InBody => after_a + (after_b - after_a) / 2,
            CutAt::LastByte => after_b - 1,
        };
        OpenOptions::new()
            .write(true)
            .open(log_path(dir.path()))
            .expect("open")
            .set_len(len)
            .expect("cut the log");

        let store = LogStore::open(dir.path()).expect("reopen after a torn write");
        assert_eq!(
            file_len(dir.path()),
            after_a,
            "{cut:?}: cut back to the last whole frame"
        );
        assert_eq!(store.stats().truncated_bytes_at_open, len - after_a);
        assert_eq!(store.last_seq(&b).await.expect("last_seq"), Some(2 + 4));
        for c in &a {
            assert_eq!(
                store.transaction(c.tx_id, None).await.expect("tx").as_ref(),
                Some(c)
            );
        }
        for c in &bb {
            assert_eq!(store.transaction(c.tx_id, None).await.expect("tx"), None);
        }
        // The lost batch was never acknowledged: retrying it commits it anew.
        let retried = commit_all(&store, &b, &drafts("b", 4)).await;
        assert_eq!(retried[0].seq, 2 + 4 + 1);
        // An asset, then each of 10 events with its chain record.
        assert_eq!(store.verify().expect("verify"), 1 + 2 * (2 + 8));
    }
}

#[derive(Debug, Clone, Copy)]
enum CutAt {
    InHeader,
    InBody,
    LastByte,
}

#[tokio::test]
async fn a_bad_checksum_in_the_last_frame_is_a_torn_tail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = book("lastbad");
    let (_, after_a, after_b, a, _) = two_frames(dir.path(), &b).await;
    flip_byte(dir.path(), after_b - 3);
    let store = LogStore::open(dir.path()).expect("the last frame may be torn");
    assert_eq!(file_len(dir.path()), after_a);
    assert_eq!(store.stats().truncated_bytes_at_open, after_b - after_a);
    assert_eq!(store.last_seq(&b).await.expect("last_seq"), Some(a[3].seq));
}

#[tokio::test]
async fn damage_before_the_tail_is_refused() {
    let b = book("middle");
    // A byte of a record payload, a frame header's magic, and a record
    // header, each in frame A, with frame B intact after it.
    for (what, at) in [
        ("payload", 3u64),
        ("frame header", 0),
        ("record header", 17),
    ] {
        let dir = tempfile::tempdir().expect("tempdir");
        let (start, after_a, after_b, _, _) = two_frames(dir.path(), &b).await;
        let offset = if what == "payload" {
            after_a - at
        } else {
            start + at
        };
        flip_byte(dir.path(), offset);
        let err = LogStore::open(dir.path()).expect_err("a damaged middle is refused");
        let StoreError::Corrupt(message) = &err else {
            panic!("{what}: expected Corrupt, got {err:?}");
        };
        assert!(
            message.contains(&log_path(dir.path()).display().to_string())
                && message.contains(&format!("offset {start}"))
                && message.contains("intact frame follows"),
            "{what}: the message names the file and the offset: {message}"
        );
        assert_eq!(file_len(dir.path()), after_b, "{what}: nothing was cut");
    }
}

#[tokio::test]
async fn a_foreign_or_newer_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(LogStore::open(dir.path()).expect("create"));
    flip_byte(dir.path(), 0);
    let err = LogStore::open(dir.path()).expect_err("bad magic");
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("magic")),
        "{err:?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    drop(LogStore::open(dir.path()).expect("create"));
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(log_path(dir.path()))
        .expect("open");
    let mut header = [0; 16];
    file.read_exact_at(&mut header, 0).expect("read header");
    header[8..10].copy_from_slice(&9u16.to_le_bytes());
    let crc = crc32c::crc32c(&header[..12]);
    header[12..].copy_from_slice(&crc.to_le_bytes());
    file.write_all_at(&header, 0).expect("write header");
    let err = LogStore::open(dir.path()).expect_err("a newer format");
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("format version 9")),
        "{err:?}"
    );
}

#[tokio::test]
async fn the_directory_lock_refuses_a_second_opener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = LogStore::open(dir.path()).expect("first opener");
    let err = LogStore::open(dir.path()).expect_err("a second opener is refused");
    let StoreError::Unavailable(message) = &err else {
        panic!("expected Unavailable, got {err:?}");
    };
    assert!(
        message.contains(&dir.path().display().to_string()),
        "names the directory: {message}"
    );
    assert!(
        message.contains(&format!("process {}", std::process::id())),
        "names the holder: {message}"
    );
    let url = format!("log://{}", dir.path().display());
    assert!(
        LogStore::connect(&url).await.is_err(),
        "connect is refused too"
    );
    drop(first);
    let again = LogStore::connect(&url)
        .await
        .expect("the lock is released when the store is dropped");
    assert_eq!(again.backend(), talea_store::Backend::Log);
    assert!(LogStore::connect("sqlite://x").await.is_err());
}

#[tokio::test]
async fn a_record_too_large_is_refused_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = book("large");
    let store = seeded(dir.path(), &b).await;
    let huge = Draft::new(
        IdempotencyKey::parse("huge").expect("key"),
        deposit("huge", 1).postings,
        Some(Timestamp::from_micros(i64::MIN)),
        Some("x".repeat(RECORD_BYTES_MAX)),
        None,
    )
    .expect("draft");
    let outcomes = store
        .commit_batch(&b, &[deposit("before", 1), huge, deposit("after", 2)])
        .await
        .expect("commit_batch");
    assert!(matches!(&outcomes[0], Outcome::Committed(c) if c.seq == 3));
    assert!(
        matches!(&outcomes[1], Outcome::Rejected(Rejection::Failed(m)) if m.contains("bytes")),
        "{:?}",
        outcomes[1]
    );
    assert!(matches!(&outcomes[2], Outcome::Committed(c) if c.seq == 4));
    // The key of the refused draft stays free.
    commit_all(&store, &b, &[deposit("huge", 1)]).await;
}

#[tokio::test]
async fn a_batch_too_large_for_one_frame_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let b = book("toolarge");
    let store = seeded(dir.path(), &b).await;
    let memo = "m".repeat(RECORD_BYTES_MAX - 4096);
    let batch: Vec<Draft> = (0..(talea_store_log::FRAME_BYTES_MAX / memo.len() + 1))
        .map(|i| {
            Draft::new(
                IdempotencyKey::parse(&format!("big-{i}")).expect("key"),
                deposit("x", 1).postings,
                None,
                Some(memo.clone()),
                None,
            )
            .expect("draft")
        })
        .collect();
    let before = store.stats().log_bytes;
    let err = store
        .commit_batch(&b, &batch)
        .await
        .expect_err("the batch cannot fit one frame");
    assert!(matches!(err, StoreError::Other(_)), "{err:?}");
    assert_eq!(store.stats().log_bytes, before, "nothing was written");
    assert_eq!(store.last_seq(&b).await.expect("last_seq"), Some(2));
    let ok = commit_all(&store, &b, &[deposit("big-0", 1)]).await;
    assert_eq!(ok[0].seq, 3, "the store goes on, and the keys stayed free");
}

/// A log with a few frames of every record kind, built once for the damage test.
fn sample_log() -> Vec<u8> {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let b = book("sample");
        let store = seeded(dir.path(), &b).await;
        for i in 0..4 {
            commit_all(&store, &b, &drafts(&format!("s{i}"), 3)).await;
        }
    });
    std::fs::read(log_path(dir.path())).expect("read the log")
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]

    /// Whatever the damage (flipped bytes, a cut, both), opening never
    /// panics: it either refuses with an error or starts on a log that
    /// verifies, whose books read back dense.
    #[test]
    fn random_damage_never_panics(
        flips in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), 1..=255u8), 0..4),
        cut in proptest::option::of(proptest::prelude::any::<proptest::sample::Index>()),
    ) {
        use std::sync::OnceLock;
        static SAMPLE: OnceLock<Vec<u8>> = OnceLock::new();
        let mut bytes = SAMPLE.get_or_init(sample_log).clone();
        for (at, mask) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= mask;
        }
        if let Some(cut) = cut {
            bytes.truncate(cut.index(bytes.len() + 1));
        }
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(log_path(dir.path()), &bytes).expect("write the damaged log");
        if let Ok(store) = LogStore::open(dir.path()) {
            store.verify().expect("an opened log verifies");
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("runtime");
            rt.block_on(async {
                for info in store.books().await.expect("books") {
                    let events = store.events(&info.book, 0, 1000).await.expect("events");
                    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
                    assert_eq!(seqs, (1..=info.last_seq).collect::<Vec<_>>());
                }
            });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_of_many_books_share_fsyncs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let books: Vec<_> = (0..16).map(|i| book(&format!("group-{i}"))).collect();
    let store = seeded(dir.path(), &books[0]).await;
    for b in &books[1..] {
        open_pair(&store, b).await;
    }
    let before = store.stats();
    let tasks: Vec<_> = books
        .iter()
        .flat_map(|b| (0..4).map(move |round| (b.clone(), round)))
        .map(|(b, round)| {
            let store = store.clone();
            tokio::spawn(async move {
                commit_all(&store, &b, &drafts(&format!("r{round}"), 8)).await;
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("writer task");
    }
    let after = store.stats();
    let requests = after.requests - before.requests;
    let frames = after.frames - before.frames;
    assert_eq!(requests, 64);
    assert!(
        frames < requests,
        "64 concurrent batches took {frames} fsyncs: group commit shares them"
    );
    for b in &books {
        assert_eq!(store.last_seq(b).await.expect("last_seq"), Some(2 + 4 * 8));
    }
}

/// Opens `hot` and `alice` in another book of an open store.
async fn open_pair(store: &LogStore, b: &talea_core::BookName) {
    for (name, kind) in [
        ("hot", talea_core::AccountKind::Asset),
        ("alice", talea_core::AccountKind::Liability),
    ] {
        let new = talea_core::NewAccount {
            name: crate::acct(name),
            kind,
            min_balance: None,
            metadata: "{}".to_owned(),
        };
        store.open_account(b, &new).await.expect("open account");
    }
}
