-- The requesting party's national provisions a request is made for (JSON array of citations),
-- for the requested party's dual-criminality check.
ALTER TABLE requests ADD COLUMN provisions TEXT NOT NULL DEFAULT '[]';
