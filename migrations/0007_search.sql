-- Transaction search and the pending holds list (docs/api.md, "Searching
-- transactions" and "Pending holds"). Each filter reads an index in seq
-- order (libs/talea-store-sql/src/search.rs):
--   account  postings_account_idx (0001) and hold_postings_account_seq_idx;
--   status   holds_status_seq_idx, and transactions_voided_idx for voids;
--   metadata transactions_metadata_idx, containment (@>) on the metadata as
--            jsonb; GIN with jsonb_path_ops, only rows that have metadata.
-- The pending holds list reads holds_pending_expiry_idx in order.
CREATE INDEX hold_postings_account_seq_idx ON hold_postings (book, account, seq);
CREATE INDEX holds_status_seq_idx ON holds (book, status, seq);
CREATE INDEX holds_pending_expiry_idx ON holds (book, expires_at, seq) WHERE status = 'pending';
CREATE INDEX transactions_voided_idx ON transactions (book, seq) WHERE status = 'voided';
CREATE INDEX transactions_metadata_idx ON transactions USING gin ((metadata::jsonb) jsonb_path_ops)
    WHERE metadata IS NOT NULL;
