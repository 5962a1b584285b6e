-- Redress: complaints of individuals about the data a node holds on them.
-- The identifier a complaint names is kept only as a keyed hash (HMAC-SHA-256 under a
-- node-local key); the same keyed hashes of the string values of every recorded or received
-- datum form the index a complaint is answered from. Neither the raw identifier nor the
-- answer text ever enters the ledger (only digests do).
CREATE TABLE identifier_index (
    hash TEXT NOT NULL,
    datum_id TEXT NOT NULL,
    PRIMARY KEY (hash, datum_id)
);

CREATE TABLE complaints (
    id TEXT PRIMARY KEY,
    identifier_hash TEXT NOT NULL,
    filed_by TEXT NOT NULL,
    filed_at TEXT NOT NULL,
    due_at TEXT NOT NULL,
    state TEXT NOT NULL,
    decision TEXT,
    answer TEXT,
    answered_at TEXT,
    ledger_index BIGINT NOT NULL,
    answer_ledger_index BIGINT
);
