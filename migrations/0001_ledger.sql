-- The ledger schema: the per-book event log and the projections kept beside it.
--
-- Conventions, so that every backend behaves the same and the schema can be
-- distributed by book (e.g. Citus) without change:
--   * every book-scoped table's primary key starts with `book`; `assets` is the
--     one global table (a small, write-once registry: a reference table);
--   * every constraint is named, and the store maps violations by name;
--   * names are `COLLATE "C"` so ordering and `after` pagination are bytewise
--     whatever the database's locale (the other backends compare bytes too);
--   * amounts are i128 counts of minor units, held as `numeric(39,0)`
--     (i128 has at most 39 digits) and exchanged with the application as text;
--   * times are `timestamptz` at microsecond precision, the contract's unit;
--   * the tables written per draft (events, transactions, postings, balances)
--     carry no foreign keys. Their row-by-row checks cost about 40% of a
--     64-draft batch (measured), and they would guard nothing the write
--     protocol does not: every writer of a book holds its counter row lock,
--     checks accounts and assets under it, and appends a draft's event,
--     transaction and postings in one statement; accounts and assets are
--     never deleted. Uniqueness, which that protocol relies on, is enforced.
--
-- The log is append-only: nothing here is ever updated or deleted except the
-- `books` counter row and the `balances` projection.

CREATE TABLE assets (
    code        text COLLATE "C" NOT NULL,
    scale       smallint NOT NULL,
    name        text NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT assets_pkey PRIMARY KEY (code),
    CONSTRAINT assets_scale_range CHECK (scale BETWEEN 0 AND 30)
);

-- One row per book: the write arbiter. Every writer of a book locks this row
-- (`SELECT ... FOR UPDATE`) before reading anything it decides on, so writes to
-- one book are serialized across threads, processes and instances, seqs are
-- dense, and commit times (taken under the lock, never below
-- `last_committed_at`) are monotonic with seq.
--
-- A row may exist with `last_seq = 0` when a batch was wholly rejected; such a
-- book has no events and is reported as absent.
CREATE TABLE books (
    book               text COLLATE "C" NOT NULL,
    last_seq           bigint NOT NULL DEFAULT 0,
    last_committed_at  timestamptz NULL,
    CONSTRAINT books_pkey PRIMARY KEY (book),
    CONSTRAINT books_last_seq_nonnegative CHECK (last_seq >= 0),
    CONSTRAINT books_committed_when_seq CHECK ((last_seq = 0) = (last_committed_at IS NULL))
);

-- The log itself: one row per event, seq dense from 1 within a book.
CREATE TABLE events (
    book          text COLLATE "C" NOT NULL,
    seq           bigint NOT NULL,
    type          text NOT NULL,
    committed_at  timestamptz NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (book, seq),
    CONSTRAINT events_seq_positive CHECK (seq > 0),
    CONSTRAINT events_type_known CHECK (type IN ('account_opened', 'transaction'))
);

-- `as_of` reads need "the last seq committed at or before T" in a book; commit
-- time is monotonic with seq, so a backward scan of this index answers it with
-- one index probe.
CREATE INDEX events_book_committed_at_idx ON events (book, committed_at, seq);

CREATE TABLE accounts (
    book                  text COLLATE "C" NOT NULL,
    name                  text COLLATE "C" NOT NULL,
    kind                  text NOT NULL,
    -- `min_balance` as an exact decimal: value = mantissa * 10^-scale; both
    -- null means unbounded.
    min_balance_mantissa  numeric(39,0) NULL,
    min_balance_scale     smallint NULL,
    -- Compact JSON text exactly as given upstream (not jsonb: jsonb would
    -- reorder keys and the contract returns metadata as given).
    metadata              text NOT NULL,
    seq                   bigint NOT NULL,
    opened_at             timestamptz NOT NULL,
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
);

CREATE TABLE transactions (
    book             text COLLATE "C" NOT NULL,
    seq              bigint NOT NULL,
    tx_id            uuid NOT NULL,
    idempotency_key  text COLLATE "C" NOT NULL,
    -- SHA-256 of the canonical request: a retry with the same key and hash is
    -- answered with this commit, another hash is refused.
    request_hash     bytea NOT NULL,
    committed_at     timestamptz NOT NULL,
    occurred_at      timestamptz NULL,
    memo             text NULL,
    metadata         text NULL,
    CONSTRAINT transactions_pkey PRIMARY KEY (book, seq),
    -- The idempotency backstop: the store answers keys from a lookup made under
    -- the book's lock, and this constraint makes a double post impossible even
    -- if that protocol were ever bypassed.
    CONSTRAINT transactions_idempotency_key_key UNIQUE (book, idempotency_key),
    CONSTRAINT transactions_request_hash_length CHECK (octet_length(request_hash) = 32)
);

-- Lookup by id across books. Not unique: a unique index could not be
-- distributed by book, and v7 ids do not collide in practice.
CREATE INDEX transactions_tx_id_idx ON transactions (tx_id);

CREATE TABLE postings (
    book           text COLLATE "C" NOT NULL,
    seq            bigint NOT NULL,
    leg            smallint NOT NULL,
    account        text COLLATE "C" NOT NULL,
    asset          text COLLATE "C" NOT NULL,
    -- Signed storage amount: above zero for a debit, below for a credit.
    amount         numeric(39,0) NOT NULL,
    -- The account's storage balance (debits minus credits) in this asset right
    -- after this posting: `as_of` balances read one row instead of summing.
    balance_after  numeric(39,0) NOT NULL,
    -- The account's cumulative debits in this asset after this posting, so an
    -- `as_of` trial balance reads one row per account and asset as well.
    debits_after   numeric(39,0) NOT NULL,
    CONSTRAINT postings_pkey PRIMARY KEY (book, seq, leg),
    CONSTRAINT postings_leg_nonnegative CHECK (leg >= 0),
    CONSTRAINT postings_amount_nonzero CHECK (amount <> 0)
);

-- "Last posting of (account, asset) at or before seq S" for `as_of` reads.
CREATE INDEX postings_account_asset_idx ON postings (book, account, asset, seq, leg);
-- An account's history in (seq, leg) order, every asset together.
CREATE INDEX postings_account_idx ON postings (book, account, seq, leg);

-- Current totals per account and asset, maintained in the commit transaction.
CREATE TABLE balances (
    book     text COLLATE "C" NOT NULL,
    account  text COLLATE "C" NOT NULL,
    asset    text COLLATE "C" NOT NULL,
    balance  numeric(39,0) NOT NULL,
    debits   numeric(39,0) NOT NULL,
    credits  numeric(39,0) NOT NULL,
    CONSTRAINT balances_pkey PRIMARY KEY (book, account, asset),
    CONSTRAINT balances_totals_nonnegative CHECK (debits >= 0 AND credits >= 0),
    CONSTRAINT balances_identity CHECK (balance = debits - credits)
);
