//! The payloads of the federation's messages, one per [`MessageKind`](crate::MessageKind).
//!
//! These are the types partners exchange: each is strict on the wire
//! (`deny_unknown_fields`), and the receiving gate checks what it may (identifiers, sizes)
//! before it decides.

use entente_core::domain::{Conditions, DataCategory, Purpose, RequestKind};
use entente_core::{PartyCode, Stamp, ids};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

// Data flows.

/// A datum as it travels to another party: minimized content and the conditions that bind
/// the receiver.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatumMessage {
    /// The datum's id (kept across parties).
    pub id: String,
    /// The case it serves (as the sender names it).
    pub case_id: String,
    /// Its category.
    pub category: DataCategory,
    /// Offence concepts of the case.
    pub concepts: Vec<String>,
    /// The purpose it is sent for.
    pub purpose: Purpose,
    /// The minimized content.
    pub content: Map<String, Value>,
    /// The conditions that travel with it.
    pub conditions: Conditions,
    /// The transforms applied before it left (field and transform names only).
    pub minimized: Vec<String>,
}

/// An originator's consent to the onward transfer of one datum to one party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentMessage {
    /// The datum.
    pub datum_id: String,
    /// The party it may now be passed to.
    pub recipient: PartyCode,
}

// Requests.

/// One recorded event of a request, as it travels.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRecord {
    /// Position in the request's history, from 0.
    pub seq: u64,
    /// Event name (`submit`, `receive`, …).
    pub event: String,
    /// Grounds of a refusal or partial approval.
    pub grounds: Vec<String>,
    /// When the recording party recorded it.
    pub at: Stamp,
}

/// A request as submitted to the requested party.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestMessage {
    /// Request id (kept on both sides).
    pub id: String,
    /// The requesting party's case.
    pub case_id: String,
    /// Kind of request.
    pub kind: RequestKind,
    /// Its legal basis.
    pub agreement: String,
    /// The requesting party.
    pub requesting: PartyCode,
    /// The requested party.
    pub requested: PartyCode,
    /// Emergency request.
    pub emergency: bool,
    /// When it was drafted.
    pub created_at: Stamp,
    /// The requesting party's national provisions it is made for.
    pub provisions: Vec<String>,
    /// Its events so far (ending with `submit`).
    pub events: Vec<EventRecord>,
}

/// An event of a shared request recorded by one side, for the other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestEventMessage {
    /// Request id.
    pub id: String,
    /// The event.
    pub record: EventRecord,
}

// Evidence packages.

/// What a package offer tells the receiving node (the payload of an `evidence.package`
/// envelope).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageOffer {
    /// SHA-256 of the package file, hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
    /// A file name for it (no directory).
    pub file_name: String,
    /// SHA-256 of its `manifest.json`, hex.
    pub manifest_sha256: String,
    /// The request it answers.
    pub request: Option<String>,
    /// The evidence item ids inside.
    pub items: Vec<String>,
}

// Incident notifications.

/// One obligation as the notifying party assessed it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoticeObligation {
    /// Regime id (`nis2`, `gdpr`, …).
    pub regime: String,
    /// Report id within the regime.
    pub report: String,
    /// Report name.
    pub report_name: String,
    /// Who receives the report under the regime.
    pub recipient: String,
    /// The deadline in words, as the regime states it.
    pub deadline: String,
    /// The due instant (RFC 3339, UTC), `without undue delay`, or `unknown: needs …`.
    pub due: String,
    /// Verification status of the deadline (V1, V2, P, U).
    pub status: String,
    /// True when the deadline is unverified and must be checked before relying on it.
    pub unverified: bool,
}

/// An incident as it is notified to a partner: facts and the sender's assessment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentNotice {
    /// The incident's identifier.
    pub incident: String,
    /// Where the entity is established or the incident has effect.
    pub jurisdictions: Vec<PartyCode>,
    /// The entity's sector, if stated.
    pub sector: Option<String>,
    /// What the entity is under the regimes.
    pub entity_types: Vec<String>,
    /// Personal data involved, if known (the fact only, never the data).
    pub personal_data: Option<bool>,
    /// Ransom paid, if known.
    pub ransom_paid: Option<bool>,
    /// The incident's IANA time zone.
    pub time_zone: String,
    /// Instants by fact name (`occurred_at`, `aware_at`, …), RFC 3339.
    pub instants: BTreeMap<String, String>,
    /// The obligations the sender found.
    pub obligations: Vec<NoticeObligation>,
    /// Facts the sender's assessment still asks for (`regime: field`).
    pub questions: Vec<String>,
}

impl IncidentNotice {
    /// Checks sizes and identifiers (a notice from a partner is checked the same way).
    pub fn validate(&self) -> Result<(), String> {
        let invalid = |m: String| Err(m);
        ids::check_identifier("incident id", &self.incident)?;
        if self.jurisdictions.is_empty() || self.jurisdictions.len() > 50 {
            return invalid("notice.jurisdictions: expected 1 to 50 party codes".into());
        }
        if self.time_zone.is_empty() || self.time_zone.len() > 64 {
            return invalid("notice.time_zone: expected an IANA time zone name".into());
        }
        if self.obligations.len() > 200 || self.questions.len() > 200 || self.instants.len() > 20 {
            return invalid(
                "notice: at most 200 obligations, 200 questions and 20 instants".into(),
            );
        }
        for (k, v) in &self.instants {
            if v.parse::<Timestamp>().is_err() {
                return invalid(format!("notice.instants.{k}: `{v}` is not an RFC 3339 instant"));
            }
        }
        let long = |s: &str| s.len() > 1000;
        if self.obligations.iter().any(|o| {
            [&o.regime, &o.report, &o.report_name, &o.recipient, &o.deadline, &o.due, &o.status]
                .iter()
                .any(|s| long(s))
        }) || self.questions.iter().any(|q| long(q))
            || self.entity_types.iter().any(|e| long(e))
            || self.sector.as_deref().is_some_and(long)
        {
            return invalid("notice: a text field is longer than 1000 characters".into());
        }
        Ok(())
    }
}

/// A notification as it travels: its id (the sender's party and ledger index), the notice and
/// the conditions that bind the receiver.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncidentNotificationMessage {
    /// `<sender party>-<sender ledger index>`: unique across parties.
    pub id: String,
    /// The notice.
    pub notice: IncidentNotice,
    /// The conditions of the agreement it travels under.
    pub conditions: Conditions,
}

// Deconfliction (private set intersection, `entente-psi`).

/// The holder's published key of a deconfliction epoch and one chunk of its prepared set
/// (`psi.key`). A rotation sends the key with every chunk, in order; the asker checks the
/// chunks against the key's epoch and each other (`entente_psi::SetReceiver`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PsiKeyMessage {
    /// The deconfliction agreement the key is for.
    pub agreement: String,
    /// The epoch's public key, 64 hex digits (its SHA-256 under the epoch domain is the
    /// epoch id).
    pub public_key: String,
    /// When the holder rotated to this key (RFC 3339).
    pub rotated_at: Timestamp,
    /// A chunk of the prepared set.
    pub chunk: entente_psi::SetChunk,
}

/// The asker's deconfliction query (`psi.query`): blinded, padded elements.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PsiQueryMessage {
    /// The asker's id of the query (`<party>-<ledger index>`); the evaluation names it.
    pub id: String,
    /// The deconfliction agreement it is asked under.
    pub agreement: String,
    /// The asker's case it is asked for (the holder counts queries per case).
    pub case_ref: String,
    /// The blinded elements.
    pub query: entente_psi::QueryMessage,
}

/// The holder's answer to a query (`psi.evaluation`): the evaluation and its proof, or why
/// the holder refused (exactly one of the two).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PsiEvaluationMessage {
    /// The asker's id of the query answered.
    pub query: String,
    /// The deconfliction agreement it was decided under.
    pub agreement: String,
    /// The evaluated elements and the proof, when the holder evaluated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation: Option<entente_psi::EvaluationMessage>,
    /// The holder's reason, when it refused (its ledger records the refusal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

impl PsiEvaluationMessage {
    /// Checks that exactly one of `evaluation` and `refused` is given.
    ///
    /// # Errors
    /// Both or neither.
    pub fn validate(&self) -> Result<(), String> {
        match (&self.evaluation, &self.refused) {
            (Some(_), None) => Ok(()),
            (None, Some(r)) if !r.is_empty() && r.len() <= 2000 => Ok(()),
            (None, Some(_)) => Err("refused: expected a reason of 1 to 2000 bytes".into()),
            _ => Err("expected exactly one of `evaluation` and `refused`".into()),
        }
    }
}

// Cases (joint investigation teams).

/// A party that shares a case.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseMember {
    /// The member party.
    pub party: String,
    /// `lead` (the party that opened the case) or `member`.
    pub role: String,
    /// The JIT agreement the party was added under (none for the lead).
    pub agreement: Option<String>,
    /// When it became a member.
    pub added_at: Stamp,
    /// Ledger index of the entry that recorded it.
    pub ledger_index: u64,
}

/// A case update, sent by the lead to every other member when the case's membership changes:
/// no title (it may name people), only ids, concepts, members and the lead's ledger index.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaseUpdateMessage {
    /// The case id.
    pub case_id: String,
    /// The lead party (the sender).
    pub lead: PartyCode,
    /// Offence concepts of the case.
    pub concepts: Vec<String>,
    /// Every member after the change, the lead first.
    pub members: Vec<CaseMember>,
    /// What changed (`member-added DE`).
    pub change: String,
    /// The lead's ledger index of the change (updates apply in increasing order).
    pub ledger_index: u64,
    /// The conditions of the recipient's JIT agreement, which travel with the update.
    pub conditions: Conditions,
}

impl CaseUpdateMessage {
    /// Checks identifiers and sizes.
    pub fn validate(&self) -> Result<(), String> {
        ids::check_identifier("case id", &self.case_id)?;
        for c in &self.concepts {
            ids::check_identifier("offense concept", c)?;
        }
        if self.members.is_empty() || self.members.len() > 100 || self.change.len() > 200 {
            return Err(
                "case update: expected 1 to 100 members and a change of at most 200 characters"
                    .into(),
            );
        }
        let leads: Vec<&CaseMember> = self.members.iter().filter(|m| m.role == "lead").collect();
        if leads.len() != 1 || leads[0].party != self.lead.as_str() {
            return Err(format!(
                "case update of `{}`: the members must name exactly one lead, {}",
                self.case_id, self.lead
            ));
        }
        for m in &self.members {
            m.party
                .parse::<PartyCode>()
                .map_err(|e| format!("case update member `{}`: {e}", m.party))?;
            if m.role != "lead" && m.role != "member" {
                return Err(format!(
                    "case update member {}: role `{}` (expected lead or member)",
                    m.party, m.role
                ));
            }
        }
        Ok(())
    }
}
