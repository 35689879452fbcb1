-- Transaction search and the pending holds list (as
-- migrations/0007_search.sql on Postgres, whose GIN index on the metadata
-- SQLite has no counterpart of): the same B-tree indexes, and
-- `transaction_metadata`, one row per top-level string, integer or boolean
-- value of each transaction's metadata (key up to 128 bytes, value text up
-- to 256: what a search may ask for), filled by a trigger as transactions
-- are inserted and here for those already there.
CREATE INDEX hold_postings_account_seq_idx ON hold_postings (book, account, seq);
CREATE INDEX holds_status_seq_idx ON holds (book, status, seq);
CREATE INDEX holds_pending_expiry_idx ON holds (book, expires_at, seq) WHERE status = 'pending';
CREATE INDEX transactions_voided_idx ON transactions (book, seq) WHERE status = 'voided';

CREATE TABLE transaction_metadata (
    book   TEXT NOT NULL COLLATE BINARY,
    key    TEXT NOT NULL COLLATE BINARY,
    value  TEXT NOT NULL COLLATE BINARY,
    seq    INTEGER NOT NULL,
    CONSTRAINT transaction_metadata_pkey PRIMARY KEY (book, key, value, seq)
) STRICT, WITHOUT ROWID;

CREATE TRIGGER transactions_metadata_index AFTER INSERT ON transactions
WHEN NEW.metadata IS NOT NULL
BEGIN
    INSERT OR IGNORE INTO transaction_metadata (book, key, value, seq)
    SELECT NEW.book, j.key,
           CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
                       ELSE CAST(j.value AS TEXT) END,
           NEW.seq
    FROM json_each(NEW.metadata) AS j
    WHERE j.type IN ('text', 'integer', 'true', 'false')
      AND length(CAST(j.key AS BLOB)) <= 128
      AND length(CAST(j.value AS BLOB)) <= 256;
END;

INSERT OR IGNORE INTO transaction_metadata (book, key, value, seq)
SELECT t.book, j.key,
       CASE j.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false'
                   ELSE CAST(j.value AS TEXT) END,
       t.seq
FROM transactions AS t, json_each(t.metadata) AS j
WHERE t.metadata IS NOT NULL
  AND j.type IN ('text', 'integer', 'true', 'false')
  AND length(CAST(j.key AS BLOB)) <= 128
  AND length(CAST(j.value AS BLOB)) <= 256;
