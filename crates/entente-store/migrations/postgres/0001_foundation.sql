-- Node metadata (party, name, log origin, verifier key).
CREATE TABLE node_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);

-- One row: the ledger's size and latest checkpoint. Every gate transaction updates it first,
-- which serialises writers across processes.
CREATE TABLE ledger_head (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    size BIGINT NOT NULL,
    epoch BIGINT NOT NULL,
    checkpoint BYTEA
);
INSERT INTO ledger_head (id, size, epoch, checkpoint) VALUES (1, 0, 0, NULL);

-- Ledger entries: RFC 8785 canonical JSON, append only.
CREATE TABLE ledger_entries (idx BIGINT PRIMARY KEY, entry BYTEA NOT NULL);

-- Hashes of complete subtrees, numbered as in sumdb/tlog (stored hash index).
CREATE TABLE ledger_hashes (id BIGINT PRIMARY KEY, hash BYTEA NOT NULL);

-- Signed checkpoints (C2SP signed-note), one per committed batch.
CREATE TABLE ledger_checkpoints (size BIGINT PRIMARY KEY, note BYTEA NOT NULL, created_at TEXT NOT NULL);

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    ledger_index BIGINT NOT NULL
);

CREATE TABLE cases (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    concepts TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    ledger_index BIGINT NOT NULL
);

-- Messages to partner nodes, written in the same transaction as the action that caused them.
CREATE TABLE outbox (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    recipient TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload BYTEA NOT NULL,
    created_at TEXT NOT NULL,
    ledger_index BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    delivered_at TEXT
);
