-- A TAXII status resource lists one row per object of its import, read a page at a time, and
-- names who made the import (only they may read it). The lists that 0008 kept as one JSON
-- text per status move into rows.
ALTER TABLE intel_status ADD COLUMN requested_by TEXT;
CREATE TABLE intel_status_objects (
    status_id TEXT NOT NULL,
    n INTEGER NOT NULL,
    outcome TEXT NOT NULL CHECK (outcome IN ('success', 'failure')),
    id TEXT NOT NULL,
    version TEXT,
    message TEXT,
    PRIMARY KEY (status_id, n)
);
INSERT INTO intel_status_objects (status_id, n, outcome, id, version, message)
    SELECT s.id, j.key, 'success', json_extract(j.value, '$.id'), json_extract(j.value, '$.version'),
           json_extract(j.value, '$.message')
    FROM intel_status s, json_each(s.successes) j;
INSERT INTO intel_status_objects (status_id, n, outcome, id, version, message)
    SELECT s.id, s.success_count + j.key, 'failure', json_extract(j.value, '$.id'),
           json_extract(j.value, '$.version'), json_extract(j.value, '$.message')
    FROM intel_status s, json_each(s.failures) j;
UPDATE intel_status SET successes = '[]', failures = '[]';
