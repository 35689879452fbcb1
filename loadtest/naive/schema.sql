-- The naive baseline's schema, in its own schema `naive` so it never meets
-- talea's tables (run-hot-book.sh also gives it its own database).
--
-- The tables are talea's own: migrations/0001_ledger.sql is included as it
-- is, into schema `naive`, so that the comparison with talea is about the
-- commit strategy alone: one database transaction per request here
-- (commit.sql) against talea's group commit. A naive design also keeps the
-- foreign keys that talea's write protocol makes redundant (see the
-- migration's header), so they are added after it.
--
-- Load it with: psql -v ON_ERROR_STOP=1 [-v books=N] -f loadtest/naive/schema.sql <db>
-- It drops and recreates schema `naive`, registers the asset BTC and opens
-- books hot-1 .. hot-N (N = the psql variable `books`, default 64), each with
-- two accounts: hot:a (an asset account) and hot:b (a liability). The hot-book
-- runs use hot-1 alone (pgbench -D books=1), the many-books runs all of them.

DROP SCHEMA IF EXISTS naive CASCADE;
CREATE SCHEMA naive;
SET search_path = naive;

\ir ../../migrations/0001_ledger.sql

ALTER TABLE events
    ADD CONSTRAINT events_book_fkey FOREIGN KEY (book) REFERENCES books (book);
ALTER TABLE transactions
    ADD CONSTRAINT transactions_event_fkey FOREIGN KEY (book, seq) REFERENCES events (book, seq);
ALTER TABLE postings
    ADD CONSTRAINT postings_transaction_fkey
        FOREIGN KEY (book, seq) REFERENCES transactions (book, seq),
    ADD CONSTRAINT postings_account_fkey FOREIGN KEY (book, account) REFERENCES accounts (book, name);
ALTER TABLE balances
    ADD CONSTRAINT balances_account_fkey FOREIGN KEY (book, account) REFERENCES accounts (book, name);

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
