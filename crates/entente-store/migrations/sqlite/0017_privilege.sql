-- Evidence flagged as possibly privileged, and the filter team's review (issue 13). An item
-- with a row whose status is `flagged` or `withheld` may not be exported or packaged.
CREATE TABLE evidence_privilege (
    item_id TEXT PRIMARY KEY,
    -- flagged | released | withheld | redacted
    status TEXT NOT NULL,
    -- For `redacted`: the item that replaces this one (released with the review).
    redacted_item TEXT,
    flagged_index INTEGER NOT NULL,
    -- The entry of the last change (the flag, then the review).
    ledger_index INTEGER NOT NULL
);
