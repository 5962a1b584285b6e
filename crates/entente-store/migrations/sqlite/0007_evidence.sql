-- Evidence: content-addressed encrypted blobs, items bound to cases, custody events.
-- A blob's data key is kept only wrapped by the node's master key; destroying the item
-- clears it (crypto-shredding), and the ledger keeps the digests.
CREATE TABLE evidence_blobs (
    sha256 TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    blob_name TEXT NOT NULL,
    wrapped_key TEXT,
    destroyed_at TEXT,
    ledger_index INTEGER NOT NULL
);

-- Items: the node's own (acquired) or received in a package, with the conditions that
-- travel with them and the custody events of earlier holders (JSON).
CREATE TABLE evidence_items (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size INTEGER NOT NULL,
    category TEXT NOT NULL,
    media_type TEXT NOT NULL,
    description TEXT NOT NULL,
    file_name TEXT,
    source TEXT,
    collected_at TEXT,
    originator TEXT NOT NULL,
    received_from TEXT,
    package_sha256 TEXT,
    conditions TEXT,
    retain_until TEXT,
    earlier_chain TEXT NOT NULL,
    created_at TEXT NOT NULL,
    destroyed_at TEXT,
    ledger_index INTEGER NOT NULL
);

CREATE INDEX evidence_items_sha256 ON evidence_items (sha256);

-- Custody events recorded by this node (canonical JSON), one ledger entry each.
CREATE TABLE evidence_custody (
    item_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    digest TEXT NOT NULL,
    ledger_index INTEGER NOT NULL,
    PRIMARY KEY (item_id, seq)
);
