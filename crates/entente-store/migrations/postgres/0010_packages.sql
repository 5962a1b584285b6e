-- Evidence packages between nodes: the age recipient a partner's packages are encrypted to
-- (pinned with its certificate), the packages this node offered to partners (served to that
-- partner only, by digest, resumable) and the offers it received (fetched, digest checked).

ALTER TABLE peers ADD COLUMN age_recipient TEXT;

CREATE TABLE packages_out (
    recipient TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    file_name TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    request_id TEXT,
    items TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    ledger_index BIGINT NOT NULL,
    PRIMARY KEY (recipient, sha256)
);

-- status: pending (offered, not yet complete here), arrived (complete, SHA-256 and size as
-- offered), refused (the partner served other bytes: recorded, discarded, not retried).
CREATE TABLE packages_in (
    sender TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    size BIGINT NOT NULL,
    file_name TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    request_id TEXT,
    items TEXT NOT NULL,
    offered_at TEXT NOT NULL,
    offer_index BIGINT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT,
    arrived_at TEXT,
    arrival_index BIGINT,
    resumed_from BIGINT,
    PRIMARY KEY (sender, sha256)
);

CREATE INDEX packages_in_pending ON packages_in (status);
