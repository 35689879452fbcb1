-- pgbench custom script: one naive ledger commit per pgbench transaction.
--
-- The baseline for talea's write figures: every request is its own database
-- transaction on one book (hot-1, or one of hot-1 .. hot-<books> at random),
-- with the statements a straightforward ledger
-- would send, one round trip each (9 with BEGIN and COMMIT):
--   1. lock and bump the book's counter row, taking seq and commit time
--   2. append the event
--   3. insert the transaction row, which records the idempotency key (unique
--      per book: a duplicate would abort the transaction) and the request hash
--   4-7. per leg: upsert the balance (returning the new totals) and insert
--      the posting with its balance_after / debits_after
-- Same tables as talea (schema.sql), so only the commit strategy differs.
--
-- Required variables (pgbench -D):
--   run=<id>   part of every idempotency key, unique per run
--   n=0        per-client counter, the rest of the key (each client has its
--              own copy; keys are naive-<run>-<client_id>-<n>)
--   books=N    the books to spread over: 1 is the hot book hot-1; N picks
--              one of hot-1 .. hot-N at random per request (schema.sql opens
--              64 by default)
-- Optional:
--   notify=1   also pg_notify once per commit, as a ledger feeding a relay
--              would (default in run-hot-book.sh: 0)
--
-- pgbench substitutes `:name` even inside string literals, so the account
-- names hot:a and hot:b are written 'hot:' || 'a' (folded to a constant).
--
-- Run (after loading schema.sql into the database):
--   pgbench -n -M prepared -c 64 -j 2 -T 20 -r -D run=$(date +%s) -D n=0 \
--     -D books=1 -D notify=0 -f loadtest/naive/commit.sql <db>

\set b random(1, :books)
\set amount 1
\set neg -1 * :amount
\set n :n + 1
BEGIN;
UPDATE naive.books
   SET last_seq = last_seq + 1,
       last_committed_at = greatest(clock_timestamp(), last_committed_at)
 WHERE book = 'hot-' || :b
RETURNING last_seq AS seq, last_committed_at AS ts \gset
INSERT INTO naive.events (book, seq, type, committed_at)
VALUES ('hot-' || :b, :seq, 'transaction', :ts);
INSERT INTO naive.transactions (book, seq, tx_id, idempotency_key, request_hash, committed_at)
VALUES ('hot-' || :b, :seq, gen_random_uuid(),
        'naive-' || :run::text || '-' || :client_id::text || '-' || :n::text,
        sha256(convert_to('naive-' || :run::text || '-' || :client_id::text || '-' || :n::text, 'UTF8')),
        :ts);
INSERT INTO naive.balances AS b (book, account, asset, balance, debits, credits)
VALUES ('hot-' || :b, 'hot:' || 'a', 'BTC', :amount, :amount, 0)
ON CONFLICT (book, account, asset) DO UPDATE
   SET balance = b.balance + excluded.balance,
       debits = b.debits + excluded.debits,
       credits = b.credits + excluded.credits
RETURNING balance AS bal_a, debits AS deb_a \gset
INSERT INTO naive.postings (book, seq, leg, account, asset, amount, balance_after, debits_after)
VALUES ('hot-' || :b, :seq, 0, 'hot:' || 'a', 'BTC', :amount, :bal_a, :deb_a);
INSERT INTO naive.balances AS b (book, account, asset, balance, debits, credits)
VALUES ('hot-' || :b, 'hot:' || 'b', 'BTC', :neg, 0, :amount)
ON CONFLICT (book, account, asset) DO UPDATE
   SET balance = b.balance + excluded.balance,
       debits = b.debits + excluded.debits,
       credits = b.credits + excluded.credits
RETURNING balance AS bal_b, debits AS deb_b \gset
INSERT INTO naive.postings (book, seq, leg, account, asset, amount, balance_after, debits_after)
VALUES ('hot-' || :b, :seq, 1, 'hot:' || 'b', 'BTC', :neg, :bal_b, :deb_b);
\if :notify
SELECT pg_notify('naive_events', 'hot-' || :b || ':' || :seq::text);
\endif
COMMIT;
