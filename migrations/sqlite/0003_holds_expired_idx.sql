-- Expiry events find their hold by seq; settles and voids never do, so
-- they need not add an entry to this index when they end a hold (as
-- migrations/0004_write_path_indexes.sql on Postgres).
CREATE INDEX holds_expired_seq_idx ON holds (book, ended_seq) WHERE status = 'expired';
DROP INDEX holds_ended_seq_idx;
