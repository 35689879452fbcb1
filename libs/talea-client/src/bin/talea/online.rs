//! The checks that need a server: `talea verify server` (a book's checkpoint,
//! chain, root, and inclusion and consistency proofs, fetched and checked
//! with talea-verify) and the chain check of `talea tail --verify`.

use serde_json::{Value, json};
use talea_api::{LedgerApi, SeqPage};
use talea_client::{StreamEvent, TaleaClient};
use talea_verify::chain::{ChainStart, ChainVerifier, GENESIS};
use talea_verify::checkpoint::KeyList;
use talea_verify::files;
use talea_verify::hash::{parse_hash, to_hex};

use crate::cli::ServerArgs;
use crate::verify::{self, Checks};
use crate::{Failure, Rendered};

/// Events fetched per page.
const PAGE: u32 = 1000;

/// `talea verify server`.
pub(crate) async fn verify_server(
    client: &TaleaClient,
    args: &ServerArgs,
) -> Result<Rendered, Failure> {
    let mut notes = Vec::new();
    let keys: KeyList = match &args.keys {
        Some(path) => verify::read_file(path, files::parse_keys)?,
        None => {
            notes.push(
                "no --keys: the server's own key list was trusted; save it once and pass it \
                 with --keys"
                    .to_owned(),
            );
            client.keys().await?
        }
    };
    let since = match &args.since {
        Some(path) => Some(verify::read_file(path, files::parse_checkpoint)?),
        None => None,
    };
    let checkpoint = client.checkpoint(&args.book).await?;
    let mut checks = Checks::default();
    let events = fetch_events(client, &args.book, checkpoint.tree_size).await?;
    let summary = verify::chain_against(&mut checks, &args.book, &checkpoint, &keys, events)?;
    if let Some(seq) = args.seq {
        let proof = client
            .inclusion_proof(&args.book, seq, Some(checkpoint.tree_size))
            .await?;
        checks.record("inclusion", proof.verify_against(&checkpoint), |()| {
            format!(
                "event {seq} is in the checkpoint's tree of {} events",
                checkpoint.tree_size
            )
        })?;
    }
    if let Some(older) = &since {
        checks.signature(older, &keys)?;
        let proof = client
            .consistency_proof(&args.book, older.tree_size, checkpoint.tree_size)
            .await?;
        checks.record(
            "consistency",
            proof.verify_against(older, &checkpoint),
            |()| {
                format!(
                    "the tree of {} events extends the saved tree of {}",
                    checkpoint.tree_size, older.tree_size
                )
            },
        )?;
    }
    if let Some(path) = &args.save {
        let text = serde_json::to_string_pretty(&checkpoint)
            .map_err(|e| Failure::Usage(format!("cannot encode the checkpoint: {e}")))?;
        std::fs::write(path, text + "\n")
            .map_err(|e| Failure::Usage(format!("cannot write {}: {e}", path.display())))?;
    }
    let count = usize::try_from(checkpoint.tree_size).unwrap_or(usize::MAX);
    let mut out = checks.finish(json!({
        "checkpoint": checkpoint,
        "chain": verify::chain_json(&args.book, count, &summary),
    }));
    for note in notes {
        out = out.note(note);
    }
    Ok(out)
}

/// Events 1..=`size` of `book`, as served.
async fn fetch_events(client: &TaleaClient, book: &str, size: u64) -> Result<Vec<Value>, Failure> {
    let mut events = Vec::new();
    let mut after = 0;
    while after < size {
        let page = client
            .events(
                book,
                SeqPage {
                    after_seq: Some(after),
                    limit: Some(PAGE),
                },
            )
            .await?;
        if page.events.is_empty() {
            break;
        }
        for event in page.events {
            if event.seq > size {
                break;
            }
            after = event.seq;
            events
                .push(serde_json::to_value(&event).map_err(|e| {
                    Failure::Usage(format!("cannot read event {}: {e}", event.seq))
                })?);
        }
    }
    Ok(events)
}

/// The chain check of `talea tail --verify`: started lazily at the first
/// event received, from `--after-hash`, genesis, or the served hash of the
/// event before.
pub(crate) struct TailChain {
    book: String,
    after_hash: Option<String>,
    verifier: Option<ChainVerifier>,
}

impl TailChain {
    pub(crate) fn new(book: &str, after_hash: Option<String>) -> Self {
        Self {
            book: book.to_owned(),
            after_hash,
            verifier: None,
        }
    }

    /// Checks `event`; a break ends `tail` with exit 4.
    pub(crate) async fn check(
        &mut self,
        client: &TaleaClient,
        event: &StreamEvent,
    ) -> Result<(), Failure> {
        if self.verifier.is_none() {
            let start = self.start(client, event.seq).await?;
            self.verifier = Some(ChainVerifier::new(start));
        }
        let Some(verifier) = self.verifier.as_mut() else {
            return Ok(());
        };
        verifier
            .push(&event.to_event_json())
            .map(drop)
            .map_err(|e| verify::failed("chain", format!("chain: {e}")))
    }

    async fn start(&mut self, client: &TaleaClient, first: u64) -> Result<ChainStart, Failure> {
        let after_seq = first.saturating_sub(1);
        let prev = match (self.after_hash.take(), after_seq) {
            (Some(hash), _) => {
                parse_hash(&hash).map_err(|e| Failure::Usage(format!("--after-hash: {e}")))?
            }
            (None, 0) => GENESIS,
            (None, seq) => {
                let page = client
                    .events(
                        &self.book,
                        SeqPage {
                            after_seq: Some(seq - 1),
                            limit: Some(1),
                        },
                    )
                    .await?;
                let served = page
                    .events
                    .first()
                    .filter(|e| e.seq == seq)
                    .and_then(|e| e.hash.clone())
                    .ok_or_else(|| {
                        verify::failed("chain", format!("chain: event {seq} carries no hash"))
                    })?;
                eprintln!(
                    "talea: checking the chain from event {first}, after the served hash of \
                     event {seq} ({served}); pass --after-seq and --after-hash to start from a \
                     hash verified before"
                );
                parse_hash(&served).map_err(|e| verify::failed("chain", format!("chain: {e}")))?
            }
        };
        Ok(ChainStart {
            book: self.book.clone(),
            after_seq,
            prev,
        })
    }

    /// The last verified position, for a resume later.
    pub(crate) fn position(&self) -> Option<(u64, String)> {
        self.verifier
            .as_ref()
            .map(ChainVerifier::position)
            .map(|(seq, hash)| (seq, to_hex(&hash)))
    }
}
