-- Two-phase transactions (issue #17): holds that settle, void or expire; the
-- SQLite translation of migrations/0003_holds.sql, whose comments give the
-- design. In short:
--   * `transactions.status` is what the record was when committed: a hold
--     'pending', a settle 'posted' with `pending_tx_id`, a void 'voided'
--     with `pending_tx_id` and no postings;
--   * a hold's legs go to `hold_postings`, never to `postings`, and it moves
--     no `balances` row; its current status is `holds.status`;
--   * an expiry appends an `events` row of type 'transaction' (this schema's
--     `events_type_known` CHECK cannot be altered) with no `transactions`
--     row at its seq: the reader finds the hold by `holds.ended_seq`;
--   * `books.open_holds` counts pending holds; a batch reads held amounts
--     only when it is above zero.

ALTER TABLE transactions ADD COLUMN status TEXT NOT NULL DEFAULT 'posted'
    CONSTRAINT transactions_status_known CHECK (status IN ('posted', 'pending', 'voided'));
ALTER TABLE transactions ADD COLUMN expires_at INTEGER NULL;
-- The UUID's 16 bytes, as `tx_id`.
ALTER TABLE transactions ADD COLUMN pending_tx_id BLOB NULL
    CONSTRAINT transactions_pending_tx_id_length CHECK (length(pending_tx_id) = 16);

ALTER TABLE books ADD COLUMN open_holds INTEGER NOT NULL DEFAULT 0
    CONSTRAINT books_open_holds_nonnegative CHECK (open_holds >= 0);

CREATE TABLE hold_postings (
    book           TEXT NOT NULL COLLATE BINARY,
    seq            INTEGER NOT NULL,
    leg            INTEGER NOT NULL,
    account        TEXT NOT NULL COLLATE BINARY,
    asset          TEXT NOT NULL COLLATE BINARY,
    -- Signed storage amount (canonical i128 text), as in `postings`.
    amount         TEXT NOT NULL,
    -- The posted balance the leg left unchanged.
    balance_after  TEXT NOT NULL,
    CONSTRAINT hold_postings_pkey PRIMARY KEY (book, seq, leg),
    CONSTRAINT hold_postings_leg_nonnegative CHECK (leg >= 0),
    CONSTRAINT hold_postings_amount_nonzero CHECK (amount GLOB '[1-9]*' OR amount GLOB '-[1-9]*')
) STRICT, WITHOUT ROWID;

-- What an account's holds held at a past instant (`as_of` reads); covering
-- (with `amount`), or SQLite's planner, without statistics, prefers walking
-- the book's every hold leg by the primary key.
CREATE INDEX hold_postings_account_asset_idx ON hold_postings (book, account, asset, seq, amount);

CREATE TABLE holds (
    book         TEXT NOT NULL COLLATE BINARY,
    seq          INTEGER NOT NULL,
    tx_id        BLOB NOT NULL,
    expires_at   INTEGER NULL,
    status       TEXT NOT NULL DEFAULT 'pending',
    ended_seq    INTEGER NULL,
    ended_tx_id  BLOB NULL,
    CONSTRAINT holds_pkey PRIMARY KEY (book, seq),
    CONSTRAINT holds_tx_id_key UNIQUE (book, tx_id),
    CONSTRAINT holds_status_known CHECK (status IN ('pending', 'posted', 'voided', 'expired')),
    CONSTRAINT holds_ended_when_not_pending CHECK ((status = 'pending') = (ended_seq IS NULL))
) STRICT, WITHOUT ROWID;

CREATE INDEX holds_due_idx ON holds (expires_at) WHERE status = 'pending' AND expires_at IS NOT NULL;
CREATE INDEX holds_pending_idx ON holds (book, seq) WHERE status = 'pending';
CREATE INDEX holds_ended_seq_idx ON holds (book, ended_seq) WHERE ended_seq IS NOT NULL;
