-- Maintenance of the node by its operator: backups taken (`entente backup`) and crash
-- leftovers swept from the blob store. One row per ledger entry; `detail` is canonical JSON
-- of counts, sizes and digests (never a caller's text).
CREATE TABLE maintenance_events (
    ledger_index INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    at TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE INDEX maintenance_events_kind ON maintenance_events (kind, ledger_index);
