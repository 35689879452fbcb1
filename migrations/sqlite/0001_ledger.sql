-- The ledger schema for the SQLite store (talea-store-sqlite): the per-book
-- event log and the projections kept beside it, as in the Postgres schema
-- (migrations/0001_ledger.sql), translated to what SQLite can hold exactly.
--
-- Conventions:
--   * every book-scoped table's primary key starts with `book`; `assets` is the
--     one global table;
--   * every table is STRICT, so a value of the wrong type is refused instead
--     of being converted by column affinity;
--   * names compare bytewise (`COLLATE BINARY`, spelled out), like `COLLATE "C"`
--     in Postgres, so ordering and `after` pagination agree across backends;
--   * amounts are i128 counts of minor units held as canonical decimal TEXT
--     (an optional '-', no leading zeros). SQLite's integers are 64-bit and its
--     reals are floats, so no amount is ever computed in SQL: the store does
--     the checked arithmetic in Rust and writes the results;
--   * times are INTEGER microseconds since the Unix epoch, the contract's unit;
--   * constraints are named. SQLite reports a CHECK constraint's name in its
--     message but never names a PRIMARY KEY or UNIQUE one, so the store tells
--     violations apart by extended result code (see src/error.rs);
--   * as in Postgres, the tables written per draft carry no foreign keys: the
--     write protocol (one writer, checks under the write lock) guards them.
--
-- The log is append-only: nothing here is ever updated or deleted except the
-- `books` counter row and the `balances` projection.

CREATE TABLE assets (
    code        TEXT NOT NULL COLLATE BINARY,
    scale       INTEGER NOT NULL,
    name        TEXT NULL,
    created_at  INTEGER NOT NULL,
    CONSTRAINT assets_pkey PRIMARY KEY (code),
    CONSTRAINT assets_scale_range CHECK (scale BETWEEN 0 AND 30)
) STRICT, WITHOUT ROWID;

-- One row per book with at least one event: its last seq and commit time.
-- Writers are serialized by SQLite's write lock (every write transaction is
-- `BEGIN IMMEDIATE`), so this row needs no lock of its own; it keeps seqs
-- dense and commit times monotonic with seq (never below `last_committed_at`).
CREATE TABLE books (
    book               TEXT NOT NULL COLLATE BINARY,
    last_seq           INTEGER NOT NULL DEFAULT 0,
    last_committed_at  INTEGER NULL,
    CONSTRAINT books_pkey PRIMARY KEY (book),
    CONSTRAINT books_last_seq_nonnegative CHECK (last_seq >= 0),
    CONSTRAINT books_committed_when_seq CHECK ((last_seq = 0) = (last_committed_at IS NULL))
) STRICT, WITHOUT ROWID;

-- The log itself: one row per event, seq dense from 1 within a book.
CREATE TABLE events (
    book          TEXT NOT NULL COLLATE BINARY,
    seq           INTEGER NOT NULL,
    type          TEXT NOT NULL,
    committed_at  INTEGER NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (book, seq),
    CONSTRAINT events_seq_positive CHECK (seq > 0),
    CONSTRAINT events_type_known CHECK (type IN ('account_opened', 'transaction'))
) STRICT, WITHOUT ROWID;

-- `as_of` reads need "the last seq committed at or before T" in a book; commit
-- time is monotonic with seq, so one backward probe of this index answers it.
CREATE INDEX events_book_committed_at_idx ON events (book, committed_at, seq);

-- A rowid table: metadata may reach 16 KiB, too large for WITHOUT ROWID rows.
CREATE TABLE accounts (
    book                  TEXT NOT NULL COLLATE BINARY,
    name                  TEXT NOT NULL COLLATE BINARY,
    kind                  TEXT NOT NULL,
    -- `min_balance` as an exact decimal: value = mantissa * 10^-scale (the
    -- mantissa as i128 text); both null means unbounded.
    min_balance_mantissa  TEXT NULL,
    min_balance_scale     INTEGER NULL,
    -- Compact JSON text exactly as given upstream.
    metadata              TEXT NOT NULL,
    seq                   INTEGER NOT NULL,
    opened_at             INTEGER NOT NULL,
    CONSTRAINT accounts_pkey PRIMARY KEY (book, name),
    CONSTRAINT accounts_kind_known
        CHECK (kind IN ('asset', 'expense', 'liability', 'equity', 'revenue')),
    CONSTRAINT accounts_min_balance_parts
        CHECK ((min_balance_mantissa IS NULL) = (min_balance_scale IS NULL)),
    CONSTRAINT accounts_min_balance_scale_range CHECK (min_balance_scale BETWEEN 0 AND 30),
    -- Events are joined to the account they opened by seq.
    CONSTRAINT accounts_seq_key UNIQUE (book, seq),
    -- Opening an account is rare enough to afford the check.
    CONSTRAINT accounts_event_fkey FOREIGN KEY (book, seq) REFERENCES events (book, seq)
) STRICT;

-- A rowid table for the same reason as `accounts` (memo and metadata).
CREATE TABLE transactions (
    book             TEXT NOT NULL COLLATE BINARY,
    seq              INTEGER NOT NULL,
    -- The UUID's 16 bytes.
    tx_id            BLOB NOT NULL,
    idempotency_key  TEXT NOT NULL COLLATE BINARY,
    -- SHA-256 of the canonical request: a retry with the same key and hash is
    -- answered with this commit, another hash is refused.
    request_hash     BLOB NOT NULL,
    committed_at     INTEGER NOT NULL,
    occurred_at      INTEGER NULL,
    memo             TEXT NULL,
    metadata         TEXT NULL,
    CONSTRAINT transactions_pkey PRIMARY KEY (book, seq),
    -- The idempotency backstop, beside the lookup made under the write lock.
    CONSTRAINT transactions_idempotency_key_key UNIQUE (book, idempotency_key),
    CONSTRAINT transactions_tx_id_length CHECK (length(tx_id) = 16),
    CONSTRAINT transactions_request_hash_length CHECK (length(request_hash) = 32)
) STRICT;

-- Lookup by id across books.
CREATE INDEX transactions_tx_id_idx ON transactions (tx_id);

CREATE TABLE postings (
    book           TEXT NOT NULL COLLATE BINARY,
    seq            INTEGER NOT NULL,
    leg            INTEGER NOT NULL,
    account        TEXT NOT NULL COLLATE BINARY,
    asset          TEXT NOT NULL COLLATE BINARY,
    -- Signed storage amount: above zero for a debit, below for a credit.
    amount         TEXT NOT NULL,
    -- The account's storage balance (debits minus credits) in this asset right
    -- after this posting: `as_of` balances read one row instead of summing.
    balance_after  TEXT NOT NULL,
    -- The account's cumulative debits in this asset after this posting, so an
    -- `as_of` trial balance reads one row per account and asset as well.
    debits_after   TEXT NOT NULL,
    CONSTRAINT postings_pkey PRIMARY KEY (book, seq, leg),
    CONSTRAINT postings_leg_nonnegative CHECK (leg >= 0),
    -- Canonical and non-zero: a leading digit 1-9, optionally after a '-'.
    CONSTRAINT postings_amount_nonzero CHECK (amount GLOB '[1-9]*' OR amount GLOB '-[1-9]*')
) STRICT, WITHOUT ROWID;

-- "Last posting of (account, asset) at or before seq S" for `as_of` reads.
CREATE INDEX postings_account_asset_idx ON postings (book, account, asset, seq, leg);
-- An account's history in (seq, leg) order, every asset together.
CREATE INDEX postings_account_idx ON postings (book, account, seq, leg);

-- Current totals per account and asset, maintained in the commit transaction.
-- `balance = debits - credits` holds by construction (the planner computes
-- all three with checked i128 arithmetic); SQL cannot check it on i128 text.
CREATE TABLE balances (
    book     TEXT NOT NULL COLLATE BINARY,
    account  TEXT NOT NULL COLLATE BINARY,
    asset    TEXT NOT NULL COLLATE BINARY,
    balance  TEXT NOT NULL,
    debits   TEXT NOT NULL,
    credits  TEXT NOT NULL,
    CONSTRAINT balances_pkey PRIMARY KEY (book, account, asset),
    CONSTRAINT balances_totals_nonnegative CHECK (debits NOT GLOB '-*' AND credits NOT GLOB '-*')
) STRICT, WITHOUT ROWID;
