-- Which ledger entries name which subject (`kind:id`, as the entry writes it), so that a
-- case's timeline reads its own entries instead of decoding the whole ledger. Derived from
-- the entries: the writer adds the rows of each entry in the transaction that appends it; the
-- first writer to commit after this migration indexes the entries written before it.
CREATE TABLE ledger_subjects (
    subject TEXT NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (subject, idx)
);

-- The ledger size at which the entries written before this table were indexed (NULL until the
-- first writer has done it); every later entry is indexed in the transaction that appends it.
CREATE TABLE ledger_subjects_upto (
    id INTEGER PRIMARY KEY,
    size INTEGER
);
INSERT INTO ledger_subjects_upto (id, size) VALUES (1, NULL);
