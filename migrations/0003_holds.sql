-- Two-phase transactions (issue #17): holds that settle, void or expire.
--
-- A hold is a transaction committed as `pending`: it appends a `transaction`
-- event and a `transactions` row like a post, but its legs go to
-- `hold_postings`, never to `postings` (which feed the posted balances,
-- `as_of` reads and account histories), and it moves no `balances` row.
-- Its fate lives in `holds`: `pending` until exactly one of a settle
-- (`posted`), a void (`voided`) or its expiry (`expired`) ends it, in the same
-- database transaction as the rows of what ended it.
--
-- `transactions.status` is what the record was when committed, never
-- updated: a hold is 'pending'; a settle is 'posted' with `pending_tx_id`
-- (its postings are ordinary `postings` rows); a void is 'voided' with
-- `pending_tx_id` and no postings. A hold's current status is `holds.status`.
--
-- An expiry appends an `events` row of type 'transaction' (the SQLite
-- schema's `events_type_known` CHECK cannot be altered there, so both
-- schemas share one code path) with no `transactions` row at its seq: the
-- reader finds the hold through `holds.ended_seq` and reports the event as
-- the hold's expiry. `ended_tx_id` is NULL for an expiry.
--
-- `books.open_holds` counts the book's pending holds (+1 per hold, -1 per
-- settle, void or expiry, moved with `last_seq` by the same statement).
-- A batch reads the held amounts of live holds only when it is above zero,
-- so a plain post on a book without holds costs no extra statement.

ALTER TABLE transactions
    ADD COLUMN status         text NOT NULL DEFAULT 'posted',
    ADD COLUMN expires_at     timestamptz NULL,
    ADD COLUMN pending_tx_id  uuid NULL,
    ADD CONSTRAINT transactions_status_known CHECK (status IN ('posted', 'pending', 'voided'));

ALTER TABLE books
    ADD COLUMN open_holds  bigint NOT NULL DEFAULT 0,
    ADD CONSTRAINT books_open_holds_nonnegative CHECK (open_holds >= 0);

-- A hold's legs. `balance_after` is the posted balance the leg left
-- unchanged (holds move no posted balance).
CREATE TABLE hold_postings (
    book           text COLLATE "C" NOT NULL,
    seq            bigint NOT NULL,
    leg            smallint NOT NULL,
    account        text COLLATE "C" NOT NULL,
    asset          text COLLATE "C" NOT NULL,
    -- Signed storage amount: above zero for a debit, below for a credit.
    amount         numeric(39,0) NOT NULL,
    balance_after  numeric(39,0) NOT NULL,
    CONSTRAINT hold_postings_pkey PRIMARY KEY (book, seq, leg),
    CONSTRAINT hold_postings_leg_nonnegative CHECK (leg >= 0),
    CONSTRAINT hold_postings_amount_nonzero CHECK (amount <> 0)
);

-- What an account's holds held at a past instant (`as_of` reads), covering.
CREATE INDEX hold_postings_account_asset_idx ON hold_postings (book, account, asset, seq)
    INCLUDE (amount);

-- One row per hold: its current status and what ended it.
CREATE TABLE holds (
    book         text COLLATE "C" NOT NULL,
    seq          bigint NOT NULL,
    tx_id        uuid NOT NULL,
    expires_at   timestamptz NULL,
    status       text NOT NULL DEFAULT 'pending',
    -- The seq of the settle, void or expiry event that ended it.
    ended_seq    bigint NULL,
    -- The settle or void that ended it (NULL for an expiry).
    ended_tx_id  uuid NULL,
    CONSTRAINT holds_pkey PRIMARY KEY (book, seq),
    CONSTRAINT holds_tx_id_key UNIQUE (book, tx_id),
    CONSTRAINT holds_status_known CHECK (status IN ('pending', 'posted', 'voided', 'expired')),
    CONSTRAINT holds_ended_when_not_pending CHECK ((status = 'pending') = (ended_seq IS NULL))
);

-- The expirer's queue: live holds with an expiry, earliest first.
CREATE INDEX holds_due_idx ON holds (expires_at) WHERE status = 'pending' AND expires_at IS NOT NULL;
-- The live holds of a book (held amounts of a batch's accounts, and of
-- balances read now): as many as `books.open_holds`, however long the
-- book's history of holds.
CREATE INDEX holds_pending_idx ON holds (book, seq) WHERE status = 'pending';
-- Expiry events find their hold by seq.
CREATE INDEX holds_ended_seq_idx ON holds (book, ended_seq) WHERE ended_seq IS NOT NULL;
