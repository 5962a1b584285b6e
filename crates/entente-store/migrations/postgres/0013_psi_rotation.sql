-- Rotation outside the gate's writer (docs/psi.md, "Key epochs and rotation"): the holdings
-- watermark an epoch's set was prepared from, and which partners each epoch was sent to (so a
-- partner pinned after a rotation is sent the current epoch).

-- The ledger size read with the holdings the set was prepared from: everything recorded at a
-- lower index is in the set; a change at this index or later is in the next epoch's set. NULL
-- for an epoch prepared before this migration (inside the gate's transaction).
ALTER TABLE psi_keys ADD COLUMN holdings_at BIGINT;

CREATE TABLE psi_key_recipients (
    epoch TEXT NOT NULL,
    party TEXT NOT NULL,
    sent_at TEXT NOT NULL,
    ledger_index BIGINT NOT NULL,
    PRIMARY KEY (epoch, party)
);

-- The epochs sent before: the psi.key outbox rows their rotation wrote.
INSERT INTO psi_key_recipients (epoch, party, sent_at, ledger_index)
SELECT DISTINCT k.epoch, o.recipient, k.created_at, k.ledger_index
FROM psi_keys k JOIN outbox o ON o.ledger_index = k.ledger_index AND o.kind = 'psi.key';
