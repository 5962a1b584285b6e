-- Cross-border requests, event-sourced: the row holds what the request was drafted as; the
-- events rebuild its state and clocks (entente_policy::request) under its agreement.
CREATE TABLE requests (
    id TEXT PRIMARY KEY,
    case_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    agreement TEXT NOT NULL,
    requesting TEXT NOT NULL,
    requested TEXT NOT NULL,
    emergency INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    ledger_index INTEGER NOT NULL
);

CREATE TABLE request_events (
    request_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    event TEXT NOT NULL,
    grounds TEXT NOT NULL,
    at TEXT NOT NULL,
    ledger_index INTEGER NOT NULL,
    PRIMARY KEY (request_id, seq)
);
