-- Signed liability snapshots (docs/proofs.md, "Proof of liabilities"): per
-- book, asset and account prefix at one seq, the Merkle-sum tree's salt,
-- root and total with the Ed25519 signature, and the balances it was built
-- from (`balances`: `name=minor_units` pairs joined by `,`, negatives being
-- the refused accounts), so any account's proof is rebuilt exactly. Kept
-- forever; an id is drawn at random and never reused. `total` is a u128 in
-- decimal text (beyond bigint and exactly what was signed).
CREATE TABLE liability_snapshots (
    book         text COLLATE "C" NOT NULL,
    snapshot_id  text COLLATE "C" NOT NULL,
    asset        text COLLATE "C" NOT NULL,
    prefix       text COLLATE "C" NOT NULL,
    seq          bigint NOT NULL,
    salt         bytea NOT NULL,
    root         bytea NOT NULL,
    total        text NOT NULL,
    taken_at     timestamptz NOT NULL,
    key_id       text NOT NULL,
    signature    bytea NOT NULL,
    balances     text NOT NULL,
    CONSTRAINT liability_snapshots_pkey PRIMARY KEY (book, snapshot_id),
    CONSTRAINT liability_snapshots_seq_positive CHECK (seq > 0),
    CONSTRAINT liability_snapshots_salt_length CHECK (octet_length(salt) = 32),
    CONSTRAINT liability_snapshots_root_length CHECK (octet_length(root) = 32),
    CONSTRAINT liability_snapshots_signature_length CHECK (octet_length(signature) = 64)
);
