-- Incident notifications and case updates that travel between partner nodes.

-- Incident notifications sent to a partner (direction 'sent', party = the recipient) and
-- received from one (direction 'received', party = the sender): the notice as it travelled
-- (incident facts and the sender's assessment of the obligations, no personal data), the
-- agreement that grounds the flow and the conditions that travel with it. The ledger holds
-- only the digests. A received notice past its retention limit is destroyed: its text is
-- cleared, its digest kept.
CREATE TABLE incident_notifications (
    direction TEXT NOT NULL,
    party TEXT NOT NULL,
    id TEXT NOT NULL,
    incident TEXT NOT NULL,
    agreement TEXT NOT NULL,
    conditions TEXT NOT NULL,
    notice TEXT,
    notice_sha256 TEXT NOT NULL,
    retain_until TEXT,
    destroyed_at TEXT,
    at TEXT NOT NULL,
    ledger_index INTEGER NOT NULL,
    PRIMARY KEY (direction, party, id)
);

-- Mirrors of partner-led cases this party is a member of, as the lead's last case update
-- gave them: concepts, members (with roles and agreements), the lead's ledger index of the
-- change, and the conditions it travelled with. Data about such a case are sent to and
-- accepted from its members only.
CREATE TABLE case_mirrors (
    case_id TEXT PRIMARY KEY,
    lead TEXT NOT NULL,
    concepts TEXT NOT NULL,
    members TEXT NOT NULL,
    conditions TEXT NOT NULL,
    change TEXT NOT NULL,
    lead_index INTEGER NOT NULL,
    first_at TEXT NOT NULL,
    first_index INTEGER NOT NULL,
    updated_at TEXT NOT NULL,
    ledger_index INTEGER NOT NULL
);
