-- Threat intelligence: TAXII collections, STIX objects (one row per version, the object's
-- original JSON text kept byte for byte beside the indexed properties) and the status
-- resources of imports. Written only by the gate.
CREATE TABLE intel_collections (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    description TEXT NOT NULL,
    -- JSON list of the partner parties the collection is shared with (TLP:AMBER audience).
    parties TEXT NOT NULL,
    created_at TEXT NOT NULL,
    ledger_index BIGINT NOT NULL
);
CREATE TABLE intel_objects (
    -- Commit order, assigned under the gate's writer lock; with date_added, the position
    -- that pagination cursors name.
    seq BIGINT PRIMARY KEY,
    collection_id TEXT NOT NULL,
    id TEXT NOT NULL,
    kind TEXT NOT NULL,
    spec_version TEXT NOT NULL,
    -- modified (else created) as written in the object; NULL for objects with neither.
    version TEXT,
    -- The version as a sortable key (nine fractional digits), '' when there is none.
    version_key TEXT NOT NULL,
    date_added TEXT NOT NULL,
    -- 1 for the latest version of the id in the collection.
    latest BIGINT NOT NULL,
    tlp TEXT NOT NULL,
    recipients TEXT NOT NULL,
    originator TEXT NOT NULL,
    importer TEXT,
    digest TEXT NOT NULL,
    raw TEXT NOT NULL,
    ledger_index BIGINT NOT NULL,
    UNIQUE (collection_id, id, version_key)
);
CREATE INDEX intel_objects_added ON intel_objects (collection_id, date_added, seq);
CREATE TABLE intel_status (
    id TEXT PRIMARY KEY,
    collection_id TEXT NOT NULL,
    status TEXT NOT NULL,
    request_timestamp TEXT NOT NULL,
    total_count BIGINT NOT NULL,
    success_count BIGINT NOT NULL,
    failure_count BIGINT NOT NULL,
    pending_count BIGINT NOT NULL,
    -- JSON lists of {"id", "version", "message"}.
    successes TEXT NOT NULL,
    failures TEXT NOT NULL,
    ledger_index BIGINT NOT NULL
);
