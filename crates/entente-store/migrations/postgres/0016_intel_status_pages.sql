-- A TAXII status resource lists one row per object of its import, read a page at a time, and
-- names who made the import (only they may read it). The lists that 0008 kept as one JSON
-- text per status move into rows.
ALTER TABLE intel_status ADD COLUMN requested_by TEXT;
CREATE TABLE intel_status_objects (
    status_id TEXT NOT NULL,
    n BIGINT NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    id TEXT NOT NULL,
    version TEXT,
    message TEXT,
    PRIMARY KEY (status_id, n)
);
INSERT INTO intel_status_objects (status_id, n, outcome, id, version, message)
    SELECT s.id, j.n - 1, 'success', j.v ->> 'id', j.v ->> 'version', j.v ->> 'message'
    FROM intel_status s, jsonb_array_elements(s.successes::jsonb) WITH ORDINALITY AS j(v, n);
INSERT INTO intel_status_objects (status_id, n, outcome, id, version, message)
    SELECT s.id, s.success_count + j.n - 1, 'failure', j.v ->> 'id', j.v ->> 'version',
           j.v ->> 'message'
    FROM intel_status s, jsonb_array_elements(s.failures::jsonb) WITH ORDINALITY AS j(v, n);
UPDATE intel_status SET successes = '[]', failures = '[]';
