-- The relay's published position per book: the highest seq of the book that
-- the relay has published to NATS (and flushed). After a restart, or when a
-- standby takes over, the relay publishes every event above it, so a commit
-- is never skipped even if every NOTIFY was lost. Events may be published
-- twice around a crash or a hand-over; consumers dedup by seq.
CREATE TABLE relay_positions (
    book           text COLLATE "C" NOT NULL,
    published_seq  bigint NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT relay_positions_pkey PRIMARY KEY (book),
    CONSTRAINT relay_positions_seq_nonnegative CHECK (published_seq >= 0)
);
