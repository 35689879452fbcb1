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

-- Signed checkpoints (tree heads) of each book's log, kept; the first kept
-- of a size wins.
CREATE TABLE checkpoints (
    book       TEXT NOT NULL COLLATE BINARY,
    tree_size  INTEGER NOT NULL,
    root_hash  BLOB NOT NULL,
    taken_at   INTEGER NOT NULL,
    key_id     TEXT NOT NULL,
    signature  BLOB NOT NULL,
    CONSTRAINT checkpoints_pkey PRIMARY KEY (book, tree_size),
    CONSTRAINT checkpoints_tree_size_positive CHECK (tree_size > 0),
    CONSTRAINT checkpoints_root_hash_length CHECK (length(root_hash) = 32),
    CONSTRAINT checkpoints_signature_length CHECK (length(signature) = 64)
) STRICT, WITHOUT ROWID;
