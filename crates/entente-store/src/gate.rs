//! The gate: decide → apply → record, in one database transaction.
//!
//! Architecture invariant: this module is the only code that writes to the database after
//! migrations. [`Store`] exposes reads only; the effects of commands are private functions
//! here that take the open transaction, and the only way to run them is
//! [`Gate::submit`], which always decides first and always appends the ledger entry (for a
//! deny too) in the same transaction as the effect.
//!
//! Appends are group-committed: a single writer task per process takes the jobs waiting in
//! its queue, runs them in one transaction and acknowledges each only after the commit. The
//! first statement of every transaction updates the ledger head row, which serialises
//! writers across processes on both backends.

use crate::cases;
use crate::evidence;
use crate::federation::{self, Admission, InboundEnvelope};
use crate::flows::{self, ConsentMessage, DatumMessage, OutboxMessage};
use crate::intel;
use crate::packages;
use crate::redress;
use crate::requests::{self, RequestEventMessage, RequestMessage};
use crate::store::{self, Backend, CaseRecord, Store, StoreError, to_i64, to_u64};
use ed25519_dalek::SigningKey;
use entente_core::canonical::canonical_digest;
use entente_core::envelope::{AckItem, AckStatus};
use entente_core::ledger::{self, Frontier, LedgerEntry, LogSigner};
use entente_core::policy::{DecisionRequest, decide};
use entente_core::{Action, Actor, Decision, PartyCode, Role, Subject, ids};
use entente_policy::agreement::{DataCategory, Purpose, RequestKind};
use entente_policy::engine::Engine;
use jiff::Timestamp;
use sqlx::{AssertSqlSafe, Row};
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// Most jobs committed in one transaction.
const MAX_BATCH: usize = 2048;

/// Most scheduler yields spent gathering a batch (each only while the queue is growing).
const GATHER_ROUNDS: usize = 32;

/// An action asked of the gate, with its data. Constructing one checks nothing; the gate
/// validates it before deciding.
#[derive(Clone, Debug)]
pub enum Command {
    /// Record the node's identity as the ledger's first entry.
    InitNode {
        /// The node's party.
        party: PartyCode,
        /// The authority's name.
        name: String,
        /// The ledger origin.
        origin: String,
        /// The C2SP verifier key of the ledger.
        verifier_key: String,
    },
    /// Create a user. The token is given only as its SHA-256.
    AddUser {
        /// User name.
        name: String,
        /// Role.
        role: Role,
        /// SHA-256 of the API token, hex.
        token_sha256: String,
    },
    /// Open a case.
    OpenCase {
        /// Case id.
        id: String,
        /// Title.
        title: String,
        /// Offense concepts.
        concepts: Vec<String>,
    },
    /// Read a case.
    ReadCase {
        /// Case id.
        id: String,
    },
    /// Read ledger entries `from..to` through the API.
    ReadLedger {
        /// First index.
        from: u64,
        /// One past the last index.
        to: u64,
    },
    /// Record a datum this party holds for a case.
    AddDatum {
        /// Datum id.
        id: String,
        /// The case it serves.
        case_id: String,
        /// Its category.
        category: DataCategory,
        /// Its content (a JSON object).
        content: serde_json::Map<String, serde_json::Value>,
    },
    /// Send a datum to another party under the agreements in force.
    ShareDatum {
        /// Datum id.
        id: String,
        /// The receiving party.
        to: PartyCode,
        /// The purpose the receiver will use it for.
        purpose: Purpose,
        /// The request answered, if any.
        request_kind: Option<RequestKind>,
    },
    /// Accept a datum delivered by a partner, with its travelling conditions.
    ReceiveDatum {
        /// The message as delivered.
        message: DatumMessage,
    },
    /// As originator, consent to `holder` passing a datum on to `recipient`.
    GiveConsent {
        /// Datum id.
        datum_id: String,
        /// The party holding the datum.
        holder: PartyCode,
        /// The party it may be passed to.
        recipient: PartyCode,
    },
    /// Record a consent delivered by the originator of a datum.
    ReceiveConsent {
        /// The message as delivered.
        message: ConsentMessage,
    },
    /// Destroy a datum whose retention limit has passed.
    DestroyDatum {
        /// Datum id.
        id: String,
    },
    /// Draft a cross-border request from this party under an agreement.
    CreateRequest {
        /// Request id.
        id: String,
        /// The case it serves.
        case_id: String,
        /// The kind of request.
        kind: RequestKind,
        /// The agreement that grounds it.
        agreement: String,
        /// The requested party.
        to: PartyCode,
        /// Whether it is an emergency request.
        emergency: bool,
        /// The requesting party's national provisions it is made for (citations).
        provisions: Vec<String>,
    },
    /// Move a request through its states.
    TransitionRequest {
        /// Request id.
        id: String,
        /// The event.
        event: entente_policy::request::RequestEvent,
    },
    /// Read a request with its history and clocks.
    ReadRequest {
        /// Request id.
        id: String,
    },
    /// Read every open request with its clocks (for alerts on overdue ones).
    ReadAlerts,
    /// File an individual's complaint about the data held on an identifier. Filed at the
    /// gate's `now`; the answer is due 30 days later (Entente's operating default, see
    /// `redress::ANSWER_DAYS`). Only the keyed hash of the identifier is stored.
    FileComplaint {
        /// Complaint id.
        id: String,
        /// The identifier the complaint is about (e-mail, account, IP address).
        identifier: String,
    },
    /// Record the decision on a complaint and the answer given to the complainant.
    AnswerComplaint {
        /// Complaint id.
        id: String,
        /// `granted`, `refused` or `partially-granted`.
        decision: String,
        /// The answer's text (stored with the complaint; only its digest is recorded).
        answer: String,
    },
    /// Read a complaint with the data items and flows found for its identifier.
    ReadComplaint {
        /// Complaint id.
        id: String,
    },
    /// Add a party to a case under a JIT agreement in force that binds this party and it.
    AddCaseMember {
        /// Case id.
        case_id: String,
        /// The party joining the case.
        party: PartyCode,
        /// The JIT agreement it joins under.
        agreement: String,
    },
    /// Read a case's status: the case, its members and its timeline. A peer sees it only if
    /// its party is a member; otherwise the case is not found, as if it did not exist.
    CaseStatus {
        /// Case id.
        case_id: String,
    },
    /// Remove a partner party from a case this party leads (it leaves the JIT); the other
    /// members and the party removed receive the case update.
    RemoveCaseMember {
        /// Case id.
        case_id: String,
        /// The party leaving the case.
        party: PartyCode,
    },
    /// Apply a case update from the lead of a partner-led case this party is a member of
    /// (delivered in an envelope): this node's mirror of the case.
    ReceiveCaseUpdate {
        /// The update as the lead sent it.
        message: Box<crate::cases::CaseUpdateMessage>,
    },
    /// Notify a partner (a CSIRT or authority) of an incident, under the agreement in force
    /// that grounds an `incident-response` flow of case information to it; the notice travels
    /// with that agreement's conditions.
    NotifyIncident {
        /// The receiving party.
        to: PartyCode,
        /// The agreement the notifier expects to ground it; another one is a deny.
        agreement: Option<String>,
        /// The incident's facts and assessment.
        notice: Box<crate::notify::IncidentNotice>,
    },
    /// Accept an incident notification from a partner, with its travelling conditions.
    ReceiveIncidentNotification {
        /// The notification as delivered.
        message: Box<crate::notify::IncidentNotificationMessage>,
    },
    /// Read the incident notifications sent and received.
    ReadIncidentNotifications,
    /// Destroy a received incident notification whose retention limit has passed (its notice
    /// is cleared, its digest kept).
    DestroyIncidentNotification {
        /// The party that sent it.
        from: PartyCode,
        /// Notification id.
        id: String,
    },
    /// Pin a partner node: its TLS certificate and the Ed25519 key inside it.
    AddPeer {
        /// The partner's party.
        party: PartyCode,
        /// Base URL of its federation endpoint (`https://…`).
        url: String,
        /// Its certificate (PEM).
        cert_pem: String,
        /// SHA-256 of the certificate's DER, hex.
        cert_sha256: String,
        /// Its Ed25519 public key, hex.
        signing_key: String,
        /// Its node's age recipient (`age1…`): evidence packages for it are encrypted to it.
        age_recipient: Option<String>,
    },
    /// Remove a partner's pin.
    RemovePeer {
        /// The partner's party.
        party: PartyCode,
    },
    /// An envelope from a partner whose signature the node layer verified against the pin:
    /// applied exactly once, in the sender's order, through the decision its content needs.
    Inbound {
        /// The envelope's fields and payload.
        envelope: Box<InboundEnvelope>,
    },
    /// Record an envelope refused before its content was decided (always a deny).
    RejectEnvelope {
        /// The claimed or pinned sender, when known.
        from: Option<PartyCode>,
        /// SHA-256 (hex) of the TLS client certificate, when one was presented.
        cert_sha256: Option<String>,
        /// The check that failed (`federation#signature`, …).
        rule: String,
        /// What was wrong, for the sender and the auditor.
        reason: String,
        /// `sha256:<hex>` of the body received.
        body_sha256: String,
    },
    /// A request submitted by a partner to this party (delivered in an envelope).
    ReceiveRequest {
        /// The request as the requesting party drafted and submitted it.
        message: RequestMessage,
    },
    /// A transition of a shared request recorded by the other party (delivered in an
    /// envelope), applied to this node's copy.
    ReceiveRequestEvent {
        /// The event.
        message: RequestEventMessage,
    },
    /// Record that a partner's ledger showed inconsistent checkpoints to this node's witness.
    WitnessAlarm {
        /// The partner whose ledger it is.
        log: PartyCode,
        /// `sha256:<hex>` of the last good checkpoint note seen.
        seen: String,
        /// `sha256:<hex>` of the checkpoint note that contradicts it.
        shown: String,
        /// What shows the contradiction.
        detail: String,
    },
    /// Record a partner's signed acknowledgement of envelopes this node sent.
    RecordAcks {
        /// The acknowledging partner.
        peer: PartyCode,
        /// `sha256:<hex>` of the signed acknowledgement.
        ack_sha256: String,
        /// Its items.
        items: Vec<AckItem>,
    },
    /// Create a TAXII collection shared with the given partner parties.
    IntelCollectionCreate {
        /// Collection id (a UUID).
        id: String,
        /// Title.
        title: String,
        /// Description.
        description: String,
        /// The partner parties it is shared with (the TLP:AMBER audience).
        parties: Vec<PartyCode>,
    },
    /// Import STIX objects (parsed and validated) into a collection, all or nothing.
    IntelImport {
        /// Collection id.
        collection: String,
        /// The objects, each with its original text.
        objects: Arc<Vec<entente_intel::stix::StixObject>>,
        /// The party that published them, if not this node's (objects from a peer).
        originator: Option<PartyCode>,
        /// The id of the status resource to write.
        status_id: String,
    },
    /// Read one page of a collection (objects, manifest or versions), each object decided
    /// under TLP 2.0 for the requester; one ledger entry per page.
    IntelRead {
        /// Collection id.
        collection: String,
        /// What is read.
        view: crate::intel::IntelView,
        /// Filters and position.
        query: crate::intel::IntelQuery,
    },
    /// Take in an evidence item whose content was ingested into the blob store (custody
    /// event `acquired`). Content already held is de-duplicated.
    AddEvidence {
        /// The item.
        item: Box<crate::evidence::NewEvidence>,
    },
    /// Record a custody event on an evidence item: sealed, accessed, copied, verified,
    /// analysed or returned (the others are recorded by their own commands).
    EvidenceCustody {
        /// Item id.
        id: String,
        /// The event.
        event: entente_evidence::CustodyKind,
        /// Why.
        reason: String,
        /// The legal basis (a request or agreement id).
        legal_basis: Option<String>,
    },
    /// Release an evidence item into a package for another party under a request (custody
    /// event `exported`), decided by the agreements in force; the answer carries the
    /// conditions that travel with it.
    ExportEvidence {
        /// Item id.
        id: String,
        /// The receiving party.
        to: PartyCode,
        /// The request answered.
        request: String,
        /// Its kind, when the request is not held by this node.
        request_kind: Option<RequestKind>,
        /// The purpose the receiver will use it for.
        purpose: Purpose,
        /// A retention limit the sender imposes (RFC 3339); the earlier of it and the
        /// agreement's limit travels.
        retain_until: Option<String>,
    },
    /// Take in an evidence item from a verified package (custody event `received`), binding
    /// its travelling conditions.
    ReceiveEvidence {
        /// The item.
        item: Box<crate::evidence::ReceivedEvidence>,
    },
    /// Read an evidence item with its custody chain.
    ReadEvidence {
        /// Item id.
        id: String,
    },
    /// Destroy an evidence item whose retention limit has passed: its data key is destroyed
    /// (crypto-shredding), the custody event `destroyed` recorded.
    DestroyEvidence {
        /// Item id.
        id: String,
    },
    /// Offer a package file written by this node to a pinned partner (outbox message
    /// `evidence.package`); the partner may then fetch it by digest.
    SendPackage {
        /// The partner.
        to: PartyCode,
        /// What the partner is told.
        offer: Box<crate::packages::PackageOffer>,
        /// Each item's `exported` custody event digest (in the offer's item order): proof that
        /// everything in the package left through the gate.
        exports: Vec<(String, String)>,
    },
    /// A partner's offer of a package (from its envelope).
    ReceivePackageOffer {
        /// The offer.
        offer: crate::packages::PackageOffer,
    },
    /// An offered package fetched completely: its digest and size compared with the offer's.
    ArrivePackage {
        /// The partner that offered it.
        from: PartyCode,
        /// The offered SHA-256, hex.
        sha256: String,
        /// The offered size.
        size: u64,
        /// The SHA-256 of the bytes fetched, hex.
        got_sha256: String,
        /// How many bytes were fetched.
        got_size: u64,
        /// Bytes already on disk, from interrupted attempts, when the completing attempt began.
        resumed_from: u64,
    },
}

impl Command {
    fn action(&self) -> Action {
        match self {
            Command::InitNode { .. } => Action::NodeInit,
            Command::AddUser { .. } => Action::UserAdd,
            Command::OpenCase { .. } => Action::CaseOpen,
            Command::ReadCase { .. } => Action::CaseRead,
            Command::ReadLedger { .. } => Action::LedgerRead,
            Command::AddDatum { .. } => Action::DatumAdd,
            Command::ShareDatum { .. } => Action::DatumShare,
            Command::ReceiveDatum { .. } => Action::DatumReceive,
            Command::GiveConsent { .. } => Action::ConsentGive,
            Command::ReceiveConsent { .. } => Action::ConsentReceive,
            Command::DestroyDatum { .. } => Action::DatumDestroy,
            Command::CreateRequest { .. } => Action::RequestCreate,
            Command::TransitionRequest { .. } => Action::RequestTransition,
            Command::ReadRequest { .. } => Action::RequestRead,
            Command::ReadAlerts => Action::AlertsRead,
            Command::FileComplaint { .. } => Action::ComplaintFile,
            Command::AnswerComplaint { .. } => Action::ComplaintAnswer,
            Command::ReadComplaint { .. } => Action::ComplaintRead,
            Command::AddCaseMember { .. } => Action::CaseMemberAdd,
            Command::CaseStatus { .. } => Action::CaseStatus,
            Command::ReceiveCaseUpdate { .. } => Action::CaseUpdate,
            Command::RemoveCaseMember { .. } => Action::CaseMemberRemove,
            Command::NotifyIncident { .. } => Action::IncidentNotify,
            Command::ReceiveIncidentNotification { .. } => Action::IncidentReceive,
            Command::ReadIncidentNotifications => Action::IncidentRead,
            Command::DestroyIncidentNotification { .. } => Action::IncidentDestroy,
            Command::AddPeer { .. } => Action::PeerAdd,
            Command::RemovePeer { .. } => Action::PeerRemove,
            Command::Inbound { envelope } => match envelope.kind.as_str() {
                "datum" => Action::DatumReceive,
                "consent" => Action::ConsentReceive,
                "request" => Action::RequestReceive,
                "request-event" => Action::RequestUpdate,
                crate::notify::KIND => Action::IncidentReceive,
                crate::cases::UPDATE_KIND => Action::CaseUpdate,
                _ => Action::EnvelopeReject,
            },
            Command::RejectEnvelope { .. } => Action::EnvelopeReject,
            Command::RecordAcks { .. } => Action::EnvelopeAck,
            Command::ReceiveRequest { .. } => Action::RequestReceive,
            Command::ReceiveRequestEvent { .. } => Action::RequestUpdate,
            Command::WitnessAlarm { .. } => Action::WitnessAlarm,
            Command::IntelCollectionCreate { .. } => Action::IntelCollectionCreate,
            Command::IntelImport { .. } => Action::IntelImport,
            Command::IntelRead { .. } => Action::IntelRead,
            Command::AddEvidence { .. } => Action::EvidenceAdd,
            Command::EvidenceCustody { .. } => Action::EvidenceCustody,
            Command::ExportEvidence { .. } => Action::EvidenceExport,
            Command::ReceiveEvidence { .. } => Action::EvidenceReceive,
            Command::ReadEvidence { .. } => Action::EvidenceRead,
            Command::DestroyEvidence { .. } => Action::EvidenceDestroy,
            Command::SendPackage { .. } => Action::PackageSend,
            Command::ReceivePackageOffer { .. } => Action::PackageOffer,
            Command::ArrivePackage { .. } => Action::PackageArrive,
        }
    }

    fn subjects(&self) -> Vec<Subject> {
        match self {
            Command::InitNode { party, .. } => vec![Subject::new("node", party.as_str())],
            Command::AddUser { name, .. } => vec![Subject::new("user", name)],
            Command::OpenCase { id, .. } | Command::ReadCase { id } => {
                vec![Subject::new("case", id)]
            }
            Command::ReadLedger { from, to } => {
                vec![Subject::new("ledger", &format!("{from}-{to}"))]
            }
            Command::AddDatum { id, case_id, .. } => {
                vec![Subject::new("datum", id), Subject::new("case", case_id)]
            }
            Command::ShareDatum { id, to, .. } => {
                vec![Subject::new("datum", id), Subject::new("party", to.as_str())]
            }
            Command::ReceiveDatum { message } => {
                vec![Subject::new("datum", &message.id), Subject::new("case", &message.case_id)]
            }
            Command::GiveConsent { datum_id, recipient, .. } => {
                vec![Subject::new("datum", datum_id), Subject::new("party", recipient.as_str())]
            }
            Command::ReceiveConsent { message } => vec![
                Subject::new("datum", &message.datum_id),
                Subject::new("party", message.recipient.as_str()),
            ],
            Command::DestroyDatum { id } => vec![Subject::new("datum", id)],
            Command::CreateRequest { id, case_id, to, .. } => vec![
                Subject::new("request", id),
                Subject::new("case", case_id),
                Subject::new("party", to.as_str()),
            ],
            Command::TransitionRequest { id, .. } | Command::ReadRequest { id } => {
                vec![Subject::new("request", id)]
            }
            Command::ReadAlerts => vec![Subject::new("requests", "open")],
            Command::FileComplaint { id, .. }
            | Command::AnswerComplaint { id, .. }
            | Command::ReadComplaint { id } => vec![Subject::new("complaint", id)],
            Command::AddCaseMember { case_id, party, .. } => {
                vec![Subject::new("case", case_id), Subject::new("party", party.as_str())]
            }
            Command::CaseStatus { case_id } => vec![Subject::new("case", case_id)],
            Command::RemoveCaseMember { case_id, party } => {
                vec![Subject::new("case", case_id), Subject::new("party", party.as_str())]
            }
            Command::ReceiveCaseUpdate { message } => vec![
                Subject::new("case", &message.case_id),
                Subject::new("party", message.lead.as_str()),
            ],
            Command::NotifyIncident { to, notice, .. } => {
                vec![Subject::new("incident", &notice.incident), Subject::new("party", to.as_str())]
            }
            Command::ReceiveIncidentNotification { message } => vec![
                Subject::new("incident", &message.notice.incident),
                Subject::new("party", message.conditions.originator.as_str()),
            ],
            Command::ReadIncidentNotifications => {
                vec![Subject::new("incident-notifications", "all")]
            }
            Command::DestroyIncidentNotification { from, id } => vec![
                Subject::new("incident-notification", id),
                Subject::new("party", from.as_str()),
            ],
            Command::AddPeer { party, .. }
            | Command::RemovePeer { party }
            | Command::RecordAcks { peer: party, .. } => vec![Subject::new("peer", party.as_str())],
            Command::Inbound { envelope } => vec![Subject::new("envelope", &envelope.id)],
            Command::WitnessAlarm { log, .. } => vec![Subject::new("ledger", log.as_str())],
            Command::ReceiveRequest { message } => vec![
                Subject::new("request", &message.id),
                Subject::new("party", message.requesting.as_str()),
            ],
            Command::ReceiveRequestEvent { message } => {
                vec![Subject::new("request", &message.id)]
            }
            Command::RejectEnvelope { from, cert_sha256, .. } => match (from, cert_sha256) {
                (Some(p), _) => vec![Subject::new("peer", p.as_str())],
                (None, Some(c)) => vec![Subject::new("certificate", c)],
                (None, None) => vec![Subject::new("peer", "unidentified")],
            },
            Command::IntelCollectionCreate { id, .. } => vec![Subject::new("collection", id)],
            Command::IntelImport { collection, status_id, .. } => {
                vec![Subject::new("collection", collection), Subject::new("status", status_id)]
            }
            Command::IntelRead { collection, .. } => vec![Subject::new("collection", collection)],
            Command::AddEvidence { item } => {
                vec![Subject::new("evidence", &item.id), Subject::new("case", &item.case_id)]
            }
            Command::ReceiveEvidence { item } => vec![
                Subject::new("evidence", &item.id),
                Subject::new("case", &item.case_id),
                Subject::new("party", item.from.as_str()),
            ],
            Command::ExportEvidence { id, to, .. } => {
                vec![Subject::new("evidence", id), Subject::new("party", to.as_str())]
            }
            Command::EvidenceCustody { id, .. }
            | Command::ReadEvidence { id }
            | Command::DestroyEvidence { id } => vec![Subject::new("evidence", id)],
            Command::SendPackage { to, offer, .. } => {
                vec![Subject::new("package", &offer.sha256), Subject::new("party", to.as_str())]
            }
            Command::ReceivePackageOffer { offer } => vec![Subject::new("package", &offer.sha256)],
            Command::ArrivePackage { from, sha256, .. } => {
                vec![Subject::new("package", sha256), Subject::new("party", from.as_str())]
            }
        }
    }

    fn is_request(&self) -> bool {
        matches!(
            self,
            Command::CreateRequest { .. }
                | Command::TransitionRequest { .. }
                | Command::ReadRequest { .. }
                | Command::ReadAlerts
                | Command::ReceiveRequest { .. }
                | Command::ReceiveRequestEvent { .. }
        )
    }

    fn is_redress(&self) -> bool {
        matches!(
            self,
            Command::FileComplaint { .. }
                | Command::AnswerComplaint { .. }
                | Command::ReadComplaint { .. }
        )
    }

    fn is_federation(&self) -> bool {
        matches!(
            self,
            Command::AddPeer { .. }
                | Command::RemovePeer { .. }
                | Command::RecordAcks { .. }
                | Command::RejectEnvelope { .. }
                | Command::WitnessAlarm { .. }
        )
    }

    fn is_intel(&self) -> bool {
        matches!(
            self,
            Command::IntelCollectionCreate { .. }
                | Command::IntelImport { .. }
                | Command::IntelRead { .. }
        )
    }

    fn is_evidence(&self) -> bool {
        matches!(
            self,
            Command::AddEvidence { .. }
                | Command::EvidenceCustody { .. }
                | Command::ExportEvidence { .. }
                | Command::ReceiveEvidence { .. }
                | Command::ReadEvidence { .. }
                | Command::DestroyEvidence { .. }
        )
    }

    fn is_package(&self) -> bool {
        matches!(
            self,
            Command::SendPackage { .. }
                | Command::ReceivePackageOffer { .. }
                | Command::ArrivePackage { .. }
        )
    }

    fn is_case(&self) -> bool {
        matches!(
            self,
            Command::AddCaseMember { .. }
                | Command::CaseStatus { .. }
                | Command::ReceiveCaseUpdate { .. }
                | Command::RemoveCaseMember { .. }
        )
    }

    fn is_incident(&self) -> bool {
        matches!(
            self,
            Command::NotifyIncident { .. }
                | Command::ReceiveIncidentNotification { .. }
                | Command::ReadIncidentNotifications
                | Command::DestroyIncidentNotification { .. }
        )
    }

    fn is_flow(&self) -> bool {
        matches!(
            self,
            Command::AddDatum { .. }
                | Command::ShareDatum { .. }
                | Command::ReceiveDatum { .. }
                | Command::GiveConsent { .. }
                | Command::ReceiveConsent { .. }
                | Command::DestroyDatum { .. }
        )
    }

    /// Checks the command's own data (before any decision).
    pub(crate) fn validate(&self) -> Result<(), GateError> {
        match self {
            Command::InitNode { name, .. } if name.trim().is_empty() => {
                Err(GateError::Invalid("node name: must not be empty".into()))
            }
            Command::InitNode { .. } => Ok(()),
            Command::AddUser { name, token_sha256, .. } => {
                ids::check_identifier("user name", name).map_err(GateError::Invalid)?;
                if token_sha256.len() != 64 || !token_sha256.bytes().all(|b| b.is_ascii_hexdigit())
                {
                    return Err(GateError::Invalid("token_sha256: expected 64 hex digits".into()));
                }
                Ok(())
            }
            Command::OpenCase { id, title, concepts } => {
                ids::check_identifier("case id", id).map_err(GateError::Invalid)?;
                if title.trim().is_empty() || title.len() > 500 {
                    return Err(GateError::Invalid("title: expected 1 to 500 characters".into()));
                }
                for c in concepts {
                    ids::check_identifier("offense concept", c).map_err(GateError::Invalid)?;
                }
                Ok(())
            }
            Command::ReadCase { id } => {
                ids::check_identifier("case id", id).map_err(GateError::Invalid)
            }
            Command::ReadLedger { from, to } if from >= to || to - from > 10_000 => {
                Err(GateError::Invalid(format!(
                    "range {from}..{to}: expected from < to and at most 10000 entries"
                )))
            }
            Command::ReadLedger { .. } => Ok(()),
            Command::AddDatum { id, case_id, .. } => {
                ids::check_identifier("datum id", id).map_err(GateError::Invalid)?;
                ids::check_identifier("case id", case_id).map_err(GateError::Invalid)
            }
            Command::ShareDatum { id, .. }
            | Command::GiveConsent { datum_id: id, .. }
            | Command::DestroyDatum { id } => {
                ids::check_identifier("datum id", id).map_err(GateError::Invalid)
            }
            Command::ReceiveDatum { message } => {
                ids::check_identifier("datum id", &message.id).map_err(GateError::Invalid)?;
                ids::check_identifier("case id", &message.case_id).map_err(GateError::Invalid)?;
                if message.conditions.agreement.is_empty() {
                    return Err(GateError::Invalid(
                        "conditions.agreement: a datum must travel with the agreement it is sent under".into(),
                    ));
                }
                for c in &message.concepts {
                    ids::check_identifier("offense concept", c).map_err(GateError::Invalid)?;
                }
                Ok(())
            }
            Command::ReceiveConsent { message } => {
                ids::check_identifier("datum id", &message.datum_id).map_err(GateError::Invalid)
            }
            Command::CreateRequest { id, case_id, agreement, provisions, .. } => {
                if provisions.len() > 20
                    || provisions.iter().any(|p| p.trim().is_empty() || p.len() > 100)
                {
                    return Err(GateError::Invalid(
                        "provisions: expected at most 20 citations of 1 to 100 characters".into(),
                    ));
                }
                ids::check_identifier("request id", id).map_err(GateError::Invalid)?;
                ids::check_identifier("case id", case_id).map_err(GateError::Invalid)?;
                ids::check_identifier("agreement id", agreement).map_err(GateError::Invalid)
            }
            Command::TransitionRequest { id, .. } | Command::ReadRequest { id } => {
                ids::check_identifier("request id", id).map_err(GateError::Invalid)
            }
            Command::ReceiveRequest { message } => requests::validate_message(message),
            Command::ReceiveRequestEvent { message } => {
                ids::check_identifier("request id", &message.id).map_err(GateError::Invalid)
            }
            Command::ReadAlerts => Ok(()),
            Command::AddPeer { url, cert_sha256, signing_key, age_recipient, .. } => {
                if let Some(r) = age_recipient
                    && (!r.starts_with("age1") || r.len() > 100)
                {
                    return Err(GateError::Invalid(format!(
                        "age recipient `{r}`: expected an age X25519 recipient (age1…)"
                    )));
                }
                if !url.starts_with("https://") || url.len() > 2048 {
                    return Err(GateError::Invalid(format!(
                        "peer url `{url}` must be an https:// URL (node-to-node traffic is mutual TLS)"
                    )));
                }
                let hex64 = |v: &str| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit());
                if !hex64(cert_sha256) || !hex64(signing_key) {
                    return Err(GateError::Invalid(
                        "peer certificate digest and signing key must be 64 hex digits".into(),
                    ));
                }
                Ok(())
            }
            Command::RemovePeer { .. }
            | Command::RejectEnvelope { .. }
            | Command::WitnessAlarm { .. } => Ok(()),
            Command::RecordAcks { items, .. } if items.is_empty() => {
                Err(GateError::Invalid("an acknowledgement answers at least one envelope".into()))
            }
            Command::RecordAcks { .. } => Ok(()),
            Command::Inbound { envelope } => {
                if envelope.seq == 0 || envelope.id.is_empty() || envelope.id.len() > 200 {
                    return Err(GateError::Invalid(format!(
                        "envelope `{}`: sequence numbers start at 1 and ids are 1 to 200 characters",
                        envelope.id
                    )));
                }
                Ok(())
            }
            Command::FileComplaint { .. }
            | Command::AnswerComplaint { .. }
            | Command::ReadComplaint { .. } => redress::validate(self),
            Command::AddCaseMember { case_id, agreement, .. } => {
                ids::check_identifier("case id", case_id).map_err(GateError::Invalid)?;
                ids::check_identifier("agreement id", agreement).map_err(GateError::Invalid)
            }
            Command::CaseStatus { case_id } => {
                ids::check_identifier("case id", case_id).map_err(GateError::Invalid)
            }
            Command::ReceiveCaseUpdate { message } => message.validate(),
            Command::RemoveCaseMember { case_id, .. } => {
                ids::check_identifier("case id", case_id).map_err(GateError::Invalid)
            }
            Command::NotifyIncident { agreement, notice, .. } => {
                if let Some(a) = agreement {
                    ids::check_identifier("agreement id", a).map_err(GateError::Invalid)?;
                }
                notice.validate()
            }
            Command::ReceiveIncidentNotification { message } => {
                if message.id.is_empty() || message.id.len() > 100 {
                    return Err(GateError::Invalid(
                        "notification id: expected 1 to 100 characters".into(),
                    ));
                }
                if message.conditions.agreement.is_empty() {
                    return Err(GateError::Invalid(
                        "conditions.agreement: a notification must travel with the agreement it is sent under".into(),
                    ));
                }
                message.notice.validate()
            }
            Command::ReadIncidentNotifications => Ok(()),
            Command::DestroyIncidentNotification { id, .. } if id.is_empty() || id.len() > 100 => {
                Err(GateError::Invalid("notification id: expected 1 to 100 characters".into()))
            }
            Command::DestroyIncidentNotification { .. } => Ok(()),
            Command::IntelCollectionCreate { .. }
            | Command::IntelImport { .. }
            | Command::IntelRead { .. } => intel::validate(self),
            c if c.is_package() => packages::validate(c),
            // What remains are the evidence commands.
            _ => evidence::validate(self),
        }
    }

    /// Digests of what the action carries, for the ledger entry (never the data itself).
    fn payload_hashes(&self) -> Result<BTreeMap<String, String>, GateError> {
        let digest = |v: serde_json::Value| {
            canonical_digest(&v).map_err(|e| GateError::Invalid(e.to_string()))
        };
        let mut out = BTreeMap::new();
        match self {
            Command::InitNode { party, name, origin, verifier_key } => {
                out.insert(
                    "node".into(),
                    digest(serde_json::json!({"party": party, "name": name, "origin": origin, "verifier_key": verifier_key}))?,
                );
            }
            Command::OpenCase { id, title, concepts } => {
                out.insert(
                    "case".into(),
                    digest(serde_json::json!({"id": id, "title": title, "concepts": concepts}))?,
                );
            }
            Command::AddUser { .. } | Command::ReadCase { .. } | Command::ReadLedger { .. } => {}
            Command::CreateRequest { id, case_id, kind, agreement, to, emergency, provisions } => {
                out.insert(
                    "request".into(),
                    digest(serde_json::json!({"id": id, "case_id": case_id, "kind": kind, "agreement": agreement, "to": to, "emergency": emergency, "provisions": provisions}))?,
                );
            }
            Command::TransitionRequest { id, event } => {
                out.insert(
                    "event".into(),
                    digest(serde_json::json!({"id": id, "event": event.name(), "grounds": event.grounds()}))?,
                );
            }
            Command::AddCaseMember { case_id, party, agreement } => {
                out.insert(
                    "member".into(),
                    digest(serde_json::json!({"case_id": case_id, "party": party, "agreement": agreement}))?,
                );
            }
            Command::RemoveCaseMember { case_id, party } => {
                out.insert(
                    "member".into(),
                    digest(serde_json::json!({"case_id": case_id, "party": party}))?,
                );
            }
            Command::AddPeer { party, url, cert_sha256, signing_key, age_recipient, .. } => {
                let mut peer = serde_json::json!({"party": party, "url": url, "cert_sha256": cert_sha256, "signing_key": signing_key});
                if let Some(r) = age_recipient {
                    peer["age_recipient"] = serde_json::json!(r);
                }
                out.insert("peer".into(), digest(peer)?);
            }
            Command::RejectEnvelope { body_sha256, .. } => {
                out.insert("body".into(), body_sha256.clone());
            }
            Command::ReceiveRequest { message } => {
                out.insert(
                    "request".into(),
                    digest(
                        serde_json::to_value(message)
                            .map_err(|e| GateError::Invalid(e.to_string()))?,
                    )?,
                );
            }
            Command::ReceiveRequestEvent { message } => {
                out.insert(
                    "event".into(),
                    digest(
                        serde_json::to_value(message)
                            .map_err(|e| GateError::Invalid(e.to_string()))?,
                    )?,
                );
            }
            Command::RecordAcks { ack_sha256, .. } => {
                out.insert("ack".into(), ack_sha256.clone());
            }
            Command::SendPackage { offer, exports, .. } => {
                out.insert("package".into(), format!("sha256:{}", offer.sha256));
                out.insert("manifest".into(), format!("sha256:{}", offer.manifest_sha256));
                out.insert("exports".into(), digest(serde_json::json!(exports))?);
            }
            Command::ReceivePackageOffer { offer } => {
                out.insert("package".into(), format!("sha256:{}", offer.sha256));
                out.insert("manifest".into(), format!("sha256:{}", offer.manifest_sha256));
            }
            Command::ArrivePackage { got_sha256, .. } => {
                out.insert("fetched".into(), format!("sha256:{got_sha256}"));
            }
            Command::WitnessAlarm { seen, shown, detail, .. } => {
                out.insert("seen".into(), seen.clone());
                out.insert("shown".into(), shown.clone());
                out.insert("detail".into(), digest(serde_json::json!(detail))?);
            }
            // Flows record the digests their effect computes (see `flows::apply`).
            _ => {}
        }
        Ok(out)
    }
}

/// What a permitted command produced.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// The effect was applied; nothing to return.
    Done,
    /// The case read.
    Case(CaseRecord),
    /// Ledger entries read, `(index, canonical bytes)`.
    Entries(Vec<(u64, Vec<u8>)>),
    /// A message for a partner, written to the outbox with the effect.
    Message(OutboxMessage),
    /// A request as it stands after the command (state, history, clocks).
    Request(Box<entente_policy::request::Request>),
    /// Open requests with their clocks.
    Requests(Vec<entente_policy::request::Request>),
    /// A complaint with the data items and flows found for its identifier.
    Complaint(Box<crate::redress::Complaint>),
    /// A case's status: the case, its members and its timeline.
    CaseStatus(Box<crate::cases::CaseStatus>),
    /// The status resource of an intel import.
    IntelStatus(Box<crate::intel::IntelStatus>),
    /// A page of a collection, after the TLP decision.
    IntelPage(Box<crate::intel::IntelPage>),
    /// An evidence item with its custody chain (after the command).
    Evidence(Box<crate::evidence::EvidenceRecord>),
    /// Incident notifications sent and received.
    Notifications(Vec<crate::notify::NotificationRecord>),
}

/// The gate's answer to a command that was decided and recorded.
#[derive(Clone, Debug, PartialEq)]
pub enum Verdict {
    /// Permitted, applied and recorded at ledger index `index`.
    Permitted {
        /// Ledger index of the entry.
        index: u64,
        /// The decision, with its obligations.
        decision: Decision,
        /// What the effect produced.
        output: Output,
    },
    /// Denied; nothing applied; the denial is recorded at `index`.
    Denied {
        /// Ledger index of the entry.
        index: u64,
        /// The decision, with its reason.
        decision: Decision,
    },
}

/// Errors of the gate. A deny is not an error (see [`Verdict::Denied`]).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// The command's data is malformed; nothing was decided or recorded.
    #[error("invalid request: {0}")]
    Invalid(String),
    /// The effect conflicts with the current state (for example a case id already in use);
    /// nothing was changed or recorded.
    #[error("conflict: {0}")]
    Conflict(String),
    /// The command names something that does not exist; nothing was changed or recorded.
    #[error("{0} not found")]
    NotFound(String),
    /// The database failed; the whole transaction was rolled back.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The gate's writer has stopped.
    #[error("the gate is shut down")]
    Closed,
    /// An envelope applied before: its stored outcome, to acknowledge again. Nothing was
    /// applied or recorded this time.
    #[error("envelope {} was applied before (ledger entry {})", .0.id, .0.ledger_index)]
    Replayed(AckItem),
}

impl From<sqlx::Error> for GateError {
    fn from(e: sqlx::Error) -> Self {
        GateError::Store(StoreError::Db(e))
    }
}

struct Job {
    actor: Actor,
    command: Command,
    now: Timestamp,
    reply: oneshot::Sender<Result<Verdict, GateError>>,
}

/// The gate of a node. Cheap to clone; all clones feed one writer task.
#[derive(Clone, Debug)]
pub struct Gate {
    jobs: mpsc::Sender<Job>,
    engine: Arc<Engine>,
    party: PartyCode,
    origin: String,
}

impl Gate {
    /// Starts the gate's writer over `store`, signing checkpoints with `key` for `party` and
    /// deciding data flows with `engine` (the agreements in force).
    /// Must be called inside a tokio runtime.
    pub fn start(store: Store, key: SigningKey, party: PartyCode, engine: Arc<Engine>) -> Gate {
        let origin = ledger::origin_for(&party, &key.verifying_key());
        let (jobs, rx) = mpsc::channel(8192);
        // The pseudonymization secret is derived from the node key and never leaves the node.
        let secret = {
            use sha2::Digest as _;
            let mut h = sha2::Sha256::new();
            h.update(b"entente pseudonym secret v1\0");
            h.update(key.to_bytes());
            h.finalize().into()
        };
        let writer = Writer {
            store,
            key,
            party: party.clone(),
            origin: origin.clone(),
            cache: None,
            engine: engine.clone(),
            secret,
        };
        tokio::spawn(writer.run(rx));
        Gate { jobs, engine, party, origin }
    }

    /// The agreements this gate decides flows with.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The party this gate acts for.
    pub fn party(&self) -> &PartyCode {
        &self.party
    }

    /// The ledger origin (C2SP key name).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// Decides, applies and records `command` asked by `actor` at `now`. Returns once the
    /// transaction holding the effect and the ledger entry has committed.
    ///
    /// # Errors
    /// Invalid data, conflicts and unknown subjects (nothing recorded), database failures
    /// (nothing committed).
    pub async fn submit(
        &self,
        actor: Actor,
        command: Command,
        now: Timestamp,
    ) -> Result<Verdict, GateError> {
        command.validate()?;
        let (reply, rx) = oneshot::channel();
        self.jobs.send(Job { actor, command, now, reply }).await.map_err(|_| GateError::Closed)?;
        rx.await.map_err(|_| GateError::Closed)?
    }
}

impl Gate {
    /// Submits `commands` in order, as one actor at one time, and waits for all of them.
    /// They reach the writer in this order (so envelopes from a partner are applied in the
    /// order sent) and are committed in as few transactions as the writer batches.
    pub async fn submit_many(
        &self,
        actor: Actor,
        commands: Vec<Command>,
        now: Timestamp,
    ) -> Vec<Result<Verdict, GateError>> {
        let mut waits = Vec::with_capacity(commands.len());
        for command in commands {
            if let Err(e) = command.validate() {
                waits.push(Err(e));
                continue;
            }
            let (reply, rx) = oneshot::channel();
            let job = Job { actor: actor.clone(), command, now, reply };
            if self.jobs.send(job).await.is_err() {
                waits.push(Err(GateError::Closed));
                continue;
            }
            waits.push(Ok(rx));
        }
        let mut out = Vec::with_capacity(waits.len());
        for w in waits {
            out.push(match w {
                Ok(rx) => rx.await.unwrap_or(Err(GateError::Closed)),
                Err(e) => Err(e),
            });
        }
        out
    }
}

struct Writer {
    store: Store,
    key: SigningKey,
    party: PartyCode,
    origin: String,
    /// The frontier after the last commit of this process; checked against the head row.
    cache: Option<Frontier>,
    engine: Arc<Engine>,
    secret: [u8; 32],
}

/// A job's result before the commit tells whether it stands.
type Pending = Result<Verdict, GateError>;

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        while let Some(first) = rx.recv().await {
            let mut batch = vec![first];
            // Take what is queued; while that keeps growing, let the submitters that the last
            // commit woke run and enqueue too, so a batch is not cut short by scheduling.
            for _ in 0..GATHER_ROUNDS {
                let before = batch.len();
                while batch.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                if batch.len() >= MAX_BATCH || batch.len() == before {
                    break;
                }
                tokio::task::yield_now().await;
            }
            let (replies, work): (Vec<_>, Vec<_>) =
                batch.into_iter().map(|j| (j.reply, (j.actor, j.command, j.now))).unzip();
            match self.commit_batch(&work).await {
                Ok(results) => {
                    for (reply, result) in replies.into_iter().zip(results) {
                        let _ = reply.send(result);
                    }
                }
                Err(e) => {
                    self.cache = None;
                    tracing::error!(error = %e, "gate transaction failed; batch rolled back");
                    let text = e.to_string();
                    for reply in replies {
                        let _ = reply.send(Err(GateError::Store(StoreError::Inconsistent(
                            format!("transaction rolled back: {text}"),
                        ))));
                    }
                }
            }
        }
    }

    async fn commit_batch(
        &mut self,
        work: &[(Actor, Command, Timestamp)],
    ) -> Result<Vec<Pending>, GateError> {
        let mut tx = self.store.pool.begin().await?;
        // Take the writer lock first (row lock on PostgreSQL, RESERVED lock on SQLite); the
        // same statement returns the committed size under that lock.
        let size = to_u64(
            sqlx::query_scalar(
                "UPDATE ledger_head SET epoch = epoch + 1 WHERE id = 1 RETURNING size",
            )
            .fetch_one(&mut *tx)
            .await?,
        )?;
        let mut frontier = match self.cache.take() {
            Some(f) if f.size() == size => f,
            _ => store::load_frontier(&mut *tx, size).await?,
        };
        // Case openings are the bulk of the traffic: their conflict checks are answered by one
        // query for the whole batch (we hold the writer lock, and only the gate writes cases),
        // and their rows are written with multi-row inserts.
        let backend = self.store.backend();
        let mut cases = CaseBatch::prefetch(&mut tx, backend, &self.party, work).await?;
        let mut entries: Vec<(u64, Vec<u8>)> = Vec::with_capacity(work.len());
        let mut hashes: Vec<(u64, [u8; 32])> = Vec::with_capacity(work.len() * 2);
        let mut results = Vec::with_capacity(work.len());
        let mut last_now = None;
        // Inbox rows are written together at the end; admissions later in the batch see the
        // sequence numbers admitted earlier in it.
        let mut inbox_rows = Vec::new();
        let mut inbox_last: std::collections::HashMap<String, u64> =
            std::collections::HashMap::new();
        for (actor, command, now) in work {
            // An envelope from a partner: admitted once and in order, then its content goes
            // through the decision it needs (an unreadable content is recorded as rejected).
            let decoded;
            let mut inbound = None;
            let command = match command {
                Command::Inbound { envelope } => {
                    cases.flush(&mut tx).await?;
                    let batch_last = inbox_last.get(envelope.from.as_str()).copied();
                    match federation::admit(&mut tx, envelope, batch_last).await {
                        Ok(Admission::Fresh) => {}
                        Ok(Admission::Replay(item)) => {
                            results.push(Err(GateError::Replayed(item)));
                            continue;
                        }
                        Err(e @ (GateError::Store(_) | GateError::Closed)) => return Err(e),
                        Err(e) => {
                            results.push(Err(e));
                            continue;
                        }
                    }
                    inbound = Some(envelope);
                    let reject = |rule: &str, reason: String| Command::RejectEnvelope {
                        from: Some(envelope.from.clone()),
                        cert_sha256: Some(envelope.cert_sha256.clone()),
                        rule: rule.into(),
                        reason: format!("envelope {}: {reason}", envelope.id),
                        body_sha256: envelope.envelope_sha256.clone(),
                    };
                    decoded = match federation::decode(envelope) {
                        Ok(c) => match federation::check_case(&mut tx, &envelope.from, &c).await? {
                            Ok(()) => c,
                            Err(reason) => reject("federation#case-member", reason),
                        },
                        Err(reason) => reject("federation#content", reason),
                    };
                    &decoded
                }
                c => c,
            };
            let subjects = command.subjects();
            let subject = subjects
                .first()
                .cloned()
                .unwrap_or_else(|| Subject::new("node", self.party.as_str()));
            let role = decide(
                &DecisionRequest {
                    actor,
                    action: command.action(),
                    subject: &subject,
                    node_party: &self.party,
                    purpose: None,
                    agreements: &[],
                },
                *now,
            );
            // Flows read their facts (datum, case, consents) before the agreement decision.
            let mut unusable = None;
            let facts = if command.is_flow() && role.is_permit() {
                cases.flush(&mut tx).await?;
                match flows::load_facts(&mut tx, command).await {
                    Ok(f) => f,
                    Err(e @ (GateError::Store(_) | GateError::Closed)) => return Err(e),
                    // A partner's message about something this node does not hold is
                    // recorded as rejected (and acknowledged with the reason).
                    Err(e) if inbound.is_some() => {
                        unusable = Some(e.to_string());
                        None
                    }
                    Err(e) => {
                        results.push(Err(e));
                        continue;
                    }
                }
            } else {
                None
            };
            let (mut decision, conditions) = match &facts {
                Some(f) => flows::decide(&self.engine, &self.party, actor, command, f, role, *now),
                // Evidence that moves between parties is decided by the agreements too.
                None if command.is_evidence() && role.is_permit() => {
                    cases.flush(&mut tx).await?;
                    match evidence::decide(&mut tx, &self.engine, &self.party, command, role, *now)
                        .await
                    {
                        Ok(d) => d,
                        Err(e @ (GateError::Store(_) | GateError::Closed)) => return Err(e),
                        Err(e) => {
                            results.push(Err(e));
                            continue;
                        }
                    }
                }
                // Incident notifications are decided by the agreements like data flows.
                None if command.is_incident() && role.is_permit() => {
                    crate::notify::decide(&self.engine, &self.party, actor, command, role, *now)
                }
                // A case update: only from the lead, for a case this party is a member of.
                None if matches!(command, Command::ReceiveCaseUpdate { .. })
                    && role.is_permit() =>
                {
                    cases.flush(&mut tx).await?;
                    let d = cases::decide_update(
                        &mut tx,
                        &self.engine,
                        &self.party,
                        actor,
                        command,
                        role,
                        *now,
                    )
                    .await?;
                    (d, None)
                }
                None => (role, None),
            };
            if let Command::RejectEnvelope { rule, reason, .. } = command {
                decision = Decision::deny(rule, reason.clone());
            }
            // Bytes other than those offered are refused, and the refusal has an effect: the
            // offer is closed so that the same bytes are not fetched again.
            if decision.is_permit()
                && let Some((rule, reason)) = packages::arrival_mismatch(command)
            {
                cases.flush(&mut tx).await?;
                packages::refuse(&mut tx, command, &reason, *now, frontier.size()).await?;
                decision = Decision::deny(rule, reason);
            }
            let mut rejected = matches!(command, Command::RejectEnvelope { .. });
            if let Some(reason) = unusable {
                decision = Decision::deny("federation#content", reason);
                rejected = true;
            }
            let mut extra_hashes = Vec::new();
            let output = if decision.is_permit() {
                let applied = match command {
                    Command::OpenCase { id, title, concepts } => {
                        cases.open(actor, id, title, concepts, *now, frontier.size())
                    }
                    c if c.is_request() => {
                        cases.flush(&mut tx).await?;
                        requests::apply(
                            &mut tx,
                            &self.engine,
                            &self.party,
                            c,
                            *now,
                            frontier.size(),
                        )
                        .await
                        .map(|(o, h)| {
                            extra_hashes = h;
                            o
                        })
                    }
                    c if c.is_case() => {
                        cases.flush(&mut tx).await?;
                        cases::apply(
                            &mut tx,
                            &self.engine,
                            &self.party,
                            actor,
                            c,
                            &entries,
                            *now,
                            frontier.size(),
                        )
                        .await
                        .map(|(o, h)| {
                            extra_hashes = h;
                            o
                        })
                    }
                    c if c.is_incident() => {
                        cases.flush(&mut tx).await?;
                        crate::notify::apply(
                            &mut tx,
                            &self.party,
                            actor,
                            c,
                            conditions.as_ref(),
                            *now,
                            frontier.size(),
                        )
                        .await
                        .map(|(o, h)| {
                            extra_hashes = h;
                            o
                        })
                    }
                    c if c.is_federation() => {
                        cases.flush(&mut tx).await?;
                        federation::apply(&mut tx, &self.party, c, *now, frontier.size()).await
                    }
                    c if c.is_package() => {
                        cases.flush(&mut tx).await?;
                        packages::apply(&mut tx, actor, c, *now, frontier.size()).await
                    }
                    c if c.is_intel() => {
                        cases.flush(&mut tx).await?;
                        intel::apply(
                            &mut tx,
                            backend,
                            &self.engine,
                            &self.party,
                            actor,
                            c,
                            *now,
                            frontier.size(),
                        )
                        .await
                        .map(|(o, h)| {
                            extra_hashes = h;
                            o
                        })
                    }
                    c if c.is_redress() => {
                        cases.flush(&mut tx).await?;
                        redress::apply(&mut tx, &self.secret, actor, c, *now, frontier.size())
                            .await
                            .map(|(o, h)| {
                                extra_hashes = h;
                                o
                            })
                    }
                    c if c.is_evidence() => {
                        cases.flush(&mut tx).await?;
                        evidence::apply(
                            &mut tx,
                            &self.party,
                            actor,
                            c,
                            conditions.as_ref(),
                            *now,
                            frontier.size(),
                        )
                        .await
                        .map(|(o, h)| {
                            extra_hashes = h;
                            o
                        })
                    }
                    c if c.is_flow() => {
                        cases.flush(&mut tx).await?;
                        flows::apply(
                            &mut tx,
                            &self.engine,
                            &self.party,
                            &self.secret,
                            actor,
                            c,
                            facts.as_ref(),
                            &decision,
                            conditions.as_ref(),
                            *now,
                            frontier.size(),
                        )
                        .await
                        .map(|(o, h)| {
                            extra_hashes = h;
                            o
                        })
                    }
                    _ => {
                        // Anything else sees the cases opened earlier in this batch.
                        cases.flush(&mut tx).await?;
                        apply(&mut tx, command, *now, frontier.size()).await
                    }
                };
                match applied {
                    Ok(o) => Some(o),
                    Err(e @ (GateError::Store(_) | GateError::Closed)) => return Err(e),
                    // A partner's message that cannot take effect is recorded as rejected, so
                    // that it is acknowledged (and never retried) with the reason.
                    Err(e) if inbound.is_some() => {
                        decision = Decision::deny("federation#content", e.to_string());
                        rejected = true;
                        None
                    }
                    Err(e) => {
                        results.push(Err(e));
                        continue;
                    }
                }
            } else {
                None
            };
            let index = frontier.size();
            let entry = LedgerEntry {
                v: ledger::ENTRY_FORMAT,
                index,
                time: format!("{now:.6}"),
                node: self.party.clone(),
                actor: actor.clone(),
                action: command.action(),
                subjects,
                decision: decision.outcome,
                rules: decision.rules.clone(),
                obligations: decision.obligations.clone(),
                reason: decision.reason.clone(),
                payload_hashes: {
                    let mut h = command.payload_hashes()?;
                    h.extend(extra_hashes);
                    if let Some(m) = inbound {
                        h.insert("envelope".into(), m.envelope_sha256.clone());
                    }
                    h
                },
            };
            if let Some(m) = inbound {
                let status = match (&output, rejected) {
                    (_, true) => AckStatus::Rejected,
                    (Some(_), false) => AckStatus::Applied,
                    (None, false) => AckStatus::Denied,
                };
                inbox_last.insert(m.from.as_str().to_owned(), m.seq);
                inbox_rows.push(federation::InboxRow::new(m, status, index, *now)?);
            }
            let bytes = entry.encode().map_err(|e| GateError::Invalid(e.to_string()))?;
            for (i, h) in frontier.push(ledger::record_hash(&bytes)) {
                hashes.push((i, h.0));
            }
            entries.push((index, bytes));
            last_now = Some(*now);
            results.push(Ok(match output {
                Some(output) => Verdict::Permitted { index, decision, output },
                None => Verdict::Denied { index, decision },
            }));
        }
        cases.flush(&mut tx).await?;
        federation::record_inbox(&mut tx, backend, &inbox_rows).await?;
        if let Some(now) = last_now {
            insert_pairs(&mut tx, backend, "ledger_entries (idx, entry)", &entries).await?;
            let hashes: Vec<(u64, Vec<u8>)> =
                hashes.into_iter().map(|(i, h)| (i, h.to_vec())).collect();
            insert_pairs(&mut tx, backend, "ledger_hashes (id, hash)", &hashes).await?;
            let note = LogSigner::new(&self.origin, &self.key)
                .sign_checkpoint(frontier.size(), frontier.root())
                .map_err(|e| GateError::Invalid(e.to_string()))?;
            sqlx::query(
                "INSERT INTO ledger_checkpoints (size, note, created_at) VALUES ($1, $2, $3)",
            )
            .bind(to_i64(frontier.size())?)
            .bind(note.clone())
            .bind(format!("{now:.6}"))
            .execute(&mut *tx)
            .await?;
            sqlx::query("UPDATE ledger_head SET size = $1, checkpoint = $2 WHERE id = 1")
                .bind(to_i64(frontier.size())?)
                .bind(note)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        self.cache = Some(frontier);
        Ok(results)
    }
}

/// Most bound parameters in one statement (SQLite allows 32766, PostgreSQL 65535).
pub(crate) const MAX_PARAMS: usize = 8000;

/// `rows` parenthesised groups of `cols` placeholders, comma-separated. SQLite gets anonymous
/// `?` placeholders: it resolves each named `$N` by a linear search of the statement's
/// parameter list, which is quadratic in a multi-row statement (a third of the writer's CPU
/// time at a few thousand parameters). PostgreSQL needs `$N`.
fn placeholders(backend: Backend, cols: usize, rows: usize) -> String {
    let mut sql = String::with_capacity(rows * cols * 7);
    for r in 0..rows {
        sql.push_str(if r > 0 { ",(" } else { "(" });
        for c in 0..cols {
            if c > 0 {
                sql.push(',');
            }
            match backend {
                Backend::Sqlite => sql.push('?'),
                Backend::Postgres => {
                    sql.push('$');
                    sql.push_str(&(r * cols + c + 1).to_string());
                }
            }
        }
        sql.push(')');
    }
    sql
}

/// `INSERT INTO {table_cols} VALUES (…), …` for `rows` rows of `cols` placeholders.
pub(crate) fn multi_row_insert(
    backend: Backend,
    table_cols: &str,
    cols: usize,
    rows: usize,
) -> String {
    format!("INSERT INTO {table_cols} VALUES {}", placeholders(backend, cols, rows))
}

/// Inserts `(integer, blob)` rows with multi-row statements.
async fn insert_pairs(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    backend: Backend,
    table_cols: &str,
    rows: &[(u64, Vec<u8>)],
) -> Result<(), GateError> {
    for chunk in rows.chunks(MAX_PARAMS / 2) {
        // The statement is built from a fixed table name and placeholders only.
        let sql = multi_row_insert(backend, table_cols, 2, chunk.len());
        // Batch-sized statements are not worth a slot in the prepared-statement cache.
        let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
        for (k, v) in chunk {
            q = q.bind(to_i64(*k)?).bind(v.clone());
        }
        q.execute(&mut **tx).await?;
    }
    Ok(())
}

/// A case row waiting for its multi-row insert: id, title, concepts (JSON), opened by,
/// opened at, ledger index.
type CaseRow = (String, String, String, String, String, i64);

/// The case openings of one batch: which ids exist, and the rows not yet written.
struct CaseBatch {
    backend: Backend,
    /// The node's party, the lead of every case it opens.
    party: String,
    /// Ids of the batch's case openings that already exist or were opened earlier in it.
    taken: HashSet<String>,
    /// Rows of permitted openings, written by [`CaseBatch::flush`].
    pending: Vec<CaseRow>,
}

impl CaseBatch {
    /// Finds which of the case ids opened in `work` already exist, in one query per
    /// `MAX_PARAMS` ids.
    async fn prefetch(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        backend: Backend,
        party: &PartyCode,
        work: &[(Actor, Command, Timestamp)],
    ) -> Result<CaseBatch, GateError> {
        let ids: Vec<&str> = work
            .iter()
            .filter_map(|(_, c, _)| match c {
                Command::OpenCase { id, .. } => Some(id.as_str()),
                _ => None,
            })
            .collect();
        let mut taken = HashSet::new();
        for chunk in ids.chunks(MAX_PARAMS) {
            // `(p1),(p2),…` is a valid IN list on both backends; the ids are bound.
            let list = placeholders(backend, 1, chunk.len());
            let sql = format!("SELECT id FROM cases WHERE id IN ({list})");
            let mut q = sqlx::query_scalar::<_, String>(AssertSqlSafe(sql)).persistent(false);
            for id in chunk {
                q = q.bind(*id);
            }
            taken.extend(q.fetch_all(&mut **tx).await?);
        }
        Ok(CaseBatch {
            backend,
            party: party.as_str().to_owned(),
            taken,
            pending: Vec::with_capacity(ids.len()),
        })
    }

    /// The effect of a permitted case opening: checked now, written at the next flush.
    fn open(
        &mut self,
        actor: &Actor,
        id: &str,
        title: &str,
        concepts: &[String],
        now: Timestamp,
        index: u64,
    ) -> Result<Output, GateError> {
        if self.taken.contains(id) {
            return Err(GateError::Conflict(format!("case `{id}` already exists")));
        }
        let concepts_json =
            serde_json::to_string(concepts).map_err(|e| GateError::Invalid(e.to_string()))?;
        let index = to_i64(index)?;
        self.taken.insert(id.to_owned());
        self.pending.push((
            id.to_owned(),
            title.to_owned(),
            concepts_json,
            actor.to_string(),
            format!("{now:.6}"),
            index,
        ));
        Ok(Output::Done)
    }

    /// Writes the pending rows: the cases, and the node's party as the lead member of each.
    async fn flush(&mut self, tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<(), GateError> {
        const COLS: usize = 6;
        const MEMBER_COLS: usize = 5;
        for chunk in self.pending.chunks(MAX_PARAMS / COLS) {
            // The statement is built from a fixed table name and placeholders only.
            let sql = multi_row_insert(
                self.backend,
                "cases (id, title, concepts, opened_by, opened_at, ledger_index)",
                COLS,
                chunk.len(),
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for (id, title, concepts, by, at, index) in chunk {
                q = q
                    .bind(id.clone())
                    .bind(title.clone())
                    .bind(concepts.clone())
                    .bind(by.clone())
                    .bind(at.clone())
                    .bind(*index);
            }
            q.execute(&mut **tx).await?;
        }
        for chunk in self.pending.chunks(MAX_PARAMS / MEMBER_COLS) {
            // The statement is built from a fixed table name and placeholders only.
            let sql = multi_row_insert(
                self.backend,
                "case_members (case_id, party, role, added_at, ledger_index)",
                MEMBER_COLS,
                chunk.len(),
            );
            let mut q = sqlx::query(AssertSqlSafe(sql)).persistent(false);
            for (id, _, _, _, at, index) in chunk {
                q = q
                    .bind(id.clone())
                    .bind(self.party.clone())
                    .bind("lead")
                    .bind(at.clone())
                    .bind(*index);
            }
            q.execute(&mut **tx).await?;
        }
        self.pending.clear();
        Ok(())
    }
}

/// Applies a permitted command's effect inside the gate's transaction (case openings excepted:
/// see [`CaseBatch`]). Checks that can fail
/// on the request (conflict, not found) run before any write, so an `Err` other than a store
/// error leaves the transaction untouched.
async fn apply(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    command: &Command,
    now: Timestamp,
    index: u64,
) -> Result<Output, GateError> {
    let now_text = format!("{now:.6}");
    match command {
        Command::InitNode { party, name, origin, verifier_key } => {
            let existing: Option<String> =
                sqlx::query_scalar("SELECT v FROM node_meta WHERE k = 'party'")
                    .fetch_optional(&mut **tx)
                    .await?;
            if let Some(p) = existing {
                return Err(GateError::Conflict(format!(
                    "this database already belongs to node {p}"
                )));
            }
            for (k, v) in [
                ("party", party.as_str()),
                ("name", name.as_str()),
                ("origin", origin.as_str()),
                ("verifier_key", verifier_key.as_str()),
                ("created_at", now_text.as_str()),
            ] {
                sqlx::query("INSERT INTO node_meta (k, v) VALUES ($1, $2)")
                    .bind(k)
                    .bind(v)
                    .execute(&mut **tx)
                    .await?;
            }
            Ok(Output::Done)
        }
        Command::AddUser { name, role, token_sha256 } => {
            let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM users WHERE name = $1")
                .bind(name)
                .fetch_optional(&mut **tx)
                .await?;
            if exists.is_some() {
                return Err(GateError::Conflict(format!("user `{name}` already exists")));
            }
            sqlx::query("INSERT INTO users (name, role, token_sha256, created_at, ledger_index) VALUES ($1, $2, $3, $4, $5)")
                .bind(name)
                .bind(role.as_str())
                .bind(token_sha256)
                .bind(&now_text)
                .bind(to_i64(index)?)
                .execute(&mut **tx)
                .await?;
            Ok(Output::Done)
        }
        Command::OpenCase { .. } => {
            // Case openings are checked and written by `CaseBatch` in `commit_batch`.
            Err(GateError::Store(StoreError::Inconsistent(
                "case openings are applied by the batch, not one by one".into(),
            )))
        }
        Command::ReadCase { id } => Ok(Output::Case(cases::load_case(tx, id).await?)),
        Command::ReadLedger { from, to } => {
            let rows = sqlx::query(
                "SELECT idx, entry FROM ledger_entries WHERE idx >= $1 AND idx < $2 ORDER BY idx",
            )
            .bind(to_i64(*from)?)
            .bind(to_i64(*to)?)
            .fetch_all(&mut **tx)
            .await?;
            let entries = rows
                .iter()
                .map(|r| Ok((to_u64(r.try_get(0)?)?, r.try_get(1)?)))
                .collect::<Result<Vec<_>, GateError>>()?;
            Ok(Output::Entries(entries))
        }
        // Flows are applied by `flows::apply`.
        _ => Err(GateError::Invalid(format!("{} is not applied here", command.action()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn open(id: &str) -> Command {
        Command::OpenCase { id: id.into(), title: format!("Case {id}"), concepts: vec![] }
    }

    /// Stores on SQLite, and on PostgreSQL in a fresh schema when `DATABASE_URL` is set (the
    /// schema name is returned for dropping).
    async fn stores(dir: &std::path::Path) -> Vec<(Store, Option<(String, String)>)> {
        let url = format!("sqlite://{}?mode=rwc", dir.join("g.sqlite").display());
        let mut out = vec![(Store::open(&url).await.unwrap(), None)];
        if let Ok(admin) = std::env::var("DATABASE_URL") {
            let schema = format!("g_{}_{}", std::process::id(), Timestamp::now().as_nanosecond());
            store::admin_execute(&admin, &format!("CREATE SCHEMA {schema}")).await.unwrap();
            let sep = if admin.contains('?') { '&' } else { '?' };
            let url = format!("{admin}{sep}options=-c%20search_path%3D{schema}");
            out.push((Store::open(&url).await.unwrap(), Some((admin, schema))));
        }
        out
    }

    /// One transaction with a duplicate opening, reads of a case opened earlier in the same
    /// batch, and a deny: the batched conflict check and the flush before other effects.
    #[tokio::test]
    async fn one_batch_sees_its_own_case_openings() {
        let dir = tempfile::tempdir().unwrap();
        for (store, schema) in stores(dir.path()).await {
            let party: PartyCode = "NL".parse().unwrap();
            let key = SigningKey::from_bytes(&[7u8; 32]);
            let origin = ledger::origin_for(&party, &key.verifying_key());
            let mut writer = Writer {
                store: store.clone(),
                key,
                party: party.clone(),
                origin,
                cache: None,
                engine: Arc::new(Engine::compile(Vec::new()).unwrap()),
                secret: [0u8; 32],
            };
            let eva = Actor::User { name: "eva".into(), role: Role::Investigator };
            let ann = Actor::User { name: "ann".into(), role: Role::Auditor };
            let now = Timestamp::now();
            let work = vec![
                (eva.clone(), open("A"), now),
                (eva.clone(), open("A"), now),
                (eva.clone(), Command::ReadCase { id: "A".into() }, now),
                (ann.clone(), open("B"), now),
                (eva.clone(), open("C"), now),
                (eva.clone(), Command::ReadCase { id: "B".into() }, now),
            ];
            let results = writer.commit_batch(&work).await.unwrap();
            assert!(matches!(results[0], Ok(Verdict::Permitted { index: 0, .. })));
            assert!(matches!(results[1], Err(GateError::Conflict(_))));
            let Ok(Verdict::Permitted { index: 1, output: Output::Case(case), .. }) = &results[2]
            else {
                panic!("{:?}", results[2])
            };
            assert_eq!(case.ledger_index, 0);
            assert!(matches!(results[3], Ok(Verdict::Denied { index: 2, .. })));
            assert!(matches!(results[4], Ok(Verdict::Permitted { index: 3, .. })));
            assert!(matches!(results[5], Err(GateError::NotFound(_))));
            assert_eq!(store.case_count().await.unwrap(), 2);
            assert_eq!(store.ledger_head().await.unwrap().0, 4);

            // The next batch finds the committed ids through the prefetch.
            let results = writer.commit_batch(&[(eva.clone(), open("C"), now)]).await.unwrap();
            assert!(matches!(results[0], Err(GateError::Conflict(_))));
            store.close().await;
            if let Some((admin, schema)) = schema {
                store::admin_execute(&admin, &format!("DROP SCHEMA {schema} CASCADE"))
                    .await
                    .unwrap();
            }
        }
    }
}
