//! What a report counts, as the store reads it: rows of the state tables and the ledger
//! entries of the period. Nothing here is typed in; the store builds these from its tables in
//! one read transaction, at a ledger size (the watermark) that the recorded report names.

use entente_core::PartyCode;
use jiff::Timestamp;
use serde::Deserialize;
use std::collections::BTreeMap;

/// Everything a report for one period counts.
#[derive(Clone, Debug, Default)]
pub struct Facts {
    /// The ledger size when the facts were read: every entry counted has a smaller index.
    pub watermark: u64,
    /// Partner parties: every party of an agreement loaded on the node, other than the node's
    /// own (the fixed rows of the public report: they do not depend on the data).
    pub partners: Vec<PartyCode>,
    /// Requests issued or received (with every event).
    pub requests: Vec<RequestFact>,
    /// Ledger entries whose time falls in the period.
    pub entries: Vec<EntryFact>,
    /// Categories of the data items and evidence items the entries name (`datum:ID` and
    /// `evidence:ID` → category).
    pub categories: BTreeMap<String, String>,
    /// Incident notifications sent and received.
    pub incidents: Vec<IncidentFact>,
    /// Complaints filed.
    pub complaints: Vec<ComplaintFact>,
    /// Deconfliction queries this node asked.
    pub psi_asked: Vec<PsiAskedFact>,
    /// Deconfliction queries partners asked this node.
    pub psi_answered: Vec<PsiAnsweredFact>,
    /// Evidence packages sent (`sent = true`) and received.
    pub packages: Vec<PackageFact>,
}

impl Facts {
    /// The facts that concern `partner` only: its requests (either way), flows and consents
    /// with it, notifications, deconfliction queries and packages exchanged with it.
    /// Complaints concern individuals, not a partner, and are left out.
    pub fn for_partner(mut self, node: &PartyCode, partner: &PartyCode) -> Facts {
        self.requests.retain(|r| {
            let other = if &r.requesting == node { &r.requested } else { &r.requesting };
            other == partner
        });
        self.entries.retain(|e| e.partner().as_deref() == Some(partner.as_str()));
        self.incidents.retain(|n| &n.partner == partner);
        self.complaints.clear();
        self.psi_asked.retain(|q| &q.partner == partner);
        self.psi_answered.retain(|q| &q.partner == partner);
        self.packages.retain(|p| &p.partner == partner);
        self.partners.retain(|p| p == partner);
        self
    }
}

/// One event of a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventFact {
    /// Event name (`submit`, `receive`, `approve`, `refuse`, `answer`, …).
    pub name: String,
    /// Refusal grounds of a refusal or partial approval.
    pub grounds: Vec<String>,
    /// When it happened.
    pub at: Timestamp,
    /// The ledger entry that recorded it here.
    pub index: u64,
}

/// A request with its events in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestFact {
    /// Request id.
    pub id: String,
    /// The case it serves (the privacy unit of the public report).
    pub case_id: String,
    /// Request kind (`production`, `preservation`, `mla`, …).
    pub kind: String,
    /// The agreement that grounds it (its legal basis).
    pub agreement: String,
    /// Requesting party.
    pub requesting: PartyCode,
    /// Requested party.
    pub requested: PartyCode,
    /// Emergency or not.
    pub emergency: bool,
    /// The entry that created it here.
    pub index: u64,
    /// Its events in order.
    pub events: Vec<EventFact>,
}

impl RequestFact {
    /// The first event named `name` before `until`.
    pub fn first(&self, name: &str, until: Timestamp) -> Option<&EventFact> {
        self.events.iter().find(|e| e.name == name && e.at < until)
    }
}

/// A ledger entry, as much of it as a report reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntryFact {
    /// Index.
    pub index: u64,
    /// Time.
    pub time: Timestamp,
    /// Action (`datum.share`, …).
    pub action: String,
    /// Permit or deny.
    pub permit: bool,
    /// Rules that decided.
    pub rules: Vec<String>,
    /// Subjects (`kind:id`).
    pub subjects: Vec<String>,
    /// Actor in words (`eva (investigator)`, `peer DE`, `operator`, `anonymous caller`).
    pub actor: String,
    /// The partner party when the actor is a peer.
    pub peer: Option<PartyCode>,
}

#[derive(Deserialize)]
struct ActorView<'a> {
    kind: &'a str,
    #[serde(default)]
    name: Option<&'a str>,
    #[serde(default)]
    role: Option<&'a str>,
    #[serde(default)]
    party: Option<&'a str>,
}

#[derive(Deserialize)]
struct EntryView<'a> {
    index: u64,
    #[serde(borrow)]
    time: &'a str,
    #[serde(borrow)]
    actor: ActorView<'a>,
    #[serde(borrow)]
    action: &'a str,
    #[serde(borrow)]
    subjects: Vec<&'a str>,
    #[serde(borrow)]
    decision: &'a str,
    #[serde(borrow)]
    rules: Vec<&'a str>,
}

/// The actions whose entries the exact statistics count (flows and consents).
pub const STATISTICS_ACTIONS: [&str; 8] = [
    "datum.share",
    "datum.receive",
    "evidence.export",
    "evidence.receive",
    "incident.notify",
    "incident.receive",
    "consent.give",
    "consent.receive",
];

/// Whether the exact statistics count entries of `action` (flows and consents).
pub fn counted_by_statistics(action: &str) -> bool {
    STATISTICS_ACTIONS.contains(&action)
}

/// The action of an entry in RFC 8785 form, whose first key is `action` (keys are sorted),
/// read without parsing the entry: `None` when the bytes do not start that way (the caller
/// then decodes them).
pub fn canonical_action(bytes: &[u8]) -> Option<&str> {
    let rest = bytes.strip_prefix(br#"{"action":""#)?;
    let end = rest.iter().position(|b| *b == b'"')?;
    std::str::from_utf8(rest.get(..end)?).ok()
}

/// An entry as read from its canonical bytes, borrowing them: what the store checks (the
/// period, the action) before it keeps anything.
pub struct EntryRef<'a> {
    view: EntryView<'a>,
    /// Time.
    pub time: Timestamp,
}

impl<'a> EntryRef<'a> {
    /// Reads the fields a report needs from an entry's canonical bytes (the entry itself is
    /// checked by `ledger verify`; here only what is counted is read).
    ///
    /// # Errors
    /// Bytes that are not an entry.
    pub fn decode(bytes: &'a [u8]) -> Result<EntryRef<'a>, String> {
        let view: EntryView<'a> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let time: Timestamp = view.time.parse().map_err(|e| format!("time {}: {e}", view.time))?;
        if !matches!(view.decision, "permit" | "deny") {
            return Err(format!("decision {}", view.decision));
        }
        Ok(EntryRef { view, time })
    }

    /// Index.
    pub fn index(&self) -> u64 {
        self.view.index
    }

    /// Action.
    pub fn action(&self) -> &'a str {
        self.view.action
    }

    /// Permit or deny.
    pub fn permit(&self) -> bool {
        self.view.decision == "permit"
    }

    /// Rules that decided.
    pub fn rules(&self) -> &[&'a str] {
        &self.view.rules
    }

    /// The partner party when the actor is a peer.
    pub fn peer(&self) -> Option<&'a str> {
        (self.view.actor.kind == "peer").then_some(self.view.actor.party).flatten()
    }

    /// Actor in words (`eva (investigator)`, `peer DE`, `operator`, `anonymous caller`).
    ///
    /// # Errors
    /// An actor kind the ledger does not have.
    pub fn actor(&self) -> Result<String, String> {
        let a = &self.view.actor;
        Ok(match (a.kind, a.name, a.role, a.party) {
            ("user", Some(n), Some(r), _) => format!("{n} ({r})"),
            ("operator-for", Some(n), Some(r), _) => format!("operator for {n} ({r})"),
            ("peer", _, _, Some(p)) => format!("peer {p}"),
            ("operator", ..) => "operator".to_owned(),
            ("anonymous", ..) => "anonymous caller".to_owned(),
            (k, ..) => return Err(format!("actor kind {k}")),
        })
    }

    /// Whether the exact statistics count entries of this action (flows and consents); the
    /// store keeps only those as [`EntryFact`]s, so that a long ledger is not held in memory.
    pub fn counted_by_statistics(&self) -> bool {
        counted_by_statistics(self.view.action)
    }

    /// The entry as an owned [`EntryFact`].
    ///
    /// # Errors
    /// An actor that is not one of the ledger's.
    pub fn to_fact(&self) -> Result<EntryFact, String> {
        let peer = match self.peer() {
            Some(p) => Some(p.parse::<PartyCode>().map_err(|e| format!("actor party: {e}"))?),
            None => None,
        };
        Ok(EntryFact {
            index: self.view.index,
            time: self.time,
            action: self.view.action.to_owned(),
            permit: self.permit(),
            rules: self.view.rules.iter().map(|r| (*r).to_owned()).collect(),
            subjects: self.view.subjects.iter().map(|s| (*s).to_owned()).collect(),
            actor: self.actor()?,
            peer,
        })
    }
}

impl EntryFact {
    /// Reads an entry's canonical bytes as an [`EntryFact`].
    ///
    /// # Errors
    /// Bytes that are not an entry.
    pub fn decode(bytes: &[u8]) -> Result<EntryFact, String> {
        EntryRef::decode(bytes)?.to_fact()
    }

    /// The id of the first subject of `kind`.
    pub fn subject(&self, kind: &str) -> Option<&str> {
        self.subjects.iter().find_map(|s| s.strip_prefix(kind)?.strip_prefix(':'))
    }

    /// The partner of a flow: the `party:` subject, or the peer that sent it.
    pub fn partner(&self) -> Option<String> {
        self.subject("party")
            .map(str::to_owned)
            .or_else(|| self.peer.as_ref().map(|p| p.to_string()))
    }

    /// The agreement that grounded a decision (`agreement#rule` among the rules).
    pub fn agreement(&self) -> Option<&str> {
        self.rules.iter().find_map(|r| {
            let (a, _) = r.split_once('#')?;
            (a != "federation").then_some(a)
        })
    }
}

/// An incident notification sent or received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IncidentFact {
    /// Sent by this node (else received).
    pub sent: bool,
    /// The partner.
    pub partner: PartyCode,
    /// When it was sent or received.
    pub at: Timestamp,
    /// The entry.
    pub index: u64,
    /// Per regime named in the notice, the earliest fixed due instant of its obligations
    /// (`None`: only "without undue delay" or unknown). Empty once the notice is destroyed.
    pub regimes: BTreeMap<String, Option<Timestamp>>,
}

/// A complaint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ComplaintFact {
    /// When it was filed.
    pub filed_at: Timestamp,
    /// When the answer is due.
    pub due_at: Timestamp,
    /// When it was answered.
    pub answered_at: Option<Timestamp>,
    /// The decision on it, when answered.
    pub decision: Option<String>,
    /// The entry that filed it.
    pub index: u64,
    /// The entry that answered it.
    pub answer_index: Option<u64>,
}

/// A deconfliction query this node asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PsiAskedFact {
    /// The case it served.
    pub case_id: String,
    /// The partner asked.
    pub partner: PartyCode,
    /// Selectors asked (before padding).
    pub selectors: u64,
    /// `pending`, `answered`, `refused`, `failed`.
    pub status: String,
    /// When it was asked.
    pub at: Timestamp,
    /// The entry.
    pub index: u64,
}

/// A deconfliction query a partner asked this node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PsiAnsweredFact {
    /// The asking partner.
    pub partner: PartyCode,
    /// `evaluated` or `refused`.
    pub status: String,
    /// When it was decided.
    pub at: Timestamp,
    /// The entry.
    pub index: u64,
}

/// An evidence package sent or received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackageFact {
    /// Sent by this node (else received).
    pub sent: bool,
    /// The partner.
    pub partner: PartyCode,
    /// Size in bytes.
    pub size: u64,
    /// For a received one: `offered`, `arrived`, `refused`, …; `sent` for a sent one.
    pub status: String,
    /// When it was sent or offered.
    pub at: Timestamp,
    /// The entry.
    pub index: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_read_from_their_canonical_form() {
        let bytes = br#"{"action":"datum.share","actor":{"kind":"user","name":"eva","role":"investigator"},"decision":"deny","index":7,"node":"NL","obligations":[],"payload_hashes":{},"reason":"r","rules":["role.case-worker.datum-share","eu-2023-1543#onward-transfer-needs-consent"],"subjects":["datum:d-1","party:US"],"time":"2026-11-03T09:00:00.000000Z","v":1}"#;
        let e = EntryFact::decode(bytes).unwrap();
        assert_eq!((e.index, e.permit, e.actor.as_str()), (7, false, "eva (investigator)"));
        assert_eq!(e.subject("datum"), Some("d-1"));
        assert_eq!(canonical_action(bytes), Some("datum.share"));
        assert_eq!(canonical_action(br#"{"actor":{}}"#), None);
        assert_eq!(e.partner().as_deref(), Some("US"));
        assert_eq!(e.agreement(), Some("eu-2023-1543"));
        let peer = br#"{"action":"datum.receive","actor":{"kind":"peer","party":"DE"},"decision":"permit","index":8,"rules":["federation#x","jit#share"],"subjects":["datum:d-2"],"time":"2026-11-03T09:00:00Z"}"#;
        let e = EntryFact::decode(peer).unwrap();
        assert_eq!((e.partner().as_deref(), e.agreement()), (Some("DE"), Some("jit")));
        for bad in [&b"{}"[..], b"not json", br#"{"index":1,"time":"yesterday","actor":{"kind":"operator"},"action":"a","subjects":[],"decision":"permit","rules":[]}"#] {
            assert!(EntryFact::decode(bad).is_err());
        }
    }
}
