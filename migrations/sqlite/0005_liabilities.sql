-- Signed liability snapshots (docs/proofs.md; as
-- migrations/0006_liabilities.sql on Postgres): the tree's salt, root and
-- total, the signature, and the balances it was built from
-- (`name=minor_units` pairs joined by `,`).
CREATE TABLE liability_snapshots (
    book         TEXT NOT NULL COLLATE BINARY,
    snapshot_id  TEXT NOT NULL COLLATE BINARY,
    asset        TEXT NOT NULL,
    prefix       TEXT NOT NULL,
    seq          INTEGER NOT NULL,
    salt         BLOB NOT NULL,
    root         BLOB NOT NULL,
    total        TEXT NOT NULL,
    taken_at     INTEGER NOT NULL,
    key_id       TEXT NOT NULL,
    signature    BLOB NOT NULL,
    balances     TEXT NOT NULL,
    CONSTRAINT liability_snapshots_pkey PRIMARY KEY (book, snapshot_id),
    CONSTRAINT liability_snapshots_seq_positive CHECK (seq > 0),
    CONSTRAINT liability_snapshots_salt_length CHECK (length(salt) = 32),
    CONSTRAINT liability_snapshots_root_length CHECK (length(root) = 32),
    CONSTRAINT liability_snapshots_signature_length CHECK (length(signature) = 64)
) STRICT, WITHOUT ROWID;
