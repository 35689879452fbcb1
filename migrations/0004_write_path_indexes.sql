-- Indexes of the write path, as the hold-then-settle benchmark found them
-- (docs/benchmarks.md, "Holds"). Writes to the tables wait while the
-- indexes are built (seconds per million rows); on a large ledger, migrate
-- off-peak.

-- Transactions by id within a book: a settle or void names its hold by
-- (book, tx_id). With `transactions_tx_id_idx` on tx_id alone, a young
-- book's statistics (none yet) let the planner AND that index with a scan of
-- the whole book's primary key per id (measured: 10 ms per batch of
-- settles, under the book's lock). The composite index answers both the
-- lookup within a book and, by its leading column, the lookup by id across
-- books, so it replaces the old one.
CREATE INDEX transactions_tx_id_book_idx ON transactions (tx_id, book);
DROP INDEX transactions_tx_id_idx;

-- Expiry events find their hold by seq; settles and voids never do, so
-- they need not add an entry to this index when they end a hold.
CREATE INDEX holds_expired_seq_idx ON holds (book, ended_seq) WHERE status = 'expired';
DROP INDEX holds_ended_seq_idx;

-- Holds are ended by their key (book, seq), and a hold is found by id
-- through `transactions` (above); the unique (book, tx_id) index only cost
-- an entry per hold made and another per hold ended (tx ids do not
-- collide, as for `transactions`).
ALTER TABLE holds DROP CONSTRAINT holds_tx_id_key;
