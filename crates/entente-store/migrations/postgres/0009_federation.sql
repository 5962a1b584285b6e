-- Federation: pinned partner nodes, the per-pair order of outgoing messages and what was
-- received from each partner (exactly-once application).

-- A partner node is trusted only through its pinned certificate (DER, SHA-256) and the
-- Ed25519 key inside it, which signs its envelopes and acknowledgements.
CREATE TABLE peers (
    party TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    cert_pem TEXT NOT NULL,
    cert_sha256 TEXT NOT NULL UNIQUE,
    signing_key TEXT NOT NULL,
    added_at TEXT NOT NULL,
    ledger_index BIGINT NOT NULL
);

-- Outgoing messages carry a per-recipient sequence number assigned in the transaction that
-- wrote them; the delivery worker sends them in that order and records the signed
-- acknowledgement (status applied, denied or rejected; the receiver's ledger index).
ALTER TABLE outbox ADD COLUMN seq BIGINT;
ALTER TABLE outbox ADD COLUMN next_attempt_at TEXT;
ALTER TABLE outbox ADD COLUMN last_error TEXT;
ALTER TABLE outbox ADD COLUMN ack_status TEXT;
ALTER TABLE outbox ADD COLUMN ack_index BIGINT;
CREATE UNIQUE INDEX outbox_pair_seq ON outbox (recipient, seq);
CREATE INDEX outbox_waiting ON outbox (recipient, seq) WHERE delivered_at IS NULL;

-- Every envelope applied from a partner, by (sender, seq): a replay is acknowledged again
-- with the stored outcome and never applied twice.
CREATE TABLE inbox (
    sender TEXT NOT NULL,
    seq BIGINT NOT NULL,
    message_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    payload_sha256 TEXT NOT NULL,
    status TEXT NOT NULL,
    ledger_index BIGINT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (sender, seq)
);
