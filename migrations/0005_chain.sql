-- The hash chain of each book's log (docs/proofs.md): every event carries
-- its chain hash, SHA-256 of the previous event's hash and the event's
-- canonical bytes, computed by the writer under the book's lock.
--
-- `books.chain_seq` is the seq whose hash `books.chain_hash` holds. Every
-- commit moves it to `last_seq` with the counter. Books written before this
-- migration (and any a talead older than it writes to) have
-- `chain_seq < last_seq`: the next writer that locks the book hashes the
-- missing events first, in its own transaction, and `talead` does so for
-- every book when it starts (talea_store_sql::chain). Adding nullable
-- columns rewrites no row.

ALTER TABLE books
    ADD COLUMN chain_seq   bigint NOT NULL DEFAULT 0,
    ADD COLUMN chain_hash  bytea NULL,
    ADD CONSTRAINT books_chain_hash_length CHECK (octet_length(chain_hash) = 32),
    ADD CONSTRAINT books_chain_when_seq CHECK ((chain_seq = 0) = (chain_hash IS NULL));

ALTER TABLE events
    ADD COLUMN hash bytea NULL,
    ADD CONSTRAINT events_hash_length CHECK (octet_length(hash) = 32);

-- Signed checkpoints (tree heads) of each book's log: kept, so a client can
-- fetch the latest and so consistency between any two can be proven. The
-- first kept of a size wins (instances racing to sign the same size keep
-- one). `taken_at` is the signed timestamp, microseconds.
CREATE TABLE checkpoints (
    book       text COLLATE "C" NOT NULL,
    tree_size  bigint NOT NULL,
    root_hash  bytea NOT NULL,
    taken_at   timestamptz NOT NULL,
    key_id     text NOT NULL,
    signature  bytea NOT NULL,
    CONSTRAINT checkpoints_pkey PRIMARY KEY (book, tree_size),
    CONSTRAINT checkpoints_tree_size_positive CHECK (tree_size > 0),
    CONSTRAINT checkpoints_root_hash_length CHECK (octet_length(root_hash) = 32),
    CONSTRAINT checkpoints_signature_length CHECK (octet_length(signature) = 64)
);
