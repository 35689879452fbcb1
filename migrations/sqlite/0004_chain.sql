-- The hash chain of each book's log (docs/proofs.md; as
-- migrations/0005_chain.sql on Postgres): every event carries its chain
-- hash, computed by the writer under the book's lock; `books.chain_seq` is
-- the seq whose hash `books.chain_hash` holds, and a book written before
-- this migration is caught up by its next writer or when talead starts.

ALTER TABLE books ADD COLUMN chain_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE books ADD COLUMN chain_hash BLOB NULL
    CONSTRAINT books_chain_hash_length CHECK (length(chain_hash) = 32);
ALTER TABLE events ADD COLUMN hash BLOB NULL
    CONSTRAINT events_hash_length CHECK (length(hash) = 32);
