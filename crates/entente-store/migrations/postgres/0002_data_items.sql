-- Data held for cases: the node's own, or received from a partner with the conditions that
-- travel with it. `content` is cleared when the datum is destroyed; the row and the ledger
-- keep the proof (digest, times).
CREATE TABLE data_items (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL,
    category TEXT NOT NULL,
    concepts TEXT NOT NULL,
    originator TEXT NOT NULL,
    received_from TEXT,
    origin_agreement TEXT,
    conditions TEXT,
    content TEXT,
    content_sha256 TEXT NOT NULL,
    retain_until TEXT,
    destroyed_at TEXT,
    ledger_index BIGINT NOT NULL
);

-- Consents of an originator to the onward transfer of one datum to one party.
CREATE TABLE consents (
    datum_id TEXT NOT NULL,
    recipient TEXT NOT NULL,
    given_by TEXT NOT NULL,
    ledger_index BIGINT NOT NULL,
    PRIMARY KEY (datum_id, recipient)
);
