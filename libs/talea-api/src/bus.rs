//! The message bus contract: subject names and headers of published events.
//!
//! One subject per book, `talea.v1.events.<book>`; one message per log event
//! whose payload is the event's JSON (an [`EventDto`](crate::EventDto)), with
//! headers `Nats-Msg-Id: <book>:<seq>` and `Talea-Seq: <seq>`. Book names
//! hold only `[a-z0-9_-]`, so a book is always one subject token.

/// The default subject prefix; a deployment (or a test) may use another so
/// that several ledgers share one NATS server.
pub const EVENTS_SUBJECT_PREFIX: &str = "talea.v1.events";

/// The header carrying `<book>:<seq>` (JetStream's de-duplication key).
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

/// The header carrying the event's seq.
pub const SEQ_HEADER: &str = "Talea-Seq";

/// The subject of `book`'s events under `prefix`.
pub fn events_subject(prefix: &str, book: &str) -> String {
    format!("{prefix}.{book}")
}

/// The `Nats-Msg-Id` of an event.
pub fn msg_id(book: &str, seq: u64) -> String {
    format!("{book}:{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert_eq!(
            events_subject(EVENTS_SUBJECT_PREFIX, "payments"),
            "talea.v1.events.payments"
        );
        assert_eq!(msg_id("payments", 42), "payments:42");
    }
}
