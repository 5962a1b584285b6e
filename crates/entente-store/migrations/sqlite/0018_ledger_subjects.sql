-- Which ledger entries name which subject (`kind:id`, as the entry writes it), so that a
-- case's timeline reads its own entries instead of decoding the whole ledger. Derived from
-- the entries: the writer adds the rows of each entry in the transaction that appends it, and
-- catches up from `ledger_subjects_upto` when it starts (a ledger written before this table).
CREATE TABLE ledger_subjects (
    subject TEXT NOT NULL,
    idx INTEGER NOT NULL,
    PRIMARY KEY (subject, idx)
);

-- The ledger size the table is complete up to.
CREATE TABLE ledger_subjects_upto (
    id INTEGER PRIMARY KEY,
    size INTEGER NOT NULL
);
INSERT INTO ledger_subjects_upto (id, size) VALUES (1, 0);
