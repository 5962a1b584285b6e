//! Who asks for what, on which subject: the vocabulary of the gate.

use crate::ids::{PartyCode, Role};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Who asks the gate for an action.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Actor {
    /// Whoever runs the `entente` command on the node's data directory. Holding the data
    /// directory (and its identity key) is what makes the operator; it may bootstrap the node.
    Operator,
    /// An authenticated user of this node.
    User {
        /// The user's name on this node.
        name: String,
        /// The user's role.
        role: Role,
    },
    /// A caller that presented no valid credential.
    Anonymous,
    /// The operator holding the data directory, acting at the command line for one of the
    /// node's users (`--user NAME`): the user's role decides, and the ledger shows that the
    /// user did not present a token.
    OperatorFor {
        /// The user's name on this node.
        name: String,
        /// The user's role.
        role: Role,
    },
    /// A partner node, authenticated by its pinned key.
    Peer {
        /// The partner's party code.
        party: PartyCode,
    },
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Actor::Operator => f.write_str("operator"),
            Actor::User { name, role } => write!(f, "{name} ({role})"),
            Actor::OperatorFor { name, role } => write!(f, "operator for {name} ({role})"),
            Actor::Anonymous => f.write_str("anonymous caller"),
            Actor::Peer { party } => write!(f, "peer {party}"),
        }
    }
}

/// What the actor asks to do. Every state change and every disclosure of data is one of these.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Action {
    /// Bring a node into being (its first ledger entry).
    #[serde(rename = "node.init")]
    NodeInit,
    /// Create a user with a role and an API token.
    #[serde(rename = "user.add")]
    UserAdd,
    /// Open a case.
    #[serde(rename = "case.open")]
    CaseOpen,
    /// Read a case.
    #[serde(rename = "case.read")]
    CaseRead,
    /// Read ledger entries through the authenticated API.
    #[serde(rename = "ledger.read")]
    LedgerRead,
    /// Record a datum this party holds for a case.
    #[serde(rename = "datum.add")]
    DatumAdd,
    /// Read the content of a datum this party holds (personal data: always recorded).
    #[serde(rename = "datum.read")]
    DatumRead,
    /// Send a datum to another party (under an agreement, with its conditions).
    #[serde(rename = "datum.share")]
    DatumShare,
    /// Accept a datum sent by another party, with the conditions that travel with it.
    #[serde(rename = "datum.receive")]
    DatumReceive,
    /// Consent, as originator, to the onward transfer of a datum to a named party.
    #[serde(rename = "consent.give")]
    ConsentGive,
    /// Record a consent received from the originator of a datum.
    #[serde(rename = "consent.receive")]
    ConsentReceive,
    /// Destroy a datum whose retention limit has passed.
    #[serde(rename = "datum.destroy")]
    DatumDestroy,
    /// Draft a cross-border request under an agreement.
    #[serde(rename = "request.create")]
    RequestCreate,
    /// Move a request through its states (submit, receive, approve, refuse, answer, …).
    #[serde(rename = "request.transition")]
    RequestTransition,
    /// Read a request with its history and clocks.
    #[serde(rename = "request.read")]
    RequestRead,
    /// Read the legal clocks of all open requests (alerts for overdue ones).
    #[serde(rename = "alerts.read")]
    AlertsRead,
    /// File an individual's complaint (redress) about the data held on an identifier.
    #[serde(rename = "complaint.file")]
    ComplaintFile,
    /// Record the decision on a complaint and the answer to the complainant.
    #[serde(rename = "complaint.answer")]
    ComplaintAnswer,
    /// Read a complaint with the data items and flows found for its identifier.
    #[serde(rename = "complaint.read")]
    ComplaintRead,
    /// Add a party to a case under a JIT agreement.
    #[serde(rename = "case.member.add")]
    CaseMemberAdd,
    /// Read a case's status: members and timeline (a peer only as a member of the case).
    #[serde(rename = "case.status")]
    CaseStatus,
    /// Read a page of the listing of the cases this node holds (its own and the partner-led
    /// ones it mirrors).
    #[serde(rename = "case.list")]
    CaseList,
    /// Apply a case update sent by the lead party of a case this party is a member of (its
    /// mirror of the partner-led case).
    #[serde(rename = "case.update")]
    CaseUpdate,
    /// Remove a partner party from a case (it leaves the JIT); the lead only.
    #[serde(rename = "case.member.remove")]
    CaseMemberRemove,
    /// Notify a partner (a CSIRT or authority) of an incident under an agreement in force.
    #[serde(rename = "incident.notify")]
    IncidentNotify,
    /// Accept an incident notification sent by a partner, with its travelling conditions.
    #[serde(rename = "incident.receive")]
    IncidentReceive,
    /// Read the incident notifications sent and received.
    #[serde(rename = "incident.read")]
    IncidentRead,
    /// Destroy a received incident notification whose retention limit has passed.
    #[serde(rename = "incident.destroy")]
    IncidentDestroy,
    /// Pin a partner node (its TLS certificate and the signing key inside it).
    #[serde(rename = "peer.add")]
    PeerAdd,
    /// Remove a partner node's pin: nothing from it is accepted any more.
    #[serde(rename = "peer.remove")]
    PeerRemove,
    /// An envelope from a partner refused before its content was decided (bad signature,
    /// unpinned certificate, wrong recipient, stale, malformed): always recorded as a deny.
    #[serde(rename = "envelope.reject")]
    EnvelopeReject,
    /// A partner's signed acknowledgement of delivered envelopes.
    #[serde(rename = "envelope.ack")]
    EnvelopeAck,
    /// A request submitted by a partner, received by this node (the requested party).
    #[serde(rename = "request.receive")]
    RequestReceive,
    /// A transition of a shared request recorded by the other party, mirrored here.
    #[serde(rename = "request.update")]
    RequestUpdate,
    /// A witness found a partner's ledger showing inconsistent checkpoints (a split view or a
    /// rewritten history).
    #[serde(rename = "witness.alarm")]
    WitnessAlarm,
    /// Create a threat-intelligence (TAXII) collection.
    #[serde(rename = "intel.collection.create")]
    IntelCollectionCreate,
    /// Import STIX objects into a collection (all or nothing).
    #[serde(rename = "intel.import")]
    IntelImport,
    /// Read a page of a collection, each object decided under TLP 2.0.
    #[serde(rename = "intel.read")]
    IntelRead,
    /// Release STIX objects to a pinned partner (pushed to its TAXII server as this node),
    /// each decided under TLP 2.0 for that partner.
    #[serde(rename = "intel.push")]
    IntelPush,
    /// Take in an evidence item (custody event `acquired`).
    #[serde(rename = "evidence.add")]
    EvidenceAdd,
    /// Record a custody event on an evidence item (sealed, accessed, copied, verified, analysed,
    /// returned).
    #[serde(rename = "evidence.custody")]
    EvidenceCustody,
    /// Release an evidence item into a package for another party (custody event `exported`),
    /// decided by the agreements in force.
    #[serde(rename = "evidence.export")]
    EvidenceExport,
    /// Take in an evidence item from a verified package (custody event `received`), binding
    /// the conditions that travel with it.
    #[serde(rename = "evidence.receive")]
    EvidenceReceive,
    /// Read an evidence item and its custody chain.
    #[serde(rename = "evidence.read")]
    EvidenceRead,
    /// Destroy an evidence item whose retention limit has passed (its data key is destroyed).
    #[serde(rename = "evidence.destroy")]
    EvidenceDestroy,
    /// Flag an evidence item as possibly privileged (legal professional privilege or other
    /// protected third-party material): it may not leave until a filter team reviews it.
    #[serde(rename = "evidence.privilege-flag")]
    EvidencePrivilegeFlag,
    /// A filter team's review of a flagged item: released, withheld, or replaced by a
    /// redacted item.
    #[serde(rename = "evidence.privilege-review")]
    EvidencePrivilegeReview,
    /// Offer a signed evidence package to a partner node: the partner is told its digest and
    /// size and may then fetch it (streamed, resumable) over the federation's mutual TLS.
    #[serde(rename = "package.send")]
    PackageSend,
    /// A partner's offer of an evidence package, received by this node.
    #[serde(rename = "package.offer")]
    PackageOffer,
    /// An offered package fetched from the partner: complete, its SHA-256 and size those the
    /// signed offer announced (a mismatch is recorded as a deny and the bytes are discarded).
    #[serde(rename = "package.arrive")]
    PackageArrive,
    /// Rotate this node's deconfliction key for an agreement: a new key epoch, the node's
    /// holdings PRF'd under it, the public key and the prepared set sent to the partners.
    #[serde(rename = "psi.key.rotate")]
    PsiKeyRotate,
    /// Send this node's current deconfliction key epoch (public key and prepared set) to a
    /// party of the agreement that was not sent it at the rotation (pinned since).
    #[serde(rename = "psi.key.send")]
    PsiKeySend,
    /// A partner's published deconfliction key and a chunk of its prepared set.
    #[serde(rename = "psi.key.receive")]
    PsiKeyReceive,
    /// Ask a partner, by private set intersection, whether it holds anything on selectors.
    #[serde(rename = "psi.query")]
    PsiQuery,
    /// A partner's deconfliction query, evaluated with this node's key of the epoch.
    #[serde(rename = "psi.query.receive")]
    PsiQueryReceive,
    /// A partner's evaluation of this node's query (or its refusal), finalised here.
    #[serde(rename = "psi.evaluation.receive")]
    PsiEvaluationReceive,
    /// Read the deconfliction queries, their results, and the keys and evaluations.
    #[serde(rename = "psi.status")]
    PsiStatus,
    /// Read the exact statistics of a period (requests, flows, denials, notifications,
    /// complaints, deconfliction, packages, e-Evidence Art 28), computed from the ledger and
    /// the store; the entry holds the digest of what was served.
    #[serde(rename = "report.stats")]
    ReportStats,
    /// Read the oversight view of the ledger for a period (entries per action and outcome,
    /// denials by rule, witness coverage, alarms, anomalies).
    #[serde(rename = "report.ledger")]
    ReportLedger,
    /// Publish the differentially private public report of a period (a new release spends
    /// privacy budget; publishing again returns the stored release).
    #[serde(rename = "report.publish")]
    ReportPublish,
    /// The refusals of callers that no authenticator admitted (anonymous API calls, unpinned
    /// federation clients, refused federation batches), counted per source and time window
    /// and recorded by the node as one entry: counts per rule and route template, a keyed
    /// hash of the source, never the caller's own text.
    #[serde(rename = "refusals.record")]
    RefusalsRecord,
    /// A backup of the node taken by its operator (`entente backup`): the subject is the
    /// digest of the backup's manifest, which names the ledger size and root it holds.
    #[serde(rename = "node.backup")]
    NodeBackup,
    /// Crash leftovers swept from the blob store (temporary parts, blobs with no committed
    /// row): counts and bytes only.
    #[serde(rename = "maintenance.sweep")]
    MaintenanceSweep,
    /// The operator scrubbed the evidence blobs: each decrypted and hashed again (counts,
    /// bytes and the digest of the list of damaged blobs).
    #[serde(rename = "maintenance.scrub")]
    MaintenanceScrub,
    /// The operator ended a hold of the ledger that a witness's view had caused, knowing
    /// what the witness holds (the digest of its checkpoint) and with a reason (its digest).
    #[serde(rename = "ledger.release")]
    LedgerRelease,
}

impl Action {
    /// Returns the action's name as it appears in the ledger.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::NodeInit => "node.init",
            Action::UserAdd => "user.add",
            Action::CaseOpen => "case.open",
            Action::CaseRead => "case.read",
            Action::LedgerRead => "ledger.read",
            Action::DatumAdd => "datum.add",
            Action::DatumRead => "datum.read",
            Action::DatumShare => "datum.share",
            Action::DatumReceive => "datum.receive",
            Action::ConsentGive => "consent.give",
            Action::ConsentReceive => "consent.receive",
            Action::DatumDestroy => "datum.destroy",
            Action::RequestCreate => "request.create",
            Action::RequestTransition => "request.transition",
            Action::RequestRead => "request.read",
            Action::AlertsRead => "alerts.read",
            Action::ComplaintFile => "complaint.file",
            Action::ComplaintAnswer => "complaint.answer",
            Action::ComplaintRead => "complaint.read",
            Action::CaseMemberAdd => "case.member.add",
            Action::CaseStatus => "case.status",
            Action::CaseList => "case.list",
            Action::CaseUpdate => "case.update",
            Action::CaseMemberRemove => "case.member.remove",
            Action::IncidentNotify => "incident.notify",
            Action::IncidentReceive => "incident.receive",
            Action::IncidentRead => "incident.read",
            Action::IncidentDestroy => "incident.destroy",
            Action::PeerAdd => "peer.add",
            Action::PeerRemove => "peer.remove",
            Action::EnvelopeReject => "envelope.reject",
            Action::EnvelopeAck => "envelope.ack",
            Action::RequestReceive => "request.receive",
            Action::RequestUpdate => "request.update",
            Action::WitnessAlarm => "witness.alarm",
            Action::IntelCollectionCreate => "intel.collection.create",
            Action::IntelImport => "intel.import",
            Action::IntelRead => "intel.read",
            Action::IntelPush => "intel.push",
            Action::EvidenceAdd => "evidence.add",
            Action::EvidenceCustody => "evidence.custody",
            Action::EvidenceExport => "evidence.export",
            Action::EvidenceReceive => "evidence.receive",
            Action::EvidenceRead => "evidence.read",
            Action::EvidenceDestroy => "evidence.destroy",
            Action::EvidencePrivilegeFlag => "evidence.privilege-flag",
            Action::EvidencePrivilegeReview => "evidence.privilege-review",
            Action::PackageSend => "package.send",
            Action::PackageOffer => "package.offer",
            Action::PackageArrive => "package.arrive",
            Action::PsiKeyRotate => "psi.key.rotate",
            Action::PsiKeySend => "psi.key.send",
            Action::PsiKeyReceive => "psi.key.receive",
            Action::PsiQuery => "psi.query",
            Action::PsiQueryReceive => "psi.query.receive",
            Action::PsiEvaluationReceive => "psi.evaluation.receive",
            Action::PsiStatus => "psi.status",
            Action::ReportStats => "report.stats",
            Action::ReportLedger => "report.ledger",
            Action::ReportPublish => "report.publish",
            Action::RefusalsRecord => "refusals.record",
            Action::NodeBackup => "node.backup",
            Action::MaintenanceSweep => "maintenance.sweep",
            Action::MaintenanceScrub => "maintenance.scrub",
            Action::LedgerRelease => "ledger.release",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kinds of thing an action can be about, by their names in ledger entries.
///
/// A kind names one thing (`case:LANTERN`); the two plural kinds name a listing
/// (`requests:open`, `incident-notifications:all`), read as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SubjectKind {
    /// `backup`: a backup of the node (the SHA-256 of its manifest).
    Backup,
    /// `case`: a case (its id).
    Case,
    /// `cases`: the listing of cases (the page's starting point, a case id or `first`).
    Cases,
    /// `certificate`: a TLS certificate (its SHA-256), before it is known as a peer.
    Certificate,
    /// `collection`: a TAXII collection.
    Collection,
    /// `complaint`: a complaint of an individual (redress).
    Complaint,
    /// `datum`: a data item.
    Datum,
    /// `evidence`: an evidence item.
    Evidence,
    /// `incident`: an incident (its identifier).
    Incident,
    /// `incident-notification`: one incident notification.
    IncidentNotification,
    /// `incident-notifications`: the listing of incident notifications.
    IncidentNotifications,
    /// `ledger`: the ledger.
    Ledger,
    /// `node`: the node itself.
    Node,
    /// `package`: an evidence package (its SHA-256).
    Package,
    /// `party`: a party (its code).
    Party,
    /// `peer`: a pinned partner node.
    Peer,
    /// `psi-key`: a deconfliction key epoch (its id), or the agreement a key is rotated for.
    PsiKey,
    /// `psi-queries`: the listing of deconfliction queries.
    PsiQueries,
    /// `psi-query`: one deconfliction query (its id).
    PsiQuery,
    /// `report`: a report of a period (its label, `2026-H2`, or `FROM/TO`).
    Report,
    /// `request`: a cross-border request.
    Request,
    /// `requests`: the listing of open requests.
    Requests,
    /// `source`: where refused calls came from, as a keyed hash of the network address (never
    /// the address).
    Source,
    /// `status`: a TAXII status resource.
    Status,
    /// `user`: a user of this node.
    User,
}

impl SubjectKind {
    /// Every kind.
    pub const ALL: [SubjectKind; 25] = [
        SubjectKind::Backup,
        SubjectKind::Case,
        SubjectKind::Cases,
        SubjectKind::Certificate,
        SubjectKind::Collection,
        SubjectKind::Complaint,
        SubjectKind::Datum,
        SubjectKind::Evidence,
        SubjectKind::Incident,
        SubjectKind::IncidentNotification,
        SubjectKind::IncidentNotifications,
        SubjectKind::Ledger,
        SubjectKind::Node,
        SubjectKind::Package,
        SubjectKind::Party,
        SubjectKind::Peer,
        SubjectKind::PsiKey,
        SubjectKind::PsiQueries,
        SubjectKind::PsiQuery,
        SubjectKind::Report,
        SubjectKind::Request,
        SubjectKind::Requests,
        SubjectKind::Source,
        SubjectKind::Status,
        SubjectKind::User,
    ];

    /// Its name in ledger entries.
    pub const fn as_str(self) -> &'static str {
        match self {
            SubjectKind::Backup => "backup",
            SubjectKind::Case => "case",
            SubjectKind::Cases => "cases",

            SubjectKind::Certificate => "certificate",
            SubjectKind::Collection => "collection",
            SubjectKind::Complaint => "complaint",
            SubjectKind::Datum => "datum",
            SubjectKind::Evidence => "evidence",
            SubjectKind::Incident => "incident",
            SubjectKind::IncidentNotification => "incident-notification",
            SubjectKind::IncidentNotifications => "incident-notifications",
            SubjectKind::Ledger => "ledger",
            SubjectKind::Node => "node",
            SubjectKind::Package => "package",
            SubjectKind::Party => "party",
            SubjectKind::Peer => "peer",
            SubjectKind::PsiKey => "psi-key",
            SubjectKind::PsiQueries => "psi-queries",
            SubjectKind::PsiQuery => "psi-query",
            SubjectKind::Report => "report",
            SubjectKind::Request => "request",
            SubjectKind::Requests => "requests",
            SubjectKind::Source => "source",
            SubjectKind::Status => "status",
            SubjectKind::User => "user",
        }
    }
}

impl fmt::Display for SubjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SubjectKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        SubjectKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("subject kind `{s}` is not one of Entente's"))
    }
}

/// What an action is about: a typed reference such as `case:LANTERN` or `user:alice`.
///
/// Subjects carry identifiers, never personal data, and never text an unauthenticated caller
/// chose: a subject's id is an id this node issued or validated (`CaseId`, `RequestId`,
/// `DatumId`, `ItemId`, `CollectionId`, `PartyCode`, a user name, parsed at the edge for an
/// authenticated caller), or a digest ([`Subject::digest`]). The store's gate records no entry
/// for an anonymous caller at all: such refusals are counted per source and window and
/// recorded by the node in aggregate (`refusals.record`, its subject the keyed hash of the
/// source).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Subject {
    kind: SubjectKind,
    id: String,
}

impl Subject {
    /// A subject of the given kind and id. The id is kept as given when it has the shape of
    /// an id (what [`crate::ids::check_identifier`] accepts: the typed ids, party codes, user
    /// names) or of a SHA-256 digest; anything else — free text — is replaced by its
    /// `sha256:` digest, so that a subject never carries text of another shape into an entry.
    pub fn new(kind: SubjectKind, id: impl AsRef<str>) -> Self {
        let id = id.as_ref();
        let id = if Self::is_id(id) {
            id.to_owned()
        } else {
            crate::digest::Sha256::of(id.as_bytes()).to_string()
        };
        Self { kind, id }
    }
    /// Whether `id` may stand in a subject as it is: an identifier or a digest.
    pub fn is_id(id: &str) -> bool {
        crate::ids::check_identifier("subject id", id).is_ok()
            || id.parse::<crate::digest::Sha256>().is_ok()
    }
    /// A subject named by a digest (a certificate, a package, a keyed hash of a source).
    pub fn digest(kind: SubjectKind, digest: &crate::digest::Sha256) -> Self {
        Self { kind, id: digest.to_hex() }
    }
    /// The subject's kind.
    pub fn kind(&self) -> SubjectKind {
        self.kind
    }
    /// The subject's identifier within its kind.
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl From<Subject> for String {
    fn from(s: Subject) -> Self {
        format!("{}:{}", s.kind, s.id)
    }
}

impl TryFrom<String> for Subject {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        match s.split_once(':') {
            // Read as written (entries recorded before ids were checked stay readable).
            Some((k, i)) if !i.is_empty() => Ok(Subject { kind: k.parse()?, id: i.to_owned() }),
            _ => Err(format!("subject `{s}` is not of the form kind:id")),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_holds_an_id_or_a_digest_never_free_text() {
        let ids = ["LANTERN", "NL", "eva", "0-10", "2f1c8a4e-9d7b-4c1a-8b2e-3f5d6a7b8c9d"];
        for id in ids {
            assert_eq!(Subject::new(SubjectKind::Case, id).id(), id);
        }
        let hex = "ab".repeat(32);
        assert_eq!(Subject::new(SubjectKind::Package, &hex).id(), hex);
        let tagged = format!("sha256:{hex}");
        assert_eq!(Subject::new(SubjectKind::Package, &tagged).id(), tagged);
        let digest = crate::digest::Sha256::of(b"x");
        assert_eq!(Subject::digest(SubjectKind::Source, &digest).id(), digest.to_hex());
        for text in ["Jane Doe, born 1980", "../../etc/passwd", "", &"a".repeat(65), "j@x.org"] {
            let s = Subject::new(SubjectKind::Case, text);
            assert_eq!(s.id(), crate::digest::Sha256::of(text.as_bytes()).to_string(), "{text}");
            assert!(!s.to_string().contains(text) || text.is_empty());
        }
        // Entries are read as written.
        let read = Subject::try_from("case:Jane Doe".to_owned()).unwrap();
        assert_eq!(read.id(), "Jane Doe");
    }
}
