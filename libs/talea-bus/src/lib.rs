//! The NATS side of live streams: the change relay and the fan-out's live source.
//!
//! [`Relay`] moves committed events from Postgres to NATS: it holds
//! leadership (one publisher at a time), LISTENs for commit notifications,
//! reads the committed events by seq and publishes them in order to
//! `talea.v1.events.<book>`, and records per book how far it has
//! published, so a restart or a standby's take-over resumes from the log.
//! [`NatsSource`] is the other end: a `talea_stream::LiveSource` that
//! subscribes to a book's subject for the fan-out.
//!
//! Core NATS, not JetStream: the ledger's own log is the durable,
//! replayable stream (every consumer backfills and repairs gaps from it by
//! seq), so a second persistent copy in JetStream would add a disk write
//! per event and a retention policy to run, and guard nothing. Messages
//! still carry `Nats-Msg-Id`, so a deployment that wants a JetStream stream
//! over the subjects gets de-duplication for free.

mod relay;
mod source;

pub use relay::{Relay, RelayConfig, RelayError};
pub use source::NatsSource;
