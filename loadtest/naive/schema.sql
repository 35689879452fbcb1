-- The naive baseline's schema, in its own schema `naive` so it never meets
-- talea's tables (run-hot-book.sh also gives it its own database).
--
-- The tables mirror talea's migrations/0001_ledger.sql (same columns, keys,
-- constraints, foreign keys and indexes), so that the comparison with talea
-- is about the commit strategy alone: one database transaction per request
-- here (commit.sql) against talea's group commit.
--
-- Load it with: psql -v ON_ERROR_STOP=1 [-v books=N] -f loadtest/naive/schema.sql <db>
-- It drops and recreates schema `naive`, registers the asset BTC and opens
-- books hot-1 .. hot-N (N = the psql variable `books`, default 64), each with
-- two accounts: hot:a (an asset account) and hot:b (a liability). The hot-book
-- runs use hot-1 alone (pgbench -D books=1), the many-books runs all of them.

DROP SCHEMA IF EXISTS naive CASCADE;
CREATE SCHEMA naive;
SET search_path = naive;

CREATE TABLE assets (
    code        text COLLATE "C" NOT NULL,
    scale       smallint NOT NULL,
    name        text NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT assets_pkey PRIMARY KEY (code),
    CONSTRAINT assets_scale_range CHECK (scale BETWEEN 0 AND 30)
);

-- The book's counter row: every commit updates it, which serializes the
-- writers of one book (the "hot book").
CREATE TABLE books (
    book               text COLLATE "C" NOT NULL,
    last_seq           bigint NOT NULL DEFAULT 0,
    last_committed_at  timestamptz NULL,
    CONSTRAINT books_pkey PRIMARY KEY (book),
    CONSTRAINT books_last_seq_nonnegative CHECK (last_seq >= 0),
    CONSTRAINT books_committed_when_seq CHECK ((last_seq = 0) = (last_committed_at IS NULL))
);

CREATE TABLE events (
    book          text COLLATE "C" NOT NULL,
    seq           bigint NOT NULL,
    type          text NOT NULL,
    committed_at  timestamptz NOT NULL,
    CONSTRAINT events_pkey PRIMARY KEY (book, seq),
    CONSTRAINT events_seq_positive CHECK (seq > 0),
    CONSTRAINT events_type_known CHECK (type IN ('account_opened', 'transaction')),
    CONSTRAINT events_book_fkey FOREIGN KEY (book) REFERENCES books (book)
);
CREATE INDEX events_book_committed_at_idx ON events (book, committed_at, seq);

CREATE TABLE accounts (
    book                  text COLLATE "C" NOT NULL,
    name                  text COLLATE "C" NOT NULL,
    kind                  text NOT NULL,
    min_balance_mantissa  numeric(39,0) NULL,
    min_balance_scale     smallint NULL,
    metadata              text NOT NULL,
    seq                   bigint NOT NULL,
    opened_at             timestamptz NOT NULL,
    CONSTRAINT accounts_pkey PRIMARY KEY (book, name),
    CONSTRAINT accounts_kind_known
        CHECK (kind IN ('asset', 'expense', 'liability', 'equity', 'revenue')),
    CONSTRAINT accounts_min_balance_parts
        CHECK ((min_balance_mantissa IS NULL) = (min_balance_scale IS NULL)),
    CONSTRAINT accounts_min_balance_scale_range CHECK (min_balance_scale BETWEEN 0 AND 30),
    CONSTRAINT accounts_seq_key UNIQUE (book, seq),
    CONSTRAINT accounts_event_fkey FOREIGN KEY (book, seq) REFERENCES events (book, seq)
);

-- One row per transaction; it carries the idempotency key, unique per book,
-- and the hash of the canonical request.
CREATE TABLE transactions (
    book             text COLLATE "C" NOT NULL,
    seq              bigint NOT NULL,
    tx_id            uuid NOT NULL,
    idempotency_key  text COLLATE "C" NOT NULL,
    request_hash     bytea NOT NULL,
    committed_at     timestamptz NOT NULL,
    occurred_at      timestamptz NULL,
    memo             text NULL,
    metadata         text NULL,
    CONSTRAINT transactions_pkey PRIMARY KEY (book, seq),
    CONSTRAINT transactions_idempotency_key_key UNIQUE (book, idempotency_key),
    CONSTRAINT transactions_request_hash_length CHECK (octet_length(request_hash) = 32),
    CONSTRAINT transactions_event_fkey FOREIGN KEY (book, seq) REFERENCES events (book, seq)
);
CREATE INDEX transactions_tx_id_idx ON transactions (tx_id);

CREATE TABLE postings (
    book           text COLLATE "C" NOT NULL,
    seq            bigint NOT NULL,
    leg            smallint NOT NULL,
    account        text COLLATE "C" NOT NULL,
    asset          text COLLATE "C" NOT NULL,
    amount         numeric(39,0) NOT NULL,
    balance_after  numeric(39,0) NOT NULL,
    debits_after   numeric(39,0) NOT NULL,
    CONSTRAINT postings_pkey PRIMARY KEY (book, seq, leg),
    CONSTRAINT postings_leg_nonnegative CHECK (leg >= 0),
    CONSTRAINT postings_amount_nonzero CHECK (amount <> 0),
    CONSTRAINT postings_transaction_fkey FOREIGN KEY (book, seq) REFERENCES transactions (book, seq),
    CONSTRAINT postings_account_fkey FOREIGN KEY (book, account) REFERENCES accounts (book, name)
);
CREATE INDEX postings_account_asset_idx ON postings (book, account, asset, seq, leg);
CREATE INDEX postings_account_idx ON postings (book, account, seq, leg);

CREATE TABLE balances (
    book     text COLLATE "C" NOT NULL,
    account  text COLLATE "C" NOT NULL,
    asset    text COLLATE "C" NOT NULL,
    balance  numeric(39,0) NOT NULL,
    debits   numeric(39,0) NOT NULL,
    credits  numeric(39,0) NOT NULL,
    CONSTRAINT balances_pkey PRIMARY KEY (book, account, asset),
    CONSTRAINT balances_totals_nonnegative CHECK (debits >= 0 AND credits >= 0),
    CONSTRAINT balances_identity CHECK (balance = debits - credits),
    CONSTRAINT balances_account_fkey FOREIGN KEY (book, account) REFERENCES accounts (book, name)
);

-- The books, as talea's setup leaves them: asset BTC (scale 8), accounts
-- hot:a (asset, unbounded) and hot:b (liability, unbounded), opened as
-- events 1 and 2 of each book.
\if :{?books}
\else
\set books 64
\endif
INSERT INTO assets (code, scale, name) VALUES ('BTC', 8, 'Bitcoin');
INSERT INTO books (book, last_seq, last_committed_at)
SELECT 'hot-' || b, 2, now() FROM generate_series(1, :books) b;
INSERT INTO events (book, seq, type, committed_at)
SELECT 'hot-' || b, s, 'account_opened', now() FROM generate_series(1, :books) b, generate_series(1, 2) s;
INSERT INTO accounts (book, name, kind, metadata, seq, opened_at)
SELECT 'hot-' || b, a.name, a.kind, '{}', a.seq, now()
  FROM generate_series(1, :books) b,
       (VALUES ('hot:a', 'asset', 1), ('hot:b', 'liability', 2)) AS a (name, kind, seq);

ANALYZE;
