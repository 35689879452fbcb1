-- pgbench custom script: the batched SQL ceiling. One pgbench transaction
-- commits `batch` drafts (64 by default) of the naive schema (schema.sql) in
-- ONE database transaction: what a ledger that groups commits could reach on
-- this Postgres with set-based statements and no HTTP, JSON or validation.
-- Report drafts/s = pgbench tps * batch.
--
-- The statements are those of talea's fast path (design.md), each once per
-- batch:
--   1. lock and bump the book's counter row by `batch`, taking the first seq
--      and the commit time
--   2. look up the batch's idempotency keys (none exist: every key is new)
--   3. lock and read the two balance rows (absent: zero)
--   4. append `batch` events, `batch` transaction rows with their keys and
--      request hashes, 2 * `batch` postings with running balance_after /
--      debits_after, all with generate_series
--   5. upsert the two balances once with the batch's totals
--
-- Required variables (pgbench -D): run=<id>, n=0 (per-client counter; keys
-- are batch-<run>-<client_id>-<n>-<i>), books=N (1: the hot book hot-1; N: one
-- of hot-1 .. hot-N at random per batch), batch=64 (drafts per transaction).
--
-- pgbench substitutes `:name` even inside string literals, so the account
-- names hot:a and hot:b are written 'hot:' || 'a'.
--
--   pgbench -n -M prepared -c 8 -j 2 -T 20 -D run=$(date +%s) -D n=0 \
--     -D books=1 -D batch=64 -f loadtest/naive/batch.sql <db>

\set b random(1, :books)
\set n :n + 1
BEGIN;
UPDATE naive.books
   SET last_seq = last_seq + :batch,
       last_committed_at = greatest(clock_timestamp(), last_committed_at)
 WHERE book = 'hot-' || :b
RETURNING last_seq - :batch AS base, last_committed_at AS ts \gset
SELECT count(*) AS known
  FROM naive.transactions
 WHERE book = 'hot-' || :b
   AND idempotency_key = ANY (ARRAY(
       SELECT 'batch-' || :run::text || '-' || :client_id::text || '-' || :n::text || '-' || i::text
         FROM generate_series(1, :batch) i)) \gset
SELECT coalesce(max(balance) FILTER (WHERE account = 'hot:' || 'a'), 0) AS bal_a,
       coalesce(max(debits) FILTER (WHERE account = 'hot:' || 'a'), 0) AS deb_a,
       coalesce(max(balance) FILTER (WHERE account = 'hot:' || 'b'), 0) AS bal_b,
       coalesce(max(debits) FILTER (WHERE account = 'hot:' || 'b'), 0) AS deb_b
  FROM (SELECT account, balance, debits
          FROM naive.balances
         WHERE book = 'hot-' || :b AND asset = 'BTC' AND account IN ('hot:' || 'a', 'hot:' || 'b')
           FOR UPDATE) locked \gset
INSERT INTO naive.events (book, seq, type, committed_at)
SELECT 'hot-' || :b, :base::bigint + i, 'transaction', :ts
  FROM generate_series(1, :batch) i;
INSERT INTO naive.transactions (book, seq, tx_id, idempotency_key, request_hash, committed_at)
SELECT 'hot-' || :b, :base::bigint + i, gen_random_uuid(), k, sha256(convert_to(k, 'UTF8')), :ts
  FROM (SELECT i, 'batch-' || :run::text || '-' || :client_id::text || '-' || :n::text || '-' || i::text AS k
          FROM generate_series(1, :batch) i) keys;
INSERT INTO naive.postings (book, seq, leg, account, asset, amount, balance_after, debits_after)
SELECT 'hot-' || :b, :base::bigint + i, leg.n, leg.account, 'BTC', leg.sign,
       CASE leg.n WHEN 0 THEN :bal_a::numeric + i ELSE :bal_b::numeric - i END,
       CASE leg.n WHEN 0 THEN :deb_a::numeric + i ELSE :deb_b::numeric END
  FROM generate_series(1, :batch) i,
       (VALUES (0, 'hot:' || 'a', 1), (1, 'hot:' || 'b', -1)) AS leg (n, account, sign);
INSERT INTO naive.balances AS b (book, account, asset, balance, debits, credits)
VALUES ('hot-' || :b, 'hot:' || 'a', 'BTC', :batch::int, :batch::int, 0),
       ('hot-' || :b, 'hot:' || 'b', 'BTC', -(:batch::int), 0, :batch::int)
ON CONFLICT (book, account, asset) DO UPDATE
   SET balance = b.balance + excluded.balance,
       debits = b.debits + excluded.debits,
       credits = b.credits + excluded.credits;
COMMIT;
