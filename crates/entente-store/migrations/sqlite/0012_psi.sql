-- Deconfliction by private set intersection (entente-psi, docs/psi.md). No selector is ever
-- stored in the clear: the holder's key and prepared set, the asker's query state (selectors
-- and blinds) and its results are sealed (XChaCha20-Poly1305 under a key derived from the
-- node secret); what stays readable are ids, counts, epochs and digests.

-- This node as a holder: one key per epoch and agreement. The secret is destroyed (NULL) when
-- the next epoch replaces it; the prepared set is kept sealed, chunk by chunk.
CREATE TABLE psi_keys (
    epoch TEXT PRIMARY KEY,
    agreement TEXT NOT NULL,
    mode TEXT NOT NULL,
    public_key TEXT NOT NULL,
    sealed_secret BLOB,
    set_size INTEGER NOT NULL,
    set_digest TEXT NOT NULL,
    chunks INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    destroyed_at TEXT,
    ledger_index INTEGER NOT NULL
);

CREATE TABLE psi_set_chunks (
    epoch TEXT NOT NULL,
    idx INTEGER NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (epoch, idx)
);

-- Partners' published keys and their prepared sets (tags and sealed labels: PRF values that
-- only the partner's key computes), chunk by chunk as they arrive.
CREATE TABLE psi_peer_keys (
    peer TEXT NOT NULL,
    epoch TEXT NOT NULL,
    agreement TEXT NOT NULL,
    mode TEXT NOT NULL,
    public_key TEXT NOT NULL,
    set_size INTEGER NOT NULL,
    set_digest TEXT NOT NULL,
    total INTEGER NOT NULL,
    received INTEGER NOT NULL,
    rotated_at TEXT NOT NULL,
    received_at TEXT NOT NULL,
    ledger_index INTEGER NOT NULL,
    PRIMARY KEY (peer, epoch)
);

CREATE TABLE psi_peer_chunks (
    peer TEXT NOT NULL,
    epoch TEXT NOT NULL,
    idx INTEGER NOT NULL,
    chunk BLOB NOT NULL,
    PRIMARY KEY (peer, epoch, idx)
);

-- This node's queries as the asker: counts and the digest of the blinded query; the query
-- state is sealed until the answer is finalised (then NULL), the result sealed.
CREATE TABLE psi_queries (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL,
    peer TEXT NOT NULL,
    agreement TEXT NOT NULL,
    epoch TEXT NOT NULL,
    mode TEXT NOT NULL,
    selectors INTEGER NOT NULL,
    padded INTEGER NOT NULL,
    query_sha256 TEXT NOT NULL,
    sealed_state BLOB,
    status TEXT NOT NULL,
    matched INTEGER,
    sealed_result BLOB,
    reason TEXT,
    created_at TEXT NOT NULL,
    answered_at TEXT,
    ledger_index INTEGER NOT NULL,
    answer_ledger_index INTEGER
);

CREATE INDEX psi_queries_case ON psi_queries (case_id, peer, agreement, created_at);

-- Partners' queries this node answered (or refused) as the holder: counts, epoch, agreement.
CREATE TABLE psi_evaluations (
    asker TEXT NOT NULL,
    query_id TEXT NOT NULL,
    case_ref TEXT NOT NULL,
    agreement TEXT NOT NULL,
    epoch TEXT NOT NULL,
    elements INTEGER NOT NULL,
    status TEXT NOT NULL,
    reason TEXT,
    at TEXT NOT NULL,
    ledger_index INTEGER NOT NULL,
    PRIMARY KEY (asker, query_id)
);

CREATE INDEX psi_evaluations_case ON psi_evaluations (asker, case_ref, agreement, at);
