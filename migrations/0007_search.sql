-- Transaction search and the pending holds list (docs/api.md, "Searching
-- transactions" and "Pending holds"). Each filter reads an index in seq
-- order (libs/talea-store-sql/src/search.rs):
--   account  postings_account_idx (0001) and hold_postings_account_seq_idx;
--   status   holds_status_seq_idx, and transactions_voided_idx for voids;
--   metadata transaction_metadata's primary key.
-- The pending holds list reads holds_pending_expiry_idx in order.
CREATE INDEX hold_postings_account_seq_idx ON hold_postings (book, account, seq);
CREATE INDEX holds_status_seq_idx ON holds (book, status, seq);
CREATE INDEX holds_pending_expiry_idx ON holds (book, expires_at, seq) WHERE status = 'pending';
CREATE INDEX transactions_voided_idx ON transactions (book, seq) WHERE status = 'voided';

-- One row per top-level string, integer or boolean value of each
-- transaction's metadata (key up to 128 bytes, value text up to 256: what a
-- search may ask for), as on SQLite. A B-tree in (key, value, seq) order
-- finds a value's transactions in seq order, however rare or common the
-- value; a GIN index on the metadata as jsonb (tried first) cannot give
-- them in order, so a rare value cost a walk of the book.
CREATE TABLE transaction_metadata (
    book   text COLLATE "C" NOT NULL,
    key    text COLLATE "C" NOT NULL,
    value  text COLLATE "C" NOT NULL,
    seq    bigint NOT NULL,
    CONSTRAINT transaction_metadata_pkey PRIMARY KEY (book, key, value, seq)
);

-- The rows one transaction's metadata gives: its top-level strings,
-- integers and booleans as text, key and value within the search limits.
CREATE FUNCTION talea_metadata_values(metadata text)
RETURNS TABLE (key text, value text) LANGUAGE sql IMMUTABLE AS $$
    SELECT e.key, v.text
    FROM jsonb_each(metadata::jsonb) AS e
    CROSS JOIN LATERAL (SELECT CASE jsonb_typeof(e.value)
                                   WHEN 'string' THEN e.value #>> '{}'
                                   ELSE e.value::text END AS text) AS v
    WHERE (jsonb_typeof(e.value) IN ('string', 'boolean')
           OR (jsonb_typeof(e.value) = 'number' AND e.value::text ~ '^-?[0-9]+$'))
      AND octet_length(e.key) <= 128
      AND octet_length(v.text) <= 256
$$;

-- Filled once per write statement from the rows it inserted (a statement
-- trigger with a transition table: one set-based insert per commit).
CREATE FUNCTION talea_index_metadata() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO transaction_metadata (book, key, value, seq)
    SELECT n.book, m.key, m.value, n.seq
    FROM new_rows AS n
    CROSS JOIN LATERAL talea_metadata_values(n.metadata) AS m
    WHERE n.metadata IS NOT NULL
    ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;

CREATE TRIGGER transactions_metadata_index AFTER INSERT ON transactions
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION talea_index_metadata();

INSERT INTO transaction_metadata (book, key, value, seq)
SELECT t.book, m.key, m.value, t.seq
FROM transactions AS t
CROSS JOIN LATERAL talea_metadata_values(t.metadata) AS m
WHERE t.metadata IS NOT NULL
ON CONFLICT DO NOTHING;
