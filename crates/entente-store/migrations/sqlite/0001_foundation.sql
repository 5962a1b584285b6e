-- Node metadata (party, name, log origin, verifier key).
CREATE TABLE node_meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);

-- One row: the ledger's size and latest checkpoint. Every gate transaction updates it first,
-- which serialises writers across processes.
CREATE TABLE ledger_head (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    size INTEGER NOT NULL,
    epoch INTEGER NOT NULL,
    checkpoint BLOB
);
INSERT INTO ledger_head (id, size, epoch, checkpoint) VALUES (1, 0, 0, NULL);

-- Ledger entries: RFC 8785 canonical JSON, append only.
CREATE TABLE ledger_entries (idx INTEGER PRIMARY KEY, entry BLOB NOT NULL);

-- Hashes of complete subtrees, numbered as in sumdb/tlog (stored hash index).
CREATE TABLE ledger_hashes (id INTEGER PRIMARY KEY, hash BLOB NOT NULL);

-- Signed checkpoints (C2SP signed-note), one per committed batch.
CREATE TABLE ledger_checkpoints (size INTEGER PRIMARY KEY, note BLOB NOT NULL, created_at TEXT NOT NULL);

CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    token_sha256 TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    ledger_index INTEGER NOT NULL
);

CREATE TABLE cases (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    concepts TEXT NOT NULL,
    opened_by TEXT NOT NULL,
    opened_at TEXT NOT NULL,
    ledger_index INTEGER NOT NULL
);

-- Messages to partner nodes, written in the same transaction as the action that caused them.
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    recipient TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at TEXT NOT NULL,
    ledger_index INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    delivered_at TEXT
);
