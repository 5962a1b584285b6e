-- Case members: the parties that share a case. The node's own party is the `lead` of every
-- case it opens (written with the opening); a party added under a JIT agreement is a
-- `member` and names that agreement. A peer sees a case's status only if it is a member.
CREATE TABLE case_members (
    case_id TEXT NOT NULL,
    party TEXT NOT NULL,
    role TEXT NOT NULL,
    agreement TEXT,
    added_at TEXT NOT NULL,
    ledger_index INTEGER NOT NULL,
    PRIMARY KEY (case_id, party)
);
